//! H.264 → fragmented MP4 segment writer ([`Fmp4Writer`]).
//!
//! # What it owns
//!
//! The bytes of one `.mp4` segment file, from its creation (`O_EXCL`) to its completion. The
//! file is laid out so that it is playable at every instant, even if the process or the
//! power dies:
//!
//! ```text
//! ftyp
//! moov(mvhd trak(tkhd free|edts mdia(mdhd hdlr minf(vmhd dinf stbl(stsd/avc1/avcC, empty tables)))) mvex(mehd trex))
//! [free] moof mdat  [free] moof mdat  ...   one write + fdatasync per pair
//! mfra(tfra mfro)                           only once finished
//! ```
//!
//! `ftyp` + `moov` are written and `fdatasync`ed by [`Fmp4Writer::create`]. Frames are
//! buffered in memory (one reused payload buffer and a small per-sample table) until
//! [`SegmentMuxer::flush`], which appends one `moof` + `mdat` pair with a single `writev`
//! and `fdatasync`s. [`SegmentMuxer::finish`] appends the `mfra` index and patches the
//! durations (mvhd, tkhd, mdhd, mehd, elst) with positioned writes so players show the
//! real length; a file that was never finished shows the length of its fragments.
//!
//! # Crash safety
//!
//! A file cut anywhere holds the init segment, complete fragments and at most one torn last
//! fragment. A torn `mdat` is harmless (players decode up to the cut), but a torn `moof`
//! is not: ffmpeg refuses the *whole file* when a `trun` ends early. So a `moof` must be on
//! disk completely or not at all:
//!
//! - the `moof` + `mdat` header of a fragment never crosses a 4 KiB boundary: a `free` box
//!   pads up to the next page when needed. A write cut by a signal stops at a page boundary
//!   and ext4 persists whole blocks, so the `moof` is either all there or absent;
//! - a `moof` larger than a page (more than ~250 frames per fragment) is written as a
//!   `free` box, synced, then renamed to `moof` with a 4-byte write and synced again.
//!   Until the rename, players skip the fragment.
//!
//! Nothing is counted as written until `fdatasync` returned; a failed flush truncates the
//! file back to its last complete fragment and a retry rewrites the same fragment.
//!
//! # Timeline
//!
//! One 90 kHz clock ([`crate::frame::TIMESCALE`]) for the movie and the track, so nothing
//! is rounded. Decode time 0 is the first frame's dts, sample durations are dts
//! differences (at least 1 tick; the last one from the next dts, else estimated), and each
//! fragment's `tfdt` follows the stream's dts unless that would overlap the previous
//! fragment. Presentation times come from the stream's pts as signed composition offsets
//! (`trun` version 1). For B-frame streams the first fragment's reorder delay is added
//! to every offset, so that no offset of the first fragment is negative, and an edit
//! list (written over a `free` placeholder in the first sector of the file at the first
//! flush) starts the movie at that delay: the first displayed frame is at exactly 0 in
//! ffmpeg, which otherwise shifts negative offsets. Streams without reordering get no
//! edit list.
//!
//! # What it must never do
//!
//! Decide when to cut a segment or a fragment (the segment writer's job), rename or delete
//! any file, fsync the directory (the caller does), or panic on odd input: bad timestamps
//! are clamped, bad frames and I/O failures are errors.
//!
//! # Why hand-written
//!
//! No crate fits a crash-safe recorder on a Pi Zero: `shiguredo_mp4` has date-versioned
//! releases with API churn; `mp4` writes the `moov` at the end, so a file cut before it is
//! closed has 0 playable frames; `muxide` keeps the whole file in RAM; `mp4e` rounds
//! durations to milliseconds. The subset needed here (one H.264 track, fragments) is a few
//! hundred lines; the box builders live in [`super::mp4_boxes`].

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::mp4_boxes::{self as boxes, MoovLayout, TfraEntry, TrunSample};
use super::{MuxError, MuxSummary, SegmentMuxer};
use crate::frame::{Codec, Frame, StreamFormat};

/// One buffered frame, as the fragment needs it.
#[derive(Clone, Copy, Debug)]
struct Pending {
    dts: i64,
    pts: i64,
    size: u32,
    keyframe: bool,
}

/// Writes one H.264 stream into one fragmented MP4 file. See the module documentation.
pub struct Fmp4Writer {
    file: File,
    path: PathBuf,
    frame_ticks: i64,
    /// Where the `moov` fields patched later are.
    layout: MoovLayout,

    /// Bytes of complete boxes on disk; the next fragment is written here.
    written: u64,
    /// `mfhd` sequence number of the next fragment (1-based).
    sequence: u32,
    /// Frames in complete fragments.
    frames: u64,
    /// Decode time (file timeline) right after the last written sample.
    decode_end: u64,
    /// Duration of the last written sample, for estimates.
    last_duration: Option<i64>,
    /// Stream dts of the segment's first frame: file decode time 0.
    origin_dts: Option<i64>,
    /// Presentation timeline (fixed by the first flush).
    presentation: Option<Presentation>,
    /// An edit list was written (the first fragment had B-frame delay).
    edit_list: bool,
    /// One random access point per fragment that has a keyframe.
    keyframes: Vec<TfraEntry>,

    /// Frames buffered since the last flush, and their bytes (already AVCC).
    pending: Vec<Pending>,
    payload: Vec<u8>,
    oldest: Option<Instant>,

    /// Scratch buffers reused by every flush.
    trun: Vec<TrunSample>,
    header: Vec<u8>,
}

impl Fmp4Writer {
    /// Create the file at `path` (which must not exist) and write the init segment
    /// (`ftyp` + `moov`) for `format`, durably (`fdatasync`).
    pub fn create(path: &Path, format: &StreamFormat) -> Result<Fmp4Writer, MuxError> {
        let invalid = |what: String| MuxError::Invalid {
            path: path.display().to_string(),
            what,
        };
        if format.codec != Codec::H264 {
            return Err(invalid(format!(
                "fragmented MP4 holds H.264, not {}",
                format.codec.name()
            )));
        }
        let avcc = boxes::avcc(&format.sps, &format.pps).map_err(invalid)?;
        let (mut width, mut height) = (format.width, format.height);
        if width == 0 || height == 0 {
            if let Some((w, h)) = boxes::parse_sps(&format.sps).and_then(|s| s.dimensions) {
                (width, height) = (w, h);
            }
        }
        let creation_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() + boxes::MP4_EPOCH_OFFSET);

        let mut init = Vec::with_capacity(1024);
        boxes::ftyp(&mut init);
        let layout = boxes::moov(
            &mut init,
            &boxes::TrackInfo {
                width,
                height,
                creation_time,
                avcc,
            },
        );

