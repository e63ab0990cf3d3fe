//! The writer's I/O: performs one [`Step`] of the policy and says what happened.
//!
//! It owns the open segment's muxer and file, the footage core's link, the shared status,
//! the buffer pool and the hand-off to the live view (a pushed frame goes to the live view
//! instead of the pool when someone watches: [`LiveTap::offer`]). It decides nothing: each step does exactly what it names and turns
//! errors into [`Failure`]s through the one errno table ([`DriveFault::of`]). The files it
//! touches are the open segment (created, appended, finished), its metadata, and a segment
//! file it created a moment ago and could not start (removed, so no empty file is left).
//! Everything else in the footage directory is the footage core's ([`FootageLink`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local};
use log::{error, info, warn};

use super::link::FootageLink;
use super::policy::{Failure, Fill, Outcome, Publish, Step};
use crate::disk::fault::DriveFault;
use crate::disk::metadata::{self, CloseReason, SegmentMeta};
use crate::disk::naming::{self, file_name};
use crate::disk::{durable, space};
use crate::frame::{BufferPool, Frame, StreamFormat, TIMESCALE};
use crate::mux::{self, SegmentMuxer};
use crate::state::event::{DriveState, EventKind, EventSink};
use crate::state::live::LiveTap;
use crate::state::status::RecorderStatus;

/// How long the writer waits for the footage core to free space.
const MAKE_ROOM_WAIT: Duration = Duration::from_secs(3);
/// How long the writer waits for the footage core to recover a drive that came back.
const DRIVE_BACK_WAIT: Duration = Duration::from_secs(30);

struct OpenFile {
    muxer: Box<dyn SegmentMuxer>,
    path: PathBuf,
    /// (device, inode) of the file, to notice that it vanished.
    identity: Option<(u64, u64)>,
    sequence: u64,
    start_wall: SystemTime,
    start_pts: i64,
    format: Arc<StreamFormat>,
}

pub(crate) struct Shell {
    dir: PathBuf,
    require_mount: bool,
    open: Option<OpenFile>,
    pool: Option<BufferPool>,
    link: Option<Box<dyn FootageLink>>,
    status: Arc<RecorderStatus>,
    /// Where camera lost/back and the drive's changes go as events (a no-op without one).
    events: EventSink,
    live: Option<Arc<LiveTap>>,
    /// The format last noted in the live tap.
    live_format: Option<Arc<StreamFormat>>,
}

impl Shell {
    pub(crate) fn new(dir: PathBuf, require_mount: bool) -> Shell {
        Shell {
            dir,
            require_mount,
            open: None,
            pool: None,
            link: None,
            status: Arc::new(RecorderStatus::default()),
            events: EventSink::default(),
            live: None,
            live_format: None,
        }
    }

    pub(crate) fn set_pool(&mut self, pool: BufferPool) {
        if let Some(tap) = &self.live {
            tap.set_pool(pool.clone());
        }
        self.pool = Some(pool);
    }

    pub(crate) fn set_live(&mut self, tap: Arc<LiveTap>) {
        if let Some(pool) = &self.pool {
            tap.set_pool(pool.clone());
        }
        self.live = Some(tap);
    }

    pub(crate) fn set_link(&mut self, link: Box<dyn FootageLink>) {
        self.link = Some(link);
    }

    pub(crate) fn set_events(&mut self, events: EventSink) {
        self.events = events;
    }

    pub(crate) fn set_status(&mut self, status: Arc<RecorderStatus>) {
        self.status = status;
    }

    pub(crate) fn status(&self) -> &RecorderStatus {
        &self.status
    }

    pub(crate) fn link(&self) -> Option<&dyn FootageLink> {
        self.link.as_deref()
    }

    /// Perform `step`; its outcome, for the steps that have one. [`Step::Wait`],
    /// [`Step::Exit`] and [`Step::Publish`] (see [`Shell::publish`]) are the caller's and
    /// do nothing here.
    pub(crate) fn perform(&mut self, step: Step) -> Option<Outcome> {
        match step {
            Step::Open {
                sequence,
                wall,
                pts,
                format,
            } => Some(self.open(sequence, wall, pts, format)),
            Step::Push(frame) => {
                let outcome = match self.open.as_mut() {
                    Some(f) => match f.muxer.push(&frame) {
                        Ok(()) => Outcome::Pushed(fill(f.muxer.as_ref())),
                        Err(e) => Outcome::PushFailed(failure(&e, e.to_string())),
                    },
                    None => Outcome::PushFailed(no_segment()),
                };
                self.pushed(frame);
                Some(outcome)
            }
            Step::Flush { next_dts } => Some(self.flush(next_dts)),
            Step::Finish {
                reason,
                next_dts,
                dropped,
            } => Some(self.finish(reason, next_dts, dropped)),
            Step::MakeRoom { need } => {
                let freed = self
                    .link
                    .as_ref()
                    .map_or(0, |l| l.make_room(need, MAKE_ROOM_WAIT));
                Some(Outcome::RoomMade { freed })
            }
            Step::Probe => Some(Outcome::Probed(self.probe())),
            Step::DriveBack => {
                // The drive may have been swapped or cut mid-write: the footage core repairs
                // and re-indexes it first (it alone changes what is there).
                if let Some(link) = &self.link {
                    if !link.drive_back(DRIVE_BACK_WAIT) {
                        warn!("the footage core did not finish recovering the drive in time");
                    }
                }
                Some(Outcome::DriveBack {
                    next_sequence: sequence_after(&self.dir).ok(),
                })
            }
            Step::Release(frame) => {
                if let Some(pool) = &self.pool {
                    pool.give(frame.data);
                }
                None
            }
            Step::Publish | Step::Wait(_) | Step::Exit => None,
        }
    }

