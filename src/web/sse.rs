//! `GET /api/events`: every event of the recorder (the JSON the hooks and MQTT get) as
//! Server-Sent Events, `id:` its sequence number and `event:` its kind, for the phone page
//! to update itself instead of polling.
//!
//! Behind the same gate as the rest of the API (Host, the session when a password is
//! set), and like the live view's WebSocket same-origin only. Each stream has a thread of
//! its own (the worker hands the socket over after the head, as for a live viewer), so an
//! open page never holds a worker. The thread writes `retry:`, then each piece the
//! backend's [`EventFeed`] gives; every [`STATUS_EVERY`] an `event: status` message with
//! what `GET /api/status` says (the frame count, the last sync: what changes without an
//! event), which also keeps the connection alive; it never reads. The feed is bounded per client: a slow phone loses events for
//! itself (counted, and told in a comment), never slowing the recorder or another client.
//! A client whose socket takes nothing for [`STALL`] is dropped: a write blocked that long
//! (the send timeout, over a small send buffer) or unsent bytes that have not moved for
//! that long. At most the backend's number of subscribers at once (`503
//! too_many_subscribers` beyond). At stop every stream's socket is shut down and its
//! thread joined. It owns this endpoint and these threads; what an event says is the
//! events role's.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::api;
use super::auth;
use super::backend::{ErrorKind, EventFeed, FeedNext, WebBackend};
use super::http::{Body, Request, Response};
use super::live::{client_state, ClientState};
use super::metrics::WebCounters;

/// The status goes out this often (the page's counters move between events; proxies,
/// phones and NAT keep the connection; a gone client shows as a failed write).
pub(crate) const STATUS_EVERY: Duration = Duration::from_secs(2);
/// A client whose socket takes nothing for this long is dropped.
pub(crate) const STALL: Duration = Duration::from_secs(10);
/// How often the thread looks at the stop flag, the client and the socket's queue.
const TICK: Duration = Duration::from_secs(1);
/// Send buffer of a stream's socket: events are small; a big buffer would hide a stuck
/// client for a long time.
const SEND_BUFFER: usize = 8 * 1024;
/// Stack of a stream's thread.
const STACK: usize = 128 * 1024;
/// At stop, how long streams may take to send the last events.
const DRAIN: Duration = Duration::from_secs(1);
/// What the browser waits before it reconnects (ms).
const RETRY_MS: u32 = 3000;

/// How a stream ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    Closed,
    Stopped,
    Stalled,
    Failed(String),
}

fn ending_of(e: &std::io::Error) -> Ending {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Ending::Stalled,
        std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::NotConnected => Ending::Closed,
        _ => Ending::Failed(e.to_string()),
    }
}

/// The event streams being served.
pub(crate) struct EventStreams {
    stop: AtomicBool,
    next_id: AtomicU64,
    /// Clones of the streams' sockets, to shut them down at stop.
    sockets: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    counters: Arc<WebCounters>,
}

impl EventStreams {
    pub(crate) fn new(counters: Arc<WebCounters>) -> Arc<EventStreams> {
        Arc::new(EventStreams {
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            sockets: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            counters,
        })
    }

    /// The answer to `GET /api/events` (the gate has let it through).
    pub(crate) fn response(
        self: &Arc<Self>,
        backend: &Arc<dyn WebBackend>,
        req: &Request,
    ) -> Response {
        // Like the WebSocket: another site's page may not read this one's events.
        if let Err(m) = auth::same_origin(req) {
            return Response::error(403, "cross_origin", &m);
        }
        if self.stop.load(Ordering::SeqCst) {
            return Response::error(503, "unavailable", "the dashcam is stopping");
        }
        let feed = match backend.events() {
            Ok(f) => f,
            Err(e) if e.kind == ErrorKind::Busy => {
                return Response::error(503, "too_many_subscribers", &e.message)
                    .with("Retry-After", "10")
            }
            Err(e) => return api::failure(&e),
        };
        let me = self.clone();
        let backend = backend.clone();
        Response::new(
            200,
            "text/event-stream; charset=utf-8",
            Body::Takeover(Box::new(move |stream| me.serve(feed, backend, stream))),
        )
        .with("Cache-Control", "no-store")
        .with("X-Accel-Buffering", "no")
    }

