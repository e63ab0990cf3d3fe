//! The event hub: live subscribers (the phone page's `GET /api/events`) each get every
//! event through a bounded queue of their own; a subscriber that does not keep up loses
//! events, counted, never slowing anyone else. Also the Server-Sent Events wire form
//! ([`sse_message`], [`Subscription::next_sse`]), which needs no HTTP server.
//!
//! It owns the subscriber list and its queues. It never blocks the dispatcher (every hand
//! over is a `try_send`) and never writes to a socket itself: the web server's handler
//! reads a [`Subscription`] and writes what it gets.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::events::Delivered;

/// Events a subscriber may be behind before it loses some.
pub const SUBSCRIBER_QUEUE: usize = 64;
/// At most this many subscribers at once (each is a phone's open page).
pub const MAX_SUBSCRIBERS: usize = 8;

struct Subscriber {
    tx: Sender<Arc<Delivered>>,
    dropped: Arc<AtomicU64>,
    /// Cleared when the subscription is dropped (the client went away).
    alive: Arc<AtomicBool>,
}

/// Where live subscribers register; cheap to clone.
#[derive(Clone, Default)]
pub struct EventHub {
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
}

/// One subscriber's end: the events, and how many it lost.
pub struct Subscription {
    rx: Receiver<Arc<Delivered>>,
    dropped: Arc<AtomicU64>,
    reported: u64,
    alive: Arc<AtomicBool>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
    }
}

/// What a subscriber gets next.
#[derive(Debug)]
pub enum Next {
    /// An event (JSON) and its kind and sequence number.
    Event(Arc<Delivered>),
    /// Nothing for the wait given: time for a keep-alive comment.
    Idle,
    /// The hub closed (the recorder stops).
    Closed,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("subscribers", &self.lock().len())
            .finish()
    }
}

