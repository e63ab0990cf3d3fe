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
//! Which frames a range takes is decided by a pure function, [`select`], over the frames'
//! times (and [`near_range`] skips segments far from it unread), so it is tested without
//! files; [`make_clip`] reads the segments, decides, and writes.
//!
//! The file is written as `NAME.part` and renamed when complete, with a `.json` beside it
//! (range, frames, source segments and the caller's metadata string). Errors carry their
//! kind: a bad time or `from` after `to` is invalid, no footage in the range is not found,
//! a clip that does not fit the locked quota or an output that exists is a conflict. It
//! never modifies or deletes a segment.

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
use crate::storage::error::FootageError;

/// Stream ticks to milliseconds, rounded to the nearest (as players show times): a frame at
/// 966.67 ms is at 967 ms, so a range boundary between the two is judged the same way.
fn ticks_to_ms(ticks: i64) -> i64 {
    let t = i64::from(TIMESCALE);
    (ticks.saturating_mul(1000) + t / 2).div_euclid(t)
}

/// The accepted time format (ISO 8601 local time).
pub const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Parse `YYYY-MM-DDTHH:MM:SS` as local time.
pub fn parse_local(text: &str) -> Result<SystemTime, FootageError> {
    let naive = NaiveDateTime::parse_from_str(text.trim(), TIME_FORMAT).map_err(|_| {
        FootageError::invalid(format!(
            "{text:?} is not a local time in the form YYYY-MM-DDTHH:MM:SS"
        ))
    })?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(SystemTime::from)
        .ok_or_else(|| FootageError::invalid(format!("{text:?} does not exist in local time")))
}

