#!/usr/bin/env bash
# What an idle worker costs, and one at a light load (a benchmark, not a
# test): for each idle mode, the worker thread's CPU time over a window
# (from /proc/<pid>/task/<tid>/schedstat) as a share of one core, and the
# whole process's, first with no traffic, then with pktgen sending at PPS.
#
#   perf/idle.sh [MODES...]        (default: poll adaptive interrupt)
#
# poll and adaptive: a net_memif input fed by pktgen (memif has no RX
# interrupts); interrupt: a net_tap input inside a network namespace of the
# script's own, fed by pktgen through AF_PACKET on the tap's kernel side.
# The uplink is net_null. Env: WINDOW_S (30), PPS (10000), IDLE_MAX_US
# (2000 adaptive: the config's default; 10000 interrupt), SLUICE, PKTGEN, CLI
# (target/release/).
# Needs root (hugepages, netns).
set -euo pipefail
modes=${*:-poll adaptive interrupt}
window=${WINDOW_S:-30}
pps=${PPS:-10000}
bin=${BIN:-target/release}
sluice=${SLUICE:-$bin/sluice}
pktgen=${PKTGEN:-$bin/pktgen}
cli=${CLI:-$bin/sluice-cli}
work=$(mktemp -d /tmp/sluice-idle.XXXXXX)
ns="sluice-idle-$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh"

# "worker X % of a core, process Y %" over $window seconds.
measure() {
  local w0 p0 t0 w1 p1 t1
  w0=$(thread_ns "$1" rte-worker-1); p0=$(thread_ns "$1" all); t0=$(date +%s%N)
  sleep "$window"
  w1=$(thread_ns "$1" rte-worker-1); p1=$(thread_ns "$1" all); t1=$(date +%s%N)
  awk -v w=$((w1 - w0)) -v p=$((p1 - p0)) -v t=$((t1 - t0)) \
    'BEGIN {printf "worker %.2f %% of a core, whole process %.2f %%", 100 * w / t, 100 * p / t}'
}

policy="$work/p.toml"
write_policy "$policy"
write_profile "$work/profile.toml"

for mode in $modes; do
  sock="$work/$mode.sock"
  wrap=()
  if [ "$mode" = interrupt ]; then
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    wrap=(ip netns exec "$ns")
    input="net_tap_idle0,iface=sidle0"
    feed="net_af_packet_idlepg,iface=sidle0"
    max=${IDLE_MAX_US:-10000}
  else
    input="net_memif_idle0,role=server,socket=$sock.memif,socket-abstract=no"
    feed="net_memif_idlepg,role=client,socket=$sock.memif,socket-abstract=no"
    max=${IDLE_MAX_US:-2000}
  fi
  write_config "$work/$mode.toml" "$input" net_null_idleup "$mode" "$max"
  "${wrap[@]}" "$sluice" -l 0-1 --no-pci --in-memory --file-prefix "idle-$mode-$$" \
    --log-level '*:warning' -- --config "$work/$mode.toml" --policy "$policy" \
    --socket "$sock" --metrics 127.0.0.1:0 > "$work/$mode.log" 2>&1 &
  pid=$!; pids+=("$pid")
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  [ "$mode" = interrupt ] && ip -n "$ns" link set sidle0 up
  sleep 2
  echo "$mode, idle (max $max µs), ${window} s: $(measure "$pid")"
  "${wrap[@]}" "$pktgen" -l 0 --no-pci --in-memory --file-prefix "idlepg-$$" --log-level '*:warning' \
    -- send --profile "$work/profile.toml" --port "$feed" --rate-pps "$pps" \
    --duration $((window + 10)) --linger-ms 600000 > "$work/$mode.pg" 2>&1 &
  pg=$!; pids+=("$pg")
  sleep 5
  echo "$mode, $pps pps, ${window} s: $(measure "$pid")"
  "$cli" --socket "$sock" stop > /dev/null
  kill "$pg" 2>/dev/null || true; wait "$pg" 2>/dev/null || true
  "$cli" --socket "$sock" show lcores | grep 'idle waits' | sed "s/^ */$mode: /"
  "$cli" --socket "$sock" show port stats 0 | grep -E 'RX-packets|RX-missed' | sed "s/^ */$mode: /"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  grep -E 'accounting' "$work/$mode.log" | tail -1 | sed "s/^ */$mode: /"
  [ "$mode" = interrupt ] && ip netns del "$ns"
done
