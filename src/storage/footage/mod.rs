//! The footage core: everything dashcam decides about what is on the drive, synchronous
//! and single-owner.
//!
//! [`Footage`] owns the catalog (the index of loop, locked and saved footage, rebuilt from
//! the files: files are the truth), the quota (deleting the oldest closed loop segments,
//! room on a full disk), locks (by name, the event lock with its `post_event_seconds`, the
//! locked quota's rotation), clips (cut now, or queued until the segment in progress has
//! closed) and deletion. Every request answers `Result<Outcome, FootageError>`, the error
//! with its [`ErrorKind`] for the command line (exit codes) and the phone page (HTTP).
//!
//! Two shells use it: the keeper thread of a running recorder ([`super::keeper`]), which
//! feeds it the writer's reports and the requests, and the command line, which opens one
//! for a one-off command when no recorder runs. The decisions are pure functions
//! ([`super::quota`], [`events`], [`clips`], [`super::clip::select`]); this module
//! performs them on the files. It never writes segment data and never touches the segment
//! being written (the writer owns it until it reports it closed); while a recorder runs it
//! is the only one that moves or deletes loop files.

pub mod clips;
pub mod events;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use log::{error, info, warn};

use crate::disk::layout::Layout;
use crate::disk::metadata::SegmentMeta;
use crate::disk::naming::{self, file_name};
use crate::disk::space::{self, human};
use crate::state::event::{ClipSaved, DriveState, EventKind, EventSink, FileRef};
use crate::storage::catalog::{Catalog, Folder, Item, Query};
use crate::storage::clip::{self, ClipInfo, ClipRequest};
use crate::storage::error::FootageError;
use crate::storage::lock;
use crate::storage::quota::{self, LockPlan, QuotaSettings, Usage, WriteRate};
use crate::storage::requests::{Outcome, Request};
use clips::ClipQueue;
use events::EventLocks;

/// How often quota warnings may repeat.
const WARN_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct FootageSettings {
    pub layout: Layout,
    pub quota: QuotaSettings,
    /// Event lock: footage after the event that must be locked too.
    pub post_event: Duration,
    /// Delete loop segments to keep the quota (false for a one-off command).
    pub enforce: bool,
    /// Where the core's events go (locked, unlocked, deleted, quota_deleted,
    /// segment_closed, clip_saved, drive_*); disabled for a one-off command.
    pub events: EventSink,
    /// Other folders whose files count against the footage limit (the upload folder,
    /// the stills): their own bytes ([`own_bytes`]), read at every rescan.
    pub also_counted: Vec<PathBuf>,
}

/// Bytes of the files directly in `dir` that are not hard links of another file: what
/// the folder costs on its own (a hard link into the upload folder costs nothing while
/// its original is kept). 0 when it is missing.
pub fn own_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file() && m.nlink() <= 1)
            .map(|m| m.len())
            .sum()
    })
}

/// The segment the writer is writing.
#[derive(Clone, Debug)]
struct OpenSegment {
    seq: u64,
    path: PathBuf,
    start: SystemTime,
}

/// What a name given in a request refers to.
enum Target {
    /// The segment being written.
    Open(PathBuf),
    Item(Item),
}

/// A clip ready to be cut: [`ClipJob::run`] reads the segments and writes the clip (the
/// keeper runs it in a thread of its own).
#[derive(Clone, Debug)]
pub struct ClipJob {
    layout: Layout,
    pub request: ClipRequest,
    /// Bytes the clip may take (the protected share's room), when it goes into `saved/`.
    budget: Option<u64>,
    events: EventSink,
}

impl ClipJob {
    pub fn run(&self) -> Result<ClipInfo, FootageError> {
        let info = clip::make_clip(&self.layout, &self.request, self.budget)?;
        self.events.emit(EventKind::ClipSaved(ClipSaved {
            name: info.file.clone(),
            path: info.path.display().to_string(),
            from: info.from.clone(),
            to: info.to.clone(),
            start_wall: info.start_wall.clone(),
            start_unix_ms: info.start_unix_ms,
            frames: info.frames,
            duration_s: info.duration_s,
            bytes: info.bytes,
            codec: info.codec,
            segments: info.segments.clone(),
            metadata: info.metadata.clone(),
        }));
        Ok(info)
    }
}

