//! MQTT: every event published to a broker on `PREFIX/event/KIND` (QoS 1, the event's
//! JSON), and a retained `PREFIX/status` that is `online` while dashcam is connected and
//! `offline` after it stopped or vanished (the last will).
//!
//! A small MQTT 3.1.1 publisher of our own ([`packet`], [`outbox`], [`url`]), in one
//! thread, synchronous. Why not a crate: the maintained Rust clients (rumqttc, paho-mqtt)
//! are async on tokio or wrap the Paho C library with OpenSSL; either would add a runtime
//! or a C library to a Pi Zero binary that must stay under 2 MB, to use six packet types.
//! Publishing at QoS 1 without subscriptions is a small, fully specified protocol, and the
//! tests check it against a real broker (Debian's mosquitto).
//!
//! It owns the connection: connect with credentials and the will, reconnect with
//! exponential backoff ([`BACKOFF_MIN`]..[`BACKOFF_MAX`]), keep-alive pings, and the
//! bounded [`outbox::Outbox`] that keeps events while the broker is unreachable (the
//! oldest dropped past `outbox`, counted). A refused connection (bad credentials, a
//! rejected client id) is logged with the broker's reason. It never blocks the
//! dispatcher (events reach it through a bounded queue, `try_send`) and never touches the
//! footage. At stop it sends what the outbox holds for at most [`FLUSH_AT_STOP`], then
//! publishes `offline` and disconnects.

pub mod outbox;
pub mod packet;
#[cfg(feature = "mqtt-tls")]
mod tls;
pub mod url;

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use log::{debug, error, info, warn};

use crate::events::config::MqttConfig;
use crate::events::Delivered;
use outbox::{Message, Outbox};
use packet::{Connect, Incoming, Will};
use url::{BrokerUrl, Credentials};

/// Events waiting for the MQTT thread to take them into its outbox.
const INTAKE: usize = 256;
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// At stop: how long the outbox may take to drain.
pub const FLUSH_AT_STOP: Duration = Duration::from_secs(5);
/// How long the broker may take to answer CONNECT.
const CONNACK_WAIT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Socket read timeout: how often the thread looks at the intake while connected.
const POLL: Duration = Duration::from_millis(100);
/// The same unchanged connection error is logged again at most this often.
const REPEAT_LOG: Duration = Duration::from_secs(600);

/// A byte stream to the broker: TCP, or TLS over TCP.
trait Stream: Read + Write + Send {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }
}

/// Everything a connection needs, read once at start.
#[derive(Clone, Debug)]
struct Settings {
    url: BrokerUrl,
    client_id: String,
    credentials: Option<Credentials>,
    prefix: String,
    keepalive: Duration,
    outbox: usize,
    #[cfg_attr(not(feature = "mqtt-tls"), allow(dead_code))]
    ca_file: Option<std::path::PathBuf>,
}

impl Settings {
    fn status_topic(&self) -> String {
        format!("{}/status", self.prefix)
    }
}

/// The MQTT thread and its intake.
pub struct MqttClient {
    tx: Option<Sender<Arc<Delivered>>>,
    thread: Option<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
}

impl MqttClient {
    /// Start the thread (it connects in the background). Fails only on settings that
    /// cannot work: an unreadable credentials file, `mqtts://` without TLS in this build.
    pub fn spawn(config: &MqttConfig) -> Result<MqttClient, String> {
        let url = BrokerUrl::parse(&config.url).map_err(|e| format!("mqtt.url {e}"))?;
        if url.tls && !cfg!(feature = "mqtt-tls") {
            return Err(no_tls_message());
        }
        let credentials = match &config.credentials_file {
            Some(p) => Some(url::read_credentials(p)?),
            None => None,
        };
        let settings = Settings {
            url,
            client_id: config.client_id(),
            credentials,
            prefix: config.prefix.clone(),
            keepalive: Duration::from_secs(u64::from(config.keepalive)),
            outbox: config.outbox,
            ca_file: config.ca_file.clone(),
        };
        let (tx, rx) = crossbeam_channel::bounded(INTAKE);
        let dropped = Arc::new(AtomicU64::new(0));
        let thread = {
            let dropped = dropped.clone();
            std::thread::Builder::new()
                .name("mqtt".into())
                .spawn(move || Worker::new(settings, rx, dropped).run())
                .map_err(|e| format!("cannot start the MQTT thread: {e}"))?
        };
        Ok(MqttClient {
            tx: Some(tx),
            thread: Some(thread),
            dropped,
        })
    }

