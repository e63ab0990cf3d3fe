//! The record switch: whether recording is wanted (record on/off from the phone), and the
//! links of the recording run in progress, shared by the run loop ([`super::session`]),
//! the pipeline (which attaches each run) and the web role's adapter
//! ([`super::web_backend`]).
//!
//! It owns that shared state and its rules: record off asks the running writer to stop
//! (it closes its segment whole); record on wakes the run loop, which starts a new run;
//! footage operations done while no run holds the footage directory (a one-off keeper)
//! and the start of a run never overlap. It never records, and never blocks the writer:
//! the stop request goes through the control channel with a timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::frame::Captured;
use crate::state::control::Control;
use crate::state::status::RecorderStatus;
use crate::storage::keeper::StorageLink;

/// How long a stop request may wait for room in the control channel.
const CONTROL_WAIT: Duration = Duration::from_secs(2);

/// The links of one recording run that other roles may use.
#[derive(Clone)]
pub struct LiveRun {
    pub status: Arc<RecorderStatus>,
    pub control: Sender<Control>,
    /// The storage keeper of the run (`None` when it could not start).
    pub storage: Option<StorageLink>,
    /// The frame queue between capture and writer (read only for its length).
    pub queue: Receiver<Captured>,
}

/// The answer to record on/off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwitchAnswer {
    Done(String),
    /// Not possible in this state, and why.
    Refused(String),
}

struct State {
    want: bool,
    run: Option<LiveRun>,
    /// The status of the current run, or of the last one when none runs.
    last_status: Arc<RecorderStatus>,
    /// The current run was asked to stop by record off.
    stop_requested: bool,
    /// No run: waiting for record on.
    paused: bool,
    /// A run is being started.
    starting: bool,
    /// Footage operations in progress while no run holds the directory.
    idle_ops: usize,
    /// Frames on disk, frames dropped and segments closed by the runs before this one.
    carried: (u64, u64, u64),
}

pub struct RecordSwitch {
    state: Mutex<State>,
    changed: Condvar,
}

impl Default for RecordSwitch {
    fn default() -> Self {
        RecordSwitch {
            state: Mutex::new(State {
                want: true,
                run: None,
                last_status: Arc::new(RecorderStatus::default()),
                stop_requested: false,
                paused: false,
                starting: false,
                idle_ops: 0,
                carried: (0, 0, 0),
            }),
            changed: Condvar::new(),
        }
    }
}

/// A footage operation in progress while no run holds the footage directory.
pub struct IdleOp<'a>(&'a RecordSwitch);

impl Drop for IdleOp<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.idle_ops = st.idle_ops.saturating_sub(1);
        self.0.changed.notify_all();
    }
}

impl RecordSwitch {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Run loop: a run is about to start (waits for footage operations to finish).
    pub fn begin_run(&self) {
        let mut st = self.lock();
        while st.idle_ops > 0 {
            st = match self.changed.wait(st) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
        }
        st.starting = true;
        st.paused = false;
        st.want = true;
    }

    /// Pipeline: the run's writer and keeper are up. A record off that came while it
    /// started stops it at once.
    pub fn attach(&self, run: LiveRun) {
        let mut st = self.lock();
        let before = st.last_status.snapshot();
        if !Arc::ptr_eq(&st.last_status, &run.status) {
            st.carried.0 += before.frames_synced;
            st.carried.1 += before.frames_dropped;
            st.carried.2 += before.segments_closed;
        }
        st.last_status = run.status.clone();
        st.starting = false;
        st.stop_requested = !st.want && run.control.try_send(Control::Stop).is_ok();
        st.run = Some(run);
        self.changed.notify_all();
    }

    /// Pipeline: the run's writer has ended. True when record off ended it.
    pub fn detach(&self) -> bool {
        let mut st = self.lock();
        st.run = None;
        st.starting = false;
        let asked = std::mem::take(&mut st.stop_requested);
        self.changed.notify_all();
        asked
    }

    /// Run loop: a run ended or failed to start; `paused` when it waits for record on.
    pub fn end_run(&self, paused: bool) {
        let mut st = self.lock();
        st.starting = false;
        st.paused = paused;
        self.changed.notify_all();
    }

    /// Run loop: wait, paused, until record on (true) or until `term` is set (false).
    /// `tick` runs about every half second meanwhile (systemd pings).
    pub fn wait_for_on(&self, term: &AtomicBool, tick: &mut dyn FnMut()) -> bool {
        let mut st = self.lock();
        loop {
            if st.want {
                return true;
            }
            if term.load(Ordering::SeqCst) {
                return false;
            }
            st = match self.changed.wait_timeout(st, Duration::from_millis(500)) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
            drop(st);
            tick();
            st = self.lock();
        }
    }

