//! Recovery at start: bring a footage directory back to a clean state after a crash or a
//! power cut, with no manual step.
//!
//! - A segment left unfinished is repaired in place: fMP4 truncated after its last
//!   complete fragment and finished (durations, `mfra`); AVI truncated after its last
//!   complete JPEG chunk and given an `idx1` and correct RIFF sizes. Its metadata is
//!   (re)written from what the file holds.
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
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use chrono::{DateTime, Local};
use log::{info, warn};

use crate::disk::layout::Layout;
use crate::disk::metadata::{self, CloseReason, SegmentMeta};
use crate::disk::naming::file_name;
use crate::disk::{durable, naming};
use crate::frame::{Codec, TIMESCALE};
use crate::mux::mp4_boxes::{self, TfraEntry};
use crate::storage::avi_read::{self, AviFile, AVIF_HASINDEX, MOVI_FOURCC_POS};
use crate::storage::mp4_read::Mp4File;
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

/// Repair one segment file in place (finish it if it was cut) and write its metadata.
/// `existing` metadata, when readable, keeps the precise start time and stream clock.
pub fn repair_segment(
    path: &Path,
    existing: Option<&SegmentMeta>,
) -> Result<SegmentMeta, RepairError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let (codec, frames, duration_ticks, width, height, finished_before) = match ext {
        "mp4" => {
            let f = Mp4File::open(path).map_err(unusable)?;
            if f.frames() == 0 {
                return Err(RepairError::Unusable("no complete fragment".into()));
            }
            let was = f.finished;
            if !f.finished {
                finish_mp4(path, &f)?;
            }
            (
                Codec::H264,
                f.frames(),
                f.decode_end(),
                f.width,
                f.height,
                was,
            )
        }
        "avi" => {
            let f = AviFile::open(path).map_err(unusable)?;
            if f.chunks.is_empty() {
                return Err(RepairError::Unusable("no complete frame".into()));
            }
            let was = f.finished;
            if !f.finished {
                finish_avi(path, &f)?;
            }
            let frames = f.chunks.len() as u64;
            let ticks = (frames as f64 * f64::from(TIMESCALE) / f.fps()).round() as u64;
            (Codec::Mjpeg, frames, ticks, f.width, f.height, was)
        }
        _ => return Err(RepairError::Unusable("not a segment file".into())),
    };
    let bytes = std::fs::metadata(path)
        .map_err(|e| StorageError::io(path, e))?
        .len();
    let name = file_name(path);
    let parsed = naming::parse(&name);
    let duration_s = duration_ticks as f64 / f64::from(TIMESCALE);
    let meta = match existing {
        Some(m) => SegmentMeta {
            duration_s,
            frames,
            bytes,
            fps: if duration_s > 0.0 {
                frames as f64 / duration_s
            } else {
                0.0
            },
            partial: true,
            close_reason: if finished_before {
                m.close_reason
            } else {
                CloseReason::Recovered
            },
            ..m.clone()
        },
        None => {
            let wall = parsed
                .as_ref()
                .and_then(naming::wall_of)
                .unwrap_or(UNIX_EPOCH);
            let local: DateTime<Local> = wall.into();
            SegmentMeta {
                name: name.clone(),
                sequence: parsed.as_ref().map_or(0, |p| p.sequence),
                start_wall: local.to_rfc3339(),
                start_unix_ms: wall
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
                start_pts: 0,
                duration_s,
                frames,
                bytes,
                codec,
                width,
                height,
                fps: if duration_s > 0.0 {
                    frames as f64 / duration_s
                } else {
                    0.0
                },
                dropped_frames: 0,
                partial: true,
                close_reason: CloseReason::Recovered,
            }
        }
    };
    metadata::write(path, &meta).map_err(|e| StorageError::io(&metadata::path_for(path), e))?;
    Ok(meta)
}

fn unusable(e: StorageError) -> RepairError {
    match e {
        StorageError::Unreadable { what, .. } => RepairError::Unusable(what),
        other => RepairError::Io(other),
    }
}

/// Truncate after the last complete fragment, append the `mfra`, patch the durations.
fn finish_mp4(path: &Path, f: &Mp4File) -> Result<(), StorageError> {
    let io = |e| StorageError::io(path, e);
    let file = OpenOptions::new().write(true).open(path).map_err(io)?;
    let mut entries = Vec::new();
    for frag in &f.fragments {
        if let Some((i, s)) = frag.samples.iter().enumerate().find(|(_, s)| s.sync) {
            let t = i64::try_from(s.dts)
                .unwrap_or(i64::MAX)
                .saturating_add(i64::from(s.cto));
            entries.push(TfraEntry {
                time: u64::try_from(t).unwrap_or(0),
                moof_offset: frag.moof_offset,
                sample_number: u32::try_from(i + 1).unwrap_or(u32::MAX),
            });
        }
    }
    let mut mfra = Vec::new();
    mp4_boxes::mfra(&mut mfra, &entries);
    file.set_len(f.complete_end).map_err(io)?;
    file.write_all_at(&mfra, f.complete_end).map_err(io)?;
    let duration = f.decode_end().to_be_bytes();
    for &pos in f.duration_fields.iter().chain(f.elst_duration.iter()) {
        file.write_all_at(&duration, pos).map_err(io)?;
    }
    file.sync_all().map_err(io)
}

/// Truncate after the last complete chunk, append `idx1`, patch the header sizes.
fn finish_avi(path: &Path, f: &AviFile) -> Result<(), StorageError> {
    use avi_read::at;
    let io = |e| StorageError::io(path, e);
    let file = OpenOptions::new().write(true).open(path).map_err(io)?;
    let mut idx1 = Vec::with_capacity(8 + 16 * f.chunks.len());
    idx1.extend_from_slice(b"idx1");
    idx1.extend_from_slice(&((16 * f.chunks.len()) as u32).to_le_bytes());
    let mut max_chunk = 0u32;
    for c in &f.chunks {
        idx1.extend_from_slice(b"00dc");
        idx1.extend_from_slice(&0x10u32.to_le_bytes()); // AVIIF_KEYFRAME
        let rel = (c.offset - 8 - MOVI_FOURCC_POS) as u32;
        idx1.extend_from_slice(&rel.to_le_bytes());
        idx1.extend_from_slice(&c.size.to_le_bytes());
        max_chunk = max_chunk.max(c.size);
    }
    file.set_len(f.complete_end).map_err(io)?;
    file.write_all_at(&idx1, f.complete_end).map_err(io)?;
    let total = f.complete_end + idx1.len() as u64;
    let frames = f.chunks.len() as u32;
    let put = |pos: u64, v: u32| file.write_all_at(&v.to_le_bytes(), pos);
    put(at::RIFF_SIZE, (total - 8) as u32).map_err(io)?;
    put(at::MOVI_SIZE, (f.complete_end - MOVI_FOURCC_POS) as u32).map_err(io)?;
    put(at::TOTAL_FRAMES, frames).map_err(io)?;
    put(at::LENGTH, frames).map_err(io)?;
    put(at::FLAGS, f.flags | AVIF_HASINDEX).map_err(io)?;
    put(at::SUGGESTED_BUFFER, max_chunk + 8).map_err(io)?;
    put(at::STRH_SUGGESTED, max_chunk + 8).map_err(io)?;
    file.sync_all().map_err(io)
}
