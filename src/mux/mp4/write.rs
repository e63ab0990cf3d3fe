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
//! moov(mvhd trak(tkhd free|edts mdia(mdhd hdlr minf(vmhd dinf stbl(stsd/avc1/avcC, empty tables)))) mvex(free|mehd trex))
//! [free] uuid prft moof mdat                first fragment: the stream clock, then as below
//! [free] prft moof mdat  ...                one write + fdatasync per fragment
//! mfra(tfra mfro)                           only once finished
//! ```
//!
//! `ftyp` + `moov` are written and `fdatasync`ed by [`Fmp4Writer::create`]. Frames are
//! buffered in memory (one reused payload buffer and a small per-sample table) until
//! [`SegmentMuxer::flush`], which appends one fragment with a single `writev` and
//! `fdatasync`s. [`SegmentMuxer::finish`] appends the `mfra` index, patches the durations
//! (mvhd, tkhd, mdhd, elst) with positioned writes and turns the `free` placeholder in the
//! `mvex` into a `mehd` with the real duration, so players show the real length. A file
//! that was never finished has no `mehd`: players then add up its fragments (VLC shows a
//! length of 0 when a `mehd` says 0).
//!
//! Each fragment starts with a `prft` (producer reference time) giving the wall-clock time
//! (`Frame::wall`) of its first frame and that frame's presentation time; the first fragment
//! also carries dashcam's stream-clock box (the first frame's pts on the source's clock).
//! Players ignore both; recovery reads them so a cut segment's metadata has the exact start
//! time and stream time a closed one has (see [`super::boxes`]).
//!
//! # Crash safety
//!
//! A file cut anywhere holds the init segment, complete fragments and at most one torn last
//! fragment. A torn `mdat` is harmless (players decode up to the cut), but a torn `moof`
//! is not: ffmpeg refuses the *whole file* when a `trun` ends early. So a `moof` must be on
//! disk completely or not at all:
//!
//! - a fragment header (stream clock, `prft`, `moof` and the `mdat` header) never crosses a
//!   4 KiB boundary: a `free` box pads up to the next page when needed. A write cut by a
//!   signal stops at a page boundary and ext4 persists whole blocks, so the header is either
//!   all there or absent;
//! - a `moof` larger than a page (more than ~250 frames per fragment) is written as a
//!   `free` box, synced, then renamed to `moof` with a 4-byte write and synced again.
//!   Until the rename, players skip the fragment. The boxes before it and its own box
//!   header still stay within one page.
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
//! hundred lines; the boxes are defined in [`super::boxes`].

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use super::boxes::{
    self, Edts, Free, InitSegment, Mfra, Moof, MoovLayout, Mp4Box, Prft, StreamClock, TfraEntry,
    TrunSample,
};
use crate::frame::{Codec, Frame, StreamFormat};
use crate::mux::{MuxError, MuxSummary, SegmentMuxer};

/// One buffered frame, as the fragment needs it.
#[derive(Clone, Copy, Debug)]
struct Pending {
    dts: i64,
    pts: i64,
    size: u32,
    keyframe: bool,
    wall: SystemTime,
}

/// Writes one H.264 stream into one fragmented MP4 file. See the module documentation.
pub(crate) struct Fmp4Writer {
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

    /// Scratch reused by every flush: the fragment's `moof` and its serialised header.
    moof: Moof,
    header: Vec<u8>,
}

