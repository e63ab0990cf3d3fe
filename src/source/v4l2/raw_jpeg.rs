//! Raw camera pictures (YUYV 4:2:2 packed, NV12 4:2:0 semi-planar) to JPEG, in software,
//! straight from the camera's buffer through `jpeg-encoder`'s `ImageBuffer` (no RGB step).
//!
//! It owns only the pixel layout; the rate is capped by the caller (`raw_fps`), since a Pi
//! Zero manages about two 640x360 pictures a second. It never keeps a picture.

use jpeg_encoder::{Encoder, ImageBuffer, JpegColorType, SamplingFactor};

use super::sys;

struct Yuyv<'a> {
    data: &'a [u8],
    width: u16,
    height: u16,
    stride: usize,
}

impl ImageBuffer for Yuyv<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }
    fn width(&self) -> u16 {
        self.width
    }
    fn height(&self) -> u16 {
        self.height
    }
    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let row = self.data.get(y as usize * self.stride..).unwrap_or(&[]);
        for x in 0..self.width as usize {
            let pair = (x / 2) * 4;
            let (luma, cb, cr) = match row.get(pair..pair + 4) {
                Some(p) => (p[if x % 2 == 0 { 0 } else { 2 }], p[1], p[3]),
                None => (0, 128, 128),
            };
            buffers[0].push(luma);
            buffers[1].push(cb);
            buffers[2].push(cr);
        }
    }
}

struct Nv12<'a> {
    data: &'a [u8],
    width: u16,
    height: u16,
    stride: usize,
}

impl ImageBuffer for Nv12<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }
    fn width(&self) -> u16 {
        self.width
    }
    fn height(&self) -> u16 {
        self.height
    }
    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let luma = self.data.get(y as usize * self.stride..).unwrap_or(&[]);
        let chroma_at = self.stride * self.height as usize + (y as usize / 2) * self.stride;
        let chroma = self.data.get(chroma_at..).unwrap_or(&[]);
        for x in 0..self.width as usize {
            buffers[0].push(luma.get(x).copied().unwrap_or(0));
            let c = (x / 2) * 2;
            buffers[1].push(chroma.get(c).copied().unwrap_or(128));
            buffers[2].push(chroma.get(c + 1).copied().unwrap_or(128));
        }
    }
}

/// Bytes a picture of this format and size needs at least, for `bytesperline` `stride`.
pub fn min_bytes(pixfmt: u32, stride: usize, height: u32) -> usize {
    match pixfmt {
        sys::PIX_NV12 => stride * height as usize * 3 / 2,
        _ => stride * height as usize,
    }
}

/// Encode one raw picture into `out` (cleared first).
pub fn encode(
    pixfmt: u32,
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    quality: u8,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    out.clear();
    let (w, h) = (
        u16::try_from(width).map_err(|_| "too wide".to_string())?,
        u16::try_from(height).map_err(|_| "too high".to_string())?,
    );
    if data.len() < min_bytes(pixfmt, stride, height) {
        return Err(format!(
            "{} bytes for a {width}x{height} picture",
            data.len()
        ));
    }
    let mut enc = Encoder::new(&mut *out, quality);
    let r = match pixfmt {
        sys::PIX_YUYV => {
            enc.set_sampling_factor(SamplingFactor::F_2_1);
            enc.encode_image(Yuyv {
                data,
                width: w,
                height: h,
                stride,
            })
        }
        sys::PIX_NV12 => {
            enc.set_sampling_factor(SamplingFactor::F_2_2);
            enc.encode_image(Nv12 {
                data,
                width: w,
                height: h,
                stride,
            })
        }
        other => return Err(format!("{} is not a raw format", sys::fourcc_name(other))),
    };
    r.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_and_nv12_become_jpegs_of_their_size() {
        let (w, h) = (64u32, 32u32);
        let yuyv: Vec<u8> = (0..w * h * 2).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        encode(sys::PIX_YUYV, &yuyv, w, h, (w * 2) as usize, 80, &mut out).expect("yuyv");
        assert_eq!(&out[..2], &[0xff, 0xd8]);
        assert_eq!(&out[out.len() - 2..], &[0xff, 0xd9]);
        let nv12 = vec![128u8; (w * h * 3 / 2) as usize];
        encode(sys::PIX_NV12, &nv12, w, h, w as usize, 80, &mut out).expect("nv12");
        assert_eq!(&out[..2], &[0xff, 0xd8]);
        assert!(encode(sys::PIX_NV12, &nv12[..10], w, h, w as usize, 80, &mut out).is_err());
    }
}
