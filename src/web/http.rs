//! HTTP/1.1 messages: a request head parsed within fixed limits, and the responses the
//! handlers build.
//!
//! Parsing is pure (bytes in, a [`Request`] or a refusal out) and uses `httparse` for the
//! grammar; this file adds the limits (head size, header count, body size), percent
//! decoding and the refusal of dot segments, so a path is only ever a name to look up.
//! It never touches a socket: [`super::conn`] reads and writes.

use std::fs::File;

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 48;
/// Largest request body accepted (JSON requests only).
pub const MAX_BODY: u64 = 64 * 1024;

/// A request, its body read.
#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    /// The decoded path, without the query.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub http10: bool,
    /// Header names in lower case, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client's address (for logs and the login limit).
    pub peer: Option<std::net::IpAddr>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept open after this request.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").map(str::to_ascii_lowercase);
        match conn.as_deref() {
            Some(c) if c.split(',').any(|t| t.trim() == "close") => false,
            Some(c) if self.http10 => c.split(',').any(|t| t.trim() == "keep-alive"),
            _ => !self.http10,
        }
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Why a request head was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// 431: the head or a header is too large, or there are too many headers.
    TooLarge,
    /// 413: the announced body is too large.
    BodyTooLarge,
    /// 501: a body in a transfer coding (chunked requests are not accepted).
    Unsupported(String),
    /// 400.
    Bad(String),
}

impl HeadError {
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge => 431,
            HeadError::BodyTooLarge => 413,
            HeadError::Unsupported(_) => 501,
            HeadError::Bad(_) => 400,
        }
    }

    pub fn message(&self) -> String {
        match self {
            HeadError::TooLarge => format!(
                "request head too large (at most {MAX_HEAD} bytes and {MAX_HEADERS} headers)"
            ),
            HeadError::BodyTooLarge => format!("request body too large (at most {MAX_BODY} bytes)"),
            HeadError::Unsupported(m) | HeadError::Bad(m) => m.clone(),
        }
    }
}

/// A parsed head: the request without its body, the head's length in the buffer and the
/// body length announced.
#[derive(Debug)]
pub struct Head {
    pub request: Request,
    pub head_len: usize,
    pub body_len: u64,
}

/// Parse a request head from the start of `buf`. `Ok(None)`: incomplete, read more
/// (unless `buf` is already [`MAX_HEAD`] long: then it is refused).
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Bad(format!("malformed request: {e}"))),
    };
    if head_len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("");
    let http10 = req.version == Some(0);
    let mut out_headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HeadError::Bad(format!("header {} is not text", h.name)))?;
        out_headers.push((h.name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let (path, query) = split_target(target)?;
    let mut request = Request {
        method,
        path,
        query,
        http10,
        headers: out_headers,
        body: Vec::new(),
        peer: None,
    };
    if !http10 && request.header("host").is_none() {
        return Err(HeadError::Bad("HTTP/1.1 request without Host".into()));
    }
    if request.header("transfer-encoding").is_some() {
        return Err(HeadError::Unsupported(
            "request bodies in a transfer coding are not accepted; send Content-Length".into(),
        ));
    }
    let lengths: Vec<&str> = request
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    let body_len = match lengths.as_slice() {
        [] => 0,
        [one] => one
            .parse::<u64>()
            .map_err(|_| HeadError::Bad(format!("bad Content-Length {one:?}")))?,
        _ => return Err(HeadError::Bad("more than one Content-Length".into())),
    };
    if body_len > MAX_BODY {
        return Err(HeadError::BodyTooLarge);
    }
    request.body = Vec::new();
    Ok(Some(Head {
        request,
        head_len,
        body_len,
    }))
}

/// Split a request target into the decoded path and query pairs. Only origin-form targets
/// (`/…`) are accepted; dot segments, backslashes and NUL are refused, so a path is a
/// plain name and never climbs anywhere.
fn split_target(target: &str) -> Result<(String, Vec<(String, String)>), HeadError> {
    if !target.starts_with('/') {
        return Err(HeadError::Bad(format!(
            "request target {target:?} is not a path"
        )));
    }
    let (raw_path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let path = percent_decode(raw_path, false)
        .ok_or_else(|| HeadError::Bad(format!("bad escape in path {raw_path:?}")))?;
    let refused = path.contains('\\')
        || path.contains('\0')
        || path.contains("//")
        || path.split('/').any(|s| s == "." || s == "..");
    if refused {
        return Err(HeadError::Bad(format!("path {path:?} is not allowed")));
    }
    let mut query = Vec::new();
    if let Some(q) = raw_query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k, true)
                .ok_or_else(|| HeadError::Bad(format!("bad escape in query {pair:?}")))?;
            let v = percent_decode(v, true)
                .ok_or_else(|| HeadError::Bad(format!("bad escape in query {pair:?}")))?;
            query.push((k, v));
        }
    }
    Ok((path, query))
}

