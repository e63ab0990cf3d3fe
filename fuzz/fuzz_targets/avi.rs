//! The AVI segment reader: never panics; the chunks it reports lie inside the file; and,
//! as a file cut by a power loss is read, any prefix of a file that reads gives a prefix of
//! the whole file's chunks (splitting the input does not apply to a file reader; cutting
//! it does).

#![no_main]
use dashcam::fuzzing::{avi, ContainerSummary};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn check(len: u64, f: &ContainerSummary) {
    assert!(
        f.complete_end <= len,
        "complete_end {} past {len}",
        f.complete_end
    );
    for s in f.groups.iter().flatten() {
        assert!(s.offset + u64::from(s.size) <= f.complete_end, "{s:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = avi(data);
    if let Ok(f) = &whole {
        check(data.len() as u64, f);
    }
    for cut in common::split_points(data.len(), 64) {
        let Ok(part) = avi(&data[..cut]) else {
            continue;
        };
        check(cut as u64, &part);
        let Ok(f) = &whole else {
            panic!("a prefix of {cut} bytes reads but the whole file does not");
        };
        let (p, w) = (&part.groups[0], &f.groups[0]);
        assert!(p.len() <= w.len() && p[..] == w[..p.len()], "cut at {cut}");
        assert_eq!(
            (part.width, part.height),
            (f.width, f.height),
            "cut at {cut}"
        );
    }
});
