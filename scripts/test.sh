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
# SKIP_APT=1 (never call apt-get), SKIP_FUZZ=1 (leave out the fuzz smoke run), FUZZ_SECONDS
# (its time per target, default 15), SKIP_PREBUILD=1 (build the Pi stage's binaries in
# that stage, not in the background during the fuzz run and the VMs).
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
# test processes), chromium (the phone page in a headless browser, tests/web_browser.rs),
# promtool (package prometheus: checks /metrics, tests/web_api.rs), fonts for the page's
# screenshots, GStreamer's RTSP server (the RTSP camera tests), mosquitto +
# mosquitto-clients (a real MQTT broker and subscriber for the events tests), inotify-tools
# (inotifywait watches the upload folder).
need=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v openssl >/dev/null || need+=(openssl)
command -v flock >/dev/null || need+=(util-linux)
# Players other than ffmpeg judge segments too (tests/players.rs): GStreamer (gst-launch,
# gst-discoverer, the demuxers and decoders) and VLC (libvlc through python3-vlc).
command -v gst-launch-1.0 >/dev/null || need+=(gstreamer1.0-tools)
for p in gstreamer1.0-plugins-base-apps gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
    gstreamer1.0-libav python3-vlc vlc-plugin-base; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
command -v chromium >/dev/null || need+=(chromium fonts-dejavu-core)
command -v promtool >/dev/null || need+=(prometheus)
# GStreamer's RTSP server through python3-gi (tests/rtsp_camera.rs: a real RTSP server).
for pkg in python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
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

# The tests: cargo-nextest when it is there (.config/nextest.toml: each test its own process,
# four at a time, so the test binaries overlap; the doc tests through cargo test, which
# nextest does not run), else cargo test (one test binary after another). Extra
# arguments go to cargo test only.
run_tests() {
    if [ "${#test_args[@]}" -eq 0 ] && cargo nextest --version >/dev/null 2>&1; then
        local rc=0
        cargo nextest run --no-fail-fast || rc=1
        cargo test --doc || rc=1
        return $rc
    fi
    cargo test --no-fail-fast "${test_args[@]}"
}

all_start=$SECONDS
step fmt cargo fmt --all -- --check
step clippy cargo clippy --all-targets -- -D warnings
step inputs bash scripts/make-test-inputs.sh
if [[ " ${failed[*]} " == *" inputs "* ]]; then
    echo "test.sh: cannot run the tests without their inputs" >&2
else
    step test run_tests
fi

# The Pi stage's two long builds (the ARM test binaries, ~7 min from cold; the dist
# binary) start now in the background at the lowest CPU and I/O priority: they take what
# the fuzz run and the VMs leave idle (a VM is one emulated core) and the Pi stage finds
# them built. Only builds: no test runs beside the host suite. Log: target/pi-ci/prebuild.log.
# Its setup (packages, the venv: apt-get must not run beside the VM stages' own) first, in
# the foreground.
prebuild_pid=""
if [ "${SKIP_PI:-0}" != 1 ] && [ "${SKIP_PREBUILD:-0}" != 1 ]; then
    step pi-setup bash scripts/pi/ci.sh setup
    mkdir -p target/pi-ci
    nice -n 19 ionice -c 3 bash scripts/pi/ci.sh prebuild >target/pi-ci/prebuild.log 2>&1 &
    prebuild_pid=$!
fi
wait_prebuild() {
    [ -n "$prebuild_pid" ] || return 0
    # A failed prebuild is not a failure by itself: the Pi stage builds (and says) again.
    wait "$prebuild_pid" || echo "test.sh: the Pi prebuild failed; see target/pi-ci/prebuild.log" >&2
    return 0
}

# Every parser of outside input under libFuzzer for a short while (cargo-fuzz, stable
# toolchain, 2 targets at a time on 2 cores): fuzz/run.sh, fuzz/README.md.
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
    step fuzz bash fuzz/run.sh "${FUZZ_SECONDS:-15}"
fi

# Real power cuts, a full disk and a vanishing drive in a QEMU VM (storage keeper).
# V4L2 capture from vivid (a real kernel driver) in the same kind of VM.
if [ "${SKIP_VM:-0}" != 1 ]; then
    step v4l2-vm bash scripts/vm/v4l2.sh
    step power-cut bash scripts/vm/power-cut.sh
fi
# The Pi Zero: ARMv6 build, the whole suite on an emulated ARM1176, readelf gates, dist
# size, .debs, the systemd unit, the GPIO role on a real (simulated) GPIO chip in a VM.
if [ "${SKIP_PI:-0}" != 1 ]; then
    step pi-prebuild wait_prebuild
    step pi bash scripts/pi/ci.sh
fi

echo "test.sh: $((SECONDS - all_start)) s in all" >&2
if [ "${#failed[@]}" -gt 0 ]; then
    echo "test.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "test.sh: all steps passed" >&2
