//! A V4L2 capture device as a [`Source`]: buffers in, frames out.
//!
//! H.264 buffers (one access unit each) become AVCC frames, keyframes from the buffer flag
//! or an IDR slice, the format from the stream's own SPS/PPS; MJPEG buffers are whole
//! JPEG images; raw YUYV/NV12 pictures are encoded to JPEG at most `raw_fps` times a
//! second. Times come from the buffers' monotonic timestamps. Buffers the driver marks as
//! bad, that are not a whole JPEG, or that come before the stream can be decoded (a
//! loopback device's placeholder) are dropped and counted, and so are the frames missing
//! from the buffer sequence numbers: the count travels with the next frame. It never
//! retries: a lost device is [`SourceError::Lost`] and the capture loop opens it again.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};

use super::device::{self, Rates};
use super::raw_jpeg;
use super::stream::{Filled, MmapStream, WaitError};
use super::sys;
use crate::frame::{BufferPool, Codec, Frame, StreamFormat, TIMESCALE};
use crate::source::camera_config::CameraConfig;
use crate::source::{Retry, Source, SourceError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    H264,
    Mjpeg,
    Raw(u32),
}

pub struct V4l2Source {
    name: String,
    stream: MmapStream,
    kind: Kind,
    width: u32,
    height: u32,
    stride: usize,
    quality: u8,
    stall: Duration,
    format: Option<Arc<StreamFormat>>,
    rate: Option<(u32, u32)>,
    sps: Vec<u8>,
    pps: Vec<Vec<u8>>,
    last_seq: Option<u32>,
    pending_dropped: u32,
    /// H.264 after a sequence gap: frames up to the next keyframe cannot be decoded.
    h264_resync: bool,
    first_ns: Option<i128>,
    /// Raw pictures are thinned to `raw_fps` only when the device runs faster.
    raw_every_ns: Option<i128>,
    next_raw_ns: Option<i128>,
    /// When the stream had started (STREAMON returned): a buffer stamped before it was not
    /// captured by this stream (v4l2loopback hands out its buffers as set up at REQBUFS,
    /// holding the last picture from before) and is dropped and counted.
    started_ns: i128,
    pool: Option<BufferPool>,
    bad_buffers: u64,
    /// Sequence numbers seen (first, last), buffers delivered, frames missing from the
    /// sequence, buffers left out to keep to `raw_fps`: logged when the device closes.
    first_seq: Option<u32>,
    delivered: u64,
    missing: u64,
    thinned: u64,
}

fn lost(name: &str, why: impl Into<String>, retry: Retry) -> SourceError {
    SourceError::lost(name, why, retry)
}

/// An open/ioctl error in words, and how soon to try again.
fn open_error(e: &io::Error) -> (String, Retry) {
    match e.raw_os_error() {
        Some(2) => ("no such device (unplugged?)".into(), Retry::Soon),
        Some(19) | Some(6) => (format!("device gone: {e}"), Retry::Soon),
        Some(13) => (
            format!("{e}: the user needs to be in the video group"),
            Retry::Later,
        ),
        Some(16) => (format!("{e}: another program is using it"), Retry::Later),
        _ => (e.to_string(), Retry::Soon),
    }
}

