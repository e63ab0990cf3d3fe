#!/usr/bin/env bash
# Benchmark: the web role under load while recording live, side by side with nginx serving
# the same files in the same run (see benches/web_load.py for what is measured). Not part of
# the test suite.
#
# usage: benches/web_load.sh [SECONDS]   (seconds per loaded phase, default 20)
set -euo pipefail
export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v pgrep >/dev/null || need+=(procps)
if [ "${#need[@]}" -gt 0 ]; then
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
PATH="$PATH:/usr/sbin"

inputs=${DASHCAM_TEST_INPUTS:-tests/inputs}
bash scripts/make-test-inputs.sh "$inputs" bench1080.h264
input=$(cd "$inputs" && pwd)/bench1080.h264

# The binary that ships: the dist profile.
echo "building: cargo build --profile dist" >&2
cargo build --profile dist --quiet
bin=$(pwd)/${CARGO_TARGET_DIR:-target}/dist/dashcam
exec python3 benches/web_load.py "$bin" "$input" "${1:-20}"
