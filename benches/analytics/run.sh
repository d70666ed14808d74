#!/usr/bin/env bash
# Analytics cost on the hot path (ANALYTICS.md target C2: throughput with analytics on >= 98% of
# off): the same uniform loadgen workload against a fresh node with SPRAWL_ANALYTICS=off and =act,
# alternating. Writes docs/benchmarks/analytics-overhead.md and .json. Manual benchmark command:
#   bash benches/analytics/run.sh      (REPS, DURATION_S, SIZE, WINDOW, PRODUCERS override)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
DURATION_S=${DURATION_S:-5}
SIZE=${SIZE:-1024}
WINDOW=${WINDOW:-16}
PRODUCERS=${PRODUCERS:-2}
cargo build -q --release -p engine -p loadgen
out=$(mktemp -d)
for rep in $(seq 1 "$REPS"); do
  for mode in off act; do
    echo "rep $rep: analytics $mode (load $(cut -d' ' -f1 /proc/loadavg))"
    # The spawned node inherits SPRAWL_ANALYTICS from loadgen's environment.
    SPRAWL_ANALYTICS=$mode target/release/loadgen --spawn --spawn-shards 2 --partitions 8 \
      --keys uniform --size "$SIZE" --window "$WINDOW" --producers "$PRODUCERS" --acks leader \
      --duration-secs "$DURATION_S" --warmup-secs 1 --report "$out/$mode-$rep.json" >/dev/null
  done
done
python3 benches/analytics/summarize.py "$out" "$REPS" \
  "bash benches/analytics/run.sh  # REPS=$REPS DURATION_S=$DURATION_S SIZE=$SIZE WINDOW=$WINDOW PRODUCERS=$PRODUCERS"
