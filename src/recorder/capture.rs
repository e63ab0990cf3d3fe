//! The capture loop: pull frames from a [`Source`] and hand them to the writer.
//!
//! A live source must never wait long for the writer: when the queue is full for more than
//! [`LIVE_SEND_WAIT`], the frame is dropped, counted, logged, and the count travels with
//! the next frame that gets through (so it lands in the segment metadata). After a dropped
//! H.264 frame every frame up to the next keyframe is dropped too, since they could not be
//! decoded. A file source simply waits. This loop never writes files.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender};
use log::{error, warn};

use crate::frame::{Captured, Codec};
use crate::source::{Source, SourceError};

/// How long a live source may wait for room in the queue before the frame is dropped.
pub const LIVE_SEND_WAIT: Duration = Duration::from_millis(50);
/// Consecutive errors without a frame after which the source is given up.
const MAX_ERRORS_WITHOUT_FRAME: u32 = 1000;
/// At most one "dropping frames" warning this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

/// How the capture loop ended.
#[derive(Debug, Default)]
pub struct CaptureReport {
    pub frames_sent: u64,
    pub frames_dropped: u64,
    /// Problems with the input that were survived (corrupt data, skipped bytes).
    pub input_errors: u64,
    /// The error that ended capture, if it did not end at the end of the input.
    pub fatal: Option<SourceError>,
}

pub fn run_capture(
    mut source: Box<dyn Source>,
    frames: Sender<Captured>,
    stop: Arc<AtomicBool>,
) -> CaptureReport {
    let mut report = CaptureReport::default();
    let live = source.is_live();
    let mut pending_drops: u32 = 0;
    let mut dropping_until_keyframe = false;
    let mut errors_in_a_row = 0u32;
    let mut last_drop_log: Option<Instant> = None;
    let mut drops_since_log = 0u64;

    while !stop.load(Ordering::Relaxed) {
        let mut frame = match source.next_frame() {
            Ok(Some(frame)) => {
                errors_in_a_row = 0;
                frame
            }
            Ok(None) => break,
            Err(e @ SourceError::Corrupt { .. }) => {
                error!("{e}");
                report.input_errors += 1;
                errors_in_a_row += 1;
                if errors_in_a_row >= MAX_ERRORS_WITHOUT_FRAME {
                    report.fatal = Some(e);
                    break;
                }
                continue;
            }
            Err(e) => {
                report.fatal = Some(e);
                break;
            }
        };

        if dropping_until_keyframe && !frame.keyframe {
            pending_drops = pending_drops.saturating_add(1);
            report.frames_dropped += 1;
            drops_since_log += 1;
            continue;
        }
        dropping_until_keyframe = false;
        frame.dropped_before = pending_drops;
        let codec = frame.format.codec;

        let sent = if live {
            match frames.send_timeout(Captured::Frame(frame), LIVE_SEND_WAIT) {
                Ok(()) => true,
                Err(SendTimeoutError::Timeout(_)) => false,
                Err(SendTimeoutError::Disconnected(_)) => break,
            }
        } else {
            match frames.send(Captured::Frame(frame)) {
                Ok(()) => true,
                Err(_) => break,
            }
        };
        if sent {
            report.frames_sent += 1;
            pending_drops = 0;
        } else {
            pending_drops = pending_drops.saturating_add(1);
            report.frames_dropped += 1;
            drops_since_log += 1;
            dropping_until_keyframe = codec == Codec::H264;
        }
        if drops_since_log > 0 && last_drop_log.is_none_or(|t| t.elapsed() >= DROP_LOG_EVERY) {
            warn!(
                "writer too slow: dropped {drops_since_log} frame(s) from {} ({} in all)",
                source.describe(),
                report.frames_dropped
            );
            last_drop_log = Some(Instant::now());
            drops_since_log = 0;
        }
    }
    if drops_since_log > 0 {
        warn!(
            "writer too slow: dropped {drops_since_log} frame(s) ({} in all)",
            report.frames_dropped
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, StreamFormat};
    use std::time::SystemTime;

    /// A live source that produces `left` frames as fast as it is asked, every
    /// `keyframe_every`-th one a keyframe.
    struct Burst {
        left: u32,
        n: i64,
        keyframe_every: i64,
        format: Arc<StreamFormat>,
    }

    impl Source for Burst {
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            if self.left == 0 {
                return Ok(None);
            }
            self.left -= 1;
            let n = self.n;
            self.n += 1;
            Ok(Some(Frame {
                data: vec![0; 16],
                keyframe: n % self.keyframe_every == 0,
                pts: n * 3000,
                dts: n * 3000,
                captured: Instant::now(),
                wall: SystemTime::now(),
                format: self.format.clone(),
                dropped_before: 0,
            }))
        }
        fn is_live(&self) -> bool {
            true
        }
        fn describe(&self) -> String {
            "burst".into()
        }
    }

    fn burst(codec: Codec, frames: u32, keyframe_every: i64) -> Box<dyn Source> {
        Box::new(Burst {
            left: frames,
            n: 0,
            keyframe_every,
            format: Arc::new(StreamFormat {
                codec,
                width: 16,
                height: 16,
                frame_rate: Some((30, 1)),
                sps: Vec::new(),
                pps: Vec::new(),
            }),
        })
    }

    /// A writer that does not read: a live source must not wait for it, and every frame it
    /// loses is counted and travels with the next frame that gets through.
    #[test]
    fn a_stalled_writer_costs_counted_frames_never_a_blocked_camera() {
        for (codec, keyframe_every) in [(Codec::Mjpeg, 1), (Codec::H264, 5)] {
            let (tx, rx) = crossbeam_channel::bounded(2);
            let stop = Arc::new(AtomicBool::new(false));
            let capture =
                std::thread::spawn(move || run_capture(burst(codec, 40, keyframe_every), tx, stop));
            // Read nothing until capture is over: it must finish on its own.
            let report = capture.join().expect("capture thread");
            let received: Vec<Frame> = rx
                .try_iter()
                .filter_map(|c| match c {
                    Captured::Frame(f) => Some(f),
                    _ => None,
                })
                .collect();
            assert_eq!(report.frames_sent as usize, received.len(), "{codec:?}");
            assert_eq!(report.frames_sent + report.frames_dropped, 40, "{codec:?}");
            assert!(report.frames_dropped > 0, "{codec:?}");
            let carried: u64 = received.iter().map(|f| u64::from(f.dropped_before)).sum();
            assert!(carried <= report.frames_dropped, "{codec:?}");
            if codec == Codec::H264 {
                // After a loss, H.264 resumes only at a keyframe.
                for pair in received.windows(2) {
                    if pair[1].dropped_before > 0 {
                        assert!(pair[1].keyframe, "resumed on a non-keyframe");
                    }
                }
            }
        }
    }
}
