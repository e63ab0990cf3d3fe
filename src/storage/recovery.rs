//! Recovery at start: bring a footage directory back to a clean state after a crash or a
//! power cut, with no manual step.
//!
//! - A segment left unfinished is repaired in place by its container ([`mux::repair`]: fMP4
//!   truncated after its last complete fragment and finished, AVI truncated after its last
//!   complete JPEG chunk and given an `idx1`); recovery knows no box or chunk layout. Its
//!   metadata is (re)written from what the file holds, the start time and stream time
//!   included (the writer records them in the file: `prft` and stream clock for MP4, a
//!   start chunk for AVI).
//! - Zero-byte and unreadable files (and segments without a single frame) move to
//!   `corrupt/`: never silently deleted.
//! - Temp files (`*.tmp`, unfinished clips `*.part`) are removed; metadata whose segment is
//!   gone (a delete cut halfway) is removed, or follows its segment into or out of
//!   `locked/` (a move cut halfway).
//!
//! Idempotent: a second run finds nothing to do. Fast: a segment whose metadata agrees with
//! its size costs one stat and one small read. It never touches a segment it was not asked
//! to look at (the writer's open segment is excluded by the caller running it first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use chrono::{DateTime, Local};
use log::{info, warn};

use crate::disk::layout::Layout;
use crate::disk::metadata::{self, CloseReason, SegmentMeta};
use crate::disk::naming::file_name;
use crate::disk::{durable, naming};
use crate::frame::TIMESCALE;
use crate::mux::{self, RepairOutcome};
use crate::storage::StorageError;

/// What a recovery run did.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Segment files looked at.
    pub segments: usize,
    /// Segments repaired or given new metadata (file names).
    pub repaired: Vec<String>,
    /// Files moved to `corrupt/`, with the reason.
    pub corrupt: Vec<String>,
    /// Metadata files removed or moved beside their segment.
    pub orphans: Vec<String>,
    /// Temp files removed.
    pub temps: usize,
    pub elapsed: Duration,
}

impl RecoveryReport {
    pub fn changed(&self) -> bool {
        !(self.repaired.is_empty()
            && self.corrupt.is_empty()
            && self.orphans.is_empty()
            && self.temps == 0)
    }

    pub fn summary(&self) -> String {
        format!(
            "recovery: {} segment(s) checked in {:.0} ms: {} repaired, {} moved to corrupt/, {} orphan metadata fixed, {} temp file(s) removed",
            self.segments,
            self.elapsed.as_secs_f64() * 1000.0,
            self.repaired.len(),
            self.corrupt.len(),
            self.orphans.len(),
            self.temps
        )
    }
}

/// A segment's files in one folder.
#[derive(Default)]
struct Stem {
    video: Option<(PathBuf, u64)>,
    json: Option<PathBuf>,
}

