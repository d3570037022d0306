#!/usr/bin/env bash
# rig-client.sh: the client side of the test rig. Runs the interop suite
# with the real Durus 4.3 client against the server at DURUS_HOST:DURUS_PORT
# (the compose rig's client container and scripts/rig.sh both run this).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DURUS_HOST:?}" "${DURUS_PORT:?}"
PY=${PY:-python3}
# Wait (bounded) for the server to answer.
for _ in $(seq 1 100); do
  "$PY" -c "import socket,sys; socket.create_connection(('$DURUS_HOST', $DURUS_PORT), timeout=1).close()" 2>/dev/null && break
  sleep 0.1
done
export DURUS_HOST DURUS_PORT
exec "$PY" -m pytest tests/interop -p no:cacheprovider -q -rfE "$@"
