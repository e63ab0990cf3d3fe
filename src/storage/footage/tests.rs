//! The footage core on real (small) files in a temporary directory: every request and its
//! error kinds, the quota, lock rotation, the event lock and the async-clip queue. The
//! segment files are stand-ins of a known size (moves and deletions do not read them). Compiled
//! only under #[cfg(test)] (declared so in mod.rs).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::*;
use crate::disk::space::SizeSpec;
use crate::storage::error::ErrorKind;
use crate::storage::quota::LockedFull;

struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn root(&self) -> &Path {
        self.tmp.path()
    }
    fn seg(&self, seq: u64) -> PathBuf {
        self.root()
            .join(format!("20261121-1430{:02}_{seq:06}.mp4", seq % 60))
    }
    fn locked(&self, seq: u64) -> PathBuf {
        self.root().join("locked").join(file_name(&self.seg(seq)))
    }
    /// A closed loop segment of `bytes` with a small metadata file.
    fn write(&self, seq: u64, bytes: usize) -> PathBuf {
        let p = self.seg(seq);
        std::fs::write(&p, vec![0u8; bytes]).expect("segment");
        std::fs::write(p.with_extension("json"), b"{}").expect("metadata");
        p
    }
    fn footage(&self, quota: QuotaSettings, enforce: bool) -> Footage {
        Footage::open(FootageSettings {
            layout: Layout::new(self.root()),
            quota,
            post_event: Duration::from_secs(10),
            enforce,
            events: EventSink::default(),
            also_counted: Vec::new(),
        })
    }
}

/// A quota of `max_size` bytes, no reserve, `locked_max_percent` for the protected share.
fn quota(max_size: u64, locked_percent: f64, full: LockedFull) -> QuotaSettings {
    QuotaSettings {
        max_size: Some(max_size),
        max_percent: None,
        min_free: Some(SizeSpec::Bytes(0)),
        locked_max_percent: locked_percent,
        locked_full: full,
    }
}

fn kind<T: std::fmt::Debug>(r: Result<T, FootageError>) -> (ErrorKind, String) {
    let e = r.expect_err("an error");
    (e.kind, e.message)
}

#[test]
fn lock_unlock_and_delete_answer_each_error_kind() {
    let d = Dir::new();
    for s in 0..4 {
        d.write(s, 1000);
    }
    let mut f = d.footage(QuotaSettings::default(), false);

    let ok = f.lock(&file_name(&d.seg(1))).expect("lock by file name");
    assert_eq!(ok.files, vec![file_name(&d.seg(1))]);
    assert_eq!(ok.message, format!("locked {}", file_name(&d.seg(1))));
    assert!(d.locked(1).exists() && d.locked(1).with_extension("json").exists());
    assert!(!d.seg(1).exists() && !d.seg(1).with_extension("json").exists());

    let (k, m) = kind(f.lock("1"));
    assert_eq!(k, ErrorKind::Conflict);
    assert!(m.contains("is locked already"), "{m}");
    let (k, m) = kind(f.lock("20990101-000000_999999.mp4"));
    assert_eq!(k, ErrorKind::NotFound);
    assert!(m.contains("no segment"), "{m}");
    assert_eq!(kind(f.lock("  ")).0, ErrorKind::Invalid);

    let (k, m) = kind(f.unlock("2"));
    assert_eq!(k, ErrorKind::Conflict);
    assert!(m.contains("is not locked"), "{m}");
    assert_eq!(kind(f.unlock("99")).0, ErrorKind::NotFound);
    let ok = f.unlock("20261121-143001_000001").expect("unlock by stem");
    assert!(ok.message.contains("unlocked"), "{}", ok.message);
    assert!(d.seg(1).exists() && !d.locked(1).exists());

    f.lock("3").expect("lock 3");
    let (k, m) = kind(f.delete("3"));
    assert_eq!(k, ErrorKind::Conflict);
    assert!(m.contains("unlock it first"), "{m}");
    assert!(d.locked(3).exists());
    f.delete("0").expect("delete a loop segment");
    assert!(!d.seg(0).exists() && !d.seg(0).with_extension("json").exists());
    assert_eq!(kind(f.delete("0")).0, ErrorKind::NotFound);
}

