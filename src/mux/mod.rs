//! Containers: each writes, reads and repairs its own format, in its own folder.
//!
//! - [`mp4`]: fragmented MP4 for H.264;
//! - [`avi`]: AVI 1.0 for MJPEG.
//!
//! A [`SegmentMuxer`] owns the bytes of exactly one open file. It buffers at most one
//! fragment of frames in memory, writes it when told to ([`SegmentMuxer::flush`]) and makes
//! it durable with `fdatasync` before returning. It never decides *when* to cut a segment
//! or a fragment: that is the segment writer's job (`recorder::writer`). The
//! readers ([`mp4::read`], [`avi::read`]) read any bytes through [`ReadAt`] and never
//! panic; [`repair`] finishes a file a power loss cut and says what it holds. Nothing here
//! names, renames or deletes files or writes metadata: the footage core does.

pub(crate) mod avi;
pub(crate) mod mp4;
mod read_at;

use std::path::Path;
use std::time::{Instant, SystemTime};

use crate::frame::{Codec, Frame, StreamFormat};

pub use read_at::ReadAt;

#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Invalid { path: String, what: String },
}

/// What a finished segment file holds, as the writer measured it.
#[derive(Clone, Debug, Default)]
pub struct MuxSummary {
    pub frames: u64,
    /// Presentation span in [`crate::frame::TIMESCALE`] ticks (sum of sample durations).
    pub duration_ticks: i64,
    /// Size of the file on disk.
    pub bytes: u64,
}

pub trait SegmentMuxer: Send {
    /// Add one frame to the fragment being assembled. The first frame of a segment must be
    /// a keyframe. Does not touch the disk unless the container writes frames through
    /// (AVI); nothing is durable before [`SegmentMuxer::flush`].
    fn push(&mut self, frame: &Frame) -> Result<(), MuxError>;

    /// Write every buffered frame to the file and `fdatasync` it. `next_dts` is the decode
    /// time of the frame that will follow (if known), which fixes the last frame's duration;
    /// without it the last frame lasts one nominal frame interval.
    fn flush(&mut self, next_dts: Option<i64>) -> Result<(), MuxError>;

    /// Capture instant of the oldest frame not yet flushed, if any.
    fn oldest_unflushed(&self) -> Option<Instant>;

    /// Duration in ticks of the frames buffered since the last flush (by decode time).
    fn unflushed_ticks(&self) -> i64;

    /// Bytes the file will have once the buffered frames are flushed (for size limits).
    fn projected_bytes(&self) -> u64;

    /// Flush what is left, complete the container (durations, indexes), fsync, close.
    /// `next_dts` as for [`SegmentMuxer::flush`].
    fn finish(self: Box<Self>, next_dts: Option<i64>) -> Result<MuxSummary, MuxError>;
}

/// Create the segment file at `path` (it must not exist) for `format`.
pub fn create(path: &Path, format: &StreamFormat) -> Result<Box<dyn SegmentMuxer>, MuxError> {
    match format.codec {
        Codec::H264 => Ok(Box::new(mp4::write::Fmp4Writer::create(path, format)?)),
        Codec::Mjpeg => Ok(Box::new(avi::write::AviWriter::create(path, format)?)),
    }
}

/// Why a container could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not a segment of this container at all (no readable header).
    #[error("{0}")]
    NotOurs(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Open the segment file at `path` and read it with a container's reader
/// ([`mp4::read`], [`avi::read`]).
pub(crate) fn read_file<T>(
    path: &Path,
    read: impl FnOnce(&std::fs::File) -> Result<T, ReadError>,
) -> Result<T, ReadError> {
    read(&std::fs::File::open(path)?)
}

/// What a segment file holds after [`repair`].
#[derive(Clone, Debug, PartialEq)]
pub struct RepairOutcome {
    pub codec: Codec,
    /// Complete frames (what plays).
    pub frames: u64,
    /// Their presentation span, [`crate::frame::TIMESCALE`] ticks.
    pub duration_ticks: u64,
    pub width: u32,
    pub height: u32,
    /// Wall-clock time of the first frame, when the file records it (files written before
    /// dashcam recorded it do not).
    pub start_wall: Option<SystemTime>,
    /// The first frame's pts on the source's clock, when the file records it.
    pub start_pts: Option<i64>,
    /// The file was complete already; nothing was written.
    pub was_finished: bool,
    /// Size of the file now.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// Not a readable segment, or one without a single frame.
    #[error("{0}")]
    Unusable(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl RepairError {
    fn io(path: &Path, source: std::io::Error) -> RepairError {
        RepairError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Open `path` for a repair and read it with `read`.
    fn open<T>(
        path: &Path,
        read: impl FnOnce(&std::fs::File) -> Result<T, ReadError>,
    ) -> Result<(std::fs::File, T), RepairError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| RepairError::io(path, e))?;
        let contents = read(&file).map_err(|e| RepairError::from_read(path, e))?;
        Ok((file, contents))
    }

    fn from_read(path: &Path, e: ReadError) -> RepairError {
        match e {
            ReadError::NotOurs(what) => RepairError::Unusable(what),
            ReadError::Io(source) => RepairError::io(path, source),
        }
    }
}

/// Repair the segment file at `path` in place when a crash left it unfinished (its
/// container is told by its extension), and say what it holds.
pub fn repair(path: &Path) -> Result<RepairOutcome, RepairError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e == Codec::H264.extension() => mp4::repair(path),
        Some(e) if e == Codec::Mjpeg.extension() => avi::repair(path),
        _ => Err(RepairError::Unusable("not a segment file".into())),
    }
}
