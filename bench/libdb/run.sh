#!/usr/bin/env bash
# run.sh: build bench.c, run it and the bdb package's Go benchmarks on the
# same operations (bdb/bench_test.go), and print the Go/C ratio of each:
# C ns/op divided by Go ns/op, so 100% means Go is as fast as C. Both wall
# time and CPU time (user+system of the whole process: libdb, cgo, Go GC)
# are compared; on a machine shared with other load the CPU figure is the
# steadier one (PutSync is bound by fsync, so only its wall time counts).
#
# usage: bench/libdb/run.sh [rounds] [scale]
#   rounds: C and Go runs are interleaved this many times (default 3) and
#           the fastest of each is kept, to filter out interference.
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

# Operation counts, the same for C and Go (bench.c scales its own).
declare -A count=(
	[PutSync]=1000 [PutNoSync]=50000 [Put100Sync]=500 [GetWarm]=300000
	[Scan100k]=20 [Scan100kBulk]=20 [DBGet]=300000
)
names=(PutSync PutNoSync Put100Sync GetWarm DBGet Scan100k Scan100kBulk)
# Go has one scan benchmark: its Cursor reads ahead with DB_MULTIPLE_KEY in
# read transactions, so it is compared with both C walks.
declare -A gobench=([Scan100kBulk]=Scan100k)

min() { if [[ -z $1 ]] || (($2 < $1)); then echo "$2"; else echo "$1"; fi; }

declare -A cwall ccpu gwall gcpu
for ((r = 1; r <= rounds; r++)); do
	mkdir -p "$work/c"
	while read -r name wall cpu; do
		cwall[$name]=$(min "${cwall[$name]:-}" "$wall")
		ccpu[$name]=$(min "${ccpu[$name]:-}" "$cpu")
	done < <("$work/cbench" "$work/c" "$scale")
	for name in "${names[@]}"; do
		gname=${gobench[$name]:-$name}
		n=$(awk -v c="${count[$name]}" -v s="$scale" 'BEGIN { printf "%d", c * s }')
		read -r wall cpu < <(cd "$work" && ./bdb.test -test.run '^$' -test.bench "^Benchmark${gname}\$" \
			-test.benchtime "${n}x" | awk '/^Benchmark/ {
				for (i = 1; i < NF; i++) { if ($(i+1) == "ns/op") w = $i; if ($(i+1) == "cpu-ns/op") c = $i }
				printf "%d %d\n", w, c }')
		gwall[$name]=$(min "${gwall[$name]:-}" "$wall")
		gcpu[$name]=$(min "${gcpu[$name]:-}" "$cpu")
	done
done

printf 'best of %d rounds, scale %s; Go = package bdb, C = libdb directly\n' "$rounds" "$scale"
printf '%-15s %10s %10s %7s   %10s %10s %7s\n' benchmark "C wall" "Go wall" "Go/C" "C cpu" "Go cpu" "Go/C"
for name in "${names[@]}"; do
	printf '%-15s %10d %10d %6.1f%%   %10d %10d %6.1f%%\n' "$name" \
		"${cwall[$name]}" "${gwall[$name]}" "$(awk -v c="${cwall[$name]}" -v g="${gwall[$name]}" 'BEGIN { print 100 * c / g }')" \
		"${ccpu[$name]}" "${gcpu[$name]}" "$(awk -v c="${ccpu[$name]}" -v g="${gcpu[$name]}" 'BEGIN { print 100 * c / g }')"
done
