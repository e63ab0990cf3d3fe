#!/usr/bin/env bash
# The one test command (README): from a fresh Debian machine with the Rust toolchain,
# install what the tests need, check formatting and lints, generate the test inputs and
# run every test. Exits non-zero if any step fails (all steps run, then a summary).
#
#   scripts/test.sh            everything
#   scripts/test.sh -- ARGS    extra arguments for `cargo test` (e.g. -- --test signals)
#
# Environment: SKIP_VM=1 / SKIP_PI=1 (leave out the VM power-cut stage / the Pi stage, for a
# quick local run; CI runs everything), DASHCAM_RUNNER (run the binary under e.g. qemu-arm-static; see
# tests/common/mod.rs), DASHCAM_TEST_INPUTS (inputs directory, default tests/inputs),
# SKIP_APT=1 (never call apt-get).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${1:-}" = "--" ]; then shift; fi
test_args=("$@")

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

# --- system packages -------------------------------------------------------------------
# ffmpeg/ffprobe (inputs and judging), openssl (reproducible garbage input, the MQTT TLS
# test's certificates), flock (util-linux: serialises input generation between parallel
# test processes), mosquitto + mosquitto-clients (a real MQTT broker and subscriber for
# the events tests), inotify-tools (inotifywait watches the upload folder).
need=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v openssl >/dev/null || need+=(openssl)
command -v flock >/dev/null || need+=(util-linux)
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || need+=(mosquitto)
command -v mosquitto_sub >/dev/null || need+=(mosquitto-clients)
command -v inotifywait >/dev/null || need+=(inotify-tools)
if [ "${#need[@]}" -gt 0 ]; then
    if [ "${SKIP_APT:-0}" = 1 ]; then
        echo "test.sh: missing ${need[*]} and SKIP_APT=1" >&2
        exit 1
    fi
    sudo=()
    if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
    echo "test.sh: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- steps -----------------------------------------------------------------------------
failed=()
step() {
    local name=$1
    shift
    echo "==> $name: $*" >&2
    local start=$SECONDS
    if "$@"; then
        echo "==> $name: ok ($((SECONDS - start)) s)" >&2
    else
        echo "==> $name: FAILED ($((SECONDS - start)) s)" >&2
        failed+=("$name")
    fi
}

all_start=$SECONDS
step fmt cargo fmt --all -- --check
step clippy cargo clippy --all-targets -- -D warnings
step inputs bash scripts/make-test-inputs.sh
if [[ " ${failed[*]} " == *" inputs "* ]]; then
    echo "test.sh: cannot run the tests without their inputs" >&2
else
    step test cargo test --no-fail-fast "${test_args[@]}"
fi

# Real power cuts, a full disk and a vanishing drive in a QEMU VM (storage keeper).
if [ "${SKIP_VM:-0}" != 1 ]; then
    step power-cut bash scripts/vm/power-cut.sh
fi
# The Pi Zero: ARMv6 build, the whole suite on an emulated ARM1176, readelf gates, dist
# size, .debs, the systemd unit, the GPIO role on a real (simulated) GPIO chip in a VM.
if [ "${SKIP_PI:-0}" != 1 ]; then
    step pi bash scripts/pi/ci.sh
fi

echo "test.sh: $((SECONDS - all_start)) s in all" >&2
if [ "${#failed[@]}" -gt 0 ]; then
    echo "test.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "test.sh: all steps passed" >&2
