//! Clips by time range (`dashcam clip`): ONE file, remuxed, whose frames decoded with
//! ffmpeg (`-f framemd5`) are exactly a run of the frames decoded from the segments, that
//! run starting at the keyframe at or before `from` and ending at the first frame at or
//! after `to`. Ranges across three segments, inside one, at the very edges, async while
//! recording; H.264 with and without B-frames, MJPEG. The recordings are real time (10 s
//! each), so that wall times mean something.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{Local, TimeZone};
use common::*;
use serde_json::Value;

/// One decoded frame of the recording: hash, wall time (ms), keyframe.
#[derive(Clone, Debug)]
struct Shown {
    hash: String,
    wall_ms: i64,
    key: bool,
}

/// Every frame of every segment, in order, with its wall time: the segment's
/// `start_unix_ms` plus the frame's presentation time as ffprobe shows it.
fn frames(dir: &Path) -> Vec<Shown> {
    let mut all = Vec::new();
    for seg in segments(dir) {
        let start = meta_i64(seg.meta(), "start_unix_ms").expect("start_unix_ms");
        let hashes = framemd5(&seg.path);
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .args(["frame=pts_time,key_frame", "-of", "csv=p=0"])
            .arg(&seg.path)
            .output()
            .expect("ffprobe");
        let rows: Vec<(f64, bool)> = text(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut it = l.split(',');
                let key = it.next().map(str::trim) == Some("1");
                let pts: f64 = it.next().and_then(|v| v.trim().parse().ok()).unwrap_or(0.0);
                (pts, key)
            })
            .collect();
        assert_eq!(rows.len(), hashes.len(), "{}", seg.name);
        for (h, (pts, key)) in hashes.into_iter().zip(rows) {
            all.push(Shown {
                hash: h,
                wall_ms: start + (pts * 1000.0).round() as i64,
                key,
            });
        }
    }
    all
}

fn local(ms: i64) -> String {
    Local
        .timestamp_millis_opt(ms)
        .single()
        .expect("local time")
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// Whole second (ms) at or after `ms`.
fn ceil_s(ms: i64) -> i64 {
    (ms + 999).div_euclid(1000) * 1000
}

fn clip_cmd(dir: &Path, from: i64, to: i64, extra: &[&str]) -> std::process::Command {
    let mut cmd = dashcam();
    cmd.arg("clip")
        .arg("--dir")
        .arg(dir)
        .arg("--from")
        .arg(local(from))
        .arg("--to")
        .arg(local(to))
        .args(extra);
    cmd
}

/// Cut a clip; returns its path.
fn clip(dir: &Path, from: i64, to: i64, extra: &[&str]) -> PathBuf {
    let cmd = clip_cmd(dir, from, to, extra);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(60.0));
    assert_no_panic(&what, &out);
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    PathBuf::from(text(&out.stdout).lines().next().expect("clip path").trim())
}

/// Judge a clip of `from`..`to` (ms, whole seconds) against the recording's frames.
fn check_clip(what: &str, clip: &Path, all: &[Shown], from: i64, to: i64, bframes: bool) {
    assert_eq!(probe_errors(clip), "", "{what}");
    assert_eq!(decode_errors(clip), "", "{what}");
    let got = framemd5(clip);
    assert!(!got.is_empty(), "{what}: empty clip");
    let hashes: Vec<&String> = all.iter().map(|f| &f.hash).collect();
    let start = all
        .iter()
        .rposition(|f| f.key && f.wall_ms <= from)
        .or_else(|| all.iter().position(|f| f.key))
        .expect("a keyframe");
    assert_eq!(
        got[0], all[start].hash,
        "{what}: the clip does not start at the keyframe at or before from"
    );
    let run: Vec<&String> = hashes[start..(start + got.len()).min(all.len())].to_vec();
    let got_refs: Vec<&String> = got.iter().collect();
    assert_eq!(run, got_refs, "{what}: not the same frames as the segments");
    let last = start + got.len() - 1;
    let first_at_to = all.iter().position(|f| f.wall_ms >= to);
    match first_at_to {
        Some(i) if bframes => assert!(
            last >= i && last <= i + 30,
            "{what}: ends at frame {last}, the first frame at or after to is {i}"
        ),
        Some(i) => assert_eq!(
            last, i,
            "{what}: does not end at the first frame at or after to"
        ),
        None => assert_eq!(
            last,
            all.len() - 1,
            "{what}: does not end at the last frame"
        ),
    }
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(clip.with_extension("json")).expect("clip json"),
    )
    .expect("clip json parses");
    assert_eq!(meta_i64(&json, "frames"), Some(got.len() as i64), "{what}");
}

/// Record `name` in real time into a fresh directory, 3 s segments.
fn record_real_time(tag: &str, name: &str) -> (TestDir, PathBuf) {
    let tmp = tmpdir(tag);
    let dir = tmp.path().join("footage");
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input(name).display()))
        .arg("--dir")
        .arg(&dir)
        .args(["--segment-seconds", "3"]);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(120.0));
    assert_no_panic(&what, &out);
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    (tmp, dir)
}

fn segment_count(clip: &Path) -> usize {
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(clip.with_extension("json")).expect("clip json"),
    )
    .expect("json");
    json["segments"].as_array().map_or(0, Vec::len)
}

