//! The adapter between the web role and the footage core: it implements [`WebBackend`]
//! over the footage core's requests (through the running keeper's
//! [`crate::storage::keeper::StorageLink::request`], or a one-off [`Footage`] while
//! recording is off), the catalog, the clip cutter, the AVI reader and the record switch.
//! It is the only file that changes when the footage core's interface does.
//!
//! It owns the translation (the core's error kinds to the web's, files to views), a
//! short-lived cache of the listing (rebuilt when a folder changes, at most every
//! [`LISTING_MAX_AGE`]; status reads use the last one while another thread rebuilds it),
//! and the system clock calls (a clock set from the page is a `clock_set` event). Events
//! and stills for the page are [`super::web_events`]'. Footage operations go to the running keeper with
//! [`FOOTAGE_WAIT`]; while no run holds the directory they open the footage core for the
//! one request, as `dashcam lock` does (one at a time). It never writes segment data.
//!
//! Not yet from the footage core: quota deletions are counted by noticing loop segments
//! that vanished; a streamed clip is cut into a hidden `DIR/.web/` file that is unlinked as
//! soon as it is open (the clip cutter writes files, not streams).

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local};

use crate::app::switch::{RecordSwitch, SwitchAnswer};
use crate::app::web_events::{self, WebEvents};
use crate::config::Config;
use crate::disk::fault::DriveFault;
use crate::disk::layout::Layout;
use crate::disk::naming;
use crate::disk::space::{self, FsSpace};
use crate::mux::{self, avi};
use crate::state::event::EventKind;
use crate::state::health::{self, Health};
use crate::state::status::{RecorderState, StatusSnapshot};
use crate::storage::catalog;
use crate::storage::clip::{self, ClipRequest};
use crate::storage::error::{ErrorKind as CoreKind, FootageError as CoreError};
use crate::storage::footage::{Footage, FootageSettings};
use crate::storage::quota::QuotaSettings;
use crate::storage::requests::{Outcome, Request};
use crate::web::backend::{
    ClipSpec, Done, DriveState, ErrorKind, EventFeed, FootageError, FootageFile, MetricsView,
    ReplayIndex, SegmentFilter, SegmentKind, SegmentView, StatusView, WebBackend,
};

/// How long a footage operation waits for the keeper.
const FOOTAGE_WAIT: Duration = Duration::from_secs(10);
/// The listing is rebuilt at least this often (FAT's folder times have 2 s steps).
const LISTING_MAX_AGE: Duration = Duration::from_secs(2);
/// Free space below which the drive counts as full for the page (the keeper keeps
/// `min_free` free, so this means deleting cannot keep up).
const FULL_BELOW: u64 = 4 << 20;
/// A clock before this (2025-01-01) is certainly wrong.
const EARLIEST_PLAUSIBLE_MS: i64 = 1_735_689_600_000;
/// Hidden folder for clips being streamed.
const STREAM_DIR: &str = ".web";

/// One file as listed.
#[derive(Clone, Debug)]
struct Listed {
    name: String,
    kind: SegmentKind,
    path: PathBuf,
    bytes: u64,
    sequence: Option<u64>,
    start_ms: Option<i64>,
    duration_ms: Option<i64>,
    partial: bool,
    meta: Option<serde_json::Value>,
}

/// The listing and the drive's numbers at one moment.
#[derive(Clone, Debug)]
struct Listing {
    at: Instant,
    stamps: [Option<SystemTime>; 3],
    /// `Err`: the drive (footage directory) cannot be read.
    entries: Result<Vec<Listed>, String>,
    fs: Option<FsSpace>,
}

/// Frames on disk over time, for the measured rate.
#[derive(Default)]
struct RateMeter {
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl RateMeter {
    /// Frames per second over the last ten seconds: `frames` were on disk at `at` (the
    /// last sync; the count grows a fragment at a time).
    fn sample(&mut self, at: Instant, frames: u64) -> Option<f64> {
        let now = Instant::now();
        match self.samples.back() {
            Some(&(_, f)) if f > frames => self.samples.clear(),
            Some(&(_, f)) if f == frames => {}
            _ => self.samples.push_back((at, frames)),
        }
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(10))
        {
            self.samples.pop_front();
        }
        let (t0, f0) = *self.samples.front()?;
        let (t1, f1) = *self.samples.back()?;
        let dt = t1.duration_since(t0).as_secs_f64();
        (dt >= 2.0 && now.duration_since(t1) < Duration::from_secs(5))
            .then(|| (f1 - f0) as f64 / dt)
    }
}

