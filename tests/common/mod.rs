//! Shared helpers of the integration tests.
//!
//! Output is judged only with independent tools: ffprobe and ffmpeg (run natively, even
//! when the dashcam binary runs under an emulator), plus a minimal MP4 box walker written
//! here. Nothing of the crate under test is used to read what it wrote.
//!
//! Environment:
//! - `DASHCAM_RUNNER`: command prefix for the dashcam binary (e.g. `qemu-arm-static`).
//!   Without it, `CARGO_TARGET_<TRIPLE>_RUNNER` is used when its triple matches the
//!   architecture the tests were built for.
//! - `DASHCAM_TEST_INPUTS`: directory of the generated inputs (default `tests/inputs`).
//! - `DASHCAM_TEST_SLOWDOWN`: multiply the few time limits by this (default 1, 4 with a runner).
//! - `DASHCAM_KEEP_TMP`: keep every test's temporary directory and print its path.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Ticks per second of the stream clock used in the metadata (`start_pts`).
pub const TIMESCALE: f64 = 90_000.0;

pub const TEST_INPUTS: &[&str] = &[
    "pi1080.h264",
    "headers_once.h264",
    "bframes.h264",
    "mjpeg422.mjpeg",
    "truncated.h264",
    "garbage.bin",
    "res_change.h264",
];

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn inputs_dir() -> PathBuf {
    match std::env::var_os("DASHCAM_TEST_INPUTS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => repo_dir().join("tests").join("inputs"),
    }
}

/// Path of a generated input; generates the test set first if any file is missing.
pub fn input(name: &str) -> PathBuf {
    ensure_inputs();
    let p = inputs_dir().join(name);
    assert!(
        p.is_file(),
        "input {} missing after generation",
        p.display()
    );
    p
}

