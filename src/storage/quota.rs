//! The loop quota and the locked quota: how much dashcam may keep, and what must go.
//!
//! Pure policy over numbers (no file access), so it is tested exhaustively:
//!
//! - the **footage limit** is the smallest of `max_size`, `max_percent` of the file system,
//!   and what the drive can give while keeping `min_free` free (what dashcam uses now plus
//!   the free space, minus the reserve). Everything dashcam keeps counts against it: loop
//!   segments (the open one included), locked segments, saved clips, `corrupt/`;
//! - the **protected share** (`locked/` and `saved/`) may use at most `locked_max_percent`
//!   of the footage limit, so the loop always keeps the rest;
//! - when the total would cross the limit (with `headroom` for what the writer is about to
//!   write, a few seconds at the measured rate), the oldest closed loop segments go first.
//!   Never the open segment, never the newest closed one, never a locked one or a clip;
//! - on a full disk the writer asks for room: the oldest closed loop segments go until the
//!   bytes asked for are free, again never the newest;
//! - a lock that would take the protected share past its quota rotates the oldest locked
//!   segments out (`locked_full = "rotate"`) or is refused (`"refuse"`, or when even
//!   rotating every locked segment out would not make room).
//!
//! The footage core ([`super::footage`]) performs what these functions decide.

/// What to do when locking would take the protected share past its quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockedFull {
    /// Delete the oldest locked segments (with a warning) to make room.
    Rotate,
    /// Refuse the lock.
    Refuse,
}

/// The quota settings (from the configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaSettings {
    pub max_size: Option<u64>,
    pub max_percent: Option<f64>,
    /// `None`: 5 % of the file system or 500 MiB, whichever is larger (at most half the
    /// file system, so a small card can still record).
    pub min_free: Option<crate::disk::space::SizeSpec>,
    pub locked_max_percent: f64,
    pub locked_full: LockedFull,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        QuotaSettings {
            max_size: None,
            max_percent: None,
            min_free: None,
            locked_max_percent: 30.0,
            locked_full: LockedFull::Rotate,
        }
    }
}

/// Default reserve: 500 MiB.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 500 << 20;
/// Default reserve: 5 % of the file system.
pub const DEFAULT_MIN_FREE_PERCENT: f64 = 5.0;

/// Bytes dashcam keeps, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Closed loop segments (files and metadata).
    pub loop_closed: u64,
    /// The open segment as written so far.
    pub open: u64,
    pub locked: u64,
    pub saved: u64,
    pub corrupt: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.loop_closed
            .saturating_add(self.open)
            .saturating_add(self.locked)
            .saturating_add(self.saved)
            .saturating_add(self.corrupt)
    }
    pub fn protected(&self) -> u64 {
        self.locked.saturating_add(self.saved)
    }
}

/// The limits in force for a file system state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Everything dashcam keeps, at most.
    pub footage: u64,
    /// `locked/` + `saved/`, at most.
    pub protected: u64,
    /// Free space to keep on the file system.
    pub min_free: u64,
}

impl QuotaSettings {
    pub fn min_free_bytes(&self, fs_total: u64) -> u64 {
        match self.min_free {
            Some(spec) => spec.bytes_of(fs_total),
            None => {
                let pct = (fs_total as f64 * DEFAULT_MIN_FREE_PERCENT / 100.0) as u64;
                pct.max(DEFAULT_MIN_FREE_BYTES).min(fs_total / 2)
            }
        }
    }

    /// The limits on a file system of `fs_total` bytes with `fs_avail` free, while dashcam
    /// keeps `used` bytes there.
    pub fn limits(&self, fs_total: u64, fs_avail: u64, used: u64) -> Limits {
        let min_free = self.min_free_bytes(fs_total);
        let mut footage = used.saturating_add(fs_avail).saturating_sub(min_free);
        if let Some(m) = self.max_size {
            footage = footage.min(m);
        }
        if let Some(p) = self.max_percent {
            footage = footage.min((fs_total as f64 * p / 100.0) as u64);
        }
        Limits {
            footage,
            protected: (footage as f64 * self.locked_max_percent / 100.0) as u64,
            min_free,
        }
    }
}

/// How many of the oldest closed loop segments (`oldest_first`: their sizes, oldest
/// first) must go so that `usage` plus `headroom` fits the footage limit.
pub fn loop_deletions(
    limits: &Limits,
    usage: &Usage,
    headroom: u64,
    oldest_first: &[u64],
) -> usize {
    let mut total = usage.total().saturating_add(headroom);
    let mut n = 0;
    for &bytes in oldest_first {
        if total <= limits.footage {
            break;
        }
        total = total.saturating_sub(bytes);
        n += 1;
    }
    n
}

