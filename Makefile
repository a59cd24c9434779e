# Sluice: one entry point for set-up, build, tests, demo and benchmarks.
# `make demo` and `make test` do all set-up themselves (as root).

CARGO ?= cargo

.PHONY: setup build test lint demo bench clean fuzz soak install deb package-build package-stage

setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

# The stages also build without DPDK (README, Layout): checked here so
# that it cannot rot unseen again.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p dataplane --no-default-features --all-targets -- -D warnings

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
# resolution), so the bench run reuses it instead of compiling twice. The
# benches run as one binary (perf/benches/stages.rs): with thin LTO every
# bench binary is a whole-program link, most of the build's time.
# Criterion: short settings, and 10,000 bootstrap resamples for the
# confidence intervals instead of 100,000 (the estimates are the same).
# e2e: each program started once per capture, three intervals of 1 s
# after 1 s of warm-up. docs/PERFORMANCE.md says where the time goes.
BENCH_TARGET = $(or $(CARGO_TARGET_DIR),target)
BENCH_HUGEPAGES ?= 2048
BENCHES = --bench stages
# Each step's wall time is printed at the end (e2e prints its own phases).
bench:
	@set -e; rc=0; t0=$$(date +%s); \
	SLUICE_HUGEPAGES=$(BENCH_HUGEPAGES) bash scripts/setup.sh; t1=$$(date +%s); \
	$(CARGO) build --release -p ctrlplane -p perf --bin sluice --bin e2e $(BENCHES); t2=$$(date +%s); \
	$(CARGO) bench --profile release -p ctrlplane -p perf $(BENCHES) -- --warm-up-time 0.3 --measurement-time 0.7 --sample-size 10 --nresamples 10000; t3=$$(date +%s); \
	$(BENCH_TARGET)/release/e2e --sluice $(BENCH_TARGET)/release/sluice --work-dir $(BENCH_TARGET)/perf-e2e --out-dir perf/results --measure 1 --doc docs/PERFORMANCE.md || rc=$$?; t4=$$(date +%s); \
	echo "bench: setup $$((t1 - t0)) s, build $$((t2 - t1)) s, criterion $$((t3 - t2)) s, end to end $$((t4 - t3)) s: $$((t4 - t0)) s in all (load $$(cut -d' ' -f1-3 /proc/loadavg))"; \
	exit $$rc

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

# Installing: `make install` (DESTDIR and PREFIX honoured) and `make deb`
# put the same files in the same places: sluice, sluice-cli and
# sluice-controller in BINDIR, their man pages (written from the clap
# definitions by sluice-mangen) in MANDIR, the systemd units sluice@.service
# and sluice-controller.service in UNITDIR, and the example configs in
# /etc/sluice (an existing file there is kept: it may be yours).
# Both build release binaries. PROFILE=dev NO_BUILD=1 BIN_DIR=DIR package
# binaries already built instead: the packaging test in `make test` uses
# the debug binaries the suite has just built, because a release build
# takes 13 minutes here and would double the suite's time.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man/man1
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
PROFILE ?= release
BIN_DIR ?= $(BENCH_TARGET)/$(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
# cargo-deb's asset paths (ctrlplane/Cargo.toml) name this directory.
PKG_STAGE = target/pkg
DEB_FLAGS ?=
INSTALL_BINS = sluice sluice-cli sluice-controller
UNITS = sluice@.service sluice-controller.service

package-build:
ifndef NO_BUILD
	$(CARGO) build --profile $(PROFILE) -p ctrlplane -p sluice-controller -p sluice-mangen \
		--bin sluice --bin sluice-cli --bin sluice-controller --bin sluice-mangen
endif

# Binaries without their debug sections (a package has no use for them),
# man pages compressed as Debian ships them, units pointing at BINDIR.
package-stage: package-build
	rm -rf $(PKG_STAGE)
	mkdir -p $(PKG_STAGE)/bin $(PKG_STAGE)/man $(PKG_STAGE)/systemd
	for b in $(INSTALL_BINS); do strip --strip-debug -o $(PKG_STAGE)/bin/$$b $(BIN_DIR)/$$b; done
	$(BIN_DIR)/sluice-mangen $(PKG_STAGE)/man
	gzip -9n $(PKG_STAGE)/man/*.1
	for u in $(UNITS); do sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' packaging/systemd/$$u.in > $(PKG_STAGE)/systemd/$$u; done

install: package-stage
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/sluice
	install -m 755 $(addprefix $(PKG_STAGE)/bin/,$(INSTALL_BINS)) $(DESTDIR)$(BINDIR)/
	install -m 644 $(PKG_STAGE)/man/*.1.gz $(DESTDIR)$(MANDIR)/
	install -m 644 $(addprefix $(PKG_STAGE)/systemd/,$(UNITS)) $(DESTDIR)$(UNITDIR)/
	for f in examples/*.toml packaging/*.env; do \
		dest=$(DESTDIR)$(SYSCONFDIR)/sluice/$$(basename $$f); \
		[ -e $$dest ] || install -m 644 $$f $$dest; \
	done

# The package installs under /usr; its units run /usr/bin/sluice.
deb:
	$(MAKE) package-stage PREFIX=/usr BINDIR=/usr/bin
	$(CARGO) deb -p ctrlplane --no-build --quiet -o $(PKG_STAGE)/ $(DEB_FLAGS)

clean:
	$(CARGO) clean
