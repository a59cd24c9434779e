#!/usr/bin/env bash
# Runs each fuzz target for a bounded time: `make fuzz` (fuzz/README.md).
#
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_TARGETS   which targets (default: all six)
#   FUZZ_JOBS      targets run at once, 1 or 2 (default 1; the machine is shared)
#
# Only the stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz
# pass its -Z flags (sanitizer, coverage instrumentation) to stable rustc.
# New inputs go to fuzz/corpus-work/<target> (not checked in); the seeds in
# fuzz/corpus/<target> are read only. Crashes land in fuzz/artifacts/<target>;
# the run fails if any target found one.
set -uo pipefail
cd "$(dirname "$0")"

SECS=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"stages decap_nested sflow config policy protocol cli"}
JOBS=${FUZZ_JOBS:-1}
[ "$JOBS" -gt 2 ] && JOBS=2

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked || exit 1
fi
export RUSTC_BOOTSTRAP=1

features() {
    case $1 in
        config | policy | protocol | cli) echo "--features ctrl" ;;
    esac
}

mkdir -p logs
# Build everything first, so the timed runs only fuzz.
for t in $TARGETS; do
    # shellcheck disable=SC2046
    cargo fuzz build -a $(features "$t") "$t" || exit 1
done

fuzz_one() {
    local t=$1
    mkdir -p "corpus-work/$t" "corpus/$t"
    # shellcheck disable=SC2046
    cargo fuzz run -a $(features "$t") "$t" "corpus-work/$t" "corpus/$t" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"logs/$t.log" 2>&1
}

failed=()
running=()
for t in $TARGETS; do
    fuzz_one "$t" &
    running+=("$!:$t")
    if [ "${#running[@]}" -ge "$JOBS" ]; then
        entry=${running[0]}
        running=("${running[@]:1}")
        wait "${entry%%:*}" || failed+=("${entry#*:}")
    fi
done
for entry in "${running[@]}"; do
    wait "${entry%%:*}" || failed+=("${entry#*:}")
done

echo "fuzz: ${SECS}s per target"
for t in $TARGETS; do
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "logs/$t.log" | tail -1)
    printf '  %-14s %12s execs   %s\n' "$t" "${runs:-?}" "${cov:-?}"
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (see fuzz/logs/ and fuzz/artifacts/)"
    exit 1
fi
