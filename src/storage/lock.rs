//! Locking and unlocking segments: moving a segment (file, then its metadata) into
//! `locked/`, out of loop deletion, and back.
//!
//! Each move is a durable rename (both folders fsynced). A power cut between the two
//! renames leaves the metadata behind; recovery moves it beside its segment. It never
//! deletes footage and never decides quotas (the keeper checks the locked quota first).

use std::path::{Path, PathBuf};

use crate::disk::layout::Layout;
use crate::disk::{durable, metadata, naming};
use crate::storage::StorageError;

/// Where a segment is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub sequence: u64,
    pub locked: bool,
}

/// Find a segment by file name, stem (`20261121-143005_000042`) or sequence number.
pub fn find(layout: &Layout, name: &str) -> Result<Found, StorageError> {
    let name = name.trim();
    let wanted_seq: Option<u64> = name.parse().ok();
    let wanted_stem = Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .map(|n| match n.rsplit_once('.') {
            Some((stem, "mp4" | "avi" | "json")) => stem.to_string(),
            _ => n,
        });
    for (dir, locked) in [(layout.root.clone(), false), (layout.locked(), true)] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            let Some(parsed) = entry.file_name().to_str().and_then(naming::parse) else {
                continue;
            };
            if parsed.extension != "mp4" && parsed.extension != "avi" {
                continue;
            }
            let hit = Some(parsed.sequence) == wanted_seq
                || wanted_stem.as_deref() == Some(parsed.stem.as_str());
            if hit {
                return Ok(Found {
                    path: entry.path(),
                    sequence: parsed.sequence,
                    locked,
                });
            }
        }
    }
    Err(StorageError::NotFound(format!(
        "no segment {name:?} in {} or its locked/ folder",
        layout.root.display()
    )))
}

/// Move a segment and its metadata into `to_dir`. Returns the new path.
pub fn move_segment(layout: &Layout, path: &Path, to_dir: &Path) -> Result<PathBuf, StorageError> {
    layout
        .ensure(to_dir)
        .map_err(|e| StorageError::io(to_dir, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| StorageError::NotFound(format!("{} has no file name", path.display())))?;
    let to = to_dir.join(name);
    durable::rename_durable(path, &to).map_err(|e| StorageError::io(path, e))?;
    let json = metadata::path_for(path);
    if json.exists() {
        let json_to = metadata::path_for(&to);
        durable::rename_durable(&json, &json_to).map_err(|e| StorageError::io(&json, e))?;
    }
    Ok(to)
}

/// Delete a segment: the segment file first, then its metadata, each durably. A cut in
/// between leaves metadata without a segment, which nothing counts and recovery removes;
/// never a metadata-less file that looks like a crashed recording.
pub fn delete_segment(path: &Path) -> Result<(), StorageError> {
    durable::remove_durable(path).map_err(|e| StorageError::io(path, e))?;
    let json = metadata::path_for(path);
    durable::remove_durable(&json).map_err(|e| StorageError::io(&json, e))
}

/// Size of a segment with its metadata.
pub fn segment_bytes(path: &Path) -> u64 {
    let file = std::fs::metadata(path).map_or(0, |m| m.len());
    let json = std::fs::metadata(metadata::path_for(path)).map_or(0, |m| m.len());
    file + json
}
