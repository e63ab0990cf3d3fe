//! What the button and the ignition sense mean: press lengths and ignition timing turned
//! into requests (lock the event, stop recording).
//!
//! A pure state machine driven by edges and the clock, so it is tested without hardware.
//! It never touches a line, a channel or the recorder itself; the role thread acts on what
//! it returns.

use std::time::{Duration, Instant};

pub use crate::state::control::StopReason;

/// An input line of the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Button,
    Ignition,
}

/// A (kernel-debounced) change of an input. `active` is the logical level: polarity
/// (active-low) is already applied, so `true` means pressed / ignition on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub input: Input,
    pub active: bool,
}

/// A request to the recorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A short press: lock the current segment and its neighbours.
    LockNow,
    /// Close the segment and stop recording.
    Stop(StopReason),
}

#[derive(Debug)]
pub struct Controller {
    long_press: Duration,
    stop_delay: Duration,
    pressed_at: Option<Instant>,
    long_fired: bool,
    ignition_off_since: Option<Instant>,
    stopped: bool,
}

impl Controller {
    pub fn new(long_press: Duration, stop_delay: Duration) -> Controller {
        Controller {
            long_press,
            stop_delay,
            pressed_at: None,
            long_fired: false,
            ignition_off_since: None,
            stopped: false,
        }
    }

    /// The levels read when the lines were requested. A button already held at start is
    /// ignored until released (no surprise shutdown); an ignition already off starts the
    /// stop delay.
    pub fn start(&mut self, ignition_on: Option<bool>, now: Instant) {
        if ignition_on == Some(false) {
            self.ignition_off_since = Some(now);
        }
    }

    /// Whether a stop was requested (later requests are not made).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    pub fn on_edge(&mut self, edge: Edge, now: Instant) -> Option<Request> {
        match (edge.input, edge.active) {
            (Input::Button, true) => {
                self.pressed_at = Some(now);
                self.long_fired = false;
                None
            }
            (Input::Button, false) => {
                let pressed = self.pressed_at.take()?;
                if self.long_fired {
                    return None;
                }
                if now.saturating_duration_since(pressed) >= self.long_press {
                    return self.stop(StopReason::LongPress);
                }
                (!self.stopped).then_some(Request::LockNow)
            }
            (Input::Ignition, false) => {
                self.ignition_off_since.get_or_insert(now);
                None
            }
            (Input::Ignition, true) => {
                self.ignition_off_since = None;
                None
            }
        }
    }

    /// Act on the clock: a button held long enough, an ignition off long enough.
    pub fn on_time(&mut self, now: Instant) -> Option<Request> {
        if let Some(p) = self.pressed_at {
            if !self.long_fired && now >= p + self.long_press {
                self.long_fired = true;
                return self.stop(StopReason::LongPress);
            }
        }
        if let Some(off) = self.ignition_off_since {
            if now >= off + self.stop_delay {
                return self.stop(StopReason::IgnitionOff);
            }
        }
        None
    }

    /// When `on_time` may next have something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        let press = self
            .pressed_at
            .filter(|_| !self.long_fired)
            .map(|p| p + self.long_press);
        let ignition = self.ignition_off_since.map(|t| t + self.stop_delay);
        match (press, ignition) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn stop(&mut self, reason: StopReason) -> Option<Request> {
        if self.stopped {
            return None;
        }
        self.stopped = true;
        Some(Request::Stop(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3);
    const DELAY: Duration = Duration::from_secs(5);

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }
    fn button(active: bool) -> Edge {
        Edge {
            input: Input::Button,
            active,
        }
    }
    fn ignition(active: bool) -> Edge {
        Edge {
            input: Input::Ignition,
            active,
        }
    }

    #[test]
    fn short_press_locks_on_release() {
        let t0 = Instant::now();
        let mut c = Controller::new(LONG, DELAY);
        assert_eq!(c.on_edge(button(true), t0), None);
        assert_eq!(c.on_time(ms(t0, 500)), None);
        assert_eq!(
            c.on_edge(button(false), ms(t0, 800)),
            Some(Request::LockNow)
        );
        assert_eq!(c.next_deadline(), None);
        // Again: every short press locks.
        assert_eq!(c.on_edge(button(true), ms(t0, 2000)), None);
        assert_eq!(
            c.on_edge(button(false), ms(t0, 2100)),
            Some(Request::LockNow)
        );
    }

    #[test]
    fn long_press_stops_while_held_once() {
        let t0 = Instant::now();
        let mut c = Controller::new(LONG, DELAY);
        c.on_edge(button(true), t0);
        assert_eq!(c.next_deadline(), Some(t0 + LONG));
        assert_eq!(c.on_time(ms(t0, 2999)), None);
        assert_eq!(
            c.on_time(ms(t0, 3000)),
            Some(Request::Stop(StopReason::LongPress))
        );
        assert_eq!(c.on_time(ms(t0, 4000)), None);
        assert_eq!(c.on_edge(button(false), ms(t0, 5000)), None);
        assert!(c.stopped());
    }

    #[test]
    fn long_press_seen_only_at_release_still_stops() {
        let t0 = Instant::now();
        let mut c = Controller::new(LONG, DELAY);
        c.on_edge(button(true), t0);
        assert_eq!(
            c.on_edge(button(false), ms(t0, 3500)),
            Some(Request::Stop(StopReason::LongPress))
        );
    }

    #[test]
    fn release_without_press_is_ignored() {
        let t0 = Instant::now();
        let mut c = Controller::new(LONG, DELAY);
        assert_eq!(c.on_edge(button(false), t0), None);
    }

    #[test]
    fn ignition_off_stops_after_delay_unless_it_returns() {
        let t0 = Instant::now();
        let mut c = Controller::new(LONG, DELAY);
        c.start(Some(true), t0);
        c.on_edge(ignition(false), ms(t0, 1000));
        assert_eq!(c.next_deadline(), Some(ms(t0, 6000)));
        c.on_edge(ignition(true), ms(t0, 3000)); // cranking dip
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.on_time(ms(t0, 7000)), None);
        c.on_edge(ignition(false), ms(t0, 10_000));
        assert_eq!(c.on_time(ms(t0, 14_999)), None);
        assert_eq!(
            c.on_time(ms(t0, 15_000)),
            Some(Request::Stop(StopReason::IgnitionOff))
        );
        assert_eq!(c.on_time(ms(t0, 20_000)), None);
    }

    #[test]
    fn ignition_off_at_start_counts() {
        let t0 = Instant::now();
        let mut c = Controller::new(LONG, Duration::ZERO);
        c.start(Some(false), t0);
        assert_eq!(c.on_time(t0), Some(Request::Stop(StopReason::IgnitionOff)));
    }

    #[test]
    fn no_lock_after_stop() {
        let t0 = Instant::now();
        let mut c = Controller::new(LONG, Duration::ZERO);
        c.on_edge(ignition(false), t0);
        assert!(c.on_time(t0).is_some());
        c.on_edge(button(true), ms(t0, 10));
        assert_eq!(c.on_edge(button(false), ms(t0, 20)), None);
    }
}
