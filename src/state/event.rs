//! What happened, as one [`Event`] type for every consumer (hooks, MQTT, Server-Sent
//! Events, the upload folder), and the [`EventSink`] the emitters (the footage core, the
//! writer, the composition root, the stills) hand events to.
//!
//! It owns the event vocabulary: the snake_case kinds, the field names (a closed segment
//! carries the segment metadata's own names), the sequence number and the two clocks, and
//! the JSON form. The sink is a bounded queue with `try_send`: emitting never blocks and
//! never allocates beyond the event itself; when the queue is full (or the events role is
//! not listening) the event is dropped and counted, and its sequence number is skipped so
//! that a consumer sees the gap. A disabled sink (no events role runs) is a no-op. Nothing
//! here starts a thread, opens a socket or touches a file.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::Serialize;

use crate::disk::metadata::SegmentMeta;
use crate::frame::Codec;

/// Every kind, as it appears in `"event"` and in `[[hooks]] on`.
pub const KINDS: &[&str] = &[
    "segment_closed",
    "locked",
    "unlocked",
    "deleted",
    "clip_saved",
    "recording_started",
    "recording_stopped",
    "camera_lost",
    "camera_back",
    "drive_full",
    "drive_gone",
    "drive_back",
    "quota_deleted",
    "clock_set",
    "still_saved",
];

/// One thing that happened, with its sequence number and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// 1, 2, 3 … per recording run, in the order the events were emitted; a gap is an
    /// event that was dropped.
    pub seq: u64,
    /// Wall time of the emission.
    pub wall: SystemTime,
    /// Monotonic time of the emission (CLOCK_MONOTONIC: since boot, immune to clock
    /// changes).
    pub mono: Duration,
    pub kind: EventKind,
}

/// A segment file on the drive an event is about.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileRef {
    /// File name (`20261121-143005_000042.mp4`).
    pub name: String,
    /// Where it is now (after the event: `locked/` for a lock).
    pub path: String,
    pub bytes: u64,
}

impl FileRef {
    pub fn new(path: &Path, bytes: u64) -> FileRef {
        FileRef {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.display().to_string(),
            bytes,
        }
    }
}

/// A clip written into `saved/` (or where `-o` said): the fields of its `.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClipSaved {
    pub name: String,
    pub path: String,
    /// The range asked for (local time, as given).
    pub from: String,
    pub to: String,
    pub start_wall: String,
    pub start_unix_ms: i64,
    pub frames: u64,
    pub duration_s: f64,
    pub bytes: u64,
    pub codec: Codec,
    /// The segments it was cut from.
    pub segments: Vec<String>,
    pub metadata: Option<String>,
}

/// A still written into the stills folder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StillSaved {
    pub name: String,
    pub path: String,
    /// Capture time of the frame (RFC 3339, local).
    pub captured: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// Presentation time of the frame on the stream clock (90 kHz ticks, as the segment
    /// metadata's `start_pts`).
    pub pts: i64,
    /// `camera`: the camera's own JPEG; `decoded`: an H.264 keyframe decoded and encoded.
    pub source: &'static str,
}

/// What happened. Serialised without a tag of its own: [`Event::to_json`] puts the kind
/// in `"event"` and the fields beside it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventKind {
    /// A segment was closed: every field of its metadata, and where it is.
    SegmentClosed {
        #[serde(flatten)]
        meta: SegmentMeta,
        path: String,
    },
    Locked(FileRef),
    Unlocked(FileRef),
    /// Deleted on request (a command, the phone page).
    Deleted {
        #[serde(flatten)]
        file: FileRef,
        /// `loop` or `saved`.
        folder: &'static str,
    },
    ClipSaved(ClipSaved),
    RecordingStarted {
        source: String,
        dir: String,
    },
    RecordingStopped {
        /// `stop` (signal, request), `end_of_input`, `error`.
        reason: String,
        segments: u64,
        frames: u64,
        dropped_frames: u64,
    },
    CameraLost {
        /// Since when, RFC 3339.
        since: String,
        why: String,
    },
    CameraBack {},
    DriveFull {
        dir: String,
        why: String,
    },
    DriveGone {
        dir: String,
        why: String,
    },
    DriveBack {
        dir: String,
    },
    /// Deleted to keep a quota (`quota`, `disk_full`, `locked_full` rotation).
    QuotaDeleted {
        #[serde(flatten)]
        file: FileRef,
        reason: &'static str,
    },
    /// The wall clock was set (by the phone page, NTP seen as a jump).
    ClockSet {
        previous: String,
        now: String,
        offset_s: f64,
    },
    StillSaved(StillSaved),
}

