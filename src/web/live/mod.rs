//! The live view on the phone, at near-zero CPU: the camera's own H.264 cut into
//! fragmented MP4 for Media Source Extensions over a WebSocket (`/api/live.ws`) and as an
//! fMP4 HLS playlist from RAM for iPhones without MSE (`/api/live.m3u8`); an MJPEG
//! camera's own JPEGs at a capped rate (`/api/live.mjpeg`). Nothing is decoded or
//! re-encoded, and nothing costs the recording: frames come through the recorder's
//! [`LiveTap`] (a non-blocking, bounded hand-off; nobody watching costs one atomic load
//! per frame), each viewer has its own bounded lane and thread, and a stuck viewer is
//! dropped after [`STALL`].
//!
//! Files: [`hub`] (the thread that shares frames out, the viewer registry), [`fmp4`] (init
//! segments and per-frame fragments), [`hls`] (GOP segments and the playlist), [`lane`]
//! (a viewer's queue: skip to the next keyframe when slow), [`cap`] (the preview rate),
//! [`ws`] and [`mjpeg`] (the viewer threads), [`api`] (the endpoints). This file starts
//! and stops the role and the viewers' threads.

pub(crate) mod api;
pub(crate) mod cap;
pub(crate) mod fmp4;
pub(crate) mod hls;
pub(crate) mod hub;
pub(crate) mod lane;
pub(crate) mod mjpeg;
pub(crate) mod ws;

use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;
use log::warn;

use crate::state::live::LiveTap;
use hub::{Hub, Kind, Refused};
use lane::Out;

use super::backend::{DriveState, WebBackend};

/// A viewer whose socket takes nothing for this long is dropped.
pub(crate) const STALL: Duration = Duration::from_secs(5);
/// Send buffer of a viewer's socket: what the kernel holds for a slow phone (it would
/// otherwise grow to megabytes and hide a stuck viewer for many seconds).
const SEND_BUFFER: usize = 128 * 1024;
/// Stack of a viewer's thread.
const STACK: usize = 256 * 1024;
/// Without a frame for this long while someone watches, the viewers are told why.
const NO_PICTURE_AFTER: Duration = Duration::from_secs(3);

/// The `[web]` keys of the live view.
#[derive(Clone, Debug)]
pub struct LiveSettings {
    pub max_viewers: usize,
    pub preview_fps: f64,
}

/// How a viewer ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The page went away.
    Closed,
    /// The web role stops.
    Stopped,
    /// Its socket took nothing for [`STALL`].
    Stalled,
    Failed(String),
}

impl Ending {
    fn of_io(e: &std::io::Error) -> Ending {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Ending::Stalled,
            std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::NotConnected => Ending::Closed,
            _ => Ending::Failed(e.to_string()),
        }
    }

    fn of_ws(e: &tungstenite::Error) -> Ending {
        match e {
            tungstenite::Error::Io(e) => Ending::of_io(e),
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                Ending::Closed
            }
            e => Ending::Failed(e.to_string()),
        }
    }
}

/// What the other end of a viewer's socket did (looked at without waiting).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClientState {
    Quiet,
    /// It sent something.
    Data,
    /// It closed (or the socket failed).
    Closed,
}

pub(crate) fn client_state(stream: &TcpStream) -> ClientState {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(
        stream,
        PollFlags::IN | PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR,
    )];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(0) => ClientState::Quiet,
        Ok(_) => {
            let r = fds[0].revents();
            if r.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::RDHUP) {
                return ClientState::Closed;
            }
            let mut b = [0u8; 1];
            match rustix::net::recv(
                stream.as_fd(),
                &mut b,
                rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT,
            ) {
                Ok((0, _)) => ClientState::Closed,
                Ok(_) => ClientState::Data,
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => ClientState::Quiet,
                Err(_) => ClientState::Closed,
            }
        }
        Err(_) => ClientState::Quiet,
    }
}

/// A place among the viewers, until its thread ends (or it is never served).
pub(crate) struct Ticket {
    id: u64,
    kind: Kind,
    lane: Receiver<Out>,
    hub: Arc<Hub>,
    served: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.served {
            self.hub.leave(self.id, false);
        }
    }
}