#[test]
fn saved_clips_can_be_deleted_but_not_locked() {
    let d = Dir::new();
    let saved = d.root().join("saved");
    std::fs::create_dir(&saved).expect("saved");
    let clip = saved.join("clip_20261121-143005_20261121-143105.mp4");
    std::fs::write(&clip, b"clip").expect("clip");
    std::fs::write(clip.with_extension("json"), b"{}").expect("clip json");
    let mut f = d.footage(QuotaSettings::default(), false);
    let name = file_name(&clip);
    assert_eq!(kind(f.lock(&name)).0, ErrorKind::Invalid);
    assert_eq!(kind(f.unlock(&name)).0, ErrorKind::Invalid);
    assert_eq!(f.catalog.usage(0).saved, 6);
    let ok = f.delete(&name).expect("delete the clip");
    assert_eq!(ok.files, vec![name]);
    assert!(!clip.exists() && !clip.with_extension("json").exists());
    assert_eq!(f.catalog.usage(0).saved, 0);
}

#[test]
fn the_segment_being_written_is_locked_when_it_closes_and_never_deleted() {
    let d = Dir::new();
    d.write(0, 1000);
    let mut f = d.footage(QuotaSettings::default(), false);
    let open = d.seg(1);
    std::fs::write(&open, vec![0u8; 300]).expect("open segment");
    f.opened(&open, SystemTime::now());
    let name = file_name(&open);

    let ok = f.lock(&name).expect("lock the open segment");
    assert_eq!(
        ok.message,
        format!("{name} is being recorded: it will be locked when it closes")
    );
    assert!(open.exists(), "not moved while it is written");
    let (k, m) = kind(f.delete("1"));
    assert_eq!(k, ErrorKind::Conflict);
    assert!(m.contains("being recorded"), "{m}");
    // Unlock cancels the waiting lock; a second unlock has nothing to cancel.
    assert!(f.unlock("1").expect("cancel").message.contains("no longer"));
    assert_eq!(kind(f.unlock("1")).0, ErrorKind::Conflict);
    f.lock("1").expect("lock again");

    // The writer could not finish it (None): the core tries to, then locks it.
    f.closed(&open, None);
    assert!(d.locked(1).exists(), "locked when it closed");
    assert!(!open.exists());
    assert_eq!(kind(f.lock("1")).0, ErrorKind::Conflict);
}

#[test]
fn the_locked_quota_refuses_or_rotates() {
    let d = Dir::new();
    for s in 0..4 {
        d.write(s, 998); // 1000 bytes with the metadata
    }
    d.write(4, 2998);
    // Footage limit 10 000, protected share 25 %: 2 500 bytes, two segments.
    let mut refuse = d.footage(quota(10_000, 25.0, LockedFull::Refuse), false);
    refuse.lock("0").expect("first fits");
    refuse.lock("1").expect("second fits");
    let (k, m) = kind(refuse.lock("2"));
    assert_eq!(k, ErrorKind::Conflict);
    assert!(
        m.contains("locked_max_percent") && m.contains("refuse"),
        "{m}"
    );
    assert!(d.seg(2).exists(), "not moved");

    let mut rotate = d.footage(quota(10_000, 25.0, LockedFull::Rotate), false);
    rotate.lock("2").expect("rotates");
    assert!(!d.locked(0).exists(), "the oldest locked went");
    assert!(d.locked(1).exists() && d.locked(2).exists());
    // 3 000 bytes never fit in 2 500, whatever is rotated out: refused, nothing deleted.
    let (k, m) = kind(rotate.lock("4"));
    assert_eq!(k, ErrorKind::Conflict);
    assert!(m.contains("locked_max_percent"), "{m}");
    assert!(d.locked(1).exists() && d.locked(2).exists() && d.seg(4).exists());
}

