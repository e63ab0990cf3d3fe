//! After the GPIO role stopped recording: wait, parked, for the ignition or a button press
//! to record again, run the shutdown command when it is due, and keep systemd informed.
//!
//! It owns that wait only. It never records, and it ends at once on SIGINT/SIGTERM (the
//! caller passes the flag those set).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::gpio::shutdown::run_shutdown_command;
use crate::gpio::{GpioLines, Input, StopReason};
use crate::service::notify::{Notifier, State};

/// What the process does after a recording run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AfterRun {
    /// Exit (end of input, a signal, or a stop nobody undoes).
    #[default]
    Exit,
    /// The GPIO role stopped recording and the ignition or the button asked for it again.
    RecordAgain,
    /// Record off from the phone page stopped this run: wait for record on.
    RecordOff,
}

#[derive(Clone, Debug)]
pub struct ParkSettings {
    pub shutdown_command: Vec<String>,
    pub shutdown_delay: Duration,
    /// WATCHDOG=1 interval while parked (the process is healthy, just not recording).
    pub ping: Option<Duration>,
}

pub fn park(
    lines: &mut dyn GpioLines,
    reason: StopReason,
    settings: &ParkSettings,
    notifier: &Notifier,
    term: &AtomicBool,
) -> AfterRun {
    let start = Instant::now();
    let mut shutdown_at = match (reason, settings.shutdown_command.is_empty()) {
        (_, true) => None,
        (StopReason::LongPress, false) => Some(start),
        (StopReason::IgnitionOff, false) => Some(start + settings.shutdown_delay),
    };
    if let Err(e) = lines.set_led(false) {
        warn!("{e}");
    }
    let what = match reason {
        StopReason::LongPress => "stopped by a long press",
        StopReason::IgnitionOff => "stopped: ignition off",
    };
    let resume_hint = if lines.has(Input::Button) {
        "; press the button to record"
    } else {
        ""
    };
    info!("{what}; waiting{resume_hint}");
    let mut last_ping: Option<Instant> = None;
    let mut last_status = String::new();
    let mut shutdown_result: Option<String> = None;
    let mut pressed = false;
    loop {
        if term.load(Ordering::SeqCst) {
            info!("signal while stopped: exiting");
            return AfterRun::Exit;
        }
        let now = Instant::now();
        if shutdown_at.is_some_and(|t| now >= t) {
            shutdown_at = None;
            let r = run_shutdown_command(&settings.shutdown_command);
            match &r {
                Ok(s) => info!("shutdown command: {s}"),
                Err(e) => warn!("shutdown command: {e}"),
            }
            shutdown_result = Some(r.unwrap_or_else(|e| e));
        }
        let mut states = Vec::new();
        if let Some(interval) = settings.ping {
            if last_ping.is_none_or(|t| now.saturating_duration_since(t) >= interval) {
                last_ping = Some(now);
                states.push(State::Watchdog);
            }
        }
        let line = match (shutdown_at, &shutdown_result) {
            (Some(t), _) => format!(
                "{what}; shutdown in {} s{resume_hint}",
                t.saturating_duration_since(now).as_secs()
            ),
            (None, Some(r)) => format!("{what}; shutdown command: {r}"),
            (None, None) => format!("{what}{resume_hint}"),
        };
        if line != last_status {
            last_status = line.clone();
            states.push(State::Status(line));
        }
        if !states.is_empty() {
            notifier.send_or_log(&states);
        }
        match lines.wait_edge(Duration::from_millis(100)) {
            Ok(Some(edge)) => match (edge.input, edge.active) {
                (Input::Ignition, true) if reason == StopReason::IgnitionOff => {
                    info!("ignition on: recording again");
                    return AfterRun::RecordAgain;
                }
                (Input::Button, true) => pressed = true,
                (Input::Button, false) if pressed => {
                    info!("button pressed: recording again");
                    return AfterRun::RecordAgain;
                }
                _ => {}
            },
            Ok(None) => {}
            Err(e) => {
                warn!("{e}");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}
