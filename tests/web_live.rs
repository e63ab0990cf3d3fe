//! The live view on the wire, against the real binary recording in real time, judged with
//! independent tools (ffprobe, `ffmpeg -v error`, framemd5, md5sum) and a real WebSocket
//! client (tungstenite):
//!
//! - HLS: the playlist plays in ffprobe, every fragment decodes without an error, and its
//!   frames are bit-exact the same frames of the recorded segment, in order. (Chromium
//!   cannot prove the iPhone path: it has no native HLS. Safari is not run here.)
//! - Three WebSocket viewers while recording 1080p30 in real time, one of which stops
//!   reading: the fourth is refused with 503, the stuck one is dropped within its
//!   timeout, the other two keep advancing, and the file has every frame (framemd5
//!   against the input, 0 dropped).
//! - A resolution change mid-stream: the viewer gets a second init segment of the new
//!   size and each format's fragments decode.
//! - MJPEG: the stream is the camera's own JPEGs (md5 of each part = a packet of the
//!   recorded AVI) at the capped rate; a second viewer beyond `max_viewers` gets 503.
//! - The WebSocket takes only this page's origin; `[web] live = false` says so.

mod common;
#[path = "common/web.rs"]
mod web;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use common::{scaled, wait_until};
use web::Feed;

/// The live input: 1080p30 with the frame number burned in (made on request).
fn live_input(name: &str) -> std::path::PathBuf {
    let dir = common::inputs_dir();
    let path = dir.join(name);
    if !path.is_file() {
        let out = Command::new("bash")
            .arg(common::repo_dir().join("scripts/make-test-inputs.sh"))
            .arg(&dir)
            .arg(name)
            .output()
            .expect("make-test-inputs.sh");
        assert!(
            out.status.success(),
            "making {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    path
}

fn live_info(d: &web::Dashcam) -> Value {
    web::json(&web::get(&d.url("/api/live"), &[]))
}

/// A WebSocket viewer of `/api/live.ws`; `Err((status, body))` when refused.
fn connect(d: &web::Dashcam, origin: Option<&str>) -> Result<WebSocket<TcpStream>, (u16, String)> {
    let stream = TcpStream::connect(&d.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut req = format!("ws://{}/api/live.ws", d.addr)
        .into_client_request()
        .expect("request");
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", o.parse().expect("origin header"));
    }
    match tungstenite::client(req, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => Err((
            r.status().as_u16(),
            String::from_utf8_lossy(r.body().as_deref().unwrap_or(&[])).into_owned(),
        )),
        Err(e) => panic!("WebSocket handshake: {e}"),
    }
}

/// The first box of a live message and, for a fragment, its `tfdt` (decode time).
fn fragment_time(b: &[u8]) -> Option<u64> {
    let boxes = common::mp4_top_boxes(b).ok()?;
    let (_, off, size) = boxes.iter().find(|(k, _, _)| k == "moof")?.clone();
    // moof > traf > tfdt, found by name (a tiny walk of our own).
    let moof = &b[off + 8..off + size];
    let traf_at = find_box(moof, b"traf")?;
    let traf = &moof[traf_at.0 + 8..traf_at.0 + traf_at.1];
    let tfdt_at = find_box(traf, b"tfdt")?;
    let tfdt = &traf[tfdt_at.0 + 8..tfdt_at.0 + tfdt_at.1];
    match tfdt[0] {
        1 => Some(u64::from_be_bytes(tfdt[4..12].try_into().ok()?)),
        _ => Some(u64::from(u32::from_be_bytes(tfdt[4..8].try_into().ok()?))),
    }
}

fn find_box(buf: &[u8], kind: &[u8; 4]) -> Option<(usize, usize)> {
    let mut pos = 0;
    while pos + 8 <= buf.len() {
        let size = u32::from_be_bytes(buf[pos..pos + 4].try_into().ok()?) as usize;
        if size < 8 {
            return None;
        }
        if &buf[pos + 4..pos + 8] == kind {
            return Some((pos, size));
        }
        pos += size;
    }
    None
}

fn md5_files(paths: &[std::path::PathBuf]) -> Vec<String> {
    let out = Command::new("md5sum").args(paths).output().expect("md5sum");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// md5 of each packet of `path`, stream copy (the bytes as stored).
fn packet_md5s(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_string()))
        .collect()
}

/// Where `part` sits in `whole`, as a contiguous run.
fn position_in(whole: &[String], part: &[String]) -> Option<usize> {
    if part.is_empty() {
        return None;
    }
    whole.windows(part.len()).position(|w| w == part)
}

#[test]
fn hls_playlist_plays_and_each_fragment_is_bit_exact_with_the_recording() {
    let input = live_input("live1080.h264");
    let keep = common::tmpdir("live-hls-footage");
    let d = web::start_at(
        Some(keep.path().join("footage")),
        Feed::Stdin(input.clone()),
        "",
        "",
        &["--segment-seconds", "3600"],
    );
    let t0 = Instant::now();
    let (code, headers, body) = web::get(&d.url("/api/live.m3u8"), &[]);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let ctype = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone());
    assert_eq!(ctype.as_deref(), Some("application/vnd.apple.mpegurl"));
    let playlist = String::from_utf8_lossy(&body).into_owned();
    eprintln!(
        "first playlist after {:.1} s:\n{playlist}",
        t0.elapsed().as_secs_f64()
    );
    assert!(playlist.starts_with("#EXTM3U\n"), "{playlist}");
    assert!(
        playlist.contains("#EXT-X-MAP:URI=\"live/init-"),
        "{playlist}"
    );
    assert!(
        playlist.matches("#EXTINF:").count() >= 3,
        "three segments to start: {playlist}"
    );
    assert!(
        !playlist.contains("http") && !playlist.contains("\n/"),
        "URLs relative to the playlist: {playlist}"
    );

    // ffprobe plays the live playlist itself (its HLS demuxer fetches init and segments).
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,profile",
            "-of",
            "json",
        ])
        .arg(d.url("/api/live.m3u8"))
        .output()
        .expect("ffprobe");
    let v: Value = serde_json::from_slice(&probe.stdout).expect("ffprobe JSON");
    let s = &v["streams"][0];
    assert_eq!(
        s["codec_name"],
        "h264",
        "{v}\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(1920), Some(1080))
    );
    assert!(
        String::from_utf8_lossy(&probe.stderr).trim().is_empty(),
        "ffprobe: {}",
        String::from_utf8_lossy(&probe.stderr)
    );

    // Fetch segments for a while (the playlist slides), each with its init.
    let tmp = common::tmpdir("hls");
    let mut files: Vec<(u64, std::path::PathBuf)> = Vec::new();
    let mut last_seq = None;
    let deadline = Instant::now() + Duration::from_secs(14);
    while Instant::now() < deadline {
        let (code, _, body) = web::get(&d.url("/api/live.m3u8"), &[]);
        assert_eq!(code, 200);
        let text = String::from_utf8_lossy(&body).into_owned();
        let mut init = None;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
                init = Some(uri.trim_end_matches('"').to_string());
            }
            if line.starts_with("#EXTINF:") {
                let uri = lines.next().expect("segment URI");
                let seq: u64 = uri
                    .trim_start_matches("live/")
                    .trim_end_matches(".m4s")
                    .parse()
                    .expect("sequence");
                if last_seq.is_some_and(|l| seq <= l) {
                    continue;
                }
                let init_uri = init.clone().expect("a map before the first segment");
                let (c1, _, init_bytes) = web::get(&d.url(&format!("/api/{init_uri}")), &[]);
                let (c2, _, seg) = web::get(&d.url(&format!("/api/{uri}")), &[]);
                if c2 == 404 {
                    continue; // slid out meanwhile
                }
                assert_eq!((c1, c2), (200, 200), "{init_uri} {uri}");
                // Judged after the loop: decoding 1080p while fetching could fall behind
                // the sliding playlist on a loaded machine.
                let file = tmp.path().join(format!("hls-{seq}.mp4"));
                std::fs::write(&file, [init_bytes, seg].concat()).expect("write");
                files.push((seq, file));
                last_seq = Some(seq);
            }
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    let fetched: Vec<(u64, Vec<String>)> = files
        .iter()
        .map(|(seq, file)| {
            let errors = common::decode_errors(file);
            assert!(
                errors.is_empty(),
                "segment {seq}: ffmpeg -v error: {errors}"
            );
            let hashes = common::framemd5(file);
            assert!(!hashes.is_empty(), "segment {seq} has frames");
            (*seq, hashes)
        })
        .collect();
    assert!(fetched.len() >= 8, "{} segments fetched", fetched.len());
    for w in fetched.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "consecutive media sequence numbers");
    }
    for (seq, h) in &fetched {
        assert_eq!(h.len(), 30, "segment {seq}: one GOP of 30 frames");
    }

    // The recording, once closed: each segment's frames are the same frames, in order.
    let footage = d.footage();
    d.stop();
    let recorded = recorded_hashes(&footage);
    let mut at = None;
    for (seq, h) in &fetched {
        let p = position_in(&recorded, h)
            .unwrap_or_else(|| panic!("segment {seq}: its frames are not a run of the recording"));
        if let Some(prev) = at {
            assert_eq!(
                p,
                prev + 30,
                "segment {seq} follows the previous one in the recording"
            );
        }
        at = Some(p);
    }
    eprintln!(
        "HLS: {} segments, {} frames, bit-exact at frames {}..{} of the recording",
        fetched.len(),
        fetched.len() * 30,
        at.unwrap_or(0) + 30 - fetched.len() * 30,
        at.unwrap_or(0) + 30
    );
}

