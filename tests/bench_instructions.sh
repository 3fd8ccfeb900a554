#!/usr/bin/env bash
# Instructions per pass over the corpus, natively and in V8: the comparison that holds on a
# shared machine, where timings of the same binary vary by 35% between runs (docs/BENCHMARKS.md,
# sessions 13 and 18). Each engine runs the corpus once and three times under callgrind; the
# difference over two is one pass, without the process's setup. V8 (node) compiles the whole
# module with TurboFan up front and on one thread, as Envoy's V8 does, so the counts repeat to
# ~0.2%. Takes ~3 minutes; needs valgrind and node (installed when missing).
#
#   tests/bench_instructions.sh                  this checkout
#   BENCH_POLICY='{...}' tests/bench_instructions.sh   another policy (see examples/bench.rs)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
command -v node >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs)
rustup target list --installed | grep -q '^wasm32-wasip1$' || rustup target add wasm32-wasip1
cargo build -q --release -p meshdlp --example bench
cargo build -q --profile wasm -p meshdlp --example bench --target wasm32-wasip1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export BENCH_ONLY=corpus BENCH_NO_NAIVE=1
count() { # name passes command...
  local name=$1 passes=$2
  shift 2
  BENCH_PASSES=$passes valgrind --tool=callgrind --callgrind-out-file="$out/$name.$passes.cg" \
    "$@" >"$out/$name.$passes.log" 2>&1
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/$name.$passes.log"
}
per_pass() { # name command...
  local name=$1
  shift
  local one three
  one=$(count "$name" 1 "$@")
  three=$(count "$name" 3 "$@")
  local findings
  findings=$(sed -n 's/^\(3 corpus passes, [0-9]* findings each\)$/\1/p' "$out/$name.3.log")
  printf '%-7s %8.1f M instructions per corpus pass   (%s)\n' "$name" \
    "$(echo "($three - $one) / 2 / 1000000" | bc -l)" "$findings"
}
per_pass native target/release/examples/bench
per_pass v8 node --no-warnings --single-threaded --no-liftoff --no-wasm-lazy-compilation \
  tests/wasm/bench.mjs target/wasm32-wasip1/wasm/examples/bench.wasm