pub struct FootageBackend {
    layout: Layout,
    quota: QuotaSettings,
    /// The footage core's settings for a one-off request (it deletes nothing).
    settings: FootageSettings,
    /// One one-off footage request at a time.
    one_off: Mutex<()>,
    source: String,
    window: Duration,
    switch: Arc<RecordSwitch>,
    started: Instant,
    listing: Mutex<Option<Arc<Listing>>>,
    /// Held while the listing is rebuilt (other callers use the last one).
    rebuilding: Mutex<()>,
    rate: Mutex<RateMeter>,
    /// One clip is cut at a time.
    clip_busy: Mutex<()>,
    stream_seq: AtomicU64,
    /// Loop segments seen, to notice the quota's deletions.
    seen_loop: Mutex<BTreeSet<u64>>,
    deleted_by_web: Mutex<BTreeSet<u64>>,
    quota_deletions: AtomicU64,
    /// The live events, the stills.
    events: WebEvents,
}

fn err(kind: ErrorKind, message: impl Into<String>) -> FootageError {
    FootageError::new(kind, message)
}

/// The web's kind of a footage-core error (one to one; `NotPermitted` is the web's own).
fn core(e: CoreError) -> FootageError {
    let kind = match e.kind {
        CoreKind::NotFound => ErrorKind::NotFound,
        CoreKind::Conflict => ErrorKind::Conflict,
        CoreKind::Invalid => ErrorKind::Invalid,
        CoreKind::Busy => ErrorKind::Busy,
        CoreKind::Unavailable => ErrorKind::Unavailable,
        CoreKind::Io => ErrorKind::Io,
    };
    err(kind, e.message)
}

fn from_outcome(r: Result<Outcome, CoreError>) -> Result<Done, FootageError> {
    r.map(|o| Done::new(o.message, o.files)).map_err(core)
}

/// The kind of an I/O error on a listed file: gone since it was listed is "not found",
/// otherwise the one errno table decides.
fn io_kind(e: &std::io::Error) -> ErrorKind {
    if e.kind() == std::io::ErrorKind::NotFound {
        return ErrorKind::NotFound;
    }
    match DriveFault::of(e) {
        DriveFault::Gone | DriveFault::ReadOnly | DriveFault::Denied => ErrorKind::Unavailable,
        DriveFault::Full | DriveFault::TooBig | DriveFault::Other => ErrorKind::Io,
    }
}

fn ms_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A name as the catalog lists it: one plain file name.
fn plain_name(name: &str) -> Result<&str, FootageError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0']);
    if ok {
        Ok(name)
    } else {
        Err(err(
            ErrorKind::NotFound,
            format!("no footage named {name:?}"),
        ))
    }
}

fn content_type(name: &str) -> &'static str {
    if name.ends_with(".mp4") {
        "video/mp4"
    } else if name.ends_with(".avi") {
        "video/x-msvideo"
    } else {
        "application/octet-stream"
    }
}

/// Whether the kernel says the system clock is synchronised (NTP, GPS, PTP).
fn clock_synchronised() -> bool {
    // SAFETY: `timex` is plain data; with `modes == 0` adjtimex only reads the kernel's
    // clock state into it.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    state >= 0 && state != libc::TIME_ERROR && (tx.status & libc::STA_UNSYNC) == 0
}

