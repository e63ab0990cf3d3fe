//! Stills: a JPEG every `interval` seconds, for a detector, a thumbnail list, a glance at
//! the phone page (`GET /api/still.jpg` serves the newest, [`LatestStill`]; the footage
//! list shows the one nearest each segment's start, found by its name).
//!
//! Frames come from a tap on the capture side ([`StillTap`], put around the source by
//! the composition root): on the capture thread it copies the first keyframe at or after
//! each interval of the stream clock and offers it to the stills thread with `try_send`
//! on a queue of one. The recorder's path is untouched: no extra thread hop for frames,
//! no wait (a busy stills thread just means that keyframe is skipped), one copy per
//! interval. Reading stills back from closed segments would give one per segment, not one
//! per second.
//!
//! On the stills thread: an MJPEG frame is the camera's own JPEG, written as it is (never
//! re-encoded); an H.264 keyframe is decoded and encoded, at most `width` wide, by
//! ffmpeg's command line ([`ffmpeg`], the default build) or OpenH264 in the process
//! ([`openh264`], the cargo feature `stills-h264`), and what it cost sets when the next may
//! come, so that H.264 stills stay within `max_cpu_percent` of one core on any hardware. Each still is written atomically (temp file, fsync, rename) as
//! `YYYYMMDD-HHMMSS-mmm.jpg` (its capture time), announced as a `still_saved` event, and
//! the oldest go past `keep`. It never touches segment files.

pub mod annexb;
#[cfg(not(feature = "stills-h264"))]
pub mod ffmpeg;
#[cfg(feature = "stills-h264")]
pub mod openh264;
pub mod plan;

/// What makes JPEGs of H.264 keyframes in this build.
#[cfg(not(feature = "stills-h264"))]
use ffmpeg::StillDecoder;
#[cfg(feature = "stills-h264")]
use openh264::StillDecoder;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use log::{debug, info, warn};

use crate::disk::durable;
use crate::events::config::{Limit, StillsConfig};
use crate::frame::{Codec, Frame, StreamFormat, TIMESCALE};
use crate::source::{Source, SourceError};
use crate::state::event::{rfc3339, EventKind, EventSink, StillSaved};
use plan::StillClock;

/// A keyframe copied for a still.
struct StillFrame {
    data: Vec<u8>,
    format: Arc<StreamFormat>,
    wall: SystemTime,
    pts: i64,
}

/// When the next still may be taken (the CPU budget): milliseconds after `base`.
#[derive(Clone, Debug)]
struct NotBefore {
    base: Instant,
    ms: Arc<AtomicU64>,
}

impl NotBefore {
    fn new() -> NotBefore {
        NotBefore {
            base: Instant::now(),
            ms: Arc::new(AtomicU64::new(0)),
        }
    }
    fn passed(&self) -> bool {
        self.base.elapsed().as_millis() as u64 >= self.ms.load(Ordering::Relaxed)
    }
    fn set(&self, t: Instant) {
        let ms = t.saturating_duration_since(self.base).as_millis() as u64;
        self.ms.store(ms, Ordering::Relaxed);
    }
}

/// The newest still's path, shared with the web server.
#[derive(Clone, Debug, Default)]
pub struct LatestStill(Arc<Mutex<Option<PathBuf>>>);

impl LatestStill {
    pub fn path(&self) -> Option<PathBuf> {
        match self.0.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, path: PathBuf) {
        match self.0.lock() {
            Ok(mut g) => *g = Some(path),
            Err(p) => *p.into_inner() = Some(path),
        }
    }
}

/// The stills thread and the tap's end of its queue.
pub struct Stills {
    tx: Option<Sender<StillFrame>>,
    /// Dropped at finish: the thread ends even while a tap (a capture thread left in a
    /// read) still holds the queue.
    stop: Option<Sender<()>>,
    interval_ticks: i64,
    not_before: NotBefore,
    thread: Option<JoinHandle<()>>,
}

