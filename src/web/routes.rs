//! Who gets what: the gate every request passes (Host names this machine, same origin for
//! anything that changes something, a session and its CSRF token when a password is set)
//! and the table from method and path to handler.
//!
//! It owns the order of those checks and the URL space; handlers live in [`super::api`],
//! [`super::files`], [`super::replay`] and [`super::sse`] (`GET /api/events`); stills
//! (`/api/still.jpg`, `/api/stills/NAME`) are files the backend opens by a still's name. Names in paths are looked up by the backend,
//! never joined into a file path, and a folder is never listed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::api;
use super::assets;
use super::auth::{self, Auth, Login};
use super::backend::WebBackend;
use super::files;
use super::http::{Body, Request, Response};
use super::live::{self, LiveView};
use super::metrics::{self, WebCounters};
use super::replay;
use super::server::Handler;
use super::sse::EventStreams;

/// Headers on every page asset: nothing from elsewhere, no framing, no sniffing. The live
/// view's WebSocket is named by its host (`{host}`): older Safari does not count `ws:` to
/// the page's host as `'self'`.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
style-src 'self'; script-src 'self'; connect-src 'self' ws://{host}; frame-ancestors 'none'; \
base-uri 'none'; form-action 'self'";

/// Paths and the methods they take (for 405 answers).
const METHODS: &[(&str, &str)] = &[
    ("/api/status", "GET"),
    ("/api/session", "GET"),
    ("/api/login", "POST"),
    ("/api/logout", "POST"),
    ("/api/record", "POST"),
    ("/record/on", "POST"),
    ("/record/off", "POST"),
    ("/api/segments", "GET"),
    ("/api/lock", "POST"),
    ("/api/unlock", "POST"),
    ("/api/clips", "POST"),
    ("/api/clip.mp4", "GET, HEAD"),
    ("/api/clip.avi", "GET, HEAD"),
    ("/api/clock", "POST"),
    ("/api/events", "GET"),
    ("/api/still.jpg", "GET, HEAD"),
    ("/metrics", "GET"),
];

/// A place among the streams (downloads, replays, clip streams) allowed at once.
struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct App {
    backend: Arc<dyn WebBackend>,
    auth: Auth,
    names: Vec<String>,
    public_metrics: bool,
    counters: Arc<WebCounters>,
    streams: Arc<AtomicUsize>,
    max_streams: usize,
    live: Option<Arc<LiveView>>,
    events: Arc<EventStreams>,
}

impl App {
    pub fn new(
        backend: Arc<dyn WebBackend>,
        auth: Auth,
        names: Vec<String>,
        public_metrics: bool,
        max_streams: usize,
    ) -> App {
        let counters = Arc::new(WebCounters::default());
        App {
            backend,
            auth,
            names,
            public_metrics,
            events: EventStreams::new(counters.clone()),
            counters,
            streams: Arc::new(AtomicUsize::new(0)),
            max_streams,
            live: None,
        }
    }

    /// The `GET /api/events` streams (stopped with the server).
    pub fn event_streams(&self) -> Arc<EventStreams> {
        self.events.clone()
    }

    /// Serve the live view (`None`: switched off).
    pub fn with_live(mut self, live: Option<Arc<LiveView>>) -> App {
        self.live = live;
        self
    }

    fn stream_slot(&self) -> Option<StreamSlot> {
        let n = self.streams.fetch_add(1, Ordering::SeqCst);
        let slot = StreamSlot(self.streams.clone());
        (n < self.max_streams).then_some(slot)
    }

    fn too_many_streams(&self) -> Response {
        Response::error(
            503,
            "busy",
            &format!(
                "{} downloads or replays are running already; try again when one ends",
                self.max_streams
            ),
        )
        .with("Retry-After", "5")
    }

