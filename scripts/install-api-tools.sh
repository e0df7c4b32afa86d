#!/usr/bin/env bash
# Install the API contract tools (PyPI, pinned) into a virtual environment for
# the contract tests; prints nothing else when they are already there:
#   schemathesis           property-based runs against the live HTTP server
#   openapi-spec-validator validates /openapi.json as OpenAPI 3.1
#   grpcio-reflection      a generic gRPC client driven by server reflection
#   scripts/install-api-tools.sh [VENV_DIR]   (default: ~/.cache/naksha/venv-api-tools)
set -euo pipefail
venv="${1:-${HOME}/.cache/naksha/venv-api-tools}"
pins="schemathesis==4.32.5 openapi-spec-validator==0.9.0 grpcio==1.85.1 grpcio-reflection==1.85.1 protobuf==7.36.2"
if [ -x "$venv/bin/schemathesis" ] && [ "$(cat "$venv/.version" 2>/dev/null)" = "$pins" ]; then
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  echo "installing python3-venv ..." >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq python3-venv python3-pip >/dev/null
fi
echo "installing the API tools ($pins) into $venv ..." >&2
rm -rf "$venv"
python3 -m venv "$venv"
# shellcheck disable=SC2086
"$venv/bin/pip" install --quiet --disable-pip-version-check $pins
echo "$pins" > "$venv/.version"
