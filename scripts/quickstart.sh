#!/usr/bin/env bash
# Quickstart: build Naksha and run it embedded on its default data directory
# (./naksha-data), load the bundled sample and answer queries.
# Installs what a fresh Debian/Ubuntu machine lacks (a C compiler for simsimd).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_toolchain
cargo run --release --locked -p naksha --example quickstart -- "${1:-naksha-data}"
