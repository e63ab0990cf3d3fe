//! The writer role: cut the frame stream into segment files and make them durable.
//!
//! [`SegmentWriter`] owns the open segment and every decision about it: a segment starts at
//! a keyframe, closes at the first keyframe at or after `segment_seconds` of stream time
//! (or on a format change, a size limit, an idle stream, a stop), and each fragment is
//! flushed and fdatasynced well within `sync_interval` of its first frame's capture. When
//! a segment closes its metadata is written atomically. It never reads the camera and
//! never deletes footage.
//!
//! Storage trouble never stops it: on a full disk (ENOSPC) it asks the storage keeper
//! ([`StorageLink::make_room`]) to delete the oldest loop segments and retries the same
//! fragment; when nothing can go, or the drive is gone (EIO, directory or file vanished,
//! not mounted with `require_mount`), it closes what it can (the segment stays valid: cut
//! after its last durable fragment, repaired when possible), keeps the newest frames in a
//! bounded RAM buffer ([`RING_MAX_BYTES`], [`RING_MAX_AGE`]; older ones are counted as
//! dropped), retries every [`RETRY_EVERY`] and resumes in a new segment. A wall-clock jump
//! of more than [`CLOCK_JUMP`] starts a new segment at the next keyframe.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local};
use crossbeam_channel::{select, Receiver};
use log::{error, info, warn};

use crate::disk::metadata::{self, CloseReason, SegmentMeta};
use crate::disk::naming::file_name;
use crate::disk::{durable, naming, space};
use crate::frame::{BufferPool, Captured, Codec, Frame, StreamFormat, TIMESCALE};
use crate::mux::{self, avi::AVI_MAX_BYTES, SegmentMuxer};
use crate::state::control::Control;
use crate::state::status::{RecorderState, RecorderStatus};

/// Largest MP4 segment: stay under FAT32's 4 GiB − 1 file size.
pub const MP4_MAX_BYTES: u64 = (4 << 30) - 1;
/// Room kept below a size limit for the rest of a GOP and the container's tail.
const SIZE_MARGIN: u64 = 64 << 20;
/// Share of `sync_interval` a fragment may span, leaving time for the write and fdatasync.
const FRAGMENT_SHARE: f64 = 0.85;
/// RAM kept for frames while the drive is full or gone.
pub const RING_MAX_BYTES: usize = 24 << 20;
/// Newest stretch of video kept in RAM while the drive is full or gone.
pub const RING_MAX_AGE: Duration = Duration::from_secs(10);
/// How often a stalled writer checks whether it can write again.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);
/// A wall clock that moves this much against the monotonic clock has jumped.
pub const CLOCK_JUMP: Duration = Duration::from_secs(5);
/// Free space needed to resume after a full disk.
const MIN_RESUME_FREE: u64 = 4 << 20;
/// How long the writer waits for the keeper to free space.
const MAKE_ROOM_WAIT: Duration = Duration::from_secs(3);
/// How long the writer waits for the footage core to recover a drive that came back.
const DRIVE_BACK_WAIT: Duration = Duration::from_secs(30);

/// The writer's line to the footage core above it (quota, locks, recovery), implemented
/// there and connected by the composition root. Every call but [`FootageLink::make_room`]
/// and [`FootageLink::drive_back`] returns at once.
pub trait FootageLink: Send {
    /// A segment file was created (it is open and growing).
    fn opened(&self, path: &Path, start: SystemTime);
    /// The open segment was closed (`meta` is `None` when it could not be finished).
    fn closed(&self, path: &Path, meta: Option<SegmentMeta>);
    /// Bytes of the open segment on disk so far (cheap; called per fragment).
    fn set_open_bytes(&self, bytes: u64);
    /// The disk is full: delete the oldest loop segments, at least `need` bytes when
    /// possible. Waits at most `timeout`; returns the bytes freed.
    fn make_room(&self, need: u64, timeout: Duration) -> u64;
    /// The drive is back after it was gone: repair what a cut left and re-index. Waits at
    /// most `timeout`; true when done.
    fn drive_back(&self, timeout: Duration) -> bool;
    /// Event lock now (button, web page).
    fn event_lock(&self);
}

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
    #[error("footage directory {dir}: {source}")]
    Dir {
        dir: String,
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

/// Why writing stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trouble {
    /// ENOSPC / EDQUOT.
    Full,
    /// EIO, vanished directory or file, not mounted, read-only.
    Gone,
}

