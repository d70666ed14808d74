#!/usr/bin/env bash
# Sprawl side by side with NATS JetStream, Redis Streams and (optionally) Apache Kafka, on this
# box, in one run (issue 4, item 4; method: BENCHMARKING.md). One command, from the repository:
#
#   benches/peers/run.sh                      # the full run, writes docs/benchmarks/peers.{md,json}
#   benches/peers/run.sh --smoke              # 1 repetition of 2 s, report into the results dir
#   benches/peers/run.sh --no-kafka           # without Kafka
#   KAFKA_HOME=/path/with/lib benches/peers/run.sh   # Kafka from these jars ($KAFKA_HOME/lib or libs)
#
# Peers are installed when missing: nats-server and redis-server from Debian (apt-get), Kafka
# from the Maven Central jars (benches/peers/fetch-kafka.sh, cached under ~/.cache/sprawl-peers)
# unless KAFKA_HOME names an installation.
#
# For each repetition and workload: a quiet gate (wait, bounded, until the 1-minute load average
# is below GATE_LOAD; /proc/pressure/{cpu,io} logged), then every system in turn (A/B/A/B...),
# each in a fresh data directory, the server pinned with `taskset -c $SERVER_CPU` and loadgen
# with `taskset -c $LOADGEN_CPU`. Every loadgen report, server log and the gate log stay in the
# results directory; benches/peers/report.py turns them into the Markdown and JSON report.
#
# Flags (each also an environment variable):
#   --duration-secs S   DURATION_S    measured seconds per run (5)
#   --warmup-secs S     WARMUP_S      warm-up seconds per run (1)
#   --reps N            REPS          repetitions per workload (3)
#   --workloads "..."   WORKLOADS     subset and order (g1 g2 g4 s4 g3 g5 g6 u1 b2; g5 needs g1;
#                                     u1 is G1 with neither side pinned, b2 is G2 in batches
#                                     of 16 records, s4 is G4 with a client that sleeps in
#                                     read() instead of spinning)
#   --out DIR           OUT_DIR       results directory (/tmp/sprawl-peers-<UTC time>)
#   --doc-dir DIR       DOC_DIR       where peers.md and peers.json go (docs/benchmarks; with
#                                     --smoke or a subset of --workloads the results directory)
#   --gate-timeout-secs S GATE_TIMEOUT_S  bound of the quiet-gate wait (120)
#   --smoke             1 repetition, 2 s runs, 0.5 s warm-up, 10 s gate bound
#   --skip-build        SKIP_BUILD=1  use the binaries already in $CARGO_TARGET_DIR/release
#   --from-head         FROM_HEAD=1   build the committed HEAD (a `git archive` snapshot in
#                                     SRC_SNAPSHOT, default /tmp/sprawl-peers-src), not the working
#                                     tree, e.g. while others edit it
#   --no-kafka          NO_KAFKA=1    leave Kafka out (no download, G3/G7/G8's Kafka parts
#                                     reported as not measured)
# Other variables: WINDOW (256), GATE_LOAD (1.0), PREFILL_S (12, G6 log fill), REPLAY_S (1, G6
# measured replay), KAFKA_WARMUP_S (10, JIT warm-up), G5_RATE (default: half the median NATS
# msgs/s of G1), G6_NATS_MAX_PENDING_BYTES (1 GiB, NATS's per-client buffer in G6 only),
# SERVER_CPU (1), LOADGEN_CPU (0), SPRAWL_ANALYTICS (off: the pure data path; the default of
# `sprawl serve` is act), CARGO_TARGET_DIR (target), KAFKA_HOME, the ports in servers.sh.

set -uo pipefail
ORIG_ARGS="$*"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=servers.sh
source "$HERE/servers.sh"

