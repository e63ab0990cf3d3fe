//! What is on the drive: segment names, per-segment metadata, durable writes, listing, and
//! the storage keeper that keeps the drive inside its quota.
//!
//! Files on the drive are the truth. Nothing here keeps state that could disagree with the
//! directory for long: the keeper's index is rebuilt from the files at start and rescanned
//! regularly; recovery repairs what a power cut left; locking moves files; clips are new
//! files in `saved/`.

pub mod catalog;
pub mod clip;
pub mod keeper;
pub mod lock;
pub mod quota;
pub mod recovery;
pub mod requests;

use std::path::Path;

/// Errors of the storage roles, each naming the file or directory concerned.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Unreadable { path: String, what: String },
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
}

impl StorageError {
    pub fn io(path: &Path, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
