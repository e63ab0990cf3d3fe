//! The file operations behind locking, unlocking and deletion: moving a segment (file,
//! then its metadata) between the loop folder and `locked/`, and deleting a segment or a
//! clip (file, then metadata).
//!
//! Each move is a durable rename (both folders fsynced), each deletion a durable remove. A
//! power cut between the two steps leaves the metadata behind, which recovery moves beside
//! its segment or removes. It decides nothing: which segment moves or goes, and whether the
//! quota allows it, is the footage core's decision ([`super::footage`]).

use std::path::{Path, PathBuf};

use crate::disk::layout::Layout;
use crate::disk::{durable, metadata};
use crate::storage::error::FootageError;

/// Move a segment and its metadata into `to_dir`. Returns the new path.
pub fn move_segment(layout: &Layout, path: &Path, to_dir: &Path) -> Result<PathBuf, FootageError> {
    layout
        .ensure(to_dir)
        .map_err(|e| FootageError::io(to_dir, &e))?;
    let name = path
        .file_name()
        .ok_or_else(|| FootageError::invalid(format!("{} has no file name", path.display())))?;
    let to = to_dir.join(name);
    durable::rename_durable(path, &to).map_err(|e| FootageError::io(path, &e))?;
    let json = metadata::path_for(path);
    if json.exists() {
        let json_to = metadata::path_for(&to);
        durable::rename_durable(&json, &json_to).map_err(|e| FootageError::io(&json, &e))?;
    }
    Ok(to)
}

/// Delete a segment or a clip: the file first, then its metadata, each durably. A cut in
/// between leaves metadata without a segment, which nothing counts and recovery removes;
/// never a metadata-less file that looks like a crashed recording.
pub fn delete_segment(path: &Path) -> Result<(), FootageError> {
    durable::remove_durable(path).map_err(|e| FootageError::io(path, &e))?;
    let json = metadata::path_for(path);
    durable::remove_durable(&json).map_err(|e| FootageError::io(&json, &e))
}

/// Size of a segment with its metadata.
pub fn segment_bytes(path: &Path) -> u64 {
    let file = std::fs::metadata(path).map_or(0, |m| m.len());
    let json = std::fs::metadata(metadata::path_for(path)).map_or(0, |m| m.len());
    file + json
}
