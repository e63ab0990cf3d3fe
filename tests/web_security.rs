//! Attacks on the phone page against the real binary while it records: path traversal in
//! every spelling and symlinks out of the footage folder, cross-origin requests, wrong
//! Host names (DNS rebinding), oversize heads and bodies, a slow-loris client and 200 idle
//! connections — each refused, and the recorder drops no frame meanwhile. Then the
//! password: sessions, the cookie's attributes, CSRF tokens and the login limit.

mod common;
#[path = "common/web.rs"]
mod web;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use common::scaled;
use web::{assert_error, get, header, json, post, raw, raw_status, Dashcam, Feed};

const SMALL: &str = "[test_pattern]\nwidth = 320\nheight = 180\nfps = 30\n";

fn no_dropped_frames(d: &Dashcam) {
    let s = d.status();
    assert_eq!(s["frames_dropped"], 0, "{s}");
    for seg in d.segments("") {
        if let Some(n) = seg["dropped_frames"].as_u64() {
            assert_eq!(n, 0, "{seg}");
        }
    }
}

fn request(d: &Dashcam, line: &str, headers: &str) -> Vec<u8> {
    raw(
        &d.addr,
        format!(
            "{line}\r\nHost: {}\r\n{headers}Connection: close\r\n\r\n",
            d.addr
        )
        .as_bytes(),
        Duration::from_secs(10),
    )
}

