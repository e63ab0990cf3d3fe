//! Real-time recording interrupted: SIGKILL (a crash or power cut of the process) loses at
//! most about one second, SIGTERM closes the open segment completely and exits 0 quickly.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const H264_360: Expect = Expect {
    codec: "h264",
    width: 640,
    height: 360,
    fps: 30.0,
    gop_frames: 30,
};

/// Frames a SIGKILL may lose: one second of frames not yet made durable (30), plus one
/// fragment's worth of slack and the access unit still being read.
const MAX_LOST_FRAMES: usize = 45;

/// Checks of a directory after an interruption: every segment but the newest is closed
/// (metadata, clean, keyframe first); the newest is checked as a file that may be cut
/// (`newest_closed` false) or as closed. The frames of all segments in order must be the
/// first frames of the input. Returns (problems, frames recorded).
fn check_interrupted(
    dir: &Path,
    want: &[String],
    segment_seconds: f64,
    newest_closed: bool,
) -> (Vec<String>, usize) {
    let segs = segments(dir);
    let mut p = Vec::new();
    if segs.is_empty() {
        p.push("no segment file at all".to_string());
        return (p, 0);
    }
    let (closed, newest) = segs.split_at(segs.len() - 1);
    let newest = &newest[0];
    for s in closed {
        p.extend(check_segment(s, &H264_360, true));
    }
    if newest_closed {
        p.extend(check_segment(newest, &H264_360, true));
        p.extend(check_sequence(&segs, &H264_360, segment_seconds, true));
    } else if packet_count(&newest.path) > 0 {
        p.extend(check_sequence(closed, &H264_360, segment_seconds, false));
        p.extend(check_segment(newest, &H264_360, false));
    } else {
        p.extend(check_sequence(closed, &H264_360, segment_seconds, false));
        let e = probe_errors(&newest.path);
        if !e.is_empty() {
            p.push(format!(
                "{} (cut, no frames): ffprobe -v error printed:\n{e}",
                newest.name
            ));
        }
    }
    let paths: Vec<&Path> = segs.iter().map(|s| s.path.as_path()).collect();
    let got = framemd5_all(&paths);
    let n = got.len().min(want.len());
    if got.len() > want.len() || got[..] != want[..n] {
        p.push(format!(
            "the segments' {} frames are not the input's first frames (first difference at {})",
            got.len(),
            common_prefix(&got, want)
        ));
    }
    (p, got.len())
}