/// Run `scripts/make-test-inputs.sh` once per test process when a file is missing. The
/// script itself takes a lock and writes atomically, so parallel test processes are safe.
pub fn ensure_inputs() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        require_tools();
        let dir = inputs_dir();
        if TEST_INPUTS.iter().all(|n| dir.join(n).is_file()) {
            return;
        }
        let out = Command::new("bash")
            .arg(repo_dir().join("scripts").join("make-test-inputs.sh"))
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("running scripts/make-test-inputs.sh");
        assert!(
            out.status.success(),
            "scripts/make-test-inputs.sh failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// ffmpeg and ffprobe must be installed (scripts/test.sh installs them).
pub fn require_tools() {
    static OK: OnceLock<()> = OnceLock::new();
    OK.get_or_init(|| {
        for tool in ["ffmpeg", "ffprobe"] {
            let found = Command::new(tool)
                .arg("-version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(
                found,
                "{tool} not found: run scripts/test.sh or `apt-get install ffmpeg`"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------
// Running dashcam
// ---------------------------------------------------------------------------------------

/// The command prefix the dashcam binary runs under, if any.
pub fn runner() -> Option<Vec<String>> {
    fn words(s: &str) -> Option<Vec<String>> {
        let w: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        (!w.is_empty()).then_some(w)
    }
    if let Ok(r) = std::env::var("DASHCAM_RUNNER") {
        return words(&r);
    }
    let arch = std::env::consts::ARCH;
    let os = std::env::consts::OS;
    for (k, v) in std::env::vars() {
        let Some(triple) = k
            .strip_prefix("CARGO_TARGET_")
            .and_then(|t| t.strip_suffix("_RUNNER"))
        else {
            continue;
        };
        let triple = triple.to_ascii_lowercase();
        if triple.starts_with(arch) && triple.contains(os) {
            return words(&v);
        }
    }
    None
}

/// Factor for the few wall-clock limits (an emulated binary is much slower).
pub fn slowdown() -> f64 {
    if let Some(f) = std::env::var("DASHCAM_TEST_SLOWDOWN")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        return f.max(1.0);
    }
    if runner().is_some() {
        4.0
    } else {
        1.0
    }
}

pub fn scaled(secs: f64) -> Duration {
    Duration::from_secs_f64(secs * slowdown())
}

/// `dashcam` (under the runner, if one is set) with logging at info level.
pub fn dashcam() -> Command {
    let bin = env!("CARGO_BIN_EXE_dashcam");
    let mut cmd = match runner() {
        Some(r) => {
            let mut c = Command::new(&r[0]);
            c.args(&r[1..]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.env("RUST_LOG", "info").env_remove("RUST_BACKTRACE");
    cmd.stdin(Stdio::null());
    cmd
}

/// Human-readable form of a command for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// A running child whose stdout and stderr are collected in the background. Killed when
/// dropped (a failing test leaves no process behind).
pub struct Proc {
    pub child: Child,
    pub what: String,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    pub started: Instant,
}

fn collect(mut r: impl Read + Send + 'static, buf: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    })
}

impl Proc {
    /// Spawn `cmd` with stdout and stderr piped (stdin as the command has it).
    pub fn spawn(mut cmd: Command) -> Proc {
        let what = describe(&cmd);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Proc {
            child,
            what,
            stdout,
            stderr,
            readers,
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; it has not been reaped (we hold the Child).
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(r, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Wait at most `limit` for the exit; `None` if still running.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait for the exit, killing the process (and failing) after `limit`.
    pub fn finish(mut self, limit: Duration) -> Output {
        let status = match self.wait_timeout(limit) {
            Some(st) => st,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self.stderr_text();
                panic!(
                    "{} did not finish within {:?}; killed. stderr:\n{}",
                    self.what, limit, err
                );
            }
        };
        self.output_with(status)
    }

    /// SIGKILL now and reap.
    pub fn kill9(mut self) -> Output {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait after SIGKILL");
        self.output_with(status)
    }

    fn output_with(mut self, status: ExitStatus) -> Output {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Output {
            status,
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run to completion with a generous time limit.
pub fn run_to_end(cmd: Command, limit: Duration) -> Output {
    Proc::spawn(cmd).finish(limit)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Fail if the product panicked.
pub fn assert_no_panic(what: &str, out: &Output) {
    let err = text(&out.stderr);
    assert!(
        !err.contains("panicked"),
        "{what}: dashcam panicked:\n{err}"
    );
}

/// `dashcam run --source file:IN --dir DIR --segment-seconds N --fast EXTRA...` to the end.
pub fn record_file(input: &Path, dir: &Path, segment_seconds: u32, extra: &[&str]) -> Output {
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input.display()))
        .arg("--dir")
        .arg(dir)
        .arg("--segment-seconds")
        .arg(segment_seconds.to_string())
        .arg("--fast")
        .args(extra);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(300.0));
    assert_no_panic(&what, &out);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        text(&out.stderr)
    );
    out
}

/// A temporary directory of one test, removed at the end unless `DASHCAM_KEEP_TMP` is set.
pub struct TestDir {
    path: PathBuf,
    _guard: Option<tempfile::TempDir>,
}

impl TestDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A fresh temporary directory.
pub fn tmpdir(tag: &str) -> TestDir {
    let d = tempfile::Builder::new()
        .prefix(&format!("dashcam-test-{tag}-"))
        .tempdir()
        .expect("tempdir");
    if std::env::var_os("DASHCAM_KEEP_TMP").is_some() {
        let path = d.keep();
        eprintln!("{tag}: keeping {}", path.display());
        return TestDir { path, _guard: None };
    }
    TestDir {
        path: d.path().to_path_buf(),
        _guard: Some(d),
    }
}

// ---------------------------------------------------------------------------------------
// Segments on disk
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Segment {
    pub path: PathBuf,
    /// File name, e.g. `20250101-120000_000001.mp4`.
    pub name: String,
    /// The NNNNNN of the name.
    pub seq: u64,
    /// The .json beside it, parsed, if it exists.
    pub meta: Option<Value>,
    /// The .json exists but does not parse.
    pub meta_error: Option<String>,
}

impl Segment {
    pub fn meta(&self) -> &Value {
        self.meta.as_ref().unwrap_or_else(|| {
            panic!(
                "{}: no metadata ({})",
                self.name,
                self.meta_error.as_deref().unwrap_or("no .json file")
            )
        })
    }
    pub fn is_mp4(&self) -> bool {
        self.name.ends_with(".mp4")
    }
    pub fn bytes(&self) -> u64 {
        fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }
}

/// Parse `YYYYMMDD-HHMMSS_NNNNNN.(mp4|avi)`; the sequence number if the name fits.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let (stem, ext) = name.rsplit_once('.')?;
    if ext != "mp4" && ext != "avi" {
        return None;
    }
    let b = stem.as_bytes();
    if b.len() != 22 || b[8] != b'-' || b[15] != b'_' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..8) && digits(9..15) && digits(16..22)) {
        return None;
    }
    stem[16..].parse().ok()
}

/// Every segment file in `dir`, in sequence order; none while `dir` is not there yet (the
/// recorder makes it a moment after it starts: under qemu, after a test's first look).
pub fn segments(dir: &Path) -> Vec<Segment> {
    let mut v = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return v,
        Err(e) => panic!("read_dir {}: {e}", dir.display()),
    };
    for e in entries {
        let e = e.expect("dir entry");
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(seq) = parse_segment_name(&name) else {
            continue;
        };
        let path = e.path();
        let json = path.with_extension("json");
        let (meta, meta_error) = match fs::read(&json) {
            Ok(b) => match serde_json::from_slice::<Value>(&b) {
                Ok(v) => (Some(v), None),
                Err(err) => (None, Some(format!("{}: {err}", json.display()))),
            },
            Err(_) => (None, None),
        };
        v.push(Segment {
            path,
            name,
            seq,
            meta,
            meta_error,
        });
    }
    v.sort_by_key(|s| s.seq);
    v
}

/// Names of all files in `dir` (for messages).
pub fn listing(dir: &Path) -> String {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                    format!("{} ({len} bytes)", e.file_name().to_string_lossy())
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.join("\n  ")
}

/// Poll until `f` is true, at most `limit`.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// ffprobe / ffmpeg
// ---------------------------------------------------------------------------------------

fn tool_output(cmd: &mut Command) -> Output {
    require_tools();
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)))
}

/// What `ffprobe -v error FILE` prints (empty when the container is clean).
pub fn probe_errors(path: &Path) -> String {
    let out = tool_output(Command::new("ffprobe").args(["-v", "error"]).arg(path));
    let mut s = text(&out.stdout);
    s.push_str(&text(&out.stderr));
    if !out.status.success() && s.is_empty() {
        s = format!("ffprobe exited with {}", out.status);
    }
    s.trim().to_string()
}

/// What `ffmpeg -v error -i FILE -f null -` prints (empty when every frame decodes cleanly).
pub fn decode_errors(path: &Path) -> String {
    let out = tool_output(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(["-f", "null", "-"]),
    );
    let mut s = text(&out.stdout);
    s.push_str(&text(&out.stderr));
    if !out.status.success() && s.is_empty() {
        s = format!("ffmpeg exited with {}", out.status);
    }
    s.trim().to_string()
}

/// `ffprobe -show_entries SECTION=KEYS -of default=nw=1` as key → value (first occurrence).
pub fn probe_entries(path: &Path, extra: &[&str], entries: &str) -> BTreeMap<String, String> {
    let out = tool_output(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(extra)
            .args(["-show_entries", entries, "-of", "default=nw=1"])
            .arg(path),
    );
    let mut m = BTreeMap::new();
    for line in text(&out.stdout).lines() {
        if let Some((k, v)) = line.split_once('=') {
            m.entry(k.trim().to_string())
                .or_insert_with(|| v.trim().to_string());
        }
    }
    m
}

/// Container duration in seconds (`format=duration`); `None` when ffprobe shows N/A.
pub fn format_duration(path: &Path) -> Option<f64> {
    probe_entries(path, &[], "format=duration")
        .get("duration")
        .and_then(|d| d.parse().ok())
}

/// Video packets as ffprobe counts them (`-count_packets`, `nb_read_packets`).
pub fn packet_count(path: &Path) -> u64 {
    probe_entries(path, &["-count_packets"], "stream=nb_read_packets")
        .get("nb_read_packets")
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamInfo {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub pix_fmt: String,
}

pub fn stream_info(path: &Path) -> StreamInfo {
    let m = probe_entries(path, &[], "stream=codec_name,width,height,pix_fmt");
    StreamInfo {
        codec: m.get("codec_name").cloned().unwrap_or_default(),
        width: m.get("width").and_then(|v| v.parse().ok()).unwrap_or(0),
        height: m.get("height").and_then(|v| v.parse().ok()).unwrap_or(0),
        pix_fmt: m.get("pix_fmt").cloned().unwrap_or_default(),
    }
}

/// Flags of the first video packet carry K (keyframe, from the container's index).
pub fn first_packet_is_key(path: &Path) -> bool {
    probe_entries(path, &["-read_intervals", "%+#1"], "packet=flags")
        .get("flags")
        .is_some_and(|f| f.starts_with('K'))
}

/// The first decoded frame is a key frame (decoder's view).
pub fn first_frame_is_key(path: &Path) -> bool {
    probe_entries(path, &["-read_intervals", "%+#1"], "frame=key_frame")
        .get("key_frame")
        .is_some_and(|k| k == "1")
}

fn fps_mode_flag() -> &'static str {
    static FLAG: OnceLock<&'static str> = OnceLock::new();
    FLAG.get_or_init(|| {
        let out = tool_output(Command::new("ffmpeg").args(["-hide_banner", "-h", "long"]));
        if text(&out.stdout).contains("-fps_mode") {
            "-fps_mode"
        } else {
            "-vsync"
        }
    })
}

/// MD5 of every decoded video frame, in output order (`-f framemd5`, hash column only).
pub fn framemd5(path: &Path) -> Vec<String> {
    framemd5_with(path, &[])
}

/// Like [`framemd5`], but frames keep their own size when the resolution changes
/// (`-autoscale 0`; by default ffmpeg scales every frame to the first frame's size).
pub fn framemd5_native_size(path: &Path) -> Vec<String> {
    framemd5_with(path, &["-autoscale", "0"])
}

/// The frame hashes ffmpeg decodes from `path`, with `extra` output options.
fn framemd5_with(path: &Path, extra: &[&str]) -> Vec<String> {
    let out = tool_output(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(["-map", "0:v:0"])
            .args(extra)
            .args([fps_mode_flag(), "passthrough"])
            .args(["-f", "framemd5", "-"]),
    );
    text(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit(',').next())
        .map(|h| h.trim().to_string())
        .collect()
}

/// Frame hashes of several files, concatenated in order.
pub fn framemd5_all(paths: &[&Path]) -> Vec<String> {
    paths.iter().flat_map(|p| framemd5(p)).collect()
}

/// Explain how two hash lists differ (empty if equal).
pub fn compare_hashes(what: &str, got: &[String], want: &[String]) -> Option<String> {
    if got == want {
        return None;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    Some(format!(
        "{what}: {} decoded frames, expected {}; first difference at frame {first}",
        got.len(),
        want.len()
    ))
}

/// Length of the common prefix of two hash lists.
pub fn common_prefix(a: &[String], b: &[String]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

// ---------------------------------------------------------------------------------------
// MP4 boxes (independent minimal walker)
// ---------------------------------------------------------------------------------------

/// Top-level boxes of an MP4 file as (type, offset, size). A box that runs past the end
/// of the file is reported as `Err`.
pub fn mp4_top_boxes(data: &[u8]) -> Result<Vec<(String, usize, usize)>, String> {
    boxes_in(data, 0, data.len())
}

fn boxes_in(data: &[u8], start: usize, end: usize) -> Result<Vec<(String, usize, usize)>, String> {
    let mut v = Vec::new();
    let mut pos = start;
    while pos < end {
        if end - pos < 8 {
            return Err(format!("{} stray bytes at offset {pos}", end - pos));
        }
        let size32 = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned();
        let size = match size32 {
            0 => end - pos,
            1 => {
                if end - pos < 16 {
                    return Err(format!("truncated large box header at {pos}"));
                }
                u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap()) as usize
            }
            n => n,
        };
        if size < 8 || pos + size > end {
            return Err(format!(
                "box '{kind}' at offset {pos} of size {size} runs past the end ({end})"
            ));
        }
        v.push((kind, pos, size));
        pos += size;
    }
    Ok(v)
}

/// The fragment structure of a fragmented MP4: number of samples of each `moof`.
#[derive(Debug, Default)]
pub struct Fragments {
    pub top: Vec<String>,
    pub samples_per_fragment: Vec<u32>,
    pub has_mvex: bool,
}

pub fn mp4_fragments(path: &Path) -> Result<Fragments, String> {
    let data = fs::read(path).map_err(|e| e.to_string())?;
    let top = mp4_top_boxes(&data)?;
    let mut f = Fragments {
        top: top.iter().map(|b| b.0.clone()).collect(),
        ..Default::default()
    };
    for (kind, off, size) in &top {
        let body = (off + 8, off + size);
        match kind.as_str() {
            "moov" => {
                f.has_mvex = boxes_in(&data, body.0, body.1)?
                    .iter()
                    .any(|b| b.0 == "mvex");
            }
            "moof" => {
                let mut n = 0u32;
                for (k, o, s) in boxes_in(&data, body.0, body.1)? {
                    if k != "traf" {
                        continue;
                    }
                    for (k2, o2, s2) in boxes_in(&data, o + 8, o + s)? {
                        if k2 == "trun" && s2 >= 16 {
                            n += u32::from_be_bytes(data[o2 + 12..o2 + 16].try_into().unwrap());
                        }
                    }
                }
                f.samples_per_fragment.push(n);
            }
            _ => {}
        }
    }
    Ok(f)
}

// ---------------------------------------------------------------------------------------
// Per-segment checks
// ---------------------------------------------------------------------------------------

/// What a recording is expected to contain.
#[derive(Clone, Debug)]
pub struct Expect {
    pub codec: &'static str,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// Frames from one keyframe to the next.
    pub gop_frames: u32,
}

impl Expect {
    pub fn ext(&self) -> &'static str {
        if self.codec == "h264" {
            "mp4"
        } else {
            "avi"
        }
    }
    pub fn frame_s(&self) -> f64 {
        1.0 / self.fps
    }
}

pub fn meta_f64(m: &Value, key: &str) -> Option<f64> {
    m.get(key).and_then(Value::as_f64)
}
pub fn meta_i64(m: &Value, key: &str) -> Option<i64> {
    m.get(key).and_then(Value::as_i64)
}
pub fn meta_str<'a>(m: &'a Value, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

/// Checks of one segment file that do not depend on its neighbours. Returns the problems
/// found (empty when all hold). `closed`: the segment must have metadata.
pub fn check_segment(seg: &Segment, exp: &Expect, closed: bool) -> Vec<String> {
    let mut p = Vec::new();
    let n = &seg.name;
    if !seg.name.ends_with(exp.ext()) {
        p.push(format!("{n}: expected a .{} file", exp.ext()));
    }
    let e = probe_errors(&seg.path);
    if !e.is_empty() {
        p.push(format!("{n}: ffprobe -v error printed:\n{e}"));
    }
    let e = decode_errors(&seg.path);
    if !e.is_empty() {
        p.push(format!(
            "{n}: ffmpeg -v error decode printed:\n{}",
            first_lines(&e, 8)
        ));
    }
    if !first_packet_is_key(&seg.path) {
        p.push(format!("{n}: first packet is not flagged K (keyframe)"));
    }
    if !first_frame_is_key(&seg.path) {
        p.push(format!("{n}: first decoded frame is not a key frame"));
    }
    let info = stream_info(&seg.path);
    if info.codec != exp.codec || info.width != exp.width || info.height != exp.height {
        p.push(format!(
            "{n}: ffprobe sees {} {}x{}, expected {} {}x{}",
            info.codec, info.width, info.height, exp.codec, exp.width, exp.height
        ));
    }
    if seg.is_mp4() {
        match mp4_fragments(&seg.path) {
            Err(e) => p.push(format!("{n}: MP4 box structure: {e}")),
            Ok(f) => {
                if f.top.first().map(String::as_str) != Some("ftyp") {
                    p.push(format!("{n}: first box is not ftyp: {:?}", f.top));
                }
                if !f.has_mvex {
                    p.push(format!("{n}: moov has no mvex (not a fragmented MP4)"));
                }
                let limit = (exp.fps.round() as u32) + 2;
                if let Some(max) = f.samples_per_fragment.iter().max() {
                    if *max > limit {
                        p.push(format!(
                            "{n}: a fragment holds {max} frames (> ~1 s = {limit}); per fragment: {:?}",
                            f.samples_per_fragment
                        ));
                    }
                }
            }
        }
    }
    if !closed {
        return p;
    }
    let Some(m) = seg.meta.as_ref() else {
        p.push(format!(
            "{n}: no metadata: {}",
            seg.meta_error.as_deref().unwrap_or("no .json beside it")
        ));
        return p;
    };
    let packets = packet_count(&seg.path);
    let want = |p: &mut Vec<String>, ok: bool, what: String| {
        if !ok {
            p.push(format!("{n}: metadata {what}"));
        }
    };
    want(
        &mut p,
        meta_str(m, "name") == Some(seg.name.as_str())
            || meta_str(m, "name") == seg.name.rsplit_once('.').map(|x| x.0),
        format!("name {:?} is not the file's name", m.get("name")),
    );
    want(
        &mut p,
        m.get("sequence").and_then(Value::as_u64) == Some(seg.seq),
        format!(
            "sequence {:?} is not the name's {}",
            m.get("sequence"),
            seg.seq
        ),
    );
    want(
        &mut p,
        m.get("frames").and_then(Value::as_u64) == Some(packets),
        format!(
            "frames {:?} differs from ffprobe's packet count {packets}",
            m.get("frames")
        ),
    );
    want(
        &mut p,
        m.get("bytes").and_then(Value::as_u64) == Some(seg.bytes()),
        format!(
            "bytes {:?} differs from the file size {}",
            m.get("bytes"),
            seg.bytes()
        ),
    );
    want(
        &mut p,
        meta_str(m, "codec") == Some(exp.codec),
        format!("codec {:?}, expected {:?}", m.get("codec"), exp.codec),
    );
    want(
        &mut p,
        m.get("width").and_then(Value::as_u64) == Some(u64::from(info.width))
            && m.get("height").and_then(Value::as_u64) == Some(u64::from(info.height)),
        format!(
            "size {:?}x{:?} differs from ffprobe's {}x{}",
            m.get("width"),
            m.get("height"),
            info.width,
            info.height
        ),
    );
    want(
        &mut p,
        m.get("partial").and_then(Value::as_bool).is_some(),
        format!("partial {:?} is not a bool", m.get("partial")),
    );
    want(
        &mut p,
        m.get("dropped_frames").and_then(Value::as_u64).is_some(),
        format!(
            "dropped_frames {:?} is not a count",
            m.get("dropped_frames")
        ),
    );
    want(
        &mut p,
        meta_i64(m, "start_pts").is_some(),
        format!("start_pts {:?} is not an integer", m.get("start_pts")),
    );
    let reasons = [
        "duration",
        "idle",
        "stop",
        "end_of_input",
        "format_change",
        "size_limit",
        "error",
    ];
    want(
        &mut p,
        meta_str(m, "close_reason").is_some_and(|r| reasons.contains(&r)),
        format!(
            "close_reason {:?} is not one of {reasons:?}",
            m.get("close_reason")
        ),
    );
    // start_wall (RFC 3339) and start_unix_ms agree.
    match (meta_str(m, "start_wall"), meta_i64(m, "start_unix_ms")) {
        (Some(w), Some(ms)) => match chrono::DateTime::parse_from_rfc3339(w) {
            Ok(t) => want(
                &mut p,
                (t.timestamp_millis() - ms).abs() <= 1000,
                format!("start_wall {w} and start_unix_ms {ms} disagree"),
            ),
            Err(e) => p.push(format!(
                "{n}: metadata start_wall {w:?} is not RFC 3339: {e}"
            )),
        },
        _ => p.push(format!(
            "{n}: metadata start_wall {:?} / start_unix_ms {:?} missing",
            m.get("start_wall"),
            m.get("start_unix_ms")
        )),
    }
    // Durations: the container's (ffprobe) and the metadata's agree within one frame.
    match (format_duration(&seg.path), meta_f64(m, "duration_s")) {
        (Some(d), Some(md)) => want(
            &mut p,
            (d - md).abs() <= exp.frame_s() + 1e-3,
            format!("duration_s {md} differs from ffprobe's duration {d} by more than a frame"),
        ),
        (None, _) => p.push(format!(
            "{n}: ffprobe shows no duration (format=duration N/A)"
        )),
        (_, None) => p.push(format!(
            "{n}: metadata duration_s {:?} missing",
            m.get("duration_s")
        )),
    }
    // fps: measured over the segment; for these constant-rate inputs within 10 %.
    match meta_f64(m, "fps") {
        Some(f) if packets > 1 => want(
            &mut p,
            (f - exp.fps).abs() <= 0.1 * exp.fps,
            format!("fps {f} is not within 10 % of the stream's {}", exp.fps),
        ),
        Some(_) => {}
        None => p.push(format!("{n}: metadata fps {:?} missing", m.get("fps"))),
    }
    p
}

pub fn first_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    if lines.len() <= n {
        s.to_string()
    } else {
        format!(
            "{}\n... ({} more lines)",
            lines[..n].join("\n"),
            lines.len() - n
        )
    }
}

/// Checks across consecutive closed segments: sequence numbers, durations against the
/// target, and timeline continuity.
///
/// Continuity is judged from two sources: each segment's start on the stream clock is the
/// metadata's `start_pts` (90 kHz), and its length is what ffprobe counts (packets times
/// the nominal frame interval) and shows (`format=duration`). The next segment must start
/// where this one ends, within one frame interval, by both measures.
pub fn check_sequence(
    segs: &[Segment],
    exp: &Expect,
    segment_seconds: f64,
    last_may_be_short: bool,
) -> Vec<String> {
    let mut p = Vec::new();
    let frame = exp.frame_s();
    let gop = f64::from(exp.gop_frames) * frame;
    for w in segs.windows(2) {
        if w[1].seq != w[0].seq + 1 {
            p.push(format!(
                "sequence numbers not consecutive: {} then {}",
                w[0].name, w[1].name
            ));
        }
    }
    for (i, s) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        let Some(d) = format_duration(&s.path) else {
            continue; // reported by check_segment
        };
        let lo = segment_seconds - 0.5 * frame;
        let hi = segment_seconds + gop + 0.5 * frame;
        if last && last_may_be_short {
            if d > hi || d <= 0.0 {
                p.push(format!(
                    "{} (last): duration {d:.3} s not in (0, {hi:.3}]",
                    s.name
                ));
            }
        } else if d < lo || d > hi {
            p.push(format!(
                "{}: duration {d:.3} s not within one GOP of the target: [{lo:.3}, {hi:.3}]",
                s.name
            ));
        }
    }
    for w in segs.windows(2) {
        let (Some(a), Some(b)) = (w[0].meta.as_ref(), w[1].meta.as_ref()) else {
            continue;
        };
        let (Some(pa), Some(pb)) = (meta_i64(a, "start_pts"), meta_i64(b, "start_pts")) else {
            continue;
        };
        let step = (pb - pa) as f64 / TIMESCALE;
        let counted = packet_count(&w[0].path) as f64 * frame;
        // A live source may drop frames (reported in the metadata): they leave gaps.
        let dropped = [a, b]
            .iter()
            .filter_map(|m| m.get("dropped_frames").and_then(Value::as_u64))
            .sum::<u64>() as f64;
        if step - counted > frame * (1.0 + dropped) + 1e-3 || counted - step > frame + 1e-3 {
            p.push(format!(
                "{} -> {}: next start_pts is {step:.4} s later, but {} holds {counted:.4} s of frames (gap or overlap > 1 frame)",
                w[0].name, w[1].name, w[0].name
            ));
        }
        if let Some(d) = format_duration(&w[0].path) {
            if (step - d).abs() > frame + 1e-3 {
                p.push(format!(
                    "{} -> {}: next start_pts is {step:.4} s later, but ffprobe's duration of {} is {d:.4} s (gap or overlap > 1 frame)",
                    w[0].name, w[1].name, w[0].name
                ));
            }
        }
    }
    p
}

pub fn assert_no_problems(what: &str, problems: &[String], dir: &Path, stderr: &str) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n- {}\n\nfiles:\n  {}\n\ndashcam stderr (last lines):\n{}",
        problems.len(),
        problems.join("\n- "),
        listing(dir),
        last_lines(stderr, 30)
    );
}

pub fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
