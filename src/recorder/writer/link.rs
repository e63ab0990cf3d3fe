//! The writer's line to the footage core above it (quota, locks, recovery).
//!
//! The trait is implemented by the footage core and connected by the composition root, so
//! the recorder never imports the storage layer. Through it the writer hands over every
//! change to the footage directory that is not its own open segment: deleting old footage
//! to make room, and repairing what a vanished drive or an unfinished segment left. It
//! carries no decisions of its own.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::disk::metadata::SegmentMeta;

/// Every call but [`FootageLink::make_room`] and [`FootageLink::drive_back`] returns at
/// once.
pub trait FootageLink: Send {
    /// A segment file was created (it is open and growing).
    fn opened(&self, path: &Path, start: SystemTime);
    /// The open segment was closed (`meta` is `None` when it could not be finished: the
    /// footage core finishes it from what is on disk).
    fn closed(&self, path: &Path, meta: Option<SegmentMeta>);
    /// Bytes of the open segment on disk so far (cheap; called per fragment).
    fn set_open_bytes(&self, bytes: u64);
    /// The disk is full: delete the oldest loop segments, at least `need` bytes when
    /// possible. Waits at most `timeout`; returns the bytes freed.
    fn make_room(&self, need: u64, timeout: Duration) -> u64;
    /// The drive is back after it was gone: repair what a cut left and re-index. Waits at
    /// most `timeout`; true when done.
    fn drive_back(&self, timeout: Duration) -> bool;
    /// Event lock now (button, web page).
    fn event_lock(&self);
}