/// Recover the whole footage directory (loop folder, `locked/`, `saved/`).
pub fn recover(layout: &Layout) -> Result<RecoveryReport, StorageError> {
    let start = Instant::now();
    let mut report = RecoveryReport::default();
    let dirs = layout.segment_dirs();
    let mut stems: Vec<BTreeMap<String, Stem>> = Vec::new();
    for dir in &dirs {
        stems.push(scan(dir, &mut report)?);
    }
    // First metadata without its segment: a move cut halfway (the segment is in the other
    // folder, without metadata) or a delete cut halfway.
    for i in 0..dirs.len() {
        let other = &dirs[1 - i];
        let keys: Vec<String> = stems[i].keys().cloned().collect();
        for key in keys {
            let Some(Stem {
                video: None,
                json: Some(json),
            }) = stems[i].get(&key)
            else {
                continue;
            };
            let json = json.clone();
            let video_elsewhere = stems[1 - i]
                .get(&key)
                .is_some_and(|s| s.video.is_some() && s.json.is_none());
            let name = file_name(&json);
            if video_elsewhere {
                let to = other.join(&name);
                layout
                    .ensure(other)
                    .and_then(|()| durable::rename_durable(&json, &to))
                    .map_err(|e| StorageError::io(&json, e))?;
                if let Some(s) = stems[1 - i].get_mut(&key) {
                    s.json = Some(to);
                }
                report
                    .orphans
                    .push(format!("{name}: moved beside its segment"));
            } else {
                durable::remove_durable(&json).map_err(|e| StorageError::io(&json, e))?;
                report
                    .orphans
                    .push(format!("{name}: its segment is gone, removed"));
            }
            stems[i].remove(&key);
        }
    }
    for folder in &stems {
        for stem in folder.values() {
            if let Some((path, len)) = &stem.video {
                report.segments += 1;
                check_segment(layout, path, *len, stem.json.is_some(), &mut report);
            }
        }
    }
    // Unfinished clips and temp files in saved/.
    let saved = layout.saved();
    if let Ok(rd) = std::fs::read_dir(&saved) {
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".part") || name.ends_with(".tmp") {
                durable::remove_durable(&entry.path())
                    .map_err(|e| StorageError::io(&entry.path(), e))?;
                report.temps += 1;
            }
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// List a folder: segment files and metadata by stem; removes `*.tmp` on the way.
fn scan(dir: &Path, report: &mut RecoveryReport) -> Result<BTreeMap<String, Stem>, StorageError> {
    let mut stems: BTreeMap<String, Stem> = BTreeMap::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(stems),
        Err(e) => return Err(StorageError::io(dir, e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let path = entry.path();
        if name.ends_with(".tmp") {
            if let Some(base) = name.strip_suffix(".tmp").and_then(naming::parse) {
                if base.extension == "json" {
                    durable::remove_durable(&path).map_err(|e| StorageError::io(&path, e))?;
                    report.temps += 1;
                }
            }
            continue;
        }
        let Some(parsed) = naming::parse(&name) else {
            continue;
        };
        let stem = stems.entry(parsed.stem.clone()).or_default();
        match parsed.extension.as_str() {
            "mp4" | "avi" => {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                stem.video = Some((path, len));
            }
            "json" => stem.json = Some(path),
            _ => {}
        }
    }
    Ok(stems)
}

/// Fast path: metadata present, parseable and agreeing with the file size. Else repair.
fn check_segment(
    layout: &Layout,
    path: &Path,
    len: u64,
    has_json: bool,
    report: &mut RecoveryReport,
) {
    let name = file_name(path);
    let existing = if has_json {
        metadata::read(path).ok().flatten()
    } else {
        None
    };
    if let Some(meta) = &existing {
        if meta.bytes == len && len > 0 {
            return;
        }
    }
    if len == 0 {
        move_to_corrupt(layout, path, "zero bytes", report);
        return;
    }
    match repair_segment(path, existing.as_ref()) {
        Ok(meta) => {
            info!(
                "recovered {name}: {} frames, {:.3} s, {} bytes",
                meta.frames, meta.duration_s, meta.bytes
            );
            report.repaired.push(name);
        }
        Err(RepairError::Unusable(why)) => move_to_corrupt(layout, path, &why, report),
        Err(RepairError::Io(e)) => {
            warn!("cannot repair {name}: {e}");
        }
    }
}

fn move_to_corrupt(layout: &Layout, path: &Path, why: &str, report: &mut RecoveryReport) {
    let name = file_name(path);
    let dir = layout.corrupt();
    let result = layout.ensure(&dir).and_then(|()| {
        let to = unique_in(&dir, &name);
        durable::rename_durable(path, &to)?;
        let json = metadata::path_for(path);
        if json.exists() {
            durable::rename_durable(&json, &unique_in(&dir, &file_name(&json)))?;
        }
        Ok(())
    });
    match result {
        Ok(()) => {
            warn!("{name}: {why}: moved to {}", dir.display());
            report.corrupt.push(format!("{name}: {why}"));
        }
        Err(e) => warn!("{name}: {why}, but moving it to corrupt/ failed: {e}"),
    }
}

/// `dir/name`, or `dir/name.N` when that exists already.
fn unique_in(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// Not a readable segment, or one without a single frame: belongs in `corrupt/`.
    #[error("{0}")]
    Unusable(String),
    #[error(transparent)]
    Io(#[from] StorageError),
}

/// Repair one segment file in place (finish it if it was cut; the container's
/// [`mux::repair`] does) and write its metadata. `existing` metadata, when readable, is
/// kept for what the file cannot say (dropped frames, the reason it closed); without it the
/// start time and stream time come from the file itself, as exact as a closed segment's
/// (only files from before dashcam recorded them fall back to the name's whole second).
pub fn repair_segment(
    path: &Path,
    existing: Option<&SegmentMeta>,
) -> Result<SegmentMeta, RepairError> {
    let out = mux::repair(path).map_err(|e| match e {
        mux::RepairError::Unusable(what) => RepairError::Unusable(what),
        mux::RepairError::Io { path, source } => RepairError::Io(StorageError::Io { path, source }),
    })?;
    let meta = metadata_of(path, &out, existing);
    metadata::write(path, &meta).map_err(|e| StorageError::io(&metadata::path_for(path), e))?;
    Ok(meta)
}

/// The metadata of a repaired segment.
fn metadata_of(path: &Path, out: &RepairOutcome, existing: Option<&SegmentMeta>) -> SegmentMeta {
    let duration_s = out.duration_ticks as f64 / f64::from(TIMESCALE);
    let fps = if duration_s > 0.0 {
        out.frames as f64 / duration_s
    } else {
        0.0
    };
    match existing {
        Some(m) => SegmentMeta {
            duration_s,
            frames: out.frames,
            bytes: out.bytes,
            fps,
            partial: true,
            close_reason: if out.was_finished {
                m.close_reason
            } else {
                CloseReason::Recovered
            },
            ..m.clone()
        },
        None => {
            let name = file_name(path);
            let parsed = naming::parse(&name);
            let wall = out
                .start_wall
                .or_else(|| parsed.as_ref().and_then(naming::wall_of))
                .unwrap_or(UNIX_EPOCH);
            let local: DateTime<Local> = wall.into();
            SegmentMeta {
                name: name.clone(),
                sequence: parsed.as_ref().map_or(0, |p| p.sequence),
                start_wall: local.to_rfc3339(),
                start_unix_ms: wall
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
                start_pts: out.start_pts.unwrap_or(0),
                duration_s,
                frames: out.frames,
                bytes: out.bytes,
                codec: out.codec,
                width: out.width,
                height: out.height,
                fps,
                dropped_frames: 0,
                partial: true,
                close_reason: CloseReason::Recovered,
            }
        }
    }
}
