//! MJPEG input: a stream of concatenated JPEG files (a `.mjpeg` file, a pipe, stdin).
//!
//! Owns the splitting of the byte stream into images. It reads in chunks through its own
//! buffer and holds at most one image (plus one chunk) in memory, so it works on pipes and
//! unbounded input. Each image is found by structure, not by searching for `FF D9`: after
//! `SOI` (`FF D8`) the marker segments are skipped by their lengths (so an EXIF thumbnail
//! cannot end the image early) up to `SOS`, whose entropy-coded data is scanned for a marker
//! that is neither stuffing (`FF 00`) nor a restart (`FF D0`–`FF D7`); `EOI` ends the image,
//! any other marker (progressive JPEG) goes back to segment parsing. The picture size comes
//! from the frame header (`SOFn`); a new size gets a new [`StreamFormat`].
//!
//! Bytes between images that are not an image are skipped with one warning per run; input
//! that holds no image at all, and input that ends inside an image (reported once, after
//! every complete image was delivered), are [`SourceError::Corrupt`]. Times are exact:
//! `pts = dts = n * 90000 * den / num` for the configured rate `num/den` frames per second.
//!
//! It must never panic on any input, never read the whole input into memory, never write
//! anything, and never deliver a partial image.

use std::io::{ErrorKind, Read};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::pacing::Pacer;
use super::{Source, SourceError};
use crate::frame::{Codec, Frame, StreamFormat, TIMESCALE};

/// Bytes asked of the reader per read.
const READ_CHUNK: usize = 64 * 1024;
/// The first image must start within this many bytes, or the input is not MJPEG.
const FIRST_IMAGE_WINDOW: u64 = 64 * 1024;
/// An image still without its end after this many bytes is treated as garbage.
const MAX_IMAGE_BYTES: usize = 16 * 1024 * 1024;
/// Garbage runs reported at warning level; later ones go to the debug log.
const GARBAGE_WARNINGS: u32 = 10;
/// Rate used when the configured one has a zero in it.
const FALLBACK_RATE: (u32, u32) = (30, 1);

/// Where the parser is inside the current image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScanState {
    /// At a marker (between marker segments).
    Markers,
    /// Inside entropy-coded data after an SOS header.
    Entropy,
}

/// Progress through one image, as indices into the buffer.
#[derive(Clone, Copy, Debug)]
struct ImageScan {
    start: usize,
    cursor: usize,
    state: ScanState,
    size: Option<(u32, u32)>,
    seen_scan: bool,
}

enum Step {
    /// The image ends just before this buffer index.
    Complete(usize),
    NeedMore,
    Malformed(&'static str),
}

/// Splits concatenated JPEG images into frames.
pub struct MjpegStream {
    reader: Box<dyn Read + Send>,
    name: String,
    rate: (u32, u32),
    pacer: Pacer,
    live: bool,
    buf: Vec<u8>,
    /// First byte of `buf` not yet consumed.
    pos: usize,
    /// Input offset of `buf[0]`.
    base: u64,
    eof: bool,
    /// After the final error or the end: only `Ok(None)` from now on.
    done: bool,
    scan: Option<ImageScan>,
    frames: u64,
    format: Option<Arc<StreamFormat>>,
    in_garbage: bool,
    garbage_runs: u32,
}

impl MjpegStream {
    /// `rate` is (num, den) frames per second; `pace` sleeps to play in real time; `live`
    /// says whether the input is a live pipe (it loses data if not read promptly).
    pub fn new(
        reader: Box<dyn Read + Send>,
        name: String,
        rate: (u32, u32),
        pace: bool,
        live: bool,
    ) -> MjpegStream {
        let rate = if rate.0 == 0 || rate.1 == 0 {
            log::warn!(
                "{name}: frame rate {}/{} is not usable, assuming {}/{}",
                rate.0,
                rate.1,
                FALLBACK_RATE.0,
                FALLBACK_RATE.1
            );
            FALLBACK_RATE
        } else {
            rate
        };
        MjpegStream {
            reader,
            name,
            rate,
            pacer: Pacer::new(pace),
            live,
            buf: Vec::with_capacity(2 * READ_CHUNK),
            pos: 0,
            base: 0,
            eof: false,
            done: false,
            scan: None,
            frames: 0,
            format: None,
            in_garbage: false,
            garbage_runs: 0,
        }
    }

