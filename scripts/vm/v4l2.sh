#!/usr/bin/env bash
# V4L2 capture from a real kernel driver in a VM: vivid (drivers/media/test-drivers) under
# a Debian kernel in qemu-system-x86_64 (TCG), with the static dashcam in an initramfs
# (scripts/vm/v4l2-guest.sh), recording onto a vfat disk image that is judged here:
# every segment decodes cleanly (ffprobe), each run's frames on disk plus its counted
# drops equal the span of vivid's buffer sequence numbers (logged by dashcam when it closes
# the device), vivid's injected drops show up as counted drops, each disconnect closes a
# segment as source_lost, and recording resumes within 2 s of vivid's return.
#
# Then v4l2loopback (built out of tree from v4l2loopback-dkms against the kernel's headers,
# scripts/vm/v4l2loopback-build.sh) fed with real MJPEG frames and libx264 access units by
# examples/v4l2_loopback_feed.rs: the recorded segments' decoded frames equal the fed ones
# (framemd5), less the placeholder buffers dashcam counted.
#
# One boot, about two minutes. Reuses scripts/vm/prepare.sh (kernel, qemu) and the static
# build of scripts/vm/power-cut.sh (same target directory). Ends with "N passed, N failed".
# Environment: VM_WORK (default target/vm), DASHCAM_VM_BIN and DASHCAM_VM_FEED (static
# x86_64 dashcam and feeder), BENCH=1 (benches/v4l2_capture.sh: CPU figures instead).
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${VM_WORK:-$here/target/vm}
export VM_WORK=$work
log() { echo "v4l2-vm: $*" >&2; }
die() { log "$*"; echo "0 passed, 1 failed"; exit 1; }
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v v4l2-ctl >/dev/null || {
    sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends v4l-utils >/dev/null
}
bin=${DASHCAM_VM_BIN:-}
mkdir -p "$work"
if [ -z "$bin" ]; then
    log "building the static dashcam"
    bash "$here/scripts/vm/static-build.sh" >"$work/v4l2-build.log" 2>&1 &
    build=$!
fi
bash "$here/scripts/vm/prepare.sh" || die "preparing the VM failed"
bash "$here/scripts/vm/v4l2loopback-build.sh" || die "building v4l2loopback failed"
feed=${DASHCAM_VM_FEED:-$work/build/x86_64-unknown-linux-gnu/release/examples/v4l2_loopback_feed}
if [ -z "$bin" ]; then
    wait "$build" || { cat "$work/v4l2-build.log" >&2; die "static build failed"; }
    bin=$work/build/x86_64-unknown-linux-gnu/release/dashcam
fi
kdir=$work/kernel
kver=$(cat "$kdir/version")
run=$work/v4l2
rm -rf "$run"
mkdir -p "$run"

root=$run/initramfs
mkdir -p "$root"/{bin,sbin,proc,sys,dev,mnt,tmp,lib64,lib/x86_64-linux-gnu}
cp "$(command -v busybox)" "$root/bin/busybox"
cp "$here/scripts/vm/v4l2-guest.sh" "$root/init"
chmod +x "$root/init"
cp "$bin" "$root/dashcam"
cp "$feed" "$root/feed"
ff() { ffmpeg -nostdin -v error -y "$@"; }
ff -f lavfi -i testsrc2=size=640x360:rate=30 -t 6 -pix_fmt yuvj422p -c:v mjpeg -q:v 4 -f mjpeg "$root/in.mjpeg"
ff -f lavfi -i testsrc2=size=640x360:rate=30 -t 6 -pix_fmt yuv420p -c:v libx264 -preset veryfast -bf 0 \
    -x264-params keyint=30:min-keyint=30:scenecut=0:repeat-headers=1 -f h264 "$root/in.h264"
cp "$root/in.mjpeg" "$root/in.h264" "$run/"
if [ "${BENCH:-0}" = 1 ]; then
    # Where ffmpeg's libraries really are (alternatives and other absolute symlinks do not
    # resolve under the guest's /host), for the guest's loader.
    ldd "$(command -v ffmpeg)" | awk '/=>/ { print $3 }' | xargs -r readlink -f | xargs -r -n1 dirname |
        sort -u | sed 's#^#/host#' | paste -sd: >"$root/ffmpeg-libpath"
    echo "/host$(readlink -f /lib64/ld-linux-x86-64.so.2)" >"$root/ffmpeg-loader"
    ff -f lavfi -i testsrc2=size=1280x720:rate=30 -t 2 -pix_fmt yuvj422p -c:v mjpeg -q:v 4 -f mjpeg "$root/bench720.mjpeg"
