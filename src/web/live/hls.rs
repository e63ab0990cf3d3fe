//! The HLS fallback (iPhones without Media Source Extensions): the most recent live
//! fragments in RAM, grouped into media segments of one GOP each (keyframe to keyframe),
//! and the fMP4 playlist that names them (RFC 8216: `#EXT-X-MAP` for the init segment,
//! one `#EXTINF` per segment, `#EXT-X-DISCONTINUITY` where the format or the timeline
//! changes). A segment is the concatenation of its frames' fragments, byte for byte what
//! the WebSocket viewers get; URLs are relative to the playlist (`live/…`).
//!
//! Pure: fragments in, text and bytes out. It holds at most [`KEEP`] complete segments
//! plus the one being built, and only while an HLS client asks (the hub clears it when
//! none has for a while).

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::fmp4::{Fragment, Init};
use crate::frame::TIMESCALE;

/// Complete segments kept (Safari starts three target durations from the end).
pub(crate) const KEEP: usize = 4;

/// One media segment: the fragments of one GOP.
#[derive(Debug)]
pub(crate) struct Segment {
    pub sequence: u64,
    pub init: Arc<Init>,
    /// A discontinuity precedes it (another format, or a gap in the timeline).
    pub discontinuity: bool,
    pub fragments: Vec<Bytes>,
    pub ticks: u64,
    pub wall: SystemTime,
}

impl Segment {
    pub(crate) fn len(&self) -> usize {
        self.fragments.iter().map(Bytes::len).sum()
    }

    /// The segment's bytes in one buffer.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for f in &self.fragments {
            out.extend_from_slice(f);
        }
        out
    }
}

#[derive(Debug, Default)]
pub(crate) struct HlsRing {
    done: VecDeque<Segment>,
    building: Option<Segment>,
    next_sequence: u64,
    /// Discontinuities that left the playlist with their segments (the one before the
    /// first segment listed is not written, so it counts as left).
    discontinuity_sequence: u64,
    /// The next segment follows a gap.
    gap: bool,
    /// Largest segment duration so far, whole seconds (the target duration only grows).
    target: u64,
}

impl HlsRing {
    /// Add the next fragment (of `init`'s format). A keyframe closes the segment being
    /// built and starts the next; fragments before the first keyframe are left out.
    pub(crate) fn add(&mut self, init: &Arc<Init>, f: &Fragment) {
        let other_format = self
            .building
            .as_ref()
            .is_some_and(|b| b.init.generation != f.generation);
        if f.keyframe || other_format {
            self.close_building();
        }
        if self.building.is_none() {
            if !f.keyframe || init.generation != f.generation {
                return;
            }
            let previous = self.done.back().map(|s| s.init.generation);
            let discontinuity = self.gap || previous.is_some_and(|g| g != f.generation);
            self.gap = false;
            self.building = Some(Segment {
                sequence: self.next_sequence,
                init: init.clone(),
                discontinuity,
                fragments: Vec::new(),
                ticks: 0,
                wall: f.wall,
            });
            self.next_sequence += 1;
        }
        if let Some(b) = self.building.as_mut() {
            b.fragments.push(f.bytes.clone());
            b.ticks += u64::from(f.ticks);
        }
    }

    fn close_building(&mut self) {
        let Some(b) = self.building.take() else {
            return;
        };
        self.target = self
            .target
            .max(b.ticks.div_ceil(u64::from(TIMESCALE)).max(1));
        self.done.push_back(b);
        while self.done.len() > KEEP {
            if let Some(old) = self.done.pop_front() {
                if old.discontinuity {
                    self.discontinuity_sequence += 1;
                }
            }
        }
    }

    /// The frames handed over have a gap (or the view stopped): the segment being built is
    /// dropped and the next one is marked as a discontinuity.
    pub(crate) fn gap(&mut self) {
        if self.building.take().is_some() || !self.done.is_empty() {
            self.gap = true;
        }
    }

    /// Forget everything (nobody asks any more); sequence numbers keep counting.
    pub(crate) fn clear(&mut self) {
        self.building = None;
        while let Some(old) = self.done.pop_front() {
            if old.discontinuity {
                self.discontinuity_sequence += 1;
            }
        }
        self.gap = true;
    }

    /// Complete segments held.
    pub(crate) fn ready(&self) -> usize {
        self.done.len()
    }

    pub(crate) fn segment(&self, sequence: u64) -> Option<&Segment> {
        self.done.iter().find(|s| s.sequence == sequence)
    }

