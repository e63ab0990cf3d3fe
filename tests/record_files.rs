//! Recording whole files (`--fast`): every segment is a clean, independently decodable file
//! that starts with a keyframe, the segments together decode to exactly the input's frames,
//! the cuts fall where the spec says, and the metadata agrees with what ffprobe sees.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;

const HEADERS_ONCE: Expect = Expect {
    codec: "h264",
    width: 640,
    height: 360,
    fps: 30.0,
    gop_frames: 30,
};

/// Record `name` with `--fast` and check everything about the result. Returns the segments.
fn record_and_check(
    name: &str,
    segment_seconds: u32,
    extra: &[&str],
    exp: &Expect,
    min_segments: usize,
) {
    let input = input(name);
    let tmp = tmpdir(name);
    let out = record_file(&input, tmp.path(), segment_seconds, extra);
    let stderr = text(&out.stderr);
    let segs = segments(tmp.path());
    let mut p = Vec::new();

    if segs.len() < min_segments {
        p.push(format!(
            "{} segment(s), expected at least {min_segments}",
            segs.len()
        ));
    }
    for s in &segs {
        p.extend(check_segment(s, exp, true));
    }
    p.extend(check_sequence(&segs, exp, f64::from(segment_seconds), true));

    // Why each segment closed: by duration, except the last at the end of the input.
    for (i, s) in segs.iter().enumerate() {
        let Some(m) = s.meta.as_ref() else { continue };
        let want = if i + 1 == segs.len() {
            "end_of_input"
        } else {
            "duration"
        };
        if meta_str(m, "close_reason") != Some(want) {
            p.push(format!(
                "{}: close_reason {:?}, expected {want:?}",
                s.name,
                m.get("close_reason")
            ));
        }
        if i + 1 < segs.len() && m.get("partial").and_then(|v| v.as_bool()) != Some(false) {
            p.push(format!(
                "{}: a segment closed by duration has partial {:?}",
                s.name,
                m.get("partial")
            ));
        }
        if m.get("dropped_frames").and_then(|v| v.as_u64()) != Some(0) {
            p.push(format!(
                "{}: dropped_frames {:?} while reading a file",
                s.name,
                m.get("dropped_frames")
            ));
        }
    }

    // Bit-identical frames: the segments in order decode to exactly the input's frames.
    let want = framemd5(&input);
    let paths: Vec<&Path> = segs.iter().map(|s| s.path.as_path()).collect();
    let got = framemd5_all(&paths);
    if let Some(d) = compare_hashes(&format!("{name} segments vs input"), &got, &want) {
        p.push(d);
    }

    // RUST_LOG=info: one line per closed segment naming it.
    for s in &segs {
        let n = stderr
            .lines()
            .filter(|l| l.contains("INFO") && l.contains(&s.name))
            .count();
        if n != 1 {
            p.push(format!(
                "{}: {n} log lines name it at RUST_LOG=info, expected 1",
                s.name
            ));
        }
    }

    assert_no_problems(name, &p, tmp.path(), &stderr);
}

#[test]
fn pi1080_repeated_headers_no_bframes() {
    // IDR every 2 s and a 5 s target: segments close at 6 s, 12 s, 18 s; 2 s remain.
    record_and_check(
        "pi1080.h264",
        5,
        &[],
        &Expect {
            codec: "h264",
            width: 1920,
            height: 1080,
            fps: 30.0,
            gop_frames: 60,
        },
        4,
    );
}

#[test]
fn headers_once() {
    record_and_check("headers_once.h264", 4, &[], &HEADERS_ONCE, 3);
}

#[test]
fn bframes_main_profile() {
    record_and_check("bframes.h264", 4, &[], &HEADERS_ONCE, 3);
}

#[test]
fn mjpeg_422() {
    // A raw MJPEG stream carries no timing: --fps gives it.
    record_and_check(
        "mjpeg422.mjpeg",
        4,
        &["--fps", "30"],
        &Expect {
            codec: "mjpeg",
            width: 640,
            height: 360,
            fps: 30.0,
            gop_frames: 1,
        },
        3,
    );
}

/// `cat IN | dashcam run --source - --fast` gives the same segments as `--source file:IN`:
/// same count, same frames in each, same metadata frame counts.
fn stdin_equals_file(name: &str, extra: &[&str]) {
    let input = input(name);
    let a = tmpdir(&format!("{name}-file"));
    let b = tmpdir(&format!("{name}-stdin"));
    record_file(&input, a.path(), 4, extra);

    let mut cmd = dashcam();
    cmd.args(["run", "--source", "-", "--dir"])
        .arg(b.path())
        .args(["--segment-seconds", "4", "--fast"])
        .args(extra)
        .stdin(Stdio::piped());
    let what = describe(&cmd);
    let mut proc = Proc::spawn(cmd);
    let mut stdin = proc.child.stdin.take().expect("stdin");
    let bytes = std::fs::read(&input).expect("read input");
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        // Like `cat`: a pipe, written in pieces; an early exit of dashcam is not our error.
        for chunk in bytes.chunks(65536) {
            if stdin.write_all(chunk).is_err() {
                break;
            }
        }
    });
    let out = proc.finish(scaled(300.0));
    feeder.join().expect("feeder");
    assert_no_panic(&what, &out);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        text(&out.stderr)
    );

    let sa = segments(a.path());
    let sb = segments(b.path());
    let mut p = Vec::new();
    if sa.len() != sb.len() {
        p.push(format!(
            "file: {} segments, stdin: {} segments",
            sa.len(),
            sb.len()
        ));
    }
    for (x, y) in sa.iter().zip(&sb) {
        if let Some(d) = compare_hashes(
            &format!("{} (stdin) vs {} (file)", y.name, x.name),
            &framemd5(&y.path),
            &framemd5(&x.path),
        ) {
            p.push(d);
        }
        let fx = x.meta.as_ref().and_then(|m| m.get("frames").cloned());
        let fy = y.meta.as_ref().and_then(|m| m.get("frames").cloned());
        if fx != fy || fx.is_none() {
            p.push(format!(
                "{}: metadata frames {fy:?}, file recording has {fx:?}",
                y.name
            ));
        }
        let cx = x.meta.as_ref().and_then(|m| m.get("close_reason").cloned());
        let cy = y.meta.as_ref().and_then(|m| m.get("close_reason").cloned());
        if cx != cy {
            p.push(format!(
                "{}: close_reason {cy:?}, file recording has {cx:?}",
                y.name
            ));
        }
    }
    assert_no_problems(
        &format!("{name} via stdin"),
        &p,
        b.path(),
        &text(&out.stderr),
    );
}

