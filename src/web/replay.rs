//! The MJPEG replay of an AVI segment: its JPEG frames as `multipart/x-mixed-replace`, one
//! part per frame at the recorded rate, from a start time. No browser plays MJPEG in AVI
//! (Chromium: MediaError 4), but every browser shows this stream in an `<img>`.
//!
//! It owns the pacing and the part framing only; the frame index comes from the backend.
//! A multipart writer is a few dozen lines; no crate does it without blocking the producer.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backend::ReplayIndex;
use super::http::{Body, Response, StreamSink};
use super::metrics::WebCounters;

/// The multipart boundary (JPEG data is length-delimited by Content-Length too).
pub const BOUNDARY: &str = "dashcamframe";

/// The frame to start at for `start_s` seconds into a stream of `rate` frames per second.
pub fn first_frame(start_s: f64, rate: (u32, u32), frames: usize) -> usize {
    let (num, den) = (f64::from(rate.0.max(1)), f64::from(rate.1.max(1)));
    let i = (start_s.max(0.0) * num / den).floor();
    (i as usize).min(frames)
}

/// The replay as a streamed response. `hold` is kept until the stream ends.
pub fn response(
    index: ReplayIndex,
    start_s: f64,
    counters: Arc<WebCounters>,
    hold: Option<Box<dyn Send>>,
) -> Response {
    let ReplayIndex { file, rate, frames } = index;
    let first = first_frame(start_s, rate, frames.len());
    let count = frames.len().saturating_sub(first);
    let frame_time = Duration::from_secs_f64(f64::from(rate.1.max(1)) / f64::from(rate.0.max(1)));
    let produce = move |sink: &mut dyn StreamSink| -> std::io::Result<()> {
        let _hold = hold;
        counters.replay_viewers.fetch_add(1, Ordering::Relaxed);
        struct Viewer(Arc<WebCounters>);
        impl Drop for Viewer {
            fn drop(&mut self) {
                self.0.replay_viewers.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let _viewer = Viewer(counters);
        let t0 = Instant::now();
        let mut jpeg = Vec::new();
        let mut part = Vec::new();
        for (n, &(offset, size)) in frames[first..].iter().enumerate() {
            if sink.stopping() {
                break;
            }
            let due = t0 + frame_time.mul_f64(n as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            jpeg.resize(size as usize, 0);
            file.read_exact_at(&mut jpeg, offset)?;
            part.clear();
            part.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {size}\r\nX-Frame: {}\r\n\r\n",
                    first + n
                )
                .as_bytes(),
            );
            part.extend_from_slice(&jpeg);
            part.extend_from_slice(b"\r\n");
            sink.send(&part)?;
        }
        sink.send(format!("--{BOUNDARY}--\r\n").as_bytes())
    };
    Response::new(
        200,
        &format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
        Body::Stream(Box::new(produce)),
    )
    .with("Cache-Control", "no-store")
    .with("X-Frames", count.to_string())
    .with("X-Frame-Rate", format!("{}/{}", rate.0, rate.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_map_to_frames() {
        assert_eq!(first_frame(0.0, (30, 1), 300), 0);
        assert_eq!(first_frame(1.0, (30, 1), 300), 30);
        assert_eq!(first_frame(2.5, (30000, 1001), 300), 74);
        assert_eq!(first_frame(-3.0, (30, 1), 300), 0);
        assert_eq!(first_frame(99.0, (30, 1), 300), 300);
        assert_eq!(first_frame(1.0, (0, 0), 300), 1);
    }
}
