//! The composition root: builds every role from the configuration, wires their threads
//! and channels, and runs one recording ([`pipeline::run`]); the GPIO role's parked wait
//! between runs ([`park`]) and the roles beside the recorder ([`roles`]).
//!
//! It is the only module that knows all the others. It holds no recording, storage or
//! role logic of its own: each decision lives in the module it names.

pub mod park;
pub mod pipeline;
pub mod roles;

pub use park::AfterRun;
pub use pipeline::{run, RunOutcome};
