//! The GPIO role's thread while recording: button and ignition edges in, requests to the
//! writer out, and the status LED kept in step with the recorder's health.
//!
//! It owns the lines for the run and the order of a stop it requests (reason first, then
//! the stop flag, then `Control::Stop`, like the signal handler). It never writes footage
//! and never blocks the writer: requests go through the control channel with a timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use log::{debug, error, info, warn};

use super::config::GpioConfig;
use super::controller::{Controller, Input, Request, StopReason};
use super::led;
use super::lines::GpioLines;
use crate::state::control::Control;
use crate::state::health::judge;
use crate::state::status::RecorderStatus;

/// What the role shares with the rest of the recorder.
#[derive(Clone)]
pub struct RoleLinks {
    pub status: Arc<RecorderStatus>,
    pub control: Sender<Control>,
    pub stop: Arc<AtomicBool>,
    /// Set when this role stopped the recorder, and why.
    pub stop_reason: Arc<Mutex<Option<StopReason>>>,
    /// See [`crate::state::health::progress_window`].
    pub window: Duration,
}

pub struct GpioRole {
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<Box<dyn GpioLines>>>,
}

impl GpioRole {
    pub fn spawn(
        lines: Box<dyn GpioLines>,
        cfg: &GpioConfig,
        links: RoleLinks,
    ) -> std::io::Result<GpioRole> {
        let done = Arc::new(AtomicBool::new(false));
        let controller = Controller::new(cfg.long_press(), cfg.stop_delay());
        let handle = {
            let done = done.clone();
            std::thread::Builder::new()
                .name("gpio".into())
                .spawn(move || run(lines, controller, &links, &done))?
        };
        Ok(GpioRole {
            done,
            handle: Some(handle),
        })
    }

    /// End the thread (LED off) and get the lines back.
    pub fn finish(mut self) -> Option<Box<dyn GpioLines>> {
        self.done.store(true, Ordering::SeqCst);
        self.handle.take().and_then(|h| h.join().ok())
    }
}

impl Drop for GpioRole {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

pub fn set_reason(m: &Mutex<Option<StopReason>>, r: Option<StopReason>) {
    match m.lock() {
        Ok(mut g) => *g = r,
        Err(p) => *p.into_inner() = r,
    }
}

fn act(request: Request, links: &RoleLinks) {
    match request {
        Request::LockNow => {
            info!("button: short press: locking the current event");
            if let Err(e) = links
                .control
                .send_timeout(Control::LockNow, Duration::from_secs(1))
            {
                warn!("button: the writer did not take the lock request: {e}");
            }
        }
        Request::Stop(reason) => {
            set_reason(&links.stop_reason, Some(reason));
            if links.stop.swap(true, Ordering::SeqCst) {
                // Already stopping (a signal): that stop wins.
                set_reason(&links.stop_reason, None);
                return;
            }
            match reason {
                StopReason::LongPress => info!("button: long press: stopping cleanly"),
                StopReason::IgnitionOff => info!("ignition off: stopping cleanly"),
            }
            if let Err(e) = links
                .control
                .send_timeout(Control::Stop, Duration::from_secs(5))
            {
                error!("cannot ask the writer to stop: {e}");
            }
        }
    }
}

fn run(
    mut lines: Box<dyn GpioLines>,
    mut controller: Controller,
    links: &RoleLinks,
    done: &AtomicBool,
) -> Box<dyn GpioLines> {
    let started = Instant::now();
    match lines.level(Input::Ignition) {
        Ok(level) => controller.start(level, started),
        Err(e) => warn!("{e}"),
    }
    let mut last_led = None;
    let mut failing_since: Option<Instant> = None;
    while !done.load(Ordering::SeqCst) {
        let now = Instant::now();
        let mut timeout = led::BLINK_HALF / 2;
        if let Some(d) = controller.next_deadline() {
            timeout = timeout.min(d.saturating_duration_since(now));
        }
        match lines.wait_edge(timeout) {
            Ok(Some(edge)) => {
                failing_since = None;
                debug!("gpio: {edge:?}");
                if let Some(r) = controller.on_edge(edge, Instant::now()) {
                    act(r, links);
                }
            }
            Ok(None) => failing_since = None,
            Err(e) => {
                if failing_since.is_none() {
                    error!("{e}");
                    failing_since = Some(now);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        if let Some(r) = controller.on_time(Instant::now()) {
            act(r, links);
        }
        let health = judge(&links.status.snapshot(), Instant::now(), links.window);
        let on = led::level(led::pattern(&health), started.elapsed());
        if last_led != Some(on) {
            match lines.set_led(on) {
                Ok(()) => last_led = Some(on),
                Err(e) => {
                    if last_led.is_some() || failing_since.is_none() {
                        warn!("{e}");
                    }
                    last_led = None;
                }
            }
        }
    }
    if let Err(e) = lines.set_led(false) {
        debug!("{e}");
    }
    lines
}
