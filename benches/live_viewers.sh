#!/usr/bin/env bash
# Benchmark: what the live view costs the recorder. Records one minute of 1080p30 H.264 in
# real time (the file source paced at its native rate, like a camera) with 0, 1 and 3
# WebSocket viewers reading the live view, and prints the recorder's CPU seconds (user +
# sys) and peak RSS for each, beside `ffmpeg -re -c copy` writing the same stream as fMP4
# HLS (the anchor: a copy into live segments, nothing more). Not part of the test suite.
#
# usage: benches/live_viewers.sh [--runs N] [--strict]
#   --runs N   runs of each (default 1); the lowest CPU and RSS are reported
#   --strict   exit 1 when a target is missed
#
# Input: bench1080.h264 (1920x1080 30 fps High, ~12 Mbit/s, 60 s, IDR every 2 s), made by
# scripts/make-test-inputs.sh. The binary is the dist profile (what ships). Viewers are
# benches/live_viewer.py (Python's standard library). Targets: 3 viewers add at most 10 %
# CPU and 4 MiB RSS over 0 viewers. Figures from /usr/bin/time (10 ms resolution); the
# machine's other load shows in them (printed at the end).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=1
strict=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --strict) strict=1; shift ;;
        *) echo "usage: $0 [--runs N] [--strict]" >&2; exit 2 ;;
    esac
done

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
for tool in ffmpeg python3 curl; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "/usr/bin/time is needed (apt-get install time)" >&2; exit 1; }

inputs=${DASHCAM_TEST_INPUTS:-tests/inputs}
bash scripts/make-test-inputs.sh "$inputs" bench1080.h264
input=$(cd "$inputs" && pwd)/bench1080.h264
seconds=$(ffprobe -v error -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$input" |
    awk '{ printf "%.3f", $1 / 30 }')

echo "building: cargo build --profile dist" >&2
cargo build --profile dist --quiet
bin=${CARGO_TARGET_DIR:-target}/dist/dashcam
[ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# dashcam_run N: one minute recorded with N viewers; prints "cpu rss_kib viewer_bytes sys".
dashcam_run() {
    local n=$1
    rm -rf "$work/out" "$work/viewers"
    mkdir -p "$work/out" "$work/viewers"
    printf '[web]\nlisten = "127.0.0.1:%s"\n' "$port" >"$work/dashcam.toml"
    RUST_LOG=warn /usr/bin/time -f '%U %S %M' -o "$work/time" \
        "$bin" run --config "$work/dashcam.toml" --source "file:$input" --dir "$work/out" \
        --segment-seconds 60 >"$work/log" 2>&1 &
    local rec=$!
    pids+=("$rec")
    local i
    for i in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/api/live" >/dev/null 2>&1 && break
        sleep 0.05
    done
    local vp=()
    for i in $(seq 1 "$n"); do
        python3 benches/live_viewer.py 127.0.0.1 "$port" >"$work/viewers/$i" 2>&1 &
        vp+=("$!")
        pids+=("$!")
    done
    wait "$rec" || { echo "dashcam failed:" >&2; cat "$work/log" >&2; exit 1; }
    for p in "${vp[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    local u s m bytes
    read -r u s m <"$work/time"
    bytes=$({ cat "$work/viewers"/* 2>/dev/null || true; } | sed -n 's/.*bytes=\([0-9]*\).*/\1/p' | awk '{ t += $1 } END { print t + 0 }')
    awk -v u="$u" -v s="$s" -v m="$m" -v b="$bytes" 'BEGIN { printf "%.2f %d %d %.2f\n", u + s, m, b, s }'
}

ffmpeg_run() {
    rm -rf "$work/out"
    mkdir -p "$work/out"
    /usr/bin/time -f '%U %S %M' -o "$work/time" \
        ffmpeg -nostdin -hide_banner -v error -re -framerate 30 -i "$input" -c copy \
        -f hls -hls_segment_type fmp4 -hls_time 1 -hls_list_size 5 -hls_flags delete_segments \
        "$work/out/live.m3u8" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
    local u s m
    read -r u s m <"$work/time"
    awk -v u="$u" -v s="$s" -v m="$m" 'BEGIN { printf "%.2f %d 0 %.2f\n", u + s, m, s }'
}

best() { # "cpu rss bytes sys" lines -> lowest cpu (and its sys), lowest rss, highest bytes
    awk 'NR == 1 || $1 < c { c = $1; k = $4 } NR == 1 || $2 < r { r = $2 } $3 > b { b = $3 }
         END { printf "%.2f %d %d %.2f\n", c, r, b, k }'
}

declare -A result
for what in 0 1 3 ffmpeg; do
    for r in $(seq 1 "$runs"); do
        echo "run $r: $what $([ "$what" = ffmpeg ] && echo '' || echo viewer\(s\))" >&2
        if [ "$what" = ffmpeg ]; then ffmpeg_run; else dashcam_run "$what"; fi
    done | best >"$work/best"
    result[$what]=$(cat "$work/best")
done

echo
echo "Live view cost, ${seconds} s of 1080p30 H.264 (~12 Mbit/s) in real time, per minute:"
printf '%-28s %14s %10s %10s %16s\n' "" "CPU s/min" "of it sys" "peak RSS" "sent to viewers"
fail=0
read -r c0 r0 _ <<<"${result[0]}"
for what in 0 1 3 ffmpeg; do
    read -r c r b k <<<"${result[$what]}"
    label="dashcam, $what viewer(s)"
    [ "$what" = 1 ] && label="dashcam, 1 viewer"
    [ "$what" = ffmpeg ] && label="ffmpeg -re -c copy -f hls"
    awk -v l="$label" -v c="$c" -v k="$k" -v r="$r" -v b="$b" -v s="$seconds" \
        'BEGIN { printf "%-28s %14.2f %10.2f %6.1f MiB %12.1f MiB\n", l, c * 60 / s, k * 60 / s, r / 1024, b / 1048576 }'
done
# The floor: the bytes the 3 viewers got, written to loopback sockets one frame per write
# by the smallest possible sender (benches/socket_floor.py).
read -r c3 r3 b3 _ <<<"${result[3]}"
frames=$(awk -v s="$seconds" 'BEGIN { printf "%d", s * 30 * 3 }')
read -r fc fk <<<"$(python3 benches/socket_floor.py "$b3" "$frames")"
awk -v c="$fc" -v k="$fk" -v b="$b3" -v s="$seconds" \
    'BEGIN { printf "%-28s %14.2f %10.2f %10s %12.1f MiB\n", "floor: same bytes to sockets", c * 60 / s, k * 60 / s, "", b / 1048576 }'
awk -v c0="$c0" -v c3="$c3" -v r0="$r0" -v r3="$r3" -v s="$seconds" 'BEGIN {
    rel = 0; if (c0 > 0) rel = 100 * (c3 - c0) / c0
    printf "3 viewers over 0: CPU %+.1f %% of the recorder'"'"'s own (target <= +10 %%), %+.2f %% of a core here; RSS %+.2f MiB (target <= +4 MiB)\n",
        rel, 100 * (c3 - c0) / s, (r3 - r0) / 1024 }'
if awk -v c0="$c0" -v c3="$c3" 'BEGIN { exit !(c3 > c0 * 1.10) }'; then fail=1; fi
if [ $((r3 - r0)) -gt 4096 ]; then fail=1; fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores; other work on the machine shows in the CPU figures)"
if [ "$strict" = 1 ] && [ "$fail" = 1 ]; then exit 1; fi
