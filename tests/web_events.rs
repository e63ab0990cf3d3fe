//! `GET /api/events` against the real binary recording a real input, read by a raw HTTP
//! client (Server-Sent Events are lines over the socket: no library needed to judge them).
//!
//! What it proves: every `segment_closed` event carries exactly the fields of the metadata
//! JSON on disk; a lock and an unlock from the API arrive as events; ids are the events'
//! sequence numbers and increase without gaps; the stream ends cleanly when the recorder
//! stops, after the last events. `/api/still.jpg` is the newest still file byte for byte,
//! each listed segment's `still` is one of the stills taken while it was recorded, and a
//! still name cannot reach outside the stills folder. A stuck client (it reads nothing) is
//! dropped after the stall time without costing a recorded frame or an event of another
//! client; more subscribers than the hub takes get `503 too_many_subscribers`.

mod common;
#[path = "common/web.rs"]
mod web;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::{json, Value};

use common::{scaled, wait_until};
use web::{assert_error, get, post, Feed};

/// One Server-Sent Event as read off the wire.
#[derive(Debug)]
struct Ev {
    id: u64,
    kind: String,
    data: Value,
}

/// What the reader thread saw.
enum Got {
    Event(Ev),
    Comment,
    End,
}

struct SseClient {
    rx: Receiver<Got>,
    status: u16,
}

impl SseClient {
    /// Open `GET /api/events` and read it in a thread; the answer's status first.
    fn open(addr: &str) -> SseClient {
        let stream = TcpStream::connect(addr).expect("connect");
        SseClient::over(stream, addr)
    }

    fn over(mut stream: TcpStream, addr: &str) -> SseClient {
        stream
            .write_all(
                format!(
                    "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
                )
                .as_bytes(),
            )
            .expect("send request");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("status line {line:?}"));
        let mut head = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push(line.trim().to_ascii_lowercase());
        }
        if status == 200 {
            assert!(
                head.iter()
                    .any(|h| h.starts_with("content-type: text/event-stream")),
                "{head:?}"
            );
            assert!(
                head.iter().any(|h| h == "cache-control: no-store"),
                "{head:?}"
            );
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            let (mut id, mut kind, mut data) = (None, None, None);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Got::End);
                        return;
                    }
                    Ok(_) => {}
                }
                let l = line.trim_end_matches('\n');
                if l.is_empty() {
                    if let (Some(i), Some(k), Some(d)) = (id.take(), kind.take(), data.take()) {
                        let _ = tx.send(Got::Event(Ev {
                            id: i,
                            kind: k,
                            data: d,
                        }));
                    }
                } else if l.starts_with(": ") {
                    let _ = tx.send(Got::Comment);
                } else if let Some(v) = l.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = l.strip_prefix("event: ") {
                    kind = Some(v.to_string());
                } else if let Some(v) = l.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(v).expect("data is one line of JSON"));
                } else {
                    assert!(l.starts_with("retry: "), "unexpected line {l:?}");
                }
            }
        });
        SseClient { rx, status }
    }

    /// Events until `done` says enough (true) or `limit` passes; comments are skipped.
    fn until(&self, all: &mut Vec<Ev>, limit: Duration, mut done: impl FnMut(&[Ev]) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(all) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Got::Event(e)) => all.push(e),
                Ok(Got::Comment) => {}
                Ok(Got::End) => panic!("the stream ended early: {all:?}"),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("not within {limit:?}; got {:?}", kinds(all))
                }
                Err(RecvTimeoutError::Disconnected) => panic!("reader gone"),
            }
        }
    }

    /// Everything until the stream ends (at most `limit`).
    fn to_end(&self, all: &mut Vec<Ev>, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Got::Event(e)) => all.push(e),
                Ok(Got::Comment) => {}
                Ok(Got::End) => return,
                Err(_) => panic!("the stream did not end within {limit:?}"),
            }
        }
    }
}

