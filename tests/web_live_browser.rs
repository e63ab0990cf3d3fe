//! The live view in a real browser: Debian's Chromium, headless, at a 390x844 phone
//! viewport, driven over the DevTools protocol, against the real binary recording in real
//! time. Screenshots go to `target/web-screenshots/live-*.png`.
//!
//! What it proves:
//! - H.264 (1080p30, the Pi-like settings, fed in real time): the page's `<video>` plays
//!   through Media Source Extensions (`readyState` ≥ 3), its `currentTime` advances for
//!   10 s, the picture changes (two screenshots differ), and the latency from capture to
//!   display is under 1.5 s — measured independently: the input has its frame number
//!   burned in, read back from Chromium's screenshot (decoded by ffmpeg), and compared
//!   with when that frame was captured (the recording's start time plus the frame's
//!   place, the file being paced in real time). The latency the page shows agrees.
//!   The full-screen button puts the picture full screen.
//! - A resolution change mid-stream (1280x720, then 640x360) keeps the view going.
//! - MJPEG: the `<img>` updates at the capped rate (`preview_fps`).
//! - The clear messages: too many viewers, live off on the page and in the configuration.
//!
//! Chromium has no native HLS, so the iPhone fallback is judged by ffprobe in
//! `tests/web_live.rs`, not here.

#[path = "common/cdp.rs"]
mod cdp;
mod common;
#[path = "common/web.rs"]
mod web;

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use cdp::Browser;
use common::{scaled, wait_until};
use web::Feed;

const W: u32 = 390;
const H: u32 = 844;

/// One browser test at a time: each decodes video, the machine has two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    match ONE_AT_A_TIME.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

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

fn browser() -> Browser {
    assert!(
        cdp::chromium().is_some(),
        "Debian's chromium is not installed (scripts/test.sh installs it)"
    );
    Browser::launch(W, H)
}

fn shot(b: &mut Browser, name: &str) {
    let path = cdp::screenshot_dir().join(name);
    b.screenshot(&path);
    eprintln!("screenshot: {}", path.display());
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The picture's rectangle inside the `<video>` (CSS px; object-fit: contain).
fn picture_rect(b: &mut Browser) -> (f64, f64, f64, f64) {
    let r = b.eval(
        r#"(() => {
            const v = document.getElementById('live-video');
            const r = v.getBoundingClientRect();
            const vw = v.videoWidth || 16, vh = v.videoHeight || 9;
            const s = Math.min(r.width / vw, r.height / vh);
            const w = vw * s, h = vh * s;
            return [r.left + (r.width - w) / 2, r.top + (r.height - h) / 2, w, h];
        })()"#,
    );
    let f = |i: usize| r[i].as_f64().unwrap_or(0.0);
    (f(0), f(1), f(2), f(3))
}

/// A PNG of a region of the page (CSS px).
fn clip_png(b: &mut Browser, x: f64, y: f64, w: f64, h: f64) -> Vec<u8> {
    let r = b.call(
        "Page.captureScreenshot",
        json!({ "format": "png", "clip": { "x": x, "y": y, "width": w, "height": h, "scale": 1 } }),
    );
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(r["data"].as_str().expect("png data"))
        .expect("base64")
}

