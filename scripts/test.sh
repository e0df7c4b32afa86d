#!/usr/bin/env bash
# Run the whole test suite (unit, integration, property, crash, doc and bench smoke tests).
# Installs what a fresh Debian/Ubuntu machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_toolchain
cargo test --workspace --locked "$@"
