#!/usr/bin/env bash
# Fuzz Naksha's decoders and parsers with cargo-fuzz (libFuzzer) on stable Rust.
#
#   ./scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]
#
# Each target runs for SECONDS_PER_TARGET (default 10) from the checked-in
# seeds (fuzz/seeds/TARGET) plus a working corpus kept outside the checkout
# (~/.cache/naksha-fuzz/corpus/TARGET). A crash stops the script with the
# failing input under fuzz/artifacts/TARGET and a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_toolchain
if ! command -v c++ >/dev/null 2>&1; then   # libFuzzer is C++
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq g++ >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq g++ >/dev/null; fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz ..." >&2
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
seconds="${1:-10}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(wal_record section_file manifest filter text_query request_json credential ingest_input)
fi
# Its own target dir: instrumented release builds share nothing with the tests'.
export CARGO_TARGET_DIR="${NAKSHA_FUZZ_TARGET_DIR:-${HOME}/.cache/naksha-fuzz-target}"
work="${NAKSHA_FUZZ_CORPUS:-${HOME}/.cache/naksha-fuzz/corpus}"
cd fuzz
cargo fuzz build -s none
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  rm -rf "artifacts/$t"
  echo "== fuzz $t for ${seconds}s"
  cargo fuzz run -s none "$t" "$work/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 2>&1 |
    grep -E "^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb|==|.*(panicked|ERROR|SUMMARY|deadly|crash-))" || true
  if [ -n "$(find "artifacts/$t" -type f 2>/dev/null)" ]; then
    echo "fuzz target $t found a failing input: fuzz/artifacts/$t" >&2
    exit 1
  fi
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no failures"
