#!/usr/bin/env bash
# Seed corpora of the fuzz targets, from real encoders and dashcam's own writers; nothing
# here is committed (fuzz/corpus/ is git-ignored; fuzz/regressions/ holds the few kept
# inputs of crashes found).
#
# usage: fuzz/make-corpus.sh [INPUTS]
#
#   INPUTS  the test inputs made by scripts/make-test-inputs.sh (default tests/inputs):
#           small prefixes of them are copied in.
#
# Also makes tiny streams with ffmpeg (64x48 H.264 with and without B-frames, a size
# change, 32x24 MJPEG) and records them with dashcam (`cargo run`) into MP4 and AVI
# segments, each also cut short as by a power loss. Idempotent: a corpus that has its seeds
# is kept (what the fuzzer added to it too).
set -euo pipefail
export LC_ALL=C
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
inputs=${1:-${DASHCAM_TEST_INPUTS:-$root/tests/inputs}}
corpus=$root/fuzz/corpus
stamp=$corpus/.seeded-v1
[ -f "$stamp" ] && exit 0

for tool in ffmpeg head; do
    command -v "$tool" >/dev/null || { echo "make-corpus: $tool not found" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ff() { ffmpeg -nostdin -hide_banner -v error -y "$@"; }
mkdir -p "$corpus"/{annexb,h264,mjpeg,mp4,avi,config}

# Tiny streams from the real encoders.
x264() { # OUT SIZE SECONDS BFRAMES
    ff -f lavfi -i "testsrc2=size=$2:rate=30" -t "$3" -pix_fmt yuv420p -c:v libx264 \
        -preset veryfast -bf "$4" -x264-params keyint=10:min-keyint=10:scenecut=0:repeat-headers=1 \
        -f h264 "$1"
}
x264 "$tmp/bframes.h264" 64x48 1 2
x264 "$tmp/plain.h264" 64x48 0.5 0
x264 "$tmp/small.h264" 32x16 0.3 0
cat "$tmp/plain.h264" "$tmp/small.h264" >"$tmp/size_change.h264"
ff -f lavfi -i testsrc2=size=32x24:rate=30 -t 0.1 -pix_fmt yuvj420p -c:v mjpeg -q:v 8 -f mjpeg "$tmp/tiny420.mjpeg"
ff -f lavfi -i testsrc2=size=48x16:rate=30 -t 0.1 -pix_fmt yuvj422p -c:v mjpeg -q:v 8 -f mjpeg "$tmp/tiny422.mjpeg"
for f in bframes plain size_change; do
    cp "$tmp/$f.h264" "$corpus/annexb/tiny_$f"
    cp "$tmp/$f.h264" "$corpus/h264/tiny_$f"
done
cp "$tmp"/tiny420.mjpeg "$tmp"/tiny422.mjpeg "$corpus/mjpeg/"

# Small prefixes of the test inputs.
for f in "$inputs"/*.h264; do
    [ -f "$f" ] || continue
    head -c 3000 "$f" >"$corpus/annexb/prefix_$(basename "$f" .h264)"
    head -c 3000 "$f" >"$corpus/h264/prefix_$(basename "$f" .h264)"
done
if [ -f "$inputs/mjpeg422.mjpeg" ]; then
    head -c 4096 "$inputs/mjpeg422.mjpeg" >"$corpus/mjpeg/prefix_mjpeg422"
fi
if [ -f "$inputs/garbage.bin" ]; then
    for t in annexb h264 mjpeg mp4 avi; do head -c 512 "$inputs/garbage.bin" >"$corpus/$t/garbage"; done
fi

# dashcam's own segments of the tiny streams, whole and cut as by a power loss.
record() { # SOURCE TARGET EXT
    local dir=$tmp/rec-$(basename "$1")
    (cd "$root" && cargo run --quiet -- run --source "file:$1" --fast --dir "$dir" --segment-seconds 1) \
        >/dev/null 2>&1
    local n=0 f
    for f in "$dir"/*."$3"; do
        n=$((n + 1))
        cp "$f" "$corpus/$2/$(basename "$1")_$n"
        head -c $(($(stat -c %s "$f") * 2 / 3)) "$f" >"$corpus/$2/$(basename "$1")_cut_$n"
    done
    [ "$n" -gt 0 ] || { echo "make-corpus: dashcam recorded no .$3 segment from $1" >&2; exit 1; }
}
record "$tmp/bframes.h264" mp4 mp4
record "$tmp/size_change.h264" mp4 mp4
record "$tmp/tiny420.mjpeg" avi avi
record "$tmp/tiny422.mjpeg" avi avi

# Configuration: the packaged file and a few small ones.
cp "$root/packaging/dashcam.toml" "$corpus/config/packaged"
printf 'source = "-"\ndir = "/media/footage"\nsegment_seconds = 60\n\n[test_pattern]\nwidth = 1280\nheight = 720\n' \
    >"$corpus/config/readme"
printf 'max_size = "28G"\nmin_free = "5%%"\nlocked_full = "refuse"\nrequire_mount = true\n' >"$corpus/config/storage"
printf '[gpio]\nenabled = true\nchip = "gpiochip0"\nbutton_line = 17\nled_line = 27\nignition_line = 22\nlong_press_seconds = 3.0\n' >"$corpus/config/gpio"
printf 'fps = 500\n' >"$corpus/config/out_of_range"
printf 'segment_seconds = "sixty"\n' >"$corpus/config/wrong_type"

touch "$stamp"
echo "make-corpus: seeded $(find "$corpus" -type f ! -name '.*' | wc -l) inputs in $corpus" >&2
