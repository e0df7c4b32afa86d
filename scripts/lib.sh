# Shared helpers for the scripts in this folder (sourced, not run).

# A C compiler (simsimd's kernels are C) and cargo. Rust itself comes from rustup.
ensure_toolchain() {
  if ! command -v cc >/dev/null 2>&1; then
    echo "installing a C compiler (build-essential) ..." >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq build-essential >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq build-essential >/dev/null; fi
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust from https://rustup.rs (stable, 1.89 or newer)" >&2
    exit 1
  fi
  # Reuse a build directory outside the checkout when one exists, so fresh clones build incrementally.
  if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d "${HOME}/.cache/naksha-target" ]; then
    export CARGO_TARGET_DIR="${HOME}/.cache/naksha-target"
  fi
}
