#!/usr/bin/env bash
# serve.sh: install dependencies, build durusbdb with the Berkeley DB backend
# and serve the default database directory ./data on 127.0.0.1:2972.
# Extra arguments go to `durusbdb serve` (e.g. --port 3000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
go build -tags bdb -o bin/durusbdb ./cmd/durusbdb
mkdir -p data
exec bin/durusbdb serve --dir data --create "$@"
