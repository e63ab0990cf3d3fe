//! Splitting an H.264 Annex-B byte stream into NAL units, streaming from any reader.
//!
//! Hand-written because it must work on an unbounded pipe with the byte offset of every
//! NAL unit known (for error messages) and without copying the stream more than once;
//! h264-reader's push parser hands out NAL fragments, which would make the access-unit
//! grouping above it copy twice. It owns a read buffer of a few hundred KiB at most
//! (the largest NAL unit plus one read). It never interprets NAL payloads.

use std::io::{ErrorKind, Read};

/// How much to read at once.
const READ_CHUNK: usize = 64 * 1024;
/// A stream with no start code in this many leading bytes is not Annex-B.
pub const MAX_LEADING_GARBAGE: u64 = 1024 * 1024;
/// A single NAL unit larger than this is treated as corrupt input (a 1080p IDR is < 1 MiB).
pub const MAX_NAL_BYTES: usize = 16 * 1024 * 1024;

/// One NAL unit: header byte first, no start code, trailing zero bytes removed.
#[derive(Debug)]
pub struct NalUnit<'a> {
    /// Byte offset in the input of the NAL header byte.
    pub offset: u64,
    pub bytes: &'a [u8],
    /// True when the input ended inside this NAL unit (no start code after it).
    pub at_eof: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AnnexBError {
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "not an Annex-B H.264 stream: no start code (00 00 01) from byte offset 0 to {scanned}"
    )]
    NoStartCode { scanned: u64 },
    #[error("NAL unit at byte offset {offset} is larger than {limit} bytes")]
    NalTooLarge { offset: u64, limit: usize },
}

pub struct AnnexBReader<R> {
    reader: R,
    /// Read buffer; only `data[..len]` holds input. Allocated (and zeroed) once, grown only
    /// for a NAL unit larger than it, compacted only when a read would not fit.
    data: Vec<u8>,
    len: usize,
    /// Input offset of `data[0]`.
    buf_offset: u64,
    /// Index in `data` of the first byte of the next NAL unit (after its start code);
    /// `None` before the first start code was found.
    nal_start: Option<usize>,
    /// Where to resume the start-code search in `data`.
    scan_from: usize,
    eof: bool,
    /// Bytes skipped before the first start code.
    leading_garbage: u64,
}

impl<R: Read> AnnexBReader<R> {
    pub fn new(reader: R) -> Self {
        AnnexBReader {
            reader,
            data: vec![0; 4 * READ_CHUNK],
            len: 0,
            buf_offset: 0,
            nal_start: None,
            scan_from: 0,
            eof: false,
            leading_garbage: 0,
        }
    }

    /// Bytes skipped before the first start code (for a warning).
    pub fn leading_garbage(&self) -> u64 {
        self.leading_garbage
    }

    /// Total bytes read from the input so far.
    pub fn bytes_read(&self) -> u64 {
        self.buf_offset + self.len as u64
    }

    /// The next NAL unit, or `None` at the end of the input.
    pub fn next_nal(&mut self) -> Result<Option<NalUnit<'_>>, AnnexBError> {
        // Find the first start code once.
        while self.nal_start.is_none() {
            let buf = &self.data[..self.len];
            if let Some((sc, after)) = find_start_code(buf, self.scan_from) {
                // Zero bytes before the first start code are its leading zero_byte(s).
                let only_zeros = self.buf_offset == 0 && buf[..sc].iter().all(|&b| b == 0);
                self.leading_garbage = if only_zeros {
                    0
                } else {
                    self.buf_offset + sc as u64
                };
                self.nal_start = Some(after);
                self.scan_from = after;
                break;
            }
            if self.eof {
                if self.bytes_read() == 0 {
                    return Ok(None);
                }
                return Err(AnnexBError::NoStartCode {
                    scanned: self.bytes_read(),
                });
            }
            if self.bytes_read() > MAX_LEADING_GARBAGE {
                return Err(AnnexBError::NoStartCode {
                    scanned: self.bytes_read(),
                });
            }
            // Keep the last two bytes: a start code may straddle reads.
            let keep_from = self.len.saturating_sub(2);
            self.scan_from = keep_from;
            self.fill(keep_from)?;
        }

