//! Configuration: built-in defaults, then a TOML file, then environment variables, then
//! command-line flags.
//!
//! It owns parsing and validation. Every error names the key, the line in the file (or the
//! environment variable) and what is allowed. Every key can come from an environment
//! variable named `DASHCAM_` + the key in capitals, a table's keys with the table's name in
//! front (`DASHCAM_SOURCE`, `DASHCAM_DIR`, `DASHCAM_CAMERA_WIDTH`, `DASHCAM_GPIO_ENABLED`):
//! the value is read as a TOML value when it is one (`60`, `true`, `["a", "b"]`) and as a
//! string otherwise. Variables that name no key are ignored. The camera password is never
//! a key: only `camera.password_file` points at it. It never touches the footage directory
//! or the camera.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub(crate) mod env;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/dashcam/dashcam.toml";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `test`, `file:PATH`, `-` (standard input), `rpicam`, `v4l2:/dev/videoN` or
    /// `rtsp://[user@]host[:port]/path`.
    pub source: String,
    /// Footage directory.
    pub dir: PathBuf,
    /// Target segment length in seconds; a segment closes at the first keyframe after it.
    pub segment_seconds: u32,
    /// Longest time in seconds between a frame's capture and its fdatasync.
    pub sync_interval: f64,
    /// Seconds without a frame after which the open segment is closed.
    pub idle_timeout: f64,
    /// Frame rate of file/pipe input whose stream carries no timing.
    pub fps: u32,
    /// Read file input as fast as possible instead of at its native rate.
    pub fast: bool,
    /// Frames the capture thread may queue ahead of the writer.
    pub queue_frames: usize,
    pub test_pattern: TestPatternConfig,
    /// What cameras are asked for (size, rate, rpicam-vid settings, RTSP connection).
    pub camera: crate::source::camera_config::CameraConfig,
    /// Loop quota: footage kept at most, bytes (`"28G"`, `"500M"` or a number).
    pub max_size: Option<SizeValue>,
    /// Loop quota: footage kept at most, percent of the file system.
    pub max_percent: Option<f64>,
    /// Free space kept on the file system (`"500M"` or `"5%"`); default 5 % or 500 MiB,
    /// whichever is larger.
    pub min_free: Option<SizeValue>,
    /// Share of the footage quota for `locked/` and `saved/`, percent.
    pub locked_max_percent: f64,
    /// When locking would pass `locked_max_percent`: `"rotate"` the oldest locked segments
    /// out, or `"refuse"` the lock.
    pub locked_full: crate::storage::quota::LockedFull,
    /// Event lock: seconds after the event that must be locked too.
    pub post_event_seconds: f64,
    /// Refuse to write unless `dir` is on a mounted drive (not the root file system).
    pub require_mount: bool,
    /// The optional GPIO role (button, status LED, ignition sense); off by default.
    pub gpio: crate::gpio::GpioConfig,
    /// The phone page and JSON API; on by default, on loopback.
    pub web: crate::web::WebConfig,
    /// Events to an MQTT broker (off without the table).
    pub mqtt: Option<crate::events::config::MqttConfig>,
    /// A still image every few seconds (off without the table).
    pub stills: Option<crate::events::config::StillsConfig>,
    /// Locked segments and clips placed into a folder for a sync tool (off without it).
    pub upload: Option<crate::events::config::UploadConfig>,
    /// Programs run on events.
    pub hooks: Vec<crate::events::config::HookConfig>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TestPatternConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// JPEG quality, 1–100.
    pub quality: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: "test".into(),
            dir: PathBuf::from("./footage"),
            segment_seconds: 60,
            sync_interval: 1.0,
            idle_timeout: 10.0,
            fps: 30,
            fast: false,
            queue_frames: 64,
            test_pattern: TestPatternConfig::default(),
            camera: crate::source::camera_config::CameraConfig::default(),
            max_size: None,
            max_percent: None,
            min_free: None,
            locked_max_percent: 30.0,
            locked_full: crate::storage::quota::LockedFull::Rotate,
            post_event_seconds: 10.0,
            require_mount: false,
            gpio: crate::gpio::GpioConfig::default(),
            web: crate::web::WebConfig::default(),
            mqtt: None,
            stills: None,
            upload: None,
            hooks: Vec::new(),
        }
    }
}

/// A size in the configuration: a number of bytes or text such as `"28G"` or `"5%"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl SizeValue {
    /// Parse; `allow_percent` for `min_free`.
    pub fn spec(&self, allow_percent: bool) -> Result<crate::disk::space::SizeSpec, String> {
        match self {
            SizeValue::Bytes(b) => Ok(crate::disk::space::SizeSpec::Bytes(*b)),
            SizeValue::Text(t) => crate::disk::space::parse_size(t, allow_percent),
        }
    }
}

