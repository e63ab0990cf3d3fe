//! Reading dashcam's own fragmented MP4 segments back (what [`super::write`] writes).
//!
//! It owns walking the top-level boxes of a segment: the init segment (`ftyp` + `moov`:
//! picture size, SPS/PPS, the edit-list delay, where the duration fields are), the
//! fragments (`prft` + `moof` + `mdat`: per-sample decode time, duration, size, sync flag,
//! composition offset and file offset, and the fragment's wall-clock time), the stream-clock
//! box and whether the file was finished (`mfra` at the end). Every box layout comes from
//! [`super::boxes`].
//!
//! Built for files cut anywhere by a power loss: it stops at the first box that is torn,
//! zeroed or inconsistent and reports where the last complete fragment ends. It reads with
//! positioned reads from any [`ReadAt`] (a file, or bytes in memory for tests and fuzzers)
//! and never loads an `mdat`. It never writes (repairing is [`super::repair`]'s job) and
//! never panics, whatever the bytes.

use std::time::{Duration, SystemTime};

use super::boxes::{self, Mfra, Moof, Moov, MoovLayout, Mp4Box, Prft, StreamClock};
use crate::mux::{ReadAt, ReadError};

/// One sample (frame) of a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mp4Sample {
    /// Decode time on the file's timeline (90 kHz, from 0).
    pub dts: u64,
    pub duration: u32,
    pub size: u32,
    pub sync: bool,
    /// Composition offset (presentation − decode time).
    pub cto: i32,
    /// Absolute file offset of the sample's bytes.
    pub offset: u64,
}

impl Mp4Sample {
    /// Presentation time as players show it: decode time + offset − edit-list delay.
    pub(crate) fn pts(&self, delay: i64) -> i64 {
        i64::try_from(self.dts)
            .unwrap_or(i64::MAX)
            .saturating_add(i64::from(self.cto))
            .saturating_sub(delay)
    }
}

/// One complete fragment: its `moof` and the `mdat` right after it.
#[derive(Clone, Debug)]
pub(crate) struct Mp4Fragment {
    pub moof_offset: u64,
    pub moof: Moof,
    /// The `prft` just before the `moof`, when there is one.
    pub prft: Option<Prft>,
}

impl Mp4Fragment {
    /// The fragment's samples with their decode times and file offsets (checked when the
    /// fragment was read: they lie inside its `mdat`).
    pub(crate) fn samples(&self) -> impl Iterator<Item = Mp4Sample> + '_ {
        let start = self
            .moof_offset
            .saturating_add_signed(i64::from(self.moof.data_offset));
        let mut dts = self.moof.base_decode_time;
        let mut offset = start;
        self.moof.samples.iter().map(move |s| {
            let sample = Mp4Sample {
                dts,
                duration: s.duration,
                size: s.size,
                sync: s.is_sync(),
                cto: s.cto,
                offset,
            };
            dts = dts.saturating_add(u64::from(s.duration));
            offset = offset.saturating_add(u64::from(s.size));
            sample
        })
    }
}

/// What a segment file holds, as far as it is readable.
#[derive(Clone, Debug)]
pub struct Mp4File {
    pub(crate) moov: Moov,
    /// Where the `moov`'s patched fields are in the file.
    pub(crate) layout: MoovLayout,
    /// dashcam's stream-clock box, when it precedes the first fragment.
    pub(crate) clock: Option<StreamClock>,
    pub(crate) fragments: Vec<Mp4Fragment>,
    /// End of the init segment, or of the last complete fragment.
    pub(crate) complete_end: u64,
    /// An `mfra` index ends the file exactly: the writer (or a repair) finished it.
    pub(crate) finished: bool,
}

impl Mp4File {
    pub(crate) fn width(&self) -> u32 {
        u32::from(self.moov.avc1.width)
    }

    pub(crate) fn height(&self) -> u32 {
        u32::from(self.moov.avc1.height)
    }

    /// SPS and PPS NAL units from the `avcC`.
    pub(crate) fn sps(&self) -> &[u8] {
        &self.moov.avc1.avcc.sps
    }

    pub(crate) fn pps(&self) -> &[Vec<u8>] {
        &self.moov.avc1.avcc.pps
    }

