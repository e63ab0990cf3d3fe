//! Grouping H.264 NAL units into access units (one coded picture each), with timing.
//!
//! It owns the parameter-set state (SPS/PPS, via h264-reader), detects the first NAL unit
//! of each new access unit (ITU-T H.264 7.4.1.2.3: AUD/SPS/PPS/SEI after a picture, or a
//! slice with `first_mb_in_slice == 0`), marks IDR pictures, and computes the picture order
//! count so B-frame streams keep their display order. It writes the access unit as AVCC
//! (4-byte lengths) into a caller-owned buffer. It never reads input or sleeps.

use std::sync::Arc;

use h264_reader::nal::pps::PicParameterSet;
use h264_reader::nal::slice::{PicOrderCountLsb, SliceHeader};
use h264_reader::nal::sps::{PicOrderCntType, SeqParameterSet};
use h264_reader::nal::{Nal, NalHeader, RefNal};
use h264_reader::Context;

use crate::frame::{Codec, StreamFormat};

const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SEI: u8 = 6;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

/// A complete access unit, its bytes in the buffer given to [`AccessUnitAssembler::push`].
#[derive(Debug, Clone)]
pub struct AccessUnit {
    pub keyframe: bool,
    /// Display position relative to the last IDR, in frames (POC / 2); `None` when the
    /// stream's display order is its decode order.
    pub display_index_in_gop: Option<i64>,
    pub format: Arc<StreamFormat>,
    /// Input offset of the access unit's first NAL unit.
    pub offset: u64,
}

/// Something wrong with the stream, with the offset of the NAL unit at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte offset {offset}")]
pub struct StreamError {
    pub offset: u64,
    pub what: String,
}

/// What [`AccessUnitAssembler::push`] did with a NAL unit.
#[derive(Debug)]
pub enum Pushed {
    /// The NAL unit was added to the access unit being built.
    Added,
    /// The NAL unit starts a new access unit: the previous one, complete, was moved into
    /// `done` before the NAL unit was added to the (now empty) current buffer.
    Completed(AccessUnit),
}

#[derive(Default)]
struct PocState {
    prev_msb: i64,
    prev_lsb: i64,
}

pub struct AccessUnitAssembler {
    ctx: Context,
    format: Option<Arc<StreamFormat>>,
    /// Raw bytes of the parameter sets seen last, by id.
    sps_bytes: Vec<u8>,
    pps_bytes: Vec<(u32, Vec<u8>)>,
    default_rate: (u32, u32),
    poc: PocState,
    // The access unit being built.
    cur_has_vcl: bool,
    cur_keyframe: bool,
    cur_display: Option<i64>,
    cur_offset: Option<u64>,
    /// A parameter set changed since the current format was made.
    format_dirty: bool,
    /// The current picture could not be understood; it must not be emitted.
    cur_broken: bool,
    /// Pictures dropped because they could not be decoded alone (before the first IDR
    /// with its parameter sets, or with an unreadable slice header).
    skipped: u64,
    pending_error: Option<StreamError>,
}

impl AccessUnitAssembler {
    /// `default_rate` is the frame rate (num, den) used when the SPS carries no timing.
    pub fn new(default_rate: (u32, u32)) -> Self {
        AccessUnitAssembler {
            ctx: Context::new(),
            format: None,
            sps_bytes: Vec::new(),
            pps_bytes: Vec::new(),
            default_rate,
            poc: PocState::default(),
            cur_has_vcl: false,
            cur_keyframe: false,
            cur_display: None,
            cur_offset: None,
            format_dirty: false,
            cur_broken: false,
            skipped: 0,
            pending_error: None,
        }
    }

    /// A problem met while handling the last NAL unit pushed (reported once).
    pub fn take_error(&mut self) -> Option<StreamError> {
        self.pending_error.take()
    }

    /// Pictures dropped so far because they could not be decoded.
    pub fn skipped_pictures(&self) -> u64 {
        self.skipped
    }

