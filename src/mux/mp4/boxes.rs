//! The ISO BMFF (MP4) boxes of a dashcam segment: one type per box, each with its size, how
//! it is written and how it is read back, so the writer, the reader and the repair share one
//! definition of every layout (model: alfg/mp4-rust's `mp4box/*.rs`).
//!
//! Pure code over byte buffers: writing appends big-endian bytes to a caller-owned
//! `Vec<u8>`, reading parses a box body (the bytes after its 8-byte header) and returns
//! `None` for anything it does not recognise — never a panic, whatever the bytes. Nothing here
//! touches a file; the writer decides what goes where. One video track (ID [`TRACK_ID`]),
//! media timescale [`TIMESCALE`] (90 kHz) for both the movie and the track.
//!
//! Versions: `mvhd`, `tkhd`, `mdhd`, `mehd`, `tfdt`, `tfra`, `elst` and `prft` are version 1
//! (64-bit times, no 13-hour wrap at 90 kHz); `trun` is version 1 so composition offsets are
//! signed (B-frame streams).
//!
//! Two boxes are dashcam's own additions, both ignored by players: a `prft` (producer
//! reference time, ISO/IEC 14496-12 8.16.5) before every `moof`, giving the wall-clock time
//! of the fragment's first frame, and one [`StreamClock`] (`uuid`, a user extension box)
//! before the first, giving the first frame's time on the source's clock. They let a segment
//! cut by a power loss get metadata as exact as a closed one's.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};

use std::time::{SystemTime, UNIX_EPOCH};

use crate::frame::{StreamFormat, TIMESCALE};

/// The only track of a dashcam MP4.
pub(crate) const TRACK_ID: u32 = 1;

/// Seconds from 1904-01-01 (the MP4 epoch) to 1970-01-01.
pub(crate) const MP4_EPOCH_OFFSET: u64 = 2_082_844_800;

/// Size of a plain box header (32-bit size + type).
const HEADER: usize = 8;

// ---- writing and reading primitives ----------------------------------------------------

fn put_u8(buf: &mut Vec<u8>, v: u8) {
    buf.push(v);
}
fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_be_bytes());
}
fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}
fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}
fn put_zeros(buf: &mut Vec<u8>, n: usize) {
    buf.resize(buf.len() + n, 0);
}
fn put_matrix(buf: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        put_u32(buf, v);
    }
}

/// Start a box: a size placeholder and the type; returns the box start for [`end`].
fn begin(buf: &mut Vec<u8>, fourcc: &[u8; 4]) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0]);
    buf.extend_from_slice(fourcc);
    start
}

/// Start a full box (with version and 24-bit flags).
fn begin_full(buf: &mut Vec<u8>, fourcc: &[u8; 4], version: u8, flags: u32) -> usize {
    let start = begin(buf, fourcc);
    put_u32(buf, (u32::from(version) << 24) | (flags & 0x00ff_ffff));
    start
}

/// Close the box started at `start` by writing its 32-bit size. Header boxes are far below
/// 4 GiB; a size that does not fit saturates (never reached: the writer bounds fragments).
fn end(buf: &mut [u8], start: usize) {
    let size = u32::try_from(buf.len().saturating_sub(start)).unwrap_or(u32::MAX);
    if let Some(field) = buf.get_mut(start..start + 4) {
        field.copy_from_slice(&size.to_be_bytes());
    }
}

/// A bounds-checked big-endian cursor over a box body.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Cursor<'a> {
        Cursor { b, pos: 0 }
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.array()?))
    }
    /// Version and flags of a full box.
    fn full(&mut self) -> Option<(u8, u32)> {
        let v = self.u32()?;
        Some(((v >> 24) as u8, v & 0x00ff_ffff))
    }
    fn rest(&self) -> &'a [u8] {
        self.b.get(self.pos..).unwrap_or(&[])
    }
}

// ---- walking ---------------------------------------------------------------------------

/// One box found inside a buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BoxRef<'a> {
    pub kind: [u8; 4],
    /// Offset of the box (its size field) in the walked buffer.
    pub offset: usize,
    /// Size of the box header (8, or 16 with a 64-bit size).
    pub header: usize,
    /// The bytes after the header.
    pub body: &'a [u8],
}

/// The boxes directly inside `buf`, in order; stops at the first box that is torn or
/// inconsistent (a size smaller than its header or beyond the buffer).
pub(crate) fn children(buf: &[u8]) -> impl Iterator<Item = BoxRef<'_>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let mut c = Cursor::new(buf.get(pos..)?);
        let size32 = c.u32()?;
        let kind = c.array::<4>()?;
        let (size, header) = match size32 {
            1 => (usize::try_from(c.u64()?).ok()?, 16),
            s => (s as usize, HEADER),
        };
        if size < header {
            return None;
        }
        let body = buf.get(pos + header..pos.checked_add(size)?)?;
        let found = BoxRef {
            kind,
            offset: pos,
            header,
            body,
        };
        pos += size;
        Some(found)
    })
}

/// The first box of type `kind` directly inside `buf`.
pub(crate) fn child<'a>(buf: &'a [u8], kind: &[u8; 4]) -> Option<BoxRef<'a>> {
    children(buf).find(|b| &b.kind == kind)
}

/// One box type: its size, how it is written, how its body is read.
pub(crate) trait Mp4Box: Sized {
    /// The box type (fourcc).
    const TYPE: [u8; 4];
    /// Size in bytes of the whole box, header included.
    fn size(&self) -> u64;
    /// Append the whole box to `buf`.
    fn write(&self, buf: &mut Vec<u8>);
    /// Parse the body of a box of this type (the bytes after its 8-byte header).
    fn read(body: &[u8]) -> Option<Self>;
}

/// The first box of type `B` directly inside `buf`, parsed, with its offset in `buf`.
pub(crate) fn find<B: Mp4Box>(buf: &[u8]) -> Option<(B, usize)> {
    let b = child(buf, &B::TYPE)?;
    Some((B::read(b.body)?, b.offset))
}

// ---- init segment ----------------------------------------------------------------------

/// `ftyp`: major brand `isom` (minor 512, as ffmpeg writes), compatible with the brands
/// whose features the file uses: iso2 (base), iso5 (default-base-is-moof), iso6 (tfdt/trun
/// v1, negative composition offsets), avc1, mp41.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ftyp {
    pub major: [u8; 4],
    pub minor: u32,
    pub compatible: Vec<[u8; 4]>,
}

impl Ftyp {
    pub(crate) fn dashcam() -> Ftyp {
        Ftyp {
            major: *b"isom",
            minor: 512,
            compatible: vec![*b"isom", *b"iso2", *b"iso5", *b"iso6", *b"avc1", *b"mp41"],
        }
    }
}

impl Mp4Box for Ftyp {
    const TYPE: [u8; 4] = *b"ftyp";
    fn size(&self) -> u64 {
        16 + 4 * self.compatible.len() as u64
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let start = begin(buf, &Self::TYPE);
        buf.extend_from_slice(&self.major);
        put_u32(buf, self.minor);
        for brand in &self.compatible {
            buf.extend_from_slice(brand);
        }
        end(buf, start);
    }
    fn read(body: &[u8]) -> Option<Ftyp> {
        let mut c = Cursor::new(body);
        let major = c.array()?;
        let minor = c.u32()?;
        let compatible = c
            .rest()
            .chunks_exact(4)
            .filter_map(|b| b.try_into().ok())
            .collect();
        Some(Ftyp {
            major,
            minor,
            compatible,
        })
    }
}