#[test]
fn h264_ranges_across_inside_and_at_the_edges() {
    let (_tmp, dir) = record_real_time("clip-h264", "headers_once.h264");
    let all = frames(&dir);
    assert_eq!(all.len(), 300);
    let start = all[0].wall_ms;
    let end = all[all.len() - 1].wall_ms;
    let s0 = ceil_s(start);

    // Across three segments (0–3 s, 3–6 s, 6–9 s): from in [1, 2) s, to in [6, 7) s.
    let (from, to) = (s0 + 1000, s0 + 6000);
    let c = clip(&dir, from, to, &["--metadata", "across"]);
    check_clip("across 3 segments", &c, &all, from, to, false);
    assert_eq!(segment_count(&c), 3, "{}", c.display());
    assert!(c.starts_with(dir.join("saved")), "{}", c.display());
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(c.with_extension("json")).expect("json"))
            .expect("json");
    assert_eq!(json["metadata"], "across");

    // Inside the second segment.
    let (from, to) = (s0 + 3000, s0 + 4000);
    let c = clip(&dir, from, to, &[]);
    check_clip("inside one segment", &c, &all, from, to, false);
    assert_eq!(segment_count(&c), 1);

    // From before the first frame; to after the last; exactly the whole recording.
    let (from, to) = (s0 - 5000, s0 + 1000);
    let out = dir.join("edge-start.mp4");
    let c = clip(&dir, from, to, &["-o", out.to_str().expect("utf-8")]);
    assert_eq!(c, out);
    check_clip("from before the footage", &c, &all, from, to, false);
    let (from, to) = (ceil_s(end) - 2000, ceil_s(end) + 10_000);
    let c = clip(&dir, from, to, &[]);
    check_clip("to after the footage", &c, &all, from, to, false);
    let (from, to) = (s0 - 1000, ceil_s(end) + 1000);
    let c = clip(&dir, from, to, &[]);
    check_clip("everything", &c, &all, from, to, false);
    assert_eq!(framemd5(&c).len(), 300);

    // No footage in range, from after to: clear errors, exit 1, nothing written.
    let saved_before = std::fs::read_dir(dir.join("saved")).expect("saved").count();
    for (from, to, want) in [
        (s0 - 100_000, s0 - 50_000, "no footage between"),
        (s0 + 5000, s0 + 1000, "after"),
    ] {
        let cmd = clip_cmd(&dir, from, to, &[]);
        let what = describe(&cmd);
        let out = run_to_end(cmd, scaled(30.0));
        assert_no_panic(&what, &out);
        assert_eq!(out.status.code(), Some(1), "{what}");
        assert!(
            text(&out.stderr).contains(want),
            "{what}: {}",
            text(&out.stderr)
        );
    }
    let mut cmd = dashcam();
    cmd.args(["clip", "--from", "yesterday", "--to", "now", "--dir"])
        .arg(&dir);
    let out = run_to_end(cmd, scaled(30.0));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("YYYY-MM-DDTHH:MM:SS"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(dir.join("saved")).expect("saved").count(),
        saved_before
    );
}

#[test]
fn h264_with_bframes() {
    let (_tmp, dir) = record_real_time("clip-bframes", "bframes.h264");
    let all = frames(&dir);
    assert_eq!(all.len(), 300);
    let s0 = ceil_s(all[0].wall_ms);
    let (from, to) = (s0 + 2000, s0 + 4000);
    let c = clip(&dir, from, to, &[]);
    check_clip("B-frames across 2 segments", &c, &all, from, to, true);
    assert_eq!(segment_count(&c), 2);
}

#[test]
fn mjpeg_across_segments_into_one_avi() {
    let (_tmp, dir) = record_real_time("clip-mjpeg", "mjpeg422.mjpeg");
    let all = frames(&dir);
    assert_eq!(all.len(), 300);
    let s0 = ceil_s(all[0].wall_ms);
    let (from, to) = (s0 + 1000, s0 + 7000);
    let c = clip(&dir, from, to, &[]);
    assert_eq!(c.extension().and_then(|e| e.to_str()), Some("avi"));
    check_clip("MJPEG across 3 segments", &c, &all, from, to, false);
    assert_eq!(segment_count(&c), 3);
}

#[test]
fn async_clip_while_recording() {
    let tmp = tmpdir("clip-async");
    let dir = tmp.path().join("footage");
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input("headers_once.h264").display()))
        .arg("--dir")
        .arg(&dir)
        .args(["--segment-seconds", "4"]);
    let mut rec = Proc::spawn(cmd);
    // Wait for the first segment to close (4 s), then ask for the last 3 s and the next 1 s:
    // the range reaches into the segment being written.
    assert!(
        wait_until(scaled(30.0), || dir.is_dir()
            && segments(&dir).iter().any(|s| s.meta.is_some())),
        "no segment closed: {}",
        rec.stderr_text()
    );
    let now = chrono::Local::now().timestamp_millis() / 1000 * 1000;
    let (from, to) = (now - 3000, now + 1000);
    let cmd = clip_cmd(&dir, from, to, &["--async"]);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(30.0));
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    let path = PathBuf::from(text(&out.stdout).lines().next().expect("path").trim());
    assert!(
        rec.wait_timeout(Duration::from_millis(1)).is_none(),
        "the recording ended before the async clip returned"
    );
    let out = rec.finish(scaled(60.0));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        wait_until(scaled(30.0), || path.exists()
            && path.with_extension("json").exists()),
        "{} never written: {}",
        path.display(),
        text(&out.stderr)
    );
    let all = frames(&dir);
    check_clip("async", &path, &all, from, to, false);
}