fi
cp "$(command -v v4l2-ctl)" "$root/bin/v4l2-ctl"
for lib in $(ldd "$(command -v v4l2-ctl)" | awk '/=>/ { print $3 } /ld-linux/ { print $1 }'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
mods=$root/lib/modules/$kver
mkdir -p "$mods"
cp "$kdir/root/lib/modules/$kver/modules.order" "$kdir/root/lib/modules/$kver/modules.builtin" "$mods/"
declare -A seen=()
want=(virtio_pci virtio_blk vfat nls_cp437 nls_ascii nls_iso8859-1 nls_utf8 vivid 9pnet_virtio 9p videodev v4l2-common)
while [ "${#want[@]}" -gt 0 ]; do
    m=${want[0]}
    want=("${want[@]:1}")
    key=${m//-/_}
    [ -n "${seen[$key]:-}" ] && continue
    seen[$key]=1
    rel=$(grep -E "/${m}\.ko$|/${key}\.ko$|/${m//_/-}\.ko$" "$kdir/root/lib/modules/$kver/modules.order" | head -n 1 || true)
    [ -n "$rel" ] || continue # built in
    mkdir -p "$mods/$(dirname "$rel")"
    cp "$kdir/root/lib/modules/$kver/$rel" "$mods/$rel"
    deps=$(python3 -c 'import sys
for f in open(sys.argv[1], "rb").read().split(b"\0"):
    if f.startswith(b"depends="):
        print(f[8:].decode().replace(",", " "))
        break' "$kdir/root/lib/modules/$kver/$rel")
    for d in $deps; do want+=("$d"); done
done
mkdir -p "$mods/extra"
cp "$work/v4l2loopback/v4l2loopback.ko" "$mods/extra/"
echo "extra/v4l2loopback.ko" >>"$mods/modules.order"
busybox depmod -b "$root" "$kver" 2>/dev/null || depmod -b "$root" "$kver"
for kind in mjpeg h264; do
    dev=/dev/video10
    [ "$kind" = h264 ] && dev=/dev/video11
    printf 'source = "v4l2:%s"\ndir = "/mnt/loop-%s"\nsegment_seconds = 60\nmin_free = "0"\n[camera]\nwidth = 640\nheight = 360\nstall_timeout = 2\n' \
        "$dev" "$kind" >"$root/loop-$kind.toml"
done
printf 'source = "v4l2:/dev/video0"\ndir = "/mnt/bench"\nmin_free = "0"\n[camera]\nraw_width = 640\nraw_height = 360\nraw_fps = 2\n' >"$root/bench-yuyv.toml"
printf 'source = "v4l2:/dev/video10"\ndir = "/mnt/bench"\nmin_free = "0"\n[camera]\nwidth = 1280\nheight = 720\n' >"$root/bench-mjpeg.toml"
cat >"$root/v4l2.toml" <<'TOML'
source = "v4l2:/dev/video0"
dir = "/mnt/footage"
segment_seconds = 60
min_free = "0"
[camera]
raw_width = 640
raw_height = 360
raw_fps = 4
raw_quality = 70
stall_timeout = 3
TOML
(cd "$root" && find . | cpio -o -H newc --quiet) >"$run/initrd.cpio"

disk=$run/disk.img
truncate -s "$([ "${BENCH:-0}" = 1 ] && echo 2G || echo 128M)" "$disk"
mkfs.fat -F 32 -s 1 "$disk" >/dev/null
log "booting"
start=$SECONDS
timeout 300 qemu-system-x86_64 -accel tcg -M pc -m 384 -smp 1 -nodefaults -display none -no-reboot \
    -kernel "$kdir/vmlinux" -initrd "$run/initrd.cpio" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 BENCH=${BENCH:-0}" \
    -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,id=host \
    -serial "file:$run/serial.log" -drive "file=$disk,format=raw,if=virtio" >"$run/qemu.log" 2>&1 || true
log "VM ran $((SECONDS - start)) s"
grep "GUEST:" "$run/serial.log" >&2 || true
mkdir -p "$run/out"
mcopy -s -n -i "$disk" ::/ "$run/out/" 2>/dev/null || die "cannot read the disk image"
if [ "${BENCH:-0}" = 1 ]; then
    grep "GUEST: BENCH" "$run/serial.log" | sed 's/.*GUEST: BENCH //'
    exit 0
fi
python3 "$here/scripts/vm/v4l2-judge.py" "$run/out" "$run"