    /// Media time at which the movie starts (edit list), 0 without one.
    pub(crate) fn delay(&self) -> i64 {
        self.moov.edts.map_or(0, |e| e.media_time)
    }

    /// Frames in complete fragments.
    pub fn frames(&self) -> u64 {
        self.fragments
            .iter()
            .map(|f| f.moof.samples.len() as u64)
            .sum()
    }

    /// Decode time just past the last sample (the duration of the segment).
    pub fn decode_end(&self) -> u64 {
        self.fragments
            .last()
            .and_then(|f| f.samples().last())
            .map_or(0, |s| s.dts.saturating_add(u64::from(s.duration)))
    }

    /// Every sample of the complete fragments, in decode order.
    pub(crate) fn samples(&self) -> impl Iterator<Item = Mp4Sample> + '_ {
        self.fragments.iter().flat_map(Mp4Fragment::samples)
    }

    /// The file is complete: finished, its durations patched, its `mehd` written.
    pub(crate) fn is_complete(&self) -> bool {
        self.finished
            && self.moov.duration == self.decode_end()
            && (self.layout.mehd.is_none() || self.moov.mehd.is_some())
    }

    /// Presentation time (track timeline) of the first frame in decode order.
    fn first_shown(&self) -> Option<u64> {
        let s = self.samples().next()?;
        u64::try_from(i64::try_from(s.dts).ok()?.saturating_add(i64::from(s.cto))).ok()
    }

    /// Wall-clock time of the segment's first frame, from the first fragment's `prft`.
    pub fn start_wall(&self) -> Option<SystemTime> {
        let prft = self.fragments.first()?.prft?;
        let wall = boxes::from_ntp(prft.ntp_timestamp);
        // The prft names the frame presenting at its media time: ours is the first frame.
        let ahead = self.first_shown()?.checked_sub(prft.media_time)?;
        wall.checked_add(Duration::from_nanos(
            ahead.saturating_mul(1_000_000_000) / u64::from(crate::frame::TIMESCALE),
        ))
    }

    /// The segment's first frame's pts on the source's clock, from the stream-clock box.
    pub fn start_pts(&self) -> Option<i64> {
        let clock = self.clock?;
        let ahead =
            i64::try_from(self.first_shown()?).ok()? - i64::try_from(clock.media_time).ok()?;
        Some(clock.stream_pts.saturating_add(ahead))
    }
}

/// Largest `moov`/`moof` read into memory (ours are a few KiB).
const MAX_HEADER_BOX: u64 = 16 << 20;

/// Read a top-level box header at `pos`: (type, header length, total size).
fn box_header<R: ReadAt + ?Sized>(src: &R, pos: u64, len: u64) -> Option<([u8; 4], u64, u64)> {
    if pos.checked_add(8)? > len {
        return None;
    }
    let mut h = [0u8; 16];
    let n = if pos + 16 <= len { 16 } else { 8 };
    src.read_exact_at(&mut h[..n], pos).ok()?;
    let size = u64::from(u32::from_be_bytes(h[..4].try_into().ok()?));
    let kind: [u8; 4] = h[4..8].try_into().ok()?;
    let (size, header) = if size == 1 {
        (u64::from_be_bytes(h.get(8..n)?.try_into().ok()?), 16)
    } else {
        (size, 8)
    };
    if size < header || !kind.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return None;
    }
    Some((kind, header, size))
}

/// A `moof` checked against the `mdat` payload `data_start..data_end` that follows it.
fn fragment(
    moof_offset: u64,
    moof: Moof,
    prft: Option<Prft>,
    data_start: u64,
    data_end: u64,
) -> Option<Mp4Fragment> {
    let first = moof_offset.checked_add_signed(i64::from(moof.data_offset))?;
    if moof.samples.is_empty() || first < data_start {
        return None;
    }
    let mut offset = first;
    for s in &moof.samples {
        offset = offset.checked_add(u64::from(s.size))?;
        if s.size == 0 || offset > data_end {
            return None;
        }
    }
    Some(Mp4Fragment {
        moof_offset,
        moof,
        prft,
    })
}

