#!/usr/bin/env bash
# compare.sh: run every loadgen mode against durusbdb serve (leveldb, and bdb
# when the binary has it) and against Durus 4.3's own `durus -s`, and print
# the ops/s side by side.
#
#   bench/loadgen/compare.sh [DURATION] [CONNS]
#
# Needs: go, and a Python with Durus 4.3 ($DURUSBDB_PYTHON, default
# $VENV/bin/python, VENV defaulting to the repository's .venv). Each server gets a fresh database in a temp dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-5s}
CONNS=${2:-8}
PY=${DURUSBDB_PYTHON:-${VENV:-$PWD/.venv}/bin/python}
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

(cd bench && go build -o "$TMP/loadgen" ./loadgen)
go build -tags bdb -o "$TMP/durusbdb" ./cmd/durusbdb 2>/dev/null || go build -o "$TMP/durusbdb" ./cmd/durusbdb

port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1',$1)).close()" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

run_modes() { # name port
  local name=$1 p=$2
  for mode in loads bulk commits; do
    echo "$name $("$TMP/loadgen" -addr 127.0.0.1:$p -mode $mode -conns "$CONNS" -duration "$DURATION" -warmup 1s)"
  done
  echo "$name $("$TMP/loadgen" -addr 127.0.0.1:$p -mode bigcommit -conns 1 -duration "$DURATION" -warmup 1s)"
}

PORT=
start_ours() { # name backend durability; sets PORT
  PORT=$(port); mkdir -p "$TMP/$1"
  "$TMP/durusbdb" serve --dir "$TMP/$1" --create --backend "$2" --durability "$3" --port "$PORT" \
    --logginglevel 40 >"$TMP/$1.log" 2>&1 &
  PIDS+=($!); wait_port "$PORT"
}

backends=$("$TMP/durusbdb" version | sed -n 's/^backends: \([^(]*\).*/\1/p' | tr -d ,)
for b in $backends; do
  for d in sync write-nosync; do
    start_ours "$b-$d" "$b" "$d"
    run_modes "durusbdb/$b/$d" "$PORT"
    kill "${PIDS[-1]}"
  done
done
p=$(port)
"$PY" -m durus -s --port "$p" --file "$TMP/py.durus" --logginglevel 40 >"$TMP/py.log" 2>&1 &
PIDS+=($!); wait_port "$p"
run_modes "durus-4.3" "$p"
