//! Everything the web role needs from the rest of the program, behind one interface:
//! [`WebBackend`]. The composition root implements it (today over the storage keeper, in
//! `app::web_backend`); nothing else in `web/` reaches into the recorder or the footage
//! core, so re-pointing the page at a new footage core changes only that adapter.
//!
//! Rules an implementation keeps: status and metrics are snapshots that never wait on the
//! writer or the footage thread; footage operations wait a bounded time (then `Busy`);
//! every failure is a [`FootageError`] whose [`ErrorKind`] alone decides the HTTP status
//! ([`http_status`], the one mapping). It owns these types only; no I/O happens here.

use std::fs::File;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Why a footage or recorder operation failed, as far as a client must tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such segment or clip, or no footage in the range.
    NotFound,
    /// Not now in this state: locked (unlock first), being recorded, already so.
    Conflict,
    /// The request itself is wrong (a bad time, from after to).
    Invalid,
    /// The footage thread did not answer in time, or too much is going on; try again.
    Busy,
    /// The drive is gone, or the recorder is not there to ask.
    Unavailable,
    /// The process may not do it (setting the clock without the capability).
    NotPermitted,
    /// Reading or writing failed.
    Io,
}

#[derive(Clone, Debug, PartialEq, Eq)]
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
}

impl std::fmt::Display for FootageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The HTTP status and the JSON `error` word of each kind: the only place they are chosen.
pub fn http_status(kind: ErrorKind) -> (u16, &'static str) {
    match kind {
        ErrorKind::NotFound => (404, "not_found"),
        ErrorKind::Conflict => (409, "conflict"),
        ErrorKind::Invalid => (400, "bad_request"),
        ErrorKind::Busy => (503, "busy"),
        ErrorKind::Unavailable => (503, "unavailable"),
        ErrorKind::NotPermitted => (403, "not_permitted"),
        ErrorKind::Io => (500, "io_error"),
    }
}

/// Where a piece of footage lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentKind {
    /// In the loop: deleted oldest first by the quota.
    Loop,
    /// In `locked/`: kept out of the loop.
    Locked,
    /// A clip in `saved/`.
    Saved,
}

impl SegmentKind {
    pub fn parse(text: &str) -> Option<SegmentKind> {
        match text {
            "loop" => Some(SegmentKind::Loop),
            "locked" => Some(SegmentKind::Locked),
            "saved" => Some(SegmentKind::Saved),
            _ => None,
        }
    }
}

/// Which footage to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentFilter {
    pub kind: Option<SegmentKind>,
    /// Only footage that ends at or after this wall time (Unix ms).
    pub from_ms: Option<i64>,
    /// Only footage that starts at or before this wall time (Unix ms).
    pub to_ms: Option<i64>,
}

/// One segment or clip as listed: its metadata fields as written beside it, plus where it
/// is and whether it is being recorded.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentView {
    /// The file name: the only name by which it is served.
    pub name: String,
    pub kind: SegmentKind,
    /// Size of the file now.
    pub file_bytes: u64,
    /// The segment the writer has open (it grows; it cannot be deleted).
    pub recording: bool,
    /// Wall time of its first frame (Unix ms), from the metadata or else the name.
    pub start_unix_ms: Option<i64>,
    /// The fields of its metadata JSON (`frames`, `duration_s`, `codec`, …); `null` when
    /// it has none yet (open, or cut by a crash).
    pub meta: Option<serde_json::Value>,
    /// The still nearest its start (a name [`WebBackend::still`] serves), when stills are
    /// on and one was taken while it was recorded.
    pub still: Option<String>,
}

/// The next piece of a live event stream (`GET /api/events`), as the backend hands it
/// over: Server-Sent Events text, ready for the wire.
#[derive(Debug, PartialEq, Eq)]
pub enum FeedNext {
    /// One event (`id:`, `event:`, `data:` lines).
    Event(String),
    /// This many events were lost for this client (it was too slow), and a comment saying
    /// so.
    Lost(u64, String),
    /// Nothing within the wait.
    Idle,
    /// No more events (the process ends).
    Closed,
}

/// One client's subscription to the events; read by that client's thread only.
pub trait EventFeed: Send {
    /// The next piece, waiting at most `wait`; never blocks the recorder.
    fn next(&mut self, wait: Duration) -> FeedNext;
}

/// A file opened for serving.
#[derive(Debug)]
pub struct FootageFile {
    pub file: File,
    /// The name it is served as.
    pub name: String,
    pub len: u64,
    pub modified: SystemTime,
    /// Identity for the entity tag: (device, inode).
    pub identity: (u64, u64),
    pub content_type: &'static str,
}

/// The frames of an MJPEG AVI segment, for the multipart replay.
#[derive(Debug)]
pub struct ReplayIndex {
    pub file: File,
    /// Frames per second as a fraction.
    pub rate: (u32, u32),
    /// Offset and size of each JPEG in the file.
    pub frames: Vec<(u64, u32)>,
}

/// A clip by time range (local wall time, `YYYY-MM-DDTHH:MM:SS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClipSpec {
    pub from: String,
    pub to: String,
    pub metadata: Option<String>,
    /// Answer at once; cut once the segment in progress has closed.
    pub asynchronous: bool,
}

/// What an action did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Done {
    pub message: String,
    /// Files concerned (the locked segments, the clip's name).
    pub files: Vec<String>,
}

impl Done {
    pub fn new(message: impl Into<String>, files: Vec<String>) -> Done {
        Done {
            message: message.into(),
            files,
        }
    }
}

/// The state of the drive as the page must show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriveState {
    Ok,
    /// Little or no free space left for the writer.
    Full,
    /// Not there, or not readable.
    Unavailable,
}

