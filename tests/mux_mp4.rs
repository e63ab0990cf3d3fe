//! The fragmented MP4 writer end to end, judged by ffmpeg: x264 streams with and without
//! B-frames, three stream clocks and three ways of cutting fragments, each file decoded
//! frame by frame (`-f framemd5`) against the encoder's input, its presentation times and
//! duration checked, the page rule of the fragment headers checked with the tests' own box
//! walker, and copies of it cut anywhere inside its last fragment (as a crash leaves it)
//! decoding every complete fragment. The writer is driven through the small public test API
//! (`dashcam::test_api`), and through the binary for the crate's own H.264 source.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use common::*;
use dashcam::test_api::{create, Codec, Frame, MuxSummary, StreamFormat};
use h264_reader::nal::sps::{PicOrderCntType, SeqParameterSet};
use h264_reader::nal::{Nal, RefNal};
use h264_reader::rbsp::BitRead;
use serde_json::Value;

/// Page size the writer keeps fragment headers within (see the fmp4 writer's docs).
const PAGE: u64 = 4096;

fn run(tool: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(tool).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
    (stdout, stderr)
}

/// Frame hashes of `path`, each frame as decoded (`-fps_mode passthrough`).
fn hashes(path: &str) -> Vec<String> {
    framemd5(Path::new(path))
}

/// Compare frame hash lists without printing hundreds of hashes.
fn assert_same_frames(got: &[String], want: &[String], what: &str) {
    let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got.len() == want.len() && first_diff.is_none(),
        "{what}: {} frames, expected {}, first difference at {first_diff:?}",
        got.len(),
        want.len()
    );
}

fn assert_clean(file: &str) {
    let p = Path::new(file);
    assert_eq!(probe_errors(p), "", "ffprobe {file}");
    assert_eq!(decode_errors(p), "", "ffmpeg {file}");
}

/// One fragment as the tests' own walker sees it: where its header starts (the first of
/// the boxes before its moof that belong to it: prft, dashcam's uuid), where the moof is,
/// and where the header ends (the mdat header included).
struct FragmentHeader {
    start: u64,
    moof: u64,
    end: u64,
}

fn fragment_headers(file: &[u8]) -> Vec<FragmentHeader> {
    let top = mp4_top_boxes(file).expect("the file's top-level boxes");
    let mut out = Vec::new();
    for (i, (kind, off, size)) in top.iter().enumerate() {
        if kind != "moof" {
            continue;
        }
        let mut first = i;
        while first > 0 && matches!(top[first - 1].0.as_str(), "prft" | "uuid") {
            first -= 1;
        }
        out.push(FragmentHeader {
            start: top[first].1 as u64,
            moof: *off as u64,
            end: (off + size + 8) as u64,
        });
    }
    out
}

impl FragmentHeader {
    /// Larger than a page: its moof is written as `free`, then renamed.
    fn two_phase(&self) -> bool {
        self.end - self.start > PAGE
    }
}

/// How the test assigns stream timestamps to access units.
#[derive(Clone, Copy, Debug)]
enum Clock {
    /// dts = decode index, pts = display index (negative offsets for B-frames).
    DecodeIndex,
    /// dts = decode index − 2 (what a reordering encoder reports), both offset by a
    /// large stream start time.
    Delayed,
}

/// How the test cuts fragments.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Before each keyframe (every GOP), telling the next dts.
    Keyframes,
    /// Every 40 frames, in the middle of GOPs, without the next dts.
    Every40,
    /// One fragment for the whole stream: its moof exceeds a page (two-phase write).
    Single,
}

/// NAL units of an Annex B byte stream (without start codes).
fn annexb_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new(); // (start code position, payload position)
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let sc = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            starts.push((sc, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &(_, payload)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(data.len(), |&(sc, _)| sc);
        let mut nal = &data[payload..end];
        while nal.last() == Some(&0) {
            nal = &nal[..nal.len() - 1];
        }
        if !nal.is_empty() {
            nals.push(nal);
        }
    }
    nals
}

struct TestAu {
    avcc: Vec<u8>,
    keyframe: bool,
    /// Display index (frame units, stream-wide).
    display: i64,
}

