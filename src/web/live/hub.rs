//! The hub: one thread that takes the frames the recorder hands over ([`LiveTap`]) and
//! shares them out: H.264 cut into live fragments ([`super::fmp4`]) for the WebSocket
//! viewers (the latest GOP kept for newcomers) and the HLS ring ([`super::hls`]) while an
//! HLS client asks; MJPEG frames at the capped preview rate ([`super::cap`]) for the
//! MJPEG viewers. Each viewer gets its own bounded lane ([`super::lane`]): the hub never
//! waits on a viewer.
//!
//! It owns the registry of viewers and the "anyone watching?" switch of the tap: on while
//! a viewer is registered or an HLS client asked within [`HLS_LEASE`], off otherwise (and
//! then everything held is dropped). Frame buffers go back to the recorder's pool once
//! their bytes are copied into a fragment or a preview. It never touches a socket: the
//! viewer threads ([`super::ws`], [`super::mjpeg`]) send.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use log::{debug, warn};

use super::cap::RateCap;
use super::fmp4::{Cut, Fragment, Init, LiveMuxer};
use super::hls::HlsRing;
use super::lane::{Lane, Offered, Out};
use crate::frame::{Codec, Frame};
use crate::state::live::LiveTap;

/// An HLS client counts as watching this long after its last request.
pub(crate) const HLS_LEASE: Duration = Duration::from_secs(12);
/// Frames captured longer ago than this are not shown (frames the writer held in RAM
/// while the drive was away come in a burst when it is back).
const STALE: Duration = Duration::from_secs(2);
/// Items a WebSocket viewer may have queued (about 3 s at 30 fps).
const WS_LANE: usize = 90;
/// JPEGs an MJPEG viewer may have queued.
const MJPEG_LANE: usize = 2;
/// The latest GOP kept for newcomers, at most (a longer GOP: they wait for a keyframe).
const GOP_MAX: usize = WS_LANE - 1;
/// How often the hub looks at leases when no frame comes.
const TICK: Duration = Duration::from_millis(200);

/// What a viewer receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// fMP4 fragments over a WebSocket.
    Fragments,
    /// JPEGs at the preview rate.
    Jpegs,
}

struct Viewer {
    id: u64,
    kind: Kind,
    lane: Lane,
    /// The viewer's socket, to shut it down when the web role stops.
    socket: Option<TcpStream>,
}

#[derive(Default)]
struct Counters {
    viewers_total: AtomicU64,
    timeouts_total: AtomicU64,
    skipped_total: AtomicU64,
}

struct State {
    muxer: LiveMuxer,
    init: Option<Arc<Init>>,
    /// The fragments since the latest keyframe.
    gop: Vec<Fragment>,
    viewers: Vec<Viewer>,
    next_id: u64,
    hls: HlsRing,
    hls_until: Option<Instant>,
    cap: RateCap,
    /// When the last frame was taken, and the codec of the frames lately.
    last_frame: Option<Instant>,
    codec: Option<Codec>,
    /// The tap's dropped count last seen (a change is a gap).
    dropped_seen: u64,
    wanted: bool,
}

/// Shared between the hub thread, the web workers and the viewer threads.
pub(crate) struct Hub {
    pub(crate) tap: Arc<LiveTap>,
    state: Mutex<State>,
    /// Signalled when an HLS segment completes (playlist requests wait for one).
    hls_ready: Condvar,
    pub(crate) stop: AtomicBool,
    pub(crate) max_viewers: usize,
    counters: Counters,
}

/// The numbers the page and the tests see.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub codec: Option<Codec>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub viewers: usize,
    /// Since the last frame the hub took (only known while someone watches).
    pub picture_age: Option<Duration>,
    pub hls_segments: usize,
    pub viewers_total: u64,
    pub timeouts_total: u64,
    pub skipped_total: u64,
    /// Frames handed over and frames dropped at the hand-off (for the view only).
    pub handed_over: u64,
    pub dropped_for_view: u64,
    /// Why the stream cannot be shown (a format MP4 cannot hold).
    pub refused: Option<String>,
}

/// Why a viewer was not let in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    TooMany { max: usize },
    Stopping,
}

