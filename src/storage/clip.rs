//! Clips by time range: ONE file covering `from`..`to` (local wall time), remuxed from the
//! segments without re-encoding.
//!
//! The clip starts at the keyframe at or before `from` and ends at the first frame at or
//! after `to` (for B-frame streams, a little later: where every frame shown before that
//! point has been decoded), spanning as many segments (loop and locked) as needed; gaps
//! between segments are closed up. H.264 goes into a fragmented MP4, MJPEG into an AVI,
//! written by our own containers ([`mux::create`]) and read with their readers: the frames
//! are the segments' bytes, unchanged. A frame's wall time is its segment's start time plus its
//! presentation time in the segment.
//!
//! The file is written as `NAME.part` and renamed when complete, with a `.json` beside it
//! (range, frames, source segments and the caller's metadata string). It never modifies
//! or deletes a segment.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local, NaiveDateTime, TimeZone};
use serde::Serialize;

use crate::disk::layout::Layout;
use crate::disk::metadata;
use crate::disk::naming::file_name;
use crate::disk::{durable, naming};
use crate::frame::{Codec, Frame, StreamFormat, TIMESCALE};
use crate::mux::{self, avi, mp4};
use crate::storage::StorageError;

/// The accepted time format (ISO 8601 local time).
pub const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Parse `YYYY-MM-DDTHH:MM:SS` as local time.
pub fn parse_local(text: &str) -> Result<SystemTime, StorageError> {
    let naive = NaiveDateTime::parse_from_str(text.trim(), TIME_FORMAT).map_err(|_| {
        StorageError::Refused(format!(
            "{text:?} is not a local time in the form YYYY-MM-DDTHH:MM:SS"
        ))
    })?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(SystemTime::from)
        .ok_or_else(|| StorageError::Refused(format!("{text:?} does not exist in local time")))
}

/// A local time in the request format.
pub fn format_local(t: SystemTime) -> String {
    let local: DateTime<Local> = t.into();
    local.format(TIME_FORMAT).to_string()
}

/// What to cut.
#[derive(Clone, Debug)]
pub struct ClipRequest {
    pub from: SystemTime,
    pub to: SystemTime,
    /// Where to write; default `saved/clip_FROM_TO.EXT`.
    pub output: Option<PathBuf>,
    pub metadata: Option<String>,
}

/// The clip as written (also its `.json`).
#[derive(Clone, Debug, Serialize)]
pub struct ClipInfo {
    #[serde(skip)]
    pub path: PathBuf,
    pub file: String,
    pub from: String,
    pub to: String,
    /// Wall time of the first frame (RFC 3339).
    pub start_wall: String,
    pub start_unix_ms: i64,
    pub frames: u64,
    pub duration_s: f64,
    pub bytes: u64,
    pub codec: Codec,
    pub segments: Vec<String>,
    pub metadata: Option<String>,
}

fn ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

fn from_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// A segment considered for a clip.
struct Candidate {
    path: PathBuf,
    sequence: u64,
    start_ms: i64,
    /// Known length (from its metadata), to skip segments far from the range unread.
    duration_ms: Option<i64>,
}

fn candidates(layout: &Layout) -> Result<Vec<Candidate>, StorageError> {
    let mut out = Vec::new();
    for dir in layout.segment_dirs() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::io(&dir, e)),
        };
        for entry in rd.flatten() {
            let Some(name) = entry.file_name().to_str().and_then(naming::parse) else {
                continue;
            };
            if name.extension != "mp4" && name.extension != "avi" {
                continue;
            }
            let path = entry.path();
            let meta = metadata::read(&path).ok().flatten();
            let start_ms = match &meta {
                Some(m) => m.start_unix_ms,
                None => naming::wall_of(&name).map_or(0, ms),
            };
            out.push(Candidate {
                path,
                sequence: name.sequence,
                start_ms,
                duration_ms: meta.map(|m| (m.duration_s * 1000.0).ceil() as i64),
            });
        }
    }
    out.sort_by_key(|c| c.sequence);
    Ok(out)
}

/// One frame of the clip-to-be.
struct Pick {
    seg: usize,
    offset: u64,
    size: u32,
    sync: bool,
    /// Decode and presentation time within its segment (90 kHz).
    dts: i64,
    pts: i64,
    duration: i64,
    wall_ms: i64,
}

/// A segment's frames and how to read them.
struct Source {
    path: PathBuf,
    codec: Codec,
    width: u32,
    height: u32,
    sps: Vec<u8>,
    pps: Vec<Vec<u8>>,
    rate: Option<(u32, u32)>,
}

/// Margin when skipping segments by their metadata (clock precision, B-frame delay).
const SKIP_MARGIN_MS: i64 = 5_000;

