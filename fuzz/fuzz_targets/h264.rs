//! Access-unit grouping and the H.264 source: never panic; access units are well-formed
//! AVCC in input order; the source delivers exactly those, with decode times that only
//! grow; the result is the same whole, one byte per read, or split at any byte.

#![no_main]
use dashcam::fuzzing::{access_units, h264_frames, AccessUnitEvent, AccessUnits, Feed};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

/// The NAL units of an AVCC buffer (4-byte big-endian lengths), or `None` when the
/// lengths do not cover it exactly or a NAL unit is empty.
pub fn avcc_nals(mut avcc: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !avcc.is_empty() {
        let len = u32::from_be_bytes(avcc.get(..4)?.try_into().ok()?) as usize;
        let nal = avcc.get(4..4 + len)?;
        if nal.is_empty() {
            return None;
        }
        out.push(nal);
        avcc = &avcc[4 + len..];
    }
    Some(out)
}

fn check(data: &[u8], units: &AccessUnits) {
    let mut prev: Option<u64> = None;
    for e in &units.events {
        if let AccessUnitEvent::Unit { offset, avcc, .. } = e {
            assert!(
                *offset < data.len() as u64,
                "offset {offset} past the input"
            );
            assert!(
                prev.is_none_or(|p| p < *offset),
                "access unit at {offset} out of order"
            );
            assert!(avcc_nals(avcc).is_some(), "bad AVCC at {offset}");
            prev = Some(*offset);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = access_units(data, Feed::Whole);
    check(data, &whole);
    assert_eq!(
        access_units(data, Feed::Every(1)),
        whole,
        "one byte per read"
    );
    for i in common::split_points(data.len(), 64) {
        assert_eq!(access_units(data, Feed::SplitAt(i)), whole, "split at {i}");
    }

    let frames = h264_frames(data, Feed::Whole);
    assert_ne!(frames.last(), Some(&Err("does not end".to_string())));
    let delivered: Vec<&[u8]> = frames
        .iter()
        .filter_map(|f| f.as_ref().ok())
        .map(|f| &f.data[..])
        .collect();
    let grouped: Vec<&[u8]> = whole
        .events
        .iter()
        .filter_map(|e| match e {
            AccessUnitEvent::Unit { avcc, .. } => Some(&avcc[..]),
            AccessUnitEvent::Error { .. } => None,
        })
        .collect();
    assert_eq!(
        delivered, grouped,
        "the source delivers other frames than the grouping"
    );
    let dts: Vec<i64> = frames
        .iter()
        .filter_map(|f| f.as_ref().ok())
        .map(|f| f.dts)
        .collect();
    assert!(
        dts.windows(2).all(|w| w[0] < w[1]),
        "decode times not increasing: {dts:?}"
    );
    assert_eq!(
        h264_frames(data, Feed::Every(1)),
        frames,
        "one byte per read"
    );
});