/// The times at the start of a version 1 `mvhd` or `mdhd`: creation time (also the
/// modification time), timescale, duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Times {
    /// Seconds since 1904-01-01 (see [`MP4_EPOCH_OFFSET`]).
    pub creation_time: u64,
    pub timescale: u32,
    pub duration: u64,
}

impl Times {
    /// Offset of the duration field from the start of the box.
    const DURATION_AT: u64 = 8 + 4 + 8 + 8 + 4;

    /// Start the full box `fourcc` (version 1) with these times.
    fn begin(&self, buf: &mut Vec<u8>, fourcc: &[u8; 4]) -> usize {
        let start = begin_full(buf, fourcc, 1, 0);
        put_u64(buf, self.creation_time);
        put_u64(buf, self.creation_time);
        put_u32(buf, self.timescale);
        put_u64(buf, self.duration);
        start
    }

    fn read(c: &mut Cursor) -> Option<Times> {
        if c.full()?.0 != 1 {
            return None;
        }
        let creation_time = c.u64()?;
        c.u64()?;
        Some(Times {
            creation_time,
            timescale: c.u32()?,
            duration: c.u64()?,
        })
    }
}

/// `mvhd` version 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mvhd {
    pub times: Times,
    pub next_track_id: u32,
}

impl Mvhd {
    pub(crate) const SIZE: u64 = 120;
    /// Offset of the duration field from the start of the box.
    pub(crate) const DURATION_AT: u64 = Times::DURATION_AT;
}

impl Mp4Box for Mvhd {
    const TYPE: [u8; 4] = *b"mvhd";
    fn size(&self) -> u64 {
        Self::SIZE
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let start = self.times.begin(buf, &Self::TYPE);
        put_u32(buf, 0x0001_0000); // rate 1.0
        put_u16(buf, 0x0100); // volume 1.0
        put_zeros(buf, 2 + 8);
        put_matrix(buf);
        put_zeros(buf, 24);
        put_u32(buf, self.next_track_id);
        end(buf, start);
    }
    fn read(body: &[u8]) -> Option<Mvhd> {
        let mut c = Cursor::new(body);
        let times = Times::read(&mut c)?;
        c.bytes(4 + 2 + 10 + 36 + 24)?;
        Some(Mvhd {
            times,
            next_track_id: c.u32()?,
        })
    }
}

/// `tkhd` version 1 (enabled, in movie).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tkhd {
    pub creation_time: u64,
    pub track_id: u32,
    pub duration: u64,
    pub width: u16,
    pub height: u16,
}

impl Tkhd {
    pub(crate) const SIZE: u64 = 104;
    pub(crate) const DURATION_AT: u64 = 8 + 4 + 8 + 8 + 4 + 4;
}

impl Mp4Box for Tkhd {
    const TYPE: [u8; 4] = *b"tkhd";
    fn size(&self) -> u64 {
        Self::SIZE
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let start = begin_full(buf, &Self::TYPE, 1, 0x3);
        put_u64(buf, self.creation_time);
        put_u64(buf, self.creation_time);
        put_u32(buf, self.track_id);
        put_u32(buf, 0);
        put_u64(buf, self.duration);
        put_zeros(buf, 8);
        put_u16(buf, 0); // layer
        put_u16(buf, 0); // alternate_group
        put_u16(buf, 0); // volume (video)
        put_u16(buf, 0);
        put_matrix(buf);
        put_u32(buf, u32::from(self.width) << 16);
        put_u32(buf, u32::from(self.height) << 16);
        end(buf, start);
    }
    fn read(body: &[u8]) -> Option<Tkhd> {
        let mut c = Cursor::new(body);
        if c.full()?.0 != 1 {
            return None;
        }
        let creation_time = c.u64()?;
        c.u64()?;
        let track_id = c.u32()?;
        c.u32()?;
        let duration = c.u64()?;
        c.bytes(8 + 8 + 36)?;
        Some(Tkhd {
            creation_time,
            track_id,
            duration,
            width: (c.u32()? >> 16) as u16,
            height: (c.u32()? >> 16) as u16,
        })
    }
}

/// `edts` with a one-entry `elst` (version 1): the movie starts at media time `media_time`
/// and lasts `segment_duration` ([`TIMESCALE`] ticks; 0 while unknown, as in fragmented
/// files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Edts {
    pub segment_duration: u64,
    pub media_time: i64,
}

impl Edts {
    pub(crate) const SIZE: u64 = 8 + 8 + 4 + 4 + 20;
    /// Offset of the elst `segment_duration` field from the start of the `edts` box.
    pub(crate) const DURATION_AT: u64 = 8 + 8 + 4 + 4;
}

impl Mp4Box for Edts {
    const TYPE: [u8; 4] = *b"edts";
    fn size(&self) -> u64 {
        Self::SIZE
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let edts = begin(buf, &Self::TYPE);
        let elst = begin_full(buf, b"elst", 1, 0);
        put_u32(buf, 1);
        put_u64(buf, self.segment_duration);
        buf.extend_from_slice(&self.media_time.to_be_bytes());
        put_u16(buf, 1); // media_rate_integer
        put_u16(buf, 0); // media_rate_fraction
        end(buf, elst);
        end(buf, edts);
    }
    fn read(body: &[u8]) -> Option<Edts> {
        let elst = child(body, b"elst")?;
        let mut c = Cursor::new(elst.body);
        if c.full()?.0 != 1 || c.u32()? < 1 {
            return None;
        }
        Some(Edts {
            segment_duration: c.u64()?,
            media_time: c.i64()?,
        })
    }
}

/// `mdhd` version 1, language "und".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mdhd {
    pub times: Times,
}

impl Mdhd {
    pub(crate) const SIZE: u64 = 44;
    pub(crate) const DURATION_AT: u64 = Times::DURATION_AT;
}

impl Mp4Box for Mdhd {
    const TYPE: [u8; 4] = *b"mdhd";
    fn size(&self) -> u64 {
        Self::SIZE
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let start = self.times.begin(buf, &Self::TYPE);
        put_u16(buf, 0x55c4); // language "und"
        put_u16(buf, 0);
        end(buf, start);
    }
    fn read(body: &[u8]) -> Option<Mdhd> {
        Some(Mdhd {
            times: Times::read(&mut Cursor::new(body))?,
        })
    }
}

/// Fields of a parsed SPS the container needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SpsInfo {
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    /// Cropped picture size, when the SPS yields one.
    pub dimensions: Option<(u32, u32)>,
}

/// Parse an SPS NAL unit (header byte included, emulation prevention bytes as coded).
pub(crate) fn parse_sps(sps: &[u8]) -> Option<SpsInfo> {
    if sps.len() < 4 {
        return None;
    }
    let parsed = SeqParameterSet::from_bits(RefNal::new(sps, &[], true).rbsp_bits()).ok()?;
    Some(SpsInfo {
        chroma_format_idc: u8::try_from(parsed.chroma_info.chroma_format.to_u32()).ok()?,
        bit_depth_luma_minus8: parsed.chroma_info.bit_depth_luma_minus8,
        bit_depth_chroma_minus8: parsed.chroma_info.bit_depth_chroma_minus8,
        dimensions: parsed.pixel_dimensions().ok(),
    })
}

/// The High-profile trailing fields of an `avcC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AvcExt {
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
}

