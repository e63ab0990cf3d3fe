//! `dashcam cameras`: the V4L2 capture devices with their formats, sizes and rates, and
//! the Pi camera module as `rpicam-hello --list-cameras` sees it.
//!
//! It owns only the listing text. It opens devices read-only for the listing and never
//! streams from them.

use std::path::PathBuf;
use std::process::Command;

use super::device::{self, Rates, Sizes};
use super::sys;

/// `/dev/video*` in numeric order.
fn video_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name.strip_prefix("video")?.parse::<u32>().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

fn rate_list(r: &Rates) -> String {
    match r {
        Rates::Discrete(list) if !list.is_empty() => list
            .iter()
            .map(|(n, d)| {
                let f = f64::from(*n) / f64::from((*d).max(1));
                format!("{}", (f * 1000.0).round() / 1000.0)
            })
            .collect::<Vec<_>>()
            .join("/"),
        Rates::Range(lo, hi) => format!("{lo:.2}-{hi:.2}"),
        Rates::Discrete(_) => "?".into(),
    }
}

/// The listing of one device, `None` when it is not a capture device.
fn describe_device(path: &std::path::Path) -> Option<String> {
    let f = match device::open(path) {
        Ok(f) => f,
        Err(e) => return Some(format!("{}: cannot open: {e}\n", path.display())),
    };
    let (card, driver, capture) = device::identity(&f).ok()?;
    if !capture {
        return None;
    }
    let formats = device::formats(&f);
    let chosen = device::choose_format(&formats.iter().map(|(c, _)| *c).collect::<Vec<_>>());
    let mut out = format!(
        "{}: {card} (driver {driver}); --source v4l2:{}\n",
        path.display(),
        path.display()
    );
    for (code, desc) in &formats {
        let usable = device::PREFERENCE.contains(code);
        let mark = if Some(*code) == chosen {
            " [dashcam records this]"
        } else if usable {
            ""
        } else {
            " (not used by dashcam)"
        };
        out.push_str(&format!("  {} ({desc}){mark}\n", sys::fourcc_name(*code)));
        if !usable {
            continue;
        }
        match device::sizes(&f, *code) {
            Sizes::Discrete(list) => {
                for (w, h) in list {
                    let r = device::rates(&f, *code, w, h);
                    out.push_str(&format!("    {w}x{h} @ {} fps\n", rate_list(&r)));
                }
            }
            Sizes::Stepwise([min_w, max_w, step_w, min_h, max_h, step_h]) => {
                out.push_str(&format!(
                    "    {min_w}x{min_h} to {max_w}x{max_h} (steps {step_w}x{step_h})\n"
                ));
            }
        }
    }
    Some(out)
}

/// The whole listing; "no camera found" when there is none.
pub fn listing() -> String {
    let mut out = String::new();
    for node in video_nodes() {
        if let Some(text) = describe_device(&node) {
            out.push_str(&text);
        }
    }
    if let Ok(o) = Command::new("rpicam-hello").arg("--list-cameras").output() {
        {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            if text.contains("No cameras available") || text.trim().is_empty() {
                out.push_str("Pi camera (rpicam-hello --list-cameras): none detected\n");
            } else {
                out.push_str("Pi camera (rpicam-hello --list-cameras); --source rpicam:\n");
                for line in text.lines() {
                    out.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    if out.is_empty() {
        out.push_str(
            "no camera found: no V4L2 capture device (/dev/video*) and no rpicam-hello for a Pi camera\n",
        );
    }
    out
}
