//! The upload folder: each locked segment and saved clip (as `[upload] what` says) placed
//! into a folder that a sync tool (rclone, Syncthing, a cloud agent) ships away, with its
//! metadata JSON beside it, and an optional command after each placement.
//!
//! A sync tool must only ever see whole files under their final names. So a file is
//! placed as a hard link when the file system allows it (the name appears with the whole
//! content at once, and costs no space while the original is kept); otherwise (vfat has
//! no hard links; another file system) it is copied to a hidden temp name
//! (`.NAME.partial`), fsynced, and renamed into place. The video comes first, then its
//! JSON (written atomically), so a JSON means its video is whole. Temp files a power cut
//! or SIGKILL left are removed at start.
//!
//! The folder holds at most `max_size` of its own (bytes not shared with a file dashcam
//! still keeps); the footage core counts those bytes against the footage limit. Past it a
//! file is not placed (a warning, counted) and recording goes on: placements run in this
//! role's own thread, fed by a bounded queue, and never block the recorder. It never
//! modifies or deletes a footage file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use log::{debug, info, warn};

use crate::disk::durable;
use crate::events::config::UploadConfig;
use crate::events::hooks::{run_once, RunResult};
use crate::events::Delivered;
use crate::state::event::EventKind;
use crate::storage::footage::own_bytes;

/// Placements waiting.
const QUEUE: usize = 64;
/// At stop, placements still queued are done for at most this long.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(60);
const COPY_CHUNK: usize = 1 << 20;

/// How a file was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    Linked,
    Copied,
    /// A file of that name is there already (placed before).
    Exists,
}

/// The temp name of a copy in progress: hidden, so sync tools that skip dot files never
/// see it.
pub fn temp_name(name: &str) -> String {
    format!(".{name}.partial")
}

fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".partial")
}

/// Errors after which a copy is the way: no hard links here (vfat: EPERM), another file
/// system (EXDEV), too many links.
fn link_unsupported(e: &io::Error) -> bool {
    use rustix::io::Errno;
    match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(n) => [
            Errno::XDEV,
            Errno::PERM,
            Errno::OPNOTSUPP,
            Errno::NOSYS,
            Errno::MLINK,
            Errno::ACCESS,
        ]
        .contains(&n),
        None => false,
    }
}

/// Copy `from` to `dir/.NAME.partial`, fsync, rename to `to`, fsync the folder.
/// `deadline`: give up (removing the temp file) when passed.
fn copy_into_place(from: &Path, to: &Path, deadline: Option<Instant>) -> io::Result<()> {
    let dir = to.parent().unwrap_or_else(|| Path::new("."));
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(temp_name(&name));
    let result = (|| {
        let mut src = File::open(from)?;
        let mut dst = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "stopping"));
            }
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            dst.write_all(&buf[..n])?;
        }
        dst.sync_all()?;
        drop(dst);
        durable::rename_durable(&tmp, to)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Place `from` as `to`: a hard link, else (when `may_copy` allows) a copy.
