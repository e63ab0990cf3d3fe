//! `[[hooks]]`: a program run for each event it asked for, with the event's JSON on
//! standard input and its fields as `DASHCAM_*` environment variables.
//!
//! Each hook has a thread and a bounded queue of its own: runs of one hook never overlap,
//! a slow hook delays only itself (its queue full: later events are dropped for it,
//! counted), and no hook ever waits on the recorder or the recorder on it. A run is
//! killed (its whole process group) when it passes the hook's `timeout`; a failed run is
//! logged with its exit status and the tail of its standard error, and never retried.
//! At stop the events still queued are run, each within its timeout, all within
//! [`DRAIN_LIMIT`]. Deciding the environment ([`event_env`]) and the log line
//! ([`RunResult::describe`]) is pure; only [`run_once`] starts processes.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use log::{debug, info, warn};

use crate::events::config::HookConfig;
use crate::events::Delivered;

/// Events a hook may be behind before later ones are dropped for it.
pub const HOOK_QUEUE: usize = 64;
/// At stop, what is still queued for a hook is run for at most this long in all.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Bytes of a run's standard error kept for the log.
const STDERR_TAIL: usize = 2048;
/// How often a running hook is checked.
const POLL: Duration = Duration::from_millis(10);

/// The environment of a run: `DASHCAM_EVENT`, `DASHCAM_SEQ`, … one variable per
/// top-level field of the event (upper-case name), strings as they are, numbers and
/// booleans as JSON, arrays and objects as JSON text, null as empty.
pub fn event_env(json: &str) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    map.into_iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            (format!("DASHCAM_{}", k.to_ascii_uppercase()), value)
        })
        .collect()
}

/// How one run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RunResult {
    Ok,
    /// Exit status other than 0, or killed by a signal.
    Failed {
        status: String,
        stderr: String,
    },
    /// Killed at the timeout.
    TimedOut {
        after: Duration,
        stderr: String,
    },
    /// Could not be started.
    NotStarted(String),
}

impl RunResult {
    /// The log line for a run of `command` on event `kind` #`seq` (`None` when it went well).
    pub fn describe(&self, command: &str, kind: &str, seq: u64) -> Option<String> {
        let tail = |s: &str| {
            let s = s.trim();
            if s.is_empty() {
                String::new()
            } else {
                format!("; stderr: {}", s.replace('\n', " | "))
            }
        };
        match self {
            RunResult::Ok => None,
            RunResult::Failed { status, stderr } => Some(format!(
                "hook {command} on {kind} #{seq} failed: {status}{}",
                tail(stderr)
            )),
            RunResult::TimedOut { after, stderr } => Some(format!(
                "hook {command} on {kind} #{seq} killed after its timeout of {:.1} s{}",
                after.as_secs_f64(),
                tail(stderr)
            )),
            RunResult::NotStarted(e) => Some(format!(
                "hook {command} on {kind} #{seq} could not be started: {e}"
            )),
        }
    }
}

fn status_text(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => s.to_string(),
    }
}

/// The last [`STDERR_TAIL`] bytes of a stream, read in a thread of its own (a hook's
/// children may keep the pipe open after it ended: nobody waits for that).
fn tail_reader(mut r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let spawned = std::thread::Builder::new()
        .name("hook-stderr".into())
        .spawn(move || {
            let mut tail: Vec<u8> = Vec::new();
            let mut buf = [0u8; 1024];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&tail).into_owned());
        });
    if spawned.is_err() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = tx.send(String::new());
        return rx;
    }
    rx
}

fn kill_group(child: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
}

