//! The roles that run beside the recorder: systemd notification and its watchdog
//! ([`crate::service`]) and the optional GPIO role ([`crate::gpio`]), started and finished
//! around one recording run by [`start`] and [`Roles::finish`].
//!
//! It owns their wiring to the shared status, the control channel and the stop flag. None
//! of these roles can stop a recording from starting: a role that cannot start is logged
//! and left out.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::Sender;
use log::{error, warn};

use crate::app::park::{self, AfterRun, ParkSettings};
use crate::config::Config;
use crate::gpio::{CdevLines, GpioLines, GpioRole, RoleLinks};
use crate::service::notify::{self, Notifier, State};
use crate::service::watchdog::{self, WatchdogSettings, WatchdogThread};
use crate::state::control::Control;
use crate::state::control::StopReason;
use crate::state::health;
use crate::state::status::RecorderStatus;

/// How often the notify thread looks at the status.
const POLL: Duration = Duration::from_millis(500);

/// The roles of one recording run.
pub struct Roles {
    notifier: Arc<Notifier>,
    watchdog: Option<WatchdogThread>,
    gpio: Option<GpioRole>,
    gpio_stop: Arc<Mutex<Option<StopReason>>>,
    park: ParkSettings,
    status: Arc<RecorderStatus>,
}

/// Start the roles for a run: notification when `NOTIFY_SOCKET` is set, GPIO when
/// `[gpio] enabled`.
pub fn start(
    config: &Config,
    status: &Arc<RecorderStatus>,
    control: &Sender<Control>,
    stop: &Arc<AtomicBool>,
) -> Roles {
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        warn!("systemd notification off: {e}");
        Notifier::disabled()
    });
    let lines: Option<Box<dyn GpioLines>> = if config.gpio.enabled {
        match CdevLines::open(&config.gpio) {
            Ok(l) => {
                log::info!("GPIO role on: {l:?}");
                Some(Box::new(l))
            }
            Err(e) => {
                error!("GPIO role off: {e}");
                None
            }
        }
    } else {
        None
    };
    start_with(
        config,
        status,
        control,
        stop,
        Arc::new(notifier),
        notify::watchdog_timeout_from_env(),
        lines,
    )
}

/// [`start`] with the notifier, watchdog timeout and lines given (tests).
pub fn start_with(
    config: &Config,
    status: &Arc<RecorderStatus>,
    control: &Sender<Control>,
    stop: &Arc<AtomicBool>,
    notifier: Arc<Notifier>,
    watchdog_timeout: Option<Duration>,
    lines: Option<Box<dyn GpioLines>>,
) -> Roles {
    let window = health::progress_window(Duration::from_secs_f64(config.sync_interval));
    let settings = WatchdogSettings {
        poll: POLL.min(watchdog_timeout.map_or(POLL, |w| w / 4)),
        watchdog: watchdog_timeout,
        window,
    };
    let gpio_stop = Arc::new(Mutex::new(None));
    let watchdog = if notifier.is_enabled() {
        watchdog::spawn(
            notifier.clone(),
            status.clone(),
            stop.clone(),
            gpio_stop.clone(),
            settings.clone(),
        )
        .map_err(|e| error!("cannot start the notify thread: {e}"))
        .ok()
    } else {
        None
    };
    let gpio = lines.and_then(|lines| {
        let links = RoleLinks {
            status: status.clone(),
            control: control.clone(),
            stop: stop.clone(),
            stop_reason: gpio_stop.clone(),
            window,
        };
        GpioRole::spawn(lines, &config.gpio, links)
            .map_err(|e| error!("cannot start the GPIO thread: {e}"))
            .ok()
    });
    Roles {
        notifier,
        watchdog,
        gpio,
        gpio_stop,
        park: ParkSettings {
            shutdown_command: config.gpio.shutdown_command.clone(),
            shutdown_delay: config.gpio.shutdown_delay(),
            ping: settings.ping_interval(),
        },
        status: status.clone(),
    }
}

impl Roles {
    /// After the writer has finished: end the roles. When the GPIO role stopped the
    /// recording, wait parked (see [`park::park`]) and say whether to record again.
    pub fn finish(self) -> AfterRun {
        self.finish_with_term(None)
    }

    /// After record off from the phone page: end the roles without telling systemd that
    /// the service stops (it is a pause; [`super::session`] keeps pinging meanwhile).
    pub fn finish_paused(mut self) {
        drop(self.gpio.take().and_then(GpioRole::finish));
        if let Some(w) = self.watchdog.take() {
            w.finish();
        }
    }

    /// [`Roles::finish`] with the flag that ends a parked wait given (tests); by default
    /// SIGINT and SIGTERM set it.
    pub fn finish_with_term(mut self, term: Option<Arc<AtomicBool>>) -> AfterRun {
        let lines = self.gpio.take().and_then(GpioRole::finish);
        let reason = match self.gpio_stop.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        };
        let stopping_sent = self.watchdog.take().is_some_and(WatchdogThread::finish);
        let after = match (reason, lines) {
            (Some(reason), Some(mut lines)) => {
                let term = term.unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
                let ids: Vec<_> = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]
                    .into_iter()
                    .filter_map(|sig| signal_hook::flag::register(sig, term.clone()).ok())
                    .collect();
                let after = park::park(lines.as_mut(), reason, &self.park, &self.notifier, &term);
                for id in ids {
                    signal_hook::low_level::unregister(id);
                }
                after
            }
            _ => AfterRun::Exit,
        };
        if after == AfterRun::Exit && !(stopping_sent && reason.is_none()) {
            self.notifier
                .send_or_log(&[State::Stopping, State::Status(self.status.one_line())]);
        }
        after
    }
}
