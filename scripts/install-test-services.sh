#!/usr/bin/env bash
# Install the real services the ingestion tests start on loopback, once:
#   - Postgres server binaries (Debian's postgresql package; the tests run
#     their own cluster in a temp dir with wal_level=logical)
#   - moto's S3-compatible server (PyPI, pinned) in a virtual environment
# Prints the two environment lines scripts/test.sh exports:
#   NAKSHA_PG_BIN=<dir with initdb and pg_ctl>   NAKSHA_S3_SERVER=<moto_server>
#   scripts/install-test-services.sh [VENV_DIR]   (default: ~/.cache/naksha/venv-s3)
set -euo pipefail
venv="${1:-${HOME}/.cache/naksha/venv-s3}"
sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
  echo "installing the Postgres server binaries (postgresql) ..." >&2
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq postgresql >/dev/null
fi
pins="moto[server]==5.1.18"
if [ ! -x "$venv/bin/moto_server" ] || [ "$(cat "$venv/.version" 2>/dev/null)" != "$pins" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    echo "installing python3-venv ..." >&2
    $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq python3-venv python3-pip >/dev/null
  fi
  echo "installing the S3 test server ($pins) into $venv ..." >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$pins"
  echo "$pins" > "$venv/.version"
fi
echo "NAKSHA_PG_BIN=$(pg_bin)"
echo "NAKSHA_S3_SERVER=$venv/bin/moto_server"
