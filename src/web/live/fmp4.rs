//! The live view's fragmented MP4, cut in memory from the same access units the writer
//! records: an init segment (`ftyp` + `moov` with the stream's `avcC`) per stream format,
//! then one fragment per frame (`prft` + `moof` + `mdat`), so a viewer is never more than
//! a frame behind what the camera sent.
//!
//! Every box, and the init segment the recorded files start with, comes from
//! [`crate::mux::mp4::boxes`] (the one layout of each box); this file
//! only decides the live timeline. Pure: frames in, bytes out, no I/O; the only clock read
//! is the init segment's creation time.
//!
//! Timeline: one 90 kHz track, decode time = the frame's dts minus the first dts of the
//! format, plus [`LEAD`] so that B-frame presentation times never go negative. A frame is
//! held until the next one arrives, so its duration is the exact dts difference (a live
//! fragment cannot know it otherwise): the view is one frame later than the camera. A new
//! format (a new SPS: another resolution) starts a new init segment and a new timeline;
//! after a gap in the frames handed over, the next fragment waits for a keyframe.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::frame::{Codec, Frame, StreamFormat, TIMESCALE};
use crate::mux::mp4::boxes::{self, InitSegment, Moof, Mp4Box, Prft, TrunSample};

/// Media time of the first frame of each format (1 s), so presentation times stay positive.
pub(crate) const LEAD: u64 = TIMESCALE as u64;

/// The init segment of one stream format.
#[derive(Debug)]
pub(crate) struct Init {
    /// Counts formats since the start: a viewer that has another one needs this init.
    pub generation: u32,
    pub bytes: Bytes,
    /// The RFC 6381 codec of the track (`avc1.PPCCLL`).
    pub codec: String,
    pub width: u32,
    pub height: u32,
}

/// One frame as a fragment.
#[derive(Clone, Debug)]
pub(crate) struct Fragment {
    pub generation: u32,
    pub keyframe: bool,
    pub bytes: Bytes,
    /// Its duration, ticks.
    pub ticks: u32,
    /// The wall-clock time of its capture.
    pub wall: SystemTime,
}

/// What one frame in gives out.
#[derive(Debug)]
pub(crate) enum Cut {
    Init(Arc<Init>),
    Fragment(Fragment),
}

/// A frame waiting for its successor (which fixes its duration).
struct Held {
    frame: Frame,
    /// Its decode time on the live timeline.
    decode: u64,
}

/// Frames of one H.264 stream → init segments and fragments. See the module doc.
pub(crate) struct LiveMuxer {
    format: Option<Arc<StreamFormat>>,
    /// The current format cannot be put in an MP4 (its error, said once).
    refused: Option<String>,
    generation: u32,
    origin_dts: i64,
    /// `origin_dts` is the first dts of the current format.
    origin_set: bool,
    /// Decode time right after the last fragment given out.
    decode_end: u64,
    /// `mfhd` sequence number of the next fragment.
    sequence: u32,
    /// No fragment until a keyframe (start, a new format, a gap).
    need_keyframe: bool,
    held: Option<Held>,
    /// Nominal frame duration of the format (the last frame before a gap or a new format).
    frame_ticks: i64,
}

impl LiveMuxer {
    pub(crate) fn new() -> LiveMuxer {
        LiveMuxer {
            format: None,
            refused: None,
            generation: 0,
            origin_dts: 0,
            origin_set: false,
            decode_end: 0,
            sequence: 1,
            need_keyframe: true,
            held: None,
            frame_ticks: i64::from(TIMESCALE / 30),
        }
    }