fn sequence_of(path: &Path) -> Option<u64> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(naming::parse)
        .map(|n| n.sequence)
}

pub struct Footage {
    settings: FootageSettings,
    catalog: Catalog,
    /// Why the footage directory could not be read at the last scan.
    unreadable: Option<FootageError>,
    open: Option<OpenSegment>,
    open_bytes: u64,
    /// Bytes of the segments closed so far (for the write rate).
    written_closed: u64,
    rate: WriteRate,
    events: EventLocks,
    clips: ClipQueue,
    /// Clips to start (due, not yet taken by the shell).
    clips_due: Vec<ClipRequest>,
    last_quota_warning: Option<Instant>,
    /// Own bytes of `also_counted` at the last rescan.
    also_counted_bytes: u64,
}

impl Footage {
    /// Index the footage directory. Deletes nothing: call [`Footage::enforce`] for that.
    /// A directory that cannot be read is reported by the requests that need it.
    pub fn open(settings: FootageSettings) -> Footage {
        let mut footage = Footage {
            settings,
            catalog: Catalog::default(),
            unreadable: None,
            open: None,
            open_bytes: 0,
            written_closed: 0,
            rate: WriteRate::default(),
            events: EventLocks::default(),
            clips: ClipQueue::default(),
            clips_due: Vec::new(),
            last_quota_warning: None,
            also_counted_bytes: 0,
        };
        let _ = footage.rescan();
        footage
    }

    pub fn layout(&self) -> &Layout {
        &self.settings.layout
    }

    /// Rebuild the index from the files. When the directory cannot be read the previous
    /// index is kept and the error returned (and logged once until it is readable again).
    pub fn rescan(&mut self) -> Result<(), FootageError> {
        let open = self.open.as_ref().map(|o| o.path.clone());
        self.also_counted_bytes = self
            .settings
            .also_counted
            .iter()
            .map(|d| own_bytes(d))
            .sum();
        match Catalog::scan(&self.settings.layout, open.as_deref()) {
            Ok(c) => {
                if self.unreadable.take().is_some() {
                    info!("{} is readable again", self.settings.layout.root.display());
                    self.drive(DriveState::Ok, "");
                }
                self.catalog = c;
                Ok(())
            }
            Err(e) => {
                if self.unreadable.is_none() {
                    warn!("cannot index the footage: {e}");
                    self.drive(DriveState::Gone, &e.message);
                }
                self.unreadable = Some(e.clone());
                Err(e)
            }
        }
    }

    fn usage(&self) -> Usage {
        let mut usage = self.catalog.usage(self.open_bytes);
        // The upload folder's and the stills' own bytes count against the footage limit
        // (not the locked share), like the files in corrupt/.
        usage.corrupt = usage.corrupt.saturating_add(self.also_counted_bytes);
        usage
    }

    fn drive(&self, state: DriveState, why: &str) {
        self.settings
            .events
            .drive(state, &self.settings.layout.root, why);
    }

    /// The limits in force now (a statvfs of the drive).
    fn limits(&self, usage: &Usage) -> Result<quota::Limits, FootageError> {
        let root = &self.settings.layout.root;
        let fs = space::fs_space(root).map_err(|e| FootageError::io(root, &e))?;
        Ok(self
            .settings
            .quota
            .limits(fs.total, fs.avail, usage.total()))
    }

    fn may_warn(&mut self) -> bool {
        if self
            .last_quota_warning
            .is_some_and(|t| t.elapsed() < WARN_EVERY)
        {
            return false;
        }
        self.last_quota_warning = Some(Instant::now());
        true
    }

    // --- The writer's reports -------------------------------------------------------

    /// A segment file was created and is being written.
    pub fn opened(&mut self, path: &Path, start: SystemTime) {
        // Writing again after a full or vanished drive: that is over.
        self.drive(DriveState::Ok, "");
        self.open_bytes = 0;
        self.events.opened(start);
        self.open = Some(OpenSegment {
            seq: sequence_of(path).unwrap_or(u64::MAX),
            path: path.to_path_buf(),
            start,
        });
    }