impl Stills {
    /// Make the folder, read what it holds, start the thread; `latest` is told each new
    /// still (the session's, so the web server keeps it across runs).
    pub fn spawn(
        config: &StillsConfig,
        footage: &Path,
        sink: EventSink,
        latest: LatestStill,
    ) -> Result<Stills, String> {
        let dir = config.dir_in(footage);
        durable::create_dir_all_durable(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let limit = config.keep.limit()?;
        let kept = scan(&dir);
        if let Some((name, _)) = kept.back() {
            latest.set(dir.join(name));
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (stop, stop_rx) = crossbeam_channel::bounded::<()>(1);
        let not_before = NotBefore::new();
        let worker = Worker {
            not_before: not_before.clone(),
            cpu_share: config.max_cpu_percent / 100.0,
            dir,
            limit,
            width: config.width,
            quality: config.quality,
            kept,
            sink,
            latest,
            decoder: StillDecoder::new(),
            saved: 0,
            decoded: 0,
            cpu: Duration::ZERO,
        };
        let thread = std::thread::Builder::new()
            .name("stills".into())
            .spawn(move || worker.run(&rx, &stop_rx))
            .map_err(|e| format!("cannot start the stills thread: {e}"))?;
        Ok(Stills {
            tx: Some(tx),
            stop: Some(stop),
            interval_ticks: (config.interval * f64::from(TIMESCALE)).round() as i64,
            not_before,
            thread: Some(thread),
        })
    }

    /// What puts the tap around a source: around the first one and around each one the
    /// capture loop reopens after a camera was lost.
    pub fn tapper(&self) -> Option<Tapper> {
        self.tx.as_ref().map(|tx| Tapper {
            tx: tx.clone(),
            interval_ticks: self.interval_ticks,
            not_before: self.not_before.clone(),
        })
    }

    /// Finish the still in progress and end the thread. (The tap may outlive this: the
    /// capture thread can be left in a read; its offers then simply fail.)
    pub fn finish(mut self) {
        self.tx.take();
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Puts the stills' tap around a source (see [`Stills::tapper`]).
#[derive(Clone)]
pub struct Tapper {
    tx: Sender<StillFrame>,
    interval_ticks: i64,
    not_before: NotBefore,
}

impl Tapper {
    /// `source` with the tap around it.
    pub fn tap(&self, source: Box<dyn Source>) -> Box<dyn Source> {
        Box::new(StillTap {
            inner: source,
            tx: self.tx.clone(),
            clock: StillClock::new(self.interval_ticks),
            not_before: self.not_before.clone(),
        })
    }
}

/// The stills in `dir`, oldest first, with their sizes; stale temp files removed.
fn scan(dir: &Path) -> VecDeque<(String, u64)> {
    let mut found = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".jpg.tmp") && plan::is_still_name(name.trim_end_matches(".tmp")) {
                let _ = std::fs::remove_file(e.path());
            } else if plan::is_still_name(&name) {
                found.push((name, e.metadata().map_or(0, |m| m.len())));
            }
        }
    }
    found.sort();
    found.into()
}

/// The tap: a [`Source`] that is its inner source, plus an offer of a keyframe copy to
/// the stills thread once per interval.
pub struct StillTap {
    inner: Box<dyn Source>,
    tx: Sender<StillFrame>,
    clock: StillClock,
    not_before: NotBefore,
}

impl StillTap {
    fn offer(&mut self, frame: &Frame) {
        if !self.clock.due(frame.pts, frame.keyframe)
            || self.tx.is_full()
            || !self.not_before.passed()
        {
            return;
        }
        let copy = StillFrame {
            data: frame.data.clone(),
            format: frame.format.clone(),
            wall: frame.wall,
            pts: frame.pts,
        };
        if self.tx.try_send(copy).is_ok() {
            self.clock.taken(frame.pts);
        }
    }
}

impl Source for StillTap {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let r = self.inner.next_frame();
        if let Ok(Some(f)) = &r {
            self.offer(f);
        }
        r
    }