impl Default for TestPatternConfig {
    fn default() -> Self {
        TestPatternConfig {
            width: 640,
            height: 360,
            fps: 30,
            quality: 80,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}{}: {message}", line.map(|l| format!(": line {l}")).unwrap_or_default())]
    Syntax {
        path: String,
        line: Option<usize>,
        message: String,
    },
    #[error("{path}{}: `{key}` {message}", line.map(|l| format!(": line {l}")).unwrap_or_default())]
    Invalid {
        path: String,
        key: String,
        line: Option<usize>,
        message: String,
    },
}

impl Config {
    /// Parse and validate TOML text; `path` is used in messages only.
    pub fn from_toml(text: &str, path: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            // Name the key when the error is about a value (`key = value` on that line).
            let key = line
                .and_then(|l| text.lines().nth(l - 1))
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim().to_string())
                .filter(|k| !k.is_empty() && !k.starts_with('#'));
            let message = e.message().trim().to_string();
            ConfigError::Syntax {
                path: path.to_string(),
                line,
                message: match key {
                    Some(k) if !message.contains(&k) => format!("`{k}`: {message}"),
                    _ => message,
                },
            }
        })?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: path.to_string(),
                line: find_key_line(text, &key),
                key,
                message,
            })?;
        Ok(config)
    }

    /// Read `path`, or `DEFAULT_CONFIG_PATH` when `None` and it exists, else the defaults;
    /// then the `DASHCAM_*` environment variables over it.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, std::env::vars())
    }

    /// [`Config::load`] with the given environment.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (text, name) = match path {
            Some(p) => (Some(p.to_path_buf()), p.display().to_string()),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => (
                Some(PathBuf::from(DEFAULT_CONFIG_PATH)),
                DEFAULT_CONFIG_PATH.to_string(),
            ),
            None => (None, "the built-in defaults".to_string()),
        };
        let text = match text {
            Some(p) => std::fs::read_to_string(&p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        Config::from_toml_and_env(&text, &name, env)
    }

    /// Parse `text` (named `path` in messages), then apply the `DASHCAM_*` variables of `env`.
    pub fn from_toml_and_env(
        text: &str,
        path: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let from_file = Config::from_toml(text, path)?;
        let overrides = env::overrides(env);
        if overrides.is_empty() {
            return Ok(from_file);
        }
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_string(),
            line: None,
            message: e.message().to_string(),
        })?;
        for o in &overrides {
            // Each variable alone first, so a wrong type names the variable.
            let alone = o.as_toml();
            let origin = format!("environment variable {}", o.var);
            Config::from_toml(&alone, &origin)?;
            o.apply(&mut table);
            log::debug!("{} sets {}", o.var, o.key());
        }
        let merged = toml::to_string(&table).map_err(|e| ConfigError::Syntax {
            path: path.to_string(),
            line: None,
            message: e.to_string(),
        })?;
        let config: Config = toml::from_str(&merged).map_err(|e| ConfigError::Syntax {
            path: format!("{path} with the DASHCAM_* environment"),
            line: None,
            message: e.message().to_string(),
        })?;
        config.validate().map_err(|(key, message)| {
            let from_env = overrides.iter().find(|o| o.key() == key);
            ConfigError::Invalid {
                path: match from_env {
                    Some(o) => format!("environment variable {}", o.var),
                    None => path.to_string(),
                },
                line: from_env.map_or_else(|| find_key_line(text, &key), |_| None),
                key,
                message,
            }
        })?;
        Ok(config)
    }

    /// Check ranges; the error is (key, what is allowed).
    pub fn validate(&self) -> Result<(), (String, String)> {
        fn bad(key: &str, msg: String) -> Result<(), (String, String)> {
            Err((key.to_string(), msg))
        }
        if let Err(e) = crate::source::SourceSpec::parse(&self.source) {
            return bad("source", e);
        }
        if !(1..=3600).contains(&self.segment_seconds) {
            return bad(
                "segment_seconds",
                format!("is {}; allowed: 1 to 3600", self.segment_seconds),
            );
        }
        if !(0.1..=10.0).contains(&self.sync_interval) {
            return bad(
                "sync_interval",
                format!("is {}; allowed: 0.1 to 10 seconds", self.sync_interval),
            );
        }
        if !(1.0..=3600.0).contains(&self.idle_timeout) {
            return bad(
                "idle_timeout",
                format!("is {}; allowed: 1 to 3600 seconds", self.idle_timeout),
            );
        }
        if !(1..=120).contains(&self.fps) {
            return bad("fps", format!("is {}; allowed: 1 to 120", self.fps));
        }
        if !(2..=1024).contains(&self.queue_frames) {
            return bad(
                "queue_frames",
                format!("is {}; allowed: 2 to 1024", self.queue_frames),
            );
        }
        let tp = &self.test_pattern;
        if tp.width < 16 || tp.width > 3840 || tp.width % 2 != 0 {
            return bad(
                "test_pattern.width",
                format!("is {}; allowed: an even number from 16 to 3840", tp.width),
            );
        }
        if tp.height < 16 || tp.height > 2160 || tp.height % 2 != 0 {
            return bad(
                "test_pattern.height",
                format!("is {}; allowed: an even number from 16 to 2160", tp.height),
            );
        }
        if !(1..=120).contains(&tp.fps) {
            return bad(
                "test_pattern.fps",
                format!("is {}; allowed: 1 to 120", tp.fps),
            );
        }
        if !(1..=100).contains(&tp.quality) {
            return bad(
                "test_pattern.quality",
                format!("is {}; allowed: 1 to 100", tp.quality),
            );
        }
        const SIZE_HELP: &str = "allowed: a size such as \"28G\" or \"500M\"";
        const FREE_HELP: &str = "allowed: a size such as \"500M\" or a percentage such as \"5%\"";
        if let Some(v) = &self.max_size {
            match v.spec(false) {
                Ok(crate::disk::space::SizeSpec::Bytes(b)) if b >= 1 << 20 => {}
                Ok(_) => return bad("max_size", format!("is below 1M; {SIZE_HELP}")),
                Err(e) => return bad("max_size", format!("is {e}; {SIZE_HELP}")),
            }
        }
        if let Some(p) = self.max_percent {
            if !(1.0..=100.0).contains(&p) {
                return bad("max_percent", format!("is {p}; allowed: 1 to 100"));
            }
        }
        if let Some(v) = &self.min_free {
            match v.spec(true) {
                Ok(crate::disk::space::SizeSpec::Percent(p)) if p > 90.0 => {
                    return bad("min_free", format!("is {p}%; allowed: at most 90%"));
                }
                Ok(_) => {}
                Err(e) => return bad("min_free", format!("is {e}; {FREE_HELP}")),
            }
        }
        if !(0.0..=90.0).contains(&self.locked_max_percent) {
            return bad(
                "locked_max_percent",
                format!("is {}; allowed: 0 to 90", self.locked_max_percent),
            );
        }
        if !(0.0..=600.0).contains(&self.post_event_seconds) {
            return bad(
                "post_event_seconds",
                format!("is {}; allowed: 0 to 600", self.post_event_seconds),
            );
        }
        self.camera.validate()?;
        self.gpio.validate()?;
        self.web.validate()?;
        if let Some(m) = &self.mqtt {
            m.validate()?;
        }
        if let Some(s) = &self.stills {
            s.validate()?;
        }
        if let Some(u) = &self.upload {
            u.validate()?;
        }
        crate::events::config::validate_hooks(&self.hooks)?;
        Ok(())
    }
}

fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()[..byte.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line on which `key` (possibly `table.key`, or `table[N].key` for the Nth
/// `[[table]]` entry) is assigned; for a key that is not in the file, the line of its
/// table.
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let (table, leaf) = match key.rsplit_once('.') {
        Some((t, l)) => (Some(t), l),
        None => (None, key),
    };
    // `hooks[2]`: the second `[[hooks]]` entry.
    let (table, entry) = match table.and_then(|t| t.strip_suffix(']')?.split_once('[')) {
        Some((t, n)) => (Some(t), n.parse::<usize>().ok()),
        None => (table, None),
    };
    let mut current_table: Option<String> = None;
    let mut entries_seen = 0;
    let mut table_line = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let name = name.trim();
            let name = match name.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                Some(array) => {
                    if Some(array.trim()) == table {
                        entries_seen += 1;
                    }
                    array.trim()
                }
                None => name,
            };
            let here = entry.is_none_or(|n| n == entries_seen);
            current_table = Some(if here {
                name.to_string()
            } else {
                String::new()
            });
            if here && Some(name) == table && table_line.is_none() {
                table_line = Some(i + 1);
            }
            continue;
        }
        let Some((k, _)) = t.split_once('=') else {
            continue;
        };
        let k = k.trim();
        let matches = match (table, current_table.as_deref()) {
            (None, None) => k == leaf,
            (Some(t), Some(c)) => t == c && k == leaf,
            (Some(t), None) => k == format!("{t}.{leaf}"),
            (None, Some(_)) => false,
        };
        if matches {
            return Some(i + 1);
        }
    }
    table_line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
        assert_eq!(
            Config::from_toml("", "x").expect("empty ok"),
            Config::default()
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = Config::from_toml("dir = \"/x\"\nsegment_secs = 5\n", "c.toml")
            .expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("segment_secs"), "{msg}");
    }

    #[test]
    fn out_of_range_names_key_line_and_range() {
        let err = Config::from_toml("\n[test_pattern]\nfps = 500\n", "c.toml").expect_err("range");
        let msg = err.to_string();
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("test_pattern.fps"), "{msg}");
        assert!(msg.contains("1 to 120"), "{msg}");
    }

    #[test]
    fn wrong_type_names_line() {
        let err = Config::from_toml("segment_seconds = \"sixty\"\n", "c.toml").expect_err("type");
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(err.to_string().contains("segment_seconds"), "{err}");
    }
}
