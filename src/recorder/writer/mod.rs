//! The writer role: cut the frame stream into segment files and make them durable.
//!
//! A segment starts at a keyframe and closes at the first keyframe at or after
//! `segment_seconds` of stream time (or on a format change, a size limit, a clock jump, an
//! idle stream, a lost source, a stop); each fragment is flushed and fdatasynced well within
//! `sync_interval` of its first frame's capture; when a segment closes its metadata is
//! written atomically. It never reads the camera. Storage trouble never stops it: see
//! [`policy`] for what it does on a full, vanished, read-only or forbidden drive.
//!
//! - [`policy`]: every decision, pure (events in, steps out), unit-tested without a disk;
//! - [`shell`]: performs the steps (muxer, files, footage core, status, buffer pool, the
//!   hand-off to the live view);
//! - [`ring`]: the frames kept in RAM while the drive cannot be written;
//! - [`link`]: the line to the footage core ([`FootageLink`]);
//! - this file: the thread that feeds the policy and runs the shell until it says exit.
//!   There is no recursion: each step is decided from the policy's state, performed, and
//!   its outcome applied before the next is decided.
//!
//! **One thread changes the footage directory's loop files at a time.** The writer creates,
//! appends and finishes *its* open segment and writes that segment's metadata (and removes a
//! file it has just created and could not start). Everything else — deleting old footage to
//! make room, moving, locking, and finishing or repairing a segment the writer could not
//! finish — is the footage core's thread, reached through [`FootageLink`]: on a full disk
//! the writer asks it for room ([`FootageLink::make_room`]); a segment it cannot finish it
//! hands over as `closed(path, None)`; on a drive that comes back it has the footage core
//! recover it ([`FootageLink::drive_back`]) before it writes there again.
//!
//! **A failed fdatasync.** On Linux a failed `fsync`/`fdatasync` reports a write-back error
//! once and may already have dropped the dirty pages it could not write: a second call can
//! succeed although the data never reached the disk (PostgreSQL's "fsyncgate", 2018;
//! moonfire-nvr abandons a recording whose fsync failed for this reason). So:
//! - a fragment counts as durable (status, `frames_synced`) only when the fdatasync that
//!   followed *its* write succeeded; the writer never calls fdatasync again on its own to
//!   "retry" a sync;
//! - the only retry is a rewrite: the fMP4 muxer keeps the fragment in RAM until it is
//!   durable and writes all of it again at the same offset before syncing again — once
//!   after a full disk was given room, and once more when the segment is finished after a
//!   failure. The AVI muxer writes frames through and refuses to extend a file after a
//!   failed write, so its segment is given up at once;
//! - a segment whose last write or sync failed is never extended: it is finished if the
//!   drive allows, else handed to the footage core (`closed(path, None)`), whose repair
//!   keeps what is readable after the last complete fragment and judges the file by what it
//!   holds, never by what the writer believed it wrote. Frames that were in the failed
//!   fragment are counted as dropped;
//! - a failed directory fsync after creating a segment fails the open (the file is
//!   removed): no later fdatasync of the file would make its name durable.

mod link;
mod policy;
mod ring;
mod shell;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver};
use log::warn;

pub use link::FootageLink;
use policy::{Event, Failure, Limits, Policy, Step};
use shell::Shell;

use crate::disk::durable;
use crate::disk::fault::DriveFault;
use crate::disk::space;
use crate::frame::{BufferPool, Captured};
use crate::state::control::Control;
use crate::state::status::{RecorderState, RecorderStatus};

#[derive(Clone, Debug)]
pub struct WriterSettings {
    pub dir: PathBuf,
    pub segment_seconds: u32,
    pub sync_interval: Duration,
    pub idle_timeout: Duration,
    /// Refuse to write unless `dir` is on a mounted drive (not the root file system).
    pub require_mount: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The footage directory, or a folder above it, is a file.
    #[error("footage directory {0}")]
    NotADirectory(String),
    #[error("footage directory {dir}: {} ({})", .fault.name(), .fault.advice())]
    Dir {
        dir: String,
        fault: DriveFault,
        #[source]
        source: std::io::Error,
    },
}