/// Cut the clip. `budget`: bytes the clip may take at most (the protected share's room).
pub fn make_clip(
    layout: &Layout,
    req: &ClipRequest,
    budget: Option<u64>,
) -> Result<ClipInfo, StorageError> {
    let (lo_ms, hi_ms) = (ms(req.from), ms(req.to));
    if lo_ms > hi_ms {
        return Err(StorageError::Refused(format!(
            "from ({}) is after to ({})",
            format_local(req.from),
            format_local(req.to)
        )));
    }
    let no_footage = || {
        StorageError::NotFound(format!(
            "no footage between {} and {} in {}",
            format_local(req.from),
            format_local(req.to),
            layout.root.display()
        ))
    };
    let mut sources: Vec<Source> = Vec::new();
    let mut picks: Vec<Pick> = Vec::new();
    for c in candidates(layout)? {
        if c.start_ms > hi_ms + SKIP_MARGIN_MS {
            continue;
        }
        if let Some(d) = c.duration_ms {
            if c.start_ms + d < lo_ms - SKIP_MARGIN_MS {
                continue;
            }
        }
        let seg = sources.len();
        let ext = c.path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let source = match ext {
            "mp4" => {
                let Ok(f) = mux::read_file(&c.path, mp4::read) else {
                    continue;
                };
                for s in f.samples() {
                    let dts = i64::try_from(s.dts).unwrap_or(i64::MAX);
                    let pts = s.pts(f.delay());
                    picks.push(Pick {
                        seg,
                        offset: s.offset,
                        size: s.size,
                        sync: s.sync,
                        dts,
                        pts,
                        duration: i64::from(s.duration),
                        wall_ms: c.start_ms + pts * 1000 / i64::from(TIMESCALE),
                    });
                }
                Source {
                    path: c.path.clone(),
                    codec: Codec::H264,
                    width: f.width(),
                    height: f.height(),
                    sps: f.sps().to_vec(),
                    pps: f.pps().to_vec(),
                    rate: None,
                }
            }
            "avi" => {
                let Ok(f) = mux::read_file(&c.path, avi::read) else {
                    continue;
                };
                let (rate, scale) = if f.rate > 0 && f.scale > 0 {
                    (f.rate, f.scale)
                } else {
                    (30, 1)
                };
                let ticks = i64::from(TIMESCALE) * i64::from(scale) / i64::from(rate).max(1);
                for (i, ch) in f.chunks.iter().enumerate() {
                    let t =
                        i as i64 * i64::from(TIMESCALE) * i64::from(scale) / i64::from(rate).max(1);
                    picks.push(Pick {
                        seg,
                        offset: ch.offset,
                        size: ch.size,
                        sync: true,
                        dts: t,
                        pts: t,
                        duration: ticks.max(1),
                        wall_ms: c.start_ms + t * 1000 / i64::from(TIMESCALE),
                    });
                }
                Source {
                    path: c.path.clone(),
                    codec: Codec::Mjpeg,
                    width: f.width,
                    height: f.height,
                    sps: Vec::new(),
                    pps: Vec::new(),
                    rate: Some((rate, scale)),
                }
            }
            _ => continue,
        };
        sources.push(source);
    }
    // Start: the keyframe at or before `from` (else the first keyframe in range).
    let start = picks
        .iter()
        .rposition(|p| p.sync && p.wall_ms <= lo_ms)
        .or_else(|| picks.iter().position(|p| p.sync && p.wall_ms <= hi_ms))
        .ok_or_else(no_footage)?;
    if picks[start..].iter().all(|p| p.wall_ms < lo_ms) {
        return Err(no_footage());
    }
    // End: the first frame at or after `to`, then on to a point where the frames shown so
    // far have all been decoded (B-frames), within that segment.
    let mut end = picks[start..]
        .iter()
        .position(|p| p.wall_ms >= hi_ms)
        .map_or(picks.len() - 1, |i| start + i);
    let seg_end = picks[end..]
        .iter()
        .position(|p| p.seg != picks[end].seg)
        .map_or(picks.len(), |i| end + i);
    let mut max_pts = picks[start..=end]
        .iter()
        .filter(|p| p.seg == picks[end].seg)
        .map(|p| p.pts)
        .max()
        .unwrap_or(i64::MIN);
    while end + 1 < seg_end {
        let min_rest = picks[end + 1..seg_end]
            .iter()
            .map(|p| p.pts)
            .min()
            .unwrap_or(i64::MAX);
        if max_pts < min_rest {
            break;
        }
        end += 1;
        max_pts = max_pts.max(picks[end].pts);
    }
    let picks = &picks[start..=end];

    // One format for the whole clip.
    let first = &sources[picks[0].seg];
    for p in picks {
        let s = &sources[p.seg];
        if s.codec != first.codec
            || s.width != first.width
            || s.height != first.height
            || s.sps != first.sps
            || s.pps != first.pps
        {
            return Err(StorageError::Refused(format!(
                "the range changes format at {} ({} {}x{} → {} {}x{}): cut two clips",
                file_name(&s.path),
                first.codec.name(),
                first.width,
                first.height,
                s.codec.name(),
                s.width,
                s.height
            )));
        }
    }
    let payload: u64 = picks.iter().map(|p| u64::from(p.size)).sum();
    if let Some(b) = budget {
        if payload > b {
            return Err(StorageError::Refused(format!(
                "the clip needs about {} but locked and saved footage may only grow by {} (locked_max_percent)",
                crate::disk::space::human(payload),
                crate::disk::space::human(b)
            )));
        }
    }

    let ext = first.codec.extension();
    let output = match &req.output {
        Some(p) => p.clone(),
        None => default_output(layout, req.from, req.to, ext),
    };
    let out_dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    if req.output.is_none() || out_dir == layout.saved() {
        layout
            .ensure(&out_dir)
            .map_err(|e| StorageError::io(&out_dir, e))?;
    }
    let mut part_name = output.file_name().unwrap_or_default().to_os_string();
    part_name.push(".part");
    let part = out_dir.join(part_name);
    let _ = std::fs::remove_file(&part);

    let format = Arc::new(StreamFormat {
        codec: first.codec,
        width: first.width,
        height: first.height,
        frame_rate: first.rate,
        sps: first.sps.clone(),
        pps: first.pps.clone(),
    });
    let result = write_clip(&part, &format, &sources, picks);
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    if output.exists() {
        let _ = std::fs::remove_file(&part);
        return Err(StorageError::Refused(format!(
            "{} exists already",
            output.display()
        )));
    }
    durable::rename_durable(&part, &output).map_err(|e| StorageError::io(&output, e))?;

    let mut segments: Vec<String> = Vec::new();
    for p in picks {
        let name = file_name(&sources[p.seg].path);
        if segments.last() != Some(&name) {
            segments.push(name);
        }
    }
    let start_wall = from_ms(picks[0].wall_ms);
    let info = ClipInfo {
        file: file_name(&output),
        path: output.clone(),
        from: format_local(req.from),
        to: format_local(req.to),
        start_wall: DateTime::<Local>::from(start_wall).to_rfc3339(),
        start_unix_ms: picks[0].wall_ms,
        frames: summary.frames,
        duration_s: summary.duration_ticks as f64 / f64::from(TIMESCALE),
        bytes: summary.bytes,
        codec: first.codec,
        segments,
        metadata: req.metadata.clone(),
    };
    let mut json =
        serde_json::to_vec_pretty(&info).map_err(|e| StorageError::Refused(e.to_string()))?;
    json.push(b'\n');
    let json_path = output.with_extension("json");
    durable::write_atomic(&json_path, &json).map_err(|e| StorageError::io(&json_path, e))?;
    Ok(info)
}