    /// Hand an event to the MQTT thread; never waits (a full intake drops it, counted).
    pub fn offer(&self, event: &Arc<Delivered>) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                tx.try_send(event.clone())
            {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// No more events: deliver what is queued (within [`FLUSH_AT_STOP`]), publish
    /// `offline`, disconnect.
    pub fn close(&mut self) {
        self.tx.take();
    }

    /// Wait for the thread to end (after [`MqttClient::close`]).
    pub fn join(mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The message for `mqtts://` in a build without TLS.
pub fn no_tls_message() -> String {
    "mqtts:// needs TLS, which this build of dashcam leaves out (cargo feature \"mqtt-tls\", off in the Pi build to keep the binary small): use mqtt:// on a trusted network, or rebuild with --features mqtt-tls".into()
}

/// How a connection ended.
enum End {
    /// Stopping, and the outbox is delivered (or the flush time is up).
    Stopped,
    Lost(String),
}

struct Worker {
    settings: Settings,
    rx: Receiver<Arc<Delivered>>,
    outbox: Outbox,
    /// Set when the intake closed: the time by which the outbox must be delivered.
    stop_by: Option<Instant>,
    dropped: Arc<AtomicU64>,
    last_error: Option<(String, Instant)>,
    ever_connected: bool,
}

impl Worker {
    fn new(settings: Settings, rx: Receiver<Arc<Delivered>>, dropped: Arc<AtomicU64>) -> Worker {
        Worker {
            outbox: Outbox::new(settings.outbox),
            settings,
            rx,
            stop_by: None,
            dropped,
            last_error: None,
            ever_connected: false,
        }
    }

    fn take(&mut self, event: &Delivered) {
        let message = Message {
            topic: format!("{}/event/{}", self.settings.prefix, event.event.kind.name()),
            payload: event.json.as_bytes().to_vec(),
            retain: false,
        };
        if self.outbox.push(message) {
            let n = self.outbox.dropped();
            if n == 1 || n % 100 == 0 {
                warn!(
                    "MQTT: outbox full ({} events): {n} oldest event(s) dropped so far",
                    self.settings.outbox
                );
            }
        }
    }

    /// Take what the intake holds; notices the stop.
    fn take_all(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(e) => self.take(&e),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.stopping();
                    break;
                }
            }
        }
    }

    fn stopping(&mut self) {
        if self.stop_by.is_none() {
            self.stop_by = Some(Instant::now() + FLUSH_AT_STOP);
        }
    }

    fn stop_now(&self) -> bool {
        self.stop_by
            .is_some_and(|t| self.outbox.is_empty() || Instant::now() >= t)
    }

    fn report(&mut self, why: String, refused: bool) {
        let now = Instant::now();
        let repeat = self
            .last_error
            .as_ref()
            .is_some_and(|(w, at)| *w == why && now.duration_since(*at) < REPEAT_LOG);
        if repeat {
            debug!("MQTT: {why}");
            return;
        }
        if refused {
            error!("MQTT: {why}");
        } else {
            warn!(
                "MQTT: {why}; retrying with backoff ({} event(s) kept)",
                self.outbox.len()
            );
        }
        self.last_error = Some((why, now));
    }

    fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        let mut refused = false;
        loop {
            self.take_all();
            // Stopping while the broker refuses us: waiting would not help.
            if self.stop_now() || (refused && self.stop_by.is_some()) {
                break;
            }
            match self.connect() {
                Ok(mut stream) => {
                    backoff = BACKOFF_MIN;
                    refused = false;
                    self.last_error = None;
                    let addr = self.settings.url.address();
                    if self.ever_connected {
                        info!(
                            "MQTT: connected to {addr} again; sending {} event(s)",
                            self.outbox.len()
                        );
                    } else {
                        info!("MQTT: connected to {addr}");
                    }
                    self.ever_connected = true;
                    match self.session(stream.as_mut()) {
                        End::Stopped => {
                            self.sign_off(stream.as_mut());
                            break;
                        }
                        End::Lost(why) => {
                            self.outbox.disconnected();
                            self.report(format!("connection to {addr} lost: {why}"), false);
                        }
                    }
                }
                Err((why, was_refused)) => {
                    refused = was_refused;
                    self.report(why, was_refused);
                }
            }
            // Wait before the next attempt, taking events meanwhile.
            let until = Instant::now() + backoff;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            loop {
                let now = Instant::now();
                let until = self.stop_by.map_or(until, |s| s.min(until));
                if now >= until || self.stop_now() {
                    break;
                }
                match self.rx.recv_timeout(until - now) {
                    Ok(e) => self.take(&e),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        self.stopping();
                        if refused {
                            break;
                        }
                    }
                }
            }
        }
        let left = self.outbox.len() as u64 + self.dropped.load(Ordering::Relaxed);
        let lost = self.outbox.dropped();
        if left > 0 || lost > 0 {
            warn!(
                "MQTT: {} event(s) not delivered at stop, {lost} dropped from the full outbox, {} dropped before it",
                self.outbox.len(),
                self.dropped.load(Ordering::Relaxed)
            );
        }
    }

    /// Connect, send CONNECT, wait for CONNACK. The error says whether the broker refused
    /// (a setting to fix) or could not be reached.
    fn connect(&self) -> Result<Box<dyn Stream>, (String, bool)> {
        let s = &self.settings;
        let addr = s.url.address();
        let addrs: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|e| (format!("cannot resolve {addr}: {e}"), false))?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(t) => {
                    tcp = Some(t);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            let e = last.map_or("no address".to_string(), |e| e.to_string());
            (format!("cannot connect to {addr}: {e}"), false)
        })?;
        let _ = tcp.set_nodelay(true);
        tcp.set_write_timeout(Some(WRITE_TIMEOUT))
            .map_err(|e| (format!("{addr}: {e}"), false))?;
        let mut stream: Box<dyn Stream> = if s.url.tls {
            #[cfg(feature = "mqtt-tls")]
            {
                tls::wrap(tcp, &s.url.host, s.ca_file.as_deref()).map_err(|e| (e, true))?
            }
            #[cfg(not(feature = "mqtt-tls"))]
            {
                return Err((no_tls_message(), true));
            }
        } else {
            Box::new(tcp)
        };
        let connect = Connect {
            client_id: s.client_id.clone(),
            keepalive_s: s.keepalive.as_secs().min(u64::from(u16::MAX)) as u16,
            username: s.credentials.as_ref().map(|c| c.username.clone()),
            password: s.credentials.as_ref().map(|c| c.password.clone()),
            will: Some(Will {
                topic: s.status_topic(),
                payload: b"offline".to_vec(),
                retain: true,
                qos: 1,
            }),
        };
        stream
            .write_all(&packet::connect(&connect))
            .map_err(|e| (format!("{addr}: sending CONNECT: {e}"), false))?;
        let _ = stream.set_read_timeout(Some(POLL));
        let deadline = Instant::now() + CONNACK_WAIT;
        let mut buf = Vec::new();
        loop {
            if let Some((p, used)) = packet::decode(&buf)
                .map_err(|e| (format!("{addr}: {e} instead of CONNACK"), false))?
            {
                buf.drain(..used);
                match p {
                    Incoming::ConnAck { code: 0, .. } => break,
                    Incoming::ConnAck { code, .. } => {
                        return Err((
                            format!(
                            "the broker at {addr} refused the connection: {} (CONNACK code {code})",
                            packet::connack_reason(code)
                        ),
                            true,
                        ))
                    }
                    other => return Err((format!("{addr}: {other:?} instead of CONNACK"), false)),
                }
            }
            if Instant::now() >= deadline {
                return Err((
                    format!("{addr}: no CONNACK within {} s", CONNACK_WAIT.as_secs()),
                    false,
                ));
            }
            read_some(stream.as_mut(), &mut buf)
                .map_err(|e| (format!("{addr}: waiting for CONNACK: {e}"), false))?;
        }
        // Online, retained: replaces the will's "offline" of an earlier run.
        let status = packet::publish(
            &s.status_topic(),
            b"online",
            1,
            true,
            false,
            Outbox::STATUS_ID,
        );
        stream
            .write_all(&status)
            .map_err(|e| (format!("{addr}: publishing the status: {e}"), false))?;
        Ok(stream)
    }

    fn session(&mut self, stream: &mut dyn Stream) -> End {
        let keepalive = self.settings.keepalive;
        let mut buf = Vec::new();
        let mut last_sent = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        loop {
            self.take_all();
            if self.stop_now() {
                return End::Stopped;
            }
            while let Some(s) = self.outbox.next_to_send() {
                let p = packet::publish(
                    &s.message.topic,
                    &s.message.payload,
                    1,
                    s.message.retain,
                    s.dup,
                    s.packet_id,
                );
                if let Err(e) = stream.write_all(&p) {
                    return End::Lost(format!("sending: {e}"));
                }
                last_sent = Instant::now();
            }
            if ping_sent.is_none() && last_sent.elapsed() >= keepalive / 2 {
                if let Err(e) = stream.write_all(&packet::pingreq()) {
                    return End::Lost(format!("sending a ping: {e}"));
                }
                ping_sent = Some(Instant::now());
                last_sent = Instant::now();
            }
            if ping_sent.is_some_and(|t| t.elapsed() > keepalive) {
                return End::Lost("no answer to a ping".into());
            }
            match read_some(stream, &mut buf) {
                Ok(()) => {}
                Err(e) => return End::Lost(e),
            }
            loop {
                match packet::decode(&buf) {
                    Ok(Some((p, used))) => {
                        buf.drain(..used);
                        match p {
                            Incoming::PubAck { packet_id } => {
                                self.outbox.acked(packet_id);
                            }
                            Incoming::PingResp => ping_sent = None,
                            Incoming::ConnAck { .. } | Incoming::Other { .. } => {}
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return End::Lost(format!("from the broker: {e}")),
                }
            }
        }
    }

    /// A clean goodbye: `offline` (retained), then DISCONNECT (which cancels the will).
    fn sign_off(&mut self, stream: &mut dyn Stream) {
        let status = packet::publish(
            &self.settings.status_topic(),
            b"offline",
            1,
            true,
            false,
            Outbox::STATUS_ID,
        );
        let _ = stream.write_all(&status);
        // Wait briefly for its PUBACK so the broker has it before we go.
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut buf = Vec::new();
        'wait: while Instant::now() < deadline {
            if read_some(stream, &mut buf).is_err() {
                break;
            }
            while let Ok(Some((p, used))) = packet::decode(&buf) {
                buf.drain(..used);
                if p == (Incoming::PubAck {
                    packet_id: Outbox::STATUS_ID,
                }) {
                    break 'wait;
                }
            }
        }
        let _ = stream.write_all(&packet::disconnect());
        let _ = stream.flush();
        info!(
            "MQTT: disconnected ({} status offline)",
            self.settings.status_topic()
        );
    }
}

/// Read what is there (waiting at most the socket's read timeout) into `buf`.
fn read_some(stream: &mut dyn Stream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut tmp = [0u8; 512];
    match stream.read(&mut tmp) {
        Ok(0) => Err("the broker closed the connection".into()),
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            Ok(())
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}
