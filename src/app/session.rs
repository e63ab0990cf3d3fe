//! The whole life of `dashcam run`: the web role started once and kept through every
//! recording run, and the loop of runs: record again after a GPIO park, and after record
//! off from the phone wait, paused, for record on (pinging systemd's watchdog meanwhile,
//! ending at once on SIGINT/SIGTERM).
//!
//! It owns that loop and the order of start and stop (web first up, last down), the one
//! live tap that every run's writer offers frames to and the web role's live view takes
//! them from, and the one [`SessionEvents`] every run's events role uses (so the page's
//! `GET /api/events` and the newest still survive record off/on). Each run
//! is [`super::pipeline::run_with`]; a web role that cannot start is logged and left out,
//! never a reason not to record.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use log::{error, info};

use crate::app::pipeline::{self, RunOutcome};
use crate::app::switch::RecordSwitch;
use crate::app::web_backend::FootageBackend;
use crate::app::AfterRun;
use crate::config::Config;
use crate::events::SessionEvents;
use crate::service::notify::{self, Notifier, State};
use crate::state::live::LiveTap;
use crate::web::WebServer;

/// Frames the writer may have handed to the live view and not yet taken.
const LIVE_QUEUE: usize = 8;

/// Record until the input ends, a signal comes, or a GPIO stop is not undone.
pub fn record(config: &Config) -> Result<RunOutcome> {
    let switch = Arc::new(RecordSwitch::default());
    // One hand-off for the whole process: every run's writer offers to it.
    let live = (config.web.enabled && config.web.live).then(|| Arc::new(LiveTap::new(LIVE_QUEUE)));
    // One event queue, one set of live subscribers, one newest still for every run.
    let events = SessionEvents::new();
    let web = start_web(config, &switch, live.clone(), &events);
    let result = run_loop(config, &switch, live.as_ref(), &events);
    events.close();
    if let Some(w) = web {
        w.stop();
    }
    result
}

fn start_web(
    config: &Config,
    switch: &Arc<RecordSwitch>,
    live: Option<Arc<LiveTap>>,
    events: &SessionEvents,
) -> Option<WebServer> {
    if !config.web.enabled {
        return None;
    }
    let backend = Arc::new(FootageBackend::new(config, switch.clone(), events.clone()));
    match WebServer::start(&config.web, backend, live) {
        Ok(w) => {
            info!("web: serving the phone page on http://{}/", w.local_addr());
            Some(w)
        }
        Err(e) => {
            error!("{e}; recording without the phone page");
            None
        }
    }
}

fn run_loop(
    config: &Config,
    switch: &RecordSwitch,
    live: Option<&Arc<LiveTap>>,
    events: &SessionEvents,
) -> Result<RunOutcome> {
    loop {
        switch.begin_run();
        let outcome = match pipeline::run_with(config, Some(switch), live, events) {
            Ok(o) => o,
            Err(e) => {
                switch.end_run(false);
                return Err(e);
            }
        };
        match outcome.after {
            AfterRun::RecordAgain => {
                switch.end_run(false);
                info!("recording again");
            }
            AfterRun::RecordOff => {
                switch.end_run(true);
                info!("recording off (from the phone page); waiting for record on");
                if !wait_paused(switch) {
                    return Ok(outcome);
                }
                info!("record on: recording again");
            }
            AfterRun::Exit => {
                switch.end_run(false);
                return Ok(outcome);
            }
        }
    }
}

/// Wait for record on while paused; false when SIGINT/SIGTERM ended the wait.
fn wait_paused(switch: &RecordSwitch) -> bool {
    let term = Arc::new(AtomicBool::new(false));
    let ids: Vec<_> = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]
        .into_iter()
        .filter_map(|sig| signal_hook::flag::register(sig, term.clone()).ok())
        .collect();
    let notifier = Notifier::from_env().unwrap_or_else(|_| Notifier::disabled());
    let ping = notify::watchdog_timeout_from_env().map(|w| (w / 3).max(Duration::from_millis(10)));
    notifier.send_or_log(&[State::Status(
        "recording off (from the phone page); record on resumes".into(),
    )]);
    let mut last_ping: Option<Instant> = None;
    let mut tick = || {
        if let Some(interval) = ping {
            if last_ping.is_none_or(|t| t.elapsed() >= interval) {
                last_ping = Some(Instant::now());
                notifier.send_or_log(&[State::Watchdog]);
            }
        }
    };
    tick();
    let on = switch.wait_for_on(&term, &mut tick);
    for id in ids {
        signal_hook::low_level::unregister(id);
    }
    if !on {
        info!("signal while recording was off: exiting");
        notifier.send_or_log(&[State::Stopping]);
    }
    on
}