/// Run `command` once for `event` (with `extra` environment variables), killing it (and
/// its process group) after `timeout`.
pub fn run_once(
    command: &[String],
    event: &Delivered,
    extra: &[(String, String)],
    timeout: Duration,
) -> RunResult {
    let Some((program, args)) = command.split_first() else {
        return RunResult::NotStarted("empty command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(event_env(&event.json))
        .envs(extra.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return RunResult::NotStarted(e.to_string()),
    };
    let start = Instant::now();
    let stderr = child.stderr.take().map(tail_reader);
    if let Some(mut stdin) = child.stdin.take() {
        // Small (one event): the pipe takes it without waiting. A hook that does not read
        // its input, or has ended already, is not an error.
        let mut line = event.json.clone().into_bytes();
        line.push(b'\n');
        let _ = stdin.write_all(&line);
    }
    let tail = |rx: Option<Receiver<String>>| {
        rx.and_then(|r| r.recv_timeout(Duration::from_millis(200)).ok())
            .unwrap_or_default()
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return RunResult::Ok,
            Ok(Some(status)) => {
                return RunResult::Failed {
                    status: status_text(status),
                    stderr: tail(stderr),
                }
            }
            Ok(None) => {}
            Err(e) => {
                kill_group(&mut child);
                let _ = child.wait();
                return RunResult::Failed {
                    status: format!("cannot wait for it: {e}"),
                    stderr: tail(stderr),
                };
            }
        }
        if start.elapsed() >= timeout {
            kill_group(&mut child);
            let _ = child.wait();
            return RunResult::TimedOut {
                after: timeout,
                stderr: tail(stderr),
            };
        }
        std::thread::sleep(POLL);
    }
}

/// A hook's thread and queue.
pub struct HookWorker {
    config: HookConfig,
    tx: Option<Sender<Arc<Delivered>>>,
    dropped: Arc<AtomicU64>,
    /// Set at stop: from then on the queue is drained within [`DRAIN_LIMIT`].
    closing: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HookWorker {
    pub fn spawn(config: HookConfig) -> std::io::Result<HookWorker> {
        let (tx, rx) = crossbeam_channel::bounded::<Arc<Delivered>>(HOOK_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let closing = Arc::new(AtomicBool::new(false));
        let thread = {
            let config = config.clone();
            let dropped = dropped.clone();
            let closing = closing.clone();
            std::thread::Builder::new()
                .name("hook".into())
                .spawn(move || work(&config, &rx, &dropped, &closing))?
        };
        Ok(HookWorker {
            config,
            tx: Some(tx),
            dropped,
            closing,
            thread: Some(thread),
        })
    }

    /// Queue `event` for this hook when it asked for its kind; never waits.
    pub fn offer(&self, event: &Arc<Delivered>) {
        if !self.config.wants(event.event.kind.name()) {
            return;
        }
        let Some(tx) = &self.tx else {
            return;
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            tx.try_send(event.clone())
        {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n % 100 == 0 {
                warn!(
                    "hook {}: {n} event(s) dropped so far (it is {HOOK_QUEUE} events behind)",
                    self.config.command.join(" ")
                );
            }
        }
    }

    /// No more events: what is queued is still run (within [`DRAIN_LIMIT`]).
    pub fn close(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        self.tx.take();
    }

    /// Wait for the thread to end (after [`HookWorker::close`]).
    pub fn join(mut self) {
        self.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// [`HookWorker::close`], then [`HookWorker::join`].
    #[cfg(test)]
    pub fn finish(mut self) {
        self.close();
        self.join();
    }
}

fn work(
    config: &HookConfig,
    rx: &Receiver<Arc<Delivered>>,
    dropped: &AtomicU64,
    closing: &AtomicBool,
) {
    let name = config.command.join(" ");
    let mut drain_until: Option<Instant> = None;
    while let Ok(event) = rx.recv() {
        // The sender is gone once the role stops: from then on the queue is drained
        // within DRAIN_LIMIT.
        if drain_until.is_none() && closing.load(Ordering::SeqCst) {
            drain_until = Some(Instant::now() + DRAIN_LIMIT);
        }
        let timeout = match drain_until {
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let n = 1 + rx.len() as u64;
                    dropped.fetch_add(n, Ordering::Relaxed);
                    warn!("hook {name}: {n} event(s) not delivered: the stop took too long");
                    break;
                }
                config.timeout().min(left)
            }
            None => config.timeout(),
        };
        let kind = event.event.kind.name();
        let result = run_once(&config.command, &event, &[], timeout);
        match result.describe(&name, kind, event.event.seq) {
            Some(line) => warn!("{line}"),
            None => debug!("hook {name} on {kind} #{}: ok", event.event.seq),
        }
    }
    let n = dropped.load(Ordering::Relaxed);
    if n > 0 {
        info!("hook {name}: {n} event(s) were dropped for it in all");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::event::{EventKind, EventSink, FileRef};
    use std::path::Path;

    fn event() -> Delivered {
        let (sink, rx) = EventSink::bounded(2);
        sink.emit(EventKind::Locked(FileRef::new(
            Path::new("/f/locked/20261121-143005_000042.mp4"),
            1234,
        )));
        Delivered::new(rx.try_recv().expect("event"))
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn the_environment_has_every_top_level_field() {
        let env = event_env(&event().json);
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("(missing)")
                .to_string()
        };
        assert_eq!(get("DASHCAM_EVENT"), "locked");
        assert_eq!(get("DASHCAM_SEQ"), "1");
        assert_eq!(get("DASHCAM_NAME"), "20261121-143005_000042.mp4");
        assert_eq!(get("DASHCAM_BYTES"), "1234");
        assert!(get("DASHCAM_WALL").contains('T'));
    }

    #[test]
    fn a_run_gets_the_event_on_stdin_and_in_its_environment() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("out");
        let e = event();
        let cmd = sh(&format!(
            "cat > {0}; echo \"$DASHCAM_EVENT $DASHCAM_BYTES\" >> {0}",
            out.display()
        ));
        assert_eq!(
            run_once(&cmd, &e, &[], Duration::from_secs(10)),
            RunResult::Ok
        );
        let text = std::fs::read_to_string(&out).expect("out");
        assert_eq!(text, format!("{}\nlocked 1234\n", e.json));
    }

    #[test]
    fn failures_carry_status_and_stderr_tail_and_hangs_are_killed() {
        let e = event();
        let r = run_once(
            &sh("echo oops >&2; exit 3"),
            &e,
            &[],
            Duration::from_secs(10),
        );
        let line = r.describe("x", "locked", 1).expect("failed");
        assert!(line.contains("exit status 3"), "{line}");
        assert!(line.contains("stderr: oops"), "{line}");

        // A hang, with a child in the same group holding stderr open: both go.
        let start = Instant::now();
        let r = run_once(
            &sh("echo started >&2; sleep 30 & sleep 30"),
            &e,
            &[],
            Duration::from_millis(300),
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        match &r {
            RunResult::TimedOut { stderr, .. } => assert!(stderr.contains("started"), "{r:?}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let r = run_once(
            &["/nonexistent/hook".to_string()],
            &e,
            &[],
            Duration::from_secs(1),
        );
        assert!(matches!(r, RunResult::NotStarted(_)), "{r:?}");
    }

    #[test]
    fn a_worker_runs_one_at_a_time_and_drains_its_queue_at_finish() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("log");
        let config = HookConfig {
            on: vec!["locked".into()],
            command: sh(&format!(
                "echo start >> {0}; sleep 0.05; echo end >> {0}",
                log.display()
            )),
            timeout: 5.0,
        };
        let worker = HookWorker::spawn(config).expect("worker");
        let e = Arc::new(event());
        for _ in 0..5 {
            worker.offer(&e);
        }
        // Another kind: not for this hook.
        let (sink, rx) = EventSink::bounded(2);
        sink.emit(EventKind::CameraBack {});
        worker.offer(&Arc::new(Delivered::new(rx.try_recv().expect("e"))));
        worker.finish();
        let text = std::fs::read_to_string(&log).expect("log");
        assert_eq!(text, "start\nend\n".repeat(5), "in turn, never overlapping");
    }
}
