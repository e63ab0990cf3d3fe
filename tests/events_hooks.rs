//! Events through `[[hooks]]` while recording a real input: every segment close, lock,
//! clip and the stop give exactly one event whose fields match the metadata on disk; a
//! hook that hangs is killed at its timeout and costs no frame; a failing hook is logged
//! with its exit status and stderr; events still queued at SIGTERM are delivered before
//! dashcam exits.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{Local, TimeZone};
use common::*;
use serde_json::Value;

fn cli(args: &[&str], dir: &Path) -> std::process::Output {
    let mut cmd = dashcam();
    cmd.args(args).arg("--dir").arg(dir);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(30.0));
    assert_no_panic(&what, &out);
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    out
}

fn closed(dir: &Path) -> Vec<Segment> {
    if !dir.is_dir() {
        return Vec::new();
    }
    segments(dir)
        .into_iter()
        .filter(|s| s.meta.is_some())
        .collect()
}

fn local(ms: i64) -> String {
    Local
        .timestamp_millis_opt(ms)
        .single()
        .expect("local time")
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// The events a hook appended, one JSON object a line.
fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn kind(e: &Value) -> &str {
    e["event"].as_str().unwrap_or("")
}

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

/// Sequence numbers 1, 2, … with no gap, `recording_started` first.
fn check_sequence(events: &[Value]) {
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "{events:#?}"
    );
    assert_eq!(kind(&events[0]), "recording_started");
    for e in events {
        assert!(e["wall"].as_str().is_some_and(|w| w.contains('T')), "{e}");
        assert!(
            e["unix_ms"].as_i64().is_some_and(|t| t > 1_600_000_000_000),
            "{e}"
        );
        assert!(e["mono_s"].as_f64().is_some_and(|t| t > 0.0), "{e}");
    }
    let mono: Vec<f64> = events
        .iter()
        .map(|e| e["mono_s"].as_f64().unwrap_or(0.0))
        .collect();
    assert!(
        mono.windows(2).all(|w| w[0] <= w[1]),
        "monotonic times go forward: {mono:?}"
    );
}

