//! The configuration tables of the events role: `[mqtt]`, `[stills]`, `[upload]` and
//! `[[hooks]]`.
//!
//! It owns their keys, defaults and validation (errors name the key and what is allowed,
//! like the rest of the configuration). It never connects, runs or writes anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::state::event::KINDS;

/// `[mqtt]`: publish events to a broker.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://HOST[:PORT]` (1883) or `mqtts://HOST[:PORT]` (8883).
    pub url: String,
    /// Client identifier; default `dashcam-HOSTNAME`.
    pub client_id: Option<String>,
    /// A file holding `user:password` on its first line.
    pub credentials_file: Option<PathBuf>,
    /// Topic prefix: events on `PREFIX/event/KIND`, the retained status on `PREFIX/status`.
    pub prefix: String,
    /// Seconds between keep-alive pings (the broker declares us gone after 1.5 times it).
    pub keepalive: u32,
    /// Events kept while the broker is unreachable; older ones are dropped past it.
    pub outbox: usize,
    /// `mqtts://` only: a PEM file of the certificate authority that signed the broker's
    /// certificate (default: the system's roots).
    pub ca_file: Option<PathBuf>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: String::new(),
            client_id: None,
            credentials_file: None,
            prefix: "dashcam".into(),
            keepalive: 30,
            outbox: 1000,
            ca_file: None,
        }
    }
}

/// `[stills]`: a still image every `interval` seconds.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StillsConfig {
    pub interval: f64,
    /// Default: `stills/` in the footage directory.
    pub dir: Option<PathBuf>,
    /// Stills kept: a count (`500`) or a size (`"50M"`); the oldest go first.
    pub keep: SizeOrCount,
    /// H.264 stills: width in pixels (height follows the aspect); never wider than the
    /// frame. MJPEG stills are the camera's own JPEG at its own size.
    pub width: u32,
    /// H.264 stills: JPEG quality, 1–100.
    pub quality: u8,
    /// H.264 stills: CPU share of one core they may use; the interval stretches to keep
    /// it (a 1080p still costs about a second of a Pi Zero: see README "Stills").
    pub max_cpu_percent: f64,
}

/// Seconds between stills by default: every second, as the frame-loop service did; for
/// H.264 `max_cpu_percent` stretches it on a slow CPU.
pub const DEFAULT_STILLS_INTERVAL: f64 = 1.0;
/// The CPU share H.264 stills may take by default.
pub const DEFAULT_STILLS_CPU_PERCENT: f64 = 10.0;

impl Default for StillsConfig {
    fn default() -> Self {
        StillsConfig {
            interval: DEFAULT_STILLS_INTERVAL,
            dir: None,
            keep: SizeOrCount::Text("100M".into()),
            width: 640,
            quality: 80,
            max_cpu_percent: DEFAULT_STILLS_CPU_PERCENT,
        }
    }
}

impl StillsConfig {
    pub fn dir_in(&self, footage: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| footage.join("stills"))
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.interval)
    }
}

/// What goes into the upload folder.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UploadWhat {
    /// Clips written into `saved/`.
    Clips,
    /// Segments moved into `locked/`.
    Locked,
    Both,
}

impl UploadWhat {
    pub fn clips(self) -> bool {
        matches!(self, UploadWhat::Clips | UploadWhat::Both)
    }
    pub fn locked(self) -> bool {
        matches!(self, UploadWhat::Locked | UploadWhat::Both)
    }
}

/// `[upload]`: a folder that a sync tool ships somewhere.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    pub dir: PathBuf,
    pub what: UploadWhat,
    /// Program and arguments run after each placement, with the placed file's path as
    /// the last argument (and in `DASHCAM_UPLOAD_PATH`).
    pub command: Vec<String>,
    /// Seconds the command may run before it is killed.
    pub timeout: f64,
    /// The folder holds at most this much footage of its own (`"2G"`); past it a file is
    /// not placed (a warning), recording goes on.
    pub max_size: SizeOrCount,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            dir: PathBuf::new(),
            what: UploadWhat::Both,
            command: Vec::new(),
            timeout: 300.0,
            max_size: SizeOrCount::Text("2G".into()),
        }
    }
}

/// One `[[hooks]]` entry: a program run for some kinds of event.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Event kinds (`["segment_closed", "locked"]`), or `["*"]` for all.
    pub on: Vec<String>,
    /// Program and arguments; the event is on standard input (JSON) and in `DASHCAM_*`
    /// environment variables.
    pub command: Vec<String>,
    /// Seconds a run may take before it is killed.
    #[serde(default = "default_hook_timeout")]
    pub timeout: f64,
}

fn default_hook_timeout() -> f64 {
    10.0
}

