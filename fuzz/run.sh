#!/usr/bin/env bash
# Build the fuzz targets and run each for a while (the smoke run of scripts/test.sh, or a
# longer hunt). Stable toolchain: libFuzzer without a sanitizer (`-s none`); the targets
# are built with debug assertions and overflow checks.
#
# usage: fuzz/run.sh [SECONDS] [TARGET...]
#
#   SECONDS  per target (default 30)
#   TARGET   annexb h264 mjpeg mp4 avi config (default: all)
#
# Installs cargo-fuzz (pinned) from crates.io when missing, seeds the corpora
# (fuzz/make-corpus.sh), runs FUZZ_JOBS targets at a time (default: the number of CPUs),
# each from fuzz/corpus/TARGET (where new inputs go) and fuzz/regressions/TARGET (inputs
# of crashes found and fixed, run first). A crash leaves its input in
# fuzz/artifacts/TARGET/ and fails the run; keep it small in fuzz/regressions/TARGET/ and
# as a unit test once fixed. Logs: fuzz/artifacts/TARGET.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=${1:-30}
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(annexb h264 mjpeg mp4 avi config)
jobs=${FUZZ_JOBS:-$(nproc)}

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
    start=$SECONDS
    cargo install --quiet --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
    echo "fuzz: cargo-fuzz installed in $((SECONDS - start)) s" >&2
fi

cargo fmt --manifest-path fuzz/Cargo.toml -- --check
start=$SECONDS
cargo fuzz build -s none
echo "fuzz: targets built in $((SECONDS - start)) s" >&2
bash fuzz/make-corpus.sh

max_len() {
    case "$1" in
        mp4) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

mkdir -p fuzz/artifacts
run_one() {
    local t=$1
    mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t" "fuzz/artifacts/$t"
    cargo fuzz run -s none "$t" "fuzz/corpus/$t" "fuzz/regressions/$t" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=1024 \
        -print_final_stats=1 >"fuzz/artifacts/$t.log" 2>&1
}

failed=()
pids=()
names=()
report() { # INDEX STATUS
    local t=${names[$1]} log=fuzz/artifacts/${names[$1]}.log
    local runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$2" = 0 ]; then
        echo "fuzz: $t ok (${runs:-?} runs in ${seconds} s)" >&2
    else
        echo "fuzz: $t FAILED (exit $2); the end of $log:" >&2
        grep -v '^#[0-9]' "$log" | tail -30 >&2
        failed+=("$t")
    fi
}
for t in "${targets[@]}"; do
    if [ "${#pids[@]}" -ge "$jobs" ]; then
        status=0
        wait "${pids[0]}" || status=$?
        report 0 "$status"
        pids=("${pids[@]:1}")
        names=("${names[@]:1}")
    fi
    run_one "$t" &
    pids+=($!)
    names+=("$t")
done
for i in "${!pids[@]}"; do
    status=0
    wait "${pids[$i]}" || status=$?
    report "$i" "$status"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (crash inputs in fuzz/artifacts/)" >&2
    exit 1
fi
