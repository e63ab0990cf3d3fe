//! The live view's endpoints, behind the same gate as the rest of the API (Host, the
//! session when a password is set):
//!
//! - `GET /api/live`: what the live view offers now (JSON: codec, size, viewers, the URLs,
//!   why there is no picture);
//! - `GET /api/live.ws`: the WebSocket (same origin only, like every change);
//! - `GET /api/live.mjpeg`: the MJPEG stream (MJPEG cameras);
//! - `GET /api/live.m3u8`, `GET /api/live/init-G.mp4`, `GET /api/live/N.m4s`: HLS.
//!
//! A full house is `503 too_many_viewers`; the live view switched off is `503 live_off`;
//! the wrong kind of stream for the camera is `409 wrong_codec`. It owns these answers;
//! the hub and the viewer threads do the work.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::hub::{Kind, Refused};
use super::{mjpeg, ws, LiveView};
use crate::frame::Codec;
use crate::web::auth;
use crate::web::http::{Body, Request, Response};

/// Paths of the live view, and their methods (for 405 answers).
pub(crate) const PATHS: &[&str] = &[
    "/api/live",
    "/api/live.ws",
    "/api/live.mjpeg",
    "/api/live.m3u8",
];

/// HLS segments a playlist waits for at first (and how long, at most).
const PLAYLIST_SEGMENTS: usize = 3;
const PLAYLIST_WAIT: Duration = Duration::from_secs(10);

/// Whether `path` is the live view's.
pub(crate) fn owns(path: &str) -> bool {
    PATHS.contains(&path) || path.starts_with("/api/live/")
}

/// Answer a request for one of the live view's paths; `live` is `None` when it is
/// switched off.
pub(crate) fn route(live: Option<&Arc<LiveView>>, req: &Request) -> Response {
    if req.method != "GET" {
        return Response::error(
            405,
            "method_not_allowed",
            &format!("{} is not allowed on {}; use GET", req.method, req.path),
        )
        .with("Allow", "GET");
    }
    let Some(live) = live else {
        if req.path == "/api/live" {
            return Response::json(
                200,
                &json!({
                    "enabled": false,
                    "message": "The live view is switched off ([web] live = false).",
                }),
            );
        }
        return Response::error(
            503,
            "live_off",
            "the live view is switched off on this dashcam ([web] live = false)",
        );
    };
    match req.path.as_str() {
        "/api/live" => info(live),
        "/api/live.ws" => websocket(live, req),
        "/api/live.mjpeg" => mjpeg_stream(live),
        "/api/live.m3u8" => playlist(live),
        p => hls_file(live, p),
    }
}

/// The answer of `GET /api/live` (see docs/api.md).
#[derive(Serialize)]
struct Info {
    enabled: bool,
    codec: Option<&'static str>,
    width: Option<u32>,
    height: Option<u32>,
    viewers: usize,
    max_viewers: usize,
    preview_fps: f64,
    ws: Option<&'static str>,
    hls: Option<&'static str>,
    mjpeg: Option<&'static str>,
    message: Option<String>,
    picture_age_s: Option<f64>,
    hls_segments: usize,
    viewers_total: u64,
    viewer_timeouts: u64,
    fragments_skipped: u64,
    frames_handed_over: u64,
    frames_dropped_for_view: u64,
}

fn info(live: &LiveView) -> Response {
    let s = live.hub().snapshot();
    let h264 = s.codec != Some(Codec::Mjpeg);
    let mjpeg = s.codec != Some(Codec::H264);
    let info = Info {
        enabled: true,
        codec: s.codec.map(Codec::name),
        width: s.width,
        height: s.height,
        viewers: s.viewers,
        max_viewers: live.settings().max_viewers,
        preview_fps: live.settings().preview_fps,
        ws: h264.then_some("/api/live.ws"),
        hls: h264.then_some("/api/live.m3u8"),
        mjpeg: mjpeg.then_some("/api/live.mjpeg"),
        message: s
            .refused
            .map(|r| format!("This camera's stream cannot be shown: {r}."))
            .or_else(|| live.no_picture()),
        picture_age_s: s.picture_age.map(|a| a.as_secs_f64()),
        hls_segments: s.hls_segments,
        viewers_total: s.viewers_total,
        viewer_timeouts: s.timeouts_total,
        fragments_skipped: s.skipped_total,
        frames_handed_over: s.handed_over,
        frames_dropped_for_view: s.dropped_for_view,
    };
    let mut body = serde_json::to_vec(&info).unwrap_or_default();
    body.push(b'\n');
    Response::new(200, "application/json", Body::Bytes(body)).with("Cache-Control", "no-store")
}

