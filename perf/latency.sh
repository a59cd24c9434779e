#!/usr/bin/env bash
# The delay a device adds at a light load (a benchmark, not a test).
# `pktgen latency` sends a send-time profile at PPS through one port and
# receives what comes out of the device on another, in one loop of one
# process (one clock; the receive side never sleeps), and prints the
# one-way delay's p50/p99/p99.9/max. Between the two ports is either
# testpmd in io mode (the transport's own delay, the baseline) or Sluice
# in an idle mode; Sluice's added latency is its figure minus testpmd's
# over the same transport. The worker's CPU share over the run is printed
# beside it (pktgen spins a core of its own while it measures, so this
# share is higher than perf/idle.sh's on a two-core machine).
#
#   perf/latency.sh [SETUPS...]
#     (default: testpmd-memif poll adaptive:1000 adaptive:2000 testpmd-tap interrupt)
#
# adaptive and interrupt take an idle_max_us after a colon (adaptive:2000).
#
# testpmd-memif, poll and adaptive:MAX_US: net_memif in and out (memif
# has no RX interrupts). testpmd-tap and interrupt[:MAX_US]: net_tap in
# and out inside a network namespace of the script's own, pktgen on the
# taps' kernel sides through AF_PACKET. Sluice sends everything it
# receives to one VXLAN destination out of its uplink (the second port),
# as in perf/idle.sh. Each run is bounded (WINDOW_S + 60 s); namespaces
# and the work directory are removed on exit; EAL runs --in-memory (no
# hugepage files left). The script runs in a session of its own whose
# scheduler group (autogroup) and processes get nice NICE (-20): on a
# shared machine a thread at the default weight waits tens of ms for its
# core behind other work, which measures the machine, not the device;
# NICE=0 shows that. Env: WINDOW_S (30), PPS (10000), NICE,
# SLUICE, PKTGEN, CLI (target/release/), TESTPMD (dpdk-testpmd). Needs root.
set -euo pipefail
# A session of its own: its autogroup's nice is what other sessions' work
# is weighed against (nice alone only orders threads inside one group).
if [ "$(ps -o sid= -p $$ | tr -d ' ')" != "$$" ]; then
  exec setsid --wait "$0" "$@"
fi
echo "${NICE:--20}" > /proc/$$/autogroup
setups=${*:-testpmd-memif poll adaptive:1000 adaptive:2000 testpmd-tap interrupt}
window=${WINDOW_S:-30}
pps=${PPS:-10000}
prio=(nice -n "${NICE:--20}")
bin=${BIN:-target/release}
sluice=${SLUICE:-$bin/sluice}
pktgen=${PKTGEN:-$bin/pktgen}
cli=${CLI:-$bin/sluice-cli}
testpmd=${TESTPMD:-dpdk-testpmd}
work=$(mktemp -d /tmp/sluice-latency.XXXXXX)
ns="sluice-lat-$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh"

write_policy "$work/policy.toml"
write_profile "$work/profile.toml" "send_time = true"