fn kinds(all: &[Ev]) -> Vec<String> {
    all.iter().map(|e| format!("{}:{}", e.id, e.kind)).collect()
}

fn count(all: &[Ev], kind: &str) -> usize {
    all.iter().filter(|e| e.kind == kind).count()
}

/// The metadata JSON beside a segment, wherever it is now.
fn metadata_of(footage: &Path, name: &str) -> Value {
    for dir in [footage.to_path_buf(), footage.join("locked")] {
        let p = dir.join(name).with_extension("json");
        if let Ok(b) = std::fs::read(&p) {
            return serde_json::from_slice(&b).expect("metadata JSON");
        }
    }
    panic!("no metadata for {name}");
}

/// A FIFO in `dir`: the feeder of [`web::start`] reads it to the end before it writes to the
/// recorder, so nothing is recorded before the test writes it.
fn fifo(dir: &Path) -> PathBuf {
    let p = dir.join("input.fifo");
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    p
}

fn stills_in(footage: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(footage.join("stills"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".jpg"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn events_match_the_metadata_lock_and_unlock_arrive_ids_increase_and_stills_are_served() {
    let tmp = common::tmpdir("sse-input");
    let input = fifo(tmp.path());
    // The footage outlives the recorder (its metadata is read after the stop).
    let footage = tmp.path().join("footage");
    let d = web::start_at(
        Some(footage.clone()),
        Feed::Stdin(input.clone()),
        "[stills]\ninterval = 1\n",
        "",
        &["--segment-seconds", "2", "--fps", "30"],
    );
    // Nothing is recorded yet: no still.
    assert_error(&get(&d.url("/api/still.jpg"), &[]), 404, "no still yet");
    let sse = SseClient::open(&d.addr);
    assert_eq!(sse.status, 200);
    // Now the input: 300 MJPEG frames from the camera-like test set (10 s at 30 fps).
    let data = std::fs::read(common::input("mjpeg422.mjpeg")).expect("input");
    {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&input)
            .expect("open the FIFO");
        w.write_all(&data).expect("feed");
    }
    let mut all = Vec::new();
    sse.until(&mut all, scaled(60.0), |a| count(a, "segment_closed") >= 4);

    // Lock a closed segment, then unlock it: both arrive.
    let name = all
        .iter()
        .find(|e| e.kind == "segment_closed")
        .and_then(|e| e.data["name"].as_str())
        .expect("a closed segment")
        .to_string();
    let a = post(&d.url("/api/lock"), &json!({ "name": name }), &[]);
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    sse.until(&mut all, scaled(10.0), |a| {
        a.iter()
            .any(|e| e.kind == "locked" && e.data["name"] == name.as_str())
    });
    let a = post(&d.url("/api/unlock"), &json!({ "name": name }), &[]);
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    sse.until(&mut all, scaled(10.0), |a| {
        a.iter()
            .any(|e| e.kind == "unlocked" && e.data["name"] == name.as_str())
    });
    let locked = all.iter().find(|e| e.kind == "locked").expect("locked");
    assert!(
        locked.data["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(&format!("locked/{name}"))),
        "{:?}",
        locked.data
    );

    // The clock set from the page (to now: harmless) is an event, when this machine lets
    // the process set it (root, not synchronised); else it is refused and says why.
    let now = chrono::Utc::now().timestamp_millis();
    let c = post(&d.url("/api/clock"), &json!({ "unix_ms": now }), &[]);
    match c.0 {
        200 => {
            sse.until(&mut all, scaled(10.0), |a| count(a, "clock_set") == 1);
            let e = all
                .iter()
                .find(|e| e.kind == "clock_set")
                .expect("clock_set");
            assert!(
                e.data["offset_s"].as_f64().is_some_and(|o| o.abs() < 5.0),
                "{:?}",
                e.data
            );
            assert!(e.data["previous"].is_string() && e.data["now"].is_string());
        }
        403 | 409 => eprintln!(
            "clock not set here ({}): no clock_set event to see",
            String::from_utf8_lossy(&c.2)
        ),
        other => panic!("POST /api/clock: {other}"),
    }

    // Stills: the newest is /api/still.jpg byte for byte; each listed segment's still is
    // one taken while it was recorded, and served as it is on disk.
    let stills = stills_in(&d.footage());
    assert!(stills.len() >= 5, "a still a second of 10 s: {stills:?}");
    let newest = d
        .footage()
        .join("stills")
        .join(stills.last().expect("newest"));
    let (code, headers, body) = get(&d.url("/api/still.jpg"), &[]);
    assert_eq!(code, 200);
    assert_eq!(body, std::fs::read(&newest).expect("newest still"));
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v == "image/jpeg"));
    assert!(headers
        .iter()
        .any(|(k, v)| k == "cache-control" && v == "no-store"));
    let segs = d.segments("");
    let mut with_still = 0;
    for s in segs.iter().filter(|s| s["frames"].is_u64()) {
        let Some(url) = s["still"].as_str() else {
            continue;
        };
        with_still += 1;
        let still = url.strip_prefix("/api/stills/").expect("still URL");
        assert!(stills.contains(&still.to_string()), "{still} not on disk");
        let (code, _, body) = get(&d.url(url), &[]);
        assert_eq!(code, 200, "{url}");
        assert_eq!(
            body,
            std::fs::read(d.footage().join("stills").join(still)).expect("still")
        );
        assert_eq!(&body[..2], &[0xff, 0xd8], "a JPEG");
    }
    assert!(with_still >= 2, "closed segments with a still: {segs:?}");
    for bad in [
        "/api/stills/..%2Fdashcam.toml",
        "/api/stills/20261121-143005-123.jpg",
        "/api/stills/x.jpg",
    ] {
        let (code, _, _) = get(&d.url(bad), &[]);
        assert!(matches!(code, 400 | 404), "{bad}: {code}");
    }

    // The whole input on disk (a pipe is read at its frame rate), then stop: the last
    // segment and recording_stopped arrive, then the stream ends.
    assert!(
        wait_until(scaled(30.0), || d.status()["frames_on_disk"].as_u64()
            >= Some(300)),
        "{}",
        d.status()
    );
    let err = d.stop();
    sse.to_end(&mut all, scaled(30.0));
    assert_eq!(
        all.last().map(|e| e.kind.as_str()),
        Some("recording_stopped"),
        "{:?}",
        kinds(&all)
    );
    // Ids are the sequence numbers, one after another (nothing was lost).
    for w in all.windows(2) {
        assert_eq!(w[1].id, w[0].id + 1, "{:?}", kinds(&all));
    }
    for e in &all {
        assert_eq!(e.data["seq"].as_u64(), Some(e.id));
        assert_eq!(e.data["event"].as_str(), Some(e.kind.as_str()));
        assert!(e.data["unix_ms"].is_i64() && e.data["mono_s"].is_f64());
    }
    // Every closed segment: the event has exactly the metadata's fields and values.
    let closed: Vec<&Ev> = all.iter().filter(|e| e.kind == "segment_closed").collect();
    assert!(closed.len() >= 5, "{:?}", kinds(&all));
    for e in &closed {
        let name = e.data["name"].as_str().expect("name");
        let meta = metadata_of(&footage, name);
        for (k, v) in meta.as_object().expect("object") {
            assert_eq!(&e.data[k], v, "{name}: {k}");
        }
    }
    let frames: u64 = closed
        .iter()
        .filter_map(|e| e.data["frames"].as_u64())
        .sum();
    let stopped = &all.last().expect("stopped").data;
    assert_eq!(stopped["frames"].as_u64(), Some(frames), "{stopped}");
    assert_eq!(stopped["dropped_frames"], 0, "{stopped}");
    assert_eq!(frames, 300, "every input frame in a closed segment");
    assert!(!err.contains("panicked"));
}

/// A TCP connection whose receive buffer is tiny: a client that stops reading fills it
/// at once, so the server sees a stuck client quickly.
fn tiny_window_connect(addr: &str) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType};
    let sock = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
    rustix::net::sockopt::set_socket_recv_buffer_size(&sock, 1024).expect("SO_RCVBUF");
    let a: std::net::SocketAddr = addr.parse().expect("address");
    rustix::net::connect(&sock, &a).expect("connect");
    TcpStream::from(sock)
}