: "${DURATION_S:=5}"
: "${WARMUP_S:=1}"
: "${REPS:=3}"
: "${WORKLOADS:=g1 g2 g4 s4 g3 g5 g6 u1 b2}"
ALL_WORKLOADS="g1 g2 g4 s4 g3 g5 g6 u1 b2"
: "${GATE_TIMEOUT_S:=120}"
: "${GATE_LOAD:=1.0}"
: "${WINDOW:=256}"
: "${PREFILL_S:=12}"
: "${REPLAY_S:=1}"
: "${KAFKA_WARMUP_S:=10}"
: "${G6_NATS_MAX_PENDING_BYTES:=1073741824}"
: "${LOADGEN_CPU:=0}"
: "${SKIP_BUILD:=0}"
: "${FROM_HEAD:=0}"
: "${NO_KAFKA:=0}"
: "${SRC_SNAPSHOT:=/tmp/sprawl-peers-src}"
: "${CARGO_TARGET_DIR:=$REPO/target}"
SMOKE=0
OUT_DIR=${OUT_DIR:-}
DOC_DIR=${DOC_DIR:-}

while (($#)); do
    case $1 in
        --duration-secs) DURATION_S=$2; shift 2 ;;
        --warmup-secs) WARMUP_S=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --workloads) WORKLOADS=$2; shift 2 ;;
        --out) OUT_DIR=$2; shift 2 ;;
        --doc-dir) DOC_DIR=$2; shift 2 ;;
        --gate-timeout-secs) GATE_TIMEOUT_S=$2; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        --from-head) FROM_HEAD=1; shift ;;
        --no-kafka) NO_KAFKA=1; shift ;;
        --smoke)
            SMOKE=1 REPS=1 DURATION_S=2 WARMUP_S=0.5 GATE_TIMEOUT_S=10 PREFILL_S=3 REPLAY_S=1
            KAFKA_WARMUP_S=5
            shift
            ;;
        -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "peers: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

for W0 in $WORKLOADS; do
    case $W0 in
        g1 | g2 | g3 | g4 | s4 | g5 | g6 | u1 | b2) ;;
        *) echo "peers: unknown workload $W0 (g1..g6, s4, u1, b2)" >&2; exit 2 ;;
    esac
done
OUT_DIR=${OUT_DIR:-/tmp/sprawl-peers-$(date -u +%Y%m%dT%H%M%SZ)}
if [[ -z $DOC_DIR ]]; then
    # A smoke run or a subset of the workloads must not replace the committed full report.
    if ((SMOKE)) || [[ $WORKLOADS != "$ALL_WORKLOADS" ]]; then
        DOC_DIR=$OUT_DIR
    else
        DOC_DIR=$REPO/docs/benchmarks
    fi
fi
mkdir -p "$OUT_DIR/runs" "$OUT_DIR/logs" "$OUT_DIR/data" "$DOC_DIR"
RUNS=$OUT_DIR/runs.jsonl
GATES=$OUT_DIR/gates.jsonl
: >"$RUNS"
: >"$GATES"
REPORT_PY=$HERE/report.py
LOADGEN_BIN=$CARGO_TARGET_DIR/release/loadgen
SPRAWL_BIN=$CARGO_TARGET_DIR/release/sprawl

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
# An interrupted run must not leave a server behind (stop_server only touches the pid it started).
trap 'stop_server' EXIT
trap 'exit 130' INT TERM

# --- what is needed ------------------------------------------------------------------------
install_peers() {
    local -a missing=()
    command -v nats-server >/dev/null || missing+=(nats-server)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v taskset >/dev/null || missing+=(util-linux)
    command -v python3 >/dev/null || missing+=(python3)
    command -v curl >/dev/null || missing+=(curl)
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
}

KAFKA_CLASSPATH=""
KAFKA_NOTE=""
find_kafka() {
    if ((NO_KAFKA)); then
        KAFKA_NOTE="not measured: --no-kafka"
        return 1
    fi
    if [[ -z ${KAFKA_HOME:-} ]]; then
        # From Maven Central into a cache directory (once; later runs reuse it offline).
        log "installing Kafka from Maven Central (benches/peers/fetch-kafka.sh)"
        if ! KAFKA_HOME=$("$HERE/fetch-kafka.sh"); then
            KAFKA_NOTE="not measured: benches/peers/fetch-kafka.sh failed (see its message above)"
            return 1
        fi
    fi
    local lib
    for lib in "$KAFKA_HOME/lib" "$KAFKA_HOME/libs"; do
        if compgen -G "$lib/kafka_2.13-*.jar" >/dev/null; then
            KAFKA_CLASSPATH="$lib/*"
            if ! command -v java >/dev/null; then
                KAFKA_NOTE="not measured: no java on PATH"
                return 1
            fi
            return 0
        fi
    done
    KAFKA_NOTE="not measured: no kafka_2.13-*.jar under $KAFKA_HOME/lib or $KAFKA_HOME/libs"
    return 1
}