/// `avcC` (AVCDecoderConfigurationRecord, ISO/IEC 14496-15 5.3.3.1): one SPS, its PPSs,
/// NAL lengths of 4 bytes; the High-profile trailing fields when the SPS parses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AvcC {
    pub sps: Vec<u8>,
    pub pps: Vec<Vec<u8>>,
    pub ext: Option<AvcExt>,
}

/// Profiles whose `avcC` carries the trailing fields.
fn high_profile(profile: u8) -> bool {
    matches!(profile, 100 | 110 | 122 | 144 | 244)
}

impl AvcC {
    /// The record for one SPS and its PPSs; errors name what is wrong with them.
    pub(crate) fn new(sps: &[u8], pps: &[Vec<u8>]) -> Result<AvcC, String> {
        if sps.len() < 4 || sps[0] & 0x1f != 7 {
            return Err(format!(
                "SPS is not a sequence parameter set NAL unit ({} bytes)",
                sps.len()
            ));
        }
        if sps.len() > usize::from(u16::MAX) {
            return Err("SPS longer than 65535 bytes".into());
        }
        if pps.is_empty() {
            return Err("no picture parameter set".into());
        }
        if pps.len() > 31 {
            return Err("more than 31 picture parameter sets".into());
        }
        for p in pps {
            if p.is_empty() || p[0] & 0x1f != 8 {
                return Err(format!(
                    "PPS is not a picture parameter set NAL unit ({} bytes)",
                    p.len()
                ));
            }
            if p.len() > usize::from(u16::MAX) {
                return Err("PPS longer than 65535 bytes".into());
            }
        }
        let ext = if high_profile(sps[1]) {
            parse_sps(sps).map(|info| AvcExt {
                chroma_format_idc: info.chroma_format_idc & 3,
                bit_depth_luma_minus8: info.bit_depth_luma_minus8 & 7,
                bit_depth_chroma_minus8: info.bit_depth_chroma_minus8 & 7,
            })
        } else {
            None
        };
        Ok(AvcC {
            sps: sps.to_vec(),
            pps: pps.to_vec(),
            ext,
        })
    }
}

impl Mp4Box for AvcC {
    const TYPE: [u8; 4] = *b"avcC";
    fn size(&self) -> u64 {
        let nals: usize = self.pps.iter().map(|p| 2 + p.len()).sum::<usize>() + 2 + self.sps.len();
        (HEADER + 6 + 1 + nals + if self.ext.is_some() { 4 } else { 0 }) as u64
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let start = begin(buf, &Self::TYPE);
        let byte = |i: usize| self.sps.get(i).copied().unwrap_or(0);
        put_u8(buf, 1); // configurationVersion
        put_u8(buf, byte(1)); // AVCProfileIndication
        put_u8(buf, byte(2)); // profile_compatibility
        put_u8(buf, byte(3)); // AVCLevelIndication
        put_u8(buf, 0xfc | 3); // lengthSizeMinusOne = 3
        put_u8(buf, 0xe0 | 1);
        // Lengths checked by `new` (and by `read`: they came from 16-bit fields).
        put_u16(buf, self.sps.len() as u16);
        buf.extend_from_slice(&self.sps);
        put_u8(buf, self.pps.len() as u8);
        for p in &self.pps {
            put_u16(buf, p.len() as u16);
            buf.extend_from_slice(p);
        }
        if let Some(e) = self.ext {
            put_u8(buf, 0xfc | e.chroma_format_idc);
            put_u8(buf, 0xf8 | e.bit_depth_luma_minus8);
            put_u8(buf, 0xf8 | e.bit_depth_chroma_minus8);
            put_u8(buf, 0); // numOfSequenceParameterSetExt
        }
        end(buf, start);
    }
    fn read(body: &[u8]) -> Option<AvcC> {
        let mut c = Cursor::new(body);
        c.bytes(5)?;
        let mut sps = None;
        for _ in 0..(c.u8()? & 0x1f) {
            let n = usize::from(c.u16()?);
            let nal = c.bytes(n)?.to_vec();
            sps.get_or_insert(nal);
        }
        let sps = sps?;
        let mut pps = Vec::new();
        for _ in 0..c.u8()? {
            let n = usize::from(c.u16()?);
            pps.push(c.bytes(n)?.to_vec());
        }
        let ext = match c.array::<4>() {
            Some([a, b, d, _]) if high_profile(sps.get(1).copied().unwrap_or(0)) => Some(AvcExt {
                chroma_format_idc: a & 3,
                bit_depth_luma_minus8: b & 7,
                bit_depth_chroma_minus8: d & 7,
            }),
            _ => None,
        };
        Some(AvcC { sps, pps, ext })
    }
}

/// `avc1` sample entry: picture size and the `avcC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Avc1 {
    pub width: u16,
    pub height: u16,
    pub avcc: AvcC,
}

impl Avc1 {
    /// Bytes of the visual sample entry before its child boxes.
    const FIXED: usize = 78;
}

impl Mp4Box for Avc1 {
    const TYPE: [u8; 4] = *b"avc1";
    fn size(&self) -> u64 {
        (HEADER + Self::FIXED) as u64 + self.avcc.size()
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let start = begin(buf, &Self::TYPE);
        put_zeros(buf, 6);
        put_u16(buf, 1); // data_reference_index
        put_zeros(buf, 2 + 2 + 12);
        put_u16(buf, self.width);
        put_u16(buf, self.height);
        put_u32(buf, 0x0048_0000); // 72 dpi
        put_u32(buf, 0x0048_0000);
        put_u32(buf, 0);
        put_u16(buf, 1); // frame_count
        put_zeros(buf, 32); // compressorname
        put_u16(buf, 0x0018); // depth
        put_u16(buf, 0xffff); // pre_defined = -1
        self.avcc.write(buf);
        end(buf, start);
    }
    fn read(body: &[u8]) -> Option<Avc1> {
        let mut c = Cursor::new(body);
        c.bytes(24)?;
        let width = c.u16()?;
        let height = c.u16()?;
        let (avcc, _) = find::<AvcC>(body.get(Self::FIXED..)?)?;
        Some(Avc1 {
            width,
            height,
            avcc,
        })
    }
}

/// `mehd` version 1: the whole duration of a fragmented movie. Written only when the
/// segment is finished (a `free` box holds its place until then): a `mehd` saying 0 makes
/// VLC show a length of 0 for a file cut by a power loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mehd {
    pub fragment_duration: u64,
}

impl Mehd {
    pub(crate) const SIZE: u64 = 20;
}

impl Mp4Box for Mehd {
    const TYPE: [u8; 4] = *b"mehd";
    fn size(&self) -> u64 {
        Self::SIZE
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let start = begin_full(buf, &Self::TYPE, 1, 0);
        put_u64(buf, self.fragment_duration);
        end(buf, start);
    }
    fn read(body: &[u8]) -> Option<Mehd> {
        let mut c = Cursor::new(body);
        let fragment_duration = match c.full()?.0 {
            1 => c.u64()?,
            _ => u64::from(c.u32()?),
        };
        Some(Mehd { fragment_duration })
    }
}

/// `trex`: the track's fragment defaults (all given per sample in each `trun`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Trex {
    pub track_id: u32,
}

