#!/usr/bin/env bash
# Fuzzes the body pipeline with cargo-fuzz (libFuzzer) for FUZZ_SECONDS (default 60).
# FUZZ_TARGET picks the target: inspect (default) or decode_inspect (compressed bodies, seeded
# from tests/data/corpus by tests/fuzz_seeds.py).
# Installs what it needs into the project: the nightly toolchain (rustup) and cargo-fuzz (.tools).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-none}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
[ -x .tools/bin/cargo-fuzz ] || cargo install --locked --quiet --root .tools cargo-fuzz
export PATH="$PWD/.tools/bin:$PATH"
target=${FUZZ_TARGET:-inspect}
corpus=fuzz/corpus/$target
mkdir -p "$corpus"
if [ "$target" = decode_inspect ]; then
  python=python3
  [ -x .venv/bin/python ] && python=.venv/bin/python
  "$python" tests/fuzz_seeds.py "$corpus"
  cd fuzz
  cargo +nightly fuzz run --sanitizer "$sanitizer" decode_inspect "corpus/decode_inspect" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=16384 -print_final_stats=1 2>&1 | tail -15
  exit "${PIPESTATUS[0]}"
fi
# Seeds: the bodies the tests use, behind each selector byte.
i=0
for seed in '{"email":"ada@example.com","card":4111111111111111,"n":[1,{"a":"+44 20 7946 0958"}]}' \
            '{"a":"x\u0040y.io","b":["536-22-1234"],"items":[1,2,3,4]}' \
            'user=ada&password=hunter22&email=ada%40example.com' \
            'call (212) 555-1234 or DE89 3704 0044 0532 0130 00'; do
  for sel in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do
    printf '%b%s' "\\x$(printf %02x $sel)" "$seed" > "$corpus/seed-$i-$sel"
  done
  i=$((i + 1))
done
cd fuzz
cargo +nightly fuzz run --sanitizer "$sanitizer" inspect "corpus/inspect" -- \
  -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=4096 -print_final_stats=1 2>&1 | tail -15
