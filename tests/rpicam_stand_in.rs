//! `--source rpicam` supervision, against a STAND-IN for rpicam-vid: rpicam-vid (libcamera
//! and the Pi's encoder) cannot run here, so `tests/stand-ins/rpicam-vid` is put first on
//! `PATH`. It writes a real libx264 stream (made by ffmpeg here) in real time and exits,
//! crashes, stalls or reports no camera on cue, and logs its arguments and start times.
//! Judged with ffprobe and framemd5 against the stream it was given: the camera process is
//! restarted with a growing backoff, every loss is a segment closed whole as `source_lost`,
//! no frame of a running stream is lost, and the watchdog keeps pinging while the camera is
//! away. The argument list itself is checked against rpicam-apps' options in the unit tests
//! of src/source/rpicam.rs; here, that dashcam really passes it.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    dashcam, framemd5, meta_str, probe_errors, scaled, segments, tmpdir, wait_until, Proc,
};

/// 12 s of 320x180 H.264 at 30 fps from libx264, a keyframe with SPS/PPS every second (as
/// `rpicam-vid --inline --intra 30` gives).
fn camera_stream(dir: &Path) -> PathBuf {
    let out = dir.join("camera.h264");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x180:rate=30")
        .args(["-t", "12", "-pix_fmt", "yuv420p", "-c:v", "libx264"])
        .args(["-preset", "veryfast", "-bf", "0", "-x264-params"])
        .arg("keyint=30:min-keyint=30:scenecut=0:repeat-headers=1")
        .args(["-f", "h264"])
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not make the camera stream");
    out
}

struct StandIn {
    dir: PathBuf,
    input: PathBuf,
}

impl StandIn {
    fn new(root: &Path, cues: &[&str]) -> StandIn {
        let dir = root.join("stand-in");
        std::fs::create_dir_all(&dir).expect("stand-in dir");
        std::fs::write(dir.join("cue"), cues.join("\n") + "\n").expect("cue");
        StandIn {
            dir,
            input: camera_stream(root),
        }
    }

    /// `dashcam run --source rpicam` with the stand-in first on PATH.
    fn command(&self, config: &Path, footage: &Path) -> Command {
        let bin = common::repo_dir().join("tests").join("stand-ins");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = dashcam();
        cmd.args(["run", "--source", "rpicam", "--config"])
            .arg(config)
            .arg("--dir")
            .arg(footage)
            .env("PATH", path)
            .env("STANDIN_DIR", &self.dir)
            .env("STANDIN_INPUT", &self.input);
        cmd
    }

