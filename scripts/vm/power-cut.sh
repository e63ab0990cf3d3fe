#!/usr/bin/env bash
# Real power cuts in a VM: the storage keeper's recovery, judged from the host.
#
#   scripts/vm/power-cut.sh            20 cuts on vfat and 20 on ext4, plus ENOSPC and a
#                                      drive that vanishes and returns
#   CUTS=5 scripts/vm/power-cut.sh     fewer cuts (quick check)
#
# A Debian kernel boots under qemu-system-x86_64 (TCG) with the static dashcam binary in an
# initramfs (scripts/vm/guest-init.sh) and records an H.264 file source at its native
# rate onto a virtio disk image. The host SIGKILLs qemu at a random moment (the guest loses
# its page cache and unwritten metadata, exactly what a Pi loses), boots again (dashcam
# recovers at start, then records the next cycle), and so on. Every write goes through
# QEMU's blklogwrites; after each kill the log is also replayed onto the disk as it was
# before that boot, up to the last flush: the state of a card whose volatile write cache
# was lost. Both states are judged (scripts/vm/judge.py): every segment with metadata
# decodes bit-exact against the input (framemd5), metadata agrees with the file, the cut
# segment lost at most 1.5 s before the kill, no orphan or temp file, sequence numbers
# continue, and the segment cut by one kill is repaired by the next boot without losing a
# complete fragment. Cycles alternate between continuing from the plain state and from the
# dropped-cache state. The vfat and ext4 series run in two qemus at once.
#
# Needs root or sudo for apt-get (qemu-system-x86 from bookworm-backports, busybox-static,
# dosfstools, mtools, e2fsprogs, ffmpeg, python3) and the Rust toolchain. Ends with the line
# "N passed, N failed"; exits 1 if anything failed. Environment: CUTS (default 20), SEED
# (random seed), VM_WORK (work directory, default target/vm), DASHCAM_VM_BIN (a static
# x86_64 dashcam to use instead of building one).
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${VM_WORK:-$here/target/vm}
export VM_WORK=$work
cuts=${CUTS:-20}
seed=${SEED:-$(date +%s)}
start_all=$SECONDS
log() { echo "power-cut: $*" >&2; }
die() { log "$*"; echo "0 passed, 1 failed"; exit 1; }
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

# --- host tools and kernel, in parallel with the static build ----------------------------
bin=${DASHCAM_VM_BIN:-}
mkdir -p "$work"
if [ -z "$bin" ]; then
    log "building the static dashcam"
    bash "$here/scripts/vm/static-build.sh" >"$work/build.log" 2>&1 &
    build=$!
fi
bash "$here/scripts/vm/prepare.sh" || die "preparing the VM failed"
if [ -z "$bin" ]; then
    wait "$build" || { cat "$work/build.log" >&2; die "static build failed"; }
    bin=$work/build/x86_64-unknown-linux-gnu/release/dashcam
fi
ldd "$bin" 2>&1 | grep -Eq "statically linked|not a dynamic" ||
    die "$bin is not a static binary"

kdir=$work/kernel
kver=$(cat "$kdir/version")
run=$work/run
rm -rf "$run"
mkdir -p "$run"

# --- input: 20 s of 640x360 H.264, 30 fps, an IDR every second ---------------------------
input=$work/input.h264
if [ ! -f "$input" ]; then
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=640x360:rate=30,noise=alls=8:allf=t" -t 20 \
        -pix_fmt yuv420p -c:v libx264 -preset veryfast -bf 0 -b:v 1M -maxrate 1.2M -bufsize 1M \
        -x264-params keyint=30:min-keyint=30:scenecut=0:repeat-headers=1 -f h264 "$input.tmp"
    mv "$input.tmp" "$input"
fi
ffmpeg -nostdin -v error -i "$input" -f framemd5 - | grep -v '^#' | awk -F, '{ gsub(/ /, "", $6); print $6 }' \
    >"$run/input.md5"
