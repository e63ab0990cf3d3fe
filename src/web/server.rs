//! The HTTP server: one listener thread that accepts connections and waits for complete
//! request heads with `poll(2)`, and a fixed pool of worker threads that answer them.
//!
//! It owns the limits: at most `max_connections` open (more are answered 503 and closed
//! at once), a request head within `header_timeout` of the connection or the previous
//! answer (slow-loris clients are dropped with 408; idle keep-alive connections simply
//! closed), [`MAX_HEAD`] bytes of head, `io_timeout` on every blocking read and write, a
//! fixed number of workers (an idle or slow client never holds one while it sends its
//! head), and a clean stop that shuts every open socket down so no worker stays blocked.
//! Worker threads run at a lower CPU and I/O priority than the recorder. It never
//! interprets a request: [`super::conn`] answers one, the [`Handler`] decides what.
//!
//! Why not tiny_http: 0.12 (2023) grows a header line without bound (measured: one client
//! sending a 200 MiB header line took its RSS to 52 MB), spawns a thread per connection
//! without a cap, sets no socket timeouts, stops accepting for good after one `accept`
//! error (EMFILE), and buffers endless bodies for HTTP/1.0 clients. Each of these is a
//! requirement here, so the connection handling is this file plus `httparse` for the
//! grammar.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use log::{debug, warn};
use rustix::event::{poll, PollFd, PollFlags};

use super::conn;
use super::http::{parse_head, Request, Response, MAX_HEAD};

/// How much lower than the recorder the web threads run (nice levels).
const NICE_DELTA: i32 = 10;
/// Stack of each web thread (they keep little on the stack).
const STACK: usize = 256 * 1024;
/// Requests waiting for a free worker, at most; more are answered 503.
const QUEUE: usize = 64;

/// What answers requests.
pub trait Handler: Send + Sync {
    fn handle(&self, request: &Request) -> Response;
    /// A refusal the listener answered itself (503, 408, 431, 400), for the metrics.
    fn count(&self, _status: u16) {}
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub workers: usize,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub io_timeout: Duration,
}

/// State shared by the listener and the workers.
pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    open: AtomicUsize,
    next_id: AtomicUsize,
    /// Clones of the sockets being answered, to shut them down on stop.
    busy: Mutex<HashMap<usize, TcpStream>>,
    pub(crate) limits: Limits,
}

/// An open connection: its socket, bytes read but not yet used, and its place in the
/// connection count (given back when it is dropped).
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: Vec<u8>,
    pub(crate) peer: Option<IpAddr>,
    id: usize,
    shared: Arc<Shared>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut b) = self.shared.busy.lock() {
            b.remove(&self.id);
        }
    }
}

pub struct Server {
    shared: Arc<Shared>,
    wake: UnixStream,
    threads: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

impl Server {
    /// Start serving `listener` (already bound) with `handler`.
    pub fn start(
        listener: TcpListener,
        limits: Limits,
        handler: Arc<dyn Handler>,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            next_id: AtomicUsize::new(0),
            busy: Mutex::new(HashMap::new()),
            limits: limits.clone(),
        });
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        let (job_tx, job_rx) = bounded::<Conn>(QUEUE);
        let (back_tx, back_rx) = unbounded::<Conn>();
        let mut threads = Vec::new();
        for i in 0..limits.workers {
            let jobs = job_rx.clone();
            let back = back_tx.clone();
            let wake = wake_tx.try_clone()?;
            let handler = handler.clone();
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("web-{i}"))
                    .stack_size(STACK)
                    .spawn(move || {
                        lower_priority();
                        worker(&jobs, &back, &wake, handler.as_ref(), &shared);
                    })?,
            );
        }
        drop(back_tx);
        {
            let shared = shared.clone();
            let handler = handler.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("web-listen".into())
                    .stack_size(STACK)
                    .spawn(move || {
                        lower_priority();
                        listen(
                            &listener,
                            &wake_rx,
                            &back_rx,
                            job_tx,
                            &shared,
                            handler.as_ref(),
                        );
                    })?,
            );
        }
        Ok(Server {
            shared,
            wake: wake_tx,
            threads,
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop: no new connections, every open one shut down, every thread joined.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = (&self.wake).write(&[1]);
        if let Ok(busy) = self.shared.busy.lock() {
            for s in busy.values() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                warn!("a web thread panicked");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop_now();
        }
    }
}

/// Run this thread below the recorder: nice +10 (which also lowers its I/O priority
/// under the CFQ/BFQ schedulers when no explicit class is set).
pub(crate) fn lower_priority() {
    let tid = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(tid), (now + NICE_DELTA).min(19)) {
        debug!("cannot lower the web thread's priority: {e}");
    }
}

/// A connection waiting for its next request head.
struct Waiting {
    conn: Conn,
    deadline: Instant,
}

