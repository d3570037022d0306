#!/usr/bin/env bash
# run.sh: build bench.c, run it and the bdb package's Go benchmarks on the
# same operations (bdb/bench_test.go), and print the Go/C throughput ratio
# of each (C ns/op divided by Go ns/op: 100% means Go is as fast as C).
#
# usage: bench/libdb/run.sh [rounds] [scale]
#   rounds: C and Go runs are interleaved this many times (default 3) and
#           the fastest of each is kept, which filters out interference
#           from other load on the machine.
#   scale:  multiplies the operation counts (default 1).
# Needs gcc, libdb5.3-dev and Go. Writes only under a temporary directory.
set -euo pipefail

rounds=${1:-3}
scale=${2:-1}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gcc -O2 -Wall -o "$work/cbench" "$root/bench/libdb/bench.c" -ldb
(cd "$root" && go test -c -tags bdb -o "$work/bdb.test" ./bdb/)

# Operation counts, the same for C and Go (bench.c multiplies its own by scale).
declare -A count=(
	[PutSync]=1500 [PutNoSync]=60000 [Put100]=120000
	[Get]=500000 [CursorScan]=700000 [StoreGet]=100000
)
names=(PutSync PutNoSync Put100 Get CursorScan StoreGet)

declare -A cbest gobest
for ((r = 1; r <= rounds; r++)); do
	mkdir -p "$work/c"
	while read -r name ns; do
		if [[ -z ${cbest[$name]:-} ]] || ((ns < cbest[$name])); then cbest[$name]=$ns; fi
	done < <("$work/cbench" "$work/c" "$scale")
	for name in "${names[@]}"; do
		n=$(awk -v c="${count[$name]}" -v s="$scale" 'BEGIN { printf "%d", c * s }')
		ns=$(cd "$work" && ./bdb.test -test.run '^$' -test.bench "^Benchmark${name}\$" \
			-test.benchtime "${n}x" | awk '/^Benchmark/ { print int($3) }')
		if [[ -z ${gobest[$name]:-} ]] || ((ns < gobest[$name])); then gobest[$name]=$ns; fi
	done
done

printf '%-12s %12s %12s %8s   (best of %d rounds; Go = bdb package, C = libdb directly)\n' \
	benchmark "C ns/op" "Go ns/op" "Go/C" "$rounds"
for name in "${names[@]}"; do
	c=${cbest[$name]}
	g=${gobest[$name]}
	printf '%-12s %12d %12d %7.1f%%\n' "$name" "$c" "$g" "$(awk -v c="$c" -v g="$g" 'BEGIN { print 100 * c / g }')"
done
