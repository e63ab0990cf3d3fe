//! The folders of a footage directory and what each holds.
//!
//! ```text
//! DIR/             loop segments (deleted oldest first by the quota)
//! DIR/locked/      locked segments: out of loop deletion, their own quota
//! DIR/saved/       clips cut by time range (the upload path), with a .json beside each
//! DIR/corrupt/     files recovery could not read (kept for a human, never deleted)
//! DIR/.requests/   requests from `dashcam lock|unlock|clip` to the running recorder
//! DIR/.dashcam.lock  held (flock) by the running recorder
//! ```
//!
//! It only names paths and creates the folders; it never deletes anything.

use std::path::{Path, PathBuf};

use crate::disk::durable;

pub const LOCKED: &str = "locked";
pub const SAVED: &str = "saved";
pub const CORRUPT: &str = "corrupt";
pub const REQUESTS: &str = ".requests";
pub const LOCK_FILE: &str = ".dashcam.lock";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }
    pub fn locked(&self) -> PathBuf {
        self.root.join(LOCKED)
    }
    pub fn saved(&self) -> PathBuf {
        self.root.join(SAVED)
    }
    pub fn corrupt(&self) -> PathBuf {
        self.root.join(CORRUPT)
    }
    pub fn requests(&self) -> PathBuf {
        self.root.join(REQUESTS)
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    /// The folders that hold segments: the loop folder and `locked/`.
    pub fn segment_dirs(&self) -> [PathBuf; 2] {
        [self.root.clone(), self.locked()]
    }

    /// Create a sub-folder (durably) if it is missing.
    pub fn ensure(&self, dir: &Path) -> std::io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        durable::create_dir_all_durable(dir)
    }
}
