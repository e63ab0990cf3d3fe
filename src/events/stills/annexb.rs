//! The Annex-B form of an H.264 keyframe as decoders take it: the stream's SPS and PPS,
//! then the frame's NAL units (dashcam keeps them 4-byte length-prefixed), each after a
//! start code. Pure.

use crate::frame::StreamFormat;

/// The Annex-B form of a keyframe: SPS, PPS, then the frame's NAL units (its data is
/// 4-byte length-prefixed), each after a start code.
pub fn annexb_picture(format: &StreamFormat, avcc: &[u8]) -> Vec<u8> {
    const START: [u8; 4] = [0, 0, 0, 1];
    let mut out = Vec::with_capacity(avcc.len() + format.sps.len() + 64);
    out.extend_from_slice(&START);
    out.extend_from_slice(&format.sps);
    for pps in &format.pps {
        out.extend_from_slice(&START);
        out.extend_from_slice(pps);
    }
    let mut rest = avcc;
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(nal) = rest.get(4..4 + n) else {
            break;
        };
        // Parameter sets in the frame itself are already at the front.
        let kind = nal.first().map_or(0, |b| b & 0x1F);
        if kind != 7 && kind != 8 {
            out.extend_from_slice(&START);
            out.extend_from_slice(nal);
        }
        rest = &rest[4 + n..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Codec;

    #[test]
    fn annexb_has_the_parameter_sets_first_and_skips_inline_copies() {
        let format = StreamFormat {
            codec: Codec::H264,
            width: 16,
            height: 16,
            frame_rate: None,
            sps: vec![0x67, 1],
            pps: vec![vec![0x68, 2]],
        };
        let avcc = [0, 0, 0, 2, 0x67, 9, 0, 0, 0, 3, 0x65, 7, 7];
        assert_eq!(
            annexb_picture(&format, &avcc),
            vec![0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 7, 7]
        );
        // A truncated length ends the frame rather than reading past it.
        assert_eq!(annexb_picture(&format, &[0, 0, 0, 9, 0x65]).len(), 12);
    }
}
