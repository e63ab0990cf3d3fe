//! USB webcams and other V4L2 capture devices (`--source v4l2:/dev/videoN`).
//!
//! Mmap streaming with dashcam's own small V4L2 layer ([`sys`]: the dozen ioctls and
//! structures it needs) rather than the `v4l` crate (0.14, 2023), because that crate falls
//! short here: it generates its bindings with bindgen at build time (libclang on every
//! build machine, the Pi cross-build and Yocto included, and structure layouts taken from
//! whatever headers the build host has), it is single-planar only with its maintainer's
//! time for it gone (libv4l-rs #15, #121), its stream hands out the whole mapping rather
//! than `bytesused` of it (#120), and after a poll timeout its next call re-queues a
//! buffer the kernel still owns (EINVAL) — while a stall is exactly what a dashcam must
//! survive. The layer here is a few hundred lines, its layouts checked against the
//! kernel's sizes in tests.
//!
//! [`device`] negotiates (H.264 > MJPEG > YUYV/NV12, the size and rate nearest to
//! `[camera]`, `VIDIOC_S_FMT` and `VIDIOC_S_PARM`, the result logged), [`stream`] maps and
//! cycles the buffers, [`source`] turns buffers into frames (timed by the buffers'
//! monotonic timestamps, sequence gaps counted as dropped, placeholder and damaged buffers
//! dropped and counted, raw pictures encoded to JPEG by [`raw_jpeg`] at `raw_fps`), and
//! [`list`] answers `dashcam cameras`. An unplugged device, one that stops delivering,
//! or one that cannot be opened is [`crate::source::SourceError::Lost`]: the capture loop
//! opens it again.

pub mod device;
pub mod list;
pub mod raw_jpeg;
pub mod source;
pub mod stream;
pub mod sys;
