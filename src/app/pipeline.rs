//! Wiring: capture thread → bounded channel → writer thread, plus signal handling, and
//! the events role beside them (its sink into the footage core, its stills tap on the
//! source, `recording_started`/`recording_stopped` around the run).
//!
//! It owns thread start-up and shutdown order. The first SIGINT/SIGTERM asks the writer to
//! close its segment completely and the capture loop to end; a second one exits at once.
//! While the writer runs, the run is attached to the record switch (the phone page's
//! record off stops it like a signal, but as a pause). It never touches frames itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use anyhow::{Context, Result};
use crossbeam_channel::bounded;
use log::{info, warn};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::app::switch::{LiveRun, RecordSwitch};
use crate::config::Config;
use crate::disk::layout::Layout;
use crate::disk::space;
use crate::events::{EventsRole, EventsSettings, SessionEvents};
use crate::frame::BufferPool;
use crate::recorder::capture::{run_supervised, CaptureReport};
use crate::recorder::writer::{run_writer, SegmentWriter, WriterReport, WriterSettings};
use crate::source::open::{open, reopener, SourceOptions};
use crate::source::test_pattern::TestPatternOptions;
use crate::source::SourceSpec;
use crate::state::control::Control;
use crate::state::event::{EventKind, EventSink};
use crate::state::live::LiveTap;
use crate::state::status::RecorderStatus;
use crate::storage::footage::FootageSettings;
use crate::storage::keeper::{self, StorageLink};
use crate::storage::quota::QuotaSettings;
use crate::storage::recovery;
use crate::storage::requests::DirLock;

/// How a recording run ended.
#[derive(Debug)]
pub struct RunOutcome {
    pub writer: WriterReport,
    /// `None` when the capture thread was left blocked in a read after a stop.
    pub capture: Option<CaptureReport>,
    /// Whether to record again (the GPIO role stopped this run and was asked to resume).
    pub after: crate::app::AfterRun,
}

impl RunOutcome {
    /// Process exit code: 0 when the input was recorded cleanly or the run was stopped,
    /// 1 when the input was unreadable or had errors (what was recorded is still whole).
    pub fn exit_code(&self) -> i32 {
        match &self.capture {
            Some(c) if c.fatal.is_some() || c.input_errors > 0 => 1,
            _ if self.writer.write_errors > 0 && !self.writer.stopped => 1,
            _ => 0,
        }
    }
}

pub fn run(config: &Config) -> Result<RunOutcome> {
    run_with(config, None, None, &SessionEvents::new())
}

