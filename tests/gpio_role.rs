//! The GPIO role through its line interface ([`GpioLines`]): scripted button and ignition
//! edges in, and what comes out checked — requests on the writer's real control channel,
//! the stop flag, the LED's levels over time, the parked wait (shutdown command after its
//! delay, resume on ignition or button), systemd notifications while parked.
//!
//! The same role on a real GPIO character device (gpio-sim in a VM) is
//! scripts/pi/gpio-vm/; here the device is replaced, the logic and threads are the real ones.

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use dashcam::app::roles::start_with;
use dashcam::app::AfterRun;
use dashcam::config::Config;
use dashcam::gpio::{Edge, GpioError, GpioLines, Input};
use dashcam::service::notify::Notifier;
use dashcam::state::control::Control;
use dashcam::state::status::{RecorderState, RecorderStatus};

/// Lines driven by the test: edges pushed through a channel, levels set directly, LED
/// levels recorded with their times.
struct FakeLines {
    edges: Receiver<Edge>,
    levels: Arc<Mutex<HashMap<&'static str, bool>>>,
    led: Arc<Mutex<Vec<(Instant, bool)>>>,
}

fn key(i: Input) -> &'static str {
    match i {
        Input::Button => "button",
        Input::Ignition => "ignition",
    }
}

impl GpioLines for FakeLines {
    fn wait_edge(&mut self, timeout: Duration) -> Result<Option<Edge>, GpioError> {
        match self.edges.recv_timeout(timeout) {
            Ok(e) => {
                self.levels.lock().unwrap().insert(key(e.input), e.active);
                Ok(Some(e))
            }
            Err(_) => Ok(None),
        }
    }
    fn level(&mut self, input: Input) -> Result<Option<bool>, GpioError> {
        Ok(self.levels.lock().unwrap().get(key(input)).copied())
    }
    fn set_led(&mut self, on: bool) -> Result<(), GpioError> {
        self.led.lock().unwrap().push((Instant::now(), on));
        Ok(())
    }
    fn has(&self, _input: Input) -> bool {
        true
    }
}

struct Rig {
    edges: Sender<Edge>,
    led: Arc<Mutex<Vec<(Instant, bool)>>>,
    control: Receiver<Control>,
    control_tx: Sender<Control>,
    stop: Arc<AtomicBool>,
    status: Arc<RecorderStatus>,
}

fn config(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::default();
    c.gpio.enabled = true;
    c.gpio.button_line = Some(17);
    c.gpio.led_line = Some(27);
    c.gpio.ignition_line = Some(22);
    c.gpio.long_press_seconds = 0.6;
    c.gpio.stop_delay = 0.4;
    c.gpio.shutdown_delay = 0.5;
    f(&mut c);
    c.validate().expect("test config valid");
    c
}

fn rig(ignition_on: bool) -> (Rig, FakeLines) {
    let (etx, erx) = bounded(16);
    let (ctx, crx) = bounded(4);
    let led = Arc::new(Mutex::new(Vec::new()));
    let mut levels = HashMap::new();
    levels.insert("ignition", ignition_on);
    levels.insert("button", false);
    let lines = FakeLines {
        edges: erx,
        levels: Arc::new(Mutex::new(levels)),
        led: led.clone(),
    };
    (
        Rig {
            edges: etx,
            led,
            control: crx,
            control_tx: ctx,
            stop: Arc::new(AtomicBool::new(false)),
            status: Arc::new(RecorderStatus::default()),
        },
        lines,
    )
}

fn edge(input: Input, active: bool) -> Edge {
    Edge { input, active }
}

fn recording(status: &RecorderStatus) {
    let now = Instant::now();
    status.update(|s| {
        s.state = RecorderState::Recording;
        s.frames_synced += 10;
        s.last_sync = Some(now);
        s.last_frame = Some(now);
    });
}