impl V4l2Source {
    pub fn open(
        path: &Path,
        cam: &CameraConfig,
        pool: Option<BufferPool>,
    ) -> Result<V4l2Source, SourceError> {
        let name = path.display().to_string();
        let fail = |what: &str, e: io::Error| {
            let (why, retry) = open_error(&e);
            lost(&name, format!("{what}: {why}"), retry)
        };
        let file = device::open(path).map_err(|e| fail("cannot open", e))?;
        let (card, driver, capture) =
            device::identity(&file).map_err(|e| fail("VIDIOC_QUERYCAP", e))?;
        if !capture {
            return Err(lost(
                &name,
                format!("{card} ({driver}) is not a streaming video capture device"),
                Retry::Later,
            ));
        }
        let offered = device::formats(&file);
        let codes: Vec<u32> = offered.iter().map(|(c, _)| *c).collect();
        let Some(pixfmt) = device::choose_format(&codes) else {
            return Err(lost(
                &name,
                format!(
                    "{card} offers none of H264, MJPG, YUYV, NV12 (it has {})",
                    codes
                        .iter()
                        .map(|c| sys::fourcc_name(*c))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Retry::Later,
            ));
        };
        let raw = matches!(pixfmt, sys::PIX_YUYV | sys::PIX_NV12);
        let want = if raw {
            (cam.raw_width, cam.raw_height)
        } else {
            (cam.width, cam.height)
        };
        let size = device::choose_size(&device::sizes(&file, pixfmt), want);
        let pix = device::set_format(&file, pixfmt, size.0, size.1)
            .map_err(|e| fail("VIDIOC_S_FMT", e))?;
        if pix.pixelformat != pixfmt {
            return Err(lost(
                &name,
                format!(
                    "asked for {}, the driver set {}",
                    sys::fourcc_name(pixfmt),
                    sys::fourcc_name(pix.pixelformat)
                ),
                Retry::Later,
            ));
        }
        let want_fps = if raw { cam.raw_fps } else { cam.framerate };
        let rates = device::rates(&file, pixfmt, pix.width, pix.height);
        let asked = device::choose_rate(&rates, want_fps, raw);
        let rate = asked.and_then(|r| device::set_rate(&file, r)).or(asked);
        let kind = match pixfmt {
            sys::PIX_H264 => Kind::H264,
            sys::PIX_MJPEG | sys::PIX_JPEG => Kind::Mjpeg,
            other => Kind::Raw(other),
        };
        let fps = |r: (u32, u32)| f64::from(r.0) / f64::from(r.1.max(1));
        info!(
            "{name} ({card}, {driver}): {} {}x{} at {} (asked {}x{} at {want_fps} fps; offered: {}){}",
            sys::fourcc_name(pixfmt),
            pix.width,
            pix.height,
            rate.map_or("an unknown rate".to_string(), |r| format!("{:.3} fps", fps(r))),
            want.0,
            want.1,
            describe_rates(&rates),
            if raw {
                format!("; encoding JPEG at up to {} fps", cam.raw_fps)
            } else {
                String::new()
            }
        );
        let stream = MmapStream::start(file).map_err(|e| fail("starting the stream", e))?;
        let started_ns = monotonic_ns();
        let stride = if pix.bytesperline > 0 {
            pix.bytesperline as usize
        } else if kind == Kind::Raw(sys::PIX_YUYV) {
            pix.width as usize * 2
        } else {
            pix.width as usize
        };
        let out_rate = if raw {
            Some(crate::source::rpicam::rate_of(cam.raw_fps))
        } else {
            rate
        };
        let format = match kind {
            Kind::H264 => None,
            Kind::Mjpeg | Kind::Raw(_) => Some(Arc::new(StreamFormat {
                codec: Codec::Mjpeg,
                width: pix.width,
                height: pix.height,
                frame_rate: out_rate,
                sps: Vec::new(),
                pps: Vec::new(),
            })),
        };
        Ok(V4l2Source {
            name,
            stream,
            kind,
            width: pix.width,
            height: pix.height,
            stride,
            quality: cam.raw_quality,
            stall: Duration::from_secs_f64(cam.stall_timeout),
            format,
            rate: out_rate,
            sps: Vec::new(),
            pps: Vec::new(),
            last_seq: None,
            pending_dropped: 0,
            h264_resync: false,
            first_ns: None,
            raw_every_ns: (raw && rate.is_none_or(|r| fps(r) > cam.raw_fps * 1.01))
                .then_some((1e9 / cam.raw_fps) as i128),
            next_raw_ns: None,
            started_ns,
            pool,
            bad_buffers: 0,
            first_seq: None,
            delivered: 0,
            missing: 0,
            thinned: 0,
        })
    }

    fn drop_buffer(&mut self, why: &str) {
        self.pending_dropped = self.pending_dropped.saturating_add(1);
        self.bad_buffers += 1;
        if self.bad_buffers <= 3 || self.bad_buffers.is_power_of_two() {
            warn!(
                "{}: dropped a buffer: {why} ({} so far)",
                self.name, self.bad_buffers
            );
        }
    }

    /// Count the frames the sequence numbers say are missing before `f`.
    fn count_gap(&mut self, f: &Filled) {
        if let Some(last) = self.last_seq {
            let gap = f.sequence.wrapping_sub(last).wrapping_sub(1);
            if gap > 0 && gap < 1 << 20 {
                self.pending_dropped = self.pending_dropped.saturating_add(gap);
                self.missing += u64::from(gap);
                self.h264_resync = self.kind == Kind::H264;
            }
        }
        self.first_seq.get_or_insert(f.sequence);
        self.last_seq = Some(f.sequence);
        self.delivered += 1;
    }

    /// The frame's bytes from one H.264 buffer: AVCC into `out`; whether it holds an IDR
    /// slice; `false` in the second place when nothing decodable is in it yet.
    fn h264_frame(&mut self, data: &[u8], out: &mut Vec<u8>) -> (bool, bool) {
        out.clear();
        let mut idr = false;
        let mut changed = false;
        for nal in nal_units(data) {
            let t = nal[0] & 0x1f;
            match t {
                7 if self.sps != nal => {
                    self.sps = nal.to_vec();
                    self.pps.clear();
                    changed = true;
                }
                8 if !self.pps.iter().any(|p| p == nal) => {
                    self.pps.push(nal.to_vec());
                    changed = true;
                }
                5 => idr = true,
                _ => {}
            }
            out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            out.extend_from_slice(nal);
        }
        if changed && !self.sps.is_empty() && !self.pps.is_empty() {
            self.format = Some(Arc::new(StreamFormat {
                codec: Codec::H264,
                width: self.width,
                height: self.height,
                frame_rate: self.rate,
                sps: self.sps.clone(),
                pps: self.pps.clone(),
            }));
        }
        let usable = !out.is_empty() && self.format.is_some();
        (idr, usable)
    }
}

fn describe_rates(r: &Rates) -> String {
    match r {
        Rates::Discrete(list) if !list.is_empty() => list
            .iter()
            .map(|(n, d)| {
                let f = f64::from(*n) / f64::from((*d).max(1));
                format!("{}", (f * 1000.0).round() / 1000.0)
            })
            .collect::<Vec<_>>()
            .join(", "),
        Rates::Range(lo, hi) => format!("{lo:.2} to {hi:.2}"),
        Rates::Discrete(_) => "no rates listed".into(),
    }
}

/// The NAL units of an Annex-B buffer (without start codes and trailing zeros).
fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let starts: Vec<usize> = memchr::memmem::find_iter(data, &[0u8, 0, 1]).collect();
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let begin = s + 3;
        let mut end = starts.get(k + 1).copied().unwrap_or(data.len());
        while end > begin && data[end - 1] == 0 {
            end -= 1;
        }
        if end > begin {
            out.push(&data[begin..end]);
        }
    }
    out.into_iter()
}