[ "$(wc -l <"$run/input.md5")" = 600 ] || die "the VM input does not have 600 frames"

# --- initramfs ------------------------------------------------------------------------------
root=$run/initramfs
mkdir -p "$root"/{bin,sbin,proc,sys,dev,mnt,tmp,lib64,lib/x86_64-linux-gnu}
cp "$(command -v busybox)" "$root/bin/busybox"
cp "$here/scripts/vm/guest-init.sh" "$root/init"
chmod +x "$root/init"
cp "$bin" "$root/dashcam"
cp "$input" "$root/input.h264"
# fsck.fat and the libraries it needs.
cp /sbin/fsck.fat "$root/sbin/fsck.fat"
for lib in $(ldd /sbin/fsck.fat | awk '/=>/ { print $3 } /ld-linux/ { print $1 }'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
# Kernel modules with their dependencies.
mods=$root/lib/modules/$kver
mkdir -p "$mods"
cp "$kdir/root/lib/modules/$kver/modules.order" "$kdir/root/lib/modules/$kver/modules.builtin" "$mods/"
declare -A seen=()
want=(virtio_pci virtio_blk virtio_scsi sd_mod crc32c_generic ext4 vfat nls_cp437 nls_ascii nls_iso8859-1 nls_utf8)
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
busybox depmod -b "$root" "$kver" 2>/dev/null || depmod -b "$root" "$kver"
common='source = "file:/input.h264"
segment_seconds = 2
min_free = "0"'
printf '%s\ndir = "/mnt/footage"\nmax_size = "4M"\n' "$common" >"$root/cycle.toml"
printf '%s\ndir = "/mnt/a"\n' "$common" >"$root/enospc-a.toml"
printf 'source = "file:/input.h264"\nsegment_seconds = 60\nmin_free = "0"\ndir = "/mnt/b"\n' >"$root/enospc-b.toml"
printf '%s\ndir = "/mnt/footage"\nrequire_mount = true\n' "$common" >"$root/vanish.toml"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$run/initrd.cpio"
log "initramfs $(($(stat -c %s "$run/initrd.cpio") >> 20)) MiB"

# --- one boot ------------------------------------------------------------------------------
# boot NAME SCENARIO FS DISK-ARGS...: start qemu in the background; sets qpid.
boot() {
    local name=$1 scenario=$2 fs=$3 dev=$4
    shift 4
    : >"$run/$name.serial"
    qemu-system-x86_64 -accel tcg -M pc -m 384 -smp 1 -nodefaults -display none -no-reboot \
        -kernel "$kdir/vmlinux" -initrd "$run/initrd.cpio" \
        -append "console=ttyS0 quiet loglevel=3 panic=-1 SCENARIO=$scenario FS=$fs DEV=$dev" \
        -serial "file:$run/$name.serial" "$@" >"$run/$name.qemu" 2>&1 &
    qpid=$!
}
# wait_for NAME PATTERN SECONDS: until the serial log has PATTERN (1 when it never comes).
wait_for() {
    local deadline=$((SECONDS + $3))
    while ! grep -q "$2" "$run/$1.serial" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        kill -0 "$qpid" 2>/dev/null || { grep -q "$2" "$run/$1.serial" && return 0; return 1; }
        sleep 0.05
    done
}
now() { date +%s.%N; }

# --- a series of power cuts on one file system ---------------------------------------------
# Writes $run/$fs/cuts.tsv: cycle, elapsed seconds from "recording" to the kill, which state
# the next boot used.
series() {
    local fs=$1 dir=$run/$1
    mkdir -p "$dir"
    local disk=$dir/disk.img
    truncate -s 64M "$disk"
    if [ "$fs" = vfat ]; then mkfs.fat -F 32 -s 1 "$disk" >/dev/null; else mkfs.ext4 -q -F "$disk"; fi
    RANDOM=$((seed + ${#fs}))
    : >"$dir/cuts.tsv"
    local i
    for ((i = 1; i <= cuts; i++)); do
        cp --sparse=always "$disk" "$dir/base.img"
        rm -f "$dir/log.img"
        truncate -s 1G "$dir/log.img"
        boot "$fs-$i" cycle "$fs" /dev/vda \
            -blockdev "driver=file,filename=$disk,node-name=data,cache.direct=off" \
            -blockdev "driver=file,filename=$dir/log.img,node-name=wlog" \
            -blockdev "driver=blklogwrites,file=data,log=wlog,node-name=blw" \
            -device virtio-blk-pci,drive=blw
        if ! wait_for "$fs-$i" "recording H.264" 120; then
            kill -9 "$qpid" 2>/dev/null || true
            wait "$qpid" 2>/dev/null || true
            printf '%s\tNOSTART\t-\n' "$i" >>"$dir/cuts.tsv"
            log "$fs cycle $i: dashcam did not start (see $run/$fs-$i.serial)"
            continue
        fi
        local t0
        t0=$(now)
        # 1.5 to 6.5 s of recording, then the power goes.
        sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 1.5 + 5 * r / 32768 }')"
        kill -9 "$qpid"
        local t1
        t1=$(now)
        wait "$qpid" 2>/dev/null || true
        cp --sparse=always "$disk" "$dir/plain-$i.img"
        cp --sparse=always "$dir/base.img" "$dir/dropped-$i.img"
        python3 "$here/scripts/vm/replay-log.py" "$dir/log.img" "$dir/dropped-$i.img" >"$dir/replay-$i.txt" ||
            log "$fs cycle $i: replay failed"
        local next=plain
        if [ $((i % 2)) = 0 ]; then
            next=dropped
            cp --sparse=always "$dir/dropped-$i.img" "$disk"
        fi
        printf '%s\t%s\t%s\n' "$i" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$next" >>"$dir/cuts.tsv"
    done
    rm -f "$dir/base.img" "$dir/log.img"
}

# --- ENOSPC and a vanishing drive (one boot each, to the end of the input) -----------------
enospc() {
    local dir=$run/enospc
    mkdir -p "$dir"
    truncate -s 24M "$dir/disk.img"
    mkfs.ext4 -q -F -m 0 "$dir/disk.img"
    boot enospc enospc ext4 /dev/vda -drive "file=$dir/disk.img,format=raw,if=virtio"
    wait_for enospc "GUEST: done" 180 || log "enospc: the guest did not finish"
    kill -9 "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
}
vanish() {
    local dir=$run/vanish
    mkdir -p "$dir"
    truncate -s 64M "$dir/disk.img"
    mkfs.fat -F 32 -s 1 "$dir/disk.img" >/dev/null
    boot vanish vanish vfat /dev/sda -device virtio-scsi-pci,id=scsi \
        -drive "file=$dir/disk.img,format=raw,if=none,id=d0" -device scsi-hd,drive=d0,bus=scsi.0
    wait_for vanish "GUEST: done" 180 || log "vanish: the guest did not finish"
    kill -9 "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
}

log "seed $seed, $cuts cuts per file system"
lane_start=$SECONDS
only=${ONLY:-}
lane() {
    local fs=$1 extra=$2
    if [ -z "$only" ] || [ "$only" = cycles ]; then series "$fs"; fi
    if [ -z "$only" ] || [ "$only" = "$extra" ]; then "$extra"; fi
}
(lane vfat vanish) >"$run/lane-vfat.log" 2>&1 &
lane1=$!
(lane ext4 enospc) >"$run/lane-ext4.log" 2>&1 &
lane2=$!
wait "$lane1" || log "vfat lane failed (see $run/lane-vfat.log)"
wait "$lane2" || log "ext4 lane failed (see $run/lane-ext4.log)"
log "VM runs took $((SECONDS - lane_start)) s"

python3 "$here/scripts/vm/judge.py" --run "$run" --cuts "$cuts" --bin "$bin"
status=$?
log "whole harness: $((SECONDS - start_all)) s"
exit "$status"