        let io = |source| MuxError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io)?;
        file.write_all(&init).map_err(io)?;
        file.sync_data().map_err(io)?;

        Ok(Fmp4Writer {
            file,
            path: path.to_path_buf(),
            frame_ticks: format.frame_ticks().max(1),
            layout,
            written: init.len() as u64,
            sequence: 1,
            frames: 0,
            decode_end: 0,
            last_duration: None,
            origin_dts: None,
            presentation: None,
            edit_list: false,
            keyframes: Vec::new(),
            pending: Vec::new(),
            payload: Vec::new(),
            oldest: None,
            trun: Vec::new(),
            header: Vec::with_capacity(4096),
        })
    }

    fn io_err(&self, source: std::io::Error) -> MuxError {
        MuxError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn invalid(&self, what: impl Into<String>) -> MuxError {
        MuxError::Invalid {
            path: self.path.display().to_string(),
            what: what.into(),
        }
    }

    /// Estimated duration of the last buffered sample when nothing better is known: the
    /// previous buffered sample's duration, else the last written one, else nominal.
    fn estimated_last_duration(&self) -> i64 {
        let n = self.pending.len();
        if n >= 2 {
            let d = self.pending[n - 1]
                .dts
                .saturating_sub(self.pending[n - 2].dts);
            if d > 0 {
                return d;
            }
        }
        self.last_duration
            .filter(|&d| d > 0)
            .unwrap_or(self.frame_ticks)
    }

    /// Write `header` then `payload` at `self.written`, normally as one `writev`.
    fn write_fragment(&mut self) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(self.written))?;
        let (header, payload) = (&self.header[..], &self.payload[..]);
        let n = loop {
            match self
                .file
                .write_vectored(&[IoSlice::new(header), IoSlice::new(payload)])
            {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 && header.len() + payload.len() > 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        if n < header.len() {
            self.file.write_all(&header[n..])?;
            self.file.write_all(payload)
        } else {
            self.file.write_all(&payload[n - header.len()..])
        }
    }

    /// Build the `moof` + `mdat` header for the buffered frames into `self.header` and the
    /// bookkeeping that becomes true once it is on disk.
    fn build_fragment(&mut self, next_dts: Option<i64>) -> Result<FragmentCommit, MuxError> {
        let n = self.pending.len();
        let origin_dts = self.origin_dts.unwrap_or(self.pending[0].dts);
        // Decode time of the first sample: where the stream says, unless that would overlap
        // the previous fragment (its last duration was estimated too long).
        let stream_time =
            u64::try_from(self.pending[0].dts.saturating_sub(origin_dts)).unwrap_or(0);
        let base = self.decode_end.max(stream_time);

        // Durations (decode timeline).
        self.trun.clear();
        let mut last_duration = self.frame_ticks;
        for i in 0..n {
            let s = self.pending[i];
            let duration = if i + 1 < n {
                // Non-increasing dts: 1 tick keeps the decode timeline close to the stream's.
                self.pending[i + 1].dts.saturating_sub(s.dts).max(1)
            } else {
                match next_dts.map(|d| d.saturating_sub(s.dts)) {
                    Some(d) if d > 0 => d,
                    _ => self.estimated_last_duration(),
                }
            };
            let duration = u32::try_from(duration.clamp(1, i64::from(u32::MAX))).unwrap_or(1);
            self.trun.push(TrunSample {
                duration,
                size: s.size,
                flags: if s.keyframe {
                    boxes::SAMPLE_FLAGS_SYNC
                } else {
                    boxes::SAMPLE_FLAGS_NON_SYNC
                },
                cto: 0,
            });
            last_duration = i64::from(duration);
        }

        // Presentation timeline, fixed by the first fragment: stream pts relative to its
        // earliest pts, delayed so that no sample of the first fragment presents before it
        // is decoded (B-frames); the edit list maps the delay back to time 0.
        let presentation = match self.presentation {
            Some(p) => p,
            None => {
                let origin_pts = self.pending.iter().map(|p| p.pts).min().unwrap_or(0);
                let mut t = i64::try_from(base).unwrap_or(i64::MAX);
                let mut delay = 0i64;
                for (s, e) in self.pending.iter().zip(&self.trun) {
                    delay = delay.max(t.saturating_sub(s.pts.saturating_sub(origin_pts)));
                    t = t.saturating_add(i64::from(e.duration));
                }
                Presentation {
                    origin_pts,
                    delay: delay.min(i64::from(i32::MAX)),
                }
            }
        };

        // Composition offsets: decode times may have been adjusted above, presentation times
        // never are (they come from the stream's pts).
        let mut t = base;
        let mut keyframe = None;
        for (i, (s, e)) in self.pending.iter().zip(self.trun.iter_mut()).enumerate() {
            let shown = s
                .pts
                .saturating_sub(presentation.origin_pts)
                .saturating_add(presentation.delay);
            let t_signed = i64::try_from(t).unwrap_or(i64::MAX);
            let cto = shown.saturating_sub(t_signed);
            e.cto = i32::try_from(cto.clamp(i64::from(i32::MIN), i64::from(i32::MAX))).unwrap_or(0);
            if s.keyframe && keyframe.is_none() {
                keyframe = Some(TfraEntry {
                    time: u64::try_from(t_signed.saturating_add(i64::from(e.cto))).unwrap_or(0),
                    moof_offset: self.written,
                    sample_number: u32::try_from(i + 1).unwrap_or(u32::MAX),
                });
            }
            t = t.saturating_add(u64::from(e.duration));
        }

        let payload = self.payload.len() as u64;
        let header_len = boxes::moof_size(n) + boxes::mdat_header_size(payload);
        let pad = padding(self.written, header_len);
        let moof_offset = self.written + pad;
        if let Some(k) = keyframe.as_mut() {
            k.moof_offset = moof_offset;
        }
        self.header.clear();
        if pad > 0 {
            boxes::free(&mut self.header, pad);
        }
        let sequence = self.sequence;
        if boxes::fragment_header(&mut self.header, sequence, base, &self.trun, payload).is_none() {
            return Err(self.invalid(format!("fragment of {n} frames is too large")));
        }
        // A moof that cannot sit in one page is written as a `free` box and renamed once
        // the whole fragment is durable (see the module documentation).
        let two_phase = header_len > PAGE;
        if two_phase {
            let at = pad as usize + 4;
            if let Some(kind) = self.header.get_mut(at..at + 4) {
                kind.copy_from_slice(b"free");
            }
        }
        Ok(FragmentCommit {
            origin_dts,
            presentation,
            decode_end: t,
            last_duration,
            keyframe,
            moof_offset,
            two_phase,
        })
    }
}

/// How stream pts map to the track's media presentation times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Presentation {
    /// Earliest pts of the first fragment.
    origin_pts: i64,
    /// Media time at which `origin_pts` presents (the B-frame reorder delay of the first
    /// fragment); the edit list starts the movie there.
    delay: i64,
}

/// State that becomes true once a fragment is durable.
struct FragmentCommit {
    origin_dts: i64,
    presentation: Presentation,
    decode_end: u64,
    last_duration: i64,
    keyframe: Option<TfraEntry>,
    /// Where the `moof` starts (after any padding).
    moof_offset: u64,
    /// The `moof` was written as `free` and must be renamed after the first sync.
    two_phase: bool,
}

/// Page size the fragment header is kept within. A write interrupted by a signal stops at
/// a page boundary and ext4 persists whole blocks, so a `moof` inside one page is either
/// complete on disk or absent.
const PAGE: u64 = 4096;

