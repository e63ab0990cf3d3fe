//! The synthetic MJPEG source behind `--source test`.
//!
//! Owns an RGB canvas and a JPEG buffer, both allocated once: every frame copies the
//! precomputed background (colour bars over a grey ramp) into the canvas, draws a box that
//! moves every frame, burns in the local wall-clock time (`YYYY-MM-DD HH:MM:SS.mmm`) and the
//! frame number with the bitmap font of [`super::font`], and encodes the canvas as a
//! baseline YCbCr 4:2:0 JPEG. Frames come out in real time (frame `n` is due at
//! `start + n / fps`), with `pts = dts = n * 90000 / fps` computed from `n` each time so the
//! clock never drifts. Only the JPEG handed out in each [`Frame`] is allocated per frame.
//!
//! It must never read or write files, never skip frame numbers to catch up when it runs
//! late (it simply stops sleeping), and never panic on any size it accepted.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use chrono::{DateTime, Datelike, Local, Timelike};
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

use super::font;
use super::pacing::Pacer;
use super::{Source, SourceError};
use crate::frame::{Codec, Frame, StreamFormat, TIMESCALE};

/// Largest accepted width and height.
pub const MAX_DIMENSION: u32 = 4096;
/// Largest accepted frame rate.
pub const MAX_FPS: u32 = 120;

/// Settings of the generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestPatternOptions {
    /// Picture size in pixels: even, 2..=4096.
    pub width: u32,
    pub height: u32,
    /// Frames per second, 1..=120.
    pub fps: u32,
    /// JPEG quality, 1..=100.
    pub quality: u8,
}

/// Synthetic live MJPEG source.
pub struct TestPattern {
    opts: TestPatternOptions,
    width: usize,
    height: usize,
    format: Arc<StreamFormat>,
    /// Static picture under the moving parts, packed RGB.
    background: Vec<u8>,
    /// The frame being drawn, packed RGB; reused.
    canvas: Vec<u8>,
    /// JPEG output of the last frame; reused, its content is copied into the frame.
    jpeg: Vec<u8>,
    pacer: Pacer,
    next: u64,
    text_scale: usize,
}

impl TestPattern {
    pub fn new(opts: TestPatternOptions) -> Result<TestPattern, SourceError> {
        let bad = |what: String| Err(SourceError::Generator(what));
        for (name, v) in [("width", opts.width), ("height", opts.height)] {
            if v == 0 || v % 2 != 0 || v > MAX_DIMENSION {
                return bad(format!(
                    "{name} {v} is not supported: it must be even, between 2 and {MAX_DIMENSION}"
                ));
            }
        }
        if opts.fps == 0 || opts.fps > MAX_FPS {
            return bad(format!(
                "frame rate {} is not supported: it must be between 1 and {MAX_FPS} frames per second",
                opts.fps
            ));
        }
        if opts.quality == 0 || opts.quality > 100 {
            return bad(format!(
                "JPEG quality {} is not supported: it must be between 1 and 100",
                opts.quality
            ));
        }
        let width = opts.width as usize;
        let height = opts.height as usize;
        let background = draw_background(width, height);
        let canvas = background.clone();
        let text_scale = (height / 160).min(width / 140).clamp(2, 4);
        Ok(TestPattern {
            opts,
            width,
            height,
            format: Arc::new(StreamFormat {
                codec: Codec::Mjpeg,
                width: opts.width,
                height: opts.height,
                frame_rate: Some((opts.fps, 1)),
                sps: Vec::new(),
                pps: Vec::new(),
            }),
            background,
            canvas,
            jpeg: Vec::with_capacity(width * height / 4),
            pacer: Pacer::new(true),
            next: 0,
            text_scale,
        })
    }

    /// Decode (and presentation) time of frame `n`: exactly `n * 90000 / fps`, rounded down.
    fn ticks(&self, n: u64) -> i64 {
        let t = u128::from(n) * u128::from(TIMESCALE) / u128::from(self.opts.fps);
        i64::try_from(t).unwrap_or(i64::MAX)
    }