/// Keep the status "recording" for `d` (as the writer would).
fn keep_recording(status: &RecorderStatus, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        recording(status);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn short_press_locks_the_event_and_nothing_stops() {
    let (r, lines) = rig(true);
    let cfg = config(|_| {});
    let roles = start_with(
        &cfg,
        &r.status,
        &r.control_tx,
        &r.stop,
        Arc::new(Notifier::disabled()),
        None,
        Some(Box::new(lines)),
    );
    recording(&r.status);
    r.edges.send(edge(Input::Button, true)).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    r.edges.send(edge(Input::Button, false)).unwrap();
    let got = r.control.recv_timeout(Duration::from_secs(2));
    assert!(matches!(got, Ok(Control::LockNow)), "{got:?}");
    keep_recording(&r.status, Duration::from_millis(700));
    assert!(
        !r.stop.load(Ordering::SeqCst),
        "a short press must not stop"
    );
    assert!(r.control.try_recv().is_err());
    r.status.update(|s| s.state = RecorderState::Stopped);
    assert_eq!(roles.finish(), AfterRun::Exit);
}

#[test]
fn long_press_stops_while_held_then_a_press_resumes() {
    let (r, lines) = rig(true);
    let cfg = config(|_| {});
    let roles = start_with(
        &cfg,
        &r.status,
        &r.control_tx,
        &r.stop,
        Arc::new(Notifier::disabled()),
        None,
        Some(Box::new(lines)),
    );
    recording(&r.status);
    let pressed = Instant::now();
    r.edges.send(edge(Input::Button, true)).unwrap();
    let got = r.control.recv_timeout(Duration::from_secs(3));
    let held = pressed.elapsed();
    assert!(matches!(got, Ok(Control::Stop)), "{got:?}");
    assert!(r.stop.load(Ordering::SeqCst), "stop flag not set");
    assert!(
        held >= Duration::from_millis(550) && held < Duration::from_millis(1500),
        "stop {held:?} after the press (long press 0.6 s)"
    );
    r.status.update(|s| s.state = RecorderState::Stopped);
    // The writer has closed: the roles finish and park. The release of the long press
    // must not resume; a new press does.
    let edges = r.edges.clone();
    let feeder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        edges.send(edge(Input::Button, false)).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        edges.send(edge(Input::Button, true)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        edges.send(edge(Input::Button, false)).unwrap();
    });
    let t = Instant::now();
    let after = roles.finish_with_term(Some(Arc::new(AtomicBool::new(false))));
    feeder.join().unwrap();
    assert_eq!(after, AfterRun::RecordAgain);
    assert!(
        t.elapsed() >= Duration::from_millis(650),
        "resumed on the release of the long press"
    );
}

#[test]
fn ignition_off_stops_after_the_delay_runs_the_shutdown_command_and_resumes_when_it_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("shutdown-ran");
    let (r, lines) = rig(true);
    let cfg = config(|c| {
        c.gpio.shutdown_command = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("date +%s.%N > '{}'", marker.display()),
        ];
    });
    // systemd notifications while parked, on a real datagram socket.
    let sock_path = tmp.path().join("notify");
    let heard = collect(UnixDatagram::bind(&sock_path).unwrap());
    let notifier = Notifier::to(sock_path.to_str().unwrap()).unwrap();
    let roles = start_with(
        &cfg,
        &r.status,
        &r.control_tx,
        &r.stop,
        Arc::new(notifier),
        Some(Duration::from_millis(600)),
        Some(Box::new(lines)),
    );
    recording(&r.status);
    // A short dip (engine cranking) is ignored.
    r.edges.send(edge(Input::Ignition, false)).unwrap();
    keep_recording(&r.status, Duration::from_millis(200));
    r.edges.send(edge(Input::Ignition, true)).unwrap();
    keep_recording(&r.status, Duration::from_millis(500));
    assert!(
        !r.stop.load(Ordering::SeqCst),
        "a 0.2 s dip stopped recording"
    );
    // Off for good.
    let off = Instant::now();
    r.edges.send(edge(Input::Ignition, false)).unwrap();
    let got = r.control.recv_timeout(Duration::from_secs(3));
    assert!(matches!(got, Ok(Control::Stop)), "{got:?}");
    let after_off = off.elapsed();
    assert!(
        after_off >= Duration::from_millis(350),
        "stopped {after_off:?} after the ignition went off (stop_delay 0.4 s)"
    );
    r.status.update(|s| s.state = RecorderState::Stopped);

    let edges = r.edges.clone();
    let marker2 = marker.clone();
    let feeder = std::thread::spawn(move || {
        // The shutdown command runs 0.5 s into the parked wait; the ignition returns later.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !marker2.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(800));
        edges.send(edge(Input::Ignition, true)).unwrap();
    });
    let parked = Instant::now();
    let after = roles.finish_with_term(Some(Arc::new(AtomicBool::new(false))));
    feeder.join().unwrap();
    assert_eq!(after, AfterRun::RecordAgain);
    assert!(marker.exists(), "the shutdown command did not run");
    let parked_for = parked.elapsed();
    assert!(parked_for >= Duration::from_millis(1200), "{parked_for:?}");

    std::thread::sleep(Duration::from_millis(100));
    let all = heard.lock().unwrap().clone();
    assert!(
        all.contains("STATUS=stopped: ignition off; shutdown in"),
        "no parked STATUS=: {all}"
    );
    assert!(all.contains("shutdown command: /bin/sh exited 0"), "{all}");
    // Pinged while parked (at a third of 0.6 s over > 1.2 s), and not told STOPPING.
    let pings = all.matches("WATCHDOG=1").count();
    assert!(pings >= 3, "{pings} pings: {all}");
    assert!(!all.contains("STOPPING=1"), "{all}");
}

