# Sluice: one entry point for set-up, build, tests, demo and benchmarks.
# `make demo` and `make test` do all set-up themselves (as root).

CARGO ?= cargo

.PHONY: setup build test lint demo bench clean fuzz soak

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

# Criterion micro benchmarks per stage (short settings), then the end-to-end
# harness: Sluice against dpdk-testpmd io and OVS-DPDK on the same captures
# and virtual devices (perf/results/e2e.{json,md,png}; docs/PERFORMANCE.md
# reads them). The 1 Mi-flow captures live in each program's mempool
# (net_pcap infinite_rx): 3.3 GB, hence 4 GiB of hugepages for the bench.
# One build of sluice, the harness and the benches together (one feature
# resolution), so the bench run reuses it instead of compiling twice.
# 1 s measured per run (after 1 s of warm-up), three rounds: the 30
# scenarios, their testpmd and OVS runs fit in about 9 minutes.
BENCH_TARGET = $(or $(CARGO_TARGET_DIR),target)
BENCH_HUGEPAGES ?= 2048
BENCHES = --bench parse --bench filter --bench classifier --bench dedup --bench slice --bench encap --bench decap --bench clone --bench tools
bench:
	SLUICE_HUGEPAGES=$(BENCH_HUGEPAGES) bash scripts/setup.sh
	$(CARGO) build --release -p ctrlplane -p perf --bin sluice --bin e2e $(BENCHES)
	$(CARGO) bench --profile release -p ctrlplane -p perf $(BENCHES) -- --warm-up-time 0.3 --measurement-time 0.7 --sample-size 10
	$(BENCH_TARGET)/release/e2e --sluice $(BENCH_TARGET)/release/sluice --work-dir $(BENCH_TARGET)/perf-e2e --measure 1 --doc docs/PERFORMANCE.md

# Each fuzz target for FUZZ_SECONDS (fuzz/README.md; FUZZ_JOBS=2 runs two at once).
FUZZ_SECONDS ?= 60
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh

# pktgen -> Sluice -> a receiver for SOAK_SECONDS (default 60) at SOAK_PPS,
# then the checks: exact accounting, no memory growth after warm-up, every
# packet once and in order per flow out of each tunnel (perf/src/bin/soak.rs).
# Not part of `make test`.
SOAK_SECONDS ?= 60
SOAK_PPS ?= 20000
soak: setup
	$(CARGO) build --release -p ctrlplane -p pktgen -p perf --bin sluice --bin pktgen --bin soak
	$(BENCH_TARGET)/release/soak --seconds $(SOAK_SECONDS) --pps $(SOAK_PPS) \
		--sluice $(BENCH_TARGET)/release/sluice --pktgen $(BENCH_TARGET)/release/pktgen \
		--work-dir $(BENCH_TARGET)/soak

clean:
	$(CARGO) clean
