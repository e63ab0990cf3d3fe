//! Stills while recording a real input: from MJPEG, byte for byte the input's JPEGs at
//! the chosen stream times (ffmpeg extracts the input's images); from H.264, JPEGs of
//! the requested size that decode cleanly and are close to ffmpeg's own decode of the
//! same frame (PSNR > 30 dB, in RGB); each announced by a `still_saved` event.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;

/// Record `input` in real time with `[stills]` as given; returns the still_saved events.
fn record_with_stills(
    tag: &str,
    input_name: &str,
    stills: &str,
    extra: &[&str],
) -> (TestDir, Vec<Value>) {
    let tmp = tmpdir(tag);
    let log = tmp.path().join("events.jsonl");
    let config = tmp.path().join("dashcam.toml");
    std::fs::write(
        &config,
        format!(
            "[stills]\n{stills}\n[[hooks]]\non = [\"still_saved\"]\ncommand = [\"/bin/sh\", \"-c\", \"cat >> '{}'\"]\n",
            log.display()
        ),
    )
    .expect("config");
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input(input_name).display()))
        .arg("--dir")
        .arg(tmp.path().join("footage"))
        .arg("--config")
        .arg(&config)
        .args(extra);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(120.0));
    assert_no_panic(&what, &out);
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    let events = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("event json"))
        .collect();
    (tmp, events)
}

fn still_path(e: &Value) -> PathBuf {
    PathBuf::from(e["path"].as_str().expect("path"))
}

fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error"])
        .args(args)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stderr).trim(),
        "",
        "ffmpeg {args:?} reported errors"
    );
    out.stdout
}

#[test]
fn mjpeg_stills_are_the_inputs_own_jpegs() {
    require_tools();
    // 50 frames a second (the input carries no timing): a still every 50 frames.
    let (tmp, events) = record_with_stills(
        "stills-mjpeg",
        "mjpeg422.mjpeg",
        "interval = 1",
        &["--fps", "50"],
    );
    let frames_dir = tmp.path().join("input-frames");
    std::fs::create_dir(&frames_dir).expect("frames dir");
    let pattern = frames_dir.join("%04d.jpg");
    ffmpeg(&[
        "-f",
        "mjpeg",
        "-i",
        input("mjpeg422.mjpeg").to_str().expect("utf-8"),
        "-c:v",
        "copy",
        "-f",
        "image2",
        "-start_number",
        "0",
        pattern.to_str().expect("utf-8"),
    ]);
    let indices: Vec<i64> = events
        .iter()
        .map(|e| e["pts"].as_i64().expect("pts") * 50 / 90_000)
        .collect();
    assert_eq!(
        indices,
        (0..6).map(|i| i * 50).collect::<Vec<_>>(),
        "{events:#?}"
    );
    for (e, n) in events.iter().zip(&indices) {
        assert_eq!(e["event"], "still_saved");
        assert_eq!(e["source"], "camera");
        assert_eq!(
            (e["width"].as_u64(), e["height"].as_u64()),
            (Some(640), Some(360))
        );
        let still = std::fs::read(still_path(e)).expect("still");
        let want = std::fs::read(frames_dir.join(format!("{n:04}.jpg"))).expect("input frame");
        assert!(still == want, "still of frame {n} is not the input's JPEG");
        assert_eq!(e["bytes"].as_u64(), Some(still.len() as u64));
        let name = still_path(e)
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(name.ends_with(".jpg") && name.len() == 23, "{name}");
    }
    // Written atomically: no temp file left beside them.
    let dir = tmp.path().join("footage").join("stills");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("stills dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
}

#[test]
fn h264_stills_decode_at_the_asked_size_and_match_ffmpegs_decode() {
    require_tools();
    let (_tmp, events) = record_with_stills(
        "stills-h264",
        "headers_once.h264",
        "interval = 1\nwidth = 320\nmax_cpu_percent = 100",
        &[],
    );
    // headers_once has a keyframe every 30 frames (1 s): a still at most of them.
    assert!(events.len() >= 5, "{events:#?}");
    let input_path = input("headers_once.h264");
    for e in &events {
        assert_eq!(e["source"], "decoded");
        let pts = e["pts"].as_i64().expect("pts");
        assert_eq!(pts % 90_000, 0, "a still of a keyframe: {e}");
        let n = pts / 3000;
        let path = still_path(e);
        let info = stream_info(&path);
        assert_eq!((info.width, info.height), (320, 180), "{}", path.display());
        assert_eq!(decode_errors(&path), "", "{}", path.display());
        // ffmpeg's psnr filter, in Y'CbCr: the still brought to the video's (limited)
        // range, the reference decoded and reduced (area) by ffmpeg.
        let lavfi = format!(
            "[0:v]scale=in_range=pc:out_range=tv,format=yuv420p[a];[1:v]select=eq(n\\,{n}),scale=320:180:flags=area,format=yuv420p[b];[a][b]psnr"
        );
        let out = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-i",
                path.to_str().expect("utf-8"),
                "-i",
                input_path.to_str().expect("utf-8"),
            ])
            .args(["-lavfi", &lavfi, "-frames:v", "1", "-f", "null", "-"])
            .output()
            .expect("ffmpeg");
        let log = text(&out.stderr);
        let field = |k: &str| -> f64 {
            let at = log
                .rfind(&format!("{k}:"))
                .unwrap_or_else(|| panic!("no PSNR in {log}"));
            log[at + k.len() + 1..]
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("bad PSNR in {log}"))
        };
        let (db, y) = (field("average"), field("y"));
        assert!(
            db > 30.0 && y > 30.0,
            "frame {n}: PSNR {db:.1} dB (Y {y:.1})"
        );
        eprintln!("still of frame {n}: PSNR {db:.1} dB (Y {y:.1}) against ffmpeg's decode");
    }
}
