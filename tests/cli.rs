//! `dashcam list` and `dashcam check-config`.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use serde_json::Value;

fn run(args: &[&str]) -> std::process::Output {
    let mut cmd = dashcam();
    cmd.args(args);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(60.0));
    assert_no_panic(&what, &out);
    out
}

fn run_in(args: &[&str], dir: &Path) -> std::process::Output {
    let mut cmd = dashcam();
    cmd.args(args).arg(dir);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(60.0));
    assert_no_panic(&what, &out);
    out
}

/// Every string anywhere in a JSON value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[test]
fn list_json_lists_every_segment() {
    let input = input("headers_once.h264");
    let tmp = tmpdir("list");
    record_file(&input, tmp.path(), 4, &[]);
    let segs = segments(tmp.path());
    assert!(
        segs.len() >= 2,
        "expected segments:\n  {}",
        listing(tmp.path())
    );

    let out = run_in(&["list", "--json", "--dir"], tmp.path());
    assert!(
        out.status.success(),
        "list --json failed ({}):\n{}",
        out.status,
        text(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("list --json is not valid JSON: {e}\n{}", text(&out.stdout)));
    let rows = match &v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o
            .values()
            .find_map(|x| x.as_array().cloned())
            .unwrap_or_else(|| panic!("list --json: no array of segments in {v}")),
        _ => panic!("list --json: neither an array nor an object: {v}"),
    };
    assert_eq!(
        rows.len(),
        segs.len(),
        "list --json has {} entries for {} segments:\n{v:#}",
        rows.len(),
        segs.len()
    );
    for (row, seg) in rows.iter().zip(&segs) {
        let mut s = Vec::new();
        strings(row, &mut s);
        assert!(
            s.iter()
                .any(|x| x == &seg.name || x.ends_with(&format!("/{}", seg.name))),
            "list --json: entry {row} does not name {} (entries in sequence order)",
            seg.name
        );
        let frames = seg.meta().get("frames").cloned();
        let mut found = false;
        if let Value::Object(o) = row {
            found = o.get("frames").cloned() == frames
                || o.values().any(|x| x.get("frames").cloned() == frames);
        }
        assert!(
            found,
            "list --json: entry for {} does not carry its metadata (frames {frames:?}): {row}",
            seg.name
        );
    }

    let out = run_in(&["list", "--dir"], tmp.path());
    assert!(out.status.success(), "list failed:\n{}", text(&out.stderr));
    let listed = text(&out.stdout);
    for s in &segs {
        assert!(
            listed.contains(&s.name),
            "list does not show {}:\n{listed}",
            s.name
        );
    }
}

