//! The Pi camera module: dashcam starts `rpicam-vid` itself and reads its H.264 output.
//!
//! It owns the argument list built from `[camera]` ([`rpicam_args`], checked against
//! rpicam-apps' `core/options.cpp`, `core/video_options.hpp` and
//! `encoder/h264_encoder.cpp`: `--level` takes only 4, 4.1 and 4.2, `--rotation` only 0
//! and 180, `--denoise` auto/off/cdn_off/cdn_fast/cdn_hq, `-t` defaults to 5 s so `-t 0`
//! is needed, `--inline` repeats SPS/PPS before every keyframe, `--flush` flushes every
//! frame), the child process (started with its standard output piped to us and its
//! standard error logged line by line), and the loss of it: the process exiting, crashing
//! or producing nothing for `stall_timeout` is [`SourceError::Lost`], and dropping the
//! source ends the process (SIGTERM, then SIGKILL). Frames are timed by their arrival,
//! steered by the frame rate ([`LiveClock`]), never by the SPS alone.
//!
//! It never restarts the process itself: the capture loop opens a new source after a
//! backoff.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::frame::{BufferPool, Frame};
use crate::source::camera_config::CameraConfig;
use crate::source::child_reader::{DeadlineReader, Stalled};
use crate::source::h264_stream::H264Stream;
use crate::source::live_clock::LiveClock;
use crate::source::{Retry, Source, SourceError};

/// What rpicam-vid prints when libcamera finds no camera (core/rpicam_app.cpp).
const NO_CAMERA_TEXT: &str = "no cameras available";
/// The message dashcam gives for it.
pub const NO_CAMERA: &str =
    "no camera detected: check the ribbon cable and `rpicam-hello --list-cameras`";
/// Lines of the camera's standard error kept to explain its end.
const STDERR_TAIL: usize = 6;
/// The camera gets this long at least for its first frame (libcamera start-up).
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(10);
/// How long a camera process may take to end after SIGTERM before SIGKILL.
const TERM_WAIT: Duration = Duration::from_secs(2);

/// The H.264 level for a size and rate: the lowest of rpicam-vid's levels (4, 4.1, 4.2)
/// whose macroblock limits it fits. 4 and 4.1 share frame limits; 4.1 allows the higher
/// bit rates (50 Mbit/s), so it is used up to 1080p30, and 4.2 above (1080p50/60).
pub fn h264_level(width: u32, height: u32, fps: f64) -> &'static str {
    let mbs = f64::from(width.div_ceil(16) * height.div_ceil(16));
    // Level 4.1: MaxFS 8192, MaxMBPS 245760 (ITU-T H.264 table A-1).
    if mbs <= 8192.0 && mbs * fps <= 245_760.0 {
        "4.1"
    } else {
        "4.2"
    }
}

/// The frame rate as a fraction.
pub fn rate_of(fps: f64) -> (u32, u32) {
    if (fps - fps.round()).abs() < 1e-6 {
        (fps.round() as u32, 1)
    } else {
        ((fps * 1000.0).round() as u32, 1000)
    }
}

fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v}")
    }
}

/// The arguments of `rpicam-vid` (without the program name).
pub fn rpicam_args(c: &CameraConfig) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-t".into(),
        "0".into(),
        "-n".into(),
        "--codec".into(),
        "h264".into(),
        "--inline".into(),
        "--flush".into(),
        "--width".into(),
        c.width.to_string(),
        "--height".into(),
        c.height.to_string(),
        "--framerate".into(),
        number(c.framerate),
        "--intra".into(),
        c.keyframe_period().to_string(),
        "--level".into(),
        h264_level(c.width, c.height, c.framerate).into(),
    ];
    if let Some(b) = c.bitrate {
        a.extend(["--bitrate".into(), b.to_string()]);
    }
    if c.camera != 0 {
        a.extend(["--camera".into(), c.camera.to_string()]);
    }
    if c.hflip {
        a.push("--hflip".into());
    }
    if c.vflip {
        a.push("--vflip".into());
    }
    if c.rotation != 0 {
        a.extend(["--rotation".into(), c.rotation.to_string()]);
    }
    if c.denoise != "auto" {
        a.extend(["--denoise".into(), c.denoise.clone()]);
    }
    a.extend(c.extra_args.iter().cloned());
    a.extend(["-o".into(), "-".into()]);
    a
}