/// The frame number burned into the picture shown now (12 cells, most significant bit
/// first, in the top left 1152/1920 x 96/1080 of the picture), read by ffmpeg from
/// Chromium's screenshot; and the wall time (ms) right after the screenshot was taken.
fn frame_shown(b: &mut Browser, tmp: &Path, cells_w: f64, cells_h: f64) -> (Option<u32>, i64) {
    let (x, y, w, h) = picture_rect(b);
    let png = clip_png(b, x, y, w * cells_w, h * cells_h);
    let at = now_ms();
    let file = tmp.join("cells.png");
    std::fs::write(&file, &png).expect("write png");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&file)
        .args([
            "-vf",
            "scale=120:10:flags=area",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    if out.stdout.len() != 1200 {
        return (None, at);
    }
    let mut n = 0u32;
    for cell in 0..12 {
        let v = out.stdout[5 * 120 + cell * 10 + 5];
        // A cell is white or black; anything between is a frame being replaced.
        if (60..196).contains(&v) {
            return (None, at);
        }
        n = n << 1 | u32::from(v >= 128);
    }
    (Some(n), at)
}

fn video_state(b: &mut Browser) -> Value {
    b.eval(
        r#"(() => { const v = document.getElementById('live-video');
            return { rs: v.readyState, t: v.currentTime, w: v.videoWidth, h: v.videoHeight,
                     paused: v.paused, hidden: v.classList.contains('hidden'),
                     remote: v.disableRemotePlayback,
                     latency: document.getElementById('live-latency').dataset.seconds || null,
                     msg: document.getElementById('live-msg').textContent,
                     state: document.getElementById('live-state').textContent }; })()"#,
    )
}

/// The wall time (ms) of the first frame of the recording: the first segment's metadata.
fn first_frame_ms(d: &web::Dashcam) -> i64 {
    let segs = d.wait_closed(1, scaled(30.0));
    segs[0]["start_unix_ms"].as_i64().expect("start_unix_ms")
}

#[test]
fn h264_live_view_plays_through_mse_with_under_1_5_s_latency() {
    let _one = serial();
    let input = live_input("live1080.h264");
    let d = web::start(Feed::Stdin(input), "", "", &["--segment-seconds", "4"]);
    let tmp = common::tmpdir("live-browser");
    let mut b = browser();
    b.navigate(&d.url("/"));
    assert!(
        b.wait_for(
            "document.getElementById('live-video').readyState >= 3",
            scaled(20.0)
        ),
        "the live video does not play: {}\nconsole: {:?}",
        video_state(&mut b),
        b.console
    );
    let s = video_state(&mut b);
    assert_eq!(s["remote"], true, "disableRemotePlayback: {s}");
    assert_eq!(
        (s["w"].as_u64(), s["h"].as_u64()),
        (Some(1920), Some(1080)),
        "{s}"
    );
    assert!(
        s["state"].as_str().is_some_and(|t| t.contains("H.264")),
        "{s}"
    );
    let t0 = first_frame_ms(&d);

    // currentTime advances for 10 s, and stays ready.
    let mut times = Vec::new();
    for _ in 0..11 {
        let s = video_state(&mut b);
        assert!(s["rs"].as_u64() >= Some(3), "readyState fell: {s}");
        times.push(s["t"].as_f64().unwrap_or(0.0));
        std::thread::sleep(Duration::from_secs(1));
    }
    for w in times.windows(2) {
        assert!(w[1] > w[0], "currentTime does not advance: {times:?}");
    }
    let advanced = times[10] - times[0];
    assert!(
        (8.5..=11.5).contains(&advanced),
        "{advanced:.2} s of video in 10 s: {times:?}"
    );

    // The picture changes.
    let (x, y, w, h) = picture_rect(&mut b);
    let p1 = clip_png(&mut b, x, y + h * 0.2, w, h * 0.6);
    std::thread::sleep(Duration::from_millis(700));
    let p2 = clip_png(&mut b, x, y + h * 0.2, w, h * 0.6);
    assert_ne!(p1, p2, "two screenshots of the live picture are the same");
    shot(&mut b, "live-01-h264-playing.png");

    // Latency: the frame number on screen against its capture time.
    let mut lat = Vec::new();
    let mut shown = Vec::new();
    let mut page = Vec::new();
    for _ in 0..8 {
        let (n, at) = frame_shown(&mut b, tmp.path(), 1152.0 / 1920.0, 96.0 / 1080.0);
        if let Some(n) = n {
            let captured = t0 + (i64::from(n) * 1000 + 15) / 30;
            lat.push((at - captured) as f64 / 1000.0);
            shown.push(n);
        }
        if let Some(l) = video_state(&mut b)["latency"]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
        {
            page.push(l);
        }
        std::thread::sleep(Duration::from_millis(600));
    }
    eprintln!("frames on screen {shown:?}; latency {lat:?} s; the page says {page:?} s");
    assert!(
        lat.len() >= 5,
        "the frame number could be read {} times of 8",
        lat.len()
    );
    for w in shown.windows(2) {
        assert!(w[1] > w[0], "the frame on screen moves on: {shown:?}");
    }
    let worst = lat.iter().cloned().fold(f64::MIN, f64::max);
    assert!(
        worst < 1.5,
        "latency from capture to display {worst:.2} s: {lat:?}"
    );
    assert!(lat.iter().all(|&l| l > 0.0), "{lat:?}");
    assert!(!page.is_empty(), "the page shows its latency");
    let page_mean = page.iter().sum::<f64>() / page.len() as f64;
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    assert!(
        (page_mean - mean).abs() < 0.5,
        "the page says {page_mean:.2} s, measured {mean:.2} s"
    );
    assert!(
        b.text("#live-latency").starts_with("LIVE "),
        "{}",
        b.text("#live-latency")
    );

    // Full screen.
    b.tap("#live-full");
    assert!(
        b.wait_for(
            "document.fullscreenElement && document.fullscreenElement.id === 'live-box'",
            scaled(5.0)
        ),
        "the full-screen button"
    );
    std::thread::sleep(Duration::from_millis(500));
    shot(&mut b, "live-02-h264-fullscreen.png");
    b.eval("document.exitFullscreen()");
    d.stop();
}

