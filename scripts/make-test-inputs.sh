#!/usr/bin/env bash
# Generate the media inputs of the integration tests (and, on request, of the benchmark).
#
# usage: scripts/make-test-inputs.sh [OUTDIR] [NAME...]
#
#   OUTDIR  where to write (default: tests/inputs of the repository; it is git-ignored:
#           never commit what this script writes)
#   NAME    which files to make (default: the test set below). The benchmark input is
#           made only when asked for by name: `scripts/make-test-inputs.sh DIR bench1080.h264`.
#
# Idempotent: a file that exists is kept. Every file is written under a temporary name,
# checked, then renamed into place, so a file that exists is complete. Concurrent runs
# (parallel test processes) are serialised with flock(1) on OUTDIR/.lock.
#
# The test set (about 20 s of CPU on 2 cores):
#   pi1080.h264        1920x1080 30 fps High profile, no B-frames, SPS+PPS before every IDR,
#                      IDR every 60 frames, VUI timing (30 fps in the SPS), 20 s, ~4 Mbit/s
#   headers_once.h264  640x360 30 fps, SPS+PPS only once at the start, no B-frames,
#                      IDR every 30 frames, 10 s
#   bframes.h264       640x360 30 fps Main profile, 2 B-frames (pyramid), IDR every 30, 10 s
#   mjpeg422.mjpeg     640x360 30 fps MJPEG 4:2:2 (yuvj422p), concatenated JPEGs, 10 s
#   truncated.h264     headers_once.h264 cut in the middle of a slice NAL unit at ~60 %
#   garbage.bin        200 KiB of reproducible pseudo-random bytes (AES-CTR keystream)
#   res_change.h264    3 s of 640x360 then 3 s of 320x240 (new SPS/PPS at the change),
#                      30 fps, IDR every 30 frames
# On request:
#   bench1080.h264     1920x1080 30 fps High, ~12 Mbit/s, IDR every 60 frames with
#                      headers, 60 s
#   live1080.h264      the live view tests: 1920x1080 30 fps High, no B-frames, IDR every
#                      30 frames (rpicam-vid --intra 30) with headers, ~4 Mbit/s, 40 s, the
#                      frame number burned in as 12 black/white cells of 96x96 px at the
#                      top left (most significant bit first)
#   live_res.h264      10 s of 1280x720 then 10 s of 640x360 (new SPS/PPS at the change),
#                      30 fps, IDR every 30, the frame number burned in the same way
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
outdir=${1:-$here/tests/inputs}
shift || true
if [ "$#" -gt 0 ]; then
    names=("$@")
else
    names=(pi1080.h264 headers_once.h264 bframes.h264 mjpeg422.mjpeg truncated.h264 garbage.bin res_change.h264)
fi

for tool in ffmpeg ffprobe; do
    command -v "$tool" >/dev/null || { echo "make-test-inputs: $tool not found (apt-get install ffmpeg)" >&2; exit 1; }
done

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

if command -v flock >/dev/null; then
    exec 9>"$outdir/.lock"
    flock 9
fi

tmpdir=$(mktemp -d "$outdir/.tmp.XXXXXX")
trap 'rm -rf "$tmpdir"' EXIT

ff() { ffmpeg -nostdin -hide_banner -v error -y "$@"; }
die() { echo "make-test-inputs: $*" >&2; exit 1; }
log() { echo "make-test-inputs: $*" >&2; }