/// Read the structure of a segment. An error means it is not one of ours at all (no
/// readable init segment) or could not be read; a torn tail is not an error.
pub fn read<R: ReadAt + ?Sized>(src: &R) -> Result<Mp4File, ReadError> {
    let len = src.size()?;
    let mut pos = 0u64;
    let mut info: Option<Mp4File> = None;
    let mut pending_moof: Option<(u64, Moof)> = None;
    let mut pending_prft: Option<Prft> = None;
    let mut pending_clock: Option<StreamClock> = None;
    let mut finished = false;
    let mut complete_end = 0u64;
    while let Some((kind, header, size)) = box_header(src, pos, len) {
        let end = match pos.checked_add(size) {
            Some(e) if e <= len => e,
            _ => break,
        };
        let body = |max: u64| -> Result<Option<Vec<u8>>, ReadError> {
            if size > max {
                return Ok(None);
            }
            Ok(Some(
                src.read_vec_at(pos + header, (size - header) as usize)?,
            ))
        };
        match (&kind, info.as_mut()) {
            (b"ftyp", None) if pos == 0 => {}
            (b"moov", None) => {
                let Some(bytes) = body(MAX_HEADER_BOX)? else {
                    return Err(ReadError::NotOurs("moov too large".into()));
                };
                let (moov, layout) = Moov::read_with_layout(&bytes)
                    .ok_or_else(|| ReadError::NotOurs("not a dashcam H.264 moov".into()))?;
                info = Some(Mp4File {
                    moov,
                    layout: layout.shifted(pos + header),
                    clock: None,
                    fragments: Vec::new(),
                    complete_end: 0,
                    finished: false,
                });
                complete_end = end;
            }
            (b"free" | b"skip", _) if pending_moof.is_none() => {}
            (b"uuid", Some(_)) if pending_moof.is_none() => {
                if let Some(bytes) = body(64)? {
                    pending_clock = StreamClock::read(&bytes).or(pending_clock);
                }
            }
            (b"prft", Some(_)) if pending_moof.is_none() => {
                pending_prft = body(64)?.and_then(|b| Prft::read(&b));
            }
            (b"moof", Some(_)) if pending_moof.is_none() => {
                let Some(moof) = body(MAX_HEADER_BOX)?.and_then(|b| Moof::read(&b)) else {
                    break;
                };
                pending_moof = Some((pos, moof));
            }
            (b"mdat", Some(i)) => {
                let Some((moof_offset, moof)) = pending_moof.take() else {
                    break;
                };
                if moof_offset + Moof::size_for(moof.samples.len()) != pos {
                    break;
                }
                let prft = pending_prft.take();
                let Some(f) = fragment(moof_offset, moof, prft, pos + header, end) else {
                    break;
                };
                if i.fragments.is_empty() {
                    i.clock = pending_clock.take();
                }
                i.fragments.push(f);
                complete_end = end;
            }
            (b"mfra", Some(_)) if pending_moof.is_none() => {
                // Finished iff the mfro at the very end gives the mfra's size.
                let mut tail = [0u8; 16];
                if end == len && size >= 24 && src.read_exact_at(&mut tail, end - 16).is_ok() {
                    finished = Mfra::size_in_mfro(&tail) == Some(size);
                }
                break;
            }
            _ => break,
        }
        pos = end;
    }
    let mut info = info
        .ok_or_else(|| ReadError::NotOurs("no readable moov (not a dashcam MP4 segment)".into()))?;
    info.complete_end = complete_end;
    info.finished = finished;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::mp4::write::Fmp4Writer;
    use crate::mux::SegmentMuxer;
    use crate::test_support::{frame, h264_access_unit, h264_format, PPS, SPS};
    use std::time::UNIX_EPOCH;

    /// A finished segment of 90 synthetic frames in fragments of 10; the first frame's wall
    /// time is `wall0`, its pts 5000.
    fn segment(path: &std::path::Path, wall0: SystemTime) -> usize {
        let format = h264_format();
        let mut w = Fmp4Writer::create(path, &format).expect("create");
        for i in 0..90i64 {
            if i > 0 && i % 10 == 0 {
                w.flush(Some(5000 + i * 3000)).expect("flush");
            }
            let key = i % 30 == 0;
            let mut f = frame(
                &format,
                h264_access_unit(key, i as u8, 39),
                5000 + i * 3000,
                5000 + i * 3000,
                key,
            );
            f.wall = wall0 + Duration::from_millis(i as u64 * 33);
            w.push(&f).expect("push");
        }
        Box::new(w).finish(None).expect("finish");
        90
    }

    #[test]
    fn reads_what_the_writer_wrote() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        let wall0 = UNIX_EPOCH + Duration::new(1_795_000_123, 456_789_012);
        let n = segment(&p, wall0);
        let file = std::fs::File::open(&p).expect("open");
        let f = read(&file).expect("read");
        assert!(f.finished && f.is_complete());
        assert_eq!(f.frames(), n as u64);
        assert_eq!(f.fragments.len(), 9);
        assert_eq!(f.decode_end(), n as u64 * 3000);
        assert_eq!((f.width(), f.height()), (320, 240));
        assert_eq!(f.sps(), SPS);
        assert_eq!(f.pps(), &[PPS.to_vec()][..]);
        assert_eq!(f.delay(), 0);
        assert_eq!(f.start_wall(), Some(wall0));
        assert_eq!(f.start_pts(), Some(5000));
        // Every fragment has its prft: its first frame's wall time and presentation time.
        for (k, frag) in f.fragments.iter().enumerate() {
            let prft = frag.prft.expect("prft");
            let first = frag.samples().next().expect("a sample");
            assert_eq!(prft.media_time, first.dts);
            let want = wall0 + Duration::from_millis(10 * k as u64 * 33);
            assert_eq!(boxes::from_ntp(prft.ntp_timestamp), want, "fragment {k}");
        }
        let s = f.samples().nth(31).expect("sample");
        assert!(!s.sync);
        assert_eq!(
            file.read_vec_at(s.offset, s.size as usize).expect("read")[5],
            31
        );
        assert!(f.samples().nth(30).expect("sample").sync);
        // The same bytes in memory read the same.
        let bytes = std::fs::read(&p).expect("read");
        let m = read(&bytes[..]).expect("read");
        assert_eq!(m.frames(), f.frames());
        assert_eq!(m.complete_end, bytes.len() as u64 - Mfra::size_for(3));
    }

    /// Cut anywhere, the reader never panics and keeps exactly the complete fragments.
    #[test]
    fn every_truncation_is_read_to_its_last_complete_fragment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        let wall0 = SystemTime::now();
        segment(&p, wall0);
        let bytes = std::fs::read(&p).expect("read");
        let ends: Vec<u64> = boxes::children(&bytes)
            .filter(|b| &b.kind == b"mdat")
            .map(|b| (b.offset + b.header + b.body.len()) as u64)
            .collect();
        assert_eq!(ends.len(), 9);
        for len in (0..bytes.len()).step_by(7) {
            match read(&bytes[..len]) {
                Ok(f) => {
                    assert!(!f.finished, "cut at {len} looks finished");
                    let complete = ends.iter().filter(|&&e| e <= len as u64).count();
                    assert_eq!(f.fragments.len(), complete, "cut at {len}");
                    assert!(f.complete_end <= len as u64);
                    if complete > 0 {
                        assert_eq!(f.start_wall(), Some(wall0), "cut at {len}");
                        assert_eq!(f.start_pts(), Some(5000), "cut at {len}");
                    }
                }
                Err(ReadError::NotOurs(_)) => {
                    assert!(
                        ends.first().is_none_or(|&e| len as u64 <= e),
                        "cut at {len}"
                    )
                }
                Err(e) => panic!("cut at {len}: {e}"),
            }
        }
        // Garbage after the last complete fragment stops the reader there.
        let mut junk = bytes[..ends[3] as usize].to_vec();
        junk.extend_from_slice(&[0xff; 300]);
        assert_eq!(read(&junk[..]).expect("read").fragments.len(), 4);
        // Any byte flipped: no panic.
        for at in (0..bytes.len()).step_by(13) {
            let mut b = bytes.clone();
            b[at] ^= 0x5a;
            let _ = read(&b[..]);
        }
    }
}