/// Frames kept in RAM while the drive cannot be written.
struct Stall {
    kind: Trouble,
    since: Instant,
    next_try: Instant,
    ring: VecDeque<Frame>,
    ring_bytes: usize,
}

/// Why a segment could not be opened.
enum OpenError {
    Storage(Trouble, String),
    Other(String),
}

struct OpenSegment {
    muxer: Box<dyn SegmentMuxer>,
    path: PathBuf,
    /// (device, inode) of the file, to notice that it vanished.
    identity: Option<(u64, u64)>,
    /// Monotonic capture instant of the first frame (for clock jumps).
    start_captured: Instant,
    clock_jumped: bool,
    sequence: u64,
    format: Arc<StreamFormat>,
    start_wall: SystemTime,
    start_pts: i64,
    first_dts: i64,
    frames: u64,
    dropped: u64,
    size_limit: u64,
}

pub struct SegmentWriter {
    settings: WriterSettings,
    segment_ticks: i64,
    fragment_budget: Duration,
    next_sequence: u64,
    open: Option<OpenSegment>,
    /// Frames lost since the last segment was opened, charged to the next one.
    pending_dropped: u64,
    last_frame_at: Option<Instant>,
    waiting_for_keyframe: bool,
    report: WriterReport,
    status: Arc<RecorderStatus>,
    /// Frames pushed into the open segment since its last successful flush.
    unsynced_frames: u64,
    /// Where frame buffers go back to the capture side once written.
    pool: Option<BufferPool>,
    /// The footage core (quota, locks, recovery); `None` when running without one.
    storage: Option<Box<dyn FootageLink>>,
    stall: Option<Stall>,
}

impl SegmentWriter {
    /// Prepare to write into `settings.dir` (created if missing); the sequence continues
    /// after the highest found there.
    pub fn new(settings: WriterSettings) -> Result<SegmentWriter, WriterError> {
        let dir_err = |source| WriterError::Dir {
            dir: settings.dir.display().to_string(),
            source,
        };
        let mut stall = None;
        let next_sequence = if settings.require_mount && !space::on_mounted_drive(&settings.dir) {
            warn!(
                "{} is not on a mounted drive (require_mount = true): waiting for the drive",
                settings.dir.display()
            );
            let now = Instant::now();
            stall = Some(Stall {
                kind: Trouble::Gone,
                since: now,
                next_try: now + RETRY_EVERY,
                ring: VecDeque::new(),
                ring_bytes: 0,
            });
            0
        } else {
            durable::create_dir_all_durable(&settings.dir).map_err(dir_err)?;
            sequence_after(&settings.dir).map_err(dir_err)?
        };
        Ok(SegmentWriter {
            segment_ticks: i64::from(settings.segment_seconds) * i64::from(TIMESCALE),
            fragment_budget: settings.sync_interval.mul_f64(FRAGMENT_SHARE),
            settings,
            next_sequence,
            open: None,
            pending_dropped: 0,
            last_frame_at: None,
            waiting_for_keyframe: false,
            report: WriterReport::default(),
            status: Arc::new(RecorderStatus::default()),
            unsynced_frames: 0,
            pool: None,
            storage: None,
            stall,
        })
    }

    /// Report to (and get room from) the storage keeper.
    pub fn with_storage(mut self, link: Box<dyn FootageLink>) -> SegmentWriter {
        self.storage = Some(link);
        self
    }

    /// Event lock now: handed to the storage keeper.
    pub fn lock_now(&self) {
        match &self.storage {
            Some(link) => link.event_lock(),
            None => warn!("event lock requested but no storage keeper runs"),
        }
    }

