//! The MJPEG splitter: never panics; every frame is a JPEG (SOI … EOI) copied from the
//! input in order, with exact times; the result is the same whole, one byte per read, or
//! split at any byte.

#![no_main]
use dashcam::fuzzing::{mjpeg_frames, Feed, FrameSummary};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn check(data: &[u8], frames: &[Result<FrameSummary, String>]) {
    assert_ne!(frames.last(), Some(&Err("does not end".to_string())));
    let mut from = 0usize;
    for (n, f) in frames.iter().filter_map(|f| f.as_ref().ok()).enumerate() {
        assert!(f.data.starts_with(&[0xff, 0xd8]) && f.data.ends_with(&[0xff, 0xd9]));
        assert!(f.width > 0 && f.height > 0);
        assert_eq!(
            (f.pts, f.dts),
            (n as i64 * 3000, n as i64 * 3000),
            "frame {n}"
        );
        let at = data[from..]
            .windows(f.data.len())
            .position(|w| w == &f.data[..])
            .expect("frame not in the input (in order)");
        from += at + f.data.len();
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = mjpeg_frames(data, Feed::Whole);
    check(data, &whole);
    assert_eq!(
        mjpeg_frames(data, Feed::Every(1)),
        whole,
        "one byte per read"
    );
    for i in common::split_points(data.len(), 256) {
        assert_eq!(mjpeg_frames(data, Feed::SplitAt(i)), whole, "split at {i}");
    }
});
