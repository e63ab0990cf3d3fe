//! Repairing an MP4 segment cut by a power loss or a failed finish, in place.
//!
//! It owns one step: what [`super::write::Fmp4Writer`]'s `finish` would have done, done from
//! what is durable. The file is truncated after its last complete fragment (a torn or
//! still-hidden fragment goes), the `mfra` index is appended, the durations are patched and
//! the `mehd` placeholder becomes a `mehd`. A file that is complete already is left alone.
//! It reports what the file holds, including the start time and stream time the writer
//! recorded in it (`prft`, stream clock), so recovery can write exact metadata. It never
//! renames, moves or deletes a file and never writes metadata (recovery's job).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::boxes::{Mfra, Mp4Box};
use super::read::{read, Mp4File};
use crate::frame::Codec;
use crate::mux::{RepairError, RepairOutcome};

/// Finish `path` if it needs it; what it holds afterwards.
pub(crate) fn repair(path: &Path) -> Result<RepairOutcome, RepairError> {
    let io = |e| RepairError::io(path, e);
    let (file, f) = RepairError::open(path, read)?;
    if f.frames() == 0 {
        return Err(RepairError::Unusable("no complete fragment".into()));
    }
    let was_finished = f.is_complete();
    if !was_finished {
        finish(&file, &f).map_err(io)?;
    }
    let bytes = file.metadata().map_err(io)?.len();
    Ok(RepairOutcome {
        codec: Codec::H264,
        frames: f.frames(),
        duration_ticks: f.decode_end(),
        width: f.width(),
        height: f.height(),
        start_wall: f.start_wall(),
        start_pts: f.start_pts(),
        was_finished,
        bytes,
    })
}

/// Truncate after the last complete fragment, append the `mfra`, patch the durations.
fn finish(file: &File, f: &Mp4File) -> std::io::Result<()> {
    let mfra = Mfra {
        entries: f
            .fragments
            .iter()
            .filter_map(|frag| frag.moof.random_access(frag.moof_offset))
            .collect(),
    };
    let mut bytes = Vec::with_capacity(mfra.size() as usize);
    mfra.write(&mut bytes);
    file.set_len(f.complete_end)?;
    file.write_all_at(&bytes, f.complete_end)?;
    super::write_durations(file, &f.layout, f.moov.edts.is_some(), f.decode_end())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::mp4::boxes::{child, children, Mehd};
    use crate::mux::mp4::write::Fmp4Writer;
    use crate::mux::SegmentMuxer;
    use crate::test_support::{frame, h264_access_unit, h264_format};
    use std::time::{Duration, SystemTime};

    /// Write 60 frames in fragments of 10 (B-frame order, so there is an edit list) without
    /// finishing; returns the file length after each fragment.
    fn unfinished(path: &Path, wall0: SystemTime) -> Vec<u64> {
        let format = h264_format();
        let mut w = Fmp4Writer::create(path, &format).expect("create");
        let mut ends = Vec::new();
        for i in 0..60i64 {
            if i > 0 && i % 10 == 0 {
                w.flush(Some(i * 3000)).expect("flush");
                ends.push(std::fs::metadata(path).expect("stat").len());
            }
            let key = i % 30 == 0;
            // Decode order I P B B ...: presentation 0 3 1 2 within each group of 4.
            let display = match i % 4 {
                1 => i + 2,
                2 | 3 => i - 1,
                _ => i,
            };
            let mut f = frame(
                &format,
                h264_access_unit(key, 7, 20),
                i * 3000,
                display * 3000,
                key,
            );
            f.wall = wall0 + Duration::from_millis(i as u64 * 33);
            w.push(&f).expect("push");
        }
        w.flush(Some(60 * 3000)).expect("flush");
        ends.push(std::fs::metadata(path).expect("stat").len());
        drop(w); // a power cut: never finished
        ends
    }

    #[test]
    fn a_cut_segment_is_finished_like_the_writer_would() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        let wall0 = SystemTime::now();
        let ends = unfinished(&p, wall0);
        // Cut inside the last fragment's mdat.
        let cut = (ends[4] + ends[5]) / 2;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_len(cut))
            .expect("cut");
        let before = read(&std::fs::read(&p).expect("read")[..]).expect("read");
        assert!(!before.finished && before.moov.mehd.is_none());

        let out = repair(&p).expect("repair");
        assert!(!out.was_finished);
        assert_eq!((out.frames, out.duration_ticks), (50, 150_000));
        assert_eq!((out.width, out.height, out.codec), (320, 240, Codec::H264));
        assert_eq!(out.start_wall, Some(wall0));
        assert_eq!(out.start_pts, Some(0));
        assert_eq!(out.bytes, ends[4] + Mfra::size_for(2));

        let bytes = std::fs::read(&p).expect("read");
        let after = read(&bytes[..]).expect("read");
        assert!(after.is_complete());
        assert_eq!(
            after.moov.mehd,
            Some(Mehd {
                fragment_duration: 150_000
            })
        );
        assert_eq!(after.moov.edts.map(|e| e.segment_duration), Some(150_000));
        let top: Vec<[u8; 4]> = children(&bytes).map(|b| b.kind).collect();
        assert_eq!(top.last(), Some(b"mfra"));
        let mfra = Mfra::read(child(&bytes, b"mfra").expect("mfra").body).expect("mfra");
        let keys: Vec<u64> = mfra.entries.iter().map(|e| e.moof_offset).collect();
        let want: Vec<u64> = after
            .fragments
            .iter()
            .filter(|f| f.samples().any(|s| s.sync))
            .map(|f| f.moof_offset)
            .collect();
        assert_eq!(keys, want);

        // Idempotent: a complete file is left alone.
        let again = repair(&p).expect("repair");
        assert!(again.was_finished);
        assert_eq!(std::fs::read(&p).expect("read"), bytes);
    }

    #[test]
    fn unusable_files_are_named_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.mp4");
        unfinished(&p, SystemTime::now());
        let bytes = std::fs::read(&p).expect("read");
        let f = read(&bytes[..]).expect("read");
        let first = f.fragments[0].moof_offset as usize;
        std::fs::write(&p, &bytes[..first]).expect("write");
        assert!(matches!(repair(&p), Err(RepairError::Unusable(_))));
        std::fs::write(&p, vec![0x5a; 5000]).expect("write");
        assert!(matches!(repair(&p), Err(RepairError::Unusable(_))));
        assert!(matches!(
            repair(&dir.path().join("missing.mp4")),
            Err(RepairError::Io { .. })
        ));
    }
}
