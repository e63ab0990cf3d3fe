#!/usr/bin/env bash
# The static x86_64 dashcam (and the v4l2loopback feeder) that every QEMU VM stage runs:
# the V4L2 VM, the power cuts and the GPIO VM. One command, one directory, one set of
# flags (an example brings in the dev-dependencies' features, so a build without it
# would be another build), so the stages after the first rebuild nothing:
#
#   $VM_WORK/build/x86_64-unknown-linux-gnu/release/dashcam
#   $VM_WORK/build/x86_64-unknown-linux-gnu/release/examples/v4l2_loopback_feed
#
# VM_WORK defaults to target/vm. Prints only cargo's errors.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${VM_WORK:-$here/target/vm}
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
cd "$here"
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$work/build" \
    exec cargo build --quiet --release --target x86_64-unknown-linux-gnu \
    --bin dashcam --example v4l2_loopback_feed