/// The last lines of the camera's standard error, and whether it said "no camera".
#[derive(Default)]
struct StderrTail {
    lines: VecDeque<String>,
    no_camera: bool,
    /// The camera closed its standard error (it has ended).
    done: bool,
}

pub struct RpicamSource {
    name: String,
    child: Child,
    stream: H264Stream,
    clock: LiveClock,
    tail: Arc<Mutex<StderrTail>>,
    started: Instant,
    stall: Duration,
    stalled: Stalled,
    frames: u64,
}

impl RpicamSource {
    /// Start the camera process.
    pub fn open(c: &CameraConfig, pool: Option<BufferPool>) -> Result<RpicamSource, SourceError> {
        let name = c.command.clone();
        let args = rpicam_args(c);
        info!("starting {name} {}", args.join(" "));
        let mut child = Command::new(&c.command)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "cannot start {name}: not found (install rpicam-apps: `sudo apt install rpicam-apps`)"
                    )
                } else {
                    format!("cannot start {name}: {e}")
                };
                SourceError::lost(name.clone(), why, Retry::Later)
            })?;
        let tail = Arc::new(Mutex::new(StderrTail::default()));
        if let Some(err) = child.stderr.take() {
            let tail = tail.clone();
            let prog = name.clone();
            let spawned = std::thread::Builder::new()
                .name("camera-log".into())
                .spawn(move || log_stderr(err, &prog, &tail));
            if let Err(e) = spawned {
                warn!("cannot follow {name}'s messages: {e}");
            }
        }
        let Some(out) = child.stdout.take() else {
            end_child(&mut child);
            return Err(SourceError::lost(name, "no standard output", Retry::Later));
        };
        let stall = Duration::from_secs_f64(c.stall_timeout);
        let reader: DeadlineReader<ChildStdout> =
            DeadlineReader::new(out, stall.max(FIRST_FRAME_WAIT), stall);
        let stalled = reader.stalled();
        let rate = rate_of(c.framerate);
        let mut stream = H264Stream::new(Box::new(reader), name.clone(), rate, false, true);
        if let Some(pool) = pool {
            stream = stream.with_pool(pool);
        }
        Ok(RpicamSource {
            name,
            child,
            stream,
            clock: LiveClock::new(rate),
            tail,
            started: Instant::now(),
            stall,
            stalled,
            frames: 0,
        })
    }

    /// Why the camera is gone, in words, after its output ended or stalled.
    fn why_lost(&mut self, stalled: bool) -> String {
        let status = if stalled {
            None
        } else {
            wait_a_little(&mut self.child, TERM_WAIT)
        };
        // Its last messages may still be on their way through the pipe.
        let end = Instant::now() + Duration::from_millis(500);
        let tail = loop {
            let t = match self.tail.lock() {
                Ok(t) => (t.no_camera, t.lines.back().cloned(), t.done),
                Err(p) => {
                    let t = p.into_inner();
                    (t.no_camera, t.lines.back().cloned(), t.done)
                }
            };
            if t.2 || stalled || Instant::now() >= end {
                break t;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if tail.0 {
            return NO_CAMERA.to_string();
        }
        let mut why = if stalled {
            format!(
                "{} stopped producing frames ({:.0} s without one)",
                self.name,
                self.stall.as_secs_f64()
            )
        } else {
            match status {
                Some(st) => format!("{} {}", self.name, describe_exit(st)),
                None => format!("{} closed its output", self.name),
            }
        };
        if self.frames == 0 {
            why.push_str(&format!(
                " before its first frame ({:.1} s after start)",
                self.started.elapsed().as_secs_f64()
            ));
        }
        if let Some(last) = tail.1 {
            why.push_str(&format!("; its last message: {last}"));
        }
        why
    }
}

impl Source for RpicamSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        match self.stream.next_frame() {
            Ok(Some(mut frame)) => {
                self.frames += 1;
                let dts = self.clock.stamp(frame.captured);
                frame.pts = dts + (frame.pts - frame.dts);
                frame.dts = dts;
                Ok(Some(frame))
            }
            Ok(None) => {
                let stalled = self.stalled.get();
                Err(SourceError::lost(
                    self.name.clone(),
                    self.why_lost(stalled),
                    Retry::Later,
                ))
            }
            Err(SourceError::Io { source, .. }) => Err(SourceError::lost(
                self.name.clone(),
                format!("reading {}'s output: {source}", self.name),
                Retry::Later,
            )),
            Err(e) => Err(e),
        }
    }

    fn is_live(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("Pi camera ({}, pid {})", self.name, self.child.id())
    }
}

