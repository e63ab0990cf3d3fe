//! Requests to the recorder from the other roles, and why a role stopped it.
//!
//! Small shared types with no behaviour, below every role that sends them (GPIO, the web
//! page, signals) and the writer that obeys them, so none of those imports another.

/// Requests to the writer thread from other roles.
#[derive(Debug)]
pub enum Control {
    /// Close the open segment completely and end the thread.
    Stop,
    /// Event lock now (a button, a G-sensor): lock the current segment, the previous one,
    /// and the next when the event falls in the last `post_event_seconds`.
    LockNow,
}

/// Why the GPIO role asked the recorder to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The button was held for `long_press_seconds`.
    LongPress,
    /// The ignition stayed off for `stop_delay`.
    IgnitionOff,
}
