#!/usr/bin/env bash
# crash.sh: the kill -9 harness. Starts real server processes, kills them
# with SIGKILL under 8 committing clients, restarts, and checks that every
# acknowledged commit is present (PROTOCOL.md C37). ROUNDS per backend
# (default 50: 100 rounds in all with both backends).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-50}
go test -count=1 -timeout 60m -tags 'crash bdb' ./tests/crash -build-tags bdb -rounds "$ROUNDS" -v 2>&1 | tee /tmp/crash.log | grep -E '^(CRASH|--- |ok|FAIL|PASS|panic)|crash_test.go' || true
grep -q '^ok' /tmp/crash.log
