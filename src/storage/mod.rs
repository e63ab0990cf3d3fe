//! What is on the drive: segment names, per-segment metadata, durable writes, listing.
//!
//! Files on the drive are the truth. Nothing here keeps state between calls that could
//! disagree with the directory; the loop quota, locked clips and recovery of a later
//! issue build on these pieces.

pub mod catalog;
pub mod durable;
pub mod metadata;
pub mod naming;
