//! The `[gpio]` table of the configuration: which chip and lines, their polarity, and the
//! timings of the button and the ignition sense.
//!
//! It owns the keys, their defaults and their validation (errors name the key and what is
//! allowed, like the rest of the configuration). It never opens a device.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Highest line offset accepted (a Pi's main chip has 54 lines; expanders fewer).
pub const MAX_LINE: u32 = 1023;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GpioConfig {
    /// Start the GPIO role at all.
    pub enabled: bool,
    /// The GPIO character device: a path (`/dev/gpiochip0`) or a name (`gpiochip0`).
    pub chip: String,
    /// Line offset of the push button (short press: lock the event; long press: shut down).
    pub button_line: Option<u32>,
    /// Line offset of the status LED.
    pub led_line: Option<u32>,
    /// Line offset of the ignition (or power) sense input.
    pub ignition_line: Option<u32>,
    /// The button pulls the line low when pressed (a button to ground, internal pull-up).
    pub button_active_low: bool,
    /// The ignition input is low while the ignition is on (e.g. behind an optocoupler).
    pub ignition_active_low: bool,
    /// The LED lights when the line is low.
    pub led_active_low: bool,
    /// Debounce period of the inputs, done by the kernel, in milliseconds.
    pub debounce_ms: u32,
    /// A press held at least this long is a long press (clean shutdown), in seconds.
    pub long_press_seconds: f64,
    /// Seconds the ignition must stay off before recording stops (parking, engine cranking).
    pub stop_delay: f64,
    /// Seconds after such a stop before `shutdown_command` runs; the ignition coming back
    /// first cancels it and recording resumes.
    pub shutdown_delay: f64,
    /// Program and arguments run after a long press and after `shutdown_delay` with the
    /// ignition off, e.g. `["/usr/bin/systemctl", "poweroff"]`. Empty: none.
    pub shutdown_command: Vec<String>,
}

impl Default for GpioConfig {
    fn default() -> Self {
        GpioConfig {
            enabled: false,
            chip: "/dev/gpiochip0".into(),
            button_line: None,
            led_line: None,
            ignition_line: None,
            button_active_low: true,
            ignition_active_low: false,
            led_active_low: false,
            debounce_ms: 20,
            long_press_seconds: 3.0,
            stop_delay: 5.0,
            shutdown_delay: 60.0,
            shutdown_command: Vec::new(),
        }
    }
}