impl EventKind {
    /// The snake_case kind (one of [`KINDS`]).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::SegmentClosed { .. } => "segment_closed",
            EventKind::Locked(_) => "locked",
            EventKind::Unlocked(_) => "unlocked",
            EventKind::Deleted { .. } => "deleted",
            EventKind::ClipSaved(_) => "clip_saved",
            EventKind::RecordingStarted { .. } => "recording_started",
            EventKind::RecordingStopped { .. } => "recording_stopped",
            EventKind::CameraLost { .. } => "camera_lost",
            EventKind::CameraBack {} => "camera_back",
            EventKind::DriveFull { .. } => "drive_full",
            EventKind::DriveGone { .. } => "drive_gone",
            EventKind::DriveBack { .. } => "drive_back",
            EventKind::QuotaDeleted { .. } => "quota_deleted",
            EventKind::ClockSet { .. } => "clock_set",
            EventKind::StillSaved(_) => "still_saved",
        }
    }

    pub fn segment_closed(path: &Path, meta: SegmentMeta) -> EventKind {
        EventKind::SegmentClosed {
            meta,
            path: path.display().to_string(),
        }
    }

    pub fn camera_lost(since: SystemTime, why: &str) -> EventKind {
        EventKind::CameraLost {
            since: rfc3339(since),
            why: why.to_string(),
        }
    }

    /// The clock was set from `previous` to `now` (both read at the same moment: the
    /// offset is what the clock moved by).
    pub fn clock_set(previous: SystemTime, now: SystemTime) -> EventKind {
        let offset_s = match now.duration_since(previous) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        EventKind::ClockSet {
            previous: rfc3339(previous),
            now: rfc3339(now),
            offset_s,
        }
    }
}

/// RFC 3339 with the local offset, as the segment metadata writes times.
pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Local>::from(t).to_rfc3339()
}

fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// CLOCK_MONOTONIC now.
pub fn monotonic_now() -> Duration {
    crate::state::clock::monotonic()
}

#[derive(Serialize)]
struct Wire<'a> {
    event: &'static str,
    seq: u64,
    wall: String,
    unix_ms: i64,
    mono_s: f64,
    #[serde(flatten)]
    fields: &'a EventKind,
}

impl Event {
    /// The JSON object: `{"event": KIND, "seq", "wall", "unix_ms", "mono_s", …fields}`,
    /// on one line.
    pub fn to_json(&self) -> String {
        let wire = Wire {
            event: self.kind.name(),
            seq: self.seq,
            wall: rfc3339(self.wall),
            unix_ms: unix_ms(self.wall),
            mono_s: (self.mono.as_millis() as f64) / 1000.0,
            fields: &self.kind,
        };
        // Serialising plain data into a String cannot fail.
        serde_json::to_string(&wire).unwrap_or_default()
    }
}

/// What an emitter knows about the footage drive; the sink turns changes into
/// `drive_full` / `drive_gone` / `drive_back` events, once each, whoever saw them first
/// (the writer and the footage core both report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DriveState {
    #[default]
    Ok,
    Full,
    Gone,
}

#[derive(Debug)]
struct Inner {
    tx: Sender<Event>,
    /// The next sequence number; held while sending so that queue order is seq order.
    next: Mutex<u64>,
    dropped: AtomicU64,
    drive: Mutex<DriveState>,
}

/// The emitters' handle: cheap to clone, never blocks. `EventSink::default()` is a
/// disabled sink (no events role): every call is a no-op.
#[derive(Clone, Debug, Default)]
pub struct EventSink {
    inner: Option<Arc<Inner>>,
}

impl EventSink {
    /// A sink with a queue of `capacity` events, and the receiving end for the events role.
    pub fn bounded(capacity: usize) -> (EventSink, Receiver<Event>) {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let inner = Inner {
            tx,
            next: Mutex::new(1),
            dropped: AtomicU64::new(0),
            drive: Mutex::new(DriveState::Ok),
        };
        (
            EventSink {
                inner: Some(Arc::new(inner)),
            },
            rx,
        )
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Hand an event over without waiting: when the queue is full, or nobody listens any
    /// more, it is dropped and counted.
    pub fn emit(&self, kind: EventKind) {
        let Some(inner) = &self.inner else {
            return;
        };
        let mut next = match inner.next.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let event = Event {
            seq: *next,
            wall: SystemTime::now(),
            mono: monotonic_now(),
            kind,
        };
        *next += 1;
        match inner.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                inner.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped so far (queue full, or emitted after the events role stopped).
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.dropped.load(Ordering::Relaxed))
    }

