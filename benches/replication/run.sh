#!/usr/bin/env bash
# Replicated cluster vs single node, same loadgen workload, same run, interleaved A/B/A/B.
#
#   A = one plain node (no cluster flags), topic of 4 partitions, replication factor 1
#   B = three nodes on loopback (node ids 1-3, all metadata controllers), topic of 4 partitions,
#       replication factor 3, min-insync 2, loadgen given only node 1's address
#
# Workload (both): produce 1 KiB values, acks=all, closed loop, PRODUCERS producers with WINDOW
# batches of BATCH records in flight each, no consumers. Every node runs with --shards 1 (this
# kind of machine has 2 cores). Each measurement starts its setup from empty data directories
# and stops it afterwards, so only the measured setup runs while it is measured.
#
# Variants: "pinned" = every server process on core 1 (so the 3-node cluster shares the one core
# the single node has), loadgen on core 0; "unpinned" = no affinity at all.
#
# One command:   bash benches/replication/run.sh
# Overrides (env): REPS (3), WARMUP_S (1), DURATION_S (5), PRODUCERS (2), WINDOW (32), BATCH (1),
#   SIZE (1024), VARIANTS ("pinned unpinned"), QUIET_MAX_S (20: longest wait for load < 1.0),
#   SKIP_BUILD (1 = use the release binaries already in the target dir),
#   CARGO_TARGET_DIR (target), OUT (results directory; default
#   $CARGO_TARGET_DIR/bench-replication/<UTC time>).
# Writes into OUT: one loadgen JSON report per measurement, runs.jsonl (one line per
# measurement: variant, setup, rep, msgs/s, latency, server CPU-seconds, load, pressure),
# summary.md (the tables for docs/benchmarks/replication.md) and summary.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
REPS=${REPS:-3}
WARMUP_S=${WARMUP_S:-1}
DURATION_S=${DURATION_S:-5}
PRODUCERS=${PRODUCERS:-2}
WINDOW=${WINDOW:-32}
BATCH=${BATCH:-1}
SIZE=${SIZE:-1024}
PARTITIONS=4
VARIANTS=${VARIANTS:-"pinned unpinned"}
QUIET_MAX_S=${QUIET_MAX_S:-20}
OUT=${OUT:-$CARGO_TARGET_DIR/bench-replication/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "== building release binaries" >&2
  cargo build -q --release -p engine --bin sprawl
  cargo build -q --release -p loadgen --bin loadgen
fi
SPRAWL=$(cd "$CARGO_TARGET_DIR" && pwd)/release/sprawl
LOADGEN=$(cd "$CARGO_TARGET_DIR" && pwd)/release/loadgen

WORK=$(mktemp -d /tmp/sprawl-replication.XXXXXX)
PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
cleanup() { stop_all; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# json_field FILE KEY: a top-level string field of a JSON file.
json_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# start_node PIN DIR PORT [EXTRA...]: starts `sprawl serve` in the background; waits for its
# ports.json. The pid goes to PIDS.
start_node() {
  local pin=$1 dir=$2 port=$3
  shift 3
  mkdir -p "$dir"
  local prefix=()
  if [ "$pin" = pinned ]; then prefix=(taskset -c 1); fi
  "${prefix[@]}" "$SPRAWL" serve --port "$port" --http-port 0 --shards 1 \
    --data-dir "$dir/data" "$@" >"$dir/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 200); do
    if [ -s "$dir/data/ports.json" ] && json_field "$dir/data/ports.json" http >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.05
  done
  echo "node in $dir did not start; its log:" >&2
  tail -20 "$dir/log" >&2
  return 1
}

# wait_cluster HTTP_ADDR: until the controllers elected a leader that registered 3 nodes.
wait_cluster() {
  local http=$1
  for _ in $(seq 1 300); do
    if curl -fsS "http://$http/cluster" 2>/dev/null | python3 -c '
import json, sys
c = json.load(sys.stdin).get("controller") or {}
sys.exit(0 if c.get("leader_id") and len(c.get("nodes") or []) == 3 else 1)'; then
      return 0
    fi
    sleep 0.1
  done
  echo "the cluster did not form within 30 s" >&2
  return 1
}

# cpu_ticks PID...: utime + stime of the processes, in clock ticks.
cpu_ticks() {
  local total=0 pid t
  for pid in "$@"; do
    t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

# quiet_gate: waits (up to QUIET_MAX_S) for a 1-minute load average below 1.0.
quiet_gate() {
  local waited=0
  while awk '{ exit !($1 >= 1.0) }' /proc/loadavg && [ "$waited" -lt "$QUIET_MAX_S" ]; do
    sleep 1
    waited=$((waited + 1))
  done
  echo "$waited"
}

pressure() { awk '/^some/ { print $2 }' "/proc/pressure/$1" 2>/dev/null | cut -d= -f2 || echo "n/a"; }

# measure VARIANT SETUP REP: one measurement, appended to runs.jsonl.
measure() {
  local variant=$1 setup=$2 rep=$3
  local dir="$WORK/$variant-$setup-$rep" report="$OUT/$variant-$setup-$rep.json"
  local waited load pcpu pio
  waited=$(quiet_gate)
  load=$(cut -d' ' -f1 /proc/loadavg)
  pcpu=$(pressure cpu)
  pio=$(pressure io)
  local broker extra=()
  if [ "$setup" = single ]; then
    local port
    port=$(free_port)
    start_node "$variant" "$dir/n0" "$port"
    broker="127.0.0.1:$port"
  else
    local p1 p2 p3 controllers seed
    p1=$(free_port)
    p2=$(free_port)
    p3=$(free_port)
    controllers="1@127.0.0.1:$p1,2@127.0.0.1:$p2,3@127.0.0.1:$p3"
    start_node "$variant" "$dir/n1" "$p1" --node-id 1 --controllers "$controllers" --gossip-port 0
    seed=$(json_field "$dir/n1/data/ports.json" gossip)
    start_node "$variant" "$dir/n2" "$p2" --node-id 2 --controllers "$controllers" --gossip-port 0 --seeds "$seed"
    start_node "$variant" "$dir/n3" "$p3" --node-id 3 --controllers "$controllers" --gossip-port 0 --seeds "$seed"
    wait_cluster "$(json_field "$dir/n1/data/ports.json" http)"
    broker="127.0.0.1:$p1"
    extra=(--replication-factor 3 --min-insync 2)
  fi
  local prefix=()
  if [ "$variant" = pinned ]; then prefix=(taskset -c 0); fi
  local cmd=("${prefix[@]}" "$LOADGEN" --broker "$broker" --topic "bench-$rep" --create-topic
    --partitions "$PARTITIONS" "${extra[@]}" --acks all --producers "$PRODUCERS"
    --window "$WINDOW" --batch "$BATCH" --size "$SIZE" --warmup-secs "$WARMUP_S"
    --duration-secs "$DURATION_S" --report "$report")
  echo "== [$variant $setup rep $rep] load $load (waited ${waited}s): ${cmd[*]}" >&2
  local before after
  before=$(cpu_ticks "${PIDS[@]}")
  local log="$OUT/$variant-$setup-$rep"
  "${cmd[@]}" >"$log.stdout" 2>"$log.stderr" || {
    echo "loadgen failed:" >&2
    cat "$log.stdout" "$log.stderr" >&2
    return 1
  }
  after=$(cpu_ticks "${PIDS[@]}")
  grep -E "produce->ack|resent" "$log.stdout" >&2 || true
  stop_all
  python3 - "$report" "$variant" "$setup" "$rep" "$load" "$waited" "$pcpu" "$pio" \
    "$(( after - before ))" "$(getconf CLK_TCK)" "${cmd[*]}" >>"$OUT/runs.jsonl" <<'EOF'
import json, sys
report, variant, setup, rep, load, waited, pcpu, pio, ticks, hz, cmd = sys.argv[1:]
r = json.load(open(report))
produce = r["results"]["produce"]
totals = r["results"]["totals_including_warmup"]
print(json.dumps({
    "variant": variant, "setup": setup, "rep": int(rep),
    "msgs_per_s": produce["msgs_per_s"], "mb_per_s": produce["mb_per_s"],
    "p50_us": produce["latency_us"]["p50_us"], "p99_us": produce["latency_us"]["p99_us"],
    "p99_9_us": produce["latency_us"]["p99_9_us"], "max_us": produce["latency_us"]["max_us"],
    "records_failed": totals["records_failed"], "batches_resent": totals.get("batches_resent", 0),
    "server_cpu_s": int(ticks) / int(hz), "load1_before": float(load), "quiet_wait_s": int(waited),
    "psi_cpu_some_avg10": pcpu, "psi_io_some_avg10": pio, "command": cmd,
}))
EOF
}

{
  echo "started: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host: $(uname -srm); $(nproc) cores: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "data dirs: $WORK on $(df -T "$WORK" | awk 'NR == 2 { print $2 " (" $1 ")" }')"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(git status --porcelain 2>/dev/null | grep -c . || true) files changed"
  echo "load before: $(cat /proc/loadavg)"
  echo "workload: $PARTITIONS partitions, $PRODUCERS producers x window $WINDOW x batch $BATCH, $SIZE B values, acks=all, warm-up ${WARMUP_S}s, ${DURATION_S}s measured, $REPS reps, variants: $VARIANTS"
} | tee "$OUT/machine.txt" >&2

: >"$OUT/runs.jsonl"
for rep in $(seq 1 "$REPS"); do
  for variant in $VARIANTS; do
    # Alternate which setup goes first, so a drift in the machine's load favours neither.
    if [ $((rep % 2)) = 1 ]; then order="single cluster"; else order="cluster single"; fi
    for setup in $order; do
      measure "$variant" "$setup" "$rep"
    done
  done
done
echo "finished: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); load $(cat /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2

python3 - "$OUT" <<'EOF'
import json, statistics, sys
out = sys.argv[1]
runs = [json.loads(l) for l in open(f"{out}/runs.jsonl") if l.strip()]
summary, lines = {}, []
lines.append("| variant | rep | single msgs/s | single p50 / p99 us | cluster msgs/s | cluster p50 / p99 us | cluster / single msgs/s | server CPU-s single / cluster | resends (cluster) |")
lines.append("|---|---|---|---|---|---|---|---|---|")
for variant in sorted({r["variant"] for r in runs}, reverse=True):
    ratios = []
    for rep in sorted({r["rep"] for r in runs if r["variant"] == variant}):
        pick = {r["setup"]: r for r in runs if r["variant"] == variant and r["rep"] == rep}
        s, c = pick.get("single"), pick.get("cluster")
        if not (s and c):
            continue
        ratio = c["msgs_per_s"] / s["msgs_per_s"] if s["msgs_per_s"] else 0.0
        ratios.append(ratio)
        lines.append(
            f"| {variant} | {rep} | {s['msgs_per_s']:.0f} | {s['p50_us']} / {s['p99_us']} | "
            f"{c['msgs_per_s']:.0f} | {c['p50_us']} / {c['p99_us']} | {ratio:.2f} | "
            f"{s['server_cpu_s']:.1f} / {c['server_cpu_s']:.1f} | {c['batches_resent']} |")
    if ratios:
        summary[variant] = {"ratios": ratios, "median": statistics.median(ratios), "worst": min(ratios)}
lines.append("")
for variant, v in summary.items():
    lines.append(f"- {variant}: cluster/single throughput median **{v['median']:.2f}x**, worst {v['worst']:.2f}x (goal >= 0.5x)")
text = "\n".join(lines) + "\n"
open(f"{out}/summary.md", "w").write(text)
json.dump({"summary": summary, "runs": runs}, open(f"{out}/summary.json", "w"), indent=2)
print(text)
EOF
echo "results: $OUT" >&2
