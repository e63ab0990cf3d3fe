#!/usr/bin/env bash
# Prepare the power-cut VM: Debian packages (qemu from bookworm-backports, busybox-static,
# dosfstools, mtools, e2fsprogs, ffmpeg, python3), a Debian kernel (vmlinux for PVH boot)
# with the modules the guest needs, and an initramfs skeleton. Idempotent; everything goes
# under $VM_WORK (default target/vm). Used by scripts/vm/power-cut.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${VM_WORK:-$here/target/vm}
mkdir -p "$work"
log() { echo "vm-prepare: $*" >&2; }

export DEBIAN_FRONTEND=noninteractive
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)

need=()
for pkg in busybox-static dosfstools mtools e2fsprogs ffmpeg python3-minimal cpio file; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ] || ! command -v qemu-system-x86_64 >/dev/null; then
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
        log "adding bookworm-backports"
        echo "deb http://deb.debian.org/debian bookworm-backports main" |
            "${sudo[@]}" tee /etc/apt/sources.list.d/dashcam-backports.list >/dev/null
    fi
    "${sudo[@]}" apt-get update -qq
    if [ "${#need[@]}" -gt 0 ]; then
        log "installing ${need[*]}"
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    if ! command -v qemu-system-x86_64 >/dev/null; then
        log "installing qemu-system-x86 from bookworm-backports"
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends -t bookworm-backports \
            qemu-system-x86 >/dev/null
    fi
fi

# --- kernel ---------------------------------------------------------------------------
if [ ! -f "$work/kernel/vmlinux" ]; then
    apt-cache policy linux-image-amd64 2>/dev/null | grep -q 'Candidate: [0-9]' || "${sudo[@]}" apt-get update -qq
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    [ -n "$pkg" ] || { log "cannot resolve the kernel package"; exit 1; }
    log "kernel package $pkg"
    rm -rf "$work/kernel.tmp"
    mkdir -p "$work/kernel.tmp"
    (cd "$work/kernel.tmp" && apt-get download -q "$pkg" >/dev/null 2>&1 && dpkg-deb -x ./*.deb root)
    kver=$(ls "$work/kernel.tmp/root/lib/modules")
    python3 - "$work/kernel.tmp/root/boot/vmlinuz-$kver" "$work/kernel.tmp/vmlinux" <<'PY'
import lzma, sys
data = open(sys.argv[1], "rb").read()
i = data.find(b"\xfd7zXZ\x00")
while i >= 0:
    try:
        d = lzma.LZMADecompressor()
        out = d.decompress(data[i:])
        if out[:4] == b"\x7fELF":
            open(sys.argv[2], "wb").write(out)
            sys.exit(0)
    except lzma.LZMAError:
        pass
    i = data.find(b"\xfd7zXZ\x00", i + 1)
sys.exit("no xz-compressed ELF in " + sys.argv[1])
PY
    echo "$kver" >"$work/kernel.tmp/version"
    rm -rf "$work/kernel"
    mv "$work/kernel.tmp" "$work/kernel"
fi
log "kernel $(cat "$work/kernel/version") ready"
