//! The sd_notify protocol: state datagrams to the socket systemd names in `NOTIFY_SOCKET`.
//!
//! It owns the socket, the message format and the watchdog settings systemd passes in the
//! environment. It never decides what to say (that is [`super::watchdog`]), and it never
//! fails the recorder: without `NOTIFY_SOCKET` (not under systemd) every send is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Longest a notification may wait for room in the receiver's queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// One line of a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Start-up finished: the first frame is on disk.
    Ready,
    /// The service is shutting down.
    Stopping,
    /// Keep-alive: frames flow and the writer makes progress.
    Watchdog,
    /// A one-line human-readable state (`systemctl status`).
    Status(String),
}

impl State {
    fn line(&self) -> String {
        match self {
            State::Ready => "READY=1".into(),
            State::Stopping => "STOPPING=1".into(),
            State::Watchdog => "WATCHDOG=1".into(),
            // One line only: a newline would start a new assignment.
            State::Status(s) => format!("STATUS={}", s.replace(['\n', '\r'], " ")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET {addr:?}: {source}")]
    Address {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sending to NOTIFY_SOCKET {addr:?}: {source}")]
    Send {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

enum Target {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

/// A connection to the service manager, or nothing.
pub struct Notifier {
    target: Option<(UnixDatagram, Target, String)>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Some((_, _, addr)) => write!(f, "Notifier({addr:?})"),
            None => write!(f, "Notifier(disabled)"),
        }
    }
}

impl Notifier {
    /// Sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// From `NOTIFY_SOCKET`; disabled when it is unset or empty.
    pub fn from_env() -> Result<Notifier, NotifyError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(addr) if !addr.is_empty() => Notifier::to(&addr),
            _ => Ok(Notifier::disabled()),
        }
    }

    /// To a socket path, or an abstract socket when `addr` starts with `@`.
    pub fn to(addr: &str) -> Result<Notifier, NotifyError> {
        let err = |source| NotifyError::Address {
            addr: addr.to_string(),
            source,
        };
        let target = match addr.strip_prefix('@') {
            Some(name) => Target::Abstract(name.as_bytes().to_vec()),
            None if addr.starts_with('/') => Target::Path(addr.into()),
            None => {
                return Err(err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "neither an absolute path nor @abstract",
                )))
            }
        };
        let socket = UnixDatagram::unbound().map_err(err)?;
        // A datagram send blocks while the receiver's queue is full: never for long, so a
        // service manager that stops reading cannot wedge the recorder's threads.
        socket.set_write_timeout(Some(SEND_TIMEOUT)).map_err(err)?;
        Ok(Notifier {
            target: Some((socket, target, addr.to_string())),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Send the states in one datagram.
    pub fn send(&self, states: &[State]) -> Result<(), NotifyError> {
        let Some((socket, target, addr)) = &self.target else {
            return Ok(());
        };
        let mut msg = String::new();
        for s in states {
            msg.push_str(&s.line());
            msg.push('\n');
        }
        let err = |source| NotifyError::Send {
            addr: addr.clone(),
            source,
        };
        match target {
            Target::Path(p) => socket.send_to(msg.as_bytes(), p).map_err(err)?,
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let sa = std::os::unix::net::SocketAddr::from_abstract_name(name).map_err(err)?;
                socket.send_to_addr(msg.as_bytes(), &sa).map_err(err)?
            }
        };
        Ok(())
    }

    /// Send, logging a failure once in a while instead of returning it.
    pub fn send_or_log(&self, states: &[State]) {
        if let Err(e) = self.send(states) {
            log::debug!("{e}");
        }
    }
}

/// The watchdog timeout systemd asks for (`WATCHDOG_USEC`, for this process when
/// `WATCHDOG_PID` is set), if any.
pub fn watchdog_timeout_from_env() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid = std::env::var("WATCHDOG_PID").ok();
    parse_watchdog(&usec, pid.as_deref(), std::process::id())
}

/// `WATCHDOG_USEC` / `WATCHDOG_PID` as systemd sets them; `None` when absent, zero,
/// malformed or meant for another process.
///
/// ```
/// use std::time::Duration;
/// use dashcam::service::notify::parse_watchdog;
///
/// // WatchdogSec=30 for process 42:
/// assert_eq!(parse_watchdog("30000000", Some("42"), 42), Some(Duration::from_secs(30)));
/// // The same variables inherited by a child process are not for it.
/// assert_eq!(parse_watchdog("30000000", Some("42"), 43), None);
/// ```
pub fn parse_watchdog(usec: &str, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    let usec: u64 = usec.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_env_parsing() {
        assert_eq!(
            parse_watchdog("30000000", None, 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_watchdog("30000000", Some("7"), 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_watchdog("30000000", Some("8"), 7), None);
        assert_eq!(parse_watchdog("0", None, 7), None);
        assert_eq!(parse_watchdog("x", None, 7), None);
        assert_eq!(parse_watchdog("5", Some("nope"), 7), None);
    }

    #[test]
    fn status_is_one_line() {
        assert_eq!(
            State::Status("a\nb".into()).line(),
            "STATUS=a b".to_string()
        );
    }

    #[test]
    fn relative_address_is_refused_and_disabled_sends_nothing() {
        assert!(Notifier::to("relative/sock").is_err());
        assert!(Notifier::disabled().send(&[State::Ready]).is_ok());
    }

    #[test]
    fn datagram_reaches_a_path_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier::to(path.to_str().expect("utf8")).expect("notifier");
        n.send(&[State::Ready, State::Status("recording".into())])
            .expect("send");
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=recording\n");
    }
}