#[test]
fn list_empty_dir() {
    let tmp = tmpdir("list-empty");
    let out = run_in(&["list", "--json", "--dir"], tmp.path());
    assert!(
        out.status.success(),
        "list --json of an empty dir failed:\n{}",
        text(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let empty = match &v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().filter_map(Value::as_array).all(Vec::is_empty),
        _ => false,
    };
    assert!(empty, "list --json of an empty dir: {v}");
}

/// check-config on a file; returns (success, stdout + stderr).
fn check_config(content: &str) -> (bool, String) {
    let tmp = tmpdir("config");
    let path = tmp.path().join("dashcam.toml");
    fs::write(&path, content).expect("write config");
    let out = run(&["check-config", path.to_str().expect("utf-8 path")]);
    let mut msg = text(&out.stdout);
    msg.push_str(&text(&out.stderr));
    (out.status.success(), msg)
}

#[test]
fn check_config_accepts_a_good_file() {
    let (ok, msg) = check_config(
        "# dashcam\nsource = \"test\"\ndir = \"/var/lib/dashcam\"\nsegment_seconds = 60\n\n[test_pattern]\nwidth = 640\nheight = 360\n",
    );
    assert!(ok, "a valid config was rejected:\n{msg}");
}

#[test]
fn check_config_accepts_an_empty_file() {
    let (ok, msg) = check_config("");
    assert!(ok, "an empty config (all defaults) was rejected:\n{msg}");
}

#[test]
fn check_config_unknown_key_names_key_and_line() {
    let (ok, msg) = check_config("source = \"test\"\n\nsegment_secnods = 30\n");
    assert!(!ok, "unknown key accepted:\n{msg}");
    assert!(msg.contains("segment_secnods"), "key not named:\n{msg}");
    assert!(msg.contains("line 3"), "line not named:\n{msg}");
}

#[test]
fn check_config_bad_value_names_key_and_line() {
    let (ok, msg) = check_config("source = \"test\"\nsegment_seconds = 0\n");
    assert!(!ok, "segment_seconds = 0 accepted:\n{msg}");
    assert!(msg.contains("segment_seconds"), "key not named:\n{msg}");
    assert!(msg.contains("line 2"), "line not named:\n{msg}");
}

#[test]
fn check_config_wrong_type_names_key_and_line() {
    let (ok, msg) = check_config("\n\nfps = \"thirty\"\n");
    assert!(!ok, "fps = \"thirty\" accepted:\n{msg}");
    assert!(msg.contains("fps"), "key not named:\n{msg}");
    assert!(msg.contains("line 3"), "line not named:\n{msg}");
}

#[test]
fn check_config_bad_source_names_key_and_line() {
    let (ok, msg) = check_config("dir = \"/tmp\"\nsource = \"camera:9\"\n");
    assert!(!ok, "source = \"camera:9\" accepted:\n{msg}");
    assert!(msg.contains("source"), "key not named:\n{msg}");
    assert!(msg.contains("line 2"), "line not named:\n{msg}");
}

#[test]
fn check_config_nested_key_names_table_and_line() {
    let (ok, msg) = check_config("[test_pattern]\nwidth = 641\n");
    assert!(!ok, "odd width accepted:\n{msg}");
    assert!(msg.contains("width"), "key not named:\n{msg}");
    assert!(msg.contains("line 2"), "line not named:\n{msg}");
}

#[test]
fn check_config_missing_file_fails() {
    let (ok, msg) = check_config_path(Path::new("/nonexistent/dashcam.toml"));
    assert!(!ok, "a missing config file was accepted:\n{msg}");
    assert!(
        msg.contains("/nonexistent/dashcam.toml"),
        "path not named:\n{msg}"
    );
}

fn check_config_path(path: &Path) -> (bool, String) {
    let out = run(&["check-config", path.to_str().expect("utf-8 path")]);
    let mut msg = text(&out.stdout);
    msg.push_str(&text(&out.stderr));
    (out.status.success(), msg)
}

/// `run --config FILE` takes its settings from the file (flags not given).
#[test]
fn run_uses_config_file() {
    let input = input("headers_once.h264");
    let tmp = tmpdir("run-config");
    let dir = tmp.path().join("footage");
    fs::create_dir(&dir).expect("mkdir");
    let cfg = tmp.path().join("dashcam.toml");
    fs::write(
        &cfg,
        format!(
            "source = \"file:{}\"\ndir = \"{}\"\nsegment_seconds = 5\nfast = true\n",
            input.display(),
            dir.display()
        ),
    )
    .expect("write config");
    let mut cmd = dashcam();
    cmd.args(["run", "--config"]).arg(&cfg);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(120.0));
    assert_no_panic(&what, &out);
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        text(&out.stderr)
    );
    let segs = segments(&dir);
    // 10 s, IDR every second, 5 s target: exactly two segments of 5 s.
    assert_eq!(
        segs.len(),
        2,
        "expected 2 segments of 5 s in the configured dir:\n  {}",
        listing(&dir)
    );
    for s in &segs {
        let d = format_duration(&s.path).unwrap_or(0.0);
        assert!(
            (d - 5.0).abs() < 0.02,
            "{}: duration {d}, expected 5 s",
            s.name
        );
    }
}
