//! The JSON API against the real binary recording real input, with a real HTTP client:
//! status, listing, downloads with Range (compared byte for byte with the files), locks,
//! deletes, clips judged by ffprobe and framemd5 against the segments, the MJPEG replay,
//! record off/on producing whole segments, the metrics through `promtool check metrics`,
//! and the errors of each call.

mod common;
#[path = "common/web.rs"]
mod web;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use common::{scaled, wait_until};
use web::{assert_error, delete, file_of, get, head, header, json, post, Dashcam, Feed};

/// Local time `secs` from the dashcam's clock now, in the API's form.
fn local(d: &Dashcam, secs: i64) -> String {
    let now = d.status()["clock_unix_ms"].as_i64().expect("clock");
    let t = chrono::DateTime::from_timestamp_millis(now + secs * 1000).expect("time");
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// Every Range form a player or downloader sends, compared with the file itself.
fn check_ranges(d: &Dashcam, name: &str, file: &Path) {
    let data = std::fs::read(file).expect("read segment");
    let len = data.len() as u64;
    let url = d.url(&format!("/footage/{name}"));
    let full = get(&url, &[]);
    assert_eq!(full.0, 200);
    assert!(full.2 == data, "the whole download differs from {name}");
    let tag = header(&full, "etag").expect("ETag").to_string();
    let modified = header(&full, "last-modified")
        .expect("Last-Modified")
        .to_string();
    assert_eq!(header(&full, "accept-ranges"), Some("bytes"));
    let ctype = if name.ends_with(".mp4") {
        "video/mp4"
    } else {
        "video/x-msvideo"
    };
    assert_eq!(header(&full, "content-type"), Some(ctype));
    for (range, start, end) in [
        ("bytes=0-0".to_string(), 0, 0),
        ("bytes=0-9".to_string(), 0, 9),
        ("bytes=0-65535".to_string(), 0, 65535),
        (format!("bytes={}-", len / 3), len / 3, len - 1),
        ("bytes=-500".to_string(), len - 500, len - 1),
        (format!("bytes=1000-{}", len * 4), 1000, len - 1),
        (
            format!("bytes={}-{}", len / 2, len / 2 + 123_456),
            len / 2,
            len / 2 + 123_456,
        ),
    ] {
        let end = end.min(len - 1);
        let a = get(&url, &[("Range", &range)]);
        assert_eq!(a.0, 206, "{range}");
        assert_eq!(
            header(&a, "content-range"),
            Some(format!("bytes {start}-{end}/{len}").as_str()),
            "{range}"
        );
        assert!(
            a.2 == data[start as usize..=end as usize],
            "{range}: bytes differ from the file"
        );
    }
    // Two ranges: multipart/byteranges, each part's bytes checked.
    let a = get(&url, &[("Range", "bytes=0-99,2000-2099")]);
    assert_eq!(a.0, 206);
    let ct = header(&a, "content-type").expect("type").to_string();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart");
    let body = a.2.clone();
    let mut found = 0;
    for (start, part) in [(0usize, &data[0..100]), (2000, &data[2000..2100])] {
        let marker = format!("Content-Range: bytes {start}-{}/{len}\r\n\r\n", start + 99);
        let at = find(&body, marker.as_bytes()).expect("part header") + marker.len();
        assert!(&body[at..at + 100] == part, "part at {start} differs");
        found += 1;
    }
    assert_eq!(found, 2);
    assert!(find(&body, format!("--{boundary}--").as_bytes()).is_some());
    // If-Range: the same tag or date gives the range, another the whole file.
    let a = get(&url, &[("Range", "bytes=10-19"), ("If-Range", &tag)]);
    assert_eq!((a.0, a.2.len()), (206, 10));
    let a = get(&url, &[("Range", "bytes=10-19"), ("If-Range", &modified)]);
    assert_eq!(a.0, 206);
    let a = get(&url, &[("Range", "bytes=10-19"), ("If-Range", "\"stale\"")]);
    assert_eq!((a.0, a.2.len() as u64), (200, len));
    // Conditional GET and the end of the file.
    let a = get(&url, &[("If-None-Match", &tag)]);
    assert_eq!((a.0, a.2.len()), (304, 0));
    let a = get(&url, &[("Range", &format!("bytes={len}-"))]);
    assert_error(&a, 416, "range past the end");
    assert_eq!(
        header(&a, "content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    let h = head(&url);
    assert_eq!(h.0, 200);
    assert_eq!(header(&h, "content-length"), Some(len.to_string().as_str()));
    assert!(h.2.is_empty());
    let a = get(&format!("{url}?download=1"), &[("Range", "bytes=0-0")]);
    let cd = header(&a, "content-disposition").expect("disposition");
    assert!(cd.starts_with("attachment;") && cd.contains(name), "{cd}");
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `clip` decodes to a run of consecutive frames of the segments.
fn assert_frames_from(clip: &Path, segments: &[&Path], what: &str) {
    assert_eq!(common::probe_errors(clip), "", "{what}: ffprobe");
    assert_eq!(common::decode_errors(clip), "", "{what}: decode");
    let got = common::framemd5(clip);
    let all = common::framemd5_all(segments);
    assert!(!got.is_empty(), "{what}: no frames");
    let at = all.windows(got.len()).position(|w| w == got.as_slice());
    assert!(
        at.is_some(),
        "{what}: its {} frames are not a run of the segments' {} frames",
        got.len(),
        all.len()
    );
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test.sh installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of a sample in the exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn mjpeg_recording_status_footage_locks_clips_replay_record_switch_and_metrics() {
    let d = web::start(
        Feed::TestPattern,
        "[test_pattern]\nwidth = 320\nheight = 180\nfps = 30\n",
        "",
        &["--segment-seconds", "2"],
    );
    // Status while recording.
    let s = d.status();
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["source"], "test");
    assert!(s["clock_local"].as_str().is_some_and(|c| c.len() == 19));
    assert!(s["clock_synchronised"].is_boolean() && s["clock_suspect"].is_boolean());
    let closed = d.wait_closed(3, scaled(30.0));
    let s = d.status();
    assert_eq!(s["state"], "recording", "{s}");
    assert_eq!(s["recording_wanted"], true);
    assert!(s["frames_on_disk"].as_u64() > Some(60), "{s}");
    assert_eq!(s["frames_dropped"], 0);
    assert!(
        s["last_sync_age_s"].as_f64().is_some_and(|a| a < 2.0),
        "{s}"
    );
    assert!(s["quota_bytes"].as_u64() > Some(0) && s["free_bytes"].as_u64() > Some(0));
    assert_eq!(s["drive"], "ok");
    let frames_before = s["frames_on_disk"].as_u64().unwrap_or(0);
    assert!(wait_until(scaled(5.0), || d.status()["frames_on_disk"]
        .as_u64()
        .unwrap_or(0)
        > frames_before));

    // The listing: metadata fields and kind; the open one marked.
    let all = d.segments("");
    assert!(all.iter().any(|s| s["recording"] == true), "{all:?}");
    let first = closed[0].clone();
    let name = first["name"].as_str().expect("name").to_string();
    assert_eq!(first["kind"], "loop");
    for key in [
        "frames",
        "duration_s",
        "codec",
        "width",
        "start_wall",
        "close_reason",
    ] {
        assert!(!first[key].is_null(), "{key} missing in {first}");
    }
    assert_eq!(first["codec"], "mjpeg");
    assert_eq!(d.segments("?kind=locked").len(), 0);
    let window = d.segments(&format!("?from={}&to={}", local(&d, -1), local(&d, 0)));
    assert!(window.len() < all.len(), "from/to filter: {window:?}");
    assert_error(
        &get(&d.url("/api/segments?kind=junk"), &[]),
        400,
        "bad kind",
    );
    assert_error(
        &get(&d.url("/api/segments?from=yesterday"), &[]),
        400,
        "bad from",
    );

    // Footage bytes with every kind of Range.
    check_ranges(&d, &name, &file_of(&d.footage(), &first));
    assert_error(
        &get(&d.url("/footage/20000101-000000_999999.avi"), &[]),
        404,
        "unknown",
    );

    // The replay: JPEG parts at the recorded rate from the start time.
    let replay = get(&d.url(&format!("/replay/{name}?start=1")), &[]);
    assert_eq!(replay.0, 200);
    assert!(
        header(&replay, "content-type").is_some_and(|t| t.starts_with("multipart/x-mixed-replace"))
    );
    let frames = first["frames"].as_u64().expect("frames") as usize;
    let parts: Vec<&[u8]> = split_parts(&replay.2);
    assert_eq!(parts.len(), frames - 30, "one part per frame after 1 s");
    let tmp = d.dir.path().join("replay.mjpeg");
    std::fs::write(&tmp, parts.concat()).expect("write replay frames");
    let got = common::framemd5(&tmp);
    let want = common::framemd5(&file_of(&d.footage(), &first));
    assert_eq!(
        got,
        want[30..].to_vec(),
        "replayed frames differ from the segment's"
    );
    assert_error(
        &get(&d.url("/replay/nothing.avi"), &[]),
        404,
        "replay unknown",
    );

    // Lock by name moves it into locked/; delete of a locked one is refused; unlock.
    let a = post(&d.url("/api/lock"), &json!({ "name": name }), &[]);
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    assert!(d.footage().join("locked").join(&name).is_file());
    assert_eq!(d.segments("?kind=locked").len(), 1);
    assert_error(
        &delete(&d.url(&format!("/api/segments/{name}")), &[]),
        409,
        "delete locked",
    );
    let a = post(&d.url("/api/unlock"), &json!({ "name": name }), &[]);
    assert_eq!(a.0, 200);
    assert!(d.footage().join(&name).is_file());
    assert_error(
        &post(&d.url("/api/unlock"), &json!({ "name": name }), &[]),
        409,
        "unlock a loop segment",
    );
    assert_error(
        &post(&d.url("/api/lock"), &json!({ "name": "nope.avi" }), &[]),
        404,
        "lock unknown",
    );
    assert_error(
        &post(&d.url("/api/lock"), &json!({}), &[]),
        400,
        "lock nothing",
    );
    // The segment being written cannot be deleted.
    let current = d.status()["current_segment"]
        .as_str()
        .expect("current")
        .to_string();
    assert_error(
        &delete(&d.url(&format!("/api/segments/{current}")), &[]),
        409,
        "delete the open segment",
    );
    // Delete a closed loop segment: gone from the drive.
    let victim = closed[1]["name"].as_str().expect("name").to_string();
    let a = delete(&d.url(&format!("/api/segments/{victim}")), &[]);
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    assert!(!d.footage().join(&victim).exists());
    assert!(!d.footage().join(&victim).with_extension("json").exists());
    assert_error(
        &delete(&d.url(&format!("/api/segments/{victim}")), &[]),
        404,
        "delete twice",
    );
    // Event lock: the open segment is locked when it closes.
    let a = post(&d.url("/api/lock"), &json!({ "now": true }), &[]);
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    let files: Vec<String> = json(&a)["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    let open_one = d.status()["current_segment"].as_str().map(str::to_string);
    assert!(files.iter().any(|f| Some(f) == open_one.as_ref()) || !files.is_empty());
    let locked_name = files.last().expect("a file").clone();
    assert!(
        wait_until(scaled(15.0), || d
            .footage()
            .join("locked")
            .join(&locked_name)
            .is_file()),
        "{locked_name} not in locked/"
    );

    // Clips: saved into saved/, and streamed without a file; both frames of the segments.
    let segs_now: Vec<Value> = d
        .segments("")
        .into_iter()
        .filter(|s| s["kind"] != "saved" && s["frames"].is_u64())
        .collect();
    let last = segs_now.last().expect("segments").clone();
    let start_ms = last["start_unix_ms"].as_i64().expect("start");
    let fmt = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("t")
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let (from, to) = (fmt(start_ms - 2000), fmt(start_ms + 1000));
    let a = post(
        &d.url("/api/clips"),
        &json!({ "from": from, "to": to, "metadata": "a deer" }),
        &[],
    );
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    let clip_name = json(&a)["file"].as_str().expect("file").to_string();
    let clip_path = d.footage().join("saved").join(&clip_name);
    let seg_paths: Vec<std::path::PathBuf> =
        segs_now.iter().map(|s| file_of(&d.footage(), s)).collect();
    let seg_refs: Vec<&Path> = seg_paths.iter().map(|p| p.as_path()).collect();
    assert_frames_from(&clip_path, &seg_refs, "saved clip");
    let saved = d.segments("?kind=saved");
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0]["metadata"], "a deer");
    let streamed = get(&d.url(&format!("/api/clip.mp4?from={from}&to={to}")), &[]);
    assert_eq!(streamed.0, 200, "{}", String::from_utf8_lossy(&streamed.2));
    let streamed_path = d.dir.path().join("streamed.avi");
    std::fs::write(&streamed_path, &streamed.2).expect("write");
    assert_frames_from(&streamed_path, &seg_refs, "streamed clip");
    assert_eq!(
        common::framemd5(&streamed_path),
        common::framemd5(&clip_path),
        "streamed and saved clips of one range differ"
    );
    assert!(
        std::fs::read_dir(d.footage().join(".web"))
            .map(|r| r.count())
            .unwrap_or(0)
            == 0,
        "a streamed clip left a file behind"
    );
    // Async: answered at once with the name; the file follows.
    let a = post(
        &d.url("/api/clips"),
        &json!({ "from": fmt(start_ms), "to": local(&d, 0), "async": true }),
        &[],
    );
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    let async_name = json(&a)["file"].as_str().expect("file").to_string();
    assert!(
        wait_until(scaled(20.0), || d
            .footage()
            .join("saved")
            .join(&async_name)
            .is_file()),
        "async clip {async_name} never written"
    );
    // Bad ranges.
    assert_error(
        &post(
            &d.url("/api/clips"),
            &json!({ "from": to, "to": from }),
            &[],
        ),
        400,
        "from after to",
    );
    assert_error(
        &post(
            &d.url("/api/clips"),
            &json!({ "from": "2001-01-01T00:00:00", "to": "2001-01-01T00:01:00" }),
            &[],
        ),
        404,
        "no footage",
    );
    assert_error(
        &post(
            &d.url("/api/clips"),
            &json!({ "from": "noon", "to": to }),
            &[],
        ),
        400,
        "bad time",
    );
    assert_error(
        &get(&d.url("/api/clip.mp4?from=2026-13-01T00:00:00&to=x"), &[]),
        400,
        "bad stream range",
    );

    // Record off: the segment in progress is closed whole; the page stays; record on.
    let a = post(&d.url("/api/record"), &json!({ "on": false }), &[]);
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    assert!(wait_until(scaled(10.0), || d.status()["state"] == "stopped"));
    let s = d.status();
    assert_eq!(s["recording_wanted"], false);
    assert!(
        s["reason"].as_str().is_some_and(|r| r.contains("off")),
        "{s}"
    );
    let frames_off = s["frames_on_disk"].as_u64().expect("frames");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.status()["frames_on_disk"].as_u64(), Some(frames_off));
    assert_eq!(
        get(&d.url("/"), &[]).0,
        200,
        "the page while recording is off"
    );
    // The last segment (loop or, through the event lock, locked) was closed by the stop.
    let mut recorded: Vec<Value> = d
        .segments("")
        .into_iter()
        .filter(|s| s["kind"] != "saved")
        .collect();
    recorded.sort_by_key(|s| s["sequence"].as_u64());
    let stopped = recorded.last().expect("a segment").clone();
    assert_eq!(stopped["close_reason"], "stop", "{stopped}");
    let stopped_path = file_of(&d.footage(), &stopped);
    assert_eq!(common::decode_errors(&stopped_path), "");
    assert_eq!(
        common::framemd5(&stopped_path).len() as u64,
        stopped["frames"].as_u64().expect("frames")
    );
    // Footage actions work while off (no keeper runs: a one-off one does it).
    let unlocked = recorded
        .iter()
        .rev()
        .find(|s| s["kind"] == "loop")
        .expect("a loop segment");
    let a = post(
        &d.url("/api/lock"),
        &json!({ "name": unlocked["name"] }),
        &[],
    );
    assert_eq!(
        a.0,
        200,
        "lock while off: {}",
        String::from_utf8_lossy(&a.2)
    );
    let name = unlocked["name"].as_str().expect("name");
    assert!(d.footage().join("locked").join(name).is_file());
    assert_error(
        &post(&d.url("/api/lock"), &json!({ "now": true }), &[]),
        409,
        "event lock while off",
    );
    let a = post(&d.url("/record/on"), &json!({}), &[]);
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    assert!(wait_until(scaled(15.0), || {
        let s = d.status();
        s["state"] == "recording" && s["frames_on_disk"].as_u64() > Some(frames_off)
    }));
    assert_eq!(post(&d.url("/record/off"), &json!({}), &[]).0, 200);
    assert!(wait_until(scaled(10.0), || d.status()["state"] == "stopped"));
    assert_eq!(
        post(&d.url("/api/record"), &json!({ "on": true }), &[]).0,
        200
    );
    assert!(wait_until(scaled(15.0), || d.status()["state"] == "recording"));
    assert_error(
        &post(&d.url("/api/record"), &json!({ "on": "yes" }), &[]),
        400,
        "record with a string",
    );

    // Clock: applied, refused as synchronised, or not permitted; never a bad state.
    let now = chrono::Utc::now().timestamp_millis();
    let a = post(&d.url("/api/clock"), &json!({ "unix_ms": now }), &[]);
    assert!(
        matches!(a.0, 200 | 403 | 409),
        "{}",
        String::from_utf8_lossy(&a.2)
    );
    assert_error(
        &post(&d.url("/api/clock"), &json!({ "unix_ms": 5 }), &[]),
        400,
        "implausible time",
    );

    // Metrics: valid for promtool, with the numbers of the status.
    let m = get(&d.url("/metrics"), &[]);
    assert_eq!(m.0, 200);
    assert!(header(&m, "content-type").is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let text = String::from_utf8(m.2).expect("utf-8");
    promtool_check(&text);
    assert!(sample(&text, "dashcam_frames_written_total").is_some_and(|v| v >= frames_off as f64));
    assert_eq!(sample(&text, "dashcam_frames_dropped_total"), Some(0.0));
    assert!(sample(&text, "dashcam_segments_closed_total").is_some_and(|v| v >= 4.0));
    assert!(sample(&text, "dashcam_http_requests_total{code=\"200\"}").is_some_and(|v| v > 20.0));
    assert!(sample(&text, "dashcam_http_requests_total{code=\"409\"}").is_some_and(|v| v >= 1.0));
    assert!(text.contains("dashcam_build_info{version=\""));
    assert!(sample(&text, "dashcam_free_bytes").is_some_and(|v| v > 0.0));

    // Unknown paths and methods.
    assert_error(&get(&d.url("/api/nothing"), &[]), 404, "unknown path");
    assert_error(&get(&d.url("/api/lock"), &[]), 405, "GET on a POST call");
    let err = d.stop();
    assert!(!err.contains("ERROR"), "errors logged:\n{err}");
}

/// The JPEG bodies of a multipart/x-mixed-replace stream.
fn split_parts(body: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(at) = find(rest, b"Content-Length: ") {
        let after = &rest[at + 16..];
        let eol = find(after, b"\r\n").expect("eol");
        let n: usize = std::str::from_utf8(&after[..eol])
            .expect("text")
            .parse()
            .expect("length");
        let start = find(after, b"\r\n\r\n").expect("head end") + 4;
        out.push(&after[start..start + n]);
        rest = &after[start + n..];
    }
    out
}

#[test]
fn h264_from_a_pipe_mp4_ranges_and_a_streamed_mp4_clip() {
    let input = common::input("headers_once.h264");
    let d = web::start(
        Feed::Stdin(input),
        "",
        "",
        &["--segment-seconds", "2", "--idle-timeout", "2"],
    );
    // 10 s of input; at least 4 closed segments, then idle.
    let closed = d.wait_closed(4, scaled(40.0));
    let first = &closed[0];
    assert_eq!(first["codec"], "h264");
    let name = first["name"].as_str().expect("name");
    assert!(name.ends_with(".mp4"));
    check_ranges(&d, name, &file_of(&d.footage(), first));
    // A clip over a segment boundary, streamed as MP4.
    let start_ms = closed[1]["start_unix_ms"].as_i64().expect("start");
    let fmt = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("t")
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let url = d.url(&format!(
        "/api/clip.mp4?from={}&to={}&download=1",
        fmt(start_ms - 1000),
        fmt(start_ms + 1000)
    ));
    let a = get(&url, &[]);
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    assert_eq!(header(&a, "content-type"), Some("video/mp4"));
    assert!(header(&a, "content-disposition").is_some_and(|c| c.contains(".mp4")));
    let clip = d.dir.path().join("clip.mp4");
    std::fs::write(&clip, &a.2).expect("write");
    let paths: Vec<std::path::PathBuf> = closed.iter().map(|s| file_of(&d.footage(), s)).collect();
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    assert_frames_from(&clip, &refs, "streamed MP4 clip");
    assert!(common::first_packet_is_key(&clip));
    // The replay is for AVI only.
    assert_error(
        &get(&d.url(&format!("/replay/{name}")), &[]),
        400,
        "replay of an MP4",
    );
    let s = d.status();
    assert_eq!(s["frames_dropped"], 0, "{s}");
    d.stop();
}
