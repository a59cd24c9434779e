# What perf/idle.sh and perf/latency.sh share: the appliance they run
# (everything to one VXLAN destination out of the uplink), pktgen's traffic
# and the CPU reading. Sourced, not run.

# CPU ns of the thread named $2 of process $1 (every thread's when $2 is
# "all"), from /proc/<pid>/task/<tid>/schedstat; nothing when there is none.
thread_ns() {
  if [ "$2" = all ]; then
    cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f\n", s}'
  else
    for t in /proc/"$1"/task/*; do
      [ "$(cat "$t/comm")" = "$2" ] && cut -d' ' -f1 "$t/schedstat"
    done
  fi
  return 0
}

# The policy: every packet to one VXLAN destination, no dedup.
write_policy() {
  cat > "$1" <<'P'
[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 9
dedup = false

[[rule]]
name = "all"
to = ["noc"]
P
}

# pktgen's profile into $1: 128-byte UDP frames of 1,024 flows with
# sequence stamps; any further arguments are more top-level lines
# (`send_time = true`).
write_profile() {
  local file=$1
  shift
  {
    echo "size = 128"
    echo "sequence = true"
    for line in "$@"; do echo "$line"; done
    cat <<'P'

[[flow]]
name = "web"
src = "10.1.0.1-10.1.0.64"
dst = "10.2.0.1"
proto = "udp"
src_port = "1000-1015"
dst_port = 80
P
  } > "$file"
}

# The appliance config into $1: input device $2, uplink device $3, the
# worker's idle mode $4 and its idle_max_us $5.
write_config() {
  cat > "$1" <<C
[[port]]
name = "in"
device = "$2"
role = "input"

[[port]]
name = "uplink"
device = "$3"
role = "uplink"

[[uplink]]
port = "uplink"
address = "192.0.2.1/24"
mac = "02:00:00:00:00:01"

[[neighbor]]
ip = "192.0.2.10"
mac = "02:00:00:00:00:0a"

[dedup]
table_entries = 4096

[workers]
idle = "$4"
idle_max_us = $5
C
}
