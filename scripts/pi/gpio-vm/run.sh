#!/usr/bin/env bash
# The GPIO role on a real GPIO character device: gpio-sim, built out of tree from Debian's
# linux-source-6.1 against the matching linux-headers (Debian's kernel builds neither
# gpio-sim nor gpio-mockup), loaded in a QEMU VM (TCG) running Debian's kernel, with the
# real static dashcam binary inside (scripts/pi/gpio-vm/guest-init.sh drives the lines).
#
#   scripts/pi/gpio-vm/run.sh
#
# The VM's packages and kernel come from scripts/vm/prepare.sh (the power-cut harness's;
# run as is, not changed here). Everything else goes under $CARGO_TARGET_DIR/gpio-vm
# (default target/gpio-vm). Needs root or sudo for apt-get. Non-interactive.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
target=${CARGO_TARGET_DIR:-$here/target}
work=$target/gpio-vm
export VM_WORK=${VM_WORK:-$target/vm}
mkdir -p "$work"
log() { echo "gpio-vm: $*" >&2; }
die() {
    log "$*"
    exit 1
}
export DEBIAN_FRONTEND=noninteractive
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo -n)
t0=$SECONDS

# --- qemu, busybox, the kernel (shared with the power-cut harness) ---------------------
bash "$here/scripts/vm/prepare.sh"
kdir=$VM_WORK/kernel
kver=$(cat "$kdir/version")
need=()
for p in gcc make libc6-dev cpio xz-utils; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]}"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
t_prep=$((SECONDS - t0))

# --- gpio-sim, out of tree ---------------------------------------------------------------
ko=$work/mod-$kver/gpio-sim-oot.ko
if [ ! -f "$ko" ]; then
    dl=$work/dl-$kver
    rm -rf "$dl" "$work/hdr-$kver" "$work/mod-$kver.tmp"
    mkdir -p "$dl" "$work/hdr-$kver" "$work/mod-$kver.tmp"
    (cd "$dl" && apt-get download -q "linux-headers-$kver" "linux-headers-${kver%-amd64}-common" \
        linux-kbuild-6.1 >/dev/null 2>&1) || die "cannot download the headers of $kver"
    hver=$(dpkg-deb -f "$dl"/linux-headers-"$kver"_*.deb Version)
    # The driver's source must be the kernel's own version.
    (cd "$dl" && apt-get download -q "linux-source-6.1=$hver" >/dev/null 2>&1) ||
        die "cannot download linux-source-6.1 $hver (the headers' version)"
    for d in "$dl"/linux-headers-*.deb "$dl"/linux-kbuild-*.deb; do dpkg-deb -x "$d" "$work/hdr-$kver"; done
    hdr=$work/hdr-$kver/usr/src
    # The headers' Makefile includes the -common one by absolute path.
    sed -i "s#^include /usr/src/#include $hdr/#" "$hdr/linux-headers-$kver/Makefile"
    src=$work/src-$kver
    rm -rf "$src"
    mkdir -p "$src"
    dpkg-deb --fsys-tarfile "$dl"/linux-source-6.1_*.deb |
        tar -xO ./usr/src/linux-source-6.1.tar.xz |
        tar -xJ -C "$src" linux-source-6.1/drivers/gpio/gpio-sim.c \
            linux-source-6.1/drivers/gpio/gpiolib.h linux-source-6.1/kernel/irq/irq_sim.c
    m=$work/mod-$kver.tmp
    cp "$src"/linux-source-6.1/drivers/gpio/gpio-sim.c "$src"/linux-source-6.1/drivers/gpio/gpiolib.h \
        "$src"/linux-source-6.1/kernel/irq/irq_sim.c "$m/"
    # Debian's kernel lacks CONFIG_IRQ_SIM: link irq_sim.c into the module; irq_to_desc is
    # not exported in 6.1, so call generic_handle_irq instead.
    grep -q 'handle_simple_irq(irq_to_desc(irqnum));' "$m/irq_sim.c" || die "irq_sim.c changed: patch needs review"
    sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' "$m/irq_sim.c"
    printf 'obj-m := gpio-sim-oot.o\ngpio-sim-oot-y := gpio-sim.o irq_sim.o\n' >"$m/Kbuild"
    make -s -C "$hdr/linux-headers-$kver" M="$m" modules >"$work/module-build.log" 2>&1 ||
        { cat "$work/module-build.log" >&2; die "gpio-sim did not build"; }
    rm -rf "$work/mod-$kver" "$src" "$dl"
    mv "$m" "$work/mod-$kver"
fi
log "gpio-sim module: $(basename "$ko") for $kver"
t_mod=$((SECONDS - t0 - t_prep))

# --- the static dashcam for the guest ----------------------------------------------------
# The same build as the power-cut and V4L2 VMs' (scripts/vm/static-build.sh): after them,
# nothing to rebuild.
bash "$here/scripts/vm/static-build.sh" >"$work/build.log" 2>&1 ||
    { tail -30 "$work/build.log" >&2; die "cannot build the static dashcam"; }
bin=$VM_WORK/build/x86_64-unknown-linux-gnu/release/dashcam
file "$bin" | grep -qE "static(-pie)? linked|statically linked" || die "$bin is not static"
t_bin=$((SECONDS - t0 - t_prep - t_mod))

# --- initramfs -----------------------------------------------------------------------------
run=$work/run
rm -rf "$run"
root=$run/initramfs
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp}
cp "$(command -v busybox)" "$root/bin/busybox"
cp "$here/scripts/pi/gpio-vm/guest-init.sh" "$root/init"
chmod +x "$root/init"
cp "$bin" "$root/dashcam"
cp "$kdir/root/lib/modules/$kver/kernel/fs/configfs/configfs.ko" "$root/"
cp "$ko" "$root/"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$run/initrd.cpio"

# --- boot ------------------------------------------------------------------------------
serial=$run/serial.log
: >"$serial"
qemu-system-x86_64 -accel tcg -M pc -m 384 -smp 1 -nodefaults -display none -no-reboot \
    -kernel "$kdir/vmlinux" -initrd "$run/initrd.cpio" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1" \
    -serial "file:$serial" >"$run/qemu.log" 2>&1 &
qpid=$!
deadline=$((SECONDS + 300))
while kill -0 "$qpid" 2>/dev/null; do
    grep -qE "GUEST: (PASS|FAIL)" "$serial" && break
    if [ "$SECONDS" -ge "$deadline" ]; then
        kill "$qpid" 2>/dev/null || true
        grep -E "^GUEST" "$serial" >&2 || true
        die "the VM did not finish within 300 s"
    fi
    sleep 0.5
done
sleep 1
kill "$qpid" 2>/dev/null || true
wait "$qpid" 2>/dev/null || true
grep -E "^GUEST" "$serial" | tr -d '\r' >&2 || true
t_vm=$((SECONDS - t0 - t_prep - t_mod - t_bin))
log "time: prepare ${t_prep} s, module ${t_mod} s, static binary ${t_bin} s, VM ${t_vm} s"
grep -q "GUEST: PASS" "$serial" || die "FAILED (serial log: $serial)"
log "PASS: the GPIO role on a real GPIO character device (gpio-sim)"
