#!/usr/bin/env bash
# The Pi Zero CI stage: from a fresh Debian 12 machine, build dashcam for the Raspberry Pi
# Zero (ARM1176JZF-S, ARMv6 hard-float, static musl), run the WHOLE test suite (unit,
# integration, doc) on an emulated ARM1176, check the binary (readelf gates, a recording
# judged by ffprobe/framemd5), build the `dist` binary and report its stripped size, build
# the armhf and amd64 .debs, install the amd64 one here and check it, verify the systemd
# unit, and print the time of each part. Non-interactive (CI=true, no stdin needed).
#
#   scripts/pi/ci.sh              everything
#   scripts/pi/ci.sh PART...      only these parts (setup is always done), e.g. arm-test gates
#
# Parts: setup inputs arm-test gates dist deb deb-install unit gpio-vm
# (and, only when named, prebuild: the ARM test binaries and the dist binary built, nothing
# run; scripts/test.sh starts it in the background at low priority during the VM stages)
#
# How (see ../shared/notes/cross-build.md): no Rust target can be downloaded here, so Debian's
# rustc-web/cargo-web/rust-web-src (one apt command: versions match) build std for the
# target with RUSTC_BOOTSTRAP=1 -Zbuild-std; zig (PyPI ziglang, through cargo-zigbuild, in
# a venv) is the C compiler and linker; .cargo/config.toml sets the runner
# `qemu-arm-static -cpu arm1176`. Tests that start the dashcam binary prefix that runner
# (tests/common reads CARGO_TARGET_ARM_UNKNOWN_LINUX_MUSLEABIHF_RUNNER); ffprobe/ffmpeg run
# natively.
#
# Environment: DASHCAM_PI_CACHE (venv and cargo-deb; default ~/.cache/dashcam-pi),
# CARGO_TARGET_DIR (default ./target), SKIP_APT=1 (never call apt-get),
# DASHCAM_PI_KEEP_DEB=1 (leave the amd64 .deb installed after its check).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$PWD

TRIPLE=arm-unknown-linux-musleabihf
RUNNER="qemu-arm-static -cpu arm1176"
ZIGLANG_VERSION=0.17.0
ZIGBUILD_VERSION=0.24.0
CARGO_DEB_VERSION=3.8.0
DIST_LIMIT=$((2 * 1024 * 1024))
CACHE=${DASHCAM_PI_CACHE:-$HOME/.cache/dashcam-pi}
VENV=$CACHE/venv
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
export CARGO_TERM_COLOR=never DEBIAN_FRONTEND=noninteractive
LOGS=$CARGO_TARGET_DIR/pi-ci
mkdir -p "$LOGS"

parts=("$@")
want() {
    [ "${#parts[@]}" -eq 0 ] && return 0
    local p
    for p in "${parts[@]}"; do [ "$p" = "$1" ] && return 0; done
    return 1
}

sudo=()
if [ "$(id -u)" != 0 ]; then sudo=(sudo -n); fi

# --- bookkeeping ----------------------------------------------------------------------
results=()
failed=()
total_start=$SECONDS
part() {
    local name=$1
    shift
    echo "==> pi: $name" >&2
    local start=$SECONDS rc=0
    "$@" || rc=$?
    local took=$((SECONDS - start))
    if [ "$rc" = 0 ]; then
        results+=("$(printf '%-12s ok      %4d s' "$name" "$took")")
        echo "==> pi: $name: ok ($took s)" >&2
    else
        results+=("$(printf '%-12s FAILED  %4d s' "$name" "$took")")
        failed+=("$name")
        echo "==> pi: $name: FAILED ($took s)" >&2
    fi
    return 0
}
skip() {
    results+=("$(printf '%-12s skipped (%s)' "$1" "$2")")
    echo "==> pi: $1: skipped: $2" >&2
}
ok() { [[ " ${failed[*]} " != *" $1 "* ]]; }

