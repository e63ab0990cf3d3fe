//! Inputs that are not what they claim: garbage fails cleanly with a message naming the
//! input and the byte offset; a truncated stream keeps every frame before the cut.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Output, Stdio};

use common::*;

fn run_source(source: &str, dir: &Path, stdin_data: Option<Vec<u8>>) -> (String, Output) {
    let mut cmd = dashcam();
    cmd.args(["run", "--source", source, "--dir"])
        .arg(dir)
        .args(["--segment-seconds", "4", "--fast"]);
    if stdin_data.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let what = describe(&cmd);
    let mut proc = Proc::spawn(cmd);
    let feeder = stdin_data.map(|data| {
        let mut stdin = proc.child.stdin.take().expect("stdin");
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&data);
        })
    });
    let out = proc.finish(scaled(120.0));
    if let Some(f) = feeder {
        f.join().expect("feeder");
    }
    (what, out)
}

/// Non-zero exit, a message naming `name` (when given) and a byte offset, no panic.
fn assert_rejected(what: &str, out: &Output, name: Option<&str>) {
    let err = text(&out.stderr);
    assert_no_panic(what, out);
    assert!(
        !out.status.success(),
        "{what}: exit status 0 for garbage input; stderr:\n{err}"
    );
    if let Some(name) = name {
        assert!(
            err.contains(name),
            "{what}: the error does not name the input {name:?}:\n{err}"
        );
    }
    assert!(
        err.to_lowercase().contains("offset"),
        "{what}: the error does not give a byte offset:\n{err}"
    );
}

#[test]
fn garbage_bin_is_rejected_with_offset() {
    let input = input("garbage.bin");
    let tmp = tmpdir("garbage");
    let (what, out) = run_source(&format!("file:{}", input.display()), tmp.path(), None);
    assert_rejected(&what, &out, Some("garbage.bin"));
}

/// The same bytes behind the extensions that select each parser.
#[test]
fn garbage_named_h264_or_mjpeg_is_rejected_with_offset() {
    let garbage = fs::read(input("garbage.bin")).expect("read garbage");
    for name in ["garbage.h264", "garbage.mjpeg"] {
        let tmp = tmpdir("garbage-ext");
        let path = tmp.path().join(name);
        fs::write(&path, &garbage).expect("write");
        let out_dir = tmp.path().join("out");
        fs::create_dir(&out_dir).expect("mkdir");
        let (what, out) = run_source(&format!("file:{}", path.display()), &out_dir, None);
        assert_rejected(&what, &out, Some(name));
    }
}

#[test]
fn garbage_on_stdin_is_rejected_with_offset() {
    let garbage = fs::read(input("garbage.bin")).expect("read garbage");
    let tmp = tmpdir("garbage-stdin");
    let (what, out) = run_source("-", tmp.path(), Some(garbage));
    assert_rejected(&what, &out, None);
}

/// truncated.h264 is headers_once.h264 cut inside a slice NAL unit. ffmpeg decodes it to
/// the complete frames before the cut plus one last frame concealed from the partial slice.
/// What must hold: no panic; every segment but the last decodes cleanly; the segments
/// decode to exactly the complete frames (they equal the untruncated input's frames), and
/// at most the one partial frame may be added at the end, identical to ffmpeg's own
/// decoding of it. A non-zero exit is allowed only with a message giving the byte offset.
#[test]
fn truncated_keeps_all_complete_frames() {
    let input_path = input("truncated.h264");
    let full = framemd5(&input("headers_once.h264"));
    let trunc = framemd5(&input_path);
    let complete = common_prefix(&trunc, &full);
    assert!(
        complete + 1 >= trunc.len() && complete > 0,
        "test input: ffmpeg decodes truncated.h264 to {} frames, {complete} of them complete",
        trunc.len()
    );

    let tmp = tmpdir("truncated");
    let (what, out) = run_source(&format!("file:{}", input_path.display()), tmp.path(), None);
    let err = text(&out.stderr);
    assert_no_panic(&what, &out);
    if !out.status.success() {
        assert!(
            err.to_lowercase().contains("offset"),
            "{what}: failed ({}) without a byte offset:\n{err}",
            out.status
        );
    }
    let segs = segments(tmp.path());
    let mut p = Vec::new();
    if segs.len() < 2 {
        p.push(format!("{} segment(s), expected at least 2", segs.len()));
    }
    let exp = Expect {
        codec: "h264",
        width: 640,
        height: 360,
        fps: 30.0,
        gop_frames: 30,
    };
    for (i, s) in segs.iter().enumerate() {
        if i + 1 < segs.len() {
            p.extend(check_segment(s, &exp, true));
        } else if s.meta.is_none() {
            p.push(format!("{}: the last segment has no metadata", s.name));
        }
    }
    let paths: Vec<&Path> = segs.iter().map(|s| s.path.as_path()).collect();
    let got = framemd5_all(&paths);
    // The partial frame, if kept, is concealed by the decoder; ffmpeg's frame-threaded
    // concealment of a broken picture is not deterministic from run to run, so only the
    // complete frames are compared bit for bit.
    let ok =
        got.len() >= complete && got.len() <= trunc.len() && got[..complete] == trunc[..complete];
    if !ok {
        p.push(format!(
            "segments decode to {} frames (first difference at {}); expected the {complete} complete frames, optionally followed by ffmpeg's concealed partial frame ({} in all)",
            got.len(),
            common_prefix(&got, &trunc),
            trunc.len()
        ));
    }
    if got.len() == complete {
        // The partial frame was left out: then the last segment must decode cleanly too.
        if let Some(last) = segs.last() {
            let e = decode_errors(&last.path);
            if !e.is_empty() {
                p.push(format!(
                    "{}: ffmpeg -v error printed:\n{}",
                    last.name,
                    first_lines(&e, 8)
                ));
            }
        }
    }
    eprintln!(
        "truncated: ffmpeg decodes {} frames ({complete} complete); segments hold {}",
        trunc.len(),
        got.len()
    );
    assert_no_problems("truncated.h264", &p, tmp.path(), &err);
}

/// A missing input file: non-zero exit, the path named, no panic.
#[test]
fn missing_input_file_fails_cleanly() {
    let tmp = tmpdir("missing");
    let path = tmp.path().join("no-such-file.h264");
    let (what, out) = run_source(&format!("file:{}", path.display()), tmp.path(), None);
    assert_no_panic(&what, &out);
    assert!(!out.status.success(), "{what}: exit status 0");
    assert!(
        text(&out.stderr).contains("no-such-file.h264"),
        "{what}: the error does not name the file:\n{}",
        text(&out.stderr)
    );
}
