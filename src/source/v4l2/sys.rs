//! The few V4L2 ioctls and structures dashcam uses (`linux/videodev2.h`), written out.
//!
//! Layouts follow the kernel's UAPI as the kernel itself sees it: the buffer timestamp is
//! two 64-bit words on every architecture (the kernel's `__kernel_v4l2_timeval`; 32-bit
//! kernels since 5.6 take this layout under the ioctl number its size gives, whatever the
//! C library's `time_t`), unions are as large and as aligned as in C. The sizes are checked
//! by tests against the kernel's (88/80 bytes for `v4l2_buffer` on 64/32-bit, 208/204 for
//! `v4l2_format`). Nothing here interprets what it reads.

use std::io;
use std::os::fd::AsFd;

use rustix::ioctl::{ioctl, opcode, Opcode, Setter, Updater};

pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const MEMORY_MMAP: u32 = 1;
pub const FIELD_ANY: u32 = 0;
pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const CAP_STREAMING: u32 = 0x0400_0000;
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;
pub const CAP_TIMEPERFRAME: u32 = 0x1000;
pub const BUF_FLAG_KEYFRAME: u32 = 0x0008;
pub const BUF_FLAG_ERROR: u32 = 0x0040;
pub const FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const FRMIVAL_TYPE_DISCRETE: u32 = 1;

/// A pixel format's four-character code.
pub const fn fourcc(c: &[u8; 4]) -> u32 {
    (c[0] as u32) | (c[1] as u32) << 8 | (c[2] as u32) << 16 | (c[3] as u32) << 24
}
pub const PIX_H264: u32 = fourcc(b"H264");
pub const PIX_MJPEG: u32 = fourcc(b"MJPG");
pub const PIX_JPEG: u32 = fourcc(b"JPEG");
pub const PIX_YUYV: u32 = fourcc(b"YUYV");
pub const PIX_NV12: u32 = fourcc(b"NV12");

/// The four characters of a code, for messages.
pub fn fourcc_name(code: u32) -> String {
    code.to_le_bytes()
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FmtDesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

/// `v4l2_frmsizeenum`: `u` is (width, height) for a discrete size, else (min_width,
/// max_width, step_width, min_height, max_height, step_height).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FrmSizeEnum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    pub u: [u32; 6],
    pub reserved: [u32; 2],
}