    /// Feed one NAL unit (header byte first). `au` is the AVCC buffer of the access unit
    /// being built; when a new access unit starts, the finished one is returned and the
    /// caller must take `au`'s bytes before the next call (this function then writes the
    /// new unit's first NAL into `next_au`).
    pub fn push(
        &mut self,
        nal: &[u8],
        offset: u64,
        au: &mut Vec<u8>,
        next_au: &mut Vec<u8>,
    ) -> Result<Pushed, StreamError> {
        let Some(&first) = nal.first() else {
            return Ok(Pushed::Added);
        };
        let header = NalHeader::new(first).map_err(|_| StreamError {
            offset,
            what: format!("invalid NAL unit header 0x{first:02x} (forbidden_zero_bit set)"),
        })?;
        let nal_type = first & 0x1f;

        // Does this NAL start a new access unit?
        let starts_new = match nal_type {
            NAL_SLICE | NAL_IDR => self.cur_has_vcl && first_mb_in_slice(nal) == Some(0),
            NAL_SEI | NAL_SPS | NAL_PPS | NAL_AUD | 14..=18 => self.cur_has_vcl,
            _ => false,
        };
        let mut result = Pushed::Added;
        let target = if starts_new {
            match self.finish_current() {
                Some(done) => {
                    result = Pushed::Completed(done);
                    next_au.clear();
                    next_au
                }
                None => {
                    au.clear(); // nothing decodable was built: drop it, start afresh
                    au
                }
            }
        } else {
            au
        };
        if self.cur_offset.is_none() {
            self.cur_offset = Some(offset);
        }

        let understood = match nal_type {
            NAL_SPS => self.on_sps(nal, offset),
            NAL_PPS => self.on_pps(nal, offset),
            NAL_SLICE | NAL_IDR => self.on_slice(nal, header, offset),
            _ => Ok(()),
        };
        match understood {
            Ok(()) => {
                target.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                target.extend_from_slice(nal);
            }
            // The finished access unit (if any) is still good: hand it out now and the
            // error on the next call.
            Err(e) => self.pending_error = Some(e),
        }
        Ok(result)
    }

    /// End of input: the access unit being built, if complete enough to emit.
    pub fn flush(&mut self) -> Option<AccessUnit> {
        self.finish_current()
    }

    fn finish_current(&mut self) -> Option<AccessUnit> {
        let had_vcl = std::mem::take(&mut self.cur_has_vcl);
        let broken = std::mem::take(&mut self.cur_broken);
        let keyframe = std::mem::take(&mut self.cur_keyframe);
        let display = self.cur_display.take();
        let offset = self.cur_offset.take().unwrap_or(0);
        if !had_vcl {
            return None;
        }
        match (&self.format, broken) {
            (Some(format), false) => Some(AccessUnit {
                keyframe,
                display_index_in_gop: display,
                format: format.clone(),
                offset,
            }),
            _ => {
                self.skipped += 1;
                None
            }
        }
    }

    fn on_sps(&mut self, nal: &[u8], offset: u64) -> Result<(), StreamError> {
        let sps =
            SeqParameterSet::from_bits(RefNal::new(nal, &[], true).rbsp_bits()).map_err(|e| {
                StreamError {
                    offset,
                    what: format!("unreadable sequence parameter set ({e:?})"),
                }
            })?;
        if self.sps_bytes != nal {
            self.sps_bytes = nal.to_vec();
            self.format_dirty = true;
        }
        self.ctx.put_seq_param_set(sps);
        Ok(())
    }

    fn on_pps(&mut self, nal: &[u8], offset: u64) -> Result<(), StreamError> {
        let pps = PicParameterSet::from_bits(&self.ctx, RefNal::new(nal, &[], true).rbsp_bits())
            .map_err(|e| StreamError {
                offset,
                what: format!("unreadable picture parameter set ({e:?})"),
            })?;
        let id = u32::from(pps.pic_parameter_set_id.id());
        match self.pps_bytes.iter_mut().find(|(i, _)| *i == id) {
            Some((_, bytes)) if bytes.as_slice() == nal => {}
            Some((_, bytes)) => {
                *bytes = nal.to_vec();
                self.format_dirty = true;
            }
            None => {
                self.pps_bytes.push((id, nal.to_vec()));
                self.format_dirty = true;
            }
        }
        self.ctx.put_pic_param_set(pps);
        Ok(())
    }

