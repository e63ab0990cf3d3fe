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
        let result = file
            .write_all_at(&header, 0)
            .and_then(|()| file.sync_data());
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
        let milli = div_round(
            u128::from(frames) * u128::from(TIMESCALE) * 1000,
            ticks as u128,
        )
        .max(1);
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
        if format.codec != Codec::Mjpeg
            || format.width != self.width
            || format.height != self.height
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
            (Some((first, _)), Some(last)) => (last - first).saturating_add(self.nominal_ticks),
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
        let result = file
            .write_all_at(&header, 0)
            .and_then(|()| file.sync_data());
        result.map_err(|e| self.io_error(e))?;
        Ok(MuxSummary {
            frames,
            duration_ticks,
            bytes,
        })
    }
}

/// `num / den` rounded to nearest; 0 when `den` is 0.
fn div_round(num: u128, den: u128) -> u128 {
    num.saturating_add(den / 2).checked_div(den).unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::SystemTime;

    fn mjpeg_format(width: u32, height: u32, rate: Option<(u32, u32)>) -> Arc<StreamFormat> {
        Arc::new(StreamFormat {
            codec: Codec::Mjpeg,
            width,
            height,
            frame_rate: rate,
            sps: Vec::new(),
            pps: Vec::new(),
        })
    }

    fn frame(data: &[u8], dts: i64, format: &Arc<StreamFormat>) -> Frame {
        Frame {
            data: data.to_vec(),
            keyframe: true,
            pts: dts,
            dts,
            captured: Instant::now(),
            wall: SystemTime::now(),
            format: Arc::clone(format),
            dropped_before: 0,
        }
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn layout_after_flush_and_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.avi");
        let fmt = mjpeg_format(320, 240, Some((30, 1)));
        let mut w = AviWriter::create(&path, &fmt).unwrap();
        assert_eq!(w.projected_bytes(), HEADER_LEN as u64 + 8);
        assert_eq!(w.unflushed_ticks(), 0);
        assert!(w.oldest_unflushed().is_none());

        w.push(&frame(&[1, 2, 3], 0, &fmt)).unwrap(); // odd: padded
        w.push(&frame(&[4, 5, 6, 7], 3000, &fmt)).unwrap();
        assert_eq!(w.unflushed_ticks(), 6000);
        assert!(w.oldest_unflushed().is_some());
        let expected_len = HEADER_LEN as u64 + (8 + 4) + (8 + 4);
        assert_eq!(w.projected_bytes(), expected_len + 8 + 32);
        w.flush(Some(6000)).unwrap();
        assert_eq!(w.unflushed_ticks(), 0);
        assert!(w.oldest_unflushed().is_none());

        let b = std::fs::read(&path).unwrap();
        assert_eq!(b.len() as u64, expected_len);
        assert_eq!(&b[0..4], b"RIFF");
        assert_eq!(u32_at(&b, 4) as usize, b.len() - 8);
        assert_eq!(&b[8..12], b"AVI ");
        assert_eq!(u32_at(&b, 32), 33_333); // µs per frame
        assert_eq!(u32_at(&b, 44), AVIF_ISINTERLEAVED); // no index yet
        assert_eq!(u32_at(&b, 48), 2); // dwTotalFrames
        assert_eq!((u32_at(&b, 64), u32_at(&b, 68)), (320, 240));
        assert_eq!(&b[108..116], b"vidsMJPG");
        assert_eq!((u32_at(&b, 128), u32_at(&b, 132)), (1, 30)); // scale, rate
        assert_eq!(u32_at(&b, 140), 2); // dwLength
        assert_eq!(&b[188..192], b"MJPG");
        assert_eq!(&b[212..216], b"LIST");
        assert_eq!(u32_at(&b, 216) as usize, b.len() - 220);
        assert_eq!(&b[220..228], b"movi00dc");
        assert_eq!(u32_at(&b, 228), 3);
        assert_eq!(&b[232..236], &[1, 2, 3, 0]);
        assert_eq!(&b[236..240], b"00dc");

        // A third frame 3100 ticks later, finished with no next_dts: 3 frames in 9100 ticks.
        w.push(&frame(&[8; 10], 6100, &fmt)).unwrap();
        let summary = Box::new(w).finish(None).unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!(summary.frames, 3);
        assert_eq!(summary.duration_ticks, 9100);
        assert_eq!(summary.bytes, b.len() as u64);
        assert_eq!(u32_at(&b, 4) as usize, b.len() - 8);
        assert_eq!(u32_at(&b, 44), AVIF_ISINTERLEAVED | AVIF_HASINDEX);
        assert_eq!(u32_at(&b, 48), 3);
        // 3 * 90000 / 9100 = 29.6703 fps
        assert_eq!((u32_at(&b, 128), u32_at(&b, 132)), (1000, 29_670));
        assert_eq!(u32_at(&b, 32), 33_704);
        let movi_end = 220 + u32_at(&b, 216) as usize;
        assert_eq!(&b[movi_end..movi_end + 4], b"idx1");
        assert_eq!(u32_at(&b, movi_end + 4), 48);
        let entries: Vec<(u32, u32)> = (0..3)
            .map(|i| {
                let e = movi_end + 8 + 16 * i;
                assert_eq!(&b[e..e + 4], b"00dc");
                assert_eq!(u32_at(&b, e + 4), AVIIF_KEYFRAME);
                (u32_at(&b, e + 8), u32_at(&b, e + 12))
            })
            .collect();
        assert_eq!(entries, vec![(4, 3), (16, 4), (28, 10)]);
        assert_eq!(movi_end + 8 + 48, b.len());
    }

    #[test]
    fn measured_rate_keeps_exact_nominal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ntsc.avi");
        let fmt = mjpeg_format(16, 16, Some((30000, 1001)));
        let mut w = AviWriter::create(&path, &fmt).unwrap();
        for n in 0..10 {
            w.push(&frame(&[0xAA; 6], n * 3003, &fmt)).unwrap();
        }
        let summary = Box::new(w).finish(Some(30030)).unwrap();
        assert_eq!(summary.duration_ticks, 30030);
        let b = std::fs::read(&path).unwrap();
        assert_eq!((u32_at(&b, 128), u32_at(&b, 132)), (1001, 30000));
        assert_eq!(u32_at(&b, 32), 33_367);
    }

    #[test]
    fn empty_segment_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.avi");
        let w = AviWriter::create(&path, &mjpeg_format(16, 16, None)).unwrap();
        let summary = Box::new(w).finish(None).unwrap();
        assert_eq!((summary.frames, summary.duration_ticks), (0, 0));
        let b = std::fs::read(&path).unwrap();
        assert_eq!(b.len(), HEADER_LEN + 8);
        assert_eq!((u32_at(&b, 128), u32_at(&b, 132)), (1, 30)); // default rate
    }

    #[test]
    fn refuses_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.avi");
        let fmt = mjpeg_format(64, 48, Some((25, 1)));
        let mut w = AviWriter::create(&path, &fmt).unwrap();
        // The file exists now: a second writer must not clobber it.
        assert!(matches!(
            AviWriter::create(&path, &fmt),
            Err(MuxError::Io { .. })
        ));
        let h264 = Arc::new(StreamFormat {
            codec: Codec::H264,
            ..(*fmt).clone()
        });
        assert!(matches!(
            AviWriter::create(&dir.path().join("h.avi"), &h264),
            Err(MuxError::Invalid { .. })
        ));
        assert!(AviWriter::create(&dir.path().join("z.avi"), &mjpeg_format(0, 48, None)).is_err());

        w.push(&frame(&[1; 4], 3600, &fmt)).unwrap();
        assert!(w.push(&frame(&[], 7200, &fmt)).is_err());
        assert!(
            w.push(&frame(&[1; 4], 0, &fmt)).is_err(),
            "dts went backwards"
        );
        let other = mjpeg_format(32, 48, Some((25, 1)));
        assert!(w.push(&frame(&[1; 4], 7200, &other)).is_err());
        assert!(w.push(&frame(&[1; 4], 7200, &h264)).is_err());

        // Pretend the file is nearly full: the frame that would cross 1 GiB is refused.
        let room = AVI_MAX_BYTES - w.projected_bytes();
        w.written += room - 100;
        let e = w.push(&frame(&[1; 100], 7200, &fmt)).unwrap_err();
        assert!(e.to_string().contains("past the AVI limit"), "{e}");
        assert!(w.projected_bytes() <= AVI_MAX_BYTES);
        w.written -= room - 100;
        w.push(&frame(&[1; 4], 7200, &fmt)).unwrap();
        assert_eq!(Box::new(w).finish(None).unwrap().frames, 2);
    }

    /// End-to-end checks against ffmpeg (skipped when it is not installed).
    mod ffmpeg {
        use super::*;
        use crate::source::mjpeg_stream::MjpegStream;
        use crate::source::test_pattern::{TestPattern, TestPatternOptions};
        use crate::source::Source;
        use std::process::Command;

        fn have_ffmpeg() -> bool {
            let ok = ["ffmpeg", "ffprobe"].iter().all(|tool| {
                Command::new(tool)
                    .arg("-version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
            if !ok {
                eprintln!("note: ffmpeg/ffprobe not installed, skipping the end-to-end AVI test");
            }
            ok
        }

        /// Run a tool; return (stdout, stderr), failing the test on a non-zero exit.
        fn run(tool: &str, args: &[&str]) -> (String, String) {
            let out = Command::new(tool).args(args).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
            (stdout, stderr)
        }

        /// The hash column of `ffmpeg -f framemd5`.
        fn frame_hashes(path: &Path) -> Vec<String> {
            let p = path.to_str().unwrap();
            let args = [
                "-v",
                "error",
                "-i",
                p,
                "-fps_mode",
                "passthrough",
                "-f",
                "framemd5",
                "-",
            ];
            let (stdout, _) = run("ffmpeg", &args);
            stdout
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_string()))
                .collect()
        }

        fn assert_clean(path: &Path) {
            let p = path.to_str().unwrap();
            let (out, err) = run("ffprobe", &["-v", "error", p]);
            assert_eq!((out.as_str(), err.as_str()), ("", ""), "ffprobe {p}");
            let (out, err) = run("ffmpeg", &["-v", "error", "-i", p, "-f", "null", "-"]);
            assert_eq!((out.as_str(), err.as_str()), ("", ""), "ffmpeg decode {p}");
        }

        fn probe(path: &Path, entries: &str) -> String {
            let p = path.to_str().unwrap();
            let args = ["-v", "error", "-show_entries", entries, "-of", "csv=p=0", p];
            run("ffprobe", &args).0.trim().to_string()
        }

        #[test]
        fn mjpeg_stream_to_avi_matches_ffmpeg() {
            if !have_ffmpeg() {
                return;
            }
            let dir = tempfile::tempdir().unwrap();
            let input = dir.path().join("in.mjpeg");
            run(
                "ffmpeg",
                &[
                    "-v",
                    "error",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=320x240:rate=30",
                    "-frames:v",
                    "60",
                    "-c:v",
                    "mjpeg",
                    "-pix_fmt",
                    "yuvj422p",
                    "-q:v",
                    "3",
                    "-f",
                    "mjpeg",
                    input.to_str().unwrap(),
                ],
            );
            let reference = frame_hashes(&input);
            assert_eq!(reference.len(), 60);

            let file = std::fs::File::open(&input).unwrap();
            let mut source =
                MjpegStream::new(Box::new(file), "in.mjpeg".into(), (30, 1), false, false);
            let seg = dir.path().join("seg.avi");
            let mut w: Option<AviWriter> = None;
            let mut chunk_ends = Vec::new();
            let mut snapshot = Vec::new();
            let mut n = 0;
            while let Some(f) = source.next_frame().unwrap() {
                let writer = match &mut w {
                    Some(writer) => writer,
                    None => w.insert(AviWriter::create(&seg, &f.format).unwrap()),
                };
                writer.push(&f).unwrap();
                chunk_ends.push(writer.written - (f.data.len() as u64 & 1));
                n += 1;
                if n == 20 || n == 45 {
                    writer.flush(Some(f.dts + 3000)).unwrap();
                }
                if n == 55 {
                    // A crash now: the header says 45 frames, the file holds 55.
                    writer.out.flush().unwrap();
                    snapshot = std::fs::read(&seg).unwrap();
                }
            }
            assert_eq!(n, 60);
            let summary = Box::new(w.unwrap()).finish(Some(60 * 3000)).unwrap();
            assert_eq!(summary.frames, 60);
            assert_eq!(summary.duration_ticks, 180_000);
            assert_eq!(summary.bytes, std::fs::metadata(&seg).unwrap().len());

            assert_clean(&seg);
            assert_eq!(frame_hashes(&seg), reference);
            assert_eq!(
                probe(&seg, "stream=codec_name,width,height,r_frame_rate"),
                "mjpeg,320,240,30/1"
            );
            assert_eq!(probe(&seg, "format=duration"), "2.000000");

            // Copies of the crashed file cut anywhere give exactly their complete frames.
            let mid = |k: usize| (chunk_ends[k - 1] + chunk_ends[k]) / 2;
            let mut cuts = vec![
                HEADER_LEN as u64,  // no frame at all
                chunk_ends[0],      // exactly one frame
                mid(10),            // inside frame 11, before the first flush
                chunk_ends[44] + 4, // inside the chunk header after the flushed part
                mid(50),            // past the flushed sizes
                snapshot.len() as u64,
            ];
            let len = snapshot.len() as u64;
            cuts.extend((1..16).map(|i| HEADER_LEN as u64 + (len - HEADER_LEN as u64) * i / 16));
            for cut in cuts {
                let complete = chunk_ends.iter().filter(|&&e| e <= cut).count();
                let cut_path = dir.path().join(format!("cut{cut}.avi"));
                std::fs::write(&cut_path, &snapshot[..cut as usize]).unwrap();
                if complete == 0 {
                    // Nothing to decode, but the header alone must still parse.
                    run("ffprobe", &["-v", "error", cut_path.to_str().unwrap()]);
                    continue;
                }
                let hashes = frame_hashes(&cut_path);
                // ffmpeg may add the truncated last chunk as one more (damaged) picture.
                let got = hashes.len();
                assert!(
                    got == complete || got == complete + 1,
                    "cut at {cut}: {got} frames"
                );
                assert_eq!(hashes[..complete], reference[..complete], "cut at {cut}");
            }
        }

        #[test]
        fn test_pattern_frames_decode() {
            if !have_ffmpeg() {
                return;
            }
            let dir = tempfile::tempdir().unwrap();
            for (width, height, quality) in [(320, 240, 80), (640, 360, 100), (64, 32, 1)] {
                let opts = TestPatternOptions {
                    width,
                    height,
                    fps: 30,
                    quality,
                };
                let mut tp = TestPattern::new(opts).unwrap();
                let seg = dir.path().join(format!("tp{width}.avi"));
                let started = Instant::now();
                let first = tp.next_frame().unwrap().unwrap();
                let mut w = AviWriter::create(&seg, &first.format).unwrap();
                w.push(&first).unwrap();
                for _ in 1..5 {
                    w.push(&tp.next_frame().unwrap().unwrap()).unwrap();
                }
                // Frame 4 is due 4/30 s after frame 0.
                assert!(started.elapsed().as_millis() >= 133, "paced at 30 fps");
                w.flush(None).unwrap();
                let summary = Box::new(w).finish(Some(5 * 3000)).unwrap();
                assert_eq!(summary.frames, 5);
                assert_clean(&seg);
                assert_eq!(
                    probe(&seg, "stream=codec_name,width,height"),
                    format!("mjpeg,{width},{height}")
                );
                assert_eq!(frame_hashes(&seg).len(), 5);
            }
        }
    }
}