#[test]
fn the_quota_deletes_the_oldest_and_keeps_the_newest() {
    let d = Dir::new();
    for s in 0..5 {
        d.write(s, 998);
    }
    // A one-off command never deletes.
    let mut off = d.footage(quota(3_500, 30.0, LockedFull::Rotate), false);
    off.enforce();
    assert!(d.seg(0).exists());
    // 5 000 bytes, limit 3 500 with 350 of headroom (a tenth of the limit): two go.
    let mut f = d.footage(quota(3_500, 30.0, LockedFull::Rotate), true);
    f.enforce();
    assert!(!d.seg(0).exists() && !d.seg(1).exists());
    assert!(d.seg(2).exists() && d.seg(3).exists() && d.seg(4).exists());
    assert!(
        !d.seg(0).with_extension("json").exists(),
        "no orphan metadata"
    );
    // The open segment counts but is never deleted; the newest closed one stays.
    let open = d.seg(5);
    std::fs::write(&open, vec![0u8; 5000]).expect("open");
    f.opened(&open, SystemTime::now());
    f.set_open_bytes(5000);
    f.tick(std::time::Instant::now());
    assert!(!d.seg(2).exists() && !d.seg(3).exists());
    assert!(d.seg(4).exists(), "the newest closed segment stays");
    assert!(open.exists());
    // Locked segments are not the loop's to delete: with 4 (1 000), 5 (5 000, closed
    // now) in the loop and 6 (100) locked, over a limit of 1 000 only 4 goes.
    d.write(6, 98);
    let mut all = d.footage(quota(1_000, 90.0, LockedFull::Rotate), false);
    all.lock("6").expect("lock");
    let mut all = d.footage(quota(1_000, 90.0, LockedFull::Rotate), true);
    all.enforce();
    assert!(!d.seg(4).exists());
    assert!(d.seg(5).exists() && d.locked(6).exists());
}

#[test]
fn room_on_a_full_disk_comes_from_the_oldest() {
    let d = Dir::new();
    for s in 0..3 {
        d.write(s, 998);
    }
    let mut f = d.footage(QuotaSettings::default(), true);
    assert_eq!(f.make_room(1500), 2000);
    assert!(!d.seg(0).exists() && !d.seg(1).exists() && d.seg(2).exists());
    assert_eq!(f.make_room(1), 0, "the newest stays");
}

#[test]
fn the_event_lock_takes_the_previous_the_open_and_the_following_segments() {
    let d = Dir::new();
    for s in 0..3 {
        d.write(s, 998);
    }
    let mut f = d.footage(QuotaSettings::default(), false);
    let t0 = SystemTime::now();
    let open = |f: &mut Footage, seq: u64, start: SystemTime| {
        let p = d.seg(seq);
        std::fs::write(&p, vec![0u8; 100]).expect("open");
        f.opened(&p, start);
        p
    };
    let p3 = open(&mut f, 3, t0);
    let out = f
        .lock_now(t0 + Duration::from_secs(55))
        .expect("event lock");
    let n2 = file_name(&d.seg(2));
    let n3 = file_name(&p3);
    assert!(
        out.message.contains(&format!("locked {n2}")),
        "{}",
        out.message
    );
    assert!(
        out.message
            .contains(&format!("{n3} will be locked when it closes")),
        "{}",
        out.message
    );
    assert_eq!(out.files, vec![n2.clone(), n3]);
    assert!(d.locked(2).exists());
    f.closed(&p3, None);
    assert!(d.locked(3).exists(), "the open one, at its close");
    // Starts 60 s after t0, within 10 s of the event (55 s): locked.
    let p4 = open(&mut f, 4, t0 + Duration::from_secs(60));
    f.closed(&p4, None);
    assert!(d.locked(4).exists(), "the following one in the window");
    let p5 = open(&mut f, 5, t0 + Duration::from_secs(120));
    f.closed(&p5, None);
    assert!(d.seg(5).exists(), "outside the window");

    // Between segments: the newest closed one now, the next one when it closes.
    let out = f
        .lock_now(t0 + Duration::from_secs(180))
        .expect("event lock");
    assert_eq!(out.files, vec![file_name(&d.seg(5))]);
    assert!(d.locked(5).exists());
    let p6 = open(&mut f, 6, t0 + Duration::from_secs(185));
    f.closed(&p6, None);
    assert!(d.locked(6).exists());
    // Pressed again: the previous one is locked already, which is fine.
    let p7 = open(&mut f, 7, t0 + Duration::from_secs(240));
    let out = f
        .lock_now(t0 + Duration::from_secs(241))
        .expect("event lock");
    assert!(out.message.contains("is locked already"), "{}", out.message);
    f.closed(&p7, None);
    assert!(d.locked(7).exists());
}