    /// Bytes of the open segment on disk so far.
    pub fn set_open_bytes(&mut self, bytes: u64) {
        self.open_bytes = bytes;
    }

    /// The segment being written was closed; `meta` is `None` when the writer could not
    /// finish it: it is finished here from what is durable. Then it joins the loop, is
    /// locked when a lock waited for it, the quota is kept, and clips waiting for it are
    /// due.
    pub fn closed(&mut self, path: &Path, meta: Option<SegmentMeta>) {
        let was_open = self.open.as_ref().is_some_and(|o| o.path == path);
        let lock_it = self.events.closed() && was_open;
        if was_open {
            self.open = None;
        }
        self.open_bytes = 0;
        self.queue_due_clips();
        if !path.exists() {
            return;
        }
        let name = file_name(path);
        let meta = match meta {
            Some(m) => Some(m),
            None => match crate::storage::recovery::repair_segment(path, None) {
                Ok(m) => {
                    info!(
                        "{name} finished after the error: {} frames, {:.3} s",
                        m.frames, m.duration_s
                    );
                    Some(m)
                }
                Err(e) => {
                    warn!("{name} left as cut (recovery repairs it at the next start): {e}");
                    None
                }
            },
        };
        if let Some(m) = meta {
            self.settings
                .events
                .emit(EventKind::segment_closed(path, m));
        }
        let bytes = lock::segment_bytes(path);
        self.written_closed = self.written_closed.saturating_add(bytes);
        let item = Item {
            path: path.to_path_buf(),
            folder: Folder::Loop,
            sequence: sequence_of(path),
            bytes,
        };
        self.catalog.insert(item.clone());
        if lock_it {
            match self.lock_item(&item) {
                Ok(n) => info!("locked {n}"),
                Err(e) => error!("{e}"),
            }
        }
        self.enforce();
    }

    /// Time passes: measure the write rate (for the headroom) and keep the quota.
    pub fn tick(&mut self, now: Instant) {
        self.rate
            .sample(now, self.written_closed.saturating_add(self.open_bytes));
        self.enforce();
    }

    /// Delete the oldest closed loop segments while over the footage limit (with a few
    /// seconds of headroom at the measured rate); the newest closed one always stays.
    pub fn enforce(&mut self) {
        if !self.settings.enforce {
            return;
        }
        let usage = self.usage();
        let Ok(limits) = self.limits(&usage) else {
            return;
        };
        let headroom = quota::headroom(self.rate.bytes_per_second(), &limits);
        let plan = quota::enforcement(&limits, &usage, headroom, &self.catalog.loop_sizes());
        for _ in 0..plan.delete {
            self.delete_oldest_loop("quota");
        }
        if plan.still_over && self.may_warn() {
            let after = self.usage();
            warn!(
                "footage limit {} reached with only the newest segment left in the loop ({} locked, {} saved, {} open)",
                human(limits.footage),
                human(after.locked),
                human(after.saved),
                human(after.open)
            );
        }
    }

    /// The disk is full: delete the oldest closed loop segments (never the newest) until
    /// `need` bytes are free, at least one. Returns the bytes freed.
    pub fn make_room(&mut self, need: u64) -> u64 {
        let _ = self.rescan();
        let n = quota::room_for(need, &self.catalog.loop_sizes());
        let freed: u64 = (0..n).map(|_| self.delete_oldest_loop("disk full")).sum();
        if freed == 0 {
            self.drive(
                DriveState::Full,
                "disk full and no older loop segment left to delete",
            );
            if self.may_warn() {
                warn!("disk full and no older loop segment left to delete");
            }
        }
        freed
    }

    /// The drive came back after it was gone: repair what a cut left, then re-index.
    pub fn drive_back(&mut self) {
        self.drive(DriveState::Ok, "");
        match crate::storage::recovery::recover(&self.settings.layout) {
            Ok(r) if r.changed() => info!("{}", r.summary()),
            Ok(_) => {}
            Err(e) => warn!("recovery after the drive came back: {e}"),
        }
        let _ = self.rescan();
    }

