#!/usr/bin/env bash
# Runs every property-test binary of the workspace again and again, each run with fresh random
# seeds (proptest draws a new seed per run), for SECONDS seconds (default 1800). A failure keeps
# the test's output in OUT/<test>.<round>.log and proptest adds its seed to the test's
# `.proptest-regressions` file; the script goes on with the next binary. Prints one line per
# round and a summary; exit status 1 if anything failed.
#
#   benches/soak/props.sh [SECONDS]      # OUT=<dir> (default target/soak-props)
set -u
cd "$(dirname "$0")/../.."
seconds=${1:-1800}
out=${OUT:-target/soak-props}
mkdir -p "$out"
# package:test-binary of every test that runs proptest! (storage's lib holds one too).
targets="net:adversarial net:group_codec net:roundtrip net:replica_fetch_codec storage:model
storage:crash storage:crc meta:codec_props gossip:codec cluster:replica_props
cluster:placement_props cluster:group_props storage:lib"
build=()
for t in $targets; do
  p=${t%%:*} b=${t#*:}
  if [ "$b" = lib ]; then build+=(-p "$p" --lib); else build+=(-p "$p" --test "$b"); fi
done
cargo test -q --no-run "${build[@]}" || exit 1
end=$(( $(date +%s) + seconds ))
round=0 failed=0
while [ "$(date +%s)" -lt "$end" ]; do
  round=$((round + 1))
  for t in $targets; do
    p=${t%%:*} b=${t#*:}
    if [ "$b" = lib ]; then sel=(-p "$p" --lib); else sel=(-p "$p" --test "$b"); fi
    if ! cargo test -q "${sel[@]}" > "$out/last.log" 2>&1; then
      failed=$((failed + 1))
      cp "$out/last.log" "$out/$b.$round.log"
      echo "FAILED: $t in round $round (output: $out/$b.$round.log)"
    fi
  done
  echo "round $round done at $(date +%T), failures so far: $failed"
done
echo "$round rounds of $(echo $targets | wc -w) binaries, $failed failures"
[ "$failed" -eq 0 ]