install_peers || { echo "peers: cannot install the peers" >&2; exit 1; }
KAFKA=0
if find_kafka; then KAFKA=1; fi
SRC=$REPO
SRC_KIND="working tree"
((FROM_HEAD)) && SRC=$SRC_SNAPSHOT
if ((SKIP_BUILD == 0)); then
    if ((FROM_HEAD)); then
        log "exporting HEAD into $SRC (git archive)"
        rm -rf "$SRC" && mkdir -p "$SRC" && git -C "$REPO" archive HEAD | tar -x -C "$SRC" &&
            git -C "$REPO" rev-parse HEAD >"$SRC/.peers-source-commit" ||
            { echo "peers: cannot export HEAD" >&2; exit 1; }
    fi
    log "building release binaries from $SRC into $CARGO_TARGET_DIR"
    (cd "$SRC" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release -p engine -p loadgen) ||
        { echo "peers: build failed" >&2; exit 1; }
fi
# The commit a snapshot was exported from (the binaries' source when --from-head).
if ((FROM_HEAD)); then
    SRC_KIND="git archive of commit $(cat "$SRC/.peers-source-commit" 2>/dev/null || echo unknown)"
fi
for bin in "$LOADGEN_BIN" "$SPRAWL_BIN"; do
    [[ -x $bin ]] || { echo "peers: $bin is missing" >&2; exit 1; }
done

# --- the quiet gate ------------------------------------------------------------------------
load1() { cut -d' ' -f1 /proc/loadavg; }
# quiet_gate WORKLOAD REP: wait until load1 < GATE_LOAD, at most GATE_TIMEOUT_S; logs a line.
quiet_gate() {
    local workload=$1 rep=$2 start=$SECONDS first last passed=false
    first=$(load1)
    while :; do
        last=$(load1)
        if awk -v l="$last" -v t="$GATE_LOAD" 'BEGIN { exit !(l < t) }'; then
            passed=true
            break
        fi
        ((SECONDS - start >= GATE_TIMEOUT_S)) && break
        sleep 5
    done
    local waited=$((SECONDS - start))
    [[ $passed == true ]] ||
        log "quiet gate timed out after ${waited}s (load1 $last >= $GATE_LOAD); running anyway, recorded"
    # A hardware probe in the same minute: mean latency of a 4 KiB O_DSYNC write (~ fdatasync).
    local probe_file=$OUT_DIR/data/dsync-probe dsync_us
    dsync_us=$(dd if=/dev/zero of="$probe_file" bs=4k count=200 oflag=dsync 2>&1 | tail -1 |
        awk 'match($0, /copied, [0-9.]+ s/) {
            split(substr($0, RSTART + 8), t, " "); printf "%.0f", t[1] / 200 * 1e6 }')
    rm -f "$probe_file"
    python3 "$REPORT_PY" jsonl "$GATES" workload="$workload" rep:="$rep" passed:="$passed" \
        dsync_4k_write_us:="$dsync_us" \
        waited_s:="$waited" timeout_s:="$GATE_TIMEOUT_S" threshold:="$GATE_LOAD" \
        load1_at_start:="$first" load1_at_end:="$last" loadavg="$(cat /proc/loadavg)" \
        utc="$(date -u +%FT%TZ)" pressure_cpu="$(cat /proc/pressure/cpu 2>/dev/null)" \
        pressure_io="$(cat /proc/pressure/io 2>/dev/null)"
}

