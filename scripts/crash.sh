#!/usr/bin/env bash
# crash.sh: the kill -9 harness, both backends. Starts real server
# processes, kills them with SIGKILL and restarts them, and checks that
# every acknowledged commit is present (PROTOCOL.md C37). Two workloads:
#   classic: 8 committing clients, full collections, 50 ms checkpoints,
#            a clean stop + check + db_verify every 10 rounds (ROUNDS, default 50);
#   churn:   8 committing clients and one committing 5,000-20,000 garbage
#            objects per transaction, 1 s collector grace, kills 0.5-3 s in,
#            quick restarts without a clean stop, kills during recovery and
#            during backups, libdb's db_recover + db_verify on copies
#            (CHURN_ROUNDS, default 100).
# By hand: ROUNDS=0 CHURN_ROUNDS=500 scripts/crash.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-50}
CHURN_ROUNDS=${CHURN_ROUNDS:-100}
log=$(mktemp /tmp/durusbdb-crash.XXXXXX.log)
status=0
go test -count=1 -timeout 80m -tags 'crash bdb' ./tests/crash -build-tags bdb \
  -rounds "$ROUNDS" -churn-rounds "$CHURN_ROUNDS" -v >"$log" 2>&1 || status=$?
grep -E '^(CRASH|--- |ok|FAIL|PASS|panic)|crash_test.go' "$log" || true
if [ "$status" -ne 0 ] || ! grep -q '^ok' "$log"; then
  echo "crash.sh: failed (full output in $log)"; tail -50 "$log"; exit 1
fi
