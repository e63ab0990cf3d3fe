//! The systemd side of a service: notification ([`notify`]: READY, STATUS, STOPPING,
//! WATCHDOG) and the thread that decides what to say and when ([`watchdog`]).
//!
//! It reads the shared recorder status and never controls the recorder. The wiring of
//! this role beside the others is the composition root's (`app::roles`).

pub mod notify;
pub mod watchdog;
