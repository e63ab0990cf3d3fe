//! An H.264 keyframe made into a JPEG still by ffmpeg's command line (the default build):
//! one `ffmpeg` run per still, the keyframe in Annex-B form on its standard input, the
//! JPEG on its standard output, reduced (area) and brought to JPEG's full range by its
//! scaler.
//!
//! Why the command line in the default build: it adds nothing to the binary (an
//! in-process decoder, [`super::openh264`] with the cargo feature `stills-h264`, adds about
//! 580 KB, which would take the Pi build past its 2 MB budget), ffmpeg is one `apt install`
//! away on Raspberry Pi OS and every other system, and it is the most used H.264 decoder
//! there is. The cost is a program start per still, which the CPU budget
//! (`max_cpu_percent`) accounts for: the time a run takes counts as CPU spent. Without
//! ffmpeg H.264 stills are off, with a message saying what to install.
//!
//! It owns the child process: fed from a thread of its own (so neither side can block
//! the other on a full pipe), killed after [`TIMEOUT`].

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::events::stills::annexb::annexb_picture;
use crate::frame::StreamFormat;

/// The longest one still may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// ffmpeg's `-q:v` (2 best … 31 worst) for a JPEG quality of 1–100.
pub fn qscale(quality: u8) -> u8 {
    let q = u32::from(quality.clamp(1, 100));
    (2 + (100 - q) * 29 / 99) as u8
}

/// The arguments of one run: Annex-B H.264 in, one JPEG of `w`×`h` out.
pub fn arguments(w: u32, h: u32, quality: u8) -> Vec<String> {
    [
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "h264",
        "-i",
        "pipe:0",
        "-frames:v",
        "1",
        "-vf",
        &format!("scale={w}:{h}:flags=area,format=yuvj420p"),
        "-q:v",
        &qscale(quality).to_string(),
        "-f",
        "image2pipe",
        "-c:v",
        "mjpeg",
        "pipe:1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `ffmpeg` on the PATH.
fn find_ffmpeg() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ffmpeg"))
        .find(|p| p.is_file())
}

pub struct StillDecoder {
    program: Option<PathBuf>,
    looked: bool,
}

impl Default for StillDecoder {
    fn default() -> Self {
        StillDecoder::new()
    }
}

impl StillDecoder {
    /// What the cost [`StillDecoder::jpeg`] returns measures.
    pub const COST: &'static str = "ms per decoded still (ffmpeg run time)";

    pub fn new() -> StillDecoder {
        StillDecoder {
            program: None,
            looked: false,
        }
    }

    /// The keyframe as a JPEG of `w`×`h`, and the time the run took (counted as CPU).
    pub fn jpeg(
        &mut self,
        format: &StreamFormat,
        avcc: &[u8],
        w: u32,
        h: u32,
        quality: u8,
    ) -> Result<(Vec<u8>, Duration), String> {
        if !self.looked {
            self.looked = true;
            self.program = find_ffmpeg();
        }
        let Some(program) = &self.program else {
            return Err("H.264 stills need ffmpeg (apt install ffmpeg), or a dashcam built with the cargo feature \"stills-h264\"".into());
        };
        let start = Instant::now();
        let mut child = Command::new(program)
            .args(arguments(w, h, quality))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let input = annexb_picture(format, avcc);
        let feeder = child.stdin.take().map(|mut stdin| {
            std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            })
        });
        // stdout and stderr are read in turn: ffmpeg writes its JPEG after reading all of
        // its input, and error messages are short.
        let mut out = Vec::new();
        let reader = child.stdout.take().map(|mut o| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = o.read_to_end(&mut buf);
                buf
            })
        });
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if start.elapsed() > TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("ffmpeg took more than {} s", TIMEOUT.as_secs()));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("waiting for ffmpeg: {e}")),
            }
        };
        if let Some(f) = feeder {
            let _ = f.join();
        }
        if let Some(r) = reader {
            out = r.join().unwrap_or_default();
        }
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let took = start.elapsed();
        if !status.success() || out.len() < 4 || out[..2] != [0xFF, 0xD8] {
            return Err(format!(
                "ffmpeg could not make the still ({status}): {}",
                err.trim().replace('\n', " | ")
            ));
        }
        Ok((out, took))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_maps_onto_ffmpegs_scale() {
        assert_eq!(qscale(100), 2);
        assert_eq!(qscale(1), 31);
        assert_eq!(qscale(80), 7);
        let a = arguments(640, 360, 80);
        assert!(a.contains(&"scale=640:360:flags=area,format=yuvj420p".to_string()));
        assert_eq!(a.last().map(String::as_str), Some("pipe:1"));
    }
}
