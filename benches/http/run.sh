#!/usr/bin/env bash
# HTTP publishing next to the native protocol, same generator, same run, alternating A/B.
# Writes docs/benchmarks/http.md and docs/benchmarks/http.json. Manual benchmark command:
#   bash benches/http/run.sh            (REPS, DURATION_S, SIZE, WINDOW, PRODUCERS override)
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
  for target in sprawl http; do
    echo "rep $rep: $target (load $(cut -d' ' -f1 /proc/loadavg))"
    target/release/loadgen --spawn --target "$target" --size "$SIZE" --window "$WINDOW" \
      --producers "$PRODUCERS" --acks leader --duration-secs "$DURATION_S" --warmup-secs 1 \
      --report "$out/$target-$rep.json" >/dev/null
  done
done
python3 benches/http/summarize.py "$out" "$REPS" \
  "bash benches/http/run.sh  # REPS=$REPS DURATION_S=$DURATION_S SIZE=$SIZE WINDOW=$WINDOW PRODUCERS=$PRODUCERS"
