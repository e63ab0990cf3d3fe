//! The writer's policy: every decision about the open segment, and nothing else.
//!
//! Pure: it never touches a file, the footage core, the status or the buffer pool, and it
//! reads no clock (the caller passes `now`); it only logs what it decides. The shell ([`super::shell`]) performs what it
//! decides and feeds back what happened; the writer thread ([`super`]) runs the two in a
//! loop. So every path below, the full disk and the vanished drive included, is unit-tested
//! without a disk (see the tests at the end).
//!
//! The loop, in the manner of moonfire-nvr's `server/db/dir/writer.rs` (prepare an I/O
//! step, perform it, apply the outcome):
//!
//! ```text
//! policy.apply(event, now)                  frame, tick, stop, end of input, source lost/back
//! loop {
//!     match policy.next_step(now) {         decide from the state alone
//!         Step::Wait(deadline) => break,    nothing to do until the next event or deadline
//!         step => if let Some(outcome) = shell.perform(step) {
//!             policy.apply(Event::Done(outcome), now)     apply what the disk said
//!         }
//!     }
//! }
//! ```
//!
//! [`Event`]: a frame, a tick (a deadline passed), stop, end of input, source lost, source
//! back, and [`Outcome`]s: the result of each I/O step (opened, name taken, pushed, flushed,
//! finished, room made, drive probed, drive recovered, or the failure with its
//! [`DriveFault`]).
//!
//! [`Step`]: open a segment, push a frame, flush the fragment, finish the segment with a
//! [`CloseReason`], ask for room, probe the drive, ask the footage core to recover a drive
//! that came back, give a dropped frame's buffer back, publish the status
//! ([`Policy::take_publish`]), wait, exit.
//! Buffering in RAM, dropping and counting are done inside the policy ([`Ring`]); a frame
//! it drops comes out as [`Step::Release`].
//!
//! The rules:
//! - A segment starts at a keyframe (frames before it are dropped and counted) and closes at
//!   the first keyframe at or after `segment_seconds` of stream time, at a format change
//!   (any frame), before a keyframe that would take it past its size limit, at the next
//!   keyframe after the wall clock jumped by more than [`CLOCK_JUMP`], after
//!   `idle_timeout` without a frame, when the source is lost (whole, `source_lost`; the next
//!   keyframe after it is back starts a new one), at a stop and at the end of the input.
//! - A fragment is flushed before a frame that would make it span more than
//!   [`FRAGMENT_SHARE`] of `sync_interval` in stream time or in capture time, and when that
//!   much capture time passed since its first frame.
//! - A failed write is handled by its [`DriveFault`]:
//!   - `Full`: ask the footage core for room once, then retry the same step (the same
//!     fragment, the same open). Nothing freed, or full again: wait as below.
//!   - `Gone`, `ReadOnly`, `Denied`: close what can be closed (the segment is finished as
//!     far as the drive allows, else the footage core finishes it), keep the newest frames
//!     in RAM ([`RING_MAX_BYTES`], [`RING_MAX_AGE`]; older GOPs are dropped and counted),
//!     probe the drive every [`RETRY_EVERY`], and once it can be written have the footage
//!     core recover it ([`Step::DriveBack`]), then resume in a new segment with the frames
//!     from RAM. The log and the status say which it is and what the user must do
//!     ([`DriveFault::advice`]).
//!   - `TooBig`: the file system's size limit: close the segment (`size_limit`; when the
//!     muxer cannot finish it without the fragment that did not fit, the footage core
//!     finishes it), start the next one at once, and cut later segments below that size.
//!   - `Other` (an odd errno, a frame the container refuses): close what can be closed and
//!     start afresh at the next keyframe.
//! - Stop or end of input while waiting for the drive: one last probe; what cannot be
//!   written then is dropped and counted.
//! - The status is published per fragment, per segment and on a change of state, never per
//!   frame.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use log::{debug, error, info, warn};

use super::ring::Ring;
use super::WriterReport;
use crate::disk::fault::DriveFault;
use crate::disk::metadata::CloseReason;
use crate::frame::{Codec, Frame, StreamFormat, TIMESCALE};
use crate::mux::avi::AVI_MAX_BYTES;
use crate::state::status::RecorderState;

/// Largest MP4 segment: stay under FAT32's 4 GiB − 1 file size.
const MP4_MAX_BYTES: u64 = (4 << 30) - 1;
/// Room kept below a size limit for the rest of a GOP and the container's tail.
const SIZE_MARGIN: u64 = 64 << 20;
/// Share of `sync_interval` a fragment may span, leaving time for the write and fdatasync.
const FRAGMENT_SHARE: f64 = 0.85;
/// RAM kept for frames while the drive cannot be written.
const RING_MAX_BYTES: usize = 24 << 20;
/// Newest stretch of video kept in RAM while the drive cannot be written.
const RING_MAX_AGE: Duration = Duration::from_secs(10);
/// How often a waiting writer probes the drive.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// How often a waiting writer says again, at warning level, that it is still waiting.
const REMIND_EVERY: Duration = Duration::from_secs(60);
/// A wall clock that moves this much against the monotonic clock has jumped.
const CLOCK_JUMP: Duration = Duration::from_secs(5);
/// Free space needed to resume after a full disk.
const MIN_RESUME_FREE: u64 = 4 << 20;
/// Names tried in a row when the next one is taken (a file left by someone else).
const NAME_ATTEMPTS: u32 = 16;

/// The settings the policy decides by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub segment_seconds: u32,
    pub sync_interval: Duration,
    pub idle_timeout: Duration,
}

/// What the muxer reports about the open segment after a step: the policy's only view of
/// the container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fill {
    /// Capture instant of the oldest frame not yet flushed.
    pub oldest_unflushed: Option<Instant>,
    /// Stream time buffered since the last flush, in [`TIMESCALE`] ticks.
    pub unflushed_ticks: i64,
    /// Bytes the file will have once the buffered frames are flushed and it is finished.
    pub projected_bytes: u64,
}

/// A failed I/O step: what it means for the drive, and the message for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub fault: DriveFault,
    pub message: String,
}

/// What the writer thread tells the policy.
#[derive(Debug)]
pub(crate) enum Event {
    Frame(Frame),
    /// A deadline may have passed (flush, idle, probe): nothing else happened.
    Tick,
    SourceLost {
        at: SystemTime,
        why: String,
    },
    SourceBack,
    /// Close the open segment whole and end.
    Stop,
    /// The input ended: the same, with `end_of_input`.
    EndOfInput,
    /// The outcome of the last step.
    Done(Outcome),
}

/// The result of a step, as the shell saw it.
#[derive(Debug)]
pub(crate) enum Outcome {
    Opened(Fill),
    /// The file name exists already: try the next sequence.
    NameTaken,
    OpenFailed(Failure),
    Pushed(Fill),
    PushFailed(Failure),
    /// The fragment is durable. `vanished`: the file is no longer where it was created
    /// (directory removed, drive unmounted under us).
    Flushed {
        fill: Fill,
        vanished: Option<Failure>,
    },
    FlushFailed {
        fill: Fill,
        failure: Failure,
    },
    /// The segment is complete; `metadata_written` false when its `.json` failed.
    Finished {
        metadata_written: bool,
    },
    /// The segment could not be finished; the shell handed it to the footage core.
    FinishFailed(Failure),
    RoomMade {
        freed: u64,
    },
    /// The footage directory can be written, with this many bytes free; or why not.
    Probed(Result<u64, Failure>),
    /// The footage core has looked at the returned drive; the sequence read back from it.
    DriveBack {
        next_sequence: Option<u64>,
    },
}

/// What the policy asks the shell to do.
#[derive(Debug)]
pub(crate) enum Step {
    /// Create the segment file `sequence` for a stream of `format` starting at `wall`.
    Open {
        sequence: u64,
        wall: SystemTime,
        pts: i64,
        format: Arc<StreamFormat>,
    },
    Push(Frame),
    /// Write and fdatasync the buffered fragment. `next_dts`: the following frame's.
    Flush {
        next_dts: Option<i64>,
    },
    /// Flush what is left, complete the container, write the metadata, tell the footage
    /// core; `dropped`: the frames lost before or inside this segment.
    Finish {
        reason: CloseReason,
        next_dts: Option<i64>,
        dropped: u64,
    },
    /// Ask the footage core to delete the oldest loop segments, `need` bytes if it can.
    MakeRoom {
        need: u64,
    },
    /// Can the footage directory be written again?
    Probe,
    /// The drive is back: the footage core repairs and re-indexes it first.
    DriveBack,
    /// A dropped frame: give its buffer back. No outcome.
    Release(Frame),
    /// Copy [`Policy::take_publish`] into the shared status. No outcome.
    Publish,
    /// Nothing to do until the next input or, at the latest, this instant.
    Wait(Option<Instant>),
    /// All done: the thread ends.
    Exit,
}