/// The running live view.
pub struct LiveView {
    hub: Arc<Hub>,
    backend: Arc<dyn WebBackend>,
    settings: LiveSettings,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl LiveView {
    /// Start the hub thread over `tap`.
    pub(crate) fn start(
        tap: Arc<LiveTap>,
        settings: LiveSettings,
        backend: Arc<dyn WebBackend>,
    ) -> std::io::Result<Arc<LiveView>> {
        let hub = Arc::new(Hub::new(tap, settings.max_viewers, settings.preview_fps));
        let thread = {
            let hub = hub.clone();
            std::thread::Builder::new()
                .name("live-hub".into())
                .stack_size(STACK)
                .spawn(move || {
                    super::server::lower_priority();
                    hub.run();
                })?
        };
        Ok(Arc::new(LiveView {
            hub,
            backend,
            settings,
            threads: Mutex::new(vec![thread]),
        }))
    }

    pub(crate) fn settings(&self) -> &LiveSettings {
        &self.settings
    }

    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// A place for a viewer of `kind`.
    pub(crate) fn join(&self, kind: Kind) -> Result<Ticket, Refused> {
        let (id, lane) = self.hub.join(kind)?;
        Ok(Ticket {
            id,
            kind,
            lane,
            hub: self.hub.clone(),
            served: false,
        })
    }

    /// Serve a viewer on `stream` (its response head written) in a thread of its own.
    pub(crate) fn serve(self: &Arc<Self>, mut ticket: Ticket, stream: TcpStream) {
        if !crate::web::conn::prepare_stream(&stream, STALL, SEND_BUFFER, "live viewer") {
            return;
        }
        if let Ok(clone) = stream.try_clone() {
            self.hub.attach_socket(ticket.id, clone);
        }
        let (id, kind) = (ticket.id, ticket.kind);
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("live-{id}"))
            .stack_size(STACK)
            .spawn(move || {
                super::server::lower_priority();
                ticket.served = true;
                let ending = {
                    let stopping = || me.hub.stop.load(Ordering::SeqCst);
                    let no_picture = || me.no_picture();
                    let viewers = || me.hub.snapshot().viewers;
                    let feed = ws::Feed {
                        lane: &ticket.lane,
                        stopping: &stopping,
                        no_picture: &no_picture,
                        viewers: &viewers,
                    };
                    match kind {
                        Kind::Fragments => ws::run(stream, &feed),
                        Kind::Jpegs => mjpeg::run(stream, &feed),
                    }
                };
                let what = match kind {
                    Kind::Fragments => "WebSocket",
                    Kind::Jpegs => "MJPEG",
                };
                match &ending {
                    Ending::Stalled => me.hub.ended(
                        id,
                        what,
                        &format!("its connection took nothing for {} s", STALL.as_secs()),
                    ),
                    Ending::Failed(e) => me.hub.ended(id, what, e),
                    Ending::Closed | Ending::Stopped => me.hub.ended(id, what, ""),
                }
                me.hub.leave(id, ending == Ending::Stalled);
            });
        match spawned {
            Ok(handle) => {
                let mut threads = match self.threads.lock() {
                    Ok(t) => t,
                    Err(p) => p.into_inner(),
                };
                let mut i = 0;
                while i < threads.len() {
                    // The hub's thread is first and stays; finished viewers are reaped.
                    if i > 0 && threads[i].is_finished() {
                        let _ = threads.swap_remove(i).join();
                    } else {
                        i += 1;
                    }
                }
                threads.push(handle);
            }
            Err(e) => warn!("live: cannot start a viewer's thread: {e}"),
        }
    }

    /// Why there is no picture now, in words for the page; `None` while pictures come
    /// (or may come any moment).
    pub(crate) fn no_picture(&self) -> Option<String> {
        let age = self.hub.picture_age();
        if age.is_some_and(|a| a < NO_PICTURE_AFTER) {
            return None;
        }
        let status = self.backend.status();
        let reason = no_picture_reason(
            status.state,
            status.recording_wanted,
            status.drive,
            status.reason.as_deref(),
        );
        match (reason, age) {
            (Some(r), _) => Some(r),
            (None, Some(a)) => Some(format!("No picture from the camera for {} s.", a.as_secs())),
            (None, None) => None,
        }
    }

    /// Stop: every viewer's socket shut down, every thread joined.
    pub(crate) fn stop(&self) {
        self.hub.stop.store(true, Ordering::SeqCst);
        self.hub.shut_down_viewers();
        let threads: Vec<_> = match self.threads.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(p) => p.into_inner().drain(..).collect(),
        };
        for t in threads {
            if t.join().is_err() {
                warn!("a live view thread panicked");
            }
        }
    }
}

/// Why the recorder passes no frames on, from its status (pure).
pub(crate) fn no_picture_reason(
    state: &str,
    recording_wanted: bool,
    drive: DriveState,
    reason: Option<&str>,
) -> Option<String> {
    match state {
        "stopped" if !recording_wanted => {
            Some("Recording is off: switch it on to see the camera.".into())
        }
        "stopped" => Some("The recorder has stopped: no picture.".into()),
        _ if drive == DriveState::Unavailable => Some(
            "The footage drive is not there: the live view comes back when recording does.".into(),
        ),
        "error" => Some(format!(
            "Recording is held up{}: the live view comes back when it writes again.",
            reason.map(|r| format!(" ({r})")).unwrap_or_default()
        )),
        _ => match reason {
            Some(r) if r.contains("camera") || r.contains("source") => {
                Some(format!("No picture: {r}"))
            }
            _ if state == "idle" => Some("No picture from the camera.".into()),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_say_what_to_do() {
        let r = |s, w, d, why| no_picture_reason(s, w, d, why);
        assert!(r("stopped", false, DriveState::Ok, None)
            .is_some_and(|m| m.contains("Recording is off")));
        assert!(r("recording", true, DriveState::Unavailable, None)
            .is_some_and(|m| m.contains("drive")));
        assert!(r(
            "idle",
            true,
            DriveState::Ok,
            Some("camera lost since 12:00:01: /dev/video0 unplugged")
        )
        .is_some_and(|m| m.contains("camera lost")));
        assert_eq!(r("recording", true, DriveState::Ok, None), None);
    }
}