pub fn place(
    from: &Path,
    to: &Path,
    deadline: Option<Instant>,
    may_copy: &dyn Fn() -> Result<(), String>,
) -> Result<Placed, String> {
    if to.exists() {
        return Ok(Placed::Exists);
    }
    match fs::hard_link(from, to) {
        Ok(()) => {
            durable::fsync_dir(to.parent().unwrap_or_else(|| Path::new(".")))
                .map_err(|e| e.to_string())?;
            Ok(Placed::Linked)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Placed::Exists),
        Err(e) if link_unsupported(&e) => {
            may_copy()?;
            copy_into_place(from, to, deadline).map_err(|e| e.to_string())?;
            Ok(Placed::Copied)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// What a placement is for: the file, its JSON, and the event that asked for it.
struct Job {
    event: Arc<Delivered>,
    file: PathBuf,
}

pub struct UploadWorker {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
    clips: bool,
    locked: bool,
}

impl UploadWorker {
    /// Make the folder (if missing), remove temp files left by a cut, start the thread.
    pub fn spawn(config: &UploadConfig, _footage: &Path) -> Result<UploadWorker, String> {
        let dir = config.dir.clone();
        durable::create_dir_all_durable(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if let Ok(rd) = fs::read_dir(&dir) {
            for e in rd.flatten() {
                if is_temp_name(&e.file_name().to_string_lossy()) {
                    info!(
                        "upload: removing {} (cut before it was placed)",
                        e.path().display()
                    );
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let max = config.max_size.bytes()?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let closing = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            closing: closing.clone(),
            dir,
            max,
            command: config.command.clone(),
            timeout: Duration::from_secs_f64(config.timeout),
            dropped: dropped.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("upload".into())
            .spawn(move || worker.run(&rx))
            .map_err(|e| format!("cannot start the upload thread: {e}"))?;
        Ok(UploadWorker {
            tx: Some(tx),
            thread: Some(thread),
            dropped,
            closing,
            clips: config.what.clips(),
            locked: config.what.locked(),
        })
    }

    /// Queue the file of a `locked` or `clip_saved` event (as `what` says); never waits.
    pub fn offer(&self, event: &Arc<Delivered>) {
        let file = match &event.event.kind {
            EventKind::Locked(f) if self.locked => PathBuf::from(&f.path),
            EventKind::ClipSaved(c) if self.clips => PathBuf::from(&c.path),
            _ => return,
        };
        let Some(tx) = &self.tx else {
            return;
        };
        let job = Job {
            event: event.clone(),
            file,
        };
        if let Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) = tx.try_send(job) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            warn!(
                "upload: {} not placed: {QUEUE} placements are waiting",
                j.file.display()
            );
        }
    }

    pub fn close(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        self.tx.take();
    }

    pub fn join(mut self) {
        self.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker {
    closing: Arc<AtomicBool>,
    dir: PathBuf,
    max: u64,
    command: Vec<String>,
    timeout: Duration,
    dropped: Arc<AtomicU64>,
}

impl Worker {
    fn run(self, rx: &Receiver<Job>) {
        let mut drain_until: Option<Instant> = None;
        while let Ok(job) = rx.recv() {
            if drain_until.is_none() && self.closing.load(Ordering::SeqCst) {
                drain_until = Some(Instant::now() + DRAIN_LIMIT);
            }
            if drain_until.is_some_and(|d| Instant::now() >= d) {
                let n = 1 + rx.len() as u64;
                self.dropped.fetch_add(n, Ordering::Relaxed);
                warn!("upload: {n} file(s) not placed: the stop took too long");
                break;
            }
            if let Err(e) = self.handle(&job, drain_until) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                warn!("upload: {} not placed: {e}", job.file.display());
            }
        }
    }

    fn handle(&self, job: &Job, deadline: Option<Instant>) -> Result<(), String> {
        let name = job
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or("no file name")?;
        let to = self.dir.join(&name);
        let size = fs::metadata(&job.file)
            .map_err(|e| format!("cannot read it: {e}"))?
            .len();
        // A link costs nothing now; a copy costs its size.
        let may_copy = || {
            let used = own_bytes(&self.dir);
            if used.saturating_add(size) > self.max {
                Err(format!(
                    "the upload folder is full ({used} of its {} bytes used; {size} more needed)",
                    self.max
                ))
            } else {
                Ok(())
            }
        };
        let placed = place(&job.file, &to, deadline, &may_copy)?;
        if placed == Placed::Exists {
            debug!("upload: {name} is there already");
            return Ok(());
        }
        // The metadata beside it: the footage's own JSON, else the event.
        let json_from = crate::disk::metadata::path_for(&job.file);
        let json = fs::read(&json_from).unwrap_or_else(|_| {
            let mut j = job.event.json.clone().into_bytes();
            j.push(b'\n');
            j
        });
        let json_to = crate::disk::metadata::path_for(&to);
        durable::write_atomic(&json_to, &json)
            .map_err(|e| format!("cannot write {}: {e}", json_to.display()))?;
        info!(
            "upload: {name} placed ({})",
            if placed == Placed::Linked {
                "hard link"
            } else {
                "copy"
            }
        );
        if !self.command.is_empty() {
            let mut cmd = self.command.clone();
            cmd.push(to.display().to_string());
            let extra = [("DASHCAM_UPLOAD_PATH".to_string(), to.display().to_string())];
            let r = run_once(&cmd, &job.event, &extra, self.timeout);
            if r != RunResult::Ok {
                if let Some(line) =
                    r.describe(&self.command.join(" "), "upload", job.event.event.seq)
                {
                    warn!("{line}");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_on_the_same_file_system_and_a_copy_across() {
        let a = tempfile::tempdir().expect("tmp");
        let src = a.path().join("seg.mp4");
        fs::write(&src, vec![7u8; 3 * COPY_CHUNK + 5]).expect("src");
        let up = a.path().join("up");
        fs::create_dir(&up).expect("up");
        assert_eq!(
            place(&src, &up.join("seg.mp4"), None, &|| Ok(())).expect("link"),
            Placed::Linked
        );
        assert_eq!(
            place(&src, &up.join("seg.mp4"), None, &|| Ok(())).expect("again"),
            Placed::Exists
        );
        assert_eq!(
            own_bytes(&up),
            0,
            "a link costs nothing while the original is kept"
        );

        // /dev/shm is another file system (tmpfs) where there is one.
        let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let to = other.path().join("seg.mp4");
        let full = place(&src, &to, None, &|| Err("full".into()));
        if full != Ok(Placed::Linked) {
            assert_eq!(full, Err("full".to_string()), "a copy only when allowed");
            assert!(!to.exists());
        }
        match place(&src, &to, None, &|| Ok(())).expect("place") {
            Placed::Copied => {
                assert_eq!(fs::read(&to).expect("copy"), fs::read(&src).expect("src"));
                assert!(!other.path().join(temp_name("seg.mp4")).exists());
                assert_eq!(own_bytes(other.path()), 3 * COPY_CHUNK as u64 + 5);
            }
            Placed::Linked => {} // same file system after all
            Placed::Exists => panic!("nothing was there"),
        }
    }

    #[test]
    fn a_copy_past_its_deadline_leaves_no_file() {
        let a = tempfile::tempdir().expect("tmp");
        let src = a.path().join("seg.mp4");
        fs::write(&src, vec![1u8; 100]).expect("src");
        let to = a.path().join("out.mp4");
        let past = Instant::now();
        assert!(copy_into_place(&src, &to, Some(past)).is_err());
        assert!(!to.exists());
        assert!(!a.path().join(temp_name("out.mp4")).exists());
    }
}
