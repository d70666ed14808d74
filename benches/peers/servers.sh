# Start and stop the systems under test for benches/peers/run.sh (sourced, not executed).
#
# Every server is started pinned with `taskset -c $SERVER_CPU` (unless PIN_SERVER is emptied), in a fresh data directory, on
# a fixed local port, and stopped with SIGTERM (SIGKILL after $STOP_TIMEOUT_S). After a start,
# SERVER_PID holds its pid, SERVER_CMD its exact command line and SERVER_ADDR its client address.
# Nothing here changes state outside $1 (the data directory) and the pid it started.

: "${SERVER_CPU:=1}"
: "${START_TIMEOUT_S:=60}"
: "${STOP_TIMEOUT_S:=20}"
: "${SPRAWL_PORT:=27070}"
: "${SPRAWL_HTTP_PORT:=27080}"
: "${NATS_PORT:=24222}"
: "${REDIS_PORT:=26379}"
: "${KAFKA_PORT:=29092}"
: "${KAFKA_CONTROLLER_PORT:=29093}"
: "${SPRAWL_ANALYTICS:=off}"
: "${KAFKA_HEAP:=512m}"

# The pinning prefix of server commands; empty for an unpinned run (set_pinning 0).
PIN_SERVER=(taskset -c "$SERVER_CPU")
SERVER_PID=""
SERVER_CMD=""
SERVER_ADDR=""
SERVER_EXIT=""

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_port PORT PID WHAT: wait until PORT accepts connections, bounded by START_TIMEOUT_S;
# fails early when PID died.
wait_port() {
    local port=$1 pid=$2 what=$3 deadline=$((SECONDS + START_TIMEOUT_S))
    while ! port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "peers: $what (pid $pid) exited before listening on $port" >&2
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "peers: $what did not listen on $port within ${START_TIMEOUT_S}s" >&2
            return 1
        fi
        sleep 0.1
    done
}

# require_free PORT: refuse to start when the port is taken (a stale server would be measured).
require_free() {
    if port_open "$1"; then
        echo "peers: port $1 is already in use; set another with the *_PORT variables" >&2
        return 1
    fi
}

