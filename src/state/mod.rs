//! What the recorder is doing and what may be asked of it: the shared status
//! ([`status`]), its one health judgement ([`health`]) and the requests to the writer
//! ([`control`]), and the hand-off of frames to the live view ([`live`]).
//!
//! These are the small types every role shares. They sit below the recorder and the roles
//! so that the writer, systemd notification, the GPIO role and the web page can all use
//! them without importing each other. Nothing here starts a thread or touches a file.

pub mod clock;
pub mod control;
pub mod event;
pub mod health;
pub mod live;
pub mod status;
