//! The phone page in a real browser: Debian's Chromium, headless, at a 390x844 phone
//! viewport with touch, driven over the DevTools protocol, against the real binary
//! recording. Each screen is saved under `target/web-screenshots/` to be looked at.
//!
//! What it proves: the page shows "Recording" and a frame count that grows; the lock
//! button moves the segment being recorded into `locked/`; an MJPEG AVI plays through the
//! replay (its pixels change frame by frame); delete asks and deletes; the clip form
//! yields a playable clip; record off/on works and survives a reload; a vanished drive is
//! said so; an MP4 segment plays to its end in `<video>` with the duration of its
//! metadata; the login screen works.

#[path = "common/cdp.rs"]
mod cdp;
mod common;
#[path = "common/web.rs"]
mod web;

use std::time::Duration;

use serde_json::json;

use cdp::Browser;
use common::{scaled, wait_until};
use web::Feed;

const W: u32 = 390;
const H: u32 = 844;

fn shot(b: &mut Browser, name: &str) {
    let path = cdp::screenshot_dir().join(name);
    b.screenshot(&path);
    eprintln!("screenshot: {}", path.display());
}

fn frames_shown(b: &mut Browser) -> u64 {
    b.text("#st-frames").replace(',', "").parse().unwrap_or(0)
}

/// A hash of the replay image's pixels now (the img drawn into a canvas).
fn replay_pixels(b: &mut Browser) -> String {
    b.eval(
        r#"(() => {
            const img = document.getElementById('player-img');
            if (!img.naturalWidth) return '';
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const g = c.getContext('2d');
            g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data;
            let h = 2166136261;
            for (let i = 0; i < d.length; i += 7) { h ^= d[i]; h = Math.imul(h, 16777619) >>> 0; }
            return img.naturalWidth + 'x' + img.naturalHeight + ':' + h;
        })()"#,
    )
    .as_str()
    .unwrap_or("")
    .to_string()
}

