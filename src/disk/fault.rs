//! The one errno table: what a failed file-system call means for a dashcam.
//!
//! Every role that writes to the footage drive (the segment writer, the footage core, clip
//! cutting, recovery) classifies an I/O error here, so that they never disagree about
//! whether the drive is full, gone or read-only, and the user is told what to do. Pure:
//! it looks at an error and never retries or touches a file.

use std::io;

use rustix::io::Errno;

/// What an I/O error on the footage drive means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriveFault {
    /// ENOSPC, EDQUOT: no room. Deleting old footage helps.
    Full,
    /// EIO, ENODEV, ENXIO, ESTALE, ENOENT/ENOTDIR on a path that existed: the card or the
    /// stick is failing, was pulled, or unmounted. Waiting for it helps.
    Gone,
    /// EROFS: the file system is mounted read-only (often remounted so by the kernel after
    /// an error). Nothing dashcam can do: the user must check and remount it.
    ReadOnly,
    /// EACCES, EPERM: the dashcam user may not write there (ownership, mount options).
    Denied,
    /// EFBIG: the file reached the file system's size limit. A new file helps.
    TooBig,
    /// Anything else (EINVAL, ...): a bug or an odd file system; the segment is given up.
    Other,
}

impl DriveFault {
    /// Classify an I/O error. Errors without an errno (e.g. a short write reported as
    /// `WriteZero`) count as [`DriveFault::Gone`] when they come from the disk.
    pub fn of(e: &io::Error) -> DriveFault {
        match Errno::from_io_error(e) {
            Some(Errno::NOSPC | Errno::DQUOT) => DriveFault::Full,
            Some(
                Errno::IO
                | Errno::NODEV
                | Errno::NXIO
                | Errno::STALE
                | Errno::NOENT
                | Errno::NOTDIR
                | Errno::NOTCONN
                | Errno::SHUTDOWN
                | Errno::BADF,
            ) => DriveFault::Gone,
            Some(Errno::ROFS) => DriveFault::ReadOnly,
            Some(Errno::ACCESS | Errno::PERM) => DriveFault::Denied,
            Some(Errno::FBIG) => DriveFault::TooBig,
            Some(_) => DriveFault::Other,
            None => match e.kind() {
                io::ErrorKind::WriteZero | io::ErrorKind::UnexpectedEof => DriveFault::Gone,
                io::ErrorKind::NotFound => DriveFault::Gone,
                io::ErrorKind::PermissionDenied => DriveFault::Denied,
                _ => DriveFault::Other,
            },
        }
    }

    /// Whether the writer should keep frames in RAM and wait for the drive (rather than
    /// give up the segment and start afresh).
    pub fn waits_for_drive(self) -> bool {
        matches!(
            self,
            DriveFault::Full | DriveFault::Gone | DriveFault::ReadOnly | DriveFault::Denied
        )
    }

    /// A short name for logs and the status page.
    pub fn name(self) -> &'static str {
        match self {
            DriveFault::Full => "disk full",
            DriveFault::Gone => "drive unavailable",
            DriveFault::ReadOnly => "drive read-only",
            DriveFault::Denied => "permission denied",
            DriveFault::TooBig => "file too large",
            DriveFault::Other => "write error",
        }
    }

    /// What the user should do about it (or, where nothing is needed, what dashcam does),
    /// for messages. It never promises a retry: the caller says what it does.
    pub fn advice(self) -> &'static str {
        match self {
            DriveFault::Full => {
                "free space on the drive: only loop segments are deleted to make room, never locked or saved footage"
            }
            DriveFault::Gone => "check that the card or stick is inserted and mounted",
            DriveFault::ReadOnly => {
                "the file system is mounted read-only (often after an error): check it with fsck and remount it read-write"
            }
            DriveFault::Denied => {
                "the dashcam user may not write there: fix the owner or the mount options (uid=, umask=)"
            }
            DriveFault::TooBig => "the segment is closed and a new one started",
            DriveFault::Other => "the segment is closed and a new one started at the next keyframe",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.raw_os_error())
    }

    #[test]
    fn the_table() {
        let cases = [
            (Errno::NOSPC, DriveFault::Full),
            (Errno::DQUOT, DriveFault::Full),
            (Errno::IO, DriveFault::Gone),
            (Errno::NODEV, DriveFault::Gone),
            (Errno::NOENT, DriveFault::Gone),
            (Errno::ROFS, DriveFault::ReadOnly),
            (Errno::ACCESS, DriveFault::Denied),
            (Errno::PERM, DriveFault::Denied),
            (Errno::FBIG, DriveFault::TooBig),
            (Errno::INVAL, DriveFault::Other),
        ];
        for (e, want) in cases {
            assert_eq!(DriveFault::of(&errno(e)), want, "{e:?}");
        }
        assert!(DriveFault::ReadOnly.waits_for_drive());
        assert!(!DriveFault::TooBig.waits_for_drive());
        assert!(!DriveFault::Other.waits_for_drive());
        assert_eq!(
            DriveFault::of(&io::Error::from(io::ErrorKind::WriteZero)),
            DriveFault::Gone
        );
    }
}
