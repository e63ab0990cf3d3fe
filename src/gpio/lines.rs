//! The GPIO lines the role uses, behind a small trait, and its real implementation on the
//! GPIO character device (gpiocdev, uAPI v2).
//!
//! It owns requesting the lines (polarity, bias, kernel debounce, edge detection) and
//! turning kernel edge events into logical [`Edge`]s. It never interprets them: that is
//! [`super::controller`]. Other implementations (tests) replace the device, not the logic.

use std::path::PathBuf;
use std::time::Duration;

use gpiocdev::line::{Bias, EdgeDetection, EdgeKind, Value};
use gpiocdev::Request;

use super::config::GpioConfig;
use super::controller::{Edge, Input};

#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    #[error("cannot request GPIO lines {lines} on {chip}: {source}")]
    Request {
        chip: String,
        lines: String,
        #[source]
        source: gpiocdev::Error,
    },
    #[error("GPIO {what} on {chip}: {source}")]
    Io {
        chip: String,
        what: &'static str,
        #[source]
        source: gpiocdev::Error,
    },
}

/// What the role needs from the hardware.
pub trait GpioLines: Send {
    /// Wait at most `timeout` for the next edge of an input; `None` when none came.
    fn wait_edge(&mut self, timeout: Duration) -> Result<Option<Edge>, GpioError>;
    /// The logical level of an input (`true`: pressed / ignition on); `None` when the
    /// input is not configured.
    fn level(&mut self, input: Input) -> Result<Option<bool>, GpioError>;
    /// Light the LED or not (no-op without an LED line).
    fn set_led(&mut self, on: bool) -> Result<(), GpioError>;
    /// Whether this input is configured.
    fn has(&self, input: Input) -> bool;
}

/// The lines of one chip, requested together.
pub struct CdevLines {
    request: Request,
    chip: PathBuf,
    button: Option<u32>,
    ignition: Option<u32>,
    led: Option<u32>,
}

impl std::fmt::Debug for CdevLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdevLines")
            .field("chip", &self.chip)
            .field("button", &self.button)
            .field("ignition", &self.ignition)
            .field("led", &self.led)
            .finish()
    }
}

fn bias_for(active_low: bool) -> Bias {
    // A contact to ground reads low when closed: pull the line up, and the other way round.
    if active_low {
        Bias::PullUp
    } else {
        Bias::PullDown
    }
}

impl CdevLines {
    /// Request the configured lines: inputs with both-edge detection and kernel debounce,
    /// the LED as an output, initially off.
    pub fn open(cfg: &GpioConfig) -> Result<CdevLines, GpioError> {
        let chip = cfg.chip_path();
        let mut b = Request::builder();
        b.on_chip(&chip).with_consumer("dashcam");
        let mut described = Vec::new();
        for (line, active_low, name) in [
            (cfg.button_line, cfg.button_active_low, "button"),
            (cfg.ignition_line, cfg.ignition_active_low, "ignition"),
        ] {
            let Some(line) = line else { continue };
            b.with_line(line)
                .as_input()
                .with_bias(bias_for(active_low))
                .with_edge_detection(EdgeDetection::BothEdges)
                .with_debounce_period(cfg.debounce());
            if active_low {
                b.as_active_low();
            } else {
                b.as_active_high();
            }
            described.push(format!("{name}={line}"));
        }
        if let Some(line) = cfg.led_line {
            b.with_line(line).as_output(Value::Inactive);
            if cfg.led_active_low {
                b.as_active_low();
            } else {
                b.as_active_high();
            }
            described.push(format!("led={line}"));
        }
        let request = b.request().map_err(|source| GpioError::Request {
            chip: chip.display().to_string(),
            lines: described.join(", "),
            source,
        })?;
        Ok(CdevLines {
            request,
            chip,
            button: cfg.button_line,
            ignition: cfg.ignition_line,
            led: cfg.led_line,
        })
    }

    fn offset(&self, input: Input) -> Option<u32> {
        match input {
            Input::Button => self.button,
            Input::Ignition => self.ignition,
        }
    }

    fn io(&self, what: &'static str) -> impl FnOnce(gpiocdev::Error) -> GpioError + '_ {
        move |source| GpioError::Io {
            chip: self.chip.display().to_string(),
            what,
            source,
        }
    }
}

impl GpioLines for CdevLines {
    fn wait_edge(&mut self, timeout: Duration) -> Result<Option<Edge>, GpioError> {
        if self.button.is_none() && self.ignition.is_none() {
            std::thread::sleep(timeout);
            return Ok(None);
        }
        if !self
            .request
            .wait_edge_event(timeout)
            .map_err(self.io("waiting for an edge"))?
        {
            return Ok(None);
        }
        let ev = self
            .request
            .read_edge_event()
            .map_err(self.io("reading an edge"))?;
        let input = if Some(ev.offset) == self.button {
            Input::Button
        } else if Some(ev.offset) == self.ignition {
            Input::Ignition
        } else {
            return Ok(None);
        };
        // Rising = inactive → active, in logical terms (active-low already applied).
        let active = matches!(ev.kind, EdgeKind::Rising);
        Ok(Some(Edge { input, active }))
    }

    fn level(&mut self, input: Input) -> Result<Option<bool>, GpioError> {
        let Some(offset) = self.offset(input) else {
            return Ok(None);
        };
        let v = self
            .request
            .value(offset)
            .map_err(self.io("reading a level"))?;
        Ok(Some(v == Value::Active))
    }

    fn set_led(&mut self, on: bool) -> Result<(), GpioError> {
        let Some(offset) = self.led else {
            return Ok(());
        };
        let v = if on { Value::Active } else { Value::Inactive };
        self.request
            .set_value(offset, v)
            .map_err(self.io("setting the LED"))
    }

    fn has(&self, input: Input) -> bool {
        self.offset(input).is_some()
    }
}
