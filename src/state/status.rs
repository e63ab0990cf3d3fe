//! The recorder's state as other roles see it (systemd notify, the status LED, the web page).
//!
//! The writer is the only role that updates a [`RecorderStatus`]; everyone else reads a
//! [`StatusSnapshot`]. The snapshot behind the lock changes per fragment, per segment and
//! on a change of state (a stall, an idle stream, the source lost), never per frame; the
//! one thing that changes per frame, when the last frame arrived, is an atomic the writer
//! stores without taking the lock ([`RecorderStatus::frame_arrived`]) and that every
//! snapshot includes. A reader never blocks the writer for longer than a copy of the
//! snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the recorder is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecorderState {
    /// Started, no frame on disk yet.
    Starting,
    /// Frames are flowing and reaching the disk.
    Recording,
    /// No frames for `idle_timeout`: the segment was closed, waiting for frames.
    Idle,
    /// Writing fails (full or missing drive); retrying.
    Error,
    /// Stopped (end of input or a stop request).
    Stopped,
}

#[derive(Clone, Debug)]
pub struct StatusSnapshot {
    pub state: RecorderState,
    /// Frames made durable (fdatasynced) so far.
    pub frames_synced: u64,
    pub frames_dropped: u64,
    pub segments_closed: u64,
    /// File name of the open segment.
    pub current_segment: Option<String>,
    /// When the last fragment was fdatasynced.
    pub last_sync: Option<Instant>,
    /// When the writer last received a frame (the later of what was set here and what
    /// [`RecorderStatus::frame_arrived`] recorded).
    pub last_frame: Option<Instant>,
    pub last_error: Option<String>,
    /// Since when the source has been gone (camera unplugged, process died), and why.
    pub source_lost: Option<(std::time::SystemTime, String)>,
}

#[derive(Debug)]
pub struct RecorderStatus {
    inner: Mutex<StatusSnapshot>,
    /// When the last frame arrived: nanoseconds after `epoch`, plus one; 0 for never.
    last_frame: AtomicU64,
    epoch: Instant,
}

impl Default for RecorderStatus {
    fn default() -> Self {
        RecorderStatus {
            last_frame: AtomicU64::new(0),
            epoch: Instant::now(),
            inner: Mutex::new(StatusSnapshot {
                state: RecorderState::Starting,
                frames_synced: 0,
                frames_dropped: 0,
                segments_closed: 0,
                current_segment: None,
                last_sync: None,
                last_frame: None,
                last_error: None,
                source_lost: None,
            }),
        }
    }
}

impl RecorderStatus {
    pub fn snapshot(&self) -> StatusSnapshot {
        let mut s = match self.inner.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        s.last_frame = s.last_frame.max(self.last_frame_arrived());
        s
    }

    /// A frame arrived at the writer at `at` (per frame: no lock, one atomic store).
    pub fn frame_arrived(&self, at: Instant) {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        let stored = u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1;
        self.last_frame.store(stored, Ordering::Relaxed);
    }

    fn last_frame_arrived(&self) -> Option<Instant> {
        match self.last_frame.load(Ordering::Relaxed) {
            0 => None,
            n => self.epoch.checked_add(Duration::from_nanos(n - 1)),
        }
    }

    /// Change the status under the lock (writer only).
    pub fn update(&self, f: impl FnOnce(&mut StatusSnapshot)) {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// One line for logs, systemd's STATUS= and the web page.
    pub fn one_line(&self) -> String {
        let s = self.snapshot();
        let state = match s.state {
            RecorderState::Starting => "starting",
            RecorderState::Recording => "recording",
            RecorderState::Idle => "idle (no frames)",
            RecorderState::Error => "error",
            RecorderState::Stopped => "stopped",
        };
        let mut line = format!(
            "{state}: {} frames on disk, {} segments, {} dropped",
            s.frames_synced, s.segments_closed, s.frames_dropped
        );
        if let Some(seg) = &s.current_segment {
            line.push_str(&format!(", writing {seg}"));
        }
        if let (RecorderState::Error, Some(e)) = (s.state, &s.last_error) {
            line.push_str(&format!(", last error: {e}"));
        }
        if let Some((since, why)) = &s.source_lost {
            let since = chrono::DateTime::<chrono::Local>::from(*since).format("%Y-%m-%d %H:%M:%S");
            line = format!("camera lost since {since} ({why}); {line}");
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_frame_is_the_later_of_the_atomic_and_the_snapshot() {
        let s = RecorderStatus::default();
        assert_eq!(s.snapshot().last_frame, None);
        let t = Instant::now() + Duration::from_millis(5);
        s.frame_arrived(t);
        assert_eq!(s.snapshot().last_frame, Some(t));
        // Set in the snapshot (as a test or an older writer does): the later wins.
        let later = t + Duration::from_secs(1);
        s.update(|x| x.last_frame = Some(later));
        assert_eq!(s.snapshot().last_frame, Some(later));
        let latest = later + Duration::from_secs(1);
        s.frame_arrived(latest);
        assert_eq!(s.snapshot().last_frame, Some(latest));
    }
}
