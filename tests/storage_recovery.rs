//! Recovery at start (`dashcam recover`, and `dashcam run` before recording): segments cut
//! by a crash are repaired in place and play to their last complete fragment or chunk,
//! zero-byte and unreadable files go to `corrupt/`, orphan metadata and temp files go,
//! and a second run changes nothing. Judged with ffprobe/ffmpeg and the tests' own MP4 box
//! walker. Real power cuts are in scripts/vm/power-cut.sh.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::*;
use serde_json::Value;

fn recover(dir: &Path) -> std::process::Output {
    let mut cmd = dashcam();
    cmd.arg("recover").arg("--dir").arg(dir);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(120.0));
    assert_no_panic(&what, &out);
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        text(&out.stderr)
    );
    out
}

fn read_meta(video: &Path) -> Value {
    let json = video.with_extension("json");
    let text = fs::read_to_string(&json).unwrap_or_else(|e| panic!("{}: {e}", json.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", json.display()))
}

/// Cut `path` to `len` bytes and drop its metadata, as a power cut mid-write leaves it.
fn cut(path: &Path, len: u64) {
    let f = fs::OpenOptions::new().write(true).open(path).expect("open");
    f.set_len(len).expect("truncate");
    let _ = fs::remove_file(path.with_extension("json"));
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn cut_segments_are_repaired_and_junk_is_set_aside() {
    let tmp = tmpdir("recover");
    let dir = tmp.path().join("footage");
    // H.264: 5 segments of 2 s; MJPEG: 3 segments of 4 s.
    record_file(&input("headers_once.h264"), &dir, 2, &[]);
    let mjpeg = tmp.path().join("mjpeg");
    record_file(&input("mjpeg422.mjpeg"), &mjpeg, 4, &[]);
    let h264 = segments(&dir);
    let avi = segments(&mjpeg);
    assert!(h264.len() >= 4 && avi.len() >= 2, "{}", listing(&dir));

    // An MP4 cut in the middle of its third fragment's mdat, one cut right after its init
    // segment (no frame at all), an AVI cut in the middle of a JPEG.
    let mp4_cut = &h264[1];
    let frags = mp4_fragments(&mp4_cut.path).expect("fragments");
    let data = fs::read(&mp4_cut.path).expect("read");
    let top = mp4_top_boxes(&data).expect("boxes");
    let mdats: Vec<&(String, usize, usize)> = top.iter().filter(|b| b.0 == "mdat").collect();
    assert!(mdats.len() >= 3, "{:?}", frags);
    let keep_frames: u32 = frags.samples_per_fragment[..2].iter().sum();
    let cut_at = (mdats[2].1 + mdats[2].2 / 2) as u64;
    let before_hashes = framemd5(&mp4_cut.path);
    cut(&mp4_cut.path, cut_at);

    let init_only = &h264[2];
    let init_len = mp4_top_boxes(&fs::read(&init_only.path).expect("read"))
        .expect("boxes")
        .into_iter()
        .find(|b| b.0 == "moov")
        .map(|b| b.1 + b.2)
        .expect("moov");
    cut(&init_only.path, init_len as u64);

    let avi_cut = &avi[0];
    let avi_before = framemd5(&avi_cut.path);
    let avi_len = fs::metadata(&avi_cut.path).expect("stat").len();
    cut(&avi_cut.path, avi_len * 2 / 3 + 1);
    // Put the AVI beside the MP4s (under a sequence number of its own): recovery handles
    // both kinds in one folder.
    let avi_path = dir.join("20261121-110000_000800.avi");
    fs::rename(&avi_cut.path, &avi_path).expect("move avi");

    // A zero-byte segment, a garbage one, orphan metadata, a metadata temp file.
    fs::write(dir.join("20261121-120000_000900.mp4"), b"").expect("write");
    fs::write(dir.join("20261121-120001_000901.mp4"), vec![0x5a; 5000]).expect("write");
    fs::write(dir.join("20261121-120002_000902.json"), b"{}").expect("write");
    fs::write(dir.join("20261121-120003_000903.json.tmp"), b"{").expect("write");

    let out = recover(&dir);
    let report = text(&out.stdout);

    // The cut MP4: finished, clean, exactly its complete fragments, metadata agreeing.
    assert_eq!(probe_errors(&mp4_cut.path), "", "{report}");
    assert_eq!(decode_errors(&mp4_cut.path), "", "{report}");
    let after = framemd5(&mp4_cut.path);
    assert_eq!(after.len() as u32, keep_frames, "{report}");
    assert_eq!(
        after[..],
        before_hashes[..after.len()],
        "repaired MP4 frames"
    );
    let tops: Vec<String> = mp4_top_boxes(&fs::read(&mp4_cut.path).expect("read"))
        .expect("boxes")
        .into_iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(tops.last().map(String::as_str), Some("mfra"), "{tops:?}");
    let m = read_meta(&mp4_cut.path);
    assert_eq!(meta_i64(&m, "frames"), Some(i64::from(keep_frames)));
    assert_eq!(
        meta_i64(&m, "bytes"),
        Some(fs::metadata(&mp4_cut.path).expect("stat").len() as i64)
    );
    assert_eq!(meta_str(&m, "close_reason"), Some("recovered"));
    let d = format_duration(&mp4_cut.path).expect("duration");
    assert!(
        (d - f64::from(keep_frames) / 30.0).abs() < 0.05,
        "duration {d}"
    );

    // The cut AVI: an idx1 again, every complete JPEG, no error.
    assert_eq!(probe_errors(&avi_path), "", "{report}");
    assert_eq!(decode_errors(&avi_path), "", "{report}");
    let avi_after = framemd5(&avi_path);
    assert!(!avi_after.is_empty() && avi_after.len() < avi_before.len());
    assert_eq!(avi_after[..], avi_before[..avi_after.len()]);
    let m = read_meta(&avi_path);
    assert_eq!(meta_i64(&m, "frames"), Some(avi_after.len() as i64));
    let riff = fs::read(&avi_path).expect("read");
    let riff_size = u32::from_le_bytes(riff[4..8].try_into().expect("4 bytes")) as usize;
    assert_eq!(riff_size + 8, riff.len(), "RIFF size");

    // Junk set aside, never deleted; orphans and temp files gone.
    let corrupt = names(&dir.join("corrupt"));
    for n in [
        "20261121-120000_000900.mp4",
        "20261121-120001_000901.mp4",
        init_only.name.as_str(),
    ] {
        assert!(
            corrupt.iter().any(|c| c == n),
            "{n} not in corrupt/: {corrupt:?}"
        );
    }
    let left = names(&dir);
    assert!(
        !left
            .iter()
            .any(|n| n.contains("000902") || n.ends_with(".tmp")),
        "{left:?}"
    );
    // Every segment left in the loop folder has metadata that agrees with it.
    for s in segments(&dir) {
        let m = s.meta();
        assert_eq!(meta_i64(m, "bytes"), Some(s.bytes() as i64), "{}", s.name);
    }

    // Idempotent.
    let again = text(&recover(&dir).stdout);
    assert!(
        again.contains(
            "0 repaired, 0 moved to corrupt/, 0 orphan metadata fixed, 0 temp file(s) removed"
        ),
        "second run: {again}"
    );
}

/// Copy `n` segments (with metadata) under new sequence numbers; `damaged` of them lose
/// their metadata and the last few hundred bytes.
fn fill(dir: &Path, template: &Segment, n: usize, damaged: usize) -> Vec<PathBuf> {
    let bytes = fs::read(&template.path).expect("read");
    let meta = template.meta().clone();
    let mut out = Vec::new();
    for i in 0..n {
        let seq = 10_000 + i as u64;
        let name = format!(
            "20261121-{:02}{:02}{:02}_{seq:06}.mp4",
            10 + i / 3600,
            (i / 60) % 60,
            i % 60
        );
        let path = dir.join(&name);
        fs::write(&path, &bytes).expect("write");
        let mut m = meta.clone();
        m["name"] = Value::from(name.clone());
        m["sequence"] = Value::from(seq);
        if i < damaged {
            fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(bytes.len() as u64 - 300))
                .expect("truncate");
        } else {
            fs::write(
                path.with_extension("json"),
                serde_json::to_vec(&m).expect("json"),
            )
            .expect("write json");
        }
        out.push(path);
    }
    out
}

#[test]
fn a_thousand_segments() {
    let tmp = tmpdir("recover1000");
    let src = tmp.path().join("src");
    record_file(&input("headers_once.h264"), &src, 1, &[]);
    let template = segments(&src).into_iter().next().expect("a segment");
    let dir = tmp.path().join("footage");
    fs::create_dir_all(&dir).expect("mkdir");
    let paths = fill(&dir, &template, 1000, 10);

    let t = Instant::now();
    let out = recover(&dir);
    let first = t.elapsed();
    let report = text(&out.stdout);
    assert!(
        report.contains("1000 segment(s)") && report.contains("10 repaired"),
        "{report}"
    );
    for p in &paths[..10] {
        assert_eq!(probe_errors(p), "", "{}", p.display());
        let m = read_meta(p);
        assert_eq!(
            meta_i64(&m, "bytes"),
            Some(fs::metadata(p).expect("stat").len() as i64)
        );
    }
    let t = Instant::now();
    let again = text(&recover(&dir).stdout);
    let second = t.elapsed();
    assert!(
        again.contains("1000 segment(s)") && again.contains("0 repaired"),
        "{again}"
    );
    // Timings are reported, not asserted (see benches/recovery.sh for the figure).
    eprintln!(
        "recover: 1000 segments with 10 to repair: {:.0} ms (process); clean: {:.0} ms; {}",
        first.as_secs_f64() * 1000.0,
        second.as_secs_f64() * 1000.0,
        again.lines().next().unwrap_or("")
    );
}

#[test]
fn run_recovers_before_recording_and_the_sequence_continues() {
    let tmp = tmpdir("recover-run");
    let dir = tmp.path().join("footage");
    record_file(&input("headers_once.h264"), &dir, 2, &[]);
    let before = segments(&dir);
    let last = before.last().expect("segments");
    let frames = mp4_fragments(&last.path).expect("fragments");
    let data = fs::read(&last.path).expect("read");
    let top = mp4_top_boxes(&data).expect("boxes");
    let mdat = top
        .iter()
        .filter(|b| b.0 == "mdat")
        .nth(1)
        .expect("two fragments");
    cut(&last.path, (mdat.1 + mdat.2 - 10) as u64);
    let out = record_file(&input("headers_once.h264"), &dir, 2, &[]);
    let err = text(&out.stderr);
    assert!(err.contains("1 repaired"), "{err}");
    let after = segments(&dir);
    let repaired = after
        .iter()
        .find(|s| s.name == last.name)
        .expect("still there");
    assert_eq!(
        meta_i64(repaired.meta(), "frames"),
        Some(i64::from(frames.samples_per_fragment[0]))
    );
    let max_before = before.iter().map(|s| s.seq).max().unwrap_or(0);
    let new: Vec<&Segment> = after.iter().filter(|s| s.seq > max_before).collect();
    assert_eq!(new.len(), before.len(), "{}", listing(&dir));
}