/// Write all of `data` to a non-blocking pipe, waiting while it is full, for at most `limit`.
fn write_nonblocking(fd: i32, data: &[u8], limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut off = 0;
    while off < data.len() {
        // SAFETY: writing from a live slice to a file descriptor we own.
        let n = unsafe {
            libc::write(
                fd,
                data[off..].as_ptr().cast::<libc::c_void>(),
                data.len() - off,
            )
        };
        if n > 0 {
            off += n as usize;
            continue;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::WouldBlock {
            return Err(format!("writing to dashcam's stdin: {err}"));
        }
        if Instant::now() >= deadline {
            return Err("dashcam stopped reading its stdin".to_string());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// The input is piped into `dashcam run --source -` (paced, no `--fast`) at its own rate by
/// the test, through a pipe shrunk to one page. After ~5.5 s the process is SIGKILLed;
/// then FIONREAD on the pipe tells how many written bytes it never read. Those bytes
/// removed, the prefix it did read is decoded by ffmpeg: that many complete frames were
/// fed. The segments on disk must decode to all but at most MAX_LOST_FRAMES of them.
#[test]
fn sigkill_loses_at_most_about_one_second() {
    let input = input("headers_once.h264");
    let data = fs::read(&input).expect("read input");
    let want = framemd5(&input);
    assert_eq!(want.len(), 300, "headers_once.h264 should have 300 frames");
    let tmp = tmpdir("sigkill-stdin");

    let mut cmd = dashcam();
    cmd.args(["run", "--source", "-", "--dir"])
        .arg(tmp.path())
        .args(["--segment-seconds", "2"])
        .stdin(Stdio::piped());
    let mut proc = Proc::spawn(cmd);
    let stdin = proc.child.stdin.take().expect("stdin");
    let fd = stdin.as_raw_fd();
    // SAFETY: fcntl on a pipe descriptor we own.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, 4096);
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }

    // 10 s of video in the file: feed it at that byte rate, in small pieces.
    let rate = data.len() as f64 / 10.0;
    let feed_for = Duration::from_secs_f64(5.5);
    let t0 = Instant::now();
    let mut written = 0usize;
    while written < data.len() && t0.elapsed() < feed_for {
        let due = t0 + Duration::from_secs_f64(written as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let n = 1024.min(data.len() - written);
        if let Err(e) = write_nonblocking(fd, &data[written..written + n], scaled(10.0)) {
            panic!("{e}; dashcam stderr:\n{}", proc.stderr_text());
        }
        written += n;
    }
    assert!(
        proc.child.try_wait().expect("try_wait").is_none(),
        "dashcam exited while being fed:\n{}",
        proc.stderr_text()
    );
    let out = proc.kill9();
    let mut unread: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int; the pipe still exists (we hold its write end).
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut unread) };
    assert_eq!(r, 0, "FIONREAD on the pipe failed");
    drop(stdin);
    let consumed = written - unread as usize;
    assert_no_panic("dashcam run --source -", &out);

    let prefix = tmp.path().join("fed-prefix.h264");
    fs::write(&prefix, &data[..consumed]).expect("write prefix");
    let fed = common_prefix(&framemd5(&prefix), &want);
    fs::remove_file(&prefix).expect("remove prefix");

    let (mut p, recorded) = check_interrupted(tmp.path(), &want, 2.0, false);
    let lost = fed as i64 - recorded as i64;
    if lost > MAX_LOST_FRAMES as i64 {
        p.push(format!(
            "lost {lost} frames (> {MAX_LOST_FRAMES}): {consumed} bytes read by dashcam hold {fed} complete frames, the segments hold {recorded}"
        ));
    }
    eprintln!(
        "sigkill: wrote {written} bytes, dashcam read {consumed} ({fed} frames), segments hold {recorded} frames"
    );
    assert_no_problems(
        "SIGKILL while fed from stdin",
        &p,
        tmp.path(),
        &text(&out.stderr),
    );
}

/// `--source file:` paced in real time, SIGKILLed a while after the first segment closed:
/// the closed segments pass every check, the cut file decodes cleanly, and a new run on
/// the same directory continues the sequence numbers above the cut file's.
#[test]
fn sigkill_file_paced_then_restart() {
    let input = input("headers_once.h264");
    let want = framemd5(&input);
    let tmp = tmpdir("sigkill-file");

    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input.display()))
        .arg("--dir")
        .arg(tmp.path())
        .args(["--segment-seconds", "2"]);
    let proc = Proc::spawn(cmd);
    let closed_one = wait_until(scaled(30.0), || {
        segments(tmp.path()).iter().any(|s| s.meta.is_some())
    });
    assert!(
        closed_one,
        "no segment closed within 30 s:\n{}",
        proc.stderr_text()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let out = proc.kill9();
    assert_no_panic("dashcam run (paced)", &out);

    let (p, recorded) = check_interrupted(tmp.path(), &want, 2.0, false);
    eprintln!("sigkill-file: segments hold {recorded} frames");
    assert_no_problems(
        "SIGKILL of a paced file",
        &p,
        tmp.path(),
        &text(&out.stderr),
    );

    let before = segments(tmp.path());
    let max_before = before.iter().map(|s| s.seq).max().unwrap();
    let out = record_file(&input, tmp.path(), 4, &[]);
    let after = segments(tmp.path());
    let mut p = Vec::new();
    for s in after
        .iter()
        .filter(|s| !before.iter().any(|b| b.name == s.name))
    {
        if s.seq <= max_before {
            p.push(format!(
                "{}: sequence {} after restart is not above {max_before}",
                s.name, s.seq
            ));
        }
    }
    for s in &after {
        let e = decode_errors(&s.path);
        if !e.is_empty() {
            p.push(format!(
                "{} after restart: ffmpeg -v error printed:\n{}",
                s.name,
                first_lines(&e, 8)
            ));
        }
    }
    assert_no_problems("restart after SIGKILL", &p, tmp.path(), &text(&out.stderr));
}

/// Send `sig` and require exit status 0 within 2 s.
fn stop_within_two_seconds(proc: Proc, sig: i32) -> std::process::Output {
    proc.signal(sig);
    let t = Instant::now();
    let mut proc = proc;
    let limit = scaled(2.0);
    match proc.wait_timeout(limit) {
        Some(st) => {
            let elapsed = t.elapsed();
            let out = proc.finish(Duration::from_secs(1));
            assert_no_panic("dashcam run", &out);
            assert!(
                st.success(),
                "exit status after signal {sig}: {st}, expected 0; stderr:\n{}",
                text(&out.stderr)
            );
            eprintln!("signal {sig}: exited 0 after {elapsed:?}");
            out
        }
        None => {
            let err = proc.stderr_text();
            drop(proc);
            panic!("dashcam still running {limit:?} after signal {sig}; stderr:\n{err}");
        }
    }
}

/// SIGTERM (and SIGINT) in the middle of the second segment of a paced file: exit 0 within
/// 2 s, the open segment closed completely (clean, duration shown, metadata written with
/// close_reason "stop"), every frame up to it the input's.
fn stop_mid_recording(sig: i32, tag: &str) {
    let input = input("headers_once.h264");
    let want = framemd5(&input);
    let tmp = tmpdir(tag);
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input.display()))
        .arg("--dir")
        .arg(tmp.path())
        .args(["--segment-seconds", "4"]);
    let proc = Proc::spawn(cmd);
    let closed_one = wait_until(scaled(30.0), || {
        segments(tmp.path()).iter().any(|s| s.meta.is_some())
    });
    assert!(
        closed_one,
        "no segment closed within 30 s:\n{}",
        proc.stderr_text()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let out = stop_within_two_seconds(proc, sig);

    let (mut p, recorded) = check_interrupted(tmp.path(), &want, 4.0, true);
    let segs = segments(tmp.path());
    if segs.len() < 2 {
        p.push(format!("{} segment(s), expected 2", segs.len()));
    }
    if let Some(last) = segs.last() {
        if let Some(m) = last.meta.as_ref() {
            if meta_str(m, "close_reason") != Some("stop") {
                p.push(format!(
                    "{}: close_reason {:?}, expected \"stop\"",
                    last.name,
                    m.get("close_reason")
                ));
            }
        }
    }
    if recorded >= want.len() {
        p.push("the whole input was recorded: the signal came too late to test".into());
    }
    assert_no_problems(tag, &p, tmp.path(), &text(&out.stderr));
}

