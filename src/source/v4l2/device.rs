//! A V4L2 capture device: opening it, what it offers (formats, sizes, rates) and the
//! negotiation of one of them (`VIDIOC_S_FMT`, `VIDIOC_S_PARM`).
//!
//! The choices are pure functions of what the device lists ([`choose_format`],
//! [`choose_size`], [`choose_rate`]), so they are tested without a device. It never
//! streams: [`super::stream`] does.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::sys::{self, FmtDesc, Format, FrmIvalEnum, FrmSizeEnum, StreamParm};

/// Formats dashcam records, best first: H.264 (into MP4), MJPEG (into AVI), raw pictures
/// encoded to JPEG in software.
pub const PREFERENCE: &[u32] = &[
    sys::PIX_H264,
    sys::PIX_MJPEG,
    sys::PIX_JPEG,
    sys::PIX_YUYV,
    sys::PIX_NV12,
];

/// The sizes a device offers for a format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sizes {
    Discrete(Vec<(u32, u32)>),
    /// (min w, max w, step w, min h, max h, step h)
    Stepwise([u32; 6]),
}

/// The frame rates a device offers for a format and size, as frames per second
/// (numerator, denominator), or a range.
#[derive(Clone, Debug, PartialEq)]
pub enum Rates {
    Discrete(Vec<(u32, u32)>),
    /// Lowest and highest frames per second.
    Range(f64, f64),
}

pub fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc_o_nonblock())
        .open(path)
}

fn libc_o_nonblock() -> i32 {
    rustix::fs::OFlags::NONBLOCK.bits() as i32
}

/// The device's name and driver, and whether it captures with streaming I/O.
pub fn identity(f: &File) -> io::Result<(String, String, bool)> {
    let c = sys::querycap(f)?;
    let caps = if c.capabilities & sys::CAP_DEVICE_CAPS != 0 {
        c.device_caps
    } else {
        c.capabilities
    };
    let capture = caps & sys::CAP_VIDEO_CAPTURE != 0 && caps & sys::CAP_STREAMING != 0;
    Ok((sys::text(&c.card), sys::text(&c.driver), capture))
}

/// The pixel formats of the capture queue, with their descriptions.
pub fn formats(f: &File) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for index in 0..256 {
        let mut d = FmtDesc {
            index,
            type_: sys::BUF_TYPE_VIDEO_CAPTURE,
            ..FmtDesc::default()
        };
        if sys::enum_fmt(f, &mut d).is_err() {
            break;
        }
        out.push((d.pixelformat, sys::text(&d.description)));
    }
    out
}

pub fn sizes(f: &File, pixfmt: u32) -> Sizes {
    let mut list = Vec::new();
    for index in 0..1024 {
        let mut s = FrmSizeEnum {
            index,
            pixel_format: pixfmt,
            ..FrmSizeEnum::default()
        };
        if sys::enum_framesizes(f, &mut s).is_err() {
            break;
        }
        if s.type_ != sys::FRMSIZE_TYPE_DISCRETE {
            return Sizes::Stepwise(s.u);
        }
        list.push((s.u[0], s.u[1]));
    }
    Sizes::Discrete(list)
}

pub fn rates(f: &File, pixfmt: u32, width: u32, height: u32) -> Rates {
    let mut list = Vec::new();
    for index in 0..1024 {
        let mut i = FrmIvalEnum {
            index,
            pixel_format: pixfmt,
            width,
            height,
            ..FrmIvalEnum::default()
        };
        if sys::enum_frameintervals(f, &mut i).is_err() {
            break;
        }
        if i.type_ != sys::FRMIVAL_TYPE_DISCRETE {
            // Intervals: min is the fastest rate, max the slowest.
            let fps = |n: u32, d: u32| f64::from(d) / f64::from(n.max(1));
            return Rates::Range(fps(i.u[2], i.u[3]), fps(i.u[0], i.u[1]));
        }
        // An interval num/den seconds is den/num frames per second.
        list.push((i.u[1], i.u[0]));
    }
    Rates::Discrete(list)
}

/// The best format dashcam can record from those offered.
pub fn choose_format(offered: &[u32]) -> Option<u32> {
    PREFERENCE.iter().copied().find(|p| offered.contains(p))
}

/// The offered size nearest to `want` (by area, then by shape).
pub fn choose_size(sizes: &Sizes, want: (u32, u32)) -> (u32, u32) {
    match sizes {
        Sizes::Discrete(list) if !list.is_empty() => {
            let area = |(w, h): (u32, u32)| i64::from(w) * i64::from(h);
            *list
                .iter()
                .min_by_key(|&&(w, h)| {
                    (
                        (area((w, h)) - area(want)).abs(),
                        (i64::from(w) - i64::from(want.0)).abs(),
                    )
                })
                .unwrap_or(&want)
        }
        Sizes::Stepwise([min_w, max_w, step_w, min_h, max_h, step_h]) => {
            let fit = |v: u32, min: u32, max: u32, step: u32| {
                let v = v.clamp(min, max.max(min));
                let step = step.max(1);
                min + (v - min) / step * step
            };
            (
                fit(want.0, *min_w, *max_w, *step_w),
                fit(want.1, *min_h, *max_h, *step_h),
            )
        }
        Sizes::Discrete(_) => want,
    }
}