#[test]
fn stdin_h264_equals_file() {
    stdin_equals_file("headers_once.h264", &[]);
}

#[test]
fn stdin_bframes_equals_file() {
    stdin_equals_file("bframes.h264", &[]);
}

#[test]
fn stdin_mjpeg_equals_file() {
    stdin_equals_file("mjpeg422.mjpeg", &["--fps", "30"]);
}

/// Sequence numbers keep increasing when dashcam is started again on the same directory,
/// and a new run never touches the files of an earlier one.
#[test]
fn sequence_continues_across_restarts() {
    let input = input("headers_once.h264");
    let tmp = tmpdir("restart");
    record_file(&input, tmp.path(), 4, &[]);
    let first = segments(tmp.path());
    assert!(!first.is_empty(), "first run wrote no segment");
    let sizes: Vec<u64> = first.iter().map(Segment::bytes).collect();
    record_file(&input, tmp.path(), 4, &[]);
    let all = segments(tmp.path());
    let max_first = first.iter().map(|s| s.seq).max().unwrap();
    let new: Vec<&Segment> = all
        .iter()
        .filter(|s| !first.iter().any(|f| f.name == s.name))
        .collect();
    assert_eq!(
        new.len(),
        first.len(),
        "second run should add as many segments as the first:\n  {}",
        listing(tmp.path())
    );
    for s in &new {
        assert!(
            s.seq > max_first,
            "{}: sequence {} not above the first run's {max_first}",
            s.name,
            s.seq
        );
    }
    for (f, size) in first.iter().zip(sizes) {
        assert_eq!(f.bytes(), size, "{} changed during the second run", f.name);
    }
}

/// A change of resolution mid-stream starts a new segment (close_reason "format_change"),
/// each segment holding one format, every frame kept bit-identical.
#[test]
fn resolution_change_starts_new_segment() {
    let input = input("res_change.h264");
    let tmp = tmpdir("res-change");
    let out = record_file(&input, tmp.path(), 60, &[]);
    let segs = segments(tmp.path());
    let mut p = Vec::new();
    let parts = [(640, 360, "format_change"), (320, 240, "end_of_input")];
    if segs.len() != parts.len() {
        p.push(format!("{} segment(s), expected 2", segs.len()));
    }
    for (s, (w, h, reason)) in segs.iter().zip(parts) {
        let exp = Expect {
            codec: "h264",
            width: w,
            height: h,
            fps: 30.0,
            gop_frames: 30,
        };
        p.extend(check_segment(s, &exp, true));
        if packet_count(&s.path) != 90 {
            p.push(format!(
                "{}: {} frames, expected 90",
                s.name,
                packet_count(&s.path)
            ));
        }
        if let Some(m) = s.meta.as_ref() {
            if meta_str(m, "close_reason") != Some(reason) {
                p.push(format!(
                    "{}: close_reason {:?}, expected {reason:?}",
                    s.name,
                    m.get("close_reason")
                ));
            }
        }
    }
    let want = framemd5_native_size(&input);
    let got: Vec<String> = segs
        .iter()
        .flat_map(|s| framemd5_native_size(&s.path))
        .collect();
    if let Some(d) = compare_hashes("segments vs input", &got, &want) {
        p.push(d);
    }
    assert_no_problems("res_change.h264", &p, tmp.path(), &text(&out.stderr));
}

/// The other extensions the spec names select the same parsers: `.264` and `.mjpg`.
#[test]
fn dot_264_and_mjpg_extensions() {
    for (src, name, extra) in [
        ("headers_once.h264", "clip.264", &[][..]),
        ("mjpeg422.mjpeg", "clip.mjpg", &["--fps", "30"][..]),
    ] {
        let input = input(src);
        let tmp = tmpdir("ext");
        let path = tmp.path().join(name);
        std::fs::copy(&input, &path).expect("copy input");
        let out_dir = tmp.path().join("out");
        std::fs::create_dir(&out_dir).expect("mkdir");
        let out = record_file(&path, &out_dir, 4, extra);
        let segs = segments(&out_dir);
        let paths: Vec<&Path> = segs.iter().map(|s| s.path.as_path()).collect();
        let mut p = Vec::new();
        if let Some(d) = compare_hashes(name, &framemd5_all(&paths), &framemd5(&input)) {
            p.push(d);
        }
        assert_no_problems(name, &p, &out_dir, &text(&out.stderr));
    }
}