    /// The end: frames still waiting in RAM for the drive are lost; count and say so.
    fn drop_ring(&mut self, why: &str) {
        if let Some(stall) = self.stall.take() {
            let n = stall.ring.len() as u64;
            if n > 0 {
                error!("{why} while the drive is unavailable: {n} frame(s) in RAM are lost");
                self.report.frames_dropped += n;
            }
        }
    }

    /// Whether the writer is waiting for the drive (full or gone).
    pub fn stalled(&self) -> bool {
        self.stall.is_some()
    }

    /// Give frame buffers back to `pool` once their bytes are in the container.
    pub fn with_pool(mut self, pool: BufferPool) -> SegmentWriter {
        self.pool = Some(pool);
        self
    }

    /// Publish progress into `status` (shared with systemd notify, LED, web page).
    pub fn with_status(mut self, status: Arc<RecorderStatus>) -> SegmentWriter {
        self.status = status;
        self
    }

    /// The open segment's buffered frames reached the disk.
    fn synced(&mut self) {
        let n = std::mem::take(&mut self.unsynced_frames);
        let dropped = self.report.frames_dropped;
        self.status.update(|s| {
            s.frames_synced += n;
            s.frames_dropped = dropped;
            s.last_sync = Some(Instant::now());
            s.state = RecorderState::Recording;
        });
    }

    fn error_status(&self, message: String) {
        self.status.update(|s| {
            s.state = RecorderState::Error;
            s.last_error = Some(message);
        });
    }

    /// Record one frame.
    pub fn write(&mut self, mut frame: Frame) {
        let now = Instant::now();
        self.last_frame_at = Some(now);
        self.status.update(|s| s.last_frame = Some(now));
        self.report.frames_dropped += u64::from(frame.dropped_before);
        match self.open.as_mut() {
            Some(seg) => seg.dropped += u64::from(frame.dropped_before),
            None => self.pending_dropped += u64::from(frame.dropped_before),
        }
        frame.dropped_before = 0;
        if self.stall.is_some() {
            self.buffer(frame);
            return;
        }
        self.note_clock(&frame);

        if let Some(reason) = self.cut_reason(&frame) {
            self.close(reason, Some(frame.dts));
            if self.stall.is_some() {
                self.buffer(frame);
                return;
            }
        }
        if self.open.is_none() {
            if !frame.keyframe {
                if !self.waiting_for_keyframe {
                    warn!("waiting for a keyframe to start a segment");
                    self.waiting_for_keyframe = true;
                }
                self.pending_dropped += 1;
                self.report.frames_dropped += 1;
                return;
            }
            self.waiting_for_keyframe = false;
            if let Err(e) = self.open_segment(&frame) {
                match e {
                    OpenError::Storage(kind, msg) => {
                        error!("{msg}");
                        self.report.write_errors += 1;
                        self.enter_stall(kind, msg);
                        self.buffer(frame);
                    }
                    OpenError::Other(msg) => {
                        error!("{msg}; frame dropped");
                        self.error_status(msg);
                        self.report.write_errors += 1;
                        self.pending_dropped += 1;
                        self.report.frames_dropped += 1;
                    }
                }
                return;
            }
        }
        let Some(seg) = self.open.as_mut() else {
            return;
        };
        // End the fragment before this frame if it would make it too long, in stream time
        // (fast input) or in capture time (real time).
        if let Some(oldest) = seg.muxer.oldest_unflushed() {
            let frame_ticks = seg.format.frame_ticks();
            let budget_ticks = (self.fragment_budget.as_secs_f64() * f64::from(TIMESCALE)) as i64;
            let media_full = seg.muxer.unflushed_ticks() + frame_ticks > budget_ticks;
            let wall_full =
                frame.captured.saturating_duration_since(oldest) >= self.fragment_budget;
            if media_full || wall_full {
                let flushed = seg.muxer.flush(Some(frame.dts));
                let ok = match flushed {
                    Ok(()) => true,
                    Err(e) => self.flush_failed(e, Some(frame.dts)),
                };
                if ok {
                    self.after_flush();
                }
                if self.stall.is_some() {
                    self.buffer(frame);
                    return;
                }
            }
        }
        let Some(seg) = self.open.as_mut() else {
            return;
        };
        let pushed = seg.muxer.push(&frame);
        if let Some(pool) = &self.pool {
            pool.give(frame.data);
        }
        if let Err(e) = pushed {
            match trouble(&e) {
                Some(kind) => self.stall_segment(kind, e.to_string()),
                None => self.fail_segment(e),
            }
            return;
        }
        seg.frames += 1;
        self.report.frames += 1;
        self.unsynced_frames += 1;
    }

