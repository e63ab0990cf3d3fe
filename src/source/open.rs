//! Turning a `--source` spec into a running [`Source`]: which reader, which format.
//!
//! The format of a file or pipe comes from the extension when it says (`.h264`/`.264`,
//! `.mjpeg`/`.mjpg`), else from the first bytes (an Annex-B start code or a JPEG SOI). It
//! never consumes bytes it does not hand on: sniffed bytes are chained back in front.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

use crate::source::camera_config::CameraConfig;
use crate::source::h264_stream::H264Stream;
use crate::source::mjpeg_stream::MjpegStream;
use crate::source::test_pattern::{TestPattern, TestPatternOptions};
use crate::source::{Reopen, Source, SourceError, SourceSpec};

/// What the source needs from the configuration.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// Frame rate of streams that carry no timing (num, den).
    pub default_rate: (u32, u32),
    /// Read files as fast as possible instead of in real time.
    pub fast: bool,
    pub test_pattern: TestPatternOptions,
    /// Where stream sources take their frame buffers from (the writer gives them back).
    pub pool: Option<crate::frame::BufferPool>,
    /// What cameras are asked for (`[camera]`).
    pub camera: CameraConfig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamKind {
    H264,
    Mjpeg,
}

/// How to open a camera again after it was lost; `None` for sources that are not cameras.
pub fn reopener(spec: &SourceSpec, opts: &SourceOptions) -> Option<Reopen> {
    if !spec.is_camera() {
        return None;
    }
    let spec = spec.clone();
    let opts = opts.clone();
    Some(Box::new(move || open(&spec, &opts)))
}

pub fn open(spec: &SourceSpec, opts: &SourceOptions) -> Result<Box<dyn Source>, SourceError> {
    match spec {
        SourceSpec::Rpicam => Ok(Box::new(crate::source::rpicam::RpicamSource::open(
            &opts.camera,
            opts.pool.clone(),
        )?)),
        SourceSpec::V4l2(path) => Ok(Box::new(crate::source::v4l2::source::V4l2Source::open(
            path,
            &opts.camera,
            opts.pool.clone(),
        )?)),
        #[cfg(feature = "rtsp")]
        SourceSpec::Rtsp(url) => Ok(Box::new(crate::source::rtsp::RtspSource::open(
            url,
            &opts.camera,
            opts.pool.clone(),
        )?)),
        #[cfg(not(feature = "rtsp"))]
        SourceSpec::Rtsp(url) => Err(SourceError::Unsupported {
            input: url.to_string(),
            what: "this dashcam was built without RTSP support (cargo feature `rtsp`)".into(),
        }),
        SourceSpec::TestPattern => Ok(Box::new(TestPattern::new(opts.test_pattern)?)),
        SourceSpec::File(path) => {
            let name = path.display().to_string();
            let file = File::open(path).map_err(|source| SourceError::Io {
                input: name.clone(),
                source,
            })?;
            let kind = kind_from_extension(path);
            // A file waits for the writer; nothing is lost by reading it later.
            stream(Box::new(file), name, kind, opts, false)
        }
        SourceSpec::Stdin => {
            // A pipe is fed by someone else (a camera program): treat it as live unless
            // it is being read as fast as possible, so a slow writer drops and counts
            // instead of stalling the producer.
            let live = !opts.fast;
            stream(
                Box::new(std::io::stdin()),
                "standard input".into(),
                None,
                opts,
                live,
            )
        }
    }
}

fn kind_from_extension(path: &Path) -> Option<StreamKind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "h264" | "264" | "avc" => Some(StreamKind::H264),
        "mjpeg" | "mjpg" => Some(StreamKind::Mjpeg),
        _ => None,
    }
}

fn stream(
    mut reader: Box<dyn Read + Send>,
    name: String,
    kind: Option<StreamKind>,
    opts: &SourceOptions,
    live: bool,
) -> Result<Box<dyn Source>, SourceError> {
    let kind = match kind {
        Some(k) => k,
        None => {
            let mut head = Vec::with_capacity(4);
            (&mut reader)
                .take(4)
                .read_to_end(&mut head)
                .map_err(|source| SourceError::Io {
                    input: name.clone(),
                    source,
                })?;
            let kind = sniff(&head).ok_or_else(|| SourceError::Unsupported {
                input: name.clone(),
                what: if head.is_empty() {
                    "empty input: expected an H.264 Annex-B or MJPEG stream".into()
                } else {
                    format!(
                        "unknown stream format at byte offset 0 (starts with {}): expected an H.264 Annex-B stream (00 00 00 01) or MJPEG (FF D8)",
                        head.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
                    )
                },
            })?;
            reader = Box::new(Cursor::new(head).chain(reader));
            kind
        }
    };
    let pace = !opts.fast;
    Ok(match kind {
        StreamKind::H264 => {
            let stream = H264Stream::new(reader, name, opts.default_rate, pace, live);
            match &opts.pool {
                Some(pool) => Box::new(stream.with_pool(pool.clone())),
                None => Box::new(stream),
            }
        }
        StreamKind::Mjpeg => Box::new(MjpegStream::new(
            reader,
            name,
            opts.default_rate,
            pace,
            live,
        )),
    })
}

fn sniff(head: &[u8]) -> Option<StreamKind> {
    match head {
        [0, 0, 0, 1] | [0, 0, 1, _] => Some(StreamKind::H264),
        [0xff, 0xd8, ..] => Some(StreamKind::Mjpeg),
        _ => None,
    }
}