#[test]
fn sigterm_closes_segment_and_exits_0() {
    stop_mid_recording(libc::SIGTERM, "sigterm");
}

#[test]
fn sigint_closes_segment_and_exits_0() {
    stop_mid_recording(libc::SIGINT, "sigint");
}

/// The synthetic test pattern (MJPEG, real time) for ~5 s with 2 s segments, then SIGTERM:
/// AVI segments that decode cleanly, 640x360 as configured by default, metadata sizes
/// (pixels and bytes) right.
#[test]
fn test_pattern_records_avi_segments() {
    let tmp = tmpdir("pattern");
    let mut cmd = dashcam();
    cmd.args(["run", "--source", "test", "--dir"])
        .arg(tmp.path())
        .args(["--segment-seconds", "2"]);
    let proc = Proc::spawn(cmd);
    let two_closed = wait_until(scaled(30.0), || {
        segments(tmp.path())
            .iter()
            .filter(|s| s.meta.is_some())
            .count()
            >= 2
    });
    assert!(
        two_closed,
        "two segments did not close within 30 s:\n{}",
        proc.stderr_text()
    );
    std::thread::sleep(Duration::from_millis(700));
    let out = stop_within_two_seconds(proc, libc::SIGTERM);

    let exp = Expect {
        codec: "mjpeg",
        width: 640,
        height: 360,
        fps: 30.0,
        gop_frames: 1,
    };
    let segs = segments(tmp.path());
    let mut p = Vec::new();
    if segs.len() < 3 {
        p.push(format!("{} segment(s), expected 3", segs.len()));
    }
    for s in &segs {
        p.extend(check_segment(s, &exp, true));
    }
    p.extend(check_sequence(&segs, &exp, 2.0, true));
    if let Some(m) = segs.last().and_then(|s| s.meta.as_ref()) {
        if meta_str(m, "close_reason") != Some("stop") {
            p.push(format!(
                "last close_reason {:?}, expected \"stop\"",
                m.get("close_reason")
            ));
        }
    }
    assert_no_problems("test pattern", &p, tmp.path(), &text(&out.stderr));
}

