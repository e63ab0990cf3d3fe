//! One request on one connection: read its body (bounded, with a deadline), ask the
//! handler, write the answer (whole bodies, files with `sendfile(2)`, byte ranges,
//! streams chunked to HTTP/1.1 clients or delimited by close for HTTP/1.0 ones, so nothing
//! is ever buffered whole, and a head after which the connection is handed over), and say
//! whether the connection may be kept.
//!
//! It owns the wire format of an answer. It never decides what to answer.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use log::debug;

use super::http::{parse_head, reason, Body, HeadError, Request, Response, StreamSink};
use super::range::http_date;
use super::server::{Conn, Handler, Shared};

/// Bytes handed to one `sendfile` call (the stop flag is checked between calls).
const SENDFILE_CHUNK: usize = 1 << 20;
/// The server's name in answers.
const SERVER: &str = concat!("dashcam/", env!("CARGO_PKG_VERSION"));

/// Set up a connection taken over by a long-lived stream (a live viewer, an event stream):
/// writes time out after `stall`, no Nagle delay, and a small send buffer so a stalled
/// client is noticed soon instead of the kernel queueing megabytes for it. False when the
/// socket cannot be used (`who` names the stream in the log).
pub(crate) fn prepare_stream(
    stream: &TcpStream,
    stall: std::time::Duration,
    send_buffer: usize,
    who: &str,
) -> bool {
    let setup = stream
        .set_write_timeout(Some(stall))
        .and_then(|()| stream.set_nodelay(true));
    if let Err(e) = setup {
        debug!("{who}: cannot set up the socket: {e}");
        return false;
    }
    if let Err(e) = rustix::net::sockopt::set_socket_send_buffer_size(stream, send_buffer) {
        debug!("{who}: cannot limit the send buffer: {e}");
    }
    true
}

