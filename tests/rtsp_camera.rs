//! `--source rtsp://` against a real RTSP server the project did not write: GStreamer's
//! (Debian's gir1.2-gst-rtsp-server-1.0 through python3-gi, tests/rtsp/gst-rtsp-server.py),
//! serving a libx264 MP4 in real time with Digest or Basic authentication. Judged with
//! ffprobe and framemd5 against the served file: frames bit-exact, a server killed and
//! started again is a gap and a resume in a new segment, every segment clean; a wrong
//! password is a clear message and slow retries, never a crash; an H.265 camera (libx265)
//! gets the codec and the setting to change; credentials appear nowhere.
//! Without GStreamer's RTSP server installed (scripts/test.sh installs it) the tests say
//! so and fail.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    dashcam, framemd5, meta_str, probe_errors, scaled, segments, tmpdir, wait_until, Proc,
};

const USER: &str = "viewer";
const PASSWORD: &str = "pa55-w0rd";

/// 10 s of 320x180 H.264 at 30 fps in MP4, an IDR every second.
fn served_file(dir: &Path) -> PathBuf {
    let out = dir.join("served.mp4");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x180:rate=30")
        .args(["-t", "10", "-pix_fmt", "yuv420p", "-c:v", "libx264"])
        .args(["-preset", "veryfast", "-bf", "0", "-x264-params"])
        .arg("keyint=30:min-keyint=30:scenecut=0")
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not make the served file");
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// 3 s of 320x180 H.265 (libx265) in MP4: what an H.265 camera serves.
fn served_h265(dir: &Path) -> PathBuf {
    let out = dir.join("served-h265.mp4");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x180:rate=30")
        .args(["-t", "3", "-pix_fmt", "yuv420p", "-c:v", "libx265"])
        .args(["-preset", "ultrafast", "-x265-params", "log-level=error"])
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not make the H.265 file");
    out
}

struct Server {
    child: Child,
    clients: Arc<AtomicUsize>,
}

impl Server {
    fn start(port: u16, file: &Path, digest: bool, password: &str) -> Server {
        Server::start_codec(port, file, digest, password, "h264")
    }

    fn start_codec(port: u16, file: &Path, digest: bool, password: &str, codec: &str) -> Server {
        let script = common::repo_dir().join("tests/rtsp/gst-rtsp-server.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script)
            .arg(port.to_string())
            .arg(file)
            .args(["--codec", codec])
            .args(["--user", USER, "--password", password]);
        if digest {
            cmd.arg("--digest");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with GStreamer's RTSP server (see scripts/test.sh)");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let clients = Arc::new(AtomicUsize::new(0));
        let c = clients.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                match line.as_str() {
                    "ready" => {
                        let _ = tx.send(());
                    }
                    "client" => {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("GStreamer's RTSP server did not start");
        Server { child, clients }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn command(dir: &Path, port: u16, footage: &Path) -> Command {
    let pw = dir.join("camera-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).expect("password file");
    let cfg = dir.join("dashcam.toml");
    std::fs::write(
        &cfg,
        format!(
            "segment_seconds = 60\nsync_interval = 0.3\n[camera]\nstall_timeout = 2\npassword_file = \"{}\"\n",
            pw.display()
        ),
    )
    .expect("config");
    let mut cmd = dashcam();
    cmd.args(["run", "--config"])
        .arg(&cfg)
        .arg("--source")
        .arg(format!("rtsp://{USER}@127.0.0.1:{port}/cam"))
        .arg("--dir")
        .arg(footage);
    cmd
}

fn assert_no_credentials(what: &str, text: &str) {
    assert!(
        !text.contains(PASSWORD) && !text.contains(USER),
        "{what} shows the credentials:\n{text}"
    );
}

#[test]
fn rtsp_digest_frames_are_bit_exact_and_a_server_restart_is_a_gap_and_a_resume() {
    let tmp = tmpdir("rtsp-restart");
    let file = served_file(tmp.path());
    let want = framemd5(&file);
    let port = free_port();
    let footage = tmp.path().join("footage");
    let mut server = Server::start(port, &file, true, PASSWORD);
    let proc = Proc::spawn(command(tmp.path(), port, &footage));
    assert!(
        wait_until(scaled(30.0), || proc.stderr_text().contains("playing")),
        "not playing:\n{}",
        proc.stderr_text()
    );
    std::thread::sleep(Duration::from_secs(3));
    server.kill();
    assert!(
        wait_until(scaled(15.0), || proc.stderr_text().contains("camera lost")),
        "the loss was not noticed:\n{}",
        proc.stderr_text()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let server = Server::start(port, &file, true, PASSWORD);
    let back_at = Instant::now();
    assert!(
        wait_until(scaled(15.0), || proc.stderr_text().contains("back after")),
        "no resume after the server came back:\n{}",
        proc.stderr_text()
    );
    let resumed_in = back_at.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    proc.signal(libc::SIGTERM);
    let out = proc.finish(scaled(20.0));
    let stderr = common::text(&out.stderr);
    assert!(out.status.success(), "exit {}:\n{stderr}", out.status);
    eprintln!("resumed {resumed_in:?} after the server was back");
    assert!(
        resumed_in < scaled(2.0),
        "resumed only after {resumed_in:?}"
    );
    assert!(server.clients.load(Ordering::SeqCst) >= 1);
    assert_no_credentials("the log", &stderr);

    let segs = segments(&footage);
    assert_eq!(segs.len(), 2, "{}", common::listing(&footage));
    for (seg, reason) in segs.iter().zip(["source_lost", "stop"]) {
        assert_eq!(probe_errors(&seg.path), "", "{}", seg.name);
        assert_eq!(
            meta_str(seg.meta(), "close_reason"),
            Some(reason),
            "{}",
            seg.name
        );
        let got = framemd5(&seg.path);
        assert!(got.len() >= 45, "{}: {} frames", seg.name, got.len());
        // Each connection plays the file from its start: the frames are its first ones.
        assert_eq!(
            got[..],
            want[..got.len()],
            "{}: not the served frames",
            seg.name
        );
        let json = std::fs::read_to_string(seg.path.with_extension("json")).expect("json");
        assert_no_credentials("the metadata", &json);
    }
}

#[test]
fn rtsp_wrong_password_is_a_clear_error_retried_with_backoff_never_a_crash() {
    let tmp = tmpdir("rtsp-auth");
    let file = served_file(tmp.path());
    let port = free_port();
    let footage = tmp.path().join("footage");
    // Basic authentication, and the server knows another password.
    let server = Server::start(port, &file, false, "something-else");
    let mut proc = Proc::spawn(command(tmp.path(), port, &footage));
    std::thread::sleep(scaled(9.0));
    assert!(
        proc.wait_timeout(Duration::from_millis(10)).is_none(),
        "dashcam exited"
    );
    let attempts = server.clients.load(Ordering::SeqCst);
    proc.signal(libc::SIGTERM);
    let out = proc.finish(scaled(20.0));
    let stderr = common::text(&out.stderr);
    assert!(out.status.success(), "exit {}:\n{stderr}", out.status);
    assert!(
        stderr.contains("the camera refused the user name or password"),
        "{stderr}"
    );
    // Tries after about 0, 1, 3, 7 s: a handful, not a tight loop.
    assert!((2..=6).contains(&attempts), "{attempts} connections in 9 s");
    assert_no_credentials("the log", &stderr);
    assert!(segments(&footage).is_empty());
}

#[test]
fn rtsp_h265_camera_gets_an_error_naming_the_codec_and_the_setting_to_change() {
    let tmp = tmpdir("rtsp-h265");
    let file = served_h265(tmp.path());
    let port = free_port();
    let footage = tmp.path().join("footage");
    let _server = Server::start_codec(port, &file, true, PASSWORD, "h265");
    let mut proc = Proc::spawn(command(tmp.path(), port, &footage));
    assert!(
        wait_until(scaled(20.0), || proc.stderr_text().contains("H.265")),
        "no H.265 message:\n{}",
        proc.stderr_text()
    );
    assert!(
        proc.wait_timeout(Duration::from_millis(10)).is_none(),
        "dashcam exited"
    );
    proc.signal(libc::SIGTERM);
    let out = proc.finish(scaled(20.0));
    let stderr = common::text(&out.stderr);
    assert!(out.status.success(), "exit {}:\n{stderr}", out.status);
    assert!(
        stderr.contains("the camera sends H.265 (HEVC) video")
            && stderr.contains("set the camera's video encoding to H.264"),
        "{stderr}"
    );
    assert_no_credentials("the log", &stderr);
    assert!(segments(&footage).is_empty());
}