/// A pipe that stops delivering for longer than `--idle-timeout` gets its open segment
/// closed with close_reason "idle" while dashcam keeps running; when data comes again it
/// is recorded into new segments that start with a keyframe, and end of input exits 0.
/// Every segment holds a contiguous run of the input's frames, in order.
#[test]
fn idle_timeout_closes_segment() {
    let input = input("headers_once.h264");
    let data = fs::read(&input).expect("read input");
    let want = framemd5(&input);
    let tmp = tmpdir("idle");
    let mut cmd = dashcam();
    cmd.args(["run", "--source", "-", "--dir"])
        .arg(tmp.path())
        .args(["--segment-seconds", "60", "--idle-timeout", "1", "--fast"])
        .stdin(Stdio::piped());
    let mut proc = Proc::spawn(cmd);
    let mut stdin = proc.child.stdin.take().expect("stdin");
    let half = data.len() * 35 / 100;
    stdin.write_all(&data[..half]).expect("write first part");
    stdin.flush().expect("flush");
    let idle_closed = wait_until(scaled(15.0), || {
        segments(tmp.path()).iter().any(|s| {
            s.meta
                .as_ref()
                .is_some_and(|m| meta_str(m, "close_reason") == Some("idle"))
        })
    });
    let still_running = proc.child.try_wait().expect("try_wait").is_none();
    if idle_closed && still_running {
        stdin.write_all(&data[half..]).expect("write the rest");
    }
    drop(stdin);
    let out = proc.finish(scaled(60.0));
    let err = text(&out.stderr);
    assert_no_panic("dashcam run --idle-timeout 1", &out);
    assert!(
        idle_closed,
        "no segment closed with close_reason \"idle\" within 15 s of a pause:\n  {}\n{err}",
        listing(tmp.path())
    );
    assert!(still_running, "dashcam exited during the pause:\n{err}");
    assert!(out.status.success(), "exit status {}:\n{err}", out.status);

    let exp = Expect {
        codec: "h264",
        width: 640,
        height: 360,
        fps: 30.0,
        gop_frames: 30,
    };
    let segs = segments(tmp.path());
    let mut p = Vec::new();
    if segs.len() < 2 {
        p.push(format!("{} segment(s), expected 2 or more", segs.len()));
    }
    let mut at = 0usize;
    for s in &segs {
        p.extend(check_segment(s, &exp, true));
        let got = framemd5(&s.path);
        match got
            .first()
            .and_then(|h| want[at..].iter().position(|w| w == h))
        {
            Some(i) if want[at + i..].starts_with(&got) => at += i + got.len(),
            _ => p.push(format!(
                "{}: its {} frames are not a run of the input's frames after frame {at}",
                s.name,
                got.len()
            )),
        }
    }
    assert_no_problems("idle timeout", &p, tmp.path(), &err);
}