#[test]
fn phone_page_mjpeg_status_lock_replay_delete_clip_record_switch_and_drive_gone() {
    if cdp::chromium().is_none() {
        panic!("Debian's chromium is not installed (scripts/test.sh installs it)");
    }
    let d = web::start(
        Feed::TestPattern,
        "[test_pattern]\nwidth = 320\nheight = 180\nfps = 30\n",
        "",
        &["--segment-seconds", "3"],
    );
    d.wait_closed(2, scaled(30.0));
    let mut b = Browser::launch(W, H);
    b.navigate(&d.url("/"));

    // Status: recording, and the frame count grows.
    assert!(
        b.wait_for(
            "document.getElementById('state-word').textContent === 'Recording'",
            scaled(10.0)
        ),
        "state: {}",
        b.text("#state-word")
    );
    let f0 = frames_shown(&mut b);
    assert!(
        wait_until(scaled(10.0), || frames_shown(&mut b) > f0 + 30),
        "frames do not grow"
    );
    shot(&mut b, "01-status-recording.png");

    // Lock incident: the segment being recorded ends up in locked/.
    let current = d.status()["current_segment"]
        .as_str()
        .expect("current")
        .to_string();
    b.tap("#lock-now");
    assert!(b.wait_for(
        "!document.getElementById('toast').classList.contains('hidden')",
        scaled(5.0)
    ));
    let toast = b.text("#toast");
    assert!(toast.starts_with("Incident locked"), "{toast}");
    shot(&mut b, "02-lock-incident.png");
    assert!(
        wait_until(scaled(15.0), || d
            .footage()
            .join("locked")
            .join(&current)
            .is_file()),
        "{current} not moved into locked/"
    );

    // Footage, grouped by day and hour, locked ones marked.
    b.tap(".tab[data-view=footage]");
    assert!(b.wait_for(
        &format!("!!document.querySelector('.seg.locked[data-name=\"{current}\"]')"),
        scaled(10.0)
    ));
    assert!(b.eval("document.querySelectorAll('.day h2').length >= 1") == json!(true));
    assert!(b.eval("document.querySelectorAll('.hour h3').length >= 1") == json!(true));
    shot(&mut b, "03-footage.png");

    // An AVI plays through the replay: the picture changes with the frames.
    let loop_seg = d
        .segments("?kind=loop")
        .into_iter()
        .find(|s| s["frames"].is_u64())
        .expect("a closed loop segment");
    let name = loop_seg["name"].as_str().expect("name").to_string();
    b.tap(&format!(".seg[data-name=\"{name}\"] .play"));
    assert!(b.wait_for(
        "document.getElementById('player-img').naturalWidth === 320",
        scaled(10.0)
    ));
    let p1 = replay_pixels(&mut b);
    std::thread::sleep(Duration::from_millis(700));
    let p2 = replay_pixels(&mut b);
    assert!(
        p1.starts_with("320x180:") && p1 != p2,
        "replay does not move: {p1} {p2}"
    );
    assert!(
        b.text("#replay-time").contains(" / 0:03"),
        "{}",
        b.text("#replay-time")
    );
    shot(&mut b, "04-replay.png");
    b.tap("#player-close");

    // Delete asks first, then deletes the files.
    let victim = d
        .segments("?kind=loop")
        .into_iter()
        .find(|s| s["frames"].is_u64() && s["name"] != name.as_str())
        .map(|s| s["name"].as_str().unwrap_or("").to_string())
        .expect("another loop segment");
    b.tap(&format!(".seg[data-name=\"{victim}\"] .del"));
    assert!(b.wait_for(
        "!document.getElementById('confirm').classList.contains('hidden')",
        scaled(5.0)
    ));
    assert!(b.text("#confirm-text").contains(&victim));
    shot(&mut b, "05-confirm-delete.png");
    assert!(
        d.footage().join(&victim).is_file(),
        "deleted before the answer"
    );
    b.tap("#confirm-yes");
    assert!(
        wait_until(scaled(10.0), || !d.footage().join(&victim).exists()),
        "{victim} not deleted"
    );

    // The clip form yields a playable clip.
    b.tap(".tab[data-view=clip]");
    let start = loop_seg["start_unix_ms"].as_i64().expect("start");
    let fmt = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("t")
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    b.eval(&format!(
        "document.getElementById('clip-from').value = '{}'; document.getElementById('clip-to').value = '{}'; document.getElementById('clip-note').value = 'pothole'; true",
        fmt(start),
        fmt(start + 2000)
    ));
    b.tap("#clip-save");
    assert!(
        b.wait_for(
            "document.querySelector('#clip-result .play') !== null",
            scaled(20.0)
        ),
        "no clip: {}",
        b.text("#clip-result")
    );
    shot(&mut b, "06-clip-saved.png");
    let saved = d.segments("?kind=saved");
    assert_eq!(saved.len(), 1, "{saved:?}");
    let clip = d
        .footage()
        .join("saved")
        .join(saved[0]["name"].as_str().expect("name"));
    assert_eq!(common::decode_errors(&clip), "");
    assert!(
        common::packet_count(&clip) >= 30,
        "a 2-s clip of 30 fps footage"
    );
    b.tap("#clip-result .play");
    assert!(b.wait_for(
        "document.getElementById('player-img').naturalWidth === 320",
        scaled(10.0)
    ));
    b.tap("#player-close");

    // Record off, shown, kept over a reload; record on.
    b.tap(".tab[data-view=status]");
    b.tap("#record-toggle");
    assert!(
        b.wait_for(
            "document.getElementById('state-word').textContent === 'Recording is off'",
            scaled(15.0)
        ),
        "{}",
        b.text("#state-word")
    );
    b.navigate(&d.url("/"));
    assert!(b.wait_for(
        "document.getElementById('state-word').textContent === 'Recording is off'",
        scaled(10.0)
    ));
    assert_eq!(b.text("#record-toggle"), "Start recording");
    shot(&mut b, "07-recording-off.png");
    b.tap("#record-toggle");
    assert!(b.wait_for(
        "document.getElementById('state-word').textContent === 'Recording'",
        scaled(15.0)
    ));

    // The drive goes away: the page says so and stays usable; it comes back.
    let away = d.dir.path().join("footage.away");
    std::fs::rename(d.footage(), &away).expect("move the footage away");
    assert!(
        b.wait_for(
            "document.getElementById('state-word').textContent === 'No drive'",
            scaled(15.0)
        ),
        "state: {}",
        b.text("#state")
    );
    shot(&mut b, "08-drive-gone.png");
    b.tap(".tab[data-view=footage]");
    // The folder is gone, or (the writer may make it anew) holds only a new segment.
    assert!(b.wait_for(
        "['cannot be listed', 'No footage yet'].some(t => document.getElementById('footage-list').textContent.includes(t)) || document.querySelectorAll('.seg').length > 0 && document.querySelectorAll('.seg:not(.recording)').length === 0",
        scaled(10.0)
    ), "{}", b.text("#footage-list"));
    shot(&mut b, "09-footage-drive-gone.png");
    // Bring it back. The writer may have made a new empty folder (and begun a segment in
    // it) meanwhile: move what is there into the returning one first.
    let mut back = false;
    for _ in 0..20 {
        if let Ok(rd) = std::fs::read_dir(d.footage()) {
            for e in rd.flatten() {
                let _ = std::fs::rename(e.path(), away.join(e.file_name()));
            }
            let _ = std::fs::remove_dir(d.footage());
        }
        if std::fs::rename(&away, d.footage()).is_ok() {
            back = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(back, "cannot bring the footage folder back");
    b.tap(".tab[data-view=status]");
    assert!(
        b.wait_for(
            "document.getElementById('state-word').textContent === 'Recording' && document.getElementById('banner').classList.contains('hidden')",
            scaled(30.0)
        ),
        "after the drive came back: {} / {}",
        b.text("#state-word"),
        b.text("#banner")
    );
    let errors: Vec<&String> = b
        .console
        .iter()
        .filter(|c| c.starts_with("EXCEPTION"))
        .collect();
    assert!(errors.is_empty(), "page errors: {errors:?}");
    d.stop();
}

#[test]
fn phone_page_mp4_plays_to_its_end_and_login() {
    if cdp::chromium().is_none() {
        panic!("Debian's chromium is not installed (scripts/test.sh installs it)");
    }
    let dir = common::tmpdir("web-browser-pass");
    let pass = dir.path().join("web.pass");
    let mut cmd = common::dashcam();
    cmd.args(["password", "--file"])
        .arg(&pass)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("dashcam password");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"phone-page-pass\n")
        .expect("write");
    assert!(child.wait().expect("wait").success());
    let d = web::start(
        Feed::Stdin(common::input("headers_once.h264")),
        "",
        &format!("password_file = \"{}\"\n", pass.display()),
        &["--segment-seconds", "3", "--idle-timeout", "2"],
    );
    assert!(wait_until(scaled(40.0), || common::segments(&d.footage())
        .iter()
        .filter(|s| s.meta.is_some())
        .count()
        >= 2));
    let mut b = Browser::launch(W, H);
    b.navigate(&d.url("/"));
    assert!(b.wait_for(
        "!document.getElementById('login').classList.contains('hidden')",
        scaled(10.0)
    ));
    shot(&mut b, "10-login.png");
    b.eval("document.getElementById('login-password').value = 'wrong'; true");
    b.tap("#login button[type=submit]");
    assert!(b.wait_for(
        "document.getElementById('login-error').textContent.includes('wrong')",
        scaled(10.0)
    ));
    b.eval("document.getElementById('login-password').value = 'phone-page-pass'; true");
    b.tap("#login button[type=submit]");
    assert!(b.wait_for(
        "document.getElementById('login').classList.contains('hidden')",
        scaled(10.0)
    ));
    assert!(b.wait_for(
        "['Recording', 'Idle'].includes(document.getElementById('state-word').textContent)",
        scaled(10.0)
    ));
    shot(&mut b, "11-status-h264.png");

    // An MP4 segment plays to its end in <video>, as long as its metadata says.
    let seg = common::segments(&d.footage())
        .into_iter()
        .find(|s| s.meta.is_some())
        .expect("segment");
    let duration = seg.meta()["duration_s"].as_f64().expect("duration");
    b.tap(".tab[data-view=footage]");
    assert!(b.wait_for(
        &format!(
            "!!document.querySelector('.seg[data-name=\"{}\"] .play')",
            seg.name
        ),
        scaled(10.0)
    ));
    shot(&mut b, "12-footage-mp4.png");
    b.tap(&format!(".seg[data-name=\"{}\"] .play", seg.name));
    assert!(b.wait_for(
        "(() => { const v = document.getElementById('player-video'); return v.readyState >= 2 && v.currentTime > 0.5; })()",
        scaled(15.0)
    ));
    shot(&mut b, "13-mp4-playing.png");
    assert!(
        b.wait_for("document.getElementById('player-video').ended", scaled(duration + 15.0)),
        "the video did not reach its end: {}",
        b.eval("(() => { const v = document.getElementById('player-video'); return [v.currentTime, v.duration, v.error && v.error.code]; })()")
    );
    let got = b
        .eval("document.getElementById('player-video').duration")
        .as_f64()
        .expect("duration");
    assert!(
        (got - duration).abs() < 0.1,
        "the video lasts {got} s, the metadata says {duration} s"
    );
    b.tap("#player-close");
    d.stop();
}

/// A full drive, on a small tmpfs of its own (needs the right to mount: root; skipped,
/// saying so, elsewhere).
#[test]
fn phone_page_says_the_drive_is_full_and_recovers() {
    if cdp::chromium().is_none() {
        panic!("Debian's chromium is not installed (scripts/test.sh installs it)");
    }
    let fsdir = common::tmpdir("web-fullfs");
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(fsdir.path())
        .output();
    if !mount.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (not root?): {mount:?}");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(fsdir.path().to_path_buf());
    let footage = fsdir.path().join("footage");
    let d = web::start_at(
        Some(footage.clone()),
        Feed::TestPattern,
        "min_free = \"1M\"\n",
        "",
        &["--segment-seconds", "2"],
    );
    assert!(wait_until(scaled(30.0), || footage.is_dir()
        && common::segments(&footage)
            .iter()
            .filter(|s| s.meta.is_some())
            .count()
            >= 2));
    let mut b = Browser::launch(W, H);
    b.navigate(&d.url("/"));
    assert!(b.wait_for(
        "document.getElementById('state-word').textContent === 'Recording'",
        scaled(10.0)
    ));
    // Fill the file system with something that is not footage: nothing can be deleted.
    let filler = fsdir.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 1 << 20];
        while f.write_all(&chunk).is_ok() {}
    }
    assert!(
        b.wait_for(
            "document.getElementById('state-word').textContent === 'Drive full' || !document.getElementById('banner').classList.contains('hidden') && document.getElementById('banner').textContent.includes('full')",
            scaled(30.0)
        ),
        "state: {} / {}",
        b.text("#state"),
        b.text("#banner")
    );
    shot(&mut b, "14-drive-full.png");
    b.tap(".tab[data-view=footage]");
    assert!(b.wait_for(
        "document.querySelectorAll('.seg').length >= 1",
        scaled(10.0)
    ));
    shot(&mut b, "15-footage-drive-full.png");
    std::fs::remove_file(&filler).expect("remove filler");
    b.tap(".tab[data-view=status]");
    assert!(
        b.wait_for(
            "document.getElementById('state-word').textContent === 'Recording' && document.getElementById('banner').classList.contains('hidden')",
            scaled(30.0)
        ),
        "after room came back: {}",
        b.text("#state")
    );
    drop(b);
    d.stop();
}
