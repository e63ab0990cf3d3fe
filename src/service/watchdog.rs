//! The systemd notify thread: READY=1 once the first frame is on disk (or once the recorder
//! waits for a camera that is not there), WATCHDOG=1 only while frames flow and the writer
//! makes progress or while it waits for a lost camera, STATUS= the recorder's one-line
//! state, STOPPING=1 when a stop begins.
//!
//! It owns the timing of notifications. It only reads the shared status and the stop flag;
//! it never stops or restarts anything itself: a wedged recorder is restarted by systemd
//! because the pings stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{info, warn};

use super::notify::{Notifier, State};
use crate::state::control::StopReason;
use crate::state::health::{judge, Health};
use crate::state::status::RecorderStatus;

#[derive(Clone, Debug)]
pub struct WatchdogSettings {
    /// How often the status is looked at.
    pub poll: Duration,
    /// systemd's watchdog timeout (`WATCHDOG_USEC`); `None`: no WATCHDOG=1 pings.
    pub watchdog: Option<Duration>,
    /// See [`crate::state::health::progress_window`].
    pub window: Duration,
}

impl WatchdogSettings {
    /// Pings at a third of the timeout, so one late ping is not fatal.
    pub fn ping_interval(&self) -> Option<Duration> {
        self.watchdog
            .map(|w| (w / 3).max(Duration::from_millis(10)))
    }
}

/// The running notify thread.
pub struct WatchdogThread {
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<bool>>,
}

/// Start the thread. `gpio_stop`: set by the GPIO role when it stopped the recorder (a
/// pause, not the service stopping: no STOPPING=1 then).
pub fn spawn(
    notifier: Arc<Notifier>,
    status: Arc<RecorderStatus>,
    stop: Arc<AtomicBool>,
    gpio_stop: Arc<Mutex<Option<StopReason>>>,
    settings: WatchdogSettings,
) -> std::io::Result<WatchdogThread> {
    let done = Arc::new(AtomicBool::new(false));
    let handle = {
        let done = done.clone();
        std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || run(&notifier, &status, &stop, &gpio_stop, &settings, &done))?
    };
    Ok(WatchdogThread {
        done,
        handle: Some(handle),
    })
}

impl WatchdogThread {
    /// End the thread; returns whether STOPPING=1 was sent.
    pub fn finish(mut self) -> bool {
        self.done.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or(false)
    }
}

impl Drop for WatchdogThread {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

fn gpio_reason(m: &Mutex<Option<StopReason>>) -> Option<StopReason> {
    match m.lock() {
        Ok(g) => *g,
        Err(p) => *p.into_inner(),
    }
}

fn run(
    notifier: &Notifier,
    status: &RecorderStatus,
    stop: &AtomicBool,
    gpio_stop: &Mutex<Option<StopReason>>,
    settings: &WatchdogSettings,
    done: &AtomicBool,
) -> bool {
    let mut ready = false;
    let mut stopping_sent = false;
    let mut last_status = String::new();
    let mut last_ping: Option<Instant> = None;
    let mut stalled_logged = false;
    loop {
        let finished = done.load(Ordering::SeqCst);
        let now = Instant::now();
        let snap = status.snapshot();
        let health = judge(&snap, now, settings.window);
        let mut states = Vec::new();
        let mut line = status.one_line();
        if let Health::Stalled(why) = &health {
            line.push_str(&format!(" (stalled: {why})"));
        }
        if !ready && snap.frames_synced > 0 {
            ready = true;
            info!("first frame on disk: ready");
            states.push(State::Ready);
        }
        if !ready && matches!(health, Health::WaitingForSource(_)) {
            // Up and waiting for its camera: started, not failed (no restart loop).
            ready = true;
            info!("ready, waiting for the camera");
            states.push(State::Ready);
        }
        if stop.load(Ordering::SeqCst) && !stopping_sent {
            match gpio_reason(gpio_stop) {
                Some(reason) => {
                    line = format!("stopping recording ({reason:?}): {line}");
                }
                None => {
                    stopping_sent = true;
                    states.push(State::Stopping);
                }
            }
        }
        if let (Some(interval), true) = (settings.ping_interval(), ready) {
            match &health {
                Health::Recording | Health::WaitingForSource(_) => {
                    stalled_logged = false;
                    if last_ping.is_none_or(|t| now.saturating_duration_since(t) >= interval) {
                        last_ping = Some(now);
                        states.push(State::Watchdog);
                    }
                }
                Health::Stalled(why) if !stalled_logged => {
                    stalled_logged = true;
                    warn!("watchdog: not pinging systemd: {why}");
                }
                _ => {}
            }
        }
        if line != last_status {
            last_status = line.clone();
            states.push(State::Status(line));
        }
        if !states.is_empty() {
            notifier.send_or_log(&states);
        }
        if finished {
            return stopping_sent;
        }
        sleep_unless(done, settings.poll);
    }
}

/// Sleep `d`, waking early when `flag` is set.
fn sleep_unless(flag: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !flag.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}
