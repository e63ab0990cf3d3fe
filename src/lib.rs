//! dashcam: a crash-safe rolling recorder for the Raspberry Pi Zero.
//!
//! Roles, one thread each: a capture thread runs a [`source::Source`], a bounded channel
//! carries [`frame::Frame`]s to the writer thread ([`recorder::segment_writer`]), which cuts
//! the stream into segment files through a [`mux::SegmentMuxer`] and records each segment's
//! metadata ([`storage::metadata`]).

pub mod cli;
pub mod config;
pub mod frame;
pub mod gpio;
pub mod mux;
pub mod recorder;
pub mod service;
pub mod source;
pub mod storage;
