//! The MP4 segment reader: never panics; what it reports lies inside the file; and, as a
//! file cut by a power loss is read, any prefix of a file that reads gives a prefix of the
//! whole file's fragments, all ending by the cut (splitting the input does not apply to
//! a file reader; cutting it does).

#![no_main]
use dashcam::fuzzing::{mp4, ContainerSummary};
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
        assert!(
            s.size > 0 && s.offset + u64::from(s.size) <= f.complete_end,
            "{s:?}"
        );
    }
    assert!(f.groups.iter().all(|g| !g.is_empty()), "empty fragment");
    assert!(
        f.patch_fields.iter().all(|&p| p + 8 <= len),
        "{:?}",
        f.patch_fields
    );
}

fuzz_target!(|data: &[u8]| {
    let whole = mp4(data);
    if let Ok(f) = &whole {
        check(data.len() as u64, f);
    }
    for cut in common::split_points(data.len(), 64) {
        let Ok(part) = mp4(&data[..cut]) else {
            continue;
        };
        check(cut as u64, &part);
        let Ok(f) = &whole else {
            panic!("a prefix of {cut} bytes reads but the whole file does not");
        };
        assert!(part.groups.len() <= f.groups.len(), "cut at {cut}");
        assert_eq!(
            part.groups[..],
            f.groups[..part.groups.len()],
            "cut at {cut}"
        );
        assert_eq!(
            (part.width, part.height),
            (f.width, f.height),
            "cut at {cut}"
        );
    }
});