    fn corrupt(&mut self, offset: u64, what: String) -> SourceError {
        self.done = true;
        SourceError::Corrupt {
            input: self.name.clone(),
            offset,
            what,
        }
    }

    /// Log the start of a run of bytes that are not an image, once per run.
    fn note_garbage(&mut self, offset: u64, why: &str) {
        if self.in_garbage {
            return;
        }
        self.in_garbage = true;
        self.garbage_runs = self.garbage_runs.saturating_add(1);
        if self.garbage_runs <= GARBAGE_WARNINGS {
            log::warn!(
                "{}: {why} at byte offset {offset}, skipping to the next JPEG image",
                self.name
            );
            if self.garbage_runs == GARBAGE_WARNINGS {
                log::warn!(
                    "{}: further skipped garbage is logged at debug level",
                    self.name
                );
            }
        } else {
            log::debug!("{}: {why} at byte offset {offset}, skipping", self.name);
        }
    }

    /// Read one more chunk into the buffer (moving the unconsumed bytes to the front first).
    /// Sets `eof` at the end of the input.
    fn read_more(&mut self) -> Result<(), SourceError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            if let Some(scan) = &mut self.scan {
                scan.start -= self.pos;
                scan.cursor -= self.pos;
            }
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        loop {
            match self.reader.read(&mut self.buf[old..]) {
                Ok(n) => {
                    // A reader claiming more than it was given is not trusted beyond the buffer.
                    self.buf.truncate(old + n.min(READ_CHUNK));
                    if n == 0 {
                        self.eof = true;
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(source) => {
                    self.buf.truncate(old);
                    return Err(SourceError::Io {
                        input: self.name.clone(),
                        source,
                    });
                }
            }
        }
    }

    /// Find the next complete image: `(start, end, width, height)` as buffer indices.
    fn next_image(&mut self) -> Result<Option<(usize, usize, u32, u32)>, SourceError> {
        loop {
            let Some(mut scan) = self.scan else {
                if self.find_soi() {
                    let at = self.base + self.pos as u64;
                    if self.frames == 0 && at >= FIRST_IMAGE_WINDOW {
                        return Err(self.no_image_in_window(at));
                    }
                    continue;
                }
                let at = self.base + self.pos as u64;
                if self.frames == 0 && at >= FIRST_IMAGE_WINDOW {
                    return Err(self.no_image_in_window(at));
                }
                if self.eof {
                    return self.end_between_images();
                }
                self.read_more()?;
                continue;
            };
            match parse(&self.buf, &mut scan) {
                Step::Complete(end) => {
                    self.scan = None;
                    self.pos = end;
                    self.in_garbage = false;
                    let (w, h) = scan.size.unwrap_or((0, 0));
                    return Ok(Some((scan.start, end, w, h)));
                }
                Step::Malformed(why) => {
                    let offset = self.base + scan.start as u64;
                    self.note_garbage(offset, why);
                    self.scan = None;
                    self.pos = scan.start + 1;
                }
                Step::NeedMore => {
                    self.scan = Some(scan);
                    if self.buf.len() - scan.start > MAX_IMAGE_BYTES {
                        let offset = self.base + scan.start as u64;
                        self.note_garbage(offset, "JPEG image without an end within 16 MiB");
                        self.scan = None;
                        self.pos = scan.start + 1;
                        continue;
                    }
                    if self.eof {
                        let offset = self.base + scan.start as u64;
                        let len = self.buf.len() - scan.start;
                        let what = format!(
                            "input ends inside a JPEG image ({len} bytes from offset {offset})"
                        );
                        return Err(self.corrupt(offset, what));
                    }
                    self.read_more()?;
                }
            }
        }
    }

    /// Look for SOI from `pos`; on success start an image scan there and return true.
    /// Otherwise consume what cannot start an image and return false.
    fn find_soi(&mut self) -> bool {
        let rest = &self.buf[self.pos..];
        let found = rest.windows(2).position(|w| w == [0xFF, 0xD8]);
        let skip = match found {
            Some(i) => i,
            // Keep a trailing FF: it may be the first half of an SOI.
            None if rest.last() == Some(&0xFF) => rest.len() - 1,
            None => rest.len(),
        };
        if skip > 0 {
            let why = if self.frames == 0 {
                "input does not start with a JPEG image"
            } else {
                "bytes between JPEG images"
            };
            self.note_garbage(self.base + self.pos as u64, why);
            self.pos += skip;
        }
        if found.is_some() {
            self.scan = Some(ImageScan {
                start: self.pos,
                cursor: self.pos + 2,
                state: ScanState::Markers,
                size: None,
                seen_scan: false,
            });
        }
        found.is_some()
    }

    fn no_image_in_window(&mut self, offset: u64) -> SourceError {
        self.scan = None;
        let what = format!(
            "no JPEG image in input: no start-of-image marker (FF D8) in the first \
             {FIRST_IMAGE_WINDOW} bytes"
        );
        self.corrupt(offset, what)
    }

    /// The input ended with no image in progress.
    fn end_between_images(&mut self) -> Result<Option<(usize, usize, u32, u32)>, SourceError> {
        if self.frames > 0 {
            self.done = true;
            return Ok(None);
        }
        let total = self.base + self.buf.len() as u64;
        let what = if total == 0 {
            "no JPEG image in input (the input is empty)".to_string()
        } else {
            format!("no JPEG image in input ({total} bytes without a start-of-image marker FF D8)")
        };
        Err(self.corrupt(total, what))
    }

    fn ticks(&self, n: u64) -> i64 {
        let (num, den) = self.rate;
        let t = u128::from(n) * u128::from(TIMESCALE) * u128::from(den) / u128::from(num);
        i64::try_from(t).unwrap_or(i64::MAX)
    }
}

/// Advance `scan` through the bytes of `buf` available so far.
fn parse(buf: &[u8], scan: &mut ImageScan) -> Step {
    loop {
        match scan.state {
            ScanState::Markers => {
                let Some(&[ff, marker]) = buf.get(scan.cursor..scan.cursor + 2) else {
                    return Step::NeedMore;
                };
                if ff != 0xFF {
                    return Step::Malformed("JPEG marker expected");
                }
                match marker {
                    0xFF => scan.cursor += 1, // fill byte
                    0xD8 => return Step::Malformed("start-of-image marker inside a JPEG image"),
                    0xD9 if scan.seen_scan => return Step::Complete(scan.cursor + 2),
                    0xD9 => return Step::Malformed("JPEG image without scan data"),
                    0x00 => return Step::Malformed("invalid JPEG marker FF 00"),
                    0x01 | 0xD0..=0xD7 => scan.cursor += 2, // standalone markers
                    _ => {
                        let Some(&[hi, lo]) = buf.get(scan.cursor + 2..scan.cursor + 4) else {
                            return Step::NeedMore;
                        };
                        let len = usize::from(u16::from_be_bytes([hi, lo]));
                        if len < 2 {
                            return Step::Malformed("JPEG marker segment length below 2");
                        }
                        let is_sof =
                            matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
                        if is_sof && scan.size.is_none() {
                            if len < 8 {
                                return Step::Malformed("JPEG frame header too short");
                            }
                            // length(2) precision(1) height(2) width(2)
                            let Some(b) = buf.get(scan.cursor + 4..scan.cursor + 9) else {
                                return Step::NeedMore;
                            };
                            let height = u32::from(u16::from_be_bytes([b[1], b[2]]));
                            let width = u32::from(u16::from_be_bytes([b[3], b[4]]));
                            if width == 0 || height == 0 {
                                return Step::Malformed("JPEG frame header with a zero size");
                            }
                            scan.size = Some((width, height));
                        }
                        if marker == 0xDA {
                            if scan.size.is_none() {
                                return Step::Malformed("JPEG scan before the frame header");
                            }
                            scan.seen_scan = true;
                            scan.state = ScanState::Entropy;
                        }
                        scan.cursor += 2 + len;
                    }
                }
            }
            ScanState::Entropy => {
                let Some(data) = buf.get(scan.cursor..) else {
                    return Step::NeedMore;
                };
                let Some(i) = data.iter().position(|&b| b == 0xFF) else {
                    scan.cursor = buf.len();
                    return Step::NeedMore;
                };
                let at = scan.cursor + i;
                let Some(&next) = buf.get(at + 1) else {
                    scan.cursor = at;
                    return Step::NeedMore;
                };
                match next {
                    0x00 | 0xD0..=0xD7 => scan.cursor = at + 2,
                    0xFF => scan.cursor = at + 1,
                    _ => {
                        scan.cursor = at;
                        scan.state = ScanState::Markers;
                    }
                }
            }
        }
    }
}

impl Source for MjpegStream {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let Some((start, end, width, height)) = self.next_image()? else {
            return Ok(None);
        };
        let format = match &self.format {
            Some(f) if f.width == width && f.height == height => Arc::clone(f),
            _ => {
                if let Some(old) = &self.format {
                    log::info!(
                        "{}: picture size changes from {}x{} to {width}x{height} at byte offset {}",
                        self.name,
                        old.width,
                        old.height,
                        self.base + start as u64
                    );
                }
                let f = Arc::new(StreamFormat {
                    codec: Codec::Mjpeg,
                    width,
                    height,
                    frame_rate: Some(self.rate),
                    sps: Vec::new(),
                    pps: Vec::new(),
                });
                self.format = Some(Arc::clone(&f));
                f
            }
        };
        let data = self.buf[start..end].to_vec();
        let ts = self.ticks(self.frames);
        self.frames += 1;
        self.pacer.wait_for(ts);
        Ok(Some(Frame {
            data,
            keyframe: true,
            pts: ts,
            dts: ts,
            captured: Instant::now(),
            wall: SystemTime::now(),
            format,
            dropped_before: 0,
        }))
    }