    /// Delete the oldest closed loop segment; the bytes freed (0 when it failed).
    fn delete_oldest_loop(&mut self, why: &str) -> u64 {
        let Some(item) = self.catalog.oldest_loop().cloned() else {
            return 0;
        };
        self.catalog.remove(&item);
        match lock::delete_segment(&item.path) {
            Ok(()) => {
                info!("deleted {} ({}, {why})", item.name(), human(item.bytes));
                self.settings.events.emit(EventKind::QuotaDeleted {
                    file: FileRef::new(&item.path, item.bytes),
                    reason: if why == "quota" { "quota" } else { "disk_full" },
                });
                item.bytes
            }
            Err(e) => {
                error!("cannot delete {}: {e}", item.path.display());
                0
            }
        }
    }

    // --- Requests -----------------------------------------------------------------------

    /// Carry out a request (from a request file, the phone page, the command line).
    /// `now`: the time of an event lock.
    pub fn handle(&mut self, request: Request, now: SystemTime) -> Result<Outcome, FootageError> {
        match request {
            Request::LockNow => self.lock_now(now),
            Request::Lock { name } => self.lock(&name),
            Request::Unlock { name } => self.unlock(&name),
            Request::Delete { name } => self.delete(&name),
            Request::Clip {
                from,
                to,
                output,
                metadata,
            } => self.clip(ClipRequest {
                from: clip::parse_local(&from)?,
                to: clip::parse_local(&to)?,
                output: output.map(PathBuf::from),
                metadata,
            }),
        }
    }

    /// What `name` (file name, stem or sequence number) refers to: the segment being
    /// written, or an item of the catalog (rescanned when the name is not in it, or its
    /// file is no longer there).
    fn resolve(&mut self, name: &str) -> Result<Target, FootageError> {
        let query = Query::parse(name)
            .ok_or_else(|| FootageError::invalid(format!("{name:?} is not a segment name")))?;
        if let Some(o) = &self.open {
            if query.matches(&o.path, Some(o.seq)) {
                return Ok(Target::Open(o.path.clone()));
            }
        }
        if let Some(item) = self.catalog.find(&query) {
            if item.path.exists() {
                return Ok(Target::Item(item.clone()));
            }
        }
        self.rescan()?;
        self.catalog
            .find(&query)
            .cloned()
            .map(Target::Item)
            .ok_or_else(|| {
                FootageError::not_found(format!(
                    "no segment {:?} in {} or its locked/ folder (nor a clip of that name in saved/)",
                    name.trim(),
                    self.settings.layout.root.display()
                ))
            })
    }

    /// Lock a segment: move it into `locked/` within the locked quota; the segment being
    /// written is locked when it closes.
    pub fn lock(&mut self, name: &str) -> Result<Outcome, FootageError> {
        match self.resolve(name)? {
            Target::Open(path) => {
                self.events.lock_when_closed();
                let n = file_name(&path);
                Ok(Outcome::new(
                    format!("{n} is being recorded: it will be locked when it closes"),
                    vec![n],
                ))
            }
            Target::Item(item) => match item.folder {
                Folder::Loop => {
                    let n = self.lock_item(&item)?;
                    Ok(Outcome::new(format!("locked {n}"), vec![n]))
                }
                Folder::Locked => Err(FootageError::conflict(format!(
                    "{} is locked already",
                    item.name()
                ))),
                Folder::Saved => Err(FootageError::invalid(format!(
                    "{} is a saved clip: clips stay until deleted, only segments are locked",
                    item.name()
                ))),
            },
        }
    }