fn recorded_hashes(dir: &Path) -> Vec<String> {
    let segs = common::segments(dir);
    assert!(!segs.is_empty(), "a recorded segment in {}", dir.display());
    let paths: Vec<&Path> = segs.iter().map(|s| s.path.as_path()).collect();
    common::framemd5_all(&paths)
}

/// A viewer reading in a thread: fragments received and the last decode time.
struct Reader {
    fragments: AtomicU64,
    last_time: AtomicU64,
    ended: AtomicBool,
}

fn read_all(mut ws: WebSocket<TcpStream>) -> (Arc<Reader>, std::thread::JoinHandle<()>) {
    let r = Arc::new(Reader {
        fragments: AtomicU64::new(0),
        last_time: AtomicU64::new(0),
        ended: AtomicBool::new(false),
    });
    let rr = r.clone();
    let h = std::thread::spawn(move || {
        while let Ok(m) = ws.read() {
            if let Message::Binary(b) = m {
                if let Some(t) = fragment_time(&b) {
                    let last = rr.last_time.swap(t, Ordering::SeqCst);
                    assert!(t > last, "decode times increase ({last} then {t})");
                    rr.fragments.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        rr.ended.store(true, Ordering::SeqCst);
    });
    (r, h)
}

#[test]
fn three_viewers_one_stuck_while_recording_1080p30_the_file_keeps_every_frame() {
    let input = live_input("live1080.h264");
    let keep = common::tmpdir("live-3-footage");
    let d = web::start_at(
        Some(keep.path().join("footage")),
        Feed::Stdin(input.clone()),
        "",
        "",
        &["--segment-seconds", "3600"],
    );
    let (a, _ha) = read_all(connect(&d, None).expect("viewer A"));
    let (b, _hb) = read_all(connect(&d, None).expect("viewer B"));
    let mut c = connect(&d, None).expect("viewer C");
    // C plays a little, then stops reading (its socket stays open: a phone that froze).
    let mut c_fragments = 0;
    while c_fragments < 10 {
        if let Message::Binary(m) = c.read().expect("C reads") {
            if fragment_time(&m).is_some() {
                c_fragments += 1;
            }
        }
    }
    let stuck_at = Instant::now();
    let info = live_info(&d);
    assert_eq!(info["viewers"], 3, "{info}");
    let metrics = String::from_utf8_lossy(&web::get(&d.url("/metrics"), &[]).2).into_owned();
    assert!(metrics.contains("\ndashcam_live_viewers 3\n"), "{metrics}");
    // A fourth is refused, clearly.
    let (status, body) = connect(&d, None).expect_err("a fourth viewer");
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(v["error"], "too_many_viewers", "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_viewers = 3")),
        "{v}"
    );

    // The stuck viewer is dropped: its send times out (5 s) once its buffers are full.
    assert!(
        wait_until(scaled(20.0), || live_info(&d)["viewers"] == 2),
        "the stuck viewer is still there: {}",
        live_info(&d)
    );
    let dropped_after = stuck_at.elapsed();
    let info = live_info(&d);
    assert_eq!(info["viewer_timeouts"], 1, "{info}");
    // The others keep advancing meanwhile and after.
    let (a0, b0) = (
        a.fragments.load(Ordering::SeqCst),
        b.fragments.load(Ordering::SeqCst),
    );
    std::thread::sleep(Duration::from_secs(3));
    let (a1, b1) = (
        a.fragments.load(Ordering::SeqCst),
        b.fragments.load(Ordering::SeqCst),
    );
    assert!(
        a1 >= a0 + 60 && b1 >= b0 + 60,
        "A {a0}->{a1}, B {b0}->{b1} in 3 s"
    );
    assert!(!a.ended.load(Ordering::SeqCst) && !b.ended.load(Ordering::SeqCst));
    // Its place is free again.
    let e = connect(&d, None).expect("a new viewer in the freed place");
    drop(e);
    drop(c);

    // The whole input recorded, none dropped. (The pipe stays open like a camera's, so
    // the H.264 parser still holds the last access unit or two: it cannot know they are
    // complete before the next one starts.)
    assert!(
        wait_until(scaled(60.0), || d.status()["frames_on_disk"].as_u64()
            >= Some(1198)),
        "not all frames on disk: {}",
        d.status()
    );
    let info = live_info(&d);
    let footage = d.footage();
    d.stop();
    let segs = common::segments(&footage);
    let frames: u64 = segs
        .iter()
        .map(|s| s.meta()["frames"].as_u64().unwrap_or(0))
        .sum();
    let dropped: u64 = segs
        .iter()
        .map(|s| s.meta()["dropped_frames"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        frames >= 1198 && dropped == 0,
        "{frames} frames, {dropped} dropped"
    );
    let recorded = recorded_hashes(&footage);
    let want = common::framemd5(&input);
    assert_eq!(recorded.len() as u64, frames);
    if let Some(diff) = common::compare_hashes("recording", &recorded, &want[..recorded.len()]) {
        panic!("{diff}");
    }
    eprintln!(
        "3 viewers: stuck one dropped {:.1} s after it stopped reading; A {} and B {} \
         fragments; skipped {}; handed over {}, dropped for the view {}; file: {frames} \
         frames, {dropped} dropped, framemd5 = input",
        dropped_after.as_secs_f64(),
        a.fragments.load(Ordering::SeqCst),
        b.fragments.load(Ordering::SeqCst),
        info["fragments_skipped"],
        info["frames_handed_over"],
        info["frames_dropped_for_view"]
    );
}

#[test]
fn a_resolution_change_sends_a_new_init_and_both_formats_decode() {
    let input = live_input("live_res.h264");
    let d = web::start(Feed::Stdin(input), "", "", &[]);
    let mut ws = connect(&d, None).expect("viewer");
    let tmp = common::tmpdir("live-res");
    let mut formats: Vec<(Value, Vec<u8>, usize)> = Vec::new();
    let mut expect_init = false;
    let deadline = Instant::now() + scaled(40.0);
    while Instant::now() < deadline {
        match ws.read().expect("read") {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                if v["type"] == "init" {
                    formats.push((v, Vec::new(), 0));
                    expect_init = true;
                }
            }
            Message::Binary(b) => {
                let Some(f) = formats.last_mut() else {
                    continue;
                };
                if expect_init {
                    assert_eq!(
                        &b[4..8],
                        b"ftyp",
                        "the init segment follows its description"
                    );
                    expect_init = false;
                } else {
                    assert!(fragment_time(&b).is_some(), "a fragment");
                    f.2 += 1;
                }
                f.1.extend_from_slice(&b);
            }
            _ => {}
        }
        if formats.len() == 2 && formats[1].2 >= 60 {
            break;
        }
    }
    assert_eq!(formats.len(), 2, "two init segments");
    let sizes: Vec<(u64, u64)> = formats
        .iter()
        .map(|f| {
            (
                f.0["width"].as_u64().unwrap_or(0),
                f.0["height"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(sizes, [(1280, 720), (640, 360)]);
    for (i, (v, bytes, n)) in formats.iter().enumerate() {
        let file = tmp.path().join(format!("format-{i}.mp4"));
        std::fs::write(&file, bytes).expect("write");
        let errors = common::decode_errors(&file);
        assert!(errors.is_empty(), "format {i} ({v}): {errors}");
        let info = common::stream_info(&file);
        assert_eq!(
            (info.width, info.height),
            (sizes[i].0 as u32, sizes[i].1 as u32)
        );
        let decoded = common::framemd5(&file).len();
        assert_eq!(decoded, *n, "format {i}: every fragment a frame");
        assert!(
            v["codec"].as_str().is_some_and(|c| c.starts_with("avc1.")),
            "{v}"
        );
    }
    d.stop();
}

/// The parts of a multipart stream read for `limit`: (arrival, headers, body).
fn read_parts(
    addr: &str,
    path: &str,
    limit: Duration,
) -> (String, Vec<(Instant, String, Vec<u8>)>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .expect("request");
    let mut buf = Vec::new();
    let mut parts = Vec::new();
    let mut head = None;
    let end = Instant::now() + limit;
    let mut chunk = [0u8; 65536];
    while Instant::now() < end {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        while let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..at]).into_owned();
            if head.is_none() {
                head = Some(text);
                buf.drain(..at + 4);
                continue;
            }
            let len = text
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let Some(len) = len else {
                buf.drain(..at + 4);
                continue;
            };
            if buf.len() < at + 4 + len {
                break;
            }
            let body = buf[at + 4..at + 4 + len].to_vec();
            buf.drain(..at + 4 + len);
            parts.push((Instant::now(), text, body));
        }
    }
    (head.unwrap_or_default(), parts)
}

#[test]
fn mjpeg_live_stream_is_the_cameras_own_jpegs_at_the_capped_rate() {
    let keep = common::tmpdir("live-mjpeg-footage");
    let d = web::start_at(
        Some(keep.path().join("footage")),
        Feed::TestPattern,
        "[test_pattern]\nwidth = 320\nheight = 180\nfps = 30\n",
        "max_viewers = 1\npreview_fps = 2",
        &["--segment-seconds", "4"],
    );
    d.wait_closed(1, scaled(20.0));
    let addr = d.addr.clone();
    let reader =
        std::thread::spawn(move || read_parts(&addr, "/api/live.mjpeg", Duration::from_secs(7)));
    assert!(wait_until(scaled(5.0), || live_info(&d)["viewers"] == 1));
    // max_viewers = 1: the next is refused.
    let (code, _, body) = web::get(&d.url("/api/live.mjpeg"), &[]);
    assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("too_many_viewers"));
    // A WebSocket on an MJPEG camera: the wrong kind of stream, said so.
    let (status, body) = connect(&d, None).expect_err("WebSocket on MJPEG");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("/api/live.mjpeg"), "{body}");
    let (head, parts) = reader.join().expect("reader");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("multipart/x-mixed-replace; boundary=dashcamlive"),
        "{head}"
    );
    assert!(parts.len() >= 8, "{} parts in 7 s", parts.len());
    // The rate: parts after the first second, over their span.
    let t0 = parts[0].0;
    let later: Vec<_> = parts
        .iter()
        .filter(|p| p.0 >= t0 + Duration::from_secs(1))
        .collect();
    let span = later.last().expect("parts").0 - later[0].0;
    let rate = (later.len() - 1) as f64 / span.as_secs_f64();
    assert!(
        (1.6..=2.4).contains(&rate),
        "{rate:.2} parts/s at preview_fps = 2"
    );
    let captures: Vec<i64> = parts
        .iter()
        .filter_map(|p| {
            p.1.lines()
                .find_map(|l| l.strip_prefix("X-Capture-Ms: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect();
    assert_eq!(captures.len(), parts.len());
    for w in captures.windows(2) {
        let gap = w[1] - w[0];
        assert!((430..=570).contains(&gap), "capture times {} ms apart", gap);
    }
    assert!(
        wait_until(scaled(10.0), || live_info(&d)["viewers"] == 0),
        "the viewer left"
    );

    // Each part is a JPEG of the recording, byte for byte.
    let footage = d.footage();
    d.stop();
    let tmp = common::tmpdir("mjpeg-parts");
    let files: Vec<_> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let f = tmp.path().join(format!("part-{i}.jpg"));
            std::fs::write(&f, &p.2).expect("write");
            f
        })
        .collect();
    let ours = md5_files(&files);
    let mut recorded = Vec::new();
    for s in common::segments(&footage) {
        recorded.extend(packet_md5s(&s.path));
    }
    let missing: Vec<_> = ours.iter().filter(|h| !recorded.contains(h)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} parts are not frames of the recording",
        missing.len(),
        ours.len()
    );
    eprintln!(
        "MJPEG: {} parts at {rate:.2}/s, each a recorded JPEG byte for byte",
        parts.len()
    );
}