/// Decode `%XX` escapes (and `+` as a space in a query); `None` for a bad escape or a
/// result that is not UTF-8.
pub fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let s = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(s, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Escape a file name for a `Content-Disposition` filename*= value (RFC 5987).
pub fn percent_encode_filename(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A response body.
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    Static(&'static [u8]),
    /// `len` bytes of `file` from `start` (sent with sendfile).
    File {
        file: File,
        start: u64,
        len: u64,
    },
    /// `multipart/byteranges`: for each part its header and its slice, then the closing
    /// delimiter.
    Ranges {
        file: File,
        parts: Vec<RangePart>,
        tail: Vec<u8>,
    },
    /// Produced while it is sent (the replay): chunked to HTTP/1.1 clients, delimited by
    /// closing the connection for HTTP/1.0 ones.
    Stream(Producer),
    /// The connection itself, after the head (the live view: a WebSocket after `101`, an
    /// endless multipart stream delimited by the close): never kept alive.
    Takeover(Takeover),
}

/// What takes a connection over (it returns at once; the socket is its own from then on).
pub type Takeover = Box<dyn FnOnce(std::net::TcpStream) + Send>;

/// What writes a streamed body.
pub type Producer = Box<dyn FnOnce(&mut dyn StreamSink) -> std::io::Result<()> + Send>;

/// One part of a `multipart/byteranges` body: its header, then `len` bytes from `start`.
pub type RangePart = (Vec<u8>, u64, u64);

impl Body {
    /// The length, when known before sending.
    pub fn len(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Bytes(b) => Some(b.len() as u64),
            Body::Static(b) => Some(b.len() as u64),
            Body::File { len, .. } => Some(*len),
            Body::Ranges { parts, tail, .. } => Some(
                parts
                    .iter()
                    .map(|(h, _, l)| h.len() as u64 + l)
                    .sum::<u64>()
                    + tail.len() as u64,
            ),
            Body::Stream(_) | Body::Takeover(_) => None,
        }
    }
}

/// Where a streamed body goes: each `send` is one piece on the wire, flushed.
pub trait StreamSink {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// The server is stopping: end the stream.
    fn stopping(&self) -> bool;
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// Kept until the body has been sent (a slot in the stream limit).
    pub hold: Option<Box<dyn Send>>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: Body) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body,
            hold: None,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        let mut r = Response::new(status, "application/json", Body::Bytes(body));
        r.headers.push(("Cache-Control", "no-store".into()));
        r
    }

    /// `{"error": word, "message": text}` with `status`.
    pub fn error(status: u16, word: &str, message: &str) -> Response {
        Response::json(
            status,
            &serde_json::json!({ "error": word, "message": message }),
        )
    }

    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
            hold: None,
        }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, HeadError> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn parses_a_get_with_query_and_headers() {
        let h = head("GET /api/segments?kind=locked&from=2026-11-21T14%3A30%3A05 HTTP/1.1\r\nHost: 10.42.0.1:8080\r\nRange: bytes=0-9\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(h.request.method, "GET");
        assert_eq!(h.request.path, "/api/segments");
        assert_eq!(h.request.query("kind"), Some("locked"));
        assert_eq!(h.request.query("from"), Some("2026-11-21T14:30:05"));
        assert_eq!(h.request.header("range"), Some("bytes=0-9"));
        assert_eq!(h.body_len, 0);
        assert!(h.request.keep_alive());
    }

    #[test]
    fn incomplete_then_too_large() {
        assert!(head("GET / HTTP/1.1\r\nHost: x\r\n").expect("ok").is_none());
        let big = format!("GET / HTTP/1.1\r\nX-A: {}", "a".repeat(MAX_HEAD));
        assert_eq!(head(&big).err(), Some(HeadError::TooLarge));
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect();
        let text = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        assert_eq!(head(&text).err(), Some(HeadError::TooLarge));
    }

    #[test]
    fn refuses_traversal_in_every_spelling() {
        for target in [
            "/footage/../etc/passwd",
            "/footage/%2e%2e/etc/passwd",
            "/footage/%2E%2E%2Fetc%2Fpasswd",
            "/footage/..%5c..%5cetc",
            "/footage/.",
            "//etc/passwd",
            "/footage/a%00b",
            "/footage/%zz",
            "http://evil/footage/x",
        ] {
            let text = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
            match head(&text) {
                Err(HeadError::Bad(_)) => {}
                other => panic!("{target}: {other:?}"),
            }
        }
    }

    #[test]
    fn bodies_need_a_sane_length() {
        let ok = head("POST /api/lock HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(ok.body_len, 12);
        let big = format!(
            "POST /api/lock HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(head(&big).err(), Some(HeadError::BodyTooLarge));
        let chunked = "POST /api/lock HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(head(chunked), Err(HeadError::Unsupported(_))));
        let two = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(head(two), Err(HeadError::Bad(_))));
        assert!(matches!(
            head("GET / HTTP/1.1\r\n\r\n"),
            Err(HeadError::Bad(_))
        ));
    }

    #[test]
    fn keep_alive_rules() {
        let r = |t: &str| head(t).expect("ok").expect("complete").request;
        assert!(!r("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(r("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
        assert!(!r("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive());
    }

    #[test]
    fn encodes_file_names() {
        assert_eq!(
            percent_encode_filename("clip_1 2.mp4"),
            "clip_1%202.mp4".to_string()
        );
    }
}
