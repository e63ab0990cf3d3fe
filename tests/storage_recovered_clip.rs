//! A segment cut by a power loss keeps its exact start: the writer records the first
//! frame's wall-clock time and stream pts in the file itself (MP4: `prft` and dashcam's
//! stream-clock box; AVI: a start chunk), and recovery writes them into the metadata. So a
//! clip across a recovered segment holds exactly the frames of its range, as it does across
//! closed ones (before, recovery took the start from the file name's whole second and a
//! clip came out up to a second too long).
//!
//! Two ways to cut: a closed segment truncated inside a fragment or frame with its metadata
//! removed, judged exactly against the recording as it was before the cut; and a SIGKILL
//! while a segment is written, judged against the start the writer recorded in the file
//! (read with the tests' own box walker) and the closed segment before it.
//! Frames are judged with ffmpeg (`-f framemd5`, ffprobe's presentation times); the
//! recordings are real time, so wall times mean something.

mod common;

use std::path::{Path, PathBuf};

use chrono::{Local, TimeZone};
use common::*;
use serde_json::Value;

/// One decoded frame of a recording: hash, wall time (ms), keyframe.
#[derive(Clone, Debug, PartialEq)]
struct Pic {
    hash: String,
    wall_ms: i64,
    key: bool,
}

/// The frames of one segment, each at `start_ms` plus its presentation time (ffprobe).
fn pictures(seg: &Path, start_ms: i64) -> Vec<Pic> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "frame=key_frame,pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(seg)
        .output()
        .expect("ffprobe");
    let hashes = framemd5(seg);
    let times: Vec<(bool, f64)> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(','))
        .map(|(k, t)| (k.trim() == "1", t.trim().parse().unwrap_or(f64::NAN)))
        .collect();
    assert_eq!(times.len(), hashes.len(), "{}", seg.display());
    hashes
        .into_iter()
        .zip(times)
        .map(|(hash, (key, t))| Pic {
            hash,
            wall_ms: start_ms + (t * 1000.0).round() as i64,
            key,
        })
        .collect()
}

fn start_ms(seg: &Segment) -> i64 {
    meta_i64(seg.meta(), "start_unix_ms").expect("start_unix_ms")
}

fn local(ms: i64) -> String {
    Local
        .timestamp_millis_opt(ms)
        .single()
        .expect("local time")
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// The whole second (ms) at or after `ms`.
fn ceil_s(ms: i64) -> i64 {
    (ms + 999).div_euclid(1000) * 1000
}

fn recover(dir: &Path) {
    let mut cmd = dashcam();
    cmd.arg("recover").arg("--dir").arg(dir);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(60.0));
    assert_no_panic(&what, &out);
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
}

/// `dashcam clip` of `from`..`to` (whole seconds, ms) into `out`; its frame hashes.
fn clip(dir: &Path, from: i64, to: i64, out: &Path) -> Vec<String> {
    let mut cmd = dashcam();
    cmd.arg("clip")
        .arg("--dir")
        .arg(dir)
        .args(["--from", &local(from), "--to", &local(to), "-o"])
        .arg(out);
    let what = describe(&cmd);
    let res = run_to_end(cmd, scaled(60.0));
    assert_no_panic(&what, &res);
    assert!(res.status.success(), "{what}: {}", text(&res.stderr));
    assert_eq!(probe_errors(out), "", "{what}");
    assert_eq!(decode_errors(out), "", "{what}");
    framemd5(out)
}

/// The frames a clip of `from`..`to` must hold: from the keyframe at or before `from` to
/// the first frame at or after `to` (streams without B-frames).
fn expected(all: &[Pic], from: i64, to: i64) -> &[Pic] {
    let start = all
        .iter()
        .rposition(|p| p.key && p.wall_ms <= from)
        .expect("a keyframe before from");
    let end = all
        .iter()
        .position(|p| p.wall_ms >= to)
        .expect("a frame after to");
    &all[start..=end]
}

/// `dashcam run` of the input `name` in real time into `dir`, 3 s segments.
fn real_time(name: &str, dir: &Path) -> std::process::Command {
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input(name).display()))
        .arg("--dir")
        .arg(dir)
        .args(["--segment-seconds", "3"]);
    cmd
}