impl Mp4Box for Trex {
    const TYPE: [u8; 4] = *b"trex";
    fn size(&self) -> u64 {
        32
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let start = begin_full(buf, &Self::TYPE, 0, 0);
        put_u32(buf, self.track_id);
        put_u32(buf, 1); // default_sample_description_index
        put_u32(buf, 0);
        put_u32(buf, 0);
        put_u32(buf, 0);
        end(buf, start);
    }
    fn read(body: &[u8]) -> Option<Trex> {
        let mut c = Cursor::new(body);
        c.full()?;
        Some(Trex { track_id: c.u32()? })
    }
}

/// A `free` box of `size` bytes (at least 8): padding, and the placeholder of a box that is
/// written later in place (the edit list at the first flush, `mehd` at finish).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Free {
    pub size: u64,
}

impl Mp4Box for Free {
    const TYPE: [u8; 4] = *b"free";
    fn size(&self) -> u64 {
        if self.size > u64::from(u32::MAX) {
            self.size.max(16)
        } else {
            self.size.max(8)
        }
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let size = self.size();
        if let Ok(small) = u32::try_from(size) {
            put_u32(buf, small);
            buf.extend_from_slice(&Self::TYPE);
            put_zeros(buf, (size - 8) as usize);
        } else {
            // Never used (padding is at most two pages), kept total for completeness.
            put_u32(buf, 1);
            buf.extend_from_slice(&Self::TYPE);
            put_u64(buf, size);
            put_zeros(buf, (size - 16) as usize);
        }
    }
    fn read(body: &[u8]) -> Option<Free> {
        Some(Free {
            size: (HEADER + body.len()) as u64,
        })
    }
}

/// What the `moov` says about the track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Moov {
    /// Seconds since 1904-01-01 (see [`MP4_EPOCH_OFFSET`]).
    pub creation_time: u64,
    /// Movie, track and media duration ([`TIMESCALE`] ticks); 0 until finished.
    pub duration: u64,
    pub avc1: Avc1,
    /// The edit list, or `None` while its place holds a `free` box.
    pub edts: Option<Edts>,
    /// The fragmented movie's duration, or `None` while its place holds a `free` box.
    pub mehd: Option<Mehd>,
}

/// Where the fields patched later are, as offsets from the start of the `moov`'s buffer
/// (the file, when the reader reports them): the duration fields (all in [`TIMESCALE`]
/// ticks) and the places of the edit list and of `mehd`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MoovLayout {
    pub mvhd_duration: u64,
    pub tkhd_duration: u64,
    pub mdhd_duration: u64,
    /// The `edts` box or its placeholder ([`Edts::SIZE`] bytes), inside the `trak`.
    pub edts: Option<u64>,
    /// The `mehd` box or its placeholder ([`Mehd::SIZE`] bytes), first in the `mvex`.
    pub mehd: Option<u64>,
}

/// The init segment (`ftyp` + a `moov` with no duration yet) of an H.264 stream: the one
/// definition for the segment files and the live view.
#[derive(Debug)]
pub(crate) struct InitSegment {
    pub bytes: Vec<u8>,
    /// Where the fields patched when a segment is finished are, in `bytes`.
    pub layout: MoovLayout,
    /// The picture size it declares: the format's, else the SPS's.
    pub width: u32,
    pub height: u32,
}

impl InitSegment {
    /// The init segment of an H.264 `format` (the caller checks the codec and says so in its
    /// own words), created at `created`; errors name what is wrong with the parameter sets.
    pub(crate) fn h264(format: &StreamFormat, created: SystemTime) -> Result<InitSegment, String> {
        let avcc = AvcC::new(&format.sps, &format.pps)?;
        let (mut width, mut height) = (format.width, format.height);
        if width == 0 || height == 0 {
            if let Some((w, h)) = parse_sps(&format.sps).and_then(|s| s.dimensions) {
                (width, height) = (w, h);
            }
        }
        let creation_time = created
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() + MP4_EPOCH_OFFSET);
        let mut bytes = Vec::with_capacity(1024);
        Ftyp::dashcam().write(&mut bytes);
        let layout = Moov {
            creation_time,
            duration: 0,
            avc1: Avc1 {
                width: u16::try_from(width).unwrap_or(u16::MAX),
                height: u16::try_from(height).unwrap_or(u16::MAX),
                avcc,
            },
            edts: None,
            mehd: None,
        }
        .write_with_layout(&mut bytes);
        Ok(InitSegment {
            bytes,
            layout,
            width,
            height,
        })
    }
}

impl MoovLayout {
    /// The same layout `by` bytes further into the file.
    pub(crate) fn shifted(self, by: u64) -> MoovLayout {
        MoovLayout {
            mvhd_duration: self.mvhd_duration + by,
            tkhd_duration: self.tkhd_duration + by,
            mdhd_duration: self.mdhd_duration + by,
            edts: self.edts.map(|p| p + by),
            mehd: self.mehd.map(|p| p + by),
        }
    }
}

/// An empty full box with one zero `entry_count` (stts, stsc, stco) or two (stsz).
fn empty_table(buf: &mut Vec<u8>, fourcc: &[u8; 4], zeros: usize) {
    let b = begin_full(buf, fourcc, 0, 0);
    put_zeros(buf, 4 * zeros);
    end(buf, b);
}

impl Moov {
    /// Append the `moov` (one H.264 track, empty sample tables, an `mvex`) and return where
    /// its patched fields are, relative to the start of `buf`.
    pub(crate) fn write_with_layout(&self, buf: &mut Vec<u8>) -> MoovLayout {
        let mut layout = MoovLayout::default();
        let t = self.creation_time;
        let times = Times {
            creation_time: t,
            timescale: TIMESCALE,
            duration: self.duration,
        };
        let moov = begin(buf, b"moov");

        layout.mvhd_duration = buf.len() as u64 + Mvhd::DURATION_AT;
        Mvhd {
            times,
            next_track_id: TRACK_ID + 1,
        }
        .write(buf);

        let trak = begin(buf, b"trak");
        layout.tkhd_duration = buf.len() as u64 + Tkhd::DURATION_AT;
        Tkhd {
            creation_time: t,
            track_id: TRACK_ID,
            duration: self.duration,
            width: self.avc1.width,
            height: self.avc1.height,
        }
        .write(buf);
        layout.edts = Some(buf.len() as u64);
        match self.edts {
            Some(e) => e.write(buf),
            None => Free { size: Edts::SIZE }.write(buf),
        }

        let mdia = begin(buf, b"mdia");
        layout.mdhd_duration = buf.len() as u64 + Mdhd::DURATION_AT;
        Mdhd { times }.write(buf);
        let hdlr = begin_full(buf, b"hdlr", 0, 0);
        put_u32(buf, 0);
        buf.extend_from_slice(b"vide");
        put_zeros(buf, 12);
        buf.extend_from_slice(b"VideoHandler\0");
        end(buf, hdlr);
        let minf = begin(buf, b"minf");
        let vmhd = begin_full(buf, b"vmhd", 0, 1);
        put_zeros(buf, 2 + 6);
        end(buf, vmhd);
        let dinf = begin(buf, b"dinf");
        let dref = begin_full(buf, b"dref", 0, 0);
        put_u32(buf, 1);
        let url = begin_full(buf, b"url ", 0, 1); // media data in this file
        end(buf, url);
        end(buf, dref);
        end(buf, dinf);
        let stbl = begin(buf, b"stbl");
        let stsd = begin_full(buf, b"stsd", 0, 0);
        put_u32(buf, 1);
        self.avc1.write(buf);
        end(buf, stsd);
        empty_table(buf, b"stts", 1);
        empty_table(buf, b"stsc", 1);
        empty_table(buf, b"stco", 1);
        empty_table(buf, b"stsz", 2);
        end(buf, stbl);
        end(buf, minf);
        end(buf, mdia);
        end(buf, trak);

        let mvex = begin(buf, b"mvex");
        layout.mehd = Some(buf.len() as u64);
        match self.mehd {
            Some(m) => m.write(buf),
            None => Free { size: Mehd::SIZE }.write(buf),
        }
        Trex { track_id: TRACK_ID }.write(buf);
        end(buf, mvex);

        end(buf, moov);
        layout
    }