# start_server SYSTEM DATA_DIR: SYSTEM is sprawl, nats, redis-d1, redis-d2, kafka-d1 or kafka-d2.
start_server() {
    local system=$1 dir=$2
    mkdir -p "$dir"
    SERVER_EXIT=""
    local -a cmd
    case $system in
        sprawl)
            require_free "$SPRAWL_PORT" && require_free "$SPRAWL_HTTP_PORT" || return 1
            cmd=("${PIN_SERVER[@]}" "$SPRAWL_BIN" serve --port "$SPRAWL_PORT"
                --http-port "$SPRAWL_HTTP_PORT" --shards 1 --data-dir "$dir/data"
                --analytics "$SPRAWL_ANALYTICS")
            SERVER_ADDR="127.0.0.1:$SPRAWL_PORT"
            ;;
        nats)
            require_free "$NATS_PORT" || return 1
            cmd=("${PIN_SERVER[@]}" nats-server -js -a 127.0.0.1 -p "$NATS_PORT"
                -sd "$dir/data")
            if [[ -n ${NATS_MAX_PENDING_BYTES:-} ]]; then
                # A larger per-client outbound buffer (default 64 MiB): loadgen's push consumer
                # has no flow control, and NATS disconnects a client whose buffer overflows.
                echo "max_pending: $NATS_MAX_PENDING_BYTES" >"$dir/nats.conf"
                cmd+=(-c "$dir/nats.conf")
            fi
            SERVER_ADDR="127.0.0.1:$NATS_PORT"
            ;;
        redis-d1 | redis-d2)
            require_free "$REDIS_PORT" || return 1
            local fsync=everysec
            [[ $system == redis-d2 ]] && fsync=always
            mkdir -p "$dir/data"
            cmd=("${PIN_SERVER[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1
                --save "" --appendonly yes --appendfsync "$fsync" --dir "$dir/data"
                --daemonize no --protected-mode no)
            SERVER_ADDR="127.0.0.1:$REDIS_PORT"
            ;;
        kafka-d1 | kafka-d2)
            require_free "$KAFKA_PORT" && require_free "$KAFKA_CONTROLLER_PORT" || return 1
            write_kafka_properties "$system" "$dir" || return 1
            # Formatting is set-up, not measured; it runs pinned like the broker.
            if ! "${PIN_SERVER[@]}" java -cp "$KAFKA_CLASSPATH" kafka.tools.StorageTool \
                format -t "Zk1u3Xq6QyW7nP0aBcDeFg" -c "$dir/server.properties" \
                >"$dir/format.log" 2>&1; then
                echo "peers: formatting the Kafka log dir failed; see $dir/format.log" >&2
                return 1
            fi
            cmd=("${PIN_SERVER[@]}" java "-Xmx$KAFKA_HEAP" "-Xms$KAFKA_HEAP"
                -cp "$KAFKA_CLASSPATH" kafka.Kafka "$dir/server.properties")
            SERVER_ADDR="127.0.0.1:$KAFKA_PORT"
            ;;
        *)
            echo "peers: unknown system $system" >&2
            return 1
            ;;
    esac
    "${cmd[@]}" >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    SERVER_CMD=$(printf '%q ' "${cmd[@]}")
    SERVER_CMD=${SERVER_CMD% }
    local port=${SERVER_ADDR##*:}
    if ! wait_port "$port" "$SERVER_PID" "$system"; then
        stop_server
        return 1
    fi
    if [[ $system == redis-* ]]; then
        # Redis accepts connections while it still loads; PING answers PONG once it serves.
        local deadline=$((SECONDS + START_TIMEOUT_S))
        until [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; do
            ((SECONDS < deadline)) || { stop_server; return 1; }
            sleep 0.1
        done
    fi
}

# write_kafka_properties SYSTEM DIR: a KRaft single node; kafka-d2 flushes every message.
write_kafka_properties() {
    local system=$1 dir=$2
    {
        echo "process.roles=broker,controller"
        echo "node.id=1"
        echo "controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT"
        echo "listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT"
        echo "advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT"
        echo "controller.listener.names=CONTROLLER"
        echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        echo "inter.broker.listener.name=PLAINTEXT"
        echo "log.dirs=$dir/data"
        echo "num.partitions=1"
        echo "offsets.topic.replication.factor=1"
        echo "transaction.state.log.replication.factor=1"
        echo "transaction.state.log.min.isr=1"
        echo "group.initial.rebalance.delay.ms=0"
        if [[ $system == kafka-d2 ]]; then
            # D2: fdatasync after every appended batch, before the acknowledgement.
            echo "log.flush.interval.messages=1"
        fi
    } >"$dir/server.properties"
}

# stop_server: SIGTERM the last started server, SIGKILL after STOP_TIMEOUT_S; SERVER_EXIT holds
# its exit status ("killed" when it had to be killed).
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    local pid=$SERVER_PID deadline=$((SECONDS + STOP_TIMEOUT_S))
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "peers: pid $pid ignored SIGTERM for ${STOP_TIMEOUT_S}s; SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            SERVER_EXIT=killed
            SERVER_PID=""
            return 0
        fi
        sleep 0.1
    done
    wait "$pid" 2>/dev/null
    SERVER_EXIT=$?
    SERVER_PID=""
}

# proc_cpu_ticks PID: utime + stime of the whole process (all threads), in clock ticks.
proc_cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo ""; return 0; }
    # Fields after the last ')' start at field 3 (state); utime and stime are fields 14 and 15.
    echo "${stat##*)}" | awk '{print $12 + $13}'
}

# proc_rss_kib PID: resident set size in KiB.
proc_rss_kib() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null
}