/// A status update: the whole counters, and the messages that changed since the last one.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Publish {
    pub state: RecorderState,
    pub frames_synced: u64,
    pub frames_dropped: u64,
    pub segments_closed: u64,
    pub last_sync: Option<Instant>,
    /// A new `last_error`.
    pub error: Option<String>,
    /// A change of `source_lost`.
    pub source_lost: Option<Option<(SystemTime, String)>>,
    /// A change of the drive: `Some(Some(..))` the writer waits for it (why), `Some(None)`
    /// it writes again.
    pub drive: Option<Option<(DriveFault, String)>>,
}

struct Segment {
    format: Arc<StreamFormat>,
    first_dts: i64,
    /// Monotonic and wall capture time of the first frame (for clock jumps).
    start_captured: Instant,
    start_wall: SystemTime,
    clock_jumped: bool,
    /// Frames pushed since the last durable flush.
    unsynced: u64,
    dropped: u64,
    size_limit: u64,
    fill: Fill,
    /// The last write to the file failed: only finishing it may write again.
    write_failed: bool,
}

struct Closing {
    reason: CloseReason,
    next_dts: Option<i64>,
}

/// Where a stalled writer is in getting the drive back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the next probe.
    Waiting,
    /// A probe or a request for room is out: its outcome decides.
    Asking,
    /// The probe found the drive writable with this many bytes free: recover it first.
    Recover { avail: u64 },
    /// The footage core is recovering the drive.
    Recovering { avail: u64 },
}

struct Stall {
    fault: DriveFault,
    since: Instant,
    next_probe: Instant,
    reminded: Instant,
    phase: Phase,
}

/// What a [`Step::MakeRoom`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RoomFor {
    Open,
    Flush,
    Resume,
}

struct Ending {
    reason: CloseReason,
    /// The last probe for a stalled drive was made.
    probed: bool,
}

/// What to do after one decision.
enum Flow {
    /// Perform this step.
    Go(Step),
    /// The state changed: decide again.
    Again,
    /// Nothing here: look further.
    Pass,
}

/// The writer's decisions. See the module documentation.
pub(crate) struct Policy {
    segment_ticks: i64,
    budget: Duration,
    budget_ticks: i64,
    idle_timeout: Duration,
    next_sequence: u64,
    name_attempts: u32,
    seg: Option<Segment>,
    /// The frame being placed (new, or from RAM after a stall).
    in_hand: Option<Frame>,
    closing: Option<Closing>,
    stall: Option<Stall>,
    ring: Ring,
    /// Dropped frames whose buffers go back.
    release: VecDeque<Frame>,
    /// Room is to be asked for, and what for.
    want_room: Option<RoomFor>,
    /// What the [`Step::MakeRoom`] that is out is for.
    room_for: Option<RoomFor>,
    /// Room was asked for the current open or fragment already.
    room_tried: bool,
    ending: Option<Ending>,
    exited: bool,
    /// Frames lost since the last segment was opened, charged to the next one.
    pending_dropped: u64,
    last_frame_at: Option<Instant>,
    waiting_for_keyframe: bool,
    /// A size limit learned from EFBIG.
    fs_size_limit: Option<u64>,
    report: WriterReport,
    status: Publish,
    publish_due: bool,
}

impl Policy {
    /// `next_sequence`: one past the highest on disk. `stalled`: the drive cannot be
    /// used yet (not mounted with `require_mount`).
    pub(crate) fn new(
        limits: Limits,
        next_sequence: u64,
        stalled: Option<Failure>,
        now: Instant,
    ) -> Policy {
        let budget = limits.sync_interval.mul_f64(FRAGMENT_SHARE);
        let mut policy = Policy {
            segment_ticks: i64::from(limits.segment_seconds) * i64::from(TIMESCALE),
            budget,
            budget_ticks: (budget.as_secs_f64() * f64::from(TIMESCALE)) as i64,
            idle_timeout: limits.idle_timeout,
            next_sequence,
            name_attempts: 0,
            seg: None,
            in_hand: None,
            closing: None,
            stall: None,
            ring: Ring::new(RING_MAX_BYTES, RING_MAX_AGE),
            release: VecDeque::new(),
            want_room: None,
            room_for: None,
            room_tried: false,
            ending: None,
            exited: false,
            pending_dropped: 0,
            last_frame_at: None,
            waiting_for_keyframe: false,
            fs_size_limit: None,
            report: WriterReport::default(),
            status: Publish {
                state: RecorderState::Starting,
                frames_synced: 0,
                frames_dropped: 0,
                segments_closed: 0,
                last_sync: None,
                error: None,
                source_lost: None,
                drive: None,
            },
            publish_due: false,
        };
        if let Some(failure) = stalled {
            // Normal at boot (the drive mounts after dashcam starts): a warning.
            warn!("{}", failure.message);
            policy.stall_on(failure, now);
        }
        policy
    }

    /// What the writer did so far.
    pub(crate) fn report(&self) -> &WriterReport {
        &self.report
    }

    /// Note that the run was ended by a stop request.
    pub(crate) fn set_stopped(&mut self) {
        self.report.stopped = true;
    }

    /// Apply an event or the outcome of the last step.
    pub(crate) fn apply(&mut self, event: Event, now: Instant) {
        match event {
            Event::Frame(frame) => self.take_frame(frame, now),
            Event::Tick => {}
            Event::SourceLost { at, why } => {
                warn!("source lost: {why}");
                if self.seg.is_some() {
                    self.close(CloseReason::SourceLost, None);
                }
                self.status.source_lost = Some(Some((at, why)));
                self.publish_due = true;
            }
            Event::SourceBack => {
                info!("source back: the next keyframe starts a new segment");
                self.status.source_lost = Some(None);
                self.publish_due = true;
            }
            Event::Stop => self.end(CloseReason::Stop),
            Event::EndOfInput => self.end(CloseReason::EndOfInput),
            Event::Done(outcome) => self.done(outcome, now),
        }
    }

    /// The next thing to do. Call again after performing it (with its outcome first, when
    /// it has one) until it says [`Step::Wait`] or [`Step::Exit`].
    pub(crate) fn next_step(&mut self, now: Instant) -> Step {
        loop {
            if let Some(frame) = self.release.pop_front() {
                return Step::Release(frame);
            }
            if self.exited {
                return self.publish_step().unwrap_or(Step::Exit);
            }
            if let Some(purpose) = self.want_room.take() {
                return self.make_room_step(purpose);
            }
            let flow = if self.closing.is_some() {
                self.closing_step()
            } else if self.stall.is_some() {
                self.stalled_step(now)
            } else if self.in_hand.is_some() {
                self.place_step()
            } else if let Some(frame) = self.ring.pop() {
                self.in_hand = Some(frame);
                Flow::Again
            } else if let Some(reason) = self.ending.as_ref().map(|e| e.reason) {
                match self.seg {
                    Some(_) => self.close(reason, None),
                    None => self.exited = true,
                }
                Flow::Again
            } else {
                self.deadline_step(now)
            };
            match flow {
                Flow::Go(step) => return step,
                Flow::Again => continue,
                Flow::Pass => {
                    return self
                        .publish_step()
                        .unwrap_or_else(|| Step::Wait(self.deadline()));
                }
            }
        }
    }

    // ---- decisions ----

    fn make_room_step(&mut self, purpose: RoomFor) -> Step {
        if let Some(s) = self.stall.as_mut() {
            s.phase = Phase::Asking;
        }
        self.room_for = Some(purpose);
        let need = self
            .seg
            .as_ref()
            .map_or(0, |s| s.fill.projected_bytes)
            .max(MIN_RESUME_FREE);
        Step::MakeRoom { need }
    }

