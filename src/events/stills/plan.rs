//! The stills' decisions, pure: which frame becomes a still ([`StillClock`]), what the
//! file is called ([`still_name`]), which old stills go ([`to_delete`]), and the size of
//! a reduced still ([`scaled_size`]).

use std::time::SystemTime;

use chrono::{DateTime, Local};

use crate::events::config::Limit;

/// Picks the keyframes that become stills: the first keyframe at or after each
/// `interval` on the stream clock (so a file read fast gets the same stills as one read
/// in real time).
#[derive(Clone, Debug)]
pub struct StillClock {
    interval: i64,
    next_due: Option<i64>,
}

impl StillClock {
    /// `interval` in stream ticks.
    pub fn new(interval: i64) -> StillClock {
        StillClock {
            interval: interval.max(1),
            next_due: None,
        }
    }

    /// Whether the frame at `pts` should become a still.
    pub fn due(&self, pts: i64, keyframe: bool) -> bool {
        if !keyframe {
            return false;
        }
        match self.next_due {
            None => true,
            Some(due) => pts >= due || pts < due - 2 * self.interval,
        }
    }

    /// The frame at `pts` was taken: the next one is due an interval after the last due
    /// time (on a grid, so sparse keyframes do not drift it), or after `pts` when the
    /// stream jumped.
    pub fn taken(&mut self, pts: i64) {
        let next = match self.next_due {
            Some(due) if pts >= due && pts < due + self.interval => due + self.interval,
            _ => pts + self.interval,
        };
        self.next_due = Some(next);
    }
}

/// `20261121-143005-123.jpg`: the capture time (local, milliseconds), sortable, valid on
/// FAT.
pub fn still_name(wall: SystemTime) -> String {
    let local: DateTime<Local> = wall.into();
    format!("{}.jpg", local.format("%Y%m%d-%H%M%S-%3f"))
}

/// Whether `name` is a still's name (so only those are counted and deleted).
pub fn is_still_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".jpg") else {
        return false;
    };
    let b = stem.as_bytes();
    b.len() == 19
        && b[8] == b'-'
        && b[15] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || i == 15 || c.is_ascii_digit())
}

/// The capture time a still's name says ([`still_name`] read back; local time, the
/// earlier one in a repeated hour), in Unix ms.
pub fn still_unix_ms(name: &str) -> Option<i64> {
    use chrono::{NaiveDateTime, TimeZone};
    if !is_still_name(name) {
        return None;
    }
    let stem = &name[..19];
    let naive = NaiveDateTime::parse_from_str(&stem[..15], "%Y%m%d-%H%M%S").ok()?;
    let ms: i64 = stem[16..].parse().ok()?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis() + ms)
}

/// How many of the oldest stills (sizes oldest first) go to keep `limit`; the newest one
/// always stays.
pub fn to_delete(sizes: &[u64], limit: Limit) -> usize {
    let n = sizes.len();
    if n <= 1 {
        return 0;
    }
    match limit {
        Limit::Count(keep) => n.saturating_sub(keep.max(1) as usize),
        Limit::Bytes(max) => {
            let mut total: u64 = sizes.iter().sum();
            let mut k = 0;
            while k < n - 1 && total > max {
                total -= sizes[k];
                k += 1;
            }
            k
        }
    }
}

/// The size of a still at most `max_width` wide: the aspect kept, both sides even (JPEG
/// 4:2:0), never larger than the frame.
pub fn scaled_size(width: u32, height: u32, max_width: u32) -> (u32, u32) {
    if width <= max_width || width == 0 {
        return (width, height);
    }
    let w = (max_width & !1).max(2);
    let h = ((u64::from(height) * u64::from(w) + u64::from(width) / 2) / u64::from(width)) as u32;
    (w, (h & !1).max(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stills_fall_on_a_grid_of_the_stream_clock() {
        // 30 fps MJPEG, every frame a keyframe, a still every second.
        let mut c = StillClock::new(90_000);
        let mut taken = Vec::new();
        for n in 0..100i64 {
            let pts = n * 3000;
            if c.due(pts, true) {
                c.taken(pts);
                taken.push(n);
            }
        }
        assert_eq!(taken, vec![0, 30, 60, 90]);
        // H.264 with a keyframe every 25 frames at 30 fps: the first keyframe at or after
        // each second.
        let mut c = StillClock::new(90_000);
        let mut taken = Vec::new();
        for n in 0..200i64 {
            let pts = n * 3000;
            if c.due(pts, n % 25 == 0) {
                c.taken(pts);
                taken.push(n);
            }
        }
        assert_eq!(taken, vec![0, 50, 75, 100, 125, 150]);
        // The stream restarts at 0 (a new source): stills start again at once.
        let mut c = StillClock::new(90_000);
        c.taken(900_000);
        assert!(!c.due(950_000, true));
        assert!(c.due(0, true));
        assert!(
            !c.due(990_000, false),
            "never a frame that is not a keyframe"
        );
    }

    #[test]
    fn names_and_their_recognition() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_267_805_123);
        let n = still_name(t);
        assert!(n.ends_with("-123.jpg"), "{n}");
        assert!(is_still_name(&n), "{n}");
        assert_eq!(still_unix_ms(&n), Some(1_795_267_805_123));
        assert_eq!(still_unix_ms("20261121-143005_000042.mp4"), None);
        assert!(!is_still_name("20261121-143005_000042.mp4"));
        assert!(!is_still_name("20261121-143005-123.jpg.tmp"));
        assert!(!is_still_name("latest.jpg"));
    }

    #[test]
    fn keep_by_count_or_size_and_never_the_newest() {
        assert_eq!(to_delete(&[10, 10, 10, 10], Limit::Count(3)), 1);
        assert_eq!(to_delete(&[10, 10, 10, 10], Limit::Count(10)), 0);
        assert_eq!(to_delete(&[10, 10, 10, 10], Limit::Bytes(25)), 2);
        assert_eq!(
            to_delete(&[10, 10, 100], Limit::Bytes(50)),
            2,
            "the newest stays"
        );
        assert_eq!(to_delete(&[100], Limit::Bytes(1)), 0);
    }

    #[test]
    fn reduced_sizes_keep_the_aspect_and_are_even() {
        assert_eq!(scaled_size(1920, 1080, 640), (640, 360));
        assert_eq!(scaled_size(1280, 720, 1921), (1280, 720));
        assert_eq!(scaled_size(1920, 1080, 333), (332, 186));
        assert_eq!(scaled_size(640, 480, 100), (100, 74));
    }
}