    /// Parse a `moov` body; the layout is relative to the start of the body. Only what
    /// dashcam writes is accepted (version 1 headers, an `avc1` track).
    pub(crate) fn read_with_layout(body: &[u8]) -> Option<(Moov, MoovLayout)> {
        let at = |offset: usize, inside: &[usize]| (offset + inside.iter().sum::<usize>()) as u64;
        let mut layout = MoovLayout::default();
        let (mvhd, mvhd_at) = find::<Mvhd>(body)?;
        layout.mvhd_duration = at(mvhd_at, &[]) + Mvhd::DURATION_AT;
        let trak = child(body, b"trak")?;
        let trak_body = trak.offset + trak.header;
        let (tkhd, tkhd_at) = find::<Tkhd>(trak.body)?;
        layout.tkhd_duration = at(trak_body, &[tkhd_at]) + Tkhd::DURATION_AT;
        // The edit list, or its placeholder right after the tkhd.
        let mut edts = None;
        for b in children(trak.body) {
            match &b.kind {
                b"edts" => {
                    // An edit list dashcam did not write: no delay, nothing to patch.
                    edts = Edts::read(b.body);
                    if edts.is_some() {
                        layout.edts = Some(at(trak_body, &[b.offset]));
                    }
                }
                b"free" if layout.edts.is_none() && b.body.len() as u64 + 8 == Edts::SIZE => {
                    layout.edts = Some(at(trak_body, &[b.offset]));
                }
                _ => {}
            }
        }
        let mdia = child(trak.body, b"mdia")?;
        let mdia_body = trak_body + mdia.offset + mdia.header;
        let (mdhd, mdhd_at) = find::<Mdhd>(mdia.body)?;
        layout.mdhd_duration = at(mdia_body, &[mdhd_at]) + Mdhd::DURATION_AT;
        let minf = child(mdia.body, b"minf")?;
        let stbl = child(minf.body, b"stbl")?;
        let stsd = child(stbl.body, b"stsd")?;
        let (avc1, _) = find::<Avc1>(stsd.body.get(8..)?)?;
        let mut mehd = None;
        if let Some(mvex) = child(body, b"mvex") {
            let mvex_body = mvex.offset + mvex.header;
            if let Some(first) = children(mvex.body).next() {
                let size = first.body.len() as u64 + 8;
                match &first.kind {
                    b"mehd" if size == Mehd::SIZE => {
                        mehd = Some(Mehd::read(first.body)?);
                        layout.mehd = Some(at(mvex_body, &[first.offset]));
                    }
                    b"free" if size == Mehd::SIZE => {
                        layout.mehd = Some(at(mvex_body, &[first.offset]));
                    }
                    _ => {}
                }
            }
        }
        let moov = Moov {
            creation_time: mvhd.times.creation_time,
            // All three agree once finished; a cut finish may have patched some of them.
            duration: mvhd
                .times
                .duration
                .min(tkhd.duration)
                .min(mdhd.times.duration),
            avc1,
            edts,
            mehd,
        };
        Some((moov, layout))
    }
}

// ---- fragments -------------------------------------------------------------------------

/// `sample_flags` of a sync sample: sample_depends_on = 2 (does not depend on others),
/// is_non_sync_sample = 0.
pub(crate) const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: sample_depends_on = 1, is_non_sync_sample = 1.
pub(crate) const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;
/// The is_non_sync_sample bit of `sample_flags`.
const NON_SYNC_BIT: u32 = 0x0001_0000;

/// tfhd flag: the base data offset is the start of the enclosing `moof`.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// tfhd flag: an explicit base data offset (never written by dashcam).
const TFHD_BASE_DATA_OFFSET: u32 = 0x00_0001;
/// trun flags: data-offset, sample-duration, sample-size, sample-flags and
/// sample-composition-time-offset present.
const TRUN_FLAGS: u32 = 0x00_0001 | 0x00_0100 | 0x00_0200 | 0x00_0400 | 0x00_0800;

/// moof(8) + mfhd(16) + traf(8) + tfhd(16) + tfdt v1(20) + trun header(20).
const MOOF_FIXED: u64 = 8 + 16 + 8 + 16 + 20 + 20;
/// Bytes per trun entry (duration, size, flags, composition offset).
const TRUN_ENTRY: u64 = 16;

/// One `trun` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TrunSample {
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
    /// Composition time offset (presentation − decode time), signed (trun version 1).
    pub cto: i32,
}

impl TrunSample {
    pub(crate) fn is_sync(&self) -> bool {
        self.flags & NON_SYNC_BIT == 0
    }
}

/// `moof` with `mfhd`, one `traf` (`tfhd` default-base-is-moof, `tfdt` v1, `trun` v1 with
/// every per-sample field).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Moof {
    pub sequence: u32,
    /// Decode time of the first sample.
    pub base_decode_time: u64,
    /// Offset of the first sample's bytes from the start of the `moof`.
    pub data_offset: i32,
    pub samples: Vec<TrunSample>,
}

impl Moof {
    /// Size of a `moof` with `samples` trun entries.
    pub(crate) fn size_for(samples: usize) -> u64 {
        MOOF_FIXED + TRUN_ENTRY * samples as u64
    }

    /// The random access point of the fragment at `moof_offset`: its first sync sample.
    pub(crate) fn random_access(&self, moof_offset: u64) -> Option<TfraEntry> {
        let mut t = self.base_decode_time;
        for (i, s) in self.samples.iter().enumerate() {
            if s.is_sync() {
                let shown = i64::try_from(t)
                    .unwrap_or(i64::MAX)
                    .saturating_add(i64::from(s.cto));
                return Some(TfraEntry {
                    time: u64::try_from(shown).unwrap_or(0),
                    moof_offset,
                    sample_number: u32::try_from(i + 1).unwrap_or(u32::MAX),
                });
            }
            t = t.saturating_add(u64::from(s.duration));
        }
        None
    }
}