impl Drop for RpicamSource {
    fn drop(&mut self) {
        end_child(&mut self.child);
    }
}

/// SIGTERM, a short wait, then SIGKILL; always reaped.
fn end_child(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    if wait_a_little(child, TERM_WAIT).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn wait_a_little(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

fn describe_exit(st: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}{}", signal_name(sig)),
        _ => format!("ended ({st})"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

fn log_stderr(err: std::process::ChildStderr, prog: &str, tail: &Mutex<StderrTail>) {
    for line in BufReader::new(err).lines() {
        let Ok(line) = line else { break };
        let line = line.trim_end().to_string();
        if line.is_empty() {
            continue;
        }
        let no_camera = line.contains(NO_CAMERA_TEXT);
        if no_camera {
            warn!("{prog}: {line}: {NO_CAMERA}");
        } else if line.contains("ERROR") {
            warn!("{prog}: {line}");
        } else {
            info!("{prog}: {line}");
        }
        let mut t = match tail.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        t.no_camera |= no_camera;
        if t.lines.len() == STDERR_TAIL {
            t.lines.pop_front();
        }
        t.lines.push_back(line);
    }
    match tail.lock() {
        Ok(mut t) => t.done = true,
        Err(p) => p.into_inner().done = true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(f: impl FnOnce(&mut CameraConfig)) -> String {
        let mut c = CameraConfig::default();
        f(&mut c);
        assert!(c.validate().is_ok(), "{c:?}");
        rpicam_args(&c).join(" ")
    }

    /// The argument lists for several `[camera]` settings, as rpicam-apps documents its
    /// options (core/options.cpp, core/video_options.hpp, encoder/h264_encoder.cpp).
    #[test]
    fn argument_lists_follow_rpicam_apps_options() {
        assert_eq!(
            args_of(|_| {}),
            "-t 0 -n --codec h264 --inline --flush --width 1920 --height 1080 --framerate 30 --intra 30 --level 4.1 -o -"
        );
        assert_eq!(
            args_of(|c| {
                c.width = 1280;
                c.height = 720;
                c.framerate = 60.0;
                c.keyframe_interval = 2.0;
                c.bitrate = Some(8_000_000);
                c.hflip = true;
                c.vflip = true;
                c.denoise = "cdn_fast".into();
            }),
            "-t 0 -n --codec h264 --inline --flush --width 1280 --height 720 --framerate 60 --intra 120 --level 4.1 --bitrate 8000000 --hflip --vflip --denoise cdn_fast -o -"
        );
        assert_eq!(
            args_of(|c| {
                c.framerate = 50.0;
                c.rotation = 180;
                c.camera = 1;
                c.extra_args = vec!["--awb".into(), "indoor".into()];
            }),
            "-t 0 -n --codec h264 --inline --flush --width 1920 --height 1080 --framerate 50 --intra 50 --level 4.2 --camera 1 --rotation 180 --awb indoor -o -"
        );
        assert_eq!(
            args_of(|c| {
                c.width = 640;
                c.height = 480;
                c.framerate = 29.97;
                c.keyframe_interval = 0.5;
            }),
            "-t 0 -n --codec h264 --inline --flush --width 640 --height 480 --framerate 29.97 --intra 15 --level 4.1 -o -"
        );
    }

    #[test]
    fn levels_by_size_and_rate() {
        assert_eq!(h264_level(1920, 1080, 30.0), "4.1");
        assert_eq!(h264_level(1920, 1080, 60.0), "4.2");
        assert_eq!(h264_level(1280, 720, 120.0), "4.2");
        assert_eq!(h264_level(1280, 720, 60.0), "4.1");
        assert_eq!(rate_of(29.97), (29970, 1000));
        assert_eq!(rate_of(25.0), (25, 1));
    }
}