#[test]
fn traversal_symlinks_listings_cross_origin_hosts_and_sizes_are_refused() {
    let d = web::start(Feed::TestPattern, SMALL, "", &["--segment-seconds", "2"]);
    let closed = d.wait_closed(2, scaled(30.0));
    let name = closed[0]["name"].as_str().expect("name").to_string();
    // A symlink with a segment's name pointing out of the footage folder.
    let evil = "20990101-000000_999999.avi";
    std::os::unix::fs::symlink("/etc/passwd", d.footage().join(evil)).expect("symlink");
    assert_eq!(
        post(&d.url("/api/lock"), &json!({ "name": name }), &[]).0,
        200
    );

    for target in [
        "/footage/../dashcam.toml".to_string(),
        "/footage/%2e%2e/dashcam.toml".into(),
        "/footage/%2E%2E%2Fdashcam.toml".into(),
        "/footage/..%2f..%2f..%2fetc%2fpasswd".into(),
        "/footage/..%5c..%5cetc%5cpasswd".into(),
        "/footage//etc/passwd".into(),
        "/footage/%2fetc%2fpasswd".into(),
        "/footage/locked/".to_string() + &name,
        "/footage/locked".into(),
        "/footage/".into(),
        "/footage/.dashcam.lock".into(),
        "/footage/.requests".into(),
        format!("/footage/{evil}"),
        format!("/replay/{evil}"),
        "/footage/x%00.avi".into(),
        "/../../etc/passwd".into(),
        "http://127.0.0.1/etc/passwd".into(),
        "/app.js/../../dashcam.toml".into(),
    ] {
        let answer = request(&d, &format!("GET {target} HTTP/1.1"), "");
        let status = raw_status(&answer);
        assert!(
            matches!(status, Some(400 | 404)),
            "{target}: {status:?}\n{}",
            String::from_utf8_lossy(&answer)
        );
        let text = String::from_utf8_lossy(&answer);
        assert!(
            !text.contains("root:") && !text.contains("[web]"),
            "{target} leaked:\n{text}"
        );
    }
    // Deleting through a traversal deletes nothing.
    let answer = request(&d, "DELETE /api/segments/..%2fdashcam.toml HTTP/1.1", "");
    assert!(matches!(raw_status(&answer), Some(400 | 404)));
    assert!(d.config.is_file());

    // Another site's page cannot drive the API, even with a body it could send.
    let origin = [("Origin", "http://evil.example")];
    assert_error(
        &post(&d.url("/api/record"), &json!({ "on": false }), &origin),
        403,
        "cross-origin record off",
    );
    assert_error(
        &post(
            &d.url("/api/lock"),
            &json!({ "now": true }),
            &[("Sec-Fetch-Site", "cross-site")],
        ),
        403,
        "cross-site",
    );
    assert_error(
        &post(
            &d.url("/api/lock"),
            &json!({ "now": true }),
            &[("Origin", "null")],
        ),
        403,
        "opaque origin",
    );
    let form = raw(
        &d.addr,
        format!(
            "POST /api/record HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{{\"on\":false}}",
            d.addr
        )
        .as_bytes(),
        Duration::from_secs(10),
    );
    assert!(
        matches!(raw_status(&form), Some(415)),
        "{}",
        String::from_utf8_lossy(&form)
    );
    let same = [("Origin", d.base.as_str())];
    assert_eq!(
        post(
            &d.url("/api/lock"),
            &json!({ "name": closed[1]["name"] }),
            &same
        )
        .0,
        200
    );
    assert_eq!(
        d.status()["state"],
        "recording",
        "a refused request changed something"
    );

    // DNS rebinding: a name that is not this machine's.
    for host in [
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example",
    ] {
        let a = raw(
            &d.addr,
            format!("GET /api/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
            Duration::from_secs(10),
        );
        assert_eq!(raw_status(&a), Some(403), "Host {host}");
    }
    let a = raw(
        &d.addr,
        b"GET /api/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(raw_status(&a), Some(200));

    // Oversize heads and bodies.
    let big = format!("X-Big: {}\r\n", "a".repeat(9000));
    assert_eq!(raw_status(&request(&d, "GET / HTTP/1.1", &big)), Some(431));
    let many: String = (0..60).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    assert_eq!(raw_status(&request(&d, "GET / HTTP/1.1", &many)), Some(431));
    assert_eq!(
        raw_status(&request(
            &d,
            "POST /api/lock HTTP/1.1",
            "Content-Type: application/json\r\nContent-Length: 10000000\r\n"
        )),
        Some(413)
    );
    assert_eq!(
        raw_status(&request(
            &d,
            "POST /api/lock HTTP/1.1",
            "Transfer-Encoding: chunked\r\n"
        )),
        Some(501)
    );
    assert_eq!(
        raw_status(&raw(&d.addr, b"GARBAGE\r\n\r\n", Duration::from_secs(10))),
        Some(400)
    );

    // An HTTP/1.0 client gets the endless-by-nature replay without chunking, ended by a
    // close (nothing is buffered whole).
    let locked_name = &name;
    let a = raw(
        &d.addr,
        format!("GET /replay/{locked_name}?start=1 HTTP/1.0\r\n\r\n").as_bytes(),
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&a);
    assert_eq!(raw_status(&a), Some(200));
    assert!(
        !text.to_ascii_lowercase().contains("transfer-encoding"),
        "chunked to HTTP/1.0"
    );
    assert!(
        text.trim_end().ends_with("--dashcamframe--"),
        "replay did not end cleanly"
    );
    no_dropped_frames(&d);
    d.stop();
}

#[test]
fn slow_loris_and_200_idle_connections_are_refused_and_cost_no_frame() {
    let d = web::start(
        Feed::TestPattern,
        SMALL,
        "header_timeout = 3\nio_timeout = 5\nmax_connections = 64\n",
        &["--segment-seconds", "2"],
    );
    d.wait_closed(1, scaled(30.0));

    // Slow loris: one byte every half second never makes a head within 3 s.
    let mut s = TcpStream::connect(&d.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let t0 = Instant::now();
    let mut answer = Vec::new();
    let line = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut i = 0;
    let closed_after = loop {
        if i < line.len() {
            if s.write_all(&line[i..i + 1]).is_err() {
                break t0.elapsed();
            }
        } else if s.write_all(b"a").is_err() {
            break t0.elapsed();
        }
        i += 1;
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break t0.elapsed(),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "slow-loris client never dropped"
        );
    };
    assert!(
        closed_after < scaled(8.0),
        "dropped only after {closed_after:?}"
    );
    assert_eq!(
        raw_status(&answer),
        Some(408),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // 200 idle connections: those past the cap are refused at once, the rest dropped
    // after the head timeout; the recorder does not notice.
    let mut idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(&d.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut refused = 0;
    for c in &mut idle {
        c.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        if let Ok(n) = c.read(&mut buf) {
            if n > 0 && raw_status(&buf[..n]) == Some(503) {
                refused += 1;
            }
        }
    }
    assert!(refused >= 200 - 64, "only {refused} of 200 refused at once");
    std::thread::sleep(scaled(4.5));
    let mut open = 0;
    for c in &mut idle {
        c.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        match c.read(&mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(_) => open += 1,
        }
    }
    assert_eq!(
        open, 0,
        "{open} idle connections still open after the head timeout"
    );
    drop(idle);
    // The page is answered again.
    assert_eq!(get(&d.url("/"), &[]).0, 200);
    let m = get(&d.url("/metrics"), &[]);
    let text = String::from_utf8_lossy(&m.2);
    assert!(
        text.contains("dashcam_http_requests_total{code=\"503\"}"),
        "{text}"
    );
    assert!(
        text.contains("dashcam_http_requests_total{code=\"408\"}"),
        "{text}"
    );
    no_dropped_frames(&d);
    d.stop();
}

#[test]
fn password_cookie_csrf_and_login_limit() {
    // `dashcam password` writes a salted Argon2id hash, never the password.
    let dir = common::tmpdir("web-pass");
    let file = dir.path().join("web.pass");
    let mut cmd = common::dashcam();
    cmd.args(["password", "--file"])
        .arg(&file)
        .stdin(std::process::Stdio::piped());
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dashcam password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"correct horse battery\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = std::fs::read_to_string(&file).expect("hash file");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));

    let d = web::start(
        Feed::TestPattern,
        SMALL,
        &format!("password_file = \"{}\"\n", file.display()),
        &["--segment-seconds", "2"],
    );
    // The page loads (to show the login); nothing else does.
    assert_eq!(get(&d.url("/"), &[]).0, 200);
    assert_eq!(get(&d.url("/app.js"), &[]).0, 200);
    assert_error(
        &get(&d.url("/api/status"), &[]),
        401,
        "status without a session",
    );
    assert_error(
        &get(&d.url("/api/segments"), &[]),
        401,
        "segments without a session",
    );
    assert_error(
        &get(&d.url("/metrics"), &[]),
        401,
        "metrics without a session",
    );
    assert_error(
        &get(&d.url("/footage/x.avi"), &[]),
        401,
        "footage without a session",
    );
    assert_error(
        &post(&d.url("/api/record"), &json!({ "on": false }), &[]),
        401,
        "record off without a session",
    );
    let sess = json(&get(&d.url("/api/session"), &[]));
    assert_eq!(sess["password_required"], true);
    assert_eq!(sess["logged_in"], false);
    assert_error(
        &post(&d.url("/api/login"), &json!({ "password": "wrong" }), &[]),
        401,
        "wrong password",
    );
    let a = post(
        &d.url("/api/login"),
        &json!({ "password": "correct horse battery" }),
        &[],
    );
    assert_eq!(a.0, 200);
    let cookie = header(&a, "set-cookie").expect("cookie").to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let csrf = json(&a)["csrf"].as_str().expect("csrf").to_string();
    let pair = cookie.split(';').next().expect("pair").to_string();
    let with_cookie = [("Cookie", pair.as_str())];
    assert_eq!(get(&d.url("/api/status"), &with_cookie).0, 200);
    assert_eq!(get(&d.url("/metrics"), &with_cookie).0, 200);
    assert_eq!(
        json(&get(&d.url("/api/session"), &with_cookie))["csrf"],
        csrf.as_str()
    );
    assert_error(
        &post(&d.url("/api/lock"), &json!({ "now": true }), &with_cookie),
        403,
        "a change without the CSRF token",
    );
    assert_error(
        &post(
            &d.url("/api/lock"),
            &json!({ "now": true }),
            &[("Cookie", &pair), ("X-CSRF-Token", "forged")],
        ),
        403,
        "a forged CSRF token",
    );
    assert!(common::wait_until(scaled(30.0), || common::segments(
        &d.footage()
    )
    .iter()
    .any(|s| s.meta.is_some())));
    let a = post(
        &d.url("/api/lock"),
        &json!({ "now": true }),
        &[("Cookie", &pair), ("X-CSRF-Token", &csrf)],
    );
    assert_eq!(a.0, 200, "{}", String::from_utf8_lossy(&a.2));
    // A forged cookie is nobody.
    assert_error(
        &get(&d.url("/api/status"), &[("Cookie", "dashcam_session=00ff")]),
        401,
        "forged cookie",
    );
    // Logout ends the session.
    assert_eq!(
        post(
            &d.url("/api/logout"),
            &json!({}),
            &[("Cookie", &pair), ("X-CSRF-Token", &csrf)]
        )
        .0,
        200
    );
    assert_error(
        &get(&d.url("/api/status"), &with_cookie),
        401,
        "after logout",
    );
    // Guessing is limited.
    let mut limited = false;
    for _ in 0..8 {
        let a = post(&d.url("/api/login"), &json!({ "password": "guess" }), &[]);
        if a.0 == 429 {
            assert!(header(&a, "retry-after").is_some());
            limited = true;
            break;
        }
        assert_eq!(a.0, 401);
    }
    assert!(limited, "no limit on wrong passwords");
    no_dropped_frames_on_disk(&d);
    d.stop();
}

/// No segment on the drive lost a frame (read from the files: the API needs a session).
fn no_dropped_frames_on_disk(d: &Dashcam) {
    for seg in common::segments(&d.footage()) {
        if let Some(m) = &seg.meta {
            assert_eq!(m["dropped_frames"], 0, "{}", seg.name);
        }
    }
}
