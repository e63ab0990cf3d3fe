//! The storage keeper: its own thread, keeping the drive inside its quota and carrying out
//! locks, unlocks and async clips.
//!
//! It owns the index of what is on the drive (rebuilt from the files at start and rescanned
//! every [`RESCAN_EVERY`]; between scans it follows the writer's open/close reports), the
//! loop deletion (oldest closed loop segments first, file then metadata), the locked quota
//! and the event lock. The writer talks to it through a [`StorageLink`] that never blocks
//! the writer, except [`StorageLink::make_room`] on a full disk (bounded wait). Commands
//! reach it as request files ([`super::requests`]) or, from the web page, through the
//! link. It never writes segment data and never touches the open segment.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use log::{error, info, warn};

use crate::disk::layout::Layout;
use crate::disk::metadata::SegmentMeta;
use crate::disk::naming;
use crate::disk::naming::file_name;
use crate::disk::space::{self, human};
use crate::storage::clip::{self, ClipRequest};
use crate::storage::lock;
use crate::storage::quota::{self, LockedFull, QuotaSettings, Usage};
use crate::storage::requests::{self, DirLock, Reply, Request};
use crate::storage::StorageError;

/// How often the keeper checks the quota and the request folder.
pub const TICK: Duration = Duration::from_millis(250);
/// How often the index is rebuilt from the files.
pub const RESCAN_EVERY: Duration = Duration::from_secs(60);
/// Least room kept ahead of the writer.
const MIN_HEADROOM: u64 = 256 << 10;
/// Most room kept ahead of the writer, as a share of the footage limit.
const MAX_HEADROOM_SHARE: u64 = 10;
/// Seconds of writing kept ahead of the writer (at the measured rate).
const HEADROOM_SECONDS: f64 = 3.0;

#[derive(Clone, Debug)]
pub struct KeeperSettings {
    pub layout: Layout,
    pub quota: QuotaSettings,
    /// Event lock: footage after the event that must be locked too.
    pub post_event: Duration,
    /// Delete loop segments to keep the quota (false for a one-off command's keeper).
    pub enforce: bool,
}

/// Messages to the keeper.
#[derive(Debug)]
pub enum KeeperMsg {
    Opened {
        path: PathBuf,
        start: SystemTime,
    },
    Closed {
        path: PathBuf,
        meta: Option<SegmentMeta>,
    },
    /// The disk is full: delete the oldest loop segment(s), at least `need` bytes if
    /// possible; the answer is the bytes freed.
    MakeRoom {
        need: u64,
        reply: Sender<u64>,
    },
    /// A request (web page, GPIO, a request file).
    Request {
        request: Request,
        reply: Sender<Reply>,
    },
    /// The drive came back (or changed): rebuild the index now.
    Rescan,
    /// The drive came back after it was gone: recover it (repair segments a cut left),
    /// then rebuild the index; answer when done.
    DriveBack {
        reply: Sender<()>,
    },
    Stop,
}

/// The writer's and the web page's handle on the keeper.
#[derive(Clone, Debug)]
pub struct StorageLink {
    tx: Sender<KeeperMsg>,
    open_bytes: Arc<AtomicU64>,
}

