//! Event-lock bookkeeping: which segments an event (the GPIO button, `dashcam lock --now`,
//! the phone page) still has to lock, and whether the segment being written is to be
//! locked when it closes.
//!
//! An event locks the previous segment at once (the footage core does that), the segment
//! being written when it closes, and every following segment that starts within
//! `post_event_seconds` of the event. A lock by name of the segment being written also
//! waits for it to close. Pure bookkeeping over times: it never touches a file.

use std::time::{Duration, SystemTime};

#[derive(Clone, Debug, Default)]
pub struct EventLocks {
    /// End of each event's window: a segment that starts before it is locked.
    windows: Vec<SystemTime>,
    /// Lock the segment being written when it closes.
    lock_open: bool,
}

impl EventLocks {
    /// An event at `at`; `recording`: a segment is being written (it will be locked when
    /// it closes). Returns the end of the event's window.
    pub fn event(&mut self, at: SystemTime, post_event: Duration, recording: bool) -> SystemTime {
        let until = at + post_event;
        self.windows.push(until);
        if recording {
            self.lock_open = true;
        }
        until
    }

    /// A segment starting at `start` was opened: whether it is to be locked when it closes
    /// (it starts inside an event's window). Windows that have ended are forgotten.
    pub fn opened(&mut self, start: SystemTime) -> bool {
        self.windows.retain(|until| start < *until);
        self.lock_open = !self.windows.is_empty();
        self.lock_open
    }

    /// Lock the segment being written when it closes (a lock by name).
    pub fn lock_when_closed(&mut self) {
        self.lock_open = true;
    }

    /// Do not lock the segment being written after all (an unlock by name); false when it
    /// was not going to be locked.
    pub fn cancel(&mut self) -> bool {
        std::mem::replace(&mut self.lock_open, false)
    }

    /// The segment being written closed: whether to lock it now.
    pub fn closed(&mut self) -> bool {
        std::mem::replace(&mut self.lock_open, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }
    const POST: Duration = Duration::from_secs(10);

    #[test]
    fn an_event_locks_the_open_segment_and_those_starting_in_its_window() {
        let mut e = EventLocks::default();
        // Segment A (0 s) is being written; the event at 55 s.
        assert!(!e.opened(t(0)));
        assert_eq!(e.event(t(55), POST, true), t(65));
        // A closes at 60 s: locked. B starts at 60 s (< 65 s): locked too.
        assert!(e.closed());
        assert!(e.opened(t(60)));
        assert!(e.closed());
        // C starts at 120 s: outside the window, and the window is forgotten.
        assert!(!e.opened(t(120)));
        assert!(!e.closed());
        assert!(!e.opened(t(121)));
    }

    #[test]
    fn a_segment_starting_at_the_end_of_the_window_is_not_locked() {
        let mut e = EventLocks::default();
        e.event(t(0), POST, false);
        assert!(!e.closed(), "nothing was being written");
        assert!(!e.opened(t(10)));
        let mut e = EventLocks::default();
        e.event(t(0), POST, false);
        assert!(e.opened(t(9)));
    }

    #[test]
    fn between_segments_the_next_one_is_locked() {
        // The drive was away: no segment open at the event, the next one opens later but
        // inside the window.
        let mut e = EventLocks::default();
        e.event(t(100), POST, false);
        assert!(e.opened(t(104)));
        assert!(e.closed());
    }

    #[test]
    fn overlapping_events_extend_the_window() {
        let mut e = EventLocks::default();
        e.opened(t(0));
        e.event(t(5), POST, true);
        e.event(t(12), POST, true);
        assert!(e.closed());
        assert!(e.opened(t(16)), "inside the second window");
        assert!(e.closed());
        assert!(!e.opened(t(22)));
    }

    #[test]
    fn a_lock_by_name_waits_for_the_close_and_an_unlock_cancels_it() {
        let mut e = EventLocks::default();
        e.opened(t(0));
        assert!(!e.cancel(), "nothing to cancel");
        e.lock_when_closed();
        assert!(e.cancel());
        assert!(!e.closed());
        e.lock_when_closed();
        assert!(e.closed());
        // A lock by name is for that segment only.
        e.lock_when_closed();
        assert!(!e.opened(t(60)));
    }
}
