//! The catalog: which segments and clips a footage directory holds, read from the files
//! themselves (files are the truth; the catalog is only an index of them).
//!
//! [`Catalog`] is the footage core's index: the closed loop segments and the locked ones
//! by sequence, the saved clips by name, with their sizes (file and metadata) and the bytes
//! of `saved/` and `corrupt/` for the quota. It is rebuilt by [`Catalog::scan`] (a
//! directory listing and a stat per file, no metadata parsing, so it is cheap on 1,000
//! segments) and kept up to date by the core between scans. Names given by a user or a URL
//! are only ever matched against it ([`Catalog::find`]), never joined into a path.
//! [`list`] and [`list_segments`] read the metadata too, for listings. It never writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::disk::layout::Layout;
use crate::disk::metadata::{self, SegmentMeta};
use crate::disk::naming::{self, file_name};
use crate::storage::error::FootageError;
use crate::storage::lock::segment_bytes;
use crate::storage::quota::Usage;

/// Where a segment or clip is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Folder {
    /// The loop folder: deleted oldest first by the quota.
    Loop,
    /// `locked/`: out of loop deletion.
    Locked,
    /// `saved/`: clips cut by time range.
    Saved,
}

/// A segment or clip in the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub path: PathBuf,
    pub folder: Folder,
    /// The segment's sequence number; `None` for a saved clip.
    pub sequence: Option<u64>,
    /// File and metadata.
    pub bytes: u64,
}

impl Item {
    /// The file name (what users, the request files and the web page use).
    pub fn name(&self) -> String {
        file_name(&self.path)
    }
}

/// What a user means by a name: a file name (optionally with a folder in front), a stem
/// (`20261121-143005_000042`) or a sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    stem: String,
    sequence: Option<u64>,
}

impl Query {
    /// `None` for an empty name.
    pub fn parse(name: &str) -> Option<Query> {
        let name = name.trim();
        let base = Path::new(name).file_name()?.to_string_lossy().into_owned();
        let stem = match base.rsplit_once('.') {
            Some((stem, "mp4" | "avi" | "json")) => stem.to_string(),
            _ => base,
        };
        Some(Query {
            sequence: stem.parse().ok(),
            stem,
        })
    }

    /// Whether the file at `path` (with `sequence`, for a segment) is the one meant.
    pub fn matches(&self, path: &Path, sequence: Option<u64>) -> bool {
        let stem = path.file_stem().map(|s| s.to_string_lossy());
        (self.sequence.is_some() && self.sequence == sequence)
            || stem.is_some_and(|s| s == self.stem.as_str())
    }
}

/// The index of a footage directory.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    loop_segs: BTreeMap<u64, Item>,
    locked: BTreeMap<u64, Item>,
    saved: BTreeMap<String, Item>,
    /// Every file in `saved/` (clips, their metadata, a clip being cut).
    saved_bytes: u64,
    corrupt_bytes: u64,
}

fn is_segment_file(name: &naming::SegmentName) -> bool {
    name.extension == "mp4" || name.extension == "avi"
}

/// The segments of one folder by sequence; `skip` (the open segment) is left out.
fn scan_segments(
    dir: &Path,
    folder: Folder,
    skip: Option<&Path>,
) -> std::io::Result<BTreeMap<u64, Item>> {
    let mut map = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(naming::parse) else {
            continue;
        };
        if !is_segment_file(&name) {
            continue;
        }
        let path = entry.path();
        if Some(path.as_path()) == skip {
            continue;
        }
        map.insert(
            name.sequence,
            Item {
                bytes: segment_bytes(&path),
                path,
                folder,
                sequence: Some(name.sequence),
            },
        );
    }
    Ok(map)
}

/// Sum of the sizes of the files directly in `dir` (0 when it is missing).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    })
}

/// The clips in `saved/` by file name (missing folder: none).
fn scan_saved(dir: &Path) -> BTreeMap<String, Item> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    let mut map = BTreeMap::new();
    for entry in rd.flatten() {
        let path = entry.path();
        let name = file_name(&path);
        let is_clip = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("mp4" | "avi")
        );
        if is_clip && entry.file_type().is_ok_and(|t| t.is_file()) {
            map.insert(
                name,
                Item {
                    bytes: segment_bytes(&path),
                    path,
                    folder: Folder::Saved,
                    sequence: None,
                },
            );
        }
    }
    map
}

