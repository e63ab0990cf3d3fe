#!/usr/bin/env bash
# Benchmark: CPU seconds per minute of V4L2 capture, dashcam beside `ffmpeg -f v4l2 ...
# -c copy`, on the same devices in the same VM run (scripts/vm/v4l2.sh with BENCH=1):
#   - YUYV 640x360 from vivid, encoded to JPEG at 2 fps (dashcam's raw_fps) vs ffmpeg
#     copying the raw frames at 2 fps into an AVI;
#   - MJPEG 1280x720 at 30 fps from v4l2loopback (fed with real MJPEG frames) vs ffmpeg
#     copying them into an AVI. Both write onto the same vfat disk (dashcam also fsyncs).
# Each process's user+system time from /proc/PID/stat over 30 s, times two. The guest runs
# under QEMU's TCG (no KVM here), so the absolute figures are an emulated x86's, far from a
# Pi Zero's; the ratio between the two tools is what this measures. Not part of the test
# suite. Prints four lines "TOOL ...: X CPU s/min".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH=1 bash scripts/vm/v4l2.sh