/// How many of the oldest locked segments (`oldest_first` sizes) must go so that `incoming`
/// more protected bytes fit; `None` when even deleting all of them is not enough.
pub fn locked_rotations(
    limits: &Limits,
    usage: &Usage,
    incoming: u64,
    oldest_first: &[u64],
) -> Option<usize> {
    let mut protected = usage.protected().saturating_add(incoming);
    let mut n = 0;
    for &bytes in oldest_first {
        if protected <= limits.protected {
            return Some(n);
        }
        protected = protected.saturating_sub(bytes);
        n += 1;
    }
    (protected <= limits.protected).then_some(n)
}

/// Least room kept ahead of the writer.
pub const MIN_HEADROOM: u64 = 256 << 10;
/// Most room kept ahead of the writer, as a share (1/N) of the footage limit.
pub const MAX_HEADROOM_SHARE: u64 = 10;
/// Seconds of writing kept ahead of the writer (at the measured rate).
pub const HEADROOM_SECONDS: f64 = 3.0;

/// Room to keep ahead of a writer writing `rate` bytes a second: [`HEADROOM_SECONDS`] of
/// it, at least [`MIN_HEADROOM`], at most a tenth of the footage limit.
pub fn headroom(rate: f64, limits: &Limits) -> u64 {
    ((rate.max(0.0) * HEADROOM_SECONDS) as u64)
        .max(MIN_HEADROOM)
        .min(limits.footage / MAX_HEADROOM_SHARE)
}

/// What keeping the quota needs now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enforcement {
    /// How many of the oldest closed loop segments to delete.
    pub delete: usize,
    /// Still over the limit afterwards (only the newest closed segment is left in the
    /// loop, or protected footage takes the room): worth a warning.
    pub still_over: bool,
}

/// The quota decision: which of the closed loop segments (`loop_oldest_first`, their
/// sizes, oldest first, the newest last) go so that `usage` plus `headroom` fits. The
/// newest closed segment always stays: the quota may be exceeded by one segment, never
/// kept by deleting the most recent footage.
pub fn enforcement(
    limits: &Limits,
    usage: &Usage,
    headroom: u64,
    loop_oldest_first: &[u64],
) -> Enforcement {
    let deletable = &loop_oldest_first[..loop_oldest_first.len().saturating_sub(1)];
    let delete = loop_deletions(limits, usage, headroom, deletable);
    let freed: u64 = deletable[..delete].iter().sum();
    let after = usage.total().saturating_sub(freed).saturating_add(headroom);
    Enforcement {
        delete,
        still_over: after > limits.footage && loop_oldest_first.len() - delete <= 1,
    }
}

/// On a full disk: how many of the oldest closed loop segments (`loop_oldest_first`
/// sizes, the newest last) to delete to free `need` bytes (at least one segment when
/// `need` is 0); never the newest.
pub fn room_for(need: u64, loop_oldest_first: &[u64]) -> usize {
    let deletable = &loop_oldest_first[..loop_oldest_first.len().saturating_sub(1)];
    let mut freed = 0u64;
    let mut n = 0;
    for &bytes in deletable {
        if freed >= need.max(1) {
            break;
        }
        freed = freed.saturating_add(bytes);
        n += 1;
    }
    n
}

/// What locking `incoming` bytes more into the protected share needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockPlan {
    /// It fits as it is.
    Fits,
    /// Delete this many of the oldest locked segments first (`locked_full = "rotate"`).
    Rotate(usize),
    /// Refused: it fits only by rotating out (`locked_full = "refuse"`).
    RefusedBySetting,
    /// Refused: it does not fit even with every locked segment rotated out.
    TooBig,
}

/// The locked-quota decision for a lock of `incoming` bytes, with the locked segments'
/// sizes `locked_oldest_first`.
pub fn lock_plan(
    limits: &Limits,
    usage: &Usage,
    incoming: u64,
    locked_oldest_first: &[u64],
    when_full: LockedFull,
) -> LockPlan {
    match locked_rotations(limits, usage, incoming, locked_oldest_first) {
        Some(0) => LockPlan::Fits,
        Some(n) if when_full == LockedFull::Rotate => LockPlan::Rotate(n),
        Some(_) => LockPlan::RefusedBySetting,
        None => LockPlan::TooBig,
    }
}