    /// Move a closed loop segment into `locked/`, rotating the oldest locked segments out
    /// or refusing when the locked quota is full (`locked_full`).
    fn lock_item(&mut self, item: &Item) -> Result<String, FootageError> {
        let name = item.name();
        let usage = self.usage();
        let limits = self.limits(&usage)?;
        let plan = quota::lock_plan(
            &limits,
            &usage,
            item.bytes,
            &self.catalog.locked_sizes(),
            self.settings.quota.locked_full,
        );
        let full = || {
            format!(
                "cannot lock {name}: locked and saved footage would take {} of the {} allowed (locked_max_percent = {})",
                human(usage.protected() + item.bytes),
                human(limits.protected),
                self.settings.quota.locked_max_percent
            )
        };
        match plan {
            LockPlan::Fits => {}
            LockPlan::Rotate(n) => {
                for _ in 0..n {
                    let Some(old) = self.catalog.oldest_locked().cloned() else {
                        break;
                    };
                    warn!(
                        "locked quota full: rotating out the oldest locked segment {}",
                        old.name()
                    );
                    self.catalog.remove(&old);
                    match lock::delete_segment(&old.path) {
                        Ok(()) => self.settings.events.emit(EventKind::QuotaDeleted {
                            file: FileRef::new(&old.path, old.bytes),
                            reason: "locked_full",
                        }),
                        Err(e) => error!("{e}"),
                    }
                }
            }
            LockPlan::RefusedBySetting => {
                return Err(FootageError::conflict(format!(
                    "{} (locked_full = \"refuse\")",
                    full()
                )))
            }
            LockPlan::TooBig => return Err(FootageError::conflict(full())),
        }
        let layout = &self.settings.layout;
        let to = lock::move_segment(layout, &item.path, &layout.locked())?;
        self.settings
            .events
            .emit(EventKind::Locked(FileRef::new(&to, item.bytes)));
        self.catalog.remove(item);
        self.catalog.insert(Item {
            path: to,
            folder: Folder::Locked,
            ..item.clone()
        });
        Ok(name)
    }

    /// Unlock a segment: back into the loop. For the segment being written, a lock
    /// waiting for its close is cancelled.
    pub fn unlock(&mut self, name: &str) -> Result<Outcome, FootageError> {
        match self.resolve(name)? {
            Target::Open(path) => {
                let n = file_name(&path);
                if self.events.cancel() {
                    Ok(Outcome::new(
                        format!(
                            "{n} is being recorded: it will no longer be locked when it closes"
                        ),
                        vec![n],
                    ))
                } else {
                    Err(FootageError::conflict(format!(
                        "{n} is being recorded and is not locked"
                    )))
                }
            }
            Target::Item(item) => match item.folder {
                Folder::Locked => {
                    let layout = &self.settings.layout;
                    let to = lock::move_segment(layout, &item.path, &layout.root)?;
                    self.settings
                        .events
                        .emit(EventKind::Unlocked(FileRef::new(&to, item.bytes)));
                    self.catalog.remove(&item);
                    self.catalog.insert(Item {
                        path: to,
                        folder: Folder::Loop,
                        ..item.clone()
                    });
                    let n = item.name();
                    Ok(Outcome::new(
                        format!("unlocked {n}: back in the loop"),
                        vec![n],
                    ))
                }
                Folder::Loop => Err(FootageError::conflict(format!(
                    "{} is not locked",
                    item.name()
                ))),
                Folder::Saved => Err(FootageError::invalid(format!(
                    "{} is a saved clip, not a locked segment",
                    item.name()
                ))),
            },
        }
    }

    /// Delete a closed loop segment or a saved clip (file, then metadata). A locked
    /// segment must be unlocked first; the segment being written cannot be deleted.
    pub fn delete(&mut self, name: &str) -> Result<Outcome, FootageError> {
        match self.resolve(name)? {
            Target::Open(path) => Err(FootageError::conflict(format!(
                "{} is being recorded: it can be deleted once it has closed",
                file_name(&path)
            ))),
            Target::Item(item) => match item.folder {
                Folder::Locked => Err(FootageError::conflict(format!(
                    "{} is locked: unlock it first",
                    item.name()
                ))),
                Folder::Loop | Folder::Saved => {
                    lock::delete_segment(&item.path)?;
                    self.settings.events.emit(EventKind::Deleted {
                        file: FileRef::new(&item.path, item.bytes),
                        folder: if item.folder == Folder::Loop {
                            "loop"
                        } else {
                            "saved"
                        },
                    });
                    self.catalog.remove(&item);
                    let n = item.name();
                    info!("deleted {n} ({}, on request)", human(item.bytes));
                    Ok(Outcome::new(format!("deleted {n}"), vec![n]))
                }
            },
        }
    }