impl GpioConfig {
    /// Check values; the error is (key, what is allowed), the key prefixed with `gpio.`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        fn bad(key: &str, msg: String) -> Result<(), (String, String)> {
            Err((format!("gpio.{key}"), msg))
        }
        if self.chip.trim().is_empty() || self.chip.contains('\0') {
            return bad(
                "chip",
                format!(
                    "is {:?}; allowed: a GPIO character device such as \"/dev/gpiochip0\" or \"gpiochip0\"",
                    self.chip
                ),
            );
        }
        let lines = [
            ("button_line", self.button_line),
            ("led_line", self.led_line),
            ("ignition_line", self.ignition_line),
        ];
        for (key, line) in lines {
            if let Some(l) = line {
                if l > MAX_LINE {
                    return bad(
                        key,
                        format!("is {l}; allowed: a line offset from 0 to {MAX_LINE}"),
                    );
                }
            }
        }
        for (i, (ka, a)) in lines.iter().enumerate() {
            for (kb, b) in &lines[i + 1..] {
                if let (Some(a), Some(b)) = (a, b) {
                    if a == b {
                        return bad(
                            kb,
                            format!(
                                "is {b}, the same line as gpio.{ka}; allowed: a different line"
                            ),
                        );
                    }
                }
            }
        }
        if self.enabled && lines.iter().all(|(_, l)| l.is_none()) {
            return bad(
                "enabled",
                "is true but no line is set; allowed: set at least one of gpio.button_line, gpio.led_line, gpio.ignition_line (or enabled = false)".into(),
            );
        }
        if self.debounce_ms > 1000 {
            return bad(
                "debounce_ms",
                format!("is {}; allowed: 0 to 1000 milliseconds", self.debounce_ms),
            );
        }
        if !(0.5..=30.0).contains(&self.long_press_seconds) {
            return bad(
                "long_press_seconds",
                format!("is {}; allowed: 0.5 to 30 seconds", self.long_press_seconds),
            );
        }
        if !(0.0..=3600.0).contains(&self.stop_delay) {
            return bad(
                "stop_delay",
                format!("is {}; allowed: 0 to 3600 seconds", self.stop_delay),
            );
        }
        if !(0.0..=86400.0).contains(&self.shutdown_delay) {
            return bad(
                "shutdown_delay",
                format!("is {}; allowed: 0 to 86400 seconds", self.shutdown_delay),
            );
        }
        if let Some(first) = self.shutdown_command.first() {
            if !first.starts_with('/') {
                return bad(
                    "shutdown_command",
                    format!(
                        "starts with {first:?}; allowed: an absolute program path first, e.g. [\"/usr/bin/systemctl\", \"poweroff\"], or [] for none"
                    ),
                );
            }
        }
        Ok(())
    }

    /// The chip as a device path (`gpiochip0` → `/dev/gpiochip0`).
    pub fn chip_path(&self) -> PathBuf {
        if self.chip.contains('/') {
            PathBuf::from(&self.chip)
        } else {
            PathBuf::from("/dev").join(&self.chip)
        }
    }

    pub fn debounce(&self) -> Duration {
        Duration::from_millis(u64::from(self.debounce_ms))
    }

    pub fn long_press(&self) -> Duration {
        Duration::from_secs_f64(self.long_press_seconds)
    }

    pub fn stop_delay(&self) -> Duration {
        Duration::from_secs_f64(self.stop_delay)
    }

    pub fn shutdown_delay(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn off_by_default_and_valid() {
        let c = GpioConfig::default();
        assert!(!c.enabled);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn table_parses() {
        let c = Config::from_toml(
            "[gpio]\nenabled = true\nchip = \"gpiochip0\"\nbutton_line = 17\nled_line = 27\nignition_line = 22\nshutdown_command = [\"/usr/bin/systemctl\", \"poweroff\"]\n",
            "c.toml",
        )
        .expect("valid");
        assert!(c.gpio.enabled);
        assert_eq!(c.gpio.button_line, Some(17));
        assert_eq!(c.gpio.chip_path(), PathBuf::from("/dev/gpiochip0"));
    }

    #[test]
    fn same_line_twice_names_key_line_and_allowed() {
        let err = Config::from_toml("[gpio]\nbutton_line = 17\nled_line = 17\n", "c.toml")
            .expect_err("duplicate");
        let msg = err.to_string();
        assert!(msg.contains("gpio.led_line"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("different line"), "{msg}");
    }

    #[test]
    fn out_of_range_values_are_named() {
        for (text, key, allowed) in [
            (
                "[gpio]\nbutton_line = 5000\n",
                "gpio.button_line",
                "0 to 1023",
            ),
            (
                "[gpio]\nlong_press_seconds = 0.1\n",
                "gpio.long_press_seconds",
                "0.5 to 30",
            ),
            (
                "[gpio]\ndebounce_ms = 5000\n",
                "gpio.debounce_ms",
                "0 to 1000",
            ),
            ("[gpio]\nstop_delay = -1\n", "gpio.stop_delay", "0 to 3600"),
            (
                "[gpio]\nshutdown_command = [\"poweroff\"]\n",
                "gpio.shutdown_command",
                "absolute",
            ),
            ("[gpio]\nenabled = true\n", "gpio.enabled", "at least one"),
        ] {
            let err = Config::from_toml(text, "c.toml").expect_err(text);
            let msg = err.to_string();
            assert!(msg.contains(key), "{text}: {msg}");
            assert!(msg.contains(allowed), "{text}: {msg}");
            assert!(msg.contains("line 2"), "{text}: {msg}");
        }
    }

    #[test]
    fn unknown_key_in_table_is_named() {
        let err = Config::from_toml("[gpio]\nbuton_line = 3\n", "c.toml").expect_err("unknown");
        let msg = err.to_string();
        assert!(msg.contains("buton_line"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }
}