/// [`run`], the run attached to `switch` while its writer runs (the phone page's record
/// off stops it; see [`crate::app::switch`]), its writer offering frames to the live view
/// through `live_tap`, its events going through `session_events` (the session's queue,
/// live subscribers and newest still, kept across runs).
pub fn run_with(
    config: &Config,
    switch: Option<&RecordSwitch>,
    live_tap: Option<&Arc<LiveTap>>,
    session_events: &SessionEvents,
) -> Result<RunOutcome> {
    // Before anything that can take a while (opening a camera: an RTSP connect, a camera
    // process), so a SIGTERM meanwhile is a clean stop, not the default death; the
    // signals thread below takes what came in between.
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    let spec = SourceSpec::parse(&config.source).map_err(anyhow::Error::msg)?;
    let pool = BufferPool::new(4);
    let options = SourceOptions {
        default_rate: (config.fps, 1),
        fast: config.fast,
        test_pattern: TestPatternOptions {
            width: config.test_pattern.width,
            height: config.test_pattern.height,
            fps: config.test_pattern.fps,
            quality: config.test_pattern.quality,
        },
        pool: Some(pool.clone()),
        camera: config.camera.clone(),
    };
    // A camera that is not there yet is waited for (the capture loop keeps trying); any
    // other source must open now.
    let first = open(&spec, &options);
    let first = match first {
        Err(e @ crate::source::SourceError::Lost { .. }) if spec.is_camera() => {
            warn!("{e}; recording starts when the camera is there");
            Err(e)
        }
        other => Ok(other.context("cannot open the source")?),
    };
    // Hooks, MQTT, stills, the upload folder, live subscribers (src/events). The stills'
    // tap goes around the source and around each one reopened after a loss.
    let events = EventsRole::start(&events_settings(config), session_events);
    let sink = events.sink();
    let tapper = events.tapper();
    let tap = move |s: Box<dyn crate::source::Source>| match &tapper {
        Some(t) => t.tap(s),
        None => s,
    };
    let first = first.map(&tap);
    let reopen = reopener(&spec, &options)
        .map(|mut r| Box::new(move || r().map(&tap)) as crate::source::Reopen);
    let (describe, live) = match &first {
        Ok(s) => (s.describe(), s.is_live()),
        Err(_) => (crate::source::redact::redact_source(&config.source), true),
    };
    // The writer first: a footage directory it cannot use (a file in the way) is said
    // once, before the footage core looks at it.
    let writer = SegmentWriter::new(WriterSettings {
        dir: config.dir.clone(),
        segment_seconds: config.segment_seconds,
        sync_interval: std::time::Duration::from_secs_f64(config.sync_interval),
        idle_timeout: std::time::Duration::from_secs_f64(config.idle_timeout),
        require_mount: config.require_mount,
    });
    let started = writer
        .map_err(anyhow::Error::from)
        .and_then(|w| Ok((w, start_storage(config, sink.clone())?)));
    let (writer, storage) = match started {
        Ok(s) => s,
        Err(e) => {
            events.finish();
            return Err(e);
        }
    };
    let status = Arc::new(RecorderStatus::default());
    let mut writer = writer
        .with_status(status.clone())
        .with_pool(pool)
        .with_events(sink.clone());
    if let Some(tap) = live_tap {
        writer = writer.with_live(tap.clone());
    }
    if let Some((link, _)) = &storage {
        writer = writer.with_storage(Box::new(link.clone()));
    }
    info!(
        "recording {} into {} ({} s segments)",
        describe,
        config.dir.display(),
        config.segment_seconds
    );

    // A live source needs room to ride out a slow fsync; a file just waits, so a short
    // queue saves memory without losing anything.
    let queue = if live {
        config.queue_frames
    } else {
        config.queue_frames.min(4)
    };
    let (frame_tx, frame_rx) = bounded(queue);
    let (control_tx, control_rx) = bounded::<Control>(4);
    let stop = Arc::new(AtomicBool::new(false));
    // systemd notification and the GPIO role (src/service, src/gpio).
    let roles = crate::app::roles::start(config, &status, &control_tx, &stop);

    let signal_handle = signals.handle();
    {
        let stop = stop.clone();
        let control_tx = control_tx.clone();
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if stop.swap(true, Ordering::SeqCst) {
                        warn!("second signal {signal}: exiting now");
                        std::process::exit(130);
                    }
                    info!("signal {signal}: closing the segment and stopping");
                    let _ = control_tx.send(Control::Stop);
                }
            })
            .context("cannot start the signal thread")?;
    }

    let capture = {
        let stop = stop.clone();
        thread::Builder::new()
            .name("capture".into())
            .spawn(move || run_supervised(first, reopen, frame_tx, stop))
            .context("cannot start the capture thread")?
    };
    let live = switch.map(|_| LiveRun {
        status: status.clone(),
        control: control_tx.clone(),
        storage: storage.as_ref().map(|(link, _)| link.clone()),
        queue: frame_rx.clone(),
    });
    let writer = thread::Builder::new()
        .name("writer".into())
        .spawn(move || run_writer(writer, frame_rx, control_rx))
        .context("cannot start the writer thread")?;
    if let (Some(sw), Some(live)) = (switch, live) {
        sw.attach(live);
    }
    sink.emit(EventKind::RecordingStarted {
        source: config.source.clone(),
        dir: config.dir.display().to_string(),
    });

    let writer_report = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    signal_handle.close();
    drop(control_tx);
    // Record off from the phone is a pause, not the service stopping: end the roles
    // before the stop flag below is raised, so systemd is not told STOPPING=1.
    let mut roles = Some(roles);
    let record_off = switch.is_some_and(RecordSwitch::detach);
    if record_off {
        if let Some(r) = roles.take() {
            r.finish_paused();
        }
    }
    // After a stop the capture thread may be blocked in a read (a pipe, a camera): do not
    // wait for it. At the end of the input it has finished already.
    let capture_report = if writer_report.stopped {
        stop.store(true, Ordering::SeqCst);
        None
    } else {
        capture.join().ok()
    };
    if let Some(c) = &capture_report {
        if let Some(e) = &c.fatal {
            log::error!("{e}");
        }
        if c.input_errors > 0 {
            log::error!(
                "the input had {} error(s); everything readable was recorded",
                c.input_errors
            );
        }
    }
    if let Some((link, keeper)) = storage {
        link.stop();
        if keeper.join().is_err() {
            log::error!("the storage keeper thread panicked");
        }
    }
    info!(
        "done: {} segment(s), {} frame(s) recorded, {} dropped",
        writer_report.segments, writer_report.frames, writer_report.frames_dropped
    );
    let reason = match &capture_report {
        _ if writer_report.stopped => "stop",
        Some(c) if c.fatal.is_some() => "error",
        _ => "end_of_input",
    };
    sink.emit(EventKind::RecordingStopped {
        reason: reason.into(),
        segments: writer_report.segments,
        frames: writer_report.frames,
        dropped_frames: writer_report.frames_dropped,
    });
    // Every emitter is done: deliver what is queued (hooks within their timeouts).
    events.finish();
    let after = match roles {
        Some(r) => r.finish(),
        None => crate::app::AfterRun::RecordOff,
    };
    Ok(RunOutcome {
        writer: writer_report,
        capture: capture_report,
        after,
    })
}

