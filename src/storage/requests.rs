//! Requests from `dashcam lock|unlock|clip` to the running recorder, and the lock that says
//! a recorder is running.
//!
//! The running recorder holds an exclusive `flock` on `DIR/.dashcam.lock` (which also keeps
//! a second recorder out of the directory). A command that can take that lock itself knows
//! no recorder runs and acts on the files directly; otherwise it drops a request file
//! `DIR/.requests/ID.req` (written atomically) and waits for the keeper's answer
//! `ID.rep`. It never touches segments; the keeper does.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::disk::durable;
use crate::disk::layout::Layout;
use crate::storage::StorageError;

/// What a command asks the recorder to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Event lock: the current segment, the previous one, and the next when the event falls
    /// in the last `post_event_seconds` of the current one.
    LockNow,
    Lock {
        name: String,
    },
    Unlock {
        name: String,
    },
    /// Cut a clip once the segment in progress has closed (the async variant).
    Clip {
        from: String,
        to: String,
        #[serde(default)]
        output: Option<String>,
        #[serde(default)]
        metadata: Option<String>,
    },
}

/// The recorder's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
    /// Files concerned (locked segments, the clip to come).
    #[serde(default)]
    pub files: Vec<String>,
}

impl Reply {
    pub fn ok(message: impl Into<String>, files: Vec<String>) -> Reply {
        Reply {
            ok: true,
            message: message.into(),
            files,
        }
    }
    pub fn err(message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            message: message.into(),
            files: Vec::new(),
        }
    }
}

/// The running recorder's hold on a footage directory.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Take the lock without waiting; `Ok(None)` when another process holds it.
    pub fn try_acquire(layout: &Layout) -> std::io::Result<Option<DirLock>> {
        let path = layout.lock_file();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = writeln!(file, "{}", std::process::id());
                Ok(Some(DirLock { _file: file }))
            }
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether a recorder holds `layout`'s directory.
pub fn recorder_running(layout: &Layout) -> bool {
    if !layout.root.is_dir() {
        return false;
    }
    matches!(DirLock::try_acquire(layout), Ok(None))
}

fn request_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// Send `request` to the running recorder and wait up to `timeout` for its answer.
pub fn submit(
    layout: &Layout,
    request: &Request,
    timeout: Duration,
) -> Result<Reply, StorageError> {
    let dir = layout.requests();
    layout.ensure(&dir).map_err(|e| StorageError::io(&dir, e))?;
    let id = request_id();
    let req = dir.join(format!("{id}.req"));
    let rep = dir.join(format!("{id}.rep"));
    let body = serde_json::to_vec(request).map_err(|e| StorageError::Refused(e.to_string()))?;
    durable::write_atomic(&req, &body).map_err(|e| StorageError::io(&req, e))?;
    let deadline = Instant::now() + timeout;
    loop {
        match std::fs::read(&rep) {
            Ok(bytes) => {
                let _ = std::fs::remove_file(&rep);
                return serde_json::from_slice(&bytes).map_err(|e| StorageError::Unreadable {
                    path: rep.display().to_string(),
                    what: e.to_string(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(&rep, e)),
        }
        if Instant::now() >= deadline {
            let _ = std::fs::remove_file(&req);
            return Err(StorageError::Refused(format!(
                "the recorder on {} did not answer within {} s",
                layout.root.display(),
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Keeper side: the requests waiting, each with the path its reply goes to. Each request
/// file is removed as it is taken; unreadable ones are answered with an error right away.
pub fn take_pending(layout: &Layout) -> Vec<(Request, PathBuf)> {
    let dir = layout.requests();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".req") else {
            continue;
        };
        let path = entry.path();
        let reply_to = dir.join(format!("{id}.rep"));
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Request>(&b).map_err(|e| e.to_string()));
        let _ = std::fs::remove_file(&path);
        match parsed {
            Ok(r) => out.push((r, reply_to)),
            Err(e) => answer(&reply_to, &Reply::err(format!("bad request {name}: {e}"))),
        }
    }
    out
}

/// Write a reply for a waiting command (best effort: the command may have given up).
pub fn answer(reply_to: &Path, reply: &Reply) {
    if let Ok(body) = serde_json::to_vec(reply) {
        if let Err(e) = durable::write_atomic(reply_to, &body) {
            log::warn!("cannot answer {}: {e}", reply_to.display());
        }
    }
}

/// Remove replies and temp files left over from an earlier run (requests stay: they are
/// answered by this one).
pub fn clear_stale(layout: &Layout) {
    if let Ok(rd) = std::fs::read_dir(layout.requests()) {
        for entry in rd.flatten() {
            if !entry.file_name().to_string_lossy().ends_with(".req") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
