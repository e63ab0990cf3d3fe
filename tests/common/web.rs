//! Helpers of the web tests: start the real binary recording with its web role on a free
//! port, and talk to it with a real HTTP client (ureq) or raw sockets.
//!
//! Included with `#[path = "common/web.rs"] mod web;` beside `mod common;`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, Proc, TestDir};

/// Where the footage comes from.
pub enum Feed {
    /// The synthetic MJPEG test pattern (live, real time, endless).
    TestPattern,
    /// An H.264 or MJPEG file written to standard input at its native rate; the pipe is
    /// kept open afterwards, so the recorder stays up (idle) like one fed by a camera.
    Stdin(PathBuf),
}

pub struct Dashcam {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub dir: TestDir,
    footage: PathBuf,
    pub config: PathBuf,
    feeder: Option<std::thread::JoinHandle<()>>,
}

/// Start `dashcam run` with `[web]` on 127.0.0.1 (a free port) plus `web_toml` lines in
/// its `[web]` table, `top_toml` before it, and `args`.
pub fn start(feed: Feed, top_toml: &str, web_toml: &str, args: &[&str]) -> Dashcam {
    start_at(None, feed, top_toml, web_toml, args)
}

/// [`start`] with the footage in `footage` (default: `footage/` in the test's directory).
pub fn start_at(
    footage: Option<PathBuf>,
    feed: Feed,
    top_toml: &str,
    web_toml: &str,
    args: &[&str],
) -> Dashcam {
    let dir = common::tmpdir("web");
    let footage = footage.unwrap_or_else(|| dir.path().join("footage"));
    let config = dir.path().join("dashcam.toml");
    std::fs::write(
        &config,
        format!("{top_toml}\n[web]\nlisten = \"127.0.0.1:0\"\n{web_toml}\n"),
    )
    .expect("write config");
    let mut cmd = common::dashcam();
    cmd.arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--dir")
        .arg(&footage)
        .args(args);
    let mut feeder = None;
    match &feed {
        Feed::TestPattern => {
            cmd.arg("--source").arg("test");
        }
        Feed::Stdin(_) => {
            cmd.arg("--source").arg("-").stdin(Stdio::piped());
        }
    }
    let mut proc = Proc::spawn(cmd);
    let footage_dir = footage;
    if let Feed::Stdin(input) = feed {
        let mut stdin = proc.child.stdin.take().expect("stdin");
        feeder = Some(std::thread::spawn(move || {
            let data = std::fs::read(&input).expect("read input");
            let _ = stdin.write_all(&data);
            // Keep the pipe open like a camera that has nothing to send: the recorder
            // stays up. The thread ends when the process does (write fails) or the test.
            loop {
                std::thread::sleep(Duration::from_millis(200));
                if stdin.write_all(&[]).is_err() {
                    break;
                }
                if stdin.flush().is_err() {
                    break;
                }
            }
        }));
    }
    let deadline = Instant::now() + common::scaled(30.0);
    let addr = loop {
        let err = proc.stderr_text();
        if let Some(rest) = err.split("serving the phone page on http://").nth(1) {
            break rest.split('/').next().expect("address").to_string();
        }
        if let Ok(Some(st)) = proc.child.try_wait() {
            panic!("dashcam exited ({st}) before serving:\n{err}");
        }
        assert!(
            Instant::now() < deadline,
            "no web server within 30 s:\n{err}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Dashcam {
        proc,
        base: format!("http://{addr}"),
        addr,
        footage: footage_dir,
        dir,
        config,
        feeder,
    }
}

impl Dashcam {
    pub fn footage(&self) -> PathBuf {
        self.footage.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn status(&self) -> Value {
        let (code, _, body) = get(&self.url("/api/status"), &[]);
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("status JSON")
    }

    pub fn segments(&self, query: &str) -> Vec<Value> {
        let (code, _, body) = get(&self.url(&format!("/api/segments{query}")), &[]);
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).expect("segments JSON");
        v["segments"].as_array().expect("segments array").clone()
    }

    /// Wait until `n` closed segments (with metadata) are listed.
    pub fn wait_closed(&self, n: usize, limit: Duration) -> Vec<Value> {
        let mut last = Vec::new();
        let ok = common::wait_until(limit, || {
            last = self
                .segments("")
                .into_iter()
                .filter(|s| s["frames"].is_u64() && s["kind"] != "saved")
                .collect();
            last.len() >= n
        });
        assert!(
            ok,
            "not {n} closed segments: {last:?}\n{}",
            self.proc.stderr_text()
        );
        last
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) -> String {
        self.proc.signal(libc::SIGTERM);
        let st = self.proc.wait_timeout(common::scaled(30.0));
        let err = self.proc.stderr_text();
        assert!(st.is_some(), "dashcam did not stop on SIGTERM:\n{err}");
        assert!(!err.contains("panicked"), "dashcam panicked:\n{err}");
        drop(self.feeder.take());
        err
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Status, headers (lower-case names) and body of a response.
pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn answer(mut r: ureq::http::Response<ureq::Body>) -> Answer {
    let code = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r
        .body_mut()
        .with_config()
        .limit(1 << 31)
        .read_to_vec()
        .unwrap_or_default();
    (code, headers, body)
}

pub fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.1.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req.call().unwrap_or_else(|e| panic!("GET {url}: {e}")))
}

pub fn head(url: &str) -> Answer {
    answer(
        agent()
            .head(url)
            .call()
            .unwrap_or_else(|e| panic!("HEAD {url}: {e}")),
    )
}

pub fn post(url: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let mut req = agent().post(url).header("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(
        req.send(serde_json::to_vec(body).expect("json"))
            .unwrap_or_else(|e| panic!("POST {url}: {e}")),
    )
}

pub fn delete(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = agent().delete(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req.call().unwrap_or_else(|e| panic!("DELETE {url}: {e}")))
}

pub fn json(a: &Answer) -> Value {
    serde_json::from_slice(&a.2)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&a.2)))
}

/// An error answer: the status and `{error, message}`.
pub fn assert_error(a: &Answer, status: u16, what: &str) {
    assert_eq!(a.0, status, "{what}: {}", String::from_utf8_lossy(&a.2));
    let v = json(a);
    assert!(v["error"].is_string(), "{what}: no error word: {v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no message: {v}"
    );
}

/// Send raw bytes and read the answer until the server closes or `limit` passes.
pub fn raw(addr: &str, request: &[u8], limit: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(limit)).expect("timeout");
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The status code of a raw answer.
pub fn raw_status(answer: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// The file of a listed segment on disk.
pub fn file_of(footage: &Path, seg: &Value) -> PathBuf {
    let name = seg["name"].as_str().expect("name");
    match seg["kind"].as_str() {
        Some("locked") => footage.join("locked").join(name),
        Some("saved") => footage.join("saved").join(name),
        _ => footage.join(name),
    }
}
