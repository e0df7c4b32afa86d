#!/usr/bin/env bash
# Build naksha-embed with the `cuda` feature (Candle's CUDA kernels) and run its
# tests in that build. Needs no GPU: it proves the GPU path compiles and that the
# CPU paths behave the same in a CUDA build (a GPU machine runs the same command
# and the CUDA device then works too). Installs Debian's CUDA toolkit (non-free,
# about 3 GB) when nvcc is missing. Not part of .ci/run: too heavy for every run.
#
#   scripts/check-cuda.sh            # compute capability 8.0 (A100); set CUDA_COMPUTE_CAP=90 for H100
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_toolchain
if ! command -v nvcc >/dev/null 2>&1; then
  echo "installing the CUDA toolkit (Debian non-free nvidia-cuda-toolkit) ..." >&2
  sudo_if() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  if ! apt-cache policy nvidia-cuda-toolkit | grep -q 'Candidate: [0-9]'; then
    codename="$(. /etc/os-release && echo "$VERSION_CODENAME")"
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$codename" |
      sudo_if tee /etc/apt/sources.list.d/naksha-nonfree.sources >/dev/null
    sudo_if apt-get update -qq
  fi
  sudo_if env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nvidia-cuda-toolkit >/dev/null
fi
# Without a GPU, nvidia-smi cannot say which architecture to compile for.
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
# A separate build folder: the CUDA build's Candle differs from the default one's.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}-cuda"
export NAKSHA_MODELS_DIR="${NAKSHA_MODELS_DIR:-${HOME}/.cache/naksha/models}"
./scripts/install-model.sh "$NAKSHA_MODELS_DIR"
cargo clippy -p naksha-embed --features cuda --all-targets --locked -- -D warnings
cargo test -p naksha-embed --features cuda --locked "$@"
