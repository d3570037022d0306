#!/bin/sh
# run.sh: run the shared kvtest benchmark shapes through the Go LevelDB
# backend (go test -bench KV ./leveldb/) and through bench.c (libleveldb's C
# API, same calls), then print the Go/C time ratio per shape.
#
# usage: bench/leveldb/run.sh [seconds-per-shape [count]]   (default 1 1)
# With count > 1 each side runs count times and the fastest run of each
# shape is compared (the machine is shared; the minimum is the least noisy).
# Both runs use a temporary directory on the same file system ($TMPDIR).
set -eu
secs=${1:-1}
count=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

cc -O2 -Wall -o "$work/bench" "$here/bench.c" -lleveldb
mkdir "$work/c"

echo "== Go: go test -run '^\$' -bench KV -benchtime ${secs}s -count $count ./leveldb/"
(cd "$root" && go test -run '^$' -bench KV -benchtime "${secs}s" -count "$count" ./leveldb/) | tee "$work/go.txt"
echo "== C: bench.c x $count"
i=0
while [ "$i" -lt "$count" ]; do
	rm -rf "$work/c" && mkdir "$work/c"
	"$work/bench" "$work/c" "$secs" | tee -a "$work/c.txt"
	i=$((i + 1))
done

echo "== Go/C ratio (ns/op, fastest of $count)"
awk '
	FNR == NR && /^BenchmarkKV\// {
		name = $1; sub(/^BenchmarkKV\//, "", name); sub(/-[0-9]+$/, "", name)
		for (i = 2; i < NF; i++) if ($(i+1) == "ns/op" && (!(name in go) || $i < go[name])) go[name] = $i
		next
	}
	FNR != NR {
		if (!($1 in c)) { order[++n] = $1; c[$1] = $2 }
		else if ($2 < c[$1]) c[$1] = $2
	}
	END {
		printf "%-12s %14s %14s %8s\n", "shape", "Go ns/op", "C ns/op", "Go/C"
		for (i = 1; i <= n; i++) {
			s = order[i]
			if (s in go && c[s] > 0) printf "%-12s %14.0f %14.0f %8.2f\n", s, go[s], c[s], go[s] / c[s]
			else printf "%-12s %14s %14.0f %8s\n", s, "?", c[s], "?"
		}
	}' "$work/go.txt" "$work/c.txt"