# Byte offsets (one a line) of every NAL unit's header byte in an Annex-B file: the byte
# after each 00 00 01 start code.
nal_offsets() {
    { grep -obUaP '\x00\x00\x01' "$1" || true; } | awk -F: '{ print $1 + 3 }'
}
# The NAL unit type (low 5 bits of the header byte) at a byte offset.
nal_type_at() {
    local b
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    echo $((b & 31))
}
# How many NAL units of a type (7 SPS, 8 PPS, 5 IDR slice) a file has.
count_nal() {
    local pat
    case "$2" in
        5) pat='[\x05\x25\x45\x65]' ;;
        7) pat='[\x07\x27\x47\x67]' ;;
        8) pat='[\x08\x28\x48\x68]' ;;
        *) die "count_nal: type $2" ;;
    esac
    { grep -obUaP "\x00\x00\x01$pat" "$1" || true; } | wc -l
}
probe() { ffprobe -v error -select_streams v:0 -show_entries "stream=$2" -of default=nw=1:nk=1 "$1"; }
frames_of() { ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1"; }
decode_clean() {
    local err
    err=$(ffmpeg -nostdin -v error -i "$1" -f null - 2>&1) || die "$1 does not decode: $err"
    [ -z "$err" ] || die "$1 decodes with errors: $err"
}

# A moving picture with some temporal noise, so that the encoder spends a camera-like
# bitrate on it (a clean test pattern compresses to almost nothing).
src1080() { echo "testsrc2=size=1920x1080:rate=30,noise=alls=$1:allf=t"; }

make_pi1080() {
    local out=$1
    ff -f lavfi -i "$(src1080 12)" -t 20 -pix_fmt yuv420p \
        -c:v libx264 -preset veryfast -profile:v high -bf 0 \
        -b:v 4M -maxrate 5M -bufsize 5M \
        -x264-params keyint=60:min-keyint=60:scenecut=0:repeat-headers=1 \
        -f h264 "$out"
    local idr sps pps
    idr=$(count_nal "$out" 5); sps=$(count_nal "$out" 7); pps=$(count_nal "$out" 8)
    [ "$idr" -eq 10 ] || die "pi1080: expected 10 IDR slices, found $idr"
    [ "$sps" -eq "$idr" ] && [ "$pps" -eq "$idr" ] || die "pi1080: SPS/PPS not before every IDR (IDR $idr, SPS $sps, PPS $pps)"
    [ "$(probe "$out" profile)" = High ] || die "pi1080: profile is not High"
    [ "$(probe "$out" has_b_frames)" = 0 ] || die "pi1080: has B-frames"
    [ "$(frames_of "$out")" = 600 ] || die "pi1080: not 600 frames"
    ffmpeg -nostdin -hide_banner -i "$out" -frames:v 1 -c copy -bsf:v trace_headers -f null - 2>&1 |
        grep -q 'timing_info_present_flag *1 = 1' || die "pi1080: no VUI timing in the SPS"
}

make_headers_once() {
    local out=$1 x264=keyint=30:min-keyint=30:scenecut=0
    # ffmpeg's raw H.264 output repeats SPS/PPS before every IDR; with repeat-headers=0 it
    # writes none at all. So: take SPS+PPS from an encode that repeats them and put them in
    # front of the identical encode that has none.
    ff -f lavfi -i testsrc2=size=640x360:rate=30 -t 10 -pix_fmt yuv420p \
        -c:v libx264 -preset veryfast -bf 0 -x264-params "$x264:repeat-headers=1" \
        -f h264 "$tmpdir/rep.h264"
    ff -f lavfi -i testsrc2=size=640x360:rate=30 -t 10 -pix_fmt yuv420p \
        -c:v libx264 -preset veryfast -bf 0 -x264-params "$x264:repeat-headers=0" \
        -f h264 "$tmpdir/none.h264"
    # SPS and PPS are the first two NAL units; the header block ends where the start code
    # of the third one begins (00 00 01, or 00 00 00 01 when the byte before is zero too).
    local third end
    nal_offsets "$tmpdir/rep.h264" >"$tmpdir/nals"
    [ "$(nal_type_at "$tmpdir/rep.h264" "$(sed -n 1p "$tmpdir/nals")")" = 7 ] || die "headers_once: first NAL is not an SPS"
    [ "$(nal_type_at "$tmpdir/rep.h264" "$(sed -n 2p "$tmpdir/nals")")" = 8 ] || die "headers_once: second NAL is not a PPS"
    third=$(sed -n 3p "$tmpdir/nals")
    end=$((third - 3))
    [ "$(od -An -tu1 -j $((end - 1)) -N1 "$tmpdir/rep.h264" | tr -d ' ')" = 0 ] && end=$((end - 1))
    head -c "$end" "$tmpdir/rep.h264" >"$out"
    cat "$tmpdir/none.h264" >>"$out"
    [ "$(count_nal "$out" 7)" = 1 ] && [ "$(count_nal "$out" 8)" = 1 ] || die "headers_once: SPS/PPS not exactly once"
    [ "$(count_nal "$out" 5)" = 10 ] || die "headers_once: expected 10 IDR slices"
    decode_clean "$out"
    cmp -s <(ffmpeg -nostdin -v error -i "$out" -f framemd5 - | grep -v '^#') \
        <(ffmpeg -nostdin -v error -i "$tmpdir/rep.h264" -f framemd5 - | grep -v '^#') ||
        die "headers_once: does not decode like the encode with repeated headers"
}

make_bframes() {
    local out=$1
    ff -f lavfi -i testsrc2=size=640x360:rate=30 -t 10 -pix_fmt yuv420p \
        -c:v libx264 -preset veryfast -profile:v main -bf 2 \
        -x264-params keyint=30:min-keyint=30:scenecut=0:b-pyramid=normal \
        -f h264 "$out"
    [ "$(probe "$out" profile)" = Main ] || die "bframes: profile is not Main"
    [ "$(probe "$out" has_b_frames)" -gt 0 ] || die "bframes: no B-frames"
    [ "$(frames_of "$out")" = 300 ] || die "bframes: not 300 frames"
}

make_mjpeg422() {
    local out=$1
    ff -f lavfi -i testsrc2=size=640x360:rate=30 -t 10 -pix_fmt yuvj422p \
        -c:v mjpeg -q:v 4 -f mjpeg "$out"
    [ "$(probe "$out" pix_fmt)" = yuvj422p ] || die "mjpeg422: not yuvj422p"
    [ "$(frames_of "$out")" = 300 ] || die "mjpeg422: not 300 frames"
}

make_truncated() {
    local out=$1 src=$outdir/headers_once.h264
    [ -f "$src" ] || make_one headers_once.h264
    local size target cur next t
    size=$(stat -c %s "$src")
    target=$((size * 60 / 100))
    nal_offsets "$src" >"$tmpdir/nals"
    echo "$size" >>"$tmpdir/nals"
    # The NAL unit that holds the byte at 60 % ...
    cur=$(awk -v t="$target" '$1 <= t { c = $1 } END { print c }' "$tmpdir/nals")
    t=$(nal_type_at "$src" "$cur")
    # ... or, if that is not a slice (type 1 or 5), the next slice.
    while [ "$t" != 1 ] && [ "$t" != 5 ]; do
        cur=$(awk -v c="$cur" '$1 > c { print; exit }' "$tmpdir/nals")
        [ "$cur" -lt "$size" ] || die "truncated: no slice after 60 %"
        t=$(nal_type_at "$src" "$cur")
    done
    next=$(awk -v c="$cur" '$1 > c { print; exit }' "$tmpdir/nals")
    local cut=$(((cur + next) / 2))
    [ "$cut" -gt $((cur + 8)) ] || die "truncated: slice at $cur too small to cut inside"
    head -c "$cut" "$src" >"$out"
    log "truncated.h264: cut at byte $cut inside the NAL unit of type $t at $cur..$next (file $size bytes)"
}

make_garbage() {
    local out=$1
    command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
    # AES-128-CTR keystream under a fixed key: the same 200 KiB on every machine.
    head -c 204800 /dev/zero |
        openssl enc -aes-128-ctr -K 6461736863616d2d6761726261676521 -iv 00000000000000000000000000000000 >"$out"
    [ "$(stat -c %s "$out")" = 204800 ] || die "garbage: wrong size"
}

make_res_change() {
    local out=$1 size
    for size in 640x360 320x240; do
        ff -f lavfi -i "testsrc2=size=$size:rate=30" -t 3 -pix_fmt yuv420p \
            -c:v libx264 -preset veryfast -bf 0 \
            -x264-params keyint=30:min-keyint=30:scenecut=0:repeat-headers=1 \
            -f h264 "$tmpdir/part-$size.h264"
    done
    cat "$tmpdir/part-640x360.h264" "$tmpdir/part-320x240.h264" >"$out"
    [ "$(frames_of "$out")" = 180 ] || die "res_change: not 180 frames"
}

# The frame number (from 0) as 12 cells of CELL x CELL px, white for 1, most significant
# bit first, over testsrc2 with noise: a picture that reads back to its frame number.
counted() {
    local size=$1 cell=$2 seconds=$3 start=$4 out=$5
    ff -f lavfi -i "testsrc2=size=$size:rate=30,noise=alls=12:allf=t" \
        -f lavfi -i "color=c=black:size=12x2:rate=30" -t "$seconds" \
        -filter_complex "[1]format=gray,geq=lum='255*mod(floor((N+$start)/pow(2\,11-X))\,2)',scale=$((12 * cell)):$cell:flags=neighbor,format=yuv420p[code];[0][code]overlay=0:0,format=yuv420p" \
        -c:v libx264 -preset veryfast -profile:v high -bf 0 \
        -b:v 4M -maxrate 5M -bufsize 5M \
        -x264-params keyint=30:min-keyint=30:scenecut=0:repeat-headers=1 \
        -f h264 "$out"
}

make_live1080() {
    local out=$1
    counted 1920x1080 96 40 0 "$out"
    [ "$(frames_of "$out")" = 1200 ] || die "live1080: not 1200 frames"
    [ "$(count_nal "$out" 5)" = 40 ] || die "live1080: expected 40 IDR slices"
    [ "$(probe "$out" has_b_frames)" = 0 ] || die "live1080: has B-frames"
}

make_live_res() {
    local out=$1
    counted 1280x720 64 10 0 "$tmpdir/a.h264"
    counted 640x360 32 10 300 "$tmpdir/b.h264"
    cat "$tmpdir/a.h264" "$tmpdir/b.h264" >"$out"
    [ "$(frames_of "$out")" = 600 ] || die "live_res: not 600 frames"
}

make_bench1080() {
    local out=$1
    ff -f lavfi -i "$(src1080 28)" -t 60 -pix_fmt yuv420p \
        -c:v libx264 -preset ultrafast -x264-params 8x8dct=1:keyint=60:min-keyint=60:scenecut=0:repeat-headers=1 \
        -profile:v high -bf 0 -b:v 12M -maxrate 15M -bufsize 15M \
        -f h264 "$out"
    [ "$(probe "$out" profile)" = High ] || die "bench1080: profile is not High"
    [ "$(count_nal "$out" 7)" -eq "$(count_nal "$out" 5)" ] || die "bench1080: SPS not before every IDR"
}

make_one() {
    local name=$1 fn
    [ -f "$outdir/$name" ] && return 0
    case "$name" in
        pi1080.h264) fn=make_pi1080 ;;
        headers_once.h264) fn=make_headers_once ;;
        bframes.h264) fn=make_bframes ;;
        mjpeg422.mjpeg) fn=make_mjpeg422 ;;
        truncated.h264) fn=make_truncated ;;
        garbage.bin) fn=make_garbage ;;
        res_change.h264) fn=make_res_change ;;
        bench1080.h264) fn=make_bench1080 ;;
        live1080.h264) fn=make_live1080 ;;
        live_res.h264) fn=make_live_res ;;
        *) die "unknown input $name" ;;
    esac
    local start=$SECONDS
    "$fn" "$tmpdir/$name"
    mv -f "$tmpdir/$name" "$outdir/$name"
    log "made $name ($(stat -c %s "$outdir/$name") bytes, $((SECONDS - start)) s)"
}

for name in "${names[@]}"; do
    make_one "$name"
done
