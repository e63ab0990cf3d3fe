//! The WebSocket viewer: the upgrade handshake of `GET /api/live.ws` (checked here, answered
//! by the routes with 101 on our own server's socket) and the viewer's thread, which
//! sends what its lane holds: for each format a text message describing it
//! (`{"type":"init","codec":…}`) and the init segment, then one binary message per
//! fragment; every second a `{"type":"clock"}` text (the Pi's wall clock, so the page can
//! measure latency across two clocks, and why there is no picture when there is none).
//!
//! Framing is `tungstenite` (sync, no TLS, without its handshake machinery: the server has
//! parsed the request) over the socket the server hands over. The thread never reads
//! from the socket: a closed page shows as a failed write. A write blocked for
//! [`super::STALL`] (the socket's send timeout; its buffer kept small) ends the viewer:
//! a stuck phone holds nothing for longer than that.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::Serialize;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::lane::Out;
use super::{client_state, ClientState, Ending};
use crate::web::http::Request;

/// How often a clock message goes out.
const CLOCK_EVERY: Duration = Duration::from_secs(1);

/// Check an upgrade request; the `Sec-WebSocket-Accept` value, or why it is refused (a
/// status and a message).
pub(crate) fn accept(req: &Request) -> Result<String, (u16, String)> {
    let has = |name: &str, token: &str| {
        req.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has("upgrade", "websocket") || !has("connection", "upgrade") {
        return Err((
            426,
            "this is a WebSocket: send Upgrade: websocket and Connection: Upgrade".into(),
        ));
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err((426, "WebSocket version 13 only".into()));
    }
    let key = req.header("sec-websocket-key").unwrap_or("");
    if key.is_empty() || key.len() > 64 {
        return Err((400, "missing or bad Sec-WebSocket-Key".into()));
    }
    Ok(accept_key(key.as_bytes()))
}

/// `Sec-WebSocket-Accept` of a key (RFC 6455 4.2.2: base64 of the SHA-1 of the key and
/// the protocol's GUID).
fn accept_key(key: &[u8]) -> String {
    use base64ct::Encoding;
    use sha1::Digest;
    let mut sha = sha1::Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64ct::Base64::encode_string(&sha.finalize())
}

/// `{"type":"init",…}`: the format whose init segment follows.
#[derive(Serialize)]
struct InitMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    codec: &'a str,
    mime: String,
    width: u32,
    height: u32,
    format: u32,
}

/// `{"type":"clock",…}`: the dashcam's clock, viewers, why there is no picture.
#[derive(Serialize)]
struct ClockMessage {
    #[serde(rename = "type")]
    kind: &'static str,
    unix_ms: i64,
    viewers: usize,
    message: Option<String>,
}

/// What the viewer's thread needs besides its lane.
pub(crate) struct Feed<'a> {
    pub lane: &'a Receiver<Out>,
    pub stopping: &'a dyn Fn() -> bool,
    /// Why there is no picture now, when there is none (for the clock messages).
    pub no_picture: &'a dyn Fn() -> Option<String>,
    pub viewers: &'a dyn Fn() -> usize,
}

/// Send until the page goes, the socket stalls, or the web role stops.
pub(crate) fn run(stream: TcpStream, feed: &Feed<'_>) -> Ending {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let mut ws = WebSocket::from_raw_socket(stream, Role::Server, Some(config));
    let mut last_clock: Option<Instant> = None;
    loop {
        if (feed.stopping)() {
            let _ = ws.close(None);
            let _ = ws.flush();
            return Ending::Stopped;
        }
        let sent = match feed.lane.recv_timeout(CLOCK_EVERY) {
            Ok(Out::Init(init)) => {
                let text = serde_json::to_string(&InitMessage {
                    kind: "init",
                    codec: &init.codec,
                    mime: format!("video/mp4; codecs=\"{}\"", init.codec),
                    width: init.width,
                    height: init.height,
                    format: init.generation,
                })
                .unwrap_or_default();
                ws.send(Message::text(text))
                    .and_then(|()| ws.send(Message::Binary(init.bytes.clone())))
            }
            Ok(Out::Fragment(bytes)) => ws.send(Message::Binary(bytes)),
            Ok(Out::Jpeg(..)) => Ok(()),
            Err(RecvTimeoutError::Timeout) => Ok(()),
            Err(RecvTimeoutError::Disconnected) => return Ending::Stopped,
        };
        if let Err(e) = sent {
            return Ending::of_ws(&e);
        }
        if last_clock.is_none_or(|t| t.elapsed() >= CLOCK_EVERY) {
            last_clock = Some(Instant::now());
            match client_state(ws.get_ref()) {
                ClientState::Quiet => {}
                ClientState::Closed => return Ending::Closed,
                ClientState::Data => {
                    // A close frame (or a ping): let tungstenite answer it.
                    let _ = ws
                        .get_ref()
                        .set_read_timeout(Some(Duration::from_millis(200)));
                    match ws.read() {
                        Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => {
                            let _ = ws.flush();
                            return Ending::Closed;
                        }
                        Ok(_) => {}
                        Err(tungstenite::Error::Io(e))
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => return Ending::of_ws(&e),
                    }
                }
            }
            let text = serde_json::to_string(&ClockMessage {
                kind: "clock",
                unix_ms: super::hub::Hub::now_unix_ms(),
                viewers: (feed.viewers)(),
                message: (feed.no_picture)(),
            })
            .unwrap_or_default();
            if let Err(e) = ws.send(Message::text(text)) {
                return Ending::of_ws(&e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/api/live.ws".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        }
    }

    #[test]
    fn the_handshake_of_rfc_6455() {
        let ok = req(&[
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        // The example of RFC 6455, section 1.3.
        assert_eq!(
            accept(&ok).expect("accepted"),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(accept(&req(&[])).expect_err("plain GET").0, 426);
        let no_key = req(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
        ]);
        assert_eq!(accept(&no_key).expect_err("no key").0, 400);
    }
}
