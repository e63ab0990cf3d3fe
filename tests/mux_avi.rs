//! The AVI writer end to end, judged by ffmpeg: an MJPEG stream from ffmpeg's encoder muxed
//! through the small public test API (`dashcam::test_api`) decodes to exactly the encoder's
//! frames with the right rate and duration, and copies of the file as a crash leaves it,
//! cut anywhere, decode exactly their complete frames; the binary's own test pattern, at
//! three sizes and qualities, records into AVIs that decode cleanly.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use dashcam::test_api::{create, Frame, StreamFormat};

/// Run a tool; return (stdout, stderr), failing the test on a non-zero exit.
fn run(tool: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(tool).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
    (stdout, stderr)
}

fn assert_clean(path: &Path) {
    assert_eq!(probe_errors(path), "", "ffprobe {}", path.display());
    assert_eq!(decode_errors(path), "", "ffmpeg decode {}", path.display());
}

fn probe(path: &Path, entries: &str) -> String {
    let p = path.to_str().unwrap();
    let args = ["-v", "error", "-show_entries", entries, "-of", "csv=p=0", p];
    run("ffprobe", &args).0.trim().to_string()
}

/// The JPEGs of a concatenated MJPEG stream as ffmpeg writes it (SOI … EOI each).
fn split_jpegs(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 2;
    while i + 1 < data.len() {
        if data[i] == 0xff
            && data[i + 1] == 0xd9
            && data.get(i + 2..i + 4).is_none_or(|n| n == [0xff, 0xd8])
        {
            out.push(&data[start..i + 2]);
            start = i + 2;
            i = start + 2;
        } else {
            i += 1;
        }
    }
    out
}

/// Offset of the first chunk of `movi` (the tests' own reading of the RIFF layout).
fn first_chunk(file: &[u8]) -> u64 {
    let at = file
        .windows(4)
        .take(4096)
        .position(|w| w == b"movi")
        .expect("a movi list");
    assert_eq!(&file[at - 8..at - 4], b"LIST");
    at as u64 + 4
}

