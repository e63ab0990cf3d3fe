//! The recorder: the capture loop ([`capture`]) that pulls frames from a source and the
//! writer ([`writer`]) that cuts them into segment files and makes them durable.
//!
//! It knows sources, containers and the footage directory's vocabulary (`disk`), never the
//! footage core above it: the writer reports to it and asks it for room and recovery
//! through [`writer::FootageLink`], which the composition root connects.

pub mod capture;
pub mod writer;