# The toolchain environment of every cross step.
cross_env() {
    env PATH="$VENV/bin:/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
        RUSTC_BOOTSTRAP=1 CARGO_TARGET_ARM_UNKNOWN_LINUX_MUSLEABIHF_RUNNER="$RUNNER" "$@"
}
zig_cargo() {
    cross_env "$VENV/bin/cargo-zigbuild" "$@"
}

# --- setup ----------------------------------------------------------------------------
apt_packages=(rustc-web cargo-web rust-web-src qemu-user-static libclang1-14 binutils
    systemd dpkg-dev ffmpeg openssl util-linux python3 python3-venv adduser passwd)
setup_apt() {
    local missing=() p
    for p in "${apt_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "apt: all present" >&2
        return 0
    fi
    if [ "${SKIP_APT:-0}" = 1 ]; then
        echo "apt: missing ${missing[*]} and SKIP_APT=1" >&2
        return 1
    fi
    echo "apt: installing ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    # One command, so rustc-web, cargo-web and rust-web-src come at the same version.
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$LOGS/apt.log" 2>&1 ||
        { tail -20 "$LOGS/apt.log" >&2; return 1; }
}
setup_venv() {
    if [ -x "$VENV/bin/cargo-zigbuild" ] &&
        "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "ziglang==$ZIGLANG_VERSION" &&
        "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "cargo-zigbuild==$ZIGBUILD_VERSION"; then
        echo "venv: ziglang $ZIGLANG_VERSION, cargo-zigbuild $ZIGBUILD_VERSION present" >&2
        return 0
    fi
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION"
}
setup_cargo_deb() {
    local bin=$CACHE/cargo-deb/bin/cargo-deb
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
        echo "cargo-deb $CARGO_DEB_VERSION present" >&2
        return 0
    fi
    env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$CACHE/cargo-deb-build" \
        /usr/bin/cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION" \
        --root "$CACHE/cargo-deb"
    rm -rf "$CACHE/cargo-deb-build"
}
setup() {
    mkdir -p "$CACHE"
    setup_apt && setup_venv && setup_cargo_deb &&
        /usr/bin/rustc --version && "$VENV/bin/cargo-zigbuild" --version &&
        qemu-arm-static --version | head -1
}

# --- ARM build and tests --------------------------------------------------------------
zbuild_flags=(--release --target "$TRIPLE" -Zbuild-std=std,panic_abort,test)
arm_bin=$CARGO_TARGET_DIR/$TRIPLE/release/dashcam
dist_bin=$CARGO_TARGET_DIR/$TRIPLE/dist/dashcam

inputs() {
    bash scripts/make-test-inputs.sh
}

# cargo-nextest builds through this: it runs "$CARGO --color=auto test --no-run ...", and
# the cross build must go through cargo-zigbuild (which itself runs Debian's cargo); its
# other calls (metadata) go to cargo.
zig_cargo_shim() {
    local shim=$CACHE/zig-cargo
    cat >"$shim" <<EOF
#!/bin/sh
for a in "\$@"; do
    case "\$a" in
    -*) ;;
    build | test) CARGO=/usr/bin/cargo exec "$VENV/bin/cargo-zigbuild" "\$@" ;;
    *) break ;;
    esac