/// Bytes of `free` padding to put at `at` so that a fragment header (`moof` + `mdat`
/// header) of `header_len` bytes does not cross a page boundary. 0 when it fits, or when it
/// is larger than a page (then it is written in two phases instead).
fn padding(at: u64, header_len: u64) -> u64 {
    if header_len > PAGE {
        return 0;
    }
    let used = at % PAGE;
    if used + header_len <= PAGE {
        return 0;
    }
    let gap = PAGE - used;
    if gap >= 8 {
        gap
    } else {
        gap + PAGE
    }
}

/// Check that `data` is a sequence of 4-byte big-endian length-prefixed NAL units.
fn is_avcc(data: &[u8]) -> bool {
    let mut rest = data;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return false;
        }
        let (len, tail) = rest.split_at(4);
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len == 0 || len > tail.len() {
            return false;
        }
        rest = &tail[len..];
    }
    !data.is_empty()
}

impl SegmentMuxer for Fmp4Writer {
    fn push(&mut self, frame: &Frame) -> Result<(), MuxError> {
        if !is_avcc(&frame.data) {
            return Err(self.invalid(format!(
                "frame at dts {} is not length-prefixed H.264 ({} bytes)",
                frame.dts,
                frame.data.len()
            )));
        }
        if self.frames == 0 && self.pending.is_empty() && !frame.keyframe {
            return Err(self.invalid("the first frame of a segment must be a keyframe"));
        }
        let Ok(size) = u32::try_from(frame.data.len()) else {
            return Err(self.invalid("frame larger than 4 GiB"));
        };
        self.payload.extend_from_slice(&frame.data);
        self.pending.push(Pending {
            dts: frame.dts,
            pts: frame.pts,
            size,
            keyframe: frame.keyframe,
        });
        self.oldest.get_or_insert(frame.captured);
        self.origin_dts.get_or_insert(frame.dts);
        Ok(())
    }

    fn flush(&mut self, next_dts: Option<i64>) -> Result<(), MuxError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let commit = self.build_fragment(next_dts)?;
        let len = self.header.len() as u64 + self.payload.len() as u64;
        let edit_list = commit.presentation.delay > 0;
        if self.presentation.is_none() && edit_list {
            // Replace the placeholder in the moov (in the file's first sector) by the edit
            // list; made durable together with the first fragment.
            let mut edts = Vec::with_capacity(boxes::EDTS_SIZE as usize);
            boxes::edts(&mut edts, commit.presentation.delay, 0);
            self.file
                .write_all_at(&edts, self.layout.edts)
                .map_err(|e| self.io_err(e))?;
        }
        if let Err(e) = self.write_fragment() {
            // Leave the file ending at the last complete fragment so a retry (same frames,
            // same offset) or finish() produce a well-formed file. Best effort.
            let _ = self.file.set_len(self.written);
            return Err(self.io_err(e));
        }
        // Not committed until durable: on failure the same fragment is rewritten in place.
        self.file.sync_data().map_err(|e| self.io_err(e))?;
        if commit.two_phase {
            self.file
                .write_all_at(b"moof", commit.moof_offset + 4)
                .map_err(|e| self.io_err(e))?;
            self.file.sync_data().map_err(|e| self.io_err(e))?;
        }

