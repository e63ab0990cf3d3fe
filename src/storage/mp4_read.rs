//! A reader for dashcam's own fragmented MP4 segments (what [`crate::mux::fmp4`] writes).
//!
//! It owns reading the box structure back: the init segment (`ftyp` + `moov`: picture size,
//! SPS/PPS, the edit-list delay and where the duration fields are), the fragments
//! (`moof` + `mdat`: per-sample decode time, duration, size, sync flag, composition offset
//! and file offset) and whether the file was finished (`mfra` at the end). It is built for
//! files cut anywhere by a power loss: it stops at the first box that is torn, zeroed or
//! inconsistent and reports where the last complete fragment ends. It reads with
//! positioned reads and never loads an `mdat` unless asked for one sample. It never
//! writes; repairing is [`super::recovery`]'s job.

#![allow(dead_code)] // TODO(issue 7): moves into mux/, unused parts removed

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::storage::StorageError;

/// One sample (frame) of a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mp4Sample {
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
    pub fn pts(&self, delay: i64) -> i64 {
        i64::try_from(self.dts)
            .unwrap_or(i64::MAX)
            .saturating_add(i64::from(self.cto))
            .saturating_sub(delay)
    }
}

/// One complete `moof` + `mdat` pair.
#[derive(Clone, Debug)]
pub struct Mp4Fragment {
    pub moof_offset: u64,
    /// Decode time of the first sample (`tfdt`).
    pub base_dts: u64,
    pub samples: Vec<Mp4Sample>,
    /// File offset just past the `mdat`.
    pub end: u64,
}

/// What a segment file holds, as far as it is readable.
#[derive(Clone, Debug)]
pub struct Mp4File {
    pub width: u32,
    pub height: u32,
    /// SPS and PPS NAL units from the `avcC`.
    pub sps: Vec<u8>,
    pub pps: Vec<Vec<u8>>,
    /// Media time at which the movie starts (edit list), 0 without one.
    pub delay: i64,
    /// Absolute offsets of the 64-bit duration fields of mvhd, tkhd, mdhd and mehd.
    pub duration_fields: Vec<u64>,
    /// Absolute offset of the elst segment_duration field, when there is an edit list.
    pub elst_duration: Option<u64>,
    pub fragments: Vec<Mp4Fragment>,
    /// End of the init segment, or of the last complete fragment.
    pub complete_end: u64,
    /// An `mfra` index ends the file exactly: the writer finished it.
    pub finished: bool,
    pub file_len: u64,
}

impl Mp4File {
    pub fn frames(&self) -> u64 {
        self.fragments.iter().map(|f| f.samples.len() as u64).sum()
    }

    /// Decode time just past the last sample (the duration of the segment).
    pub fn decode_end(&self) -> u64 {
        self.fragments
            .last()
            .and_then(|f| f.samples.last())
            .map_or(0, |s| s.dts.saturating_add(u64::from(s.duration)))
    }

    pub fn samples(&self) -> impl Iterator<Item = &Mp4Sample> {
        self.fragments.iter().flat_map(|f| f.samples.iter())
    }
}

/// Largest `moov`/`moof` read into memory (ours are a few KiB).
const MAX_HEADER_BOX: u64 = 16 << 20;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Boxes inside `buf` as (type, start of body, end) relative to `buf`; stops at a torn box.
fn children(buf: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= buf.len() {
        let Some(size) = be32(buf, pos) else { break };
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&buf[pos + 4..pos + 8]);
        let (size, header) = match size {
            1 => match be64(buf, pos + 8) {
                Some(s) => (usize::try_from(s).unwrap_or(usize::MAX), 16),
                None => break,
            },
            s => (s as usize, 8),
        };
        if size < header || pos.saturating_add(size) > buf.len() {
            break;
        }
        out.push((kind, pos + header, pos + size));
        pos += size;
    }
    out
}

fn child<'a>(buf: &'a [u8], kind: &[u8; 4]) -> Option<(usize, &'a [u8])> {
    children(buf)
        .into_iter()
        .find(|(k, _, _)| k == kind)
        .map(|(_, s, e)| (s, &buf[s..e]))
}

