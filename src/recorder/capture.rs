//! The capture loop: pull frames from a [`Source`] and hand them to the writer.
//!
//! A live source must never wait long for the writer: when the queue is full for more than
//! [`LIVE_SEND_WAIT`], the frame is dropped, counted, logged, and the count travels with
//! the next frame that gets through (so it lands in the segment metadata). After a dropped
//! H.264 frame every frame up to the next keyframe is dropped too, since they could not be
//! decoded. A file source simply waits. This loop never writes files.
//!
//! It also supervises cameras. A camera that goes away ([`SourceError::Lost`]: unplugged,
//! its process died or stalled, its server dropped the connection) becomes a
//! [`Captured::SourceLost`] for the writer (sent after every frame already queued), the
//! source is dropped (which closes the device or ends the process), and it is opened again
//! through [`Reopen`] after a [`Backoff`]; its first frame after that sends
//! [`Captured::SourceBack`]. A camera that cannot be opened at start is handled the same
//! way, so the service stays up, waiting for it. Frames the source itself reports lost
//! (`Frame::dropped_before` set by the source: V4L2 sequence gaps, placeholder buffers)
//! are added to the count that travels with the frame.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{SendTimeoutError, Sender};
use log::{debug, error, info, warn};

use crate::frame::{Captured, Codec};
use crate::source::{Reopen, Retry, Source, SourceError};

/// How long a live source may wait for room in the queue before the frame is dropped.
pub const LIVE_SEND_WAIT: Duration = Duration::from_millis(50);
/// Consecutive errors without a frame after which the source is given up.
const MAX_ERRORS_WITHOUT_FRAME: u32 = 1000;
/// At most one "dropping frames" warning this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);
/// A camera that has delivered frames this long is healthy again: its backoff restarts.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// How long to wait before opening a lost camera again. Pure: it only counts.
///
/// [`Retry::Soon`] waits 0.25 s, then 0.5 s, then 1 s each time (a device node or a server
/// that may be back any moment: recording resumes within about a second of its return);
/// [`Retry::Later`] waits 1 s, doubling up to 30 s (a crashing process, a refused
/// password: no tight restart loop). A camera that works again for
/// `BACKOFF_RESET_AFTER` starts from the beginning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    soon: Duration,
    later: Duration,
}

impl Backoff {
    const SOON_FIRST: Duration = Duration::from_millis(250);
    const SOON_MAX: Duration = Duration::from_secs(1);
    const LATER_FIRST: Duration = Duration::from_secs(1);
    const LATER_MAX: Duration = Duration::from_secs(30);

    pub fn new() -> Backoff {
        Backoff {
            soon: Self::SOON_FIRST,
            later: Self::LATER_FIRST,
        }
    }

    /// The wait before the next attempt after a failure of this kind.
    pub fn after_failure(&mut self, retry: Retry) -> Duration {
        let (cur, max) = match retry {
            Retry::Soon => (&mut self.soon, Self::SOON_MAX),
            Retry::Later => (&mut self.later, Self::LATER_MAX),
        };
        let wait = (*cur).min(max);
        *cur = (*cur * 2).min(max);
        wait
    }