#[test]
fn every_close_lock_clip_and_stop_is_one_event_and_a_hanging_hook_costs_no_frame() {
    require_tools();
    let tmp = tmpdir("events-hooks");
    let dir = tmp.path().join("footage");
    let log = tmp.path().join("events.jsonl");
    let config = tmp.path().join("dashcam.toml");
    std::fs::write(
        &config,
        format!(
            r#"post_event_seconds = 0

# Every event, appended as it comes (one run at a time, so lines never interleave).
[[hooks]]
on = ["*"]
command = ["/bin/sh", "-c", "sleep 0.1; cat >> '{}'"]
timeout = 10

# Hangs on every close: killed after half a second each time.
[[hooks]]
on = ["segment_closed"]
command = ["/bin/sh", "-c", "echo hanging >&2; sleep 60"]
timeout = 0.5

# Fails.
[[hooks]]
on = ["recording_started"]
command = ["/bin/sh", "-c", "echo 'no such printer' >&2; exit 7"]
"#,
            log.display()
        ),
    )
    .expect("config");

    let rec = start(&dir, &config, 2);
    assert!(
        wait_until(scaled(30.0), || closed(&dir).len() >= 3),
        "{}",
        rec.stderr_text()
    );
    let first = closed(&dir).remove(0);
    let second_start = meta_i64(closed(&dir)[1].meta(), "start_unix_ms").expect("start");
    cli(&["lock", &first.name], &dir);
    // A clip from the first two closed segments, cut by the running recorder.
    let from = meta_i64(first.meta(), "start_unix_ms").expect("start") + 999;
    let from = from - from.rem_euclid(1000);
    let to = (second_start + 999) / 1000 * 1000;
    let out = cli(
        &[
            "clip",
            "--async",
            "--from",
            &local(from),
            "--to",
            &local(to),
        ],
        &dir,
    );
    let clip = PathBuf::from(text(&out.stdout).lines().next().expect("clip").trim());
    let out = rec.finish(scaled(90.0));
    let stderr = text(&out.stderr);
    assert_no_panic("run", &out);
    assert!(out.status.success(), "{stderr}");

    let events = read_events(&log);
    check_sequence(&events);
    let mut by_kind: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for e in &events {
        by_kind.entry(kind(e)).or_default().push(e);
    }

    // Every segment on disk (loop and locked) closed once, with its metadata's fields.
    let mut all = segments(&dir);
    all.extend(segments(&dir.join("locked")));
    let closes = &by_kind["segment_closed"];
    assert_eq!(closes.len(), all.len(), "{events:#?}");
    for seg in &all {
        let e = closes
            .iter()
            .find(|e| e["name"] == seg.name.as_str())
            .unwrap_or_else(|| panic!("no segment_closed for {}", seg.name));
        for (k, v) in seg.meta().as_object().expect("metadata object") {
            assert_eq!(&e[k], v, "{}: {k}", seg.name);
        }
        assert_eq!(
            meta_i64(seg.meta(), "dropped_frames"),
            Some(0),
            "{}",
            seg.name
        );
    }
    let frames: i64 = all
        .iter()
        .map(|s| meta_i64(s.meta(), "frames").unwrap_or(0))
        .sum();
    assert_eq!(
        frames, 300,
        "every input frame recorded despite the hanging hook"
    );

    // The lock: one event, naming the file now in locked/.
    let locks = &by_kind["locked"];
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["name"], first.name.as_str());
    let locked_path = PathBuf::from(locks[0]["path"].as_str().expect("path"));
    assert!(locked_path.exists() && locked_path.parent() == Some(&dir.join("locked")));

    // The clip: one event with the fields of its JSON.
    let clips = &by_kind["clip_saved"];
    assert_eq!(clips.len(), 1, "{clips:?}");
    let clip_json: Value = serde_json::from_str(
        &std::fs::read_to_string(clip.with_extension("json")).expect("clip json"),
    )
    .expect("clip json");
    assert_eq!(clips[0]["path"], clip.display().to_string().as_str());
    for k in ["frames", "duration_s", "bytes", "start_unix_ms", "segments"] {
        assert_eq!(clips[0][k], clip_json[k], "clip {k}");
    }

    // The stop: the last event, with the run's totals.
    let stops = &by_kind["recording_stopped"];
    assert_eq!(stops.len(), 1);
    let stop = events.last().expect("events");
    assert_eq!(kind(stop), "recording_stopped");
    assert_eq!(stop["reason"], "end_of_input");
    assert_eq!(stop["segments"].as_u64(), Some(all.len() as u64));
    assert_eq!(stop["frames"].as_i64(), Some(frames));
    assert_eq!(stop["dropped_frames"], 0);
    assert_eq!(by_kind["recording_started"].len(), 1);

    // The hanging hook was killed at each close; the failing one was logged.
    let killed = stderr.matches("killed after its timeout of 0.5 s").count();
    assert_eq!(killed, all.len(), "{stderr}");
    assert!(stderr.contains("stderr: hanging"), "{stderr}");
    assert!(
        stderr.contains("failed: exit status 7; stderr: no such printer"),
        "{stderr}"
    );
}

#[test]
fn events_queued_at_sigterm_are_delivered_before_exit() {
    require_tools();
    let tmp = tmpdir("events-stop");
    let dir = tmp.path().join("footage");
    let log = tmp.path().join("events.jsonl");
    let config = tmp.path().join("dashcam.toml");
    // A slow hook: events pile up in its queue.
    std::fs::write(
        &config,
        format!(
            "[[hooks]]\non = [\"*\"]\ncommand = [\"/bin/sh\", \"-c\", \"sleep 0.7; cat >> '{}'\"]\ntimeout = 5\n",
            log.display()
        ),
    )
    .expect("config");
    let rec = start(&dir, &config, 1);
    assert!(
        wait_until(scaled(30.0), || closed(&dir).len() >= 4),
        "{}",
        rec.stderr_text()
    );
    rec.signal(libc::SIGTERM);
    let out = rec.finish(scaled(60.0));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = read_events(&log);
    check_sequence(&events);
    let closes = events
        .iter()
        .filter(|e| kind(e) == "segment_closed")
        .count();
    let on_disk = segments(&dir).len();
    assert_eq!(closes, on_disk, "{events:#?}");
    let stop = events.last().expect("events");
    assert_eq!(kind(stop), "recording_stopped");
    assert_eq!(stop["reason"], "stop");
}
