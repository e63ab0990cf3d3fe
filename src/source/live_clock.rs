//! Stream times for a live camera whose frames carry no capture time of their own (an
//! H.264 pipe from `rpicam-vid`): the nominal frame rate, steered by arrival times.
//!
//! Arrival through a pipe jitters by milliseconds and comes in small bursts; a camera's
//! real rate differs from its nominal one (29.97 instead of 30, or lower in the dark). A
//! [`LiveClock`] is a small phase-locked loop: each frame is placed one estimated frame
//! interval after the previous one, corrected by a fraction of how far that is from its
//! arrival, and the interval estimate itself follows the measured rate. So timestamps are
//! smooth, never go backwards, and never drift away from real time (the storage seed's
//! "dynamic FPS"). After a gap (lost frames, a stall) it jumps to the arrival time.
//!
//! Pure: it is given instants and returns ticks; it never reads the clock or sleeps.

use std::time::Instant;

use crate::frame::TIMESCALE;

/// Share of the phase error corrected per frame.
const PHASE_GAIN: f64 = 1.0 / 16.0;
/// Share of the phase error taken into the interval estimate per frame.
const RATE_GAIN: f64 = 1.0 / 512.0;
/// A frame this many intervals late means frames were lost: jump to its arrival.
const GAP_INTERVALS: f64 = 3.0;

#[derive(Debug)]
pub struct LiveClock {
    nominal: f64,
    interval: f64,
    origin: Option<Instant>,
    last: f64,
}

impl LiveClock {
    /// `rate` is the nominal (num, den) frames per second.
    pub fn new(rate: (u32, u32)) -> LiveClock {
        let (num, den) = (f64::from(rate.0.max(1)), f64::from(rate.1.max(1)));
        let nominal = f64::from(TIMESCALE) * den / num;
        LiveClock {
            nominal,
            interval: nominal,
            origin: None,
            last: 0.0,
        }
    }

    /// The stream time (ticks from the first frame) of a frame that arrived at `at`.
    pub fn stamp(&mut self, at: Instant) -> i64 {
        let Some(origin) = self.origin else {
            self.origin = Some(at);
            self.last = 0.0;
            return 0;
        };
        let arrival = at.saturating_duration_since(origin).as_secs_f64() * f64::from(TIMESCALE);
        let predicted = self.last + self.interval;
        let error = arrival - predicted;
        let t = if error > GAP_INTERVALS * self.interval {
            arrival
        } else {
            self.interval =
                (self.interval + error * RATE_GAIN).clamp(self.nominal * 0.5, self.nominal * 2.0);
            (predicted + error * PHASE_GAIN).max(self.last + self.interval * 0.5)
        };
        self.last = t;
        t.round() as i64
    }

    /// The measured frame interval in ticks.
    #[cfg(test)]
    pub fn interval_ticks(&self) -> f64 {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Arrival times of `n` frames at `fps` with a deterministic ±`jitter_ms` wobble.
    fn arrivals(t0: Instant, fps: f64, n: usize, jitter_ms: f64) -> Vec<Instant> {
        (0..n)
            .map(|i| {
                let wobble = jitter_ms * (((i * 7919) % 13) as f64 / 6.0 - 1.0);
                let s = (i as f64 / fps + wobble / 1000.0).max(0.0);
                t0 + Duration::from_secs_f64(s)
            })
            .collect()
    }

    #[test]
    fn a_camera_slower_than_nominal_builds_up_no_lag() {
        let t0 = Instant::now();
        let mut clock = LiveClock::new((30, 1));
        let frames = arrivals(t0, 29.97, 30 * 600, 4.0);
        let mut last = -1;
        let mut max_dev = 0f64;
        for (i, at) in frames.iter().enumerate() {
            let t = clock.stamp(*at);
            assert!(t > last, "frame {i}: {t} after {last}");
            last = t;
            if i > 300 {
                let real = (i as f64 / 29.97) * 90_000.0;
                max_dev = max_dev.max((t as f64 - real).abs());
            }
        }
        // Ten minutes in, still within a third of a frame of real time.
        assert!(max_dev < 1000.0, "deviation {max_dev} ticks");
        let fps = 90_000.0 / clock.interval_ticks();
        assert!((fps - 29.97).abs() < 0.02, "measured {fps}");
    }

    #[test]
    fn jitter_is_smoothed_and_a_gap_jumps_to_real_time() {
        let t0 = Instant::now();
        let mut clock = LiveClock::new((30, 1));
        let frames = arrivals(t0, 30.0, 90, 6.0);
        let stamps: Vec<i64> = frames.iter().map(|a| clock.stamp(*a)).collect();
        for w in stamps[30..].windows(2) {
            let d = w[1] - w[0];
            assert!((d - 3000).abs() < 600, "frame duration {d}");
        }
        // Two seconds without frames, then the camera is back.
        let back = t0 + Duration::from_secs(5);
        let t = clock.stamp(back);
        assert!((t - 450_000).abs() < 100, "{t}");
    }
}