/// What the writer did over its whole run.
#[derive(Debug, Default, Clone)]
pub struct WriterReport {
    pub segments: u64,
    pub frames: u64,
    pub frames_dropped: u64,
    pub write_errors: u64,
    /// Whether the writer ended because it was told to stop.
    pub stopped: bool,
}

/// The writer: its policy and its shell.
pub struct SegmentWriter {
    policy: Policy,
    shell: Shell,
}

impl SegmentWriter {
    /// Prepare to write into `settings.dir` (created if missing); the sequence continues
    /// after the highest found there. With `require_mount` and no drive mounted there yet,
    /// the writer starts out waiting for it.
    pub fn new(settings: WriterSettings) -> Result<SegmentWriter, WriterError> {
        let dir = settings.dir.display().to_string();
        if let Err(file) = shell::check_dir(&settings.dir) {
            return Err(WriterError::NotADirectory(if file == settings.dir {
                format!("{dir} is not a directory")
            } else {
                format!("{dir}: {} is not a directory", file.display())
            }));
        }
        let dir_err = |source: std::io::Error| WriterError::Dir {
            dir: dir.clone(),
            fault: DriveFault::of(&source),
            source,
        };
        let now = Instant::now();
        let (next_sequence, stalled) =
            if settings.require_mount && !space::on_mounted_drive(&settings.dir) {
                let message = format!(
                    "{} is not on a mounted drive (require_mount = true): waiting for the drive",
                    settings.dir.display()
                );
                let failure = Failure {
                    fault: DriveFault::Gone,
                    message,
                };
                (0, Some(failure))
            } else {
                durable::create_dir_all_durable(&settings.dir).map_err(dir_err)?;
                (shell::sequence_after(&settings.dir).map_err(dir_err)?, None)
            };
        let limits = Limits {
            segment_seconds: settings.segment_seconds,
            sync_interval: settings.sync_interval,
            idle_timeout: settings.idle_timeout,
        };
        Ok(SegmentWriter {
            policy: Policy::new(limits, next_sequence, stalled, now),
            shell: Shell::new(settings.dir, settings.require_mount),
        })
    }

    /// Report to (and get room from) the footage core.
    pub fn with_storage(mut self, link: Box<dyn FootageLink>) -> SegmentWriter {
        self.shell.set_link(link);
        self
    }

    /// Give frame buffers back to `pool` once their bytes are in the container.
    pub fn with_pool(mut self, pool: BufferPool) -> SegmentWriter {
        self.shell.set_pool(pool);
        self
    }

    /// Say camera lost/back and the drive's changes as events.
    pub fn with_events(mut self, events: crate::state::event::EventSink) -> SegmentWriter {
        self.shell.set_events(events);
        self
    }

    /// Hand each pushed frame to the live view when someone watches (see
    /// [`crate::state::live`]).
    pub fn with_live(mut self, tap: Arc<crate::state::live::LiveTap>) -> SegmentWriter {
        self.shell.set_live(tap);
        self
    }

    /// Publish progress into `status` (shared with systemd notify, LED, web page).
    pub fn with_status(mut self, status: Arc<RecorderStatus>) -> SegmentWriter {
        self.shell.set_status(status);
        self
    }

    /// Event lock now: handed to the footage core.
    fn lock_now(&self) {
        match self.shell.link() {
            Some(link) => link.event_lock(),
            None => warn!("event lock requested but no storage keeper runs"),
        }
    }

    /// Feed one input to the policy and perform what it decides until it waits. Returns
    /// the deadline to wake up at, or `None` when the writer is done.
    fn handle(&mut self, event: Event) -> Option<Option<Instant>> {
        let mut now = Instant::now();
        if let Event::Frame(_) = event {
            // An atomic store, never the status lock: the health judgement's "frames
            // arrive", per frame.
            self.shell.status().frame_arrived(now);
        }
        self.policy.apply(event, now);
        loop {
            match self.policy.next_step(now) {
                Step::Wait(deadline) => return Some(deadline),
                Step::Exit => return None,
                Step::Publish => self.shell.publish(self.policy.take_publish()),
                step => {
                    // Pushing a frame, giving a buffer back and publishing take no time;
                    // anything else may wait for the disk or the footage core.
                    let quick = matches!(step, Step::Push(_) | Step::Release(_));
                    let outcome = self.shell.perform(step);
                    if !quick {
                        now = Instant::now();
                    }
                    if let Some(outcome) = outcome {
                        self.policy.apply(Event::Done(outcome), now);
                    }
                }
            }
        }
    }