/// A snapshot of the recorder and the drive for `/api/status` and the page.
#[derive(Clone, Debug, Serialize)]
pub struct StatusView {
    /// `starting`, `recording`, `idle`, `error` or `stopped` (the recorder's words).
    pub state: &'static str,
    /// Why it is in that state, in words, when it is not plainly recording.
    pub reason: Option<String>,
    /// Whether recording is wanted (the record switch); `false` after record off.
    pub recording_wanted: bool,
    pub source: String,
    pub current_segment: Option<String>,
    pub frames_on_disk: u64,
    pub frames_dropped: u64,
    pub segments_closed: u64,
    /// Seconds since the last fdatasync of footage, when there was one.
    pub last_sync_age_s: Option<f64>,
    /// Frames per second reaching the disk lately.
    pub fps: Option<f64>,
    pub drive: DriveState,
    pub drive_message: Option<String>,
    /// Segments on the drive (loop and locked) and clips in `saved/`.
    pub segments: u64,
    pub locked_segments: u64,
    pub saved_clips: u64,
    /// Bytes of footage kept (loop, locked, saved).
    pub footage_bytes: u64,
    pub locked_bytes: u64,
    /// The footage limit in force (bytes), when the drive is readable.
    pub quota_bytes: Option<u64>,
    /// The limit for locked and saved footage (bytes).
    pub locked_quota_bytes: Option<u64>,
    /// Share of that limit in use, 0..1.
    pub locked_share: Option<f64>,
    pub free_bytes: Option<u64>,
    pub drive_bytes: Option<u64>,
    pub uptime_s: f64,
    /// The Pi's clock: Unix ms and local time (`YYYY-MM-DDTHH:MM:SS`).
    pub clock_unix_ms: i64,
    pub clock_local: String,
    /// The kernel says the clock is synchronised (NTP, GPS).
    pub clock_synchronised: bool,
    /// The clock looks wrong (before the newest footage, or before this build's year).
    pub clock_suspect: bool,
    pub version: &'static str,
}

/// Counters and gauges for `/metrics` that the web role does not count itself.
#[derive(Clone, Debug, Default)]
pub struct MetricsView {
    pub segments_closed: u64,
    pub frames_written: u64,
    pub frames_dropped: u64,
    /// Segments on the drive that were closed early (partial).
    pub partial_segments: u64,
    /// Frames waiting between capture and writer.
    pub queue_frames: Option<u64>,
    pub current_segment_bytes: Option<u64>,
    pub fps: Option<f64>,
    pub last_sync_age_s: Option<f64>,
    pub free_bytes: Option<u64>,
    pub used_bytes: u64,
    pub locked_bytes: u64,
    pub quota_bytes: Option<u64>,
    /// Loop segments deleted to keep the quota (since the process started).
    pub quota_deletions: u64,
    pub recording: bool,
    pub uptime_s: f64,
}

/// What the web role needs of the recorder and the footage core. See the module doc.
pub trait WebBackend: Send + Sync {
    /// The recorder and drive now (never blocks on the writer or the footage thread).
    fn status(&self) -> StatusView;
    /// Footage on the drive, oldest first.
    fn segments(&self, filter: &SegmentFilter) -> Result<Vec<SegmentView>, FootageError>;
    /// Open a segment or clip by the file name the catalog lists (never a path).
    fn open(&self, name: &str) -> Result<FootageFile, FootageError>;
    /// The frame index of an MJPEG AVI segment, for the replay.
    fn replay(&self, name: &str) -> Result<ReplayIndex, FootageError>;
    fn lock(&self, name: &str) -> Result<Done, FootageError>;
    /// Event lock: the segment being recorded, the one before, and what follows shortly.
    fn lock_now(&self) -> Result<Done, FootageError>;
    fn unlock(&self, name: &str) -> Result<Done, FootageError>;
    /// Delete a loop segment or a clip (a locked one must be unlocked first).
    fn delete(&self, name: &str) -> Result<Done, FootageError>;
    /// Cut a clip into `saved/`; `files[0]` is its name.
    fn save_clip(&self, spec: &ClipSpec) -> Result<Done, FootageError>;
    /// The bytes of a clip of the range, to stream back (nothing kept on the drive).
    fn clip_stream(&self, from: &str, to: &str) -> Result<FootageFile, FootageError>;
    /// Record on (resume) or off (close the segment whole and stop), in this process.
    fn set_recording(&self, on: bool) -> Result<Done, FootageError>;
    /// Set the system clock (only when it is not synchronised).
    fn set_clock(&self, unix_ms: i64) -> Result<Done, FootageError>;
    fn metrics(&self) -> MetricsView;
    /// A subscription to every event from now on: `Busy` when the most subscribers are
    /// connected already, `Unavailable` when events are not wired.
    fn events(&self) -> Result<Box<dyn EventFeed>, FootageError>;
    /// The newest still: `NotFound` (with why) when stills are off or none was taken yet.
    fn latest_still(&self) -> Result<FootageFile, FootageError>;
    /// A still by its file name (as [`SegmentView::still`] gives it); never a path.
    fn still(&self, name: &str) -> Result<FootageFile, FootageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_status() {
        assert_eq!(http_status(ErrorKind::NotFound).0, 404);
        assert_eq!(http_status(ErrorKind::Conflict).0, 409);
        assert_eq!(http_status(ErrorKind::Invalid).0, 400);
        assert_eq!(http_status(ErrorKind::Unavailable).0, 503);
        assert_eq!(http_status(ErrorKind::Busy).0, 503);
        assert_eq!(http_status(ErrorKind::NotPermitted).0, 403);
        assert_eq!(http_status(ErrorKind::Io).0, 500);
    }
}
