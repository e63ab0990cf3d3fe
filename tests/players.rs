//! Players other than ffmpeg: VLC (libvlc 3, through Debian's `python3-vlc`) and GStreamer
//! (`gst-launch-1.0`, `gst-discoverer-1.0`), both installed by scripts/test.sh.
//!
//! - A segment cut by a power loss (SIGKILL mid-recording) shows its real length in VLC
//!   before any recovery: its `moov` holds no `mehd` saying 0 until the segment is finished.
//!   GStreamer cannot judge this: for any unfinished fragmented MP4 (ffmpeg's own too) it
//!   reports the first fragment's length.
//! - What dashcam adds to its files for recovery (the `prft` and stream-clock boxes of an
//!   MP4, the start chunk of an AVI) is ignored by every player: GStreamer decodes every
//!   frame without a warning and reports the same length as ffprobe; VLC reports the same
//!   length and decodes as many pictures as from ffmpeg's remux of the same frames.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Length (ms) VLC's demuxer gives `path`, and the pictures it decodes playing it to the end
/// at `rate` times real time (late pictures are not dropped; VLC plays an AVI without an
/// index reliably only at 1x).
fn vlc(path: &Path, rate: u32) -> (i64, u64) {
    const SCRIPT: &str = r#"
import sys, time, vlc
inst = vlc.Instance('--vout=dummy', '--aout=dummy', '--quiet', '--no-osd',
                    '--rate=' + sys.argv[2], '--no-drop-late-frames', '--no-skip-frames')
m = inst.media_new_path(sys.argv[1])
m.parse_with_options(vlc.MediaParseFlag.local, 10000)
t = time.time()
while m.get_parsed_status() == 0 and time.time() - t < 20:
    time.sleep(0.02)
length = m.get_duration()
mp = inst.media_player_new()
mp.set_media(m)
mp.play()
t = time.time()
while mp.get_state() not in (vlc.State.Ended, vlc.State.Error) and time.time() - t < 60:
    time.sleep(0.02)
st = vlc.MediaStats()
m.get_stats(st)
print(length, mp.get_state(), st.decoded_video)
"#;
    // Debian's python3 is where python3-vlc installs (a pyenv python would not see it).
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(path)
        .arg(rate.to_string())
        .output()
        .expect("python3");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "libvlc through python3-vlc (scripts/test.sh installs it): {}",
        text(&out.stderr)
    );
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(
        words.get(1),
        Some(&"State.Ended"),
        "VLC playing {}: {stdout}",
        path.display()
    );
    (
        words[0].parse().expect("a length"),
        words[2].parse().expect("a count"),
    )
}

/// Frames GStreamer decodes from `path` (buffers reaching the sink after `decodebin`), and
/// its warnings and errors.
fn gst_frames(path: &Path) -> (usize, Vec<String>) {
    let out = Command::new("gst-launch-1.0")
        .arg("filesrc")
        .arg(format!("location={}", path.display()))
        .args([
            "!",
            "decodebin",
            "!",
            "fakesink",
            "sync=false",
            "silent=false",
            "-v",
        ])
        .output()
        .expect("gst-launch-1.0 (scripts/test.sh installs gstreamer1.0-tools)");
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "gst-launch-1.0 {}: {all}",
        path.display()
    );
    let frames = all
        .lines()
        .filter(|l| l.contains("last-message = chain"))
        .count();
    let problems = all
        .lines()
        .filter(|l| l.starts_with("WARNING") || l.starts_with("ERROR"))
        .map(str::to_string)
        .collect();
    (frames, problems)
}

/// The length `gst-discoverer-1.0` reports, in seconds.
fn gst_duration(path: &Path) -> f64 {
    let out = Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .expect("gst-discoverer-1.0 (scripts/test.sh installs gstreamer1.0-plugins-base-apps)");
    let stdout = text(&out.stdout);
    let d = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Duration: "))
        .unwrap_or_else(|| panic!("no duration from gst-discoverer: {stdout}"));
    let mut secs = 0.0;
    for part in d.split(':') {
        secs = secs * 60.0 + part.parse::<f64>().expect("h:mm:ss.nnn");
    }
    secs
}

/// Record `name` in real time and SIGKILL the recorder once `min_bytes` are on disk; the
/// cut segment (a copy of it, before any recovery).
fn cut_recording(tmp: &TestDir, name: &str, min_bytes: u64) -> PathBuf {
    let dir = tmp.path().join(name);
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input(name).display()))
        .arg("--dir")
        .arg(&dir)
        .args(["--segment-seconds", "60"]);
    let rec = Proc::spawn(cmd);
    assert!(
        wait_until(scaled(60.0), || dir.is_dir()
            && segments(&dir).iter().any(|s| s.bytes() >= min_bytes)),
        "{name}: nothing recorded: {}",
        rec.stderr_text()
    );
    rec.kill9();
    let segs = segments(&dir);
    assert_eq!(segs.len(), 1, "{}", listing(&dir));
    assert!(
        segs[0].meta.is_none(),
        "the cut segment has no metadata yet"
    );
    let copy = tmp.path().join(format!("cut-{}", segs[0].name));
    std::fs::copy(&segs[0].path, &copy).expect("copy");
    copy
}