/// Read a top-level box header at `pos`: (type, header length, total size).
fn box_header(file: &File, pos: u64, len: u64) -> Option<([u8; 4], u64, u64)> {
    if pos + 8 > len {
        return None;
    }
    let mut h = [0u8; 16];
    let n = if pos + 16 <= len { 16 } else { 8 };
    file.read_exact_at(&mut h[..n], pos).ok()?;
    let size = u64::from(be32(&h, 0)?);
    let mut kind = [0u8; 4];
    kind.copy_from_slice(&h[4..8]);
    let (size, header) = if size == 1 {
        (be64(&h[..n], 8)?, 16)
    } else {
        (size, 8)
    };
    if size < header || !kind.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return None;
    }
    Some((kind, header, size))
}

impl Mp4File {
    /// Read the structure of `path`. An error means the file is not one of ours at all
    /// (no readable init segment); a torn tail is not an error.
    pub fn open(path: &Path) -> Result<Mp4File, StorageError> {
        let bad = |what: &str| StorageError::Unreadable {
            path: path.display().to_string(),
            what: what.to_string(),
        };
        let file = File::open(path).map_err(|e| StorageError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(path, e))?
            .len();
        let mut pos = 0u64;
        let mut info: Option<Mp4File> = None;
        let mut pending_moof: Option<(u64, u64, Vec<u8>)> = None;
        let mut finished = false;
        let mut complete_end = 0u64;
        while let Some((kind, header, size)) = box_header(&file, pos, len) {
            let end = match pos.checked_add(size) {
                Some(e) if e <= len => e,
                _ => break,
            };
            match &kind {
                b"ftyp" if pos == 0 => {}
                b"moov" if info.is_none() => {
                    if size > MAX_HEADER_BOX {
                        return Err(bad("moov too large"));
                    }
                    let mut body = vec![0u8; (size - header) as usize];
                    file.read_exact_at(&mut body, pos + header)
                        .map_err(|e| StorageError::io(path, e))?;
                    info =
                        Some(parse_moov(&body, pos + header, len).ok_or_else(|| bad("bad moov"))?);
                    complete_end = end;
                }
                b"free" | b"skip" if pending_moof.is_none() => {}
                b"moof" if info.is_some() && pending_moof.is_none() => {
                    if size > MAX_HEADER_BOX {
                        break;
                    }
                    let mut body = vec![0u8; (size - header) as usize];
                    if file.read_exact_at(&mut body, pos + header).is_err() {
                        break;
                    }
                    pending_moof = Some((pos, size, body));
                }
                b"mdat" => {
                    let Some((moof_offset, moof_size, body)) = pending_moof.take() else {
                        break;
                    };
                    if moof_offset + moof_size != pos {
                        break;
                    }
                    let Some(fragment) = parse_moof(&body, moof_offset, pos + header, end) else {
                        break;
                    };
                    if let Some(i) = info.as_mut() {
                        i.fragments.push(fragment);
                    }
                    complete_end = end;
                }
                b"mfra" if pending_moof.is_none() && info.is_some() => {
                    // Finished iff the mfro at the very end gives the mfra's size.
                    let mut tail = [0u8; 16];
                    if end == len && size >= 24 && file.read_exact_at(&mut tail, end - 16).is_ok() {
                        finished = &tail[4..8] == b"mfro"
                            && u64::from(be32(&tail, 12).unwrap_or(0)) == size;
                    }
                    break;
                }
                _ => break,
            }
            pos = end;
        }
        let mut info = info.ok_or_else(|| bad("no readable moov (not a dashcam MP4 segment)"))?;
        info.complete_end = complete_end;
        info.finished = finished;
        info.file_len = len;
        Ok(info)
    }

    /// Read one sample's bytes (AVCC, length-prefixed NAL units).
    pub fn read_sample(file: &File, sample: &Mp4Sample) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; sample.size as usize];
        file.read_exact_at(&mut buf, sample.offset)?;
        Ok(buf)
    }
}

