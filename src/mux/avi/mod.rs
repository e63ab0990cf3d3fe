//! AVI 1.0 (MJPEG): the one home of the format, writing, reading and repairing it.
//!
//! - [`layout`]: the header, chunks, `idx1` and dashcam's start chunk, once, pure code;
//! - [`write`]: the segment writer ([`write::AviWriter`]);
//! - [`read`]: reading a segment back, torn or not, from a file or bytes ([`read()`]);
//! - [`repair`]: finishing a segment a power loss cut ([`repair()`]).
//!
//! Nothing outside this folder knows the layout. It never names, renames or deletes
//! segment files and never writes metadata.

pub(crate) mod layout;
pub(crate) mod read;
pub(crate) mod repair;
pub(crate) mod write;

pub use read::{read, AviFile};
pub(crate) use repair::repair;
pub(crate) use write::AVI_MAX_BYTES;
