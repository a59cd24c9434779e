#!/usr/bin/env bash
# Sets up a machine to build, test and run Sluice. Idempotent; run as root.
#  - installs every Debian package the build, tests, demo and benchmarks use
#  - reserves hugepages and mounts hugetlbfs when needed
#  - checks the result and says what is wrong if anything is
#
# `setup.sh --for CONFIG` only reserves the hugepages that config needs
# (as `sluice --check-config CONFIG` prints them) and mounts hugetlbfs:
# what a host that runs Sluice, not builds it, needs. The sluice binary it
# asks is $SLUICE, else the one on PATH, else this checkout's build.
set -euo pipefail

HUGEPAGES=${SLUICE_HUGEPAGES:-1024}   # 2 MiB pages: 2 GiB (`make bench` asks for 4 GiB)
HUGE_DIR=/dev/hugepages
CARGO_DEB_VERSION=3.8.0               # `make deb`
FOR_CONFIG=
case "${1:-}" in
  --for) FOR_CONFIG=${2:?--for needs a config file} ;;
  "") ;;
  *) printf 'setup: error: unknown argument %s (setup.sh [--for CONFIG])\n' "$1" >&2; exit 2 ;;
esac

PACKAGES=(
  libdpdk-dev dpdk dpdk-dev   # DPDK 22.11 headers and libraries; dpdk-testpmd, dpdk-pdump
  clang libclang-dev          # bindgen
  pkg-config gcc make         # build
  libpcap-dev                 # net_pcap
  tshark                      # independent judge of every emitted format
  iproute2 tcpdump            # network namespaces, veth, tap
  iputils-arping              # asks each uplink's address from the kernel side
  util-linux mount            # unshare and a tmpfs of a test's own (the disk-full fault)
  python3                     # dpdk-telemetry.py
  valgrind                    # perf/callgrind.sh: instructions per packet
  openvswitch-switch-dpdk     # the benchmark's peer: OVS-DPDK on the same capture
  softflowd pmacct            # flow intake tests: NetFlow v5/v9/IPFIX and sFlow exporters
  nats-server                 # the data-service stream's server (JetStream), in tests
  python3-jsonschema          # e2e_nats validates the stream's messages against their schema
  prometheus                  # e2e_prometheus: a real server scrapes a running Sluice
  systemd                     # the packaging test: systemd-analyze verify
  etcd-server                 # the controllers' fleet store (v3 API); tests start their own
  protobuf-compiler           # protoc: etcd-client's build script generates its gRPC stubs
  nfdump                      # nfcapd: the IPFIX export's second independent judge
  qemu-user                   # e2e_startup runs sluice on an emulated older CPU
)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (packages and hugepages need it): sudo make setup"

if [ -n "$FOR_CONFIG" ]; then
  root=$(cd "$(dirname "$0")/.." && pwd)
  bin=${SLUICE:-$(command -v sluice || true)}
  for b in "$root/target/release/sluice" "$root/target/debug/sluice"; do
    [ -n "$bin" ] || { [ -x "$b" ] && bin=$b; }
  done
  [ -n "$bin" ] || die "no sluice binary: install the package, build it (make build), or set SLUICE"
  report=$("$bin" -- --check-config "$FOR_CONFIG") || die "$FOR_CONFIG is not a valid config (above)"
  HUGEPAGES=$(printf '%s\n' "$report" | sed -n 's/^hugepages: \([0-9]*\) x 2 MiB.*/\1/p')
  [ -n "$HUGEPAGES" ] || die "sluice --check-config printed no hugepages line"
  say "$FOR_CONFIG needs $HUGEPAGES hugepages of 2 MiB"
fi

missing=()
[ -z "$FOR_CONFIG" ] || PACKAGES=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture: answer no, unattended.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  # openvswitch-switch would start the system's own OVS daemons on install;
  # the benchmark starts its own (own run directory, inside a namespace), so
  # no service starts during the install (policy-rc.d, only if none is set).
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
elif [ -z "$FOR_CONFIG" ]; then
  say "packages present"
fi

if [ -z "$FOR_CONFIG" ]; then
  if ! command -v cargo >/dev/null 2>&1; then
    die "cargo is missing: install a Rust toolchain (rustup) first"
  fi
  if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    say "installing cargo-deb $CARGO_DEB_VERSION (make deb)"
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
  fi
fi

nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
total=$(cat "$nr")
if [ "$total" -lt "$HUGEPAGES" ]; then
  say "reserving $HUGEPAGES hugepages of 2 MiB (had $total)"
  echo "$HUGEPAGES" > "$nr"
  total=$(cat "$nr")
  if [ "$total" -lt "$HUGEPAGES" ]; then
    # Memory in use is fragmented: free clean page cache, compact, retry.
    say "only $total: compacting memory and trying again"
    sync
    echo 1 > /proc/sys/vm/drop_caches
    echo 1 > /proc/sys/vm/compact_memory
    echo "$HUGEPAGES" > "$nr"
    total=$(cat "$nr")
  fi
fi
if ! grep -qs " $HUGE_DIR hugetlbfs " /proc/mounts; then
  say "mounting hugetlbfs on $HUGE_DIR"
  mkdir -p "$HUGE_DIR"
  mount -t hugetlbfs nodev "$HUGE_DIR"
fi

if [ -n "$FOR_CONFIG" ]; then
  [ "$total" -ge "$HUGEPAGES" ] || die "only $total of $HUGEPAGES hugepages could be reserved (memory fragmented?)"
  grep -qs " $HUGE_DIR hugetlbfs " /proc/mounts || die "hugetlbfs is not mounted on $HUGE_DIR"
  say "ok: $total hugepages of 2 MiB for $FOR_CONFIG, hugetlbfs on $HUGE_DIR"
  exit 0
fi

# Check the result.
pkg-config --atleast-version=22.11 libdpdk || die "libdpdk 22.11 not found by pkg-config after install"
command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd missing (package dpdk-dev)"
command -v tshark >/dev/null || die "tshark missing"
command -v valgrind >/dev/null || die "valgrind missing"
for b in softflowd pmacctd nats-server nfcapd nfdump; do
  command -v "$b" >/dev/null || die "$b missing"
done
command -v prometheus >/dev/null || die "prometheus missing"
command -v systemd-analyze >/dev/null || die "systemd-analyze missing (package systemd)"
[ -x /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk ] || die "ovs-vswitchd-dpdk missing (package openvswitch-switch-dpdk)"
[ "$total" -ge 64 ] || die "only $total hugepages could be reserved (memory fragmented?): free memory or reboot, then run again"
grep -qs " $HUGE_DIR hugetlbfs " /proc/mounts || die "hugetlbfs is not mounted on $HUGE_DIR"
say "ok: DPDK $(pkg-config --modversion libdpdk), $total hugepages of 2 MiB, hugetlbfs on $HUGE_DIR"
