//! The footage drive's vocabulary, shared by the writer and the footage core: the folders
//! of a footage directory ([`layout`]), segment names ([`naming`]), the per-segment
//! metadata ([`metadata`]), durable file-system operations ([`durable`]), file-system
//! facts ([`space`]) and the one errno table ([`fault`]).
//!
//! It sits below the recorder and the footage core so that both speak of files the same
//! way without importing each other. It decides nothing about quotas or locks and never
//! deletes footage on its own: each function does exactly the one operation it names.

pub mod durable;
pub mod fault;
pub mod layout;
pub mod metadata;
pub mod naming;
pub mod space;
