//! The `[camera]` table of the configuration: what the camera sources are asked for.
//!
//! It owns the keys, their defaults and their validation (errors name the key and what is
//! allowed, like the rest of the configuration). The same picture settings serve every
//! camera: `rpicam-vid`'s arguments are built from them ([`crate::source::rpicam`]), a
//! V4L2 device is negotiated towards them, an RTSP camera is only asked how to connect.
//! It never opens a device, starts a process or reads the password file.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    /// Picture width and height in pixels.
    pub width: u32,
    pub height: u32,
    /// Frames per second asked of the camera (rpicam-vid `--framerate`, V4L2 `S_PARM`).
    pub framerate: f64,
    /// H.264 bit rate in bits per second (rpicam-vid `--bitrate`); none: the encoder's.
    pub bitrate: Option<u32>,
    /// Seconds between keyframes (rpicam-vid `--intra`); segments are cut at keyframes.
    pub keyframe_interval: f64,
    pub hflip: bool,
    pub vflip: bool,
    /// 0 or 180 degrees.
    pub rotation: u32,
    /// rpicam-vid `--denoise`: auto, off, cdn_off, cdn_fast, cdn_hq.
    pub denoise: String,
    /// Which camera of several (rpicam-vid `--camera`).
    pub camera: u32,
    /// The rpicam-vid program (a name looked up in `PATH`, or a path).
    pub command: String,
    /// More arguments for rpicam-vid, put before `-o -`.
    pub extra_args: Vec<String>,
    /// Seconds without a frame after which a running camera is taken as lost (and its
    /// process restarted, its device or connection opened again).
    pub stall_timeout: f64,
    /// Raw (YUYV/NV12) V4L2 cameras: JPEG frames per second encoded in software (the Pi
    /// Zero's budget), and their size and quality.
    pub raw_fps: f64,
    pub raw_width: u32,
    pub raw_height: u32,
    pub raw_quality: u8,
    /// RTSP: `"tcp"` (interleaved in the RTSP connection) or `"udp"`.
    pub rtsp_transport: RtspTransport,
    /// RTSP user name (instead of `user@` in the URL).
    pub username: Option<String>,
    /// RTSP password, read from this file (a mounted Secret, `/etc/dashcam/camera-password`
    /// with mode 0600). Never on the command line or in the configuration itself.
    pub password_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    Tcp,
    Udp,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            width: 1920,
            height: 1080,
            framerate: 30.0,
            bitrate: None,
            keyframe_interval: 1.0,
            hflip: false,
            vflip: false,
            rotation: 0,
            denoise: "auto".into(),
            camera: 0,
            command: "rpicam-vid".into(),
            extra_args: Vec::new(),
            stall_timeout: 5.0,
            raw_fps: 2.0,
            raw_width: 640,
            raw_height: 360,
            raw_quality: 80,
            rtsp_transport: RtspTransport::Tcp,
            username: None,
            password_file: None,
        }
    }
}

/// rpicam-vid's `--denoise` modes (rpicam-apps core/options.cpp).
pub const DENOISE_MODES: &[&str] = &["auto", "off", "cdn_off", "cdn_fast", "cdn_hq"];

impl CameraConfig {
    /// Check values; the error is (key, what is allowed), the key prefixed with `camera.`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        fn bad(key: &str, msg: String) -> Result<(), (String, String)> {
            Err((format!("camera.{key}"), msg))
        }
        for (key, v, max) in [("width", self.width, 4096), ("height", self.height, 4096)] {
            if v < 16 || v > max || v % 2 != 0 {
                return bad(
                    key,
                    format!("is {v}; allowed: an even number from 16 to {max}"),
                );
            }
        }
        if !(1.0..=240.0).contains(&self.framerate) {
            return bad(
                "framerate",
                format!("is {}; allowed: 1 to 240", self.framerate),
            );
        }
        if let Some(b) = self.bitrate {
            if !(100_000..=50_000_000).contains(&b) {
                return bad(
                    "bitrate",
                    format!("is {b}; allowed: 100000 to 50000000 bits per second"),
                );
            }
        }
        if !(0.1..=60.0).contains(&self.keyframe_interval) {
            return bad(
                "keyframe_interval",
                format!("is {}; allowed: 0.1 to 60 seconds", self.keyframe_interval),
            );
        }
        if self.rotation != 0 && self.rotation != 180 {
            return bad(
                "rotation",
                format!("is {}; allowed: 0 or 180", self.rotation),
            );
        }
        if !DENOISE_MODES.contains(&self.denoise.as_str()) {
            return bad(
                "denoise",
                format!(
                    "is {:?}; allowed: {}",
                    self.denoise,
                    DENOISE_MODES.join(", ")
                ),
            );
        }
        if self.command.trim().is_empty() || self.command.contains('\0') {
            return bad(
                "command",
                "is empty; allowed: a program such as \"rpicam-vid\"".into(),
            );
        }
        if self.extra_args.iter().any(|a| a.contains('\0')) {
            return bad("extra_args", "has a NUL byte".into());
        }
        if !(1.0..=120.0).contains(&self.stall_timeout) {
            return bad(
                "stall_timeout",
                format!("is {}; allowed: 1 to 120 seconds", self.stall_timeout),
            );
        }
        if !(0.1..=30.0).contains(&self.raw_fps) {
            return bad(
                "raw_fps",
                format!("is {}; allowed: 0.1 to 30", self.raw_fps),
            );
        }
        for (key, v) in [
            ("raw_width", self.raw_width),
            ("raw_height", self.raw_height),
        ] {
            if !(16..=4096).contains(&v) || v % 2 != 0 {
                return bad(
                    key,
                    format!("is {v}; allowed: an even number from 16 to 4096"),
                );
            }
        }
        if !(1..=100).contains(&self.raw_quality) {
            return bad(
                "raw_quality",
                format!("is {}; allowed: 1 to 100", self.raw_quality),
            );
        }
        if self.username.as_deref().is_some_and(str::is_empty) {
            return bad("username", "is empty; leave it out instead".into());
        }
        Ok(())
    }

    /// Frames between keyframes at the configured rate (at least 1).
    pub fn keyframe_period(&self) -> u32 {
        ((self.framerate * self.keyframe_interval).round() as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_key() {
        assert!(CameraConfig::default().validate().is_ok());
        assert_eq!(CameraConfig::default().keyframe_period(), 30);
        let c = CameraConfig {
            rotation: 90,
            ..CameraConfig::default()
        };
        let (key, msg) = c.validate().expect_err("rotation 90");
        assert_eq!(key, "camera.rotation");
        assert!(msg.contains("0 or 180"), "{msg}");
        let c = CameraConfig {
            denoise: "strong".into(),
            ..CameraConfig::default()
        };
        assert_eq!(c.validate().expect_err("denoise").0, "camera.denoise");
    }
}