/// Record `name` in real time into a fresh directory, to the end.
fn record_real_time(tmp: &TestDir, name: &str) -> PathBuf {
    let dir = tmp.path().join("footage");
    let cmd = real_time(name, &dir);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(120.0));
    assert_no_panic(&what, &out);
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    dir
}

/// Where a power cut leaves a closed segment's file: in the middle of its third fragment's
/// `mdat` (MP4), in the middle of a frame two thirds in (AVI).
fn cut_point(seg: &Path) -> u64 {
    let data = std::fs::read(seg).expect("read");
    if seg.extension().and_then(|e| e.to_str()) == Some("mp4") {
        let mdats: Vec<(String, usize, usize)> = mp4_top_boxes(&data)
            .expect("boxes")
            .into_iter()
            .filter(|b| b.0 == "mdat")
            .collect();
        assert!(mdats.len() >= 3, "{} fragments", mdats.len());
        (mdats[2].1 + mdats[2].2 / 2) as u64
    } else {
        data.len() as u64 * 2 / 3 + 1
    }
}

/// Record `input_name`, cut its second segment as a power loss leaves it (inside a fragment
/// or a frame, its metadata never written), recover, and check that its metadata says
/// exactly what the writer had said, and that a clip from the first segment into what is
/// left of the second holds exactly the frames of its range.
fn cut_recover_and_clip(tag: &str, input_name: &str) {
    let tmp = tmpdir(tag);
    let dir = record_real_time(&tmp, input_name);
    let segs = segments(&dir);
    assert!(segs.len() >= 3, "{}", listing(&dir));
    let (first, second) = (&segs[0], &segs[1]);
    let before: Value = second.meta().clone();
    // The frames of both as recorded, at the times the closed metadata gives them.
    let mut all = pictures(&first.path, start_ms(first));
    let recorded = pictures(&second.path, start_ms(second));

    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&second.path)
        .expect("open");
    f.set_len(cut_point(&second.path)).expect("truncate");
    std::fs::remove_file(second.path.with_extension("json")).expect("remove metadata");
    recover(&dir);

    let after = segments(&dir);
    let repaired = after
        .iter()
        .find(|s| s.name == second.name)
        .expect("still there");
    let m = repaired.meta();
    assert_eq!(meta_str(m, "close_reason"), Some("recovered"));
    for key in ["start_unix_ms", "start_pts", "start_wall"] {
        assert_eq!(
            m.get(key),
            before.get(key),
            "{}: recovered {key}",
            second.name
        );
    }
    let kept = pictures(&repaired.path, start_ms(repaired));
    assert!(
        kept.len() >= 20 && kept.len() < recorded.len(),
        "{} of {} frames kept",
        kept.len(),
        recorded.len()
    );
    assert_eq!(
        kept[..],
        recorded[..kept.len()],
        "the kept frames at their recorded times"
    );
    all.extend(kept.iter().cloned());

    // From a whole second inside the first segment to one inside what is left of the second.
    let from = ceil_s(start_ms(first)) + 1000;
    let mut to = ceil_s(kept[0].wall_ms);
    if to + 1000 <= kept[kept.len() - 2].wall_ms {
        to += 1000;
    }
    assert!(
        to <= kept[kept.len() - 1].wall_ms,
        "no whole second inside the kept frames"
    );
    let ext = repaired
        .path
        .extension()
        .and_then(|e| e.to_str())
        .expect("ext");
    let out = tmp.path().join(format!("clip.{ext}"));
    let got = clip(&dir, from, to, &out);
    let want: Vec<String> = expected(&all, from, to)
        .iter()
        .map(|p| p.hash.clone())
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "frames in a clip of {} .. {} across the recovered {}",
        local(from),
        local(to),
        second.name
    );
    assert_eq!(got, want, "the clip's frames");
}

#[test]
fn h264_clip_across_a_recovered_segment_has_exactly_its_frames() {
    cut_recover_and_clip("recovered-clip-h264", "headers_once.h264");
}