    fn on_slice(&mut self, nal: &[u8], header: NalHeader, offset: u64) -> Result<(), StreamError> {
        let is_idr = nal[0] & 0x1f == NAL_IDR;
        let first_slice = !self.cur_has_vcl;
        self.cur_has_vcl = true;
        if !first_slice {
            return Ok(()); // later slices of the same picture: nothing new
        }
        let parsed = {
            let ref_nal = RefNal::new(nal, &[], true);
            let mut bits = ref_nal.rbsp_bits();
            SliceHeader::from_bits(&self.ctx, &mut bits, header, None)
                .map(|(sh, sps, _)| (picture_order(sps, &sh), sh.frame_num))
        };
        let (poc_info, _frame_num) = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.cur_broken = true;
                return Err(StreamError {
                    offset,
                    what: format!("unreadable slice header ({e:?})"),
                });
            }
        };
        if is_idr && (self.format.is_none() || self.format_dirty) {
            self.rebuild_format(offset)?;
        }
        if self.format.is_none() {
            self.cur_broken = true; // no parameter sets yet: cannot be decoded alone
            return Ok(());
        }
        self.cur_keyframe = is_idr;
        self.cur_display = match poc_info {
            PocInfo::Lsb {
                lsb,
                max_lsb,
                bottom_delta,
            } => {
                if is_idr {
                    self.poc = PocState::default();
                }
                let (prev_msb, prev_lsb) = (self.poc.prev_msb, self.poc.prev_lsb);
                let msb = if lsb < prev_lsb && prev_lsb - lsb >= max_lsb / 2 {
                    prev_msb + max_lsb
                } else if lsb > prev_lsb && lsb - prev_lsb > max_lsb / 2 {
                    prev_msb - max_lsb
                } else {
                    prev_msb
                };
                if header.nal_ref_idc() != 0 {
                    self.poc = PocState {
                        prev_msb: msb,
                        prev_lsb: lsb,
                    };
                }
                let top = msb + lsb;
                let poc = top.min(top + bottom_delta);
                Some(poc.div_euclid(2))
            }
            PocInfo::DecodeOrder => None,
        };
        Ok(())
    }

    fn rebuild_format(&mut self, offset: u64) -> Result<(), StreamError> {
        let sps = self.ctx.sps().next().ok_or_else(|| StreamError {
            offset,
            what: "IDR picture before any sequence parameter set".into(),
        })?;
        let (width, height) = sps.pixel_dimensions().map_err(|e| StreamError {
            offset,
            what: format!("sequence parameter set gives no picture size ({e:?})"),
        })?;
        let frame_rate = sps
            .vui_parameters
            .as_ref()
            .and_then(|v| v.timing_info.as_ref())
            .filter(|t| t.num_units_in_tick > 0 && t.time_scale > 0)
            .map(|t| (t.time_scale, t.num_units_in_tick.saturating_mul(2)))
            .map(reduce)
            .filter(|&rate| plausible_rate(rate))
            .unwrap_or(self.default_rate);
        let format = StreamFormat {
            codec: Codec::H264,
            width,
            height,
            frame_rate: Some(frame_rate),
            sps: self.sps_bytes.clone(),
            pps: self.pps_bytes.iter().map(|(_, b)| b.clone()).collect(),
        };
        if self.format.as_deref() != Some(&format) {
            self.format = Some(Arc::new(format));
        }
        self.format_dirty = false;
        Ok(())
    }
}

enum PocInfo {
    Lsb {
        lsb: i64,
        max_lsb: i64,
        bottom_delta: i64,
    },
    DecodeOrder,
}

fn picture_order(sps: &SeqParameterSet, sh: &SliceHeader) -> PocInfo {
    match (&sps.pic_order_cnt, &sh.pic_order_cnt_lsb) {
        (
            PicOrderCntType::TypeZero {
                log2_max_pic_order_cnt_lsb_minus4,
            },
            Some(lsb),
        ) => {
            let max_lsb = 1i64 << (u32::from(*log2_max_pic_order_cnt_lsb_minus4) + 4);
            let (lsb, bottom_delta) = match lsb {
                PicOrderCountLsb::Frame(l) => (i64::from(*l), 0),
                PicOrderCountLsb::FieldsAbsolute {
                    pic_order_cnt_lsb,
                    delta_pic_order_cnt_bottom,
                } => (
                    i64::from(*pic_order_cnt_lsb),
                    i64::from(*delta_pic_order_cnt_bottom),
                ),
                PicOrderCountLsb::FieldsDelta(_) => (0, 0),
            };
            PocInfo::Lsb {
                lsb,
                max_lsb,
                bottom_delta,
            }
        }
        // Type 2 is output in decode order by definition; type 1 is rare in practice
        // (no camera encoder we know emits it): treat it as decode order too.
        _ => PocInfo::DecodeOrder,
    }
}