/// Split an x264 Annex B stream into access units with their display order (from the
/// picture order count; pic_order_cnt_type 0 or 2, progressive frames only).
fn access_units(data: &[u8]) -> (Vec<TestAu>, Vec<u8>, Vec<u8>) {
    let mut groups: Vec<Vec<&[u8]>> = Vec::new();
    let mut has_vcl = false;
    for nal in annexb_nals(data) {
        let t = nal[0] & 0x1f;
        let vcl = t == 1 || t == 5;
        let first_slice = vcl && nal.len() > 1 && nal[1] & 0x80 != 0;
        let starts_au = matches!(t, 6..=9 | 14..=18) || first_slice;
        if groups.is_empty() || (has_vcl && starts_au) {
            groups.push(Vec::new());
            has_vcl = false;
        }
        has_vcl |= vcl;
        groups.last_mut().unwrap().push(nal);
    }
    let mut sps_bytes = Vec::new();
    let mut pps_bytes = Vec::new();
    let mut sps: Option<SeqParameterSet> = None;
    let (mut prev_msb, mut prev_lsb) = (0i64, 0i64);
    let mut gop_start = 0usize;
    let mut out: Vec<(TestAu, i64)> = Vec::new();
    let finish_gop = |out: &mut Vec<(TestAu, i64)>, from: usize| {
        let mut idx: Vec<usize> = (from..out.len()).collect();
        idx.sort_by_key(|&i| out[i].1);
        for (rank, i) in idx.into_iter().enumerate() {
            out[i].0.display = (from + rank) as i64;
        }
    };
    for group in groups {
        let mut avcc = Vec::new();
        let mut poc = None;
        let mut keyframe = false;
        for nal in &group {
            avcc.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            avcc.extend_from_slice(nal);
            let t = nal[0] & 0x1f;
            if t == 7 {
                sps = Some(
                    SeqParameterSet::from_bits(RefNal::new(nal, &[], true).rbsp_bits()).unwrap(),
                );
                sps_bytes = nal.to_vec();
            }
            if t == 8 {
                pps_bytes = nal.to_vec();
            }
            if (t == 1 || t == 5) && poc.is_none() {
                let sps = sps.as_ref().unwrap();
                let idr = t == 5;
                keyframe |= idr;
                if idr {
                    finish_gop(&mut out, gop_start);
                    gop_start = out.len();
                    (prev_msb, prev_lsb) = (0, 0);
                }
                let mut r = RefNal::new(nal, &[], true).rbsp_bits();
                r.read_ue("first_mb").unwrap();
                r.read_ue("slice_type").unwrap();
                r.read_ue("pps_id").unwrap();
                let _: u32 = r
                    .read_var(u32::from(sps.log2_max_frame_num()), "frame_num")
                    .unwrap();
                if idr {
                    r.read_ue("idr_pic_id").unwrap();
                }
                let value = match sps.pic_order_cnt {
                    PicOrderCntType::TypeTwo => 2 * (out.len() - gop_start) as i64,
                    PicOrderCntType::TypeZero {
                        log2_max_pic_order_cnt_lsb_minus4,
                    } => {
                        let bits = u32::from(log2_max_pic_order_cnt_lsb_minus4) + 4;
                        let max = 1i64 << bits;
                        let lsb = i64::from(r.read_var::<u32>(bits, "poc_lsb").unwrap());
                        let msb = if lsb < prev_lsb && prev_lsb - lsb >= max / 2 {
                            prev_msb + max
                        } else if lsb > prev_lsb && lsb - prev_lsb > max / 2 {
                            prev_msb - max
                        } else {
                            prev_msb
                        };
                        if nal[0] & 0x60 != 0 {
                            (prev_msb, prev_lsb) = (msb, lsb);
                        }
                        msb + lsb
                    }
                    _ => panic!("unsupported pic_order_cnt_type"),
                };
                poc = Some(value);
            }
        }
        out.push((
            TestAu {
                avcc,
                keyframe,
                display: 0,
            },
            poc.expect("access unit without a slice"),
        ));
    }
    finish_gop(&mut out, gop_start);
    (
        out.into_iter().map(|(au, _)| au).collect(),
        sps_bytes,
        pps_bytes,
    )
}