#[test]
fn the_event_lock_reports_a_full_locked_quota_and_still_holds() {
    let d = Dir::new();
    d.write(0, 4998);
    let mut f = d.footage(quota(10_000, 10.0, LockedFull::Refuse), false);
    let p = d.seg(1);
    std::fs::write(&p, vec![0u8; 100]).expect("open");
    f.opened(&p, SystemTime::now());
    let out = f.lock_now(SystemTime::now()).expect("event lock");
    assert!(
        out.message.contains("locked_max_percent"),
        "{}",
        out.message
    );
    assert!(d.seg(0).exists());
    f.closed(&p, None);
    assert!(d.locked(1).exists(), "the open segment was still locked");
}

#[test]
fn clip_requests_wait_for_the_segment_in_progress() {
    let d = Dir::new();
    d.write(0, 998);
    let mut f = d.footage(QuotaSettings::default(), false);
    let t0 = SystemTime::now() - Duration::from_secs(30);
    let open = d
        .root()
        .join(format!("{}.avi", crate::disk::naming::segment_stem(t0, 1)));
    std::fs::write(&open, vec![0u8; 100]).expect("open");
    f.opened(&open, t0);
    let at = |dt: i64| {
        clip::format_local(if dt >= 0 {
            t0 + Duration::from_secs(dt as u64)
        } else {
            t0 - Duration::from_secs(dt.unsigned_abs())
        })
    };
    let ask = |f: &mut Footage, from: String, to: String| {
        f.handle(
            Request::Clip {
                from,
                to,
                output: None,
                metadata: Some("m".into()),
            },
            SystemTime::now(),
        )
    };

    let (k, m) = kind(ask(&mut f, "yesterday".into(), at(0)));
    assert_eq!(k, ErrorKind::Invalid);
    assert!(m.contains("YYYY-MM-DDTHH:MM:SS"), "{m}");
    let (k, m) = kind(ask(&mut f, at(10), at(5)));
    assert_eq!(k, ErrorKind::Invalid);
    assert!(m.contains("is after"), "{m}");

    // Reaches into the open segment: waits for its close; named like the open one.
    let waiting = ask(&mut f, at(-20), at(5)).expect("queued");
    assert!(
        waiting
            .message
            .contains("when the segment in progress closes"),
        "{}",
        waiting.message
    );
    let first = PathBuf::from(&waiting.files[0]);
    assert_eq!(first.parent(), Some(d.root().join("saved").as_path()));
    assert_eq!(first.extension().and_then(|e| e.to_str()), Some("avi"));
    // The same range again gets its own name.
    let again = ask(&mut f, at(-20), at(5)).expect("queued");
    assert_ne!(again.files, waiting.files);
    assert!(f.take_due_clips().is_empty());
    // Ends before the open segment began: cut at once.
    let now = ask(&mut f, at(-60), at(-40)).expect("due");
    assert!(now.message.starts_with("writing "), "{}", now.message);
    let due = f.take_due_clips();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].request.metadata.as_deref(), Some("m"));
    assert_eq!(
        due[0].run().map_err(|e| e.kind).expect_err("no footage"),
        ErrorKind::NotFound
    );

    f.closed(&open, None);
    let due = f.take_due_clips();
    assert_eq!(due.len(), 2, "both waiting clips are due");
    assert_eq!(due[0].request.output.as_deref(), Some(first.as_path()));

    // Stopping makes every waiting clip due.
    let p = d.seg(2);
    std::fs::write(&p, vec![0u8; 100]).expect("open");
    f.opened(&p, SystemTime::now());
    ask(&mut f, at(0), at(3600)).expect("queued");
    assert_eq!(f.stop().len(), 1);
}

