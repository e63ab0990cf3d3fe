//! The web backend's side of the events role: a live subscription handed to the web
//! server as an [`EventFeed`] (the session's hub, so a phone's `GET /api/events` stays open
//! across record off/on), the newest still and the stills by name (`GET /api/still.jpg`,
//! `GET /api/stills/NAME`), and which still belongs to which segment in the footage list.
//!
//! It owns that translation and a small cache of the stills folder's names (rebuilt when
//! the folder changes, at most every [`INDEX_MAX_AGE`]). Stills are never decoded here: a
//! file is opened by a name that must be a still's name (digits and dashes, `.jpg`), in the
//! stills folder, never through a symlink. It never writes.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::events::hub::{SsePiece, Subscription, MAX_SUBSCRIBERS};
use crate::events::stills::plan;
use crate::events::SessionEvents;
use crate::web::backend::{ErrorKind, EventFeed, FeedNext, FootageError, FootageFile};

/// The stills' names are read again at least this often.
const INDEX_MAX_AGE: Duration = Duration::from_secs(2);
/// A still this much before a segment's first frame still counts as its picture (the
/// still of a keyframe and the segment's start are taken a moment apart).
const BEFORE_START_MS: i64 = 1000;

/// A subscription to the session's hub, as the web server reads it.
struct HubFeed(Subscription);

impl EventFeed for HubFeed {
    fn next(&mut self, wait: Duration) -> FeedNext {
        match self.0.next_sse(wait) {
            SsePiece::Event(t) => FeedNext::Event(t),
            SsePiece::Lost(n, t) => FeedNext::Lost(n, t),
            SsePiece::Idle => FeedNext::Idle,
            SsePiece::Closed => FeedNext::Closed,
        }
    }
}

/// The stills in the folder: capture time (Unix ms) and name, oldest first.
struct Index {
    at: Instant,
    stamp: Option<SystemTime>,
    stills: Arc<Vec<(i64, String)>>,
}

/// Events and stills for the web backend.
pub struct WebEvents {
    session: SessionEvents,
    /// The stills folder, when stills are on.
    stills_dir: Option<PathBuf>,
    index: Mutex<Option<Index>>,
}

fn err(kind: ErrorKind, message: impl Into<String>) -> FootageError {
    FootageError::new(kind, message)
}

impl WebEvents {
    pub fn new(session: SessionEvents, stills_dir: Option<PathBuf>) -> WebEvents {
        WebEvents {
            session,
            stills_dir,
            index: Mutex::new(None),
        }
    }

    pub fn sink(&self) -> crate::state::event::EventSink {
        self.session.sink()
    }

    pub fn subscribe(&self) -> Result<Box<dyn EventFeed>, FootageError> {
        match self.session.hub().subscribe() {
            Some(s) => Ok(Box::new(HubFeed(s))),
            None => Err(err(
                ErrorKind::Busy,
                format!(
                    "{MAX_SUBSCRIBERS} pages are following the events already; close one or \
                     try again"
                ),
            )),
        }
    }

    pub fn latest_still(&self) -> Result<FootageFile, FootageError> {
        let Some(dir) = &self.stills_dir else {
            return Err(err(
                ErrorKind::NotFound,
                "stills are off (no [stills] in the configuration)",
            ));
        };
        let none_yet = || err(ErrorKind::NotFound, "no still has been taken yet");
        let path = self.session.latest_still().path().ok_or_else(none_yet)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(none_yet)?;
        open_still(dir, &name).map_err(|e| match e.kind {
            // Pruned a moment ago: a newer one is there.
            ErrorKind::NotFound => err(
                ErrorKind::NotFound,
                "the newest still was just replaced; try again",
            ),
            _ => e,
        })
    }

    pub fn still(&self, name: &str) -> Result<FootageFile, FootageError> {
        let Some(dir) = &self.stills_dir else {
            return Err(err(
                ErrorKind::NotFound,
                "stills are off (no [stills] in the configuration)",
            ));
        };
        open_still(dir, name)
    }

