//! Where frames come from. Every camera, file or generator is a [`Source`].
//!
//! A source runs on the capture thread. It produces frames in decode order with their
//! times on the stream clock, paced in real time unless it is a file read with `--fast`.
//! It never writes files and never blocks on the writer: handing frames over is the
//! capture loop's job (`recorder::capture`).

pub mod annexb;
mod font;
pub mod h264_access_units;
pub mod h264_stream;
pub mod mjpeg_stream;
pub mod open;
pub mod pacing;
pub mod test_pattern;

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

/// What `--source` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// Synthetic MJPEG test pattern.
    TestPattern,
    /// An H.264 Annex-B or MJPEG file.
    File(PathBuf),
    /// The same from standard input.
    Stdin,
}

impl SourceSpec {
    pub fn parse(s: &str) -> Result<SourceSpec, String> {
        match s {
            "test" => Ok(SourceSpec::TestPattern),
            "-" => Ok(SourceSpec::Stdin),
            _ => match s.strip_prefix("file:") {
                Some(p) if !p.is_empty() => Ok(SourceSpec::File(PathBuf::from(p))),
                _ => Err(format!(
                    "unknown source {s:?}: expected \"test\", \"file:PATH\" or \"-\""
                )),
            },
        }
    }
}
