//! The JSON API's handlers: request bodies and query strings in, the backend called, JSON
//! out; every failure `{error, message}` with the status of its kind
//! ([`super::backend::http_status`]). See docs/api.md for each call.
//!
//! It owns the shape of requests and answers. It never touches files or the recorder
//! except through the [`WebBackend`].

use serde::Deserialize;
use serde_json::{json, Value};

use super::backend::{
    http_status, ClipSpec, Done, FootageError, SegmentFilter, SegmentKind, SegmentView, WebBackend,
};
use super::http::{Request, Response};

/// The answer for a backend failure.
pub fn failure(e: &FootageError) -> Response {
    let (status, word) = http_status(e.kind);
    let r = Response::error(status, word, &e.message);
    if status == 503 {
        r.with("Retry-After", "2")
    } else {
        r
    }
}

fn done(result: Result<Done, FootageError>) -> Response {
    match result {
        Ok(d) => Response::json(
            200,
            &json!({ "ok": true, "message": d.message, "files": d.files }),
        ),
        Err(e) => failure(&e),
    }
}

fn bad(message: impl AsRef<str>) -> Response {
    Response::error(400, "bad_request", message.as_ref())
}

/// Parse a JSON body; refuse other media types (a cross-site form cannot send JSON
/// without a preflight, which is never granted).
pub fn body<T: for<'de> Deserialize<'de>>(request: &Request) -> Result<T, Response> {
    let ctype = request.header("content-type").unwrap_or("");
    if !ctype
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    {
        return Err(Response::error(
            415,
            "unsupported_media_type",
            "send the body as application/json",
        ));
    }
    serde_json::from_slice(&request.body)
        .map_err(|e| bad(format!("the JSON body is not what this call takes: {e}")))
}

pub fn status(backend: &dyn WebBackend) -> Response {
    match serde_json::to_value(backend.status()) {
        Ok(v) => Response::json(200, &v),
        Err(e) => Response::error(500, "io_error", &e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordBody {
    on: bool,
}

pub fn record(backend: &dyn WebBackend, request: &Request) -> Response {
    match body::<RecordBody>(request) {
        Ok(b) => record_to(backend, b.on),
        Err(r) => r,
    }
}

pub fn record_to(backend: &dyn WebBackend, on: bool) -> Response {
    done(backend.set_recording(on))
}

/// One listed entry: the metadata's fields at the top level, then where it is.
fn entry(s: SegmentView) -> Value {
    let mut obj = match s.meta {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    obj.insert("name".into(), json!(s.name));
    obj.insert("kind".into(), json!(s.kind));
    obj.insert("file_bytes".into(), json!(s.file_bytes));
    obj.insert("recording".into(), json!(s.recording));
    obj.insert("start_unix_ms".into(), json!(s.start_unix_ms));
    obj.insert("url".into(), json!(format!("/footage/{}", s.name)));
    obj.insert(
        "still".into(),
        json!(s.still.map(|n| format!("/api/stills/{n}"))),
    );
    Value::Object(obj)
}

/// A local time `YYYY-MM-DDTHH:MM:SS` as Unix ms.
fn local_ms(text: &str) -> Option<i64> {
    use chrono::{Local, NaiveDateTime, TimeZone};
    let naive = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S").ok()?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
}

pub fn segments(backend: &dyn WebBackend, request: &Request) -> Response {
    let mut filter = SegmentFilter::default();
    if let Some(k) = request.query("kind").filter(|k| !k.is_empty()) {
        match SegmentKind::parse(k) {
            Some(kind) => filter.kind = Some(kind),
            None => return bad(format!("kind {k:?}: allowed: loop, locked, saved")),
        }
    }
    for (key, slot) in [("from", &mut filter.from_ms), ("to", &mut filter.to_ms)] {
        if let Some(t) = request.query(key).filter(|t| !t.is_empty()) {
            match local_ms(t) {
                Some(ms) => *slot = Some(ms),
                None => {
                    return bad(format!(
                        "{key} {t:?} is not a local time in the form YYYY-MM-DDTHH:MM:SS"
                    ))
                }
            }
        }
    }
    if let (Some(f), Some(t)) = (filter.from_ms, filter.to_ms) {
        if f > t {
            return bad("from is after to");
        }
    }
    match backend.segments(&filter) {
        Ok(list) => {
            let rows: Vec<Value> = list.into_iter().map(entry).collect();
            Response::json(200, &json!({ "segments": rows }))
        }
        Err(e) => failure(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    now: bool,
}

pub fn lock(backend: &dyn WebBackend, request: &Request) -> Response {
    match body::<LockBody>(request) {
        Ok(LockBody {
            name: Some(n),
            now: false,
        }) => done(backend.lock(&n)),
        Ok(LockBody {
            name: None,
            now: true,
        }) => done(backend.lock_now()),
        Ok(_) => bad("give either {\"name\": NAME} or {\"now\": true}"),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: String,
}

pub fn unlock(backend: &dyn WebBackend, request: &Request) -> Response {
    match body::<NameBody>(request) {
        Ok(b) => done(backend.unlock(&b.name)),
        Err(r) => r,
    }
}

pub fn delete(backend: &dyn WebBackend, name: &str) -> Response {
    done(backend.delete(name))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClipBody {
    from: String,
    to: String,
    #[serde(default)]
    metadata: Option<String>,
    #[serde(default, rename = "async")]
    asynchronous: bool,
}

/// Check a clip range before anything is asked of the footage core.
pub fn clip_range(from: &str, to: &str) -> Result<(), Response> {
    let f = local_ms(from).ok_or_else(|| {
        bad(format!(
            "from {from:?} is not a local time in the form YYYY-MM-DDTHH:MM:SS"
        ))
    })?;
    let t = local_ms(to).ok_or_else(|| {
        bad(format!(
            "to {to:?} is not a local time in the form YYYY-MM-DDTHH:MM:SS"
        ))
    })?;
    if f > t {
        return Err(bad(format!("from ({from}) is after to ({to})")));
    }
    Ok(())
}

pub fn save_clip(backend: &dyn WebBackend, request: &Request) -> Response {
    let b = match body::<ClipBody>(request) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = clip_range(&b.from, &b.to) {
        return r;
    }
    if b.metadata.as_ref().is_some_and(|m| m.len() > 4096) {
        return bad("metadata is longer than 4096 bytes");
    }
    match backend.save_clip(&ClipSpec {
        from: b.from,
        to: b.to,
        metadata: b.metadata,
        asynchronous: b.asynchronous,
    }) {
        Ok(d) => {
            let file = d.files.first().cloned();
            Response::json(
                200,
                &json!({ "ok": true, "message": d.message, "file": file, "files": d.files }),
            )
        }
        Err(e) => failure(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    unix_ms: i64,
}

pub fn clock(backend: &dyn WebBackend, request: &Request) -> Response {
    match body::<ClockBody>(request) {
        // 2001-09-09 .. 2286: anything else is not a phone's clock.
        Ok(b) if !(1_000_000_000_000..10_000_000_000_000).contains(&b.unix_ms) => {
            bad(format!("unix_ms {} is not a plausible time", b.unix_ms))
        }
        Ok(b) => done(backend.set_clock(b.unix_ms)),
        Err(r) => r,
    }
}