    /// Closing: flush the last fragment (unless a write failed: then finishing is the
    /// one retry), then finish.
    fn closing_step(&mut self) -> Flow {
        let (Some(closing), Some(seg)) = (self.closing.as_ref(), self.seg.as_ref()) else {
            self.closing = None;
            return Flow::Again;
        };
        if closing.reason != CloseReason::Error
            && !seg.write_failed
            && seg.fill.oldest_unflushed.is_some()
        {
            return Flow::Go(Step::Flush {
                next_dts: closing.next_dts,
            });
        }
        Flow::Go(Step::Finish {
            reason: closing.reason,
            next_dts: closing.next_dts,
            dropped: seg.dropped,
        })
    }

    /// Waiting for the drive: frames go to RAM; probe when due.
    fn stalled_step(&mut self, now: Instant) -> Flow {
        if let Some(frame) = self.in_hand.take() {
            let before = self.release.len();
            self.ring.put_back(frame, &mut self.release);
            self.count_lost((self.release.len() - before) as u64);
            return Flow::Again;
        }
        let Some(stall) = self.stall.as_mut() else {
            return Flow::Again;
        };
        match stall.phase {
            Phase::Recover { avail } => {
                stall.phase = Phase::Recovering { avail };
                return Flow::Go(Step::DriveBack);
            }
            Phase::Recovering { .. } | Phase::Asking | Phase::Waiting => {}
        }
        if let Some(ending) = self.ending.as_mut() {
            if !ending.probed {
                ending.probed = true;
                stall.phase = Phase::Asking;
                return Flow::Go(Step::Probe);
            }
            // The last chance is gone: what is in RAM is lost.
            let n = self.ring.len();
            if n > 0 {
                let why = match ending.reason {
                    CloseReason::EndOfInput => "the input ended",
                    _ => "stopping",
                };
                error!(
                    "{why} while waiting for the drive ({}): {n} frame(s) in RAM are lost",
                    stall.fault.name()
                );
            }
            let before = self.release.len();
            self.ring.drain_into(&mut self.release);
            self.count_lost((self.release.len() - before) as u64);
            self.stall = None;
            self.status.frames_dropped = self.report.frames_dropped;
            self.publish_due = true;
            return Flow::Again;
        }
        if now >= stall.next_probe {
            stall.phase = Phase::Asking;
            return Flow::Go(Step::Probe);
        }
        Flow::Pass
    }

