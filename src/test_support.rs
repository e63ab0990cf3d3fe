//! Fixtures shared by the unit tests (compiled for `cargo test` only): a real SPS/PPS pair,
//! stream formats and synthetic frames. Never a stand-in for a real encoder in end-to-end
//! tests: those use inputs made by ffmpeg (`scripts/make-test-inputs.sh`).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::frame::{Codec, Frame, StreamFormat};

/// SPS of an x264 stream, High profile, 320x240.
pub(crate) const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xb2, 0x02, 0x83, 0xf6, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20,
    0x00, 0x00, 0x07, 0x81, 0xe2, 0x85, 0x49,
];
/// The PPS that goes with [`SPS`].
pub(crate) const PPS: &[u8] = &[0x68, 0xeb, 0xc3, 0xcb, 0x22, 0xc0];

/// H.264 320x240 at 30 fps with [`SPS`] and [`PPS`].
pub(crate) fn h264_format() -> Arc<StreamFormat> {
    Arc::new(StreamFormat {
        codec: Codec::H264,
        width: 320,
        height: 240,
        frame_rate: Some((30, 1)),
        sps: SPS.to_vec(),
        pps: vec![PPS.to_vec()],
    })
}

/// MJPEG of the given size and nominal rate.
pub(crate) fn mjpeg_format(width: u32, height: u32, rate: Option<(u32, u32)>) -> Arc<StreamFormat> {
    Arc::new(StreamFormat {
        codec: Codec::Mjpeg,
        width,
        height,
        frame_rate: rate,
        sps: Vec::new(),
        pps: Vec::new(),
    })
}

/// A frame of `format` holding `data`, captured now.
pub(crate) fn frame(
    format: &Arc<StreamFormat>,
    data: Vec<u8>,
    dts: i64,
    pts: i64,
    keyframe: bool,
) -> Frame {
    Frame {
        data,
        keyframe,
        pts,
        dts,
        captured: Instant::now(),
        wall: SystemTime::now(),
        format: Arc::clone(format),
        dropped_before: 0,
    }
}

/// A length-prefixed H.264 access unit of one NAL unit (IDR or non-IDR slice) of
/// `1 + extra` bytes, each extra byte `tag` (a synthetic picture: muxers copy it as is).
pub(crate) fn h264_access_unit(keyframe: bool, tag: u8, extra: usize) -> Vec<u8> {
    let len = u32::try_from(1 + extra).unwrap_or(u32::MAX);
    let mut au = len.to_be_bytes().to_vec();
    au.push(if keyframe { 0x65 } else { 0x41 });
    au.extend(std::iter::repeat_n(tag, extra));
    au
}

/// A JPEG-shaped image: SOI, `len` bytes of `tag`, EOI.
pub(crate) fn jpeg(tag: u8, len: usize) -> Vec<u8> {
    let mut j = vec![0xff, 0xd8];
    j.extend(std::iter::repeat_n(tag, len));
    j.extend_from_slice(&[0xff, 0xd9]);
    j
}