impl Mp4Box for Moof {
    const TYPE: [u8; 4] = *b"moof";
    fn size(&self) -> u64 {
        Self::size_for(self.samples.len())
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let moof = begin(buf, &Self::TYPE);
        let mfhd = begin_full(buf, b"mfhd", 0, 0);
        put_u32(buf, self.sequence);
        end(buf, mfhd);
        let traf = begin(buf, b"traf");
        let tfhd = begin_full(buf, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
        put_u32(buf, TRACK_ID);
        end(buf, tfhd);
        let tfdt = begin_full(buf, b"tfdt", 1, 0);
        put_u64(buf, self.base_decode_time);
        end(buf, tfdt);
        let trun = begin_full(buf, b"trun", 1, TRUN_FLAGS);
        put_u32(buf, u32::try_from(self.samples.len()).unwrap_or(u32::MAX));
        buf.extend_from_slice(&self.data_offset.to_be_bytes());
        for s in &self.samples {
            put_u32(buf, s.duration);
            put_u32(buf, s.size);
            put_u32(buf, s.flags);
            buf.extend_from_slice(&s.cto.to_be_bytes());
        }
        end(buf, trun);
        end(buf, traf);
        end(buf, moof);
    }
    /// Only the layout dashcam writes: one traf, default-base-is-moof, every trun field.
    fn read(body: &[u8]) -> Option<Moof> {
        let mfhd = child(body, b"mfhd")?;
        let mut c = Cursor::new(mfhd.body);
        c.full()?;
        let sequence = c.u32()?;
        let traf = child(body, b"traf")?;
        let tfhd = child(traf.body, b"tfhd")?;
        let (_, flags) = Cursor::new(tfhd.body).full()?;
        if flags & TFHD_DEFAULT_BASE_IS_MOOF == 0 || flags & TFHD_BASE_DATA_OFFSET != 0 {
            return None;
        }
        let tfdt = child(traf.body, b"tfdt")?;
        let mut c = Cursor::new(tfdt.body);
        let base_decode_time = match c.full()?.0 {
            1 => c.u64()?,
            _ => u64::from(c.u32()?),
        };
        let trun = child(traf.body, b"trun")?;
        let mut c = Cursor::new(trun.body);
        if c.full()?.1 != TRUN_FLAGS {
            return None;
        }
        let count = c.u32()? as usize;
        let data_offset = c.i32()?;
        if c.rest().len() / TRUN_ENTRY as usize != count {
            return None;
        }
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            samples.push(TrunSample {
                duration: c.u32()?,
                size: c.u32()?,
                flags: c.u32()?,
                cto: c.i32()?,
            });
        }
        Some(Moof {
            sequence,
            base_decode_time,
            data_offset,
            samples,
        })
    }
}

/// Size of the `mdat` header for `payload` bytes (16 with a 64-bit size when needed).
pub(crate) fn mdat_header_size(payload: u64) -> u64 {
    if payload + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    }
}

/// Append the header of an `mdat` holding `payload` bytes.
pub(crate) fn write_mdat_header(buf: &mut Vec<u8>, payload: u64) {
    if mdat_header_size(payload) == 16 {
        put_u32(buf, 1);
        buf.extend_from_slice(b"mdat");
        put_u64(buf, payload + 16);
    } else {
        // Fits: mdat_header_size checked payload + 8 <= u32::MAX.
        put_u32(buf, u32::try_from(payload + 8).unwrap_or(u32::MAX));
        buf.extend_from_slice(b"mdat");
    }
}

/// Seconds from 1900-01-01 (the NTP epoch) to 1970-01-01.
const NTP_UNIX_OFFSET: i128 = 2_208_988_800;

/// A wall-clock time as a 64-bit NTP timestamp (RFC 5905: seconds since 1900 in the high
/// 32 bits, fraction in the low 32). Times from 2036 on wrap into NTP era 1, as the format
/// does; [`from_ntp`] reads them back. Exact to the nanosecond both ways.
pub(crate) fn to_ntp(t: std::time::SystemTime) -> u64 {
    let ns: i128 = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let secs = ns.div_euclid(1_000_000_000) + NTP_UNIX_OFFSET;
    let sub = ns.rem_euclid(1_000_000_000);
    // round(sub * 2^32 / 1e9) stays below 2^32 for sub < 1e9.
    let frac = (sub * (1i128 << 32) + 500_000_000) / 1_000_000_000;
    (((secs as u64) & 0xffff_ffff) << 32) | frac as u64
}

/// The wall-clock time of an NTP timestamp: seconds below 2^31 are in era 1 (2036–2104),
/// the rest in era 0 (1968–2036), as RFC 4330 reads them.
pub(crate) fn from_ntp(ntp: u64) -> std::time::SystemTime {
    let mut secs = i128::from(ntp >> 32);
    if secs < 1 << 31 {
        secs += 1 << 32;
    }
    let frac = i128::from(ntp & 0xffff_ffff);
    let ns =
        (secs - NTP_UNIX_OFFSET) * 1_000_000_000 + (frac * 1_000_000_000 + (1 << 31)) / (1 << 32);
    let magnitude =
        std::time::Duration::from_nanos(u64::try_from(ns.unsigned_abs()).unwrap_or(u64::MAX));
    if ns >= 0 {
        std::time::UNIX_EPOCH + magnitude
    } else {
        std::time::UNIX_EPOCH - magnitude
    }
}

/// `prft` flags: the time is when the frame came out of the encoder (dashcam receives
/// frames already encoded: the camera's encoder or a file).
pub(crate) const PRFT_ENCODER_OUTPUT: u32 = 1;

/// `prft` version 1 (ISO/IEC 14496-12 8.16.5), written before each `moof`: the wall-clock
/// time (NTP) of the frame of the following fragment that presents at `media_time` (its
/// first frame in decode order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prft {
    pub flags: u32,
    pub reference_track_id: u32,
    pub ntp_timestamp: u64,
    /// Presentation time on the track's media timeline ([`TIMESCALE`] ticks).
    pub media_time: u64,
}

impl Prft {
    pub(crate) const SIZE: u64 = 32;
}

impl Mp4Box for Prft {
    const TYPE: [u8; 4] = *b"prft";
    fn size(&self) -> u64 {
        Self::SIZE
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let start = begin_full(buf, &Self::TYPE, 1, self.flags);
        put_u32(buf, self.reference_track_id);
        put_u64(buf, self.ntp_timestamp);
        put_u64(buf, self.media_time);
        end(buf, start);
    }
    fn read(body: &[u8]) -> Option<Prft> {
        let mut c = Cursor::new(body);
        let (version, flags) = c.full()?;
        let reference_track_id = c.u32()?;
        let ntp_timestamp = c.u64()?;
        let media_time = match version {
            0 => u64::from(c.u32()?),
            _ => c.u64()?,
        };
        Some(Prft {
            flags,
            reference_track_id,
            ntp_timestamp,
            media_time,
        })
    }
}

/// The extended type of [`StreamClock`] (a random, version 4 UUID owned by dashcam).
pub(crate) const STREAM_CLOCK_UUID: [u8; 16] = [
    0x6f, 0x1c, 0x3e, 0x52, 0x9b, 0x0d, 0x4a, 0x57, 0x8e, 0x21, 0x5c, 0xd4, 0x07, 0xa3, 0x96, 0xe8,
];

/// dashcam's own `uuid` box (a user extension box, ignored by players), once per file
/// before the first fragment: the sample presenting at `media_time` on the track has
/// presentation time `stream_pts` on the source's clock (90 kHz). It is what lets the
/// metadata of a segment cut by a power loss carry the source's `start_pts`, which nothing
/// standard in the file records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamClock {
    pub media_time: u64,
    pub stream_pts: i64,
}

impl StreamClock {
    pub(crate) const SIZE: u64 = 8 + 16 + 4 + 8 + 8;
}

impl Mp4Box for StreamClock {
    const TYPE: [u8; 4] = *b"uuid";
    fn size(&self) -> u64 {
        Self::SIZE
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let start = begin(buf, &Self::TYPE);
        buf.extend_from_slice(&STREAM_CLOCK_UUID);
        put_u32(buf, 0); // version 0, flags 0
        put_u64(buf, self.media_time);
        buf.extend_from_slice(&self.stream_pts.to_be_bytes());
        end(buf, start);
    }
    fn read(body: &[u8]) -> Option<StreamClock> {
        let mut c = Cursor::new(body);
        if c.array::<16>()? != STREAM_CLOCK_UUID || c.full()?.0 != 0 {
            return None;
        }
        Some(StreamClock {
            media_time: c.u64()?,
            stream_pts: c.i64()?,
        })
    }
}

