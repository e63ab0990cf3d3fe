//! Repairing an AVI segment cut by a power loss, in place.
//!
//! It owns one step: what [`super::write::AviWriter`]'s `finish` would have done, from what
//! is on disk. The file is truncated after its last complete JPEG chunk, given an `idx1`,
//! and its header's sizes, frame counts and index flag are patched (at the places the
//! header's own layout gives, so segments from before the start chunk repair alike). It
//! reports what the file holds, including the first frame's wall-clock time and stream pts
//! from the start chunk. A finished file is left alone. It never renames, moves or deletes a
//! file and never writes metadata.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::layout::{self, field, AVIF_HASINDEX, CHUNK_HEADER_LEN};
use super::read::{read, AviFile};
use crate::frame::{Codec, TIMESCALE};
use crate::mux::{RepairError, RepairOutcome};

/// Finish `path` if it needs it; what it holds afterwards.
pub(crate) fn repair(path: &Path) -> Result<RepairOutcome, RepairError> {
    let io = |e| RepairError::io(path, e);
    let (file, f) = RepairError::open(path, read)?;
    if f.chunks.is_empty() {
        return Err(RepairError::Unusable("no complete frame".into()));
    }
    if !f.finished {
        finish(&file, &f).map_err(io)?;
    }
    let frames = f.frames();
    let bytes = file.metadata().map_err(io)?.len();
    Ok(RepairOutcome {
        codec: Codec::Mjpeg,
        frames,
        duration_ticks: (frames as f64 * f64::from(TIMESCALE) / f.fps()).round() as u64,
        width: f.width,
        height: f.height,
        start_wall: f.start_wall(),
        start_pts: f.start_pts(),
        was_finished: f.finished,
        bytes,
    })
}

/// Truncate after the last complete chunk, append `idx1`, patch the header sizes.
fn finish(file: &File, f: &AviFile) -> std::io::Result<()> {
    let movi = f.at.movi_fourcc();
    let rel = |offset: u64| u32::try_from(offset - CHUNK_HEADER_LEN - movi).unwrap_or(u32::MAX);
    let idx1 = layout::idx1(f.chunks.iter().map(|c| (rel(c.offset), c.size)));
    let max_chunk = f.chunks.iter().map(|c| c.size).max().unwrap_or(0);
    file.set_len(f.complete_end)?;
    file.write_all_at(&idx1, f.complete_end)?;
    let total = f.complete_end + idx1.len() as u64;
    let frames = u32::try_from(f.chunks.len()).unwrap_or(u32::MAX);
    let suggested = max_chunk.saturating_add(CHUNK_HEADER_LEN as u32);
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    for (pos, v) in [
        (4, clamp(total - 8)), // RIFF size
        (f.at.movi_size, clamp(f.complete_end - movi)),
        (f.at.avih + field::AVIH_TOTAL_FRAMES, frames),
        (f.at.strh + field::STRH_LENGTH, frames),
        (f.at.avih + field::AVIH_FLAGS, f.flags | AVIF_HASINDEX),
        (f.at.avih + field::AVIH_SUGGESTED_BUFFER, suggested),
        (f.at.strh + field::STRH_SUGGESTED_BUFFER, suggested),
    ] {
        file.write_all_at(&v.to_le_bytes(), pos)?;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::avi::write::AviWriter;
    use crate::mux::SegmentMuxer;
    use crate::test_support::{frame, jpeg, mjpeg_format};
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_cut_segment_gets_its_index_and_sizes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.avi");
        let format = mjpeg_format(64, 48, Some((25, 1)));
        let wall0 = SystemTime::now();
        let mut w = AviWriter::create(&p, &format).expect("create");
        for i in 0..12i64 {
            let mut f = frame(
                &format,
                jpeg(i as u8, 51 + i as usize),
                i * 3600,
                i * 3600,
                true,
            );
            f.wall = wall0 + Duration::from_millis(i as u64 * 40);
            w.push(&f).expect("push");
            if i == 4 {
                w.flush(None).expect("flush");
            }
        }
        w.flush(None).expect("flush");
        drop(w); // a power cut: never finished
        let len = std::fs::metadata(&p).expect("stat").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_len(len - 20)) // inside the last JPEG
            .expect("cut");

        let out = repair(&p).expect("repair");
        assert!(!out.was_finished);
        assert_eq!((out.frames, out.duration_ticks), (11, 11 * 3600));
        assert_eq!((out.codec, out.width, out.height), (Codec::Mjpeg, 64, 48));
        assert_eq!((out.start_wall, out.start_pts), (Some(wall0), Some(0)));
        let after = read(&std::fs::read(&p).expect("read")[..]).expect("read");
        assert!(after.finished);
        assert_eq!(after.frames(), 11);
        assert_eq!(out.bytes, std::fs::metadata(&p).expect("stat").len());
        let again = repair(&p).expect("repair");
        assert!(again.was_finished);
        assert_eq!(again.bytes, out.bytes);

        std::fs::write(&p, &std::fs::read(&p).expect("read")[..layout::HEADER_LEN]).expect("write");
        assert!(matches!(repair(&p), Err(RepairError::Unusable(_))));
    }
}