    /// (start, end) monotonic seconds of each start of the stand-in, from its log.
    fn runs(&self) -> Vec<(f64, Option<f64>)> {
        let text = std::fs::read_to_string(self.dir.join("starts")).unwrap_or_default();
        let mut runs: Vec<(f64, Option<f64>)> = Vec::new();
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            let (Some(n), Some(kind), Some(t)) = (
                w.first().and_then(|n| n.parse::<usize>().ok()),
                w.get(1),
                w.get(2).and_then(|t| t.parse::<f64>().ok()),
            ) else {
                continue;
            };
            match *kind {
                "start" if n == runs.len() => runs.push((t, None)),
                "end" if n < runs.len() => runs[n].1 = Some(t),
                _ => {}
            }
        }
        runs
    }

    fn frames_written(&self, n: usize) -> usize {
        std::fs::read_to_string(self.dir.join(format!("frames.{n}")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn args(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("args.{n}")))
            .unwrap_or_default()
            .lines()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("dashcam.toml");
    std::fs::write(
        &p,
        format!(
            "segment_seconds = 60\nsync_interval = 0.3\n{extra}\n[camera]\nwidth = 320\nheight = 180\nframerate = 30\nstall_timeout = 2\n"
        ),
    )
    .expect("config");
    p
}

/// Every segment decodes cleanly and is the first `n` frames of the stream the stand-in
/// was given (each run of the stand-in starts at the top of it).
fn check_runs(footage: &Path, input: &Path, expect: &[(usize, &str)]) {
    let want = framemd5(input);
    let segs = segments(footage);
    assert_eq!(
        segs.len(),
        expect.len(),
        "segments: {}",
        common::listing(footage)
    );
    for (seg, (n, reason)) in segs.iter().zip(expect) {
        assert_eq!(probe_errors(&seg.path), "", "{}", seg.name);
        let got = framemd5(&seg.path);
        assert_eq!(got.len(), *n, "{}: frames", seg.name);
        assert_eq!(
            got[..],
            want[..*n],
            "{}: the decoded frames are not the stream's first {n}",
            seg.name
        );
        assert_eq!(
            meta_str(seg.meta(), "close_reason"),
            Some(*reason),
            "{}",
            seg.name
        );
        assert_eq!(seg.meta()["frames"].as_u64(), Some(*n as u64));
        assert_eq!(seg.meta()["dropped_frames"].as_u64(), Some(0));
    }
}

#[test]
fn rpicam_stand_in_exits_and_crashes_restart_with_backoff_and_lose_no_frame() {
    let tmp = tmpdir("rpicam-exit");
    let stand_in = StandIn::new(
        tmp.path(),
        &["exit:90:1", "crash:60", "exit:45:0", "nocamera"],
    );
    let footage = tmp.path().join("footage");
    let cfg = config(tmp.path(), "");
    let proc = Proc::spawn(stand_in.command(&cfg, &footage));
    assert!(
        wait_until(scaled(60.0), || stand_in.runs().len() >= 4
            && proc.stderr_text().contains("no camera detected")),
        "the stand-in was not started four times; runs {:?}; stderr:\n{}",
        stand_in.runs(),
        proc.stderr_text()
    );
    proc.signal(libc::SIGTERM);
    let out = proc.finish(scaled(20.0));
    let stderr = common::text(&out.stderr);
    assert!(out.status.success(), "exit {}:\n{stderr}", out.status);

    // dashcam passed the argument list built from [camera].
    for n in 0..4 {
        assert_eq!(
            stand_in.args(n),
            "-t 0 -n --codec h264 --inline --flush --width 320 --height 180 --framerate 30 --intra 30 --level 4.1 -o -"
        );
    }
    // Restarts wait longer each time: about 1 s, 2 s, 4 s after each end.
    let runs = stand_in.runs();
    let waits: Vec<f64> = runs
        .windows(2)
        .take(3)
        .map(|w| w[1].0 - w[0].1.expect("each run but the last ended"))
        .collect();
    eprintln!("waits before the restarts: {waits:?}");
    assert!(
        waits[0] >= 0.9 && waits[0] < 1.0 + scaled(1.5).as_secs_f64(),
        "{waits:?}"
    );
    assert!(waits[1] >= 1.9 && waits[1] > waits[0] * 1.5, "{waits:?}");
    assert!(waits[2] >= 3.9 && waits[2] > waits[1] * 1.5, "{waits:?}");
    for why in [
        "exited with status 1",
        "was killed by signal 11 (SIGSEGV)",
        "exited with status 0",
        "no camera detected: check the ribbon cable and `rpicam-hello --list-cameras`",
    ] {
        assert!(stderr.contains(why), "no {why:?} in:\n{stderr}");
    }
    // One segment per run, closed whole when the camera went: every frame written by the
    // stand-in is in it.
    assert_eq!(
        (0..3)
            .map(|n| stand_in.frames_written(n))
            .collect::<Vec<_>>(),
        [90, 60, 45]
    );
    check_runs(
        &footage,
        &stand_in.input,
        &[
            (90, "source_lost"),
            (60, "source_lost"),
            (45, "source_lost"),
        ],
    );
}

/// systemd's notify socket, collecting what arrives.
struct Notify {
    path: PathBuf,
    msgs: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Notify {
    fn bind(dir: &Path) -> Notify {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let m = msgs.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let mut v = m.lock().unwrap();
                        for l in text.lines() {
                            v.push((Instant::now(), l.to_string()));
                        }
                    }
                    Err(_) if Arc::strong_count(&m) > 1 => {}
                    Err(_) => return,
                }
            }
        });
        Notify { path, msgs }
    }

    fn lines(&self) -> Vec<(Instant, String)> {
        self.msgs.lock().unwrap().clone()
    }

    fn has(&self, prefix: &str) -> bool {
        self.lines().iter().any(|(_, l)| l.starts_with(prefix))
    }
}

