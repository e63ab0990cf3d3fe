//! The MJPEG live view: `GET /api/live.mjpeg` as `multipart/x-mixed-replace`, one part per
//! JPEG at the capped preview rate, each the camera's own JPEG byte for byte (never
//! decoded or re-encoded). Every part is followed at once by the next boundary, so a
//! browser shows it without waiting for the next one.
//!
//! It owns the part framing and the viewer's thread; the hub chooses the frames. A write
//! blocked for [`super::STALL`] ends the viewer.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::RecvTimeoutError;

use super::lane::Out;
use super::ws::Feed;
use super::{client_state, ClientState, Ending};

/// The multipart boundary.
pub(crate) const BOUNDARY: &str = "dashcamlive";

/// How often the thread looks whether the page is still there while no picture comes.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The response's content type.
pub(crate) fn content_type() -> String {
    format!("multipart/x-mixed-replace; boundary={BOUNDARY}")
}

/// Append one part (its head, the JPEG, the next boundary) to `buf`. `X-Capture-Ms` is the
/// capture's wall time (Unix ms, the Pi's clock): the page shows the latency from it.
pub(crate) fn part(buf: &mut Vec<u8>, jpeg: &[u8], sequence: u64, wall: SystemTime) {
    let ms = wall
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    buf.extend_from_slice(
        format!(
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame: {sequence}\r\nX-Capture-Ms: {ms}\r\n\r\n",
            jpeg.len()
        )
        .as_bytes(),
    );
    buf.extend_from_slice(jpeg);
    buf.extend_from_slice(b"\r\n--");
    buf.extend_from_slice(BOUNDARY.as_bytes());
    buf.extend_from_slice(b"\r\n");
}

/// Send until the page goes, the socket stalls, or the web role stops. The response head
/// has been written.
pub(crate) fn run(mut stream: TcpStream, feed: &Feed<'_>) -> Ending {
    let mut buf = Vec::with_capacity(64 * 1024);
    buf.extend_from_slice(b"--");
    buf.extend_from_slice(BOUNDARY.as_bytes());
    buf.extend_from_slice(b"\r\n");
    if let Err(e) = stream.write_all(&buf) {
        return Ending::of_io(&e);
    }
    let mut sequence = 0u64;
    let mut checked = Instant::now();
    loop {
        if (feed.stopping)() {
            return Ending::Stopped;
        }
        match feed.lane.recv_timeout(CHECK_EVERY) {
            Ok(Out::Jpeg(jpeg, wall)) => {
                buf.clear();
                part(&mut buf, &jpeg, sequence, wall);
                sequence += 1;
                if let Err(e) = stream.write_all(&buf) {
                    return Ending::of_io(&e);
                }
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ending::Stopped,
        }
        if checked.elapsed() >= CHECK_EVERY {
            checked = Instant::now();
            if client_state(&stream) != ClientState::Quiet {
                return Ending::Closed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_the_jpeg_unchanged_then_the_next_boundary() {
        let jpeg = [0xff, 0xd8, 1, 2, 3, 0xff, 0xd9];
        let mut buf = Vec::new();
        part(
            &mut buf,
            &jpeg,
            7,
            UNIX_EPOCH + Duration::from_millis(1_800_000_000_123),
        );
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with(
            "Content-Type: image/jpeg\r\nContent-Length: 7\r\nX-Frame: 7\r\nX-Capture-Ms: 1800000000123\r\n\r\n"
        ), "{text}");
        let at = buf
            .windows(2)
            .position(|w| w == [0xff, 0xd8])
            .expect("jpeg");
        assert_eq!(&buf[at..at + 7], &jpeg);
        assert!(buf.ends_with(b"\r\n--dashcamlive\r\n"));
    }
}
