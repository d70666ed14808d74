"""Drives benches/analytics/skew.sh: a 2-shard `sprawl serve` per run, loadgen with Zipf keys,
`--analytics act` and `off` alternating, the checker after every run, and the analytics shard's
hot-partition flags and moves polled from the HTTP (stats) port while the load runs.

Usage: python3 skew_run.py BIN_DIR OUT_DIR   (settings from the environment, see skew.sh)
Writes OUT_DIR/runs.json (one entry per run) and leaves every loadgen report, ledger and node log
in OUT_DIR; each node's data directory is removed when it stops (a run writes gigabytes). benches/analytics/skew_summarize.py turns runs.json into the docs.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

BIN_DIR, OUT_DIR = sys.argv[1], sys.argv[2]
ENV = os.environ
REPS = int(ENV.get("REPS", "3"))
DURATION_S = float(ENV.get("DURATION_S", "20"))
WARMUP_S = float(ENV.get("WARMUP_S", "1"))
CAL_S = float(ENV.get("CAL_S", "8"))
SIZE = int(ENV.get("SIZE", "1024"))
WINDOW = int(ENV.get("WINDOW", "8"))
BATCH = int(ENV.get("BATCH", "16"))
PRODUCERS = int(ENV.get("PRODUCERS", "2"))
ZIPF_S = float(ENV.get("ZIPF_S", "1.5"))
KEY_SPACE = int(ENV.get("KEY_SPACE", "1000"))
PARTITIONS = 3
# Hot-partition capacity and shard capacity as fractions of the calibration run's msgs/s.
PARTITION_CAP_FRAC = float(ENV.get("PARTITION_CAP_FRAC", "0.4"))
SHARD_CAP_FRAC = float(ENV.get("SHARD_CAP_FRAC", "1.0"))
GATE_LOAD = float(ENV.get("GATE_LOAD", "1.0"))
GATE_TIMEOUT_S = float(ENV.get("GATE_TIMEOUT_S", "60"))
# CPUs loadgen may run on (a taskset list), empty = anywhere, "hot" = the core of the shard that
# owns partition 0 (the Zipf head) when the topic is created, so that core becomes the bottleneck.
# Shard i runs on the i-th CPU the node may use (all of them here).
LOADGEN_CPUS = ENV.get("LOADGEN_CPUS", "")


def loadgen_cpus(layout):
    """The taskset CPU list for this run, or "" for no pinning."""
    if LOADGEN_CPUS != "hot":
        return LOADGEN_CPUS
    shard = next(p["shard"] for p in layout if p["partition"] == 0)
    return str(sorted(os.sched_getaffinity(0))[shard])
POLL_S = 0.25
TOPIC = "skew"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def quiet_gate():
    """Waits (bounded) until the 1-minute load average is below GATE_LOAD; returns what it saw."""
    start = time.monotonic()
    first = float(read("/proc/loadavg").split()[0])
    last = first
    while last >= GATE_LOAD and time.monotonic() - start < GATE_TIMEOUT_S:
        time.sleep(2)
        last = float(read("/proc/loadavg").split()[0])
    gate = {"load1_start": first, "load1_end": last, "passed": last < GATE_LOAD,
            "waited_s": round(time.monotonic() - start, 1),
            "pressure_cpu": read("/proc/pressure/cpu"), "pressure_io": read("/proc/pressure/io")}
    if not gate["passed"]:
        log(f"quiet gate timed out after {gate['waited_s']} s (load1 {last} >= {GATE_LOAD}); running anyway, recorded")
    return gate


def http_json(addr, path, method="GET", body=None):
    req = urllib.request.Request(f"http://{addr}{path}", method=method, data=body)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return {"http_status": e.code}


class Node:
    def __init__(self, name, mode, caps):
        self.dir = os.path.join(OUT_DIR, name)
        os.makedirs(self.dir)
        conf = os.path.join(self.dir, "sprawl.toml")
        with open(conf, "w") as f:
            f.write(f"analytics_partition_capacity_msgs_per_s = {caps['partition']:.1f}\n")
            f.write(f"analytics_shard_capacity_msgs_per_s = {caps['shard']:.1f}\n")
        self.command = [os.path.join(BIN_DIR, "sprawl"), "serve", "--port", "0", "--http-port", "0",
                        "--shards", "2", "--analytics", mode, "--config", conf,
                        "--data-dir", os.path.join(self.dir, "data")]
        self.log = open(os.path.join(self.dir, "sprawl.log"), "w")
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        ports = os.path.join(self.dir, "data", "ports.json")
        deadline = time.monotonic() + 30
        while True:
            text = read(ports)
            if text:
                try:
                    p = json.loads(text)
                    self.client, self.http = p["client"], p["http"]
                    break
                except (ValueError, KeyError):
                    pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"sprawl did not start; see {self.log.name}")
            time.sleep(0.05)

    def layout(self):
        t = http_json(self.http, f"/topics/{TOPIC}")
        return [{"partition": p["partition"], "shard": p["shard"], "end_offset": p["end_offset"]}
                for p in t.get("partition_state", [])]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        # A run writes gigabytes; keep the log, drop the data.
        shutil.rmtree(os.path.join(self.dir, "data"), ignore_errors=True)
        return rc


def loadgen_command(node, name, duration_s, cpus=""):
    pin = ["taskset", "-c", cpus] if cpus else []
    return pin + [os.path.join(BIN_DIR, "loadgen"), "--broker", node.client, "--topic", TOPIC,
            "--partitions", str(PARTITIONS), "--keys", "zipf", "--zipf-s", str(ZIPF_S),
            "--key-space", str(KEY_SPACE), "--size", str(SIZE), "--window", str(WINDOW),
            "--batch", str(BATCH), "--producers", str(PRODUCERS), "--acks", "leader",
            "--warmup-secs", str(WARMUP_S), "--duration-secs", str(duration_s),
            "--server-pid", str(node.proc.pid), "--verify",
            "--seq-ledger", os.path.join(OUT_DIR, f"{name}.ledger.json"),
            "--report", os.path.join(OUT_DIR, f"{name}.json")]


def one_run(name, mode, caps, duration_s):
    gate = quiet_gate()
    node = Node(name, mode, caps)
    created = http_json(node.http, "/topics", "POST",
                        json.dumps({"name": TOPIC, "partitions": PARTITIONS}).encode())
    layout_before = node.layout()
    cpus = loadgen_cpus(layout_before)
    cmd = loadgen_command(node, name, duration_s, cpus)
    log(f"{name}: analytics {mode}, load1 {read('/proc/loadavg').split()[0]}")
    out = open(os.path.join(OUT_DIR, f"{name}.out"), "w")
    started_unix = time.time()
    started = time.monotonic()
    lg = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    flag, move, layout_at_move = None, None, None
    offsets = []  # (seconds since start, end offset of partition 0), to time its capacity crossing
    while lg.poll() is None:
        time.sleep(POLL_S)
        layout = node.layout()
        if layout:
            offsets.append((time.monotonic() - started, layout[0]["end_offset"]))
        if mode == "off":
            continue
        if flag is None:
            hot = http_json(node.http, "/analytics/hot")
            # Partition 0 holds the Zipf head (key 0): the partition the skew makes hot.
            ev = next((e for e in hot.get("events", []) if e.get("topic") == TOPIC
                       and e.get("partition") == 0 and e.get("kind") == "hot"), None)
            if ev:
                flag = {"seen_after_s": round(time.monotonic() - started, 2),
                        "event_after_s": round(ev["t_s"] - started_unix, 2), "event": ev}
        if move is None:
            d = http_json(node.http, "/analytics/decisions")
            mv = next((x for x in d.get("decisions", []) if x.get("kind") == "move" and x.get("topic") == TOPIC), None)
            if mv:
                move = {"seen_after_s": round(time.monotonic() - started, 2),
                        "event_after_s": round(mv["t_s"] - started_unix, 2), "decision": mv}
                layout_at_move = node.layout()
    rc = lg.wait()
    out.close()
    decisions = http_json(node.http, "/analytics/decisions") if mode != "off" else None
    hot = http_json(node.http, "/analytics/hot") if mode != "off" else None
    layout_after = node.layout()
    flagged = sorted({e["partition"] for e in (hot or {}).get("events", [])
                      if e.get("topic") == TOPIC and e.get("kind") == "hot"})
    node_rc = node.stop()
    report = json.loads(read(os.path.join(OUT_DIR, f"{name}.json")) or "null")
    return {"name": name, "mode": mode, "gate": gate, "loadgen_cpus": cpus, "loadgen_rc": rc, "node_rc": node_rc,
            "started_unix": started_unix, "node_command": node.command, "loadgen_command": cmd,
            "topic_created": created, "layout_before": layout_before,
            "layout_at_move": layout_at_move, "layout_after": layout_after,
            "flag": flag, "flagged_partitions": flagged, "move": move,
            "partition0_crossed_capacity_after_s": first_crossing(offsets, caps["partition"]),
            "partition0_offsets": offsets, "decisions": decisions,
            "hot_final": hot, "report": report}


def first_crossing(offsets, capacity):
    """End of the first window of >= 1 s in which partition 0 took more than `capacity` msgs/s."""
    j = 0
    for i, (t, o) in enumerate(offsets):
        while j + 1 < i and t - offsets[j + 1][0] >= 1.0:
            j += 1
        t0, o0 = offsets[j]
        if t - t0 >= 1.0 and (o - o0) / (t - t0) > capacity:
            return round(t, 2)
    return None


def msgs_per_s(run):
    return run["report"]["results"]["produce"]["msgs_per_s"]


def main():
    # Calibration: the same skewed workload with analytics off, to set the capacities the
    # analytics shard judges by (docs/analytics-shard.md: "set them from a loadgen run").
    cal = one_run("calibrate", "off", {"partition": 1e12, "shard": 1e12}, CAL_S)
    if cal["loadgen_rc"] != 0:
        raise SystemExit(f"calibration run failed; see {OUT_DIR}/calibrate.out")
    total = msgs_per_s(cal)
    caps = {"partition": PARTITION_CAP_FRAC * total, "shard": SHARD_CAP_FRAC * total,
            "calibration_msgs_per_s": total}
    log(f"calibration: {total:.0f} msgs/s -> partition capacity {caps['partition']:.0f}, shard capacity {caps['shard']:.0f}")
    runs = []
    for rep in range(1, REPS + 1):
        # A/B/A/B: the order alternates between repetitions so neither mode always goes first.
        order = ["act", "off"] if rep % 2 == 1 else ["off", "act"]
        for mode in order:
            r = one_run(f"{mode}-{rep}", mode, caps, DURATION_S)
            r["rep"] = rep
            runs.append(r)
            verify = (r["report"] or {}).get("verify", {})
            log(f"  {r['name']}: {msgs_per_s(r) if r['report'] else 'n/a'} msgs/s, verify ok={verify.get('ok')}, "
                f"flag {r['flag'] and r['flag']['seen_after_s']} s, move {r['move'] and r['move']['seen_after_s']} s")
    settings = {"reps": REPS, "duration_s": DURATION_S, "cal_s": CAL_S, "warmup_s": WARMUP_S, "size": SIZE,
                "window": WINDOW, "batch": BATCH, "producers": PRODUCERS, "zipf_s": ZIPF_S,
                "key_space": KEY_SPACE, "partitions": PARTITIONS,
                "partition_cap_frac": PARTITION_CAP_FRAC, "shard_cap_frac": SHARD_CAP_FRAC,
                "gate_load": GATE_LOAD, "gate_timeout_s": GATE_TIMEOUT_S,
                "loadgen_cpus": LOADGEN_CPUS,
                "source": ENV.get("SOURCE_REV", "unknown")}
    with open(os.path.join(OUT_DIR, "runs.json"), "w") as f:
        json.dump({"settings": settings, "capacities": caps, "calibration": cal, "runs": runs}, f, indent=1)
    log(f"wrote {OUT_DIR}/runs.json")


main()
