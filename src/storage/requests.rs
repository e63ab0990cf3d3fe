//! Requests from `dashcam lock|unlock|clip` to the running recorder, and the lock that says
//! a recorder is running.
//!
//! The running recorder holds an exclusive `flock` on `DIR/.dashcam.lock` (which also keeps
//! a second recorder out of the directory). A command that can take that lock itself knows
//! no recorder runs and acts on the files directly; otherwise it drops a request file
//! `DIR/.requests/ID.req` (JSON, written atomically) and waits for the keeper's answer
//! `ID.rep`: `{"ok": true, "message": ..., "files": [...]}`, or `{"ok": false, "kind":
//! "not_found", "message": ...}` with the [`ErrorKind`]'s name. It never touches segments;
//! the footage core does.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::disk::durable;
use crate::disk::layout::Layout;
use crate::storage::error::{ErrorKind, FootageError};

/// What a command asks the footage core to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Event lock: the previous segment now, the segment being written when it closes, and
    /// every following segment that starts within `post_event_seconds` of the event.
    LockNow,
    Lock {
        name: String,
    },
    Unlock {
        name: String,
    },
    /// Delete a closed loop segment or a saved clip (a locked one must be unlocked first).
    Delete {
        name: String,
    },
    /// Cut a clip once the segment in progress has closed (the async variant). Times are
    /// local, `YYYY-MM-DDTHH:MM:SS`.
    Clip {
        from: String,
        to: String,
        #[serde(default)]
        output: Option<String>,
        #[serde(default)]
        metadata: Option<String>,
    },
}

/// What a request did, when it worked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// For a person: what was done (or will be).
    pub message: String,
    /// Files concerned (locked segments, the clip to come), by file name or path.
    pub files: Vec<String>,
}

impl Outcome {
    pub fn new(message: impl Into<String>, files: Vec<String>) -> Outcome {
        Outcome {
            message: message.into(),
            files,
        }
    }
}

/// The answer as it travels in a reply file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    /// Why it failed (absent when `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
    pub message: String,
    /// Files concerned (locked segments, the clip to come).
    #[serde(default)]
    pub files: Vec<String>,
}

impl From<Result<Outcome, FootageError>> for Reply {
    fn from(r: Result<Outcome, FootageError>) -> Reply {
        match r {
            Ok(o) => Reply {
                ok: true,
                kind: None,
                message: o.message,
                files: o.files,
            },
            Err(e) => Reply {
                ok: false,
                kind: Some(e.kind),
                message: e.message,
                files: Vec::new(),
            },
        }
    }
}

impl Reply {
    /// Back to a result; a failure without a kind (an older recorder) counts as
    /// [`ErrorKind::Io`].
    pub fn into_result(self) -> Result<Outcome, FootageError> {
        if self.ok {
            Ok(Outcome::new(self.message, self.files))
        } else {
            Err(FootageError::new(
                self.kind.unwrap_or(ErrorKind::Io),
                self.message,
            ))
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

/// Send `request` to the running recorder and wait up to `timeout` for its answer (no
/// answer in time: [`ErrorKind::Busy`]).
pub fn submit(
    layout: &Layout,
    request: &Request,
    timeout: Duration,
) -> Result<Outcome, FootageError> {
    let dir = layout.requests();
    layout
        .ensure(&dir)
        .map_err(|e| FootageError::io(&dir, &e))?;
    let id = request_id();
    let req = dir.join(format!("{id}.req"));
    let rep = dir.join(format!("{id}.rep"));
    let body = serde_json::to_vec(request).map_err(|e| FootageError::invalid(e.to_string()))?;
    durable::write_atomic(&req, &body).map_err(|e| FootageError::io(&req, &e))?;
    let deadline = Instant::now() + timeout;
    loop {
        match std::fs::read(&rep) {
            Ok(bytes) => {
                let _ = std::fs::remove_file(&rep);
                let reply: Reply = serde_json::from_slice(&bytes).map_err(|e| {
                    FootageError::new(
                        ErrorKind::Io,
                        format!("{}: not a reply: {e}", rep.display()),
                    )
                })?;
                return reply.into_result();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FootageError::io(&rep, &e)),
        }
        if Instant::now() >= deadline {
            let _ = std::fs::remove_file(&req);
            return Err(FootageError::busy(format!(
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
            Err(e) => answer(
                &reply_to,
                &Reply::from(Err(FootageError::invalid(format!(
                    "bad request {name}: {e}"
                )))),
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_carry_the_kind() {
        let ok = Reply::from(Ok(Outcome::new("locked a.mp4", vec!["a.mp4".into()])));
        let json = serde_json::to_string(&ok).expect("json");
        assert_eq!(
            json,
            r#"{"ok":true,"message":"locked a.mp4","files":["a.mp4"]}"#
        );
        let err = Reply::from(Err(FootageError::conflict("a.mp4 is locked already")));
        let json = serde_json::to_string(&err).expect("json");
        assert_eq!(
            json,
            r#"{"ok":false,"kind":"conflict","message":"a.mp4 is locked already","files":[]}"#
        );
        let back: Reply = serde_json::from_str(&json).expect("parse");
        assert_eq!(
            back.into_result().map_err(|e| e.kind),
            Err(ErrorKind::Conflict)
        );
        // A reply of an older recorder, without a kind.
        let old: Reply =
            serde_json::from_str(r#"{"ok":false,"message":"no segment"}"#).expect("parse");
        assert_eq!(old.into_result().map_err(|e| e.kind), Err(ErrorKind::Io));
    }

    #[test]
    fn requests_keep_their_wire_form() {
        for (r, json) in [
            (Request::LockNow, r#"{"op":"lock_now"}"#),
            (
                Request::Lock { name: "7".into() },
                r#"{"op":"lock","name":"7"}"#,
            ),
            (
                Request::Delete { name: "7".into() },
                r#"{"op":"delete","name":"7"}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&r).expect("json"), json);
            assert_eq!(serde_json::from_str::<Request>(json).expect("parse"), r);
        }
        let clip: Request =
            serde_json::from_str(r#"{"op":"clip","from":"a","to":"b"}"#).expect("parse");
        assert!(matches!(
            clip,
            Request::Clip {
                output: None,
                metadata: None,
                ..
            }
        ));
    }

    #[test]
    fn a_bad_request_file_is_answered_invalid_and_no_answer_is_busy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        std::fs::create_dir(layout.requests()).expect("requests");
        std::fs::write(layout.requests().join("x.req"), b"{\"op\":\"dance\"}").expect("req");
        assert!(take_pending(&layout).is_empty());
        let rep: Reply = serde_json::from_slice(
            &std::fs::read(layout.requests().join("x.rep")).expect("answered"),
        )
        .expect("reply");
        assert_eq!(rep.kind, Some(ErrorKind::Invalid));
        assert!(rep.message.contains("bad request x.req"), "{}", rep.message);

        let late = submit(&layout, &Request::LockNow, Duration::from_millis(100));
        assert_eq!(late.map_err(|e| e.kind), Err(ErrorKind::Busy));
        assert_eq!(
            std::fs::read_dir(layout.requests())
                .expect("dir")
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".req"))
                .count(),
            0,
            "the unanswered request is withdrawn"
        );
    }
}
