#!/usr/bin/env bash
# repl.sh: the Berkeley DB replication harness. Runs the bdb package's
# replication tests with three real site processes on 127.0.0.1 (group
# forming, PERM_FAILED with both replicas SIGSTOPped, a PERM_FAILED commit
# rolled back with ErrHandleDead on the old master's handles,
# read-your-writes, site removal) and ROUNDS failover rounds (default 10; by
# hand: ROUNDS=100 scripts/repl.sh) that take the master away at a random
# moment of a commit storm, by kill -9 and by SIGSTOP in turn, each checking
# that every acknowledged commit is on the new master and on the old one
# (restarted, or continued and demoted). Prints the failover times (kill or
# stop → first commit accepted by the new master, p50 and max per kind).
# Then the server-level rounds (tests/repl): three durusbdb server
# processes (service.Serve), the PERM_FAILED test (no O without a quorum),
# replica invalidations, and ROUNDS rounds of an 8-connection commit storm
# on the master, kill -9 and SIGSTOP/SIGCONT in turn (every acknowledged
# commit byte for byte on the new master and on the rejoined or continued
# old one; failover p50/max per kind printed); at the end every site
# serves the same records, its database files dump (db5.3_dump) the same
# and the engine's check is clean on each. Then the operator's side, with
# real `durusbdb serve` processes: `durusbdb repl remove-site` of a
# killed replica (the group drops it everywhere; the quorum follows), and
# a joining site killed at random moments of its sync-up and restarted
# until it is a replica whose database files dump as the master's.
# With BENCH=1 it also runs BenchmarkReplCommit (commits/s on the master
# of 3 sites vs standalone, with and without TCP_NODELAY/BULK) and
# BenchmarkReplServerCommit (the same through the server, 8 connections).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-10}
log=$(mktemp /tmp/durusbdb-repl.XXXXXX.log)
status=0
DURUSBDB_REPL_ROUNDS="$ROUNDS" go test -tags bdb -race -count=1 -timeout 60m \
  -run 'TestRepl' -v ./bdb/ >"$log" 2>&1 || status=$?
grep -E '^(--- |ok|FAIL|PASS|panic)|FAILOVER|SIGSTOP of the master|round [0-9]+:' "$log" || true
if [ "$status" -ne 0 ] || ! grep -q '^ok' "$log"; then
  echo "repl.sh: failed (full output in $log)"; tail -50 "$log"; exit 1
fi
slog=$(mktemp /tmp/durusbdb-repl-server.XXXXXX.log)
# Two tests run ROUNDS rounds each, up to ~30 s a round under -race.
ROUNDS="$ROUNDS" go test -tags bdb -race -count=1 -timeout "$((60 + ROUNDS))m" \
  -run 'TestReplServer' -v ./tests/repl/ >"$slog" 2>&1 || status=$?
grep -E '^(--- |ok|FAIL|PASS|panic)|round [0-9]+:|failover|same|dump|check clean' "$slog" || true
if [ "$status" -ne 0 ] || ! grep -q '^ok' "$slog"; then
  echo "repl.sh: server rounds failed (full output in $slog)"; grep -v '^ *time=' "$slog" | tail -50; exit 1
fi
olog=$(mktemp /tmp/durusbdb-repl-ops.XXXXXX.log)
go test -tags bdb -race -count=1 -timeout 10m \
  -run 'TestReplRemoveSite|TestReplKillDuringSync' -v ./tests/repl/ >"$olog" 2>&1 || status=$?
grep -E '^(--- |ok|FAIL|PASS|panic)|round [0-9]+:|kills during' "$olog" || true
if [ "$status" -ne 0 ] || ! grep -q '^ok' "$olog"; then
  echo "repl.sh: remove-site / sync-up kill tests failed (full output in $olog)"; grep -v '^ *time=' "$olog" | tail -50; exit 1
fi
if [ "${BENCH:-0}" = 1 ]; then
  go test -tags bdb -count=1 -run '^$' -bench 'BenchmarkReplCommit' -benchtime=1s ./bdb/ | tee -a "$log"
  go test -tags bdb -count=1 -run '^$' -bench 'BenchmarkReplServerCommit' -benchtime=1x ./tests/repl/ | tee -a "$slog"
fi
echo "repl.sh: ok (full output in $log)"
