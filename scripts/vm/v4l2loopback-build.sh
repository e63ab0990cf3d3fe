#!/usr/bin/env bash
# Build v4l2loopback for the VM's Debian kernel, out of tree, without installing anything:
# the source from v4l2loopback-dkms and the kernel's linux-headers-*-amd64, -common and
# linux-kbuild packages, unpacked with dpkg-deb (the headers' Makefile includes -common by
# an absolute path, pointed at the unpacked copy). Leaves $VM_WORK/v4l2loopback/
# v4l2loopback.ko; idempotent. Needs gcc and make (the kernel's compiler is Debian's gcc-12).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${VM_WORK:-$here/target/vm}
work=$(mkdir -p "$work" && cd "$work" && pwd)
out=$work/v4l2loopback
kver=$(cat "$work/kernel/version")
[ -f "$out/v4l2loopback.ko" ] && [ "$(cat "$out/kver" 2>/dev/null)" = "$kver" ] && exit 0
command -v make >/dev/null && command -v gcc >/dev/null || {
    sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends gcc make libc6-dev >/dev/null
}
rm -rf "$out.tmp"
mkdir -p "$out.tmp/debs"
kbuild=linux-kbuild-${kver%%.*}.$(echo "$kver" | cut -d. -f2)
(cd "$out.tmp/debs" && apt-get download -q v4l2loopback-dkms "linux-headers-$kver" \
    "linux-headers-${kver%-amd64}-common" "$kbuild" >/dev/null 2>&1)
for d in "$out.tmp"/debs/*.deb; do dpkg-deb -x "$d" "$out.tmp/root"; done
src=$out.tmp/root/usr/src
sed -i "s#^include /usr/src/#include $src/#" "$src/linux-headers-$kver/Makefile"
cp -r "$src"/v4l2loopback-* "$out.tmp/build"
make -s -C "$src/linux-headers-$kver" M="$out.tmp/build" modules >"$out.tmp/make.log" 2>&1 ||
    { tail -20 "$out.tmp/make.log" >&2; exit 1; }
mkdir -p "$out"
cp "$out.tmp/build/v4l2loopback.ko" "$out/"
echo "$kver" >"$out/kver"
rm -rf "$out.tmp"
echo "v4l2loopback-build: $out/v4l2loopback.ko for $kver" >&2