done
exec /usr/bin/cargo "\$@"
EOF
    chmod +x "$shim"
    echo "$shim"
}
# The ARM test binaries and the dist binary, built with exactly the commands arm-test and
# dist use (so those find nothing to rebuild); nothing is run but the test lists.
prebuild() {
    if command -v cargo-nextest >/dev/null; then
        cross_env CARGO="$(zig_cargo_shim)" cargo-nextest nextest list "${zbuild_flags[@]}" \
            >"$LOGS/prebuild-tests.log" 2>&1 || { tail -30 "$LOGS/prebuild-tests.log" >&2; return 1; }
    else
        zig_cargo test "${zbuild_flags[@]}" --no-run >"$LOGS/prebuild-tests.log" 2>&1 ||
            { tail -30 "$LOGS/prebuild-tests.log" >&2; return 1; }
    fi
    dist_build >"$LOGS/prebuild-dist.log" 2>&1 || { tail -30 "$LOGS/prebuild-dist.log" >&2; return 1; }
}
# count_results WORD LOG: the tests "passed" or "failed" in LOG, from nextest's summary and
# cargo test's result lines.
count_results() {
    awk -v w="$1" '/^ +Summary |^test result:/ {for (i = 1; i < NF; i++) if ($(i + 1) ~ "^" w) n += $i}
        END {print n + 0}' "$2"
}
arm_test() {
    local log=$LOGS/arm-test.log rc=0 passed failed_n
    # Every test binary (unit, integration) and the doc tests run under the runner: through
    # cargo-nextest when it is installed (.config/nextest.toml, profile arm: the binaries
    # overlap), else cargo test (one binary after another).
    if command -v cargo-nextest >/dev/null; then
        cross_env CARGO="$(zig_cargo_shim)" cargo-nextest nextest run --profile arm \
            "${zbuild_flags[@]}" >"$log" 2>&1 || rc=$?
        zig_cargo test "${zbuild_flags[@]}" --doc >>"$log" 2>&1 || rc=$?
        grep -E "^ +(Summary|SLOW|FAIL|TIMEOUT)|^test result:" "$log" >&2 || true
    else
        zig_cargo test "${zbuild_flags[@]}" --no-fail-fast >"$log" 2>&1 || rc=$?
        grep -E "^(     Running|   Doc-tests|test result:)" "$log" >&2 || true
    fi
    passed=$(count_results passed "$log")
    failed_n=$(count_results failed "$log")
    echo "arm (qemu-arm-static -cpu arm1176): ${passed:-0} passed, ${failed_n:-0} failed" >&2
    if [ "$rc" != 0 ]; then
        grep -E "^(error|failures:|---- |thread .* panicked|--- STD(OUT|ERR):)" -A12 "$log" | head -160 >&2 || true
        tail -30 "$log" >&2
        return 1
    fi
    [ "${passed:-0}" -gt 0 ] || { echo "arm: no test ran" >&2; return 1; }
}

# readelf gates: ARMv6 + VFPv2, no Thumb-2, static (no INTERP).
elf_gates() {
    local bin=$1 attrs headers
    attrs=$(readelf -A "$bin")
    headers=$(readelf -lh "$bin")
    echo "$attrs" | grep -E "Tag_CPU_name|Tag_CPU_arch|Tag_ARM_ISA|Tag_THUMB_ISA|Tag_FP_arch|Tag_ABI_VFP" >&2
    echo "$attrs" | grep -qE "Tag_CPU_arch: v6(KZ)?$" || { echo "gate: Tag_CPU_arch is not v6" >&2; return 1; }
    echo "$attrs" | grep -qE "Tag_FP_arch: VFPv2$" || { echo "gate: Tag_FP_arch is not VFPv2" >&2; return 1; }
    if echo "$attrs" | grep -qE "Tag_THUMB_ISA_use: Thumb-2"; then
        echo "gate: Thumb-2 code" >&2
        return 1
    fi
    echo "$headers" | grep -qE "Machine: +ARM$" || { echo "gate: not an ARM ELF" >&2; return 1; }
    if echo "$headers" | grep -q "INTERP"; then
        echo "gate: has an INTERP segment (not static)" >&2
        return 1
    fi
    echo "$(basename "$(dirname "$bin")")/dashcam: ARM, static (no INTERP), v6 + VFPv2, no Thumb-2" >&2
}

