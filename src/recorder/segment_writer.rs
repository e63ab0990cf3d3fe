//! The writer role: cut the frame stream into segment files and make them durable.
//!
//! [`SegmentWriter`] owns the open segment and every decision about it: a segment starts at
//! a keyframe, closes at the first keyframe at or after `segment_seconds` of stream time
//! (or on a format change, a size limit, an idle stream, a stop), and each fragment is
//! flushed and fdatasynced well within `sync_interval` of its first frame's capture. When
//! a segment closes its metadata is written atomically. It never reads the camera and
//! never deletes footage.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local};
use crossbeam_channel::{select, Receiver};
use log::{error, info, warn};

use crate::frame::{BufferPool, Codec, Frame, StreamFormat, TIMESCALE};
use crate::mux::{self, avi::AVI_MAX_BYTES, SegmentMuxer};
use crate::recorder::status::{RecorderState, RecorderStatus};
use crate::storage::metadata::{self, CloseReason, SegmentMeta};
use crate::storage::{durable, naming};

/// Largest MP4 segment: stay under FAT32's 4 GiB − 1 file size.
pub const MP4_MAX_BYTES: u64 = (4 << 30) - 1;
/// Room kept below a size limit for the rest of a GOP and the container's tail.
const SIZE_MARGIN: u64 = 64 << 20;
/// Share of `sync_interval` a fragment may span, leaving time for the write and fdatasync.
const FRAGMENT_SHARE: f64 = 0.85;

#[derive(Clone, Debug)]
pub struct WriterSettings {
    pub dir: PathBuf,
    pub segment_seconds: u32,
    pub sync_interval: Duration,
    pub idle_timeout: Duration,
}

/// Requests to the writer thread from other roles.
#[derive(Debug)]
pub enum Control {
    /// Close the open segment completely and end the thread.
    Stop,
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

struct OpenSegment {
    muxer: Box<dyn SegmentMuxer>,
    path: PathBuf,
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
}

impl SegmentWriter {
    /// Prepare to write into `settings.dir` (created if missing); the sequence continues
    /// after the highest found there.
    pub fn new(settings: WriterSettings) -> Result<SegmentWriter, WriterError> {
        let dir_err = |source| WriterError::Dir {
            dir: settings.dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&settings.dir).map_err(dir_err)?;
        let next_sequence = naming::next_sequence(&settings.dir).map_err(dir_err)?;
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
        })
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

    pub fn status(&self) -> &Arc<RecorderStatus> {
        &self.status
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

    pub fn report(&self) -> &WriterReport {
        &self.report
    }

    /// Record one frame.
    pub fn write(&mut self, frame: Frame) {
        let now = Instant::now();
        self.last_frame_at = Some(now);
        self.status.update(|s| s.last_frame = Some(now));
        self.report.frames_dropped += u64::from(frame.dropped_before);
        match self.open.as_mut() {
            Some(seg) => seg.dropped += u64::from(frame.dropped_before),
            None => self.pending_dropped += u64::from(frame.dropped_before),
        }

        if let Some(reason) = self.cut_reason(&frame) {
            self.close(reason, Some(frame.dts));
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
                error!("{e}; frame dropped");
                self.error_status(e);
                self.report.write_errors += 1;
                self.pending_dropped += 1;
                self.report.frames_dropped += 1;
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
                if let Err(e) = seg.muxer.flush(Some(frame.dts)) {
                    self.fail_segment(e);
                    return;
                }
                self.synced();
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
            self.fail_segment(e);
            return;
        }
        seg.frames += 1;
        self.report.frames += 1;
        self.unsynced_frames += 1;
    }

    /// When the writer must act next without a new frame: flush deadline or idle timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
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
            match seg.muxer.flush(None) {
                Ok(()) => self.synced(),
                Err(e) => self.fail_segment(e),
            }
        }
    }

    /// Close the open segment (if any) and write its metadata.
    pub fn close(&mut self, reason: CloseReason, next_dts: Option<i64>) {
        let Some(seg) = self.open.take() else {
            return;
        };
        let name = file_name(&seg.path);
        let summary = match seg.muxer.finish(next_dts) {
            Ok(s) => s,
            Err(e) => {
                error!("closing {name}: {e}");
                self.report.write_errors += 1;
                self.unsynced_frames = 0;
                self.status.update(|s| s.current_segment = None);
                self.error_status(format!("closing {name}: {e}"));
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
        if frame.dts - seg.first_dts >= self.segment_ticks {
            return Some(CloseReason::Duration);
        }
        if seg.muxer.projected_bytes() + frame.data.len() as u64 > seg.size_limit {
            return Some(CloseReason::SizeLimit);
        }
        None
    }

    fn open_segment(&mut self, frame: &Frame) -> Result<(), String> {
        let dir = &self.settings.dir;
        let ext = frame.format.codec.extension();
        let mut attempts = 0;
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
                Err(e) => return Err(format!("cannot start a segment: {e}")),
            }
        };
        if let Err(e) = durable::fsync_dir(dir) {
            warn!("fsync of {}: {e}", dir.display());
        }
        let size_limit = match frame.format.codec {
            Codec::H264 => MP4_MAX_BYTES,
            Codec::Mjpeg => AVI_MAX_BYTES,
        }
        .saturating_sub(SIZE_MARGIN);
        self.open = Some(OpenSegment {
            muxer,
            path,
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
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The writer thread: frames in until the input ends or a stop is requested.
pub fn run_writer(
    mut writer: SegmentWriter,
    frames: Receiver<Frame>,
    control: Receiver<Control>,
) -> WriterReport {
    loop {
        let timeout = writer
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        select! {
            recv(frames) -> msg => match msg {
                Ok(frame) => writer.write(frame),
                Err(_) => {
                    writer.close(CloseReason::EndOfInput, None);
                    break;
                }
            },
            recv(control) -> msg => match msg {
                Ok(Control::Stop) | Err(_) => {
                    // What is already queued was captured: keep it.
                    while let Ok(frame) = frames.try_recv() {
                        writer.write(frame);
                    }
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