/// Answer the request whose head is at the start of `conn.buf`; true when the connection
/// may serve another one.
pub(crate) fn serve(conn: &mut Conn, handler: &dyn Handler, shared: &Arc<Shared>) -> bool {
    let head = match parse_head(&conn.buf) {
        Ok(Some(h)) => h,
        Ok(None) => return false,
        Err(e) => {
            refuse(&conn.stream, &e);
            return false;
        }
    };
    let mut request = head.request;
    request.peer = conn.peer;
    conn.buf.drain(..head.head_len);
    // The body: what came with the head, then the rest, within the I/O timeout overall.
    let want = head.body_len as usize;
    let deadline = Instant::now() + shared_io_timeout(shared);
    while conn.buf.len() < want {
        if Instant::now() >= deadline {
            return false;
        }
        let mut chunk = [0u8; 4096];
        let room = (want - conn.buf.len()).min(chunk.len());
        match conn.stream.read(&mut chunk[..room]) {
            Ok(0) => return false,
            Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    request.body = conn.buf.drain(..want).collect();
    let response = handler.handle(&request);
    let keep = request.keep_alive() && !shared.stop.load(Ordering::SeqCst);
    match write_response(&mut conn.stream, &request, response, keep, shared) {
        Ok(k) => k,
        Err(e) => {
            debug!("web: {} {}: {e}", request.method, request.path);
            false
        }
    }
}

fn shared_io_timeout(shared: &Shared) -> std::time::Duration {
    shared.limits.io_timeout
}

/// Refuse a head that cannot be served (size, syntax) and close; returns the status.
pub(crate) fn refuse_head(conn: Conn) -> u16 {
    match parse_head(&conn.buf) {
        Err(e) => refuse(&conn.stream, &e),
        Ok(_) => 400,
    }
}

fn refuse(stream: &TcpStream, e: &HeadError) -> u16 {
    let word = match e.status() {
        431 => "header_too_large",
        413 => "body_too_large",
        501 => "not_implemented",
        _ => "bad_request",
    };
    best_effort(stream, e.status(), word, &e.message());
    e.status()
}

/// A short JSON error written without waiting (a refused or timed-out connection); the
/// connection is closed after it.
pub(crate) fn best_effort(stream: &TcpStream, status: u16, word: &str, message: &str) {
    let body = serde_json::json!({ "error": word, "message": message }).to_string() + "\n";
    let text = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    let _ = stream.set_nonblocking(true);
    let mut s = stream;
    let _ = s.write(text.as_bytes());
}

/// Write `response`; returns whether the connection may be kept.
fn write_response(
    stream: &mut TcpStream,
    request: &Request,
    response: Response,
    keep: bool,
    shared: &Shared,
) -> io::Result<bool> {
    let Response {
        status,
        headers,
        body,
        hold: _hold,
    } = response;
    let len = body.len();
    let takeover = matches!(body, Body::Takeover(_));
    let streamed = len.is_none();
    let chunked = streamed && !request.http10 && !takeover;
    // An HTTP/1.0 client learns the end of a stream from the close; a connection taken
    // over is never given back.
    let keep = keep && !(streamed && request.http10) && !takeover;
    let mut head = String::with_capacity(256);
    head.push_str(&format!("HTTP/1.1 {status} {}\r\n", reason(status)));
    head.push_str(&format!(
        "Date: {}\r\nServer: {SERVER}\r\n",
        http_date(SystemTime::now())
    ));
    for (name, value) in &headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    match len {
        Some(n) if status != 304 && status != 204 => {
            head.push_str(&format!("Content-Length: {n}\r\n"));
        }
        Some(_) => {}
        None if chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        None => {}
    }
    head.push_str(if status == 101 {
        "\r\n" // the handler names the upgrade (Connection: Upgrade)
    } else if keep {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let no_body = request.is_head() || status == 304 || status == 204;
    if no_body {
        stream.write_all(head.as_bytes())?;
        return Ok(keep);
    }
    match body {
        Body::Empty => stream.write_all(head.as_bytes())?,
        Body::Bytes(b) => write_two(stream, head.as_bytes(), &b)?,
        Body::Static(b) => write_two(stream, head.as_bytes(), b)?,
        Body::File { file, start, len } => {
            stream.write_all(head.as_bytes())?;
            send_file(stream, &file, start, len, shared)?;
        }
        Body::Ranges { file, parts, tail } => {
            stream.write_all(head.as_bytes())?;
            for (part_head, start, len) in parts {
                stream.write_all(&part_head)?;
                send_file(stream, &file, start, len, shared)?;
            }
            stream.write_all(&tail)?;
        }
        Body::Takeover(take) => {
            stream.write_all(head.as_bytes())?;
            take(stream.try_clone()?);
        }
        Body::Stream(produce) => {
            stream.write_all(head.as_bytes())?;
            let mut sink = Sink {
                stream,
                chunked,
                shared,
                scratch: Vec::new(),
            };
            produce(&mut sink)?;
            if chunked {
                sink.stream.write_all(b"0\r\n\r\n")?;
            }
        }
    }
    Ok(keep)
}

/// Head and a small body in one write when they fit a packet or two.
fn write_two(stream: &mut TcpStream, head: &[u8], body: &[u8]) -> io::Result<()> {
    if body.len() <= 16 * 1024 {
        let mut all = Vec::with_capacity(head.len() + body.len());
        all.extend_from_slice(head);
        all.extend_from_slice(body);
        stream.write_all(&all)
    } else {
        stream.write_all(head)?;
        stream.write_all(body)
    }
}

/// `len` bytes of `file` from `start`, with sendfile (zero-copy); a plain copy if the file
/// system cannot.
fn send_file(
    stream: &mut TcpStream,
    file: &File,
    start: u64,
    len: u64,
    shared: &Shared,
) -> io::Result<()> {
    let mut offset = start;
    let end = start + len;
    while offset < end {
        if shared.stop.load(Ordering::SeqCst) {
            return Err(io::Error::other("server stopping"));
        }
        let want = ((end - offset) as usize).min(SENDFILE_CHUNK);
        match rustix::fs::sendfile(&*stream, file, Some(&mut offset), want) {
            Ok(0) => return Err(io::Error::other("file shorter than announced")),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
                return copy_file(stream, file, offset, end - offset);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_file(stream: &mut TcpStream, file: &File, start: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = start;
    let end = start + len;
    while offset < end {
        let want = ((end - offset) as usize).min(buf.len());
        let n = file.read_at(&mut buf[..want], offset)?;
        if n == 0 {
            return Err(io::Error::other("file shorter than announced"));
        }
        stream.write_all(&buf[..n])?;
        offset += n as u64;
    }
    Ok(())
}

struct Sink<'a> {
    stream: &'a mut TcpStream,
    chunked: bool,
    shared: &'a Shared,
    scratch: Vec<u8>,
}

impl StreamSink for Sink<'_> {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.chunked {
            // Size line, data, CRLF in one write per piece.
            self.scratch.clear();
            self.scratch
                .extend_from_slice(format!("{:x}\r\n", bytes.len()).as_bytes());
            self.scratch.extend_from_slice(bytes);
            self.scratch.extend_from_slice(b"\r\n");
            self.stream.write_all(&self.scratch)
        } else {
            self.stream.write_all(bytes)
        }
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }
}