impl Catalog {
    /// Index `layout`'s directory, leaving out `open` (the segment being written). Fails
    /// when the loop folder itself cannot be read (the drive is gone, or `dir` is not a
    /// directory); missing sub-folders are empty.
    pub fn scan(layout: &Layout, open: Option<&Path>) -> Result<Catalog, FootageError> {
        let loop_segs = scan_segments(&layout.root, Folder::Loop, open)
            .map_err(|e| FootageError::io(&layout.root, &e))?;
        let locked = scan_segments(&layout.locked(), Folder::Locked, open).unwrap_or_default();
        Ok(Catalog {
            loop_segs,
            locked,
            saved: scan_saved(&layout.saved()),
            saved_bytes: dir_bytes(&layout.saved()),
            corrupt_bytes: dir_bytes(&layout.corrupt()),
        })
    }

    /// What dashcam keeps, with the open segment at `open_bytes`.
    pub fn usage(&self, open_bytes: u64) -> Usage {
        Usage {
            loop_closed: self.loop_segs.values().map(|e| e.bytes).sum(),
            open: open_bytes,
            locked: self.locked.values().map(|e| e.bytes).sum(),
            saved: self.saved_bytes,
            corrupt: self.corrupt_bytes,
        }
    }

    /// Sizes of the closed loop segments, oldest first.
    pub fn loop_sizes(&self) -> Vec<u64> {
        self.loop_segs.values().map(|e| e.bytes).collect()
    }

    /// Sizes of the locked segments, oldest first.
    pub fn locked_sizes(&self) -> Vec<u64> {
        self.locked.values().map(|e| e.bytes).collect()
    }

    /// The oldest closed loop segment.
    pub fn oldest_loop(&self) -> Option<&Item> {
        self.loop_segs.values().next()
    }

    /// The oldest locked segment.
    pub fn oldest_locked(&self) -> Option<&Item> {
        self.locked.values().next()
    }

    /// The newest closed loop segment.
    pub fn newest_loop(&self) -> Option<&Item> {
        self.loop_segs.values().next_back()
    }