# --- one run -------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
PIN_LOADGEN=(taskset -c "$LOADGEN_CPU")
# set_pinning 1|0: pin server and loadgen to their cores (the method), or let the scheduler
# place them (the unpinned variant BENCHMARKING.md also asks for).
set_pinning() {
    if (($1)); then
        PIN_SERVER=(taskset -c "$SERVER_CPU")
        PIN_LOADGEN=(taskset -c "$LOADGEN_CPU")
    else
        PIN_SERVER=()
        PIN_LOADGEN=()
    fi
}
# loadgen_run WORKLOAD REP LABEL PHASE LOADGEN_ARGS...: one loadgen run against the server that
# with_server started, recorded in runs.jsonl with the server's CPU time over the run. PHASE is
# "measure", or "prefill"/"replay" for G6 (both phases on one server).
loadgen_run() {
    local workload=$1 rep=$2 system=$3 phase=$4
    shift 4
    local name="$workload-r$rep-$system-$phase" target=${system%%-*}
    local report=$OUT_DIR/runs/$name.json
    local -a cmd=("${PIN_LOADGEN[@]}" "$LOADGEN_BIN" --target "$target"
        --broker "$SERVER_ADDR" --topic peers --partitions 1 --report "$report"
        --server-pid "$SERVER_PID" "$@")
    local cpu_before cpu_after rc pressure_cpu pressure_io loadavg
    pressure_cpu=$(cat /proc/pressure/cpu 2>/dev/null)
    pressure_io=$(cat /proc/pressure/io 2>/dev/null)
    loadavg=$(cat /proc/loadavg)
    cpu_before=$(proc_cpu_ticks "$SERVER_PID")
    local cmd_text
    cmd_text=$(printf '%q ' "${cmd[@]}")
    log "$name: $cmd_text"
    # bash's `time` gives loadgen's own CPU time: near 1 CPU-s per second means the load
    # generator, not the server, set the pace.
    local times TIMEFORMAT='%R %U %S'
    times=$({ time "${cmd[@]}" >"$OUT_DIR/logs/$name.loadgen.txt" 2>&1; } 2>&1)
    rc=$?
    local wall_s loadgen_cpu_s
    read -r wall_s loadgen_cpu_s < <(echo "$times" | tail -1 |
        awk '{ printf "%s %.3f\n", $1, $2 + $3 }')
    cpu_after=$(proc_cpu_ticks "$SERVER_PID")
    if [[ $target == sprawl ]]; then
        # The node's own view of the run (fsync and produce latency, segments, flushes).
        local stats_url="http://127.0.0.1:$SPRAWL_HTTP_PORT"
        curl -fsS -m 5 "$stats_url/stats" >"$OUT_DIR/logs/$name.stats.json" 2>&1
        curl -fsS -m 5 "$stats_url/metrics" >"$OUT_DIR/logs/$name.metrics.txt" 2>&1
    fi
    local cpu_s=""
    [[ -n $cpu_before && -n $cpu_after ]] &&
        cpu_s=$(awk -v a="$cpu_before" -v b="$cpu_after" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
    ((rc == 0)) || log "$name: loadgen exited $rc (see logs/$name.loadgen.txt)"
    python3 "$REPORT_PY" jsonl "$RUNS" workload="$workload" rep:="$rep" system="$system" \
        phase="$phase" report="$report" loadgen_exit:="$rc" loadgen_cmd="${cmd_text% }" \
        server_cmd="$SERVER_CMD" server_pid:="$SERVER_PID" server_cpu_s_harness="$cpu_s" \
        loadgen_wall_s="$wall_s" loadgen_cpu_s="$loadgen_cpu_s" \
        server_rss_kib_after="$(proc_rss_kib "$SERVER_PID")" loadavg_before="$loadavg" \
        pressure_cpu_before="$pressure_cpu" pressure_io_before="$pressure_io" \
        utc="$(date -u +%FT%TZ)"
}

# with_server WORKLOAD REP SERVER FN: start SERVER fresh, call FN, stop it, keep its log. The run
# functions read W, R and SYS (the label: sprawl-d1 / sprawl-d2 share the sprawl server).
with_server() {
    local workload=$1 rep=$2 system=$3 fn=$4
    local dir=$OUT_DIR/data/$workload-r$rep-$system
    if ! start_server "$system" "$dir"; then
        log "$workload r$rep $system: server did not start (log kept)"
        cp "$dir/server.log" "$OUT_DIR/logs/$workload-r$rep-$system.server.log" 2>/dev/null
        python3 "$REPORT_PY" jsonl "$RUNS" workload="$workload" rep:="$rep" system="$system" \
            phase=start error="server did not start" utc="$(date -u +%FT%TZ)"
        rm -rf "$dir"
        return 1
    fi
    "$fn" "$workload" "$rep" "$system"
    stop_server
    # Sprawl must stop cleanly on SIGTERM; nats-server exits 1 after a SIGTERM shutdown.
    [[ $SERVER_EXIT == 0 || $system != sprawl ]] ||
        log "$workload r$rep $system: server exit status $SERVER_EXIT"
    echo "exit status: $SERVER_EXIT" >>"$dir/server.log"
    cp "$dir/server.log" "$OUT_DIR/logs/$workload-r$rep-$system.server.log"
    rm -rf "$dir"
}

# --- the workloads -------------------------------------------------------------------------
acks_of() { case $1 in sprawl-d2 | redis-d2 | kafka-d2) echo all ;; *) echo leader ;; esac; }
# Sprawl's durability class is the producer's acks; the other systems' is the server setting.
server_of() { case $1 in sprawl-*) echo sprawl ;; *) echo "$1" ;; esac; }

