//! The keeper: the thread around the footage core ([`Footage`]) while a recorder runs.
//!
//! It owns the scheduling only: the writer's reports and the requests arrive on a channel
//! (through a [`StorageLink`], which never blocks the writer except
//! [`StorageLink::make_room`] on a full disk and [`StorageLink::drive_back`], both bounded
//! waits); every [`TICK`] it lets the core keep the quota and answers the request files of
//! `dashcam lock|unlock|clip --async` ([`super::requests`]); every [`RESCAN_EVERY`] the
//! index is rebuilt from the files. It holds the directory lock that tells commands a
//! recorder runs. Clips are cut in threads of their own, so that a long clip never delays
//! room for the writer. All decisions are the core's; it never touches a file itself
//! except the request and reply files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use log::{error, info, warn};

use crate::disk::metadata::SegmentMeta;
use crate::storage::clip;
use crate::storage::error::FootageError;
use crate::storage::footage::{ClipJob, Footage, FootageSettings};
use crate::storage::requests::{self, DirLock, Outcome, Reply, Request};

/// How often the keeper checks the quota and the request folder.
pub const TICK: Duration = Duration::from_millis(250);
/// How often the index is rebuilt from the files.
pub const RESCAN_EVERY: Duration = Duration::from_secs(60);

/// Messages to the keeper.
#[derive(Debug)]
enum KeeperMsg {
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
    /// A request (the phone page); the answer goes back on `reply`.
    Request {
        request: Request,
        reply: Sender<Result<Outcome, FootageError>>,
    },
    /// Event lock now (the button, through the writer): nobody waits for the answer.
    EventLock {
        at: SystemTime,
    },
    /// The drive came back after it was gone: recover it, then rebuild the index; answer
    /// when done.
    DriveBack {
        reply: Sender<()>,
    },
    Stop,
}

/// The writer's (and, later, the phone page's) handle on the keeper.
#[derive(Clone, Debug)]
pub struct StorageLink {
    tx: Sender<KeeperMsg>,
    open_bytes: Arc<AtomicU64>,
}

impl StorageLink {
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

    /// Send a request and wait for the answer, at most `timeout` (then, or when the
    /// keeper has stopped: [`crate::storage::error::ErrorKind::Busy`]).
    #[cfg_attr(not(test), allow(dead_code))] // the phone page's way in (issue 8)
    pub fn request(&self, request: Request, timeout: Duration) -> Result<Outcome, FootageError> {
        let (reply, rx) = bounded(1);
        if self.tx.send(KeeperMsg::Request { request, reply }).is_err() {
            return Err(FootageError::busy("the recorder is not running"));
        }
        rx.recv_timeout(timeout).unwrap_or_else(|e| {
            Err(FootageError::busy(match e {
                RecvTimeoutError::Timeout => "the recorder did not answer in time",
                RecvTimeoutError::Disconnected => "the recorder is stopping",
            }))
        })
    }

