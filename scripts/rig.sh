#!/usr/bin/env bash
# rig.sh: the docker/compose.yaml rig as plain processes on 127.0.0.1 (CI has
# no Docker engine): a durusbdb server (built with -tags bdb, as the image)
# waited for with the image's health check (docker/healthcheck.py on
# /readyz), and the client script the client container runs (scripts/rig-client.sh),
# then a graceful stop with `durusbdb serve --stop` and an offline check.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$PWD/.venv}
go build -tags bdb -o bin/durusbdb ./cmd/durusbdb
data=$(mktemp -d)
read -r port mport <<<"$("$VENV/bin/python" scripts/freeports.py 2)"
bin/durusbdb serve --dir "$data" --create --host 127.0.0.1 --port "$port" --metrics "127.0.0.1:$mport" >"$data.log" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$data" "$data.log"' EXIT
status=0
# As compose's depends_on: wait until the image's health check says ready.
ready=0
for _ in $(seq 1 200); do
  if "$VENV/bin/python" docker/healthcheck.py "http://127.0.0.1:$mport/readyz" 2>/dev/null; then ready=1; break; fi
  sleep 0.1
done
[ $ready = 1 ] || { echo "rig: server not ready within 20 s"; tail -20 "$data.log"; exit 1; }
DURUS_HOST=127.0.0.1 DURUS_PORT=$port PY="$VENV/bin/python" scripts/rig-client.sh || status=$?
bin/durusbdb serve --host 127.0.0.1 --port "$port" --stop
for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then echo "rig: server did not stop"; status=1; fi
wait $pid || { echo "rig: server exit status $?"; status=1; }
bin/durusbdb check --dir "$data" || status=1
[ $status = 0 ] || { echo "rig: server log:"; tail -20 "$data.log"; }
exit $status
