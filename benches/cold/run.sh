#!/usr/bin/env bash
# Cold tier upload and read-through throughput next to a plain rust-s3 PUT/GET probe: same S3
# server on loopback, same run, interleaved A/B, REPS repetitions. Starts the server(s) itself,
# runs target/release/cold_tier once per server, then writes docs/benchmarks/cold-tier.json and
# the generated tables of docs/benchmarks/cold-tier.md. One command:
#   bash benches/cold/run.sh
# Overrides: SERVERS ("moto", "s3s-fs" or "moto s3s-fs"; default: both if s3s-fs is on PATH),
# REPS (3), SEGMENT_MIB (16), SEGMENTS (8 per payload), IN_FLIGHT (1,4), PIN (1: server on CPU 1,
# benchmark on CPU 0; default 0 = unpinned), CARGO_TARGET_DIR (target).
# Needs: python3 with moto[server] 5.2.1 (pip install 'moto[server]==5.2.1'); optionally s3s-fs
# (cargo install s3s-fs --version 0.14.1 --features binary --locked).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
SEGMENT_MIB=${SEGMENT_MIB:-16}
SEGMENTS=${SEGMENTS:-8}
IN_FLIGHT=${IN_FLIGHT:-1,4}
PIN=${PIN:-0}
if [ -z "${SERVERS:-}" ]; then
  if command -v s3s-fs >/dev/null; then SERVERS="moto s3s-fs"; else SERVERS="moto"; fi
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p benches --bin cold_tier
bin="$CARGO_TARGET_DIR/release/cold_tier"

pin_server=() pin_bench=()
if [ "$PIN" = 1 ]; then pin_server=(taskset -c 1) pin_bench=(taskset -c 0); fi

out=$(mktemp -d /tmp/coldbench-run.XXXXXX)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap 'stop_server; rm -rf "$out/s3s-data"' EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "server on port $1 did not come up; see $out/server-*.log" >&2
  return 1
}

versions="rustc $(rustc --version | cut -d' ' -f2)"
for server in $SERVERS; do
  port=$(free_port)
  case "$server" in
    moto)
      label="moto $(python3 -c 'import moto; print(moto.__version__)') (moto_server, werkzeug threaded)"
      "${pin_server[@]}" moto_server -H 127.0.0.1 -p "$port" >"$out/server-moto.log" 2>&1 &
      server_pid=$!
      ;;
    s3s-fs)
      label="s3s-fs $(s3s-fs --version 2>/dev/null | awk '{print $NF}') (filesystem backend on /tmp)"
      mkdir -p "$out/s3s-data"
      "${pin_server[@]}" s3s-fs --host 127.0.0.1 --port "$port" \
        --access-key coldbench --secret-key coldbench-secret "$out/s3s-data" \
        >"$out/server-s3s-fs.log" 2>&1 &
      server_pid=$!
      ;;
    *) echo "unknown server $server (moto or s3s-fs)" >&2; exit 2 ;;
  esac
  wait_port "$port"
  echo "== $label on port $port (pid $server_pid), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  cmd="bash benches/cold/run.sh  # SERVERS=\"$SERVERS\" REPS=$REPS SEGMENT_MIB=$SEGMENT_MIB SEGMENTS=$SEGMENTS IN_FLIGHT=$IN_FLIGHT PIN=$PIN"
  "${pin_bench[@]}" "$bin" --endpoint "http://127.0.0.1:$port" --server "$label; $versions" \
    --server-pid "$server_pid" --reps "$REPS" --segment-mib "$SEGMENT_MIB" \
    --segments "$SEGMENTS" --in-flight "$IN_FLIGHT" --report "$out/$server.json" \
    --command "$cmd"
  stop_server
  rm -rf "$out/s3s-data"
done
python3 benches/cold/summarize.py docs/benchmarks/cold-tier.md docs/benchmarks/cold-tier.json \
  "$out"/*.json
echo "reports: $out, docs/benchmarks/cold-tier.md, docs/benchmarks/cold-tier.json" >&2
