//! ISO BMFF (MP4) box builders for the fragmented MP4 writer ([`super::fmp4`]).
//!
//! Pure functions that append big-endian box bytes to a caller-owned `Vec<u8>`: the init
//! segment (`ftyp` + `moov`), the per-fragment header (`moof` + the `mdat` header) and the
//! closing random-access index (`mfra`). Nothing here touches a file; the writer decides
//! what is written where. One video track (ID [`TRACK_ID`]), media timescale
//! [`crate::frame::TIMESCALE`] (90 kHz) for both the movie and the track, so every
//! duration is written in the same unit without rounding.
//!
//! Box versions: `mvhd`, `tkhd`, `mdhd`, `mehd`, `tfdt` and `tfra` are version 1 (64-bit
//! times, no 13-hour wrap at 90 kHz); `trun` is version 1 so composition offsets are
//! signed (B-frame streams).

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};

use crate::frame::TIMESCALE;

/// The only track of a dashcam MP4.
pub const TRACK_ID: u32 = 1;

/// `sample_flags` of a sync sample: sample_depends_on = 2 (does not depend on others),
/// is_non_sync_sample = 0.
pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: sample_depends_on = 1, is_non_sync_sample = 1.
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// tfhd flag: the base data offset is the start of the enclosing `moof`.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// trun flags: data-offset, sample-duration, sample-size, sample-flags and
/// sample-composition-time-offset present.
const TRUN_FLAGS: u32 = 0x00_0001 | 0x00_0100 | 0x00_0200 | 0x00_0400 | 0x00_0800;

/// Size in bytes of the fixed part of a `moof` (everything but the 16-byte trun entries):
/// moof(8) + mfhd(16) + traf(8) + tfhd(16) + tfdt v1(20) + trun header(20).
const MOOF_FIXED: u64 = 8 + 16 + 8 + 16 + 20 + 20;
/// Bytes per trun entry (duration, size, flags, composition offset).
const TRUN_ENTRY: u64 = 16;
/// Bytes per tfra v1 entry with 1-byte traf/trun numbers and a 4-byte sample number.
const TFRA_ENTRY: u64 = 8 + 8 + 1 + 1 + 4;
/// mfra(8) + tfra header(8 + 4 + 4 + 4 + 4) + mfro(16).
const MFRA_FIXED: u64 = 8 + 24 + 16;

/// Seconds from 1904-01-01 (the MP4 epoch) to 1970-01-01.
pub const MP4_EPOCH_OFFSET: u64 = 2_082_844_800;

/// Start a box: push a size placeholder and the type; returns the box start for [`end`].
pub fn begin(buf: &mut Vec<u8>, fourcc: &[u8; 4]) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0]);
    buf.extend_from_slice(fourcc);
    start
}

/// Start a full box (with version and 24-bit flags).
pub fn begin_full(buf: &mut Vec<u8>, fourcc: &[u8; 4], version: u8, flags: u32) -> usize {
    let start = begin(buf, fourcc);
    put_u32(buf, (u32::from(version) << 24) | (flags & 0x00ff_ffff));
    start
}

/// Close the box started at `start` by writing its 32-bit size. Header boxes are far below
/// 4 GiB; a size that does not fit saturates (never reached: the writer bounds fragments).
pub fn end(buf: &mut [u8], start: usize) {
    let size = u32::try_from(buf.len().saturating_sub(start)).unwrap_or(u32::MAX);
    if let Some(field) = buf.get_mut(start..start + 4) {
        field.copy_from_slice(&size.to_be_bytes());
    }
}