#[test]
fn a_resolution_change_keeps_the_view_going() {
    let _one = serial();
    let input = live_input("live_res.h264");
    let d = web::start(Feed::Stdin(input), "", "", &[]);
    let mut b = browser();
    b.navigate(&d.url("/"));
    assert!(
        b.wait_for(
            "document.getElementById('live-video').readyState >= 3 && document.getElementById('live-video').videoWidth === 1280",
            scaled(15.0)
        ),
        "1280x720 does not play: {}",
        video_state(&mut b)
    );
    shot(&mut b, "live-03-before-resolution-change.png");
    // The change comes 10 s into the input.
    assert!(
        b.wait_for(
            "document.getElementById('live-video').videoWidth === 640",
            scaled(20.0)
        ),
        "the new size is not shown: {}\nconsole: {:?}",
        video_state(&mut b),
        b.console
    );
    let t1 = video_state(&mut b)["t"].as_f64().unwrap_or(0.0);
    std::thread::sleep(Duration::from_secs(4));
    let s = video_state(&mut b);
    let t2 = s["t"].as_f64().unwrap_or(0.0);
    assert!(s["rs"].as_u64() >= Some(3), "{s}");
    assert!(
        t2 - t1 > 3.0,
        "after the change currentTime went {t1:.2} -> {t2:.2}: {s}"
    );
    assert_eq!(
        (s["w"].as_u64(), s["h"].as_u64()),
        (Some(640), Some(360)),
        "{s}"
    );
    shot(&mut b, "live-04-after-resolution-change.png");
    d.stop();
}

