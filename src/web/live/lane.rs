//! One viewer's queue ([`Lane`]): what the hub offers a viewer and what it does when the
//! viewer cannot keep up. A bounded channel to the viewer's thread; the hub never waits
//! on it. When it is full the fragment is skipped, and so is everything after it up to
//! the next keyframe that fits (a picture missing its reference could not be decoded): a
//! slow viewer jumps ahead a GOP instead of buffering without bound. A viewer whose init
//! segment is of another format gets the current one before the next keyframe.
//!
//! It owns that rule only; the hub decides what to offer, the viewer thread sends.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use super::fmp4::{Fragment, Init};

/// What a viewer's thread sends, in order.
#[derive(Debug)]
pub(crate) enum Out {
    Init(Arc<Init>),
    Fragment(Bytes),
    /// A JPEG and its capture time.
    Jpeg(Bytes, SystemTime),
}

/// What became of an offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offered {
    Queued,
    Skipped,
    /// The viewer's thread has ended.
    Gone,
}

#[derive(Debug)]
pub(crate) struct Lane {
    tx: Sender<Out>,
    /// Skipping until a keyframe that fits.
    skipping: bool,
    /// The generation of the init segment this viewer has (0: none).
    generation: u32,
    pub(crate) skipped: u64,
}

impl Lane {
    /// A lane of `capacity` items and the viewer's end of it.
    pub(crate) fn new(capacity: usize) -> (Lane, Receiver<Out>) {
        let (tx, rx) = bounded(capacity.max(2));
        (
            Lane {
                tx,
                skipping: true,
                generation: 0,
                skipped: 0,
            },
            rx,
        )
    }

    fn room(&self) -> usize {
        self.tx
            .capacity()
            .unwrap_or(usize::MAX)
            .saturating_sub(self.tx.len())
    }

    /// A new viewer: the init segment and the fragments since the latest keyframe (`gop`,
    /// starting with it) when they fit, else it starts at the next keyframe.
    pub(crate) fn start(&mut self, init: &Arc<Init>, gop: &[Fragment]) -> Offered {
        let current = gop.first().is_some_and(|f| f.keyframe)
            && gop.iter().all(|f| f.generation == init.generation);
        if !current || self.room() < gop.len() + 1 {
            return Offered::Skipped;
        }
        if self.tx.try_send(Out::Init(init.clone())).is_err() {
            return Offered::Gone;
        }
        self.generation = init.generation;
        for f in gop {
            if self.tx.try_send(Out::Fragment(f.bytes.clone())).is_err() {
                self.skipping = true;
                return Offered::Skipped;
            }
        }
        self.skipping = false;
        Offered::Queued
    }

    /// Offer the next fragment (of `init`'s format).
    pub(crate) fn offer(&mut self, init: &Arc<Init>, f: &Fragment) -> Offered {
        if f.generation != self.generation || self.skipping {
            if !f.keyframe {
                self.skip()
            } else if f.generation != self.generation {
                if self.room() < 2 || f.generation != init.generation {
                    return self.skip();
                }
                match self.tx.try_send(Out::Init(init.clone())) {
                    Ok(()) => {
                        self.generation = init.generation;
                        self.send(Out::Fragment(f.bytes.clone()))
                    }
                    Err(e) => self.failed(e),
                }
            } else {
                self.send(Out::Fragment(f.bytes.clone()))
            }
        } else {
            self.send(Out::Fragment(f.bytes.clone()))
        }
    }

    /// Offer a JPEG (every one stands alone).
    pub(crate) fn offer_jpeg(&mut self, jpeg: &Bytes, wall: SystemTime) -> Offered {
        self.send(Out::Jpeg(jpeg.clone(), wall))
    }

    fn send(&mut self, out: Out) -> Offered {
        match self.tx.try_send(out) {
            Ok(()) => {
                self.skipping = false;
                Offered::Queued
            }
            Err(e) => self.failed(e),
        }
    }

    fn failed(&mut self, e: TrySendError<Out>) -> Offered {
        match e {
            TrySendError::Full(_) => self.skip(),
            TrySendError::Disconnected(_) => Offered::Gone,
        }
    }