#[test]
fn rpicam_stand_in_that_stalls_is_restarted_while_the_watchdog_keeps_pinging() {
    let tmp = tmpdir("rpicam-stall");
    let stand_in = StandIn::new(tmp.path(), &["stall:60", "forever"]);
    let footage = tmp.path().join("footage");
    let cfg = config(tmp.path(), "");
    let notify = Notify::bind(tmp.path());
    let mut cmd = stand_in.command(&cfg, &footage);
    cmd.env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "1500000");
    let proc = Proc::spawn(cmd);
    assert!(
        wait_until(scaled(40.0), || stand_in.runs().len() >= 2
            && stand_in.frames_written(1) >= 90),
        "no second run; runs {:?}; stderr:\n{}",
        stand_in.runs(),
        proc.stderr_text()
    );
    proc.signal(libc::SIGTERM);
    let out = proc.finish(scaled(20.0));
    let stderr = common::text(&out.stderr);
    assert!(out.status.success(), "exit {}:\n{stderr}", out.status);
    assert!(
        stderr.contains("stopped producing frames (2 s without one)"),
        "{stderr}"
    );
    // The first run stalled: ended by dashcam (SIGTERM), restarted about 1 s later.
    let runs = stand_in.runs();
    let stalled_end = runs[0].1.expect("the stalled stand-in was ended");
    let wait = runs[1].0 - stalled_end;
    assert!(
        wait >= 0.9 && wait < 1.0 + scaled(1.5).as_secs_f64(),
        "{wait}"
    );

    // Pings never stopped: the camera was away, the recorder was not wedged.
    let lines = notify.lines();
    let pings: Vec<Instant> = lines
        .iter()
        .filter(|(_, l)| l == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    assert!(pings.len() >= 6, "{lines:?}");
    let longest = pings
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(longest < scaled(2.0), "no ping for {longest:?}");
    assert!(
        lines
            .iter()
            .any(|(_, l)| l.starts_with("STATUS=camera lost since ")
                && l.contains("stopped producing frames")),
        "{lines:?}"
    );
    // The stalled run's every frame is in a segment closed as source_lost; the second run
    // records from its first frame until the stop (the frame in flight at the stop aside).
    let segs = segments(&footage);
    assert_eq!(segs.len(), 2, "{}", common::listing(&footage));
    check_runs(
        &footage,
        &stand_in.input,
        &[(60, "source_lost")][..]
            .iter()
            .chain(std::iter::once(&(framemd5(&segs[1].path).len(), "stop")))
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert!(framemd5(&segs[1].path).len() >= 85);
}

#[test]
fn rpicam_stand_in_without_a_camera_keeps_the_service_up_and_says_why() {
    let tmp = tmpdir("rpicam-none");
    let stand_in = StandIn::new(tmp.path(), &["nocamera"]);
    let footage = tmp.path().join("footage");
    let cfg = config(tmp.path(), "");
    let notify = Notify::bind(tmp.path());
    let mut cmd = stand_in.command(&cfg, &footage);
    cmd.env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "1500000");
    let mut proc = Proc::spawn(cmd);
    assert!(
        wait_until(scaled(20.0), || stand_in.runs().len() >= 3),
        "not retried; runs {:?}; stderr:\n{}",
        stand_in.runs(),
        proc.stderr_text()
    );
    assert!(
        proc.wait_timeout(Duration::from_millis(100)).is_none(),
        "dashcam exited"
    );
    assert!(notify.has("READY=1"), "{:?}", notify.lines());
    assert!(notify.has("WATCHDOG=1"), "{:?}", notify.lines());
    assert!(
        notify
            .lines()
            .iter()
            .any(|(_, l)| l.starts_with("STATUS=camera lost since ")
                && l.contains("no camera detected: check the ribbon cable")),
        "{:?}",
        notify.lines()
    );
    proc.signal(libc::SIGTERM);
    let out = proc.finish(scaled(20.0));
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    assert!(segments(&footage).is_empty());
}
