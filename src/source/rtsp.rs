//! IP cameras over RTSP (`--source rtsp://[user@]host[:port]/path`), with `retina`.
//!
//! retina is an async client; it runs here on a current-thread tokio runtime owned by this
//! source, so the async code stays inside the capture thread and the rest of dashcam stays
//! synchronous. It owns the session: DESCRIBE (Basic or Digest authentication), SETUP of
//! the video stream (TCP interleaved by default, UDP when `[camera] rtsp_transport =
//! "udp"`), PLAY, and turning retina's frames (length-prefixed AVC, as the MP4 writer takes
//! them) into [`Frame`]s timed by their RTP timestamps. Parameter sets come from the SDP or,
//! when the camera sends them in band (or changes them), from the stream. An H.265 camera
//! gets a clear error naming the codec and the camera setting to change.
//!
//! Credentials: the user name from the URL or `[camera] username`, the password from
//! `[camera] password_file` (else the URL). They go to retina and nowhere else: every
//! message names the camera by its URL without them ([`RtspUrl`]'s `Display`). A lost
//! connection, a refused password, a camera that stops sending are
//! [`SourceError::Lost`]; the capture loop connects again after a backoff.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use log::{debug, info};
use retina::client::{
    Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions, Transport,
};
use retina::codec::{CodecItem, ParametersRef};

use crate::frame::{BufferPool, Codec, Frame, StreamFormat, TIMESCALE};
use crate::source::camera_config::{CameraConfig, RtspTransport};
use crate::source::redact::RtspUrl;
use crate::source::{Retry, Source, SourceError};

/// How long connecting (DESCRIBE, SETUP, PLAY) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RtspSource {
    name: String,
    rt: tokio::runtime::Runtime,
    /// Always `Some` until dropped (taken out in `Drop`, inside the runtime).
    session: Option<Pin<Box<Demuxed>>>,
    stream: usize,
    format: Option<Arc<StreamFormat>>,
    stall: Duration,
    first_ts: Option<i64>,
    pool: Option<BufferPool>,
    pending_dropped: u32,
}

/// What to tell the user about an H.265 camera.
pub const H265_HELP: &str = "the camera sends H.265 (HEVC) video, which dashcam does not record: set the camera's video encoding to H.264 (Hikvision: Configuration > Video/Audio > Video > Video Encoding; Dahua: Setting > Camera > Encode > Compression)";

/// The user name and password to use.
fn credentials(url: &RtspUrl, cam: &CameraConfig) -> Result<Option<Credentials>, String> {
    let password = match &cam.password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        ),
        None => url.password.clone(),
    };
    let user = url.user.clone().or_else(|| cam.username.clone());
    Ok(match (user, password) {
        (None, None) => None,
        (user, password) => Some(Credentials {
            username: user.unwrap_or_default(),
            password: password.unwrap_or_default(),
        }),
    })
}

/// A retina error in words, and how soon to try again.
fn connect_error(e: &retina::Error) -> (String, Retry) {
    let text = e.to_string();
    if text.contains("401") || text.contains("Unauthorized") || text.contains("Authentication") {
        (
            "the camera refused the user name or password (401 Unauthorized): check camera.username and the password file".into(),
            Retry::Later,
        )
    } else {
        (format!("cannot connect: {text}"), Retry::Soon)
    }
}

