//! The running recorder: `dashcam lock --now` (event lock: the previous, the current and,
//! near its end, the next segment), `lock`/`unlock` by name through the request files, and
//! a footage directory that vanishes mid-recording (the writer keeps frames in RAM and
//! resumes in a new segment when the directory can be written again).

mod common;

use std::path::Path;

use common::*;

fn start(dir: &Path, segment_seconds: u32, extra: &[&str]) -> Proc {
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input("headers_once.h264").display()))
        .arg("--dir")
        .arg(dir)
        .arg("--segment-seconds")
        .arg(segment_seconds.to_string())
        .args(extra);
    Proc::spawn(cmd)
}

fn cli(args: &[&str], dir: &Path) -> std::process::Output {
    let mut cmd = dashcam();
    cmd.args(args).arg("--dir").arg(dir);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(30.0));
    assert_no_panic(&what, &out);
    out
}

fn closed(dir: &Path) -> usize {
    if !dir.is_dir() {
        return 0;
    }
    segments(dir).iter().filter(|s| s.meta.is_some()).count()
}

#[test]
fn event_lock_takes_the_previous_current_and_next_segment() {
    let tmp = tmpdir("event-lock");
    let dir = tmp.path().join("footage");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "post_event_seconds = 1.5\n").expect("config");
    let rec = start(&dir, 2, &["--config", cfg.to_str().expect("utf-8")]);
    assert!(
        wait_until(scaled(30.0), || closed(&dir) >= 2),
        "{}",
        rec.stderr_text()
    );
    let before_ms = chrono::Local::now().timestamp_millis();
    let out = cli(&["lock", "--now"], &dir);
    let after_ms = chrono::Local::now().timestamp_millis();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer = text(&out.stdout);
    let out = rec.finish(scaled(60.0));
    assert!(out.status.success(), "{}", text(&out.stderr));

    let locked = segments(&dir.join("locked"));
    let all: Vec<Segment> = {
        let mut v = segments(&dir);
        v.extend(locked.iter().cloned());
        v.sort_by_key(|s| s.seq);
        v
    };
    let start_ms = |s: &Segment| meta_i64(s.meta(), "start_unix_ms").expect("start");
    let end_ms = |s: &Segment| {
        start_ms(s) + (meta_f64(s.meta(), "duration_s").unwrap_or(0.0) * 1000.0) as i64
    };
    // The segment being written at the event (the answer names it), the one before it,
    // and the ones that start within post_event_seconds of the event.
    let current = all
        .iter()
        .position(|s| answer.contains(&format!("{} will be locked when it closes", s.name)))
        .unwrap_or_else(|| panic!("no current segment in the answer: {answer}"));
    assert!(
        start_ms(&all[current]) <= after_ms && before_ms <= end_ms(&all[current]) + 1000,
        "{} was not being written at the event",
        all[current].name
    );
    let mut must: Vec<u64> = vec![all[current].seq];
    if current > 0 {
        must.push(all[current - 1].seq);
    }
    let mut may = must.clone();
    for s in &all[current + 1..] {
        if start_ms(s) < before_ms + 1500 {
            must.push(s.seq);
        }
        if start_ms(s) < after_ms + 1500 + 300 {
            may.push(s.seq);
        }
    }
    let got: Vec<u64> = locked.iter().map(|s| s.seq).collect();
    for w in &must {
        assert!(
            got.contains(w),
            "segment {w} not locked; locked {got:?}; answer: {answer}"
        );
    }
    for g in &got {
        assert!(
            may.contains(g),
            "segment {g} locked but not around the event: {may:?}"
        );
    }
    for s in &locked {
        assert_eq!(probe_errors(&s.path), "", "{}", s.name);
        assert!(s.meta.is_some(), "{} has no metadata in locked/", s.name);
    }
}

#[test]
fn lock_and_unlock_by_name_go_through_the_running_recorder() {
    let tmp = tmpdir("lock-running");
    let dir = tmp.path().join("footage");
    let rec = start(&dir, 2, &[]);
    assert!(
        wait_until(scaled(30.0), || closed(&dir) >= 1),
        "{}",
        rec.stderr_text()
    );
    let first = segments(&dir).into_iter().next().expect("a segment");
    let out = cli(&["lock", &first.name], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.join("locked").join(&first.name).exists());
    // The segment being written: locked when it closes.
    let open = segments(&dir)
        .into_iter()
        .find(|s| s.meta.is_none())
        .expect("a segment being written");
    let out = cli(&["lock", &open.name], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("when it closes"),
        "{}",
        text(&out.stdout)
    );
    let out = cli(&["unlock", &first.name], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.join(&first.name).exists());
    let out = rec.finish(scaled(60.0));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        dir.join("locked").join(&open.name).exists(),
        "{}",
        listing(&dir)
    );
    // Without a recorder, --now is refused with a clear message.
    let out = cli(&["lock", "--now"], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no recorder is running"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_vanished_directory_costs_no_silent_frame() {
    let tmp = tmpdir("vanish");
    let dir = tmp.path().join("footage");
    let rec = start(&dir, 2, &[]);
    assert!(
        wait_until(scaled(30.0), || closed(&dir) >= 2),
        "{}",
        rec.stderr_text()
    );
    // The directory goes away at once (as with an unmount; removing it file by file would
    // race with the writer's next file).
    std::fs::rename(&dir, tmp.path().join("gone")).expect("move the footage directory away");
    let out = rec.finish(scaled(60.0));
    let err = text(&out.stderr);
    assert_no_panic("run", &out);
    // Depending on when the directory went (mid-segment or while opening the next one)
    // the writer reports it as vanished or as the drive being unavailable.
    assert!(
        err.contains("vanished") || err.contains("drive unavailable"),
        "{}",
        last_lines(&err, 20)
    );
    assert!(err.contains("writing again"), "{}", last_lines(&err, 20));
    // Recording went on in the directory made again, from a keyframe, every frame counted.
    let segs = segments(&dir);
    assert!(
        !segs.is_empty(),
        "nothing recorded after the directory came back"
    );
    let reference = framemd5(&input("headers_once.h264"));
    for s in &segs {
        assert_eq!(probe_errors(&s.path), "", "{}", s.name);
        assert!(s.meta.is_some(), "{} has no metadata", s.name);
    }
    // Frames before the vanish went with the removed directory; from the resume on, the
    // new segments hold the rest of the input to its end, bit-exact, nothing skipped.
    let got = framemd5_all(&segs.iter().map(|s| s.path.as_path()).collect::<Vec<_>>());
    let at = reference
        .iter()
        .position(|h| *h == got[0])
        .expect("frames from the input");
    assert_eq!(
        &reference[at..],
        &got[..],
        "not the rest of the input, bit-exact"
    );
}

#[test]
fn a_second_recorder_on_the_same_directory_is_refused() {
    let tmp = tmpdir("second-recorder");
    let dir = tmp.path().join("footage");
    let rec = start(&dir, 2, &[]);
    assert!(
        wait_until(scaled(30.0), || closed(&dir) >= 1),
        "{}",
        rec.stderr_text()
    );
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input("headers_once.h264").display()))
        .arg("--dir")
        .arg(&dir)
        .arg("--fast");
    let out = run_to_end(cmd, scaled(30.0));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("another dashcam is recording"),
        "{}",
        text(&out.stderr)
    );
    let out = rec.finish(scaled(60.0));
    assert!(out.status.success(), "{}", text(&out.stderr));
    for s in segments(&dir) {
        assert!(s.meta.is_some(), "{} was disturbed", s.name);
        assert_eq!(probe_errors(&s.path), "", "{}", s.name);
    }
}