/// Recovery of the footage directory, then the keeper thread around the footage core.
/// When the drive is not there yet (`require_mount`), the writer waits for it and the
/// keeper recovers it when it is back. Refuses to start when `dir` is not a directory, or
/// when another recorder holds it (recovering its open segment would cut it).
pub fn start_storage(
    config: &Config,
    events: EventSink,
) -> Result<Option<(StorageLink, thread::JoinHandle<()>)>> {
    let layout = Layout::new(&config.dir);
    if config.dir.exists() && !config.dir.is_dir() {
        return Err(crate::storage::error::FootageError::invalid(format!(
            "{} is not a directory",
            config.dir.display()
        ))
        .into());
    }
    let drive_ready = !config.require_mount || space::on_mounted_drive(&config.dir);
    let mut dir_lock = None;
    if drive_ready && crate::disk::durable::create_dir_all_durable(&config.dir).is_ok() {
        match DirLock::try_acquire(&layout) {
            Ok(Some(l)) => dir_lock = Some(l),
            Ok(None) => {
                return Err(crate::storage::error::FootageError::conflict(format!(
                    "another dashcam is recording into {} (it holds {})",
                    config.dir.display(),
                    layout.lock_file().display()
                ))
                .into())
            }
            Err(e) => warn!("cannot lock {}: {e}", layout.lock_file().display()),
        }
        match recovery::recover(&layout) {
            Ok(r) => info!("{}", r.summary()),
            Err(e) => warn!("recovery of {}: {e}", config.dir.display()),
        }
    }
    let settings = FootageSettings {
        events,
        ..footage_settings(config, true)
    };
    match keeper::spawn(settings, dir_lock) {
        Ok(k) => Ok(Some(k)),
        Err(e) => {
            log::error!("cannot start the storage keeper: {e}; recording without a quota");
            Ok(None)
        }
    }
}

/// The footage core's settings of a configuration; `enforce`: keep the quota by deleting
/// loop segments (the running recorder only).
pub fn footage_settings(config: &Config, enforce: bool) -> FootageSettings {
    FootageSettings {
        layout: Layout::new(&config.dir),
        quota: quota_settings(config),
        post_event: std::time::Duration::from_secs_f64(config.post_event_seconds),
        enforce,
        events: EventSink::default(),
        also_counted: also_counted(config),
    }
}

/// The folders of the events role whose files count against the footage limit.
fn also_counted(config: &Config) -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    if let Some(u) = &config.upload {
        dirs.push(u.dir.clone());
    }
    if let Some(s) = &config.stills {
        dirs.push(s.dir_in(&config.dir));
    }
    dirs
}

/// The events role's settings of a configuration.
pub fn events_settings(config: &Config) -> EventsSettings {
    EventsSettings {
        footage_dir: config.dir.clone(),
        hooks: config.hooks.clone(),
        mqtt: config.mqtt.clone(),
        stills: config.stills.clone(),
        upload: config.upload.clone(),
    }
}

/// The quota settings of a configuration.
fn quota_settings(config: &Config) -> QuotaSettings {
    QuotaSettings {
        max_size: config.max_size.as_ref().and_then(|v| match v.spec(false) {
            Ok(space::SizeSpec::Bytes(b)) => Some(b),
            _ => None,
        }),
        max_percent: config.max_percent,
        min_free: config.min_free.as_ref().and_then(|v| v.spec(true).ok()),
        locked_max_percent: config.locked_max_percent,
        locked_full: config.locked_full,
    }
}
