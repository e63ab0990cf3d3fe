//! The hand-off of frames from the recorder to the live view ([`LiveTap`]).
//!
//! The writer offers each frame right after the muxer has taken its bytes
//! ([`LiveTap::offer`]). Nobody watching: one relaxed atomic load, and the frame goes
//! back to the writer untouched (its buffer then returns to the [`BufferPool`] as
//! before): no copy, no allocation, no lock. Someone watching: the frame itself (its
//! buffer, not a copy) moves into a bounded queue with `try_send`; when the queue is full
//! the frame is handed back and counted as dropped for the viewers, never for the file.
//! The live side gives the buffer back to the recorder's pool when done
//! ([`LiveTap::recycle`]).
//!
//! It also keeps the current stream format (set by the writer when it changes, a pointer
//! compare per frame), so the web role can say what the camera sends while nobody
//! watches. It sits below the recorder and the web role so that both can hold it; it
//! never starts a thread, never blocks and never decides anything about viewers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::frame::{BufferPool, Frame, StreamFormat};

/// The one hand-off between the writer and the live view. See the module doc.
#[derive(Debug)]
pub struct LiveTap {
    /// Someone watches: the writer offers frames.
    wanted: AtomicBool,
    tx: Sender<Frame>,
    rx: Receiver<Frame>,
    /// Frames handed over, and frames the full queue sent back (dropped for the view).
    passed: AtomicU64,
    dropped: AtomicU64,
    /// The format of the frames the writer is pushing now (changes rarely).
    format: Mutex<Option<Arc<StreamFormat>>>,
    /// The recorder's buffer pool of the current run, where the live side returns
    /// buffers.
    pool: Mutex<Option<BufferPool>>,
}

impl LiveTap {
    /// A tap whose queue holds at most `capacity` frames.
    pub fn new(capacity: usize) -> LiveTap {
        let (tx, rx) = bounded(capacity.max(1));
        LiveTap {
            wanted: AtomicBool::new(false),
            tx,
            rx,
            passed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            format: Mutex::new(None),
            pool: Mutex::new(None),
        }
    }

    /// Whether frames are wanted now (one relaxed load).
    #[inline]
    pub fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    /// Live side: start or stop wanting frames.
    pub fn set_wanted(&self, on: bool) {
        self.wanted.store(on, Ordering::Relaxed);
    }

    /// Writer: hand `frame` to the live view. `Err(frame)`: not taken (nobody watches, or
    /// the queue is full); the caller keeps it (gives its buffer back to its pool).
    #[inline]
    pub fn offer(&self, frame: Frame) -> Result<(), Frame> {
        if !self.wanted() {
            return Err(frame);
        }
        match self.tx.try_send(frame) {
            Ok(()) => {
                self.passed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(f)) | Err(TrySendError::Disconnected(f)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Err(f)
            }
        }
    }

    /// Live side: the queue of frames handed over.
    pub fn frames(&self) -> &Receiver<Frame> {
        &self.rx
    }

    /// Writer: the format of the frame being pushed; stored when it is another one than
    /// the last (a pointer compare, the lock only on a change).
    #[inline]
    pub fn note_format(&self, format: &Arc<StreamFormat>, last: &mut Option<Arc<StreamFormat>>) {
        if last.as_ref().is_some_and(|l| Arc::ptr_eq(l, format)) {
            return;
        }
        *last = Some(format.clone());
        if let Ok(mut f) = self.format.lock() {
            *f = Some(format.clone());
        }
    }

    /// The format the writer pushes now, if it has pushed any.
    pub fn format(&self) -> Option<Arc<StreamFormat>> {
        self.format.lock().ok().and_then(|f| f.clone())
    }

    /// Writer: where the live side returns frame buffers (the run's pool).
    pub fn set_pool(&self, pool: BufferPool) {
        if let Ok(mut p) = self.pool.lock() {
            *p = Some(pool);
        }
    }

    /// Live side: give a frame buffer back to the recorder.
    pub fn recycle(&self, buffer: Vec<u8>) {
        if let Ok(p) = self.pool.lock() {
            if let Some(pool) = p.as_ref() {
                pool.give(buffer);
            }
        }
    }

    /// Frames handed over and frames dropped for the view since the start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.passed.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Codec;
    use std::time::{Instant, SystemTime};

    fn frame(format: &Arc<StreamFormat>) -> Frame {
        Frame {
            data: vec![1, 2, 3],
            keyframe: true,
            pts: 0,
            dts: 0,
            captured: Instant::now(),
            wall: SystemTime::now(),
            format: format.clone(),
            dropped_before: 0,
        }
    }

    fn format() -> Arc<StreamFormat> {
        Arc::new(StreamFormat {
            codec: Codec::Mjpeg,
            width: 64,
            height: 48,
            frame_rate: Some((30, 1)),
            sps: Vec::new(),
            pps: Vec::new(),
        })
    }

    #[test]
    fn nobody_watching_hands_the_same_buffer_back() {
        let tap = LiveTap::new(2);
        let f = frame(&format());
        let ptr = f.data.as_ptr();
        let back = tap.offer(f).expect_err("not wanted");
        assert_eq!(back.data.as_ptr(), ptr, "the very buffer, not a copy");
        assert_eq!(tap.counts(), (0, 0), "nothing counted when nobody watches");
        assert!(tap.frames().is_empty());
    }

    #[test]
    fn a_full_queue_drops_for_the_view_only() {
        let tap = LiveTap::new(2);
        let fmt = format();
        tap.set_wanted(true);
        let f = frame(&fmt);
        let ptr = f.data.as_ptr();
        assert!(tap.offer(f).is_ok());
        assert!(tap.offer(frame(&fmt)).is_ok());
        assert!(tap.offer(frame(&fmt)).is_err(), "full: handed back");
        assert_eq!(tap.counts(), (2, 1));
        let got = tap.frames().try_recv().expect("queued");
        assert_eq!(got.data.as_ptr(), ptr, "moved, not copied");
    }

    #[test]
    fn the_format_is_stored_on_change_only() {
        let tap = LiveTap::new(1);
        assert!(tap.format().is_none());
        let a = format();
        let mut last = None;
        tap.note_format(&a, &mut last);
        assert!(Arc::ptr_eq(&tap.format().expect("set"), &a));
        let b = format();
        tap.note_format(&b, &mut last);
        assert!(Arc::ptr_eq(&tap.format().expect("set"), &b));
    }

    #[test]
    fn buffers_go_back_to_the_pool() {
        let tap = LiveTap::new(1);
        let pool = BufferPool::new(2);
        tap.set_pool(pool.clone());
        let mut v = Vec::with_capacity(100);
        v.push(1u8);
        let ptr = v.as_ptr();
        tap.recycle(v);
        let again = pool.take();
        assert_eq!(again.as_ptr(), ptr);
    }
}
