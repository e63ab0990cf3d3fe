//! A small Chrome DevTools Protocol client for the browser tests: Debian's Chromium,
//! headless, at a phone viewport with touch, driven over its WebSocket (tungstenite,
//! synchronous, a dev-dependency only). No browser is downloaded: `/usr/bin/chromium`
//! from Debian's `chromium` package (scripts/test.sh installs it).
//!
//! Why Rust and not Python: the test stays a plain `cargo test` with no interpreter
//! packages to install, and a CDP client needs only `call`, events kept only for the
//! console and the Network domain, and a few helpers (evaluate, tap, screenshot), about
//! 200 lines.
//!
//! Included with `#[path = "common/cdp.rs"] mod cdp;`.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// The flags this machine needs (see the machine notes): no sandbox as root, no GPU, no
/// network chatter (the closed network refuses it).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    "--lang=en-GB",
];

pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
    /// Console messages and exceptions of the page.
    pub console: Vec<String>,
    /// `Network.*` events of the page (after `Network.enable`), as DevTools sent them.
    pub network: Vec<Value>,
}

pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

impl Browser {
    /// Start Chromium with a fresh profile and open one page at `width`x`height` CSS px
    /// (device scale 2, mobile, touch).
    pub fn launch(width: u32, height: u32) -> Browser {
        let exe = chromium().expect("Debian's chromium (apt-get install chromium)");
        let profile = tempfile::Builder::new()
            .prefix("dashcam-chromium-")
            .tempdir()
            .expect("profile dir");
        let child = Command::new(exe)
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .env("LANGUAGE", "en_GB")
            .env("LANG", "en_GB.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(p), Some(path)) = (lines.next(), lines.next()) {
                    break (p.trim().to_string(), path.trim().to_string());
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not open its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let stream = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect DevTools");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .unwrap_or_else(|e| panic!("DevTools handshake: {e}"));
        let mut b = Browser {
            child,
            ws,
            next_id: 1,
            session: String::new(),
            _profile: profile,
            console: Vec::new(),
            network: Vec::new(),
        };
        let target = b.call_browser("Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = b.call_browser(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        b.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        b.call("Page.enable", json!({}));
        b.call("Runtime.enable", json!({}));
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 2, "mobile": true }),
        );
        b.call("Emulation.setLocaleOverride", json!({ "locale": "en-GB" }));
        b.call(
            "Emulation.setTouchEmulationEnabled",
            json!({ "enabled": true, "maxTouchPoints": 5 }),
        );
        b
    }

    fn send(&mut self, msg: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = msg;
        msg["id"] = json!(id);
        self.ws
            .send(Message::text(msg.to_string()))
            .expect("send to DevTools");
        id
    }

    fn wait_reply(&mut self, id: u64, what: &str) -> Value {
        loop {
            let m = self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("{what}: reading DevTools: {e}"));
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).expect("DevTools JSON");
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    panic!("{what}: {e}");
                }
                return v["result"].clone();
            }
            match v["method"].as_str() {
                Some("Runtime.consoleAPICalled") => {
                    let args: Vec<String> = v["params"]["args"]
                        .as_array()
                        .map(|a| a.iter().map(|x| x["value"].to_string()).collect())
                        .unwrap_or_default();
                    self.console.push(args.join(" "));
                }
                Some(m) if m.starts_with("Network.") => self.network.push(v),
                Some("Runtime.exceptionThrown") => {
                    self.console
                        .push(format!("EXCEPTION {}", v["params"]["exceptionDetails"]));
                }
                _ => {}
            }
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(json!({ "method": method, "params": params }));
        self.wait_reply(id, method)
    }

    /// A command to the page's session.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id =
            self.send(json!({ "method": method, "params": params, "sessionId": self.session }));
        self.wait_reply(id, method)
    }

    /// Evaluate `js` in the page (promises awaited) and return its value.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Poll `js` until it is true, at most `limit`.
    pub fn wait_for(&mut self, js: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.eval(js) == json!(true) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        assert!(
            self.wait_for(
                "document.readyState === 'complete'",
                Duration::from_secs(30)
            ),
            "{url} did not load"
        );
    }

    /// Tap the centre of the first element matching `selector` with a finger (touch
    /// events), after scrolling it into view. Fails if it is hidden or covered.
    pub fn tap(&mut self, selector: &str) {
        let js = format!(
            r#"(() => {{
                const e = document.querySelector({sel});
                if (!e) return null;
                e.scrollIntoView({{block: 'center'}});
                const r = e.getBoundingClientRect();
                if (r.width === 0 || r.height === 0) return null;
                const x = r.left + r.width / 2, y = r.top + r.height / 2;
                const top = document.elementFromPoint(x, y);
                return {{x, y, hit: !!top && (top === e || e.contains(top))}};
            }})()"#,
            sel = serde_json::to_string(selector).expect("selector")
        );
        let at = self.eval(&js);
        assert!(!at.is_null(), "{selector}: not on the page or not visible");
        assert_eq!(at["hit"], true, "{selector}: covered by another element");
        let (x, y) = (
            at["x"].as_f64().unwrap_or(0.0),
            at["y"].as_f64().unwrap_or(0.0),
        );
        let point = json!([{ "x": x, "y": y }]);
        self.call(
            "Input.dispatchTouchEvent",
            json!({ "type": "touchStart", "touchPoints": point }),
        );
        self.call(
            "Input.dispatchTouchEvent",
            json!({ "type": "touchEnd", "touchPoints": [] }),
        );
    }

    /// Text content of the first element matching `selector`.
    pub fn text(&mut self, selector: &str) -> String {
        let js = format!(
            "(document.querySelector({}) || {{}}).textContent || ''",
            serde_json::to_string(selector).expect("selector")
        );
        self.eval(&js).as_str().unwrap_or("").to_string()
    }

    /// Save a PNG of the viewport.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let data = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("png data"))
            .expect("base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, data).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots go: `target/web-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("web-screenshots")
}