#[test]
fn mjpeg_clip_across_a_recovered_segment_has_exactly_its_frames() {
    cut_recover_and_clip("recovered-clip-mjpeg", "mjpeg422.mjpeg");
}

/// The wall-clock time (ms since 1970) in the first `prft` box of an MP4, read with the
/// tests' own box walker: what the writer recorded as its first frame's capture time.
fn first_prft_ms(path: &Path) -> i64 {
    let data = std::fs::read(path).expect("read");
    let (_, at, size) = mp4_top_boxes(&data)
        .expect("boxes")
        .into_iter()
        .find(|b| b.0 == "prft")
        .expect("a prft box");
    assert_eq!((size, data[at + 8]), (32, 1), "a version 1 prft");
    let ntp = u64::from_be_bytes(data[at + 16..at + 24].try_into().expect("8 bytes"));
    let secs = (ntp >> 32) as i64 - 2_208_988_800;
    let ns = ((ntp & 0xffff_ffff) * 1_000_000_000 + (1 << 31)) >> 32;
    secs * 1000 + (ns / 1_000_000) as i64
}

/// A real power-cut-like stop (SIGKILL while the third segment is being written): the
/// recovered segment's metadata has the start the writer recorded in the file (its first
/// `prft`, read with the tests' own walker) and continues the closed segment before it (on
/// the stream clock exactly, on the wall clock within the source's pacing), and a clip from
/// the closed segment into the recovered one has exactly the frames of its range.
#[test]
fn a_segment_cut_by_sigkill_keeps_its_start() {
    let tmp = tmpdir("recovered-clip-kill");
    let dir = tmp.path().join("footage");
    let rec = Proc::spawn(real_time("headers_once.h264", &dir));
    // Two segments closed and about 2 s of the third on disk (~100 KiB a second).
    assert!(
        wait_until(scaled(60.0), || {
            dir.is_dir() && {
                let s = segments(&dir);
                s.len() == 3 && s[..2].iter().all(|s| s.meta.is_some()) && s[2].bytes() > 200_000
            }
        }),
        "{}: {}",
        listing(&dir),
        rec.stderr_text()
    );
    rec.kill9();
    let recorded_start = first_prft_ms(&segments(&dir)[2].path);
    recover(&dir);
    let segs = segments(&dir);
    assert_eq!(segs.len(), 3, "{}", listing(&dir));
    let (closed, cut) = (&segs[1], &segs[2]);
    assert_eq!(meta_str(cut.meta(), "close_reason"), Some("recovered"));
    assert_eq!(
        start_ms(cut),
        recorded_start,
        "start_unix_ms of {}",
        cut.name
    );
    let duration_s = closed.meta()["duration_s"].as_f64().expect("duration_s");
    let pts = |s: &Segment| meta_i64(s.meta(), "start_pts").expect("start_pts");
    assert_eq!(
        pts(cut),
        pts(closed) + (duration_s * 90_000.0).round() as i64,
        "the recovered segment's start_pts continues the stream clock"
    );
    // The source is paced to real time: the recorded wall clock agrees with the stream
    // clock to within its pacing (loose: the machine may be loaded).
    let off = start_ms(cut) - (start_ms(closed) + (duration_s * 1000.0).round() as i64);
    eprintln!("the recovered segment starts {off} ms from where the closed one ends");
    assert!(
        off.abs() < 500,
        "the recovered segment starts {off} ms away from where {} ends",
        closed.name
    );
    let mut all = pictures(&closed.path, start_ms(closed));
    let cut_pics = pictures(&cut.path, start_ms(cut));
    let from = ceil_s(start_ms(closed));
    let to = ceil_s(cut_pics[0].wall_ms);
    assert!(
        to < cut_pics[cut_pics.len() - 1].wall_ms,
        "no whole second in the cut segment"
    );
    all.extend(cut_pics);
    let got = clip(&dir, from, to, &tmp.path().join("clip.mp4"));
    let want: Vec<String> = expected(&all, from, to)
        .iter()
        .map(|p| p.hash.clone())
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "frames in a clip of {} .. {}",
        local(from),
        local(to)
    );
    assert_eq!(got, want, "the clip's frames");
}
