#!/usr/bin/env python3
"""Judge the V4L2 VM run (scripts/vm/v4l2.sh) from the files it left: OUT/dashcam.log,
OUT/cameras.txt, OUT/footage/ (vivid), OUT/loop-mjpeg*/ and OUT/loop-h264*/ (v4l2loopback),
against the fed inputs in RUN/in.mjpeg and RUN/in.h264. Uses ffprobe and ffmpeg's
framemd5, never dashcam's own readers. Prints one line per check and "N passed, N failed";
exits 1 on any failure."""
import glob
import json
import os
import re
import subprocess
import sys

out, rundir = sys.argv[1], sys.argv[2]
passed, failed = 0, 0


def check(ok, what):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + what)
    if ok:
        passed += 1
    else:
        failed += 1


def frames(path):
    r = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                        "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path],
                       capture_output=True, text=True)
    return int(r.stdout.strip() or 0), r.stderr.strip()


log = open(os.path.join(out, "dashcam.log"), errors="replace").read()
cams = open(os.path.join(out, "cameras.txt"), errors="replace").read()
check("/dev/video0" in cams and "YUYV" in cams and "640x360 @" in cams,
      "dashcam cameras lists vivid's /dev/video0, its YUYV format, sizes and rates")
check(re.search(r"YUYV 640x360 at 4\.000 fps", log) is not None,
      "negotiated YUYV 640x360 at 4 fps (S_FMT, S_PARM) and logged it")
runs = [tuple(map(int, m)) for m in re.findall(
    r"closed after buffers (\d+)\.\.(\d+): (\d+) delivered, (\d+) missing from the sequence, (\d+) bad, (\d+) left out", log)]
backs = [float(x) for x in re.findall(r"back after ([0-9.]+) s", log)]
check(len(runs) >= 2, f"two runs ended by a disconnect were accounted ({len(runs)})")
check(len(backs) >= 2 and all(b <= 2.0 for b in backs),
      f"recording resumed within 2 s of each reconnect ({backs})")
segs = sorted(glob.glob(os.path.join(out, "footage", "*.avi")))
check(len(segs) >= 3, f"{len(segs)} segments (two disconnects, then the stop)")
for i, seg in enumerate(segs):
    meta = json.load(open(seg[:-4] + ".json"))
    n, err = frames(seg)
    name = os.path.basename(seg)
    check(err == "", f"{name}: ffprobe clean {err[:200]}")
    check(n == meta["frames"], f"{name}: {n} frames decoded, metadata says {meta['frames']}")
    if i < 2:
        check(meta["close_reason"] == "source_lost", f"{name}: closed as source_lost ({meta['close_reason']})")
    if i < len(runs):
        first, last, delivered, missing, bad, thinned = runs[i]
        span = last - first + 1
        # A run ended by the stop may lose the one frame in flight when the stop came.
        ok = n + meta["dropped_frames"] == span - thinned or (
            meta["close_reason"] == "stop" and n + meta["dropped_frames"] == span - thinned - 1)
        check(ok, f"{name}: {n} frames + {meta['dropped_frames']} counted drops = vivid's sequence {first}..{last} ({span}) less {thinned} left out")
if runs:
    check(runs[0][3] > 0, f"vivid's injected drops were counted as sequence gaps ({runs[0][3]})")


def framemd5(path):
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:v:0",
                        "-fps_mode", "passthrough", "-f", "framemd5", "-"],
                       capture_output=True, text=True)
    return [l.rsplit(",", 1)[-1].strip() for l in r.stdout.splitlines()
            if l and not l.startswith("#")]


for kind, ext, fed in [("mjpeg", "avi", "in.mjpeg"), ("h264", "mp4", "in.h264")]:
    want = framemd5(os.path.join(rundir, fed))
    segs = sorted(glob.glob(os.path.join(out, f"loop-{kind}", f"*.{ext}")))
    check(len(segs) >= 1, f"v4l2loopback {kind}: {len(segs)} segment(s)")
    got, dropped, reasons = [], 0, []
    for seg in segs:
        meta = json.load(open(seg[:-4] + ".json"))
        _, err = frames(seg)
        check(err == "", f"v4l2loopback {kind}: {os.path.basename(seg)} ffprobe clean {err[:200]}")
        got += framemd5(seg)
        dropped += meta["dropped_frames"]
        reasons.append(meta["close_reason"])
    print(f"     {kind}: fed {len(want)} frames, recorded {len(got)}, counted {dropped} dropped, closed {reasons}")
    check("source_lost" in reasons, f"v4l2loopback {kind}: the end of the feed closed a segment as source_lost")
    # The frame written before dashcam streamed comes back as the first buffer, stale: it
    # is dropped and counted. A reader that falls behind (the VM is slow) loses frames to
    # v4l2loopback, which skips ahead: those are sequence gaps, counted too (for H.264 up
    # to the next keyframe). So: the fed frames, in order, less exactly the counted ones.
    it = iter(want)
    in_order = all(any(h == w for w in it) for h in got)
    check(in_order and len(got) + dropped == len(want) + 1,
          f"v4l2loopback {kind}: the decoded frames are the {len(want)} fed ones in order (framemd5), less the {dropped} counted (one stale placeholder, {dropped - 1} skipped)")
    check(dropped >= 1, f"v4l2loopback {kind}: the placeholder buffer was dropped and counted ({dropped})")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
