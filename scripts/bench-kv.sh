#!/usr/bin/env bash
# bench-kv.sh: the kv conformance benchmarks (kv/kvtest.RunBenchmarks: the
# same code) on both backends in one run, and the bdb/leveldb ratio of each
# (throughput ratio: above 1 means Berkeley DB is faster). The C anchors
# are bench/libdb/run.sh and bench/leveldb/run.sh.
#   usage: scripts/bench-kv.sh [benchtime]   (default 1s)
set -euo pipefail
cd "$(dirname "$0")/.."
bt=${1:-1s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -tags bdb -run '^$' -bench '^BenchmarkKV$' -benchtime "$bt" -count 1 ./bdb/ ./leveldb/ | tee "$out" | grep -E '^(Benchmark|ok|FAIL)'
awk '
  /^pkg: .*\/bdb$/     { be = "bdb" }
  /^pkg: .*\/leveldb$/ { be = "leveldb" }
  /^BenchmarkKV\// {
    name = $1; sub(/^BenchmarkKV\//, "", name); sub(/-[0-9]+$/, "", name)
    ns[be, name] = $3; names[name] = 1
  }
  END {
    printf "\n%-12s %14s %14s %10s\n", "shape", "bdb ns/op", "leveldb ns/op", "bdb/leveldb"
    for (n in names) if ((("bdb", n) in ns) && (("leveldb", n) in ns))
      printf "%-12s %14d %14d %9.2fx\n", n, ns["bdb", n], ns["leveldb", n], ns["leveldb", n] / ns["bdb", n]
  }' "$out"
