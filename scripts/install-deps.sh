#!/usr/bin/env bash
# install-deps.sh: everything a fresh Debian 12 machine needs to build and
# test durusbdb: libdb 5.3 (headers and tools), LevelDB and snappy, Python
# with bsddb3, e2fsprogs and mount (the I/O-error test makes an ext4 loop
# image), openssl (the TLS interop test makes its certificates), and a
# virtualenv ($VENV, default .venv) holding Durus 4.3.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$PWD/.venv}
pkgs=(libdb5.3-dev db5.3-util libleveldb-dev libsnappy-dev python3-bsddb3 python3-venv python3-dev gcc pkg-config e2fsprogs mount util-linux openssl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/python" -c 'import durus, pytest' 2>/dev/null ||
  "$VENV/bin/pip" install -q 'durus==4.3' pytest
"$VENV/bin/python" -c 'import bsddb3, durus; print("install-deps: python", bsddb3.__name__, "durus", durus.__file__)'
go version
