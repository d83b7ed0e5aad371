# The front door. Each target is a thin call into scripts/, xtask or cargo.
#   make run       build every filter and serve them in a real Envoy on 127.0.0.1 (LISTEN=0.0.0.0 for all);
#                  NATIVE=1 serves them as Envoy dynamic modules (dist/lib<name>.so)
#   make test      unit + host-emulator + real-Envoy integration tests + config validation
#   make new-filter NAME=my-filter [OUT=../my-filter]   (OUT: a standalone crate outside this repo)
#   make bench     side-by-side benchmark (results in target/bench/results.md)
#   make package   every filter → OCI image layouts (compat + oci variants) in target/oci/
#   make publish REGISTRY=host:port[/prefix] [TAG=...]   push them, write target/manifests/
SHELL := /bin/bash
CARGO ?= cargo
XTASK := $(CARGO) run -q -p xtask --
# `make run` listens on loopback unless told otherwise.
LISTEN ?= 127.0.0.1

.PHONY: setup build test test-unit test-integration run new-filter bench package publish wasmplugins fmt lint clean fuzz soak

setup:
	@bash scripts/setup.sh

build: setup
	@$(XTASK) build

# The second line: sdk-ext with its optional features off (a filter built without `regex`).
# The third: every filter crate and sdk-ext tested alone, with only its own features (unit,
# integration and doc tests), so that Cargo's feature unification across the workspace cannot
# hide a failure (xtask/src/test_each.rs). Then `make new-filter` end to end in a scratch
# copy of the repository (xtask/src/new_filter.rs).
# Every filter's emulator suite runs twice: natively and on the dist/*.wasm `build` just
# wrote (a missing module fails instead of skipping). Last, each fuzz target briefly.
test: export SDK_EXT_REQUIRE_WASM = 1
test: build lint
	$(CARGO) test --workspace --all-features --no-fail-fast
	$(CARGO) test -p sdk-ext --no-default-features --lib
	@$(XTASK) test-each
	@$(XTASK) new-filter-check
	bash scripts/fuzz.sh --ci

test-unit:
	$(CARGO) test --workspace --all-features --exclude integration
	$(CARGO) test -p sdk-ext --no-default-features --lib
	@$(XTASK) test-each

test-integration: build
	$(CARGO) test -p integration

# The second clippy: the dynamic-module host (sdk-ext/src/dynamic_module/shim.rs) is compiled
# only without the emulator (`testing`), which --all-features turns on. Then: the checked-in
# envoy-configs/native/ match their wasm configs (xtask native-configs), and every crate's
# own test build shares the workspace's builds of wasmtime, jsonschema and regorus
# (scripts/test-dep-variants.py: cargo's unit graph, nothing compiled), so `test-each`
# compiles none of them again.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-features --all-targets -q -- -D warnings
	$(CARGO) clippy -p sdk-ext --features dynamic-module,regex --lib -q -- -D warnings
	@$(XTASK) native-configs --check
	@python3 scripts/test-dep-variants.py

run: build
	@LISTEN=$(LISTEN) NATIVE=$(NATIVE) bash scripts/run-demo.sh

new-filter:
	@test -n "$(NAME)" || { echo "usage: make new-filter NAME=my-filter"; exit 2; }
	@$(XTASK) new-filter $(NAME) $(if $(OUT),--out $(OUT))

bench: build
	@$(XTASK) bench $(ARGS)

package: build
	@$(XTASK) package

publish: build
	@test -n "$(REGISTRY)" || { echo "usage: make publish REGISTRY=host:port[/prefix] [TAG=...]"; exit 2; }
	@$(XTASK) publish $(REGISTRY) $(TAG)

# The Kubernetes manifests only (Istio, Envoy Gateway, Higress; images pushed some other way)
# into envoy-configs/; default registry is the placeholder the checked-in copies use.
wasmplugins: build
	@$(XTASK) wasmplugins $(or $(REGISTRY),registry.example.com/envoy-wasm-filters) $(TAG)

# Every cargo-fuzz target (fuzz/) for FUZZ_SECONDS each (default 60); needs nightly +
# cargo-fuzz (installed from crates.io when missing).
fuzz:
	@FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) bash scripts/fuzz.sh

# The demo chain in a real Envoy under valid tokens + hostile traffic for MINUTES (default
# 10); samples RSS, heap and each VM's linear memory every 30 s and prints the slopes.
soak: build
	@MINUTES=$(or $(MINUTES),10) bash scripts/soak.sh

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf target-wasm dist
