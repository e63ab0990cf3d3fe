//! The optional GPIO role: a push button (short press: lock the event; long press: stop
//! cleanly and shut down), a status LED (steady: recording; blinking: a problem; off:
//! stopped), and an ignition sense input (off for `stop_delay`: stop cleanly; then the
//! shutdown command after `shutdown_delay` unless it comes back).
//!
//! Lines are requested through the GPIO character device with `gpiocdev` (debounced by the
//! kernel), not `rppal`, whose repository is archived and which refuses to run off a Pi.
//! The role never writes footage and never blocks the recorder; when its lines cannot be
//! opened the recorder records without it.

pub mod config;
pub mod controller;
pub mod led;
pub mod lines;
pub mod role;
pub mod shutdown;

pub use config::GpioConfig;
pub use controller::{Edge, Input, Request, StopReason};
pub use lines::{CdevLines, GpioError, GpioLines};
pub use role::{GpioRole, RoleLinks};