    /// Event lock now (the GPIO button, via the writer): fire and forget.
    pub fn event_lock(&self) {
        let _ = self.tx.send(KeeperMsg::EventLock {
            at: SystemTime::now(),
        });
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

struct Keeper {
    footage: Footage,
    rx: Receiver<KeeperMsg>,
    open_bytes: Arc<AtomicU64>,
    /// Clips being cut; joined before the keeper ends.
    clip_threads: Vec<JoinHandle<()>>,
    last_scan: Instant,
    dir_lock: Option<DirLock>,
}

/// Start the keeper thread (with the directory lock, when the caller took it already).
/// Builds the index from the files and keeps the quota first.
pub fn spawn(
    settings: FootageSettings,
    dir_lock: Option<DirLock>,
) -> std::io::Result<(StorageLink, JoinHandle<()>)> {
    let (tx, rx) = unbounded();
    let open_bytes = Arc::new(AtomicU64::new(0));
    requests::clear_stale(&settings.layout);
    let mut keeper = Keeper {
        footage: Footage::open(settings),
        rx,
        open_bytes: open_bytes.clone(),
        clip_threads: Vec::new(),
        last_scan: Instant::now(),
        dir_lock,
    };
    keeper.take_dir_lock();
    keeper.footage.enforce();
    let handle = std::thread::Builder::new()
        .name("keeper".into())
        .spawn(move || keeper.run())?;
    Ok((StorageLink { tx, open_bytes }, handle))
}

impl Keeper {
    fn run(mut self) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let msg = self.rx.recv_timeout(wait);
            self.footage
                .set_open_bytes(self.open_bytes.load(Ordering::Relaxed));
            match msg {
                Ok(KeeperMsg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
            self.start_due_clips();
        }
        // Clips waiting for the last segment to close are cut now; running ones finish.
        for job in self.footage.stop() {
            self.start_clip(job);
        }
        for t in self.clip_threads.drain(..) {
            let _ = t.join();
        }
        // Requests still waiting get an answer rather than a timeout.
        for (_, reply_to) in requests::take_pending(self.footage.layout()) {
            let stopping = Err(FootageError::busy("the recorder is stopping"));
            requests::answer(&reply_to, &Reply::from(stopping));
        }
    }

    fn handle(&mut self, msg: KeeperMsg) {
        match msg {
            KeeperMsg::Opened { path, start } => self.footage.opened(&path, start),
            KeeperMsg::Closed { path, meta } => self.footage.closed(&path, meta),
            KeeperMsg::MakeRoom { need, reply } => {
                let _ = reply.send(self.footage.make_room(need));
            }
            KeeperMsg::Request { request, reply } => {
                let _ = reply.send(self.footage.handle(request, SystemTime::now()));
            }
            KeeperMsg::EventLock { at } => {
                if let Err(e) = self.footage.lock_now(at) {
                    error!("event lock: {e}");
                }
            }
            KeeperMsg::DriveBack { reply } => {
                self.footage.drive_back();
                self.take_dir_lock();
                self.last_scan = Instant::now();
                let _ = reply.send(());
            }
            KeeperMsg::Stop => {}
        }
    }

    fn tick(&mut self) {
        if self.last_scan.elapsed() >= RESCAN_EVERY {
            self.take_dir_lock();
            let _ = self.footage.rescan();
            self.last_scan = Instant::now();
        }
        self.footage.tick(Instant::now());
        for (request, reply_to) in requests::take_pending(self.footage.layout()) {
            let reply = Reply::from(self.footage.handle(request, SystemTime::now()));
            requests::answer(&reply_to, &reply);
        }
    }

    /// Hold the directory lock (again, after the drive came back).
    fn take_dir_lock(&mut self) {
        let layout = self.footage.layout();
        if self.dir_lock.is_some() || !layout.root.is_dir() {
            return;
        }
        match DirLock::try_acquire(layout) {
            Ok(Some(l)) => self.dir_lock = Some(l),
            Ok(None) => warn!(
                "another process holds {}: is a second dashcam recording into {}?",
                layout.lock_file().display(),
                layout.root.display()
            ),
            Err(e) => warn!("cannot lock {}: {e}", layout.lock_file().display()),
        }
    }

    fn start_due_clips(&mut self) {
        for job in self.footage.take_due_clips() {
            self.start_clip(job);
        }
    }

    fn start_clip(&mut self, job: ClipJob) {
        let spawned = std::thread::Builder::new()
            .name("clip".into())
            .spawn(move || match job.run() {
                Ok(info) => info!(
                    "clip {}: {} frames, {:.3} s from {} segment(s)",
                    info.path.display(),
                    info.frames,
                    info.duration_s,
                    info.segments.len()
                ),
                Err(e) => error!(
                    "clip {} → {}: {e}",
                    clip::format_local(job.request.from),
                    clip::format_local(job.request.to)
                ),
            });
        match spawned {
            Ok(t) => self.clip_threads.push(t),
            Err(e) => error!("cannot start the clip thread: {e}"),
        }
        self.clip_threads.retain(|t| !t.is_finished());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::layout::Layout;
    use crate::recorder::writer::FootageLink;
    use crate::storage::error::ErrorKind;
    use crate::storage::quota::QuotaSettings;

    fn settings(root: &Path) -> FootageSettings {
        FootageSettings {
            layout: Layout::new(root),
            quota: QuotaSettings::default(),
            post_event: Duration::from_secs(10),
            enforce: true,
            events: Default::default(),
            also_counted: Vec::new(),
        }
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn the_link_reaches_the_core_and_request_files_are_answered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seg = |n: u64| dir.path().join(format!("20261121-1430{n:02}_{n:06}.mp4"));
        for n in 0..2 {
            std::fs::write(seg(n), vec![0u8; 1000]).expect("segment");
        }
        let (link, handle) = spawn(settings(dir.path()), None).expect("keeper");
        let layout = Layout::new(dir.path());
        assert!(
            requests::recorder_running(&layout),
            "the keeper holds the lock"
        );

        // Through the link: lock by name, then the typed errors.
        let ok = link
            .request(Request::Lock { name: "0".into() }, WAIT)
            .expect("locked");
        assert_eq!(ok.files, vec!["20261121-143000_000000.mp4".to_string()]);
        assert!(dir.path().join("locked").join(&ok.files[0]).exists());
        let again = link.request(Request::Lock { name: "0".into() }, WAIT);
        assert_eq!(again.map_err(|e| e.kind), Err(ErrorKind::Conflict));
        let missing = link.request(Request::Unlock { name: "77".into() }, WAIT);
        assert_eq!(missing.map_err(|e| e.kind), Err(ErrorKind::NotFound));

        // The writer's side: a segment opens, a lock by name waits for its close.
        let open = seg(2);
        std::fs::write(&open, vec![0u8; 500]).expect("open segment");
        FootageLink::opened(&link, &open, SystemTime::now());
        FootageLink::set_open_bytes(&link, 500);
        let waiting = link
            .request(Request::Lock { name: "2".into() }, WAIT)
            .expect("waits");
        assert!(
            waiting.message.contains("when it closes"),
            "{}",
            waiting.message
        );
        // A request file, as `dashcam unlock` sends it while the recorder runs.
        let out = requests::submit(&layout, &Request::Unlock { name: "0".into() }, WAIT)
            .expect("unlocked");
        assert!(out.message.contains("unlocked"), "{}", out.message);
        let err = requests::submit(&layout, &Request::Unlock { name: "1".into() }, WAIT)
            .expect_err("not locked");
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert!(err.message.contains("is not locked"), "{err}");

        // The writer closes the segment (it could not finish it: the core tries, and
        // leaves it as cut): the waiting lock takes it. Messages are handled in order, so
        // make_room's answer comes after the close; it frees the oldest loop segment.
        FootageLink::closed(&link, &open, None);
        assert_eq!(FootageLink::make_room(&link, 1, WAIT), 1000);
        assert!(!seg(0).exists(), "the oldest loop segment goes first");
        assert!(seg(1).exists(), "the newest closed loop segment stays");
        assert!(dir.path().join("locked").join(file_name_of(&open)).exists());
        assert_eq!(
            FootageLink::make_room(&link, 1, WAIT),
            0,
            "only the newest is left"
        );

        link.stop();
        handle.join().expect("keeper ends");
        assert!(!requests::recorder_running(&layout), "the lock is released");
        let gone = link.request(Request::Lock { name: "1".into() }, WAIT);
        assert_eq!(gone.map_err(|e| e.kind), Err(ErrorKind::Busy));
    }

    fn file_name_of(p: &Path) -> String {
        crate::disk::naming::file_name(p)
    }
}