impl StorageLink {
    /// A link whose keeper is not running (tests, tools): every report goes nowhere.
    pub fn detached() -> StorageLink {
        let (tx, _) = unbounded();
        StorageLink {
            tx,
            open_bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn opened(&self, path: &Path, start: SystemTime) {
        self.open_bytes.store(0, Ordering::Relaxed);
        let _ = self.tx.send(KeeperMsg::Opened {
            path: path.to_path_buf(),
            start,
        });
    }

    pub fn closed(&self, path: &Path, meta: Option<SegmentMeta>) {
        self.open_bytes.store(0, Ordering::Relaxed);
        let _ = self.tx.send(KeeperMsg::Closed {
            path: path.to_path_buf(),
            meta,
        });
    }

    /// Size of the open segment so far (cheap: an atomic store).
    pub fn set_open_bytes(&self, bytes: u64) {
        self.open_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Ask for room on a full disk; waits at most `timeout`. Returns the bytes freed.
    pub fn make_room(&self, need: u64, timeout: Duration) -> u64 {
        let (reply, rx) = bounded(1);
        if self.tx.send(KeeperMsg::MakeRoom { need, reply }).is_err() {
            return 0;
        }
        rx.recv_timeout(timeout).unwrap_or(0)
    }

    /// Send a request and wait for the answer (at most `timeout`).
    pub fn request(&self, request: Request, timeout: Duration) -> Reply {
        let (reply, rx) = bounded(1);
        if self.tx.send(KeeperMsg::Request { request, reply }).is_err() {
            return Reply::err("the storage keeper is not running");
        }
        rx.recv_timeout(timeout)
            .unwrap_or_else(|_| Reply::err("the storage keeper did not answer in time"))
    }

    /// Event lock now (the GPIO button, via the writer): fire and forget.
    pub fn event_lock(&self) {
        let (reply, _rx) = bounded(1);
        let _ = self.tx.send(KeeperMsg::Request {
            request: Request::LockNow,
            reply,
        });
    }

    pub fn rescan(&self) {
        let _ = self.tx.send(KeeperMsg::Rescan);
    }

    /// Recover the drive that came back and re-index; waits at most `timeout`.
    pub fn drive_back(&self, timeout: Duration) -> bool {
        let (reply, rx) = bounded(1);
        if self.tx.send(KeeperMsg::DriveBack { reply }).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }

    pub fn stop(&self) {
        let _ = self.tx.send(KeeperMsg::Stop);
    }
}

/// A segment in the index.
#[derive(Clone, Debug)]
struct Entry {
    path: PathBuf,
    /// File + metadata.
    bytes: u64,
}

/// A pending event lock: segments starting before `until` are locked when they close.
#[derive(Clone, Copy, Debug)]
struct PendingEvent {
    until: SystemTime,
}

struct Keeper {
    settings: KeeperSettings,
    rx: Receiver<KeeperMsg>,
    open_bytes: Arc<AtomicU64>,
    loop_segs: BTreeMap<u64, Entry>,
    locked: BTreeMap<u64, Entry>,
    saved_bytes: u64,
    corrupt_bytes: u64,
    open: Option<(u64, PathBuf, SystemTime)>,
    /// Lock the open segment when it closes (by name or by an event).
    lock_open_on_close: bool,
    events: Vec<PendingEvent>,
    names_pending: HashSet<u64>,
    /// Async clips waiting for the segment (sequence) in progress to close.
    clips: Vec<(ClipRequest, u64)>,
    /// Clips being cut; joined before the keeper ends.
    clip_threads: Vec<JoinHandle<()>>,
    last_scan: Option<Instant>,
    dir_lock: Option<DirLock>,
    /// Bytes written per second (exponential average), for the headroom.
    rate: f64,
    rate_sample: Option<(Instant, u64)>,
    written_closed: u64,
    /// Last "cannot keep the quota" warning (at most one a minute).
    over_quota_warned: Option<Instant>,
    drive_error_warned: bool,
}

/// Start the keeper thread (with the directory lock, when the caller took it already).
/// Builds the index from the files first.
pub fn spawn(
    settings: KeeperSettings,
    dir_lock: Option<DirLock>,
) -> std::io::Result<(StorageLink, JoinHandle<()>)> {
    let (tx, rx) = unbounded();
    let open_bytes = Arc::new(AtomicU64::new(0));
    let mut keeper = Keeper {
        settings,
        rx,
        open_bytes: open_bytes.clone(),
        loop_segs: BTreeMap::new(),
        locked: BTreeMap::new(),
        saved_bytes: 0,
        corrupt_bytes: 0,
        open: None,
        lock_open_on_close: false,
        events: Vec::new(),
        names_pending: HashSet::new(),
        clips: Vec::new(),
        clip_threads: Vec::new(),
        last_scan: None,
        dir_lock,
        rate: 0.0,
        rate_sample: None,
        written_closed: 0,
        over_quota_warned: None,
        drive_error_warned: false,
    };
    keeper.take_dir_lock();
    requests::clear_stale(&keeper.settings.layout);
    keeper.rescan();
    keeper.enforce();
    let handle = std::thread::Builder::new()
        .name("keeper".into())
        .spawn(move || keeper.run())?;
    Ok((StorageLink { tx, open_bytes }, handle))
}

/// Sum of the sizes of the files directly in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    })
}

impl Keeper {
    fn run(mut self) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(KeeperMsg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
        // Clips waiting for the last segment to close are cut now; running ones finish.
        self.open = None;
        self.run_due_clips();
        for t in self.clip_threads.drain(..) {
            let _ = t.join();
        }
        // Requests still waiting get an answer rather than a timeout.
        for (_, reply_to) in requests::take_pending(&self.settings.layout) {
            requests::answer(&reply_to, &Reply::err("the recorder is stopping"));
        }
    }

    fn handle(&mut self, msg: KeeperMsg) {
        match msg {
            KeeperMsg::Opened { path, start } => {
                let seq = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(naming::parse)
                    .map_or(u64::MAX, |n| n.sequence);
                self.events.retain(|e| start < e.until);
                self.lock_open_on_close =
                    !self.events.is_empty() || self.names_pending.remove(&seq);
                self.open = Some((seq, path, start));
            }
            KeeperMsg::Closed { path, meta } => {
                self.closed(path, meta);
                self.run_due_clips();
            }
            KeeperMsg::MakeRoom { need, reply } => {
                let freed = self.make_room(need);
                let _ = reply.send(freed);
            }
            KeeperMsg::Request { request, reply } => {
                let r = self.request(request);
                let _ = reply.send(r);
            }
            KeeperMsg::Rescan => {
                self.take_dir_lock();
                self.rescan();
            }
            KeeperMsg::DriveBack { reply } => {
                match crate::storage::recovery::recover(&self.settings.layout) {
                    Ok(r) if r.changed() => info!("{}", r.summary()),
                    Ok(_) => {}
                    Err(e) => warn!("recovery after the drive came back: {e}"),
                }
                self.take_dir_lock();
                self.rescan();
                let _ = reply.send(());
            }
            KeeperMsg::Stop => {}
        }
    }

    fn tick(&mut self) {
        if self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN_EVERY) {
            self.take_dir_lock();
            self.rescan();
        }
        self.measure_rate();
        self.enforce();
        for (request, reply_to) in requests::take_pending(&self.settings.layout) {
            let reply = self.request(request);
            requests::answer(&reply_to, &reply);
        }
        self.run_due_clips();
    }

    fn take_dir_lock(&mut self) {
        if self.dir_lock.is_some() || !self.settings.layout.root.is_dir() {
            return;
        }
        match DirLock::try_acquire(&self.settings.layout) {
            Ok(Some(l)) => self.dir_lock = Some(l),
            Ok(None) => warn!(
                "another process holds {}: is a second dashcam recording into {}?",
                self.settings.layout.lock_file().display(),
                self.settings.layout.root.display()
            ),
            Err(e) => warn!(
                "cannot lock {}: {e}",
                self.settings.layout.lock_file().display()
            ),
        }
    }

    /// Rebuild the index from the files.
    fn rescan(&mut self) {
        self.last_scan = Some(Instant::now());
        let layout = self.settings.layout.clone();
        let open_path = self.open.as_ref().map(|(_, p, _)| p.clone());
        let scan = |dir: &Path| -> Option<BTreeMap<u64, Entry>> {
            let rd = std::fs::read_dir(dir).ok()?;
            let mut map = BTreeMap::new();
            for e in rd.flatten() {
                let Some(name) = e.file_name().to_str().and_then(naming::parse) else {
                    continue;
                };
                if name.extension != "mp4" && name.extension != "avi" {
                    continue;
                }
                let path = e.path();
                if Some(&path) == open_path.as_ref() {
                    continue;
                }
                map.insert(
                    name.sequence,
                    Entry {
                        bytes: lock::segment_bytes(&path),
                        path,
                    },
                );
            }
            Some(map)
        };
        match scan(&layout.root) {
            Some(m) => {
                self.loop_segs = m;
                self.drive_error_warned = false;
            }
            None => {
                if !self.drive_error_warned {
                    warn!("cannot read {}: drive gone?", layout.root.display());
                    self.drive_error_warned = true;
                }
                return;
            }
        }
        self.locked = scan(&layout.locked()).unwrap_or_default();
        self.saved_bytes = dir_bytes(&layout.saved());
        self.corrupt_bytes = dir_bytes(&layout.corrupt());
    }

    fn usage(&self) -> Usage {
        Usage {
            loop_closed: self.loop_segs.values().map(|e| e.bytes).sum(),
            open: self.open_bytes.load(Ordering::Relaxed),
            locked: self.locked.values().map(|e| e.bytes).sum(),
            saved: self.saved_bytes,
            corrupt: self.corrupt_bytes,
        }
    }

    fn measure_rate(&mut self) {
        let now = Instant::now();
        let written = self.written_closed + self.open_bytes.load(Ordering::Relaxed);
        if let Some((t, w)) = self.rate_sample {
            let dt = now.duration_since(t).as_secs_f64();
            if dt >= 1.0 {
                let r = written.saturating_sub(w) as f64 / dt;
                self.rate = if self.rate == 0.0 {
                    r
                } else {
                    0.7 * self.rate + 0.3 * r
                };
                self.rate_sample = Some((now, written));
            }
        } else {
            self.rate_sample = Some((now, written));
        }
    }

    fn limits(&self, usage: &Usage) -> Option<quota::Limits> {
        let fs = space::fs_space(&self.settings.layout.root).ok()?;
        Some(
            self.settings
                .quota
                .limits(fs.total, fs.avail, usage.total()),
        )
    }

    /// Delete the oldest closed loop segments while over the limit.
    fn enforce(&mut self) {
        if !self.settings.enforce {
            return;
        }
        let usage = self.usage();
        let Some(limits) = self.limits(&usage) else {
            return;
        };
        let headroom = ((self.rate * HEADROOM_SECONDS) as u64)
            .max(MIN_HEADROOM)
            .min(limits.footage / MAX_HEADROOM_SHARE);
        // The newest closed segment stays: the quota may be exceeded by one segment, never
        // by deleting the most recent footage.
        let deletable = self.loop_segs.len().saturating_sub(1);
        let sizes: Vec<u64> = self
            .loop_segs
            .values()
            .take(deletable)
            .map(|e| e.bytes)
            .collect();
        let n = quota::loop_deletions(&limits, &usage, headroom, &sizes);
        for _ in 0..n {
            self.delete_oldest_loop("quota");
        }
        let after = self.usage();
        let over = after.total().saturating_add(headroom) > limits.footage;
        if over && self.loop_segs.len() <= 1 && self.may_warn() {
            warn!(
                "footage limit {} reached with only the newest segment left in the loop ({} locked, {} saved, {} open)",
                human(limits.footage),
                human(after.locked),
                human(after.saved),
                human(after.open)
            );
        }
    }

    /// Rate limit for the quota warnings.
    fn may_warn(&mut self) -> bool {
        if self
            .over_quota_warned
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
        {
            return false;
        }
        self.over_quota_warned = Some(Instant::now());
        true
    }

    fn delete_oldest_loop(&mut self, why: &str) -> u64 {
        let Some((&seq, _)) = self.loop_segs.iter().next() else {
            return 0;
        };
        let Some(entry) = self.loop_segs.remove(&seq) else {
            return 0;
        };
        match lock::delete_segment(&entry.path) {
            Ok(()) => {
                info!(
                    "deleted {} ({}, {why})",
                    file_name(&entry.path),
                    human(entry.bytes)
                );
                entry.bytes
            }
            Err(e) => {
                error!("cannot delete {}: {e}", entry.path.display());
                0
            }
        }
    }

    fn make_room(&mut self, need: u64) -> u64 {
        self.rescan();
        let mut freed = 0;
        // Never the newest closed segment: it is the footage just recorded.
        while freed < need.max(1) && self.loop_segs.len() > 1 {
            freed += self.delete_oldest_loop("disk full");
        }
        if freed == 0 && self.may_warn() {
            warn!("disk full and no older loop segment left to delete");
        }
        freed
    }

    fn closed(&mut self, path: PathBuf, meta: Option<SegmentMeta>) {
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(naming::parse)
            .map_or(u64::MAX, |n| n.sequence);
        let lock_it =
            self.lock_open_on_close && self.open.as_ref().is_some_and(|(s, _, _)| *s == seq);
        self.open = None;
        self.lock_open_on_close = false;
        if !path.exists() {
            return;
        }
        if meta.is_none() {
            // The writer could not finish it: finish it from what is durable.
            let name = file_name(&path);
            match crate::storage::recovery::repair_segment(&path, None) {
                Ok(m) => info!(
                    "{name} finished after the error: {} frames, {:.3} s",
                    m.frames, m.duration_s
                ),
                Err(e) => warn!("{name} left as cut (recovery repairs it at the next start): {e}"),
            }
        }
        let bytes = lock::segment_bytes(&path);
        self.written_closed = self.written_closed.saturating_add(bytes);
        self.loop_segs.insert(
            seq,
            Entry {
                path: path.clone(),
                bytes,
            },
        );
        if lock_it {
            match self.lock_seq(seq) {
                Ok(name) => info!("locked {name}"),
                Err(e) => error!("{e}"),
            }
        }
        self.enforce();
    }

    /// Move a closed loop segment into locked/, within the locked quota.
    fn lock_seq(&mut self, seq: u64) -> Result<String, StorageError> {
        let Some(entry) = self.loop_segs.get(&seq).cloned() else {
            return Err(StorageError::NotFound(format!(
                "segment {seq} is not in the loop"
            )));
        };
        let name = file_name(&entry.path);
        let usage = self.usage();
        let Some(limits) = self.limits(&usage) else {
            return Err(StorageError::Refused(format!(
                "cannot lock {name}: {} is not readable",
                self.settings.layout.root.display()
            )));
        };
        let sizes: Vec<u64> = self.locked.values().map(|e| e.bytes).collect();
        let full = || {
            format!(
                "cannot lock {name}: locked and saved footage would take {} of the {} allowed (locked_max_percent = {})",
                human(usage.protected() + entry.bytes),
                human(limits.protected),
                self.settings.quota.locked_max_percent
            )
        };
        match quota::locked_rotations(&limits, &usage, entry.bytes, &sizes) {
            Some(0) => {}
            Some(n) if self.settings.quota.locked_full == LockedFull::Rotate => {
                for _ in 0..n {
                    if let Some((&old, _)) = self.locked.iter().next() {
                        if let Some(e) = self.locked.remove(&old) {
                            warn!(
                                "locked quota full: rotating out the oldest locked segment {}",
                                file_name(&e.path)
                            );
                            if let Err(err) = lock::delete_segment(&e.path) {
                                error!("{err}");
                            }
                        }
                    }
                }
            }
            Some(_) => {
                return Err(StorageError::Refused(format!(
                    "{} (locked_full = \"refuse\")",
                    full()
                )))
            }
            None => return Err(StorageError::Refused(full())),
        }
        let to = lock::move_segment(
            &self.settings.layout,
            &entry.path,
            &self.settings.layout.locked(),
        )?;
        self.loop_segs.remove(&seq);
        self.locked.insert(seq, Entry { path: to, ..entry });
        Ok(name)
    }

    fn request(&mut self, request: Request) -> Reply {
        match request {
            Request::LockNow => self.event_lock(SystemTime::now()),
            Request::Lock { name } => {
                let found = match lock::find(&self.settings.layout, &name) {
                    Ok(f) => f,
                    Err(e) => return Reply::err(e.to_string()),
                };
                let fname = file_name(&found.path);
                if found.locked {
                    return Reply::ok(format!("{fname} is locked already"), vec![fname]);
                }
                if self
                    .open
                    .as_ref()
                    .is_some_and(|(s, _, _)| *s == found.sequence)
                {
                    self.lock_open_on_close = true;
                    return Reply::ok(
                        format!("{fname} is being recorded: it will be locked when it closes"),
                        vec![fname],
                    );
                }
                if !self.loop_segs.contains_key(&found.sequence) {
                    self.rescan();
                }
                match self.lock_seq(found.sequence) {
                    Ok(n) => Reply::ok(format!("locked {n}"), vec![n]),
                    Err(e) => Reply::err(e.to_string()),
                }
            }
            Request::Unlock { name } => {
                let found = match lock::find(&self.settings.layout, &name) {
                    Ok(f) => f,
                    Err(e) => return Reply::err(e.to_string()),
                };
                let fname = file_name(&found.path);
                if !found.locked {
                    return Reply::err(format!("{fname} is not locked"));
                }
                match lock::move_segment(
                    &self.settings.layout,
                    &found.path,
                    &self.settings.layout.root,
                ) {
                    Ok(to) => {
                        if let Some(mut e) = self.locked.remove(&found.sequence) {
                            e.path = to;
                            self.loop_segs.insert(found.sequence, e);
                        }
                        Reply::ok(format!("unlocked {fname}: back in the loop"), vec![fname])
                    }
                    Err(e) => Reply::err(e.to_string()),
                }
            }
            Request::Clip {
                from,
                to,
                output,
                metadata,
            } => {
                let parsed =
                    clip::parse_local(&from).and_then(|f| Ok((f, clip::parse_local(&to)?)));
                let (from_t, to_t) = match parsed {
                    Ok(p) => p,
                    Err(e) => return Reply::err(e.to_string()),
                };
                if from_t > to_t {
                    return Reply::err(format!("from ({from}) is after to ({to})"));
                }
                let ext = self
                    .open
                    .as_ref()
                    .and_then(|(_, p, _)| p.extension())
                    .or_else(|| {
                        self.loop_segs
                            .values()
                            .next_back()
                            .and_then(|e| e.path.extension())
                    })
                    .and_then(|e| e.to_str())
                    .unwrap_or("mp4")
                    .to_string();
                let out = output.map(PathBuf::from).unwrap_or_else(|| {
                    clip::default_output(&self.settings.layout, from_t, to_t, &ext)
                });
                let wait_for_close = self
                    .open
                    .as_ref()
                    .is_some_and(|(_, _, start)| *start <= to_t);
                let req = ClipRequest {
                    from: from_t,
                    to: to_t,
                    output: Some(out.clone()),
                    metadata,
                };
                let name = out.display().to_string();
                if wait_for_close {
                    let open_seq = self.open.as_ref().map_or(0, |(s, _, _)| *s);
                    self.clips.push((req, open_seq));
                    Reply::ok(
                        format!("{name} will be written when the segment in progress closes"),
                        vec![name],
                    )
                } else {
                    self.start_clip(req);
                    Reply::ok(format!("writing {name}"), vec![name])
                }
            }
        }
    }

    /// Lock the previous segment now, the current one when it closes, and the following
    /// ones while they start before `at + post_event`.
    fn event_lock(&mut self, at: SystemTime) -> Reply {
        let until = at + self.settings.post_event;
        let mut files = Vec::new();
        let mut notes = Vec::new();
        let open_seq = self.open.as_ref().map(|(s, _, _)| *s);
        let previous = self
            .loop_segs
            .range(..open_seq.unwrap_or(u64::MAX))
            .next_back()
            .map(|(s, _)| *s);
        if let Some(seq) = previous {
            match self.lock_seq(seq) {
                Ok(n) => {
                    notes.push(format!("locked {n}"));
                    files.push(n);
                }
                Err(e) => notes.push(e.to_string()),
            }
        }
        if let Some((_, path, _)) = &self.open {
            let n = file_name(path);
            notes.push(format!("{n} will be locked when it closes"));
            files.push(n);
            self.lock_open_on_close = true;
        }
        self.events.push(PendingEvent { until });
        notes.push(format!(
            "segments starting before {} will be locked too",
            clip::format_local(until)
        ));
        info!("event lock: {}", notes.join("; "));
        Reply::ok(notes.join("; "), files)
    }

    fn start_clip(&mut self, req: ClipRequest) {
        let layout = self.settings.layout.clone();
        let usage = self.usage();
        let budget = self
            .limits(&usage)
            .map(|l| l.protected.saturating_sub(usage.protected()));
        let spawned = std::thread::Builder::new()
            .name("clip".into())
            .spawn(move || match clip::make_clip(&layout, &req, budget) {
                Ok(info) => info!(
                    "clip {}: {} frames, {:.3} s from {} segment(s)",
                    info.path.display(),
                    info.frames,
                    info.duration_s,
                    info.segments.len()
                ),
                Err(e) => error!(
                    "clip {} → {}: {e}",
                    clip::format_local(req.from),
                    clip::format_local(req.to)
                ),
            });
        match spawned {
            Ok(t) => self.clip_threads.push(t),
            Err(e) => error!("cannot start the clip thread: {e}"),
        }
        self.clip_threads.retain(|t| !t.is_finished());
    }

    fn run_due_clips(&mut self) {
        let open_seq = self.open.as_ref().map(|(s, _, _)| *s);
        let mut i = 0;
        while i < self.clips.len() {
            if Some(self.clips[i].1) == open_seq {
                i += 1;
                continue;
            }
            let (req, _) = self.clips.remove(i);
            self.start_clip(req);
        }
    }
}

impl crate::recorder::writer::FootageLink for StorageLink {
    fn opened(&self, path: &Path, start: SystemTime) {
        StorageLink::opened(self, path, start);
    }
    fn closed(&self, path: &Path, meta: Option<SegmentMeta>) {
        StorageLink::closed(self, path, meta);
    }
    fn set_open_bytes(&self, bytes: u64) {
        StorageLink::set_open_bytes(self, bytes);
    }
    fn make_room(&self, need: u64, timeout: Duration) -> u64 {
        StorageLink::make_room(self, need, timeout)
    }
    fn drive_back(&self, timeout: Duration) -> bool {
        StorageLink::drive_back(self, timeout)
    }
    fn event_lock(&self) {
        StorageLink::event_lock(self);
    }
}
