#!/usr/bin/env bash
# The README's first command: Sluice's main job on the built-in default.
# Sample TAP traffic (with mirror copies) goes in through net_pcap; Sluice
# filters, deduplicates, slices and tunnels it (VXLAN to a NOC, ERSPAN III
# to an IDS) into a pcap of its uplink, which tshark then dissects.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/sluice-default
cargo build --release -q -p ctrlplane
target/release/sluice -- --exit-when-idle 500 --out-dir "$out"

echo
echo "== What left the uplink, as tshark reads it (first 12 tunnels) =="
tshark -r "$out/uplink.pcap" -c 12 -T fields -E header=y -E separator=$'\t' \
  -e frame.number -e ip.dst -e vxlan.vni -e erspan.spanid -e erspan.truncated \
  -e gre.sequence_number -e frame.len 2>/dev/null | column -t -s $'\t'
echo
echo "== Tunnels per destination =="
printf '  VXLAN VNI 100 to the NOC (192.0.2.10):       %s\n' \
  "$(tshark -r "$out/uplink.pcap" -Y 'vxlan.vni == 100' 2>/dev/null | wc -l)"
printf '  ERSPAN III session 7 to the IDS (192.0.2.20): %s (sliced to 128 bytes)\n' \
  "$(tshark -r "$out/uplink.pcap" -Y 'erspan.spanid == 7' 2>/dev/null | wc -l)"
# A sliced copy keeps its inner headers as they were (their lengths tell
# the original size; ERSPAN's T bit says it was cut), which tshark reports
# about the inner packet: only unsliced frames are judged here.
printf '  malformed unsliced frames (tshark):          %s\n' \
  "$(tshark -r "$out/uplink.pcap" -Y '_ws.malformed && !(erspan.truncated == 1)' 2>/dev/null | wc -l)"
