//! The small public surface that integration tests (`tests/`) and fuzz targets use to drive
//! the containers without the binary: create a segment writer, push frames, read a segment
//! back. Hidden from the docs; not an API for anything else, it changes with the code.

pub use crate::frame::{Codec, Frame, StreamFormat, TIMESCALE};
pub use crate::mux::{create, MuxError, MuxSummary, ReadAt, ReadError, SegmentMuxer};

/// The fragmented MP4 reader (never panics, whatever the bytes).
pub mod mp4 {
    pub use crate::mux::mp4::{read, Mp4File};
}

/// The AVI reader (never panics, whatever the bytes).
pub mod avi {
    pub use crate::mux::avi::{read, AviFile};
}
