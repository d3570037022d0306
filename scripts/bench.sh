#!/usr/bin/env bash
# bench.sh: durusbdb's performance benchmark suite. Builds durusbdb (with
# Berkeley DB), the load-generating driver (bench/suite), the ceilings
# (bench/trivial, bench/commitc), then starts, one after another on
# 127.0.0.1 and each on a fresh database, durusbdb serve (bdb, durability
# sync), durusbdb serve (leveldb) and Durus 4.3's `durus -s` (FileStorage),
# measures them and the ceilings, prints one markdown table and writes it
# with the machine description to docs/PERFORMANCE.md (only the generated
# part between the bench:begin/bench:end markers) and a chart to
# docs/performance.png.
#
#   scripts/bench.sh [-check]
#
# Environment:
#   BENCH_SCALE=full|short|smoke  sizes (full: 100k/1M/10M-object data sets,
#                                 1 GB migrate; short: 10k/100k, 50k records)
#   BENCH_DURATION=5s             measured time per figure (full default)
#   BENCH_CACHE=~/.cache/durusbdb-bench  generated data sets, kept between runs
#   BENCH_SECTIONS=ceil,servers,gc,stall,repl,open,migrate  what to run
#   BENCH_OUT=docs                where PERFORMANCE.md and performance.png go
#   BENCH_PROFILE=1               serve bdb under bench/suite/profserve and
#                                 write CPU profiles (+ pprof -top) to the work dir
#   BENCH_KEEP=1                  keep the work directory (logs, profiles)
#   BENCH_CLIENT_SYSMON=park      leave the load generator's Go runtime as it
#                                 starts (default: its sysmon kept awake)
#   DURUSBDB_PYTHON=PATH          Python with Durus 4.3 (default: $VENV/bin/python,
#                                 VENV defaulting to the repository's .venv)
#
# Every server is killed on exit (trap), every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=${VENV:-$root/.venv} # scripts/install-deps.sh's venv
py=${DURUSBDB_PYTHON:-$venv/bin/python}
durus=${DURUSBDB_DURUS:-$(dirname "$py")/durus}
out=${BENCH_OUT:-docs}
work=$(mktemp -d "${TMPDIR:-/tmp}/durusbdb-bench.XXXXXX")
pidfile=$work/pids
driver=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $driver ]] && kill -0 "$driver" 2>/dev/null; then
		kill -TERM "$driver" 2>/dev/null || true
		for _ in $(seq 150); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$driver" 2>/dev/null || true
	fi
	if [[ -f $pidfile ]]; then
		while read -r pid; do
			[[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
		done <"$pidfile"
	fi
	if [[ ${BENCH_KEEP:-0} == 1 ]]; then
		echo "bench: work directory kept: $work" >&2
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/bin"
echo "bench: building into $work/bin" >&2
go build -tags bdb -o "$work/bin/durusbdb" ./cmd/durusbdb
# bench/ is a module of its own (its plotting libraries stay out of the
# server's go.mod); it uses this tree through a replace directive.
(cd bench && go build -o "$work/bin/trivial" ./trivial && go build -o "$work/bin/suite" ./suite)
gcc -O2 -Wall -o "$work/bin/commitc" bench/commitc/commitc.c -ldb -lpthread
profargs=()
if [[ ${BENCH_PROFILE:-0} == 1 ]]; then
	(cd bench && go build -tags bdb -o "$work/bin/profserve" ./suite/profserve)
	profargs=(-profserve "$work/bin/profserve")
fi

"$work/bin/suite" -durusbdb "$work/bin/durusbdb" -trivial "$work/bin/trivial" -commitc "$work/bin/commitc" \
	-python "$py" -durus "$durus" -work "$work/run" -out "$out" -pidfile "$pidfile" "${profargs[@]}" "$@" &
driver=$!
wait "$driver"