pub fn put_u8(buf: &mut Vec<u8>, v: u8) {
    buf.push(v);
}
pub fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_be_bytes());
}
pub fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}
pub fn put_i32(buf: &mut Vec<u8>, v: i32) {
    buf.extend_from_slice(&v.to_be_bytes());
}
pub fn put_u64(buf: &mut Vec<u8>, v: u64) {
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

/// `ftyp`: major brand `isom` (minor 512, as ffmpeg writes), compatible with the brands
/// whose features the file uses: iso2 (base), iso5 (default-base-is-moof), iso6 (tfdt/trun
/// v1, negative composition offsets), avc1, mp41.
pub fn ftyp(buf: &mut Vec<u8>) {
    let start = begin(buf, b"ftyp");
    buf.extend_from_slice(b"isom");
    put_u32(buf, 512);
    for brand in [b"isom", b"iso2", b"iso5", b"iso6", b"avc1", b"mp41"] {
        buf.extend_from_slice(brand);
    }
    end(buf, start);
}

/// What the `moov` says about the track.
#[derive(Clone, Debug)]
pub struct TrackInfo {
    pub width: u32,
    pub height: u32,
    /// Seconds since 1904-01-01 (see [`MP4_EPOCH_OFFSET`]).
    pub creation_time: u64,
    /// Complete `avcC` box (see [`avcc`]).
    pub avcc: Vec<u8>,
}

/// Positions (from the start of the buffer the `moov` was appended to) of what is patched
/// later: the 64-bit duration fields (all in [`TIMESCALE`] ticks) and the placeholder for
/// the edit list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MoovLayout {
    pub mvhd: u64,
    pub tkhd: u64,
    pub mdhd: u64,
    pub mehd: u64,
    /// A `free` box of [`EDTS_SIZE`] bytes inside the `trak`, to be overwritten by
    /// [`edts`] when the track needs an edit list.
    pub edts: u64,
}

impl MoovLayout {
    pub fn durations(&self) -> [u64; 4] {
        [self.mvhd, self.tkhd, self.mdhd, self.mehd]
    }
}

/// Size of the `edts` box written by [`edts`] (and of its placeholder).
pub const EDTS_SIZE: u64 = 8 + 8 + 4 + 4 + 20;
/// Offset of the elst `segment_duration` field inside the `edts` box.
pub const EDTS_DURATION_AT: u64 = 8 + 8 + 4 + 4;

/// `edts` with a one-entry `elst` (version 1): the movie starts at media time
/// `media_time` and lasts `segment_duration` ([`TIMESCALE`] ticks; 0 while unknown, as in
/// fragmented files). Exactly [`EDTS_SIZE`] bytes.
pub fn edts(buf: &mut Vec<u8>, media_time: i64, segment_duration: u64) {
    let edts = begin(buf, b"edts");
    let elst = begin_full(buf, b"elst", 1, 0);
    put_u32(buf, 1);
    put_u64(buf, segment_duration);
    buf.extend_from_slice(&media_time.to_be_bytes());
    put_u16(buf, 1); // media_rate_integer
    put_u16(buf, 0); // media_rate_fraction
    end(buf, elst);
    end(buf, edts);
}

/// `moov` for one H.264 track with empty sample tables and an `mvex`, all durations 0
/// (patched later at the returned positions), and room for an edit list.
pub fn moov(buf: &mut Vec<u8>, track: &TrackInfo) -> MoovLayout {
    let mut fields = MoovLayout::default();
    let t = track.creation_time;
    let width = u16::try_from(track.width).unwrap_or(u16::MAX);
    let height = u16::try_from(track.height).unwrap_or(u16::MAX);

    let moov = begin(buf, b"moov");

    let mvhd = begin_full(buf, b"mvhd", 1, 0);
    put_u64(buf, t);
    put_u64(buf, t);
    put_u32(buf, TIMESCALE);
    fields.mvhd = buf.len() as u64;
    put_u64(buf, 0);
    put_u32(buf, 0x0001_0000); // rate 1.0
    put_u16(buf, 0x0100); // volume 1.0
    put_zeros(buf, 2 + 8);
    put_matrix(buf);
    put_zeros(buf, 24);
    put_u32(buf, TRACK_ID + 1); // next_track_ID
    end(buf, mvhd);

    let trak = begin(buf, b"trak");
    let tkhd = begin_full(buf, b"tkhd", 1, 0x3); // enabled, in movie
    put_u64(buf, t);
    put_u64(buf, t);
    put_u32(buf, TRACK_ID);
    put_u32(buf, 0);
    fields.tkhd = buf.len() as u64;
    put_u64(buf, 0);
    put_zeros(buf, 8);
    put_u16(buf, 0); // layer
    put_u16(buf, 0); // alternate_group
    put_u16(buf, 0); // volume (video)
    put_u16(buf, 0);
    put_matrix(buf);
    put_u32(buf, u32::from(width) << 16);
    put_u32(buf, u32::from(height) << 16);
    end(buf, tkhd);
    fields.edts = buf.len() as u64;
    free(buf, EDTS_SIZE);

    let mdia = begin(buf, b"mdia");
    let mdhd = begin_full(buf, b"mdhd", 1, 0);
    put_u64(buf, t);
    put_u64(buf, t);
    put_u32(buf, TIMESCALE);
    fields.mdhd = buf.len() as u64;
    put_u64(buf, 0);
    put_u16(buf, 0x55c4); // language "und"
    put_u16(buf, 0);
    end(buf, mdhd);

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
    let avc1 = begin(buf, b"avc1");
    put_zeros(buf, 6);
    put_u16(buf, 1); // data_reference_index
    put_zeros(buf, 2 + 2 + 12);
    put_u16(buf, width);
    put_u16(buf, height);
    put_u32(buf, 0x0048_0000); // 72 dpi
    put_u32(buf, 0x0048_0000);
    put_u32(buf, 0);
    put_u16(buf, 1); // frame_count
    put_zeros(buf, 32); // compressorname
    put_u16(buf, 0x0018); // depth
    put_u16(buf, 0xffff); // pre_defined = -1
    buf.extend_from_slice(&track.avcc);
    end(buf, avc1);
    end(buf, stsd);
    for fourcc in [b"stts", b"stsc", b"stco"] {
        let b = begin_full(buf, fourcc, 0, 0);
        put_u32(buf, 0);
        end(buf, b);
    }
    let stsz = begin_full(buf, b"stsz", 0, 0);
    put_u32(buf, 0);
    put_u32(buf, 0);
    end(buf, stsz);
    end(buf, stbl);
    end(buf, minf);
    end(buf, mdia);
    end(buf, trak);

    let mvex = begin(buf, b"mvex");
    let mehd = begin_full(buf, b"mehd", 1, 0);
    fields.mehd = buf.len() as u64;
    put_u64(buf, 0);
    end(buf, mehd);
    let trex = begin_full(buf, b"trex", 0, 0);
    put_u32(buf, TRACK_ID);
    put_u32(buf, 1); // default_sample_description_index
    put_u32(buf, 0);
    put_u32(buf, 0);
    put_u32(buf, 0);
    end(buf, trex);
    end(buf, mvex);

    end(buf, moov);
    fields
}

