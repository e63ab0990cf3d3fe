//! Memory-mapped streaming from a V4L2 capture device: request buffers, map them, queue
//! them, start the stream; then wait for a filled buffer (poll with a deadline), hand out
//! its bytes (`bytesused` of them), and queue it again.
//!
//! It owns the mappings and unmaps them, and stops the stream, when dropped. A buffer is
//! queued again exactly once after it was dequeued, so a deadline that passes never leaves
//! the queue in a state the kernel rejects. It never interprets the bytes.

use std::fs::File;
use std::io;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

use super::sys::{self, Buffer, RequestBuffers};

/// Buffers requested: enough to ride out a slow reader for a few frames.
const BUFFERS: u32 = 4;

struct Mapping {
    ptr: *mut std::ffi::c_void,
    len: usize,
}

/// What a filled buffer says about its frame.
#[derive(Clone, Copy, Debug)]
pub struct Filled {
    pub index: u32,
    pub bytes: usize,
    pub sequence: u32,
    pub flags: u32,
    /// Capture time on the monotonic clock, nanoseconds.
    pub time_ns: i128,
}

pub struct MmapStream {
    file: File,
    maps: Vec<Mapping>,
    streaming: bool,
    /// The buffer handed out last, queued again at the next call.
    out: Option<u32>,
}

// SAFETY: the mappings are owned by this stream alone and only touched through it.
unsafe impl Send for MmapStream {}

/// Why a wait for a frame ended without one.
pub enum WaitError {
    TimedOut,
    Io(io::Error),
}

impl MmapStream {
    pub fn start(file: File) -> io::Result<MmapStream> {
        let mut req = RequestBuffers {
            count: BUFFERS,
            type_: sys::BUF_TYPE_VIDEO_CAPTURE,
            memory: sys::MEMORY_MMAP,
            ..RequestBuffers::default()
        };
        sys::reqbufs(&file, &mut req)?;
        if req.count == 0 {
            return Err(io::Error::other("the device gave no buffers"));
        }
        let mut stream = MmapStream {
            file,
            maps: Vec::new(),
            streaming: false,
            out: None,
        };
        for index in 0..req.count {
            let mut b = Buffer::mmap_capture(index);
            sys::querybuf(&stream.file, &mut b)?;
            // SAFETY: the offset and length are the kernel's for this buffer; the mapping
            // is shared with the driver and unmapped in Drop.
            let ptr = unsafe {
                mmap(
                    std::ptr::null_mut(),
                    b.length as usize,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED,
                    &stream.file,
                    // SAFETY: for MMAP buffers the kernel fills `offset`.
                    u64::from(b.m.offset),
                )
            }?;
            stream.maps.push(Mapping {
                ptr,
                len: b.length as usize,
            });
            sys::qbuf(&stream.file, &mut b)?;
        }
        sys::streamon(&stream.file)?;
        stream.streaming = true;
        Ok(stream)
    }

    /// The next filled buffer, waiting at most `deadline`.
    pub fn next(&mut self, deadline: Duration) -> Result<Filled, WaitError> {
        if let Some(index) = self.out.take() {
            let mut b = Buffer::mmap_capture(index);
            sys::qbuf(&self.file, &mut b).map_err(WaitError::Io)?;
        }
        let timeout = Timespec {
            tv_sec: deadline.as_secs() as _,
            tv_nsec: deadline.subsec_nanos() as _,
        };
        loop {
            let mut fds = [PollFd::new(&self.file, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => return Err(WaitError::TimedOut),
                Ok(_) => {
                    let ev = fds[0].revents();
                    if ev.intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL)
                        && !ev.contains(PollFlags::IN)
                    {
                        // Unplugged devices say so here; DQBUF names the error.
                    }
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(WaitError::Io(e.into())),
            }
            let mut b = Buffer::mmap_capture(0);
            match sys::dqbuf(&self.file, &mut b) {
                Ok(()) => {
                    self.out = Some(b.index);
                    let len = self.maps.get(b.index as usize).map_or(0, |m| m.len);
                    return Ok(Filled {
                        index: b.index,
                        bytes: (b.bytesused as usize).min(len),
                        sequence: b.sequence,
                        flags: b.flags,
                        time_ns: i128::from(b.timestamp.sec) * 1_000_000_000
                            + i128::from(b.timestamp.usec) * 1000,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(WaitError::Io(e)),
            }
        }
    }

    /// The bytes of a buffer handed out by [`MmapStream::next`], valid until the next call.
    pub fn bytes(&self, f: &Filled) -> &[u8] {
        match self.maps.get(f.index as usize) {
            // SAFETY: the mapping is `len` bytes long and lives as long as `self`; the
            // buffer is dequeued (the driver does not write it) until the next call.
            Some(m) => unsafe {
                std::slice::from_raw_parts(m.ptr as *const u8, f.bytes.min(m.len))
            },
            None => &[],
        }
    }
}

impl Drop for MmapStream {
    fn drop(&mut self) {
        if self.streaming {
            let _ = sys::streamoff(&self.file);
        }
        for m in self.maps.drain(..) {
            // SAFETY: each mapping was made by mmap with this length and is unmapped once.
            let _ = unsafe { munmap(m.ptr, m.len) };
        }
        let mut req = RequestBuffers {
            count: 0,
            type_: sys::BUF_TYPE_VIDEO_CAPTURE,
            memory: sys::MEMORY_MMAP,
            ..RequestBuffers::default()
        };
        let _ = sys::reqbufs(&self.file, &mut req);
    }
}
