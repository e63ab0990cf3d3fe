//! The layout of a dashcam AVI segment, once: the header the writer writes and the reader
//! parses, the frame chunks, the `idx1` entries and dashcam's start chunk.
//!
//! ```text
//! RIFF 'AVI '
//!   LIST 'hdrl' (avih, LIST 'strl' (strh 'vids' 'MJPG', strf BITMAPINFOHEADER 'MJPG'))
//!   JUNK  dashcam's start chunk: the first frame's wall-clock time and stream pts
//!   LIST 'movi' (00dc chunks, one complete JPEG each, padded to even sizes)
//!   idx1            only once finished
//! ```
//!
//! The start chunk is a `JUNK` chunk because every AVI reader skips `JUNK` by definition
//! (it is the format's padding: ffmpeg, VLC and GStreamer all step over it, checked by
//! `tests/players.rs`), while a chunk inside `hdrl`/`strl` would be parsed (`strd` is handed
//! to the decoder as extradata by ffmpeg) and a chunk of a new type inside `movi` would be
//! taken for a stream's data. Its payload starts with a signature so dashcam tells it from
//! ordinary padding; until the first frame is on disk it is all zeros, which is ordinary
//! padding. Files written before it existed (no `JUNK`, a 224-byte header) read the same.
//!
//! Pure code over byte arrays (little-endian, as RIFF is): nothing here touches a file, and
//! parsing never panics, whatever the bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes before the first `movi` chunk as dashcam writes it now.
pub(crate) const HEADER_LEN: usize = 272;
/// Chunk header (fourcc + size) and one `idx1` entry.
pub(crate) const CHUNK_HEADER_LEN: u64 = 8;
pub(crate) const IDX1_ENTRY_LEN: u64 = 16;
/// The chunk type of a frame of stream 0 (compressed video).
pub(crate) const FRAME_CHUNK: [u8; 4] = *b"00dc";

pub(crate) const AVIF_HASINDEX: u32 = 0x10;
pub(crate) const AVIF_ISINTERLEAVED: u32 = 0x100;
pub(crate) const AVIIF_KEYFRAME: u32 = 0x10;

/// Sizes of the header's chunks (bodies).
const AVIH_LEN: u32 = 56;
const STRH_LEN: u32 = 56;
const STRF_LEN: u32 = 40;
const START_LEN: u32 = 40;
/// 'strl' + strh + strf; 'hdrl' + avih + LIST strl.
const STRL_LIST_LEN: u32 = 4 + (8 + STRH_LEN) + (8 + STRF_LEN);
const HDRL_LIST_LEN: u32 = 4 + (8 + AVIH_LEN) + (8 + STRL_LIST_LEN);

/// Offsets of the fields patched after the fact, inside the `avih` and `strh` bodies.
pub(crate) mod field {
    pub(crate) const AVIH_FLAGS: u64 = 12;
    pub(crate) const AVIH_TOTAL_FRAMES: u64 = 16;
    pub(crate) const AVIH_SUGGESTED_BUFFER: u64 = 28;
    pub(crate) const STRH_LENGTH: u64 = 32;
    pub(crate) const STRH_SUGGESTED_BUFFER: u64 = 36;
}

/// The header values; everything else in the header is fixed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HeaderFields {
    pub width: u32,
    pub height: u32,
    /// (dwRate, dwScale): frames per second = rate / scale.
    pub rate: u32,
    pub scale: u32,
    pub micros_per_frame: u32,
    pub max_bytes_per_sec: u32,
    pub flags: u32,
    pub total_frames: u32,
    pub suggested_buffer: u32,
    /// RIFF chunk size (file length - 8).
    pub riff_size: u32,
    /// `movi` LIST size (4 for the fourcc + the chunks).
    pub movi_size: u32,
}

/// The segment's first frame, as dashcam's start chunk records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StartStamp {
    /// Wall-clock time of capture (`Frame::wall`).
    pub wall: SystemTime,
    /// Presentation and decode time on the source's clock (90 kHz).
    pub pts: i64,
    pub dts: i64,
}

/// Signature at the start of the start chunk's payload.
const START_SIGNATURE: [u8; 8] = *b"dashcam\0";
const START_VERSION: u32 = 1;