    fn route(&self, req: &Request) -> Response {
        if let Some(host) = req.header("host") {
            if !auth::host_allowed(host, &self.names) {
                return Response::error(
                    403,
                    "forbidden_host",
                    &format!("Host {host:?} is not this dashcam's address or name"),
                );
            }
        }
        let method = req.method.as_str();
        let path = req.path.as_str();
        let changes = matches!(method, "POST" | "DELETE" | "PUT" | "PATCH");
        if changes {
            if let Err(m) = auth::same_origin(req) {
                return Response::error(403, "cross_origin", &m);
            }
        }
        // What anyone on the network may have: the page itself and the login.
        match (method, path) {
            ("GET" | "HEAD", p) => {
                if let Some(a) = assets::find(p) {
                    return asset(req, a);
                }
            }
            ("POST", "/api/login") => return self.login(req),
            _ => {}
        }
        if (method, path) == ("GET", "/api/session") {
            let csrf = self.auth.session(req);
            return Response::json(
                200,
                &json!({
                    "password_required": self.auth.password_required(),
                    "logged_in": !self.auth.password_required() || csrf.is_some(),
                    "csrf": csrf,
                }),
            );
        }
        if self.auth.password_required() {
            let open = path == "/metrics" && self.public_metrics;
            match self.auth.session(req) {
                Some(csrf) if changes => {
                    let sent = req.header(auth::CSRF_HEADER).unwrap_or("");
                    if !auth::same_secret(sent, &csrf) {
                        return Response::error(
                            403,
                            "csrf",
                            "missing or wrong X-CSRF-Token: reload the page",
                        );
                    }
                }
                Some(_) => {}
                None if open => {}
                None => {
                    return Response::error(401, "unauthorized", "log in first")
                        .with("WWW-Authenticate", "Cookie realm=\"dashcam\"")
                }
            }
        }
        let b = self.backend.as_ref();
        match (method, path) {
            ("POST", "/api/logout") => {
                self.auth.logout(req);
                Response::json(200, &json!({ "ok": true }))
                    .with("Set-Cookie", auth::set_cookie(None))
            }
            ("GET", "/api/status") => api::status(b),
            ("POST", "/api/record") => api::record(b, req),
            ("POST", "/record/on") => api::record_to(b, true),
            ("POST", "/record/off") => api::record_to(b, false),
            ("GET", "/api/segments") => api::segments(b, req),
            ("POST", "/api/lock") => api::lock(b, req),
            ("POST", "/api/unlock") => api::unlock(b, req),
            ("POST", "/api/clips") => api::save_clip(b, req),
            ("POST", "/api/clock") => api::clock(b, req),
            ("GET", "/api/events") => self.events.response(&self.backend, req),
            ("GET" | "HEAD", "/api/still.jpg") => match b.latest_still() {
                Ok(f) => still(req, f, "no-store"),
                Err(e) => api::failure(&e),
            },
            ("GET" | "HEAD", p) if p.starts_with("/api/stills/") => {
                match name_in(p, "/api/stills/").map(|n| b.still(n)) {
                    // Named by capture time: a name is always the same picture.
                    Some(Ok(f)) => still(req, f, "private, max-age=86400, immutable"),
                    Some(Err(e)) => api::failure(&e),
                    None => not_found(p),
                }
            }
            ("GET", "/metrics") => {
                if let Some(l) = &self.live {
                    let n = l.hub().snapshot().viewers as u64;
                    self.counters.live_viewers.store(n, Ordering::Relaxed);
                }
                Response::new(
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    Body::Bytes(metrics::render(&b.metrics(), &self.counters).into_bytes()),
                )
                .with("Cache-Control", "no-store")
            }
            ("GET" | "HEAD", "/api/clip.mp4" | "/api/clip.avi") => self.clip_stream(req),
            ("DELETE", p) if p.starts_with("/api/segments/") => {
                match name_in(p, "/api/segments/") {
                    Some(n) => api::delete(b, n),
                    None => not_found(p),
                }
            }
            ("GET" | "HEAD", p) if p.starts_with("/footage/") => match name_in(p, "/footage/") {
                Some(n) => self.footage(req, n),
                None => not_found(p),
            },
            ("GET", p) if p.starts_with("/replay/") => match name_in(p, "/replay/") {
                Some(n) => self.replay(req, n),
                None => not_found(p),
            },
            (_, p) if live::api::owns(p) => live::api::route(self.live.as_ref(), req),
            (_, p) => match METHODS.iter().find(|(known, _)| *known == p) {
                Some((_, allow)) => Response::error(
                    405,
                    "method_not_allowed",
                    &format!("{method} is not allowed on {p}; use {allow}"),
                )
                .with("Allow", *allow),
                None if method == "DELETE" || p.starts_with("/footage/") => not_found(p),
                None => not_found(p),
            },
        }
    }