/// Fields of a parsed SPS the container needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    /// Cropped picture size, when the SPS yields one.
    pub dimensions: Option<(u32, u32)>,
}

/// Parse an SPS NAL unit (header byte included, emulation prevention bytes as coded).
pub fn parse_sps(sps: &[u8]) -> Option<SpsInfo> {
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

/// The `avcC` box (AVCDecoderConfigurationRecord, ISO/IEC 14496-15 5.3.3.1) for one SPS
/// and its PPSs, NAL lengths of 4 bytes. The High-profile trailing fields (chroma format,
/// bit depths, no SPS extensions) are written when the SPS parses. Errors name what is
/// wrong with the parameter sets.
pub fn avcc(sps: &[u8], pps: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    if sps.len() < 4 || sps[0] & 0x1f != 7 {
        return Err(format!(
            "SPS is not a sequence parameter set NAL unit ({} bytes)",
            sps.len()
        ));
    }
    let sps_len = u16::try_from(sps.len()).map_err(|_| "SPS longer than 65535 bytes")?;
    if pps.is_empty() {
        return Err("no picture parameter set".into());
    }
    let pps_count = u8::try_from(pps.len())
        .ok()
        .filter(|&n| n <= 31)
        .ok_or("more than 31 picture parameter sets")?;
    let mut buf =
        Vec::with_capacity(32 + sps.len() + pps.iter().map(|p| p.len() + 2).sum::<usize>());
    let start = begin(&mut buf, b"avcC");
    put_u8(&mut buf, 1); // configurationVersion
    put_u8(&mut buf, sps[1]); // AVCProfileIndication
    put_u8(&mut buf, sps[2]); // profile_compatibility
    put_u8(&mut buf, sps[3]); // AVCLevelIndication
    put_u8(&mut buf, 0xfc | 3); // lengthSizeMinusOne = 3
    put_u8(&mut buf, 0xe0 | 1);
    put_u16(&mut buf, sps_len);
    buf.extend_from_slice(sps);
    put_u8(&mut buf, pps_count);
    for p in pps {
        if p.is_empty() || p[0] & 0x1f != 8 {
            return Err(format!(
                "PPS is not a picture parameter set NAL unit ({} bytes)",
                p.len()
            ));
        }
        let len = u16::try_from(p.len()).map_err(|_| "PPS longer than 65535 bytes")?;
        put_u16(&mut buf, len);
        buf.extend_from_slice(p);
    }
    if matches!(sps[1], 100 | 110 | 122 | 144 | 244) {
        if let Some(info) = parse_sps(sps) {
            put_u8(&mut buf, 0xfc | (info.chroma_format_idc & 3));
            put_u8(&mut buf, 0xf8 | (info.bit_depth_luma_minus8 & 7));
            put_u8(&mut buf, 0xf8 | (info.bit_depth_chroma_minus8 & 7));
            put_u8(&mut buf, 0); // numOfSequenceParameterSetExt
        }
    }
    end(&mut buf, start);
    Ok(buf)
}

/// A `free` box of exactly `size` bytes (at least 8; smaller sizes write 8).
pub fn free(buf: &mut Vec<u8>, size: u64) {
    let size = size.max(8);
    if let Ok(small) = u32::try_from(size) {
        put_u32(buf, small);
        buf.extend_from_slice(b"free");
        put_zeros(buf, (size - 8) as usize);
    } else {
        // Never used for padding (at most two pages), kept total for completeness.
        put_u32(buf, 1);
        buf.extend_from_slice(b"free");
        put_u64(buf, size.max(16));
        put_zeros(buf, (size.max(16) - 16) as usize);
    }
}

/// One `trun` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrunSample {
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
    /// Composition time offset (presentation − decode time), signed (trun version 1).
    pub cto: i32,
}

