//! The footage core's errors: a kind a caller can match on, and a message a person can read.
//!
//! [`ErrorKind`] is what the command line maps to exit codes and the phone page to HTTP
//! statuses (not found 404, conflict 409, invalid 400, busy and unavailable 503, I/O 500);
//! the message says what happened and, for a drive that cannot be used, what to do.
//! [`StorageError`] is the lower-level error of the readers and recovery (a file that cannot
//! be read or written); it turns into a [`FootageError`] with its kind. I/O errors are
//! classified by the one errno table, [`crate::disk::fault::DriveFault`]; there is no
//! second table here. It decides nothing and touches no file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::disk::fault::DriveFault;

/// What kind of failure, for a caller that must act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No such segment or clip, or no footage in the range.
    NotFound,
    /// The footage is not in a state that allows it: already locked, not locked, being
    /// recorded, locked (unlock first), the locked quota is full, no recorder running.
    Conflict,
    /// The request itself is wrong: a bad time, `from` after `to`, a saved clip named
    /// where a segment is needed, a format change inside the range.
    Invalid,
    /// The recorder did not answer in time, or is stopping: try again.
    Busy,
    /// The footage drive cannot be used now: gone, read-only or not writable by dashcam.
    Unavailable,
    /// Any other I/O failure (a full drive while writing a clip, an unreadable file, ...).
    Io,
}

impl ErrorKind {
    /// The name used in request replies and logs (`not_found`, `conflict`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Busy => "busy",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Io => "io",
        }
    }
}

/// An error of the footage core: its kind and a message naming the file concerned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FootageError {
    pub kind: ErrorKind,
    pub message: String,
}

impl FootageError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> FootageError {
        FootageError {
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> FootageError {
        FootageError::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> FootageError {
        FootageError::new(ErrorKind::Conflict, message)
    }
    pub fn invalid(message: impl Into<String>) -> FootageError {
        FootageError::new(ErrorKind::Invalid, message)
    }
    pub fn busy(message: impl Into<String>) -> FootageError {
        FootageError::new(ErrorKind::Busy, message)
    }

    /// An I/O error on `path`, classified by the errno table: a drive that is gone,
    /// read-only or not writable is [`ErrorKind::Unavailable`] with what to do about it;
    /// anything else is [`ErrorKind::Io`] with the fault named.
    pub fn io(path: &Path, source: &std::io::Error) -> FootageError {
        FootageError::io_at(&path.display().to_string(), source)
    }

    fn io_at(path: &str, source: &std::io::Error) -> FootageError {
        let fault = DriveFault::of(source);
        match fault {
            DriveFault::Gone | DriveFault::ReadOnly | DriveFault::Denied => FootageError::new(
                ErrorKind::Unavailable,
                format!("{path}: {source} ({}: {})", fault.name(), fault.advice()),
            ),
            DriveFault::Full | DriveFault::TooBig | DriveFault::Other => FootageError::new(
                ErrorKind::Io,
                format!("{path}: {source} ({})", fault.name()),
            ),
        }
    }
}

/// A file that could not be read, written or understood (readers, recovery, file moves).
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
}

impl StorageError {
    pub fn io(path: &Path, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<StorageError> for FootageError {
    fn from(e: StorageError) -> FootageError {
        match &e {
            StorageError::Io { path, source } => FootageError::io_at(path, source),
            StorageError::Unreadable { .. } => FootageError::new(ErrorKind::Io, e.to_string()),
        }
    }
}

impl From<crate::mux::MuxError> for FootageError {
    fn from(e: crate::mux::MuxError) -> FootageError {
        match &e {
            crate::mux::MuxError::Io { path, source } => FootageError::io_at(path, source),
            crate::mux::MuxError::Invalid { .. } => FootageError::new(ErrorKind::Io, e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(e: rustix::io::Errno) -> std::io::Error {
        std::io::Error::from_raw_os_error(e.raw_os_error())
    }

    #[test]
    fn io_errors_take_their_kind_from_the_errno_table() {
        use rustix::io::Errno;
        let p = Path::new("/media/footage/x.mp4");
        for (e, kind, words) in [
            (Errno::ROFS, ErrorKind::Unavailable, "read-only"),
            (Errno::IO, ErrorKind::Unavailable, "inserted and mounted"),
            (Errno::NOENT, ErrorKind::Unavailable, "inserted and mounted"),
            (Errno::ACCESS, ErrorKind::Unavailable, "owner"),
            (Errno::NOSPC, ErrorKind::Io, "disk full"),
            (Errno::FBIG, ErrorKind::Io, "file too large"),
            (Errno::INVAL, ErrorKind::Io, "write error"),
        ] {
            let fe = FootageError::io(p, &errno(e));
            assert_eq!(fe.kind, kind, "{e:?}");
            assert!(fe.message.contains(words), "{e:?}: {}", fe.message);
            assert!(fe.message.starts_with("/media/footage/x.mp4: "), "{fe}");
            let via: FootageError = StorageError::io(p, errno(e)).into();
            assert_eq!(via, fe);
        }
        let unreadable: FootageError = StorageError::Unreadable {
            path: "a.mp4".into(),
            what: "no moov".into(),
        }
        .into();
        assert_eq!(unreadable.kind, ErrorKind::Io);
        assert_eq!(unreadable.to_string(), "a.mp4: no moov");
    }

    #[test]
    fn kinds_have_stable_wire_names() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Invalid,
            ErrorKind::Busy,
            ErrorKind::Unavailable,
            ErrorKind::Io,
        ] {
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{}\"", kind.name()));
            let back: ErrorKind = serde_json::from_str(&json).expect("parse");
            assert_eq!(back, kind);
        }
    }
}
