//! The events role: hands what happens to other services. Events come from the emitters
//! (the footage core, the writer, the composition root, the stills) through the bounded
//! [`EventSink`] queue; a dispatcher thread turns each into JSON once and offers it to
//! every consumer, each with a bounded queue and a thread of its own:
//!
//! - [`hooks`]: `[[hooks]]` programs, one run at a time per hook, with a timeout;
//! - [`mqtt`]: a broker, QoS 1, with a retained status and a bounded outbox;
//! - [`hub`]: live subscribers (the phone page's Server-Sent Events);
//! - [`upload`]: locked segments and saved clips placed into a folder for a sync tool.
//!
//! Beside them, [`stills`] saves a still image every few seconds from frames a tap on the
//! capture side hands it, and announces each as an event.
//!
//! What outlives one recording run is a [`SessionEvents`], made once per process by the
//! composition root and handed to each run: the sink and its queue (so sequence numbers go
//! on across runs, and an event emitted between runs, a `clock_set` while recording is
//! off, waits in the queue for the next run's dispatcher), the live subscribers (a
//! phone's `GET /api/events` stays open across record off/on) and the newest still.
//!
//! A slow or absent consumer never costs the recorder a frame: every hand-over is a
//! `try_send`, and what a full queue drops is counted and logged. At stop
//! ([`EventsRole::finish`]) everything already emitted is still delivered: hooks run
//! what they have queued (each run within its timeout), MQTT flushes its outbox for a few
//! seconds, the upload folder finishes its placements. This role never writes footage and
//! never moves or deletes a segment.

pub mod config;
pub mod hooks;
pub mod hub;
pub mod mqtt;
pub mod stills;
pub mod upload;

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{select, Receiver, Sender};
use log::{error, warn};

use crate::state::event::{Event, EventSink};
use config::{HookConfig, MqttConfig, StillsConfig, UploadConfig};
use hooks::HookWorker;
use hub::EventHub;
use mqtt::MqttClient;
use stills::{LatestStill, Stills};
use upload::UploadWorker;

/// Events the emitters may be ahead of the dispatcher (it only hands them on).
pub const SINK_QUEUE: usize = 1024;

/// An event as consumers get it: the event and its JSON (made once).
#[derive(Debug)]
pub struct Delivered {
    pub event: Event,
    pub json: String,
}

impl Delivered {
    pub fn new(event: Event) -> Delivered {
        let json = event.to_json();
        Delivered { event, json }
    }
}

/// What the role is to do.
#[derive(Clone, Debug, Default)]
pub struct EventsSettings {
    /// The footage directory (where `stills/` is by default).
    pub footage_dir: std::path::PathBuf,
    pub hooks: Vec<HookConfig>,
    pub mqtt: Option<MqttConfig>,
    pub stills: Option<StillsConfig>,
    pub upload: Option<UploadConfig>,
}

/// What every recording run of a process shares (see the module doc); cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionEvents {
    sink: EventSink,
    rx: Receiver<Event>,
    hub: EventHub,
    latest: LatestStill,
}

impl Default for SessionEvents {
    fn default() -> SessionEvents {
        SessionEvents::new()
    }
}

impl SessionEvents {
    pub fn new() -> SessionEvents {
        let (sink, rx) = EventSink::bounded(SINK_QUEUE);
        SessionEvents {
            sink,
            rx,
            hub: EventHub::default(),
            latest: LatestStill::default(),
        }
    }

    /// The emitters' handle (the footage core, the writer, the web backend's `clock_set`).
    pub fn sink(&self) -> EventSink {
        self.sink.clone()
    }

    /// Where live subscribers (`GET /api/events`) register.
    pub fn hub(&self) -> EventHub {
        self.hub.clone()
    }

    /// The newest still's path (`GET /api/still.jpg`); `None` until a run with stills on
    /// found or saved one.
    pub fn latest_still(&self) -> LatestStill {
        self.latest.clone()
    }

    /// The process ends: every live subscription ends once it has read what it has.
    pub fn close(&self) {
        self.hub.close();
    }
}

/// The consumers the dispatcher offers each event to.
struct Outlets {
    hooks: Vec<HookWorker>,
    mqtt: Option<MqttClient>,
    upload: Option<UploadWorker>,
    hub: EventHub,
}

impl Outlets {
    fn offer(&self, event: Event) {
        let d = Arc::new(Delivered::new(event));
        for h in &self.hooks {
            h.offer(&d);
        }
        if let Some(m) = &self.mqtt {
            m.offer(&d);
        }
        if let Some(u) = &self.upload {
            u.offer(&d);
        }
        self.hub.publish(&d);
    }

    /// Every consumer finishes what it has, in parallel; then they end. (The live
    /// subscribers stay: they belong to the session.)
    fn finish(self) {
        let mut hooks = self.hooks;
        for h in &mut hooks {
            h.close();
        }
        let mqtt = self.mqtt.map(|mut m| {
            m.close();
            m
        });
        let upload = self.upload.map(|mut u| {
            u.close();
            u
        });
        for h in hooks {
            h.join();
        }
        if let Some(m) = mqtt {
            m.join();
        }
        if let Some(u) = upload {
            u.join();
        }
    }
}

/// The running role of one recording run.
pub struct EventsRole {
    sink: EventSink,
    /// Events the sink had dropped when the run started.
    dropped_before: u64,
    stills: Option<Stills>,
    stop: Option<Sender<()>>,
    dispatcher: Option<JoinHandle<()>>,
}

