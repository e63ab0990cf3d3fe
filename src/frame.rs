//! The unit that flows from a capture thread to the writer thread.
//!
//! A [`Frame`] is one coded picture: for H.264 one access unit, already converted to
//! length-prefixed (AVCC, 4-byte big-endian lengths) NAL units so the MP4 writer copies it
//! as is; for MJPEG one complete JPEG image. It owns its bytes and never refers back into
//! the source's buffers. Times are on the stream's own clock in [`TIMESCALE`] ticks.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Ticks per second of every stream clock in dashcam (the MPEG 90 kHz clock).
pub const TIMESCALE: u32 = 90_000;

/// The coding of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    H264,
    Mjpeg,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Mjpeg => "mjpeg",
        }
    }

    /// The file extension of the segment container for this codec.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::H264 => "mp4",
            Codec::Mjpeg => "avi",
        }
    }
}

/// What a decoder needs to know before the first frame. A change of format starts a new
/// segment, so one segment file always has exactly one format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamFormat {
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate as a fraction (frames = num / den per second), when the stream
    /// or the configuration says it. Writers use it for the last frame's duration and
    /// for container fields that want a rate.
    pub frame_rate: Option<(u32, u32)>,
    /// H.264 only: the sequence parameter set NAL unit (with its header byte, no start code).
    pub sps: Vec<u8>,
    /// H.264 only: the picture parameter set NAL units.
    pub pps: Vec<Vec<u8>>,
}

impl StreamFormat {
    /// Nominal duration of one frame in [`TIMESCALE`] ticks (30 fps when unknown).
    pub fn frame_ticks(&self) -> i64 {
        match self.frame_rate {
            Some((num, den)) if num > 0 && den > 0 => {
                (i64::from(TIMESCALE) * i64::from(den) + i64::from(num) / 2) / i64::from(num)
            }
            _ => i64::from(TIMESCALE) / 30,
        }
    }
}

/// One coded picture and when it was taken.
#[derive(Clone, Debug)]
pub struct Frame {
    /// H.264: AVCC (4-byte length-prefixed NAL units). MJPEG: one JPEG file.
    pub data: Vec<u8>,
    /// True for an IDR access unit (H.264) or any JPEG: decoding can start here.
    pub keyframe: bool,
    /// Presentation time on the stream clock, [`TIMESCALE`] ticks.
    pub pts: i64,
    /// Decode time on the stream clock, [`TIMESCALE`] ticks; non-decreasing, `<= pts` is not
    /// required (B-frames may present before their decode time as the stream starts).
    pub dts: i64,
    /// Monotonic instant at which the frame was captured (or read, for file sources).
    pub captured: Instant,
    /// Wall-clock time of capture, for names and metadata.
    pub wall: SystemTime,
    /// Format of the stream this frame belongs to; shared, compared on every frame.
    pub format: Arc<StreamFormat>,
    /// Frames the capture side dropped just before this one (channel full).
    pub dropped_before: u32,
}

/// What the capture thread hands to the writer: frames, and the fact that the source went
/// away or came back (a camera unplugged, a camera process that died, an RTSP server that
/// dropped the connection). Frames sent before a [`Captured::SourceLost`] are written
/// before it is acted on: the channel keeps their order.
#[derive(Debug)]
pub enum Captured {
    Frame(Frame),
    /// The source is gone since `at` (wall time), for the reason in words. The open
    /// segment is closed whole (`source_lost`); the recorder waits for the source.
    SourceLost {
        at: SystemTime,
        why: String,
    },
    /// The source is back: the next keyframe starts a new segment.
    SourceBack,
}

/// Frame buffers travelling back from the writer to the capture thread, so that the hot
/// path does not allocate (and page-fault in) a fresh buffer for every frame.
///
/// Bounded both ways: at most `capacity` buffers wait in the pool, and a buffer larger than
/// [`BufferPool::MAX_POOLED_BYTES`] is freed instead of kept.
#[derive(Clone, Debug)]
pub struct BufferPool {
    tx: crossbeam_channel::Sender<Vec<u8>>,
    rx: crossbeam_channel::Receiver<Vec<u8>>,
}

impl BufferPool {
    /// Buffers larger than this are not kept (a 1080p IDR picture is well under it).
    pub const MAX_POOLED_BYTES: usize = 2 << 20;

    pub fn new(capacity: usize) -> BufferPool {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        BufferPool { tx, rx }
    }

    /// An empty buffer, recycled when one is available.
    pub fn take(&self) -> Vec<u8> {
        self.rx.try_recv().unwrap_or_default()
    }

    /// Return a buffer for reuse; dropped if the pool is full or the buffer is huge.
    pub fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0 || buffer.capacity() > Self::MAX_POOLED_BYTES {
            return;
        }
        buffer.clear();
        let _ = self.tx.try_send(buffer);
    }
}
