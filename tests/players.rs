//! Players other than ffmpeg: VLC (libvlc 3, through Debian's `python3-vlc`) and GStreamer
//! (`gst-launch-1.0`, `gst-discoverer-1.0`), both installed by scripts/test.sh.
//!
//! - A segment cut by a power loss (SIGKILL mid-recording) shows its real length in VLC
//!   before any recovery: its `moov` holds no `mehd` saying 0 until the segment is finished.
//!   GStreamer cannot judge this: for any unfinished fragmented MP4 (ffmpeg's own too) it
//!   reports the first fragment's length.
//! - What dashcam adds to its files for recovery (the `prft` and stream-clock boxes of an
//!   MP4, the start chunk of an AVI) is ignored by every player: GStreamer decodes every
//!   frame without a warning and reports the same length as ffprobe; VLC's demuxer finds the
//!   same video track as in ffmpeg's remux of the same frames and the same length as
//!   ffprobe, and plays the file to its end. (VLC's count of decoded pictures is not a
//!   judge: it depends on the machine's load.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// What VLC makes of a file: its demuxer's video track and length, after playing it to the
/// end (which must end, not fail).
#[derive(Debug, PartialEq)]
struct VlcView {
    /// fourcc of the video track (`h264`, `MJPG`), picture size, length in ms.
    codec: String,
    width: u32,
    height: u32,
    length_ms: i64,
}

fn vlc(path: &Path) -> VlcView {
    const SCRIPT: &str = r#"
import sys, time, ctypes, vlc
inst = vlc.Instance('--vout=dummy', '--aout=dummy', '--quiet', '--no-osd', '--rate=30')
m = inst.media_new_path(sys.argv[1])
m.parse_with_options(vlc.MediaParseFlag.local, 10000)
t = time.time()
while m.get_parsed_status() == 0 and time.time() - t < 20:
    time.sleep(0.02)
video = ['none', 0, 0]
for tr in m.tracks_get() or []:
    if tr.type == vlc.TrackType.video:
        # libvlc 3 keeps a track's details in a union: the binding's first pointer.
        v = ctypes.cast(tr.audio, ctypes.POINTER(vlc.VideoTrack)).contents
        video = [tr.codec.to_bytes(4, 'little').decode(), v.width, v.height]
length = m.get_duration()
mp = inst.media_player_new()
mp.set_media(m)
mp.play()
t = time.time()
while mp.get_state() not in (vlc.State.Ended, vlc.State.Error) and time.time() - t < 60:
    time.sleep(0.02)
print(video[0], video[1], video[2], length, mp.get_state())
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
        .output()
        .expect("python3");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "libvlc through python3-vlc (scripts/test.sh installs it): {}",
        text(&out.stderr)
    );
    let w: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(w.len(), 5, "VLC on {}: {stdout}", path.display());
    assert_eq!(w[4], "State.Ended", "VLC playing {}", path.display());
    VlcView {
        codec: w[0].to_string(),
        width: w[1].parse().expect("width"),
        height: w[2].parse().expect("height"),
        length_ms: w[3].parse().expect("length"),
    }
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
    let view = vlc(&cut);
    assert!(
        (view.length_ms - real_ms).abs() <= 50,
        "VLC shows {view:?} for a cut segment of {frames} frames ({real_ms} ms)"
    );
    assert_eq!(
        (view.codec.as_str(), view.width, view.height),
        ("h264", 640, 360)
    );
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
    let length_ms = vlc(&seg).length_ms;
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
        let view = vlc(path);
        let theirs = vlc(&remux);
        assert_eq!(
            (&view.codec, view.width, view.height),
            (&theirs.codec, theirs.width, theirs.height),
            "VLC's video track of {what} and of its remux"
        );
        let length_ms = view.length_ms;
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
