//! Container writers: one open segment file each, for one stream format.
//!
//! A [`SegmentMuxer`] owns the bytes of exactly one file. It buffers at most one fragment
//! of frames in memory, writes it when told to ([`SegmentMuxer::flush`]) and makes it
//! durable with `fdatasync` before returning. It never decides *when* to cut a segment or a
//! fragment: that is the segment writer's job (`recorder::segment_writer`). It never
//! deletes or renames files.

pub mod avi;
pub mod fmp4;
pub mod mp4_boxes;

use std::path::Path;
use std::time::Instant;

use crate::frame::{Codec, Frame, StreamFormat};

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
        Codec::H264 => Ok(Box::new(fmp4::Fmp4Writer::create(path, format)?)),
        Codec::Mjpeg => Ok(Box::new(avi::AviWriter::create(path, format)?)),
    }
}