    /// The run in progress, if any.
    pub fn live(&self) -> Option<LiveRun> {
        self.lock().run.clone()
    }

    /// The status of the run in progress, or of the last one.
    pub fn status(&self) -> Arc<RecorderStatus> {
        self.lock().last_status.clone()
    }

    /// Frames on disk, frames dropped and segments closed by the earlier runs of this
    /// process (add the current status for totals since the start).
    pub fn carried(&self) -> (u64, u64, u64) {
        self.lock().carried
    }

    /// Whether recording is wanted; false after record off until record on.
    pub fn wanted(&self) -> bool {
        self.lock().want
    }

    /// Paused by record off (no run, waiting for record on).
    pub fn paused(&self) -> bool {
        self.lock().paused
    }

    /// A footage operation may run without a recorder holding the directory: the guard
    /// keeps a run from starting until it is dropped. `None` while a run is up or starting
    /// (ask the run's keeper instead).
    pub fn idle_op(&self) -> Option<IdleOp<'_>> {
        let mut st = self.lock();
        if st.run.is_some() || st.starting {
            return None;
        }
        st.idle_ops += 1;
        Some(IdleOp(self))
    }

    /// Record on or off.
    pub fn request(&self, on: bool) -> SwitchAnswer {
        let mut st = self.lock();
        if on {
            if st.run.is_some() || st.starting {
                st.want = true;
                return SwitchAnswer::Done("recording already".into());
            }
            if st.paused {
                st.want = true;
                self.changed.notify_all();
                return SwitchAnswer::Done("recording resumes".into());
            }
            return SwitchAnswer::Refused(
                "recording was stopped by the button or the ignition: it resumes from there".into(),
            );
        }
        match st.run.clone() {
            Some(run) => {
                if st.stop_requested {
                    return SwitchAnswer::Done("recording is stopping".into());
                }
                st.want = false;
                st.stop_requested = true;
                drop(st);
                match run.control.send_timeout(Control::Stop, CONTROL_WAIT) {
                    Ok(()) => SwitchAnswer::Done(
                        "recording stops: the segment in progress is closed whole".into(),
                    ),
                    Err(_) => {
                        let mut st = self.lock();
                        st.stop_requested = false;
                        st.want = true;
                        SwitchAnswer::Refused("the recorder did not take the request".into())
                    }
                }
            }
            None if st.paused || st.starting => {
                st.want = false;
                SwitchAnswer::Done("recording is off".into())
            }
            None => SwitchAnswer::Done("not recording".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

    fn run(switch: &RecordSwitch) -> Receiver<Control> {
        let (tx, rx) = bounded(4);
        let (_ftx, frx) = bounded(1);
        switch.attach(LiveRun {
            status: Arc::new(RecorderStatus::default()),
            control: tx,
            storage: None,
            queue: frx,
        });
        rx
    }

    #[test]
    fn off_stops_the_run_and_on_resumes_it() {
        let s = RecordSwitch::default();
        s.begin_run();
        assert!(
            s.idle_op().is_none(),
            "no one-off keeper while a run starts"
        );
        let control = run(&s);
        assert!(s.idle_op().is_none());
        assert_eq!(
            s.request(true),
            SwitchAnswer::Done("recording already".into())
        );
        assert!(matches!(s.request(false), SwitchAnswer::Done(_)));
        assert!(matches!(control.try_recv(), Ok(Control::Stop)));
        assert!(!s.wanted());
        assert!(s.detach(), "the run ended because of record off");
        s.end_run(true);
        assert!(s.paused());
        {
            let _op = s.idle_op().expect("footage ops while paused");
        }
        let term = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                assert_eq!(
                    s.request(true),
                    SwitchAnswer::Done("recording resumes".into())
                );
            });
            assert!(s.wait_for_on(&term, &mut || {}));
        });
    }

    #[test]
    fn on_after_a_gpio_stop_is_refused_and_term_ends_the_wait() {
        let s = RecordSwitch::default();
        s.begin_run();
        let _c = run(&s);
        assert!(!s.detach());
        s.end_run(false);
        assert!(matches!(s.request(true), SwitchAnswer::Refused(_)));
        s.end_run(true);
        assert_eq!(
            s.request(false),
            SwitchAnswer::Done("recording is off".into())
        );
        let term = AtomicBool::new(true);
        assert!(!s.wait_for_on(&term, &mut || {}));
    }
}
