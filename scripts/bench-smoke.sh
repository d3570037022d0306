#!/usr/bin/env bash
# bench-smoke.sh: the benchmark suite (scripts/bench.sh) at tiny scale —
# 1k-object data sets, a 2,000-record migrate, 0.5 s per figure, no 1M/10M
# data sets and no 1 GB file — asserting only that every row of the table
# was produced (never a speed). Writes its table and chart to a temporary
# directory, not docs/, and its data sets to a temporary cache unless
# BENCH_CACHE is set. CI runs it; it takes about two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/durusbdb-bench-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export BENCH_SCALE=smoke
export BENCH_DURATION=${BENCH_DURATION:-0.5s}
export BENCH_CACHE=${BENCH_CACHE:-$tmp/cache}
export BENCH_OUT=${BENCH_OUT:-$tmp/out}
scripts/bench.sh -check "$@"
echo "bench-smoke: every row produced" >&2
