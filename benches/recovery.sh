#!/usr/bin/env bash
# Recovery at start on 1,000 segments: how long `dashcam recover` takes (release build),
# with every segment clean, and with 10 of them cut by a "power loss" (metadata gone, tail
# truncated). The issue's bound: under 1 s for 1,000 segments.
#
#   benches/recovery.sh [N]      N segments (default 1000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-1000}
cargo build --quiet --release
bin=${CARGO_TARGET_DIR:-target}/release/dashcam
bash scripts/make-test-inputs.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" run --source file:tests/inputs/headers_once.h264 --dir "$work/src" --segment-seconds 1 --fast 2>/dev/null
seg=$(ls "$work"/src/*.mp4 | head -n 1)
mkdir -p "$work/footage"
for i in $(seq 0 $((n - 1))); do
    stem=$(printf '20261121-%02d%02d%02d_%06d' $((10 + i / 3600)) $(((i / 60) % 60)) $((i % 60)) $((10000 + i)))
    cp "$seg" "$work/footage/$stem.mp4"
    sed "s/\"name\": \"[^\"]*\"/\"name\": \"$stem.mp4\"/" "${seg%.mp4}.json" >"$work/footage/$stem.json"
done
ms() { local t0 t1; t0=$(date +%s%N); "$bin" recover --dir "$work/footage" >/dev/null; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }
ms >/dev/null # warm the page cache
echo "recover, $n clean segments: $(ms) ms (whole process)"
for f in $(ls "$work"/footage/*.mp4 | head -n 10); do
    rm "${f%.mp4}.json"
    truncate -s -300 "$f"
done
echo "recover, $n segments, 10 cut: $(ms) ms (whole process)"
"$bin" recover --dir "$work/footage" | head -n 1
