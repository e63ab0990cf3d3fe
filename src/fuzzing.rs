//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): every parser of outside
//! input, fed bytes, returning a summary that can be compared with `==`.
//!
//! Not part of dashcam's API (hidden from the docs): it exists because the parsers are
//! `pub(crate)` and the fuzz crate is outside. Stream parsers (Annex-B splitting, access-unit
//! grouping, the H.264 and MJPEG sources) read through [`Feed`], which hands the input over
//! in pieces of a chosen shape, with an `Interrupted` error at every piece boundary, so a
//! target can check that the result does not depend on how the bytes arrived. The file
//! readers (MP4, AVI) read the bytes from an in-memory file (`memfd`), never the disk; the
//! config loader takes the text. Nothing here panics on any input; the targets do the
//! asserting. It must never be used by the recorder itself.

#![doc(hidden)]

use std::io::{ErrorKind, Read};

use crate::frame::Frame;
use crate::source::annexb::AnnexBReader;
use crate::source::h264_access_units::{AccessUnitAssembler, Pushed};
use crate::source::h264_stream::H264Stream;
use crate::source::mjpeg_stream::MjpegStream;
use crate::source::Source;

/// Frame rate given to the stream parsers for input without timing.
const DEFAULT_RATE: (u32, u32) = (30, 1);

/// How the input reaches a stream parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// All of it in one read (as far as the parser's buffer takes it).
    Whole,
    /// Two pieces: bytes `..n`, then the rest.
    SplitAt(usize),
    /// Pieces of `n` bytes (`Every(1)`: one byte per read).
    Every(usize),
}

/// A reader that gives `data` in the pieces `feed` says, with one `Interrupted` error
/// between pieces (readers must retry those transparently).
struct Pieces {
    data: Vec<u8>,
    feed: Feed,
    pos: usize,
    interrupt: bool,
}

impl Pieces {
    fn new(data: &[u8], feed: Feed) -> Self {
        Pieces {
            data: data.to_vec(),
            feed,
            pos: 0,
            interrupt: false,
        }
    }

    /// End of the piece that holds `pos`.
    fn piece_end(&self) -> usize {
        let len = self.data.len();
        match self.feed {
            Feed::Whole => len,
            Feed::SplitAt(n) if self.pos < n => n.min(len),
            Feed::SplitAt(_) => len,
            Feed::Every(n) => {
                let n = n.max(1);
                (self.pos / n + 1).saturating_mul(n).min(len)
            }
        }
    }
}

impl Read for Pieces {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.interrupt {
            self.interrupt = false;
            return Err(ErrorKind::Interrupted.into());
        }
        let end = self.piece_end();
        let n = (end - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        self.interrupt = self.pos == end && self.pos < self.data.len();
        Ok(n)
    }
}

/// Generous bound on the calls a parser may need for `len` bytes; more means it loops.
fn call_limit(len: usize) -> usize {
    2 * len + 16
}

/// One NAL unit as the Annex-B splitter gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nal {
    pub offset: u64,
    pub bytes: Vec<u8>,
    pub at_eof: bool,
}

/// What the Annex-B splitter made of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NalSplit {
    pub nals: Vec<Nal>,
    /// The error that ended the input early, as its message.
    pub error: Option<String>,
    /// Bytes skipped before the first start code.
    pub leading_garbage: u64,
}

/// Split `data` into NAL units ([`crate::source::annexb`]).
pub fn annexb(data: &[u8], feed: Feed) -> NalSplit {
    let mut reader = AnnexBReader::new(Pieces::new(data, feed));
    let mut nals = Vec::new();
    let mut error = None;
    for _ in 0..call_limit(data.len()) {
        match reader.next_nal() {
            Ok(Some(nal)) => nals.push(Nal {
                offset: nal.offset,
                bytes: nal.bytes.to_vec(),
                at_eof: nal.at_eof,
            }),
            Ok(None) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    NalSplit {
        nals,
        error,
        leading_garbage: reader.leading_garbage(),
    }
}

/// One access unit as the assembler made it, or an error it reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessUnitEvent {
    Unit {
        /// Input offset of its first NAL unit.
        offset: u64,
        keyframe: bool,
        display_index_in_gop: Option<i64>,
        width: u32,
        height: u32,
        /// Its NAL units, AVCC (4-byte lengths).
        avcc: Vec<u8>,
    },
    Error {
        offset: u64,
        what: String,
    },
}

/// What the access-unit assembler made of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnits {
    pub events: Vec<AccessUnitEvent>,
    /// The splitter error that ended the input early.
    pub split_error: Option<String>,
    /// Pictures dropped because they cannot be decoded alone.
    pub skipped: u64,
}

