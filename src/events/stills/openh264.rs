//! An H.264 keyframe made into a JPEG still in the process (cargo feature `stills-h264`):
//! decoded by OpenH264 (the `openh264` crate, Cisco's BSD-licensed decoder compiled from
//! source into the binary), reduced by area averaging, and encoded by `jpeg-encoder`
//! straight from the decoded Y'CbCr (no RGB round trip).
//!
//! In the process there is no program start per still and nothing to install beside
//! dashcam; but the decoder adds about 580 KB to the ARMv6 binary, which would take the
//! Pi build past its 2 MB budget, so the default build uses ffmpeg's command line instead
//! ([`super::ffmpeg`]). Only keyframes (IDR pictures) are decoded, one per still, so a
//! still never depends on frames that were not seen. The resampling
//! ([`downscale_plane`]) and the range conversion are pure. H.264 is normally limited range
//! (Y' 16–235) and JPEG full range (0–255): the samples are expanded unless the SPS says
//! the stream is full range already ([`full_range`], [`expand_range`]), so a still looks
//! like the video.

use std::time::Duration;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};

use crate::events::stills::annexb::annexb_picture;
use crate::frame::StreamFormat;

/// Whether the stream's SPS says its samples are full range (JPEG's range already).
pub fn full_range(sps: &[u8]) -> bool {
    SeqParameterSet::from_bits(RefNal::new(sps, &[], true).rbsp_bits())
        .ok()
        .and_then(|s| s.vui_parameters)
        .and_then(|v| v.video_signal_type)
        .is_some_and(|t| t.video_full_range_flag)
}

/// Limited-range samples to full range: luma 16–235 and chroma 16–240 (around 128)
/// stretched to 0–255.
pub fn expand_range(plane: &mut [u8], luma: bool) {
    for p in plane {
        let v = i32::from(*p);
        let out = if luma {
            ((v - 16) * 255 + 109) / 219
        } else {
            ((v - 128) * 255 + if v >= 128 { 112 } else { -112 }) / 224 + 128
        };
        *p = out.clamp(0, 255) as u8;
    }
}

/// A decoder kept across stills (its buffers are reused), made anew for a new format.
pub struct StillDecoder {
    decoder: Option<(Decoder, Vec<u8>)>,
}

/// A decoded, reduced picture in planar 4:2:0.
#[derive(Debug)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub y: Vec<u8>,
    pub cb: Vec<u8>,
    pub cr: Vec<u8>,
}

/// Reduce one plane of `w`×`h` (rows `stride` apart) to `ow`×`oh` by averaging the
/// source pixels each output pixel covers (box filter; a plain copy at the same size).
pub fn downscale_plane(
    src: &[u8],
    w: usize,
    h: usize,
    stride: usize,
    ow: usize,
    oh: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; ow * oh];
    if w == 0 || h == 0 || ow == 0 || oh == 0 {
        return out;
    }
    // Source column span of each output column, as [start, end).
    let spans = |n: usize, on: usize| -> Vec<(usize, usize)> {
        (0..on)
            .map(|i| {
                let a = i * n / on;
                let b = ((i + 1) * n / on).max(a + 1).min(n);
                (a, b)
            })
            .collect()
    };
    let xs = spans(w, ow);
    let ys = spans(h, oh);
    let mut row_sums = vec![0u32; ow];
    for (oy, &(y0, y1)) in ys.iter().enumerate() {
        row_sums.iter_mut().for_each(|s| *s = 0);
        for y in y0..y1 {
            let Some(row) = src.get(y * stride..y * stride + w) else {
                break;
            };
            for (s, &(x0, x1)) in row_sums.iter_mut().zip(&xs) {
                *s += row[x0..x1].iter().map(|&p| u32::from(p)).sum::<u32>();
            }
        }
        let rows = (y1 - y0) as u32;
        for (ox, (&s, &(x0, x1))) in row_sums.iter().zip(&xs).enumerate() {
            let n = rows * (x1 - x0) as u32;
            out[oy * ow + ox] = ((s + n / 2) / n) as u8;
        }
    }
    out
}

impl Default for StillDecoder {
    fn default() -> Self {
        StillDecoder::new()
    }
}

impl StillDecoder {
    pub fn new() -> StillDecoder {
        StillDecoder { decoder: None }
    }