    /// When the writer must act next without a new frame: flush deadline or idle timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        if let Some(stall) = &self.stall {
            return Some(stall.next_try);
        }
        let seg = self.open.as_ref()?;
        let idle = self.last_frame_at.map(|t| t + self.settings.idle_timeout);
        let flush = seg
            .muxer
            .oldest_unflushed()
            .map(|t| t + self.fragment_budget);
        match (idle, flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Act on deadlines that have passed.
    pub fn tick(&mut self, now: Instant) {
        if self.stall.as_ref().is_some_and(|s| now >= s.next_try) {
            self.try_resume();
            return;
        }
        let Some(seg) = self.open.as_mut() else {
            return;
        };
        if self
            .last_frame_at
            .is_some_and(|t| now >= t + self.settings.idle_timeout)
        {
            warn!(
                "no frame for {:?}: closing the segment",
                self.settings.idle_timeout
            );
            self.close(CloseReason::Idle, None);
            self.status.update(|s| s.state = RecorderState::Idle);
            return;
        }
        if seg
            .muxer
            .oldest_unflushed()
            .is_some_and(|t| now >= t + self.fragment_budget)
        {
            let ok = match seg.muxer.flush(None) {
                Ok(()) => true,
                Err(e) => self.flush_failed(e, None),
            };
            if ok {
                self.after_flush();
            }
        }
    }

    /// Close the open segment (if any) and write its metadata.
    pub fn close(&mut self, reason: CloseReason, next_dts: Option<i64>) {
        // Flush the last fragment first, with the full-disk handling of any flush (the
        // muxer is consumed by finish and cannot retry).
        if reason != CloseReason::Error {
            if let Some(seg) = self.open.as_mut() {
                let flushed = seg.muxer.flush(next_dts);
                let ok = match flushed {
                    Ok(()) => true,
                    Err(e) => self.flush_failed(e, next_dts),
                };
                if ok {
                    self.synced();
                }
            }
        }
        let Some(seg) = self.open.take() else {
            return;
        };
        let name = file_name(&seg.path);
        let summary = match seg.muxer.finish(next_dts) {
            Ok(s) => s,
            Err(e) => {
                error!("closing {name}: {e}");
                self.report.write_errors += 1;
                // The frames since the last durable fragment are lost with the muxer.
                let lost = std::mem::take(&mut self.unsynced_frames);
                self.report.frames_dropped += lost;
                self.pending_dropped += lost;
                self.status.update(|s| s.current_segment = None);
                self.error_status(format!("closing {name}: {e}"));
                // The footage core finishes it from what is durable (it owns closed files).
                if let Some(link) = &self.storage {
                    link.closed(&seg.path, None);
                }
                return;
            }
        };
        self.synced();
        self.status.update(|s| {
            s.segments_closed += 1;
            s.current_segment = None;
        });
        let duration_s = summary.duration_ticks as f64 / f64::from(TIMESCALE);
        let start_local: DateTime<Local> = seg.start_wall.into();
        let meta = SegmentMeta {
            name: name.clone(),
            sequence: seg.sequence,
            start_wall: start_local.to_rfc3339(),
            start_unix_ms: seg
                .start_wall
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            start_pts: seg.start_pts,
            duration_s,
            frames: summary.frames,
            bytes: summary.bytes,
            codec: seg.format.codec,
            width: seg.format.width,
            height: seg.format.height,
            fps: if duration_s > 0.0 {
                summary.frames as f64 / duration_s
            } else {
                0.0
            },
            dropped_frames: seg.dropped,
            partial: reason.is_partial(),
            close_reason: reason,
        };
        if let Err(e) = metadata::write(&seg.path, &meta) {
            error!("writing the metadata of {name}: {e}");
            self.report.write_errors += 1;
        }
        if let Some(link) = &self.storage {
            link.closed(&seg.path, Some(meta.clone()));
        }
        self.report.segments += 1;
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
    }

    fn cut_reason(&self, frame: &Frame) -> Option<CloseReason> {
        let seg = self.open.as_ref()?;
        if !Arc::ptr_eq(&seg.format, &frame.format) && *seg.format != *frame.format {
            return Some(CloseReason::FormatChange);
        }
        if !frame.keyframe {
            return None;
        }
        if seg.clock_jumped {
            return Some(CloseReason::ClockJump);
        }
        if frame.dts - seg.first_dts >= self.segment_ticks {
            return Some(CloseReason::Duration);
        }
        if seg.muxer.projected_bytes() + frame.data.len() as u64 > seg.size_limit {
            return Some(CloseReason::SizeLimit);
        }
        None
    }

    fn open_segment(&mut self, frame: &Frame) -> Result<(), OpenError> {
        let dir = self.settings.dir.clone();
        if self.settings.require_mount && !space::on_mounted_drive(&dir) {
            return Err(OpenError::Storage(
                Trouble::Gone,
                format!(
                    "{} is not on a mounted drive (require_mount = true): not writing into the root file system",
                    dir.display()
                ),
            ));
        }
        let ext = frame.format.codec.extension();
        let mut attempts = 0;
        let mut made_room = false;
        let (muxer, path, sequence) = loop {
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            let stem = naming::segment_stem(frame.wall, sequence);
            let path = dir.join(format!("{stem}.{ext}"));
            match mux::create(&path, &frame.format) {
                Ok(m) => break (m, path, sequence),
                Err(mux::MuxError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists && attempts < 16 =>
                {
                    attempts += 1;
                }
                Err(e) => {
                    let kind = trouble(&e);
                    // A half-created file (no room for the header) must not stay behind.
                    if kind.is_some() {
                        let _ = std::fs::remove_file(&path);
                    }
                    if kind == Some(Trouble::Full) && !made_room && self.make_room() {
                        made_room = true;
                        continue;
                    }
                    let msg = format!("cannot start a segment: {e}");
                    return Err(match kind {
                        Some(k) => OpenError::Storage(k, msg),
                        None => OpenError::Other(msg),
                    });
                }
            }
        };
        if let Err(e) = durable::fsync_dir(&dir) {
            warn!("fsync of {}: {e}", dir.display());
        }
        let size_limit = match frame.format.codec {
            Codec::H264 => MP4_MAX_BYTES,
            Codec::Mjpeg => AVI_MAX_BYTES,
        }
        .saturating_sub(SIZE_MARGIN);
        let identity = identity_of(&path);
        if let Some(link) = &self.storage {
            link.opened(&path, frame.wall);
        }
        self.open = Some(OpenSegment {
            muxer,
            path,
            identity,
            start_captured: frame.captured,
            clock_jumped: false,
            sequence,
            format: frame.format.clone(),
            start_wall: frame.wall,
            start_pts: frame.pts,
            first_dts: frame.dts,
            frames: 0,
            dropped: std::mem::take(&mut self.pending_dropped),
            size_limit,
        });
        let name = self.open.as_ref().map(|seg| file_name(&seg.path));
        self.status.update(|s| s.current_segment = name);
        Ok(())
    }

    /// A write failed: close what can be closed, count, and start afresh at the next keyframe.
    fn fail_segment(&mut self, e: mux::MuxError) {
        error!("{e}");
        self.error_status(e.to_string());
        self.report.write_errors += 1;
        self.close(CloseReason::Error, None);
    }

    /// A fragment reached the disk: status, the keeper's byte count, and a check that the
    /// file is still where we think (a vanished directory or drive, a lazy unmount).
    fn after_flush(&mut self) {
        self.synced();
        let Some(seg) = self.open.as_ref() else {
            return;
        };
        if let Some(link) = &self.storage {
            link.set_open_bytes(seg.muxer.projected_bytes());
        }
        if seg.identity.is_some() && identity_of(&seg.path) != seg.identity {
            let msg = format!(
                "{} vanished (directory removed or drive unmounted)",
                seg.path.display()
            );
            self.stall_segment(Trouble::Gone, msg);
        }
    }

    /// Ask the keeper to delete the oldest loop segments; true when something was freed.
    fn make_room(&self) -> bool {
        let Some(link) = &self.storage else {
            return false;
        };
        let need = self.open.as_ref().map_or(MIN_RESUME_FREE, |s| {
            s.muxer.projected_bytes().max(MIN_RESUME_FREE)
        });
        link.make_room(need, MAKE_ROOM_WAIT) > 0
    }

    /// A flush failed. On a full disk, make room and retry the same fragment. Returns true
    /// when the fragment is on disk after all; otherwise the segment is closed and the
    /// writer is stalled or starts afresh.
    fn flush_failed(&mut self, e: mux::MuxError, next_dts: Option<i64>) -> bool {
        match trouble(&e) {
            Some(Trouble::Full) => {
                warn!("disk full: {e}; deleting the oldest loop segments");
                if self.make_room() {
                    if let Some(seg) = self.open.as_mut() {
                        match seg.muxer.flush(next_dts) {
                            Ok(()) => return true,
                            Err(e2) => {
                                let kind = trouble(&e2).unwrap_or(Trouble::Full);
                                self.stall_segment(kind, e2.to_string());
                                return false;
                            }
                        }
                    }
                }
                self.stall_segment(Trouble::Full, format!("{e}; nothing left to delete"));
                false
            }
            Some(kind) => {
                self.stall_segment(kind, e.to_string());
                false
            }
            None => {
                self.fail_segment(e);
                false
            }
        }
    }

    /// Close the open segment as well as the drive allows and wait for the drive.
    fn stall_segment(&mut self, kind: Trouble, msg: String) {
        error!("{msg}");
        self.report.write_errors += 1;
        self.close(CloseReason::Error, None);
        self.enter_stall(kind, msg);
    }

    fn enter_stall(&mut self, kind: Trouble, msg: String) {
        self.error_status(msg);
        if self.stall.is_none() {
            let now = Instant::now();
            warn!(
                "{}: keeping the newest frames in RAM (at most {} s, {} MiB) and retrying every {} s",
                match kind {
                    Trouble::Full => "disk full",
                    Trouble::Gone => "drive unavailable",
                },
                RING_MAX_AGE.as_secs(),
                RING_MAX_BYTES >> 20,
                RETRY_EVERY.as_secs()
            );
            self.stall = Some(Stall {
                kind,
                since: now,
                next_try: now + RETRY_EVERY,
                ring: VecDeque::new(),
                ring_bytes: 0,
            });
        }
    }

    /// Keep a frame in the RAM buffer while stalled; the oldest GOPs make way (counted as
    /// dropped). A buffer always starts at a keyframe.
    fn buffer(&mut self, frame: Frame) {
        let Some(stall) = self.stall.as_mut() else {
            return;
        };
        let mut dropped = 0u64;
        if stall.ring.is_empty() && !frame.keyframe {
            dropped += 1;
            if let Some(pool) = &self.pool {
                pool.give(frame.data);
            }
        } else {
            stall.ring_bytes += frame.data.len();
            stall.ring.push_back(frame);
        }
        let too_old = |r: &VecDeque<Frame>| match (r.front(), r.back()) {
            (Some(a), Some(b)) => b.captured.saturating_duration_since(a.captured) > RING_MAX_AGE,
            _ => false,
        };
        while stall.ring_bytes > RING_MAX_BYTES || too_old(&stall.ring) {
            // Drop the oldest frame and everything up to the next keyframe.
            let mut first = true;
            while let Some(f) = stall.ring.front() {
                if !first && f.keyframe {
                    break;
                }
                first = false;
                if let Some(f) = stall.ring.pop_front() {
                    stall.ring_bytes = stall.ring_bytes.saturating_sub(f.data.len());
                    dropped += 1;
                    if let Some(pool) = &self.pool {
                        pool.give(f.data);
                    }
                }
            }
        }
        if dropped > 0 {
            self.pending_dropped += dropped;
            self.report.frames_dropped += dropped;
            let total = self.report.frames_dropped;
            self.status.update(|s| s.frames_dropped = total);
        }
    }

    /// Stalled: can the drive be written again? Then write the buffered frames.
    fn try_resume(&mut self) {
        let Some(kind) = self.stall.as_ref().map(|s| s.kind) else {
            return;
        };
        if let Err(why) = self.drive_ready(kind) {
            log::debug!("still waiting: {why}");
            if let Some(s) = self.stall.as_mut() {
                s.next_try = Instant::now() + RETRY_EVERY;
            }
            return;
        }
        let Some(stall) = self.stall.take() else {
            return;
        };
        if kind == Trouble::Gone {
            // The drive may have been swapped or cut mid-write: the footage core repairs and
            // re-indexes it first (it alone changes the footage directory).
            if let Some(link) = &self.storage {
                if !link.drive_back(DRIVE_BACK_WAIT) {
                    warn!("the footage core did not finish recovering the drive in time");
                }
            }
            if let Ok(n) = sequence_after(&self.settings.dir) {
                self.next_sequence = self.next_sequence.max(n);
            }
        }
        info!(
            "writing again after {:.1} s: {} frame(s) from RAM",
            stall.since.elapsed().as_secs_f64(),
            stall.ring.len()
        );
        for frame in stall.ring {
            self.write(frame);
        }
    }

    /// Whether the footage directory can take a new segment.
    fn drive_ready(&self, kind: Trouble) -> Result<(), String> {
        let dir = &self.settings.dir;
        if self.settings.require_mount && !space::on_mounted_drive(dir) {
            return Err(format!("{} is not on a mounted drive", dir.display()));
        }
        durable::create_dir_all_durable(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let avail = space::fs_space(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .avail;
        if avail < MIN_RESUME_FREE && !(kind == Trouble::Full && self.make_room()) {
            return Err(format!("{}: only {avail} bytes free", dir.display()));
        }
        Ok(())
    }

    /// The source went away: close the open segment whole and say so in the status.
    pub fn source_lost(&mut self, at: SystemTime, why: String) {
        warn!("source lost: {why}");
        self.close(CloseReason::SourceLost, None);
        self.status.update(|s| s.source_lost = Some((at, why)));
    }

    /// The source is back: the next keyframe starts a new segment.
    pub fn source_back(&mut self) {
        info!("source back");
        self.status.update(|s| s.source_lost = None);
    }

    /// Note a wall-clock jump (NTP, GPS): the segment is cut at the next keyframe.
    fn note_clock(&mut self, frame: &Frame) {
        let Some(seg) = self.open.as_mut() else {
            return;
        };
        if seg.clock_jumped {
            return;
        }
        let mono = frame.captured.saturating_duration_since(seg.start_captured);
        let wall = match frame.wall.duration_since(seg.start_wall) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        if (wall - mono.as_secs_f64()).abs() > CLOCK_JUMP.as_secs_f64() {
            warn!(
                "the wall clock jumped by {:+.1} s: starting a new segment at the next keyframe",
                wall - mono.as_secs_f64()
            );
            seg.clock_jumped = true;
        }
    }
}

/// What kind of storage trouble an error is, if any.
fn trouble(e: &mux::MuxError) -> Option<Trouble> {
    use rustix::io::Errno;
    let mux::MuxError::Io { source, .. } = e else {
        return None;
    };
    match Errno::from_io_error(source) {
        Some(Errno::NOSPC | Errno::DQUOT) => Some(Trouble::Full),
        Some(_) => Some(Trouble::Gone),
        None => None,
    }
}

/// (device, inode) of a file, `None` when it is not there.
fn identity_of(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// One past the highest sequence in the footage directory, `locked/` and `corrupt/`.
fn sequence_after(dir: &Path) -> std::io::Result<u64> {
    let layout = crate::disk::layout::Layout::new(dir);
    naming::next_sequence_in(&[dir, &layout.locked(), &layout.corrupt()])
}

/// The writer thread: frames in until the input ends or a stop is requested.
pub fn run_writer(
    mut writer: SegmentWriter,
    frames: Receiver<Captured>,
    control: Receiver<Control>,
) -> WriterReport {
    loop {
        let timeout = writer
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        select! {
            recv(frames) -> msg => match msg {
                Ok(Captured::Frame(frame)) => writer.write(frame),
                Ok(Captured::SourceLost { at, why }) => writer.source_lost(at, why),
                Ok(Captured::SourceBack) => writer.source_back(),
                Err(_) => {
                    if writer.stalled() {
                        writer.try_resume();
                    }
                    writer.drop_ring("the input ended");
                    writer.close(CloseReason::EndOfInput, None);
                    break;
                }
            },
            recv(control) -> msg => match msg {
                Ok(Control::LockNow) => writer.lock_now(),
                Ok(Control::Stop) | Err(_) => {
                    // What is already queued was captured: keep it.
                    while let Ok(msg) = frames.try_recv() {
                        match msg {
                            Captured::Frame(frame) => writer.write(frame),
                            Captured::SourceLost { at, why } => writer.source_lost(at, why),
                            Captured::SourceBack => writer.source_back(),
                        }
                    }
                    if writer.stalled() {
                        writer.try_resume();
                    }
                    writer.drop_ring("stopping");
                    writer.close(CloseReason::Stop, None);
                    writer.report.stopped = true;
                    break;
                }
            },
            default(timeout) => writer.tick(Instant::now()),
        }
    }
    writer.status.update(|s| s.state = RecorderState::Stopped);
    writer.report.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// NTP sets the clock an hour ahead mid-segment: the segment ends at the next keyframe
    /// and the next one starts with the new time; nothing is lost.
    #[test]
    fn a_clock_jump_starts_a_new_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = SegmentWriter::new(WriterSettings {
            dir: dir.path().to_path_buf(),
            segment_seconds: 60,
            sync_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            require_mount: false,
        })
        .expect("writer");
        let format = Arc::new(StreamFormat {
            codec: Codec::Mjpeg,
            width: 64,
            height: 48,
            frame_rate: Some((30, 1)),
            sps: Vec::new(),
            pps: Vec::new(),
        });
        let t0 = Instant::now();
        let wall0 = SystemTime::now();
        for i in 0..40i64 {
            let mut wall = wall0 + Duration::from_millis(i as u64 * 33);
            if i >= 20 {
                wall += Duration::from_secs(3600);
            }
            w.write(mjpeg_frame(&format, i, wall, t0));
        }
        w.close(CloseReason::EndOfInput, None);
        let metas: Vec<SegmentMeta> = crate::storage::catalog::list(dir.path())
            .expect("list")
            .into_iter()
            .filter_map(|e| e.meta)
            .collect();
        assert_eq!(metas.len(), 2, "{metas:?}");
        assert_eq!(metas[0].close_reason, CloseReason::ClockJump);
        assert_eq!(metas[0].frames + metas[1].frames, 40);
        assert!(metas[1].start_unix_ms - metas[0].start_unix_ms >= 3_600_000);
    }
}