impl HookConfig {
    pub fn wants(&self, kind: &str) -> bool {
        self.on.iter().any(|k| k == "*" || k == kind)
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

/// A count (a plain number) or a size (`"50M"`); see [`SizeOrCount::limit`] and
/// [`SizeOrCount::bytes`].
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SizeOrCount {
    Number(u64),
    Text(String),
}

/// A limit on what a folder keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Count(u64),
    Bytes(u64),
}

impl SizeOrCount {
    /// A number is a count of files, text a size.
    pub fn limit(&self) -> Result<Limit, String> {
        match self {
            SizeOrCount::Number(0) => {
                Err("is 0; allowed: a count of at least 1 or a size such as \"50M\"".into())
            }
            SizeOrCount::Number(n) => Ok(Limit::Count(*n)),
            SizeOrCount::Text(_) => self.bytes().map(Limit::Bytes),
        }
    }

    /// A number is bytes, text a size.
    pub fn bytes(&self) -> Result<u64, String> {
        match self {
            SizeOrCount::Number(n) => Ok(*n),
            SizeOrCount::Text(t) => match crate::disk::space::parse_size(t, false) {
                Ok(crate::disk::space::SizeSpec::Bytes(b)) => Ok(b),
                Ok(_) => Err(format!(
                    "is {t:?}; allowed: a count or a size such as \"50M\""
                )),
                Err(e) => Err(format!(
                    "is {e}; allowed: a count or a size such as \"50M\""
                )),
            },
        }
    }
}

type Invalid = Result<(), (String, String)>;

fn bad(key: String, msg: String) -> Invalid {
    Err((key, msg))
}

fn check_command(key: String, command: &[String], may_be_empty: bool) -> Invalid {
    match command.first() {
        None if may_be_empty => Ok(()),
        None => bad(
            key,
            "is empty; allowed: a program and its arguments, e.g. [\"/usr/local/bin/on-event\"]"
                .into(),
        ),
        Some(p) if p.trim().is_empty() || p.contains('\0') => bad(
            key,
            format!("starts with {p:?}; allowed: a program name or path"),
        ),
        Some(_) => Ok(()),
    }
}

impl MqttConfig {
    pub fn validate(&self) -> Invalid {
        let key = |k: &str| format!("mqtt.{k}");
        match crate::events::mqtt::url::BrokerUrl::parse(&self.url) {
            Err(e) => return bad(key("url"), e),
            Ok(u) if u.tls && !cfg!(feature = "mqtt-tls") => {
                return bad(
                    key("url"),
                    format!(
                        "is {:?}: {}",
                        self.url,
                        crate::events::mqtt::no_tls_message()
                    ),
                )
            }
            Ok(_) => {}
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 23 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return bad(
                    key("client_id"),
                    format!("is {id:?}; allowed: 1 to 23 printable ASCII characters (MQTT 3.1.1)"),
                );
            }
        }
        let p = self.prefix.as_str();
        if p.is_empty() || p.contains(['+', '#', '\0']) || p.starts_with('/') || p.ends_with('/') {
            return bad(
                key("prefix"),
                format!("is {p:?}; allowed: a topic without wildcards (+ #) and without a leading or trailing /, e.g. \"dashcam\" or \"car/dashcam\""),
            );
        }
        if !(5..=3600).contains(&self.keepalive) {
            return bad(
                key("keepalive"),
                format!("is {}; allowed: 5 to 3600 seconds", self.keepalive),
            );
        }
        if !(1..=100_000).contains(&self.outbox) {
            return bad(
                key("outbox"),
                format!("is {}; allowed: 1 to 100000 events", self.outbox),
            );
        }
        Ok(())
    }

    /// The client identifier: `client_id`, else `dashcam-HOSTNAME` (cut to 23 bytes).
    pub fn client_id(&self) -> String {
        if let Some(id) = &self.client_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host: String = host
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let mut id = if host.is_empty() {
            "dashcam".to_string()
        } else {
            format!("dashcam-{host}")
        };
        id.truncate(23);
        id
    }
}

impl StillsConfig {
    pub fn validate(&self) -> Invalid {
        let key = |k: &str| format!("stills.{k}");
        if !(1.0..=3600.0).contains(&self.interval) {
            return bad(
                key("interval"),
                format!("is {}; allowed: 1 to 3600 seconds", self.interval),
            );
        }
        if let Err(e) = self.keep.limit() {
            return bad(key("keep"), e);
        }
        if !(16..=3840).contains(&self.width) {
            return bad(
                key("width"),
                format!("is {}; allowed: 16 to 3840 pixels", self.width),
            );
        }
        if !(1..=100).contains(&self.quality) {
            return bad(
                key("quality"),
                format!("is {}; allowed: 1 to 100", self.quality),
            );
        }
        if !(1.0..=100.0).contains(&self.max_cpu_percent) {
            return bad(
                key("max_cpu_percent"),
                format!("is {}; allowed: 1 to 100", self.max_cpu_percent),
            );
        }
        Ok(())
    }
}