// ---- random access index ---------------------------------------------------------------

/// Bytes per tfra v1 entry with 1-byte traf/trun numbers and a 4-byte sample number.
const TFRA_ENTRY: u64 = 8 + 8 + 1 + 1 + 4;
/// mfra(8) + tfra header(8 + 4 + 4 + 4 + 4) + mfro(16).
const MFRA_FIXED: u64 = 8 + 24 + 16;

/// One random access point for the `tfra`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TfraEntry {
    /// Presentation time of the sync sample, [`TIMESCALE`] ticks.
    pub time: u64,
    /// File offset of the `moof` of its fragment.
    pub moof_offset: u64,
    /// 1-based number of the sample in the fragment's only trun.
    pub sample_number: u32,
}

/// `mfra`: one `tfra` (version 1) for the track, then `mfro` with the total size, which
/// ends a finished file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mfra {
    pub entries: Vec<TfraEntry>,
}

impl Mfra {
    /// Size of an `mfra` with `entries` random access points.
    pub(crate) fn size_for(entries: usize) -> u64 {
        MFRA_FIXED + TFRA_ENTRY * entries as u64
    }

    /// The size an `mfro` (the last 16 bytes of a file) gives for its `mfra`.
    pub(crate) fn size_in_mfro(mfro: &[u8; 16]) -> Option<u64> {
        let mut c = Cursor::new(mfro);
        (c.u32()? == 16 && &c.array::<4>()? == b"mfro" && c.full()?.0 == 0)
            .then_some(())
            .and_then(|()| Some(u64::from(c.u32()?)))
    }
}

