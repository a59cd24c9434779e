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
# functions (process, process_decap and what they call: the TX bursts made
# when the TX buffer fills included, the RX PMD and the 100 µs drain tick
# not). Prints Ir per received packet, the
# top functions, and leaves callgrind.out in the scenario directory.
set -euo pipefail
dir=${1:?usage: perf/callgrind.sh SCENARIO-DIR [SLUICE]}
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
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
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
