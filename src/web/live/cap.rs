//! The preview rate cap of the MJPEG live view ([`RateCap`]): of the camera's frames, at
//! most one per period (`[web] preview_fps`), chosen by capture time so the rate does not
//! drift. Pure: instants in, yes or no out.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct RateCap {
    period: Duration,
    next: Option<Instant>,
}

impl RateCap {
    /// At most `fps` frames a second (at least one every 10 s).
    pub(crate) fn new(fps: f64) -> RateCap {
        let fps = if fps.is_finite() {
            fps.clamp(0.1, 120.0)
        } else {
            2.0
        };
        RateCap {
            period: Duration::from_secs_f64(1.0 / fps),
            next: None,
        }
    }

    /// Whether the frame captured at `at` is shown.
    pub(crate) fn due(&mut self, at: Instant) -> bool {
        match self.next {
            Some(next) if at < next => false,
            Some(next) if at < next + self.period => {
                self.next = Some(next + self.period);
                true
            }
            // The first frame, or after a pause: start again from this one.
            _ => {
                self.next = Some(at + self.period);
                true
            }
        }
    }

    /// Start again with the next frame.
    pub(crate) fn reset(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_frames_a_second_become_two() {
        let mut cap = RateCap::new(2.0);
        let t0 = Instant::now();
        let shown = (0..300)
            .filter(|i| cap.due(t0 + Duration::from_micros(33_333 * i)))
            .count();
        assert_eq!(shown, 20, "10 s at 2 fps");
    }

    #[test]
    fn a_pause_starts_again_and_a_slow_camera_is_not_held_back() {
        let mut cap = RateCap::new(2.0);
        let t0 = Instant::now();
        assert!(cap.due(t0));
        assert!(!cap.due(t0 + Duration::from_millis(100)));
        assert!(cap.due(t0 + Duration::from_secs(5)));
        assert!(!cap.due(t0 + Duration::from_millis(5400)));
        assert!(cap.due(t0 + Duration::from_millis(5500)));
        // A 1 fps camera: every frame.
        let mut cap = RateCap::new(2.0);
        assert!((0..10).all(|i| cap.due(t0 + Duration::from_secs(i))));
    }
}
