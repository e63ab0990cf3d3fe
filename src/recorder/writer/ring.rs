//! Frames kept in RAM while the footage drive cannot be written (full, gone, read-only).
//!
//! A [`Ring`] holds the newest frames, always starting at a keyframe so that the segment
//! the writer opens with them on resume decodes alone. It is bounded in bytes and in
//! capture time: when a frame would pass either bound, the oldest GOP makes way and its
//! frames are handed back to the caller to be counted as dropped. Pure data: it never
//! touches a file, a clock or the buffer pool.

use std::collections::VecDeque;
use std::time::Duration;

use crate::frame::Frame;

pub(crate) struct Ring {
    frames: VecDeque<Frame>,
    bytes: usize,
    max_bytes: usize,
    max_age: Duration,
}

impl Ring {
    pub(crate) fn new(max_bytes: usize, max_age: Duration) -> Ring {
        Ring {
            frames: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_age,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// Keep `frame` as the newest. A frame that cannot start the buffer (not a keyframe,
    /// buffer empty) and every frame evicted to stay within the bounds go to `evicted`.
    pub(crate) fn push(&mut self, frame: Frame, evicted: &mut VecDeque<Frame>) {
        if self.frames.is_empty() && !frame.keyframe {
            evicted.push_back(frame);
            return;
        }
        self.bytes += frame.data.len();
        self.frames.push_back(frame);
        while self.bytes > self.max_bytes || self.too_old() {
            self.evict_gop(evicted);
        }
    }

    /// Put back a frame taken with [`Ring::pop`] that could not be written after all. A
    /// frame that is not a keyframe goes to `evicted`, with what depends on it up to the
    /// next keyframe, so that the buffer still starts at a keyframe.
    pub(crate) fn put_back(&mut self, frame: Frame, evicted: &mut VecDeque<Frame>) {
        if frame.keyframe {
            self.bytes += frame.data.len();
            self.frames.push_front(frame);
            return;
        }
        evicted.push_back(frame);
        while self.frames.front().is_some_and(|f| !f.keyframe) {
            self.pop_into(evicted);
        }
    }

    /// The oldest frame, to be written now.
    pub(crate) fn pop(&mut self) -> Option<Frame> {
        let frame = self.frames.pop_front()?;
        self.bytes = self.bytes.saturating_sub(frame.data.len());
        Some(frame)
    }

    /// Everything, to be counted as lost.
    pub(crate) fn drain_into(&mut self, evicted: &mut VecDeque<Frame>) {
        self.bytes = 0;
        evicted.extend(self.frames.drain(..));
    }

    fn too_old(&self) -> bool {
        match (self.frames.front(), self.frames.back()) {
            (Some(a), Some(b)) => b.captured.saturating_duration_since(a.captured) > self.max_age,
            _ => false,
        }
    }

    /// Drop the oldest frame and everything after it up to the next keyframe.
    fn evict_gop(&mut self, evicted: &mut VecDeque<Frame>) {
        self.pop_into(evicted);
        while self.frames.front().is_some_and(|f| !f.keyframe) {
            self.pop_into(evicted);
        }
    }

    fn pop_into(&mut self, evicted: &mut VecDeque<Frame>) {
        if let Some(f) = self.pop() {
            evicted.push_back(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Codec, StreamFormat};
    use std::sync::Arc;
    use std::time::{Instant, SystemTime};

    fn frame(i: u64, keyframe: bool, bytes: usize, t0: Instant) -> Frame {
        Frame {
            data: vec![0; bytes],
            keyframe,
            pts: i as i64 * 3000,
            dts: i as i64 * 3000,
            captured: t0 + Duration::from_millis(i * 100),
            wall: SystemTime::UNIX_EPOCH,
            format: Arc::new(StreamFormat {
                codec: Codec::H264,
                width: 16,
                height: 16,
                frame_rate: Some((10, 1)),
                sps: Vec::new(),
                pps: Vec::new(),
            }),
            dropped_before: 0,
        }
    }

    fn dts(ring: &mut Ring) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some(f) = ring.pop() {
            out.push(f.dts / 3000);
        }
        out
    }

    #[test]
    fn starts_at_a_keyframe_and_evicts_whole_gops() {
        let t0 = Instant::now();
        let mut ring = Ring::new(10 * 100, Duration::from_secs(60));
        let mut evicted = VecDeque::new();
        ring.push(frame(0, false, 100, t0), &mut evicted);
        assert_eq!(ring.len(), 0);
        assert_eq!(evicted.len(), 1, "a P-frame cannot start the buffer");
        evicted.clear();
        // GOPs of 4: keyframes at 1, 5, 9.
        for i in 1..=12 {
            ring.push(frame(i, (i - 1) % 4 == 0, 100, t0), &mut evicted);
        }
        // 12 frames of 100 bytes into 1000: the first GOP (1..=4) made way.
        let gone: Vec<i64> = evicted.iter().map(|f| f.dts / 3000).collect();
        assert_eq!(gone, vec![1, 2, 3, 4]);
        assert_eq!(ring.len(), 8);
        assert_eq!(dts(&mut ring), (5..=12).collect::<Vec<_>>());
    }

    #[test]
    fn bounded_in_time() {
        let t0 = Instant::now();
        // 100 ms per frame, 1 s kept.
        let mut ring = Ring::new(usize::MAX, Duration::from_secs(1));
        let mut evicted = VecDeque::new();
        for i in 0..30 {
            ring.push(frame(i, i % 5 == 0, 10, t0), &mut evicted);
        }
        assert!(ring.len() <= 11, "{}", ring.len());
        let kept = dts(&mut ring);
        assert_eq!(kept[0] % 5, 0, "starts at a keyframe: {kept:?}");
        assert_eq!(*kept.last().expect("frames"), 29);
        assert_eq!(evicted.len() + kept.len(), 30);
    }

    #[test]
    fn put_back_keeps_the_keyframe_rule() {
        let t0 = Instant::now();
        let mut ring = Ring::new(usize::MAX, Duration::from_secs(60));
        let mut evicted = VecDeque::new();
        for i in 0..8 {
            ring.push(frame(i, i % 4 == 0, 10, t0), &mut evicted);
        }
        let first = ring.pop().expect("frame 0");
        let second = ring.pop().expect("frame 1");
        // Frame 1 could not be written: it and the rest of its GOP go, frame 4 leads.
        ring.put_back(second, &mut evicted);
        assert_eq!(
            evicted.iter().map(|f| f.dts / 3000).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        ring.put_back(first, &mut evicted);
        assert_eq!(dts(&mut ring), vec![0, 4, 5, 6, 7]);
    }
}
