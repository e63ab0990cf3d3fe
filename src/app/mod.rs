//! The composition root: builds every role from the configuration, wires their threads
//! and channels, and runs one recording ([`pipeline::run`]); the GPIO role's parked wait
//! between runs ([`park`]) and the roles beside the recorder ([`roles`]); the life of
//! `dashcam run` with the web role kept across runs ([`session`]), the record switch the
//! phone page drives ([`switch`]) and the web role's adapter to the footage core
//! ([`web_backend`], with the events and stills it shows in [`web_events`]).
//!
//! It is the only module that knows all the others. It holds no recording, storage or
//! role logic of its own: each decision lives in the module it names.

pub mod park;
pub mod pipeline;
pub mod roles;
pub mod session;
pub mod switch;
pub mod web_backend;
pub(crate) mod web_events;

pub use park::AfterRun;
pub use pipeline::{run, RunOutcome};
