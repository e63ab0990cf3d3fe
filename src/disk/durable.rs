//! Durable file-system operations: atomic replace and directory fsync.
//!
//! A rename or create is only durable once its directory is fsynced (ext4 and vfat alike),
//! so every function here that changes a directory entry syncs the directory before
//! returning. It deletes only what it is asked to, one file at a time ([`remove_durable`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// fsync a directory so that creates, renames and deletes in it survive a power cut.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replace `path` with `bytes` atomically: write a temp file beside it, fsync it, rename it
/// over the target, fsync the directory. A crash leaves either the old or the new content
/// (and possibly a `.tmp` file that recovery removes), never a torn file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fsync_renamed(path)?;
    fsync_dir(dir)
}

/// fsync a file after a rename. vfat writes the renamed file's size into its new directory
/// entry only with the inode: a directory fsync alone leaves an entry of size 0 (measured
/// with real power cuts in a VM).
fn fsync_renamed(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Rename `from` to `to` (same file system) and fsync both directories, so the move
/// survives a power cut. Refuses to replace an existing `to`.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    if to.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", to.display()),
        ));
    }
    fs::rename(from, to)?;
    fsync_renamed(to)?;
    let to_dir = to.parent().unwrap_or_else(|| Path::new("."));
    let from_dir = from.parent().unwrap_or_else(|| Path::new("."));
    fsync_dir(to_dir)?;
    if from_dir != to_dir {
        fsync_dir(from_dir)?;
    }
    Ok(())
}

/// Unlink `path` and fsync its directory. A file that is already gone is not an error.
pub fn remove_durable(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    fsync_dir(path.parent().unwrap_or_else(|| Path::new(".")))
}

/// Create `dir` and any missing parents, fsyncing each parent after the entry was added
/// (on vfat a new directory entry is otherwise lost at a power cut, and everything written
/// inside the new directory with it).
pub fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    fsync_dir(dir)?;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    fsync_dir(parent)
}
