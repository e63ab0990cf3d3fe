//! A reader for dashcam's own MJPEG AVI segments (what [`crate::mux::avi`] writes).
//!
//! It owns reading back the fixed 224-byte header (picture size, rate/scale, flags) and the
//! `movi` chunks, one complete JPEG each. Built for files cut by a power loss: the chunk
//! walk stops at the first chunk that is torn, zeroed or not a whole JPEG (SOI … EOI), and
//! reports where the last complete chunk ends. It never writes; repairing is
//! [`super::recovery`]'s job.

#![allow(dead_code)] // TODO(issue 7): moves into mux/, unused parts removed

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::storage::StorageError;

/// Bytes before the first `movi` chunk in a dashcam AVI.
pub const HEADER_LEN: u64 = 224;
/// Offset of the `movi` fourcc; `idx1` offsets are relative to it.
pub const MOVI_FOURCC_POS: u64 = 220;
/// Header flag: the file has an `idx1`.
pub const AVIF_HASINDEX: u32 = 0x10;

/// Header field offsets (see `mux::avi::build_header`).
pub mod at {
    pub const RIFF_SIZE: u64 = 4;
    pub const MICROS_PER_FRAME: u64 = 32;
    pub const FLAGS: u64 = 44;
    pub const TOTAL_FRAMES: u64 = 48;
    pub const SUGGESTED_BUFFER: u64 = 60;
    pub const WIDTH: u64 = 64;
    pub const HEIGHT: u64 = 68;
    pub const SCALE: u64 = 128;
    pub const RATE: u64 = 132;
    pub const LENGTH: u64 = 140;
    pub const STRH_SUGGESTED: u64 = 144;
    pub const MOVI_SIZE: u64 = 216;
}

/// One `00dc` chunk: a JPEG at `offset` (absolute) of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AviChunk {
    pub offset: u64,
    pub size: u32,
}

#[derive(Clone, Debug)]
pub struct AviFile {
    pub width: u32,
    pub height: u32,
    /// Frames per second = rate / scale.
    pub rate: u32,
    pub scale: u32,
    pub flags: u32,
    pub chunks: Vec<AviChunk>,
    /// End of the last complete chunk (where an `idx1` belongs).
    pub complete_end: u64,
    /// An `idx1` follows the chunks, the header says so and the RIFF size matches the file.
    pub finished: bool,
    pub file_len: u64,
}

fn le32(b: &[u8], at: u64) -> u32 {
    let at = at as usize;
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

impl AviFile {
    pub fn fps(&self) -> f64 {
        if self.rate == 0 || self.scale == 0 {
            30.0
        } else {
            f64::from(self.rate) / f64::from(self.scale)
        }
    }

    /// Read the structure of `path`; an error means it is not one of our AVI files.
    pub fn open(path: &Path) -> Result<AviFile, StorageError> {
        let bad = |what: &str| StorageError::Unreadable {
            path: path.display().to_string(),
            what: what.to_string(),
        };
        let file = File::open(path).map_err(|e| StorageError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(path, e))?
            .len();
        if len < HEADER_LEN {
            return Err(bad("shorter than an AVI header"));
        }
        let mut h = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut h, 0)
            .map_err(|e| StorageError::io(path, e))?;
        let sig = |at: usize, tag: &[u8; 4]| &h[at..at + 4] == tag;
        if !(sig(0, b"RIFF")
            && sig(8, b"AVI ")
            && sig(24, b"avih")
            && sig(100, b"strh")
            && sig(112, b"MJPG")
            && sig(164, b"strf")
            && sig(212, b"LIST")
            && sig(220, b"movi"))
        {
            return Err(bad("not a dashcam MJPEG AVI header"));
        }
        let mut info = AviFile {
            width: le32(&h, at::WIDTH),
            height: le32(&h, at::HEIGHT),
            rate: le32(&h, at::RATE),
            scale: le32(&h, at::SCALE),
            flags: le32(&h, at::FLAGS),
            chunks: Vec::new(),
            complete_end: HEADER_LEN,
            finished: false,
            file_len: len,
        };
        // Walk the chunks in blocks so a long segment costs few reads.
        let mut pos = HEADER_LEN;
        let mut hdr = [0u8; 8];
        let mut marker = [0u8; 2];
        while pos + 8 <= len {
            if file.read_exact_at(&mut hdr, pos).is_err() {
                break;
            }
            let size = u64::from(le32(&hdr, 4));
            let body = pos + 8;
            match &hdr[..4] {
                b"00dc" => {
                    let padded = size + (size & 1);
                    if size < 4 || body + padded > len {
                        break;
                    }
                    // A whole JPEG: SOI at the start, EOI at the end (zeros after a cut fail).
                    let soi =
                        file.read_exact_at(&mut marker, body).is_ok() && marker == [0xff, 0xd8];
                    let eoi = file.read_exact_at(&mut marker, body + size - 2).is_ok()
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
                    let riff = u64::from(le32(&h, at::RIFF_SIZE)) + 8;
                    info.finished = body + size == len
                        && riff == len
                        && size == 16 * info.chunks.len() as u64
                        && info.flags & AVIF_HASINDEX != 0;
                    break;
                }
                _ => break,
            }
        }
        Ok(info)
    }

    /// Read one frame's JPEG bytes.
    pub fn read_chunk(file: &File, chunk: &AviChunk) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; chunk.size as usize];
        file.read_exact_at(&mut buf, chunk.offset)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Codec, Frame, StreamFormat};
    use crate::mux::avi::AviWriter;
    use crate::mux::SegmentMuxer;
    use std::sync::Arc;
    use std::time::{Instant, SystemTime};

    fn segment(path: &Path, frames: usize) {
        let format = Arc::new(StreamFormat {
            codec: Codec::Mjpeg,
            width: 64,
            height: 48,
            frame_rate: Some((30, 1)),
            sps: Vec::new(),
            pps: Vec::new(),
        });
        let mut w = AviWriter::create(path, &format).expect("create");
        for i in 0..frames {
            let mut jpeg = vec![0xff, 0xd8];
            jpeg.extend(std::iter::repeat_n(i as u8, 100 + i));
            jpeg.extend_from_slice(&[0xff, 0xd9]);
            w.push(&Frame {
                data: jpeg,
                keyframe: true,
                pts: i as i64 * 3000,
                dts: i as i64 * 3000,
                captured: Instant::now(),
                wall: SystemTime::now(),
                format: format.clone(),
                dropped_before: 0,
            })
            .expect("push");
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
        segment(&p, 20);
        let whole = AviFile::open(&p).expect("open");
        assert!(whole.finished);
        assert_eq!(whole.chunks.len(), 20);
        assert_eq!((whole.width, whole.height), (64, 48));
        assert!((whole.fps() - 30.0).abs() < 0.01);
        let bytes = std::fs::read(&p).expect("read");
        let cut = dir.path().join("cut.avi");
        for len in (0..bytes.len()).step_by(5) {
            std::fs::write(&cut, &bytes[..len]).expect("write");
            match AviFile::open(&cut) {
                Ok(f) => {
                    assert!(!f.finished, "cut at {len}");
                    let complete = whole
                        .chunks
                        .iter()
                        .filter(|c| c.offset + u64::from(c.size) <= len as u64)
                        .count();
                    assert_eq!(f.chunks.len(), complete, "cut at {len}");
                }
                Err(_) => assert!((len as u64) < HEADER_LEN, "cut at {len}"),
            }
        }
    }
}
