//! MQTT against a real broker (Debian's mosquitto, started here) and a real subscriber
//! (mosquitto_sub): events arrive in order at QoS 1 on `PREFIX/event/KIND`; the broker
//! SIGKILLed and restarted mid-recording: the outbox is delivered after the reconnect and
//! the retained `PREFIX/status` is online again, then offline after the stop (and by the
//! last will after a SIGKILL of dashcam); wrong credentials give a clear error while
//! recording goes on; right ones connect.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::path::Path;

use broker::{Broker, Msg};
use common::*;
use serde_json::Value;

fn start(dir: &Path, config: &Path, segment_seconds: u32) -> Proc {
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input("headers_once.h264").display()))
        .arg("--dir")
        .arg(dir)
        .arg("--segment-seconds")
        .arg(segment_seconds.to_string())
        .arg("--config")
        .arg(config);
    Proc::spawn(cmd)
}

fn events_of(msgs: &[Msg], prefix: &str) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m.topic.starts_with(&format!("{prefix}/event/")))
        .map(|m| {
            let v: Value = serde_json::from_str(&m.payload).expect("event json");
            assert_eq!(
                m.topic,
                format!("{prefix}/event/{}", v["event"].as_str().unwrap_or("")),
                "topic names the kind"
            );
            v
        })
        .collect()
}

fn statuses(msgs: &[Msg], prefix: &str) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.topic == format!("{prefix}/status"))
        .map(|m| m.payload.clone())
        .collect()
}

fn skip() -> bool {
    if broker::available() {
        return false;
    }
    eprintln!(
        "mosquitto / mosquitto-clients not installed (scripts/test.sh installs them): skipped"
    );
    true
}

#[test]
fn events_survive_a_broker_restart_in_order_and_the_status_flips() {
    if skip() {
        return;
    }
    require_tools();
    let tmp = tmpdir("events-mqtt");
    let mut broker = Broker::start(&tmp.path().join("broker"), &[]);
    let sub = broker.subscribe("car/dash/#", "test-subscriber");
    // The subscription is in place once a probe published to it comes back.
    assert!(
        sub.wait_for(scaled(10.0), |m| {
            let _ = std::process::Command::new("mosquitto_pub")
                .args([
                    "-p",
                    &broker.port.to_string(),
                    "-t",
                    "car/dash/probe",
                    "-m",
                    "x",
                ])
                .status();
            m.iter().any(|m| m.topic == "car/dash/probe")
        }),
        "subscriber not ready: {}",
        broker.log()
    );
    let dir = tmp.path().join("footage");
    let config = tmp.path().join("dashcam.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nurl = \"{}\"\nprefix = \"car/dash\"\nclient_id = \"dashcam-test\"\nkeepalive = 5\n",
            broker.url()
        ),
    )
    .expect("config");
    let rec = start(&dir, &config, 1);
    assert!(
        sub.wait_for(scaled(20.0), |m| {
            statuses(m, "car/dash").contains(&"online".to_string())
                && events_of(m, "car/dash")
                    .iter()
                    .filter(|e| e["event"] == "segment_closed")
                    .count()
                    >= 2
        }),
        "{}",
        rec.stderr_text()
    );
    // The broker dies mid-recording; segments close meanwhile (into the outbox).
    broker.kill();
    let before = segments(&dir).len();
    assert!(
        wait_until(scaled(20.0), || segments(&dir).len() >= before + 2),
        "{}",
        rec.stderr_text()
    );
    broker.restart();
    let out = rec.finish(scaled(90.0));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("MQTT: connected to 127.0.0.1"), "{stderr}");
    assert!(stderr.contains("again"), "reconnected: {stderr}");

    let on_disk = segments(&dir);
    assert!(
        sub.wait_for(scaled(20.0), |m| {
            events_of(m, "car/dash")
                .iter()
                .any(|e| e["event"] == "recording_stopped")
        }),
        "no recording_stopped: {:?}\n{stderr}",
        sub.messages()
    );
    let msgs = sub.messages();
    let events = events_of(&msgs, "car/dash");
    // QoS 1 is at least once: a message resent after the reconnect may come twice. In
    // order of arrival, with duplicates dropped, the sequence is 1, 2, … without a gap.
    let mut seen = Vec::new();
    for e in &events {
        let s = e["seq"].as_u64().expect("seq");
        if !seen.contains(&s) {
            assert!(
                seen.last().is_none_or(|&l| s > l),
                "out of order: {s} after {seen:?}"
            );
            seen.push(s);
        }
    }
    assert_eq!(
        seen,
        (1..=seen.len() as u64).collect::<Vec<_>>(),
        "a gap: {seen:?}"
    );
    let closes: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "segment_closed")
        .collect();
    let mut names: Vec<&str> = closes.iter().filter_map(|e| e["name"].as_str()).collect();
    names.dedup();
    assert_eq!(names.len(), on_disk.len(), "every segment, once: {names:?}");
    for (seg, name) in on_disk.iter().zip(&names) {
        assert_eq!(seg.name, *name);
    }
    // Status: online, online again after the broker came back, offline after the stop.
    let st = statuses(&msgs, "car/dash");
    assert!(st.iter().filter(|s| *s == "online").count() >= 2, "{st:?}");
    assert_eq!(st.last().map(String::as_str), Some("offline"), "{st:?}");
    assert_eq!(
        broker.retained("car/dash/status").as_deref(),
        Some("offline")
    );
}