    /// The segment (loop or locked) just before sequence `before` (the open segment), or
    /// the newest of all when `before` is `None`.
    pub fn previous(&self, before: Option<u64>) -> Option<&Item> {
        let below = before.unwrap_or(u64::MAX);
        let lp = self.loop_segs.range(..below).next_back().map(|(_, i)| i);
        let lk = self.locked.range(..below).next_back().map(|(_, i)| i);
        match (lp, lk) {
            (Some(a), Some(b)) => Some(if a.sequence > b.sequence { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// The item `query` names: loop and locked segments first, then saved clips.
    pub fn find(&self, query: &Query) -> Option<&Item> {
        if let Some(seq) = query.sequence {
            if let Some(i) = self.loop_segs.get(&seq).or_else(|| self.locked.get(&seq)) {
                return Some(i);
            }
        }
        self.loop_segs
            .values()
            .chain(self.locked.values())
            .chain(self.saved.values())
            .find(|i| query.matches(&i.path, i.sequence))
    }

    /// Add (or replace) an item.
    pub fn insert(&mut self, item: Item) {
        match (item.folder, item.sequence) {
            (Folder::Loop, Some(seq)) => {
                self.loop_segs.insert(seq, item);
            }
            (Folder::Locked, Some(seq)) => {
                self.locked.insert(seq, item);
            }
            (Folder::Saved, _) => {
                self.saved_bytes = self.saved_bytes.saturating_add(item.bytes);
                self.saved.insert(item.name(), item);
            }
            (_, None) => {}
        }
    }

    /// Take an item out of the index (it was moved or deleted).
    pub fn remove(&mut self, item: &Item) -> Option<Item> {
        match (item.folder, item.sequence) {
            (Folder::Loop, Some(seq)) => self.loop_segs.remove(&seq),
            (Folder::Locked, Some(seq)) => self.locked.remove(&seq),
            (Folder::Saved, _) => {
                let gone = self.saved.remove(&item.name());
                if let Some(g) = &gone {
                    self.saved_bytes = self.saved_bytes.saturating_sub(g.bytes);
                }
                gone
            }
            (_, None) => None,
        }
    }
}

/// A segment with its metadata, for listings.
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

/// All segments in `dir`, ordered by sequence, with their metadata.
pub fn list(dir: &Path) -> std::io::Result<Vec<CatalogEntry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(naming::parse) else {
            continue;
        };
        if !is_segment_file(&name) {
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

/// The loop and locked segments of a footage directory together, in sequence order, each
/// with its folder and metadata.
pub fn list_segments(layout: &Layout) -> Result<Vec<(Folder, CatalogEntry)>, FootageError> {
    let mut entries: Vec<(Folder, CatalogEntry)> = list(&layout.root)
        .map_err(|e| FootageError::io(&layout.root, &e))?
        .into_iter()
        .map(|e| (Folder::Loop, e))
        .collect();
    let locked = layout.locked();
    if locked.is_dir() {
        let more = list(&locked).map_err(|e| FootageError::io(&locked, &e))?;
        entries.extend(more.into_iter().map(|e| (Folder::Locked, e)));
    }
    entries.sort_by_key(|(_, e)| e.sequence);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(folder: Folder, seq: u64) -> Item {
        Item {
            path: PathBuf::from(format!("/f/20261121-1430{:02}_{seq:06}.mp4", seq % 60)),
            folder,
            sequence: Some(seq),
            bytes: 10,
        }
    }

    #[test]
    fn a_name_is_a_file_name_a_stem_or_a_sequence() {
        let p = Path::new("/f/locked/20261121-143005_000042.mp4");
        for name in [
            "20261121-143005_000042.mp4",
            "20261121-143005_000042.json",
            "20261121-143005_000042",
            "locked/20261121-143005_000042.mp4",
            " 42 ",
            "000042",
        ] {
            let q = Query::parse(name).expect(name);
            assert!(q.matches(p, Some(42)), "{name}");
        }
        let q = Query::parse("43").expect("43");
        assert!(!q.matches(p, Some(42)));
        assert!(Query::parse("").is_none());
        assert!(Query::parse("..").is_none());
        let clip = Path::new("/f/saved/clip_20261121-143005_20261121-143105.mp4");
        let q = Query::parse("clip_20261121-143005_20261121-143105.mp4").expect("clip");
        assert!(q.matches(clip, None));
        assert!(!Query::parse("clip_x").expect("x").matches(clip, None));
    }

    #[test]
    fn previous_is_the_segment_before_the_open_one_in_any_folder() {
        let mut c = Catalog::default();
        for s in [1, 2, 5] {
            c.insert(item(Folder::Loop, s));
        }
        c.insert(item(Folder::Locked, 4));
        assert_eq!(c.previous(Some(6)).and_then(|i| i.sequence), Some(5));
        // The one before is locked already: it is the previous one, not an older one.
        assert_eq!(c.previous(Some(5)).and_then(|i| i.sequence), Some(4));
        assert_eq!(c.previous(Some(4)).and_then(|i| i.sequence), Some(2));
        assert_eq!(c.previous(None).and_then(|i| i.sequence), Some(5));
        assert_eq!(c.previous(Some(1)), None);
    }

    #[test]
    fn insert_remove_and_usage() {
        let mut c = Catalog::default();
        c.insert(item(Folder::Loop, 1));
        c.insert(item(Folder::Loop, 2));
        c.insert(item(Folder::Locked, 0));
        let clip = Item {
            path: PathBuf::from("/f/saved/clip_a_b.mp4"),
            folder: Folder::Saved,
            sequence: None,
            bytes: 7,
        };
        c.insert(clip.clone());
        let u = c.usage(3);
        assert_eq!((u.loop_closed, u.open, u.locked, u.saved), (20, 3, 10, 7));
        assert_eq!(c.loop_sizes(), vec![10, 10]);
        assert_eq!(c.oldest_loop().and_then(|i| i.sequence), Some(1));
        assert_eq!(
            c.find(&Query::parse("clip_a_b").expect("q"))
                .map(Item::name),
            Some("clip_a_b.mp4".into())
        );
        assert_eq!(c.remove(&clip), Some(clip));
        assert_eq!(c.usage(0).saved, 0);
        let first = item(Folder::Loop, 1);
        assert!(c.remove(&first).is_some());
        assert_eq!(c.loop_sizes().len(), 1);
        assert_eq!(c.find(&Query::parse("1").expect("q")), None);
    }
}