impl UploadConfig {
    pub fn validate(&self) -> Invalid {
        let key = |k: &str| format!("upload.{k}");
        if self.dir.as_os_str().is_empty() {
            return bad(
                key("dir"),
                "is missing; allowed: the folder a sync tool watches, e.g. \"/media/footage/upload\""
                    .into(),
            );
        }
        check_command(key("command"), &self.command, true)?;
        if !(1.0..=86400.0).contains(&self.timeout) {
            return bad(
                key("timeout"),
                format!("is {}; allowed: 1 to 86400 seconds", self.timeout),
            );
        }
        match self.max_size.bytes() {
            Ok(b) if b >= 1 << 20 => Ok(()),
            Ok(_) => bad(
                key("max_size"),
                "allowed: a size of at least 1M such as \"2G\"".into(),
            ),
            Err(e) => bad(key("max_size"), e),
        }
    }
}

/// Check every `[[hooks]]` entry; keys are named `hooks[N].key` (N from 1).
pub fn validate_hooks(hooks: &[HookConfig]) -> Invalid {
    for (i, h) in hooks.iter().enumerate() {
        let key = |k: &str| format!("hooks[{}].{k}", i + 1);
        if h.on.is_empty() {
            return bad(
                key("on"),
                format!(
                    "is empty; allowed: event kinds, or [\"*\"] for all: {}",
                    KINDS.join(", ")
                ),
            );
        }
        for k in &h.on {
            if k != "*" && !KINDS.contains(&k.as_str()) {
                return bad(
                    key("on"),
                    format!("has {k:?}; allowed: \"*\" or {}", KINDS.join(", ")),
                );
            }
        }
        check_command(key("command"), &h.command, false)?;
        if !(0.1..=3600.0).contains(&h.timeout) {
            return bad(
                key("timeout"),
                format!("is {}; allowed: 0.1 to 3600 seconds", h.timeout),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn tables_parse_and_are_off_by_default() {
        let c = Config::default();
        assert!(c.mqtt.is_none() && c.stills.is_none() && c.upload.is_none());
        assert!(c.hooks.is_empty());
        let c = Config::from_toml(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n[stills]\nkeep = 20\n[upload]\ndir = \"/u\"\nwhat = \"clips\"\n[[hooks]]\non = [\"segment_closed\"]\ncommand = [\"/bin/true\"]\n[[hooks]]\non = [\"*\"]\ncommand = [\"logger\"]\ntimeout = 2\n",
            "c.toml",
        )
        .expect("valid");
        let m = c.mqtt.expect("mqtt");
        assert_eq!(m.prefix, "dashcam");
        assert!(m.client_id().starts_with("dashcam"));
        assert!(m.client_id().len() <= 23);
        assert_eq!(
            c.stills.expect("stills").interval,
            super::DEFAULT_STILLS_INTERVAL
        );
        assert!(!c.upload.expect("upload").what.locked());
        assert_eq!(c.hooks.len(), 2);
        assert_eq!(c.hooks[0].timeout, 10.0);
        assert!(c.hooks[1].wants("clip_saved"));
    }

    #[test]
    fn bad_values_name_key_line_and_what_is_allowed() {
        for (text, key, allowed, line) in [
            ("[mqtt]\nurl = \"http://x\"\n", "mqtt.url", "mqtt://", 2),
            ("[mqtt]\nurl = \"mqtt://h\"\nprefix = \"a/#\"\n", "mqtt.prefix", "wildcards", 3),
            ("[stills]\ninterval = 0.2\n", "stills.interval", "1 to 3600", 2),
            ("[stills]\nkeep = \"lots\"\n", "stills.keep", "count", 2),
            ("[upload]\nwhat = \"clips\"\n", "upload.dir", "sync tool", 0),
            (
                "[[hooks]]\non = [\"segment_closed\"]\ncommand = [\"/bin/true\"]\n[[hooks]]\non = [\"segment_close\"]\ncommand = [\"/bin/true\"]\n",
                "hooks[2].on",
                "segment_closed",
                5,
            ),
            ("[[hooks]]\non = [\"*\"]\ncommand = []\n", "hooks[1].command", "program", 3),
        ] {
            let err = Config::from_toml(text, "c.toml").expect_err(text);
            let msg = err.to_string();
            assert!(msg.contains(key), "{text}: {msg}");
            assert!(msg.contains(allowed), "{text}: {msg}");
            if line > 0 {
                assert!(msg.contains(&format!("line {line}")), "{text}: {msg}");
            }
        }
    }
}
