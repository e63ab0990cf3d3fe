#!/usr/bin/env bash
# The benchmark: dashcam against ffmpeg's segment muxer. See benches/segment_vs_ffmpeg.sh.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../benches/segment_vs_ffmpeg.sh" "$@"
