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
//!   write), the oldest closed loop segments go first. Never the open segment, never a
//!   locked one or a clip.

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
}
