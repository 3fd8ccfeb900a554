#!/usr/bin/env bash
# Instructions per JSON record of one shape, natively (callgrind): bodies of 2,000 records
# `{"<key>": "<value>"}` in an array, each inspected 11 times and once; the difference over
# 10 x 2,000 is what one record costs, key, value and array element included. The fixed cost
# of a value on the scan path (issue 7): most strings of real bodies are ids, timestamps and
# enums in which no detector finds anything. Takes ~1 minute; needs valgrind.
#
#   tests/bench_records.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
cargo build -q --release -p meshdlp --example records
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 - "$out" <<'PY'
import json, sys, uuid, random
random.seed(1)
shapes = {
    "enum": lambda i: {"status": "active"},
    "timestamp": lambda i: {"created_at": "2024-01-%02dT10:%02d:00Z" % (i % 28 + 1, i % 60)},
    "uuid": lambda i: {"id": str(uuid.UUID(int=random.getrandbits(128)))},
    "words": lambda i: {"note": "Order shipped today"},
    "amount": lambda i: {"amount": "1234.50"},
}
for name, make in shapes.items():
    with open("%s/%s.json" % (sys.argv[1], name), "w") as f:
        json.dump([make(i) for i in range(2000)], f)
PY
count() { # body n
  valgrind --tool=callgrind --callgrind-out-file="$out/cg" target/release/examples/records "$1" "$2" \
    2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for shape in enum timestamp uuid words amount; do
  one=$(count "$out/$shape.json" 1)
  eleven=$(count "$out/$shape.json" 11)
  printf '%-10s %6d instructions per record   (%s)\n' "$shape" "$(( (eleven - one) / 10 / 2000 ))" \
    "$(head -c 60 "$out/$shape.json")..."
done