    /// Draw frame `n`, stamped with `wall`, into the canvas.
    fn render(&mut self, n: u64, wall: SystemTime) {
        let (w, h) = (self.width, self.height);
        self.canvas.copy_from_slice(&self.background);

        // A box bouncing left and right across the bars, two seconds per crossing.
        let size = (h / 6).clamp(2, w);
        let travel = (w - size) as u64;
        let x = if travel == 0 {
            0
        } else {
            let speed = (travel / (2 * u64::from(self.opts.fps))).max(1);
            let pos = n.wrapping_mul(speed) % (2 * travel);
            (if pos < travel { pos } else { 2 * travel - pos }) as usize
        };
        let y = (h * 2 / 3).saturating_sub(size) / 2;
        font::fill_rect(&mut self.canvas, w, h, (x, y, size, size), [0, 0, 0]);
        let inset = (size / 8).max(1);
        let inner = size.saturating_sub(2 * inset);
        let rect = (x + inset, y + inset, inner, inner);
        font::fill_rect(&mut self.canvas, w, h, rect, [255, 255, 255]);

        // Wall clock and frame number, white on a dark plate in the top-left corner.
        let scale = self.text_scale;
        let margin = 2 * scale;
        let line = font::text_height(scale) + 2 * scale;
        let mut clock = [0u8; 23];
        format_clock(&DateTime::<Local>::from(wall), &mut clock);
        let mut number = [0u8; 26];
        let number_len = format_frame_number(n, &mut number);
        let plate_w = font::text_width(clock.len().max(number_len), scale) + 2 * margin;
        let plate_h = 2 * line + 2 * margin - 2 * scale;
        font::fill_rect(
            &mut self.canvas,
            w,
            h,
            (0, 0, plate_w, plate_h),
            [16, 16, 16],
        );
        let white = [235, 235, 235];
        font::draw_text(
            &mut self.canvas,
            w,
            h,
            (margin, margin),
            &clock,
            scale,
            white,
        );
        let number = &number[..number_len];
        font::draw_text(
            &mut self.canvas,
            w,
            h,
            (margin, margin + line),
            number,
            scale,
            white,
        );
    }

    fn encode(&mut self) -> Result<(), SourceError> {
        self.jpeg.clear();
        let mut encoder = Encoder::new(&mut self.jpeg, self.opts.quality);
        encoder.set_sampling_factor(SamplingFactor::F_2_2);
        // new() checked both dimensions against MAX_DIMENSION, far below u16::MAX.
        let (w, h) = (self.opts.width as u16, self.opts.height as u16);
        encoder
            .encode(&self.canvas, w, h, ColorType::Rgb)
            .map_err(|e| SourceError::Generator(format!("JPEG encoding failed: {e}")))
    }
}

impl Source for TestPattern {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let n = self.next;
        let ts = self.ticks(n);
        self.pacer.wait_for(ts);
        let captured = Instant::now();
        let wall = SystemTime::now();
        self.render(n, wall);
        self.encode()?;
        self.next += 1;
        Ok(Some(Frame {
            data: self.jpeg.as_slice().to_vec(),
            keyframe: true,
            pts: ts,
            dts: ts,
            captured,
            wall,
            format: Arc::clone(&self.format),
            dropped_before: 0,
        }))
    }

    fn is_live(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!(
            "test pattern {}x{}@{}",
            self.opts.width, self.opts.height, self.opts.fps
        )
    }
}

/// Colour bars (75 %) over the top two thirds, a grey ramp below.
fn draw_background(width: usize, height: usize) -> Vec<u8> {
    const BARS: [[u8; 3]; 7] = [
        [191, 191, 191],
        [191, 191, 0],
        [0, 191, 191],
        [0, 191, 0],
        [191, 0, 191],
        [191, 0, 0],
        [0, 0, 191],
    ];
    let mut rgb = vec![0u8; width * height * 3];
    let bars_end = height * 2 / 3;
    for (y, row) in rgb.chunks_exact_mut(width * 3).enumerate() {
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let colour = if y < bars_end {
                BARS[x * BARS.len() / width]
            } else {
                let v = (x * 255 / width.saturating_sub(1).max(1)) as u8;
                [v, v, v]
            };
            px.copy_from_slice(&colour);
        }
    }
    rgb
}

