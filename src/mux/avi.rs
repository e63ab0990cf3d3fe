//! MJPEG segments in AVI 1.0 (RIFF `AVI `), written by hand.
//!
//! Owns the bytes of one `.avi` segment file: the header (`hdrl` with `avih`, one video
//! `strl` with `strh`/`strf`), the `movi` list of `00dc` chunks (one complete JPEG each) and,
//! when the segment is finished, the legacy `idx1` index. No usable crate exists for this:
//! `avi` 0.0.0 on crates.io is an empty placeholder and `oxideav-avi` is a 20k-line 0.0.x
//! framework; the format we need is a few hundred bytes of header.
//!
//! Crash safety: frames are written through to the file as they are pushed (AVI has no
//! per-fragment header to hold them back for). Every [`SegmentMuxer::flush`] rewrites the
//! 224-byte header in place with the sizes and frame count of what is on disk, then
//! `fdatasync`s, so the file as it stands after a flush is a valid, index-less AVI. A file
//! cut anywhere (power loss) still plays every complete chunk: readers scan `movi` chunk by
//! chunk when `idx1` is missing (ffmpeg does), and a `movi` size that is too small or points
//! past the end of the file is tolerated by them. `finish` appends `idx1`, sets
//! `AVIF_HASINDEX` and replaces the nominal frame rate with the measured one so that the
//! file's duration matches real time.
//!
//! It must never: write past [`AVI_MAX_BYTES`] (AVI 1.0 readers assume a RIFF below 1 GiB;
//! `push` refuses a frame that would cross it, and [`SegmentMuxer::projected_bytes`]
//! includes the index still to come so the caller cuts first), overwrite an existing file,
//! rename or delete files, or decide when a segment ends.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use crate::frame::{Codec, Frame, StreamFormat, TIMESCALE};
use crate::mux::{MuxError, MuxSummary, SegmentMuxer};

/// Hard ceiling of one AVI 1.0 file (RIFF sizes beyond 1 GiB break old readers).
pub const AVI_MAX_BYTES: u64 = 1 << 30;

/// Bytes before the first `movi` chunk: RIFF + hdrl (avih, strl(strh, strf)) + LIST movi.
const HEADER_LEN: usize = 224;
/// File offset of the `movi` fourcc; `idx1` offsets are relative to it.
const MOVI_FOURCC_POS: u64 = 220;
/// Chunk header (fourcc + size) and one `idx1` entry.
const CHUNK_HEADER_LEN: u64 = 8;
const IDX1_ENTRY_LEN: u64 = 16;

const AVIF_HASINDEX: u32 = 0x10;
const AVIF_ISINTERLEAVED: u32 = 0x100;
const AVIIF_KEYFRAME: u32 = 0x10;

/// Frame rate used when the format names none.
const DEFAULT_RATE: (u32, u32) = (30, 1);

/// Write-through buffer size: small frames are gathered, big ones go straight to the file.
const WRITE_BUFFER: usize = 64 * 1024;

/// One `idx1` entry: chunk offset relative to the `movi` fourcc, and payload size.
#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    offset: u32,
    size: u32,
}

/// The values that change as the file grows; everything else in the header is fixed.
#[derive(Clone, Copy, Debug)]
struct HeaderFields {
    width: u32,
    height: u32,
    /// (dwRate, dwScale): frames per second = rate / scale.
    rate: u32,
    scale: u32,
    micros_per_frame: u32,
    max_bytes_per_sec: u32,
    flags: u32,
    total_frames: u32,
    suggested_buffer: u32,
    /// RIFF chunk size (file length - 8).
    riff_size: u32,
    /// `movi` LIST size (4 for the fourcc + the chunks).
    movi_size: u32,
}

/// An open AVI segment file receiving MJPEG frames.
pub struct AviWriter {
    path: String,
    out: BufWriter<File>,
    width: u32,
    height: u32,
    /// Nominal (num, den) frames per second.
    nominal: (u32, u32),
    nominal_ticks: i64,
    index: Vec<IndexEntry>,
    /// Bytes handed to `out` so far (the file length once `out` is flushed).
    written: u64,
    /// Frames and bytes covered by the header as last written to disk.
    flushed_frames: usize,
    max_chunk: u32,
    first_dts: Option<i64>,
    last_dts: Option<i64>,
    /// Decode time and capture instant of the first frame pushed since the last flush.
    unflushed_first: Option<(i64, Instant)>,
    /// Set after a failed write: the file's tail is unknown, refuse to go on.
    broken: bool,
}