    fn captured(&mut self, msg: Captured) -> Option<Option<Instant>> {
        self.handle(match msg {
            Captured::Frame(frame) => Event::Frame(frame),
            Captured::SourceLost { at, why } => Event::SourceLost { at, why },
            Captured::SourceBack => Event::SourceBack,
        })
    }
}

/// The writer thread: frames in until the input ends or a stop is requested.
pub fn run_writer(
    mut writer: SegmentWriter,
    frames: Receiver<Captured>,
    control: Receiver<Control>,
) -> WriterReport {
    let mut deadline = writer.handle(Event::Tick).flatten();
    loop {
        let timeout = deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        let next = select! {
            recv(frames) -> msg => match msg {
                Ok(msg) => writer.captured(msg),
                Err(_) => writer.handle(Event::EndOfInput),
            },
            recv(control) -> msg => match msg {
                Ok(Control::LockNow) => {
                    writer.lock_now();
                    Some(deadline)
                }
                Ok(Control::Stop) | Err(_) => {
                    // What is already queued was captured: keep it.
                    while let Ok(msg) = frames.try_recv() {
                        writer.captured(msg);
                    }
                    writer.policy.set_stopped();
                    writer.handle(Event::Stop)
                }
            },
            default(timeout) => writer.handle(Event::Tick),
        };
        match next {
            Some(d) => deadline = d,
            None => break,
        }
    }
    writer
        .shell
        .status()
        .update(|s| s.state = RecorderState::Stopped);
    writer.policy.report().clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::metadata::{CloseReason, SegmentMeta};
    use crate::frame::{Codec, Frame, StreamFormat};
    use std::time::SystemTime;

    fn mjpeg_frame(format: &Arc<StreamFormat>, i: i64, wall: SystemTime, t0: Instant) -> Frame {
        let mut jpeg = vec![0xff, 0xd8];
        jpeg.extend(std::iter::repeat_n(i as u8, 64));
        jpeg.extend_from_slice(&[0xff, 0xd9]);
        Frame {
            data: jpeg,
            keyframe: true,
            pts: i * 3000,
            dts: i * 3000,
            captured: t0 + Duration::from_millis(i as u64 * 33),
            wall,
            format: format.clone(),
            dropped_before: 0,
        }
    }

    fn settings(dir: &std::path::Path) -> WriterSettings {
        WriterSettings {
            dir: dir.to_path_buf(),
            segment_seconds: 60,
            sync_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            require_mount: false,
        }
    }

    fn format() -> Arc<StreamFormat> {
        Arc::new(StreamFormat {
            codec: Codec::Mjpeg,
            width: 64,
            height: 48,
            frame_rate: Some((30, 1)),
            sps: Vec::new(),
            pps: Vec::new(),
        })
    }

    /// The metadata of the segments in `dir`, in sequence order.
    fn metas(dir: &std::path::Path) -> Vec<SegmentMeta> {
        let mut metas: Vec<SegmentMeta> = std::fs::read_dir(dir)
            .expect("read_dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "avi" || x == "mp4"))
            .filter_map(|p| crate::disk::metadata::read(&p).expect("metadata"))
            .collect();
        metas.sort_by_key(|m| m.sequence);
        metas
    }

    /// NTP sets the clock an hour ahead mid-segment: the segment ends at the next keyframe
    /// and the next one starts with the new time; nothing is lost. (Policy and shell on a
    /// real directory.)
    #[test]
    fn a_clock_jump_starts_a_new_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = SegmentWriter::new(settings(dir.path())).expect("writer");
        let format = format();
        let t0 = Instant::now();
        let wall0 = SystemTime::now();
        for i in 0..40i64 {
            let mut wall = wall0 + Duration::from_millis(i as u64 * 33);
            if i >= 20 {
                wall += Duration::from_secs(3600);
            }
            w.handle(Event::Frame(mjpeg_frame(&format, i, wall, t0)));
        }
        assert_eq!(w.handle(Event::EndOfInput), None, "the writer ends");
        let metas = metas(dir.path());
        assert_eq!(metas.len(), 2, "{metas:?}");
        assert_eq!(metas[0].close_reason, CloseReason::ClockJump);
        assert_eq!(metas[1].close_reason, CloseReason::EndOfInput);
        assert_eq!(metas[0].frames + metas[1].frames, 40);
        assert!(metas[1].start_unix_ms - metas[0].start_unix_ms >= 3_600_000);
    }

    /// `--dir F` where F is a file: one clear message, no errno text repeated.
    #[test]
    fn a_file_in_the_way_is_not_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("F");
        std::fs::write(&file, b"x").expect("file");
        let e = match SegmentWriter::new(settings(&file)) {
            Err(e) => e,
            Ok(_) => panic!("a file accepted as the footage directory"),
        };
        let text = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(
            text,
            format!("footage directory {} is not a directory", file.display())
        );
        // Below a file: the file is named.
        let sub = file.join("sub");
        let e = match SegmentWriter::new(settings(&sub)) {
            Err(e) => e,
            Ok(_) => panic!("a path below a file accepted"),
        };
        let text = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(
            text,
            format!(
                "footage directory {}: {} is not a directory",
                sub.display(),
                file.display()
            )
        );
        // Any other error: what it means, then the errno, once.
        let e = WriterError::Dir {
            dir: "x".into(),
            fault: DriveFault::ReadOnly,
            source: std::io::Error::from_raw_os_error(30),
        };
        let text = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(text.matches("os error").count(), 1, "{text}");
        assert!(
            text.contains("read-only") && text.contains("remount"),
            "{text}"
        );
    }

    /// A read-only footage directory (a real read-only mount; needs root, else skipped):
    /// the writer says it is read-only and what to do, keeps the frames in RAM, probes
    /// without retrying the footage core's recovery every time, and never calls it gone.
    #[test]
    fn a_read_only_directory_is_reported_as_read_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mnt = dir.path().join("ro");
        std::fs::create_dir(&mnt).expect("mount point");
        let Some(_mount) = ReadOnlyMount::new(&mnt) else {
            eprintln!("skipped: cannot mount a read-only tmpfs here (not root?)");
            return;
        };
        let status = Arc::new(RecorderStatus::default());
        let mut w = SegmentWriter::new(settings(&mnt))
            .expect("writer")
            .with_status(status.clone());
        let format = format();
        let t0 = Instant::now();
        let wall = SystemTime::now();
        for i in 0..5 {
            w.handle(Event::Frame(mjpeg_frame(&format, i, wall, t0)));
        }
        let s = status.snapshot();
        assert_eq!(s.state, RecorderState::Error);
        let e = s.last_error.expect("an error in the status");
        assert!(e.contains("read-only"), "{e}");
        assert!(e.contains("remount"), "{e}");
        assert!(!e.contains("gone") && !e.contains("unavailable"), "{e}");
        // Stopping while read-only: one last probe, the frames in RAM are counted as lost.
        assert_eq!(w.handle(Event::Stop), None);
        assert_eq!(w.policy.report().frames_dropped, 5);
        assert_eq!(w.policy.report().segments, 0);
        let probe = w.shell.perform(Step::Probe);
        match probe {
            Some(policy::Outcome::Probed(Err(f))) => {
                assert_eq!(f.fault, DriveFault::ReadOnly, "{f:?}")
            }
            other => panic!("probe of a read-only mount: {other:?}"),
        }
    }

    /// A tmpfs mounted read-only, unmounted on drop.
    struct ReadOnlyMount(std::ffi::CString);

    impl ReadOnlyMount {
        fn new(at: &std::path::Path) -> Option<ReadOnlyMount> {
            use std::os::unix::ffi::OsStrExt;
            let target = std::ffi::CString::new(at.as_os_str().as_bytes()).ok()?;
            let fstype = c"tmpfs";
            // SAFETY: valid NUL-terminated strings; a null data pointer is allowed.
            let rc = unsafe {
                libc::mount(
                    fstype.as_ptr(),
                    target.as_ptr(),
                    fstype.as_ptr(),
                    libc::MS_RDONLY,
                    std::ptr::null(),
                )
            };
            (rc == 0).then_some(ReadOnlyMount(target))
        }
    }

    impl Drop for ReadOnlyMount {
        fn drop(&mut self) {
            // SAFETY: the path we mounted.
            unsafe {
                libc::umount2(self.0.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}