/// SPS and PPS from an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1).
fn parameter_sets(avcc: &[u8]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut p = 5usize;
    let take = |p: &mut usize, n: usize| -> Option<&[u8]> {
        let s = avcc.get(*p..*p + n)?;
        *p += n;
        Some(s)
    };
    let num_sps = take(&mut p, 1)?[0] & 0x1f;
    let mut sps = Vec::new();
    for _ in 0..num_sps {
        let len = take(&mut p, 2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let s = take(&mut p, len)?;
        if sps.is_empty() {
            sps = s.to_vec();
        }
    }
    let num_pps = take(&mut p, 1)?[0];
    let mut pps = Vec::new();
    for _ in 0..num_pps {
        let len = take(&mut p, 2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        pps.push(take(&mut p, len)?.to_vec());
    }
    (!sps.is_empty() && !pps.is_empty()).then_some((sps, pps))
}

impl RtspSource {
    pub fn open(
        url: &RtspUrl,
        cam: &CameraConfig,
        pool: Option<BufferPool>,
    ) -> Result<RtspSource, SourceError> {
        let name = url.to_string();
        let lost = |why: String, retry| SourceError::lost(name.clone(), why, retry);
        let creds = credentials(url, cam).map_err(|why| lost(why, Retry::Later))?;
        let parsed = url::Url::parse(&url.url)
            .map_err(|e| lost(format!("not a valid URL: {e}"), Retry::Later))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| lost(format!("cannot start the RTSP runtime: {e}"), Retry::Later))?;
        let transport = match cam.rtsp_transport {
            RtspTransport::Tcp => Transport::Tcp(Default::default()),
            RtspTransport::Udp => Transport::Udp(Default::default()),
        };
        let connect = async {
            let options = SessionOptions::default()
                .creds(creds)
                .user_agent(format!("dashcam/{}", env!("CARGO_PKG_VERSION")));
            let mut session = Session::describe(parsed, options)
                .await
                .map_err(|e| connect_error(&e))?;
            let Some(stream) = session.streams().iter().position(|s| s.media() == "video") else {
                return Err((
                    "the camera offers no video stream".to_string(),
                    Retry::Later,
                ));
            };
            let encoding = session.streams()[stream]
                .encoding_name()
                .to_ascii_lowercase();
            match encoding.as_str() {
                "h264" => {}
                "h265" | "hevc" => return Err((H265_HELP.to_string(), Retry::Later)),
                other => {
                    return Err((
                        format!(
                            "the camera sends {other} video, which dashcam does not record: set the camera's video encoding to H.264"
                        ),
                        Retry::Later,
                    ))
                }
            }
            session
                .setup(stream, SetupOptions::default().transport(transport))
                .await
                .map_err(|e| connect_error(&e))?;
            let playing = session
                .play(PlayOptions::default())
                .await
                .map_err(|e| connect_error(&e))?;
            let demuxed = playing.demuxed().map_err(|e| connect_error(&e))?;
            Ok::<_, (String, Retry)>((demuxed, stream))
        };
        let (demuxed, stream) = rt
            .block_on(async { tokio::time::timeout(CONNECT_TIMEOUT, connect).await })
            .map_err(|_| {
                lost(
                    format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                    Retry::Soon,
                )
            })?
            .map_err(|(why, retry)| lost(why, retry))?;
        info!(
            "{name}: playing ({} transport)",
            match cam.rtsp_transport {
                RtspTransport::Tcp => "TCP interleaved",
                RtspTransport::Udp => "UDP",
            }
        );
        let mut source = RtspSource {
            name,
            rt,
            session: Some(Box::pin(demuxed)),
            stream,
            format: None,
            stall: Duration::from_secs_f64(cam.stall_timeout),
            first_ts: None,
            pool,
            pending_dropped: 0,
        };
        source.update_format();
        Ok(source)
    }

    /// The stream format from retina's current parameters (from the SDP or in band).
    fn update_format(&mut self) {
        let Some(session) = self.session.as_ref() else {
            return;
        };
        let Some(ParametersRef::Video(vp)) = session
            .streams()
            .get(self.stream)
            .and_then(|s| s.parameters())
        else {
            return;
        };
        let Some((sps, pps)) = parameter_sets(vp.extra_data()) else {
            return;
        };
        let (width, height) = vp.pixel_dimensions();
        let fresh = StreamFormat {
            codec: Codec::H264,
            width,
            height,
            frame_rate: vp.frame_rate().map(|(den, num)| (num, den)),
            sps,
            pps,
        };
        if self.format.as_deref() != Some(&fresh) {
            debug!("{}: parameters {}x{}", self.name, width, height);
            self.format = Some(Arc::new(fresh));
        }
    }
}

impl Drop for RtspSource {
    fn drop(&mut self) {
        // retina's session spawns its TEARDOWN on the runtime when dropped.
        let _inside = self.rt.enter();
        self.session = None;
    }
}

impl Source for RtspSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        loop {
            let stall = self.stall;
            let Some(session) = self.session.as_mut() else {
                return Ok(None);
            };
            let item = self
                .rt
                .block_on(async { tokio::time::timeout(stall, session.next()).await });
            let frame = match item {
                Err(_) => {
                    return Err(SourceError::lost(
                        self.name.clone(),
                        format!("no frame for {:.0} s", stall.as_secs_f64()),
                        Retry::Soon,
                    ))
                }
                Ok(None) => {
                    return Err(SourceError::lost(
                        self.name.clone(),
                        "the camera ended the stream",
                        Retry::Soon,
                    ))
                }
                Ok(Some(Err(e))) => {
                    return Err(SourceError::lost(
                        self.name.clone(),
                        format!("connection lost: {e}"),
                        Retry::Soon,
                    ))
                }
                Ok(Some(Ok(CodecItem::VideoFrame(f)))) if f.stream_id() == self.stream => f,
                Ok(Some(Ok(_))) => continue,
            };
            if frame.has_new_parameters() || self.format.is_none() {
                self.update_format();
            }
            let Some(format) = self.format.clone() else {
                // No parameter sets yet (none in the SDP, none in band so far).
                self.pending_dropped = self.pending_dropped.saturating_add(1);
                continue;
            };
            let ts = frame.timestamp();
            let rate = i64::from(ts.clock_rate().get());
            let first = *self.first_ts.get_or_insert(ts.elapsed());
            let pts = (ts.elapsed() - first) * i64::from(TIMESCALE) / rate.max(1);
            let mut data = self.pool.as_ref().map(BufferPool::take).unwrap_or_default();
            data.clear();
            data.extend_from_slice(frame.data());
            return Ok(Some(Frame {
                data,
                keyframe: frame.is_random_access_point(),
                pts,
                dts: pts,
                captured: Instant::now(),
                wall: SystemTime::now(),
                format,
                dropped_before: std::mem::take(&mut self.pending_dropped),
            }));
        }
    }

    fn is_live(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("RTSP camera {}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avcc_record_gives_the_parameter_sets() {
        let rec = [
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 3, 0x67, 0x64, 0x1f, 1, 0, 2, 0x68, 0xee,
        ];
        let (sps, pps) = parameter_sets(&rec).expect("parsed");
        assert_eq!(sps, [0x67, 0x64, 0x1f]);
        assert_eq!(pps, [vec![0x68, 0xee]]);
        assert!(parameter_sets(&rec[..9]).is_none());
    }

    #[test]
    fn the_password_file_wins_and_is_trimmed() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").expect("write");
        let url = RtspUrl::parse("rtsp://admin:inurl@cam/x").expect("url");
        let cam = CameraConfig {
            password_file: Some(file),
            ..CameraConfig::default()
        };
        let c = credentials(&url, &cam).expect("creds").expect("some");
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("admin", "s3cret")
        );
        let none = RtspUrl::parse("rtsp://cam/x").expect("url");
        assert!(credentials(&none, &CameraConfig::default())
            .expect("ok")
            .is_none());
    }
}
