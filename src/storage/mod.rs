//! The footage core: what dashcam keeps on the drive and what it does with it.
//!
//! - [`footage`]: [`footage::Footage`], the synchronous core that owns the catalog, the
//!   quota, locks (and the event lock), clips and deletion; every request answers a
//!   [`error::FootageError`] with its [`error::ErrorKind`] on failure;
//! - [`keeper`]: the thread around it while a recorder runs, and the [`keeper::StorageLink`]
//!   the writer (through `FootageLink`) and the phone page reach it by;
//! - [`requests`]: the request and reply files of `dashcam lock|unlock|clip --async`, and
//!   the directory lock that says a recorder runs;
//! - pure decisions: [`quota`] (limits, what to delete, lock rotation), [`clip::select`]
//!   (which frames a time range takes), `footage::events` and `footage::clips`;
//! - file work: [`catalog`] (the index, listings), [`lock`] (moves and deletions),
//!   [`clip`] (cutting), [`recovery`] with the container readers [`mp4_read`] and
//!   [`avi_read`].
//!
//! Files on the drive are the truth. Nothing here keeps state that could disagree with the
//! directory for long: the index is rebuilt from the files at start and rescanned
//! regularly; recovery repairs what a power cut left; locking moves files; clips are new
//! files in `saved/`. The command line uses the core directly for a one-off command (no
//! thread); only the running recorder's keeper deletes loop segments.

pub mod catalog;
pub mod clip;
pub mod error;
pub mod footage;
pub mod keeper;
pub mod lock;
pub mod quota;
pub mod recovery;
pub mod requests;

pub use error::StorageError;
