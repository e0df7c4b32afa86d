#!/usr/bin/env bash
# Install schemathesis (PyPI, pinned) into a virtual environment for the
# property-based API tests; prints nothing else when it is already there.
#   scripts/install-schemathesis.sh [VENV_DIR]   (default: ~/.cache/naksha/venv-schemathesis)
set -euo pipefail
venv="${1:-${HOME}/.cache/naksha/venv-schemathesis}"
version="4.32.5"
if [ -x "$venv/bin/schemathesis" ] && [ "$(cat "$venv/.version" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  echo "installing python3-venv ..." >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq python3-venv python3-pip >/dev/null
fi
echo "installing schemathesis $version into $venv ..." >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
echo "$version" > "$venv/.version"
