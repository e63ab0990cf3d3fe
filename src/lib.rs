//! dashcam: a crash-safe rolling recorder for the Raspberry Pi Zero.
//!
//! Layers, bottom up; a module uses only those below it:
//!
//! ```text
//! frame, disk, state        the Frame, the footage drive's vocabulary, shared status/requests
//! source, mux               where frames come from; containers that write, read and repair
//! recorder                  capture loop and segment writer
//! storage                   the footage core: catalog, quota, locks, clips, recovery
//! service, gpio, web,       roles beside the recorder (systemd, button/LED/ignition, the
//! events                    phone page; events to hooks, MQTT, live subscribers, stills,
//!                           the upload folder)
//! config, app               configuration; the composition root that wires the threads
//! cli                       the command line
//! ```
//!
//! Only what the integration tests use is public.

pub mod app;
pub(crate) mod cli;
pub mod config;
pub(crate) mod disk;
pub(crate) mod events;
pub(crate) mod frame;
pub mod fuzzing; // entry points for the fuzz targets in fuzz/ (hidden from the docs)
pub mod gpio;
pub(crate) mod mux;
pub(crate) mod recorder;
pub mod service;
pub(crate) mod source;
pub mod state;
pub(crate) mod storage;
#[doc(hidden)]
pub mod test_api;
#[cfg(test)]
mod test_support;
pub mod web;

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    cli::main()
}
