//! Test helper (not part of dashcam): feeds a v4l2loopback device with real encoded
//! frames, as a camera would deliver them, for the V4L2 VM stage (scripts/vm/v4l2.sh).
//!
//!   v4l2_loopback_feed DEVICE mjpeg|h264 WIDTH HEIGHT FPS FILE [LOOPS]
//!
//! Sets the output format (`VIDIOC_S_FMT`, type VIDEO_OUTPUT), writes the first frame, waits
//! until the file `DEVICE.go` exists (the capture side is streaming), then writes every
//! frame of FILE (concatenated JPEGs, or H.264 Annex-B split into access units) with one
//! `write()` each, FPS times a second, LOOPS times over (default once). Prints "fed N
//! frames".

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

#[repr(C)]
struct PixFormat {
    width: u32,
    height: u32,
    pixelformat: u32,
    field: u32,
    bytesperline: u32,
    sizeimage: u32,
    rest: [u32; 6],
}

#[repr(C)]
union FormatUnion {
    pix: std::mem::ManuallyDrop<PixFormat>,
    raw: [u8; 200],
    _align: usize,
}

#[repr(C)]
struct Format {
    type_: u32,
    fmt: FormatUnion,
}

const VIDIOC_S_FMT: u64 = 0xc0d0_5605; // _IOWR('V', 5, struct v4l2_format), x86_64

fn jpegs(data: &[u8]) -> Vec<&[u8]> {
    let mut starts: Vec<usize> = data
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0xff, 0xd8, 0xff])
        .map(|(i, _)| i)
        .collect();
    starts.push(data.len());
    starts.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// Access units of an Annex-B stream (enough for libx264 output).
fn access_units(data: &[u8]) -> Vec<&[u8]> {
    let mut nals = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            let s = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            nals.push((s, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::new();
    let mut cur: Option<usize> = None;
    let mut has_vcl = false;
    for &(s, h) in &nals {
        let t = data[h] & 31;
        let vcl = t == 1 || t == 5;
        let first_mb0 = vcl && data.get(h + 1).is_some_and(|b| b & 0x80 != 0);
        if cur.is_none() || (has_vcl && (matches!(t, 6..=9) || first_mb0)) {
            if let Some(c) = cur {
                units.push(&data[c..s]);
            }
            cur = Some(s);
            has_vcl = false;
        }
        has_vcl |= vcl;
    }
    if let Some(c) = cur {
        units.push(&data[c..]);
    }
    units
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 7 && a.len() != 8 {
        eprintln!("usage: v4l2_loopback_feed DEVICE mjpeg|h264 WIDTH HEIGHT FPS FILE [LOOPS]");
        std::process::exit(2);
    }
    let (dev, kind) = (&a[1], a[2].as_str());
    let num = |s: &str| s.parse::<u32>().expect("a number");
    let (w, h, fps) = (num(&a[3]), num(&a[4]), num(&a[5]));
    let loops = a.get(7).map_or(1, |s| num(s)) as usize;
    let data = std::fs::read(&a[6]).expect("read the input");
    let (frames, fourcc) = match kind {
        "mjpeg" => (jpegs(&data), u32::from_le_bytes(*b"MJPG")),
        _ => (access_units(&data), u32::from_le_bytes(*b"H264")),
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .expect("open the device");
    let mut fmt = Format {
        type_: 2, // V4L2_BUF_TYPE_VIDEO_OUTPUT
        fmt: FormatUnion { raw: [0; 200] },
    };
    fmt.fmt.pix = std::mem::ManuallyDrop::new(PixFormat {
        width: w,
        height: h,
        pixelformat: fourcc,
        field: 1,
        bytesperline: 0,
        sizeimage: frames.iter().map(|f| f.len()).max().unwrap_or(0) as u32,
        rest: [0; 6],
    });
    // SAFETY: VIDIOC_S_FMT with a v4l2_format of the kernel's size (208 bytes on x86_64).
    let r = unsafe { libc::ioctl(file.as_raw_fd(), VIDIOC_S_FMT as _, &mut fmt as *mut Format) };
    assert_eq!(r, 0, "VIDIOC_S_FMT: {}", std::io::Error::last_os_error());
    file.write_all(frames[0]).expect("write the first frame");
    let go = format!("{dev}.go");
    while !std::path::Path::new(&go).exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let t0 = Instant::now();
    let all = frames.iter().cycle().take(frames.len() * loops);
    for (i, f) in all.enumerate() {
        let due = t0 + Duration::from_secs_f64(i as f64 / f64::from(fps));
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let n = file.write(f).expect("write a frame");
        assert_eq!(n, f.len(), "short write");
    }
    println!("fed {} frames", frames.len() * loops);
}
