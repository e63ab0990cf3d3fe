//! Reading dashcam's own MJPEG AVI segments back (what [`super::write`] writes).
//!
//! It owns reading back the header (picture size, rate/scale, flags, the start chunk) and
//! the `movi` chunks, one complete JPEG each, with the layout of [`super::layout`]. Built
//! for files cut by a power loss: the chunk walk stops at the first chunk that is torn,
//! zeroed or not a whole JPEG (SOI … EOI), and reports where the last complete chunk ends.
//! It reads from any [`ReadAt`] (a file, or bytes for tests and fuzzers), never writes
//! (repairing is [`super::repair`]'s job) and never panics, whatever the bytes.

use super::layout::{
    self, HeaderPositions, StartStamp, AVIF_HASINDEX, FRAME_CHUNK, IDX1_ENTRY_LEN,
};
use crate::mux::{ReadAt, ReadError};

/// One `00dc` chunk: a JPEG at `offset` (absolute) of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AviChunk {
    pub offset: u64,
    pub size: u32,
}

/// What a segment file holds, as far as it is readable.
#[derive(Clone, Debug)]
pub struct AviFile {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Frames per second = rate / scale.
    pub(crate) rate: u32,
    pub(crate) scale: u32,
    pub(crate) flags: u32,
    /// The first frame, from dashcam's start chunk (files from before it have none).
    pub(crate) start: Option<StartStamp>,
    /// Where the header's parts are.
    pub(crate) at: HeaderPositions,
    pub(crate) chunks: Vec<AviChunk>,
    /// End of the last complete chunk (where an `idx1` belongs).
    pub(crate) complete_end: u64,
    /// An `idx1` follows the chunks, the header says so and the RIFF size matches the file.
    pub(crate) finished: bool,
}

impl AviFile {
    /// Frames in complete chunks.
    pub fn frames(&self) -> u64 {
        self.chunks.len() as u64
    }

    /// The header's frame rate (30 when it names none).
    pub(crate) fn fps(&self) -> f64 {
        if self.rate == 0 || self.scale == 0 {
            30.0
        } else {
            f64::from(self.rate) / f64::from(self.scale)
        }
    }

    /// Wall-clock time of the first frame, from the start chunk.
    pub fn start_wall(&self) -> Option<std::time::SystemTime> {
        self.start.map(|s| s.wall)
    }

    /// The first frame's pts on the source's clock, from the start chunk.
    pub fn start_pts(&self) -> Option<i64> {
        self.start.map(|s| s.pts)
    }
}

/// Most bytes the header may take before `movi` (ours: 272; older ones 224).
const MAX_HEADER: u64 = 4096;

/// Read the structure of a segment; an error means it is not one of our AVI files or could
/// not be read. A torn tail is not an error.
pub fn read<R: ReadAt + ?Sized>(src: &R) -> Result<AviFile, ReadError> {
    let len = src.size()?;
    let head = src.read_vec_at(0, len.min(MAX_HEADER) as usize)?;
    let h = layout::read_header(&head)
        .ok_or_else(|| ReadError::NotOurs("not a dashcam MJPEG AVI header".into()))?;
    let mut info = AviFile {
        width: h.fields.width,
        height: h.fields.height,
        rate: h.fields.rate,
        scale: h.fields.scale,
        flags: h.fields.flags,
        start: h.start,
        at: h.at,
        chunks: Vec::new(),
        complete_end: h.at.first_chunk(),
        finished: false,
    };
    let mut pos = h.at.first_chunk();
    let mut hdr = [0u8; 8];
    let mut marker = [0u8; 2];
    while pos.saturating_add(8) <= len {
        if src.read_exact_at(&mut hdr, pos).is_err() {
            break;
        }
        let size = u64::from(u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]));
        let body = pos + 8;
        match &hdr[..4] {
            k if k == FRAME_CHUNK => {
                let padded = size + (size & 1);
                if size < 4 || body + padded > len {
                    break;
                }
                // A whole JPEG: SOI at the start, EOI at the end (zeros after a cut fail).
                let soi = src.read_exact_at(&mut marker, body).is_ok() && marker == [0xff, 0xd8];
                let eoi = src.read_exact_at(&mut marker, body + size - 2).is_ok()
                    && marker == [0xff, 0xd9];
                if !soi || !eoi {
                    break;
                }
                info.chunks.push(AviChunk {
                    offset: body,
                    size: size as u32,
                });
                pos = body + padded;
                info.complete_end = pos;
            }
            b"idx1" => {
                let riff = u64::from(h.fields.riff_size) + 8;
                info.finished = body + size == len
                    && riff == len
                    && size == IDX1_ENTRY_LEN * info.chunks.len() as u64
                    && info.flags & AVIF_HASINDEX != 0;
                break;
            }
            _ => break,
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::avi::write::AviWriter;
    use crate::mux::SegmentMuxer;
    use crate::test_support::{frame, jpeg, mjpeg_format};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn segment(path: &std::path::Path, frames: usize, wall0: SystemTime) {
        let format = mjpeg_format(64, 48, Some((30, 1)));
        let mut w = AviWriter::create(path, &format).expect("create");
        for i in 0..frames {
            let t = 1000 + i as i64 * 3000;
            let mut f = frame(&format, jpeg(i as u8, 100 + i), t, t, true);
            f.wall = wall0 + Duration::from_millis(i as u64 * 33);
            w.push(&f).expect("push");
            if i % 5 == 4 {
                w.flush(None).expect("flush");
            }
        }
        Box::new(w).finish(None).expect("finish");
    }

    #[test]
    fn reads_what_the_writer_wrote_and_every_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.avi");
        let wall0 = UNIX_EPOCH + Duration::new(1_795_000_000, 987_654_321);
        segment(&p, 20, wall0);
        let file = std::fs::File::open(&p).expect("open");
        let whole = read(&file).expect("read");
        assert!(whole.finished);
        assert_eq!(whole.frames(), 20);
        assert_eq!((whole.width, whole.height), (64, 48));
        assert!((whole.fps() - 30.0).abs() < 0.01);
        assert_eq!(whole.start_wall(), Some(wall0));
        assert_eq!(whole.start_pts(), Some(1000));
        let c = whole.chunks[3];
        assert_eq!(
            file.read_vec_at(c.offset, c.size as usize).expect("read")[2],
            3
        );
        let bytes = std::fs::read(&p).expect("read");
        for len in (0..bytes.len()).step_by(5) {
            match read(&bytes[..len]) {
                Ok(f) => {
                    assert!(!f.finished, "cut at {len}");
                    let complete = whole
                        .chunks
                        .iter()
                        .filter(|c| c.offset + u64::from(c.size) <= len as u64)
                        .count();
                    assert_eq!(f.chunks.len(), complete, "cut at {len}");
                    if complete > 0 {
                        assert_eq!(f.start_wall(), Some(wall0), "cut at {len}");
                    }
                }
                Err(_) => assert!((len as u64) < layout::HEADER_LEN as u64, "cut at {len}"),
            }
        }
        for at in (0..bytes.len()).step_by(11) {
            let mut b = bytes.clone();
            b[at] ^= 0xa5;
            let _ = read(&b[..]);
        }
    }
}