/// Bytes the writer writes a second, an exponential average over samples at least a
/// second apart, for the headroom.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteRate {
    rate: f64,
    sample: Option<(std::time::Instant, u64)>,
}

impl WriteRate {
    /// Note that `written` bytes have been written in all at `now`.
    pub fn sample(&mut self, now: std::time::Instant, written: u64) {
        let Some((t, w)) = self.sample else {
            self.sample = Some((now, written));
            return;
        };
        let dt = now.saturating_duration_since(t).as_secs_f64();
        if dt < 1.0 {
            return;
        }
        let r = written.saturating_sub(w) as f64 / dt;
        self.rate = if self.rate == 0.0 {
            r
        } else {
            0.7 * self.rate + 0.3 * r
        };
        self.sample = Some((now, written));
    }

    pub fn bytes_per_second(&self) -> f64 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::space::SizeSpec;

    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;

    #[test]
    fn default_min_free_is_the_larger_of_5_percent_and_500m() {
        let q = QuotaSettings::default();
        assert_eq!(q.min_free_bytes(32 * G), (32 * G) / 20);
        assert_eq!(q.min_free_bytes(4 * G), 500 * M);
        // A tiny file system keeps half for recording.
        assert_eq!(q.min_free_bytes(100 * M), 50 * M);
    }

    #[test]
    fn footage_limit_is_the_smallest() {
        let q = QuotaSettings {
            max_size: Some(28 * G),
            min_free: Some(SizeSpec::Bytes(G)),
            ..Default::default()
        };
        // 32 G card, 10 G used by dashcam, 20 G free: 29 G reachable, max_size 28 G.
        let l = q.limits(32 * G, 20 * G, 10 * G);
        assert_eq!(l.footage, 28 * G);
        assert_eq!(l.protected, (28 * G) * 3 / 10);
        // Someone else filled the card: only 2 G free → 10 + 2 − 1 = 11 G.
        assert_eq!(q.limits(32 * G, 2 * G, 10 * G).footage, 11 * G);
        let p = QuotaSettings {
            max_percent: Some(50.0),
            min_free: Some(SizeSpec::Percent(1.0)),
            ..Default::default()
        };
        assert_eq!(p.limits(32 * G, 30 * G, 0).footage, 16 * G);
    }

    #[test]
    fn oldest_go_until_it_fits() {
        let l = Limits {
            footage: 100,
            protected: 30,
            min_free: 0,
        };
        let u = Usage {
            loop_closed: 90,
            open: 15,
            ..Default::default()
        };
        assert_eq!(loop_deletions(&l, &u, 0, &[10, 10, 10]), 1);
        assert_eq!(loop_deletions(&l, &u, 10, &[10, 10, 10]), 2);
        assert_eq!(loop_deletions(&l, &u, 0, &[3, 3]), 2);
        let small = Usage {
            loop_closed: 50,
            ..Default::default()
        };
        assert_eq!(loop_deletions(&l, &small, 0, &[10]), 0);
    }

    #[test]
    fn locked_rotation() {
        let l = Limits {
            footage: 100,
            protected: 30,
            min_free: 0,
        };
        let u = Usage {
            locked: 25,
            ..Default::default()
        };
        assert_eq!(locked_rotations(&l, &u, 5, &[10, 10]), Some(0));
        assert_eq!(locked_rotations(&l, &u, 10, &[10, 10]), Some(1));
        assert_eq!(locked_rotations(&l, &u, 40, &[10, 10, 5]), None);
    }

    fn limits(footage: u64, protected: u64) -> Limits {
        Limits {
            footage,
            protected,
            min_free: 0,
        }
    }

    #[test]
    fn headroom_is_three_seconds_within_bounds() {
        let l = limits(100 * M, 30 * M);
        assert_eq!(headroom(0.0, &l), MIN_HEADROOM);
        assert_eq!(headroom(1_000_000.0, &l), 3_000_000);
        assert_eq!(headroom(1e12, &l), 10 * M);
        // A tiny limit: a tenth of it, even below the minimum.
        assert_eq!(headroom(0.0, &limits(M, 0)), M / 10);
    }