    fn is_live(&self) -> bool {
        self.live
    }

    fn describe(&self) -> String {
        format!("mjpeg {}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A structurally valid JPEG (markers only; the entropy data is not decodable).
    fn fake_jpeg(width: u16, height: u16, ecs: &[u8]) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        // APP1 holding an embedded "thumbnail" with its own SOI/EOI.
        j.extend_from_slice(&[0xFF, 0xE1, 0x00, 0x08, 0xFF, 0xD8, 0xFF, 0xD9, 0xFF, 0xD9]);
        j.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
        j.extend_from_slice(&height.to_be_bytes());
        j.extend_from_slice(&width.to_be_bytes());
        j.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x0C, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0]);
        j.extend_from_slice(ecs);
        j.extend_from_slice(&[0xFF, 0xD9]);
        j
    }

    const ECS: &[u8] = &[
        1, 2, 0xFF, 0x00, 3, 0xFF, 0xD0, 4, 0xFF, 0xFF, 0xD7, 0xD9, 5,
    ];

    /// Hands out at most `step` bytes per read (`first` for the first read), and one error
    /// before the first byte if `fail_once`.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        first: usize,
        step: usize,
        fail_once: bool,
    }

    fn trickle(data: Vec<u8>, first: usize, step: usize, fail_once: bool) -> Box<Trickle> {
        Box::new(Trickle {
            data,
            at: 0,
            first,
            step,
            fail_once,
        })
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.fail_once {
                self.fail_once = false;
                return Err(std::io::Error::other("flaky pipe"));
            }
            let step = if self.at == 0 { self.first } else { self.step };
            let n = step.min(out.len()).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn stream(data: Vec<u8>) -> MjpegStream {
        MjpegStream::new(
            Box::new(Cursor::new(data)),
            "test".into(),
            (30, 1),
            false,
            false,
        )
    }

    /// A frame as (data, pts, width, height), or an error as its message.
    type Item = Result<(Vec<u8>, i64, u32, u32), String>;

    /// All results until the end.
    fn drain(s: &mut MjpegStream) -> Vec<Item> {
        let mut out = Vec::new();
        for _ in 0..1000 {
            match s.next_frame() {
                Ok(Some(f)) => out.push(Ok((f.data, f.pts, f.format.width, f.format.height))),
                Ok(None) => return out,
                Err(e) => out.push(Err(e.to_string())),
            }
        }
        panic!("stream does not end");
    }

    #[test]
    fn splits_images_with_exact_times() {
        let a = fake_jpeg(320, 240, ECS);
        let b = fake_jpeg(320, 240, &[7; 100]);
        let mut input = a.clone();
        input.extend_from_slice(&b);
        let mut s = MjpegStream::new(
            Box::new(Cursor::new(input)),
            "x".into(),
            (30000, 1001),
            false,
            true,
        );
        assert!(s.is_live());
        let f1 = s.next_frame().unwrap().unwrap();
        let f2 = s.next_frame().unwrap().unwrap();
        assert!(s.next_frame().unwrap().is_none());
        assert!(s.next_frame().unwrap().is_none());
        assert_eq!((f1.data, f2.data), (a, b));
        assert_eq!((f1.pts, f2.pts, f2.dts), (0, 3003, 3003));
        assert!(Arc::ptr_eq(&f1.format, &f2.format));
        assert_eq!(f1.format.frame_rate, Some((30000, 1001)));
        assert!(f1.keyframe);
    }

    #[test]
    fn streams_byte_by_byte_through_errors() {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for i in 0..5u16 {
            let j = fake_jpeg(16 + 2 * i, 8, ECS);
            input.extend_from_slice(&j);
            expected.push(j);
        }
        for step in [1, 2, 3, 7, 1000] {
            let reader = trickle(input.clone(), step, step, true);
            let mut s = MjpegStream::new(reader, "t".into(), (25, 1), false, false);
            let out = drain(&mut s);
            assert!(out[0].as_ref().unwrap_err().contains("flaky pipe"));
            let frames: Vec<_> = out[1..].iter().map(|r| r.clone().unwrap()).collect();
            assert_eq!(frames.len(), 5, "step {step}");
            for (i, (data, pts, w, h)) in frames.into_iter().enumerate() {
                assert_eq!(data, expected[i]);
                assert_eq!(pts, i as i64 * 3600);
                assert_eq!((w, h), (16 + 2 * i as u32, 8));
            }
        }
    }

    #[test]
    fn size_change_makes_new_format() {
        let mut input = fake_jpeg(32, 16, ECS);
        input.extend(fake_jpeg(32, 16, ECS));
        input.extend(fake_jpeg(64, 16, ECS));
        let mut s = stream(input);
        let f: Vec<_> = (0..3).map(|_| s.next_frame().unwrap().unwrap()).collect();
        assert!(Arc::ptr_eq(&f[0].format, &f[1].format));
        assert!(!Arc::ptr_eq(&f[1].format, &f[2].format));
        assert_eq!(f[2].format.width, 64);
    }

    #[test]
    fn skips_garbage() {
        let a = fake_jpeg(8, 8, ECS);
        let mut input = b"junk\xFF\xFF\xD8\xFF\x00 more junk".to_vec(); // with a false SOI
        input.extend_from_slice(&a);
        input.extend_from_slice(b"\r\n--boundary\r\n\xFF");
        input.extend_from_slice(&a);
        input.extend_from_slice(b"trailing");
        let out = drain(&mut stream(input));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.as_ref().is_ok_and(|f| f.0 == a)));
    }

    #[test]
    fn progressive_scans() {
        let mut j = fake_jpeg(8, 8, &[1, 2, 3]);
        j.truncate(j.len() - 2);
        j.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x04, 0xFF, 0xD9]); // DHT holding FF D9
        j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 1, 63, 0]);
        j.extend_from_slice(&[9, 9, 0xFF, 0xD9]);
        let out = drain(&mut stream(j.clone()));
        assert_eq!(out, vec![Ok((j, 0, 8, 8))]);
    }

    #[test]
    fn truncated_last_image_reported_once() {
        let a = fake_jpeg(8, 8, ECS);
        let mut input = a.clone();
        input.extend_from_slice(&a[..a.len() - 3]);
        let out = drain(&mut stream(input));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].as_ref().unwrap().0, a);
        let len = a.len() - 3;
        let offset = a.len();
        assert_eq!(
            out[1].as_ref().unwrap_err(),
            &format!(
                "test: input ends inside a JPEG image ({len} bytes from offset {offset}) \
                 at byte offset {offset}"
            )
        );
    }

    #[test]
    fn no_image_errors() {
        let out = drain(&mut stream(Vec::new()));
        assert_eq!(out.len(), 1);
        let e = out[0].as_ref().unwrap_err();
        assert!(
            e.contains("no JPEG image in input") && e.contains("empty"),
            "{e}"
        );

        let out = drain(&mut stream(b"hello world".to_vec()));
        assert_eq!(out.len(), 1);
        assert!(out[0]
            .as_ref()
            .unwrap_err()
            .contains("no JPEG image in input"));

        // An image after 64 KiB of garbage is not looked for.
        let mut input = vec![0x55; 70_000];
        input.extend(fake_jpeg(8, 8, ECS));
        let out = drain(&mut stream(input));
        assert_eq!(out.len(), 1);
        let e = out[0].as_ref().unwrap_err();
        assert!(e.starts_with("test: no JPEG image in input"), "{e}");
        assert!(e.ends_with("at byte offset 65536"), "{e}");

        // Also when the image beyond 64 KiB arrives in the same read as garbage before it.
        let mut input = vec![0x55; 66_000];
        input.extend(fake_jpeg(8, 8, ECS));
        let reader = trickle(input, 1000, READ_CHUNK, false);
        let mut s = MjpegStream::new(reader, "t".into(), (30, 1), false, false);
        let out = drain(&mut s);
        assert_eq!(out.len(), 1);
        let e = out[0].as_ref().unwrap_err();
        assert!(e.ends_with("at byte offset 66000"), "{e}");
    }

    #[test]
    fn malformed_images_never_panic() {
        let a = fake_jpeg(8, 8, ECS);
        // Every prefix, and every single-byte corruption, of two images.
        let mut two = a.clone();
        two.extend_from_slice(&a);
        for cut in 0..two.len() {
            drain(&mut stream(two[..cut].to_vec()));
        }
        for at in 0..two.len() {
            for v in [0x00, 0xFF, 0xD8, 0xD9, 0xDA] {
                let mut bad = two.clone();
                bad[at] = v;
                drain(&mut stream(bad));
            }
        }
        // Zero size, DNL-style height, tiny segment length.
        let mut zero = fake_jpeg(8, 8, ECS);
        zero[17] = 0;
        zero[18] = 0;
        let out = drain(&mut stream(zero));
        assert!(out.iter().all(|r| r.is_err()));
        drain(&mut stream(vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01]));
    }

    #[test]
    fn zero_rate_falls_back() {
        let mut input = fake_jpeg(8, 8, ECS);
        input.extend(fake_jpeg(8, 8, ECS));
        let mut s = MjpegStream::new(
            Box::new(Cursor::new(input)),
            "z".into(),
            (0, 1),
            false,
            false,
        );
        s.next_frame().unwrap();
        assert_eq!(s.next_frame().unwrap().unwrap().pts, 3000);
        assert_eq!(s.describe(), "mjpeg z");
    }
}