    /// Serve one stream on `stream` (its head written) in a thread of its own.
    fn serve(
        self: &Arc<Self>,
        feed: Box<dyn EventFeed>,
        backend: Arc<dyn WebBackend>,
        stream: TcpStream,
    ) {
        if !crate::web::conn::prepare_stream(&stream, STALL, SEND_BUFFER, "event stream") {
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let (Ok(clone), Ok(mut s)) = (stream.try_clone(), self.sockets.lock()) {
            s.insert(id, clone);
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sse-{id}"))
            .stack_size(STACK)
            .spawn(move || {
                super::server::lower_priority();
                me.counters.event_streams.fetch_add(1, Ordering::Relaxed);
                let peer = stream.peer_addr().ok();
                let status = || status_message(backend.as_ref());
                let ending = run(stream, feed, &status, &me.stop, &me.counters);
                me.counters.event_streams.fetch_sub(1, Ordering::Relaxed);
                if let Ok(mut s) = me.sockets.lock() {
                    if let Some(sock) = s.remove(&id) {
                        let _ = sock.shutdown(Shutdown::Both);
                    }
                }
                match ending {
                    Ending::Stalled => {
                        me.counters
                            .event_streams_stalled
                            .fetch_add(1, Ordering::Relaxed);
                        info!(
                            "events: dropped the stream to {peer:?}: it took nothing for {} s",
                            STALL.as_secs()
                        );
                    }
                    Ending::Failed(e) => debug!("events: the stream to {peer:?} ended: {e}"),
                    Ending::Closed | Ending::Stopped => {}
                }
            });
        match spawned {
            Ok(handle) => {
                let mut threads = match self.threads.lock() {
                    Ok(t) => t,
                    Err(p) => p.into_inner(),
                };
                let mut i = 0;
                while i < threads.len() {
                    if threads[i].is_finished() {
                        let _ = threads.swap_remove(i).join();
                    } else {
                        i += 1;
                    }
                }
                threads.push(handle);
            }
            Err(e) => warn!("events: cannot start a stream's thread: {e}"),
        }
    }

    fn all_finished(&self) -> bool {
        match self.threads.lock() {
            Ok(t) => t.iter().all(JoinHandle::is_finished),
            Err(_) => true,
        }
    }

    /// Stop: every stream's socket shut down, every thread joined. Streams whose feed has
    /// closed (the session ended the events first) get [`DRAIN`] to send what they have.
    pub(crate) fn stop(&self) {
        let deadline = Instant::now() + DRAIN;
        while Instant::now() < deadline && !self.all_finished() {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(s) = self.sockets.lock() {
            for sock in s.values() {
                let _ = sock.shutdown(Shutdown::Both);
            }
        }
        let threads: Vec<_> = match self.threads.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(p) => p.into_inner().drain(..).collect(),
        };
        for t in threads {
            if t.join().is_err() {
                warn!("an event stream thread panicked");
            }
        }
    }
}

/// Bytes written to `stream` that the peer has not acknowledged yet (`TIOCOUTQ`).
fn unsent(stream: &TcpStream) -> Option<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ on a socket writes one int into `n`, which lives for the call.
    let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (r == 0 && n >= 0).then_some(n as u64)
}

/// Watches a socket's queue: stalled when bytes wait and none was taken for [`STALL`].
struct StallWatch {
    acked: u64,
    since: Instant,
}

impl StallWatch {
    /// `written` bytes so far, `unsent` of them still queued, at `now`.
    fn stalled(&mut self, written: u64, unsent: u64, now: Instant) -> bool {
        let acked = written.saturating_sub(unsent);
        if unsent == 0 || acked > self.acked {
            self.acked = acked;
            self.since = now;
            return false;
        }
        now.duration_since(self.since) >= STALL
    }
}

fn send(stream: &mut TcpStream, text: &[u8], written: &mut u64) -> Result<(), Ending> {
    stream.write_all(text).map_err(|e| ending_of(&e))?;
    *written += text.len() as u64;
    Ok(())
}

/// Send the stream until the client goes, stalls, the feed closes or the server stops.
/// `event: status` with the status JSON (one line: serde_json writes no newline).
fn status_message(backend: &dyn WebBackend) -> String {
    match serde_json::to_string(&backend.status()) {
        Ok(json) => format!("event: status\ndata: {json}\n\n"),
        Err(_) => ": status unavailable\n\n".into(),
    }
}

fn run(
    mut stream: TcpStream,
    mut feed: Box<dyn EventFeed>,
    status: &dyn Fn() -> String,
    stop: &AtomicBool,
    counters: &WebCounters,
) -> Ending {
    let mut written = 0u64;
    if let Err(e) = send(
        &mut stream,
        format!("retry: {RETRY_MS}\n\n").as_bytes(),
        &mut written,
    ) {
        return e;
    }
    let mut status_at: Option<Instant> = None;
    let mut checked = Instant::now();
    let mut watch = StallWatch {
        acked: 0,
        since: Instant::now(),
    };
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ending::Stopped;
        }
        let piece = match feed.next(TICK) {
            FeedNext::Event(text) => Some(text),
            FeedNext::Lost(n, text) => {
                counters.event_stream_lost.fetch_add(n, Ordering::Relaxed);
                Some(text)
            }
            FeedNext::Idle => None,
            FeedNext::Closed => return Ending::Stopped,
        };
        if let Some(text) = piece {
            if let Err(e) = send(&mut stream, text.as_bytes(), &mut written) {
                return e;
            }
        }
        if status_at.is_none_or(|t| t.elapsed() >= STATUS_EVERY) {
            status_at = Some(Instant::now());
            if let Err(e) = send(&mut stream, status().as_bytes(), &mut written) {
                return e;
            }
        }
        if checked.elapsed() >= TICK {
            checked = Instant::now();
            if client_state(&stream) == ClientState::Closed {
                return Ending::Closed;
            }
            if watch.stalled(written, unsent(&stream).unwrap_or(0), checked) {
                return Ending::Stalled;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_that_does_not_move_for_the_stall_time_is_a_stall() {
        let t0 = Instant::now();
        let mut w = StallWatch {
            acked: 0,
            since: t0,
        };
        assert!(!w.stalled(100, 0, t0 + STALL * 2), "nothing waits: fine");
        assert!(!w.stalled(200, 50, t0 + STALL * 2), "some taken: fine");
        assert!(!w.stalled(300, 150, t0 + STALL * 2 + STALL / 2));
        assert!(
            w.stalled(300, 150, t0 + STALL * 3),
            "nothing taken for STALL"
        );
        assert!(!w.stalled(300, 100, t0 + STALL * 3), "it moved again");
    }
}
