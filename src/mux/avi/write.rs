//! MJPEG segments in AVI 1.0 (RIFF `AVI `), written by hand ([`AviWriter`]).
//!
//! Owns the bytes of one `.avi` segment file: the header, the `movi` list of `00dc` chunks
//! (one complete JPEG each) and, when the segment is finished, the legacy `idx1` index; the
//! layout of each is defined in [`super::layout`]. No usable crate exists for this: `avi`
//! 0.0.0 on crates.io is an empty placeholder and `oxideav-avi` is a 20k-line 0.0.x
//! framework; the format we need is a few hundred bytes of header.
//!
//! Crash safety: frames are written through to the file as they are pushed (AVI has no
//! per-fragment header to hold them back for). Every [`SegmentMuxer::flush`] rewrites the
//! 272-byte header in place (within the first sector) with the sizes and frame count of
//! what is on disk and, from the first flush on, the first frame's wall-clock time and
//! stream pts in dashcam's start chunk, then `fdatasync`s, so the file as it stands after a
//! flush is a valid, index-less AVI. A file cut anywhere (power loss) still plays every
//! complete chunk: readers scan `movi` chunk by chunk when `idx1` is missing (ffmpeg does),
//! and a `movi` size that is too small or points past the end of the file is tolerated by
//! them. `finish` appends `idx1`, sets `AVIF_HASINDEX` and replaces the nominal frame rate
//! with the measured one so that the file's duration matches real time.
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

use super::layout::{
    self, HeaderFields, StartStamp, AVIF_HASINDEX, AVIF_ISINTERLEAVED, CHUNK_HEADER_LEN,
    HEADER_LEN, IDX1_ENTRY_LEN,
};
use crate::frame::{Codec, Frame, StreamFormat, TIMESCALE};
use crate::mux::{MuxError, MuxSummary, SegmentMuxer};

/// Hard ceiling of one AVI 1.0 file (RIFF sizes beyond 1 GiB break old readers).
pub const AVI_MAX_BYTES: u64 = 1 << 30;

/// File offset of the `movi` fourcc; `idx1` offsets are relative to it.
const MOVI_FOURCC_POS: u64 = HEADER_LEN as u64 - 4;

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

/// An open AVI segment file receiving MJPEG frames.
pub(crate) struct AviWriter {
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
    /// The segment's first frame, recorded in the header's start chunk.
    start: Option<StartStamp>,
    /// Set after a failed write: the file's tail is unknown, refuse to go on.
    broken: bool,
}

impl AviWriter {
    /// Create `path` (it must not exist) and write the AVI header for `format`.
    pub(crate) fn create(path: &Path, format: &StreamFormat) -> Result<AviWriter, MuxError> {
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
            start: None,
            broken: false,
        };
        let header = layout::write_header(&writer.current_fields(false), None);
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
        let header = layout::write_header(fields, self.start.as_ref());
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

        let mut result = self.out.write_all(&layout::frame_chunk_header(size));
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
        self.start.get_or_insert(StartStamp {
            wall: frame.wall,
            pts: frame.pts,
            dts: frame.dts,
        });
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

        let idx1 = layout::idx1(self.index.iter().map(|e| (e.offset, e.size)));
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
        let header = layout::write_header(&fields, self.start.as_ref());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::avi::layout::{read_header, AVIIF_KEYFRAME};
    use crate::test_support::{frame as frame_of, mjpeg_format};
    use std::sync::Arc;
    use std::time::SystemTime;

