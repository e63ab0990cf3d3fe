//! The outbox: QoS 1 messages not yet acknowledged by the broker, in order, bounded.
//!
//! Pure bookkeeping. Each message gets a packet identifier when it is queued; at most
//! [`Outbox::WINDOW`] are in flight (sent, awaiting PUBACK) at a time; after a reconnect
//! every unacknowledged message is sent again, in order, marked DUP. When the outbox is
//! full the oldest message is dropped and counted (the broker was away too long).

use std::collections::VecDeque;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

#[derive(Debug)]
struct Entry {
    message: Message,
    packet_id: u16,
    /// Sent on the current connection.
    sent: bool,
    /// Sent before (on this or an earlier connection): DUP when sent again.
    ever_sent: bool,
}

/// A message to send now.
#[derive(Debug, PartialEq, Eq)]
pub struct ToSend<'a> {
    pub message: &'a Message,
    pub packet_id: u16,
    pub dup: bool,
}

#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Entry>,
    capacity: usize,
    next_id: u16,
    dropped: u64,
}

impl Outbox {
    /// Messages in flight at once on a connection.
    pub const WINDOW: usize = 16;

    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            next_id: 1,
            dropped: 0,
        }
    }

    /// Kept for the status message, never used by the outbox.
    pub const STATUS_ID: u16 = u16::MAX;

    /// A fresh packet identifier (1..65535, not [`Outbox::STATUS_ID`]) not used by a
    /// queued message.
    pub fn take_id(&mut self) -> u16 {
        loop {
            let id = self.next_id;
            self.next_id = if id >= Self::STATUS_ID - 1 { 1 } else { id + 1 };
            if !self.queue.iter().any(|e| e.packet_id == id) {
                return id;
            }
        }
    }

    /// Queue a message; returns true when the oldest had to be dropped for it.
    pub fn push(&mut self, message: Message) -> bool {
        let mut dropped = false;
        if self.queue.len() >= self.capacity {
            self.queue.pop_front();
            self.dropped += 1;
            dropped = true;
        }
        let packet_id = self.take_id();
        self.queue.push_back(Entry {
            message,
            packet_id,
            sent: false,
            ever_sent: false,
        });
        dropped
    }

    /// The next message to send on this connection, if the window allows; marks it sent.
    pub fn next_to_send(&mut self) -> Option<ToSend<'_>> {
        let in_flight = self.queue.iter().filter(|e| e.sent).count();
        if in_flight >= Self::WINDOW {
            return None;
        }
        let e = self.queue.iter_mut().find(|e| !e.sent)?;
        let dup = e.ever_sent;
        e.sent = true;
        e.ever_sent = true;
        Some(ToSend {
            message: &e.message,
            packet_id: e.packet_id,
            dup,
        })
    }

    /// The broker acknowledged `packet_id`; false when no such message waits.
    pub fn acked(&mut self, packet_id: u16) -> bool {
        match self
            .queue
            .iter()
            .position(|e| e.packet_id == packet_id && e.sent)
        {
            Some(i) => {
                self.queue.remove(i);
                true
            }
            None => false,
        }
    }

    /// The connection was lost: everything unacknowledged is sent again on the next.
    pub fn disconnected(&mut self) {
        for e in &mut self.queue {
            e.sent = false;
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(i: u32) -> Message {
        Message {
            topic: format!("t/{i}"),
            payload: Vec::new(),
            retain: false,
        }
    }

    #[test]
    fn in_order_within_the_window_and_again_after_a_reconnect() {
        let mut o = Outbox::new(100);
        for i in 0..20 {
            assert!(!o.push(m(i)));
        }
        let mut sent = Vec::new();
        while let Some(s) = o.next_to_send() {
            assert!(!s.dup);
            sent.push(s.packet_id);
        }
        assert_eq!(sent.len(), Outbox::WINDOW);
        assert!(o.acked(sent[0]));
        assert!(!o.acked(sent[0]), "acknowledged once");
        let next = o.next_to_send().expect("room for one more");
        assert_eq!(next.message.topic, "t/16");
        // Lost connection: the 16 unacknowledged go again first, in order, as DUP.
        o.disconnected();
        let again = o.next_to_send().expect("again");
        assert_eq!((again.message.topic.as_str(), again.dup), ("t/1", true));
        assert_eq!(o.len(), 19);
    }

    #[test]
    fn full_drops_the_oldest_and_ids_are_unique() {
        let mut o = Outbox::new(3);
        for i in 0..5 {
            o.push(m(i));
        }
        assert_eq!(o.dropped(), 2);
        let first = o.next_to_send().expect("first");
        assert_eq!(first.message.topic, "t/2");
        let mut ids: Vec<u16> = Vec::new();
        let mut o = Outbox::new(10);
        o.next_id = u16::MAX - 2;
        for i in 0..4 {
            o.push(m(i));
        }
        while let Some(s) = o.next_to_send() {
            ids.push(s.packet_id);
        }
        assert_eq!(
            ids,
            vec![u16::MAX - 2, u16::MAX - 1, 1, 2],
            "0 is never an identifier, and the status's is kept"
        );
    }
}