    /// A frame whose bytes the muxer has taken: to the live view when someone watches
    /// (the buffer itself, no copy), else its buffer back to the pool.
    fn pushed(&mut self, frame: Frame) {
        let data = match &self.live {
            Some(tap) => {
                tap.note_format(&frame.format, &mut self.live_format);
                match tap.offer(frame) {
                    Ok(()) => return,
                    Err(frame) => frame.data,
                }
            }
            None => frame.data,
        };
        if let Some(pool) = &self.pool {
            pool.give(data);
        }
    }

    fn open(
        &mut self,
        sequence: u64,
        wall: SystemTime,
        pts: i64,
        format: Arc<StreamFormat>,
    ) -> Outcome {
        if let Err(f) = self.mounted() {
            return Outcome::OpenFailed(f);
        }
        let stem = naming::segment_stem(wall, sequence);
        let path = self
            .dir
            .join(format!("{stem}.{}", format.codec.extension()));
        let muxer = match mux::create(&path, &format) {
            Ok(m) => m,
            Err(mux::MuxError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                return Outcome::NameTaken;
            }
            Err(e) => {
                if matches!(e, mux::MuxError::Io { .. }) {
                    // A half-created file (no room for the header) must not stay behind.
                    let _ = std::fs::remove_file(&path);
                }
                return Outcome::OpenFailed(failure(&e, format!("cannot start a segment: {e}")));
            }
        };
        // The new name is durable only once the directory is: no later fdatasync of the
        // file makes it so. A directory that cannot be synced takes no segment.
        if let Err(e) = durable::fsync_dir(&self.dir) {
            drop(muxer);
            let _ = std::fs::remove_file(&path);
            let message = format!(
                "cannot start a segment: fsync of {}: {e}",
                self.dir.display()
            );
            return Outcome::OpenFailed(Failure {
                fault: DriveFault::of(&e),
                message,
            });
        }
        let identity = identity_of(&path);
        if let Some(link) = &self.link {
            link.opened(&path, wall);
        }
        let name = file_name(&path);
        self.status.update(|s| s.current_segment = Some(name));
        let filled = fill(muxer.as_ref());
        self.open = Some(OpenFile {
            muxer,
            path,
            identity,
            sequence,
            start_wall: wall,
            start_pts: pts,
            format,
        });
        Outcome::Opened(filled)
    }

    fn flush(&mut self, next_dts: Option<i64>) -> Outcome {
        let Some(f) = self.open.as_mut() else {
            return Outcome::FlushFailed {
                fill: Fill::default(),
                failure: no_segment(),
            };
        };
        if let Err(e) = f.muxer.flush(next_dts) {
            return Outcome::FlushFailed {
                fill: fill(f.muxer.as_ref()),
                failure: failure(&e, e.to_string()),
            };
        }
        let filled = fill(f.muxer.as_ref());
        if let Some(link) = &self.link {
            link.set_open_bytes(filled.projected_bytes);
        }
        // Still where we created it? (a vanished directory or drive, a lazy unmount)
        let vanished =
            (f.identity.is_some() && identity_of(&f.path) != f.identity).then(|| Failure {
                fault: DriveFault::Gone,
                message: format!(
                    "{} vanished (directory removed or drive unmounted)",
                    f.path.display()
                ),
            });
        Outcome::Flushed {
            fill: filled,
            vanished,
        }
    }

    fn finish(&mut self, reason: CloseReason, next_dts: Option<i64>, dropped: u64) -> Outcome {
        let Some(f) = self.open.take() else {
            return Outcome::FinishFailed(no_segment());
        };
        self.status.update(|s| s.current_segment = None);
        let name = file_name(&f.path);
        let summary = match f.muxer.finish(next_dts) {
            Ok(s) => s,
            Err(e) => {
                // The footage core finishes it from what is durable (it owns closed files).
                if let Some(link) = &self.link {
                    link.closed(&f.path, None);
                }
                return Outcome::FinishFailed(failure(&e, format!("closing {name}: {e}")));
            }
        };
        let duration_s = summary.duration_ticks as f64 / f64::from(TIMESCALE);
        let start_local: DateTime<Local> = f.start_wall.into();
        let meta = SegmentMeta {
            name: name.clone(),
            sequence: f.sequence,
            start_wall: start_local.to_rfc3339(),
            start_unix_ms: f
                .start_wall
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            start_pts: f.start_pts,
            duration_s,
            frames: summary.frames,
            bytes: summary.bytes,
            codec: f.format.codec,
            width: f.format.width,
            height: f.format.height,
            fps: if duration_s > 0.0 {
                summary.frames as f64 / duration_s
            } else {
                0.0
            },
            dropped_frames: dropped,
            partial: reason.is_partial(),
            close_reason: reason,
        };
        let metadata_written = match metadata::write(&f.path, &meta) {
            Ok(()) => true,
            Err(e) => {
                error!("writing the metadata of {name}: {e}");
                false
            }
        };
        info!(
            "closed {name}: {} frames, {:.3} s, {} bytes{}{}",
            meta.frames,
            meta.duration_s,
            meta.bytes,
            if meta.partial {
                format!(", partial ({reason:?})")
            } else {
                String::new()
            },
            if meta.dropped_frames > 0 {
                format!(", {} dropped", meta.dropped_frames)
            } else {
                String::new()
            }
        );
        if let Some(link) = &self.link {
            link.closed(&f.path, Some(meta));
        }
        Outcome::Finished { metadata_written }
    }