/// A range must not end before it starts.
pub fn check_range(from: SystemTime, to: SystemTime) -> Result<(), FootageError> {
    if from > to {
        return Err(FootageError::invalid(format!(
            "from ({}) is after to ({})",
            format_local(from),
            format_local(to)
        )));
    }
    Ok(())
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

fn candidates(layout: &Layout) -> Result<Vec<Candidate>, FootageError> {
    let mut out = Vec::new();
    for dir in layout.segment_dirs() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(FootageError::io(&dir, &e)),
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

/// One frame of a segment considered for a clip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick {
    /// Which segment (index into the segments read, in sequence order).
    pub seg: usize,
    /// Where its bytes are in the segment file.
    pub offset: u64,
    pub size: u32,
    /// A keyframe.
    pub sync: bool,
    /// Decode and presentation time within its segment (90 kHz).
    pub dts: i64,
    pub pts: i64,
    pub duration: i64,
    /// Wall time: the segment's start plus the presentation time (ms since the epoch).
    pub wall_ms: i64,
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

/// Whether a segment starting at `start_ms` and lasting `duration_ms` (when known) may hold
/// frames of `lo_ms..=hi_ms` and must be read.
pub fn near_range(start_ms: i64, duration_ms: Option<i64>, lo_ms: i64, hi_ms: i64) -> bool {
    if start_ms > hi_ms.saturating_add(SKIP_MARGIN_MS) {
        return false;
    }
    duration_ms.is_none_or(|d| start_ms.saturating_add(d) >= lo_ms.saturating_sub(SKIP_MARGIN_MS))
}

/// The frames a clip of `lo_ms..=hi_ms` takes out of `picks` (every frame of the segments
/// read, in order): from the keyframe at or before `lo_ms` (else the first keyframe up to
/// `hi_ms`) to the first frame at or after `hi_ms` (else the last), then on within that
/// frame's segment until every frame shown so far has been decoded (B-frames). `None` when
/// no footage falls in the range.
pub fn select(picks: &[Pick], lo_ms: i64, hi_ms: i64) -> Option<std::ops::Range<usize>> {
    let start = picks
        .iter()
        .rposition(|p| p.sync && p.wall_ms <= lo_ms)
        .or_else(|| picks.iter().position(|p| p.sync && p.wall_ms <= hi_ms))?;
    if picks[start..].iter().all(|p| p.wall_ms < lo_ms) {
        return None;
    }
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
    Some(start..end + 1)
}

/// The first picked frame whose segment's format differs from the first one's.
fn format_change(sources: &[Source], picks: &[Pick]) -> Option<usize> {
    let first = &sources[picks.first()?.seg];
    picks.iter().map(|p| p.seg).find(|&seg| {
        let s = &sources[seg];
        s.codec != first.codec
            || s.width != first.width
            || s.height != first.height
            || s.sps != first.sps
            || s.pps != first.pps
    })
}

/// Cut the clip. `budget`: bytes the clip may take at most (the protected share's room).
pub fn make_clip(
    layout: &Layout,
    req: &ClipRequest,
    budget: Option<u64>,
) -> Result<ClipInfo, FootageError> {
    check_range(req.from, req.to)?;
    let (lo_ms, hi_ms) = (ms(req.from), ms(req.to));
    let no_footage = || {
        FootageError::not_found(format!(
            "no footage between {} and {} in {}",
            format_local(req.from),
            format_local(req.to),
            layout.root.display()
        ))
    };
    let mut sources: Vec<Source> = Vec::new();
    let mut picks: Vec<Pick> = Vec::new();
    for c in candidates(layout)? {
        if !near_range(c.start_ms, c.duration_ms, lo_ms, hi_ms) {
            continue;
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
                        wall_ms: c.start_ms + ticks_to_ms(pts),
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
                        wall_ms: c.start_ms + ticks_to_ms(t),
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
    let range = select(&picks, lo_ms, hi_ms).ok_or_else(no_footage)?;
    let picks = &picks[range];

    // One format for the whole clip.
    let first = &sources[picks[0].seg];
    if let Some(seg) = format_change(&sources, picks) {
        let s = &sources[seg];
        return Err(FootageError::invalid(format!(
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
    let payload: u64 = picks.iter().map(|p| u64::from(p.size)).sum();
    if let Some(b) = budget {
        if payload > b {
            return Err(FootageError::conflict(format!(
                "the clip needs about {} but locked and saved footage may only grow by {} (locked_max_percent)",
                crate::disk::space::human(payload),
                crate::disk::space::human(b)
            )));
        }
    }

    let ext = first.codec.extension();
    let output = match &req.output {
        Some(p) => p.clone(),
        None => default_output(layout, req.from, req.to, ext, &[]),
    };
    let out_dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    if req.output.is_none() || out_dir == layout.saved() {
        layout
            .ensure(&out_dir)
            .map_err(|e| FootageError::io(&out_dir, &e))?;
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
        return Err(FootageError::conflict(format!(
            "{} exists already",
            output.display()
        )));
    }
    durable::rename_durable(&part, &output).map_err(|e| FootageError::io(&output, &e))?;

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
    let mut json = serde_json::to_vec_pretty(&info)
        .map_err(|e| FootageError::new(crate::storage::error::ErrorKind::Io, e.to_string()))?;
    json.push(b'\n');
    let json_path = output.with_extension("json");
    durable::write_atomic(&json_path, &json).map_err(|e| FootageError::io(&json_path, &e))?;
    Ok(info)
}

/// `saved/clip_FROM_TO.EXT` (FAT-valid), with `_N` added when that name is taken: it
/// exists, is being cut (`.part`), or is in `reserved` (clips waiting to be cut).
pub fn default_output(
    layout: &Layout,
    from: SystemTime,
    to: SystemTime,
    ext: &str,
    reserved: &[PathBuf],
) -> PathBuf {
    let f = |t: SystemTime| {
        DateTime::<Local>::from(t)
            .format("%Y%m%d-%H%M%S")
            .to_string()
    };
    let base = format!("clip_{}_{}", f(from), f(to));
    let dir = layout.saved();
    let taken = |p: &PathBuf| {
        let mut part = p.clone().into_os_string();
        part.push(".part");
        p.exists() || Path::new(&part).exists() || reserved.contains(p)
    };
    let first = dir.join(format!("{base}.{ext}"));
    if !taken(&first) {
        return first;
    }
    (2..)
        .map(|n| dir.join(format!("{base}_{n}.{ext}")))
        .find(|p| !taken(p))
        .unwrap_or(first)
}

/// Feed the picked frames to a muxer, end to end on one timeline.
fn write_clip(
    path: &Path,
    format: &Arc<StreamFormat>,
    sources: &[Source],
    picks: &[Pick],
) -> Result<crate::mux::MuxSummary, FootageError> {
    let mux_err = FootageError::from;
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
                    .map_err(|e| FootageError::io(&sources[p.seg].path, &e))?;
                slot.insert(f)
            }
        };
        let mut data = vec![0u8; p.size as usize];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut data, p.offset)
            .map_err(|e| FootageError::io(&sources[p.seg].path, &e))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::error::ErrorKind;

    const FRAME: i64 = 3000; // 90 kHz ticks at 30 fps

    /// `segs` segments of `n` frames at 30 fps, a keyframe every `gop` frames, each
    /// segment starting `gap_ms` after the previous one ended, the first at 100 000 ms.
    fn recording(segs: usize, n: usize, gop: usize, gap_ms: i64) -> Vec<Pick> {
        let mut out = Vec::new();
        let mut start_ms = 100_000;
        for seg in 0..segs {
            for i in 0..n {
                let t = i as i64 * FRAME;
                out.push(Pick {
                    seg,
                    offset: i as u64 * 100,
                    size: 100,
                    sync: i % gop == 0,
                    dts: t,
                    pts: t,
                    duration: FRAME,
                    wall_ms: start_ms + t / 90,
                });
            }
            start_ms += n as i64 * FRAME / 90 + gap_ms;
        }
        out
    }

    #[test]
    fn a_range_starts_at_the_keyframe_before_and_ends_at_the_first_frame_after() {
        // 3 segments of 3 s (90 frames), a keyframe every second.
        let p = recording(3, 90, 30, 0);
        // 100 500 ms is frame 15 of segment 0: the keyframe before it is frame 0.
        // 103 700 ms is frame 21 of segment 1 (101 ms... frame 21 at 103 700).
        let r = select(&p, 100_500, 103_700).expect("footage");
        assert_eq!(r.start, 0);
        assert_eq!(p[r.end - 1].wall_ms, 103_700);
        assert_eq!((p[r.end - 1].seg, r.end - 1), (1, 90 + 21));
        // From exactly on a keyframe: starts there.
        let r = select(&p, 101_000, 101_000).expect("footage");
        assert_eq!((r.start, r.end), (30, 31));
        // Between two frames: ends at the next one.
        let r = select(&p, 101_000, 101_010).expect("footage");
        assert_eq!(p[r.end - 1].wall_ms, 101_033);
        // Across all three segments.
        let r = select(&p, 101_500, 107_000).expect("footage");
        assert_eq!((p[r.start].seg, p[r.end - 1].seg), (0, 2));
        assert_eq!(r.start, 30);
    }

    #[test]
    fn ranges_at_and_past_the_edges() {
        let p = recording(2, 90, 30, 0);
        let last = p.len() - 1;
        // From before the footage: the first keyframe.
        assert_eq!(select(&p, 0, 100_500).map(|r| r.start), Some(0));
        // To after the footage: the last frame.
        assert_eq!(select(&p, 104_000, 999_999).map(|r| r.end), Some(last + 1));
        // Everything.
        assert_eq!(select(&p, 0, i64::MAX), Some(0..p.len()));
        // Nothing: before, after, no frames at all.
        assert_eq!(select(&p, 0, 99_999), None);
        assert_eq!(select(&p, 106_001, 107_000), None);
        assert_eq!(select(&[], 0, 1), None);
    }

    #[test]
    fn a_gap_between_segments_is_closed_up() {
        // 2 s between the segments (the recorder was stopped).
        let p = recording(2, 90, 30, 2000);
        // From inside the gap: the last keyframe before it, in segment 0.
        let r = select(&p, 104_000, 106_500).expect("footage");
        assert_eq!(p[r.start].seg, 0);
        assert_eq!(p[r.start].wall_ms, 102_000);
        assert_eq!(p[r.end - 1].wall_ms, 106_500);
        // A range wholly inside the gap still has the frames around it.
        let r = select(&p, 103_500, 104_500).expect("footage");
        assert_eq!(p[r.end - 1].wall_ms, 105_000);
    }

    #[test]
    fn b_frames_extend_the_end_until_what_was_shown_is_decoded() {
        // I P B B P B B ... in decode order; display order I B B P B B P.
        let mut p = Vec::new();
        let pts_of = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8];
        for (i, &k) in pts_of.iter().enumerate() {
            let pts = k * FRAME + FRAME; // one frame of composition delay
            p.push(Pick {
                seg: 0,
                offset: 0,
                size: 1,
                sync: i == 0,
                dts: i as i64 * FRAME,
                pts,
                duration: FRAME,
                wall_ms: 1000 + pts / 90,
            });
        }
        // `to` at display frame 3 (decode index 1): the first frame (in decode order) at
        // or after it is index 1 (pts 3); the B-frames 1 and 2 shown before it are decoded
        // at indices 2 and 3, so the clip runs to index 3.
        let to = 1000 + (3 * FRAME + FRAME) / 90;
        let r = select(&p, 0, to).expect("footage");
        assert_eq!(r, 0..4);
    }

    #[test]
    fn segments_far_from_the_range_are_skipped_unread() {
        // 60 s segment at 100 s, range 200..210 s: too early.
        assert!(!near_range(100_000, Some(60_000), 200_000, 210_000));
        // Ends 4 s before the range: within the margin.
        assert!(near_range(100_000, Some(60_000), 164_000, 170_000));
        // Starts after the range (beyond the margin).
        assert!(!near_range(220_000, Some(60_000), 200_000, 210_000));
        assert!(near_range(214_000, Some(60_000), 200_000, 210_000));
        // No metadata: read it unless it starts after the range.
        assert!(near_range(0, None, 200_000, 210_000));
    }

    #[test]
    fn times_and_ranges_are_checked() {
        let t = parse_local("2026-11-21T14:30:05").expect("parses");
        assert_eq!(format_local(t), "2026-11-21T14:30:05");
        for bad in [
            "yesterday",
            "2026-11-21 14:30:05",
            "2026-13-01T00:00:00",
            "",
        ] {
            let e = parse_local(bad).expect_err(bad);
            assert_eq!(e.kind, ErrorKind::Invalid, "{bad}");
            assert!(e.message.contains("YYYY-MM-DDTHH:MM:SS"), "{e}");
        }
        let later = t + Duration::from_secs(60);
        assert!(check_range(t, later).is_ok());
        assert!(check_range(t, t).is_ok());
        let e = check_range(later, t).expect_err("from after to");
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(e.message.contains("is after"), "{e}");
    }

    #[test]
    fn default_names_skip_taken_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        std::fs::create_dir(layout.saved()).expect("saved");
        let from = parse_local("2026-11-21T14:30:05").expect("t");
        let to = from + Duration::from_secs(60);
        let first = default_output(&layout, from, to, "mp4", &[]);
        assert_eq!(
            file_name(&first),
            "clip_20261121-143005_20261121-143105.mp4"
        );
        let second = default_output(&layout, from, to, "mp4", std::slice::from_ref(&first));
        assert_eq!(
            file_name(&second),
            "clip_20261121-143005_20261121-143105_2.mp4"
        );
        std::fs::write(
            layout.saved().join(format!("{}.part", file_name(&first))),
            b"",
        )
        .expect("part");
        assert_eq!(default_output(&layout, from, to, "mp4", &[]), second);
    }

    #[test]
    fn no_footage_is_not_found_and_a_bad_range_is_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        let from = parse_local("2026-11-21T14:30:05").expect("t");
        let to = from + Duration::from_secs(60);
        let req = |from, to| ClipRequest {
            from,
            to,
            output: None,
            metadata: None,
        };
        let e = make_clip(&layout, &req(from, to), None).expect_err("empty");
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains("no footage between"), "{e}");
        let e = make_clip(&layout, &req(to, from), None).expect_err("reversed");
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(!layout.saved().exists(), "nothing written");
    }
}