/// Size of the `moof` for `samples` trun entries.
pub fn moof_size(samples: usize) -> u64 {
    MOOF_FIXED + TRUN_ENTRY * samples as u64
}

/// Size of the `mdat` header for `payload` bytes (16 with a 64-bit size when needed).
pub fn mdat_header_size(payload: u64) -> u64 {
    if payload + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    }
}

/// Append `moof` (sequence number `sequence`, decode time of the first sample
/// `base_decode_time`) and the header of the `mdat` holding `payload` bytes that must
/// follow it immediately. `None` when the fragment is too large to describe (data offset
/// beyond 2 GiB, i.e. more than 130 million samples).
pub fn fragment_header(
    buf: &mut Vec<u8>,
    sequence: u32,
    base_decode_time: u64,
    samples: &[TrunSample],
    payload: u64,
) -> Option<()> {
    let count = u32::try_from(samples.len()).ok()?;
    let data_offset = i32::try_from(moof_size(samples.len()) + mdat_header_size(payload)).ok()?;

    let moof = begin(buf, b"moof");
    let mfhd = begin_full(buf, b"mfhd", 0, 0);
    put_u32(buf, sequence);
    end(buf, mfhd);
    let traf = begin(buf, b"traf");
    let tfhd = begin_full(buf, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
    put_u32(buf, TRACK_ID);
    end(buf, tfhd);
    let tfdt = begin_full(buf, b"tfdt", 1, 0);
    put_u64(buf, base_decode_time);
    end(buf, tfdt);
    let trun = begin_full(buf, b"trun", 1, TRUN_FLAGS);
    put_u32(buf, count);
    put_i32(buf, data_offset);
    for s in samples {
        put_u32(buf, s.duration);
        put_u32(buf, s.size);
        put_u32(buf, s.flags);
        put_i32(buf, s.cto);
    }
    end(buf, trun);
    end(buf, traf);
    end(buf, moof);

    if mdat_header_size(payload) == 16 {
        put_u32(buf, 1);
        buf.extend_from_slice(b"mdat");
        put_u64(buf, payload + 16);
    } else {
        // Fits: mdat_header_size checked payload + 8 <= u32::MAX.
        put_u32(buf, u32::try_from(payload + 8).unwrap_or(u32::MAX));
        buf.extend_from_slice(b"mdat");
    }
    Some(())
}

/// One random access point for the `tfra`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TfraEntry {
    /// Presentation time of the sync sample, [`TIMESCALE`] ticks.
    pub time: u64,
    /// File offset of the `moof` of its fragment.
    pub moof_offset: u64,
    /// 1-based number of the sample in the fragment's only trun.
    pub sample_number: u32,
}

/// Size of the `mfra` for `entries` random access points.
pub fn mfra_size(entries: usize) -> u64 {
    MFRA_FIXED + TFRA_ENTRY * entries as u64
}

