//! The recording pipeline: a capture thread, a bounded channel, a writer thread.
//!
//! [`run`] wires the roles together, installs the SIGINT/SIGTERM handling and reports how
//! the run ended. It owns no file format and no cut policy (see [`segment_writer`]).

pub mod capture;
pub mod pipeline;
pub mod segment_writer;
pub mod status;

pub use pipeline::{run, RunOutcome};
