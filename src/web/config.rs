//! The `[web]` table of the configuration: where the phone page listens, the password file,
//! the host names it answers to, the server's limits, and the live view (`live`,
//! `preview_fps`, `max_viewers`).
//!
//! It owns the keys, their defaults and their validation (errors name the key and what is
//! allowed, like the rest of the configuration). It never opens a socket or a file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve the phone page and the JSON API at all.
    pub enabled: bool,
    /// Address and port to listen on (`0.0.0.0:8080` on a Pi with a hotspot).
    pub listen: String,
    /// File with the password hash written by `dashcam password`; none: no password.
    pub password_file: Option<PathBuf>,
    /// Host names (besides IP addresses, `localhost` and this machine's host name with
    /// and without `.local`) that requests may carry in `Host` (DNS rebinding guard).
    pub allowed_hosts: Vec<String>,
    /// Serve `/metrics` without a session even when a password is set.
    pub public_metrics: bool,
    /// Worker threads answering requests (downloads hold one each).
    pub workers: usize,
    /// Open connections at most; more are refused at once.
    pub max_connections: usize,
    /// Downloads, replays and clip streams at the same time, at most.
    pub max_streams: usize,
    /// Seconds a client has to send a request head (slow-loris guard), and keep-alive idle.
    pub header_timeout: f64,
    /// Seconds a read or write on a socket may block before the connection is dropped.
    pub io_timeout: f64,
    /// Serve the live view (`/api/live.ws`, `.m3u8`, `.mjpeg`) at all.
    pub live: bool,
    /// Frames per second of the MJPEG live view, at most (the camera's own JPEGs).
    pub preview_fps: f64,
    /// Live viewers (WebSocket and MJPEG streams) at the same time, at most.
    pub max_viewers: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            listen: "127.0.0.1:8080".into(),
            password_file: None,
            allowed_hosts: Vec::new(),
            public_metrics: false,
            workers: 12,
            max_connections: 64,
            max_streams: 8,
            header_timeout: 10.0,
            io_timeout: 20.0,
            live: true,
            preview_fps: 2.0,
            max_viewers: 3,
        }
    }
}

impl WebConfig {
    /// Check values; the error is (key, what is allowed), the key prefixed with `web.`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        fn bad(key: &str, msg: String) -> Result<(), (String, String)> {
            Err((format!("web.{key}"), msg))
        }
        if self.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "listen",
                format!(
                    "is {:?}; allowed: an address and port such as \"0.0.0.0:8080\" or \"127.0.0.1:8080\"",
                    self.listen
                ),
            );
        }
        for h in &self.allowed_hosts {
            let ok = !h.is_empty()
                && h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                return bad(
                    "allowed_hosts",
                    format!("contains {h:?}; allowed: host names such as \"dashcam.home\""),
                );
            }
        }
        if !(2..=64).contains(&self.workers) {
            return bad("workers", format!("is {}; allowed: 2 to 64", self.workers));
        }
        if !(4..=1024).contains(&self.max_connections) {
            return bad(
                "max_connections",
                format!("is {}; allowed: 4 to 1024", self.max_connections),
            );
        }
        if self.max_streams < 1 || self.max_streams >= self.workers {
            return bad(
                "max_streams",
                format!(
                    "is {}; allowed: 1 to workers - 1 ({}), so the page is always answered",
                    self.max_streams,
                    self.workers - 1
                ),
            );
        }
        if !(1.0..=600.0).contains(&self.header_timeout) {
            return bad(
                "header_timeout",
                format!("is {}; allowed: 1 to 600 seconds", self.header_timeout),
            );
        }
        if !(1.0..=600.0).contains(&self.io_timeout) {
            return bad(
                "io_timeout",
                format!("is {}; allowed: 1 to 600 seconds", self.io_timeout),
            );
        }
        if !(0.1..=30.0).contains(&self.preview_fps) {
            return bad(
                "preview_fps",
                format!(
                    "is {}; allowed: 0.1 to 30 frames per second",
                    self.preview_fps
                ),
            );
        }
        if !(1..=16).contains(&self.max_viewers) {
            return bad(
                "max_viewers",
                format!("is {}; allowed: 1 to 16", self.max_viewers),
            );
        }
        Ok(())
    }

    /// The listen address (validated).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.header_timeout)
    }

    pub fn io_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.io_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn on_by_default_on_loopback_and_valid() {
        let c = WebConfig::default();
        assert!(c.enabled);
        assert!(c.live);
        assert_eq!((c.preview_fps, c.max_viewers), (2.0, 3));
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn table_parses_and_errors_name_the_key_and_line() {
        let cfg = Config::from_toml(
            "[web]\nlisten = \"0.0.0.0:9000\"\npassword_file = \"/etc/dashcam/web.pass\"\n",
            "c.toml",
        )
        .expect("valid");
        assert_eq!(cfg.web.listen, "0.0.0.0:9000");
        assert_eq!(
            cfg.web.password_file.as_deref(),
            Some(std::path::Path::new("/etc/dashcam/web.pass"))
        );
        let err = Config::from_toml("[web]\n\nlisten = \"nowhere\"\n", "c.toml")
            .expect_err("bad listen")
            .to_string();
        assert!(err.contains("web.listen"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let err = Config::from_toml("[web]\nmax_streams = 40\n", "c.toml")
            .expect_err("streams >= workers")
            .to_string();
        assert!(err.contains("web.max_streams"), "{err}");
        let cfg = Config::from_toml(
            "[web]\nlive = false\npreview_fps = 5\nmax_viewers = 1\n",
            "c.toml",
        )
        .expect("live keys");
        assert!(!cfg.web.live);
        assert_eq!(cfg.web.preview_fps, 5.0);
        assert_eq!(cfg.web.max_viewers, 1);
        for bad in ["preview_fps = 0", "preview_fps = 60", "max_viewers = 0"] {
            let err = Config::from_toml(&format!("[web]\n{bad}\n"), "c.toml")
                .expect_err(bad)
                .to_string();
            assert!(
                err.contains(&format!("web.{}", bad.split(' ').next().unwrap_or(""))),
                "{err}"
            );
        }
        let err = Config::from_toml("[web]\nallowed_hosts = [\"a b\"]\n", "c.toml")
            .expect_err("bad host")
            .to_string();
        assert!(err.contains("web.allowed_hosts"), "{err}");
    }
}
