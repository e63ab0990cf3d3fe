//! Reading a camera's byte stream with a deadline: a pipe (a camera process's standard
//! output) that says "nothing for N seconds" instead of blocking forever.
//!
//! It owns only the wait: each read first polls the descriptor for at most the current
//! deadline (longer for the first bytes, while the camera starts). A stall ends the stream
//! like the end of the input (so the parser hands on the last complete frame it holds) and
//! raises the shared [`Stalled`] flag, which tells the two apart. It never kills or restarts
//! anything; the source that owns the process does that.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// Set when a [`DeadlineReader`] gave up waiting.
#[derive(Clone, Debug, Default)]
pub struct Stalled(Arc<AtomicBool>);

impl Stalled {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct DeadlineReader<R> {
    inner: R,
    first: Duration,
    steady: Duration,
    started: bool,
    stalled: Stalled,
}

impl<R: Read + AsFd> DeadlineReader<R> {
    /// At most `first` for the first bytes, `steady` between reads after that.
    pub fn new(inner: R, first: Duration, steady: Duration) -> Self {
        DeadlineReader {
            inner,
            first,
            steady,
            started: false,
            stalled: Stalled::default(),
        }
    }

    /// The flag raised when this reader stalls.
    pub fn stalled(&self) -> Stalled {
        self.stalled.clone()
    }
}

impl<R: Read + AsFd> Read for DeadlineReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stalled.get() {
            return Ok(0);
        }
        let limit = if self.started {
            self.steady
        } else {
            self.first
        };
        let timeout = Timespec {
            tv_sec: limit.as_secs() as _,
            tv_nsec: limit.subsec_nanos() as _,
        };
        loop {
            let mut fds = [PollFd::new(&self.inner, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => {
                    self.stalled.0.store(true, Ordering::SeqCst);
                    return Ok(0);
                }
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let n = self.inner.read(buf)?;
        self.started = true;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_silent_pipe_ends_as_stalled_and_data_flows_through() {
        let (r, mut w) = std::os::unix::net::UnixStream::pair().expect("socket pair");
        let mut reader =
            DeadlineReader::new(r, Duration::from_millis(300), Duration::from_millis(100));
        let stalled = reader.stalled();
        w.write_all(b"abc").expect("write");
        let mut buf = [0u8; 8];
        assert_eq!(reader.read(&mut buf).expect("read"), 3);
        assert!(!stalled.get());
        let t = std::time::Instant::now();
        assert_eq!(reader.read(&mut buf).expect("stall"), 0);
        assert!(t.elapsed() >= Duration::from_millis(90));
        assert!(stalled.get());
        // Once stalled, it stays ended even if data comes later.
        w.write_all(b"late").expect("write");
        assert_eq!(reader.read(&mut buf).expect("ended"), 0);
    }
}