/// The listener thread: accept, wait for heads, hand complete ones to the workers.
fn listen(
    listener: &TcpListener,
    wake: &UnixStream,
    back: &Receiver<Conn>,
    jobs: Sender<Conn>,
    shared: &Arc<Shared>,
    handler: &dyn Handler,
) {
    let limits = &shared.limits;
    let mut waiting: Vec<Waiting> = Vec::new();
    let mut scratch = vec![0u8; MAX_HEAD];
    while !shared.stop.load(Ordering::SeqCst) {
        // Connections the workers are done with, kept alive.
        while let Ok(conn) = back.try_recv() {
            if conn.stream.set_nonblocking(true).is_err() {
                continue;
            }
            match head_state(&conn.buf) {
                HeadState::Complete => dispatch(conn, &jobs, handler),
                HeadState::Refused => handler.count(conn::refuse_head(conn)),
                HeadState::Incomplete => waiting.push(Waiting {
                    conn,
                    deadline: Instant::now() + limits.header_timeout,
                }),
            }
        }
        let now = Instant::now();
        waiting.retain_mut(|w| {
            if now < w.deadline {
                return true;
            }
            if !w.conn.buf.is_empty() {
                handler.count(408);
                conn::best_effort(
                    &w.conn.stream,
                    408,
                    "request_timeout",
                    "the request head did not arrive in time",
                );
            }
            false
        });
        let timeout = waiting
            .iter()
            .map(|w| w.deadline.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        let (ready_listener, ready): (bool, Vec<bool>) = {
            let mut fds = Vec::with_capacity(waiting.len() + 2);
            fds.push(PollFd::new(wake, PollFlags::IN));
            fds.push(PollFd::new(listener, PollFlags::IN));
            for w in &waiting {
                fds.push(PollFd::from_borrowed_fd(
                    w.conn.stream.as_fd(),
                    PollFlags::IN,
                ));
            }
            match poll(&mut fds, Some(&ts)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    warn!("web: poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            let hit = |f: &PollFd| !f.revents().is_empty();
            (hit(&fds[1]), fds[2..].iter().map(hit).collect())
        };
        drain(wake);
        // Heads that arrived (iterate backwards so removal keeps the indexes valid).
        for i in (0..ready.len()).rev() {
            if !ready[i] {
                continue;
            }
            let w = &mut waiting[i];
            let room = MAX_HEAD.saturating_sub(w.conn.buf.len()).max(1);
            match (&w.conn.stream).read(&mut scratch[..room]) {
                Ok(0) => {
                    waiting.swap_remove(i);
                }
                Ok(n) => {
                    w.conn.buf.extend_from_slice(&scratch[..n]);
                    match head_state(&w.conn.buf) {
                        HeadState::Incomplete => {}
                        HeadState::Complete => {
                            let w = waiting.swap_remove(i);
                            dispatch(w.conn, &jobs, handler);
                        }
                        HeadState::Refused => {
                            let w = waiting.swap_remove(i);
                            handler.count(conn::refuse_head(w.conn));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    waiting.swap_remove(i);
                }
            }
        }
        if ready_listener {
            accept_all(listener, &mut waiting, shared, handler);
        }
    }
}

enum HeadState {
    Incomplete,
    Complete,
    Refused,
}

fn head_state(buf: &[u8]) -> HeadState {
    if buf.is_empty() {
        return HeadState::Incomplete;
    }
    match parse_head(buf) {
        Ok(None) => HeadState::Incomplete,
        Ok(Some(_)) => HeadState::Complete,
        Err(_) => HeadState::Refused,
    }
}

fn dispatch(conn: Conn, jobs: &Sender<Conn>, handler: &dyn Handler) {
    match jobs.try_send(conn) {
        Ok(()) => {}
        Err(TrySendError::Full(c)) | Err(TrySendError::Disconnected(c)) => {
            handler.count(503);
            conn::best_effort(
                &c.stream,
                503,
                "busy",
                "too many requests at once; try again",
            );
        }
    }
}

fn drain(wake: &UnixStream) {
    let mut b = [0u8; 64];
    while let Ok(n) = (&*wake).read(&mut b) {
        if n == 0 {
            break;
        }
    }
}

fn accept_all(
    listener: &TcpListener,
    waiting: &mut Vec<Waiting>,
    shared: &Arc<Shared>,
    handler: &dyn Handler,
) {
    let limits = &shared.limits;
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE and friends: log, back off a little, keep serving.
                warn!("web: accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                return;
            }
        };
        if shared.open.load(Ordering::SeqCst) >= limits.max_connections {
            let _ = stream.set_nonblocking(true);
            handler.count(503);
            conn::best_effort(&stream, 503, "busy", "too many connections; try again");
            continue;
        }
        let configured = stream
            .set_nonblocking(true)
            .and_then(|()| stream.set_nodelay(true))
            .and_then(|()| stream.set_read_timeout(Some(limits.io_timeout)))
            .and_then(|()| stream.set_write_timeout(Some(limits.io_timeout)));
        if let Err(e) = configured {
            debug!("web: cannot set up a connection from {peer}: {e}");
            continue;
        }
        shared.open.fetch_add(1, Ordering::SeqCst);
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        waiting.push(Waiting {
            conn: Conn {
                stream,
                buf: Vec::new(),
                peer: Some(peer.ip()),
                id,
                shared: shared.clone(),
            },
            deadline: Instant::now() + limits.header_timeout,
        });
    }
}

/// A worker: answer a connection's request, then give the connection back (keep-alive)
/// or close it.
fn worker(
    jobs: &Receiver<Conn>,
    back: &Sender<Conn>,
    wake: &UnixStream,
    handler: &dyn Handler,
    shared: &Arc<Shared>,
) {
    while let Ok(mut conn) = jobs.recv() {
        if shared.stop.load(Ordering::SeqCst) {
            continue;
        }
        if conn.stream.set_nonblocking(false).is_err() {
            continue;
        }
        if let (Ok(clone), Ok(mut busy)) = (conn.stream.try_clone(), shared.busy.lock()) {
            busy.insert(conn.id, clone);
        }
        let keep = conn::serve(&mut conn, handler, shared);
        if let Ok(mut busy) = shared.busy.lock() {
            busy.remove(&conn.id);
        }
        if keep && !shared.stop.load(Ordering::SeqCst) && back.send(conn).is_ok() {
            let _ = (&*wake).write(&[1]);
        }
    }
}