/// Parse the `moov` body found at absolute offset `base`.
fn parse_moov(moov: &[u8], base: u64, len: u64) -> Option<Mp4File> {
    let abs = |rel: usize| base + rel as u64;
    let mut duration_fields = Vec::new();
    let (mvhd_at, mvhd) = child(moov, b"mvhd")?;
    if mvhd.first() != Some(&1) {
        return None;
    }
    // v1: version/flags 4, creation 8, modification 8, timescale 4, duration 8.
    duration_fields.push(abs(mvhd_at + 4 + 8 + 8 + 4));
    let (trak_at, trak) = child(moov, b"trak")?;
    let (tkhd_at, tkhd) = child(trak, b"tkhd")?;
    if tkhd.first() != Some(&1) {
        return None;
    }
    // v1: 4 + creation 8 + modification 8 + track_ID 4 + reserved 4, then duration.
    duration_fields.push(abs(trak_at + tkhd_at + 4 + 8 + 8 + 4 + 4));
    let mut delay = 0i64;
    let mut elst_duration = None;
    if let Some((edts_at, edts)) = child(trak, b"edts") {
        let (elst_at, elst) = child(edts, b"elst")?;
        if elst.first() == Some(&1) && be32(elst, 4)? >= 1 {
            elst_duration = Some(abs(trak_at + edts_at + elst_at + 8));
            delay = i64::from_be_bytes(elst.get(16..24)?.try_into().ok()?);
        }
    }
    let (mdia_at, mdia) = child(trak, b"mdia")?;
    let (mdhd_at, mdhd) = child(mdia, b"mdhd")?;
    if mdhd.first() != Some(&1) {
        return None;
    }
    duration_fields.push(abs(trak_at + mdia_at + mdhd_at + 4 + 8 + 8 + 4));
    let (_, minf) = child(mdia, b"minf")?;
    let (_, stbl) = child(minf, b"stbl")?;
    let (_, stsd) = child(stbl, b"stsd")?;
    let (_, avc1) = child(stsd.get(8..)?, b"avc1")?;
    let width = u32::from(be16(avc1, 24)?);
    let height = u32::from(be16(avc1, 26)?);
    let (_, avcc) = child(avc1.get(78..)?, b"avcC")?;
    let (sps, pps) = parse_avcc(avcc)?;
    if let Some((mvex_at, mvex)) = child(moov, b"mvex") {
        if let Some((mehd_at, mehd)) = child(mvex, b"mehd") {
            if mehd.first() == Some(&1) {
                duration_fields.push(abs(mvex_at + mehd_at + 4));
            }
        }
    }
    if duration_fields.iter().any(|&p| p + 8 > len) {
        return None;
    }
    Some(Mp4File {
        width,
        height,
        sps,
        pps,
        delay,
        duration_fields,
        elst_duration,
        fragments: Vec::new(),
        complete_end: 0,
        finished: false,
        file_len: len,
    })
}

fn parse_avcc(avcc: &[u8]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let nsps = usize::from(*avcc.get(5)? & 0x1f);
    let mut pos = 6;
    let mut sps = None;
    for _ in 0..nsps {
        let n = usize::from(be16(avcc, pos)?);
        let nal = avcc.get(pos + 2..pos + 2 + n)?.to_vec();
        sps.get_or_insert(nal);
        pos += 2 + n;
    }
    let npps = usize::from(*avcc.get(pos)?);
    pos += 1;
    let mut pps = Vec::new();
    for _ in 0..npps {
        let n = usize::from(be16(avcc, pos)?);
        pps.push(avcc.get(pos + 2..pos + 2 + n)?.to_vec());
        pos += 2 + n;
    }
    Some((sps?, pps))
}