/// Split `data` into NAL units and group them into access units
/// ([`crate::source::h264_access_units`]), as the H.264 source does but without timing.
pub fn access_units(data: &[u8], feed: Feed) -> AccessUnits {
    let mut reader = AnnexBReader::new(Pieces::new(data, feed));
    let mut assembler = AccessUnitAssembler::new(DEFAULT_RATE);
    let (mut au, mut next_au) = (Vec::new(), Vec::new());
    let mut events = Vec::new();
    let mut split_error = None;
    let unit =
        |u: crate::source::h264_access_units::AccessUnit, avcc: Vec<u8>| AccessUnitEvent::Unit {
            offset: u.offset,
            keyframe: u.keyframe,
            display_index_in_gop: u.display_index_in_gop,
            width: u.format.width,
            height: u.format.height,
            avcc,
        };
    let error = |e: crate::source::h264_access_units::StreamError| AccessUnitEvent::Error {
        offset: e.offset,
        what: e.what,
    };
    for _ in 0..call_limit(data.len()) {
        let nal = match reader.next_nal() {
            Ok(Some(nal)) => nal,
            Ok(None) => {
                if let Some(u) = assembler.flush() {
                    events.push(unit(u, std::mem::take(&mut au)));
                }
                break;
            }
            Err(e) => {
                split_error = Some(e.to_string());
                break;
            }
        };
        match assembler.push(nal.bytes, nal.offset, &mut au, &mut next_au) {
            Ok(Pushed::Added) => {}
            Ok(Pushed::Completed(u)) => {
                let done = std::mem::replace(&mut au, std::mem::take(&mut next_au));
                events.push(unit(u, done));
            }
            Err(e) => events.push(error(e)),
        }
        if let Some(e) = assembler.take_error() {
            events.push(error(e));
        }
    }
    AccessUnits {
        events,
        split_error,
        skipped: assembler.skipped_pictures(),
    }
}

/// One frame a source delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSummary {
    pub data: Vec<u8>,
    pub keyframe: bool,
    pub pts: i64,
    pub dts: i64,
    pub width: u32,
    pub height: u32,
}

impl From<Frame> for FrameSummary {
    fn from(f: Frame) -> Self {
        FrameSummary {
            keyframe: f.keyframe,
            pts: f.pts,
            dts: f.dts,
            width: f.format.width,
            height: f.format.height,
            data: f.data,
        }
    }
}

/// Every result of `next_frame` until the end (errors as their messages). A source that
/// has not ended after [`call_limit`] calls gets the last entry `Err("does not end")`.
fn drain(mut source: impl Source, len: usize) -> Vec<Result<FrameSummary, String>> {
    let mut out = Vec::new();
    for _ in 0..call_limit(len) {
        match source.next_frame() {
            Ok(Some(f)) => out.push(Ok(f.into())),
            Ok(None) => return out,
            Err(e) => out.push(Err(e.to_string())),
        }
    }
    out.push(Err("does not end".into()));
    out
}

/// The H.264 source ([`crate::source::h264_stream`]: splitting, grouping, timing) on `data`,
/// unpaced.
pub fn h264_frames(data: &[u8], feed: Feed) -> Vec<Result<FrameSummary, String>> {
    let reader = Box::new(Pieces::new(data, feed));
    let stream = H264Stream::new(reader, "fuzz".into(), DEFAULT_RATE, false, false);
    drain(stream, data.len())
}

/// The MJPEG source ([`crate::source::mjpeg_stream`]) on `data`, unpaced.
pub fn mjpeg_frames(data: &[u8], feed: Feed) -> Vec<Result<FrameSummary, String>> {
    let reader = Box::new(Pieces::new(data, feed));
    let stream = MjpegStream::new(reader, "fuzz".into(), DEFAULT_RATE, false, false);
    drain(stream, data.len())
}

/// One sample (frame) of a container file, as its reader found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleSummary {
    /// File offset and size of the frame's bytes.
    pub offset: u64,
    pub size: u32,
    /// MP4: decode time, duration, sync flag, composition offset; AVI: 0, 0, true, 0.
    pub dts: u64,
    pub duration: u32,
    pub sync: bool,
    pub cto: i32,
}

/// What a container reader found in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSummary {
    pub width: u32,
    pub height: u32,
    /// MP4: one entry per complete fragment; AVI: one entry holding every chunk.
    pub groups: Vec<Vec<SampleSummary>>,
    /// End of the last complete fragment or chunk.
    pub complete_end: u64,
    /// The writer finished the file (index present and consistent).
    pub finished: bool,
    /// MP4: file offsets of the 8-byte duration fields (and the edit list's) that recovery
    /// rewrites; AVI: none.
    pub patch_fields: Vec<u64>,
}