#[test]
fn a_vanished_dashcam_leaves_offline_by_its_will() {
    if skip() {
        return;
    }
    let tmp = tmpdir("events-mqtt-will");
    let broker = Broker::start(&tmp.path().join("broker"), &[]);
    let dir = tmp.path().join("footage");
    let config = tmp.path().join("dashcam.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nurl = \"{}\"\nclient_id = \"dashcam-will\"\n",
            broker.url()
        ),
    )
    .expect("config");
    let rec = start(&dir, &config, 2);
    assert!(
        wait_until(scaled(20.0), || broker
            .retained("dashcam/status")
            .as_deref()
            == Some("online")),
        "{}",
        rec.stderr_text()
    );
    rec.kill9();
    assert!(
        wait_until(scaled(20.0), || broker
            .retained("dashcam/status")
            .as_deref()
            == Some("offline")),
        "the will was not published: {}",
        broker.log()
    );
}

#[test]
fn wrong_credentials_are_a_clear_error_and_recording_goes_on() {
    if skip() {
        return;
    }
    require_tools();
    let tmp = tmpdir("events-mqtt-auth");
    let broker = Broker::start(&tmp.path().join("broker"), &[("cam", "right-password")]);
    let creds = tmp.path().join("mqtt.credentials");
    let config = tmp.path().join("dashcam.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nurl = \"{}\"\ncredentials_file = \"{}\"\n",
            broker.url(),
            creds.display()
        ),
    )
    .expect("config");

    std::fs::write(&creds, "cam:wrong-password\n").expect("credentials");
    let dir = tmp.path().join("footage");
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input("headers_once.h264").display()))
        .arg("--fast")
        .arg("--dir")
        .arg(&dir)
        .arg("--config")
        .arg(&config);
    let out = run_to_end(cmd, scaled(60.0));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // mosquitto answers a wrong password with "not authorized" (CONNACK 5); other
    // brokers with "bad user name or password" (4). Either way the line says so.
    let refused = format!(
        "MQTT: the broker at 127.0.0.1:{} refused the connection: ",
        broker.port
    );
    let line = stderr
        .lines()
        .find(|l| l.contains(&refused))
        .unwrap_or_else(|| panic!("no refusal logged: {stderr}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("not authorized") || line.contains("bad user name or password"),
        "{line}"
    );
    assert!(line.contains("mqtt.credentials_file"), "{line}");
    assert!(
        !stderr.contains("wrong-password"),
        "the password is never logged"
    );
    let frames: i64 = segments(&dir)
        .iter()
        .map(|s| meta_i64(s.meta(), "frames").unwrap_or(0))
        .sum();
    assert_eq!(frames, 300);

    // The right password: connected, events published.
    std::fs::write(&creds, "cam:right-password\n").expect("credentials");
    let sub = {
        let mut c = std::process::Command::new("mosquitto_sub");
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-u",
            "cam",
            "-P",
            "right-password",
        ])
        .args([
            "-t",
            "dashcam/status",
            "-C",
            "1",
            "-W",
            "10",
            "--retained-only",
        ]);
        c
    };
    let dir2 = tmp.path().join("footage2");
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input("headers_once.h264").display()))
        .arg("--dir")
        .arg(&dir2)
        .arg("--config")
        .arg(&config);
    let rec = Proc::spawn(cmd);
    let mut sub = sub;
    assert!(
        wait_until(scaled(20.0), || {
            sub.output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "online")
        }),
        "{}",
        rec.stderr_text()
    );
    rec.signal(libc::SIGTERM);
    let out = rec.finish(scaled(30.0));
    assert!(
        text(&out.stderr).contains("MQTT: connected to"),
        "{}",
        text(&out.stderr)
    );
}