# warmup_of LABEL: Kafka's JVM needs seconds of load before its JIT has compiled the hot path
# (smoke runs showed its rate still tripling after 2 s); every other system gets WARMUP_S.
warmup_of() {
    case $1 in
        kafka-*) awk -v a="$WARMUP_S" -v b="$KAFKA_WARMUP_S" 'BEGIN { print (a > b ? a : b) }' ;;
        *) echo "$WARMUP_S" ;;
    esac
}
closed_loop() { # size window system-label [more loadgen flags]
    loadgen_run "$W" "$R" "$3" measure --create-topic --size "$1" --window "$2" --batch 1 \
        --acks "$(acks_of "$3")" --warmup-secs "$(warmup_of "$3")" --duration-secs "$DURATION_S" \
        "${@:4}"
}
g1_run() { closed_loop 1024 "$WINDOW" "$SYS"; }
u1_run() { closed_loop 1024 "$WINDOW" "$SYS"; }
g2_run() { closed_loop 128 "$WINDOW" "$SYS"; }
# B2: G2 with client-side batches of 16 records (same 256 records in flight): one request on
# Sprawl, 16 pipelined XADDs / publishes in one write on Redis and NATS.
b2_run() {
    loadgen_run "$W" "$R" "$SYS" measure --create-topic --size 128 --window $((WINDOW / 16)) \
        --batch 16 --acks leader --warmup-secs "$WARMUP_S" --duration-secs "$DURATION_S"
}
g3_run() { closed_loop 1024 "$WINDOW" "$SYS"; }
# G4 measures the servers' latency, so loadgen spins on its socket (--busy-poll) for every system:
# a client sleeping in read() adds its own wake-up (~55 us here) to every reply. S4 is the same
# with the sleeping client, reported next to it.
g4_run() { closed_loop 1024 1 "$SYS" --busy-poll; }
s4_run() { closed_loop 1024 1 "$SYS"; }
g5_run() {
    loadgen_run "$W" "$R" "$SYS" measure --create-topic --size 1024 --window "$WINDOW" \
        --batch 1 --rate "$G5_RATE" --acks leader --warmup-secs "$WARMUP_S" \
        --duration-secs "$DURATION_S"
}
g6_run() {
    loadgen_run "$W" "$R" "$SYS" prefill --create-topic --size 1024 --window "$WINDOW" \
        --batch 1 --acks leader --warmup-secs 0 --duration-secs "$PREFILL_S"
    loadgen_run "$W" "$R" "$SYS" replay --producers 0 --consumers 1 --consume-from earliest \
        --warmup-secs 0 --duration-secs "$REPLAY_S"
}