/// The MP4 segment reader on `data` (it reads bytes as it reads a file).
pub fn mp4(data: &[u8]) -> Result<ContainerSummary, String> {
    let f = crate::mux::mp4::read(data).map_err(|e| e.to_string())?;
    let groups = f
        .fragments
        .iter()
        .map(|frag| {
            frag.samples()
                .map(|s| SampleSummary {
                    offset: s.offset,
                    size: s.size,
                    dts: s.dts,
                    duration: s.duration,
                    sync: s.sync,
                    cto: s.cto,
                })
                .collect()
        })
        .collect();
    let l = &f.layout;
    let mut patch_fields = vec![l.mvhd_duration, l.tkhd_duration, l.mdhd_duration];
    patch_fields.extend(l.edts);
    patch_fields.extend(l.mehd);
    Ok(ContainerSummary {
        width: f.width(),
        height: f.height(),
        groups,
        complete_end: f.complete_end,
        finished: f.finished,
        patch_fields,
    })
}

/// The AVI segment reader on `data`.
pub fn avi(data: &[u8]) -> Result<ContainerSummary, String> {
    let f = crate::mux::avi::read(data).map_err(|e| e.to_string())?;
    let chunks = f
        .chunks
        .iter()
        .map(|c| SampleSummary {
            offset: c.offset,
            size: c.size,
            dts: 0,
            duration: 0,
            sync: true,
            cto: 0,
        })
        .collect();
    Ok(ContainerSummary {
        width: f.width,
        height: f.height,
        groups: vec![chunks],
        complete_end: f.complete_end,
        finished: f.finished,
        patch_fields: Vec::new(),
    })
}

/// The config loader ([`crate::config::Config::from_toml`]) on `data`; `None` when it is
/// not UTF-8 (a config file is read as text before it is parsed).
pub fn config(data: &[u8]) -> Option<Result<crate::config::Config, crate::config::ConfigError>> {
    let text = std::str::from_utf8(data).ok()?;
    Some(crate::config::Config::from_toml(text, "fuzz.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(data: &[u8], feed: Feed) -> Vec<Result<Vec<u8>, ErrorKind>> {
        let mut r = Pieces::new(data, feed);
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return out,
                Ok(n) => out.push(Ok(buf[..n].to_vec())),
                Err(e) => out.push(Err(e.kind())),
            }
        }
    }

    #[test]
    fn feeds_cut_where_they_say_with_an_interruption_between_pieces() {
        let data = [1, 2, 3, 4, 5];
        assert_eq!(pieces(&data, Feed::Whole), vec![Ok(data.to_vec())]);
        let i = Err(ErrorKind::Interrupted);
        assert_eq!(
            pieces(&data, Feed::SplitAt(2)),
            vec![Ok(vec![1, 2]), i.clone(), Ok(vec![3, 4, 5])]
        );
        assert_eq!(pieces(&data, Feed::SplitAt(0)), vec![Ok(data.to_vec())]);
        assert_eq!(pieces(&data, Feed::SplitAt(5)), vec![Ok(data.to_vec())]);
        assert_eq!(
            pieces(&data, Feed::Every(2)),
            vec![Ok(vec![1, 2]), i.clone(), Ok(vec![3, 4]), i, Ok(vec![5])]
        );
        assert_eq!(pieces(&[], Feed::Every(1)), vec![]);
    }

    #[test]
    fn entry_points_report_on_empty_and_tiny_input() {
        assert_eq!(annexb(&[], Feed::Whole).nals, vec![]);
        let split = annexb(&[0, 0, 1, 0x09, 0xf0], Feed::Every(1));
        assert_eq!(
            split.nals,
            vec![Nal {
                offset: 3,
                bytes: vec![0x09, 0xf0],
                at_eof: true
            }]
        );
        // An IDR slice without parameter sets: its header cannot be read.
        let units = access_units(&[0, 0, 1, 0x65, 0x88], Feed::Whole);
        assert!(
            matches!(
                &units.events[..],
                [AccessUnitEvent::Error { offset: 3, .. }]
            ),
            "{units:?}"
        );
        assert!(h264_frames(&[], Feed::Whole).is_empty());
        assert_eq!(mjpeg_frames(&[], Feed::Whole).len(), 1); // "no JPEG image"
        assert!(mp4(&[0; 64]).is_err());
        assert!(avi(b"RIFF").is_err());
        assert!(config(b"fps = 25").is_some_and(|c| c.is_ok_and(|c| c.fps == 25)));
        assert!(config(&[0xff]).is_none());
    }
}