    /// Decode a keyframe and reduce it to `out_w`×`out_h` (even).
    pub fn decode(
        &mut self,
        format: &StreamFormat,
        avcc: &[u8],
        out_w: u32,
        out_h: u32,
    ) -> Result<Picture, String> {
        let same_format = self
            .decoder
            .as_ref()
            .is_some_and(|(_, sps)| *sps == format.sps);
        if !same_format {
            let d = Decoder::new().map_err(|e| format!("cannot start the H.264 decoder: {e}"))?;
            self.decoder = Some((d, format.sps.clone()));
        }
        let Some((decoder, _)) = self.decoder.as_mut() else {
            return Err("no decoder".into());
        };
        let annexb = annexb_picture(format, avcc);
        let yuv = match decoder.decode(&annexb) {
            Ok(Some(yuv)) => yuv,
            Ok(None) => {
                self.decoder = None;
                return Err("the keyframe gave no picture".into());
            }
            Err(e) => {
                self.decoder = None;
                return Err(format!("cannot decode the keyframe: {e}"));
            }
        };
        let (w, h) = yuv.dimensions();
        let (sy, su, sv) = yuv.strides();
        let (ow, oh) = (out_w as usize, out_h as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut p = Picture {
            width: out_w,
            height: out_h,
            y: downscale_plane(yuv.y(), w, h, sy, ow, oh),
            cb: downscale_plane(yuv.u(), cw, ch, su, ow / 2, oh / 2),
            cr: downscale_plane(yuv.v(), cw, ch, sv, ow / 2, oh / 2),
        };
        if !full_range(&format.sps) {
            expand_range(&mut p.y, true);
            expand_range(&mut p.cb, false);
            expand_range(&mut p.cr, false);
        }
        Ok(p)
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    crate::state::clock::thread_cpu()
}

impl StillDecoder {
    /// What the cost [`StillDecoder::jpeg`] returns measures.
    pub const COST: &'static str = "ms CPU per decoded still (OpenH264)";

    /// The keyframe as a JPEG of `w`×`h`, and the CPU time it took.
    pub fn jpeg(
        &mut self,
        format: &StreamFormat,
        avcc: &[u8],
        w: u32,
        h: u32,
        quality: u8,
    ) -> Result<(Vec<u8>, Duration), String> {
        let start = thread_cpu();
        let picture = self.decode(format, avcc, w, h)?;
        let jpeg = encode_jpeg(&picture, quality)?;
        Ok((jpeg, thread_cpu().saturating_sub(start)))
    }
}

/// The picture as a baseline 4:2:0 JPEG at `quality`.
pub fn encode_jpeg(p: &Picture, quality: u8) -> Result<Vec<u8>, String> {
    let (w, h) = (p.width as usize, p.height as usize);
    // jpeg-encoder takes interleaved Y'CbCr at full resolution and subsamples itself.
    let mut ycc = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let c = (y / 2) * (w / 2) + (x / 2).min(w / 2 - 1);
            ycc.push(p.y[y * w + x]);
            ycc.push(p.cb.get(c).copied().unwrap_or(128));
            ycc.push(p.cr.get(c).copied().unwrap_or(128));
        }
    }
    let mut out = Vec::with_capacity(w * h / 4);
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    enc.encode(
        &ycc,
        u16::try_from(w).map_err(|_| "too wide")?,
        u16::try_from(h).map_err(|_| "too high")?,
        jpeg_encoder::ColorType::Ycbcr,
    )
    .map_err(|e| format!("cannot encode the still: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_range_is_stretched_to_full() {
        let mut y = vec![0, 16, 126, 235, 255];
        expand_range(&mut y, true);
        assert_eq!(y, vec![0, 0, 128, 255, 255]);
        let mut c = vec![16, 128, 240];
        expand_range(&mut c, false);
        assert_eq!(c, vec![0, 128, 255]);
    }

    #[test]
    fn downscaling_averages_the_covered_pixels() {
        // 4x2 with a stride of 5 → 2x1.
        let src = [10, 20, 30, 40, 99, 50, 60, 70, 80, 99];
        assert_eq!(downscale_plane(&src, 4, 2, 5, 2, 1), vec![35, 55]);
        // Same size: a copy without the padding.
        assert_eq!(
            downscale_plane(&src, 4, 2, 5, 4, 2),
            vec![10, 20, 30, 40, 50, 60, 70, 80]
        );
        // 3 → 2: spans [0,1) and [1,3).
        assert_eq!(downscale_plane(&[0, 100, 200], 3, 1, 3, 2, 1), vec![0, 150]);
    }
}
