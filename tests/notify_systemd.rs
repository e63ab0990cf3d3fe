//! sd_notify against a real `NOTIFY_SOCKET` datagram socket, as systemd sets it up for a
//! `Type=notify` unit with `WatchdogSec=`: READY=1 only once a frame is on disk, WATCHDOG=1
//! while frames flow, none once they stop, STATUS= lines, STOPPING=1 on SIGTERM.
//!
//! The dashcam binary runs under the target runner when one is set (tests/common).

mod common;

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{dashcam, scaled, tmpdir, wait_until, Proc};

/// One datagram: when it arrived, its lines, and the footage bytes on disk at that moment.
#[derive(Clone, Debug)]
struct Msg {
    at: Instant,
    lines: Vec<String>,
    footage_bytes: u64,
}

struct Listener {
    path: PathBuf,
    msgs: Arc<Mutex<Vec<Msg>>>,
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

impl Listener {
    /// Bind a datagram socket in `dir` and collect what arrives in the background.
    fn bind(dir: &Path, footage: &Path) -> Listener {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let footage = footage.to_path_buf();
        {
            let msgs = msgs.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                loop {
                    match sock.recv(&mut buf) {
                        Ok(n) => {
                            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                            let m = Msg {
                                at: Instant::now(),
                                lines: text.lines().map(str::to_string).collect(),
                                footage_bytes: dir_bytes(&footage),
                            };
                            msgs.lock().unwrap().push(m);
                        }
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut =>
                        {
                            if Arc::strong_count(&msgs) == 1 {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
        }
        Listener { path, msgs }
    }

    fn all(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }

    fn has(&self, line: &str) -> bool {
        self.all().iter().any(|m| m.lines.iter().any(|l| l == line))
    }

    fn count(&self, line: &str, since: Option<Instant>) -> usize {
        self.all()
            .iter()
            .filter(|m| since.is_none_or(|s| m.at >= s))
            .filter(|m| m.lines.iter().any(|l| l == line))
            .count()
    }

    fn statuses(&self) -> Vec<String> {
        self.all()
            .iter()
            .flat_map(|m| m.lines.clone())
            .filter_map(|l| l.strip_prefix("STATUS=").map(str::to_string))
            .collect()
    }

    fn dump(&self) -> String {
        self.all()
            .iter()
            .map(|m| m.lines.join(" | "))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn small_pattern_config(dir: &Path) -> PathBuf {
    let cfg = dir.join("dashcam.toml");
    std::fs::write(
        &cfg,
        "[test_pattern]\nwidth = 160\nheight = 96\nfps = 10\nquality = 50\n",
    )
    .expect("write config");
    cfg
}

#[test]
fn ready_after_first_frame_on_disk_watchdog_while_recording_stopping_on_sigterm() {
    let tmp = tmpdir("notify-ready");
    let footage = tmp.path().join("footage");
    let listener = Listener::bind(tmp.path(), &footage);
    let cfg = small_pattern_config(tmp.path());
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--config")
        .arg(&cfg)
        .args(["--source", "test", "--sync-interval", "0.3", "--dir"])
        .arg(&footage)
        .env("NOTIFY_SOCKET", &listener.path)
        .env("WATCHDOG_USEC", "1500000");
    let started = Instant::now();
    let proc = Proc::spawn(cmd);

    assert!(
        wait_until(scaled(30.0), || listener.has("READY=1")),
        "no READY=1 within the limit; got:\n{}\nstderr:\n{}",
        listener.dump(),
        proc.stderr_text()
    );
    let msgs = listener.all();
    let ready = msgs
        .iter()
        .find(|m| m.lines.iter().any(|l| l == "READY=1"))
        .expect("ready message");
    assert!(
        ready.footage_bytes > 0,
        "READY=1 arrived with nothing on disk"
    );
    assert!(
        msgs.iter()
            .take_while(|m| m.at < ready.at)
            .all(|m| !m.lines.iter().any(|l| l == "WATCHDOG=1")),
        "WATCHDOG=1 before READY=1:\n{}",
        listener.dump()
    );
    let ready_at = ready.at;
    eprintln!(
        "READY=1 after {:.2} s",
        ready_at.duration_since(started).as_secs_f64()
    );

    // Pings at a third of the 1.5 s timeout while the pattern records.
    assert!(
        wait_until(scaled(10.0), || listener
            .count("WATCHDOG=1", Some(ready_at))
            >= 4),
        "fewer than 4 WATCHDOG=1 while recording:\n{}\nstderr:\n{}",
        listener.dump(),
        proc.stderr_text()
    );
    assert!(
        listener
            .statuses()
            .iter()
            .any(|s| s.starts_with("recording:") && s.contains("frames on disk")),
        "no recording STATUS= line:\n{}",
        listener.dump()
    );
    assert!(!listener.has("STOPPING=1"), "STOPPING=1 before the stop");

    proc.signal(libc::SIGTERM);
    let out = proc.finish(scaled(15.0));
    assert!(
        out.status.success(),
        "exit status {} after SIGTERM; stderr:\n{}",
        out.status,
        common::text(&out.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(2), || listener.has("STOPPING=1")),
        "no STOPPING=1 after SIGTERM:\n{}",
        listener.dump()
    );
    let last_status = listener.statuses().last().cloned().unwrap_or_default();
    assert!(
        last_status.starts_with("stopped:"),
        "last STATUS= is {last_status:?}"
    );
}

/// JPEG frames of an MJPEG stream (split at each SOI marker).
fn jpeg_frames(data: &[u8]) -> Vec<Vec<u8>> {
    let mut starts: Vec<usize> = data
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0xff, 0xd8, 0xff])
        .map(|(i, _)| i)
        .collect();
    starts.push(data.len());
    starts
        .windows(2)
        .map(|w| data[w[0]..w[1]].to_vec())
        .collect()
}

#[test]
fn watchdog_pings_stop_when_frames_stop_and_end_of_input_says_stopping() {
    let tmp = tmpdir("notify-stall");
    let footage = tmp.path().join("footage");
    let listener = Listener::bind(tmp.path(), &footage);
    let data = std::fs::read(common::input("mjpeg422.mjpeg")).expect("read input");
    let frames = jpeg_frames(&data);
    assert!(frames.len() >= 60, "only {} frames", frames.len());
    let mut cmd = dashcam();
    cmd.args([
        "run",
        "--source",
        "-",
        "--fps",
        "30",
        "--sync-interval",
        "0.3",
    ])
    .args(["--idle-timeout", "120", "--dir"])
    .arg(&footage)
    .env("NOTIFY_SOCKET", &listener.path)
    .env("WATCHDOG_USEC", "1500000")
    .stdin(Stdio::piped());
    let mut proc = Proc::spawn(cmd);
    let mut stdin = proc.child.stdin.take().expect("stdin");
    // Two seconds of video at its real rate, then nothing (the pipe stays open).
    let t0 = Instant::now();
    for (i, f) in frames[..60].iter().enumerate() {
        stdin.write_all(f).expect("write a frame");
        let due = t0 + Duration::from_millis(33 * (i as u64 + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    stdin.flush().expect("flush");
    let fed = Instant::now();
    assert!(
        wait_until(scaled(15.0), || listener.has("READY=1")),
        "no READY=1:\n{}\nstderr:\n{}",
        listener.dump(),
        proc.stderr_text()
    );
    // The stall window is 5 s (3 sync intervals, at least 5 s): past it, no more pings.
    assert!(
        wait_until(scaled(20.0), || listener
            .statuses()
            .iter()
            .any(|s| s.contains("stalled"))),
        "no stalled STATUS= after the frames stopped:\n{}\nstderr:\n{}",
        listener.dump(),
        proc.stderr_text()
    );
    let stalled_at = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let late = listener.count("WATCHDOG=1", Some(stalled_at));
    assert_eq!(
        late,
        0,
        "WATCHDOG=1 kept coming {:.1} s after the last frame:\n{}",
        fed.elapsed().as_secs_f64(),
        listener.dump()
    );
    assert!(
        listener.count("WATCHDOG=1", None) >= 1,
        "no WATCHDOG=1 at all while frames flowed:\n{}",
        listener.dump()
    );

    // Frames again: the pings resume.
    let resumed = Instant::now();
    let feeder = std::thread::spawn(move || {
        let t0 = Instant::now();
        for (i, f) in frames[60..].iter().enumerate() {
            if stdin.write_all(f).is_err() {
                return;
            }
            let due = t0 + Duration::from_millis(33 * (i as u64 + 1));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        // End of input: stdin closes here.
    });
    assert!(
        wait_until(scaled(15.0), || listener.count("WATCHDOG=1", Some(resumed))
            >= 2),
        "WATCHDOG=1 did not resume with the frames:\n{}\nstderr:\n{}",
        listener.dump(),
        proc.stderr_text()
    );
    feeder.join().expect("feeder");
    let out = proc.finish(scaled(30.0));
    assert!(
        out.status.success(),
        "exit {}; stderr:\n{}",
        out.status,
        common::text(&out.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(2), || listener.has("STOPPING=1")),
        "no STOPPING=1 at the end of input:\n{}",
        listener.dump()
    );
}

#[test]
fn abstract_notify_socket_and_no_socket_are_fine() {
    // Without NOTIFY_SOCKET nothing is sent and recording works as always.
    let tmp = tmpdir("notify-none");
    let footage = tmp.path().join("footage");
    let out = common::run_to_end(
        {
            let mut c = dashcam();
            c.args(["run", "--fast", "--source"])
                .arg(format!(
                    "file:{}",
                    common::input("headers_once.h264").display()
                ))
                .arg("--dir")
                .arg(&footage)
                .env_remove("NOTIFY_SOCKET");
            c
        },
        scaled(60.0),
    );
    assert!(out.status.success(), "{}", common::text(&out.stderr));

    // An abstract socket (`@name`), as some service managers pass.
    let name = format!("dashcam-test-{}", std::process::id());
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
    let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract");
    sock.set_read_timeout(Some(scaled(60.0))).expect("timeout");
    let footage2 = tmp.path().join("footage2");
    let mut c = dashcam();
    c.args(["run", "--fast", "--source"])
        .arg(format!(
            "file:{}",
            common::input("headers_once.h264").display()
        ))
        .arg("--dir")
        .arg(&footage2)
        .env("NOTIFY_SOCKET", format!("@{name}"));
    let out = common::run_to_end(c, scaled(60.0));
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    while let Ok(n) = sock.recv(&mut buf) {
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("STOPPING=1"), "abstract socket got: {got:?}");
}