    /// The stills now (cached briefly); empty when stills are off.
    pub fn stills(&self) -> Arc<Vec<(i64, String)>> {
        let Some(dir) = &self.stills_dir else {
            return Arc::new(Vec::new());
        };
        let stamp = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
        let mut guard = match self.index.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(i) = guard.as_ref() {
            if i.stamp == stamp && i.at.elapsed() < INDEX_MAX_AGE {
                return i.stills.clone();
            }
        }
        let mut stills: Vec<(i64, String)> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        plan::still_unix_ms(&name).map(|ms| (ms, name))
                    })
                    .collect()
            })
            .unwrap_or_default();
        stills.sort();
        let stills = Arc::new(stills);
        *guard = Some(Index {
            at: Instant::now(),
            stamp,
            stills: stills.clone(),
        });
        stills
    }
}

/// The still of a segment that starts at `start_ms` and ends at `end_ms` (`stills` oldest
/// first): the first one taken at or after its start and within it (its first keyframe's
/// still has its very wall time), else one taken a moment before its start.
pub fn still_for(stills: &[(i64, String)], start_ms: i64, end_ms: i64) -> Option<&str> {
    let i = stills.partition_point(|(t, _)| *t < start_ms);
    if let Some((t, n)) = stills.get(i) {
        if *t <= end_ms {
            return Some(n);
        }
    }
    i.checked_sub(1)
        .and_then(|j| stills.get(j))
        .filter(|(t, _)| *t >= start_ms.saturating_sub(BEFORE_START_MS))
        .map(|(_, n)| n.as_str())
}

/// Open the still `name` in `dir`: a still's name, a plain file, not through a symlink.
fn open_still(dir: &Path, name: &str) -> Result<FootageFile, FootageError> {
    if !plan::is_still_name(name) {
        return Err(err(ErrorKind::NotFound, format!("no still named {name:?}")));
    }
    let path = dir.join(name);
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ELOOP) {
                err(ErrorKind::NotFound, format!("no still named {name:?}"))
            } else {
                err(ErrorKind::Io, format!("{name}: {e}"))
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| err(ErrorKind::Io, format!("{name}: {e}")))?;
    if !meta.is_file() {
        return Err(err(ErrorKind::NotFound, format!("no still named {name:?}")));
    }
    Ok(FootageFile {
        file,
        name: name.to_string(),
        len: meta.len(),
        modified: meta.modified().unwrap_or(UNIX_EPOCH),
        identity: (meta.dev(), meta.ino()),
        content_type: "image/jpeg",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_gets_the_still_of_its_first_frame_or_one_just_before() {
        let s: Vec<(i64, String)> = [1_000, 4_000, 5_000, 6_000, 9_000]
            .iter()
            .map(|t| (*t, format!("s{t}")))
            .collect();
        assert_eq!(
            still_for(&s, 5_000, 8_000),
            Some("s5000"),
            "its own first frame"
        );
        assert_eq!(still_for(&s, 4_500, 4_900), Some("s4000"), "just before it");
        assert_eq!(
            still_for(&s, 7_200, 8_000),
            None,
            "none within or just before"
        );
        assert_eq!(still_for(&s, 8_500, 20_000), Some("s9000"));
        assert_eq!(still_for(&s, 10_500, 20_000), None);
        assert_eq!(still_for(&[], 0, 1), None);
    }

    #[test]
    fn only_still_names_in_the_folder_open() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("20261121-143005-123.jpg"), b"jpeg").expect("w");
        std::fs::write(dir.path().join("other.jpg"), b"x").expect("w");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("20261121-143006-000.jpg"))
            .expect("symlink");
        let f = open_still(dir.path(), "20261121-143005-123.jpg").expect("still");
        assert_eq!((f.len, f.content_type), (4, "image/jpeg"));
        for bad in [
            "other.jpg",
            "../20261121-143005-123.jpg",
            "20261121-143006-000.jpg",
            "20261121-143007-000.jpg",
        ] {
            assert_eq!(
                open_still(dir.path(), bad).map(|_| ()).map_err(|e| e.kind),
                Err(ErrorKind::NotFound),
                "{bad}"
            );
        }
    }
}