impl EventHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        match self.subscribers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A new subscriber, or `None` when [`MAX_SUBSCRIBERS`] are connected already.
    pub fn subscribe(&self) -> Option<Subscription> {
        let mut subs = self.lock();
        subs.retain(|s| s.alive.load(Ordering::Relaxed));
        if subs.len() >= MAX_SUBSCRIBERS {
            return None;
        }
        let (tx, rx) = crossbeam_channel::bounded(SUBSCRIBER_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let alive = Arc::new(AtomicBool::new(true));
        subs.push(Subscriber {
            tx,
            dropped: dropped.clone(),
            alive: alive.clone(),
        });
        Some(Subscription {
            rx,
            dropped,
            reported: 0,
            alive,
        })
    }

    /// Hand an event to every subscriber without waiting; gone subscribers are forgotten.
    pub fn publish(&self, event: &Arc<Delivered>) {
        self.lock().retain(|s| match s.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// Subscribers connected now.
    pub fn subscribers(&self) -> usize {
        self.lock().len()
    }

    /// No more events: every subscription ends once it has read what it has.
    pub fn close(&self) {
        self.lock().clear();
    }
}

impl Subscription {
    /// The next event, waiting at most `wait`.
    pub fn next(&mut self, wait: Duration) -> Next {
        match self.rx.recv_timeout(wait) {
            Ok(e) => Next::Event(e),
            Err(RecvTimeoutError::Timeout) => Next::Idle,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    /// Events lost since the last call (the subscriber was too slow).
    pub fn newly_dropped(&mut self) -> u64 {
        let all = self.dropped.load(Ordering::Relaxed);
        let new = all - self.reported;
        self.reported = all;
        new
    }
}

/// One Server-Sent Events message: `id: SEQ`, `event: KIND`, `data: JSON`, blank line.
/// The JSON is on one line, so one `data:` field carries it.
pub fn sse_message(event: &Delivered) -> String {
    format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.event.seq,
        event.event.kind.name(),
        event.json
    )
}

/// The next piece of a subscriber's Server-Sent Events stream.
#[derive(Debug, PartialEq, Eq)]
pub enum SsePiece {
    /// An event as [`sse_message`].
    Event(String),
    /// This many events were lost (the client was too slow), and the comment saying so.
    Lost(u64, String),
    /// Nothing for the wait given: the server's keep-alive is due.
    Idle,
    /// The hub closed.
    Closed,
}

impl Subscription {
    /// The next piece of the stream, waiting at most `wait`: first what was lost since the
    /// last call, then the next event. The HTTP response, the keep-alive comments and the
    /// socket are the web server's.
    pub fn next_sse(&mut self, wait: Duration) -> SsePiece {
        let lost = self.newly_dropped();
        if lost > 0 {
            return SsePiece::Lost(
                lost,
                sse_comment(&format!(
                    "{lost} event(s) dropped: this client was too slow"
                )),
            );
        }
        match self.next(wait) {
            Next::Event(e) => SsePiece::Event(sse_message(&e)),
            Next::Idle => SsePiece::Idle,
            Next::Closed => SsePiece::Closed,
        }
    }
}

/// An SSE comment: keeps the connection open through proxies, or says what was lost.
pub fn sse_comment(text: &str) -> String {
    let one_line = text.replace(['\r', '\n'], " ");
    format!(": {one_line}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::event::{EventKind, EventSink};

    fn delivered(sink: &EventSink, rx: &Receiver<crate::state::event::Event>) -> Arc<Delivered> {
        sink.emit(EventKind::CameraBack {});
        Arc::new(Delivered::new(rx.try_recv().expect("event")))
    }

    #[test]
    fn a_slow_subscriber_loses_counted_events_and_others_get_all() {
        let (sink, rx) = EventSink::bounded(1000);
        let hub = EventHub::default();
        let mut fast = hub.subscribe().expect("fast");
        let mut slow = hub.subscribe().expect("slow");
        let mut got = 0;
        for _ in 0..SUBSCRIBER_QUEUE + 10 {
            hub.publish(&delivered(&sink, &rx));
            if let Next::Event(_) = fast.next(Duration::ZERO) {
                got += 1;
            }
        }
        assert_eq!(got, SUBSCRIBER_QUEUE + 10);
        assert_eq!(slow.newly_dropped(), 10);
        assert_eq!(slow.newly_dropped(), 0);
        let mut seqs = Vec::new();
        while let Next::Event(e) = slow.next(Duration::ZERO) {
            seqs.push(e.event.seq);
        }
        assert_eq!(seqs.len(), SUBSCRIBER_QUEUE);
        assert_eq!(seqs[0], 1);
        drop(fast);
        hub.publish(&delivered(&sink, &rx));
        assert_eq!(hub.subscribers(), 1, "a gone subscriber is forgotten");
        hub.close();
        assert!(matches!(slow.next(Duration::ZERO), Next::Event(_)));
        assert!(matches!(slow.next(Duration::ZERO), Next::Closed));
    }

    #[test]
    fn subscribers_are_capped() {
        let hub = EventHub::default();
        let subs: Vec<_> = (0..MAX_SUBSCRIBERS)
            .filter_map(|_| hub.subscribe())
            .collect();
        assert_eq!(subs.len(), MAX_SUBSCRIBERS);
        assert!(hub.subscribe().is_none());
        drop(subs);
        assert!(hub.subscribe().is_some(), "room again once they are gone");
    }

    #[test]
    fn sse_form() {
        let (sink, rx) = EventSink::bounded(4);
        let d = delivered(&sink, &rx);
        let m = sse_message(&d);
        assert!(m.starts_with("id: 1\nevent: camera_back\ndata: {\"event\":\"camera_back\""));
        assert!(m.ends_with("}\n\n"));
        assert_eq!(m.matches('\n').count(), 4);
        assert_eq!(sse_comment("a\nb"), ": a b\n\n");
    }

    #[test]
    fn a_stream_until_the_hub_closes() {
        let (sink, rx) = EventSink::bounded(4);
        let hub = EventHub::default();
        let mut sub = hub.subscribe().expect("sub");
        hub.publish(&delivered(&sink, &rx));
        hub.publish(&delivered(&sink, &rx));
        hub.close();
        let wait = Duration::from_millis(10);
        let SsePiece::Event(first) = sub.next_sse(wait) else {
            panic!("an event first")
        };
        assert!(first.starts_with("id: 1\nevent: camera_back\n"), "{first}");
        let SsePiece::Event(second) = sub.next_sse(wait) else {
            panic!("then the second")
        };
        assert!(second.starts_with("id: 2\n"), "{second}");
        assert_eq!(sub.next_sse(wait), SsePiece::Closed);
    }

    #[test]
    fn a_slow_subscriber_is_told_what_it_lost() {
        let (sink, rx) = EventSink::bounded(1000);
        let hub = EventHub::default();
        let mut sub = hub.subscribe().expect("sub");
        for _ in 0..SUBSCRIBER_QUEUE + 3 {
            hub.publish(&delivered(&sink, &rx));
        }
        assert_eq!(
            sub.next_sse(Duration::ZERO),
            SsePiece::Lost(
                3,
                ": 3 event(s) dropped: this client was too slow\n\n".into()
            )
        );
        let SsePiece::Event(e) = sub.next_sse(Duration::ZERO) else {
            panic!("the oldest kept event next")
        };
        assert!(e.starts_with("id: 1\n"), "{e}");
    }
}