fn refused(r: Refused) -> Response {
    match r {
        Refused::TooMany { max } => Response::error(
            503,
            "too_many_viewers",
            &format!(
                "{max} viewer{} watching already (max_viewers = {max}); try again when one stops",
                if max == 1 { " is" } else { "s are" }
            ),
        )
        .with("Retry-After", "5"),
        Refused::Stopping => Response::error(503, "unavailable", "the dashcam is stopping"),
    }
}

fn wrong_codec(camera: Codec, use_instead: &str) -> Response {
    Response::error(
        409,
        "wrong_codec",
        &format!(
            "the camera sends {}: its live view is {use_instead}",
            match camera {
                Codec::H264 => "H.264",
                Codec::Mjpeg => "MJPEG",
            }
        ),
    )
}

fn websocket(live: &Arc<LiveView>, req: &Request) -> Response {
    // A WebSocket is not bound by the same-origin policy: another site's page could open
    // one with the phone's cookie. Only this page may.
    if let Err(m) = auth::same_origin(req) {
        return Response::error(403, "cross_origin", &m);
    }
    let key = match ws::accept(req) {
        Ok(k) => k,
        Err((status, m)) => {
            let word = if status == 426 {
                "upgrade_required"
            } else {
                "bad_request"
            };
            return Response::error(status, word, &m).with("Upgrade", "websocket");
        }
    };
    if live.hub().snapshot().codec == Some(Codec::Mjpeg) {
        return wrong_codec(Codec::Mjpeg, "/api/live.mjpeg");
    }
    let ticket = match live.join(Kind::Fragments) {
        Ok(t) => t,
        Err(r) => return refused(r),
    };
    let me = live.clone();
    Response {
        status: 101,
        headers: vec![
            ("Upgrade", "websocket".into()),
            ("Connection", "Upgrade".into()),
            ("Sec-WebSocket-Accept", key),
        ],
        body: Body::Takeover(Box::new(move |stream| me.serve(ticket, stream))),
        hold: None,
    }
}

fn mjpeg_stream(live: &Arc<LiveView>) -> Response {
    if live.hub().snapshot().codec == Some(Codec::H264) {
        return wrong_codec(Codec::H264, "/api/live.ws (or /api/live.m3u8)");
    }
    let ticket = match live.join(Kind::Jpegs) {
        Ok(t) => t,
        Err(r) => return refused(r),
    };
    let me = live.clone();
    Response::new(
        200,
        &mjpeg::content_type(),
        Body::Takeover(Box::new(move |stream| me.serve(ticket, stream))),
    )
    .with("Cache-Control", "no-store")
    .with("X-Preview-Fps", live.settings().preview_fps.to_string())
}

fn playlist(live: &LiveView) -> Response {
    if live.hub().snapshot().codec == Some(Codec::Mjpeg) {
        return wrong_codec(Codec::Mjpeg, "/api/live.mjpeg");
    }
    match live.hub().playlist(PLAYLIST_SEGMENTS, PLAYLIST_WAIT) {
        Some(text) => Response::new(
            200,
            "application/vnd.apple.mpegurl",
            Body::Bytes(text.into_bytes()),
        )
        .with("Cache-Control", "no-store"),
        None => Response::error(
            503,
            "no_picture",
            &live
                .no_picture()
                .unwrap_or_else(|| "no picture from the camera yet; try again".into()),
        )
        .with("Retry-After", "2"),
    }
}

fn hls_file(live: &LiveView, path: &str) -> Response {
    let name = path.strip_prefix("/api/live/").unwrap_or("");
    let gone = || {
        Response::error(
            404,
            "not_found",
            &format!("{path} is no longer held (the live view keeps a few seconds)"),
        )
    };
    if let Some(g) = name
        .strip_prefix("init-")
        .and_then(|r| r.strip_suffix(".mp4"))
    {
        return match g.parse::<u32>().ok().and_then(|g| live.hub().hls_init(g)) {
            Some(b) => Response::new(200, "video/mp4", Body::Bytes(b.to_vec()))
                .with("Cache-Control", "no-store"),
            None => gone(),
        };
    }
    if let Some(n) = name.strip_suffix(".m4s") {
        return match n
            .parse::<u64>()
            .ok()
            .and_then(|n| live.hub().hls_segment(n))
        {
            Some(b) => {
                Response::new(200, "video/mp4", Body::Bytes(b)).with("Cache-Control", "no-store")
            }
            None => gone(),
        };
    }
    Response::error(404, "not_found", &format!("nothing at {path}"))
}