#[test]
fn a_cut_segment_shows_its_real_length_in_vlc() {
    require_tools();
    let tmp = tmpdir("players-cut");
    // About 3 s of headers_once.h264 (640x360, ~100 KiB per second).
    let cut = cut_recording(&tmp, "headers_once.h264", 300_000);
    let frames = packet_count(&cut);
    assert!(frames >= 60, "{frames} frames before the cut");
    let real_ms = (frames as f64 * 1000.0 / 30.0).round() as i64;
    let (length_ms, decoded) = vlc(&cut, 30);
    assert!(
        (length_ms - real_ms).abs() <= 50,
        "VLC shows {length_ms} ms for a cut segment of {frames} frames ({real_ms} ms)"
    );
    assert!(decoded > 0);
    let data = std::fs::read(&cut).expect("read");
    let moov = mp4_top_boxes(&data)
        .expect("boxes")
        .into_iter()
        .find(|b| b.0 == "moov")
        .expect("moov");
    let moov = &data[moov.1..moov.1 + moov.2];
    assert!(
        !moov.windows(4).any(|w| w == b"mehd"),
        "an unfinished segment carries no mehd"
    );

    // Once recovered (finished: mehd, mfra) every player agrees on its length.
    let dir = tmp.path().join("recovered");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let name = cut
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("cut-"))
        .expect("name");
    let seg = dir.join(name);
    std::fs::copy(&cut, &seg).expect("copy");
    let mut cmd = dashcam();
    cmd.arg("recover").arg("--dir").arg(&dir);
    let out = run_to_end(cmd, scaled(60.0));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let d = format_duration(&seg).expect("duration");
    let (length_ms, _) = vlc(&seg, 30);
    assert!(
        (length_ms as f64 / 1000.0 - d).abs() < 0.05,
        "VLC {length_ms} ms, ffprobe {d} s"
    );
    assert!(
        (gst_duration(&seg) - d).abs() < 0.05,
        "GStreamer vs ffprobe {d} s"
    );
}

#[test]
fn players_ignore_what_dashcam_adds_for_recovery() {
    require_tools();
    let tmp = tmpdir("players-ignore");
    let mut files = Vec::new();
    for (name, ext) in [("headers_once.h264", "mp4"), ("mjpeg422.mjpeg", "avi")] {
        let dir = tmp.path().join(ext);
        record_file(&input(name), &dir, 4, &[]);
        let segs = segments(&dir);
        assert!(segs.len() >= 2, "{}", listing(&dir));
        files.extend(segs.iter().map(|s| (s.path.clone(), true)));
    }
    files.push((cut_recording(&tmp, "mjpeg422.mjpeg", 200_000), false));
    for (path, finished) in &files {
        let what = path.display().to_string();
        assert_eq!(probe_errors(path), "", "{what}");
        assert_eq!(decode_errors(path), "", "{what}");
        let frames = packet_count(path) as usize;
        let (decoded, problems) = gst_frames(path);
        assert_eq!(decoded, frames, "GStreamer frames of {what}");
        assert!(problems.is_empty(), "GStreamer on {what}: {problems:?}");
        // ffmpeg's remux of the same frames carries nothing of dashcam's.
        let ext = path.extension().and_then(|e| e.to_str()).expect("ext");
        let remux = tmp.path().join(format!("remux.{ext}"));
        let st = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(path)
            .args(["-c", "copy"])
            .arg(&remux)
            .status()
            .expect("ffmpeg");
        assert!(st.success());
        let rate = if *finished { 30 } else { 1 };
        let (length_ms, vlc_decoded) = vlc(path, rate);
        let (_, remux_decoded) = vlc(&remux, rate);
        assert_eq!(
            vlc_decoded, remux_decoded,
            "VLC pictures of {what} and of its remux"
        );
        if *finished {
            let d = format_duration(path).expect("duration");
            assert!(
                (length_ms as f64 / 1000.0 - d).abs() < 0.05,
                "VLC {length_ms} ms for {what} ({d} s)"
            );
            assert!(
                (gst_duration(path) - d).abs() < 0.05,
                "GStreamer length of {what} ({d} s)"
            );
        }
    }
}
