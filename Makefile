# Sluice: one entry point for set-up, build, tests, demo and benchmarks.
# `make demo` and `make test` do all set-up themselves (as root).

CARGO ?= cargo

.PHONY: setup build test lint demo bench clean

setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Lint first: a warning fails the suite as a test would.
test: setup lint
	$(CARGO) test --workspace

demo: setup
	bash scripts/demo.sh

bench: setup
	$(CARGO) bench -p perf

clean:
	$(CARGO) clean