#[test]
fn mjpeg_live_view_updates_at_the_capped_rate() {
    let _one = serial();
    let d = web::start(
        Feed::TestPattern,
        "[test_pattern]\nwidth = 640\nheight = 360\nfps = 30\n",
        "preview_fps = 2",
        &[],
    );
    let mut b = browser();
    b.navigate(&d.url("/"));
    assert!(
        b.wait_for(
            "Number(document.getElementById('live-img').dataset.frames || 0) >= 2",
            scaled(15.0)
        ),
        "no MJPEG picture: {}",
        b.text("#live-msg")
    );
    let frames = |b: &mut Browser| {
        b.eval("Number(document.getElementById('live-img').dataset.frames || 0)")
            .as_u64()
            .unwrap_or(0)
    };
    let pixels = |b: &mut Browser| {
        b.eval(
            r#"(() => { const img = document.getElementById('live-img');
                if (!img.naturalWidth) return null;
                const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
                const g = c.getContext('2d'); g.drawImage(img, 0, 0);
                const d = g.getImageData(0, 0, c.width, c.height).data;
                let h = 2166136261; for (let i = 0; i < d.length; i += 13) { h ^= d[i]; h = Math.imul(h, 16777619) >>> 0; }
                return h; })()"#,
        )
    };
    let f0 = frames(&mut b);
    let start = Instant::now();
    let mut changes = 0;
    let mut last = pixels(&mut b);
    while start.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(50));
        let p = pixels(&mut b);
        // A part being swapped in can leave the <img> without a picture for an instant.
        if p.is_null() {
            continue;
        }
        if last.is_null() {
            last = p;
        } else if p != last {
            changes += 1;
            last = p;
        }
    }
    let f1 = frames(&mut b);
    let rate = (f1 - f0) as f64 / start.elapsed().as_secs_f64();
    eprintln!(
        "MJPEG <img>: {} pictures in 6 s ({rate:.2}/s), {changes} pixel changes",
        f1 - f0
    );
    assert!(
        (1.5..=2.5).contains(&rate),
        "{rate:.2} pictures a second at preview_fps = 2"
    );
    assert!(
        (9..=15).contains(&changes),
        "{changes} changes of the picture in 6 s"
    );
    let s = b.text("#live-state");
    assert!(s.contains("MJPEG"), "{s}");
    shot(&mut b, "live-05-mjpeg.png");
    d.stop();
}

#[test]
fn unavailable_live_views_say_why() {
    let _one = serial();
    // Too many viewers: max_viewers = 1, and one watching already.
    let d = web::start(
        Feed::TestPattern,
        "[test_pattern]\nwidth = 320\nheight = 180\n",
        "max_viewers = 1",
        &[],
    );
    let mut other = TcpStream::connect(&d.addr).expect("connect");
    use std::io::Write;
    other
        .write_all(format!("GET /api/live.mjpeg HTTP/1.1\r\nHost: {}\r\n\r\n", d.addr).as_bytes())
        .expect("request");
    assert!(wait_until(scaled(5.0), || web::json(&web::get(
        &d.url("/api/live"),
        &[]
    ))["viewers"]
        == 1));
    let mut b = browser();
    b.navigate(&d.url("/"));
    assert!(
        b.wait_for(
            "document.getElementById('live-msg').textContent.startsWith('Too many viewers')",
            scaled(10.0)
        ),
        "{}",
        b.text("#live-msg")
    );
    shot(&mut b, "live-06-too-many-viewers.png");
    // The other viewer leaves: the page gets in by itself.
    drop(other);
    assert!(
        b.wait_for(
            "Number(document.getElementById('live-img').dataset.frames || 0) >= 1",
            scaled(20.0)
        ),
        "the page does not get in after the other viewer left: {}",
        b.text("#live-msg")
    );
    // The page's own switch.
    b.tap("#live-toggle");
    assert!(b.wait_for(
        "document.getElementById('live-msg').textContent.startsWith('The live view is off')",
        scaled(5.0)
    ));
    assert!(wait_until(scaled(10.0), || web::json(&web::get(
        &d.url("/api/live"),
        &[]
    ))["viewers"]
        == 0));
    shot(&mut b, "live-07-switched-off-on-the-page.png");
    b.tap("#live-toggle");
    assert!(b.wait_for(
        "!document.getElementById('live-msg').textContent.startsWith('The live view is off')",
        scaled(5.0)
    ));
    d.stop();

    // Off in the configuration.
    let d = web::start(
        Feed::TestPattern,
        "[test_pattern]\nwidth = 320\nheight = 180\n",
        "live = false",
        &[],
    );
    b.navigate(&d.url("/"));
    assert!(
        b.wait_for(
            "document.getElementById('live-msg').textContent.includes('live = false')",
            scaled(10.0)
        ),
        "{}",
        b.text("#live-msg")
    );
    shot(&mut b, "live-08-off-in-the-configuration.png");
    d.stop();
}
