//! Positioned reads: what the container readers read from.
//!
//! The readers ([`super::mp4::read`], [`super::avi::read`]) take any [`ReadAt`]: a segment
//! file on the drive, or bytes in memory (unit tests, fuzzers), so nothing about reading a
//! container needs a disk. It owns no state and never writes.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Something that can be read at any offset without moving a cursor.
pub trait ReadAt {
    /// Total length in bytes.
    fn size(&self) -> io::Result<u64>;

    /// Fill `buf` from `pos`; `UnexpectedEof` when the source ends first.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;

    /// `len` bytes from `pos`, in a new buffer.
    fn read_vec_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }
}

impl ReadAt for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, pos)
    }
}

impl ReadAt for [u8] {
    fn size(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let src = usize::try_from(pos)
            .ok()
            .and_then(|start| Some(start..start.checked_add(buf.len())?))
            .and_then(|range| self.get(range))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_files_read_alike() {
        let data: Vec<u8> = (0..100u8).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, &data).expect("write");
        let file = File::open(&path).expect("open");
        fn check<R: ReadAt + ?Sized>(src: &R) {
            assert_eq!(src.size().expect("size"), 100);
            assert_eq!(src.read_vec_at(10, 3).expect("read"), [10, 11, 12]);
            assert_eq!(
                src.read_vec_at(100, 0).expect("empty read at the end"),
                [0u8; 0]
            );
            let e = src.read_vec_at(98, 3).expect_err("past the end");
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        }
        check(&data[..]);
        check(&file);
        let e = data[..].read_vec_at(u64::MAX, 2).expect_err("huge offset");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
