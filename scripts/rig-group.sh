#!/usr/bin/env bash
# rig-group.sh: the compose rig's replication group (`--profile group` of
# docker/compose.yaml) as plain processes on 127.0.0.1 (CI has no Docker
# engine): three sites started together with the compose file's flags
# (--repl-init on site1 only), each waited for with the image's health
# check (docker/healthcheck.py on /readyz); then the group client the
# group-client container runs (scripts/rig-group-client.py, through
# berkeleydb_storage.ReplicatedConnection) while the master is killed with
# kill -9 after the client's first 100 commits and restarted a second
# later (as a restart policy would): the client rides through the
# failover, and every site, the restarted one included, must serve the
# same counter. Last, a graceful stop of each site and an offline
# `durusbdb check` of each directory.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$PWD/.venv}
PY="$VENV/bin/python"
COMMITS=${COMMITS:-4000}
go build -tags bdb -o bin/durusbdb ./cmd/durusbdb
root=$(mktemp -d)
declare -a dport rport mport pid
read -r -a ports <<<"$("$PY" scripts/freeports.py 9)"
for i in 1 2 3; do dport[$i]=${ports[3*i-3]}; rport[$i]=${ports[3*i-2]}; mport[$i]=${ports[3*i-1]}; done
cleanup() {
  for i in 1 2 3; do [ -n "${pid[$i]:-}" ] && kill -9 "${pid[$i]}" 2>/dev/null || true; done
  [ -n "${cpid:-}" ] && kill -9 "$cpid" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
start_site() { # start_site I [--repl-init]
  local i=$1 peers=() j
  shift
  for j in 1 2 3; do [ "$j" = "$i" ] || peers+=(--repl-peer "127.0.0.1:${rport[$j]}"); done
  bin/durusbdb serve --dir "$root/site$i" --create --host 127.0.0.1 --port "${dport[$i]}" \
    --metrics "127.0.0.1:${mport[$i]}" --repl-listen "127.0.0.1:${rport[$i]}" "${peers[@]}" \
    --repl-durus-addr "127.0.0.1:${dport[$i]}" "$@" >>"$root/site$i.log" 2>&1 &
  pid[$i]=$!
}
wait_ready() { # wait_ready I: the image's health check on /readyz, bounded
  local i=$1
  for _ in $(seq 1 300); do
    "$PY" docker/healthcheck.py "http://127.0.0.1:${mport[$i]}/readyz" 2>/dev/null && return 0
    kill -0 "${pid[$i]}" 2>/dev/null || { echo "rig-group: site$i exited"; tail -20 "$root/site$i.log"; return 1; }
    sleep 0.1
  done
  echo "rig-group: site$i not ready within 30 s"; tail -20 "$root/site$i.log"; return 1
}
is_master() { "$PY" docker/healthcheck.py "http://127.0.0.1:${mport[$1]}/role" 2>/dev/null; }
fail() { echo "rig-group: $*"; for i in 1 2 3; do echo "--- site$i log"; tail -15 "$root/site$i.log"; done; exit 1; }

start_site 1 --repl-init
start_site 2
start_site 3
for i in 1 2 3; do wait_ready "$i" || fail "site$i not ready"; done

sites="127.0.0.1:${dport[1]},127.0.0.1:${dport[2]},127.0.0.1:${dport[3]}"
DURUS_SITES=$sites COMMITS=$COMMITS REQUIRE_ALL=1 PYTHONPATH="$PWD/python" \
  "$PY" scripts/rig-group-client.py >"$root/client.log" 2>&1 &
cpid=$!
for _ in $(seq 1 600); do
  grep -q 'progress 100$' "$root/client.log" && break
  kill -0 $cpid 2>/dev/null || break
  sleep 0.1
done
grep -q 'progress 100$' "$root/client.log" || { cat "$root/client.log"; fail "the client made no 100 commits within 60 s"; }
master=""
for i in 1 2 3; do is_master "$i" && master=$i; done
[ -n "$master" ] || fail "no site answers /role 200"
kill -0 $cpid 2>/dev/null || { cat "$root/client.log"; fail "the client ended before the kill (raise COMMITS)"; }
kill -9 "${pid[$master]}"
echo "rig-group: kill -9 of the master, site$master, after $(grep progress "$root/client.log" | tail -1 | awk '{print $3}') commits"
wait "${pid[$master]}" 2>/dev/null || true
sleep 1
start_site "$master" # restarted as a restart policy would; it rejoins as a replica
wait_ready "$master" || fail "site$master did not rejoin"
status=0
if ! timeout 300 tail --pid=$cpid -f /dev/null; then fail "the client did not end within 300 s"; fi
wait $cpid || status=$?
cat "$root/client.log" | grep -v progress
cpid=""
[ $status = 0 ] || fail "the group client failed (status $status)"
recon=$(sed -n 's/.*(\([0-9]*\) reconnections.*/\1/p' "$root/client.log")
[ -n "$recon" ] || fail "the client printed no summary"
[ "$recon" -ge 1 ] || fail "the client never reconnected: the kill of the master did not reach it"
for i in 1 2 3; do
  bin/durusbdb serve --host 127.0.0.1 --port "${dport[$i]}" --stop || fail "site$i: stop failed"
done
for i in 1 2 3; do
  for _ in $(seq 1 100); do kill -0 "${pid[$i]}" 2>/dev/null || break; sleep 0.1; done
  kill -0 "${pid[$i]}" 2>/dev/null && fail "site$i did not stop"
  wait "${pid[$i]}" || fail "site$i exit status $?"
  pid[$i]=""
done
for i in 1 2 3; do bin/durusbdb check --dir "$root/site$i" || fail "site$i: check failed"; done
echo "rig-group: passed"