/// List the loop folder, `locked/` and `saved/`.
fn scan(layout: &Layout) -> Result<Vec<Listed>, String> {
    let mut out = Vec::new();
    for (dir, kind) in [
        (layout.root.clone(), SegmentKind::Loop),
        (layout.locked(), SegmentKind::Locked),
    ] {
        let entries = match catalog::list(&dir) {
            Ok(e) => e,
            // Not there yet: the recorder creates the folder when it starts, a moment
            // after this server is up; until then nothing is recorded. (A drive that is
            // gone is the status's health, not this listing's.)
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
        };
        for e in entries {
            let name = naming::file_name(&e.path);
            let start_ms = e.meta.as_ref().map(|m| m.start_unix_ms).or_else(|| {
                naming::parse(&name)
                    .and_then(|n| naming::wall_of(&n))
                    .map(ms_of)
            });
            out.push(Listed {
                kind,
                bytes: e.bytes,
                sequence: Some(e.sequence),
                start_ms,
                duration_ms: e.meta.as_ref().map(|m| (m.duration_s * 1000.0) as i64),
                partial: e.meta.as_ref().is_some_and(|m| m.partial),
                meta: e.meta.as_ref().and_then(|m| serde_json::to_value(m).ok()),
                path: e.path,
                name,
            });
        }
    }
    if let Ok(rd) = std::fs::read_dir(layout.saved()) {
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.ends_with(".mp4") || name.ends_with(".avi")) || name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let meta: Option<serde_json::Value> = std::fs::read(path.with_extension("json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let field = |k: &str| meta.as_ref().and_then(|m| m.get(k)).cloned();
            out.push(Listed {
                kind: SegmentKind::Saved,
                bytes: entry.metadata().map_or(0, |m| m.len()),
                sequence: None,
                start_ms: field("start_unix_ms").and_then(|v| v.as_i64()),
                duration_ms: field("duration_s")
                    .and_then(|v| v.as_f64())
                    .map(|d| (d * 1000.0) as i64),
                partial: false,
                meta,
                path,
                name,
            });
        }
    }
    out.sort_by_key(|l| {
        (
            l.start_ms.unwrap_or(i64::MIN),
            l.sequence.unwrap_or(u64::MAX),
        )
    });
    Ok(out)
}

impl FootageBackend {
    /// The backend of `config`'s footage; events and stills from `events` (the session's).
    pub fn new(
        config: &Config,
        switch: Arc<RecordSwitch>,
        events: crate::events::SessionEvents,
    ) -> FootageBackend {
        let layout = Layout::new(&config.dir);
        // Clips streamed by an earlier run that died mid-way.
        if let Ok(rd) = std::fs::read_dir(layout.root.join(STREAM_DIR)) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        FootageBackend {
            quota: crate::app::pipeline::footage_settings(config, false).quota,
            settings: crate::app::pipeline::footage_settings(config, false),
            one_off: Mutex::new(()),
            source: config.source.clone(),
            window: health::progress_window(Duration::from_secs_f64(config.sync_interval)),
            layout,
            switch,
            started: Instant::now(),
            listing: Mutex::new(None),
            rebuilding: Mutex::new(()),
            rate: Mutex::new(RateMeter::default()),
            clip_busy: Mutex::new(()),
            stream_seq: AtomicU64::new(0),
            seen_loop: Mutex::new(BTreeSet::new()),
            deleted_by_web: Mutex::new(BTreeSet::new()),
            quota_deletions: AtomicU64::new(0),
            events: WebEvents::new(
                events,
                config.stills.as_ref().map(|s| s.dir_in(&config.dir)),
            ),
        }
    }

    fn stamps(&self) -> [Option<SystemTime>; 3] {
        [
            modified(&self.layout.root),
            modified(&self.layout.locked()),
            modified(&self.layout.saved()),
        ]
    }

    /// The listing: the cached one while the folders are unchanged and it is young, else
    /// rebuilt. With `wait == false` a rebuild in another thread is not waited for.
    fn listing(&self, wait: bool) -> Arc<Listing> {
        let stamps = self.stamps();
        let cached = self.listing.lock().ok().and_then(|g| g.clone());
        if let Some(c) = &cached {
            if c.stamps == stamps && c.at.elapsed() < LISTING_MAX_AGE {
                return c.clone();
            }
        }
        let guard = if wait {
            self.rebuilding.lock().ok()
        } else {
            self.rebuilding.try_lock().ok()
        };
        let Some(_guard) = guard else {
            if let Some(c) = cached {
                return c;
            }
            return self.listing(true);
        };
        let entries = scan(&self.layout);
        if let Ok(list) = &entries {
            self.note_deletions(list);
        }
        let fresh = Arc::new(Listing {
            at: Instant::now(),
            stamps,
            entries,
            fs: space::fs_space(&self.layout.root).ok(),
        });
        if let Ok(mut g) = self.listing.lock() {
            *g = Some(fresh.clone());
        }
        fresh
    }

    fn invalidate(&self) {
        if let Ok(mut g) = self.listing.lock() {
            *g = None;
        }
    }