impl Fmp4Writer {
    /// Create the file at `path` (which must not exist) and write the init segment
    /// (`ftyp` + `moov`) for `format`, durably (`fdatasync`).
    pub(crate) fn create(path: &Path, format: &StreamFormat) -> Result<Fmp4Writer, MuxError> {
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
        let InitSegment {
            bytes: init,
            layout,
            ..
        } = InitSegment::h264(format, SystemTime::now()).map_err(invalid)?;

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
            moof: Moof::default(),
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

    /// Build the fragment header for the buffered frames into `self.header` and the
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
        let mut samples = std::mem::take(&mut self.moof.samples);
        samples.clear();
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
            samples.push(TrunSample {
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
                for (s, e) in self.pending.iter().zip(&samples) {
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
        for (s, e) in self.pending.iter().zip(samples.iter_mut()) {
            let shown = s
                .pts
                .saturating_sub(presentation.origin_pts)
                .saturating_add(presentation.delay);
            let cto = shown.saturating_sub(i64::try_from(t).unwrap_or(i64::MAX));
            e.cto = i32::try_from(cto.clamp(i64::from(i32::MIN), i64::from(i32::MAX))).unwrap_or(0);
            t = t.saturating_add(u64::from(e.duration));
        }
        // Presentation time of the first sample (decode order), for the prft and the clock.
        let first_shown = u64::try_from(
            i64::try_from(base)
                .unwrap_or(i64::MAX)
                .saturating_add(i64::from(samples[0].cto)),
        )
        .unwrap_or(0);

        let payload = self.payload.len() as u64;
        let first = self.frames == 0;
        let lens = header_lens(n, payload, first);
        let pad = padding(self.written, lens.atomic());
        let moof_offset = self.written + pad + lens.prefix;
        let Ok(data_offset) = i32::try_from(lens.moof + lens.mdat) else {
            return Err(self.invalid(format!("fragment of {n} frames is too large")));
        };
        self.moof = Moof {
            sequence: self.sequence,
            base_decode_time: base,
            data_offset,
            samples,
        };
        let keyframe = self.moof.random_access(moof_offset);

        self.header.clear();
        if pad > 0 {
            Free { size: pad }.write(&mut self.header);
        }
        if first {
            StreamClock {
                media_time: first_shown,
                stream_pts: self.pending[0].pts,
            }
            .write(&mut self.header);
        }
        Prft {
            flags: boxes::PRFT_ENCODER_OUTPUT,
            reference_track_id: boxes::TRACK_ID,
            ntp_timestamp: boxes::to_ntp(self.pending[0].wall),
            media_time: first_shown,
        }
        .write(&mut self.header);
        self.moof.write(&mut self.header);
        boxes::write_mdat_header(&mut self.header, payload);
        // A moof that cannot sit in one page is written as a `free` box and renamed once
        // the whole fragment is durable (see the module documentation).
        if lens.two_phase() {
            let at = (pad + lens.prefix) as usize + 4;
            if let Some(kind) = self.header.get_mut(at..at + 4) {
                kind.copy_from_slice(&Free::TYPE);
            }
        }
        Ok(FragmentCommit {
            origin_dts,
            presentation,
            decode_end: t,
            last_duration,
            keyframe,
            moof_offset,
            two_phase: lens.two_phase(),
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
    /// Where the `moof` starts (after any padding and the boxes before it).
    moof_offset: u64,
    /// The `moof` was written as `free` and must be renamed after the first sync.
    two_phase: bool,
}

/// Page size the fragment header is kept within. A write interrupted by a signal stops at
/// a page boundary and ext4 persists whole blocks, so a header inside one page is either
/// complete on disk or absent.
pub(crate) const PAGE: u64 = 4096;

/// Sizes of the parts of a fragment header.
#[derive(Clone, Copy, Debug)]
struct HeaderLens {
    /// The boxes before the `moof`: the stream clock (first fragment) and the `prft`.
    prefix: u64,
    moof: u64,
    mdat: u64,
}

impl HeaderLens {
    fn total(self) -> u64 {
        self.prefix + self.moof + self.mdat
    }
    fn two_phase(self) -> bool {
        self.total() > PAGE
    }
    /// The part that must not cross a page: all of it, or (two-phase) up to the `moof`'s
    /// own box header.
    fn atomic(self) -> u64 {
        if self.two_phase() {
            self.prefix + 8
        } else {
            self.total()
        }
    }
}

fn header_lens(samples: usize, payload: u64, first: bool) -> HeaderLens {
    HeaderLens {
        prefix: Prft::SIZE + if first { StreamClock::SIZE } else { 0 },
        moof: Moof::size_for(samples),
        mdat: boxes::mdat_header_size(payload),
    }
}

/// Bytes of `free` padding to put at `at` so that `len` bytes after it do not cross a page
/// boundary (0 when they fit, or when they could not fit in any page).
fn padding(at: u64, len: u64) -> u64 {
    if len > PAGE {
        return 0;
    }
    let used = at % PAGE;
    if used + len <= PAGE {
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
            wall: frame.wall,
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
            if let Some(at) = self.layout.edts {
                // Replace the placeholder in the moov (in the file's first sector) by the
                // edit list; made durable together with the first fragment.
                let mut edts = Vec::with_capacity(Edts::SIZE as usize);
                Edts {
                    segment_duration: 0,
                    media_time: commit.presentation.delay,
                }
                .write(&mut edts);
                self.file
                    .write_all_at(&edts, at)
                    .map_err(|e| self.io_err(e))?;
            }
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
                .write_all_at(&Moof::TYPE, commit.moof_offset + 4)
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
            let lens = header_lens(self.pending.len(), payload, self.frames == 0);
            bytes += padding(self.written, lens.atomic()) + lens.total() + payload;
            entries += usize::from(self.pending.iter().any(|p| p.keyframe));
        }
        bytes + Mfra::size_for(entries)
    }

    fn finish(mut self: Box<Self>, next_dts: Option<i64>) -> Result<MuxSummary, MuxError> {
        self.flush(next_dts)?;

        self.header.clear();
        Mfra {
            entries: std::mem::take(&mut self.keyframes),
        }
        .write(&mut self.header);
        self.file
            .write_all_at(&self.header, self.written)
            .map_err(|e| self.io_err(e))?;
        let bytes = self.written + self.header.len() as u64;
        // The mfro must be the last 16 bytes: drop anything a failed attempt left behind.
        self.file.set_len(bytes).map_err(|e| self.io_err(e))?;
        super::write_durations(&self.file, &self.layout, self.edit_list, self.decode_end)
            .map_err(|e| self.io_err(e))?;
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
    use crate::mux::mp4::boxes::{child, children, Avc1, Mehd, Trex, TRACK_ID};
    use crate::mux::mp4::read::{read, Mp4File};
    use crate::test_support::{frame, h264_access_unit, h264_format, PPS, SPS};
    use std::sync::Arc;
    use std::time::Duration;
    use std::time::UNIX_EPOCH;

    /// A 7-byte access unit tagged `tag` (its sixth byte).
    fn f(fmt: &Arc<StreamFormat>, dts: i64, pts: i64, keyframe: bool, tag: u8) -> Frame {
        frame(fmt, h264_access_unit(keyframe, tag, 2), dts, pts, keyframe)
    }

    fn kinds(buf: &[u8]) -> Vec<[u8; 4]> {
        children(buf).map(|b| b.kind).collect()
    }

    fn body<'a>(buf: &'a [u8], path: &[&[u8; 4]]) -> &'a [u8] {
        path.iter().fold(buf, |b, k| {
            child(b, k)
                .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(&k[..])))
                .body
        })
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
    }

    fn read_file(p: &Path) -> (Vec<u8>, Mp4File) {
        let bytes = std::fs::read(p).expect("read");
        let f = read(&bytes[..]).expect("our own file reads");
        (bytes, f)
    }

    #[test]
    fn init_segment_structure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        let w = Fmp4Writer::create(&p, &h264_format()).expect("create");
        let file = std::fs::read(&p).expect("read");
        assert_eq!(file.len() as u64, w.written);
        assert_eq!(kinds(&file), [*b"ftyp", *b"moov"]);
        let ftyp = body(&file, &[b"ftyp"]);
        assert_eq!(&ftyp[..4], b"isom");
        assert_eq!(be32(ftyp, 4), 512);
        let moov = body(&file, &[b"moov"]);
        assert_eq!(kinds(moov), [*b"mvhd", *b"trak", *b"mvex"]);
        assert_eq!(be32(body(moov, &[b"mvhd"]), 20), 90_000);
        // The edit list placeholder lies in the first 512-byte sector (rewritten in place).
        let edts = w.layout.edts.expect("edts place");
        assert!(edts + Edts::SIZE <= 512);
        assert_eq!(&file[edts as usize + 4..][..4], b"free");
        assert_eq!(
            kinds(body(moov, &[b"trak"])),
            [*b"tkhd", *b"free", *b"mdia"]
        );
        let tkhd = body(moov, &[b"trak", b"tkhd"]);
        assert_eq!(be32(tkhd, 4 + 16), TRACK_ID);
        assert_eq!(be32(tkhd, tkhd.len() - 8), 320 << 16);
        assert_eq!(be32(tkhd, tkhd.len() - 4), 240 << 16);
        assert_eq!(be32(body(moov, &[b"trak", b"mdia", b"mdhd"]), 20), 90_000);
        assert_eq!(&body(moov, &[b"trak", b"mdia", b"hdlr"])[8..12], b"vide");
        let stbl = body(moov, &[b"trak", b"mdia", b"minf", b"stbl"]);
        let stsd = body(stbl, &[b"stsd"]);
        assert_eq!(be32(stsd, 4), 1);
        assert_eq!(kinds(&stsd[8..]), [*b"avc1"]);
        let avc1 = Avc1::read(body(&stsd[8..], &[b"avc1"])).expect("avc1");
        assert_eq!((avc1.width, avc1.height), (320, 240));
        assert_eq!(
            (avc1.avcc.sps.as_slice(), avc1.avcc.pps.as_slice()),
            (SPS, &[PPS.to_vec()][..])
        );
        for t in [b"stts", b"stsc", b"stco"] {
            assert_eq!(be32(body(stbl, &[t]), 4), 0);
        }
        // Until finished, the mehd's place is a free box: no length of 0 for players.
        let mvex = body(moov, &[b"mvex"]);
        assert_eq!(kinds(mvex), [*b"free", *b"trex"]);
        assert_eq!(
            child(mvex, b"free").expect("free").body.len() as u64 + 8,
            Mehd::SIZE
        );
        assert_eq!(
            Trex::read(body(mvex, &[b"trex"])),
            Some(Trex { track_id: TRACK_ID })
        );

        // O_EXCL: a second writer for the same path fails and leaves the file alone.
        match Fmp4Writer::create(&p, &h264_format()) {
            Err(MuxError::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists)
            }
            other => panic!("expected AlreadyExists, got {:?}", other.map(|_| ())),
        }
        assert_eq!(std::fs::read(&p).expect("read"), file);
    }