# The ARM binary records a file under emulation; its segments pass ffprobe and carry
# exactly the input's frames (framemd5 of the decoded pictures).
record_gate() {
    local tmp input=tests/inputs/pi1080.h264
    tmp=$(mktemp -d)
    # shellcheck disable=SC2086
    $RUNNER "$arm_bin" run --fast --source "file:$input" --segment-seconds 2 --dir "$tmp/footage" \
        2>"$tmp/stderr" || { cat "$tmp/stderr" >&2; rm -rf "$tmp"; return 1; }
    local segs=("$tmp"/footage/*.mp4) s errs
    [ -e "${segs[0]}" ] || { echo "gate: no segment written" >&2; rm -rf "$tmp"; return 1; }
    : >"$tmp/list"
    for s in "${segs[@]}"; do
        errs=$(ffprobe -v error "$s" 2>&1)
        [ -z "$errs" ] || { echo "gate: ffprobe $s: $errs" >&2; rm -rf "$tmp"; return 1; }
        echo "file '$s'" >>"$tmp/list"
    done
    ffmpeg -v error -i "$input" -f framemd5 - | grep -v '^#' | awk -F, '{print $6}' >"$tmp/want"
    ffmpeg -v error -f concat -safe 0 -i "$tmp/list" -f framemd5 - | grep -v '^#' |
        awk -F, '{print $6}' >"$tmp/got"
    if ! cmp -s "$tmp/want" "$tmp/got"; then
        echo "gate: decoded frames differ: $(wc -l <"$tmp/got") recorded vs $(wc -l <"$tmp/want") in the input" >&2
        rm -rf "$tmp"
        return 1
    fi
    echo "recorded under emulation: ${#segs[@]} segments, $(wc -l <"$tmp/got") frames, framemd5 identical to the input" >&2
    rm -rf "$tmp"
}

gates() {
    # The binary as the test build makes it (the tests' dev-dependency features): after
    # arm-test nothing to build; a plain `build` would rebuild it with other features.
    zig_cargo test "${zbuild_flags[@]}" --no-run >"$LOGS/arm-build.log" 2>&1 || { tail -30 "$LOGS/arm-build.log" >&2; return 1; }
    elf_gates "$arm_bin" && record_gate
}

# What ships to the Pi leaves out the `rtsp` feature (retina and tokio): with it the dist
# binary is 2.81 MiB, over the limit (measured 2026-12). The tests above run with it.
# Its std is built without the `backtrace` feature (the binary is stripped: a backtrace
# would have no names anyway) and with `optimize_for_size` (std's smaller sort and
# formatting; nothing on the recorder's per-frame path): 2.11 MiB -> 1.93 MiB with the
# live view (measured 2026-12-02).
dist_build() {
    zig_cargo build --profile dist --target "$TRIPLE" -Zbuild-std=std,panic_abort \
        -Zbuild-std-features=optimize_for_size --no-default-features
}
dist() {
    dist_build >"$LOGS/dist.log" 2>&1 || { tail -30 "$LOGS/dist.log" >&2; return 1; }
    elf_gates "$dist_bin" || return 1
    local size
    size=$(stat -c %s "$dist_bin")
    if readelf -S "$dist_bin" | grep -qE "\.symtab|\.debug_"; then
        echo "dist: not stripped" >&2
        return 1
    fi
    awk -v s="$size" -v l="$DIST_LIMIT" 'BEGIN {printf "dist binary (LTO, stripped): %d bytes (%.2f MiB; limit %.2f MiB)\n", s, s / 1048576, l / 1048576}' >&2
    [ "$size" -le "$DIST_LIMIT" ]
}

# --- packages -------------------------------------------------------------------------
cargo_deb() {
    env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
        "$CACHE/cargo-deb/bin/cargo-deb" "$@"
}
deb_armhf=""
deb_amd64=""
deb() {
    local out=$CARGO_TARGET_DIR/debian-pi
    rm -rf "$out"
    mkdir -p "$out/armhf" "$out/amd64"
    # armhf: the static ARMv6 dist binary built above.
    cargo_deb --no-build --no-strip --target "$TRIPLE" --profile dist --output "$out/armhf" \
        >"$LOGS/deb-armhf.log" 2>&1 || { cat "$LOGS/deb-armhf.log" >&2; return 1; }
    # amd64: the static x86_64 release binary the VM stages run (scripts/vm/static-build.sh;
    # nothing to build after them): this package checks the packaging on a Debian machine,
    # the Pi's binary is the armhf one.
    local vm_build=${VM_WORK:-$CARGO_TARGET_DIR/vm}/build
    VM_WORK=$(dirname "$vm_build") bash scripts/vm/static-build.sh >"$LOGS/deb-amd64.log" 2>&1 &&
        CARGO_TARGET_DIR=$vm_build cargo_deb --no-build --target x86_64-unknown-linux-gnu \
            --output "$out/amd64" >>"$LOGS/deb-amd64.log" 2>&1 ||
        { tail -30 "$LOGS/deb-amd64.log" >&2; return 1; }
    deb_armhf=$(ls "$out"/armhf/*.deb)
    deb_amd64=$(ls "$out"/amd64/*.deb)
    local d arch
    for d in "$deb_armhf" "$deb_amd64"; do
        arch=$(dpkg-deb -f "$d" Architecture)
        echo "$(basename "$d"): $arch, $(stat -c %s "$d") bytes" >&2
        dpkg-deb -c "$d" | awk '{print "  " $1 " " $2 " " $6}' >&2
    done
    [ "$(dpkg-deb -f "$deb_armhf" Architecture)" = armhf ] || { echo "armhf .deb has the wrong architecture" >&2; return 1; }
    [ "$(dpkg-deb -f "$deb_amd64" Architecture)" = amd64 ] || { echo "amd64 .deb has the wrong architecture" >&2; return 1; }
    # The armhf package carries the ARMv6 static binary.
    local x
    x=$(mktemp -d)
    dpkg-deb -x "$deb_armhf" "$x"
    elf_gates "$x/usr/bin/dashcam" || { rm -rf "$x"; return 1; }
    rm -rf "$x"
}

check() {
    if "$@"; then
        echo "  ok: $*" >&2
    else
        echo "  FAILED: $*" >&2
        return 1
    fi
}
deb_install() {
    [ -n "$deb_amd64" ] || deb_amd64=$(ls "$CARGO_TARGET_DIR"/debian-pi/amd64/*.deb)
    # Never a conffile prompt (a leftover install from an interrupted run).
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confnew \
        "$deb_amd64" >"$LOGS/deb-install.log" 2>&1 ||
        "${sudo[@]}" dpkg -i --force-confnew "$deb_amd64" >>"$LOGS/deb-install.log" 2>&1 ||
        { cat "$LOGS/deb-install.log" >&2; return 1; }
    local rc=0
    check test -x /usr/bin/dashcam || rc=1
    check test -f /lib/systemd/system/dashcam.service || rc=1
    check test -x /usr/lib/dashcam/dashcam-start || rc=1
    check test -f /etc/default/dashcam || rc=1
    check test -f /usr/share/polkit-1/rules.d/50-dashcam.rules || rc=1
    check grep -qx /etc/dashcam/dashcam.toml /var/lib/dpkg/info/dashcam.conffiles || rc=1
    check /usr/bin/dashcam check-config /etc/dashcam/dashcam.toml >/dev/null || rc=1
    check getent passwd dashcam >/dev/null || rc=1
    in_group() { id -nG dashcam 2>/dev/null | tr ' ' '\n' | grep -qx "$1"; }
    check in_group video || rc=1
    check in_group gpio || rc=1
    check test "$(stat -c %U /media/footage 2>/dev/null)" = dashcam || rc=1
    check test -L /etc/systemd/system/multi-user.target.wants/dashcam.service || rc=1
    # The installed unit with its installed helper script: systemd-analyze verify.
    echo "  systemd-analyze verify /lib/systemd/system/dashcam.service:" >&2
    if ! systemd-analyze verify /lib/systemd/system/dashcam.service >"$LOGS/verify.log" 2>&1; then
        sed 's/^/    /' "$LOGS/verify.log" >&2
        rc=1
    elif grep -q dashcam "$LOGS/verify.log"; then
        sed 's/^/    /' "$LOGS/verify.log" >&2
        echo "  FAILED: systemd-analyze verify printed warnings about the unit" >&2
        rc=1
    else
        echo "  ok: systemd-analyze verify: clean" >&2
    fi
    # The installed binary records.
    local tmp
    tmp=$(mktemp -d)
    check /usr/bin/dashcam run --fast --source file:tests/inputs/headers_once.h264 --dir "$tmp" 2>/dev/null || rc=1
    check test -n "$(ls "$tmp"/*.mp4 2>/dev/null)" || rc=1
    rm -rf "$tmp"
    if [ "${DASHCAM_PI_KEEP_DEB:-0}" != 1 ]; then
        "${sudo[@]}" dpkg --purge dashcam >>"$LOGS/deb-install.log" 2>&1 || { echo "  FAILED: dpkg --purge" >&2; rc=1; }
        check test ! -e /usr/bin/dashcam || rc=1
        check test ! -e /etc/dashcam/dashcam.toml || rc=1
        check test ! -e /etc/systemd/system/multi-user.target.wants/dashcam.service || rc=1
    fi
    return $rc
}

# The unit file of the repository, as shipped.
unit() {
    local tmp rc=0
    tmp=$(mktemp -d)
    mkdir -p "$tmp/usr/lib/dashcam"
    # verify checks that ExecStart= exists: point it at the script from packaging/.
    sed "s#/usr/lib/dashcam/dashcam-start#$repo/packaging/dashcam-start#" systemd/dashcam.service \
        >"$tmp/dashcam.service"
    systemd-analyze verify "$tmp/dashcam.service" >"$LOGS/unit.log" 2>&1 || rc=1
    if [ -s "$LOGS/unit.log" ]; then
        sed 's/^/  /' "$LOGS/unit.log" >&2
        grep -q dashcam "$LOGS/unit.log" && rc=1
    fi
    rm -rf "$tmp"
    [ "$rc" = 0 ] && echo "systemd-analyze verify systemd/dashcam.service: clean" >&2
    return $rc
}

gpio_vm() {
    bash scripts/pi/gpio-vm/run.sh
}

# --- run ------------------------------------------------------------------------------
part setup setup
if ! ok setup; then
    skip rest "setup failed"
else
    [[ " ${parts[*]} " == *" prebuild "* ]] && part prebuild prebuild
    want inputs || want arm-test || want gates || want deb-install && part inputs inputs
    want arm-test && part arm-test arm_test
    want gates && part gates gates
    want dist && part dist dist
    if want deb; then
        if ok dist && [ -x "$dist_bin" ]; then part deb deb; else skip deb "no dist binary"; fi
    fi
    if want deb-install; then
        if ok deb && ls "$CARGO_TARGET_DIR"/debian-pi/amd64/*.deb >/dev/null 2>&1; then
            part deb-install deb_install
        else
            skip deb-install "no amd64 .deb"
        fi
    fi
    want unit && part unit unit
    if want gpio-vm; then
        if [ -f scripts/pi/gpio-vm/run.sh ]; then part gpio-vm gpio_vm; else skip gpio-vm "not present"; fi
    fi
fi

echo "== pi CI: time per part ==" >&2
printf '  %s\n' "${results[@]}" >&2
echo "  total        $((SECONDS - total_start)) s" >&2
if [ "${#failed[@]}" -gt 0 ]; then
    echo "pi CI: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "pi CI: all parts passed" >&2