/// `saved/clip_FROM_TO.EXT` (FAT-valid), with `_N` added when it exists.
pub fn default_output(layout: &Layout, from: SystemTime, to: SystemTime, ext: &str) -> PathBuf {
    let f = |t: SystemTime| {
        DateTime::<Local>::from(t)
            .format("%Y%m%d-%H%M%S")
            .to_string()
    };
    let base = format!("clip_{}_{}", f(from), f(to));
    let dir = layout.saved();
    let first = dir.join(format!("{base}.{ext}"));
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| dir.join(format!("{base}_{n}.{ext}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Feed the picked frames to a muxer, end to end on one timeline.
fn write_clip(
    path: &Path,
    format: &Arc<StreamFormat>,
    sources: &[Source],
    picks: &[Pick],
) -> Result<crate::mux::MuxSummary, StorageError> {
    let mux_err = |e: crate::mux::MuxError| StorageError::Refused(e.to_string());
    let mut muxer = mux::create(path, format).map_err(mux_err)?;
    let mut files: Vec<Option<File>> = (0..sources.len()).map(|_| None).collect();
    // Per segment: the clip time at which its first picked frame decodes.
    let mut offset = 0i64;
    let mut seg_base: Option<(usize, i64)> = None;
    let mut last_end = 0i64;
    let mut since_flush = 0i64;
    let now = Instant::now();
    for (i, p) in picks.iter().enumerate() {
        let base = match seg_base {
            Some((s, b)) if s == p.seg => b,
            _ => {
                offset = last_end;
                seg_base = Some((p.seg, p.dts));
                p.dts
            }
        };
        let dts = offset + (p.dts - base);
        let pts = offset + (p.pts - base);
        last_end = dts + p.duration.max(1);
        let file = match &mut files[p.seg] {
            Some(f) => f,
            slot => {
                let f = File::open(&sources[p.seg].path)
                    .map_err(|e| StorageError::io(&sources[p.seg].path, e))?;
                slot.insert(f)
            }
        };
        let mut data = vec![0u8; p.size as usize];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut data, p.offset)
            .map_err(|e| StorageError::io(&sources[p.seg].path, e))?;
        // Fragments of about a second, cut before keyframes when possible.
        if i > 0
            && (p.sync && since_flush >= i64::from(TIMESCALE) / 2
                || since_flush >= 2 * i64::from(TIMESCALE))
        {
            muxer.flush(Some(dts)).map_err(mux_err)?;
            since_flush = 0;
        }
        muxer
            .push(&Frame {
                data,
                keyframe: p.sync,
                pts,
                dts,
                captured: now,
                wall: from_ms(p.wall_ms),
                format: format.clone(),
                dropped_before: 0,
            })
            .map_err(mux_err)?;
        since_flush += p.duration.max(1);
    }
    muxer.finish(Some(last_end)).map_err(mux_err)
}