/// Append `mfra` (one `tfra` for the track, then `mfro` with the total size).
pub fn mfra(buf: &mut Vec<u8>, entries: &[TfraEntry]) {
    let mfra = begin(buf, b"mfra");
    let tfra = begin_full(buf, b"tfra", 1, 0);
    put_u32(buf, TRACK_ID);
    // length_size_of_traf_num = 0 (1 byte), trun_num = 0 (1 byte), sample_num = 3 (4 bytes)
    put_u32(buf, 0b00_00_11);
    put_u32(buf, u32::try_from(entries.len()).unwrap_or(u32::MAX));
    for e in entries.iter().take(u32::MAX as usize) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Top-level boxes of `buf` as (type, start, size).
    pub(crate) fn boxes(buf: &[u8]) -> Vec<([u8; 4], usize, usize)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= buf.len() {
            let size = u32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = buf[pos + 4..pos + 8].try_into().unwrap();
            let size = if size == 1 {
                u64::from_be_bytes(buf[pos + 8..pos + 16].try_into().unwrap()) as usize
            } else {
                size
            };
            assert!(size >= 8, "box {:?} size {size}", kind);
            out.push((kind, pos, size));
            pos += size;
        }
        out
    }

    #[test]
    fn sizes_match_constants() {
        let samples = [TrunSample {
            duration: 3000,
            size: 10,
            flags: SAMPLE_FLAGS_SYNC,
            cto: -3000,
        }; 3];
        let mut buf = Vec::new();
        fragment_header(&mut buf, 1, 0, &samples, 30).unwrap();
        assert_eq!(buf.len() as u64, moof_size(3) + 8);
        let b = boxes(&buf[..moof_size(3) as usize]);
        assert_eq!(b.len(), 1);
        assert_eq!(&b[0].0, b"moof");
        assert_eq!(&buf[buf.len() - 4..], b"mdat");
        assert_eq!(
            u32::from_be_bytes(buf[buf.len() - 8..buf.len() - 4].try_into().unwrap()),
            38
        );

        let mut m = Vec::new();
        let e = TfraEntry {
            time: 1,
            moof_offset: 2,
            sample_number: 1,
        };
        mfra(&mut m, &[e, e]);
        assert_eq!(m.len() as u64, mfra_size(2));
        let last4 = u32::from_be_bytes(m[m.len() - 4..].try_into().unwrap());
        assert_eq!(last4 as usize, m.len());
    }

    #[test]
    fn edts_size() {
        let mut buf = Vec::new();
        edts(&mut buf, 6000, 12345);
        assert_eq!(buf.len() as u64, EDTS_SIZE);
        let b = boxes(&buf);
        assert_eq!((&b[0].0, b[0].2), (b"edts", EDTS_SIZE as usize));
        let at = EDTS_DURATION_AT as usize;
        assert_eq!(
            u64::from_be_bytes(buf[at..at + 8].try_into().unwrap()),
            12345
        );
        assert_eq!(
            i64::from_be_bytes(buf[at + 8..at + 16].try_into().unwrap()),
            6000
        );
        let mut placeholder = Vec::new();
        free(&mut placeholder, EDTS_SIZE);
        assert_eq!(placeholder.len() as u64, EDTS_SIZE);
    }

    #[test]
    fn large_mdat_header() {
        assert_eq!(mdat_header_size(100), 8);
        assert_eq!(mdat_header_size(u64::from(u32::MAX)), 16);
        let mut buf = Vec::new();
        fragment_header(&mut buf, 1, 0, &[], u64::from(u32::MAX)).unwrap();
        let hdr = &buf[buf.len() - 16..];
        assert_eq!(u32::from_be_bytes(hdr[..4].try_into().unwrap()), 1);
        assert_eq!(&hdr[4..8], b"mdat");
        assert_eq!(
            u64::from_be_bytes(hdr[8..].try_into().unwrap()),
            u64::from(u32::MAX) + 16
        );
    }

    #[test]
    fn avcc_rejects_bad_parameter_sets() {
        assert!(avcc(&[], &[vec![0x68, 1]]).is_err());
        assert!(avcc(&[0x67, 66, 0], &[vec![0x68, 1]]).is_err());
        assert!(avcc(&[0x68, 66, 0, 30], &[vec![0x68, 1]]).is_err());
        assert!(avcc(&[0x67, 66, 0, 30], &[]).is_err());
        assert!(avcc(&[0x67, 66, 0, 30], &[vec![]]).is_err());
        // Unparsable High-profile SPS: no trailing fields, still a valid record.
        let b = avcc(&[0x67, 100, 0, 30], &[vec![0x68, 0xce]]).unwrap();
        assert_eq!(b.len(), 8 + 6 + 2 + 4 + 1 + 2 + 2);
    }
}