    /// The init segment of a generation still named by the playlist.
    pub(crate) fn init(&self, generation: u32) -> Option<Arc<Init>> {
        self.done
            .iter()
            .chain(self.building.iter())
            .find(|s| s.init.generation == generation)
            .map(|s| s.init.clone())
    }

    /// The playlist text, or `None` while no segment is complete.
    pub(crate) fn playlist(&self) -> Option<String> {
        let first = self.done.front()?;
        let mut p = String::with_capacity(160 + 120 * self.done.len());
        p.push_str("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        let _ = writeln!(p, "#EXT-X-TARGETDURATION:{}", self.target.max(1));
        let _ = writeln!(p, "#EXT-X-MEDIA-SEQUENCE:{}", first.sequence);
        let _ = writeln!(
            p,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            self.discontinuity_sequence + u64::from(first.discontinuity)
        );
        let mut generation = None;
        for s in &self.done {
            if s.discontinuity && generation.is_some() {
                p.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if generation != Some(s.init.generation) {
                generation = Some(s.init.generation);
                let _ = writeln!(p, "#EXT-X-MAP:URI=\"live/init-{}.mp4\"", s.init.generation);
            }
            let wall: DateTime<Utc> = s.wall.into();
            let _ = writeln!(
                p,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                wall.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
            let _ = writeln!(
                p,
                "#EXTINF:{:.3},\nlive/{}.m4s",
                s.ticks as f64 / f64::from(TIMESCALE),
                s.sequence
            );
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::live::fmp4::{init_segment, tests::format};
    use std::time::{Duration, UNIX_EPOCH};

    fn init(generation: u32) -> Arc<Init> {
        Arc::new(init_segment(&format(), generation).expect("init"))
    }

    fn frag(generation: u32, i: u64, keyframe: bool) -> Fragment {
        Fragment {
            generation,
            keyframe,
            bytes: Bytes::from(vec![i as u8; 10]),
            ticks: 3000,
            wall: UNIX_EPOCH + Duration::from_secs(1_800_000_000 + i),
        }
    }

    #[test]
    fn segments_are_gops_and_the_playlist_names_them() {
        let i1 = init(1);
        let mut r = HlsRing::default();
        r.add(&i1, &frag(1, 0, false)); // before the first keyframe: left out
        for n in 0..(30 * 3 + 1) {
            r.add(&i1, &frag(1, n + 1, n % 30 == 0));
        }
        assert_eq!(r.ready(), 3);
        let p = r.playlist().expect("playlist");
        assert!(p.starts_with("#EXTM3U\n"), "{p}");
        assert!(p.contains("#EXT-X-TARGETDURATION:1\n"), "{p}");
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{p}");
        assert_eq!(
            p.matches("#EXT-X-MAP:URI=\"live/init-1.mp4\"").count(),
            1,
            "{p}"
        );
        assert_eq!(p.matches("#EXTINF:1.000,").count(), 3, "{p}");
        assert!(p.contains("live/2.m4s") && !p.contains("live/3.m4s"), "{p}");
        assert!(!p.contains("DISCONTINUITY\n"), "{p}");
        let s = r.segment(1).expect("segment 1");
        assert_eq!(s.fragments.len(), 30);
        assert_eq!(s.bytes().len(), 300);
        assert!(r.init(1).is_some() && r.init(2).is_none());
    }

    #[test]
    fn old_segments_leave_and_a_new_format_is_a_discontinuity() {
        let (i1, i2) = (init(1), init(2));
        let mut r = HlsRing::default();
        for n in 0..(KEEP as u64 + 3) {
            r.add(&i1, &frag(1, n, true));
        }
        assert_eq!(r.ready(), KEEP);
        r.add(&i2, &frag(2, 100, true));
        r.add(&i2, &frag(2, 101, true));
        let p = r.playlist().expect("playlist");
        assert!(
            p.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"live/init-2.mp4\""),
            "{p}"
        );
        assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0"), "{p}");
        // The discontinuity leaves with its segment: the sequence counts it.
        for n in 0..(KEEP as u64 + 1) {
            r.add(&i2, &frag(2, 200 + n, true));
        }
        let p = r.playlist().expect("playlist");
        assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1"), "{p}");
        assert!(!p.contains("init-1"), "{p}");
        r.clear();
        assert!(r.playlist().is_none());
        r.add(&i2, &frag(2, 300, true));
        r.add(&i2, &frag(2, 301, true));
        let s = r.done.front().expect("one");
        assert!(s.discontinuity, "after a clear the timeline jumps");
        assert!(s.sequence > 10, "sequence numbers keep counting");
    }
}