fn metric(d: &web::Dashcam, name: &str) -> f64 {
    let (_, _, body) = get(&d.url("/metrics"), &[]);
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name} "))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(-1.0)
}

#[test]
fn a_stuck_client_costs_no_frame_and_no_other_clients_event_and_is_dropped() {
    // The live test pattern (real time: a blocked recorder would drop frames), a still
    // a second and a segment a second for a steady flow of events.
    let d = web::start(
        Feed::TestPattern,
        "[test_pattern]\nwidth = 320\nheight = 180\nfps = 30\n[stills]\ninterval = 1\n",
        "",
        &["--segment-seconds", "1"],
    );
    let good = SseClient::open(&d.addr);
    assert_eq!(good.status, 200);
    // The stuck client: it reads its answer's head, then nothing more.
    let mut raw = tiny_window_connect(&d.addr);
    raw.write_all(
        format!(
            "GET /api/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            d.addr
        )
        .as_bytes(),
    )
    .expect("request");
    raw.set_read_timeout(Some(scaled(10.0))).expect("timeout");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = std::io::Read::read(&mut raw, &mut byte).expect("head");
        assert_eq!(n, 1, "closed: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // More subscribers, up to the hub's limit (8): then 503.
    let mut others = Vec::new();
    let limit_reached = wait_until(scaled(20.0), || {
        let c = SseClient::open(&d.addr);
        let full = c.status == 503;
        if !full {
            others.push(c);
        }
        full || others.len() > 10
    });
    assert!(
        limit_reached && others.len() <= 7,
        "no limit: {}",
        others.len()
    );
    let refused = get(&d.url("/api/events"), &[]);
    assert_error(&refused, 503, "beyond the subscribers");
    assert_eq!(web::json(&refused)["error"], "too_many_subscribers");
    // Another site's page may not read the events (checked before the limit).
    let cross = get(
        &d.url("/api/events"),
        &[
            ("Origin", "http://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    );
    assert_error(&cross, 403, "cross-origin events");

    // The stuck client is dropped within its buffer's fill and the stall time.
    assert!(
        wait_until(scaled(60.0), || metric(
            &d,
            "dashcam_event_streams_stalled_total"
        ) >= 1.0),
        "the stuck client was not dropped:\n{}",
        d.proc.stderr_text()
    );
    assert!(d.proc.stderr_text().contains("took nothing for"));
    // Room again for one.
    let again = SseClient::open(&d.addr);
    assert_eq!(again.status, 200, "a place came free");

    // The good client got every event, in order, without a gap.
    let mut all = Vec::new();
    good.until(&mut all, scaled(10.0), |a| count(a, "segment_closed") >= 3);
    for w in all.windows(2) {
        assert_eq!(w[1].id, w[0].id + 1, "{:?}", kinds(&all));
    }
    let st = d.status();
    assert_eq!(st["frames_dropped"], 0, "{st}");
    // What the stuck one lost meanwhile (its own queue) is in the metrics.
    assert!(
        metric(&d, "dashcam_event_stream_events_lost_total") >= 0.0,
        "metric missing"
    );
    drop(raw);
    drop(others);
    let err = d.stop();
    assert!(!err.contains("panicked"));
    let mut rest = Vec::new();
    good.to_end(&mut rest, scaled(30.0));
    assert_eq!(
        rest.last().map(|e| e.kind.as_str()),
        Some("recording_stopped")
    );
}