#[test]
fn a_vanished_drive_is_unavailable() {
    let d = Dir::new();
    let root = d.root().join("footage");
    std::fs::create_dir(&root).expect("root");
    let seg = root.join("20261121-143000_000000.mp4");
    std::fs::write(&seg, b"x").expect("segment");
    let mut f = Footage::open(FootageSettings {
        layout: Layout::new(&root),
        quota: QuotaSettings::default(),
        post_event: Duration::from_secs(10),
        enforce: false,
        events: EventSink::default(),
        also_counted: Vec::new(),
    });
    std::fs::rename(&root, d.root().join("gone")).expect("unmount");
    for r in [f.lock("0"), f.unlock("0"), f.delete("0"), f.lock("7")] {
        let (k, m) = kind(r);
        assert_eq!(k, ErrorKind::Unavailable, "{m}");
        assert!(m.contains("drive unavailable"), "{m}");
    }
    assert_eq!(kind(f.rescan()).0, ErrorKind::Unavailable);
    // The index is kept meanwhile; back, it is read again.
    assert_eq!(f.catalog.loop_sizes().len(), 1);
    std::fs::rename(d.root().join("gone"), &root).expect("mount");
    f.lock("0").expect("locked");
}

#[test]
fn requests_are_dispatched() {
    let d = Dir::new();
    for s in 0..2 {
        d.write(s, 98);
    }
    let mut f = d.footage(QuotaSettings::default(), false);
    let now = SystemTime::now();
    f.handle(Request::Lock { name: "0".into() }, now)
        .expect("lock");
    assert!(d.locked(0).exists());
    f.handle(Request::Unlock { name: "0".into() }, now)
        .expect("unlock");
    assert!(d.seg(0).exists());
    f.handle(Request::Delete { name: "0".into() }, now)
        .expect("delete");
    assert!(!d.seg(0).exists());
    let out = f.handle(Request::LockNow, now).expect("lock now");
    assert_eq!(out.files, vec![file_name(&d.seg(1))]);
    assert!(d.locked(1).exists());
}

#[test]
fn the_core_says_what_it_did_as_events() {
    let d = Dir::new();
    for s in 0..4 {
        d.write(s, 998);
    }
    let (sink, rx) = EventSink::bounded(64);
    let upload = d.root().join("upload");
    std::fs::create_dir(&upload).expect("upload");
    std::fs::write(upload.join("copy.mp4"), vec![0u8; 500]).expect("copy");
    let mut f = Footage::open(FootageSettings {
        layout: Layout::new(d.root()),
        quota: quota(3_400, 50.0, LockedFull::Rotate),
        post_event: Duration::from_secs(10),
        enforce: true,
        events: sink,
        also_counted: vec![upload],
    });
    f.lock("1").expect("lock");
    f.unlock("1").expect("unlock");
    f.delete("0").expect("delete");
    // 2 000 + 500 in the upload folder, over 3 400 minus its headroom: the oldest goes.
    f.enforce();
    assert_eq!(f.make_room(1), 1000);
    assert_eq!(f.make_room(1), 0, "only the newest is left");
    let kinds: Vec<(&str, String)> = rx
        .try_iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
            (e.kind.name(), v["name"].as_str().unwrap_or("").to_string())
        })
        .collect();
    let name = |s| file_name(&d.seg(s));
    assert_eq!(
        kinds,
        vec![
            ("locked", name(1)),
            ("unlocked", name(1)),
            ("deleted", name(0)),
            ("quota_deleted", name(1)),
            ("quota_deleted", name(2)),
            ("drive_full", String::new()),
        ]
    );
}
