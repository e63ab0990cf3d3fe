//! Per-segment metadata: one JSON file beside each segment, same stem, written atomically
//! when the segment closes.
//!
//! The metadata describes a segment; it is never the only copy of anything. A segment
//! without metadata (cut by a crash) is still listed and still plays.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::disk::durable;
use crate::frame::Codec;

/// Why a segment was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Reached `segment_seconds` and a keyframe came.
    Duration,
    /// No frame for `idle_timeout`.
    Idle,
    /// SIGINT/SIGTERM or a stop request.
    Stop,
    /// The input (file or pipe) ended.
    EndOfInput,
    /// The stream changed resolution or parameter sets.
    FormatChange,
    /// The file reached the container's or file system's size limit.
    SizeLimit,
    /// A write error ended the segment early.
    Error,
    /// The wall clock jumped (NTP, GPS, phone set the time): a new segment starts so that
    /// each segment's wall times stay true.
    ClockJump,
    /// Cut by a crash or power loss and repaired at the next start.
    Recovered,
    /// The source went away (camera unplugged, camera process died, stream dropped).
    SourceLost,
}

impl CloseReason {
    /// A segment shorter than its target length for a reason other than a size limit.
    pub fn is_partial(self) -> bool {
        !matches!(self, CloseReason::Duration | CloseReason::SizeLimit)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// File name of the segment (`20261121-143005_000042.mp4`).
    pub name: String,
    pub sequence: u64,
    /// Wall time of the first frame, RFC 3339 with the local offset.
    pub start_wall: String,
    pub start_unix_ms: i64,
    /// Presentation time of the first frame on the stream clock (90 kHz ticks).
    pub start_pts: i64,
    pub duration_s: f64,
    pub frames: u64,
    pub bytes: u64,
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    /// Measured frame rate (frames over the segment's duration).
    pub fps: f64,
    /// Frames lost before or inside this segment (writer too slow, corrupt input).
    pub dropped_frames: u64,
    pub partial: bool,
    pub close_reason: CloseReason,
}

/// The metadata path of a segment file: same stem, `.json`.
pub fn path_for(segment: &Path) -> std::path::PathBuf {
    segment.with_extension("json")
}

/// Write the metadata of `segment` atomically (temp file, fsync, rename, fsync dir).
pub fn write(segment: &Path, meta: &SegmentMeta) -> std::io::Result<()> {
    let mut json = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
    json.push(b'\n');
    durable::write_atomic(&path_for(segment), &json)
}

/// Read the metadata of a segment, `Ok(None)` when there is none.
pub fn read(segment: &Path) -> Result<Option<SegmentMeta>, MetadataError> {
    let path = path_for(segment);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(MetadataError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| MetadataError::Parse {
            path: path.display().to_string(),
            source,
        })
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid segment metadata: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}