        self.written += len;
        self.sequence = self.sequence.wrapping_add(1);
        self.frames += self.pending.len() as u64;
        self.decode_end = commit.decode_end;
        self.last_duration = Some(commit.last_duration);
        self.origin_dts = Some(commit.origin_dts);
        self.edit_list |= self.presentation.is_none() && edit_list;
        self.presentation = Some(commit.presentation);
        if let Some(k) = commit.keyframe {
            self.keyframes.push(k);
        }
        self.pending.clear();
        self.payload.clear();
        self.oldest = None;
        Ok(())
    }

    fn oldest_unflushed(&self) -> Option<Instant> {
        self.oldest
    }

    fn unflushed_ticks(&self) -> i64 {
        match (self.pending.first(), self.pending.last()) {
            (Some(first), Some(last)) => last
                .dts
                .saturating_sub(first.dts)
                .max(0)
                .saturating_add(self.estimated_last_duration()),
            _ => 0,
        }
    }

    fn projected_bytes(&self) -> u64 {
        let mut entries = self.keyframes.len();
        let mut bytes = self.written;
        if !self.pending.is_empty() {
            let payload = self.payload.len() as u64;
            let header_len =
                boxes::moof_size(self.pending.len()) + boxes::mdat_header_size(payload);
            bytes += padding(self.written, header_len) + header_len + payload;
            entries += usize::from(self.pending.iter().any(|p| p.keyframe));
        }
        bytes + boxes::mfra_size(entries)
    }

    fn finish(mut self: Box<Self>, next_dts: Option<i64>) -> Result<MuxSummary, MuxError> {
        self.flush(next_dts)?;

        self.header.clear();
        boxes::mfra(&mut self.header, &self.keyframes);
        self.file
            .write_all_at(&self.header, self.written)
            .map_err(|e| self.io_err(e))?;
        let bytes = self.written + self.header.len() as u64;
        // The mfro must be the last 16 bytes: drop anything a failed attempt left behind.
        self.file.set_len(bytes).map_err(|e| self.io_err(e))?;

        let duration = self.decode_end.to_be_bytes();
        let elst = self
            .edit_list
            .then_some(self.layout.edts + boxes::EDTS_DURATION_AT);
        for pos in self.layout.durations().into_iter().chain(elst) {
            self.file
                .write_all_at(&duration, pos)
                .map_err(|e| self.io_err(e))?;
        }
        self.file.sync_data().map_err(|e| self.io_err(e))?;

        Ok(MuxSummary {
            frames: self.frames,
            duration_ticks: i64::try_from(self.decode_end).unwrap_or(i64::MAX),
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::Arc;

    use h264_reader::nal::sps::{PicOrderCntType, SeqParameterSet};
    use h264_reader::nal::{Nal, RefNal};
    use h264_reader::rbsp::BitRead;

    // x264, High profile, 320x240.
    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xb2, 0x02, 0x83, 0xf6, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00,
        0x20, 0x00, 0x00, 0x07, 0x81, 0xe2, 0x85, 0x49,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xc3, 0xcb, 0x22, 0xc0];

    // ---- a minimal box reader ----

    /// Boxes directly inside `buf` as (type, body).
    fn children(buf: &[u8]) -> Vec<([u8; 4], &[u8])> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= buf.len() {
            let mut size = u32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = buf[pos + 4..pos + 8].try_into().unwrap();
            let mut header = 8;
            if size == 1 {
                size = u64::from_be_bytes(buf[pos + 8..pos + 16].try_into().unwrap()) as usize;
                header = 16;
            }
            assert!(
                size >= header,
                "box {} size {size}",
                String::from_utf8_lossy(&kind)
            );
            let end = (pos + size).min(buf.len());
            out.push((kind, &buf[pos + header..end]));
            pos += size;
        }
        assert!(pos >= buf.len(), "trailing bytes");
        out
    }

    fn child<'a>(buf: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
        children(buf)
            .into_iter()
            .find(|(k, _)| k == kind)
            .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(kind)))
            .1
    }

    fn path<'a>(buf: &'a [u8], path: &[&[u8; 4]]) -> &'a [u8] {
        path.iter().fold(buf, |b, k| child(b, k))
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn be64(b: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[derive(Debug)]
    struct ParsedFragment {
        moof_offset: usize,
        sequence: u32,
        base: u64,
        samples: Vec<TrunSample>,
        data: Vec<u8>,
    }

    fn fragments(file: &[u8]) -> Vec<ParsedFragment> {
        let mut out = Vec::new();
        let mut pos = 0;
        for (kind, body) in children(file) {
            let header = file.len() - file[pos..].len();
            let size = body.len() + 8;
            if &kind == b"moof" {
                let sequence = be32(child(body, b"mfhd"), 4);
                let traf = child(body, b"traf");
                let tfhd = child(traf, b"tfhd");
                assert_eq!(be32(tfhd, 0), 0x0002_0000);
                let tfdt = child(traf, b"tfdt");
                assert_eq!(tfdt[0], 1);
                let trun = child(traf, b"trun");
                assert_eq!(be32(trun, 0), 0x0100_0f01);
                let count = be32(trun, 4) as usize;
                let data_offset = be32(trun, 8) as usize;
                let mut samples = Vec::new();
                let mut total = 0;
                for i in 0..count {
                    let e = &trun[12 + 16 * i..];
                    let s = TrunSample {
                        duration: be32(e, 0),
                        size: be32(e, 4),
                        flags: be32(e, 8),
                        cto: be32(e, 12) as i32,
                    };
                    total += s.size as usize;
                    samples.push(s);
                }
                let start = header + data_offset;
                out.push(ParsedFragment {
                    moof_offset: header,
                    sequence,
                    base: be64(tfdt, 4),
                    samples,
                    data: file[start..start + total].to_vec(),
                });
            }
            pos += size;
        }
        out
    }

    // ---- synthetic frames ----

    fn format() -> Arc<StreamFormat> {
        Arc::new(StreamFormat {
            codec: Codec::H264,
            width: 320,
            height: 240,
            frame_rate: Some((30, 1)),
            sps: SPS.to_vec(),
            pps: vec![PPS.to_vec()],
        })
    }

    fn frame(format: &Arc<StreamFormat>, dts: i64, pts: i64, keyframe: bool, tag: u8) -> Frame {
        let nal_type = if keyframe { 0x65 } else { 0x41 };
        Frame {
            data: vec![0, 0, 0, 3, nal_type, tag, 0x80],
            keyframe,
            pts,
            dts,
            captured: Instant::now(),
            wall: SystemTime::now(),
            format: format.clone(),
            dropped_before: 0,
        }
    }

    #[test]
    fn init_segment_structure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.mp4");
        let w = Fmp4Writer::create(&p, &format()).unwrap();
        let file = std::fs::read(&p).unwrap();
        assert_eq!(file.len() as u64, w.written);
        let top: Vec<_> = children(&file).into_iter().map(|(k, _)| k).collect();
        assert_eq!(top, [*b"ftyp", *b"moov"]);
        let ftyp = child(&file, b"ftyp");
        assert_eq!(&ftyp[..4], b"isom");
        assert_eq!(be32(ftyp, 4), 512);
        let moov = child(&file, b"moov");
        let kinds: Vec<_> = children(moov).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [*b"mvhd", *b"trak", *b"mvex"]);
        assert_eq!(be32(child(moov, b"mvhd"), 20), 90_000);
        // The edit list placeholder lies in the first 512-byte sector (rewritten in place).
        assert!(w.layout.edts + boxes::EDTS_SIZE <= 512);
        assert_eq!(&file[w.layout.edts as usize + 4..][..4], b"free");
        let kinds: Vec<_> = children(child(moov, b"trak"))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kinds, [*b"tkhd", *b"free", *b"mdia"]);
        let tkhd = path(moov, &[b"trak", b"tkhd"]);
        assert_eq!(be32(tkhd, 4 + 16), TRACK_ID_FOR_TEST);
        assert_eq!(be32(tkhd, tkhd.len() - 8), 320 << 16);
        assert_eq!(be32(tkhd, tkhd.len() - 4), 240 << 16);
        assert_eq!(be32(path(moov, &[b"trak", b"mdia", b"mdhd"]), 20), 90_000);
        assert_eq!(&path(moov, &[b"trak", b"mdia", b"hdlr"])[8..12], b"vide");
        let stbl = path(moov, &[b"trak", b"mdia", b"minf", b"stbl"]);
        let stsd = child(stbl, b"stsd");
        assert_eq!(be32(stsd, 4), 1);
        let entries = children(&stsd[8..]);
        assert_eq!(&entries[0].0, b"avc1");
        let avc1 = entries[0].1;
        assert_eq!(u16::from_be_bytes([avc1[24], avc1[25]]), 320);
        assert_eq!(u16::from_be_bytes([avc1[26], avc1[27]]), 240);
        let avcc = child(&avc1[78..], b"avcC");
        assert_eq!(&avcc[..5], &[1, 0x64, 0x00, 0x0d, 0xff]);
        assert_eq!(avcc[5], 0xe1);
        assert_eq!(
            usize::from(u16::from_be_bytes([avcc[6], avcc[7]])),
            SPS.len()
        );
        assert_eq!(&avcc[8..8 + SPS.len()], SPS);
        let rest = &avcc[8 + SPS.len()..];
        assert_eq!(rest[0], 1);
        assert_eq!(&rest[3..3 + PPS.len()], PPS);
        // High profile: 4:2:0, 8 bit, no SPS extensions.
        assert_eq!(&rest[3 + PPS.len()..], &[0xfd, 0xf8, 0xf8, 0]);
        for t in [b"stts", b"stsc", b"stco"] {
            assert_eq!(be32(child(stbl, t), 4), 0);
        }
        let mvex = child(moov, b"mvex");
        assert_eq!(be64(child(mvex, b"mehd"), 4), 0);
        assert_eq!(be32(child(mvex, b"trex"), 4), TRACK_ID_FOR_TEST);

        // O_EXCL: a second writer for the same path fails and leaves the file alone.
        match Fmp4Writer::create(&p, &format()) {
            Err(MuxError::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists)
            }
            other => panic!("expected AlreadyExists, got {:?}", other.map(|_| ())),
        }
        assert_eq!(std::fs::read(&p).unwrap(), file);
    }

    const TRACK_ID_FOR_TEST: u32 = boxes::TRACK_ID;

    #[test]
    fn dimensions_from_sps_when_format_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.mp4");
        let mut f = (*format()).clone();
        (f.width, f.height) = (0, 0);
        Fmp4Writer::create(&p, &f).unwrap();
        let file = std::fs::read(&p).unwrap();
        let tkhd = path(&file, &[b"moov", b"trak", b"tkhd"]);
        assert_eq!(be32(tkhd, tkhd.len() - 8), 320 << 16);
        assert_eq!(be32(tkhd, tkhd.len() - 4), 240 << 16);
    }

    #[test]
    fn rejects_bad_formats_and_frames() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = (*format()).clone();
        f.codec = Codec::Mjpeg;
        assert!(matches!(
            Fmp4Writer::create(&dir.path().join("a.mp4"), &f),
            Err(MuxError::Invalid { .. })
        ));
        let mut f = (*format()).clone();
        f.pps.clear();
        assert!(matches!(
            Fmp4Writer::create(&dir.path().join("b.mp4"), &f),
            Err(MuxError::Invalid { .. })
        ));
        assert!(!dir.path().join("a.mp4").exists());
        assert!(!dir.path().join("b.mp4").exists());

        let fmt = format();
        let mut w = Fmp4Writer::create(&dir.path().join("c.mp4"), &fmt).unwrap();
        let r = w.push(&frame(&fmt, 0, 0, false, 0));
        assert!(matches!(r, Err(MuxError::Invalid { .. })), "{r:?}");
        for data in [
            vec![],
            vec![0, 0, 0],
            vec![0, 0, 0, 5, 0x65],
            vec![0, 0, 0, 0],
        ] {
            let mut fr = frame(&fmt, 0, 0, true, 0);
            fr.data = data;
            assert!(matches!(w.push(&fr), Err(MuxError::Invalid { .. })));
        }
        assert_eq!(w.unflushed_ticks(), 0);
        assert!(w.oldest_unflushed().is_none());
        w.push(&frame(&fmt, 0, 0, true, 0)).unwrap();
        assert!(w.oldest_unflushed().is_some());
    }

    #[test]
    fn fragments_timing_and_finish() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.mp4");
        let fmt = format();
        let mut w: Box<dyn SegmentMuxer> = Box::new(Fmp4Writer::create(&p, &fmt).unwrap());
        let init_len = std::fs::metadata(&p).unwrap().len();
        w.flush(None).unwrap(); // nothing buffered: no-op
        assert_eq!(std::fs::metadata(&p).unwrap().len(), init_len);

        // Fragment 1: I P B B with 3000-tick frames, stream clock starting at 1_000_000,
        // decode order I0 P3 B1 B2 (pts in frame units), dts = decode index.
        let base = 1_000_000;
        let t = |n: i64| base + n * 3000;
        w.push(&frame(&fmt, t(0), t(0), true, 1)).unwrap();
        w.push(&frame(&fmt, t(1), t(3), false, 2)).unwrap();
        w.push(&frame(&fmt, t(2), t(1), false, 3)).unwrap();
        w.push(&frame(&fmt, t(3), t(2), false, 4)).unwrap();
        assert_eq!(w.unflushed_ticks(), 4 * 3000);
        let projected = w.projected_bytes();
        w.flush(Some(t(4))).unwrap();
        assert_eq!(w.unflushed_ticks(), 0);
        assert!(w.oldest_unflushed().is_none());

        // Fragment 2: keyframe mid-fragment, odd timestamps (repeated dts, a backwards
        // step), no next dts.
        w.push(&frame(&fmt, t(4), t(4), false, 5)).unwrap();
        w.push(&frame(&fmt, t(4), t(5), false, 6)).unwrap();
        w.push(&frame(&fmt, t(3), t(6), true, 7)).unwrap();
        w.push(&frame(&fmt, t(7), t(7), false, 8)).unwrap();
        w.flush(None).unwrap();

        // Fragment 3: a single frame, duration from the last written one; a gap before it.
        w.push(&frame(&fmt, t(20), t(20), true, 9)).unwrap();
        assert_eq!(w.unflushed_ticks(), 4 * 3000);
        let before_finish = w.projected_bytes();
        let summary = w.finish(None).unwrap();

        let file = std::fs::read(&p).unwrap();
        assert_eq!(summary.bytes, file.len() as u64);
        assert_eq!(before_finish, file.len() as u64);
        assert!(projected > init_len);
        assert_eq!(summary.frames, 9);

        let frags = fragments(&file);
        assert_eq!(frags.len(), 3);
        assert_eq!(
            frags.iter().map(|f| f.sequence).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let sync = boxes::SAMPLE_FLAGS_SYNC;
        let non = boxes::SAMPLE_FLAGS_NON_SYNC;
        let s = |duration, flags, cto| TrunSample {
            duration,
            size: 7,
            flags,
            cto,
        };
        assert_eq!(frags[0].base, 0);
        assert_eq!(
            frags[0].samples,
            [
                s(3000, sync, 3000),
                s(3000, non, 9000),
                s(3000, non, 0),
                s(3000, non, 0)
            ]
        );
        assert_eq!(frags[0].data[5], 1);
        assert_eq!(frags[0].data[7 * 3 + 5], 4);
        // decode times 12000, 12001, 12002, 24002; pts 12000, 15000, 18000, 21000, all
        // presented 3000 later (the reorder delay of the first fragment).
        assert_eq!(frags[1].base, 12000);
        assert_eq!(
            frags[1].samples,
            [
                s(1, non, 3000),
                s(1, non, 5999),
                s(12000, sync, 8998),
                s(12000, non, -2),
            ]
        );
        assert_eq!(frags[2].base, 60000);
        assert_eq!(frags[2].samples, [s(12000, sync, 3000)]);
        assert_eq!(summary.duration_ticks, 72000);

        let moov = child(&file, b"moov");
        assert_eq!(be64(child(moov, b"mvhd"), 20 + 4), 72000);
        assert_eq!(be64(path(moov, &[b"trak", b"tkhd"]), 4 + 16 + 8), 72000);
        assert_eq!(
            be64(path(moov, &[b"trak", b"mdia", b"mdhd"]), 20 + 4),
            72000
        );
        assert_eq!(be64(path(moov, &[b"mvex", b"mehd"]), 4), 72000);
        // The edit list starts the movie at the first displayed frame.
        let elst = path(moov, &[b"trak", b"edts", b"elst"]);
        assert_eq!(elst[0], 1);
        assert_eq!(be32(elst, 4), 1);
        assert_eq!(be64(elst, 8), 72000);
        assert_eq!(be64(elst, 16), 3000);
        assert_eq!(&elst[24..], &[0, 1, 0, 0]);

        let mfra = child(&file, b"mfra");
        let tfra = child(mfra, b"tfra");
        assert_eq!(be32(tfra, 4), TRACK_ID_FOR_TEST);
        assert_eq!(be32(tfra, 12), 3);
        let entry = |i: usize| {
            let e = &tfra[16 + 22 * i..];
            (be64(e, 0), be64(e, 8) as usize, e[16], e[17], be32(e, 18))
        };
        assert_eq!(entry(0), (3000, frags[0].moof_offset, 1, 1, 1));
        assert_eq!(entry(1), (21000, frags[1].moof_offset, 1, 1, 3));
        assert_eq!(entry(2), (63000, frags[2].moof_offset, 1, 1, 1));
        let mfro = child(mfra, b"mfro");
        assert_eq!(be32(mfro, 4) as usize, mfra.len() + 8);
    }

    #[test]
    fn no_edit_list_without_reordering() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.mp4");
        let fmt = format();
        let mut w = Fmp4Writer::create(&p, &fmt).unwrap();
        for i in 0..5 {
            w.push(&frame(&fmt, 500 + i * 3003, 500 + i * 3003, i == 0, 0))
                .unwrap();
        }
        w.flush(Some(500 + 5 * 3003)).unwrap();
        // Later reordering deeper than the first fragment's: negative offsets, no panic.
        w.push(&frame(&fmt, 500 + 5 * 3003, 500 + 7 * 3003, false, 0))
            .unwrap();
        w.push(&frame(&fmt, 500 + 6 * 3003, 500 + 5 * 3003, false, 0))
            .unwrap();
        w.push(&frame(&fmt, 500 + 7 * 3003, 500 + 6 * 3003, false, 0))
            .unwrap();
        let summary = Box::new(w).finish(None).unwrap();
        assert_eq!(summary.duration_ticks, 8 * 3003);
        let file = std::fs::read(&p).unwrap();
        let trak = path(&file, &[b"moov", b"trak"]);
        assert!(children(trak).iter().all(|(k, _)| k != b"edts"));
        let frags = fragments(&file);
        assert!(frags[0]
            .samples
            .iter()
            .all(|s| s.cto == 0 && s.duration == 3003));
        let ctos: Vec<i32> = frags[1].samples.iter().map(|s| s.cto).collect();
        assert_eq!(ctos, [6006, -3003, -3003]);
    }

    #[test]
    fn extreme_timestamps_do_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.mp4");
        let fmt = format();
        let mut w = Fmp4Writer::create(&p, &fmt).unwrap();
        for (dts, pts) in [
            (i64::MAX - 5, i64::MIN),
            (i64::MIN, i64::MAX),
            (0, 0),
            (i64::MAX, -1),
        ] {
            w.push(&frame(&fmt, dts, pts, true, 0)).unwrap();
            let _ = w.unflushed_ticks();
        }
        w.flush(Some(i64::MIN)).unwrap();
        w.push(&frame(&fmt, -5, i64::MAX, false, 0)).unwrap();
        let summary = Box::new(w).finish(Some(i64::MAX)).unwrap();
        assert_eq!(summary.frames, 5);
        let file = std::fs::read(&p).unwrap();
        assert!(fragments(&file)
            .iter()
            .all(|f| f.samples.iter().all(|s| s.duration >= 1)));
    }

    #[test]
    fn finish_without_frames() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.mp4");
        let w = Fmp4Writer::create(&p, &format()).unwrap();
        let projected = w.projected_bytes();
        let summary = Box::new(w).finish(Some(5)).unwrap();
        assert_eq!(summary.frames, 0);
        assert_eq!(summary.duration_ticks, 0);
        assert_eq!(summary.bytes, std::fs::metadata(&p).unwrap().len());
        assert_eq!(summary.bytes, projected);
    }

    // ---- end to end with ffmpeg ----

    fn have_ffmpeg() -> bool {
        let ok = |tool: &str| {
            Command::new(tool)
                .arg("-version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        ok("ffmpeg") && ok("ffprobe")
    }

    fn run(tool: &str, args: &[&str]) -> (String, String) {
        let out = Command::new(tool).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
        (stdout, stderr)
    }

    /// NAL units of an Annex B byte stream (without start codes).
    fn annexb_nals(data: &[u8]) -> Vec<&[u8]> {
        let mut starts = Vec::new(); // (start code position, payload position)
        let mut i = 0;
        while i + 3 <= data.len() {
            if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
                let sc = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
                starts.push((sc, i + 3));
                i += 3;
            } else {
                i += 1;
            }
        }
        let mut nals = Vec::new();
        for (k, &(_, payload)) in starts.iter().enumerate() {
            let end = starts.get(k + 1).map_or(data.len(), |&(sc, _)| sc);
            let mut nal = &data[payload..end];
            while nal.last() == Some(&0) {
                nal = &nal[..nal.len() - 1];
            }
            if !nal.is_empty() {
                nals.push(nal);
            }
        }
        nals
    }

    struct TestAu {
        avcc: Vec<u8>,
        keyframe: bool,
        /// Display index (frame units, stream-wide).
        display: i64,
    }

    /// Split an x264 Annex B stream into access units with their display order (from the
    /// picture order count; pic_order_cnt_type 0 or 2, progressive frames only).
    fn access_units(data: &[u8]) -> (Vec<TestAu>, Vec<u8>, Vec<u8>) {
        let mut groups: Vec<Vec<&[u8]>> = Vec::new();
        let mut has_vcl = false;
        for nal in annexb_nals(data) {
            let t = nal[0] & 0x1f;
            let vcl = t == 1 || t == 5;
            let first_slice = vcl && nal.len() > 1 && nal[1] & 0x80 != 0;
            let starts_au = matches!(t, 6..=9 | 14..=18) || first_slice;
            if groups.is_empty() || (has_vcl && starts_au) {
                groups.push(Vec::new());
                has_vcl = false;
            }
            has_vcl |= vcl;
            groups.last_mut().unwrap().push(nal);
        }
        let mut sps_bytes = Vec::new();
        let mut pps_bytes = Vec::new();
        let mut sps: Option<SeqParameterSet> = None;
        let (mut prev_msb, mut prev_lsb) = (0i64, 0i64);
        let mut gop_start = 0usize;
        let mut out: Vec<(TestAu, i64)> = Vec::new();
        let finish_gop = |out: &mut Vec<(TestAu, i64)>, from: usize| {
            let mut idx: Vec<usize> = (from..out.len()).collect();
            idx.sort_by_key(|&i| out[i].1);
            for (rank, i) in idx.into_iter().enumerate() {
                out[i].0.display = (from + rank) as i64;
            }
        };
        for group in groups {
            let mut avcc = Vec::new();
            let mut poc = None;
            let mut keyframe = false;
            for nal in &group {
                avcc.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                avcc.extend_from_slice(nal);
                let t = nal[0] & 0x1f;
                if t == 7 {
                    sps = Some(
                        SeqParameterSet::from_bits(RefNal::new(nal, &[], true).rbsp_bits())
                            .unwrap(),
                    );
                    sps_bytes = nal.to_vec();
                }
                if t == 8 {
                    pps_bytes = nal.to_vec();
                }
                if (t == 1 || t == 5) && poc.is_none() {
                    let sps = sps.as_ref().unwrap();
                    let idr = t == 5;
                    keyframe |= idr;
                    if idr {
                        finish_gop(&mut out, gop_start);
                        gop_start = out.len();
                        (prev_msb, prev_lsb) = (0, 0);
                    }
                    let mut r = RefNal::new(nal, &[], true).rbsp_bits();
                    r.read_ue("first_mb").unwrap();
                    r.read_ue("slice_type").unwrap();
                    r.read_ue("pps_id").unwrap();
                    let _: u32 = r
                        .read_var(u32::from(sps.log2_max_frame_num()), "frame_num")
                        .unwrap();
                    if idr {
                        r.read_ue("idr_pic_id").unwrap();
                    }
                    let value = match sps.pic_order_cnt {
                        PicOrderCntType::TypeTwo => 2 * (out.len() - gop_start) as i64,
                        PicOrderCntType::TypeZero {
                            log2_max_pic_order_cnt_lsb_minus4,
                        } => {
                            let bits = u32::from(log2_max_pic_order_cnt_lsb_minus4) + 4;
                            let max = 1i64 << bits;
                            let lsb = i64::from(r.read_var::<u32>(bits, "poc_lsb").unwrap());
                            let msb = if lsb < prev_lsb && prev_lsb - lsb >= max / 2 {
                                prev_msb + max
                            } else if lsb > prev_lsb && lsb - prev_lsb > max / 2 {
                                prev_msb - max
                            } else {
                                prev_msb
                            };
                            if nal[0] & 0x60 != 0 {
                                (prev_msb, prev_lsb) = (msb, lsb);
                            }
                            msb + lsb
                        }
                        _ => panic!("unsupported pic_order_cnt_type"),
                    };
                    poc = Some(value);
                }
            }
            out.push((
                TestAu {
                    avcc,
                    keyframe,
                    display: 0,
                },
                poc.expect("access unit without a slice"),
            ));
        }
        finish_gop(&mut out, gop_start);
        (
            out.into_iter().map(|(au, _)| au).collect(),
            sps_bytes,
            pps_bytes,
        )
    }

    fn hashes(args: &[&str]) -> Vec<String> {
        let mut all = vec!["-v", "error"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-f", "framemd5", "-"]);
        let (stdout, _) = run("ffmpeg", &all);
        stdout
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
            .collect()
    }

    /// Compare frame hash lists without printing hundreds of hashes.
    fn assert_same_frames(got: &[String], want: &[String], what: &str) {
        let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
        assert!(
            got.len() == want.len() && first_diff.is_none(),
            "{what}: {} frames, expected {}, first difference at {first_diff:?}",
            got.len(),
            want.len()
        );
    }

    fn assert_clean(file: &str) {
        let (out, err) = run("ffprobe", &["-v", "error", file]);
        assert!(out.is_empty() && err.is_empty(), "ffprobe: {out}{err}");
        let (out, err) = run("ffmpeg", &["-v", "error", "-i", file, "-f", "null", "-"]);
        assert!(out.is_empty() && err.is_empty(), "ffmpeg: {out}{err}");
    }

    /// How the test assigns stream timestamps to access units.
    #[derive(Clone, Copy, Debug)]
    enum Clock {
        /// dts = decode index, pts = display index (negative offsets for B-frames).
        DecodeIndex,
        /// dts = decode index − 2 (what a reordering encoder reports), both offset by a
        /// large stream start time.
        Delayed,
    }

    /// How the test cuts fragments.
    /// How the test cuts fragments.
    #[derive(Clone, Copy, Debug)]
    enum Cut {
        /// Before each keyframe (every GOP), telling the next dts.
        Keyframes,
        /// Every 40 frames, in the middle of GOPs, without the next dts.
        Every40,
        /// One fragment for the whole stream: its moof exceeds a page (two-phase write).
        Single,
    }

    struct Muxed {
        /// (file length, frames so far) after create and after each flush.
        fragment_ends: Vec<(u64, usize)>,
        summary: MuxSummary,
    }

    fn mux(aus: &[TestAu], fmt: &Arc<StreamFormat>, clock: Clock, cut: Cut, out: &Path) -> Muxed {
        let (dts0, offset) = match clock {
            Clock::DecodeIndex => (0, 0),
            Clock::Delayed => (-2, 7_777_777),
        };
        let ts = |i: usize| {
            (
                offset + (dts0 + i as i64) * 3000,
                offset + aus[i].display * 3000,
            )
        };
        let mut w = Fmp4Writer::create(out, fmt).unwrap();
        let mut fragment_ends = vec![(w.written, 0)];
        for (i, au) in aus.iter().enumerate() {
            let cut_here = match cut {
                Cut::Keyframes => au.keyframe && i > 0,
                Cut::Every40 => i > 0 && i % 40 == 0,
                Cut::Single => false,
            };
            if cut_here {
                let next = match cut {
                    Cut::Keyframes => Some(ts(i).0),
                    _ => None,
                };
                let projected = w.projected_bytes();
                w.flush(next).unwrap();
                // projected_bytes includes the mfra that finish() will add.
                assert!(projected > w.written);
                fragment_ends.push((w.written, i));
            }
            let (dts, pts) = ts(i);
            let f = Frame {
                data: au.avcc.clone(),
                keyframe: au.keyframe,
                pts,
                dts,
                captured: Instant::now(),
                wall: SystemTime::now(),
                format: fmt.clone(),
                dropped_before: 0,
            };
            w.push(&f).unwrap();
        }
        w.flush(None).unwrap();
        fragment_ends.push((w.written, aus.len()));
        let projected = w.projected_bytes();
        let summary = Box::new(w).finish(None).unwrap();
        assert_eq!(projected, summary.bytes);
        Muxed {
            fragment_ends,
            summary,
        }
    }

    const E2E_FRAMES: usize = 300;
    const E2E_GOP: usize = 60;

    /// Encode the test stream to `input` (Annex B) and return its frame hashes.
    fn encode(input: &str, extra: &[&str]) -> Vec<String> {
        let frames = E2E_FRAMES.to_string();
        let gop = E2E_GOP.to_string();
        let mut args = vec![
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-frames:v",
            &frames,
            "-c:v",
            "libx264",
            "-g",
            &gop,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-f", "h264", input]);
        run("ffmpeg", &args);
        let reference = hashes(&["-i", input]);
        assert_eq!(reference.len(), E2E_FRAMES);
        reference
    }

    /// The crate's own H.264 source feeding the writer, cut at keyframes like the segment
    /// writer does.
    #[test]
    fn ffmpeg_with_h264_stream_source() {
        use crate::source::h264_stream::H264Stream;
        use crate::source::Source;

        if !have_ffmpeg() {
            eprintln!("ffmpeg/ffprobe not on PATH: skipping the end-to-end check");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let streams: [(&str, &[&str]); 2] = [
            ("bf0", &["-bf", "0"]),
            ("bf2", &["-bf", "2", "-profile:v", "main"]),
        ];
        for (name, extra) in streams {
            let input = d(&format!("{name}.h264"));
            let reference = encode(&input, extra);
            let reader = Box::new(std::fs::File::open(&input).unwrap());
            let mut source = H264Stream::new(reader, input.clone(), (30, 1), false, false);
            let out = d(&format!("{name}.mp4"));
            let mut writer: Option<Fmp4Writer> = None;
            let mut fragment_ends = Vec::new();
            while let Some(frame) = source.next_frame().unwrap() {
                let w = match writer.as_mut() {
                    Some(w) => w,
                    None => {
                        let w = Fmp4Writer::create(Path::new(&out), &frame.format).unwrap();
                        fragment_ends.push((w.written, 0));
                        writer.insert(w)
                    }
                };
                if frame.keyframe && w.unflushed_ticks() > 0 {
                    w.flush(Some(frame.dts)).unwrap();
                    fragment_ends.push((w.written, w.frames as usize));
                }
                w.push(&frame).unwrap();
            }
            let mut w = writer.unwrap();
            w.flush(None).unwrap();
            fragment_ends.push((w.written, w.frames as usize));
            let summary = Box::new(w).finish(None).unwrap();
            let muxed = Muxed {
                fragment_ends,
                summary,
            };
            check_complete(&out, &muxed, &reference, &format!("h264_stream {name}"));
        }
    }

    #[test]
    fn ffmpeg_end_to_end() {
        if !have_ffmpeg() {
            eprintln!("ffmpeg/ffprobe not on PATH: skipping the end-to-end check");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let streams: [(&str, &[&str]); 2] = [
            ("bf0", &["-bf", "0"]),
            ("bf2", &["-bf", "2", "-profile:v", "main"]),
        ];
        for (name, extra) in streams {
            let input = d(&format!("{name}.h264"));
            let reference = encode(&input, extra);

            let (aus, sps, pps) = access_units(&std::fs::read(&input).unwrap());
            assert_eq!(aus.len(), E2E_FRAMES);
            assert_eq!(
                aus.iter().filter(|a| a.keyframe).count(),
                E2E_FRAMES / E2E_GOP
            );
            if name == "bf2" {
                assert!(aus.iter().enumerate().any(|(i, a)| a.display != i as i64));
            }
            let fmt = Arc::new(StreamFormat {
                codec: Codec::H264,
                width: 320,
                height: 240,
                frame_rate: Some((30, 1)),
                sps,
                pps: vec![pps],
            });

            for clock in [Clock::DecodeIndex, Clock::Delayed] {
                for cut in [Cut::Keyframes, Cut::Every40, Cut::Single] {
                    let what = format!("{name} {clock:?} {cut:?}");
                    let out = d(&format!("{name}-{clock:?}-{cut:?}.mp4"));
                    let muxed = mux(&aus, &fmt, clock, cut, Path::new(&out));
                    check_complete(&out, &muxed, &reference, &what);
                    let display: Vec<i64> = aus.iter().map(|a| a.display).collect();
                    check_torn(&out, &muxed, &reference, &display, &what, &d);
                }
            }
        }
    }

    fn check_complete(out: &str, muxed: &Muxed, reference: &[String], what: &str) {
        let n = E2E_FRAMES as i64;
        assert_eq!(muxed.summary.frames, n as u64, "{what}");
        assert_eq!(muxed.summary.duration_ticks, n * 3000, "{what}");
        assert_eq!(
            muxed.summary.bytes,
            std::fs::metadata(out).unwrap().len(),
            "{what}"
        );
        assert_clean(out);

        let got = hashes(&["-i", out, "-fps_mode", "passthrough"]);
        assert_same_frames(&got, reference, what);

        // Presentation times: frame k of the output shows at k/30 s, from 0.
        let (pts, _) = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "frame=pts",
                "-of",
                "csv=p=0",
                out,
            ],
        );
        let pts: Vec<i64> = pts
            .lines()
            .filter_map(|l| l.split(',').next())
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.trim().parse().unwrap())
            .collect();
        let expected: Vec<i64> = (0..n).map(|k| k * 3000).collect();
        assert_eq!(pts, expected, "{what}");

        let (duration, _) = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
                out,
            ],
        );
        let duration: f64 = duration.trim().parse().unwrap();
        let expected = n as f64 / 30.0;
        assert!(
            (duration - expected).abs() < 0.001,
            "{what}: duration {duration}"
        );

        // The page rule: no fragment header crosses a 4 KiB boundary unless it is larger
        // than a page.
        let file = std::fs::read(out).unwrap();
        for f in fragments(&file) {
            let header = boxes::moof_size(f.samples.len()) + 8;
            let start = f.moof_offset as u64;
            if header <= PAGE {
                assert_eq!(start / PAGE, (start + header - 1) / PAGE, "{what}");
            }
        }
    }

    /// A crash before finish: the file ends inside the last fragment (at a page boundary,
    /// as a killed write or ext4 leaves it, or anywhere in the mdat), or the last fragment
    /// is complete but still hidden (two-phase write, before the rename). All complete
    /// fragments still decode. `display[i]` is the display index of the i-th frame in
    /// decode order.
    fn check_torn(
        out: &str,
        muxed: &Muxed,
        reference: &[String],
        display: &[i64],
        what: &str,
        d: &dyn Fn(&str) -> String,
    ) {
        let mut bytes = std::fs::read(out).unwrap();
        let last = fragments(&bytes).pop().unwrap();
        let moof = last.moof_offset;
        if boxes::moof_size(last.samples.len()) + 8 > PAGE {
            // Two-phase fragment: until it is complete on disk its moof is a `free` box.
            bytes[moof + 4..moof + 8].copy_from_slice(b"free");
        }
        let n = muxed.fragment_ends.len();
        let (complete_end, complete_frames) = muxed.fragment_ends[n - 2];
        let last_end = muxed.fragment_ends[n - 1].0;
        // Frames of the complete fragments, in display order; with B-frames and a cut in
        // the middle of a GOP these are not a prefix of the stream.
        let mut complete: Vec<usize> = display[..complete_frames]
            .iter()
            .map(|&d| d as usize)
            .collect();
        complete.sort_unstable();
        let complete: Vec<String> = complete.iter().map(|&d| reference[d].clone()).collect();
        // The longest display-order prefix they hold.
        let prefix = display[complete_frames..]
            .iter()
            .min()
            .map_or(complete_frames, |&d| d as usize);
        let mut cuts: Vec<u64> = vec![complete_end];
        let first_page = complete_end / PAGE + 1;
        cuts.extend(
            (first_page..)
                .map(|p| p * PAGE)
                .take_while(|&c| c < last_end)
                .take(4),
        );
        cuts.push((complete_end + last_end) / 2);
        for cut_at in cuts {
            let torn = d(&format!("torn-{cut_at}.mp4"));
            std::fs::write(&torn, &bytes[..cut_at as usize]).unwrap();
            if complete_frames == 0 {
                // Nothing complete to decode; the file must still open.
                run("ffprobe", &["-v", "error", &torn]);
                continue;
            }
            if cut_at == complete_end {
                assert_clean(&torn);
            }
            let got = hashes(&["-i", &torn, "-fps_mode", "passthrough"]);
            assert!(
                got.len() >= prefix,
                "{what} cut at {cut_at}: {} frames",
                got.len()
            );
            assert_same_frames(
                &got[..prefix],
                &reference[..prefix],
                &format!("{what} cut at {cut_at} ({complete_frames} complete)"),
            );
        }

        // The last fragment written but its moof still named `free`.
        if complete_frames > 0 {
            let mut hidden = bytes[..last_end as usize].to_vec();
            hidden[moof + 4..moof + 8].copy_from_slice(b"free");
            let path = d("hidden.mp4");
            std::fs::write(&path, &hidden).unwrap();
            assert_clean(&path);
            let got = hashes(&["-i", &path, "-fps_mode", "passthrough"]);
            assert_same_frames(&got, &complete, &format!("{what} hidden"));
        }
    }
}