    fn login(&self, req: &Request) -> Response {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct LoginBody {
            password: String,
        }
        let body = match api::body::<LoginBody>(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        match self.auth.login(&body.password) {
            Login::Ok { token, csrf } => Response::json(200, &json!({ "ok": true, "csrf": csrf }))
                .with("Set-Cookie", auth::set_cookie(Some(&token))),
            Login::Wrong => Response::error(401, "unauthorized", "wrong password"),
            Login::Limited(wait) => Response::error(
                429,
                "too_many_attempts",
                &format!(
                    "too many wrong passwords; try again in {} s",
                    wait.as_secs().max(1)
                ),
            )
            .with("Retry-After", wait.as_secs().max(1).to_string()),
            Login::NoPassword => Response::json(
                200,
                &json!({ "ok": true, "csrf": null, "message": "no password is set" }),
            ),
        }
    }

    fn footage(&self, req: &Request, name: &str) -> Response {
        let Some(slot) = self.stream_slot() else {
            return self.too_many_streams();
        };
        match self.backend.open(name) {
            Ok(f) => {
                let mut r = files::serve(req, f, req.query("download") == Some("1"));
                r.hold = Some(Box::new(slot));
                r
            }
            Err(e) => api::failure(&e),
        }
    }

    fn replay(&self, req: &Request, name: &str) -> Response {
        let start = match req.query("start").map(str::parse::<f64>) {
            None => 0.0,
            Some(Ok(s)) if s.is_finite() && s >= 0.0 => s,
            Some(_) => {
                return Response::error(400, "bad_request", "start must be seconds (0 or more)")
            }
        };
        let Some(slot) = self.stream_slot() else {
            return self.too_many_streams();
        };
        match self.backend.replay(name) {
            Ok(index) => {
                replay::response(index, start, self.counters.clone(), Some(Box::new(slot)))
            }
            Err(e) => api::failure(&e),
        }
    }

    fn clip_stream(&self, req: &Request) -> Response {
        let (Some(from), Some(to)) = (req.query("from"), req.query("to")) else {
            return Response::error(400, "bad_request", "give from and to (YYYY-MM-DDTHH:MM:SS)");
        };
        if let Err(r) = api::clip_range(from, to) {
            return r;
        }
        let Some(slot) = self.stream_slot() else {
            return self.too_many_streams();
        };
        match self.backend.clip_stream(from, to) {
            Ok(f) => {
                let mut r = files::serve(req, f, req.query("download") == Some("1"));
                r.hold = Some(Box::new(slot));
                r
            }
            Err(e) => api::failure(&e),
        }
    }
}

impl Handler for App {
    fn handle(&self, request: &Request) -> Response {
        let r = self.route(request);
        self.counters.count(r.status);
        r
    }

    fn count(&self, status: u16) {
        self.counters.count(status);
    }
}

/// The one name after `prefix`: a file name, never a path or an empty folder listing.
fn name_in<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let name = path.strip_prefix(prefix)?;
    (!name.is_empty() && !name.contains('/') && !name.starts_with('.')).then_some(name)
}

/// A still (a JPEG file), with its own caching rule.
fn still(req: &Request, f: super::backend::FootageFile, cache: &str) -> Response {
    let mut r = files::serve(req, f, false);
    r.headers.retain(|(n, _)| *n != "Cache-Control");
    r.with("Cache-Control", cache)
        .with("X-Content-Type-Options", "nosniff")
}

fn not_found(path: &str) -> Response {
    Response::error(404, "not_found", &format!("nothing at {path}"))
}

fn asset(req: &Request, a: &'static assets::Asset) -> Response {
    let tag = assets::etag(a);
    let r = if req
        .header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
    {
        Response::empty(304)
    } else {
        Response::new(200, a.content_type, Body::Static(a.bytes))
    };
    // The Host was checked by the gate (a name of this machine or an address).
    let host = req.header("host").unwrap_or("localhost");
    r.with("ETag", tag)
        .with("Cache-Control", "no-cache")
        .with("Content-Security-Policy", CSP.replace("{host}", host))
        .with("X-Content-Type-Options", "nosniff")
        .with("X-Frame-Options", "DENY")
        .with("Referrer-Policy", "same-origin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_plain_segments() {
        assert_eq!(
            name_in("/footage/20261121-143005_000042.mp4", "/footage/"),
            Some("20261121-143005_000042.mp4")
        );
        assert_eq!(name_in("/footage/", "/footage/"), None);
        assert_eq!(name_in("/footage/locked/x.mp4", "/footage/"), None);
        assert_eq!(name_in("/footage/.dashcam.lock", "/footage/"), None);
    }
}
