//! Is the recorder healthy? One judgement of a [`StatusSnapshot`], shared by the systemd
//! watchdog and the status LED so that they never disagree.
//!
//! Pure: it reads a snapshot and the clock and never changes anything.

use std::time::{Duration, Instant};

use crate::state::status::{RecorderState, StatusSnapshot};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// No frame is on disk yet.
    Starting,
    /// Frames flow and the writer makes progress.
    Recording,
    /// Recording should be happening but is not; the reason in words.
    Stalled(String),
    /// The camera is gone (the writer closed its segment and waits for it); the reason in
    /// words. Not wedged: the service stays alive and resumes when the camera returns.
    WaitingForSource(String),
    /// The recorder has stopped.
    Stopped,
}

/// How long frames may stop arriving, or the writer stop syncing, before the recorder is
/// judged stalled: three sync intervals, and at least 5 s.
pub fn progress_window(sync_interval: Duration) -> Duration {
    (sync_interval * 3).max(Duration::from_secs(5))
}

pub fn judge(s: &StatusSnapshot, now: Instant, window: Duration) -> Health {
    if s.state == RecorderState::Stopped {
        return Health::Stopped;
    }
    // The writer itself records the loss (after writing what was queued), so this also
    // says the writer is alive; a drive in trouble is still judged below.
    if let Some((_, why)) = &s.source_lost {
        if s.state != RecorderState::Error {
            return Health::WaitingForSource(why.clone());
        }
    }
    let Some(last_sync) = s.last_sync else {
        return Health::Starting;
    };
    if s.frames_synced == 0 {
        return Health::Starting;
    }
    let age = |t: Instant| now.saturating_duration_since(t);
    match s.last_frame {
        Some(f) if age(f) <= window => {}
        Some(f) => {
            return Health::Stalled(format!(
                "no frame from the source for {:.0} s",
                age(f).as_secs_f64()
            ))
        }
        None => return Health::Stalled("no frame from the source".into()),
    }
    if age(last_sync) > window {
        return Health::Stalled(format!(
            "the writer has synced nothing for {:.0} s",
            age(last_sync).as_secs_f64()
        ));
    }
    Health::Recording
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::status::RecorderStatus;

    fn snap(f: impl FnOnce(&mut StatusSnapshot)) -> StatusSnapshot {
        let s = RecorderStatus::default();
        s.update(f);
        s.snapshot()
    }

    #[test]
    fn starting_until_first_sync() {
        let now = Instant::now();
        let w = Duration::from_secs(5);
        assert_eq!(judge(&snap(|_| {}), now, w), Health::Starting);
        let s = snap(|s| s.last_frame = Some(now));
        assert_eq!(judge(&s, now, w), Health::Starting);
    }

    #[test]
    fn recording_while_frames_flow_and_syncs_happen() {
        let now = Instant::now();
        let w = Duration::from_secs(5);
        let s = snap(|s| {
            s.state = RecorderState::Recording;
            s.frames_synced = 30;
            s.last_sync = Some(now);
            s.last_frame = Some(now);
        });
        assert_eq!(
            judge(&s, now + Duration::from_secs(4), w),
            Health::Recording
        );
        // Frames stop.
        assert!(matches!(
            judge(&s, now + Duration::from_secs(6), w),
            Health::Stalled(r) if r.contains("no frame")
        ));
        // Frames arrive but the writer is wedged.
        let later = now + Duration::from_secs(10);
        let s2 = snap(|s| {
            s.frames_synced = 30;
            s.last_sync = Some(now);
            s.last_frame = Some(later);
        });
        assert!(matches!(
            judge(&s2, later, w),
            Health::Stalled(r) if r.contains("writer")
        ));
    }

    #[test]
    fn a_lost_camera_is_waiting_not_stalled_unless_the_drive_is_in_trouble() {
        let now = Instant::now();
        let w = Duration::from_secs(5);
        let lost = |state| {
            snap(|s| {
                s.state = state;
                s.frames_synced = 30;
                s.last_sync = Some(now);
                s.last_frame = Some(now);
                s.source_lost = Some((std::time::SystemTime::now(), "unplugged".into()));
            })
        };
        let later = now + Duration::from_secs(600);
        assert_eq!(
            judge(&lost(RecorderState::Idle), later, w),
            Health::WaitingForSource("unplugged".into())
        );
        // Lost before the first frame (no camera at boot): waiting too.
        let s = snap(|s| s.source_lost = Some((std::time::SystemTime::now(), "x".into())));
        assert_eq!(judge(&s, later, w), Health::WaitingForSource("x".into()));
        assert!(matches!(
            judge(&lost(RecorderState::Error), later, w),
            Health::Stalled(_)
        ));
    }

    #[test]
    fn stopped_is_stopped() {
        let s = snap(|s| s.state = RecorderState::Stopped);
        assert_eq!(
            judge(&s, Instant::now(), Duration::from_secs(5)),
            Health::Stopped
        );
    }

    #[test]
    fn window_has_a_floor() {
        assert_eq!(
            progress_window(Duration::from_millis(100)),
            Duration::from_secs(5)
        );
        assert_eq!(
            progress_window(Duration::from_secs(10)),
            Duration::from_secs(30)
        );
    }
}
