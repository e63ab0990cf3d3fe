//! The upload folder, watched like a sync tool would (inotifywait from Debian's
//! inotify-tools): locked segments and clips appear under their final names only whole
//! (a hard link on the same file system, a rename of a finished copy across file
//! systems), each with its metadata JSON; the command runs after each placement; a
//! SIGKILL in the middle of a copy leaves no partial file under the final name, and the
//! temp file is removed at the next start.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

fn have_inotifywait() -> bool {
    Command::new("sh")
        .args(["-c", "command -v inotifywait"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `inotifywait -m` on `dir`: every event as `EVENTS NAME`, collected as it comes.
struct Watcher {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watcher {
    fn start(dir: &Path, on_line: impl Fn(&str) + Send + 'static) -> Watcher {
        let mut child = Command::new("inotifywait")
            .args([
                "-m",
                "-q",
                "-e",
                "create,modify,close_write,moved_to,attrib",
                "--format",
                "%e %f",
            ])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("inotifywait");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    on_line(&l);
                    lines.lock().expect("lines").push(l);
                }
            });
        }
        // inotifywait prints nothing when its watch is set up: give it a moment.
        std::thread::sleep(Duration::from_millis(300));
        Watcher { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

fn cli(args: &[&str], dir: &Path) -> std::process::Output {
    let mut cmd = dashcam();
    cmd.args(args).arg("--dir").arg(dir);
    let what = describe(&cmd);
    let out = run_to_end(cmd, scaled(30.0));
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    out
}

/// The events the watcher saw, by file name.
fn by_name(lines: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines {
        if let Some((ev, name)) = l.split_once(' ') {
            m.entry(name.to_string()).or_default().push(ev.to_string());
        }
    }
    m
}

/// Record in real time with `[upload]` into `upload`; lock twice and cut a clip.
fn record_and_place(tag: &str, upload: &Path) {
    let tmp = tmpdir(tag);
    let dir = tmp.path().join("footage");
    let placed_log = tmp.path().join("placed.log");
    let config = tmp.path().join("dashcam.toml");
    std::fs::write(
        &config,
        format!(
            "post_event_seconds = 0\n[upload]\ndir = \"{}\"\nwhat = \"both\"\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"$1 $DASHCAM_EVENT\\\" >> '{}'\", \"sh\"]\n",
            upload.display(),
            placed_log.display()
        ),
    )
    .expect("config");
    std::fs::create_dir_all(upload).expect("upload dir");
    let watcher = Watcher::start(upload, |_| {});
    let mut cmd = dashcam();
    cmd.arg("run")
        .arg("--source")
        .arg(format!("file:{}", input("headers_once.h264").display()))
        .arg("--dir")
        .arg(&dir)
        .args(["--segment-seconds", "2", "--config"])
        .arg(&config);
    let rec = Proc::spawn(cmd);
    assert!(
        wait_until(scaled(30.0), || closed(&dir).len() >= 3),
        "{}",
        rec.stderr_text()
    );
    let segs = closed(&dir);
    cli(&["lock", &segs[0].name], &dir);
    cli(&["lock", &segs[2].name], &dir);
    let from =
        chrono::DateTime::parse_from_rfc3339(segs[1].meta()["start_wall"].as_str().expect("start"))
            .expect("time");
    let fmt = |t: chrono::DateTime<chrono::FixedOffset>| {
        t.with_timezone(&chrono::Local)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let out = cli(
        &[
            "clip",
            "--async",
            "--from",
            &fmt(from + chrono::Duration::seconds(1)),
            "--to",
            &fmt(from + chrono::Duration::seconds(2)),
        ],
        &dir,
    );
    let clip = PathBuf::from(text(&out.stdout).lines().next().expect("clip").trim());
    let out = rec.finish(scaled(60.0));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    // What is in the folder: both locked segments and the clip, each whole and with its
    // JSON, nothing else.
    let mut want: Vec<PathBuf> = vec![
        dir.join("locked").join(&segs[0].name),
        dir.join("locked").join(&segs[2].name),
        clip.clone(),
    ];
    want.sort();
    let mut names: Vec<String> = std::fs::read_dir(upload)
        .expect("upload")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = want
        .iter()
        .flat_map(|p| {
            let n = p.file_name().expect("name").to_string_lossy().into_owned();
            [
                n.clone(),
                Path::new(&n).with_extension("json").display().to_string(),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(names, expected, "{stderr}");
    for src in &want {
        let name = src.file_name().expect("name");
        let placed = upload.join(name);
        assert!(
            std::fs::read(&placed).expect("placed") == std::fs::read(src).expect("source"),
            "{} differs from {}",
            placed.display(),
            src.display()
        );
        assert_eq!(probe_errors(&placed), "", "{}", placed.display());
        assert_eq!(
            std::fs::read(placed.with_extension("json")).expect("placed json"),
            std::fs::read(src.with_extension("json")).expect("source json"),
        );
    }
    // The watcher never saw a file of a final name being written in place.
    std::thread::sleep(Duration::from_millis(300));
    let seen = by_name(&watcher.lines());
    for (name, evs) in &seen {
        if name.starts_with('.') || name.ends_with(".tmp") {
            continue;
        }
        for e in evs {
            let ok = e.contains("MOVED_TO") || e == "CREATE" || e.contains("ATTRIB");
            assert!(
                ok,
                "{name}: {e} (a sync tool would see a partial file): {seen:#?}"
            );
        }
    }
    // The command ran once after each placement, with the placed path.
    let placed = std::fs::read_to_string(&placed_log).expect("command log");
    assert_eq!(placed.lines().count(), 3, "{placed}");
    for src in &want {
        let p = upload.join(src.file_name().expect("name"));
        assert!(placed.contains(&p.display().to_string()), "{placed}");
    }
}

#[test]
fn placements_are_whole_on_the_same_file_system_and_across() {
    require_tools();
    if !have_inotifywait() {
        eprintln!("inotifywait (inotify-tools) not installed: skipped");
        return;
    }
    // Same file system as the footage: hard links.
    let tmp = tmpdir("upload-link");
    record_and_place("upload-link-run", &tmp.path().join("upload"));
    // tmpfs: another file system, so copies (renamed into place when whole).
    if Path::new("/dev/shm").is_dir() {
        let shm = tempfile::tempdir_in("/dev/shm").expect("shm");
        record_and_place("upload-copy-run", &shm.path().join("upload"));
    }
}

#[test]
fn a_sigkill_during_a_copy_leaves_no_partial_file_under_its_name() {
    require_tools();
    if !have_inotifywait() || !Path::new("/dev/shm").is_dir() {
        eprintln!("inotifywait or /dev/shm missing: skipped");
        return;
    }
    let mut caught = 0;
    for attempt in 0..6 {
        let tmp = tmpdir("upload-kill");
        let dir = tmp.path().join("footage");
        let shm = tempfile::tempdir_in("/dev/shm").expect("shm");
        let upload = shm.path().join("upload");
        std::fs::create_dir(&upload).expect("upload");
        let config = tmp.path().join("dashcam.toml");
        std::fs::write(
            &config,
            format!(
                "idle_timeout = 1\n[upload]\ndir = \"{}\"\nwhat = \"locked\"\n",
                upload.display()
            ),
        )
        .expect("config");
        // The whole 1080p input through a pipe kept open: one 10 MB segment, closed by
        // the idle timeout while the recorder keeps running.
        let bin = env!("CARGO_BIN_EXE_dashcam");
        let mut cmd = match runner() {
            Some(r) => {
                let mut c = Command::new(&r[0]);
                c.args(&r[1..]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = cmd
            .args([
                "run",
                "--source",
                "-",
                "--fast",
                "--segment-seconds",
                "3600",
                "--dir",
            ])
            .arg(&dir)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dashcam");
        let pid = child.id() as i32;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(&std::fs::read(input("pi1080.h264")).expect("input"))
            .expect("write input");
        assert!(
            wait_until(scaled(60.0), || closed(&dir).len() == 1),
            "no segment closed"
        );
        let seg = closed(&dir).remove(0);
        let temp = format!(".{}.partial", seg.name);
        // Kill the moment the copy's temp file is created.
        let killed = Arc::new(Mutex::new(false));
        let watcher = {
            let temp = temp.clone();
            let killed = killed.clone();
            Watcher::start(&upload, move |l| {
                if l.starts_with("CREATE") && l.ends_with(&temp) {
                    // SAFETY: kill(2) on our own child, not yet reaped.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    *killed.lock().expect("flag") = true;
                }
            })
        };
        // (Its answer may never come: the kill can be faster than the reply.)
        let mut lock = dashcam();
        lock.args(["lock", &seg.name, "--dir"]).arg(&dir);
        let _ = run_to_end(lock, scaled(30.0));
        let deadline = Instant::now() + scaled(30.0);
        while !*killed.lock().expect("flag") && Instant::now() < deadline {
            if upload.join(&seg.name).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        drop(stdin);
        drop(watcher);
        let locked = dir.join("locked").join(&seg.name);
        let final_name = upload.join(&seg.name);
        if final_name.exists() {
            assert!(
                std::fs::read(&final_name).expect("placed")
                    == std::fs::read(&locked).expect("locked"),
                "attempt {attempt}: a partial file under the final name"
            );
        }
        if upload.join(&temp).exists() {
            caught += 1;
            assert!(
                !final_name.exists(),
                "attempt {attempt}: both temp and final"
            );
            // The next start removes what the cut left.
            let mut cmd = dashcam();
            cmd.args(["run", "--source"])
                .arg(format!("file:{}", input("headers_once.h264").display()))
                .args(["--fast", "--dir"])
                .arg(&dir)
                .arg("--config")
                .arg(&config);
            let out = run_to_end(cmd, scaled(60.0));
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert!(
                !upload.join(&temp).exists(),
                "temp file left after a restart"
            );
            assert!(
                text(&out.stderr).contains("cut before it was placed"),
                "{}",
                text(&out.stderr)
            );
            if caught >= 2 {
                break;
            }
        }
    }
    assert!(caught >= 1, "never killed in the middle of a copy");
}