/// Parse a `moof` body (the box starts at `moof_offset`) whose `mdat` payload spans
/// `data_start..data_end`. `None` when anything is inconsistent.
fn parse_moof(
    body: &[u8],
    moof_offset: u64,
    data_start: u64,
    data_end: u64,
) -> Option<Mp4Fragment> {
    child(body, b"mfhd")?;
    let (_, traf) = child(body, b"traf")?;
    let (_, tfhd) = child(traf, b"tfhd")?;
    let tfhd_flags = be32(tfhd, 0)? & 0x00ff_ffff;
    if tfhd_flags & 0x02_0000 == 0 || tfhd_flags & 0x00_0001 != 0 {
        return None; // only default-base-is-moof, as written by dashcam
    }
    let (_, tfdt) = child(traf, b"tfdt")?;
    let base_dts = match tfdt.first()? {
        1 => be64(tfdt, 4)?,
        _ => u64::from(be32(tfdt, 4)?),
    };
    let (_, trun) = child(traf, b"trun")?;
    let flags = be32(trun, 0)? & 0x00ff_ffff;
    // data-offset, duration, size, flags and composition offset present, as we write them.
    if flags != 0x00_0f01 {
        return None;
    }
    let count = be32(trun, 4)? as usize;
    let data_offset = i64::from(be32(trun, 8)? as i32);
    if count == 0 || trun.len() < 12 + 16 * count {
        return None;
    }
    let mut offset = u64::try_from(i64::try_from(moof_offset).ok()? + data_offset).ok()?;
    if offset < data_start {
        return None;
    }
    let mut dts = base_dts;
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let e = 12 + 16 * i;
        let duration = be32(trun, e)?;
        let size = be32(trun, e + 4)?;
        let sflags = be32(trun, e + 8)?;
        let cto = be32(trun, e + 12)? as i32;
        if offset + u64::from(size) > data_end || size == 0 {
            return None;
        }
        samples.push(Mp4Sample {
            dts,
            duration,
            size,
            sync: sflags & 0x0001_0000 == 0,
            cto,
            offset,
        });
        offset += u64::from(size);
        dts = dts.saturating_add(u64::from(duration));
    }
    Some(Mp4Fragment {
        moof_offset,
        base_dts,
        samples,
        end: data_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Codec, Frame, StreamFormat};
    use crate::mux::fmp4::Fmp4Writer;
    use crate::mux::SegmentMuxer;
    use std::sync::Arc;
    use std::time::{Instant, SystemTime};

    // x264, High profile, 320x240.
    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xb2, 0x02, 0x83, 0xf6, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00,
        0x20, 0x00, 0x00, 0x07, 0x81, 0xe2, 0x85, 0x49,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xc3, 0xcb, 0x22, 0xc0];

    /// A finished segment of 90 synthetic frames in fragments of 10.
    fn segment(path: &Path) -> usize {
        let format = Arc::new(StreamFormat {
            codec: Codec::H264,
            width: 320,
            height: 240,
            frame_rate: Some((30, 1)),
            sps: SPS.to_vec(),
            pps: vec![PPS.to_vec()],
        });
        let mut w = Fmp4Writer::create(path, &format).expect("create");
        for i in 0..90i64 {
            if i > 0 && i % 10 == 0 {
                w.flush(Some(i * 3000)).expect("flush");
            }
            let key = i % 30 == 0;
            let mut data = vec![0, 0, 0, 40, if key { 0x65 } else { 0x41 }];
            data.extend(std::iter::repeat_n(i as u8, 39));
            w.push(&Frame {
                data,
                keyframe: key,
                pts: i * 3000,
                dts: i * 3000,
                captured: Instant::now(),
                wall: SystemTime::now(),
                format: format.clone(),
                dropped_before: 0,
            })
            .expect("push");
        }
        Box::new(w).finish(None).expect("finish");
        90
    }

    #[test]
    fn reads_what_the_writer_wrote() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        let n = segment(&p);
        let f = Mp4File::open(&p).expect("open");
        assert!(f.finished);
        assert_eq!(f.frames(), n as u64);
        assert_eq!(f.fragments.len(), 9);
        assert_eq!(f.decode_end(), n as u64 * 3000);
        assert_eq!((f.width, f.height), (320, 240));
        assert_eq!(f.sps, SPS);
        assert_eq!(f.pps, vec![PPS.to_vec()]);
        let file = File::open(&p).expect("open");
        let s = f.samples().nth(31).expect("sample");
        assert!(!s.sync);
        assert_eq!(Mp4File::read_sample(&file, s).expect("read")[5], 31);
        assert!(f.samples().nth(30).expect("sample").sync);
    }

    /// Cut anywhere, the reader never panics and keeps exactly the complete fragments.
    #[test]
    fn every_truncation_is_read_to_its_last_complete_fragment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        segment(&p);
        let bytes = std::fs::read(&p).expect("read");
        let whole = Mp4File::open(&p).expect("open");
        let ends: Vec<u64> = whole.fragments.iter().map(|f| f.end).collect();
        let cut = dir.path().join("cut.mp4");
        for len in (0..bytes.len()).step_by(7) {
            std::fs::write(&cut, &bytes[..len]).expect("write");
            match Mp4File::open(&cut) {
                Ok(f) => {
                    assert!(!f.finished, "cut at {len} looks finished");
                    let complete = ends.iter().filter(|&&e| e <= len as u64).count();
                    assert_eq!(f.fragments.len(), complete, "cut at {len}");
                    assert!(f.complete_end <= len as u64);
                }
                Err(StorageError::Unreadable { .. }) => {
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
        std::fs::write(&cut, &junk).expect("write");
        assert_eq!(Mp4File::open(&cut).expect("open").fragments.len(), 4);
    }
}