impl AviWriter {
    /// Create `path` (it must not exist) and write the AVI header for `format`.
    pub fn create(path: &Path, format: &StreamFormat) -> Result<AviWriter, MuxError> {
        let path_str = path.display().to_string();
        let invalid = |what: String| MuxError::Invalid {
            path: path_str.clone(),
            what,
        };
        if format.codec != Codec::Mjpeg {
            return Err(invalid(format!(
                "AVI segments hold MJPEG only, not {}",
                format.codec.name()
            )));
        }
        if format.width == 0
            || format.height == 0
            || format.width > i16::MAX as u32
            || format.height > i16::MAX as u32
        {
            return Err(invalid(format!(
                "unsupported picture size {}x{}",
                format.width, format.height
            )));
        }
        let nominal = match format.frame_rate {
            Some((num, den)) if num > 0 && den > 0 => (num, den),
            _ => DEFAULT_RATE,
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| MuxError::Io {
                path: path_str.clone(),
                source,
            })?;
        let mut writer = AviWriter {
            path: path_str,
            out: BufWriter::with_capacity(WRITE_BUFFER, file),
            width: format.width,
            height: format.height,
            nominal,
            nominal_ticks: format.frame_ticks(),
            index: Vec::with_capacity(1024),
            written: HEADER_LEN as u64,
            flushed_frames: 0,
            max_chunk: 0,
            first_dts: None,
            last_dts: None,
            unflushed_first: None,
            broken: false,
        };
        let header = build_header(&writer.current_fields(false));
        writer
            .out
            .write_all(&header)
            .map_err(|e| writer.io_error(e))?;
        Ok(writer)
    }

    fn io_error(&mut self, source: std::io::Error) -> MuxError {
        self.broken = true;
        MuxError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn check_usable(&self) -> Result<(), MuxError> {
        if self.broken {
            return Err(MuxError::Invalid {
                path: self.path.clone(),
                what: "an earlier write failed; the segment can no longer be extended".into(),
            });
        }
        Ok(())
    }

    /// Header values for the data handed to `out` so far, at the nominal rate.
    fn current_fields(&self, with_index: bool) -> HeaderFields {
        let (num, den) = self.nominal;
        let movi_bytes = self.written - MOVI_FOURCC_POS;
        let index_bytes = if with_index {
            CHUNK_HEADER_LEN + IDX1_ENTRY_LEN * self.index.len() as u64
        } else {
            0
        };
        HeaderFields {
            width: self.width,
            height: self.height,
            rate: num,
            scale: den,
            micros_per_frame: clamp_u32(div_round(1_000_000 * u128::from(den), u128::from(num))),
            max_bytes_per_sec: 0,
            flags: AVIF_ISINTERLEAVED | if with_index { AVIF_HASINDEX } else { 0 },
            total_frames: clamp_u32(self.index.len() as u128),
            suggested_buffer: self.max_chunk.saturating_add(CHUNK_HEADER_LEN as u32),
            riff_size: clamp_u32(u128::from(self.written + index_bytes - 8)),
            movi_size: clamp_u32(u128::from(movi_bytes)),
        }
    }

    /// Write the buffered bytes, rewrite the header in place, `fdatasync`.
    fn write_out(&mut self, fields: &HeaderFields) -> Result<(), MuxError> {
        self.out.flush().map_err(|e| self.io_error(e))?;
        let header = build_header(fields);
        let file = self.out.get_ref();
        let result = file.write_all_at(&header, 0).and_then(|()| file.sync_data());
        result.map_err(|e| self.io_error(e))?;
        self.flushed_frames = self.index.len();
        self.unflushed_first = None;
        Ok(())
    }

    /// Duration of the whole segment in ticks (last frame: up to `next_dts` or nominal).
    fn span_ticks(&self, next_dts: Option<i64>) -> i64 {
        match (self.first_dts, self.last_dts) {
            (Some(first), Some(last)) => {
                let last_duration = match next_dts {
                    Some(next) if next > last => next - last,
                    _ => self.nominal_ticks,
                };
                (last - first).saturating_add(last_duration)
            }
            _ => 0,
        }
    }

    /// (dwRate, dwScale) for `frames` frames lasting `ticks`: the nominal fraction when the
    /// measurement agrees with it to a thousandth of a frame per second, else millihertz.
    fn measured_rate(&self, frames: u64, ticks: i64) -> (u32, u32) {
        if frames == 0 || ticks <= 0 {
            return self.nominal;
        }
        let (num, den) = self.nominal;
        let milli =
            div_round(u128::from(frames) * u128::from(TIMESCALE) * 1000, ticks as u128).max(1);
        let nominal_milli = div_round(u128::from(num) * 1000, u128::from(den));
        if milli == nominal_milli {
            (num, den)
        } else {
            (clamp_u32(milli), 1000)
        }
    }
}

impl SegmentMuxer for AviWriter {
    fn push(&mut self, frame: &Frame) -> Result<(), MuxError> {
        self.check_usable()?;
        let format = &frame.format;
        if format.codec != Codec::Mjpeg || format.width != self.width || format.height != self.height
        {
            return Err(MuxError::Invalid {
                path: self.path.clone(),
                what: format!(
                    "frame is {} {}x{}, the segment is mjpeg {}x{}",
                    format.codec.name(),
                    format.width,
                    format.height,
                    self.width,
                    self.height
                ),
            });
        }
        if frame.data.is_empty() {
            return Err(MuxError::Invalid {
                path: self.path.clone(),
                what: "empty frame".into(),
            });
        }
        if let Some(last) = self.last_dts {
            if frame.dts < last {
                return Err(MuxError::Invalid {
                    path: self.path.clone(),
                    what: format!("decode time went backwards ({} after {last})", frame.dts),
                });
            }
        }
        let len = frame.data.len() as u64;
        let padded = len + (len & 1);
        let after = self.written + CHUNK_HEADER_LEN + padded;
        let index_after = CHUNK_HEADER_LEN + IDX1_ENTRY_LEN * (self.index.len() as u64 + 1);
        if after + index_after > AVI_MAX_BYTES {
            return Err(MuxError::Invalid {
                path: self.path.clone(),
                what: format!(
                    "a {len}-byte frame would take the file past the AVI limit of {AVI_MAX_BYTES} bytes"
                ),
            });
        }
        // Both fit in u32: the whole file stays below 1 GiB.
        let size = len as u32;
        let offset = (self.written - MOVI_FOURCC_POS) as u32;

        let mut chunk_header = [0u8; CHUNK_HEADER_LEN as usize];
        chunk_header[..4].copy_from_slice(b"00dc");
        chunk_header[4..].copy_from_slice(&size.to_le_bytes());
        let mut result = self.out.write_all(&chunk_header);
        if result.is_ok() {
            result = self.out.write_all(&frame.data);
        }
        if result.is_ok() && len & 1 == 1 {
            result = self.out.write_all(&[0]);
        }
        result.map_err(|e| self.io_error(e))?;

        self.written = after;
        self.index.push(IndexEntry { offset, size });
        self.max_chunk = self.max_chunk.max(size);
        self.first_dts.get_or_insert(frame.dts);
        self.last_dts = Some(frame.dts);
        self.unflushed_first
            .get_or_insert((frame.dts, frame.captured));
        Ok(())
    }