/// A whole JPEG image: SOI at the start, EOI at the end (zero padding after it allowed).
/// Returns its length.
pub fn whole_jpeg(data: &[u8]) -> Option<usize> {
    if data.len() < 4 || data[..3] != [0xff, 0xd8, 0xff] {
        return None;
    }
    let mut end = data.len();
    while end > 2 && data[end - 1] == 0 {
        end -= 1;
    }
    (data[end - 2..end] == [0xff, 0xd9]).then_some(end)
}

/// Now on the monotonic clock, nanoseconds.
fn monotonic_ns() -> i128 {
    crate::state::clock::monotonic().as_nanos() as i128
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        if let (Some(first), Some(last)) = (self.first_seq, self.last_seq) {
            info!(
                "{}: closed after buffers {first}..{last}: {} delivered, {} missing from the sequence, {} bad, {} left out for raw_fps",
                self.name, self.delivered, self.missing, self.bad_buffers, self.thinned
            );
        }
    }
}

impl Source for V4l2Source {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        loop {
            let filled = match self.stream.next(self.stall) {
                Ok(f) => f,
                Err(WaitError::TimedOut) => {
                    return Err(lost(
                        &self.name,
                        format!("no frame for {:.0} s", self.stall.as_secs_f64()),
                        Retry::Soon,
                    ))
                }
                Err(WaitError::Io(e)) => {
                    let (why, retry) = open_error(&e);
                    return Err(lost(&self.name, why, retry));
                }
            };
            self.count_gap(&filled);
            if filled.flags & sys::BUF_FLAG_ERROR != 0 {
                self.drop_buffer("the driver marked it bad");
                continue;
            }
            let now_ns = monotonic_ns();
            if filled.time_ns > 0 && filled.time_ns < self.started_ns {
                self.drop_buffer("captured before the stream started (a stale placeholder)");
                continue;
            }
            let ts = if filled.time_ns > 0 && filled.time_ns <= now_ns {
                filled.time_ns
            } else {
                now_ns
            };
            if let Some(every) = self.raw_every_ns {
                match self.next_raw_ns {
                    Some(due) if ts + 2_000_000 < due => {
                        self.thinned += 1;
                        continue;
                    }
                    Some(due) => {
                        let next = due + every;
                        self.next_raw_ns = Some(if next < ts { ts + every } else { next });
                    }
                    None => self.next_raw_ns = Some(ts + every),
                }
            }
            let mut out = self.pool.as_ref().map(BufferPool::take).unwrap_or_default();
            let keyframe = match self.kind {
                Kind::Mjpeg => {
                    let data = self.stream.bytes(&filled);
                    match whole_jpeg(data) {
                        Some(n) => {
                            out.clear();
                            out.extend_from_slice(&data[..n]);
                            true
                        }
                        None => {
                            self.drop_buffer("not a whole JPEG image (placeholder or damaged)");
                            continue;
                        }
                    }
                }
                Kind::Raw(pixfmt) => {
                    let data = self.stream.bytes(&filled);
                    let r = raw_jpeg::encode(
                        pixfmt,
                        data,
                        self.width,
                        self.height,
                        self.stride,
                        self.quality,
                        &mut out,
                    );
                    if let Err(e) = r {
                        self.drop_buffer(&format!("cannot encode it: {e}"));
                        continue;
                    }
                    true
                }
                Kind::H264 => {
                    // The bytes are borrowed from the mapping; copy them out first.
                    let data = self.stream.bytes(&filled).to_vec();
                    let (idr, usable) = self.h264_frame(&data, &mut out);
                    if !usable {
                        self.drop_buffer("no H.264 parameter sets yet (placeholder?)");
                        continue;
                    }
                    let key = idr || filled.flags & sys::BUF_FLAG_KEYFRAME != 0;
                    if self.h264_resync && !key {
                        // It refers to a picture that never came: wait for a keyframe.
                        self.pending_dropped = self.pending_dropped.saturating_add(1);
                        continue;
                    }
                    self.h264_resync = false;
                    key
                }
            };
            let Some(format) = self.format.clone() else {
                continue;
            };
            let first = *self.first_ns.get_or_insert(ts);
            let pts = ((ts - first) * i128::from(TIMESCALE) / 1_000_000_000) as i64;
            let age = Duration::from_nanos((now_ns - ts).clamp(0, 10_000_000_000) as u64);
            let captured = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            let wall = SystemTime::now()
                .checked_sub(age)
                .unwrap_or_else(SystemTime::now);
            return Ok(Some(Frame {
                data: out,
                keyframe,
                pts,
                dts: pts,
                captured,
                wall,
                format,
                dropped_before: std::mem::take(&mut self.pending_dropped),
            }));
        }
    }

    fn is_live(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("V4L2 camera {}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_checks_and_nal_splitting() {
        assert_eq!(
            whole_jpeg(&[0xff, 0xd8, 0xff, 0xe0, 1, 2, 0xff, 0xd9, 0, 0]),
            Some(8)
        );
        assert_eq!(whole_jpeg(&[0; 64]), None);
        assert_eq!(whole_jpeg(&[0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]), None);
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 0,
        ];
        let nals: Vec<&[u8]> = nal_units(&au).collect();
        assert_eq!(nals, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
    }
}