        loop {
            let start = self.nal_start.unwrap_or(0);
            let buf = &self.data[..self.len];
            if let Some((sc, after)) = find_start_code(buf, self.scan_from.max(start)) {
                let end = trim_trailing_zeros(buf, start, sc);
                self.nal_start = Some(after);
                self.scan_from = after;
                if end == start {
                    continue; // empty NAL (repeated start codes)
                }
                return Ok(Some(NalUnit {
                    offset: self.buf_offset + start as u64,
                    bytes: &self.data[start..end],
                    at_eof: false,
                }));
            }
            if self.eof {
                let end = trim_trailing_zeros(buf, start, self.len);
                self.nal_start = Some(self.len);
                self.scan_from = self.len;
                if end == start {
                    return Ok(None);
                }
                return Ok(Some(NalUnit {
                    offset: self.buf_offset + start as u64,
                    bytes: &self.data[start..end],
                    at_eof: true,
                }));
            }
            if self.len - start > MAX_NAL_BYTES {
                return Err(AnnexBError::NalTooLarge {
                    offset: self.buf_offset + start as u64,
                    limit: MAX_NAL_BYTES,
                });
            }
            // Resume the search two bytes early: a start code may straddle reads.
            self.scan_from = self.len.saturating_sub(2).max(start);
            self.fill(start)?;
        }
    }

    /// Read more input after `data[..len]`, first moving `data[keep_from..len]` to the front
    /// when the free space is short, growing the buffer only when that is not enough.
    fn fill(&mut self, keep_from: usize) -> Result<(), AnnexBError> {
        if self.data.len() - self.len < READ_CHUNK {
            if keep_from > 0 {
                self.data.copy_within(keep_from..self.len, 0);
                self.len -= keep_from;
                self.buf_offset += keep_from as u64;
                self.scan_from = self.scan_from.saturating_sub(keep_from);
                if let Some(s) = self.nal_start.as_mut() {
                    *s = s.saturating_sub(keep_from);
                }
            }
            if self.data.len() - self.len < READ_CHUNK {
                let grown = (self.data.len() * 2).max(self.len + READ_CHUNK);
                self.data.resize(grown, 0);
            }
        }
        let end = (self.len + READ_CHUNK).min(self.data.len());
        loop {
            match self.reader.read(&mut self.data[self.len..end]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.len += n;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Find `00 00 01` at or after `from`; returns (index of its first byte, index after it).
/// memchr's substring search (SIMD where the CPU has it, word-at-a-time on ARMv6) is several
/// times faster than a byte loop, and this is the only pass over every input byte.
fn find_start_code(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let hay = buf.get(from..)?;
    memchr::memmem::find(hay, &[0, 0, 1]).map(|i| (from + i, from + i + 3))
}

/// End index of the NAL unit in `buf[start..end]` without trailing zero bytes (the zero of a
/// 4-byte start code, or trailing_zero_8bits).
fn trim_trailing_zeros(buf: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && buf[end - 1] == 0 {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(data: &[u8], chunk: usize) -> Vec<(u64, Vec<u8>, bool)> {
        struct Chunked<'a>(&'a [u8], usize);
        impl Read for Chunked<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.1.min(self.0.len()).min(out.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = AnnexBReader::new(Chunked(data, chunk));
        let mut out = Vec::new();
        while let Some(n) = r.next_nal().expect("parse") {
            out.push((n.offset, n.bytes.to_vec(), n.at_eof));
        }
        out
    }

    #[test]
    fn splits_three_and_four_byte_start_codes_across_any_chunking() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 6, 0, 0,
        ];
        for chunk in 1..data.len() + 1 {
            let nals = collect(&data, chunk);
            assert_eq!(
                nals,
                vec![
                    (4, vec![0x67, 1, 2], false),
                    (10, vec![0x68, 3], false),
                    (16, vec![0x65, 4, 5, 6], true),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8 | 0x80).collect();
        let mut r = AnnexBReader::new(&data[..]);
        match r.next_nal() {
            Err(AnnexBError::NoStartCode { scanned }) => assert_eq!(scanned, 5000),
            other => panic!("unexpected {other:?}"),
        }
        let mut empty = AnnexBReader::new(&[][..]);
        assert!(empty.next_nal().expect("empty ok").is_none());
    }

    #[test]
    fn leading_garbage_is_counted() {
        let data = [9, 9, 9, 0, 0, 1, 0x09, 0xf0];
        let mut r = AnnexBReader::new(&data[..]);
        let n = r.next_nal().expect("ok").expect("nal");
        assert_eq!(n.offset, 6);
        assert_eq!(r.leading_garbage(), 3);
    }
}