    fn is_live(&self) -> bool {
        self.inner.is_live()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

struct Worker {
    not_before: NotBefore,
    /// Share of a core H.264 stills may use.
    cpu_share: f64,
    dir: PathBuf,
    limit: Limit,
    width: u32,
    quality: u8,
    /// Stills on disk, oldest first.
    kept: VecDeque<(String, u64)>,
    sink: EventSink,
    latest: LatestStill,
    decoder: StillDecoder,
    saved: u64,
    /// H.264 stills made, and the CPU time they took.
    decoded: u64,
    cpu: Duration,
}

impl Worker {
    fn run(mut self, rx: &Receiver<StillFrame>, stop: &Receiver<()>) {
        loop {
            let f = crossbeam_channel::select! {
                recv(rx) -> f => match f {
                    Ok(f) => f,
                    Err(_) => break,
                },
                recv(stop) -> _ => break,
            };
            if let Err(e) = self.save(&f) {
                warn!("still: {e}");
            }
        }
        if self.saved > 0 {
            let per = if self.decoded > 0 {
                format!(
                    "; {:.0} {}",
                    self.cpu.as_secs_f64() * 1000.0 / self.decoded as f64,
                    StillDecoder::COST
                )
            } else {
                String::new()
            };
            info!(
                "stills: {} saved into {}{per}",
                self.saved,
                self.dir.display()
            );
        }
    }

    fn save(&mut self, f: &StillFrame) -> Result<(), String> {
        let (jpeg, width, height, source) = match f.format.codec {
            Codec::Mjpeg => (
                std::borrow::Cow::Borrowed(&f.data[..]),
                f.format.width,
                f.format.height,
                "camera",
            ),
            Codec::H264 => {
                let started = Instant::now();
                let (w, h) = plan::scaled_size(f.format.width, f.format.height, self.width);
                let (jpeg, cost) = self.decoder.jpeg(&f.format, &f.data, w, h, self.quality)?;
                self.cpu += cost;
                self.decoded += 1;
                // Within the CPU budget: the next still waits cost / share from this one.
                self.not_before
                    .set(started + cost.div_f64(self.cpu_share.max(0.01)));
                (std::borrow::Cow::Owned(jpeg), w, h, "decoded")
            }
        };
        let name = plan::still_name(f.wall);
        let path = self.dir.join(&name);
        durable::write_atomic(&path, &jpeg)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let bytes = jpeg.len() as u64;
        self.saved += 1;
        if self.kept.back().is_some_and(|(n, _)| *n == name) {
            self.kept.pop_back();
        }
        self.kept.push_back((name.clone(), bytes));
        self.latest.set(path.clone());
        debug!("still {name}: {width}x{height}, {bytes} bytes");
        self.sink.emit(EventKind::StillSaved(StillSaved {
            name,
            path: path.display().to_string(),
            captured: rfc3339(f.wall),
            width,
            height,
            bytes,
            pts: f.pts,
            source,
        }));
        self.prune();
        Ok(())
    }

    fn prune(&mut self) {
        let sizes: Vec<u64> = self.kept.iter().map(|(_, b)| *b).collect();
        for _ in 0..plan::to_delete(&sizes, self.limit) {
            let Some((name, _)) = self.kept.pop_front() else {
                break;
            };
            if let Err(e) = std::fs::remove_file(self.dir.join(&name)) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    warn!("cannot delete the still {name}: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::StreamFormat;
    use std::time::Instant;

    /// `frames` MJPEG frames at 30 fps, each a distinct 16x16 JPEG.
    struct Jpegs {
        n: i64,
        frames: i64,
        format: Arc<StreamFormat>,
    }

    fn jpeg(shade: u8) -> Vec<u8> {
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 80)
            .encode(&[shade; 16 * 16 * 3], 16, 16, jpeg_encoder::ColorType::Rgb)
            .expect("jpeg");
        out
    }

    impl Source for Jpegs {
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            if self.n == self.frames {
                return Ok(None);
            }
            let n = self.n;
            self.n += 1;
            // Give the stills thread time: a file source waits for nobody either.
            std::thread::sleep(std::time::Duration::from_millis(5));
            Ok(Some(Frame {
                data: jpeg(n as u8),
                keyframe: true,
                pts: n * 3000,
                dts: n * 3000,
                captured: Instant::now(),
                wall: SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_millis(1_800_000_000_000 + n as u64 * 34),
                format: self.format.clone(),
                dropped_before: 0,
            }))
        }
        fn is_live(&self) -> bool {
            false
        }
        fn describe(&self) -> String {
            "jpegs".into()
        }
    }

    #[test]
    fn mjpeg_stills_are_the_cameras_bytes_and_keep_holds() {
        let dir = tempfile::tempdir().expect("tmp");
        let (sink, rx) = EventSink::bounded(100);
        let config = StillsConfig {
            keep: crate::events::config::SizeOrCount::Number(3),
            ..StillsConfig::default()
        };
        let latest = LatestStill::default();
        let stills = Stills::spawn(&config, dir.path(), sink, latest.clone()).expect("stills");
        let format = Arc::new(StreamFormat {
            codec: Codec::Mjpeg,
            width: 16,
            height: 16,
            frame_rate: Some((30, 1)),
            sps: Vec::new(),
            pps: Vec::new(),
        });
        let mut src = stills.tapper().expect("stills on").tap(Box::new(Jpegs {
            n: 0,
            frames: 151,
            format,
        }));
        while let Ok(Some(_)) = src.next_frame() {}
        stills.finish();
        let events: Vec<_> = rx.try_iter().collect();
        // A still every 30 frames: 0, 30, …, 150.
        let pts: Vec<i64> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StillSaved(s) => Some(s.pts),
                _ => None,
            })
            .collect();
        assert_eq!(pts, vec![0, 90_000, 180_000, 270_000, 360_000, 450_000]);
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("stills"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "keep = 3: {names:?}");
        let newest = dir.path().join("stills").join(&names[2]);
        assert_eq!(latest.path(), Some(newest.clone()));
        assert_eq!(
            std::fs::read(&newest).expect("still"),
            jpeg(150),
            "never re-encoded"
        );
    }
}
