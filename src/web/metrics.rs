//! `/metrics` in the Prometheus text format 0.0.4 (`# HELP`, `# TYPE`, the `dashcam_`
//! prefix, `_total` counters, base units), and the counters the web role keeps itself:
//! requests by status code, open replay streams, live viewers and event streams.
//!
//! Rendering is pure (a [`MetricsView`] and the counters in, text out). Written by hand:
//! `prometheus-client` is 17 crates for a dozen lines of text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::backend::MetricsView;

/// The counters of the web role.
#[derive(Default)]
pub struct WebCounters {
    by_code: Mutex<BTreeMap<u16, u64>>,
    pub replay_viewers: AtomicU64,
    /// Set from the live view before each rendering.
    pub live_viewers: AtomicU64,
    /// `GET /api/events` streams open now.
    pub event_streams: AtomicU64,
    /// Streams dropped because the client took nothing for a while.
    pub event_streams_stalled: AtomicU64,
    /// Events lost for clients too slow to take them.
    pub event_stream_lost: AtomicU64,
}

impl WebCounters {
    pub fn count(&self, status: u16) {
        if let Ok(mut m) = self.by_code.lock() {
            *m.entry(status).or_insert(0) += 1;
        }
    }

    fn codes(&self) -> BTreeMap<u16, u64> {
        self.by_code.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// One metric with its help and type, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP dashcam_{name} {help}");
    let _ = writeln!(out, "# TYPE dashcam_{name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "dashcam_{name}{labels} {value}");
    }
}

fn one(value: impl ToString) -> Vec<(String, String)> {
    vec![(String::new(), value.to_string())]
}

fn float(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".into()
    }
}

/// The whole exposition.
pub fn render(m: &MetricsView, web: &WebCounters) -> String {
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "segments_closed_total",
        "counter",
        "Segments closed since the start.",
        &one(m.segments_closed),
    );
    family(
        &mut out,
        "frames_written_total",
        "counter",
        "Frames made durable (fdatasynced) since the start.",
        &one(m.frames_written),
    );
    family(
        &mut out,
        "frames_dropped_total",
        "counter",
        "Frames lost since the start (writer too slow, drive away, corrupt input).",
        &one(m.frames_dropped),
    );
    family(
        &mut out,
        "partial_segments",
        "gauge",
        "Segments on the drive that were closed early (partial).",
        &one(m.partial_segments),
    );
    if let Some(q) = m.queue_frames {
        family(
            &mut out,
            "queue_frames",
            "gauge",
            "Frames waiting between capture and writer.",
            &one(q),
        );
    }
    if let Some(b) = m.current_segment_bytes {
        family(
            &mut out,
            "current_segment_bytes",
            "gauge",
            "Bytes of the segment being written.",
            &one(b),
        );
    }
    if let Some(f) = m.fps {
        family(
            &mut out,
            "fps",
            "gauge",
            "Frames per second reaching the disk (measured).",
            &one(float(f)),
        );
    }
    if let Some(a) = m.last_sync_age_s {
        family(
            &mut out,
            "last_sync_age_seconds",
            "gauge",
            "Seconds since the last fdatasync of footage.",
            &one(float(a)),
        );
    }
    if let Some(f) = m.free_bytes {
        family(
            &mut out,
            "free_bytes",
            "gauge",
            "Free space on the footage drive.",
            &one(f),
        );
    }
    family(
        &mut out,
        "used_bytes",
        "gauge",
        "Footage kept (loop, locked and saved).",
        &one(m.used_bytes),
    );
    family(
        &mut out,
        "locked_bytes",
        "gauge",
        "Footage in locked/ and saved/.",
        &one(m.locked_bytes),
    );
    if let Some(q) = m.quota_bytes {
        family(
            &mut out,
            "quota_bytes",
            "gauge",
            "The footage limit in force.",
            &one(q),
        );
    }
    family(
        &mut out,
        "quota_deletions_total",
        "counter",
        "Loop segments deleted to keep the quota since the start.",
        &one(m.quota_deletions),
    );
    family(
        &mut out,
        "recording",
        "gauge",
        "1 while frames are being recorded.",
        &one(u8::from(m.recording)),
    );
    let codes: Vec<(String, String)> = web
        .codes()
        .into_iter()
        .map(|(code, n)| (format!("{{code=\"{code}\"}}"), n.to_string()))
        .collect();
    family(
        &mut out,
        "http_requests_total",
        "counter",
        "HTTP requests answered, by status code.",
        &codes,
    );
    family(
        &mut out,
        "live_viewers",
        "gauge",
        "Clients watching the live view.",
        &one(web.live_viewers.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        "replay_viewers",
        "gauge",
        "Clients watching a replay of recorded footage.",
        &one(web.replay_viewers.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        "event_streams",
        "gauge",
        "Clients reading the events (GET /api/events).",
        &one(web.event_streams.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        "event_streams_stalled_total",
        "counter",
        "Event streams dropped because the client took nothing for a while.",
        &one(web.event_streams_stalled.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        "event_stream_events_lost_total",
        "counter",
        "Events not sent to a client that was too slow to take them.",
        &one(web.event_stream_lost.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        "uptime_seconds",
        "gauge",
        "Seconds since the process started.",
        &one(float(m.uptime_s)),
    );
    family(
        &mut out,
        "build_info",
        "gauge",
        "Build information; the value is always 1.",
        &[(
            format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")),
            "1".into(),
        )],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_type_and_counters_end_in_total() {
        let web = WebCounters::default();
        web.count(200);
        web.count(200);
        web.count(404);
        let text = render(
            &MetricsView {
                frames_written: 30,
                fps: Some(29.97),
                ..MetricsView::default()
            },
            &web,
        );
        assert!(
            text.contains("dashcam_http_requests_total{code=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("dashcam_frames_written_total 30\n"));
        assert!(text.contains("dashcam_build_info{version="));
        let mut last_type = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("type line");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
                last_type = Some(name.to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().expect("name");
                assert_eq!(Some(name.to_string()), last_type, "{line}");
            }
        }
    }
}
