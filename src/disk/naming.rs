//! Segment file names: `YYYYMMDD-HHMMSS_NNNNNN.ext`, start wall time (local) and sequence.
//!
//! Names are valid on FAT (no `:`), sort by sequence within a day, and carry the sequence
//! number that orders segments even when the wall clock is wrong (a Pi without RTC). The
//! sequence survives restarts because the next one is derived from the files on disk.

use std::path::Path;
use std::time::SystemTime;

use chrono::{DateTime, Local};

/// Digits of the sequence number in a name (wider numbers still parse).
const SEQ_DIGITS: usize = 6;

/// Build the file stem for a segment starting at `wall` with sequence `seq`.
pub fn segment_stem(wall: SystemTime, seq: u64) -> String {
    let local: DateTime<Local> = wall.into();
    format!(
        "{}_{:0width$}",
        local.format("%Y%m%d-%H%M%S"),
        seq,
        width = SEQ_DIGITS
    )
}

/// The file name of `path` as text (lossy), empty when it has none: for logs and metadata.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A parsed segment name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentName {
    pub stem: String,
    pub sequence: u64,
    pub extension: String,
}

/// Parse `20261121-143005_000042.mp4` (or `.avi`, `.json`); `None` for anything else.
pub fn parse(file_name: &str) -> Option<SegmentName> {
    let (stem, ext) = file_name.rsplit_once('.')?;
    let (time, seq) = stem.rsplit_once('_')?;
    let bytes = time.as_bytes();
    let time_ok = bytes.len() == 15
        && bytes[8] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 8 || b.is_ascii_digit());
    if !time_ok || seq.len() < SEQ_DIGITS || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(SegmentName {
        stem: stem.to_string(),
        sequence: seq.parse().ok()?,
        extension: ext.to_string(),
    })
}

/// The start wall time a segment name carries (local time, to the second).
pub fn wall_of(name: &SegmentName) -> Option<SystemTime> {
    use chrono::{NaiveDateTime, TimeZone};
    let time = name.stem.rsplit_once('_')?.0;
    let naive = NaiveDateTime::parse_from_str(time, "%Y%m%d-%H%M%S").ok()?;
    let local = Local.from_local_datetime(&naive).earliest()?;
    Some(local.into())
}

/// The sequence number for the next segment: one past the highest found in any of `dirs`
/// (missing folders are skipped), so locking or deleting never reuses a number.
pub fn next_sequence_in(dirs: &[&Path]) -> std::io::Result<u64> {
    let mut next = 0;
    for dir in dirs {
        match next_sequence(dir) {
            Ok(n) => next = next.max(n),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(next)
}

/// The sequence number for the next segment: one past the highest found in `dir`
/// (any extension, so metadata of a deleted segment still counts), 0 in an empty dir.
pub fn next_sequence(dir: &Path) -> std::io::Result<u64> {
    let mut next = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str().and_then(parse) {
            next = next.max(name.sequence.saturating_add(1));
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let stem = segment_stem(SystemTime::now(), 42);
        let parsed = parse(&format!("{stem}.mp4")).expect("parses");
        assert_eq!(parsed.sequence, 42);
        assert_eq!(parsed.extension, "mp4");
        assert!(!stem.contains(':'));
        let wall = wall_of(&parsed).expect("wall");
        let back = naming_secs(SystemTime::now()) - naming_secs(wall);
        assert!((0..=2).contains(&back), "{back}");
    }

    fn naming_secs(t: SystemTime) -> i64 {
        t.duration_since(std::time::UNIX_EPOCH)
            .expect("epoch")
            .as_secs() as i64
    }

    #[test]
    fn rejects_others() {
        assert_eq!(parse("notes.txt"), None);
        assert_eq!(parse("20261121-143005_42.mp4"), None);
        assert_eq!(parse("2026112-143005_000042.mp4"), None);
        assert_eq!(parse("20261121-143005_000042"), None);
    }

    #[test]
    fn next_sequence_skips_past_highest() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(next_sequence(dir.path()).expect("read"), 0);
        std::fs::write(dir.path().join("20261121-143005_000007.json"), b"{}").expect("write");
        std::fs::write(dir.path().join("20261121-143105_000003.mp4"), b"").expect("write");
        assert_eq!(next_sequence(dir.path()).expect("read"), 8);
    }
}
