#!/usr/bin/env bash
# interop.sh: durusbdb against the real Durus 4.3 client.
#
#   scripts/interop.sh [--reference] [--reference-only] [--no-build] [-- PYTEST ARGS]
#
# 1. builds bin/durusbdb (go build, with -tags "$TAGS" when TAGS is set, e.g. TAGS=bdb);
# 2. installs the Python shim (python/, module berkeleydb_storage) into $VENV;
# 3. runs the pytest suite tests/interop against durusbdb;
# 4. runs Durus 4.3's own client/server tests (tests/interop/run_durus_suite.py)
#    against durusbdb, over TCP and a unix socket;
# with --reference, also steps 3 and 4 against the reference `durus -s`
# (--reference-only: only those, no build needed).
#
# INTEROP_BACKENDS="bdb leveldb" runs step 3 once per backend (serve --backend=X);
# default: once, with the binary's default backend.
# VENV (default: the repository's .venv) is a virtualenv with durus==4.3 and pytest; it is
# created (python3 -m venv --system-site-packages) if missing. Every step runs
# even if an earlier one failed; the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
PY="$VENV/bin/python"
export PYTHONDONTWRITEBYTECODE=1

reference=0; ours=1; build=1; pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --reference) reference=1 ;;
    --reference-only) reference=1; ours=0; build=0 ;;
    --no-build) build=0 ;;
    --) shift; pytest_args=("$@"); break ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "interop.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

step() { printf '\n=== %s\n' "$*"; }
failed=()
run() { # run NAME CMD...: record a failure, keep going
  local name=$1; shift
  step "$name"
  if "$@"; then echo "--- ok: $name"; else echo "--- FAILED: $name"; failed+=("$name"); fi
}

if [ ! -x "$PY" ]; then
  step "creating virtualenv $VENV"
  python3 -m venv --system-site-packages "$VENV" || exit 1
fi
if ! "$PY" -c 'import durus, pytest' 2>/dev/null; then
  step "installing durus==4.3 and pytest into $VENV"
  "$PY" -m pip install -q 'durus==4.3' pytest || exit 1
fi
"$PY" -c 'import durus.client_storage, pytest; from importlib.metadata import version; print("python", __import__("sys").version.split()[0], "durus", version("durus"), "pytest", pytest.__version__)'

if [ $build = 1 ]; then
  step "go build ${TAGS:+-tags $TAGS }-o bin/durusbdb ./cmd/durusbdb"
  if ! go build ${TAGS:+-tags "$TAGS"} -o bin/durusbdb ./cmd/durusbdb; then
    echo "interop.sh: build failed"; exit 1
  fi
fi
export DURUSBDB_BIN=${DURUSBDB_BIN:-$ROOT/bin/durusbdb}

step "installing the shim (python/) into $VENV"
"$PY" -m pip install -q --no-build-isolation -e python/ 2>/dev/null ||
  "$PY" -m pip install -q -e python/ || { echo "interop.sh: shim install failed"; exit 1; }
"$PY" -c 'import berkeleydb_storage as b; print("berkeleydb_storage", b.__version__, b.__file__)' || exit 1

pytest_run() { # pytest_run TARGET [EXTRA SERVE ARGS]
  DURUSBDB_TARGET=$1 DURUSBDB_SERVE_ARGS="${DURUSBDB_SERVE_ARGS:-} ${2:-}" \
    "$PY" -m pytest tests/interop -p no:cacheprovider -q -rfExX \
    ${pytest_args[@]+"${pytest_args[@]}"}
}
suite_run() { # suite_run TARGET
  "$PY" tests/interop/run_durus_suite.py --target "$1"
}

if [ $ours = 1 ]; then
  [ -x "$DURUSBDB_BIN" ] || { echo "interop.sh: no binary at $DURUSBDB_BIN"; exit 1; }
  if [ -n "${INTEROP_BACKENDS:-}" ]; then
    for b in $INTEROP_BACKENDS; do
      run "pytest tests/interop against durusbdb --backend=$b ($DURUSBDB_BIN)" \
        pytest_run durusbdb "--backend=$b"
    done
  else
    run "pytest tests/interop against durusbdb ($DURUSBDB_BIN)" pytest_run durusbdb
  fi
  run "Durus 4.3 test suite against durusbdb" suite_run durusbdb
fi
if [ $reference = 1 ]; then
  run "pytest tests/interop against the reference durus -s" pytest_run durus
  run "Durus 4.3 test suite against the reference durus -s" suite_run durus
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  printf 'interop.sh: FAILED:\n'; printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "interop.sh: all passed"
