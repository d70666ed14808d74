#!/usr/bin/env bash
# Analytics acting on a skewed workload (issue 6, "a live test"): loadgen with Zipf keys makes
# partition 0 of a 3-partition topic hot on a 2-shard `sprawl serve`; runs alternate
# `--analytics act` and `off` (A/B/A/B, the order flipping each repetition, a quiet gate before
# each run, a fresh node per run); the analytics shard's flags and moves are polled from the HTTP
# port; after every run `loadgen --verify` reads the topic back and checks for lost, duplicated
# or reordered records. Writes docs/benchmarks/analytics-skew.md and .json. One command:
#   bash benches/analytics/skew.sh
# Settings (environment): REPS (3), DURATION_S (20), WARMUP_S (1), CAL_S (8), SIZE (1024),
# WINDOW (8), BATCH (16), PRODUCERS (2), ZIPF_S (1.5), KEY_SPACE (1000), PARTITION_CAP_FRAC (0.4),
# SHARD_CAP_FRAC (1.0), GATE_LOAD (1.0), GATE_TIMEOUT_S (60), LOADGEN_CPUS (unset: anywhere;
# a taskset list; "hot": the core of the shard owning partition 0), SKIP_BUILD (unset).
# Raw results (loadgen reports, ledgers, node logs, runs.json) stay in the printed directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build -q --release -p engine -p loadgen
fi
# What was built: the commit, and whether the working tree differed from it.
if rev=$(git rev-parse --short HEAD 2>/dev/null); then
  if [ -n "$(git status --porcelain 2>/dev/null)" ]; then rev="$rev + uncommitted changes"; fi
  export SOURCE_REV=${SOURCE_REV:-$rev}
fi
out=$(mktemp -d /tmp/sprawl-skew.XXXXXX)
echo "results in $out"
python3 benches/analytics/skew_run.py "$TARGET_DIR/release" "$out"
settings=""
for v in REPS DURATION_S WARMUP_S CAL_S SIZE WINDOW BATCH PRODUCERS ZIPF_S KEY_SPACE \
  PARTITION_CAP_FRAC SHARD_CAP_FRAC GATE_LOAD GATE_TIMEOUT_S LOADGEN_CPUS; do
  if [ -n "${!v:-}" ]; then settings="$settings $v=${!v}"; fi
done
python3 benches/analytics/skew_summarize.py "$out" "bash benches/analytics/skew.sh  #${settings:- defaults}"