    fn flush(&mut self, _next_dts: Option<i64>) -> Result<(), MuxError> {
        self.check_usable()?;
        let fields = self.current_fields(false);
        self.write_out(&fields)
    }

    fn oldest_unflushed(&self) -> Option<Instant> {
        self.unflushed_first.map(|(_, captured)| captured)
    }

    fn unflushed_ticks(&self) -> i64 {
        match (self.unflushed_first, self.last_dts) {
            (Some((first, _)), Some(last)) => {
                (last - first).saturating_add(self.nominal_ticks)
            }
            _ => 0,
        }
    }

    fn projected_bytes(&self) -> u64 {
        // Everything pushed is already in the file or in the write buffer; finish adds idx1.
        self.written + CHUNK_HEADER_LEN + IDX1_ENTRY_LEN * self.index.len() as u64
    }

    fn finish(mut self: Box<Self>, next_dts: Option<i64>) -> Result<MuxSummary, MuxError> {
        self.check_usable()?;
        // Make the frames durable under the old header first, so a crash while the index is
        // written leaves a consistent index-less file.
        let fields = self.current_fields(false);
        self.write_out(&fields)?;

        let mut idx1 = Vec::with_capacity(
            (CHUNK_HEADER_LEN + IDX1_ENTRY_LEN * self.index.len() as u64) as usize,
        );
        idx1.extend_from_slice(b"idx1");
        idx1.extend_from_slice(&((IDX1_ENTRY_LEN * self.index.len() as u64) as u32).to_le_bytes());
        for entry in &self.index {
            idx1.extend_from_slice(b"00dc");
            idx1.extend_from_slice(&AVIIF_KEYFRAME.to_le_bytes());
            idx1.extend_from_slice(&entry.offset.to_le_bytes());
            idx1.extend_from_slice(&entry.size.to_le_bytes());
        }
        let result = self.out.write_all(&idx1).and_then(|()| self.out.flush());
        result.map_err(|e| self.io_error(e))?;

        let frames = self.index.len() as u64;
        let duration_ticks = self.span_ticks(next_dts);
        let mut fields = self.current_fields(true);
        let (rate, scale) = self.measured_rate(frames, duration_ticks);
        fields.rate = rate;
        fields.scale = scale;
        if frames > 0 && duration_ticks > 0 {
            // µs per frame = ticks * 1e6 / 90000 / frames.
            fields.micros_per_frame = clamp_u32(div_round(
                duration_ticks as u128 * 1_000_000,
                u128::from(TIMESCALE) * u128::from(frames),
            ));
            let movi_bytes = self.written - MOVI_FOURCC_POS;
            fields.max_bytes_per_sec = clamp_u32(div_round(
                u128::from(movi_bytes) * u128::from(TIMESCALE),
                duration_ticks as u128,
            ));
        }
        let bytes = self.written + idx1.len() as u64;
        self.written = bytes;
        fields.riff_size = clamp_u32(u128::from(bytes - 8));
        let header = build_header(&fields);
        let file = self.out.get_ref();
        let result = file.write_all_at(&header, 0).and_then(|()| file.sync_data());
        result.map_err(|e| self.io_error(e))?;
        Ok(MuxSummary {
            frames,
            duration_ticks,
            bytes,
        })
    }
}

fn div_round(num: u128, den: u128) -> u128 {
    if den == 0 {
        0
    } else {
        (num + den / 2) / den
    }
}

fn clamp_u32(v: u128) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Little-endian writer over the fixed-size header array.
struct HeaderBuf {
    bytes: [u8; HEADER_LEN],
    pos: usize,
}

impl HeaderBuf {
    fn fourcc(&mut self, tag: &[u8; 4]) {
        self.bytes[self.pos..self.pos + 4].copy_from_slice(tag);
        self.pos += 4;
    }
    fn u32(&mut self, v: u32) {
        self.bytes[self.pos..self.pos + 4].copy_from_slice(&v.to_le_bytes());
        self.pos += 4;
    }
    fn u16(&mut self, v: u16) {
        self.bytes[self.pos..self.pos + 2].copy_from_slice(&v.to_le_bytes());
        self.pos += 2;
    }
}

/// The complete header up to and including the `movi` fourcc.
fn build_header(f: &HeaderFields) -> [u8; HEADER_LEN] {
    let mut h = HeaderBuf {
        bytes: [0; HEADER_LEN],
        pos: 0,
    };
    h.fourcc(b"RIFF");
    h.u32(f.riff_size);
    h.fourcc(b"AVI ");
    h.fourcc(b"LIST");
    h.u32(192); // hdrl: 'hdrl' + avih (8+56) + LIST strl (12 + strh 8+56 + strf 8+40)
    h.fourcc(b"hdrl");

    h.fourcc(b"avih");
    h.u32(56);
    h.u32(f.micros_per_frame);
    h.u32(f.max_bytes_per_sec);
    h.u32(0); // dwPaddingGranularity
    h.u32(f.flags);
    h.u32(f.total_frames);
    h.u32(0); // dwInitialFrames
    h.u32(1); // dwStreams
    h.u32(f.suggested_buffer);
    h.u32(f.width);
    h.u32(f.height);
    for _ in 0..4 {
        h.u32(0); // dwReserved
    }

    h.fourcc(b"LIST");
    h.u32(116); // 'strl' + strh (8+56) + strf (8+40)
    h.fourcc(b"strl");
    h.fourcc(b"strh");
    h.u32(56);
    h.fourcc(b"vids");
    h.fourcc(b"MJPG");
    h.u32(0); // dwFlags
    h.u16(0); // wPriority
    h.u16(0); // wLanguage
    h.u32(0); // dwInitialFrames
    h.u32(f.scale);
    h.u32(f.rate);
    h.u32(0); // dwStart
    h.u32(f.total_frames); // dwLength
    h.u32(f.suggested_buffer);
    h.u32(u32::MAX); // dwQuality: default
    h.u32(0); // dwSampleSize: variable
    h.u16(0); // rcFrame left, top, right, bottom
    h.u16(0);
    h.u16(f.width as u16); // create() keeps sizes within i16
    h.u16(f.height as u16);

    h.fourcc(b"strf");
    h.u32(40);
    h.u32(40); // biSize
    h.u32(f.width);
    h.u32(f.height);
    h.u16(1); // biPlanes
    h.u16(24); // biBitCount
    h.fourcc(b"MJPG");
    h.u32(f.width.saturating_mul(f.height).saturating_mul(3)); // biSizeImage
    for _ in 0..4 {
        h.u32(0); // biXPelsPerMeter, biYPelsPerMeter, biClrUsed, biClrImportant
    }

    h.fourcc(b"LIST");
    h.u32(f.movi_size);
    h.fourcc(b"movi");
    debug_assert_eq!(h.pos, HEADER_LEN);
    h.bytes
}
