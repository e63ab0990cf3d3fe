#!/usr/bin/env bash
# The cost of one H.264 still (a 1080p keyframe decoded, reduced to 640 wide, encoded as
# JPEG), as dashcam itself reports it ("N ms ... per decoded still"): with ffmpeg's
# command line (the default build; the time of each ffmpeg run), with OpenH264 in the
# process (cargo feature stills-h264; the stills thread's CPU time), and, when an ARM
# binary built with that feature is given, the same on an emulated ARM1176
# (qemu-arm-static -cpu arm1176). Prints the figures; asserts nothing.
#
#   benches/stills.sh [ARM_BINARY_WITH_STILLS_H264]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
arm=${1:-}
input=tests/inputs/pi1080.h264
[ -f "$input" ] || bash scripts/make-test-inputs.sh
cargo build -q --release
cargo build -q --release --features stills-h264 --target-dir target/stills-h264
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/c.toml" <<EOF
[stills]
interval = 1
width = 640
max_cpu_percent = 100
EOF
cost() {
    local what=$1
    shift
    rm -rf "$tmp/f"
    # Real time: a still at each keyframe (every 2 s of this input), 10 in all.
    local line
    line=$("$@" run --source "file:$input" --dir "$tmp/f" --config "$tmp/c.toml" 2>&1 |
        grep -o 'stills: .*' || true)
    echo "$what: ${line:-no stills}"
}
echo "input: $input (1920x1080 H.264 High, a keyframe every 2 s), stills 640 wide"
cost "ffmpeg CLI, $(uname -m) release" target/release/dashcam
cost "OpenH264, $(uname -m) release" target/stills-h264/release/dashcam
if [ -n "$arm" ] && [ -x "$arm" ] && command -v qemu-arm-static >/dev/null; then
    cost "OpenH264, qemu-arm-static -cpu arm1176 ($arm)" qemu-arm-static -cpu arm1176 "$arm"
else
    echo "no ARM binary given (build one with --features stills-h264, see README \"Stills\"): emulated figure skipped"
fi