    /// Count loop segments that left the loop without being locked or deleted here: the
    /// quota deleted them.
    fn note_deletions(&self, list: &[Listed]) {
        let now_loop: BTreeSet<u64> = list
            .iter()
            .filter(|l| l.kind == SegmentKind::Loop)
            .filter_map(|l| l.sequence)
            .collect();
        let locked: BTreeSet<u64> = list
            .iter()
            .filter(|l| l.kind == SegmentKind::Locked)
            .filter_map(|l| l.sequence)
            .collect();
        let (Ok(mut seen), Ok(mut by_web)) = (self.seen_loop.lock(), self.deleted_by_web.lock())
        else {
            return;
        };
        let gone = seen
            .difference(&now_loop)
            .filter(|s| !locked.contains(s) && !by_web.contains(s))
            .count() as u64;
        self.quota_deletions.fetch_add(gone, Ordering::Relaxed);
        by_web.retain(|s| now_loop.contains(s));
        *seen = now_loop;
    }

    fn find(&self, name: &str) -> Result<Listed, FootageError> {
        let name = plain_name(name)?;
        let pick = |l: &Listing| -> Result<Option<Listed>, FootageError> {
            match &l.entries {
                Ok(list) => Ok(list.iter().find(|e| e.name == name).cloned()),
                Err(m) => Err(err(ErrorKind::Unavailable, m.clone())),
            }
        };
        if let Some(found) = pick(&self.listing(true))? {
            return Ok(found);
        }
        self.invalidate();
        pick(&self.listing(true))?
            .ok_or_else(|| err(ErrorKind::NotFound, format!("no footage named {name:?}")))
    }

    /// Open a listed file for reading: a regular file in its folder, never a symlink.
    fn open_listed(&self, l: &Listed) -> Result<(File, std::fs::Metadata), FootageError> {
        let lmeta = std::fs::symlink_metadata(&l.path)
            .map_err(|e| err(io_kind(&e), format!("{}: {e}", l.name)))?;
        if !lmeta.file_type().is_file() {
            return Err(err(
                ErrorKind::NotFound,
                format!("{} is not a plain file", l.name),
            ));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&l.path)
            .map_err(|e| err(io_kind(&e), format!("{}: {e}", l.name)))?;
        let meta = file
            .metadata()
            .map_err(|e| err(io_kind(&e), format!("{}: {e}", l.name)))?;
        Ok((file, meta))
    }

    /// Run `request` on the running keeper, or on the footage core opened for it while no
    /// run holds the directory.
    fn keeper_request(&self, request: Request) -> Result<Done, FootageError> {
        if let Some(link) = self.switch.live().and_then(|l| l.storage) {
            let r = from_outcome(link.request(request, FOOTAGE_WAIT));
            self.invalidate();
            return r;
        }
        let Some(_op) = self.switch.idle_op() else {
            return Err(err(
                ErrorKind::Busy,
                "recording is starting; try again in a moment",
            ));
        };
        if !self.layout.root.is_dir() {
            return Err(err(
                ErrorKind::Unavailable,
                format!("{} is not there (drive gone?)", self.layout.root.display()),
            ));
        }
        if request == Request::LockNow {
            return Err(err(
                ErrorKind::Conflict,
                "nothing is being recorded: lock a segment by name instead",
            ));
        }
        let _one = self.one_off.lock();
        let mut footage = Footage::open(self.settings.clone());
        let r = from_outcome(footage.handle(request, SystemTime::now()));
        self.invalidate();
        r
    }

    /// The measured rate while recording.
    fn fps(&self, snap: &StatusSnapshot) -> Option<f64> {
        if snap.state != RecorderState::Recording {
            return None;
        }
        let at = snap.last_sync?;
        self.rate.lock().ok()?.sample(at, snap.frames_synced)
    }

    /// The drive as the page shows it; `writer_error` is the recorder's last error while
    /// it is in the error state (a full disk it could not make room on).
    fn drive(&self, l: &Listing, writer_error: Option<&str>) -> (DriveState, Option<String>) {
        if let Err(m) = &l.entries {
            return (
                DriveState::Unavailable,
                Some(format!("drive unavailable: {m}")),
            );
        }
        match l.fs {
            None => (DriveState::Unavailable, Some("drive unavailable".into())),
            Some(fs)
                if fs.avail < FULL_BELOW
                    || writer_error.is_some_and(|e| {
                        e.contains("No space left") || e.contains("nothing left to delete")
                    }) =>
            {
                (
                    DriveState::Full,
                    Some(format!("drive full: {} free", space::human(fs.avail))),
                )
            }
            Some(_) => (DriveState::Ok, None),
        }
    }
}

/// Totals of a listing.
struct Totals {
    segments: u64,
    locked_segments: u64,
    saved: u64,
    footage: u64,
    protected: u64,
    partial: u64,
    newest_start: Option<i64>,
}