    /// The drive at `dir` is now in `state` (`why`: what was seen). Emits `drive_full`,
    /// `drive_gone` or `drive_back` when that is a change; repeats are ignored.
    pub fn drive(&self, state: DriveState, dir: &Path, why: &str) {
        let Some(inner) = &self.inner else {
            return;
        };
        let previous = {
            let mut drive = match inner.drive.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            std::mem::replace(&mut *drive, state)
        };
        if previous == state {
            return;
        }
        let dir = dir.display().to_string();
        self.emit(match state {
            DriveState::Full => EventKind::DriveFull {
                dir,
                why: why.to_string(),
            },
            DriveState::Gone => EventKind::DriveGone {
                dir,
                why: why.to_string(),
            },
            DriveState::Ok => EventKind::DriveBack { dir },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::metadata::CloseReason;

    fn meta() -> SegmentMeta {
        SegmentMeta {
            name: "20261121-143005_000042.mp4".into(),
            sequence: 42,
            start_wall: "2026-11-21T14:30:05+01:00".into(),
            start_unix_ms: 1_795_267_805_000,
            start_pts: 0,
            duration_s: 60.0,
            frames: 1800,
            bytes: 12_345,
            codec: Codec::H264,
            width: 1920,
            height: 1080,
            fps: 30.0,
            dropped_frames: 0,
            partial: false,
            close_reason: CloseReason::Duration,
        }
    }

    #[test]
    fn a_closed_segment_carries_the_metadata_field_names() {
        let (sink, rx) = EventSink::bounded(4);
        sink.emit(EventKind::segment_closed(
            Path::new("/f/20261121-143005_000042.mp4"),
            meta(),
        ));
        let e = rx.try_recv().expect("event");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
        assert_eq!(v["event"], "segment_closed");
        assert_eq!(v["seq"], 1);
        assert!(v["wall"].as_str().is_some_and(|w| w.contains('T')));
        assert!(v["unix_ms"].as_i64().is_some_and(|t| t > 0));
        assert!(v["mono_s"].as_f64().is_some_and(|t| t > 0.0));
        let m = serde_json::to_value(meta()).expect("meta");
        for (k, want) in m.as_object().expect("object") {
            assert_eq!(&v[k], want, "{k}");
        }
        assert_eq!(v["path"], "/f/20261121-143005_000042.mp4");
        assert_eq!(v["close_reason"], "duration");
    }

    #[test]
    fn every_kind_has_its_name_in_the_list_and_empty_kinds_are_objects() {
        let f = FileRef::new(Path::new("/f/locked/a.mp4"), 9);
        let kinds = [
            EventKind::segment_closed(Path::new("x"), meta()),
            EventKind::Locked(f.clone()),
            EventKind::Unlocked(f.clone()),
            EventKind::Deleted {
                file: f.clone(),
                folder: "loop",
            },
            EventKind::RecordingStarted {
                source: "test".into(),
                dir: "f".into(),
            },
            EventKind::CameraBack {},
            EventKind::QuotaDeleted {
                file: f,
                reason: "quota",
            },
            EventKind::clock_set(UNIX_EPOCH, UNIX_EPOCH + Duration::from_secs(90)),
        ];
        for k in kinds {
            assert!(KINDS.contains(&k.name()), "{}", k.name());
            let e = Event {
                seq: 7,
                wall: UNIX_EPOCH,
                mono: Duration::from_millis(1500),
                kind: k,
            };
            let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
            assert_eq!(v["event"], e.kind.name());
            assert_eq!(v["mono_s"], 1.5);
        }
        let e = Event {
            seq: 1,
            wall: UNIX_EPOCH,
            mono: Duration::ZERO,
            kind: EventKind::clock_set(UNIX_EPOCH + Duration::from_secs(100), UNIX_EPOCH),
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
        assert_eq!(v["offset_s"], -100.0);
        let f = Event {
            kind: EventKind::Locked(FileRef::new(Path::new("/f/locked/a.mp4"), 9)),
            ..e
        };
        let v: serde_json::Value = serde_json::from_str(&f.to_json()).expect("json");
        assert_eq!(v["name"], "a.mp4");
        assert_eq!(v["bytes"], 9);
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_leaves_a_gap_in_the_sequence() {
        let (sink, rx) = EventSink::bounded(2);
        for _ in 0..5 {
            sink.clone().emit(EventKind::CameraBack {});
        }
        assert_eq!(sink.dropped(), 3);
        assert_eq!(rx.try_recv().map(|e| e.seq).ok(), Some(1));
        sink.emit(EventKind::CameraBack {});
        let seqs: Vec<u64> = rx.try_iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![2, 6], "3, 4 and 5 were dropped");
        drop(rx);
        sink.emit(EventKind::CameraBack {});
        assert_eq!(sink.dropped(), 4, "nobody listening: dropped too");
        // Disabled: a no-op.
        let off = EventSink::default();
        off.emit(EventKind::CameraBack {});
        assert_eq!(off.dropped(), 0);
        assert!(!off.is_enabled());
    }

    #[test]
    fn drive_changes_are_emitted_once_whoever_reports_them() {
        let (sink, rx) = EventSink::bounded(8);
        let dir = Path::new("/media/footage");
        sink.drive(DriveState::Ok, dir, "");
        sink.drive(DriveState::Gone, dir, "EIO");
        sink.clone().drive(DriveState::Gone, dir, "vanished");
        sink.drive(DriveState::Ok, dir, "");
        sink.drive(DriveState::Full, dir, "ENOSPC");
        let kinds: Vec<&str> = rx.try_iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds, vec!["drive_gone", "drive_back", "drive_full"]);
    }
}