/// The rate (frames per second as num/den) to ask for: the one nearest to `want`, but
/// never below it when `at_least` (raw cameras are thinned out to `raw_fps` afterwards).
pub fn choose_rate(rates: &Rates, want: f64, at_least: bool) -> Option<(u32, u32)> {
    let fps = |(n, d): (u32, u32)| f64::from(n) / f64::from(d.max(1));
    match rates {
        Rates::Discrete(list) if !list.is_empty() => {
            let ok: Vec<(u32, u32)> = list
                .iter()
                .copied()
                .filter(|r| !at_least || fps(*r) >= want - 1e-6)
                .collect();
            let pool = if ok.is_empty() { list.clone() } else { ok };
            pool.into_iter()
                .min_by(|a, b| (fps(*a) - want).abs().total_cmp(&(fps(*b) - want).abs()))
        }
        Rates::Range(lo, hi) => {
            let f = want.clamp(*lo, *hi);
            Some(((f * 1000.0).round() as u32, 1000))
        }
        Rates::Discrete(_) => None,
    }
}

/// Set the format; returns what the driver made of it.
pub fn set_format(f: &File, pixfmt: u32, width: u32, height: u32) -> io::Result<sys::PixFormat> {
    let mut fmt = Format::default();
    sys::g_fmt(f, &mut fmt)?;
    // SAFETY: the capture queue's format is the `pix` member (type VIDEO_CAPTURE).
    let mut pix = unsafe { fmt.fmt.pix };
    pix.width = width;
    pix.height = height;
    pix.pixelformat = pixfmt;
    pix.field = sys::FIELD_ANY;
    pix.bytesperline = 0;
    pix.sizeimage = 0;
    fmt.fmt.pix = pix;
    sys::s_fmt(f, &mut fmt)?;
    // SAFETY: as above.
    Ok(unsafe { fmt.fmt.pix })
}

/// Ask for a frame rate; returns the rate the driver set, if it tells.
pub fn set_rate(f: &File, rate: (u32, u32)) -> Option<(u32, u32)> {
    let mut p = StreamParm::default();
    sys::g_parm(f, &mut p).ok()?;
    // SAFETY: the capture queue's parameters are the `capture` member.
    let mut cap = unsafe { p.parm.capture };
    if cap.capability & sys::CAP_TIMEPERFRAME != 0 {
        cap.timeperframe = sys::Fract {
            numerator: rate.1,
            denominator: rate.0,
        };
        p.parm.capture = cap;
        if let Err(e) = sys::s_parm(f, &mut p) {
            log::warn!("VIDIOC_S_PARM: {e}");
        }
    }
    let mut p = StreamParm::default();
    sys::g_parm(f, &mut p).ok()?;
    // SAFETY: as above.
    let t = unsafe { p.parm.capture }.timeperframe;
    (t.numerator > 0 && t.denominator > 0).then_some((t.denominator, t.numerator))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_prefer_h264_the_nearest_size_and_a_rate_not_below_the_raw_one() {
        assert_eq!(
            choose_format(&[sys::PIX_YUYV, sys::PIX_MJPEG]),
            Some(sys::PIX_MJPEG)
        );
        assert_eq!(
            choose_format(&[sys::PIX_NV12, sys::PIX_H264, sys::PIX_YUYV]),
            Some(sys::PIX_H264)
        );
        assert_eq!(choose_format(&[sys::fourcc(b"RGB3")]), None);
        let sizes = Sizes::Discrete(vec![(320, 180), (640, 360), (1280, 720), (1920, 1080)]);
        assert_eq!(choose_size(&sizes, (640, 360)), (640, 360));
        assert_eq!(choose_size(&sizes, (800, 600)), (640, 360));
        assert_eq!(choose_size(&sizes, (1920, 1200)), (1920, 1080));
        let step = Sizes::Stepwise([16, 1920, 8, 16, 1080, 8]);
        assert_eq!(choose_size(&step, (642, 2000)), (640, 1080));
        let rates = Rates::Discrete(vec![(60, 1), (40, 1), (25, 1), (5, 1), (1, 1)]);
        assert_eq!(choose_rate(&rates, 30.0, false), Some((25, 1)));
        assert_eq!(choose_rate(&rates, 2.0, true), Some((5, 1)));
        assert_eq!(choose_rate(&rates, 100.0, true), Some((60, 1)));
        assert_eq!(
            choose_rate(&Rates::Range(1.0, 30.0), 2.0, true),
            Some((2000, 1000))
        );
    }
}