systems_of() {
    case $1 in
        g1) echo "sprawl-d1 nats"; ((KAFKA)) && echo "kafka-d1" ;;
        g2 | b2) echo "sprawl-d1 nats redis-d1" ;;
        g3) echo "sprawl-d2 redis-d2"; ((KAFKA)) && echo "kafka-d2" ;;
        g4 | s4 | g5 | g6 | u1) echo "sprawl-d1 nats" ;;
    esac
}

# run_repetition WORKLOAD REP: the quiet gate, then every system of the workload in turn.
run_repetition() {
    W=$1 R=$2
    if [[ $W == g5 && -z ${G5_RATE:-} ]]; then
        # Fixed at its first use: half the median NATS G1 rate measured so far.
        G5_RATE=$(python3 "$REPORT_PY" g5-rate "$RUNS")
        if [[ -z $G5_RATE ]]; then
            log "g5: no NATS rate from g1 and no G5_RATE; skipped"
            return 0
        fi
        log "g5: open loop at $G5_RATE msgs/s"
    fi
    if [[ $W == u1 ]]; then set_pinning 0; else set_pinning 1; fi
    # G6 replays a log far larger than NATS's default 64 MiB client buffer to a consumer without
    # flow control; NATS then cuts the consumer off as "slow" (seen in smoke runs).
    NATS_MAX_PENDING_BYTES=""
    [[ $W == g6 ]] && NATS_MAX_PENDING_BYTES=$G6_NATS_MAX_PENDING_BYTES
    local -a systems
    read -r -a systems <<<"$(systems_of "$W" | tr '\n' ' ')"
    quiet_gate "$W" "$R"
    local server
    for SYS in "${systems[@]}"; do
        # A Sprawl label carries its durability class (sprawl-d1/-d2); the server is the same.
        server=$(server_of "$SYS")
        with_server "$W" "$R" "$server" "${W}_run" || true
    done
}

python3 "$REPORT_PY" env "$OUT_DIR/env.json" duration_s:="$DURATION_S" warmup_s:="$WARMUP_S" \
    reps:="$REPS" workloads="$WORKLOADS" window:="$WINDOW" gate_timeout_s:="$GATE_TIMEOUT_S" \
    gate_load:="$GATE_LOAD" prefill_s:="$PREFILL_S" replay_s:="$REPLAY_S" \
    kafka_warmup_s:="$KAFKA_WARMUP_S" g6_nats_max_pending_bytes:="$G6_NATS_MAX_PENDING_BYTES" \
    server_cpu="$SERVER_CPU" loadgen_cpu="$LOADGEN_CPU" sprawl_analytics="$SPRAWL_ANALYTICS" \
    smoke:="$([[ $SMOKE == 1 ]] && echo true || echo false)" kafka_note="$KAFKA_NOTE" \
    kafka_classpath="$KAFKA_CLASSPATH" sprawl_bin="$SPRAWL_BIN" loadgen_bin="$LOADGEN_BIN" \
    repo="$REPO" sprawl_src="$SRC" sprawl_src_kind="$SRC_KIND" started_utc="$(date -u +%FT%TZ)" \
    command_line="$0 $ORIG_ARGS"

# Repetition-major order: every workload's repetition 1, then every repetition 2, ... so that a
# noisy stretch of time hits one repetition of many workloads, not every repetition of one.
for ((REP_NO = 1; REP_NO <= REPS; REP_NO++)); do
    for W0 in $WORKLOADS; do
        run_repetition "$W0" "$REP_NO"
    done
done

python3 "$REPORT_PY" env-finish "$OUT_DIR/env.json" finished_utc="$(date -u +%FT%TZ)"
python3 "$REPORT_PY" render "$OUT_DIR" "$DOC_DIR" || { echo "peers: report failed" >&2; exit 1; }
log "results in $OUT_DIR; report in $DOC_DIR/peers.md and $DOC_DIR/peers.json"