    fn skip(&mut self) -> Offered {
        self.skipping = true;
        self.skipped += 1;
        Offered::Skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::live::fmp4::{init_segment, tests::format};
    use std::time::SystemTime;

    fn init(generation: u32) -> Arc<Init> {
        Arc::new(init_segment(&format(), generation).expect("init"))
    }

    fn frag(generation: u32, n: u8, keyframe: bool) -> Fragment {
        Fragment {
            generation,
            keyframe,
            bytes: Bytes::from(vec![n]),
            ticks: 3000,
            wall: SystemTime::now(),
        }
    }

    fn drain(rx: &Receiver<Out>) -> Vec<String> {
        rx.try_iter()
            .map(|o| match o {
                Out::Init(i) => format!("init{}", i.generation),
                Out::Fragment(b) => format!("f{}", b[0]),
                Out::Jpeg(b, _) => format!("j{}", b[0]),
            })
            .collect()
    }

    #[test]
    fn a_new_viewer_starts_at_the_latest_keyframe() {
        let i = init(1);
        let (mut lane, rx) = Lane::new(8);
        let gop = [frag(1, 10, true), frag(1, 11, false)];
        assert_eq!(lane.start(&i, &gop), Offered::Queued);
        assert_eq!(lane.offer(&i, &frag(1, 12, false)), Offered::Queued);
        assert_eq!(drain(&rx), ["init1", "f10", "f11", "f12"]);
        // A GOP that does not fit: wait for the next keyframe, then init and keyframe.
        let (mut lane, rx) = Lane::new(2);
        let gop = [frag(1, 10, true), frag(1, 11, false), frag(1, 12, false)];
        assert_eq!(lane.start(&i, &gop), Offered::Skipped);
        assert_eq!(lane.offer(&i, &frag(1, 13, false)), Offered::Skipped);
        assert_eq!(lane.offer(&i, &frag(1, 14, true)), Offered::Queued);
        assert_eq!(drain(&rx), ["init1", "f14"]);
    }

    #[test]
    fn a_slow_viewer_skips_to_the_next_keyframe() {
        let i = init(1);
        let (mut lane, rx) = Lane::new(3);
        assert_eq!(lane.start(&i, &[frag(1, 0, true)]), Offered::Queued);
        assert_eq!(lane.offer(&i, &frag(1, 1, false)), Offered::Queued);
        assert_eq!(lane.offer(&i, &frag(1, 2, false)), Offered::Skipped, "full");
        assert_eq!(drain(&rx), ["init1", "f0", "f1"]);
        // Room again, but no keyframe yet: still skipping.
        assert_eq!(lane.offer(&i, &frag(1, 3, false)), Offered::Skipped);
        assert_eq!(lane.offer(&i, &frag(1, 4, true)), Offered::Queued);
        assert_eq!(lane.offer(&i, &frag(1, 5, false)), Offered::Queued);
        assert_eq!(drain(&rx), ["f4", "f5"]);
        assert_eq!(lane.skipped, 2);
    }

    #[test]
    fn a_new_format_sends_its_init_before_its_first_keyframe() {
        let (i1, i2) = (init(1), init(2));
        let (mut lane, rx) = Lane::new(8);
        lane.start(&i1, &[frag(1, 0, true)]);
        assert_eq!(lane.offer(&i2, &frag(2, 1, false)), Offered::Skipped);
        assert_eq!(lane.offer(&i2, &frag(2, 2, true)), Offered::Queued);
        assert_eq!(drain(&rx), ["init1", "f0", "init2", "f2"]);
    }

    #[test]
    fn a_viewer_gone_is_said() {
        let i = init(1);
        let (mut lane, rx) = Lane::new(4);
        drop(rx);
        assert_eq!(
            lane.offer_jpeg(&Bytes::from_static(b"x"), SystemTime::now()),
            Offered::Gone
        );
        assert_eq!(lane.offer(&i, &frag(1, 0, true)), Offered::Gone);
    }
}