#[test]
fn parked_wait_ends_on_a_signal_and_says_stopping() {
    let (r, lines) = rig(true);
    let cfg = config(|c| c.gpio.stop_delay = 0.0);
    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("notify");
    let heard = collect(UnixDatagram::bind(&sock_path).unwrap());
    let roles = start_with(
        &cfg,
        &r.status,
        &r.control_tx,
        &r.stop,
        Arc::new(Notifier::to(sock_path.to_str().unwrap()).unwrap()),
        None,
        Some(Box::new(lines)),
    );
    r.edges.send(edge(Input::Ignition, false)).unwrap();
    assert!(matches!(
        r.control.recv_timeout(Duration::from_secs(2)),
        Ok(Control::Stop)
    ));
    r.status.update(|s| s.state = RecorderState::Stopped);
    let term = Arc::new(AtomicBool::new(false));
    let t2 = term.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        t2.store(true, Ordering::SeqCst);
    });
    assert_eq!(roles.finish_with_term(Some(term)), AfterRun::Exit);
    std::thread::sleep(Duration::from_millis(100));
    let all = heard.lock().unwrap().clone();
    assert!(all.contains("STOPPING=1"), "{all}");
}

/// Collect what arrives on a notify socket in the background (a datagram sender blocks
/// when nobody reads).
fn collect(sock: UnixDatagram) -> Arc<Mutex<String>> {
    let got = Arc::new(Mutex::new(String::new()));
    let g = got.clone();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => g
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) if Arc::strong_count(&g) > 1 => {}
                Err(_) => return,
            }
        }
    });
    got
}

/// Count level changes of the LED within a time span.
fn led_changes(led: &[(Instant, bool)], from: Instant, to: Instant) -> (usize, Option<bool>) {
    let span: Vec<_> = led.iter().filter(|(t, _)| *t >= from && *t < to).collect();
    let last = led.iter().rfind(|(t, _)| *t < to).map(|(_, on)| *on);
    (span.len(), last)
}

#[test]
fn led_steady_while_recording_blinks_on_a_problem_off_when_stopped() {
    let (r, lines) = rig(true);
    let cfg = config(|c| c.sync_interval = 0.1);
    let roles = start_with(
        &cfg,
        &r.status,
        &r.control_tx,
        &r.stop,
        Arc::new(Notifier::disabled()),
        None,
        Some(Box::new(lines)),
    );
    // Starting (nothing on disk yet): blinking.
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(1100));
    let t1 = Instant::now();
    // Recording: steady on.
    keep_recording(&r.status, Duration::from_millis(1200));
    let t2 = Instant::now();
    // Frames stop: stalled after the 5 s window → blinking.
    std::thread::sleep(Duration::from_millis(5600));
    let t3 = Instant::now();
    std::thread::sleep(Duration::from_millis(1100));
    let t4 = Instant::now();
    r.status.update(|s| s.state = RecorderState::Stopped);
    std::thread::sleep(Duration::from_millis(300));
    let t5 = Instant::now();
    assert_eq!(roles.finish(), AfterRun::Exit);
    let led = r.led.lock().unwrap().clone();

    let (n, _) = led_changes(&led, t0, t1);
    assert!(
        n >= 3,
        "starting: {n} LED changes in 1.1 s (blinking at 2 Hz)"
    );
    let (n, last) = led_changes(&led, t1 + Duration::from_millis(300), t2);
    assert_eq!((n, last), (0, Some(true)), "recording: steady on");
    let (n, _) = led_changes(&led, t3, t4);
    assert!(n >= 3, "stalled: {n} LED changes in 1.1 s (blinking)");
    let (_, last) = led_changes(&led, t4, t5);
    assert_eq!(last, Some(false), "stopped: off");
    assert_eq!(
        led.last().map(|x| x.1),
        Some(false),
        "LED left on at the end"
    );
}