impl EventsRole {
    /// Start the dispatcher and the configured consumers. A consumer that cannot start
    /// (an unreadable credentials file, a missing upload folder that cannot be made) is
    /// logged and left out; the recorder records regardless.
    /// The queue, the live subscribers and the newest still are the session's.
    pub fn start(settings: &EventsSettings, session: &SessionEvents) -> EventsRole {
        let sink = session.sink();
        let rx = session.rx.clone();
        let hub = session.hub();
        let hooks = settings
            .hooks
            .iter()
            .filter_map(|h| {
                HookWorker::spawn(h.clone())
                    .map_err(|e| error!("cannot start the hook {}: {e}", h.command.join(" ")))
                    .ok()
            })
            .collect();
        let mqtt = settings.mqtt.as_ref().and_then(|m| {
            MqttClient::spawn(m)
                .map_err(|e| error!("MQTT off: {e}"))
                .ok()
        });
        let upload = settings.upload.as_ref().and_then(|u| {
            UploadWorker::spawn(u, &settings.footage_dir)
                .map_err(|e| error!("upload folder off: {e}"))
                .ok()
        });
        let stills = settings.stills.as_ref().and_then(|s| {
            Stills::spawn(
                s,
                &settings.footage_dir,
                sink.clone(),
                session.latest_still(),
            )
            .map_err(|e| error!("stills off: {e}"))
            .ok()
        });
        let outlets = Outlets {
            hooks,
            mqtt,
            upload,
            hub,
        };
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let dispatcher = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || dispatch(&rx, &stop_rx, outlets));
        let dispatcher = match dispatcher {
            Ok(t) => Some(t),
            Err(e) => {
                error!("cannot start the events thread: {e}; no events this run");
                None
            }
        };
        EventsRole {
            dropped_before: sink.dropped(),
            sink: if dispatcher.is_some() {
                sink
            } else {
                EventSink::default()
            },
            stills,
            stop: Some(stop_tx),
            dispatcher,
        }
    }

    /// The emitters' handle.
    pub fn sink(&self) -> EventSink {
        self.sink.clone()
    }

    /// Whether stills are on in this run.
    #[cfg(test)]
    pub fn stills_on(&self) -> bool {
        self.stills.is_some()
    }

    /// What puts the stills' tap on the capture side of a source (`None` when stills are
    /// off). The tap copies a keyframe at most once per interval and never waits.
    pub fn tapper(&self) -> Option<stills::Tapper> {
        self.stills.as_ref().and_then(|s| s.tapper())
    }

    /// The recorder has stopped and every emitter is done: deliver what was emitted,
    /// then end every thread of the role.
    pub fn finish(mut self) {
        if let Some(s) = self.stills.take() {
            s.finish();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.dispatcher.take() {
            if t.join().is_err() {
                error!("the events thread panicked");
            }
        }
        let dropped = self.sink.dropped().saturating_sub(self.dropped_before);
        if dropped > 0 {
            warn!("events: {dropped} event(s) dropped this run (the queue was full)");
        }
    }
}

fn dispatch(rx: &Receiver<Event>, stop: &Receiver<()>, outlets: Outlets) {
    loop {
        select! {
            recv(rx) -> e => match e {
                Ok(e) => outlets.offer(e),
                Err(_) => break,
            },
            recv(stop) -> _ => {
                while let Ok(e) = rx.try_recv() {
                    outlets.offer(e);
                }
                break;
            }
        }
    }
    outlets.finish();
    log::debug!("events: every consumer is done");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::event::EventKind;
    use std::time::Duration;

    #[test]
    fn everything_emitted_reaches_hooks_and_subscribers_even_at_stop() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("hook.log");
        let settings = EventsSettings {
            footage_dir: dir.path().to_path_buf(),
            hooks: vec![HookConfig {
                on: vec!["camera_lost".into(), "camera_back".into()],
                command: vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    format!(
                        "sleep 0.02; echo \"$DASHCAM_SEQ $DASHCAM_EVENT\" >> {}",
                        log.display()
                    ),
                ],
                timeout: 5.0,
            }],
            ..EventsSettings::default()
        };
        let session = SessionEvents::new();
        let role = EventsRole::start(&settings, &session);
        let mut sub = session.hub().subscribe().expect("subscriber");
        assert!(!role.stills_on(), "stills are off");
        let sink = role.sink();
        for i in 0..10 {
            if i % 2 == 0 {
                sink.emit(EventKind::camera_lost(
                    std::time::SystemTime::now(),
                    "unplugged",
                ));
            } else {
                sink.emit(EventKind::CameraBack {});
            }
        }
        // Stop at once: the hook still runs for every event, in order.
        role.finish();
        let text = std::fs::read_to_string(&log).expect("hook ran");
        let want: Vec<String> = (1..=10)
            .map(|s| {
                format!(
                    "{s} {}",
                    if s % 2 == 1 {
                        "camera_lost"
                    } else {
                        "camera_back"
                    }
                )
            })
            .collect();
        assert_eq!(text.lines().collect::<Vec<_>>(), want);
        let mut seqs = Vec::new();
        while let hub::Next::Event(e) = sub.next(Duration::from_secs(1)) {
            seqs.push(e.event.seq);
        }
        assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
        assert_eq!(sink.dropped(), 0);
        // The next run goes on with the sequence, and the subscriber stays.
        let role = EventsRole::start(&settings, &session);
        session.sink().emit(EventKind::CameraBack {});
        role.finish();
        match sub.next(Duration::from_secs(1)) {
            hub::Next::Event(e) => assert_eq!(e.event.seq, 11),
            other => panic!("{other:?}"),
        }
        session.close();
        assert!(matches!(
            sub.next(Duration::from_secs(1)),
            hub::Next::Closed
        ));
    }
}