/// Write `value` as `width` decimal digits (the most significant ones dropped if longer).
fn put_digits(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmm` without allocating.
fn format_clock(t: &DateTime<Local>, out: &mut [u8; 23]) {
    out.copy_from_slice(b"0000-00-00 00:00:00.000");
    put_digits(&mut out[0..4], t.year().clamp(0, 9999) as u64);
    put_digits(&mut out[5..7], u64::from(t.month()));
    put_digits(&mut out[8..10], u64::from(t.day()));
    put_digits(&mut out[11..13], u64::from(t.hour()));
    put_digits(&mut out[14..16], u64::from(t.minute()));
    put_digits(&mut out[17..19], u64::from(t.second()));
    // A leap second shows as .999 rather than overflowing the field.
    put_digits(
        &mut out[20..23],
        u64::from((t.nanosecond() / 1_000_000).min(999)),
    );
}

/// `FRAME nnnnnn` (at least six digits); returns the length used.
fn format_frame_number(n: u64, out: &mut [u8; 26]) -> usize {
    const PREFIX: &[u8] = b"FRAME ";
    out[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = 1;
    let mut rest = n / 10;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    let digits = digits.max(6);
    let end = PREFIX.len() + digits;
    put_digits(&mut out[PREFIX.len()..end], n);
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn opts(width: u32, height: u32, fps: u32, quality: u8) -> TestPatternOptions {
        TestPatternOptions {
            width,
            height,
            fps,
            quality,
        }
    }

    fn err(o: TestPatternOptions) -> String {
        match TestPattern::new(o) {
            Ok(_) => panic!("{o:?} accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn rejects_bad_options() {
        assert!(err(opts(0, 240, 30, 80)).contains("width 0"));
        assert!(err(opts(321, 240, 30, 80)).contains("must be even"));
        assert!(err(opts(320, 8192, 30, 80)).contains("height 8192"));
        assert!(err(opts(320, 240, 0, 80)).contains("frame rate 0"));
        assert!(err(opts(320, 240, 121, 80)).contains("between 1 and 120"));
        assert!(err(opts(320, 240, 30, 0)).contains("quality 0"));
        assert!(err(opts(320, 240, 30, 101)).contains("quality 101"));
        assert!(TestPattern::new(opts(2, 2, 120, 1)).is_ok());
    }

    #[test]
    fn frames_are_jpegs_with_exact_times() {
        let mut tp = TestPattern::new(opts(320, 240, 60, 80)).expect("valid options");
        assert!(tp.is_live());
        assert_eq!(tp.describe(), "test pattern 320x240@60");
        let start = Instant::now();
        let mut last_data = Vec::new();
        for n in 0..4i64 {
            let f = tp.next_frame().expect("frame").expect("never ends");
            assert_eq!(f.pts, n * 1500);
            assert_eq!(f.dts, f.pts);
            assert!(f.keyframe);
            assert!(f.data.starts_with(&[0xFF, 0xD8]) && f.data.ends_with(&[0xFF, 0xD9]));
            assert!(f.data != last_data, "the picture changes every frame");
            assert_eq!((f.format.width, f.format.height), (320, 240));
            assert_eq!(f.format.frame_rate, Some((60, 1)));
            assert!(Arc::ptr_eq(&f.format, &tp.format));
            last_data = f.data;
        }
        // Frame 3 is due 50 ms after frame 0.
        assert!(start.elapsed().as_millis() >= 45);
    }

    #[test]
    fn ticks_do_not_drift() {
        let tp = TestPattern::new(opts(16, 16, 7, 50)).expect("valid options");
        assert_eq!(tp.ticks(7), 90_000);
        assert_eq!(tp.ticks(1), 12_857);
        assert_eq!(tp.ticks(7_000_000), 90_000_000_000);
    }

    #[test]
    fn small_sizes_render() {
        for (w, h) in [(2, 2), (16, 2), (2, 16), (100, 50)] {
            let mut tp = TestPattern::new(opts(w, h, 30, 75)).expect("valid options");
            tp.render(123_456_789, SystemTime::now());
            tp.encode().expect("encodes");
        }
    }

    #[test]
    fn text_fields() {
        let t = Local
            .with_ymd_and_hms(2024, 2, 29, 23, 5, 9)
            .single()
            .expect("unambiguous")
            + chrono::Duration::milliseconds(42);
        let mut clock = [0u8; 23];
        format_clock(&t, &mut clock);
        assert_eq!(&clock, b"2024-02-29 23:05:09.042");
        let mut number = [0u8; 26];
        let len = format_frame_number(42, &mut number);
        assert_eq!(&number[..len], b"FRAME 000042");
        let len = format_frame_number(u64::MAX, &mut number);
        assert_eq!(&number[..len], b"FRAME 18446744073709551615");
    }
}
