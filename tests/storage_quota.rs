//! The loop quota and locked segments: usage stays within `max_size` plus one segment while
//! recording, the oldest loop segments go first (with their metadata, no orphan), locked
//! segments survive the loop, and a locked quota overflow rotates or refuses as set.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;

/// Bytes of every file under `dir` (segments, metadata, locked/, saved/), 0 if missing.
fn usage(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => usage(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn dashcam_ok(args: &[&str], dir: &Path) -> String {
    let mut cmd = dashcam();
    cmd.args(args).arg("--dir").arg(dir);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(60.0));
    assert_no_panic(&what, &out);
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

#[test]
fn usage_stays_within_the_quota_and_the_oldest_go_first() {
    let tmp = tmpdir("quota");
    let dir = tmp.path().join("footage");
    let quota: u64 = 5 << 20;
    // Real time, so the keeper works while the writer writes as it would in a car.
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input("pi1080.h264").display()))
        .arg("--dir")
        .arg(&dir)
        .args([
            "--segment-seconds",
            "1",
            "--max-size",
            "5M",
            "--min-free",
            "0",
        ]);
    let mut rec = Proc::spawn(cmd);
    let mut peak = 0;
    while rec.wait_timeout(Duration::from_millis(20)).is_none() {
        peak = peak.max(usage(&dir));
    }
    let out = rec.finish(scaled(10.0));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let segs = segments(&dir);
    assert!(segs.len() >= 3, "{}", listing(&dir));
    let largest = segs.iter().map(|s| s.bytes() + 512).max().unwrap_or(0);
    assert!(
        peak <= quota + largest,
        "usage peaked at {peak} bytes: more than the quota {quota} plus one segment ({largest})"
    );
    assert!(usage(&dir) <= quota + largest, "{}", listing(&dir));
    // 20 s in 2 s segments (an IDR every 2 s) of about 1 MB: the first went, the newest stayed.
    let deleted = err.matches(", quota)").count();
    assert!(
        deleted >= 3,
        "only {deleted} deletions:\n{}",
        last_lines(&err, 20)
    );
    let seqs: Vec<u64> = segs.iter().map(|s| s.seq).collect();
    let last = *seqs.last().expect("segments");
    let first = last + 1 - seqs.len() as u64;
    assert_eq!(
        seqs,
        (first..=last).collect::<Vec<_>>(),
        "not the newest segments"
    );
    assert!(first > 0, "nothing was deleted");
    for s in &segs {
        assert!(s.meta.is_some(), "{} has no metadata", s.name);
        assert_eq!(probe_errors(&s.path), "", "{}", s.name);
    }
    // No metadata of a deleted segment stays behind.
    let jsons = fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(jsons, segs.len(), "{}", listing(&dir));
}

#[test]
fn locked_segments_survive_and_the_locked_quota_rotates_or_refuses() {
    let tmp = tmpdir("locked");
    let dir = tmp.path().join("footage");
    record_file(&input("headers_once.h264"), &dir, 1, &[]);
    let first = segments(&dir);
    assert!(first.len() >= 8, "{}", listing(&dir));
    let sizes: Vec<u64> = first.iter().map(Segment::bytes).collect();
    // Lock two by name (no recorder running: done on the spot).
    for s in &first[..2] {
        let msg = dashcam_ok(&["lock", &s.name], &dir);
        assert!(msg.contains("locked"), "{msg}");
    }
    let locked = dir.join("locked");
    for s in &first[..2] {
        assert!(locked.join(&s.name).exists(), "{} not in locked/", s.name);
        assert!(locked.join(&s.name).with_extension("json").exists());
        assert!(!s.path.exists());
    }
    // A loop with a tiny quota: everything unlocked and old goes, the locked stay.
    record_file(
        &input("headers_once.h264"),
        &dir,
        1,
        &["--max-size", "1M", "--min-free", "0"],
    );
    for (s, size) in first[..2].iter().zip(&sizes) {
        let p = locked.join(&s.name);
        assert_eq!(
            fs::metadata(&p).map(|m| m.len()).ok(),
            Some(*size),
            "{}",
            s.name
        );
        assert_eq!(probe_errors(&p), "");
    }
    assert!(
        !first[2].path.exists(),
        "the oldest unlocked segment survived"
    );

    // The locked quota: room for about 2.5 segments of the 4M footage limit.
    let loop_segs = segments(&dir);
    let avg = loop_segs.iter().map(|s| s.bytes()).sum::<u64>() / loop_segs.len() as u64;
    let percent = 2.5 * avg as f64 / (4u64 << 20) as f64 * 100.0;
    let config = |mode: &str| {
        let p = tmp.path().join(format!("{mode}.toml"));
        fs::write(
            &p,
            format!(
                "max_size = \"4M\"\nmin_free = \"0\"\nlocked_max_percent = {percent:.4}\nlocked_full = \"{mode}\"\n"
            ),
        )
        .expect("config");
        p
    };
    let refuse = config("refuse");
    let mut cmd = dashcam();
    cmd.args(["lock", &loop_segs[0].name, "--dir"])
        .arg(&dir)
        .arg("--config")
        .arg(&refuse);
    let out = run_to_end(cmd, scaled(30.0));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("locked_max_percent") && err.contains("refuse"),
        "{err}"
    );
    assert!(loop_segs[0].path.exists());

    let rotate = config("rotate");
    let mut cmd = dashcam();
    cmd.args(["lock", &loop_segs[0].name, "--dir"])
        .arg(&dir)
        .arg("--config")
        .arg(&rotate);
    let out = run_to_end(cmd, scaled(30.0));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("rotating out the oldest locked segment"),
        "{}",
        text(&out.stderr)
    );
    assert!(locked.join(&loop_segs[0].name).exists());
    assert!(
        !locked.join(&first[0].name).exists(),
        "the oldest locked was not rotated out"
    );
    assert!(locked.join(&first[1].name).exists());

    // Unlock: back into the loop. Unknown names: a clear error.
    let msg = dashcam_ok(&["unlock", &first[1].name], &dir);
    assert!(msg.contains("unlocked"), "{msg}");
    assert!(dir.join(&first[1].name).exists());
    let mut cmd = dashcam();
    cmd.args(["lock", "20990101-000000_999999.mp4", "--dir"])
        .arg(&dir);
    let out = run_to_end(cmd, scaled(30.0));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no segment"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn config_keys_are_validated_with_key_line_and_range() {
    let tmp = tmpdir("quota-config");
    for (body, key, allowed) in [
        ("max_size = \"lots\"\n", "max_size", "28G"),
        ("\nmin_free = \"150%\"\n", "min_free", "percentage"),
        ("locked_max_percent = 95\n", "locked_max_percent", "0 to 90"),
        (
            "post_event_seconds = -1\n",
            "post_event_seconds",
            "0 to 600",
        ),
        ("locked_full = \"maybe\"\n", "locked_full", "rotate"),
    ] {
        let p = tmp.path().join("c.toml");
        fs::write(&p, body).expect("write");
        let mut cmd = dashcam();
        cmd.arg("check-config").arg(&p);
        let out = run_to_end(cmd, scaled(30.0));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body}");
        let line = format!(
            "line {}",
            body.lines().position(|l| !l.is_empty()).unwrap_or(0) + 1
        );
        assert!(
            err.contains(key) && err.contains(allowed) && err.contains(&line),
            "{body}: {err}"
        );
    }
}
