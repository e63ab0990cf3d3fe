//! The list of segments in a footage directory, read from the files themselves.
//!
//! Every segment file (`*.mp4`, `*.avi` with a segment name) is listed, joined with its
//! metadata when present. It never writes.

use std::path::{Path, PathBuf};

use crate::disk::metadata::{self, SegmentMeta};
use crate::disk::naming;

#[derive(Debug)]
pub struct CatalogEntry {
    pub path: PathBuf,
    pub sequence: u64,
    pub bytes: u64,
    /// `None` when the segment has no metadata (still open, or cut by a crash).
    pub meta: Option<SegmentMeta>,
    /// Why the metadata could not be read, when it exists but is broken.
    pub meta_error: Option<String>,
}

/// All segments in `dir`, ordered by sequence.
pub fn list(dir: &Path) -> std::io::Result<Vec<CatalogEntry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(naming::parse) else {
            continue;
        };
        if name.extension != "mp4" && name.extension != "avi" {
            continue;
        }
        let path = entry.path();
        let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let (meta, meta_error) = match metadata::read(&path) {
            Ok(m) => (m, None),
            Err(e) => (None, Some(e.to_string())),
        };
        entries.push(CatalogEntry {
            path,
            sequence: name.sequence,
            bytes,
            meta,
            meta_error,
        });
    }
    entries.sort_by_key(|e| e.sequence);
    Ok(entries)
}