struct Muxed {
    /// (file length, frames so far) after create and after each flush.
    fragment_ends: Vec<(u64, usize)>,
    summary: MuxSummary,
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

fn mux(aus: &[TestAu], fmt: &Arc<StreamFormat>, clock: Clock, cut: Cut, out: &Path) -> Muxed {
    let (dts0, offset) = match clock {
        Clock::DecodeIndex => (0, 0),
        Clock::Delayed => (-2, 7_777_777),
    };
    let ts = |i: usize| {
        (
            offset + (dts0 + i as i64) * 3000,
            offset + aus[i].display * 3000,
        )
    };
    let mut w = create(out, fmt).unwrap();
    let mut fragment_ends = vec![(file_len(out), 0)];
    for (i, au) in aus.iter().enumerate() {
        let cut_here = match cut {
            Cut::Keyframes => au.keyframe && i > 0,
            Cut::Every40 => i > 0 && i % 40 == 0,
            Cut::Single => false,
        };
        if cut_here {
            let next = match cut {
                Cut::Keyframes => Some(ts(i).0),
                _ => None,
            };
            let projected = w.projected_bytes();
            w.flush(next).unwrap();
            // projected_bytes includes the mfra that finish() will add.
            assert!(projected > file_len(out));
            fragment_ends.push((file_len(out), i));
        }
        let (dts, pts) = ts(i);
        let f = Frame {
            data: au.avcc.clone(),
            keyframe: au.keyframe,
            pts,
            dts,
            captured: Instant::now(),
            wall: SystemTime::now(),
            format: fmt.clone(),
            dropped_before: 0,
        };
        w.push(&f).unwrap();
    }
    w.flush(None).unwrap();
    fragment_ends.push((file_len(out), aus.len()));
    let projected = w.projected_bytes();
    let summary = w.finish(None).unwrap();
    assert_eq!(projected, summary.bytes);
    Muxed {
        fragment_ends,
        summary,
    }
}

const E2E_FRAMES: usize = 300;
const E2E_GOP: usize = 60;

/// Encode the test stream to `input` (Annex B) and return its frame hashes.
fn encode(input: &str, extra: &[&str]) -> Vec<String> {
    let frames = E2E_FRAMES.to_string();
    let gop = E2E_GOP.to_string();
    let mut args = vec![
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-frames:v",
        &frames,
        "-c:v",
        "libx264",
        "-g",
        &gop,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-f", "h264", input]);
    run("ffmpeg", &args);
    let reference = hashes(input);
    assert_eq!(reference.len(), E2E_FRAMES);
    reference
}

const STREAMS: [(&str, &[&str]); 2] = [
    ("bf0", &["-bf", "0"]),
    ("bf2", &["-bf", "2", "-profile:v", "main"]),
];

/// The crate's own H.264 source feeding the writer, as the binary runs them (one
/// segment, fragments cut by the segment writer).
#[test]
fn ffmpeg_with_h264_stream_source() {
    require_tools();
    let tmp = tmpdir("mux-mp4-source");
    let d = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    for (name, extra) in STREAMS {
        let input = d(&format!("{name}.h264"));
        let reference = encode(&input, extra);
        let dir = tmp.path().join(name);
        record_file(Path::new(&input), &dir, 60, &[]);
        let segs = segments(&dir);
        assert_eq!(segs.len(), 1, "{}", listing(&dir));
        let seg = &segs[0];
        let m = seg.meta();
        let duration_s = m
            .get("duration_s")
            .and_then(Value::as_f64)
            .expect("duration_s");
        let summary = MuxSummary {
            frames: meta_i64(m, "frames").expect("frames") as u64,
            duration_ticks: (duration_s * 90_000.0).round() as i64,
            bytes: meta_i64(m, "bytes").expect("bytes") as u64,
        };
        let muxed = Muxed {
            fragment_ends: Vec::new(),
            summary,
        };
        let out = seg.path.to_str().unwrap().to_string();
        check_complete(&out, &muxed, &reference, &format!("h264_stream {name}"));
    }
}

#[test]
fn ffmpeg_end_to_end() {
    require_tools();
    let tmp = tmpdir("mux-mp4");
    let d = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    for (name, extra) in STREAMS {
        let input = d(&format!("{name}.h264"));
        let reference = encode(&input, extra);

        let (aus, sps, pps) = access_units(&std::fs::read(&input).unwrap());
        assert_eq!(aus.len(), E2E_FRAMES);
        assert_eq!(
            aus.iter().filter(|a| a.keyframe).count(),
            E2E_FRAMES / E2E_GOP
        );
        if name == "bf2" {
            assert!(aus.iter().enumerate().any(|(i, a)| a.display != i as i64));
        }
        let fmt = Arc::new(StreamFormat {
            codec: Codec::H264,
            width: 320,
            height: 240,
            frame_rate: Some((30, 1)),
            sps,
            pps: vec![pps],
        });

        for clock in [Clock::DecodeIndex, Clock::Delayed] {
            for cut in [Cut::Keyframes, Cut::Every40, Cut::Single] {
                let what = format!("{name} {clock:?} {cut:?}");
                let out = d(&format!("{name}-{clock:?}-{cut:?}.mp4"));
                let muxed = mux(&aus, &fmt, clock, cut, Path::new(&out));
                check_complete(&out, &muxed, &reference, &what);
                let display: Vec<i64> = aus.iter().map(|a| a.display).collect();
                check_torn(&out, &muxed, &reference, &display, &what, &d);
            }
        }
    }
}

fn check_complete(out: &str, muxed: &Muxed, reference: &[String], what: &str) {
    let n = E2E_FRAMES as i64;
    assert_eq!(muxed.summary.frames, n as u64, "{what}");
    assert_eq!(muxed.summary.duration_ticks, n * 3000, "{what}");
    assert_eq!(
        muxed.summary.bytes,
        std::fs::metadata(out).unwrap().len(),
        "{what}"
    );
    assert_clean(out);

    let got = hashes(out);
    assert_same_frames(&got, reference, what);

    // Presentation times: frame k of the output shows at k/30 s, from 0.
    let (pts, _) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "frame=pts",
            "-of",
            "csv=p=0",
            out,
        ],
    );
    let pts: Vec<i64> = pts
        .lines()
        .filter_map(|l| l.split(',').next())
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().parse().unwrap())
        .collect();
    let expected: Vec<i64> = (0..n).map(|k| k * 3000).collect();
    assert_eq!(pts, expected, "{what}");

    let (duration, _) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            out,
        ],
    );
    let duration: f64 = duration.trim().parse().unwrap();
    let expected = n as f64 / 30.0;
    assert!(
        (duration - expected).abs() < 0.001,
        "{what}: duration {duration}"
    );

    // The page rule: no fragment header (prft, moof, mdat header) crosses a 4 KiB
    // boundary unless it is larger than a page; then its boxes up to the moof's own box
    // header do not.
    let file = std::fs::read(out).unwrap();
    for f in fragment_headers(&file) {
        let end = if f.two_phase() { f.moof + 8 } else { f.end };
        assert_eq!(
            f.start / PAGE,
            (end - 1) / PAGE,
            "{what}: fragment at {}",
            f.moof
        );
    }
}

