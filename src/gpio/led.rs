//! The status LED's pattern: steady = recording, blinking = a problem (starting, stalled),
//! off = stopped.
//!
//! Pure: it maps a [`Health`] and the time to a level. It never touches a line.

use std::time::Duration;

use crate::state::health::Health;

/// Half a blink period (2 Hz blinking).
pub const BLINK_HALF: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    On,
    Blink,
    Off,
}

pub fn pattern(health: &Health) -> Pattern {
    match health {
        Health::Recording => Pattern::On,
        Health::Starting | Health::Stalled(_) | Health::WaitingForSource(_) => Pattern::Blink,
        Health::Stopped => Pattern::Off,
    }
}

/// The level of `pattern` at `elapsed` since the role started.
pub fn level(pattern: Pattern, elapsed: Duration) -> bool {
    match pattern {
        Pattern::On => true,
        Pattern::Off => false,
        Pattern::Blink => (elapsed.as_millis() / BLINK_HALF.as_millis()) % 2 == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(pattern(&Health::Recording), Pattern::On);
        assert_eq!(pattern(&Health::Starting), Pattern::Blink);
        assert_eq!(pattern(&Health::Stalled("x".into())), Pattern::Blink);
        assert_eq!(pattern(&Health::Stopped), Pattern::Off);
        assert!(level(Pattern::On, Duration::from_millis(300)));
        assert!(!level(Pattern::Off, Duration::ZERO));
        assert!(level(Pattern::Blink, Duration::from_millis(100)));
        assert!(!level(Pattern::Blink, Duration::from_millis(300)));
        assert!(level(Pattern::Blink, Duration::from_millis(600)));
    }
}