/// Frame rates an SPS may give, frames per second: a corrupt timing_info outside them (a
/// frame shorter than 1 ms would have no length on the 90 kHz clock; found by fuzzing) is
/// ignored and the configured rate applies, as for a stream without timing.
const SPS_RATE_FPS: (f64, f64) = (0.01, 1000.0);

fn plausible_rate((num, den): (u32, u32)) -> bool {
    let fps = f64::from(num) / f64::from(den.max(1));
    (SPS_RATE_FPS.0..=SPS_RATE_FPS.1).contains(&fps)
}

fn reduce((num, den): (u32, u32)) -> (u32, u32) {
    let (mut a, mut b) = (num, den);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    match (num.checked_div(a), den.checked_div(a)) {
        (Some(n), Some(d)) => (n, d),
        _ => (num, den),
    }
}

/// `first_mb_in_slice` (the slice header's first ue(v)), read without any context.
fn first_mb_in_slice(nal: &[u8]) -> Option<u32> {
    // Exp-Golomb over the bytes after the header. Emulation prevention cannot occur in
    // the first bytes of a slice header before a long run of zeros, which first_mb would
    // need to be very large anyway; good enough to tell zero from non-zero.
    let mut bit = 0usize;
    let data = nal.get(1..)?;
    let read_bit = |bit: usize| -> Option<u32> {
        let byte = *data.get(bit / 8)?;
        Some(u32::from((byte >> (7 - bit % 8)) & 1))
    };
    let mut zeros = 0;
    while read_bit(bit)? == 0 {
        zeros += 1;
        bit += 1;
        if zeros > 31 {
            return None;
        }
    }
    bit += 1;
    let mut value = 0u32;
    for _ in 0..zeros {
        value = (value << 1) | read_bit(bit)?;
        bit += 1;
    }
    Some((1u32 << zeros) - 1 + value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_first_mb() {
        assert_eq!(first_mb_in_slice(&[0x65, 0b1000_0000]), Some(0));
        assert_eq!(first_mb_in_slice(&[0x41, 0b0100_0000]), Some(1));
        assert_eq!(first_mb_in_slice(&[0x41, 0b0011_0000]), Some(5));
        assert_eq!(first_mb_in_slice(&[0x41]), None);
    }

    #[test]
    fn forbidden_bit_is_an_error() {
        let mut a = AccessUnitAssembler::new((30, 1));
        let (mut au, mut next) = (Vec::new(), Vec::new());
        let err = a
            .push(&[0xe5, 0x88], 1234, &mut au, &mut next)
            .expect_err("must fail");
        assert_eq!(err.offset, 1234);
        assert!(err.what.contains("forbidden_zero_bit"));
    }

    /// An x264 SPS of 64x48 whose fuzzed timing_info says 1966080 fps, PPS, then an IDR
    /// and a P slice (fuzz/regressions/h264/sps_rate_2m_fps): every frame got decode time
    /// 0. Such timing is ignored; the configured rate applies.
    #[test]
    fn implausible_sps_rate_falls_back_to_the_configured_one() {
        let data = include_bytes!("../../fuzz/regressions/h264/sps_rate_2m_fps");
        let mut a = AccessUnitAssembler::new((25, 1));
        let mut nals = crate::source::annexb::AnnexBReader::new(&data[..]);
        let (mut au, mut next) = (Vec::new(), Vec::new());
        let mut units = Vec::new();
        while let Some(nal) = nals.next_nal().expect("split") {
            let pushed = a.push(nal.bytes, nal.offset, &mut au, &mut next);
            if let Pushed::Completed(u) = pushed.expect("push") {
                units.push(u);
            }
            assert_eq!(a.take_error(), None);
        }
        units.extend(a.flush());
        assert_eq!(units.len(), 2);
        assert_eq!((units[0].format.width, units[0].format.height), (64, 48));
        assert_eq!(units[0].format.frame_rate, Some((25, 1)));
        assert!(units[0].keyframe && !units[1].keyframe);
        assert_eq!((units[0].offset, units[1].offset), (3, 43));
        assert!(!plausible_rate((1_966_080, 1)) && !plausible_rate((1, 101)));
        assert!(plausible_rate((30000, 1001)) && plausible_rate((1000, 1)));
    }

    #[test]
    fn rates_reduce() {
        assert_eq!(reduce((60, 2)), (30, 1));
        assert_eq!(reduce((60000, 2002)), (30000, 1001));
    }
}
