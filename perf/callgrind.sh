#!/usr/bin/env bash
# Instructions per packet inside Sluice's worker, counted by callgrind:
# deterministic where wall-clock rates on this shared machine are not.
#
#   perf/callgrind.sh SCENARIO [SLUICE]
#
# SCENARIO is a directory the end-to-end harness wrote (target/perf-e2e/<name>,
# from `e2e --only <name>`): its appliance.toml, policy.toml and in.pcap are
# replayed once (32,768 frames: four passes of the 8,192-frame captures,
# the first 32,768 frames of the many-flow ones; no infinite_rx, so the
# pool needs no room for the capture: 65,535 mbufs) under
# `valgrind --tool=callgrind`, collecting only inside the per-burst worker
# functions (process, process_decap and what they call), not in the RX
# PMD and not in the 100 µs drain tick. Under valgrind's slowdown that
# tick flushes the TX lanes before they fill, so the TX bursts are mostly
# outside the count too: the figure is Sluice's own work, without its
# I/O. Prints Ir per received packet, the top functions, and leaves
# callgrind.out in the scenario directory.
#
#   perf/callgrind.sh --io SCENARIO [SLUICE]
#
# With --io, the question is what the packet costs with its I/O, against
# testpmd io on the same capture and devices (the harness's ratio):
# the scenario runs as the harness runs it (infinite_rx, the capture
# preloaded in mbufs) for 40 s under callgrind, collecting in the RX
# burst, the per-burst functions and the drain tick's flush; then
# `dpdk-testpmd --forward-mode=io` does the same for 40 s, its
# forwarding thread counted whole. Both print Ir per packet; testpmd's
# over Sluice's is the rate ratio the instructions alone would give.
set -euo pipefail
if [ "${1:-}" = --io ]; then
  dir=${2:?usage: perf/callgrind.sh --io SCENARIO-DIR [SLUICE]}
  sluice=${3:-target/release/sluice}
  out="$dir/callgrind-io"
  mkdir -p "$out"
  cp "$dir/in.pcap" "$out/in.pcap"
  sed -e "s#rx_pcap=[^,\"]*#rx_pcap=$out/in.pcap#" "$dir/appliance.toml" > "$out/appliance.toml"
  # The per-burst path's entry points; the first rounds, before the
  # policy is applied, poll nothing and stay out.
  timeout -s INT 40 valgrind --tool=callgrind --separate-threads=yes \
    --callgrind-out-file="$out/sluice.cg" \
    --toggle-collect='dataplane::dpdk::port::RxQueue::rx*' \
    --toggle-collect='dataplane::runtime::worker::Worker::process' \
    --toggle-collect='dataplane::runtime::worker::decap::*process_decap' \
    --toggle-collect='dataplane::runtime::worker::Worker::flush' \
    "$sluice" -l 0-1 --no-pci --no-huge -m 2048 --file-prefix "callgrind-io-$$" \
    -- --config "$out/appliance.toml" --policy "$dir/policy.toml" \
    --metrics 127.0.0.1:0 > "$out/sluice.log" 2>&1 || true
  rx=$(awk '/Accumulated forward statistics/{p=1} p && $1=="rx"{print $2; exit}' "$out/sluice.log")
  timeout -s INT 40 valgrind --tool=callgrind --separate-threads=yes \
    --callgrind-out-file="$out/testpmd.cg" \
    dpdk-testpmd -l 0-1 --no-pci --no-huge -m 2048 --file-prefix "callgrind-io-tp-$$" \
    --log-level '*:warning' \
    --vdev "net_pcap0,rx_pcap=$out/in.pcap,infinite_rx=1" --vdev net_null0,no-rx=1 \
    -- --forward-mode=io --auto-start --nb-cores=1 --rxq=1 --txq=1 \
    --rxd=1024 --txd=1024 --burst=32 --total-num-mbufs=65535 \
    < <(sleep 60) > "$out/testpmd.log" 2>&1 || true
  tp_rx=$(awk '/Forward statistics for port 0/{p=1} p && /RX-packets:/{print $2; exit}' "$out/testpmd.log")
  if [ -z "$rx" ] || [ "$rx" = 0 ] || [ -z "$tp_rx" ] || [ "$tp_rx" = 0 ]; then
    echo "$(basename "$dir"): no packets counted in 40 s (Sluice: ${rx:-none}, testpmd: ${tp_rx:-none});" \
      "see $out/sluice.log and $out/testpmd.log" >&2
    exit 1
  fi
  # The thread that did the most is the one that forwarded.
  busiest() {
    for f in "$@"; do
      callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}'
    done | sort -n | tail -1
  }
  ir=$(busiest "$out"/sluice.cg-*)
  tp_ir=$(busiest "$out"/testpmd.cg-*)
  echo "$(basename "$dir"): Sluice $rx packets, $((ir / rx)) Ir a packet with RX and TX;" \
    "testpmd io $tp_rx packets, $((tp_ir / tp_rx)) Ir a packet;" \
    "testpmd / Sluice = $(awk -v a="$tp_ir" -v b="$tp_rx" -v c="$ir" -v d="$rx" 'BEGIN{printf "%.3f", (a/b)/(c/d)}')"
  exit 0
fi
dir=${1:?usage: perf/callgrind.sh [--io] SCENARIO-DIR [SLUICE]}
sluice=${2:-target/release/sluice}
out="$dir/callgrind"
mkdir -p "$out"
sed -e 's/,infinite_rx=1//' -e "s#rx_pcap=[^,\"]*#rx_pcap=$out/in.pcap#" \
  -e 's/^mbufs = .*/mbufs = 65535/' \
  "$dir/appliance.toml" > "$out/appliance.toml"
python3 - "$dir/in.pcap" "$out/in.pcap" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
# The capture's records (16-byte headers, little-endian pcap), replayed
# in order, again from the start if need be, up to 32,768 frames.
records, at = [], 24
while at + 16 <= len(d):
    end = at + 16 + struct.unpack_from('<I', d, at + 8)[0]
    records.append(d[at:end])
    at = end
out = [records[i % len(records)] for i in range(32768)] if records else []
open(sys.argv[2], 'wb').write(d[:24] + b''.join(out))
PY
prefix="callgrind-$$"
# --fair-sched: valgrind runs one thread at a time, and without it the
# worker, polling an empty RX queue after the capture, can keep that lock
# from the main thread for many minutes at shutdown (seen on decap).
valgrind --tool=callgrind --fair-sched=yes --callgrind-out-file="$out/callgrind.out" \
  --toggle-collect='dataplane::runtime::worker::Worker::process' \
  --toggle-collect='dataplane::runtime::worker::decap::*process_decap' \
  "$sluice" -l 0-1 --no-pci --no-huge -m 1024 --file-prefix "$prefix" \
  -- --config "$out/appliance.toml" --policy "$dir/policy.toml" \
  --exit-when-idle 300 --metrics 127.0.0.1:0 > "$out/sluice.log" 2>&1
rx=$(awk '/Accumulated forward statistics/{p=1} p && $1=="rx"{print $2; exit}' "$out/sluice.log")
ir=$(callgrind_annotate "$out/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
echo "$(basename "$dir"): $rx packets, $ir Ir in the worker: $((ir / rx)) Ir per packet"
callgrind_annotate --inclusive=yes "$out/callgrind.out" 2>/dev/null \
  | awk -v rx="$rx" '/^ *[0-9,]+ \(/{n=$1; gsub(",","",n); $1=""; $2=""; printf "%8.1f  %s\n", n/rx, substr($0,3)}' \
  | sed -n 1,25p || true
