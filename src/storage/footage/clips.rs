//! The async-clip queue: clips asked for while their range reaches into the segment being
//! written wait until that segment has closed.
//!
//! Pure bookkeeping: it holds requests and says which are due; the footage core starts
//! them and its shell runs them. It never touches a file.

use std::path::PathBuf;

use crate::storage::clip::ClipRequest;

#[derive(Clone, Debug, Default)]
pub struct ClipQueue {
    /// Each request with the sequence of the segment it waits for.
    waiting: Vec<(ClipRequest, u64)>,
}

impl ClipQueue {
    /// Hold `request` until segment `open_seq` has closed.
    pub fn wait_for(&mut self, request: ClipRequest, open_seq: u64) {
        self.waiting.push((request, open_seq));
    }

    /// The requests whose segment is no longer the one being written (`open_seq`, `None`
    /// when none is), taken out of the queue, in the order they came.
    pub fn due(&mut self, open_seq: Option<u64>) -> Vec<ClipRequest> {
        let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(_, seq)| Some(*seq) != open_seq);
        self.waiting = wait;
        due.into_iter().map(|(r, _)| r).collect()
    }

    /// The outputs of the waiting requests (names taken already).
    pub fn outputs(&self) -> Vec<PathBuf> {
        self.waiting
            .iter()
            .filter_map(|(r, _)| r.output.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn req(name: &str) -> ClipRequest {
        ClipRequest {
            from: SystemTime::UNIX_EPOCH,
            to: SystemTime::UNIX_EPOCH,
            output: Some(PathBuf::from(name)),
            metadata: None,
        }
    }

    #[test]
    fn clips_wait_for_their_segment_to_close() {
        let mut q = ClipQueue::default();
        q.wait_for(req("a"), 7);
        q.wait_for(req("b"), 7);
        assert_eq!(q.outputs(), vec![PathBuf::from("a"), PathBuf::from("b")]);
        assert!(q.due(Some(7)).is_empty(), "7 is still being written");
        q.wait_for(req("c"), 8);
        // 7 closed, 8 is being written.
        let due: Vec<_> = q
            .due(Some(8))
            .into_iter()
            .filter_map(|r| r.output)
            .collect();
        assert_eq!(due, vec![PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(q.outputs(), vec![PathBuf::from("c")]);
        // Stopping: nothing is being written, everything is due.
        assert_eq!(q.due(None).len(), 1);
        assert!(q.due(None).is_empty());
    }
}
