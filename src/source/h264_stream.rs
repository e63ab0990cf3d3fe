//! An H.264 Annex-B elementary stream from any reader (file, pipe, stdin) as a [`Source`].
//!
//! It owns the reader, the NAL splitter and the access-unit assembler, and gives every
//! frame its time on the stream clock: decode times advance one frame interval per access
//! unit (the SPS timing, else the configured rate) and presentation times follow the
//! picture order count, so B-frames keep their display order. It paces frames in real time
//! unless told not to. It never blocks on anything but its reader and its pacer.

use std::io::Read;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use log::warn;

use crate::frame::{BufferPool, Frame, StreamFormat, TIMESCALE};
use crate::source::annexb::{AnnexBError, AnnexBReader};
use crate::source::h264_access_units::{AccessUnit, AccessUnitAssembler, Pushed, StreamError};
use crate::source::pacing::Pacer;
use crate::source::{Source, SourceError};

pub struct H264Stream {
    name: String,
    nals: AnnexBReader<Box<dyn Read + Send>>,
    assembler: AccessUnitAssembler,
    pacer: Pacer,
    live: bool,
    /// AVCC bytes of the access unit being built, and of the next one while it starts.
    au: Vec<u8>,
    next_au: Vec<u8>,
    /// Access units emitted so far (decode index of the next one).
    decode_index: i64,
    /// Decode index of the last IDR.
    idr_index: i64,
    /// Rate of the format used for the last frame (num, den).
    rate: (u32, u32),
    /// Decode time of frame 0 of the current rate, and its index, so a rate change does not
    /// make time jump.
    rate_origin: (i64, i64),
    pool: Option<BufferPool>,
    ended: bool,
    warned_garbage: bool,
    reported_skipped: u64,
}

impl H264Stream {
    /// `default_rate` (num, den) applies when the SPS has no timing information.
    pub fn new(
        reader: Box<dyn Read + Send>,
        name: String,
        default_rate: (u32, u32),
        pace: bool,
        live: bool,
    ) -> H264Stream {
        H264Stream {
            name,
            nals: AnnexBReader::new(reader),
            assembler: AccessUnitAssembler::new(default_rate),
            pacer: Pacer::new(pace),
            live,
            au: Vec::with_capacity(256 * 1024),
            next_au: Vec::new(),
            decode_index: 0,
            idr_index: 0,
            rate: default_rate,
            rate_origin: (0, 0),
            pool: None,
            ended: false,
            warned_garbage: false,
            reported_skipped: 0,
        }
    }

    /// Take frame buffers from `pool` (which the writer refills) instead of allocating.
    pub fn with_pool(mut self, pool: BufferPool) -> H264Stream {
        self.pool = Some(pool);
        self
    }

    /// Stream time in ticks of decode index `index` at the current rate. In i128: with an
    /// SPS rate such as 4294967291/4294967279 the product overflows i64 after ~24000 frames.
    fn ticks_at(&self, index: i64) -> i64 {
        let (num, den) = self.rate;
        let (origin_ticks, origin_index) = self.rate_origin;
        let frames = i128::from(index) - i128::from(origin_index);
        let ticks = (frames * i128::from(TIMESCALE) * i128::from(den))
            .div_euclid(i128::from(num.max(1)))
            + i128::from(origin_ticks);
        i64::try_from(ticks).unwrap_or(if ticks < 0 { i64::MIN } else { i64::MAX })
    }

    fn make_frame(&mut self, unit: AccessUnit, data: Vec<u8>) -> Frame {
        self.apply_rate(&unit.format);
        let index = self.decode_index;
        self.decode_index += 1;
        if unit.keyframe {
            self.idr_index = index;
        }
        let dts = self.ticks_at(index);
        let pts = match unit.display_index_in_gop {
            Some(display) => self.ticks_at(self.idr_index + display),
            None => dts,
        };
        self.pacer.wait_for(dts);
        Frame {
            data,
            keyframe: unit.keyframe,
            pts,
            dts,
            captured: Instant::now(),
            wall: SystemTime::now(),
            format: unit.format,
            dropped_before: 0,
        }
    }