#[test]
fn mjpeg_stream_to_avi_matches_ffmpeg() {
    require_tools();
    let tmp = tmpdir("mux-avi");
    let dir = tmp.path();
    let input = dir.join("in.mjpeg");
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-frames:v",
            "60",
            "-c:v",
            "mjpeg",
            "-pix_fmt",
            "yuvj422p",
            "-q:v",
            "3",
            "-f",
            "mjpeg",
            input.to_str().unwrap(),
        ],
    );
    let reference = framemd5(&input);
    assert_eq!(reference.len(), 60);
    let data = std::fs::read(&input).unwrap();
    let jpegs = split_jpegs(&data);
    assert_eq!(jpegs.len(), 60);

    let format = Arc::new(StreamFormat {
        codec: dashcam::test_api::Codec::Mjpeg,
        width: 320,
        height: 240,
        frame_rate: Some((30, 1)),
        sps: Vec::new(),
        pps: Vec::new(),
    });
    let seg = dir.join("seg.avi");
    let mut w = create(&seg, &format).unwrap();
    let mut sizes = Vec::new();
    let mut header_at_45 = Vec::new();
    for (i, jpeg) in jpegs.iter().enumerate() {
        let n = i + 1;
        let dts = i as i64 * 3000;
        w.push(&Frame {
            data: jpeg.to_vec(),
            keyframe: true,
            pts: dts,
            dts,
            captured: Instant::now(),
            wall: SystemTime::now(),
            format: format.clone(),
            dropped_before: 0,
        })
        .unwrap();
        sizes.push(jpeg.len() as u64);
        if n == 20 || n == 45 {
            w.flush(Some(dts + 3000)).unwrap();
        }
        if n == 45 {
            let on_disk = std::fs::read(&seg).unwrap();
            header_at_45 = on_disk[..first_chunk(&on_disk) as usize].to_vec();
        }
    }
    let summary = w.finish(Some(60 * 3000)).unwrap();
    assert_eq!(summary.frames, 60);
    assert_eq!(summary.duration_ticks, 180_000);
    assert_eq!(summary.bytes, std::fs::metadata(&seg).unwrap().len());

    assert_clean(&seg);
    assert_eq!(framemd5(&seg), reference);
    assert_eq!(
        probe(&seg, "stream=codec_name,width,height,r_frame_rate"),
        "mjpeg,320,240,30/1"
    );
    assert_eq!(probe(&seg, "format=duration"), "2.000000");

    // Where each chunk's JPEG ends, and the file as a crash after 55 frames leaves it: the
    // header as the flush after 45 frames wrote it, 55 chunks behind it.
    let file = std::fs::read(&seg).unwrap();
    let header_len = first_chunk(&file);
    assert_eq!(header_at_45.len() as u64, header_len);
    let mut chunk_ends = Vec::new();
    let mut pos = header_len;
    for s in &sizes {
        chunk_ends.push(pos + 8 + s);
        pos += 8 + s + (s & 1);
    }
    let snapshot_len = chunk_ends[54] + (sizes[54] & 1);
    let mut snapshot = header_at_45.clone();
    snapshot.extend_from_slice(&file[header_len as usize..snapshot_len as usize]);

    // Copies of the crashed file cut anywhere give exactly their complete frames.
    let mid = |k: usize| (chunk_ends[k - 1] + chunk_ends[k]) / 2;
    let mut cuts = vec![
        header_len,         // no frame at all
        chunk_ends[0],      // exactly one frame
        mid(10),            // inside frame 11, before the first flush
        chunk_ends[44] + 4, // inside the chunk header after the flushed part
        mid(50),            // past the flushed sizes
        snapshot.len() as u64,
    ];
    let len = snapshot.len() as u64;
    cuts.extend((1..16).map(|i| header_len + (len - header_len) * i / 16));
    for cut in cuts {
        let complete = chunk_ends.iter().filter(|&&e| e <= cut).count();
        let cut_path = dir.join(format!("cut{cut}.avi"));
        std::fs::write(&cut_path, &snapshot[..cut as usize]).unwrap();
        if complete == 0 {
            // Nothing to decode, but the header alone must still parse.
            run("ffprobe", &["-v", "error", cut_path.to_str().unwrap()]);
            continue;
        }
        let hashes = framemd5(&cut_path);
        // ffmpeg may add the truncated last chunk as one more (damaged) picture.
        let got = hashes.len();
        assert!(
            got == complete || got == complete + 1,
            "cut at {cut}: {got} frames"
        );
        assert_eq!(hashes[..complete], reference[..complete], "cut at {cut}");
    }
}

/// The binary's test pattern (`--source test`) at three sizes and qualities: real time
/// (30 fps), frames that decode cleanly, the size the configuration asks for.
#[test]
fn test_pattern_frames_decode() {
    require_tools();
    let tmp = tmpdir("mux-avi-pattern");
    for (width, height, quality) in [(320, 240, 80), (640, 360, 100), (64, 32, 1)] {
        let dir = tmp.path().join(format!("tp{width}"));
        let cfg = tmp.path().join(format!("tp{width}.toml"));
        std::fs::write(
            &cfg,
            format!("[test_pattern]\nwidth = {width}\nheight = {height}\nfps = 30\nquality = {quality}\n"),
        )
        .unwrap();
        let mut cmd = dashcam();
        cmd.args(["run", "--source", "test", "--config"])
            .arg(&cfg)
            .arg("--dir")
            .arg(&dir);
        let started = Instant::now();
        let rec = Proc::spawn(cmd);
        assert!(
            wait_until(scaled(30.0), || dir.is_dir()
                && segments(&dir).iter().any(|s| s.bytes() > 0)),
            "no segment: {}",
            rec.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(500));
        rec.signal(libc::SIGTERM);
        let out = rec.finish(scaled(30.0));
        let elapsed = started.elapsed();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let segs = segments(&dir);
        assert_eq!(segs.len(), 1, "{}", listing(&dir));
        let seg = &segs[0];
        assert_clean(&seg.path);
        assert_eq!(
            probe(&seg.path, "stream=codec_name,width,height"),
            format!("mjpeg,{width},{height}")
        );
        let frames = meta_i64(seg.meta(), "frames").expect("frames");
        assert!(frames >= 5, "{frames} frames");
        assert_eq!(framemd5(&seg.path).len() as i64, frames);
        // Paced at 30 fps: never more frames than real time allows.
        let allowed = (elapsed.as_secs_f64() * 30.0).ceil() as i64 + 1;
        assert!(frames <= allowed, "{frames} frames in {elapsed:?}");
    }
}