    /// Whether the footage directory can take a new segment; the bytes free if so.
    fn probe(&self) -> Result<u64, Failure> {
        self.mounted()?;
        let dir = &self.dir;
        let fail = |e: std::io::Error| Failure {
            fault: DriveFault::of(&e),
            message: format!("{}: {e}", dir.display()),
        };
        check_dir(dir).map_err(|file| Failure {
            fault: DriveFault::Gone,
            message: format!("{} is not a directory", file.display()),
        })?;
        durable::create_dir_all_durable(dir).map_err(fail)?;
        // EROFS for a read-only mount, EACCES when the dashcam user may not write.
        rustix::fs::access(dir, rustix::fs::Access::WRITE_OK)
            .map_err(|e| fail(std::io::Error::from(e)))?;
        Ok(space::fs_space(dir).map_err(fail)?.avail)
    }

    /// With `require_mount`, the footage directory must be on a mounted drive.
    fn mounted(&self) -> Result<(), Failure> {
        if self.require_mount && !space::on_mounted_drive(&self.dir) {
            return Err(Failure {
                fault: DriveFault::Gone,
                message: format!(
                    "{} is not on a mounted drive (require_mount = true): not writing into the root file system",
                    self.dir.display()
                ),
            });
        }
        Ok(())
    }

    /// Copy a status update into the shared status, and say the changes of the source and
    /// the drive as events (never waits).
    pub(crate) fn publish(&self, p: Publish) {
        match &p.source_lost {
            Some(Some((at, why))) => self.events.emit(EventKind::camera_lost(*at, why)),
            Some(None) => self.events.emit(EventKind::CameraBack {}),
            None => {}
        }
        match &p.drive {
            Some(Some((DriveFault::Full, why))) => {
                self.events.drive(DriveState::Full, &self.dir, why)
            }
            Some(Some((_, why))) => self.events.drive(DriveState::Gone, &self.dir, why),
            Some(None) => self.events.drive(DriveState::Ok, &self.dir, ""),
            None => {}
        }
        self.status.update(|s| {
            s.state = p.state;
            s.frames_synced = p.frames_synced;
            s.frames_dropped = p.frames_dropped;
            s.segments_closed = p.segments_closed;
            s.last_sync = p.last_sync;
            if let Some(e) = p.error {
                s.last_error = Some(e);
            }
            if let Some(lost) = p.source_lost {
                s.source_lost = lost;
            }
        });
    }
}

/// What the muxer reports after a step.
fn fill(muxer: &dyn SegmentMuxer) -> Fill {
    Fill {
        oldest_unflushed: muxer.oldest_unflushed(),
        unflushed_ticks: muxer.unflushed_ticks(),
        projected_bytes: muxer.projected_bytes(),
    }
}

/// A muxer error as a drive fault: I/O errors through the errno table; a frame or format
/// the container refuses is [`DriveFault::Other`].
fn failure(e: &mux::MuxError, message: String) -> Failure {
    let fault = match e {
        mux::MuxError::Io { source, .. } => DriveFault::of(source),
        mux::MuxError::Invalid { .. } => DriveFault::Other,
    };
    Failure { fault, message }
}

fn no_segment() -> Failure {
    Failure {
        fault: DriveFault::Other,
        message: "no segment is open".into(),
    }
}

/// The file in the way when `dir`, or the nearest of its ancestors that exists, is not a
/// directory.
pub(crate) fn check_dir(dir: &Path) -> Result<(), &Path> {
    let mut at = Some(dir);
    while let Some(p) = at.filter(|p| !p.as_os_str().is_empty()) {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => return Err(p),
            Err(_) => at = p.parent(),
        }
    }
    Ok(())
}

/// (device, inode) of a file, `None` when it is not there.
fn identity_of(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// One past the highest sequence in the footage directory, `locked/` and `corrupt/`.
pub(crate) fn sequence_after(dir: &Path) -> std::io::Result<u64> {
    let layout = crate::disk::layout::Layout::new(dir);
    naming::next_sequence_in(&[dir, &layout.locked(), &layout.corrupt()])
}