impl Mp4Box for Mfra {
    const TYPE: [u8; 4] = *b"mfra";
    fn size(&self) -> u64 {
        Self::size_for(self.entries.len())
    }
    fn write(&self, buf: &mut Vec<u8>) {
        let mfra = begin(buf, &Self::TYPE);
        let tfra = begin_full(buf, b"tfra", 1, 0);
        put_u32(buf, TRACK_ID);
        // length_size_of_traf_num = 0 (1 byte), trun_num = 0 (1 byte), sample_num = 3 (4 bytes)
        put_u32(buf, 0b00_00_11);
        put_u32(buf, u32::try_from(self.entries.len()).unwrap_or(u32::MAX));
        for e in self.entries.iter().take(u32::MAX as usize) {
            put_u64(buf, e.time);
            put_u64(buf, e.moof_offset);
            put_u8(buf, 1);
            put_u8(buf, 1);
            put_u32(buf, e.sample_number);
        }
        end(buf, tfra);
        let mfro = begin_full(buf, b"mfro", 0, 0);
        let total = buf.len() - mfra + 4;
        put_u32(buf, u32::try_from(total).unwrap_or(u32::MAX));
        end(buf, mfro);
        end(buf, mfra);
    }
    fn read(body: &[u8]) -> Option<Mfra> {
        let tfra = child(body, b"tfra")?;
        let mut c = Cursor::new(tfra.body);
        if c.full()?.0 != 1 || c.u32()? != TRACK_ID || c.u32()? != 0b00_00_11 {
            return None;
        }
        let count = c.u32()? as usize;
        if c.rest().len() / TFRA_ENTRY as usize != count {
            return None;
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let time = c.u64()?;
            let moof_offset = c.u64()?;
            c.bytes(2)?;
            entries.push(TfraEntry {
                time,
                moof_offset,
                sample_number: c.u32()?,
            });
        }
        child(body, b"mfro")?;
        Some(Mfra { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{PPS, SPS};
    use std::fmt::Debug;

    /// Write `b`, check its size and header, read it back: the same value.
    fn round_trip<B: Mp4Box + PartialEq + Debug>(b: &B) -> Vec<u8> {
        let mut buf = vec![0xaa; 3]; // not at the start of the buffer
        b.write(&mut buf);
        let bytes = buf.split_off(3);
        assert_eq!(bytes.len() as u64, b.size(), "{b:?}");
        let found: Vec<BoxRef> = children(&bytes).collect();
        assert_eq!(found.len(), 1, "{b:?}");
        assert_eq!(found[0].kind, B::TYPE);
        assert_eq!(found[0].body.len() + found[0].header, bytes.len());
        assert_eq!(B::read(found[0].body).as_ref(), Some(b));
        bytes
    }

    fn avc1() -> Avc1 {
        Avc1 {
            width: 320,
            height: 240,
            avcc: AvcC::new(SPS, &[PPS.to_vec()]).expect("avcC"),
        }
    }

    #[test]
    fn init_boxes_round_trip() {
        round_trip(&Ftyp::dashcam());
        let mvhd = round_trip(&Mvhd {
            times: Times {
                creation_time: 3_000_000_000,
                timescale: TIMESCALE,
                duration: 12345,
            },
            next_track_id: 2,
        });
        let at = Mvhd::DURATION_AT as usize;
        assert_eq!(&mvhd[at..at + 8], &12345u64.to_be_bytes());
        let tkhd = round_trip(&Tkhd {
            creation_time: 1,
            track_id: TRACK_ID,
            duration: 777,
            width: 1920,
            height: 1080,
        });
        let at = Tkhd::DURATION_AT as usize;
        assert_eq!(&tkhd[at..at + 8], &777u64.to_be_bytes());
        let edts = round_trip(&Edts {
            segment_duration: 12345,
            media_time: 6000,
        });
        let at = Edts::DURATION_AT as usize;
        assert_eq!(&edts[at..at + 8], &12345u64.to_be_bytes());
        let mdhd = round_trip(&Mdhd {
            times: Times {
                creation_time: 5,
                timescale: TIMESCALE,
                duration: 99,
            },
        });
        let at = Mdhd::DURATION_AT as usize;
        assert_eq!(&mdhd[at..at + 8], &99u64.to_be_bytes());
        round_trip(&Mehd {
            fragment_duration: 1 << 40,
        });
        round_trip(&Trex { track_id: TRACK_ID });
        for size in [8, 20, 36, 4095] {
            round_trip(&Free { size });
        }
        let avcc = round_trip(&avc1().avcc);
        // High profile: 4:2:0, 8 bit, no SPS extensions.
        assert_eq!(&avcc[8..14], &[1, 0x64, 0x00, 0x0d, 0xff, 0xe1]);
        assert_eq!(&avcc[avcc.len() - 4..], &[0xfd, 0xf8, 0xf8, 0]);
        round_trip(&avc1());
    }

    #[test]
    fn avcc_rejects_bad_parameter_sets() {
        let pps = || vec![vec![0x68, 1]];
        assert!(AvcC::new(&[], &pps()).is_err());
        assert!(AvcC::new(&[0x67, 66, 0], &pps()).is_err());
        assert!(AvcC::new(&[0x68, 66, 0, 30], &pps()).is_err());
        assert!(AvcC::new(&[0x67, 66, 0, 30], &[]).is_err());
        assert!(AvcC::new(&[0x67, 66, 0, 30], &[vec![]]).is_err());
        assert!(AvcC::new(&[0x67, 66, 0, 30], &vec![vec![0x68]; 32]).is_err());
        // Unparsable High-profile SPS: no trailing fields, still a valid record.
        let b = AvcC::new(&[0x67, 100, 0, 30], &[vec![0x68, 0xce]]).expect("avcC");
        assert_eq!(b.ext, None);
        assert_eq!(b.size(), 8 + 6 + 2 + 4 + 1 + 2 + 2);
        round_trip(&b);
    }

    #[test]
    fn moov_round_trip_with_placeholders_and_without() {
        for (edts, mehd) in [
            (None, None),
            (
                Some(Edts {
                    segment_duration: 90_000,
                    media_time: 3000,
                }),
                Some(Mehd {
                    fragment_duration: 90_000,
                }),
            ),
        ] {
            let moov = Moov {
                creation_time: 3_900_000_000,
                duration: 90_000,
                avc1: avc1(),
                edts,
                mehd,
            };
            let mut buf = Vec::new();
            Ftyp::dashcam().write(&mut buf);
            let layout = moov.write_with_layout(&mut buf);
            let top: Vec<BoxRef> = children(&buf).collect();
            assert_eq!(top.len(), 2);
            assert_eq!(top[1].kind, *b"moov");
            let body_at = (top[1].offset + top[1].header) as u64;
            let (back, read_layout) = Moov::read_with_layout(top[1].body).expect("moov");
            assert_eq!(back, moov);
            assert_eq!(read_layout.shifted(body_at), layout);
            for at in [
                layout.mvhd_duration,
                layout.tkhd_duration,
                layout.mdhd_duration,
            ] {
                let at = at as usize;
                assert_eq!(&buf[at..at + 8], &90_000u64.to_be_bytes());
            }
            // The edit list's place lies in the first 512-byte sector (rewritten in place).
            let edts_at = layout.edts.expect("edts place") as usize;
            assert!(edts_at as u64 + Edts::SIZE <= 512);
            let mehd_at = layout.mehd.expect("mehd place") as usize;
            let kind = |at: usize| &buf[at + 4..at + 8];
            match (edts, mehd) {
                (None, None) => {
                    assert_eq!((kind(edts_at), kind(mehd_at)), (&b"free"[..], &b"free"[..]))
                }
                _ => assert_eq!((kind(edts_at), kind(mehd_at)), (&b"edts"[..], &b"mehd"[..])),
            }
        }
    }

    #[test]
    fn fragment_boxes_round_trip() {
        let sample = |flags, cto| TrunSample {
            duration: 3000,
            size: 10,
            flags,
            cto,
        };
        let moof = Moof {
            sequence: 7,
            base_decode_time: 1 << 33,
            data_offset: 200,
            samples: vec![
                sample(SAMPLE_FLAGS_NON_SYNC, 0),
                sample(SAMPLE_FLAGS_SYNC, -3000),
                sample(SAMPLE_FLAGS_NON_SYNC, 6000),
            ],
        };
        assert_eq!(Moof::size_for(3), moof.size());
        round_trip(&moof);
        let ra = moof.random_access(4096).expect("a sync sample");
        assert_eq!(
            (ra.time, ra.moof_offset, ra.sample_number),
            ((1 << 33), 4096, 2)
        );
        assert!(Moof::default().random_access(0).is_none());
        round_trip(&Moof::default());
        round_trip(&Prft {
            flags: PRFT_ENCODER_OUTPUT,
            reference_track_id: TRACK_ID,
            ntp_timestamp: 0xe000_0000_8000_0000,
            media_time: 3000,
        });
        round_trip(&StreamClock {
            media_time: 3000,
            stream_pts: -7_777_777,
        });
        let mut other = Vec::new();
        StreamClock {
            media_time: 0,
            stream_pts: 0,
        }
        .write(&mut other);
        other[8] ^= 1; // another uuid
        assert_eq!(StreamClock::read(&other[8..]), None);
        let e = TfraEntry {
            time: 1,
            moof_offset: 2,
            sample_number: 3,
        };
        let mfra = round_trip(&Mfra {
            entries: vec![e, e],
        });
        assert_eq!(mfra.len() as u64, Mfra::size_for(2));
        let tail: [u8; 16] = mfra[mfra.len() - 16..].try_into().expect("16 bytes");
        assert_eq!(Mfra::size_in_mfro(&tail), Some(mfra.len() as u64));
        round_trip(&Mfra::default());
    }

    #[test]
    fn mdat_headers() {
        let mut buf = Vec::new();
        write_mdat_header(&mut buf, 30);
        assert_eq!(buf, [0, 0, 0, 38, b'm', b'd', b'a', b't']);
        assert_eq!(mdat_header_size(u64::from(u32::MAX)), 16);
        let mut buf = Vec::new();
        write_mdat_header(&mut buf, u64::from(u32::MAX));
        assert_eq!(&buf[..8], &[0, 0, 0, 1, b'm', b'd', b'a', b't']);
        assert_eq!(&buf[8..], &(u64::from(u32::MAX) + 16).to_be_bytes());
        // The walker reads a 64-bit size.
        let mut big = Vec::new();
        put_u32(&mut big, 1);
        big.extend_from_slice(b"free");
        put_u64(&mut big, 20);
        put_zeros(&mut big, 4);
        let found: Vec<BoxRef> = children(&big).collect();
        assert_eq!(
            (found.len(), found[0].header, found[0].body.len()),
            (1, 16, 4)
        );
    }

    #[test]
    fn ntp_times_round_trip_to_the_nanosecond() {
        use std::time::{Duration, UNIX_EPOCH};
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_795_000_000, 123_456_789), // 2026
            UNIX_EPOCH + Duration::new(2_208_988_800, 999_999_999), // 2040: NTP era 1
            UNIX_EPOCH - Duration::new(86_400, 1),
        ] {
            assert_eq!(from_ntp(to_ntp(t)), t, "{t:?}");
        }
        assert_eq!(to_ntp(UNIX_EPOCH), 2_208_988_800 << 32);
        // Every value reads as some time (fuzzers feed any bytes).
        for ntp in [0, u64::MAX, 0xffff_ffff, 1 << 63] {
            let _ = from_ntp(ntp);
        }
    }

    #[test]
    fn the_walker_stops_at_torn_and_bad_boxes() {
        let mut buf = Vec::new();
        Free { size: 16 }.write(&mut buf);
        Free { size: 12 }.write(&mut buf);
        assert_eq!(children(&buf).count(), 2);
        assert_eq!(children(&buf[..buf.len() - 1]).count(), 1);
        let mut bad = buf.clone();
        bad[16..20].copy_from_slice(&4u32.to_be_bytes()); // size below the header
        assert_eq!(children(&bad).count(), 1);
        assert_eq!(children(&[0u8; 7]).count(), 0);
        // Readers of boxes never panic on short or garbage bodies.
        for n in 0..64 {
            let junk = vec![0xff; n];
            let _ = Mvhd::read(&junk);
            let _ = Tkhd::read(&junk);
            let _ = Edts::read(&junk);
            let _ = Mdhd::read(&junk);
            let _ = AvcC::read(&junk);
            let _ = Avc1::read(&junk);
            let _ = Moof::read(&junk);
            let _ = Prft::read(&junk);
            let _ = StreamClock::read(&junk);
            let _ = Mfra::read(&junk);
            let _ = Moov::read_with_layout(&junk);
        }
    }
}