    fn apply_rate(&mut self, format: &Arc<StreamFormat>) {
        let Some(rate) = format.frame_rate.filter(|(n, d)| *n > 0 && *d > 0) else {
            return;
        };
        if rate != self.rate {
            let now = self.ticks_at(self.decode_index);
            self.rate_origin = (now, self.decode_index);
            self.rate = rate;
        }
    }

    fn corrupt(&self, e: StreamError) -> SourceError {
        SourceError::Corrupt {
            input: self.name.clone(),
            offset: e.offset,
            what: e.what,
        }
    }

    fn report_skipped(&mut self) {
        let skipped = self.assembler.skipped_pictures();
        if skipped > self.reported_skipped {
            warn!(
                "{}: skipped {} picture(s) that cannot be decoded alone (no parameter sets or IDR before them, or a broken slice header)",
                self.name,
                skipped - self.reported_skipped
            );
            self.reported_skipped = skipped;
        }
    }
}

impl Source for H264Stream {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if let Some(e) = self.assembler.take_error() {
            return Err(self.corrupt(e));
        }
        if self.ended {
            return Ok(None);
        }
        loop {
            if !self.warned_garbage && self.nals.leading_garbage() > 0 {
                self.warned_garbage = true;
                warn!(
                    "{}: skipped {} bytes before the first start code",
                    self.name,
                    self.nals.leading_garbage()
                );
            }
            let nal = match self.nals.next_nal() {
                Ok(Some(nal)) => nal,
                Ok(None) => {
                    self.ended = true;
                    let last = self.assembler.flush();
                    self.report_skipped();
                    return Ok(last.map(|unit| {
                        let data = std::mem::take(&mut self.au);
                        self.make_frame(unit, data)
                    }));
                }
                Err(AnnexBError::Io(source)) => {
                    self.ended = true;
                    return Err(SourceError::Io {
                        input: self.name.clone(),
                        source,
                    });
                }
                Err(e @ AnnexBError::NoStartCode { .. }) => {
                    self.ended = true;
                    return Err(SourceError::Unsupported {
                        input: self.name.clone(),
                        what: e.to_string(),
                    });
                }
                Err(AnnexBError::NalTooLarge { offset, limit }) => {
                    self.ended = true;
                    return Err(SourceError::Corrupt {
                        input: self.name.clone(),
                        offset,
                        what: format!("NAL unit larger than {limit} bytes (corrupt stream?)"),
                    });
                }
            };
            let offset = nal.offset;
            // The NAL bytes borrow the reader's buffer; the assembler copies them.
            let bytes: &[u8] = nal.bytes;
            let pushed = self
                .assembler
                .push(bytes, offset, &mut self.au, &mut self.next_au);
            match pushed {
                Ok(Pushed::Added) => {}
                Ok(Pushed::Completed(unit)) => {
                    self.report_skipped();
                    let fresh = self.pool.as_ref().map(BufferPool::take).unwrap_or_default();
                    let next = std::mem::replace(&mut self.next_au, fresh);
                    let data = std::mem::replace(&mut self.au, next);
                    return Ok(Some(self.make_frame(unit, data)));
                }
                Err(e) => return Err(self.corrupt(e)),
            }
            if let Some(e) = self.assembler.take_error() {
                return Err(self.corrupt(e));
            }
        }
    }

    fn is_live(&self) -> bool {
        self.live
    }

    fn describe(&self) -> String {
        format!("H.264 stream {}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_do_not_overflow_at_an_odd_rate() {
        let mut s = H264Stream::new(
            Box::new(std::io::empty()),
            "t".into(),
            (30, 1),
            false,
            false,
        );
        // Coprime num and den near u32::MAX (about 1 fps): frames * 90000 * den passes
        // i64::MAX after ~23900 frames.
        s.rate = (4_294_967_291, 4_294_967_279);
        assert_eq!(s.ticks_at(0), 0);
        let t = s.ticks_at(1_000_000);
        assert!((89_999_000_000..=90_000_000_000).contains(&t), "{t}");
        s.rate_origin = (i64::MAX - 10, 0);
        assert_eq!(s.ticks_at(1_000_000), i64::MAX);
        assert_eq!(s.ticks_at(0), i64::MAX - 10);
    }
}