    /// A frame in hand, no stall: cut, open, flush or push.
    fn place_step(&mut self) -> Flow {
        if let (Some(seg), Some(frame)) = (self.seg.as_mut(), self.in_hand.as_ref()) {
            note_clock(seg, frame);
        }
        let Some(frame) = self.in_hand.as_ref() else {
            return Flow::Again;
        };
        if let Some(seg) = self.seg.as_ref() {
            if let Some(reason) = cut_reason(seg, frame, self.segment_ticks) {
                let next_dts = Some(frame.dts);
                self.close(reason, next_dts);
                return Flow::Again;
            }
            if let Some(oldest) = seg.fill.oldest_unflushed {
                // End the fragment before this frame if it would make it too long, in
                // stream time (fast input) or in capture time (real time).
                let media_full =
                    seg.fill.unflushed_ticks + seg.format.frame_ticks() > self.budget_ticks;
                let wall_full = frame.captured.saturating_duration_since(oldest) >= self.budget;
                if (media_full || wall_full) && !seg.write_failed {
                    return Flow::Go(Step::Flush {
                        next_dts: Some(frame.dts),
                    });
                }
            }
            return match self.in_hand.take() {
                Some(frame) => Flow::Go(Step::Push(frame)),
                None => Flow::Again,
            };
        }
        if !frame.keyframe {
            if !self.waiting_for_keyframe {
                warn!("waiting for a keyframe to start a segment");
                self.waiting_for_keyframe = true;
            }
            if let Some(frame) = self.in_hand.take() {
                self.lose(frame);
            }
            return Flow::Again;
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        Flow::Go(Step::Open {
            sequence,
            wall: frame.wall,
            pts: frame.pts,
            format: frame.format.clone(),
        })
    }

    /// No frame in hand: has a deadline passed?
    fn deadline_step(&mut self, now: Instant) -> Flow {
        let Some(seg) = self.seg.as_ref() else {
            return Flow::Pass;
        };
        if self
            .last_frame_at
            .is_some_and(|t| now >= t + self.idle_timeout)
        {
            warn!("no frame for {:?}: closing the segment", self.idle_timeout);
            self.close(CloseReason::Idle, None);
            return Flow::Again;
        }
        if !seg.write_failed
            && seg
                .fill
                .oldest_unflushed
                .is_some_and(|t| now >= t + self.budget)
        {
            return Flow::Go(Step::Flush { next_dts: None });
        }
        Flow::Pass
    }

    fn publish_step(&mut self) -> Option<Step> {
        std::mem::take(&mut self.publish_due).then_some(Step::Publish)
    }

    /// The status update a [`Step::Publish`] asks for.
    pub(crate) fn take_publish(&mut self) -> Publish {
        self.status.frames_dropped = self.report.frames_dropped;
        Publish {
            state: self.status.state,
            frames_synced: self.status.frames_synced,
            frames_dropped: self.status.frames_dropped,
            segments_closed: self.status.segments_closed,
            last_sync: self.status.last_sync,
            error: self.status.error.take(),
            source_lost: self.status.source_lost.take(),
            drive: self.status.drive.take(),
        }
    }

    /// When the writer must act next without a new frame.
    fn deadline(&self) -> Option<Instant> {
        if let Some(stall) = &self.stall {
            return Some(stall.next_probe);
        }
        let seg = self.seg.as_ref()?;
        let idle = self.last_frame_at.map(|t| t + self.idle_timeout);
        let flush = seg
            .fill
            .oldest_unflushed
            .filter(|_| !seg.write_failed)
            .map(|t| t + self.budget);
        match (idle, flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- applying events and outcomes ----

    fn take_frame(&mut self, mut frame: Frame, now: Instant) {
        self.last_frame_at = Some(now);
        let dropped = u64::from(std::mem::take(&mut frame.dropped_before));
        self.count_lost(dropped);
        if self.stall.is_some() {
            let before = self.release.len();
            self.ring.push(frame, &mut self.release);
            self.count_lost((self.release.len() - before) as u64);
            return;
        }
        debug_assert!(
            self.in_hand.is_none(),
            "a frame came before the last was placed"
        );
        if let Some(previous) = self.in_hand.replace(frame) {
            self.lose(previous);
        }
    }

    fn end(&mut self, reason: CloseReason) {
        if self.ending.is_none() {
            self.ending = Some(Ending {
                reason,
                probed: false,
            });
        }
    }

    fn done(&mut self, outcome: Outcome, now: Instant) {
        match outcome {
            Outcome::Opened(fill) => self.opened(fill),
            Outcome::NameTaken => {
                self.name_attempts += 1;
                if self.name_attempts >= NAME_ATTEMPTS {
                    self.name_attempts = 0;
                    let message =
                        format!("cannot start a segment: {NAME_ATTEMPTS} names in a row are taken");
                    self.open_failed(
                        Failure {
                            fault: DriveFault::Other,
                            message,
                        },
                        now,
                    );
                }
            }
            Outcome::OpenFailed(failure) => self.open_failed(failure, now),
            Outcome::Pushed(fill) => {
                if let Some(seg) = self.seg.as_mut() {
                    seg.unsynced += 1;
                    seg.fill = fill;
                }
                self.report.frames += 1;
            }
            Outcome::PushFailed(failure) => {
                // The frame is not in the file.
                self.count_lost(1);
                if let Some(seg) = self.seg.as_mut() {
                    seg.write_failed = true;
                }
                self.write_failed(failure, now);
            }
            Outcome::Flushed { fill, vanished } => {
                if let Some(seg) = self.seg.as_mut() {
                    self.status.frames_synced += std::mem::take(&mut seg.unsynced);
                    seg.fill = fill;
                    seg.write_failed = false;
                }
                self.room_tried = false;
                self.status.last_sync = Some(now);
                if self.stall.is_none() {
                    self.status.state = RecorderState::Recording;
                }
                self.publish_due = true;
                if let Some(failure) = vanished {
                    self.write_failed(failure, now);
                }
            }
            Outcome::FlushFailed { fill, failure } => {
                if let Some(seg) = self.seg.as_mut() {
                    seg.fill = fill;
                    seg.write_failed = true;
                }
                if failure.fault == DriveFault::Full && !self.room_tried {
                    // The same fragment is written again once the footage core made room.
                    self.room_tried = true;
                    warn!(
                        "disk full: {}; deleting the oldest loop segments",
                        failure.message
                    );
                    self.want_room = Some(RoomFor::Flush);
                } else {
                    self.write_failed(failure, now);
                }
            }
            Outcome::Finished { metadata_written } => self.finished(metadata_written, now),
            Outcome::FinishFailed(failure) => {
                let Some(seg) = self.seg.take() else {
                    return;
                };
                self.closing = None;
                self.report.write_errors += 1;
                // The frames since the last durable fragment went with the muxer.
                self.count_lost(seg.unsynced);
                error!("{}", failure.message);
                self.set_error(describe(&failure));
            }
            Outcome::RoomMade { freed } => self.room_made(freed, now),
            Outcome::Probed(Ok(avail)) => {
                let Some(stall) = self.stall.as_mut() else {
                    return;
                };
                if stall.fault == DriveFault::Full {
                    if avail >= MIN_RESUME_FREE {
                        self.resume(now);
                    } else {
                        self.want_room = Some(RoomFor::Resume);
                    }
                } else {
                    stall.phase = Phase::Recover { avail };
                }
            }
            Outcome::Probed(Err(failure)) => self.still_waiting(failure, now),
            Outcome::DriveBack { next_sequence } => {
                if let Some(n) = next_sequence {
                    self.next_sequence = self.next_sequence.max(n);
                }
                let Some(stall) = self.stall.as_mut() else {
                    return;
                };
                let avail = match stall.phase {
                    Phase::Recovering { avail } | Phase::Recover { avail } => avail,
                    _ => MIN_RESUME_FREE,
                };
                if avail >= MIN_RESUME_FREE {
                    self.resume(now);
                } else {
                    // Back, but full.
                    stall.fault = DriveFault::Full;
                    self.want_room = Some(RoomFor::Resume);
                }
            }
        }
    }

    fn opened(&mut self, fill: Fill) {
        let Some(frame) = self.in_hand.as_ref() else {
            return;
        };
        let container_limit = match frame.format.codec {
            Codec::H264 => MP4_MAX_BYTES,
            Codec::Mjpeg => AVI_MAX_BYTES,
        }
        .saturating_sub(SIZE_MARGIN);
        self.seg = Some(Segment {
            format: frame.format.clone(),
            first_dts: frame.dts,
            start_captured: frame.captured,
            start_wall: frame.wall,
            clock_jumped: false,
            unsynced: 0,
            dropped: std::mem::take(&mut self.pending_dropped),
            size_limit: self
                .fs_size_limit
                .map_or(container_limit, |l| l.min(container_limit)),
            fill,
            write_failed: false,
        });
        self.room_tried = false;
        self.name_attempts = 0;
        self.waiting_for_keyframe = false;
    }

    fn open_failed(&mut self, failure: Failure, now: Instant) {
        match failure.fault {
            DriveFault::Full if !self.room_tried => {
                // The same open is tried again once the footage core made room.
                self.room_tried = true;
                warn!(
                    "disk full: {}; deleting the oldest loop segments",
                    failure.message
                );
                self.want_room = Some(RoomFor::Open);
            }
            fault if fault.waits_for_drive() => {
                self.report.write_errors += 1;
                self.enter_stall(failure, now);
            }
            _ => {
                self.report.write_errors += 1;
                error!("{}; frame dropped", failure.message);
                self.set_error(failure.message);
                if let Some(frame) = self.in_hand.take() {
                    self.lose(frame);
                }
            }
        }
    }

    /// A write into the open segment failed (or its file vanished).
    fn write_failed(&mut self, failure: Failure, now: Instant) {
        self.report.write_errors += 1;
        match failure.fault {
            fault if fault.waits_for_drive() => {
                self.close(CloseReason::Error, None);
                self.enter_stall(failure, now);
            }
            DriveFault::TooBig => {
                let at = self.seg.as_ref().map_or(0, |s| s.fill.projected_bytes);
                let limit = at.saturating_sub(SIZE_MARGIN).max(at / 2);
                self.fs_size_limit = Some(self.fs_size_limit.map_or(limit, |l| l.min(limit)));
                warn!(
                    "{}: the file system takes no larger file; {}, later ones are cut below {} bytes",
                    failure.message,
                    DriveFault::TooBig.advice(),
                    limit
                );
                self.close(CloseReason::SizeLimit, None);
            }
            _ => {
                error!("{}; {}", failure.message, failure.fault.advice());
                self.set_error(failure.message);
                self.close(CloseReason::Error, None);
            }
        }
    }

    fn finished(&mut self, metadata_written: bool, now: Instant) {
        let Some(seg) = self.seg.take() else {
            return;
        };
        let reason = self.closing.take().map(|c| c.reason);
        self.report.segments += 1;
        if !metadata_written {
            self.report.write_errors += 1;
        }
        self.status.segments_closed += 1;
        self.status.frames_synced += seg.unsynced;
        self.status.last_sync = Some(now);
        if self.stall.is_none() {
            match reason {
                Some(CloseReason::Idle) => self.status.state = RecorderState::Idle,
                Some(CloseReason::Error) => {}
                _ => self.status.state = RecorderState::Recording,
            }
        }
        self.publish_due = true;
    }

    fn room_made(&mut self, freed: u64, now: Instant) {
        match self.room_for.take() {
            Some(RoomFor::Open) if freed == 0 => {
                self.report.write_errors += 1;
                let message = "disk full: nothing left to delete to start a segment".into();
                self.enter_stall(
                    Failure {
                        fault: DriveFault::Full,
                        message,
                    },
                    now,
                );
            }
            // Freed: the open is tried again with the same frame.
            Some(RoomFor::Open) => {}
            Some(RoomFor::Flush) => {
                if freed > 0 {
                    // Write the same fragment again.
                    if let Some(seg) = self.seg.as_mut() {
                        seg.write_failed = false;
                    }
                } else {
                    let message = "disk full: nothing left to delete".into();
                    self.write_failed(
                        Failure {
                            fault: DriveFault::Full,
                            message,
                        },
                        now,
                    );
                }
            }
            Some(RoomFor::Resume) => {
                if freed > 0 {
                    self.resume(now);
                } else if let Some(stall) = self.stall.as_mut() {
                    stall.phase = Phase::Waiting;
                    stall.next_probe = now + RETRY_EVERY;
                }
            }
            None => {}
        }
    }

    /// The probe failed: wait on, and now and then say so.
    fn still_waiting(&mut self, failure: Failure, now: Instant) {
        let dropped = self.report.frames_dropped;
        let in_ram = self.ring.len();
        let Some(stall) = self.stall.as_mut() else {
            return;
        };
        stall.phase = Phase::Waiting;
        stall.next_probe = now + RETRY_EVERY;
        debug!("still waiting: {}", failure.message);
        if failure.fault != stall.fault && failure.fault.waits_for_drive() {
            // Say what it is now (say, a drive that came back read-only).
            stall.fault = failure.fault;
            stall.reminded = now;
            warn!(
                "{}: {}; {}",
                failure.fault.name(),
                failure.message,
                failure.fault.advice()
            );
            let error = describe(&failure);
            self.set_error(error);
        } else if now >= stall.reminded + REMIND_EVERY {
            stall.reminded = now;
            warn!(
                "still waiting for the drive ({}) after {:.0} s: {}; {in_ram} frame(s) in RAM, {dropped} dropped so far",
                stall.fault.name(),
                now.saturating_duration_since(stall.since).as_secs_f64(),
                stall.fault.advice()
            );
        }
        self.publish_due = true;
    }

    // ---- state changes ----

    fn close(&mut self, reason: CloseReason, next_dts: Option<i64>) {
        if self.seg.is_some() && self.closing.is_none() {
            self.closing = Some(Closing { reason, next_dts });
        }
    }

    fn enter_stall(&mut self, failure: Failure, now: Instant) {
        error!("{}", failure.message);
        self.stall_on(failure, now);
    }

    /// Wait for the drive: frames go to RAM from now on.
    fn stall_on(&mut self, failure: Failure, now: Instant) {
        let fault = failure.fault;
        let error = describe(&failure);
        self.set_error(error);
        if self.stall.is_some() {
            return;
        }
        warn!(
            "{}: {}; keeping the newest frames in RAM (at most {} s, {} MiB) and retrying every {} s",
            fault.name(),
            fault.advice(),
            RING_MAX_AGE.as_secs(),
            RING_MAX_BYTES >> 20,
            RETRY_EVERY.as_secs()
        );
        self.status.drive = Some(Some((fault, describe(&failure))));
        self.stall = Some(Stall {
            fault,
            since: now,
            next_probe: now + RETRY_EVERY,
            reminded: now,
            phase: Phase::Waiting,
        });
    }

    fn resume(&mut self, now: Instant) {
        let Some(stall) = self.stall.take() else {
            return;
        };
        info!(
            "writing again after {:.1} s: {} frame(s) from RAM",
            now.saturating_duration_since(stall.since).as_secs_f64(),
            self.ring.len()
        );
        self.status.drive = Some(None);
        self.publish_due = true;
    }

    fn set_error(&mut self, message: String) {
        self.status.state = RecorderState::Error;
        self.status.error = Some(message);
        self.publish_due = true;
    }

    /// Frames lost: charged to the open segment, else to the next one.
    fn count_lost(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.report.frames_dropped += n;
        match self.seg.as_mut() {
            Some(seg) => seg.dropped += n,
            None => self.pending_dropped += n,
        }
    }

    fn lose(&mut self, frame: Frame) {
        self.count_lost(1);
        self.release.push_back(frame);
    }
}

/// The status line for a drive fault: what, the error, what to do.
fn describe(failure: &Failure) -> String {
    format!(
        "{}: {} ({})",
        failure.fault.name(),
        failure.message,
        failure.fault.advice()
    )
}

/// Whether `frame` ends the open segment, and why.
fn cut_reason(seg: &Segment, frame: &Frame, segment_ticks: i64) -> Option<CloseReason> {
    if !Arc::ptr_eq(&seg.format, &frame.format) && *seg.format != *frame.format {
        return Some(CloseReason::FormatChange);
    }
    if !frame.keyframe {
        return None;
    }
    if seg.clock_jumped {
        return Some(CloseReason::ClockJump);
    }
    if frame.dts - seg.first_dts >= segment_ticks {
        return Some(CloseReason::Duration);
    }
    if seg.fill.projected_bytes + frame.data.len() as u64 > seg.size_limit {
        return Some(CloseReason::SizeLimit);
    }
    None
}

/// Note a wall-clock jump (NTP, GPS): the segment is cut at the next keyframe.
fn note_clock(seg: &mut Segment, frame: &Frame) {
    if seg.clock_jumped {
        return;
    }
    let mono = frame
        .captured
        .saturating_duration_since(seg.start_captured)
        .as_secs_f64();
    let wall = match frame.wall.duration_since(seg.start_wall) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    };
    if (wall - mono).abs() > CLOCK_JUMP.as_secs_f64() {
        warn!(
            "the wall clock jumped by {:+.1} s: starting a new segment at the next keyframe",
            wall - mono
        );
        seg.clock_jumped = true;
    }
}

#[cfg(test)]
mod tests {
    //! The policy against a pretend drive: what the shell would report, with faults on
    //! demand. Every test checks the one invariant that matters: each frame that came is
    //! either in a segment on disk or counted as dropped.

    use super::*;

    const FRAME_BYTES: usize = 1000;

    #[derive(Default)]
    struct Seg {
        sequence: u64,
        /// Pushed, not yet flushed: (dts, captured, bytes).
        pending: Vec<(i64, Instant, u64)>,
        /// Durable frames' dts.
        durable: Vec<i64>,
        fragments: Vec<usize>,
        bytes: u64,
        /// (reason, dropped) when finished; `None` and `handed_over` when it could not be.
        closed: Option<(CloseReason, u64)>,
        handed_over: bool,
    }

    /// What the shell would say, and what it was asked.
    #[derive(Default)]
    struct Drive {
        /// Every step that touches the drive meets this until cleared.
        down: Option<DriveFault>,
        open_faults: VecDeque<DriveFault>,
        push_faults: VecDeque<DriveFault>,
        flush_faults: VecDeque<DriveFault>,
        /// Opens and flushes fail with ENOSPC until room is made.
        full: bool,
        /// What the footage core could delete.
        deletable: u64,
        avail: u64,
        names_taken: u32,
        vanish_after_flush: bool,
        /// Added to every segment's projected size (to reach size limits quickly).
        size_offset: u64,
        sequence_on_disk: Option<u64>,

        segs: Vec<Seg>,
        opens: Vec<u64>,
        released: u64,
        room_asked: u32,
        probes: u32,
        drive_backs: u32,
        published: Vec<Publish>,
    }

    fn fail(fault: DriveFault) -> Failure {
        Failure {
            fault,
            message: format!("writing x: {fault:?}"),
        }
    }

    impl Drive {
        fn open_seg(&mut self) -> Option<&mut Seg> {
            self.segs
                .last_mut()
                .filter(|s| s.closed.is_none() && !s.handed_over)
        }

        fn fill(&mut self) -> Fill {
            let offset = self.size_offset;
            let Some(s) = self.open_seg() else {
                return Fill::default();
            };
            Fill {
                oldest_unflushed: s.pending.first().map(|p| p.1),
                unflushed_ticks: match (s.pending.first(), s.pending.last()) {
                    (Some(a), Some(b)) => b.0 - a.0 + 3000,
                    _ => 0,
                },
                projected_bytes: offset
                    + 100
                    + s.bytes
                    + s.pending.iter().map(|p| p.2).sum::<u64>(),
            }
        }

        fn flush_seg(s: &mut Seg) {
            if !s.pending.is_empty() {
                s.fragments.push(s.pending.len());
            }
            for (dts, _, bytes) in s.pending.drain(..) {
                s.durable.push(dts);
                s.bytes += bytes;
            }
        }

        fn perform(&mut self, step: Step) -> Option<Outcome> {
            Some(match step {
                Step::Open { sequence, .. } => {
                    self.opens.push(sequence);
                    if self.names_taken > 0 {
                        self.names_taken -= 1;
                        return Some(Outcome::NameTaken);
                    }
                    if let Some(f) = self.down.or_else(|| self.open_faults.pop_front()) {
                        return Some(Outcome::OpenFailed(fail(f)));
                    }
                    if self.full {
                        return Some(Outcome::OpenFailed(fail(DriveFault::Full)));
                    }
                    self.segs.push(Seg {
                        sequence,
                        ..Seg::default()
                    });
                    Outcome::Opened(self.fill())
                }
                Step::Push(frame) => {
                    self.released += 1;
                    if let Some(f) = self.push_faults.pop_front() {
                        return Some(Outcome::PushFailed(fail(f)));
                    }
                    let s = self.open_seg().expect("push into an open segment");
                    s.pending
                        .push((frame.dts, frame.captured, frame.data.len() as u64));
                    Outcome::Pushed(self.fill())
                }
                Step::Flush { .. } => {
                    let fault = self
                        .down
                        .or_else(|| self.flush_faults.pop_front())
                        .or(self.full.then_some(DriveFault::Full));
                    if let Some(f) = fault {
                        return Some(Outcome::FlushFailed {
                            fill: self.fill(),
                            failure: fail(f),
                        });
                    }
                    let s = self.open_seg().expect("flush of an open segment");
                    Self::flush_seg(s);
                    let vanished = std::mem::take(&mut self.vanish_after_flush)
                        .then(|| fail(DriveFault::Gone));
                    Outcome::Flushed {
                        fill: self.fill(),
                        vanished,
                    }
                }
                Step::Finish {
                    reason, dropped, ..
                } => {
                    let full = self.full;
                    let down = self.down;
                    let s = self.open_seg().expect("finish of an open segment");
                    if down.is_some() || (full && !s.pending.is_empty()) {
                        // What was not durable is gone; the footage core finishes the rest.
                        s.pending.clear();
                        s.handed_over = true;
                        return Some(Outcome::FinishFailed(fail(
                            down.unwrap_or(DriveFault::Full),
                        )));
                    }
                    Self::flush_seg(s);
                    s.closed = Some((reason, dropped));
                    Outcome::Finished {
                        metadata_written: true,
                    }
                }
                Step::MakeRoom { .. } => {
                    self.room_asked += 1;
                    let freed = std::mem::take(&mut self.deletable);
                    if freed > 0 {
                        self.full = false;
                        self.avail += freed;
                    }
                    Outcome::RoomMade { freed }
                }
                Step::Probe => {
                    self.probes += 1;
                    match self.down {
                        Some(f) => Outcome::Probed(Err(fail(f))),
                        None => Outcome::Probed(Ok(self.avail)),
                    }
                }
                Step::DriveBack => {
                    self.drive_backs += 1;
                    Outcome::DriveBack {
                        next_sequence: self.sequence_on_disk,
                    }
                }
                Step::Release(_) => {
                    self.released += 1;
                    return None;
                }
                Step::Publish => unreachable!("the loop's"),
                Step::Wait(_) | Step::Exit => unreachable!("the loop's"),
            })
        }

        fn recorded(&self) -> u64 {
            self.segs.iter().map(|s| s.durable.len() as u64).sum()
        }

        fn closed(&self) -> Vec<(CloseReason, u64)> {
            self.segs.iter().filter_map(|s| s.closed).collect()
        }

        fn errors(&self) -> Vec<String> {
            self.published
                .iter()
                .filter_map(|p| p.error.clone())
                .collect()
        }
    }

    struct Sim {
        p: Policy,
        d: Drive,
        now: Instant,
        t0: Instant,
        wall0: SystemTime,
        format: Arc<StreamFormat>,
        /// Frame index of the next frame, and how many came (including capture drops).
        next: u64,
        came: u64,
        gop: u64,
        /// Added to the wall clock of the frames that follow.
        wall_shift: Duration,
        dropped_before: u32,
    }

    fn h264(width: u32) -> Arc<StreamFormat> {
        Arc::new(StreamFormat {
            codec: Codec::H264,
            width,
            height: 240,
            frame_rate: Some((30, 1)),
            sps: vec![0x67, 1, 2, 3],
            pps: vec![vec![0x68, 1]],
        })
    }

    impl Sim {
        /// 30 fps H.264 with a keyframe every `gop` frames; 1 s sync, 10 s idle timeout.
        fn new(segment_seconds: u32, gop: u64) -> Sim {
            Sim::with(segment_seconds, gop, None)
        }

        fn with(segment_seconds: u32, gop: u64, stalled: Option<Failure>) -> Sim {
            let t0 = Instant::now();
            let limits = Limits {
                segment_seconds,
                sync_interval: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(10),
            };
            Sim {
                p: Policy::new(limits, 7, stalled, t0),
                d: Drive {
                    avail: 1 << 30,
                    ..Drive::default()
                },
                now: t0,
                t0,
                wall0: SystemTime::now(),
                format: h264(320),
                next: 0,
                came: 0,
                gop,
                wall_shift: Duration::ZERO,
                dropped_before: 0,
            }
        }

        fn at(&self, i: u64) -> Duration {
            Duration::from_micros(i * 1_000_000 / 30)
        }

        /// Apply one input and run the steps until the policy waits; the last step.
        fn event(&mut self, event: Event) -> Step {
            self.p.apply(event, self.now);
            for _ in 0..100_000 {
                match self.p.next_step(self.now) {
                    step @ (Step::Wait(_) | Step::Exit) => return step,
                    Step::Publish => {
                        let p = self.p.take_publish();
                        self.d.published.push(p);
                    }
                    step => {
                        if let Some(outcome) = self.d.perform(step) {
                            self.p.apply(Event::Done(outcome), self.now);
                        }
                    }
                }
            }
            panic!("the policy does not settle");
        }

        /// The next `n` frames, in real time.
        fn feed(&mut self, n: u64) {
            for _ in 0..n {
                let i = self.next;
                self.next += 1;
                self.came += 1 + u64::from(self.dropped_before);
                let frame = Frame {
                    data: vec![0; FRAME_BYTES],
                    keyframe: i % self.gop == 0,
                    pts: i as i64 * 3000,
                    dts: i as i64 * 3000,
                    captured: self.t0 + self.at(i),
                    wall: self.wall0 + self.at(i) + self.wall_shift,
                    format: self.format.clone(),
                    dropped_before: std::mem::take(&mut self.dropped_before),
                };
                self.now = frame.captured;
                let step = self.event(Event::Frame(frame));
                assert!(matches!(step, Step::Wait(_)), "{step:?}");
            }
        }

        /// Let `d` pass without frames (ticks every 100 ms).
        fn pause(&mut self, d: Duration) {
            let end = self.now + d;
            while self.now < end {
                self.now += Duration::from_millis(100);
                self.event(Event::Tick);
            }
            // The frames' clock moves on too: the next frame comes after the pause.
            self.t0 += d;
        }

        fn end(&mut self, event: Event) {
            let step = self.event(event);
            assert!(matches!(step, Step::Exit), "{step:?}");
        }

        /// Every frame that came is on disk or counted.
        fn check_accounting(&self) {
            let r = self.p.report();
            assert_eq!(
                self.d.recorded() + r.frames_dropped,
                self.came,
                "recorded {} + dropped {} != came {}",
                self.d.recorded(),
                r.frames_dropped,
                self.came
            );
        }

        fn stalled(&self) -> bool {
            self.p.stall.is_some()
        }
    }

    #[test]
    fn cuts_at_keyframes_and_flushes_within_the_sync_interval() {
        let mut s = Sim::new(4, 30);
        s.feed(300);
        s.end(Event::EndOfInput);
        s.check_accounting();
        let closed = s.d.closed();
        assert_eq!(
            closed,
            vec![
                (CloseReason::Duration, 0),
                (CloseReason::Duration, 0),
                (CloseReason::EndOfInput, 0)
            ]
        );
        // 4 s = 120 frames a segment, each starting at a keyframe.
        let lens: Vec<usize> = s.d.segs.iter().map(|g| g.durable.len()).collect();
        assert_eq!(lens, vec![120, 120, 60]);
        for g in &s.d.segs {
            assert_eq!(g.durable[0] % (30 * 3000), 0, "starts at a keyframe");
            // 0.85 s of 30 fps: at most 25 frames a fragment.
            assert!(g.fragments.iter().all(|&n| n <= 25), "{:?}", g.fragments);
        }
        assert_eq!(
            s.d.opens,
            vec![7, 8, 9],
            "sequence continues from the disk's"
        );
        assert_eq!(s.p.report().segments, 3);
        assert_eq!(s.p.report().write_errors, 0);
        assert_eq!(s.d.released, 300, "every buffer goes back");
    }

    #[test]
    fn full_disk_with_something_to_delete_retries_the_same_fragment() {
        let mut s = Sim::new(60, 30);
        s.feed(40);
        s.d.full = true;
        s.d.deletable = 100 << 20;
        s.feed(60);
        s.end(Event::EndOfInput);
        s.check_accounting();
        assert_eq!(s.d.room_asked, 1);
        assert_eq!(s.p.report().frames_dropped, 0, "nothing lost");
        assert_eq!(s.p.report().write_errors, 0);
        assert_eq!(s.d.probes, 0, "never waited for the drive");
        assert_eq!(s.d.closed(), vec![(CloseReason::EndOfInput, 0)]);
        assert_eq!(s.d.recorded(), 100);
    }

    #[test]
    fn full_disk_with_nothing_to_delete_waits_with_frames_in_ram() {
        let mut s = Sim::new(60, 30);
        s.feed(40);
        s.d.full = true;
        s.d.avail = 0;
        // The flush before frame 50 fails.
        s.feed(15);
        assert!(s.stalled());
        // The segment was cut after its last durable fragment, handed to the footage core.
        assert!(s.d.segs[0].handed_over);
        assert!(s
            .d
            .errors()
            .iter()
            .any(|e| e.contains("disk full") && e.contains("free space")));
        // 3 s of waiting: probes find no room (and ask for it).
        s.feed(90);
        assert!(s.stalled());
        assert!(s.d.probes >= 1);
        let asked = s.d.room_asked;
        assert!(asked >= 2, "room asked again when probing: {asked}");
        // The owner frees space: the next probe resumes with the frames from RAM.
        s.d.full = false;
        s.d.avail = 1 << 30;
        s.feed(60);
        assert!(!s.stalled());
        s.end(Event::EndOfInput);
        s.check_accounting();
        let lost = s.p.report().frames_dropped;
        // Lost: the fragment that could not be written (25..49) and the frames before the
        // next keyframe (50..59); everything from that keyframe on was kept in RAM.
        assert_eq!(lost, 25 + 10);
        let second = &s.d.segs[1];
        assert_eq!(
            second.durable[0],
            60 * 3000,
            "resumes at the keyframe after the cut"
        );
        assert_eq!(second.closed, Some((CloseReason::EndOfInput, lost)));
        assert_eq!(*second.durable.last().expect("frames"), 204 * 3000);
    }

    #[test]
    fn a_drive_that_goes_and_comes_back() {
        let mut s = Sim::new(60, 30);
        s.feed(45);
        s.d.down = Some(DriveFault::Gone);
        s.feed(5 * 30);
        assert!(s.stalled());
        assert!(
            s.d.segs[0].handed_over,
            "the footage core finishes the cut segment"
        );
        assert!(s.d.probes >= 2, "probed every {RETRY_EVERY:?}");
        assert_eq!(s.d.drive_backs, 0, "no recovery while the drive is away");
        let errors = s.d.errors();
        assert!(
            errors.iter().all(|e| e.contains("drive unavailable")),
            "{errors:?}"
        );
        // Back, with segments numbered higher by the footage core's recovery.
        s.d.down = None;
        s.d.sequence_on_disk = Some(100);
        s.feed(90);
        assert!(!s.stalled());
        assert_eq!(s.d.drive_backs, 1, "recovered once before writing again");
        assert_eq!(s.d.segs[1].sequence, 100);
        s.end(Event::EndOfInput);
        s.check_accounting();
        // 5 s away fits in RAM: only the unsynced fragment (25..49) and the frames before
        // the next keyframe (50..59) are lost.
        assert_eq!(s.p.report().frames_dropped, 25 + 10);
        assert_eq!(s.d.segs[1].durable[0], 60 * 3000);
        // The drive's changes are published once each (the shell says them as events).
        let changes: Vec<Option<DriveFault>> =
            s.d.published
                .iter()
                .filter_map(|p| p.drive.as_ref().map(|d| d.as_ref().map(|(f, _)| *f)))
                .collect();
        assert_eq!(changes, [Some(DriveFault::Gone), None]);
    }

    #[test]
    fn a_read_only_drive_is_said_to_be_read_only() {
        let mut s = Sim::new(60, 30);
        s.feed(20);
        s.d.down = Some(DriveFault::ReadOnly);
        s.feed(90);
        assert!(s.stalled());
        let errors = s.d.errors();
        assert!(!errors.is_empty());
        for e in &errors {
            assert!(e.contains("read-only"), "{e}");
            assert!(e.contains("fsck") && e.contains("remount"), "{e}");
            assert!(!e.contains("unavailable") && !e.contains("gone"), "{e}");
        }
        assert_eq!(s.d.drive_backs, 0, "no recovery on a drive still read-only");
        s.d.down = None;
        s.feed(60);
        assert!(!s.stalled());
        assert_eq!(s.d.drive_backs, 1);
        s.end(Event::Stop);
        s.check_accounting();
        assert_eq!(
            s.d.segs.last().and_then(|g| g.closed.map(|c| c.0)),
            Some(CloseReason::Stop)
        );
    }

    #[test]
    fn permission_denied_is_said_so() {
        let mut s = Sim::new(60, 30);
        s.d.open_faults.push_back(DriveFault::Denied);
        s.d.down = Some(DriveFault::Denied);
        s.feed(30);
        assert!(s.stalled());
        assert!(s
            .d
            .errors()
            .iter()
            .all(|e| e.contains("permission denied") && e.contains("owner")));
        s.d.down = None;
        s.feed(90);
        s.end(Event::EndOfInput);
        s.check_accounting();
        assert_eq!(s.p.report().frames_dropped, 0, "all of it was in RAM");
        assert_eq!(s.d.segs.len(), 1);
    }

    #[test]
    fn a_drive_that_comes_back_read_only_says_so() {
        let mut s = Sim::new(60, 30);
        s.feed(20);
        s.d.down = Some(DriveFault::Gone);
        s.feed(90);
        s.d.down = Some(DriveFault::ReadOnly);
        s.feed(90);
        let last = s.d.errors().pop().expect("errors");
        assert!(last.contains("read-only"), "{last}");
        s.d.down = None;
        s.feed(30);
        assert!(!s.stalled());
        s.end(Event::EndOfInput);
        s.check_accounting();
    }

    #[test]
    fn too_big_closes_and_goes_on_below_that_size() {
        let mut s = Sim::new(60, 15);
        s.format = h264(320);
        // EFBIG at the 4th fragment: the segment closes as size_limit, no waiting.
        s.d.flush_faults.extend([DriveFault::TooBig]);
        s.d.size_offset = 0;
        s.feed(20);
        let before = s.d.segs[0].bytes;
        s.d.segs[0].bytes += 3 << 20; // the file is large by now
        s.d.flush_faults.clear();
        s.d.flush_faults.push_back(DriveFault::TooBig);
        s.feed(30);
        assert!(!s.stalled());
        assert_eq!(s.d.probes, 0);
        assert_eq!(
            s.d.segs[0].closed.map(|c| c.0),
            Some(CloseReason::SizeLimit)
        );
        assert!(s.d.segs.len() >= 2, "the next segment started");
        s.d.segs[0].bytes = before;
        let limit = s.p.fs_size_limit.expect("a learned limit");
        assert!(limit > 0 && limit < 3 << 20, "{limit}");
        // Later segments are cut below it, at keyframes.
        s.d.size_offset = limit - 20 * FRAME_BYTES as u64;
        s.feed(60);
        s.end(Event::EndOfInput);
        s.check_accounting();
        assert!(s
            .d
            .closed()
            .iter()
            .skip(1)
            .any(|c| c.0 == CloseReason::SizeLimit));
    }

    #[test]
    fn another_error_starts_afresh_at_the_next_keyframe() {
        let mut s = Sim::new(60, 30);
        s.feed(10);
        s.d.push_faults.push_back(DriveFault::Other);
        s.feed(40);
        s.end(Event::EndOfInput);
        s.check_accounting();
        assert_eq!(s.d.probes, 0, "no waiting for the drive");
        assert_eq!(s.p.report().write_errors, 1);
        let closed = s.d.closed();
        assert_eq!(closed[0].0, CloseReason::Error);
        // The refused frame and the rest of its GOP are dropped; 30 starts the next.
        assert_eq!(s.p.report().frames_dropped, 20);
        assert_eq!(s.d.segs[1].durable[0], 30 * 3000);
        assert_eq!(closed[1], (CloseReason::EndOfInput, 19));
    }

    #[test]
    fn idle_closes_the_segment_and_frames_open_a_new_one() {
        let mut s = Sim::new(60, 30);
        s.feed(45);
        s.pause(Duration::from_secs(11));
        assert_eq!(s.d.closed(), vec![(CloseReason::Idle, 0)]);
        assert_eq!(
            s.d.segs[0].durable.len(),
            45,
            "flushed whole before the close"
        );
        assert_eq!(
            s.d.published.last().map(|p| p.state),
            Some(RecorderState::Idle)
        );
        s.next = 60;
        s.feed(30);
        s.end(Event::EndOfInput);
        assert_eq!(s.d.segs.len(), 2);
        assert_eq!(
            s.d.published.last().map(|p| p.state),
            Some(RecorderState::Recording)
        );
    }

    #[test]
    fn a_tick_flushes_a_fragment_whose_time_is_up() {
        let mut s = Sim::new(60, 30);
        s.feed(5);
        assert!(s.d.segs[0].durable.is_empty());
        s.pause(Duration::from_millis(900));
        assert_eq!(s.d.segs[0].durable.len(), 5, "flushed by the deadline");
        assert!(s.d.closed().is_empty(), "not idle yet");
    }

    #[test]
    fn a_clock_jump_cuts_at_the_next_keyframe() {
        let mut s = Sim::new(60, 30);
        s.feed(40);
        s.wall_shift = Duration::from_secs(3600);
        s.feed(40);
        s.end(Event::EndOfInput);
        s.check_accounting();
        assert_eq!(
            s.d.closed(),
            vec![(CloseReason::ClockJump, 0), (CloseReason::EndOfInput, 0)]
        );
        assert_eq!(s.d.segs[1].durable[0], 60 * 3000);
    }

    #[test]
    fn a_format_change_cuts_at_once() {
        let mut s = Sim::new(60, 30);
        s.feed(45);
        s.format = h264(640);
        s.feed(45);
        s.end(Event::EndOfInput);
        s.check_accounting();
        assert_eq!(
            s.d.closed(),
            vec![
                (CloseReason::FormatChange, 0),
                (CloseReason::EndOfInput, 15)
            ]
        );
        // The new format's first frames (no keyframe) were dropped until its keyframe.
        assert_eq!(s.d.segs[1].durable[0], 60 * 3000);
        // An equal format in a new Arc is no change.
        let mut s = Sim::new(60, 30);
        s.feed(10);
        s.format = h264(320);
        s.feed(10);
        s.end(Event::EndOfInput);
        assert_eq!(s.d.closed(), vec![(CloseReason::EndOfInput, 0)]);
    }

    #[test]
    fn a_size_limit_cuts_before_the_keyframe_that_would_pass_it() {
        let mut s = Sim::new(60, 10);
        let limit = MP4_MAX_BYTES - SIZE_MARGIN;
        s.d.size_offset = limit - 15 * FRAME_BYTES as u64;
        s.feed(50);
        s.end(Event::EndOfInput);
        s.check_accounting();
        let closed = s.d.closed();
        assert_eq!(closed[0].0, CloseReason::SizeLimit);
        assert_eq!(s.d.segs[0].durable.len(), 20, "cut at the keyframe at 20");
    }

    #[test]
    fn stop_while_the_drive_is_away() {
        // Still away at the stop: one last probe, then what is in RAM is counted as lost.
        let mut s = Sim::new(60, 30);
        s.feed(40);
        s.d.down = Some(DriveFault::Gone);
        s.feed(60);
        let probes = s.d.probes;
        s.end(Event::Stop);
        assert_eq!(s.d.probes, probes + 1);
        s.check_accounting();
        assert_eq!(
            s.d.recorded(),
            25,
            "the durable fragment of the first segment"
        );
        assert_eq!(s.d.released, s.came, "every buffer goes back");

        // Back by the stop: the frames in RAM are written, the segment closed as stop.
        let mut s = Sim::new(60, 30);
        s.feed(40);
        s.d.down = Some(DriveFault::Gone);
        s.feed(30);
        s.d.down = None;
        s.end(Event::Stop);
        s.check_accounting();
        assert_eq!(s.d.drive_backs, 1);
        assert_eq!(
            s.d.segs.last().and_then(|g| g.closed),
            Some((CloseReason::Stop, s.p.report().frames_dropped))
        );
        assert_eq!(s.d.recorded(), 25 + 10);
    }

    #[test]
    fn dropped_frames_are_counted_where_they_belong() {
        let mut s = Sim::new(2, 30);
        // Starting mid-GOP: 10 frames before the first keyframe are charged to segment 1.
        s.next = 20;
        s.feed(10 + 60);
        // The capture side lost 3 frames before the keyframe that starts segment 2: they
        // are charged to the segment open when the news came.
        s.dropped_before = 3;
        s.feed(30);
        s.end(Event::EndOfInput);
        s.check_accounting();
        assert_eq!(
            s.d.closed(),
            vec![(CloseReason::Duration, 13), (CloseReason::EndOfInput, 0)]
        );
        assert_eq!(s.p.report().frames_dropped, 13);

        // A long stall: RAM keeps the newest 10 s; older GOPs are dropped and counted.
        let mut s = Sim::new(60, 30);
        s.feed(30);
        s.d.down = Some(DriveFault::Gone);
        s.feed(20 * 30);
        s.d.down = None;
        s.feed(30);
        s.end(Event::EndOfInput);
        s.check_accounting();
        let lost = s.p.report().frames_dropped;
        assert!(lost >= 9 * 30, "about 10 s lost of 20: {lost}");
        let last = s.d.segs.last().expect("segment after the stall");
        assert_eq!(last.closed.map(|c| c.1), Some(lost));
    }

    #[test]
    fn source_lost_closes_whole_and_the_next_keyframe_after_it_is_back_starts_anew() {
        let mut s = Sim::new(60, 30);
        s.feed(40);
        let at = SystemTime::now();
        s.event(Event::SourceLost {
            at,
            why: "camera unplugged".into(),
        });
        assert_eq!(s.d.closed(), vec![(CloseReason::SourceLost, 0)]);
        assert_eq!(
            s.d.segs[0].durable.len(),
            40,
            "whole: the last fragment flushed"
        );
        assert!(s.d.published.iter().any(
            |p| matches!(&p.source_lost, Some(Some((t, w))) if *t == at && w == "camera unplugged")
        ));
        s.pause(Duration::from_secs(30));
        s.event(Event::SourceBack);
        assert!(matches!(
            s.d.published.last().map(|p| &p.source_lost),
            Some(Some(None))
        ));
        s.next = 50;
        s.feed(40);
        s.end(Event::EndOfInput);
        s.check_accounting();
        assert_eq!(s.d.segs[1].durable[0], 60 * 3000);
        assert_eq!(s.d.closed()[1], (CloseReason::EndOfInput, 10));
    }

    #[test]
    fn a_file_that_vanished_after_a_flush_is_a_drive_gone() {
        let mut s = Sim::new(60, 30);
        s.feed(30);
        s.d.vanish_after_flush = true;
        s.feed(30);
        assert!(s.stalled());
        assert!(s.d.errors().iter().any(|e| e.contains("drive unavailable")));
        s.feed(90);
        s.end(Event::EndOfInput);
        s.check_accounting();
        assert_eq!(s.d.drive_backs, 1);
    }

    #[test]
    fn a_taken_name_moves_to_the_next_sequence() {
        let mut s = Sim::new(60, 30);
        s.d.names_taken = 2;
        s.feed(10);
        s.end(Event::EndOfInput);
        assert_eq!(s.d.opens, vec![7, 8, 9]);
        assert_eq!(s.d.segs[0].sequence, 9);
    }

    #[test]
    fn opening_on_a_full_disk_makes_room_once() {
        let mut s = Sim::new(60, 30);
        s.d.open_faults.push_back(DriveFault::Full);
        s.d.deletable = 10 << 20;
        s.feed(10);
        s.end(Event::EndOfInput);
        s.check_accounting();
        assert_eq!(s.d.room_asked, 1);
        assert_eq!(s.p.report().write_errors, 0);
        assert_eq!(s.d.recorded(), 10);
    }

    #[test]
    fn waiting_for_the_mount_at_start() {
        let failure = fail(DriveFault::Gone);
        let mut s = Sim::with(60, 30, Some(failure));
        s.d.down = Some(DriveFault::Gone);
        s.feed(60);
        assert!(s.stalled() && s.d.segs.is_empty());
        s.d.down = None;
        s.d.sequence_on_disk = Some(42);
        s.feed(30);
        s.end(Event::EndOfInput);
        s.check_accounting();
        assert_eq!(s.d.drive_backs, 1);
        assert_eq!(s.d.segs[0].sequence, 42);
        assert_eq!(s.p.report().frames_dropped, 0, "2 s fit in RAM");
    }

    #[test]
    fn the_status_is_published_per_fragment_never_per_frame() {
        let mut s = Sim::new(10, 30);
        s.feed(30 * 30);
        let fragments: usize = s.d.segs.iter().map(|g| g.fragments.len()).sum();
        let segments = s.d.closed().len();
        assert!(
            s.d.published.len() <= fragments + segments + 1,
            "{} publishes for {fragments} fragments, {segments} segments, 900 frames",
            s.d.published.len()
        );
        let last = s.d.published.last().expect("published");
        assert_eq!(last.state, RecorderState::Recording);
        assert_eq!(last.frames_synced, s.d.recorded());
        // While the drive is away: per probe, not per frame.
        let before = s.d.published.len();
        s.d.down = Some(DriveFault::Gone);
        s.feed(10 * 30);
        let during = s.d.published.len() - before;
        assert!(during <= 10, "{during} publishes in 10 s of stall");
    }
}