impl Hub {
    pub(crate) fn new(tap: Arc<LiveTap>, max_viewers: usize, preview_fps: f64) -> Hub {
        Hub {
            tap,
            state: Mutex::new(State {
                muxer: LiveMuxer::new(),
                init: None,
                gop: Vec::new(),
                viewers: Vec::new(),
                next_id: 1,
                hls: HlsRing::default(),
                hls_until: None,
                cap: RateCap::new(preview_fps),
                last_frame: None,
                codec: None,
                dropped_seen: 0,
                wanted: false,
            }),
            hls_ready: Condvar::new(),
            stop: AtomicBool::new(false),
            max_viewers,
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The hub thread: until [`Hub::stop`] is set.
    pub(crate) fn run(&self) {
        let frames: Receiver<Frame> = self.tap.frames().clone();
        let mut cuts = Vec::new();
        let mut spent = Vec::new();
        while !self.stop.load(Ordering::SeqCst) {
            match frames.recv_timeout(TICK) {
                Ok(frame) => self.take(frame, &mut cuts, &mut spent),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            {
                let mut st = self.lock();
                self.update_wanted(&mut st, &mut spent);
            }
            for b in spent.drain(..) {
                self.tap.recycle(b);
            }
        }
        let mut st = self.lock();
        st.viewers.clear();
        self.tap.set_wanted(false);
    }

    /// One frame from the recorder.
    fn take(&self, frame: Frame, cuts: &mut Vec<Cut>, spent: &mut Vec<Vec<u8>>) {
        let mut st = self.lock();
        if !st.wanted {
            spent.push(frame.data);
            return;
        }
        let now = Instant::now();
        let dropped = self.tap.counts().1;
        let gap = dropped != st.dropped_seen;
        st.dropped_seen = dropped;
        if now.saturating_duration_since(frame.captured) > STALE {
            st.muxer.resync(spent);
            st.hls.gap();
            spent.push(frame.data);
            return;
        }
        st.last_frame = Some(now);
        st.codec = Some(frame.format.codec);
        match frame.format.codec {
            Codec::Mjpeg => {
                let watched = st.viewers.iter().any(|v| v.kind == Kind::Jpegs);
                if watched && st.cap.due(frame.captured) {
                    let jpeg = Bytes::copy_from_slice(&frame.data);
                    for v in st.viewers.iter_mut().filter(|v| v.kind == Kind::Jpegs) {
                        if v.lane.offer_jpeg(&jpeg, frame.wall) == Offered::Skipped {
                            self.counters.skipped_total.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                spent.push(frame.data);
            }
            Codec::H264 => {
                if gap {
                    st.muxer.resync(spent);
                    st.hls.gap();
                }
                st.muxer.push(frame, cuts, spent);
                for cut in cuts.drain(..) {
                    self.share(&mut st, cut, now);
                }
            }
        }
    }

    fn share(&self, st: &mut State, cut: Cut, now: Instant) {
        let f = match cut {
            Cut::Init(init) => {
                debug!(
                    "live: {} {}x{} (format {})",
                    init.codec, init.width, init.height, init.generation
                );
                st.init = Some(init);
                st.gop.clear();
                return;
            }
            Cut::Fragment(f) => f,
        };
        let Some(init) = st.init.clone() else {
            return;
        };
        if f.keyframe || st.gop.len() >= GOP_MAX {
            st.gop.clear();
        }
        if f.keyframe || !st.gop.is_empty() {
            st.gop.push(f.clone());
        }
        if st.hls_until.is_some_and(|t| now < t) {
            let before = st.hls.ready();
            st.hls.add(&init, &f);
            if st.hls.ready() != before {
                self.hls_ready.notify_all();
            }
        }
        for v in st.viewers.iter_mut().filter(|v| v.kind == Kind::Fragments) {
            if v.lane.offer(&init, &f) == Offered::Skipped {
                self.counters.skipped_total.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Switch the tap on or off as viewers and leases say; off drops what is held.
    fn update_wanted(&self, st: &mut State, spent: &mut Vec<Vec<u8>>) {
        let now = Instant::now();
        if st.hls_until.is_some_and(|t| now >= t) {
            st.hls_until = None;
            st.hls.clear();
        }
        let wanted =
            !self.stop.load(Ordering::SeqCst) && (!st.viewers.is_empty() || st.hls_until.is_some());
        if wanted == st.wanted {
            return;
        }
        st.wanted = wanted;
        self.tap.set_wanted(wanted);
        if !wanted {
            st.muxer.resync(spent);
            st.gop.clear();
            st.hls.clear();
            st.cap.reset();
            st.last_frame = None;
            while let Ok(f) = self.tap.frames().try_recv() {
                spent.push(f.data);
            }
        }
        st.dropped_seen = self.tap.counts().1;
    }

    /// Register a viewer (a place among `max_viewers`) and its lane.
    pub(crate) fn join(&self, kind: Kind) -> Result<(u64, Receiver<Out>), Refused> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(Refused::Stopping);
        }
        let mut st = self.lock();
        if st.viewers.len() >= self.max_viewers {
            return Err(Refused::TooMany {
                max: self.max_viewers,
            });
        }
        let (mut lane, rx) = Lane::new(match kind {
            Kind::Fragments => WS_LANE,
            Kind::Jpegs => MJPEG_LANE,
        });
        if kind == Kind::Fragments {
            if let Some(init) = st.init.clone() {
                lane.start(&init, &st.gop);
            }
        }
        let id = st.next_id;
        st.next_id += 1;
        st.viewers.push(Viewer {
            id,
            kind,
            lane,
            socket: None,
        });
        self.counters.viewers_total.fetch_add(1, Ordering::Relaxed);
        let mut spent = Vec::new();
        self.update_wanted(&mut st, &mut spent);
        Ok((id, rx))
    }

    /// The viewer's socket, to be shut down if the web role stops first.
    pub(crate) fn attach_socket(&self, id: u64, socket: TcpStream) {
        let mut st = self.lock();
        if let Some(v) = st.viewers.iter_mut().find(|v| v.id == id) {
            v.socket = Some(socket);
        }
    }

    /// A viewer is done (closed, failed, timed out).
    pub(crate) fn leave(&self, id: u64, timed_out: bool) {
        if timed_out {
            self.counters.timeouts_total.fetch_add(1, Ordering::Relaxed);
        }
        let mut spent = Vec::new();
        {
            let mut st = self.lock();
            st.viewers.retain(|v| v.id != id);
            self.update_wanted(&mut st, &mut spent);
        }
        for b in spent {
            self.tap.recycle(b);
        }
    }

    /// Shut every viewer's socket down (the web role stops).
    pub(crate) fn shut_down_viewers(&self) {
        let mut st = self.lock();
        for v in st.viewers.iter_mut() {
            if let Some(s) = v.socket.take() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        st.viewers.clear();
    }

    /// An HLS request: keep the HLS ring filled for a while. Returns the playlist once at
    /// least `want` segments are complete, waiting at most `wait` (then what there is).
    pub(crate) fn playlist(&self, want: usize, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        let mut st = self.lock();
        self.lease(&mut st);
        loop {
            if st.hls.ready() >= want || self.stop.load(Ordering::SeqCst) {
                return st.hls.playlist();
            }
            let now = Instant::now();
            if now >= deadline {
                return st.hls.playlist();
            }
            let step = (deadline - now).min(Duration::from_millis(500));
            st = match self.hls_ready.wait_timeout(st, step) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    fn lease(&self, st: &mut State) {
        st.hls_until = Some(Instant::now() + HLS_LEASE);
        let mut spent = Vec::new();
        self.update_wanted(st, &mut spent);
        for b in spent {
            self.tap.recycle(b);
        }
    }

    /// The bytes of HLS segment `sequence`, while it is held.
    pub(crate) fn hls_segment(&self, sequence: u64) -> Option<Vec<u8>> {
        let mut st = self.lock();
        self.lease(&mut st);
        st.hls.segment(sequence).map(|s| s.bytes())
    }

    /// The init segment of a format the HLS playlist names.
    pub(crate) fn hls_init(&self, generation: u32) -> Option<Bytes> {
        let mut st = self.lock();
        self.lease(&mut st);
        st.hls
            .init(generation)
            .or_else(|| st.init.clone().filter(|i| i.generation == generation))
            .map(|i| i.bytes.clone())
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let format = self.tap.format();
        let st = self.lock();
        let (handed_over, dropped_for_view) = self.tap.counts();
        Snapshot {
            codec: format.as_ref().map(|f| f.codec).or(st.codec),
            width: format.as_ref().map(|f| f.width).filter(|&w| w > 0),
            height: format.as_ref().map(|f| f.height).filter(|&h| h > 0),
            viewers: st.viewers.len(),
            picture_age: st.last_frame.map(|t| t.elapsed()),
            hls_segments: st.hls.ready(),
            viewers_total: self.counters.viewers_total.load(Ordering::Relaxed),
            timeouts_total: self.counters.timeouts_total.load(Ordering::Relaxed),
            skipped_total: self.counters.skipped_total.load(Ordering::Relaxed),
            handed_over,
            dropped_for_view,
            refused: st.muxer.refused().map(str::to_string),
        }
    }

    /// When the last frame arrived, for a viewer's "no picture since" (None: none yet).
    pub(crate) fn picture_age(&self) -> Option<Duration> {
        self.lock().last_frame.map(|t| t.elapsed())
    }

    /// Log a viewer's end.
    pub(crate) fn ended(&self, id: u64, what: &str, why: &str) {
        if why.is_empty() {
            debug!("live: viewer {id} ({what}) left");
        } else {
            warn!("live: viewer {id} ({what}) dropped: {why}");
        }
    }

    /// Wall time now, for the viewers' clock messages.
    pub(crate) fn now_unix_ms() -> i64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}
