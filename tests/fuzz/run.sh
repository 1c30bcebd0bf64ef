#!/usr/bin/env bash
# tests/fuzz/run.sh TARGET SEEDS CORPUS RUNS [libFuzzer flags...]: runs TARGET for RUNS inputs
# (RUNS = 0: until stopped) from a fresh copy of SEEDS in CORPUS; findings go to CORPUS/../crashes.
set -euo pipefail
target=$1 seeds=$2 corpus=$3 runs=$4
shift 4
crashes="$(dirname "$corpus")/crashes/$(basename "$corpus")"
rm -rf "$corpus"
mkdir -p "$corpus" "$crashes"
cp -r "$seeds"/. "$corpus"/
limit=()
[ "$runs" -gt 0 ] && limit=(-runs="$runs")
export LSAN_OPTIONS="suppressions=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lsan.supp:${LSAN_OPTIONS:-}"
exec "$target" "$corpus" "${limit[@]}" -max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=30 \
     -print_final_stats=1 -artifact_prefix="$crashes/" "$@"
