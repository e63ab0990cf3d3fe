//! Real-time pacing for sources that are not live by nature (files, pipes, the generator).
//!
//! A [`Pacer`] sleeps until a frame's presentation time has come on the wall clock, measured
//! from the first frame. It never sleeps when disabled (`--fast`) and never catches up by
//! skipping frames: if the reader is late it simply continues without sleeping.

use std::time::{Duration, Instant};

use crate::frame::TIMESCALE;

#[derive(Debug)]
pub struct Pacer {
    enabled: bool,
    origin: Option<(Instant, i64)>,
}

impl Pacer {
    pub fn new(enabled: bool) -> Pacer {
        Pacer {
            enabled,
            origin: None,
        }
    }

    /// Sleep until the frame with decode time `dts` (stream ticks) is due.
    pub fn wait_for(&mut self, dts: i64) {
        if !self.enabled {
            return;
        }
        let (t0, dts0) = *self.origin.get_or_insert((Instant::now(), dts));
        let ahead = dts.saturating_sub(dts0).max(0) as u64;
        let due = t0 + Duration::from_nanos(ahead * 1_000_000_000 / u64::from(TIMESCALE));
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}