    #[test]
    fn dimensions_from_sps_when_format_has_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        let mut fmt = (*h264_format()).clone();
        (fmt.width, fmt.height) = (0, 0);
        Fmp4Writer::create(&p, &fmt).expect("create");
        let (_, f) = read_file(&p);
        assert_eq!((f.width(), f.height()), (320, 240));
    }

    #[test]
    fn rejects_bad_formats_and_frames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut fmt = (*h264_format()).clone();
        fmt.codec = Codec::Mjpeg;
        assert!(matches!(
            Fmp4Writer::create(&dir.path().join("a.mp4"), &fmt),
            Err(MuxError::Invalid { .. })
        ));
        let mut fmt = (*h264_format()).clone();
        fmt.pps.clear();
        assert!(matches!(
            Fmp4Writer::create(&dir.path().join("b.mp4"), &fmt),
            Err(MuxError::Invalid { .. })
        ));
        assert!(!dir.path().join("a.mp4").exists());
        assert!(!dir.path().join("b.mp4").exists());

        let fmt = h264_format();
        let mut w = Fmp4Writer::create(&dir.path().join("c.mp4"), &fmt).expect("create");
        let r = w.push(&f(&fmt, 0, 0, false, 0));
        assert!(matches!(r, Err(MuxError::Invalid { .. })), "{r:?}");
        for data in [
            vec![],
            vec![0, 0, 0],
            vec![0, 0, 0, 5, 0x65],
            vec![0, 0, 0, 0],
        ] {
            let mut fr = f(&fmt, 0, 0, true, 0);
            fr.data = data;
            assert!(matches!(w.push(&fr), Err(MuxError::Invalid { .. })));
        }
        assert_eq!(w.unflushed_ticks(), 0);
        assert!(w.oldest_unflushed().is_none());
        w.push(&f(&fmt, 0, 0, true, 0)).expect("push");
        assert!(w.oldest_unflushed().is_some());
    }

    #[test]
    fn fragments_timing_and_finish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        let fmt = h264_format();
        let mut w: Box<dyn SegmentMuxer> = Box::new(Fmp4Writer::create(&p, &fmt).expect("create"));
        let init_len = std::fs::metadata(&p).expect("stat").len();
        w.flush(None).expect("flush"); // nothing buffered: no-op
        assert_eq!(std::fs::metadata(&p).expect("stat").len(), init_len);

        // Fragment 1: I P B B with 3000-tick frames, stream clock starting at 1_000_000,
        // decode order I0 P3 B1 B2 (pts in frame units), dts = decode index.
        let base = 1_000_000;
        let t = |n: i64| base + n * 3000;
        w.push(&f(&fmt, t(0), t(0), true, 1)).expect("push");
        w.push(&f(&fmt, t(1), t(3), false, 2)).expect("push");
        w.push(&f(&fmt, t(2), t(1), false, 3)).expect("push");
        w.push(&f(&fmt, t(3), t(2), false, 4)).expect("push");
        assert_eq!(w.unflushed_ticks(), 4 * 3000);
        let projected = w.projected_bytes();
        w.flush(Some(t(4))).expect("flush");
        assert_eq!(w.unflushed_ticks(), 0);
        assert!(w.oldest_unflushed().is_none());

        // Fragment 2: keyframe mid-fragment, odd timestamps (repeated dts, a backwards
        // step), no next dts.
        w.push(&f(&fmt, t(4), t(4), false, 5)).expect("push");
        w.push(&f(&fmt, t(4), t(5), false, 6)).expect("push");
        w.push(&f(&fmt, t(3), t(6), true, 7)).expect("push");
        w.push(&f(&fmt, t(7), t(7), false, 8)).expect("push");
        w.flush(None).expect("flush");

        // Fragment 3: a single frame, duration from the last written one; a gap before it.
        w.push(&f(&fmt, t(20), t(20), true, 9)).expect("push");
        assert_eq!(w.unflushed_ticks(), 4 * 3000);
        let before_finish = w.projected_bytes();
        let summary = w.finish(None).expect("finish");

        let (file, parsed) = read_file(&p);
        assert_eq!(summary.bytes, file.len() as u64);
        assert_eq!(before_finish, file.len() as u64);
        assert!(projected > init_len);
        assert_eq!(summary.frames, 9);
        assert!(parsed.is_complete());

        let frags = &parsed.fragments;
        assert_eq!(frags.len(), 3);
        let seqs: Vec<u32> = frags.iter().map(|f| f.moof.sequence).collect();
        assert_eq!(seqs, [1, 2, 3]);
        let sync = boxes::SAMPLE_FLAGS_SYNC;
        let non = boxes::SAMPLE_FLAGS_NON_SYNC;
        let s = |duration, flags, cto| TrunSample {
            duration,
            size: 7,
            flags,
            cto,
        };
        assert_eq!(frags[0].moof.base_decode_time, 0);
        assert_eq!(
            frags[0].moof.samples,
            [
                s(3000, sync, 3000),
                s(3000, non, 9000),
                s(3000, non, 0),
                s(3000, non, 0)
            ]
        );
        let data = |k: usize, i: usize| {
            let sample = frags[k].samples().nth(i).expect("sample");
            file[sample.offset as usize + 5]
        };
        assert_eq!((data(0, 0), data(0, 3)), (1, 4));
        // decode times 12000, 12001, 12002, 24002; pts 12000, 15000, 18000, 21000, all
        // presented 3000 later (the reorder delay of the first fragment).
        assert_eq!(frags[1].moof.base_decode_time, 12000);
        assert_eq!(
            frags[1].moof.samples,
            [
                s(1, non, 3000),
                s(1, non, 5999),
                s(12000, sync, 8998),
                s(12000, non, -2)
            ]
        );
        assert_eq!(frags[2].moof.base_decode_time, 60000);
        assert_eq!(frags[2].moof.samples, [s(12000, sync, 3000)]);
        assert_eq!(summary.duration_ticks, 72000);

        assert_eq!(parsed.moov.duration, 72000);
        assert_eq!(
            parsed.moov.mehd,
            Some(Mehd {
                fragment_duration: 72000
            })
        );
        // The edit list starts the movie at the first displayed frame.
        assert_eq!(
            parsed.moov.edts,
            Some(Edts {
                segment_duration: 72000,
                media_time: 3000
            })
        );
        let elst = body(&file, &[b"moov", b"trak", b"edts", b"elst"]);
        assert_eq!(&elst[24..], &[0, 1, 0, 0]);

        let mfra = Mfra::read(body(&file, &[b"mfra"])).expect("mfra");
        let entry = |i: usize| {
            let e = mfra.entries[i];
            (e.time, e.moof_offset, e.sample_number)
        };
        assert_eq!(entry(0), (3000, frags[0].moof_offset, 1));
        assert_eq!(entry(1), (21000, frags[1].moof_offset, 3));
        assert_eq!(entry(2), (63000, frags[2].moof_offset, 1));
        assert_eq!(mfra.entries.len(), 3);
        // The stream clock: the first frame presents at 3000 and had pts 1_000_000.
        assert_eq!(
            parsed.clock,
            Some(StreamClock {
                media_time: 3000,
                stream_pts: base
            })
        );
        assert_eq!(parsed.start_pts(), Some(base));
    }

    /// Each fragment's prft gives its first frame's wall time and presentation time; only
    /// the first fragment carries the stream clock; a segment never finished has no mehd.
    #[test]
    fn wall_clock_and_stream_clock_are_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        let fmt = h264_format();
        let mut w = Fmp4Writer::create(&p, &fmt).expect("create");
        let wall0 = UNIX_EPOCH + Duration::new(1_795_000_000, 123_456_789);
        let mut walls = Vec::new();
        for i in 0..12i64 {
            if i > 0 && i % 4 == 0 {
                w.flush(Some(700 + i * 3000)).expect("flush");
            }
            let mut fr = f(&fmt, 700 + i * 3000, 700 + i * 3000, i % 4 == 0, 0);
            fr.wall = wall0 + Duration::from_micros(i as u64 * 33_367);
            walls.push(fr.wall);
            w.push(&fr).expect("push");
        }
        w.flush(None).expect("flush");
        let (bytes, cut) = read_file(&p);
        let top = kinds(&bytes);
        assert_eq!(&top[2..6], [*b"uuid", *b"prft", *b"moof", *b"mdat"]);
        assert_eq!(top.iter().filter(|k| *k == b"uuid").count(), 1);
        assert_eq!(top.iter().filter(|k| *k == b"prft").count(), 3);
        assert!(cut.moov.mehd.is_none() && !cut.finished);
        assert_eq!(cut.start_wall(), Some(wall0));
        assert_eq!(cut.start_pts(), Some(700));
        for (k, frag) in cut.fragments.iter().enumerate() {
            let prft = frag.prft.expect("prft");
            assert_eq!(prft.flags, boxes::PRFT_ENCODER_OUTPUT);
            assert_eq!(prft.reference_track_id, TRACK_ID);
            assert_eq!(boxes::from_ntp(prft.ntp_timestamp), walls[4 * k]);
            assert_eq!(prft.media_time, 4 * k as u64 * 3000);
        }
        Box::new(w).finish(None).expect("finish");
        let (_, done) = read_file(&p);
        assert_eq!(
            done.moov.mehd,
            Some(Mehd {
                fragment_duration: 36_000
            })
        );
    }

    /// The page rule: no fragment header (the boxes before the moof, the moof and the mdat
    /// header) crosses a 4 KiB boundary; a moof larger than a page is written in two phases,
    /// with the boxes before it and its own header still inside one page.
    #[test]
    fn fragment_headers_never_cross_a_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        let fmt = h264_format();
        let mut w = Fmp4Writer::create(&p, &fmt).expect("create");
        let mut n = 0i64;
        // Fragments of 1 to 40 frames of odd sizes, then one of 300 (a two-phase moof).
        for count in (1..40).chain([300]) {
            for i in 0..count {
                let fr = frame(
                    &fmt,
                    h264_access_unit(i == 0, 1, (n as usize * 37) % 1500),
                    n * 3000,
                    n * 3000,
                    i == 0,
                );
                w.push(&fr).expect("push");
                n += 1;
            }
            w.flush(Some(n * 3000)).expect("flush");
        }
        let (bytes, parsed) = read_file(&p);
        assert_eq!(parsed.frames(), n as u64);
        let top: Vec<_> = children(&bytes).collect();
        for (i, b) in top.iter().enumerate() {
            if &b.kind != b"moof" {
                continue;
            }
            // The header starts at the first box after the previous mdat that is not padding.
            let mut start = i;
            while start > 0 && matches!(&top[start - 1].kind, b"prft" | b"uuid") {
                start -= 1;
            }
            let first = top[start].offset as u64;
            let moof_end = (b.offset + b.header + b.body.len()) as u64;
            let end = if moof_end + 8 - first > PAGE {
                b.offset as u64 + 8
            } else {
                moof_end + 8
            };
            assert_eq!(first / PAGE, (end - 1) / PAGE, "fragment at {}", b.offset);
            assert_eq!(&top[start].kind, if start == 2 { b"uuid" } else { b"prft" });
        }
        assert!(top
            .iter()
            .any(|b| &b.kind == b"moof" && b.body.len() as u64 > PAGE));
    }

    #[test]
    fn no_edit_list_without_reordering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        let fmt = h264_format();
        let mut w = Fmp4Writer::create(&p, &fmt).expect("create");
        for i in 0..5 {
            w.push(&f(&fmt, 500 + i * 3003, 500 + i * 3003, i == 0, 0))
                .expect("push");
        }
        w.flush(Some(500 + 5 * 3003)).expect("flush");
        // Later reordering deeper than the first fragment's: negative offsets, no panic.
        w.push(&f(&fmt, 500 + 5 * 3003, 500 + 7 * 3003, false, 0))
            .expect("push");
        w.push(&f(&fmt, 500 + 6 * 3003, 500 + 5 * 3003, false, 0))
            .expect("push");
        w.push(&f(&fmt, 500 + 7 * 3003, 500 + 6 * 3003, false, 0))
            .expect("push");
        let summary = Box::new(w).finish(None).expect("finish");
        assert_eq!(summary.duration_ticks, 8 * 3003);
        let (bytes, parsed) = read_file(&p);
        assert!(!kinds(body(&bytes, &[b"moov", b"trak"])).contains(b"edts"));
        assert_eq!(parsed.moov.edts, None);
        let frags = &parsed.fragments;
        assert!(frags[0]
            .moof
            .samples
            .iter()
            .all(|s| s.cto == 0 && s.duration == 3003));
        let ctos: Vec<i32> = frags[1].moof.samples.iter().map(|s| s.cto).collect();
        assert_eq!(ctos, [6006, -3003, -3003]);
    }

    #[test]
    fn extreme_timestamps_do_not_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        let fmt = h264_format();
        let mut w = Fmp4Writer::create(&p, &fmt).expect("create");
        for (dts, pts) in [
            (i64::MAX - 5, i64::MIN),
            (i64::MIN, i64::MAX),
            (0, 0),
            (i64::MAX, -1),
        ] {
            w.push(&f(&fmt, dts, pts, true, 0)).expect("push");
            let _ = w.unflushed_ticks();
        }
        w.flush(Some(i64::MIN)).expect("flush");
        w.push(&f(&fmt, -5, i64::MAX, false, 0)).expect("push");
        let summary = Box::new(w).finish(Some(i64::MAX)).expect("finish");
        assert_eq!(summary.frames, 5);
        let (_, parsed) = read_file(&p);
        assert!(parsed.samples().all(|s| s.duration >= 1));
        let _ = (parsed.start_pts(), parsed.start_wall());
    }

    #[test]
    fn finish_without_frames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        let w = Fmp4Writer::create(&p, &h264_format()).expect("create");
        let projected = w.projected_bytes();
        let summary = Box::new(w).finish(Some(5)).expect("finish");
        assert_eq!(summary.frames, 0);
        assert_eq!(summary.duration_ticks, 0);
        assert_eq!(summary.bytes, std::fs::metadata(&p).expect("stat").len());
        assert_eq!(summary.bytes, projected);
    }

    #[test]
    fn padding_keeps_a_header_inside_its_page() {
        assert_eq!(padding(0, 100), 0);
        assert_eq!(padding(4000, 96), 0);
        assert_eq!(padding(4000, 97), 96);
        assert_eq!(padding(4090, 10), 6 + PAGE); // a gap below 8 bytes cannot hold a box
        assert_eq!(padding(123, PAGE + 1), 0);
    }
}