/// `v4l2_frmivalenum`: `u` is (numerator, denominator) for a discrete interval, else
/// (min num, min den, max num, max den, step num, step den).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FrmIvalEnum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub type_: u32,
    pub u: [u32; 6],
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct PixFormat {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// The union of `v4l2_format`: 200 bytes, aligned like a pointer (it holds some).
#[repr(C)]
#[derive(Clone, Copy)]
pub union FormatUnion {
    pub pix: PixFormat,
    pub raw: [u8; 200],
    _align: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Format {
    pub type_: u32,
    pub fmt: FormatUnion,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            type_: BUF_TYPE_VIDEO_CAPTURE,
            fmt: FormatUnion { raw: [0; 200] },
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Fract {
    pub numerator: u32,
    pub denominator: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct CaptureParm {
    pub capability: u32,
    pub capturemode: u32,
    pub timeperframe: Fract,
    pub extendedmode: u32,
    pub readbuffers: u32,
    pub reserved: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union ParmUnion {
    pub capture: CaptureParm,
    pub raw: [u8; 200],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct StreamParm {
    pub type_: u32,
    pub parm: ParmUnion,
}

impl Default for StreamParm {
    fn default() -> Self {
        StreamParm {
            type_: BUF_TYPE_VIDEO_CAPTURE,
            parm: ParmUnion { raw: [0; 200] },
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct RequestBuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

/// The kernel's `__kernel_v4l2_timeval`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Timeval {
    pub sec: i64,
    pub usec: i64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union BufferM {
    pub offset: u32,
    pub userptr: usize,
    pub fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: Timeval,
    pub timecode: [u32; 4],
    pub sequence: u32,
    pub memory: u32,
    pub m: BufferM,
    pub length: u32,
    pub reserved2: u32,
    pub request_fd: u32,
}

impl Buffer {
    pub fn mmap_capture(index: u32) -> Buffer {
        Buffer {
            index,
            type_: BUF_TYPE_VIDEO_CAPTURE,
            bytesused: 0,
            flags: 0,
            field: 0,
            timestamp: Timeval::default(),
            timecode: [0; 4],
            sequence: 0,
            memory: MEMORY_MMAP,
            m: BufferM { userptr: 0 },
            length: 0,
            reserved2: 0,
            request_fd: 0,
        }
    }
}

const V: u8 = b'V';
const QUERYCAP: Opcode = opcode::read::<Capability>(V, 0);
const ENUM_FMT: Opcode = opcode::read_write::<FmtDesc>(V, 2);
const G_FMT: Opcode = opcode::read_write::<Format>(V, 4);
const S_FMT: Opcode = opcode::read_write::<Format>(V, 5);
const REQBUFS: Opcode = opcode::read_write::<RequestBuffers>(V, 8);
const QUERYBUF: Opcode = opcode::read_write::<Buffer>(V, 9);
const QBUF: Opcode = opcode::read_write::<Buffer>(V, 15);
const DQBUF: Opcode = opcode::read_write::<Buffer>(V, 17);
const STREAMON: Opcode = opcode::write::<i32>(V, 18);
const STREAMOFF: Opcode = opcode::write::<i32>(V, 19);
const G_PARM: Opcode = opcode::read_write::<StreamParm>(V, 21);
const S_PARM: Opcode = opcode::read_write::<StreamParm>(V, 22);
const ENUM_FRAMESIZES: Opcode = opcode::read_write::<FrmSizeEnum>(V, 74);
const ENUM_FRAMEINTERVALS: Opcode = opcode::read_write::<FrmIvalEnum>(V, 75);

// SAFETY (all below): each opcode is paired with the structure the kernel reads and writes
// for it (same size, as encoded in the opcode, and same layout: see the module doc), and
// the structure lives for the whole call.
pub fn querycap(fd: impl AsFd) -> io::Result<Capability> {
    let mut c = Capability::default();
    unsafe { ioctl(fd, Updater::<QUERYCAP, Capability>::new(&mut c)) }?;
    Ok(c)
}
pub fn enum_fmt(fd: impl AsFd, d: &mut FmtDesc) -> io::Result<()> {
    Ok(unsafe { ioctl(fd, Updater::<ENUM_FMT, FmtDesc>::new(d)) }?)
}
pub fn g_fmt(fd: impl AsFd, f: &mut Format) -> io::Result<()> {
    Ok(unsafe { ioctl(fd, Updater::<G_FMT, Format>::new(f)) }?)
}
pub fn s_fmt(fd: impl AsFd, f: &mut Format) -> io::Result<()> {
    Ok(unsafe { ioctl(fd, Updater::<S_FMT, Format>::new(f)) }?)
}
pub fn reqbufs(fd: impl AsFd, r: &mut RequestBuffers) -> io::Result<()> {
    Ok(unsafe { ioctl(fd, Updater::<REQBUFS, RequestBuffers>::new(r)) }?)
}
pub fn querybuf(fd: impl AsFd, b: &mut Buffer) -> io::Result<()> {
    Ok(unsafe { ioctl(fd, Updater::<QUERYBUF, Buffer>::new(b)) }?)
}
pub fn qbuf(fd: impl AsFd, b: &mut Buffer) -> io::Result<()> {
    Ok(unsafe { ioctl(fd, Updater::<QBUF, Buffer>::new(b)) }?)
}
pub fn dqbuf(fd: impl AsFd, b: &mut Buffer) -> io::Result<()> {
    Ok(unsafe { ioctl(fd, Updater::<DQBUF, Buffer>::new(b)) }?)
}
pub fn streamon(fd: impl AsFd) -> io::Result<()> {
    let t = BUF_TYPE_VIDEO_CAPTURE as i32;
    Ok(unsafe { ioctl(fd, Setter::<STREAMON, i32>::new(t)) }?)
}
pub fn streamoff(fd: impl AsFd) -> io::Result<()> {
    let t = BUF_TYPE_VIDEO_CAPTURE as i32;
    Ok(unsafe { ioctl(fd, Setter::<STREAMOFF, i32>::new(t)) }?)
}
pub fn g_parm(fd: impl AsFd, p: &mut StreamParm) -> io::Result<()> {
    Ok(unsafe { ioctl(fd, Updater::<G_PARM, StreamParm>::new(p)) }?)
}
pub fn s_parm(fd: impl AsFd, p: &mut StreamParm) -> io::Result<()> {
    Ok(unsafe { ioctl(fd, Updater::<S_PARM, StreamParm>::new(p)) }?)
}
pub fn enum_framesizes(fd: impl AsFd, s: &mut FrmSizeEnum) -> io::Result<()> {
    Ok(unsafe { ioctl(fd, Updater::<ENUM_FRAMESIZES, FrmSizeEnum>::new(s)) }?)
}
pub fn enum_frameintervals(fd: impl AsFd, i: &mut FrmIvalEnum) -> io::Result<()> {
    Ok(unsafe { ioctl(fd, Updater::<ENUM_FRAMEINTERVALS, FrmIvalEnum>::new(i)) }?)
}

/// A NUL-terminated name field as text.
pub fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sizes the kernel's headers give (and the ioctl numbers encode).
    #[test]
    fn structures_have_the_kernels_sizes() {
        let wide = std::mem::size_of::<usize>() == 8;
        assert_eq!(std::mem::size_of::<Capability>(), 104);
        assert_eq!(std::mem::size_of::<FmtDesc>(), 64);
        assert_eq!(std::mem::size_of::<FrmSizeEnum>(), 44);
        assert_eq!(std::mem::size_of::<FrmIvalEnum>(), 52);
        assert_eq!(std::mem::size_of::<Format>(), if wide { 208 } else { 204 });
        assert_eq!(std::mem::size_of::<StreamParm>(), 204);
        assert_eq!(std::mem::size_of::<RequestBuffers>(), 20);
        assert_eq!(std::mem::size_of::<Buffer>(), if wide { 88 } else { 80 });
        // VIDIOC_QBUF as the kernel numbers it on x86_64: 0xc058560f.
        if wide && cfg!(target_arch = "x86_64") {
            assert_eq!(QBUF, 0xc058_560f);
            assert_eq!(S_FMT, 0xc0d0_5605);
        }
        assert_eq!(fourcc_name(PIX_MJPEG), "MJPG");
    }
}
