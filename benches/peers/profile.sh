#!/usr/bin/env bash
# Profile the Sprawl server under one of the peer workloads with `perf`, to see what limits it.
#
#   benches/peers/profile.sh g1 [OUT_DIR]     # g1 (1 KiB D1), g2 (128 B D1), g3 (1 KiB D2), g4,
#   RATE=40000 benches/peers/profile.sh g5    # g5: open loop at RATE msgs/s
#
# Starts a fresh `sprawl serve` pinned like run.sh does (server `taskset -c $SERVER_CPU`, loadgen
# `taskset -c $LOADGEN_CPU`), drives it with the workload's loadgen flags for DURATION_S (10) and
# records the server with `perf record -F $PERF_HZ -g` (frame-pointer-less release builds give
# shallow stacks; set CALLGRAPH=dwarf for full ones at a higher cost) while the run is measured.
# Writes OUT_DIR/perf.data, the loadgen report and text summaries: flat profile by symbol, by
# shared object (kernel vs Sprawl vs libc), and `perf stat` software counters (context switches,
# migrations, page faults). OFFCPU=1 records context switches with kernel stacks instead
# (`perf sched`), to see where the server's threads block. Uses run.sh's binaries.

set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=servers.sh
source "$HERE/servers.sh"

WL=${1:-g1}
OUT=${2:-/tmp/sprawl-peers-profile-$WL-$(date -u +%Y%m%dT%H%M%SZ)}
: "${DURATION_S:=10}"
: "${WARMUP_S:=1}"
: "${WINDOW:=256}"
: "${PERF_HZ:=999}"
: "${CALLGRAPH:=}"
: "${OFFCPU:=0}"
: "${LOADGEN_CPU:=0}"
: "${CARGO_TARGET_DIR:=$REPO/target}"
SPRAWL_BIN=$CARGO_TARGET_DIR/release/sprawl
LOADGEN_BIN=$CARGO_TARGET_DIR/release/loadgen
command -v perf >/dev/null || { echo "profile: perf is not installed" >&2; exit 1; }

case $WL in
    g1) args=(--size 1024 --window "$WINDOW" --acks leader) ;;
    g2) args=(--size 128 --window "$WINDOW" --acks leader) ;;
    g3) args=(--size 1024 --window "$WINDOW" --acks all) ;;
    g4) args=(--size 1024 --window 1 --acks leader --busy-poll) ;;
    g5) args=(--size 1024 --window "$WINDOW" --acks leader --rate "${RATE:?g5 needs RATE=msgs/s}") ;;
    *) echo "profile: workload must be g1, g2, g3, g4 or g5 (with RATE)" >&2; exit 2 ;;
esac

# threads PID: per thread of PID, its CPU ticks and context switches (nonvoluntary ones mean it
# was preempted: on one core, by another thread that wanted the core).
threads() {
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s %s %s %s %s\n' "${t##*/}" "$(cat "$t/comm")" \
            "$(awk '{ print $14 + $15 }' "$t/stat")" \
            "$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$t/status")" \
            "$(awk '/^nonvoluntary_ctxt_switches/ { print $2 }' "$t/status")"
    done
}

mkdir -p "$OUT"
start_server sprawl "$OUT/node" || exit 1
trap 'stop_server' EXIT
taskset -c "$LOADGEN_CPU" "$LOADGEN_BIN" --broker "$SERVER_ADDR" --topic peers --create-topic \
    --partitions 1 --batch 1 "${args[@]}" --warmup-secs "$WARMUP_S" --duration-secs "$DURATION_S" \
    --server-pid "$SERVER_PID" --report "$OUT/loadgen.json" >"$OUT/loadgen.txt" 2>&1 &
LOADGEN_PID=$!
sleep "$WARMUP_S"
threads "$SERVER_PID" >"$OUT/threads-before.txt"
record_s=$(awk -v d="$DURATION_S" 'BEGIN { printf "%d", (d > 2 ? d - 1 : 1) }')
graph=(-g)
[[ $CALLGRAPH == dwarf ]] && graph=(--call-graph dwarf,16384)
perf stat -e task-clock,context-switches,cpu-migrations,page-faults -p "$SERVER_PID" \
    -o "$OUT/perf-stat.txt" -- sleep "$record_s" &
STAT_PID=$!
if ((OFFCPU)); then
    # Off-CPU: every context switch on the machine with its kernel stack, to see where (and for
    # how long, in the next line's wait time) the server's threads block.
    perf sched record -g -o "$OUT/sched.data" -- sleep "$record_s" 2>"$OUT/perf-sched.log"
else
    perf record -F "$PERF_HZ" "${graph[@]}" -p "$SERVER_PID" -o "$OUT/perf.data" \
        -- sleep "$record_s" 2>"$OUT/perf-record.log"
fi
wait "$STAT_PID"
wait "$LOADGEN_PID"
echo "loadgen exit status: $?" >>"$OUT/loadgen.txt"
threads "$SERVER_PID" >"$OUT/threads-after.txt"
{
    echo "tid comm cpu_ticks voluntary_switches nonvoluntary_switches (deltas over the recording)"
    join <(sort "$OUT/threads-before.txt") <(sort "$OUT/threads-after.txt") |
        awk '{ print $1, $2, $7 - $3, $8 - $4, $9 - $5 }'
} >"$OUT/threads.txt"
if ((OFFCPU)); then
    perf sched timehist -i "$OUT/sched.data" -g --state -p "$SERVER_PID" 2>/dev/null \
        >"$OUT/offcpu-timehist.txt"
    perf sched latency -i "$OUT/sched.data" --sort max 2>/dev/null | head -25 \
        >"$OUT/sched-latency.txt"
    cat "$OUT/loadgen.txt" "$OUT/threads.txt"
    echo "profile: $OUT (offcpu-timehist.txt, sched-latency.txt)"
    exit 0
fi
perf report -i "$OUT/perf.data" --stdio --no-children --sort dso 2>/dev/null |
    grep -v '^$' | head -40 >"$OUT/perf-by-dso.txt"
perf report -i "$OUT/perf.data" --stdio --no-children --sort symbol -g none 2>/dev/null |
    grep -v '^$' | head -80 >"$OUT/perf-by-symbol.txt"
perf report -i "$OUT/perf.data" --stdio --no-children --sort comm 2>/dev/null |
    grep -v '^$' | head -30 >"$OUT/perf-by-thread.txt"
cat "$OUT/loadgen.txt" "$OUT/threads.txt"
echo "profile: $OUT (perf-by-dso.txt, perf-by-symbol.txt, perf-by-thread.txt, perf-stat.txt, threads.txt)"