impl StartStamp {
    fn encode(&self) -> [u8; START_LEN as usize] {
        let mut b = [0u8; START_LEN as usize];
        let ns: i128 = match self.wall.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        b[..8].copy_from_slice(&START_SIGNATURE);
        b[8..12].copy_from_slice(&START_VERSION.to_le_bytes());
        let ns = i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX });
        b[16..24].copy_from_slice(&ns.to_le_bytes());
        b[24..32].copy_from_slice(&self.pts.to_le_bytes());
        b[32..40].copy_from_slice(&self.dts.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<StartStamp> {
        if b.get(..8)? != START_SIGNATURE || le32(b, 8)? != START_VERSION {
            return None;
        }
        let ns = le64(b, 16)? as i64;
        let magnitude = Duration::from_nanos(ns.unsigned_abs());
        Some(StartStamp {
            wall: if ns >= 0 {
                UNIX_EPOCH + magnitude
            } else {
                UNIX_EPOCH - magnitude
            },
            pts: le64(b, 24)? as i64,
            dts: le64(b, 32)? as i64,
        })
    }
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Little-endian writer over the fixed-size header array.
struct HeaderBuf {
    bytes: [u8; HEADER_LEN],
    pos: usize,
}

impl HeaderBuf {
    fn put(&mut self, b: &[u8]) {
        self.bytes[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
}

/// The complete header up to and including the `movi` fourcc.
pub(crate) fn write_header(f: &HeaderFields, start: Option<&StartStamp>) -> [u8; HEADER_LEN] {
    let mut h = HeaderBuf {
        bytes: [0; HEADER_LEN],
        pos: 0,
    };
    h.put(b"RIFF");
    h.u32(f.riff_size);
    h.put(b"AVI ");
    h.put(b"LIST");
    h.u32(HDRL_LIST_LEN);
    h.put(b"hdrl");

    h.put(b"avih");
    h.u32(AVIH_LEN);
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

    h.put(b"LIST");
    h.u32(STRL_LIST_LEN);
    h.put(b"strl");
    h.put(b"strh");
    h.u32(STRH_LEN);
    h.put(b"vids");
    h.put(b"MJPG");
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
    h.u16(u16::try_from(f.width).unwrap_or(u16::MAX));
    h.u16(u16::try_from(f.height).unwrap_or(u16::MAX));

    h.put(b"strf");
    h.u32(STRF_LEN);
    h.u32(STRF_LEN); // biSize
    h.u32(f.width);
    h.u32(f.height);
    h.u16(1); // biPlanes
    h.u16(24); // biBitCount
    h.put(b"MJPG");
    h.u32(f.width.saturating_mul(f.height).saturating_mul(3)); // biSizeImage
    for _ in 0..4 {
        h.u32(0); // biXPelsPerMeter, biYPelsPerMeter, biClrUsed, biClrImportant
    }

    h.put(b"JUNK");
    h.u32(START_LEN);
    match start {
        Some(s) => h.put(&s.encode()),
        None => h.put(&[0; START_LEN as usize]),
    }

    h.put(b"LIST");
    h.u32(f.movi_size);
    h.put(b"movi");
    debug_assert_eq!(h.pos, HEADER_LEN);
    h.bytes
}

/// Where a parsed header's parts are in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderPositions {
    /// Start of the `avih` and `strh` bodies (see [`field`]).
    pub avih: u64,
    pub strh: u64,
    /// The `movi` LIST's size field; the fourcc follows it, and `idx1` offsets count from
    /// that fourcc.
    pub movi_size: u64,
}

impl HeaderPositions {
    pub(crate) fn movi_fourcc(&self) -> u64 {
        self.movi_size + 4
    }

    /// Where the first chunk of `movi` starts.
    pub(crate) fn first_chunk(&self) -> u64 {
        self.movi_size + 8
    }
}

/// A header read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ParsedHeader {
    pub fields: HeaderFields,
    pub start: Option<StartStamp>,
    pub at: HeaderPositions,
}

/// Parse the start of a file (at least everything up to the `movi` fourcc): a RIFF `AVI `
/// whose `hdrl` has one MJPEG video stream, optional `JUNK` (dashcam's start chunk or
/// padding), then `LIST movi`. `None` when it is not such a header.
pub(crate) fn read_header(b: &[u8]) -> Option<ParsedHeader> {
    if b.get(..4)? != b"RIFF" || b.get(8..12)? != b"AVI " {
        return None;
    }
    let mut fields = HeaderFields {
        riff_size: le32(b, 4)?,
        ..HeaderFields::default()
    };
    let mut start = None;
    let mut avih = None;
    let mut strh = None;
    let mut pos = 12usize;
    loop {
        let kind = b.get(pos..pos + 4)?;
        let size = le32(b, pos + 4)? as usize;
        let body = pos + 8;
        match kind {
            b"LIST" if b.get(body..body + 4)? == b"movi" => {
                fields.movi_size = size as u32;
                let (avih, strh): (usize, usize) = (avih?, strh?);
                return Some(ParsedHeader {
                    fields,
                    start,
                    at: HeaderPositions {
                        avih: avih as u64,
                        strh: strh as u64,
                        movi_size: (pos + 4) as u64,
                    },
                });
            }
            b"LIST" if b.get(body..body + 4)? == b"hdrl" => {
                let hdrl = b.get(body + 4..body.checked_add(size)?)?;
                let (a, s) = parse_hdrl(hdrl, &mut fields)?;
                avih = Some(body + 4 + a);
                strh = Some(body + 4 + s);
            }
            b"JUNK" => {
                start = b
                    .get(body..body.checked_add(size)?)
                    .and_then(StartStamp::decode);
            }
            _ => return None,
        }
        pos = body.checked_add(size)?.checked_add(size & 1)?;
    }
}

/// The `hdrl` body (after its fourcc): fills `fields`, returns the offsets of the `avih`
/// and `strh` bodies within it.
fn parse_hdrl(hdrl: &[u8], f: &mut HeaderFields) -> Option<(usize, usize)> {
    if hdrl.get(..4)? != b"avih" || le32(hdrl, 4)? < AVIH_LEN {
        return None;
    }
    let a = 8;
    f.micros_per_frame = le32(hdrl, a)?;
    f.max_bytes_per_sec = le32(hdrl, a + 4)?;
    f.flags = le32(hdrl, a + 12)?;
    f.total_frames = le32(hdrl, a + 16)?;
    f.suggested_buffer = le32(hdrl, a + 28)?;
    f.width = le32(hdrl, a + 32)?;
    f.height = le32(hdrl, a + 36)?;
    let strl = a + le32(hdrl, 4)? as usize;
    if hdrl.get(strl..strl + 4)? != b"LIST" || hdrl.get(strl + 8..strl + 12)? != b"strl" {
        return None;
    }
    let sh = strl + 12;
    if hdrl.get(sh..sh + 4)? != b"strh" || le32(hdrl, sh + 4)? < STRH_LEN {
        return None;
    }
    let s = sh + 8;
    if hdrl.get(s..s + 8)? != b"vidsMJPG" {
        return None;
    }
    f.scale = le32(hdrl, s + 20)?;
    f.rate = le32(hdrl, s + 24)?;
    let sf = s + le32(hdrl, sh + 4)? as usize;
    if hdrl.get(sf..sf + 4)? != b"strf" || hdrl.get(sf + 8 + 16..sf + 8 + 20)? != b"MJPG" {
        return None;
    }
    Some((a, s))
}

/// One `idx1` entry: a keyframe chunk at `offset` (from the `movi` fourcc) of `size` bytes.
pub(crate) fn idx1_entry(buf: &mut Vec<u8>, offset: u32, size: u32) {
    buf.extend_from_slice(&FRAME_CHUNK);
    buf.extend_from_slice(&AVIIF_KEYFRAME.to_le_bytes());
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&size.to_le_bytes());
}

