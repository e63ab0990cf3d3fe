#!/usr/bin/env python3
"""Judge the V4L2 VM run (scripts/vm/v4l2.sh) from the files it left: OUT/dashcam.log,
OUT/cameras.txt and OUT/footage/. Uses ffprobe, never dashcam's own readers. Prints one
line per check and "N passed, N failed"; exits 1 on any failure."""
import glob
import json
import os
import re
import subprocess
import sys

out = sys.argv[1]
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
check("/dev/video0" in cams and "YUYV" in cams and "320x180 @" in cams,
      "dashcam cameras lists vivid's /dev/video0, its YUYV format, sizes and rates")
check(re.search(r"YUYV 320x180 at 5\.000 fps", log) is not None,
      "negotiated YUYV 320x180 at 5 fps (S_FMT, S_PARM) and logged it")
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
        check(n + meta["dropped_frames"] == span - thinned,
              f"{name}: {n} frames + {meta['dropped_frames']} counted drops = vivid's sequence {first}..{last} ({span}) less {thinned} left out")
if runs:
    check(runs[0][3] > 0, f"vivid's injected drops were counted as sequence gaps ({runs[0][3]})")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