    /// Why the current format cannot be shown, if it cannot.
    pub(crate) fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// Take one H.264 frame; what it yields goes to `out`. Buffers done with are put in
    /// `spent` (to go back to the recorder's pool).
    pub(crate) fn push(&mut self, frame: Frame, out: &mut Vec<Cut>, spent: &mut Vec<Vec<u8>>) {
        let same = self
            .format
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(f, &frame.format) || **f == *frame.format);
        if !same {
            self.release(spent);
            self.start_format(&frame.format, out);
        }
        if self.refused.is_some() || (self.need_keyframe && !frame.keyframe) {
            spent.push(frame.data);
            return;
        }
        // The first frame of a format, or the first after a gap: its decode time follows
        // the stream (a gap stays a gap), never before what was given out.
        self.need_keyframe = false;
        let mut decode = self.decode_time(frame.dts);
        if let Some(prev) = &self.held {
            if decode <= prev.decode {
                // The stream's clock went back: one nominal frame after the previous.
                decode = prev.decode + self.frame_ticks as u64;
            }
        }
        if let Some(prev) = self.held.take() {
            let ticks = decode.saturating_sub(prev.decode);
            out.push(Cut::Fragment(self.fragment(prev, ticks, spent)));
        }
        self.held = Some(Held { frame, decode });
    }

    /// Frames were lost before the next one (or the view stopped): drop the held frame
    /// and wait for a keyframe. The init segment stays.
    pub(crate) fn resync(&mut self, spent: &mut Vec<Vec<u8>>) {
        self.release(spent);
        self.need_keyframe = true;
    }

    fn release(&mut self, spent: &mut Vec<Vec<u8>>) {
        if let Some(h) = self.held.take() {
            spent.push(h.frame.data);
        }
    }

    fn start_format(&mut self, format: &Arc<StreamFormat>, out: &mut Vec<Cut>) {
        self.format = Some(format.clone());
        self.need_keyframe = true;
        self.frame_ticks = format.frame_ticks().max(1);
        self.origin_dts = 0;
        self.decode_end = 0;
        self.origin_set = false;
        match init_segment(format, self.generation + 1) {
            Ok(init) => {
                self.refused = None;
                self.generation += 1;
                out.push(Cut::Init(Arc::new(init)));
            }
            Err(e) => self.refused = Some(e),
        }
    }

    /// The live decode time of a frame with stream decode time `dts`.
    fn decode_time(&mut self, dts: i64) -> u64 {
        if !self.origin_set {
            self.origin_set = true;
            self.origin_dts = dts;
        }
        let t = u64::try_from(dts.saturating_sub(self.origin_dts)).unwrap_or(0) + LEAD;
        t.max(self.decode_end)
    }

    fn fragment(&mut self, held: Held, ticks: u64, spent: &mut Vec<Vec<u8>>) -> Fragment {
        let Held { frame, decode } = held;
        let ticks = if ticks == 0 || ticks > 10 * TIMESCALE as u64 {
            // Not increasing, or across a gap: a nominal frame.
            self.frame_ticks as u64
        } else {
            ticks
        };
        let ticks = u32::try_from(ticks).unwrap_or(u32::MAX);
        let shown = frame
            .pts
            .saturating_sub(self.origin_dts)
            .saturating_add(LEAD as i64)
            .max(0);
        let cto = shown.saturating_sub(i64::try_from(decode).unwrap_or(i64::MAX));
        let cto = i32::try_from(cto.clamp(i64::from(i32::MIN), i64::from(i32::MAX))).unwrap_or(0);
        let size = u32::try_from(frame.data.len()).unwrap_or(u32::MAX);
        let payload = frame.data.len() as u64;
        let mdat_header = boxes::mdat_header_size(payload);
        let moof_size = Moof::size_for(1);
        let mut moof = Moof {
            sequence: self.sequence,
            base_decode_time: decode,
            data_offset: i32::try_from(moof_size + mdat_header).unwrap_or(i32::MAX),
            samples: vec![TrunSample {
                duration: ticks,
                size,
                flags: if frame.keyframe {
                    boxes::SAMPLE_FLAGS_SYNC
                } else {
                    boxes::SAMPLE_FLAGS_NON_SYNC
                },
                cto,
            }],
        };
        let mut buf = Vec::with_capacity((Prft::SIZE + moof_size + mdat_header + payload) as usize);
        Prft {
            flags: boxes::PRFT_ENCODER_OUTPUT,
            reference_track_id: boxes::TRACK_ID,
            ntp_timestamp: boxes::to_ntp(frame.wall),
            media_time: u64::try_from(shown).unwrap_or(0),
        }
        .write(&mut buf);
        moof.write(&mut buf);
        moof.samples.clear();
        boxes::write_mdat_header(&mut buf, payload);
        buf.extend_from_slice(&frame.data);
        self.sequence = self.sequence.wrapping_add(1).max(1);
        self.decode_end = decode + u64::from(ticks);
        let f = Fragment {
            generation: self.generation,
            keyframe: frame.keyframe,
            bytes: Bytes::from(buf),
            ticks,
            wall: frame.wall,
        };
        spent.push(frame.data);
        f
    }
}