fn totals(list: &[Listed]) -> Totals {
    let mut t = Totals {
        segments: 0,
        locked_segments: 0,
        saved: 0,
        footage: 0,
        protected: 0,
        partial: 0,
        newest_start: None,
    };
    for l in list {
        t.footage += l.bytes;
        match l.kind {
            SegmentKind::Loop => t.segments += 1,
            SegmentKind::Locked => {
                t.segments += 1;
                t.locked_segments += 1;
                t.protected += l.bytes;
            }
            SegmentKind::Saved => {
                t.saved += 1;
                t.protected += l.bytes;
            }
        }
        if l.partial {
            t.partial += 1;
        }
        if l.kind != SegmentKind::Saved {
            t.newest_start = t.newest_start.max(l.start_ms);
        }
    }
    t
}

impl WebBackend for FootageBackend {
    fn status(&self) -> StatusView {
        let snap = self.switch.status().snapshot();
        let carried = self.switch.carried();
        let wanted = self.switch.wanted();
        let listing = self.listing(false);
        let list: &[Listed] = listing.entries.as_deref().unwrap_or(&[]);
        let t = totals(list);
        let writer_error = match snap.state {
            RecorderState::Error => snap.last_error.as_deref(),
            _ => None,
        };
        let (drive, drive_message) = self.drive(&listing, writer_error);
        let limits = listing
            .fs
            .map(|fs| self.quota.limits(fs.total, fs.avail, t.footage));
        let now = SystemTime::now();
        let now_ms = ms_of(now);
        let fps = self.fps(&snap);
        let health = health::judge(&snap, Instant::now(), self.window);
        let state = match snap.state {
            RecorderState::Starting => "starting",
            RecorderState::Recording => "recording",
            RecorderState::Idle => "idle",
            RecorderState::Error => "error",
            RecorderState::Stopped => "stopped",
        };
        let reason = match (snap.state, &health) {
            (_, _) if snap.source_lost.is_some() => snap.source_lost.as_ref().map(|(at, why)| {
                let local: DateTime<Local> = (*at).into();
                format!(
                    "the camera is gone since {}: {why}",
                    local.format("%H:%M:%S")
                )
            }),
            (RecorderState::Stopped, _) if !wanted || self.switch.paused() => {
                Some("Recording is off (switched off from the phone)".into())
            }
            (RecorderState::Stopped, _) => Some("Stopped".into()),
            (RecorderState::Error, _) => Some(
                snap.last_error
                    .clone()
                    .unwrap_or_else(|| "Writing fails; retrying".into()),
            ),
            (RecorderState::Idle, _) => Some(
                "No frames from the camera: the segment was closed; recording resumes when they come"
                    .into(),
            ),
            (RecorderState::Starting, _) => Some("Starting: no frame on disk yet".into()),
            (_, Health::Stalled(why)) => Some(why.clone()),
            _ => None,
        };
        StatusView {
            state,
            reason,
            recording_wanted: wanted,
            source: self.source.clone(),
            current_segment: snap.current_segment.clone(),
            frames_on_disk: carried.0 + snap.frames_synced,
            frames_dropped: carried.1 + snap.frames_dropped,
            segments_closed: carried.2 + snap.segments_closed,
            last_sync_age_s: snap.last_sync.map(|t| t.elapsed().as_secs_f64()),
            fps,
            drive,
            drive_message,
            segments: t.segments,
            locked_segments: t.locked_segments,
            saved_clips: t.saved,
            footage_bytes: t.footage,
            locked_bytes: t.protected,
            quota_bytes: limits.map(|l| l.footage),
            locked_quota_bytes: limits.map(|l| l.protected),
            locked_share: limits
                .filter(|l| l.protected > 0)
                .map(|l| t.protected as f64 / l.protected as f64),
            free_bytes: listing.fs.map(|f| f.avail),
            drive_bytes: listing.fs.map(|f| f.total),
            uptime_s: self.started.elapsed().as_secs_f64(),
            clock_unix_ms: now_ms,
            clock_local: clip::format_local(now),
            clock_synchronised: clock_synchronised(),
            clock_suspect: now_ms < EARLIEST_PLAUSIBLE_MS
                || t.newest_start.is_some_and(|n| now_ms + 60_000 < n),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    fn segments(&self, filter: &SegmentFilter) -> Result<Vec<SegmentView>, FootageError> {
        let listing = self.listing(true);
        let list = listing
            .entries
            .as_ref()
            .map_err(|m| err(ErrorKind::Unavailable, format!("drive unavailable: {m}")))?;
        let current = self.switch.status().snapshot().current_segment;
        let stills = self.events.stills();
        let now_ms = ms_of(SystemTime::now());
        Ok(list
            .iter()
            .filter(|l| filter.kind.is_none_or(|k| k == l.kind))
            .filter(|l| {
                let start = l.start_ms.unwrap_or(i64::MIN);
                let end = start.saturating_add(l.duration_ms.unwrap_or(0));
                filter.from_ms.is_none_or(|f| end >= f) && filter.to_ms.is_none_or(|t| start <= t)
            })
            .map(|l| {
                let recording = l.kind == SegmentKind::Loop && current.as_deref() == Some(&l.name);
                let bytes = if recording {
                    std::fs::metadata(&l.path).map_or(l.bytes, |m| m.len())
                } else {
                    l.bytes
                };
                let still = l.start_ms.and_then(|start| {
                    let end = match l.duration_ms {
                        Some(d) => start.saturating_add(d),
                        None => now_ms,
                    };
                    web_events::still_for(&stills, start, end).map(str::to_string)
                });
                SegmentView {
                    name: l.name.clone(),
                    kind: l.kind,
                    file_bytes: bytes,
                    recording,
                    start_unix_ms: l.start_ms,
                    meta: l.meta.clone(),
                    still,
                }
            })
            .collect())
    }

    fn open(&self, name: &str) -> Result<FootageFile, FootageError> {
        let l = self.find(name)?;
        let (file, meta) = self.open_listed(&l)?;
        Ok(FootageFile {
            file,
            content_type: content_type(&l.name),
            len: meta.len(),
            modified: meta.modified().unwrap_or(UNIX_EPOCH),
            identity: (meta.dev(), meta.ino()),
            name: l.name,
        })
    }

    fn replay(&self, name: &str) -> Result<ReplayIndex, FootageError> {
        let l = self.find(name)?;
        if !l.name.ends_with(".avi") {
            return Err(err(
                ErrorKind::Invalid,
                format!("{} is not an MJPEG AVI: play it directly", l.name),
            ));
        }
        let (file, _) = self.open_listed(&l)?;
        let avi = mux::read_file(&l.path, avi::read)
            .map_err(|e| err(ErrorKind::Io, format!("{}: {e}", l.name)))?;
        let rate = if avi.rate > 0 && avi.scale > 0 {
            (avi.rate, avi.scale)
        } else {
            (30, 1)
        };
        Ok(ReplayIndex {
            file,
            rate,
            frames: avi.chunks.iter().map(|c| (c.offset, c.size)).collect(),
        })
    }

    fn lock(&self, name: &str) -> Result<Done, FootageError> {
        let l = self.find(name)?;
        match l.kind {
            SegmentKind::Saved => Err(err(
                ErrorKind::Conflict,
                format!("{} is a saved clip: it is kept already", l.name),
            )),
            SegmentKind::Locked => Ok(Done::new(
                format!("{} is locked already", l.name),
                vec![l.name],
            )),
            SegmentKind::Loop => self.keeper_request(Request::Lock { name: l.name }),
        }
    }

    fn lock_now(&self) -> Result<Done, FootageError> {
        match self.switch.live().and_then(|l| l.storage) {
            Some(link) => {
                let r = from_outcome(link.request(Request::LockNow, FOOTAGE_WAIT));
                self.invalidate();
                r
            }
            None => Err(err(
                ErrorKind::Conflict,
                "nothing is being recorded: lock a segment by name instead",
            )),
        }
    }

    fn unlock(&self, name: &str) -> Result<Done, FootageError> {
        let l = self.find(name)?;
        if l.kind != SegmentKind::Locked {
            return Err(err(
                ErrorKind::Conflict,
                format!("{} is not locked", l.name),
            ));
        }
        self.keeper_request(Request::Unlock { name: l.name })
    }

    fn delete(&self, name: &str) -> Result<Done, FootageError> {
        let l = self.find(name)?;
        let current = self.switch.status().snapshot().current_segment;
        match l.kind {
            SegmentKind::Locked => {
                return Err(err(
                    ErrorKind::Conflict,
                    format!("{} is locked: unlock it first", l.name),
                ))
            }
            SegmentKind::Loop if current.as_deref() == Some(&l.name) => {
                return Err(err(
                    ErrorKind::Conflict,
                    format!("{} is being recorded and cannot be deleted", l.name),
                ))
            }
            SegmentKind::Loop | SegmentKind::Saved => {
                if let (Some(seq), Ok(mut by_web)) = (l.sequence, self.deleted_by_web.lock()) {
                    by_web.insert(seq);
                }
            }
        }
        self.keeper_request(Request::Delete {
            name: l.name.clone(),
        })?;
        self.invalidate();
        Ok(Done::new(format!("deleted {}", l.name), vec![l.name]))
    }

    fn save_clip(&self, spec: &ClipSpec) -> Result<Done, FootageError> {
        if spec.asynchronous {
            if let Some(link) = self.switch.live().and_then(|l| l.storage) {
                let mut done = from_outcome(link.request(
                    Request::Clip {
                        from: spec.from.clone(),
                        to: spec.to.clone(),
                        output: None,
                        metadata: spec.metadata.clone(),
                    },
                    FOOTAGE_WAIT,
                ))?;
                done.files = done
                    .files
                    .iter()
                    .map(|f| naming::file_name(Path::new(f)))
                    .collect();
                return Ok(done);
            }
        }
        let Ok(_one) = self.clip_busy.try_lock() else {
            return Err(err(
                ErrorKind::Busy,
                "a clip is being cut; try again when it is done",
            ));
        };
        let from =
            clip::parse_local(&spec.from).map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
        let to = clip::parse_local(&spec.to).map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
        // Into saved/, within the locked share, as `dashcam clip` does.
        let info = Footage::open(self.settings.clone())
            .cut_clip(ClipRequest {
                from,
                to,
                output: None,
                metadata: spec.metadata.clone(),
            })
            .map_err(core)?;
        self.invalidate();
        Ok(Done::new(
            format!(
                "saved {}: {} frames, {:.1} s",
                info.file, info.frames, info.duration_s
            ),
            vec![info.file],
        ))
    }

    fn clip_stream(&self, from: &str, to: &str) -> Result<FootageFile, FootageError> {
        let Ok(_one) = self.clip_busy.try_lock() else {
            return Err(err(
                ErrorKind::Busy,
                "a clip is being cut; try again when it is done",
            ));
        };
        let from_t = clip::parse_local(from).map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
        let to_t = clip::parse_local(to).map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
        let dir = self.layout.root.join(STREAM_DIR);
        self.layout
            .ensure(&dir)
            .map_err(|e| err(io_kind(&e), format!("{}: {e}", dir.display())))?;
        let n = self.stream_seq.fetch_add(1, Ordering::Relaxed);
        let out = dir.join(format!("stream-{}-{n}", std::process::id()));
        let result = clip::make_clip(
            &self.layout,
            &ClipRequest {
                from: from_t,
                to: to_t,
                output: Some(out.clone()),
                metadata: None,
            },
            None,
        );
        let json = out.with_extension("json");
        let opened = result.map_err(core).and_then(|info| {
            let file = File::open(&out).map_err(|e| err(io_kind(&e), e.to_string()))?;
            let meta = file
                .metadata()
                .map_err(|e| err(io_kind(&e), e.to_string()))?;
            Ok((info, file, meta))
        });
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&json);
        let (info, file, meta) = opened?;
        let ext = info.codec.extension();
        let f = |t: SystemTime| {
            DateTime::<Local>::from(t)
                .format("%Y%m%d-%H%M%S")
                .to_string()
        };
        let name = format!("clip_{}_{}.{ext}", f(from_t), f(to_t));
        Ok(FootageFile {
            file,
            content_type: content_type(&name),
            len: meta.len(),
            modified: meta.modified().unwrap_or(UNIX_EPOCH),
            identity: (meta.dev(), meta.ino()),
            name,
        })
    }

    fn set_recording(&self, on: bool) -> Result<Done, FootageError> {
        match self.switch.request(on) {
            SwitchAnswer::Done(m) => Ok(Done::new(m, Vec::new())),
            SwitchAnswer::Refused(m) => Err(err(ErrorKind::Conflict, m)),
        }
    }

    fn set_clock(&self, unix_ms: i64) -> Result<Done, FootageError> {
        if clock_synchronised() {
            return Err(err(
                ErrorKind::Conflict,
                "the clock is synchronised (network or GPS time): not changed",
            ));
        }
        let ts = rustix::time::Timespec {
            tv_sec: unix_ms.div_euclid(1000),
            tv_nsec: (unix_ms.rem_euclid(1000) * 1_000_000) as _,
        };
        let before = SystemTime::now();
        match rustix::time::clock_settime(rustix::time::ClockId::Realtime, ts) {
            Ok(()) => {
                let set = match u64::try_from(unix_ms) {
                    Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
                    Err(_) => UNIX_EPOCH,
                };
                self.events.sink().emit(EventKind::clock_set(before, set));
                let now = clip::format_local(SystemTime::now());
                log::info!("clock set from the phone page: {now}");
                Ok(Done::new(
                    format!("clock set to {now}; segments already written keep their names"),
                    Vec::new(),
                ))
            }
            Err(rustix::io::Errno::PERM) => Err(err(
                ErrorKind::NotPermitted,
                "this process may not set the clock (it needs CAP_SYS_TIME; see the README)",
            )),
            Err(e) => Err(err(ErrorKind::Io, format!("cannot set the clock: {e}"))),
        }
    }

    fn events(&self) -> Result<Box<dyn EventFeed>, FootageError> {
        self.events.subscribe()
    }

    fn latest_still(&self) -> Result<FootageFile, FootageError> {
        self.events.latest_still()
    }

    fn still(&self, name: &str) -> Result<FootageFile, FootageError> {
        self.events.still(name)
    }

    fn metrics(&self) -> MetricsView {
        let snap = self.switch.status().snapshot();
        let carried = self.switch.carried();
        let listing = self.listing(false);
        let t = totals(listing.entries.as_deref().unwrap_or(&[]));
        let limits = listing
            .fs
            .map(|fs| self.quota.limits(fs.total, fs.avail, t.footage));
        let live = self.switch.live();
        let current_bytes = snap
            .current_segment
            .as_ref()
            .and_then(|n| std::fs::metadata(self.layout.root.join(n)).ok())
            .map(|m| m.len());
        let fps = self.fps(&snap);
        MetricsView {
            segments_closed: carried.2 + snap.segments_closed,
            frames_written: carried.0 + snap.frames_synced,
            frames_dropped: carried.1 + snap.frames_dropped,
            partial_segments: t.partial,
            queue_frames: live.as_ref().map(|l| l.queue.len() as u64),
            current_segment_bytes: current_bytes,
            fps,
            last_sync_age_s: snap.last_sync.map(|t| t.elapsed().as_secs_f64()),
            free_bytes: listing.fs.map(|f| f.avail),
            used_bytes: t.footage,
            locked_bytes: t.protected,
            quota_bytes: limits.map(|l| l.footage),
            quota_deletions: self.quota_deletions.load(Ordering::Relaxed),
            recording: snap.state == RecorderState::Recording,
            uptime_s: self.started.elapsed().as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_kinds_map_one_to_one() {
        for (c, w) in [
            (CoreKind::NotFound, ErrorKind::NotFound),
            (CoreKind::Conflict, ErrorKind::Conflict),
            (CoreKind::Invalid, ErrorKind::Invalid),
            (CoreKind::Busy, ErrorKind::Busy),
            (CoreKind::Unavailable, ErrorKind::Unavailable),
            (CoreKind::Io, ErrorKind::Io),
        ] {
            let e = core(CoreError::new(c, "m"));
            assert_eq!((e.kind, e.message.as_str()), (w, "m"));
        }
    }

    #[test]
    fn names_are_plain() {
        assert!(plain_name("20261121-143005_000042.mp4").is_ok());
        for bad in ["", ".dashcam.lock", "locked/x.mp4", "..", "a\\b"] {
            assert_eq!(
                plain_name(bad).map_err(|e| e.kind),
                Err(ErrorKind::NotFound),
                "{bad}"
            );
        }
    }

    #[test]
    fn rate_needs_two_seconds() {
        let mut r = RateMeter::default();
        let t0 = Instant::now();
        assert_eq!(r.sample(t0, 0), None);
        assert_eq!(r.sample(t0 + Duration::from_secs(1), 30), None);
        let fps = r.sample(t0 + Duration::from_secs(3), 90).expect("rate");
        assert!((fps - 30.0).abs() < 1e-9, "{fps}");
        assert_eq!(
            r.sample(t0 + Duration::from_secs(3), 90),
            Some(fps),
            "no change: the same rate"
        );
        assert!((fps - 30.0).abs() < 1.0, "{fps}");
    }
}