    /// Event lock at `at`: the previous segment now, the segment being written when it
    /// closes, and every following segment that starts within `post_event` of the event.
    /// What could not be locked at once (the locked quota) is said in the message; the
    /// rest of the event lock still holds.
    pub fn lock_now(&mut self, at: SystemTime) -> Result<Outcome, FootageError> {
        let mut files = Vec::new();
        let mut notes = Vec::new();
        let open_seq = self.open.as_ref().map(|o| o.seq);
        if let Some(prev) = self.catalog.previous(open_seq).cloned() {
            let n = prev.name();
            if prev.folder == Folder::Locked {
                notes.push(format!("{n} is locked already"));
                files.push(n);
            } else {
                match self.lock_item(&prev) {
                    Ok(n) => {
                        notes.push(format!("locked {n}"));
                        files.push(n);
                    }
                    Err(e) => {
                        warn!("event lock: {e}");
                        notes.push(e.to_string());
                    }
                }
            }
        }
        let until = self
            .events
            .event(at, self.settings.post_event, self.open.is_some());
        if let Some(o) = &self.open {
            let n = file_name(&o.path);
            notes.push(format!("{n} will be locked when it closes"));
            files.push(n);
        }
        notes.push(format!(
            "segments starting before {} will be locked too",
            clip::format_local(until)
        ));
        let message = notes.join("; ");
        info!("event lock: {message}");
        Ok(Outcome::new(message, files))
    }

    /// Ask for a clip of `request`'s range: cut at once when the range ends before the
    /// segment being written began, else once that segment has closed. Answers at once
    /// with the clip's path; the shell takes the clips due with
    /// [`Footage::take_due_clips`].
    pub fn clip(&mut self, mut request: ClipRequest) -> Result<Outcome, FootageError> {
        clip::check_range(request.from, request.to)?;
        let ext = self
            .open
            .as_ref()
            .map(|o| o.path.clone())
            .or_else(|| self.catalog.newest_loop().map(|i| i.path.clone()))
            .and_then(|p| p.extension().and_then(|e| e.to_str()).map(str::to_string))
            .unwrap_or_else(|| "mp4".to_string());
        let out = match request.output.take() {
            Some(p) => p,
            None => {
                let mut reserved = self.clips.outputs();
                reserved.extend(self.clips_due.iter().filter_map(|r| r.output.clone()));
                clip::default_output(
                    &self.settings.layout,
                    request.from,
                    request.to,
                    &ext,
                    &reserved,
                )
            }
        };
        request.output = Some(out.clone());
        let name = out.display().to_string();
        match &self.open {
            Some(o) if o.start <= request.to => {
                self.clips.wait_for(request, o.seq);
                Ok(Outcome::new(
                    format!("{name} will be written when the segment in progress closes"),
                    vec![name],
                ))
            }
            _ => {
                self.clips_due.push(request);
                Ok(Outcome::new(format!("writing {name}"), vec![name]))
            }
        }
    }

    fn queue_due_clips(&mut self) {
        let open_seq = self.open.as_ref().map(|o| o.seq);
        let due = self.clips.due(open_seq);
        self.clips_due.extend(due);
    }

    /// The clips to cut now, each with its share of the locked quota.
    pub fn take_due_clips(&mut self) -> Vec<ClipJob> {
        std::mem::take(&mut self.clips_due)
            .into_iter()
            .map(|r| self.clip_job(r))
            .collect()
    }

    /// The recorder stops: nothing is being written any more, every waiting clip is due.
    pub fn stop(&mut self) -> Vec<ClipJob> {
        self.open = None;
        self.queue_due_clips();
        self.take_due_clips()
    }

    fn clip_job(&self, request: ClipRequest) -> ClipJob {
        let layout = self.settings.layout.clone();
        // Only clips into saved/ count against the locked quota.
        let into_saved = request
            .output
            .as_ref()
            .is_none_or(|p| p.parent() == Some(layout.saved().as_path()));
        let usage = self.usage();
        let budget = if into_saved {
            self.limits(&usage)
                .ok()
                .map(|l| l.protected.saturating_sub(usage.protected()))
        } else {
            None
        };
        ClipJob {
            layout,
            request,
            budget,
            events: self.settings.events.clone(),
        }
    }

    /// Cut a clip now (the command line), within the locked quota when it goes into
    /// `saved/`.
    pub fn cut_clip(&self, request: ClipRequest) -> Result<ClipInfo, FootageError> {
        clip::check_range(request.from, request.to)?;
        self.clip_job(request).run()
    }
}

#[cfg(test)]
mod tests;