/// The init segment of `format` (H.264 only); the error says why not.
pub(crate) fn init_segment(format: &StreamFormat, generation: u32) -> Result<Init, String> {
    if format.codec != Codec::H264 {
        return Err(format!("{} is not H.264", format.codec.name()));
    }
    let init = InitSegment::h264(format, SystemTime::now())?;
    let codec = format!(
        "avc1.{:02x}{:02x}{:02x}",
        format.sps[1], format.sps[2], format.sps[3]
    );
    Ok(Init {
        generation,
        bytes: Bytes::from(init.bytes),
        codec,
        width: init.width,
        height: init.height,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mux::mp4::boxes::{child, children, Moov};
    use std::time::{Duration, Instant, UNIX_EPOCH};

    /// SPS/PPS of a 640x360 High-profile libx264 stream.
    pub(crate) const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xb4, 0x05, 0x01, 0x7f, 0xcb, 0x80, 0x88, 0x00, 0x00, 0x03,
        0x00, 0x08, 0x00, 0x00, 0x03, 0x01, 0xe0, 0x78, 0xb1, 0x75,
    ];
    pub(crate) const PPS: &[u8] = &[0x68, 0xef, 0x0f, 0xcb];

    pub(crate) fn format() -> Arc<StreamFormat> {
        Arc::new(StreamFormat {
            codec: Codec::H264,
            width: 640,
            height: 360,
            frame_rate: Some((30, 1)),
            sps: SPS.to_vec(),
            pps: vec![PPS.to_vec()],
        })
    }

    pub(crate) fn frame(format: &Arc<StreamFormat>, i: i64, keyframe: bool) -> Frame {
        let mut data = vec![0, 0, 0, 5, if keyframe { 0x65 } else { 0x41 }];
        data.extend_from_slice(&[i as u8; 4]);
        Frame {
            data,
            keyframe,
            pts: 1000 + i * 3000,
            dts: 1000 + i * 3000,
            captured: Instant::now(),
            wall: UNIX_EPOCH
                + Duration::from_secs(1_800_000_000)
                + Duration::from_millis(i as u64 * 33),
            format: format.clone(),
            dropped_before: 0,
        }
    }

    fn moof_of(bytes: &[u8]) -> (Prft, Moof, &[u8]) {
        let all: Vec<_> = children(bytes).collect();
        assert_eq!(
            all.iter().map(|b| b.kind).collect::<Vec<_>>(),
            vec![*b"prft", *b"moof", *b"mdat"]
        );
        let prft = Prft::read(all[0].body).expect("prft");
        let moof = Moof::read(all[1].body).expect("moof");
        (prft, moof, all[2].body)
    }

    #[test]
    fn init_then_one_fragment_per_frame_with_exact_durations() {
        let fmt = format();
        let mut m = LiveMuxer::new();
        let (mut out, mut spent) = (Vec::new(), Vec::new());
        m.push(frame(&fmt, 0, false), &mut out, &mut spent);
        assert!(
            matches!(out.as_slice(), [Cut::Init(_)]),
            "init, no fragment before a keyframe"
        );
        assert_eq!(spent.len(), 1, "the non-keyframe's buffer goes back");
        let Some(Cut::Init(init)) = out.pop() else {
            unreachable!()
        };
        assert_eq!(init.codec, "avc1.64001e");
        assert_eq!((init.width, init.height), (640, 360));
        let kinds: Vec<_> = children(&init.bytes).map(|b| b.kind).collect();
        assert_eq!(kinds, vec![*b"ftyp", *b"moov"]);
        let moov = child(&init.bytes, b"moov").expect("moov");
        let (moov, _) = Moov::read_with_layout(moov.body).expect("our moov");
        assert_eq!(moov.avc1.avcc.sps, SPS);

        m.push(frame(&fmt, 1, true), &mut out, &mut spent);
        assert!(out.is_empty(), "held until the next frame");
        m.push(frame(&fmt, 2, false), &mut out, &mut spent);
        m.push(frame(&fmt, 4, false), &mut out, &mut spent);
        assert_eq!(out.len(), 2);
        let frags: Vec<Fragment> = out
            .drain(..)
            .map(|c| match c {
                Cut::Fragment(f) => f,
                Cut::Init(_) => panic!("no second init"),
            })
            .collect();
        assert!(frags[0].keyframe && !frags[1].keyframe);
        let (prft, moof, mdat) = moof_of(&frags[0].bytes);
        assert_eq!(moof.base_decode_time, LEAD);
        assert_eq!(moof.samples[0].duration, 3000);
        assert!(moof.samples[0].is_sync());
        assert_eq!(moof.samples[0].cto, 0);
        assert_eq!(prft.media_time, LEAD);
        assert_eq!(
            boxes::from_ntp(prft.ntp_timestamp),
            frame(&fmt, 1, true).wall
        );
        assert_eq!(mdat, &frame(&fmt, 1, true).data[..]);
        let data_at = frags[0].bytes.len() - mdat.len();
        assert_eq!(moof.data_offset as usize, data_at - Prft::SIZE as usize);
        let (_, moof2, _) = moof_of(&frags[1].bytes);
        assert_eq!(moof2.base_decode_time, LEAD + 3000);
        assert_eq!(
            moof2.samples[0].duration, 6000,
            "up to the next frame's dts"
        );
        assert_eq!(moof2.sequence, moof.sequence + 1);
        assert_eq!(spent.len(), 3);
    }

    #[test]
    fn a_new_format_is_a_new_init_and_timeline_and_waits_for_a_keyframe() {
        let a = format();
        let mut m = LiveMuxer::new();
        let (mut out, mut spent) = (Vec::new(), Vec::new());
        for i in 0..3 {
            m.push(frame(&a, i, i == 0), &mut out, &mut spent);
        }
        out.clear();
        let mut other = (*a).clone();
        other.width = 320;
        let b = Arc::new(other);
        m.push(frame(&b, 100, false), &mut out, &mut spent);
        assert!(matches!(out.as_slice(), [Cut::Init(i)] if i.generation == 2 && i.width == 320));
        out.clear();
        m.push(frame(&b, 101, true), &mut out, &mut spent);
        m.push(frame(&b, 102, false), &mut out, &mut spent);
        let Some(Cut::Fragment(f)) = out.pop() else {
            panic!("a fragment")
        };
        assert_eq!(f.generation, 2);
        let (_, moof, _) = moof_of(&f.bytes);
        assert_eq!(moof.base_decode_time, LEAD, "the new timeline starts again");
    }

    #[test]
    fn a_gap_waits_for_the_next_keyframe_and_time_never_goes_back() {
        let a = format();
        let mut m = LiveMuxer::new();
        let (mut out, mut spent) = (Vec::new(), Vec::new());
        for i in 0..3 {
            m.push(frame(&a, i, i == 0), &mut out, &mut spent);
        }
        out.clear();
        m.resync(&mut spent);
        m.push(frame(&a, 5, false), &mut out, &mut spent);
        assert!(out.is_empty());
        m.push(frame(&a, 6, true), &mut out, &mut spent);
        // A camera whose clock went back: decode times still increase.
        let mut back = frame(&a, 2, false);
        back.dts = 0;
        back.pts = 0;
        m.push(back, &mut out, &mut spent);
        m.push(frame(&a, 8, false), &mut out, &mut spent);
        let times: Vec<u64> = out
            .iter()
            .map(|c| match c {
                Cut::Fragment(f) => moof_of(&f.bytes).1.base_decode_time,
                Cut::Init(_) => panic!("same format"),
            })
            .collect();
        assert_eq!(times.len(), 2);
        assert_eq!(times[0], LEAD + 6 * 3000);
        assert!(times[1] > times[0], "{times:?}");
    }

    #[test]
    fn a_format_that_cannot_be_an_mp4_is_refused_once() {
        let mut bad = (*format()).clone();
        bad.sps = vec![0x67, 1];
        let bad = Arc::new(bad);
        let mut m = LiveMuxer::new();
        let (mut out, mut spent) = (Vec::new(), Vec::new());
        m.push(frame(&bad, 0, true), &mut out, &mut spent);
        m.push(frame(&bad, 1, false), &mut out, &mut spent);
        assert!(out.is_empty());
        assert!(m.refused().is_some());
        assert_eq!(spent.len(), 2);
    }
}