    #[test]
    fn enforcement_keeps_the_newest_closed_segment() {
        let l = limits(100, 30);
        // 4 closed loop segments of 30, nothing else: 120 > 100, the oldest goes.
        let u = Usage {
            loop_closed: 120,
            ..Default::default()
        };
        let e = enforcement(&l, &u, 0, &[30, 30, 30, 30]);
        assert_eq!(
            e,
            Enforcement {
                delete: 1,
                still_over: false
            }
        );
        // With headroom 25 two go.
        assert_eq!(enforcement(&l, &u, 25, &[30, 30, 30, 30]).delete, 2);
        // Locked footage takes the room: everything but the newest goes, still over.
        let crowded = Usage {
            loop_closed: 90,
            locked: 90,
            ..Default::default()
        };
        let e = enforcement(&l, &crowded, 0, &[30, 30, 30]);
        assert_eq!(
            e,
            Enforcement {
                delete: 2,
                still_over: true
            }
        );
        // One closed segment only: it stays, whatever the quota.
        let one = Usage {
            loop_closed: 500,
            ..Default::default()
        };
        assert_eq!(
            enforcement(&l, &one, 0, &[500]),
            Enforcement {
                delete: 0,
                still_over: true
            }
        );
        // Under the limit: nothing.
        let fine = Usage {
            loop_closed: 60,
            open: 10,
            ..Default::default()
        };
        assert_eq!(
            enforcement(&l, &fine, 0, &[30, 30]),
            Enforcement {
                delete: 0,
                still_over: false
            }
        );
        // The open segment counts: 60 closed + 50 open.
        let growing = Usage { open: 50, ..fine };
        assert_eq!(enforcement(&l, &growing, 0, &[30, 30]).delete, 1);
        assert_eq!(enforcement(&l, &Usage::default(), 0, &[]).delete, 0);
    }

    #[test]
    fn room_on_a_full_disk_never_takes_the_newest() {
        assert_eq!(room_for(50, &[30, 30, 30]), 2);
        assert_eq!(room_for(10, &[30, 30, 30]), 1);
        assert_eq!(room_for(0, &[30, 30]), 1);
        assert_eq!(room_for(1000, &[30, 30, 30]), 2);
        assert_eq!(room_for(10, &[30]), 0);
        assert_eq!(room_for(10, &[]), 0);
    }

    #[test]
    fn lock_plan_rotates_or_refuses() {
        let l = limits(100, 30);
        let u = Usage {
            locked: 25,
            ..Default::default()
        };
        for mode in [LockedFull::Rotate, LockedFull::Refuse] {
            assert_eq!(lock_plan(&l, &u, 5, &[10, 15], mode), LockPlan::Fits);
            assert_eq!(lock_plan(&l, &u, 40, &[10, 15], mode), LockPlan::TooBig);
        }
        assert_eq!(
            lock_plan(&l, &u, 10, &[10, 15], LockedFull::Rotate),
            LockPlan::Rotate(1)
        );
        assert_eq!(
            lock_plan(&l, &u, 20, &[10, 15], LockedFull::Rotate),
            LockPlan::Rotate(2)
        );
        assert_eq!(
            lock_plan(&l, &u, 10, &[10, 15], LockedFull::Refuse),
            LockPlan::RefusedBySetting
        );
        // Saved clips count against the share but are never rotated out.
        let with_clips = Usage {
            locked: 10,
            saved: 20,
            ..Default::default()
        };
        assert_eq!(
            lock_plan(&l, &with_clips, 10, &[10], LockedFull::Rotate),
            LockPlan::Rotate(1)
        );
        assert_eq!(
            lock_plan(&l, &with_clips, 15, &[10], LockedFull::Rotate),
            LockPlan::TooBig
        );
        // locked_max_percent = 0: nothing may be locked.
        assert_eq!(
            lock_plan(
                &limits(100, 0),
                &Usage::default(),
                1,
                &[],
                LockedFull::Rotate
            ),
            LockPlan::TooBig
        );
    }

    #[test]
    fn write_rate_averages_samples_a_second_apart() {
        let t0 = std::time::Instant::now();
        let s = std::time::Duration::from_secs;
        let mut r = WriteRate::default();
        r.sample(t0, 0);
        assert_eq!(r.bytes_per_second(), 0.0);
        r.sample(t0 + std::time::Duration::from_millis(500), 999);
        assert_eq!(r.bytes_per_second(), 0.0, "less than a second: no sample");
        r.sample(t0 + s(2), 2000);
        assert_eq!(r.bytes_per_second(), 1000.0);
        r.sample(t0 + s(3), 4000);
        assert!((r.bytes_per_second() - (0.7 * 1000.0 + 0.3 * 2000.0)).abs() < 1e-9);
    }
}
