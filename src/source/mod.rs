//! Where frames come from. Every camera, file or generator is a [`Source`].
//!
//! A source runs on the capture thread. It produces frames in decode order with their
//! times on the stream clock, paced in real time unless it is a file read with `--fast`.
//! It never writes files and never blocks on the writer: handing frames over is the
//! capture loop's job (`recorder::capture`).
//!
//! A camera that goes away (unplugged, its process died, its server dropped the
//! connection, it stopped producing frames) is not an error that ends recording: the source
//! returns [`SourceError::Lost`], the capture loop reports a gap, drops the source (closing
//! the device, ending the process) and opens it again after a backoff (see
//! `recorder::capture`). Cameras: [`rpicam`] (the Pi camera module through `rpicam-vid`),
//! [`v4l2`] (USB webcams), `rtsp` (IP cameras, behind the `rtsp` feature).

pub mod annexb;
pub mod camera_config;
pub mod child_reader;
mod font;
pub mod h264_access_units;
pub mod h264_stream;
pub mod live_clock;
pub mod mjpeg_stream;
pub mod open;
pub mod pacing;
pub mod redact;
pub mod rpicam;
#[cfg(feature = "rtsp")]
pub mod rtsp;
pub mod test_pattern;
pub mod v4l2;

use std::path::PathBuf;

use crate::frame::Frame;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading {input}: {source}")]
    Io {
        input: String,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not what the source expects. `offset` is the byte offset in the input.
    #[error("{input}: {what} at byte offset {offset}")]
    Corrupt {
        input: String,
        offset: u64,
        what: String,
    },
    #[error("{input}: {what}")]
    Unsupported { input: String, what: String },
    #[error("test pattern: {0}")]
    Generator(String),
    /// The camera is gone for now; the capture loop reports a gap and opens the source
    /// again after a backoff. `why` is in words and never carries credentials.
    #[error("{input}: {why}")]
    Lost {
        input: String,
        why: String,
        retry: Retry,
    },
}

/// How soon a lost source is worth opening again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Cheap to try and likely back any moment (a device node that is missing, a
    /// connection refused or dropped): try again about every second, so recording resumes
    /// within two seconds of the camera's return.
    Soon,
    /// Something failed that does not heal at once (a camera process that crashed, a
    /// refused password, an unsupported codec): wait longer each time, up to half a minute.
    Later,
}

impl SourceError {
    /// A [`SourceError::Lost`].
    pub fn lost(input: impl Into<String>, why: impl Into<String>, retry: Retry) -> SourceError {
        SourceError::Lost {
            input: input.into(),
            why: why.into(),
            retry,
        }
    }
}

pub trait Source: Send {
    /// The next frame, `Ok(None)` at the end of the input. After an error the source may
    /// be asked again: a source that can resynchronise (skip to the next keyframe) does so.
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;

    /// A live source (camera, generator, live pipe) loses frames if it waits for the
    /// writer; a file does not and may simply be read later.
    fn is_live(&self) -> bool;

    /// Human-readable name for logs ("test pattern 640x360@30", "file clip.h264", ...).
    fn describe(&self) -> String;
}

/// Opens a lost camera again (the same process, device or URL).
pub type Reopen = Box<dyn FnMut() -> Result<Box<dyn Source>, SourceError> + Send>;

/// What `--source` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// Synthetic MJPEG test pattern.
    TestPattern,
    /// An H.264 Annex-B or MJPEG file.
    File(PathBuf),
    /// The same from standard input.
    Stdin,
    /// The Pi camera module through a supervised `rpicam-vid` (`[camera]` settings).
    Rpicam,
    /// A V4L2 capture device such as `/dev/video0`.
    V4l2(PathBuf),
    /// An RTSP camera; its URL may carry credentials, which [`redact::RtspUrl`] never prints.
    Rtsp(redact::RtspUrl),
}

impl SourceSpec {
    pub fn parse(s: &str) -> Result<SourceSpec, String> {
        match s {
            "test" => Ok(SourceSpec::TestPattern),
            "-" => Ok(SourceSpec::Stdin),
            "rpicam" => Ok(SourceSpec::Rpicam),
            _ if s.starts_with("rtsp://") || s.starts_with("rtsps://") => {
                redact::RtspUrl::parse(s).map(SourceSpec::Rtsp)
            }
            _ => {
                if let Some(p) = s.strip_prefix("file:").filter(|p| !p.is_empty()) {
                    return Ok(SourceSpec::File(PathBuf::from(p)));
                }
                if let Some(p) = s.strip_prefix("v4l2:").filter(|p| !p.is_empty()) {
                    return Ok(SourceSpec::V4l2(PathBuf::from(p)));
                }
                Err(format!(
                    "unknown source {:?}: expected \"test\", \"file:PATH\", \"-\", \"rpicam\", \"v4l2:/dev/videoN\" or \"rtsp://[user@]host[:port]/path\"",
                    redact::redact_source(s)
                ))
            }
        }
    }

    /// A camera: it may go away and come back, and is opened again when it does.
    pub fn is_camera(&self) -> bool {
        matches!(
            self,
            SourceSpec::Rpicam | SourceSpec::V4l2(_) | SourceSpec::Rtsp(_)
        )
    }
}