    pub fn reset(&mut self) {
        *self = Backoff::new();
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// How the capture loop ended.
#[derive(Debug, Default)]
pub struct CaptureReport {
    pub frames_sent: u64,
    pub frames_dropped: u64,
    /// Frames the source itself reported lost (camera sequence gaps, bad buffers).
    pub source_dropped: u64,
    /// Times the camera went away.
    pub gaps: u64,
    /// Problems with the input that were survived (corrupt data, skipped bytes).
    pub input_errors: u64,
    /// The error that ended capture, if it did not end at the end of the input.
    pub fatal: Option<SourceError>,
}

/// The camera is away since `since`.
struct Away {
    since: Instant,
    why: String,
}

/// Capture, opening the source again through `reopen` whenever it is lost. `first` is the
/// result of the first opening (a camera that is not there yet is waited for).
pub fn run_supervised(
    first: Result<Box<dyn Source>, SourceError>,
    mut reopen: Option<Reopen>,
    frames: Sender<Captured>,
    stop: Arc<AtomicBool>,
) -> CaptureReport {
    let mut report = CaptureReport::default();
    let mut pending_drops: u32 = 0;
    let mut dropping_until_keyframe = false;
    let mut errors_in_a_row = 0u32;
    let mut last_drop_log: Option<Instant> = None;
    let mut drops_since_log = 0u64;
    let mut backoff = Backoff::new();
    let mut wait = Duration::ZERO;
    let mut away: Option<Away> = None;
    let mut run_started = Instant::now();
    let mut name = String::new();

    let mut source = match first {
        Ok(s) => Some(s),
        Err(SourceError::Lost { input, why, retry }) if reopen.is_some() => {
            if !announce_lost(&frames, &mut report, &mut away, &input, why) {
                return report;
            }
            wait = backoff.after_failure(retry);
            name = input;
            None
        }
        Err(e) => {
            report.fatal = Some(e);
            return report;
        }
    };

    while !stop.load(Ordering::Relaxed) {
        let Some(src) = source.as_mut() else {
            // The camera is away: wait, then try to open it again.
            if !sleep_unless(&stop, wait) {
                break;
            }
            let Some(open) = reopen.as_mut() else { break };
            match open() {
                Ok(s) => {
                    info!("{}: opened again", s.describe());
                    run_started = Instant::now();
                    source = Some(s);
                }
                Err(SourceError::Lost { why, retry, .. }) => {
                    wait = backoff.after_failure(retry);
                    match away.as_mut() {
                        Some(a) if a.why != why => {
                            warn!(
                                "{name}: still away: {why}; next try in {:.1} s",
                                wait.as_secs_f64()
                            );
                            a.why = why;
                        }
                        _ => debug!(
                            "{name}: still away: {why}; next try in {:.1} s",
                            wait.as_secs_f64()
                        ),
                    }
                }
                Err(e) => {
                    report.fatal = Some(e);
                    break;
                }
            }
            continue;
        };
        let live = src.is_live();
        let mut frame = match src.next_frame() {
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
            Err(SourceError::Lost { input, why, retry }) if reopen.is_some() => {
                // Dropping the source closes the device or ends the camera process.
                source = None;
                wait = backoff.after_failure(retry);
                if away.is_none() {
                    if !announce_lost(&frames, &mut report, &mut away, &input, why) {
                        break;
                    }
                } else {
                    warn!("{input}: lost again before a frame: {why}");
                }
                info!("{input}: opening again in {:.1} s", wait.as_secs_f64());
                name = input;
                dropping_until_keyframe = false;
                continue;
            }
            Err(e) => {
                report.fatal = Some(e);
                break;
            }
        };
        if let Some(a) = away.take() {
            info!(
                "{}: back after {:.1} s",
                src.describe(),
                a.since.elapsed().as_secs_f64()
            );
            if frames.send(Captured::SourceBack).is_err() {
                break;
            }
        }
        if run_started.elapsed() >= BACKOFF_RESET_AFTER {
            backoff.reset();
        }
        let from_source = frame.dropped_before;
        report.source_dropped += u64::from(from_source);

        if dropping_until_keyframe && !frame.keyframe {
            pending_drops = pending_drops.saturating_add(1).saturating_add(from_source);
            report.frames_dropped += 1;
            drops_since_log += 1;
            continue;
        }
        dropping_until_keyframe = false;
        frame.dropped_before = from_source.saturating_add(pending_drops);
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
            pending_drops = pending_drops.saturating_add(1).saturating_add(from_source);
            report.frames_dropped += 1;
            drops_since_log += 1;
            dropping_until_keyframe = codec == Codec::H264;
        }
        if drops_since_log > 0 && last_drop_log.is_none_or(|t| t.elapsed() >= DROP_LOG_EVERY) {
            warn!(
                "writer too slow: dropped {drops_since_log} frame(s) from {} ({} in all)",
                src.describe(),
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

/// Tell the writer the camera is gone (after the frames already queued). False when the
/// writer has gone away.
fn announce_lost(
    frames: &Sender<Captured>,
    report: &mut CaptureReport,
    away: &mut Option<Away>,
    input: &str,
    why: String,
) -> bool {
    warn!("camera lost: {input}: {why}");
    report.gaps += 1;
    *away = Some(Away {
        since: Instant::now(),
        why: why.clone(),
    });
    frames
        .send(Captured::SourceLost {
            at: SystemTime::now(),
            why,
        })
        .is_ok()
}

/// Sleep `d`, waking early for a stop; false when stopped.
fn sleep_unless(stop: &AtomicBool, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
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
            let capture = std::thread::spawn(move || {
                run_supervised(Ok(burst(codec, 40, keyframe_every)), None, tx, stop)
            });
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

    /// Yields `frames` keyframes, then ends with `end` (lost, or the end of the input).
    struct Flaky {
        inner: Box<dyn Source>,
        left: u32,
        lost: bool,
    }

    impl Source for Flaky {
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            if self.left == 0 {
                if self.lost {
                    return Err(SourceError::lost("cam", "unplugged", Retry::Soon));
                }
                return Ok(None);
            }
            self.left -= 1;
            self.inner.next_frame()
        }
        fn is_live(&self) -> bool {
            true
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }

    /// A camera absent at start, then back for three frames, lost, absent once more, back
    /// for two: the writer hears of each loss once, after the frames before it, and of
    /// each return before the first frame after it.
    #[test]
    fn a_lost_camera_is_a_gap_then_reopened() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let mut opens = 0;
        let reopen: Reopen = Box::new(move || {
            opens += 1;
            match opens {
                1 => Ok(Box::new(Flaky {
                    inner: burst(Codec::Mjpeg, 100, 1),
                    left: 3,
                    lost: true,
                }) as Box<dyn Source>),
                2 => Err(SourceError::lost("cam", "no such device", Retry::Soon)),
                _ => Ok(Box::new(Flaky {
                    inner: burst(Codec::Mjpeg, 100, 1),
                    left: 2,
                    lost: false,
                })),
            }
        });
        let first = Err(SourceError::lost("cam", "no such device", Retry::Soon));
        let report = run_supervised(first, Some(reopen), tx, stop);
        let got: Vec<String> = rx
            .try_iter()
            .map(|c| match c {
                Captured::Frame(_) => "F".to_string(),
                Captured::SourceLost { why, .. } => format!("lost({why})"),
                Captured::SourceBack => "back".to_string(),
            })
            .collect();
        assert_eq!(
            got.join(" "),
            "lost(no such device) back F F F lost(unplugged) back F F"
        );
        assert_eq!(report.gaps, 2);
        assert_eq!(report.frames_sent, 5);
        assert!(report.fatal.is_none());
    }

    #[test]
    fn a_lost_file_is_fatal_without_a_way_to_reopen_it() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let src = Box::new(Flaky {
            inner: burst(Codec::Mjpeg, 10, 1),
            left: 1,
            lost: true,
        });
        let report = run_supervised(Ok(src), None, tx, Arc::new(AtomicBool::new(false)));
        assert!(matches!(report.fatal, Some(SourceError::Lost { .. })));
    }

    #[test]
    fn backoff_is_short_for_a_missing_device_and_grows_for_a_crashing_one() {
        let mut b = Backoff::new();
        let soon: Vec<u64> = (0..4)
            .map(|_| b.after_failure(Retry::Soon).as_millis() as u64)
            .collect();
        assert_eq!(soon, [250, 500, 1000, 1000]);
        let later: Vec<u64> = (0..7)
            .map(|_| b.after_failure(Retry::Later).as_secs())
            .collect();
        assert_eq!(later, [1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.after_failure(Retry::Later), Duration::from_secs(1));
    }
}