echo "load: $(cut -d' ' -f1-3 /proc/loadavg), $pps pps, ${window} s a run, nice ${NICE:--20}"
for setup in $setups; do
  kind=${setup%%:*}
  max=${setup#*:}
  [ "$max" = "$setup" ] && max=""
  sock="$work/$kind.sock"
  rm -f "$work"/*.memif
  wrap=()
  case "$kind" in
    testpmd-tap | interrupt)
      ip netns add "$ns"
      ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
      wrap=(ip netns exec "$ns")
      in_dev="net_tap_lat0,iface=slat0"
      out_dev="net_tap_lat1,iface=slat1"
      pg_tx="net_af_packet_lattx,iface=slat0"
      pg_rx="net_af_packet_latrx,iface=slat1"
      ;;
    testpmd-memif | poll | adaptive)
      in_dev="net_memif_lat0,role=server,socket=$work/in.memif,socket-abstract=no"
      out_dev="net_memif_lat1,role=server,socket=$work/out.memif,socket-abstract=no"
      pg_tx="net_memif_lattx,role=client,socket=$work/in.memif,socket-abstract=no"
      pg_rx="net_memif_latrx,role=client,socket=$work/out.memif,socket-abstract=no"
      ;;
    *)
      echo "unknown setup $setup" >&2
      exit 2
      ;;
  esac
  case "$kind" in
    testpmd-*)
      "${wrap[@]}" "${prio[@]}" timeout $((window + 60)) "$testpmd" -l 0-1 --no-pci --in-memory \
        --file-prefix "lat-$kind-$$" --log-level '*:warning' \
        --vdev "$in_dev" --vdev "$out_dev" -- --forward-mode=io --auto-start \
        --nb-cores=1 --rxq=1 --txq=1 --stats-period=3600 < /dev/null > "$work/$kind.log" 2>&1 &
      pid=$!; pids+=("$pid")
      ;;
    *)
      mode=$kind
      # The config's default (2000) for adaptive; interrupt as perf/idle.sh.
      [ -z "$max" ] && max=$([ "$mode" = interrupt ] && echo 10000 || echo 2000)
      write_config "$work/$kind.toml" "$in_dev" "$out_dev" "$mode" "$max"
      "${wrap[@]}" "${prio[@]}" timeout $((window + 60)) "$sluice" -l 0-1 --no-pci --in-memory \
        --file-prefix "lat-$kind-$$" --log-level '*:warning' -- --config "$work/$kind.toml" \
        --policy "$work/policy.toml" --socket "$sock" --metrics 127.0.0.1:0 > "$work/$kind.log" 2>&1 &
      pid=$!; pids+=("$pid")
      for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
      ;;
  esac
  # The ports exist once the device runs (its taps, its memif sockets).
  for _ in $(seq 100); do
    case "$kind" in
      testpmd-tap | interrupt) ip -n "$ns" link show slat1 > /dev/null 2>&1 && break ;;
      *) [ -S "$work/out.memif" ] && break ;;
    esac
    sleep 0.1
  done
  if [ -n "${wrap[*]}" ]; then
    ip -n "$ns" link set slat0 up
    ip -n "$ns" link set slat1 up
  fi
  sleep 2
  # The device's process: testpmd or sluice under timeout (and ip netns exec);
  # testpmd without a terminal runs until a signal with --stats-period.
  dev=$(pgrep -P "$pid" -n || true)
  while [ -n "$dev" ] && child=$(pgrep -P "$dev" -n) && [ -n "$child" ]; do dev=$child; done
  [ -z "$dev" ] && dev=$pid
  # The worker's CPU over the window, read while pktgen still runs (a
  # memif peer may not outlive pktgen's leaving: see the README's faults).
  "${wrap[@]}" "${prio[@]}" timeout $((window + 60)) "$pktgen" -l 0 --no-pci --in-memory \
    --file-prefix "latpg-$$" --log-level '*:warning' -- latency --profile "$work/profile.toml" \
    --tx-port "$pg_tx" --rx-port "$pg_rx" --rate-pps "$pps" --duration "$window" \
    > "$work/$kind.pg" 2> "$work/$kind.pg.err" &
  pg=$!; pids+=("$pg")
  sleep 1
  w0=$(thread_ns "$dev" rte-worker-1); t0=$(date +%s%N)
  sleep $((window - 2))
  w1=$(thread_ns "$dev" rte-worker-1); t1=$(date +%s%N)
  wait "$pg" || { cat "$work/$kind.pg.err" >&2; exit 1; }
  label=$setup
  case "$kind" in adaptive | interrupt) label="$setup (idle_max_us $max)" ;; esac
  echo "== $label: $(awk -v w=$((${w1:-0} - ${w0:-0})) -v t=$((t1 - t0)) \
    'BEGIN {printf "worker %.2f %% of a core", 100 * w / t}')"
  sed "s/^/$setup: /" "$work/$kind.pg"
  if [ "${kind#testpmd}" = "$kind" ]; then
    "$cli" --socket "$sock" show lcores | grep 'idle waits' | sed "s/^ */$setup: /" || true
    "$cli" --socket "$sock" stop > /dev/null
    wait "$pid" 2>/dev/null || true
    grep -E 'accounting' "$work/$kind.log" | tail -1 | sed "s/^ */$setup: /" || true
  else
    kill "$dev" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [ -n "${wrap[*]}" ]; then ip netns del "$ns"; fi
done
