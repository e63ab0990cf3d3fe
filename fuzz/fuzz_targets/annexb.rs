//! The Annex-B splitter: never panics; every NAL unit it returns is the input's bytes
//! between start codes; the result is the same whole, one byte per read, or split at any
//! byte.

#![no_main]
use dashcam::fuzzing::{annexb, Feed, NalSplit};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn check(data: &[u8], split: &NalSplit) {
    let mut prev_end = 0usize;
    for (i, nal) in split.nals.iter().enumerate() {
        let at = usize::try_from(nal.offset).expect("offset");
        assert!(!nal.bytes.is_empty(), "empty NAL unit at {at}");
        assert!(
            at >= prev_end + 3,
            "NAL unit at {at} overlaps the one before"
        );
        assert_eq!(&data[at - 3..at], &[0, 0, 1], "no start code before {at}");
        assert_eq!(
            &data[at..at + nal.bytes.len()],
            &nal.bytes[..],
            "bytes at {at}"
        );
        assert_ne!(nal.bytes.last(), Some(&0), "trailing zero kept at {at}");
        assert!(
            !nal.bytes.windows(3).any(|w| w == [0, 0, 1]),
            "start code inside the NAL unit at {at}"
        );
        let last = i + 1 == split.nals.len();
        assert_eq!(
            nal.at_eof,
            last && split.error.is_none() && {
                // The input ends inside it: nothing but zeros after it.
                data[at + nal.bytes.len()..].iter().all(|&b| b == 0)
            },
            "at_eof of the NAL unit at {at}"
        );
        prev_end = at + nal.bytes.len();
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = annexb(data, Feed::Whole);
    check(data, &whole);
    assert_eq!(annexb(data, Feed::Every(1)), whole, "one byte per read");
    for i in common::split_points(data.len(), 256) {
        assert_eq!(annexb(data, Feed::SplitAt(i)), whole, "split at {i}");
    }
});