    fn frame(data: &[u8], dts: i64, format: &Arc<StreamFormat>) -> Frame {
        frame_of(format, data.to_vec(), dts, dts, true)
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn layout_after_flush_and_finish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.avi");
        let fmt = mjpeg_format(320, 240, Some((30, 1)));
        let mut w = AviWriter::create(&path, &fmt).expect("create");
        assert_eq!(w.projected_bytes(), HEADER_LEN as u64 + 8);
        assert_eq!(w.unflushed_ticks(), 0);
        assert!(w.oldest_unflushed().is_none());

        let wall0 = SystemTime::now();
        let mut first = frame(&[1, 2, 3], 0, &fmt); // odd: padded
        first.wall = wall0;
        first.pts = 1500;
        w.push(&first).expect("push");
        w.push(&frame(&[4, 5, 6, 7], 3000, &fmt)).expect("push");
        assert_eq!(w.unflushed_ticks(), 6000);
        assert!(w.oldest_unflushed().is_some());
        let expected_len = HEADER_LEN as u64 + (8 + 4) + (8 + 4);
        assert_eq!(w.projected_bytes(), expected_len + 8 + 32);
        w.flush(Some(6000)).expect("flush");
        assert_eq!(w.unflushed_ticks(), 0);
        assert!(w.oldest_unflushed().is_none());

        let b = std::fs::read(&path).expect("read");
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
        // The start chunk, then the movi list.
        assert_eq!(&b[212..228], b"JUNK\x28\0\0\0dashcam\0");
        let h = read_header(&b).expect("header");
        assert_eq!(
            h.start.map(|s| (s.wall, s.pts, s.dts)),
            Some((wall0, 1500, 0))
        );
        assert_eq!(&b[260..264], b"LIST");
        assert_eq!(u32_at(&b, 264) as usize, b.len() - 268);
        assert_eq!(&b[268..276], b"movi00dc");
        assert_eq!(u32_at(&b, 276), 3);
        assert_eq!(&b[280..284], &[1, 2, 3, 0]);
        assert_eq!(&b[284..288], b"00dc");

        // A third frame 3100 ticks later, finished with no next_dts: 3 frames in 9100 ticks.
        w.push(&frame(&[8; 10], 6100, &fmt)).expect("push");
        let summary = Box::new(w).finish(None).expect("finish");
        let b = std::fs::read(&path).expect("read");
        assert_eq!(summary.frames, 3);
        assert_eq!(summary.duration_ticks, 9100);
        assert_eq!(summary.bytes, b.len() as u64);
        assert_eq!(u32_at(&b, 4) as usize, b.len() - 8);
        assert_eq!(u32_at(&b, 44), AVIF_ISINTERLEAVED | AVIF_HASINDEX);
        assert_eq!(u32_at(&b, 48), 3);
        // 3 * 90000 / 9100 = 29.6703 fps
        assert_eq!((u32_at(&b, 128), u32_at(&b, 132)), (1000, 29_670));
        assert_eq!(u32_at(&b, 32), 33_704);
        assert_eq!(read_header(&b).expect("header").start, h.start);
        let movi_end = 268 + u32_at(&b, 264) as usize;
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
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ntsc.avi");
        let fmt = mjpeg_format(16, 16, Some((30000, 1001)));
        let mut w = AviWriter::create(&path, &fmt).expect("create");
        for n in 0..10 {
            w.push(&frame(&[0xAA; 6], n * 3003, &fmt)).expect("push");
        }
        let summary = Box::new(w).finish(Some(30030)).expect("finish");
        assert_eq!(summary.duration_ticks, 30030);
        let b = std::fs::read(&path).expect("read");
        assert_eq!((u32_at(&b, 128), u32_at(&b, 132)), (1001, 30000));
        assert_eq!(u32_at(&b, 32), 33_367);
    }

    #[test]
    fn empty_segment_is_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e.avi");
        let w = AviWriter::create(&path, &mjpeg_format(16, 16, None)).expect("create");
        let summary = Box::new(w).finish(None).expect("finish");
        assert_eq!((summary.frames, summary.duration_ticks), (0, 0));
        let b = std::fs::read(&path).expect("read");
        assert_eq!(b.len(), HEADER_LEN + 8);
        assert_eq!((u32_at(&b, 128), u32_at(&b, 132)), (1, 30)); // default rate
                                                                 // No frame, no start: the start chunk is plain padding.
        assert_eq!(read_header(&b).expect("header").start, None);
    }

    #[test]
    fn refuses_bad_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.avi");
        let fmt = mjpeg_format(64, 48, Some((25, 1)));
        let mut w = AviWriter::create(&path, &fmt).expect("create");
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

        w.push(&frame(&[1; 4], 3600, &fmt)).expect("push");
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
        w.push(&frame(&[1; 4], 7200, &fmt)).expect("push");
        assert_eq!(Box::new(w).finish(None).expect("finish").frames, 2);
    }
}