#[test]
fn the_websocket_takes_only_this_page_and_live_off_is_said() {
    let d = web::start(
        Feed::TestPattern,
        "[test_pattern]\nwidth = 160\nheight = 90\n",
        "",
        &[],
    );
    let (status, body) = connect(&d, Some("http://evil.example")).expect_err("cross-origin");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("cross_origin"), "{body}");
    // Same origin passes the check (then the MJPEG camera answers 409, once the first
    // frame has said what the camera sends: before it, a viewer may wait for the picture).
    assert!(
        wait_until(scaled(30.0), || live_info(&d)["codec"] == "mjpeg"),
        "no frame said the camera's codec: {}",
        live_info(&d)
    );
    let origin = format!("http://{}", d.addr);
    let (status, body) = connect(&d, Some(&origin)).expect_err("MJPEG camera");
    assert_eq!(status, 409, "{body}");
    let plain = web::get(&d.url("/api/live.ws"), &[]);
    web::assert_error(&plain, 426, "a plain GET of the WebSocket");
    d.stop();

    let d = web::start(
        Feed::TestPattern,
        "[test_pattern]\nwidth = 160\nheight = 90\n",
        "live = false",
        &[],
    );
    let info = live_info(&d);
    assert_eq!(info["enabled"], false, "{info}");
    assert!(
        info["message"]
            .as_str()
            .is_some_and(|m| m.contains("live = false")),
        "{info}"
    );
    for path in ["/api/live.mjpeg", "/api/live.m3u8"] {
        let a = web::get(&d.url(path), &[]);
        web::assert_error(&a, 503, path);
        assert!(String::from_utf8_lossy(&a.2).contains("live_off"));
    }
    let (status, _) = connect(&d, None).expect_err("live off");
    assert_eq!(status, 503);
    d.stop();
}