/// A crash before finish: the file ends inside the last fragment (at a page boundary,
/// as a killed write or ext4 leaves it, or anywhere in the mdat), or the last fragment
/// is complete but still hidden (two-phase write, before the rename). All complete
/// fragments still decode. `display[i]` is the display index of the i-th frame in
/// decode order.
fn check_torn(
    out: &str,
    muxed: &Muxed,
    reference: &[String],
    display: &[i64],
    what: &str,
    d: &dyn Fn(&str) -> String,
) {
    let mut bytes = std::fs::read(out).unwrap();
    let last = fragment_headers(&bytes).pop().unwrap();
    let moof = last.moof as usize;
    if last.two_phase() {
        // Two-phase fragment: until it is complete on disk its moof is a `free` box.
        bytes[moof + 4..moof + 8].copy_from_slice(b"free");
    }
    let n = muxed.fragment_ends.len();
    let (complete_end, complete_frames) = muxed.fragment_ends[n - 2];
    let last_end = muxed.fragment_ends[n - 1].0;
    // Frames of the complete fragments, in display order; with B-frames and a cut in
    // the middle of a GOP these are not a prefix of the stream.
    let mut complete: Vec<usize> = display[..complete_frames]
        .iter()
        .map(|&d| d as usize)
        .collect();
    complete.sort_unstable();
    let complete: Vec<String> = complete.iter().map(|&d| reference[d].clone()).collect();
    // The longest display-order prefix they hold.
    let prefix = display[complete_frames..]
        .iter()
        .min()
        .map_or(complete_frames, |&d| d as usize);
    let mut cuts: Vec<u64> = vec![complete_end];
    let first_page = complete_end / PAGE + 1;
    cuts.extend(
        (first_page..)
            .map(|p| p * PAGE)
            .take_while(|&c| c < last_end)
            .take(4),
    );
    cuts.push((complete_end + last_end) / 2);
    for cut_at in cuts {
        let torn = d(&format!("torn-{cut_at}.mp4"));
        std::fs::write(&torn, &bytes[..cut_at as usize]).unwrap();
        if complete_frames == 0 {
            // Nothing complete to decode; the file must still open.
            run("ffprobe", &["-v", "error", &torn]);
            continue;
        }
        if cut_at == complete_end {
            assert_clean(&torn);
        }
        let got = hashes(&torn);
        assert!(
            got.len() >= prefix,
            "{what} cut at {cut_at}: {} frames",
            got.len()
        );
        assert_same_frames(
            &got[..prefix],
            &reference[..prefix],
            &format!("{what} cut at {cut_at} ({complete_frames} complete)"),
        );
    }

    // The last fragment written but its moof still named `free`.
    if complete_frames > 0 {
        let mut hidden = bytes[..last_end as usize].to_vec();
        hidden[moof + 4..moof + 8].copy_from_slice(b"free");
        let path = d("hidden.mp4");
        std::fs::write(&path, &hidden).unwrap();
        assert_clean(&path);
        let got = hashes(&path);
        assert_same_frames(&got, &complete, &format!("{what} hidden"));
    }
}