/// The `idx1` chunk for `entries` (offset from the `movi` fourcc, size) of frame chunks.
pub(crate) fn idx1(entries: impl ExactSizeIterator<Item = (u32, u32)>) -> Vec<u8> {
    let n = entries.len() as u64;
    let mut buf = Vec::with_capacity((CHUNK_HEADER_LEN + IDX1_ENTRY_LEN * n) as usize);
    buf.extend_from_slice(b"idx1");
    buf.extend_from_slice(
        &u32::try_from(IDX1_ENTRY_LEN * n)
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for (offset, size) in entries {
        idx1_entry(&mut buf, offset, size);
    }
    buf
}

/// The header of a frame chunk of `size` bytes.
pub(crate) fn frame_chunk_header(size: u32) -> [u8; CHUNK_HEADER_LEN as usize] {
    let mut h = [0u8; CHUNK_HEADER_LEN as usize];
    h[..4].copy_from_slice(&FRAME_CHUNK);
    h[4..].copy_from_slice(&size.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> HeaderFields {
        HeaderFields {
            width: 640,
            height: 360,
            rate: 30,
            scale: 1,
            micros_per_frame: 33_333,
            max_bytes_per_sec: 12345,
            flags: AVIF_ISINTERLEAVED | AVIF_HASINDEX,
            total_frames: 42,
            suggested_buffer: 9000,
            riff_size: 100_000,
            movi_size: 99_000,
        }
    }

    #[test]
    fn header_round_trip() {
        let stamp = StartStamp {
            wall: UNIX_EPOCH + Duration::new(1_795_000_000, 123_456_789),
            pts: -5,
            dts: 7_777_777,
        };
        for start in [None, Some(stamp)] {
            let h = write_header(&fields(), start.as_ref());
            let p = read_header(&h).expect("parses");
            assert_eq!(p.fields, fields());
            assert_eq!(p.start, start);
            assert_eq!(p.at.first_chunk(), HEADER_LEN as u64);
            assert_eq!(&h[p.at.movi_fourcc() as usize..][..4], b"movi");
            let at = |base: u64, off: u64| (base + off) as usize;
            assert_eq!(le32(&h, at(p.at.avih, field::AVIH_TOTAL_FRAMES)), Some(42));
            assert_eq!(le32(&h, at(p.at.strh, field::STRH_LENGTH)), Some(42));
            assert_eq!(le32(&h, at(p.at.avih, field::AVIH_FLAGS)), Some(0x110));
            assert_eq!(
                le32(&h, at(p.at.avih, field::AVIH_SUGGESTED_BUFFER)),
                Some(9000)
            );
            assert_eq!(
                le32(&h, at(p.at.strh, field::STRH_SUGGESTED_BUFFER)),
                Some(9000)
            );
        }
    }

    #[test]
    fn a_header_without_the_start_chunk_still_reads() {
        // Segments written before the start chunk existed: no JUNK, 224 bytes.
        let h = write_header(&fields(), None);
        let junk = 212;
        let mut old = h[..junk].to_vec();
        old.extend_from_slice(&h[junk + 48..]);
        let p = read_header(&old).expect("parses");
        assert_eq!((p.fields, p.start), (fields(), None));
        assert_eq!(p.at.first_chunk(), 224);
        assert_eq!(p.at.movi_fourcc(), 220);
    }

    #[test]
    fn headers_that_are_not_ours_are_refused_without_panic() {
        let h = write_header(&fields(), None);
        for len in 0..h.len() {
            assert!(read_header(&h[..len]).is_none(), "cut at {len}");
        }
        for at in 0..h.len() {
            let mut b = h;
            b[at] ^= 0xff;
            let _ = read_header(&b);
        }
        let mut h264 = h;
        h264[112..116].copy_from_slice(b"H264");
        assert!(read_header(&h264).is_none());
        // A start chunk without the signature is padding.
        let mut other = write_header(
            &fields(),
            Some(&StartStamp {
                wall: UNIX_EPOCH,
                pts: 0,
                dts: 0,
            }),
        );
        other[220] = b'X';
        assert_eq!(read_header(&other).map(|p| p.start), Some(None));
    }

    #[test]
    fn idx1_and_chunk_headers() {
        let b = idx1([(4u32, 3u32), (16, 4)].into_iter());
        assert_eq!(b.len() as u64, CHUNK_HEADER_LEN + 2 * IDX1_ENTRY_LEN);
        assert_eq!(&b[..8], b"idx1\x20\0\0\0");
        assert_eq!(&b[8..12], b"00dc");
        assert_eq!(le32(&b, 12), Some(AVIIF_KEYFRAME));
        assert_eq!((le32(&b, 16), le32(&b, 20)), (Some(4), Some(3)));
        assert_eq!(frame_chunk_header(7), *b"00dc\x07\0\0\0");
    }
}
