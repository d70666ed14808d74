"""What the peer benchmark measured: per-run summaries, paired ratios and the goals G1..G8.

A ratio is always Sprawl's figure over the peer's, paired within one repetition (the runs of a
repetition follow one quiet gate, back to back). The median and the worst of those per-repetition
ratios are reported; "worst" is the least favourable to Sprawl.
"""

import json
import os

# Workload id -> what it is. `systems` lists labels as run.sh names them: sprawl-d1 is Sprawl
# with acks=leader (D1), sprawl-d2 with acks=all (D2); redis-d1 runs appendfsync everysec,
# redis-d2 appendfsync always; kafka-d1 acks=1, kafka-d2 acks=-1 with log.flush.interval.messages=1.
WORKLOADS = {
    "g1": {"title": "produce 1 KiB, D1, closed loop", "size_bytes": 1024,
           "systems": ["sprawl-d1", "nats", "kafka-d1"]},
    "g2": {"title": "produce 128 B, D1, closed loop", "size_bytes": 128,
           "systems": ["sprawl-d1", "nats", "redis-d1"]},
    "g3": {"title": "produce 1 KiB, D2 (fdatasync before ack), closed loop", "size_bytes": 1024,
           "systems": ["sprawl-d2", "redis-d2", "kafka-d2"]},
    "g4": {"title": "unloaded latency, 1 KiB, D1, window 1, client spinning (--busy-poll)",
           "size_bytes": 1024, "systems": ["sprawl-d1", "nats"]},
    "s4": {"title": "G4 with a sleeping client: window 1, 1 KiB, D1, loadgen blocks in read()",
           "size_bytes": 1024, "systems": ["sprawl-d1", "nats"]},
    "g5": {"title": "open loop at half of NATS's G1 rate, 1 KiB, D1", "size_bytes": 1024,
           "systems": ["sprawl-d1", "nats"]},
    "g6": {"title": "consume: replay of a 1 KiB log from the start", "size_bytes": 1024,
           "systems": ["sprawl-d1", "nats"]},
    "u1": {"title": "G1 unpinned: produce 1 KiB, D1, no taskset on either side",
           "size_bytes": 1024, "systems": ["sprawl-d1", "nats"]},
    "b2": {"title": "G2 with client batches: produce 128 B, D1, 16 records per batch, "
                    "16 batches in flight", "size_bytes": 128,
           "systems": ["sprawl-d1", "nats", "redis-d1"]},
}

# metric -> (how to read it from a run summary, which direction is better)
METRICS = {
    "msgs_per_s": (lambda r: r.get("msgs_per_s"), "higher"),
    "consume_msgs_per_s": (lambda r: r.get("consume_msgs_per_s"), "higher"),
    "p50_us": (lambda r: (r.get("latency") or {}).get("p50_us"), "lower"),
    "p99_us": (lambda r: (r.get("latency") or {}).get("p99_us"), "lower"),
    "p99_99_us": (lambda r: (r.get("latency") or {}).get("p99_99_us"), "lower"),
    "cpu_s_per_gb": (lambda r: r.get("cpu_s_per_gb"), "lower"),
}

# Which ratios each workload reports.
WORKLOAD_METRICS = {
    "g1": ["msgs_per_s", "p99_us", "cpu_s_per_gb"],
    "g2": ["msgs_per_s", "p99_us", "cpu_s_per_gb"],
    "g3": ["msgs_per_s", "p99_us", "cpu_s_per_gb"],
    "g4": ["p50_us", "p99_us", "msgs_per_s"],
    "s4": ["p50_us", "p99_us", "msgs_per_s"],
    "g5": ["p99_us", "p99_99_us", "p50_us"],
    "g6": ["consume_msgs_per_s"],
    "u1": ["msgs_per_s", "p99_us", "cpu_s_per_gb"],
    "b2": ["msgs_per_s", "p99_us", "cpu_s_per_gb"],
}

# Goal -> checks (workload, peer, metric, comparison, threshold) and the wording.
GOALS = [
    ("G1", "produce 1 KiB, D1: >= 5x NATS JetStream msgs/s",
     [("g1", "nats", "msgs_per_s", ">=", 5.0)]),
    ("G2", "produce 128 B, D1: >= 10x NATS JetStream and >= 5x Redis XADD (pipelined)",
     [("g2", "nats", "msgs_per_s", ">=", 10.0), ("g2", "redis-d1", "msgs_per_s", ">=", 5.0)]),
    ("G3", "produce 1 KiB, D2: >= 3x Redis appendfsync always; >= 2x Kafka flushing every batch",
     [("g3", "redis-d2", "msgs_per_s", ">=", 3.0), ("g3", "kafka-d2", "msgs_per_s", ">=", 2.0)]),
    ("G4", "unloaded latency 1 KiB, window 1: p50 and p99 <= 0.5x NATS JetStream",
     [("g4", "nats", "p50_us", "<=", 0.5), ("g4", "nats", "p99_us", "<=", 0.5)]),
    ("G5", "open loop at 50% of NATS's max rate: p99 and p99.99 <= 0.25x NATS",
     [("g5", "nats", "p99_us", "<=", 0.25), ("g5", "nats", "p99_99_us", "<=", 0.25)]),
    ("G6", "consume (replay), 1 KiB: >= 3x NATS JetStream consumer msgs/s",
     [("g6", "nats", "consume_msgs_per_s", ">=", 3.0)]),
    ("G7", "server CPU-seconds per GB produced (1 KiB, D1): <= 0.3x NATS, <= 0.5x Kafka",
     [("g1", "nats", "cpu_s_per_gb", "<=", 0.3), ("g1", "kafka-d1", "cpu_s_per_gb", "<=", 0.5)]),
    ("G8", "Kafka, 1 KiB, same acks (acks=1 / leader): >= 2x msgs/s and p99 <= 0.2x",
     [("g1", "kafka-d1", "msgs_per_s", ">=", 2.0), ("g1", "kafka-d1", "p99_us", "<=", 0.2)]),
]


def _load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _num(v):
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def summarize_run(row):
    """One line of runs.jsonl plus its loadgen report -> the figures the report uses."""
    out = {k: row.get(k) for k in ("workload", "rep", "system", "phase", "loadgen_cmd",
                                   "server_cmd", "utc", "loadavg_before", "pressure_cpu_before",
                                   "pressure_io_before", "loadgen_exit")}
    problems = []
    if row.get("error"):
        problems.append(row["error"])
    rep = _load(row["report"]) if row.get("report") and os.path.exists(row["report"]) else None
    if rep is None and not problems:
        problems.append(f"no loadgen report (loadgen exit {row.get('loadgen_exit')})")
    if rep is not None:
        res = rep["results"]
        totals = res["totals_including_warmup"]
        process = (rep.get("server") or {}).get("process") or {}
        out.update({
            "server_version": (rep.get("server") or {}).get("version"),
            "loadgen_version": rep.get("loadgen_version"),
            "loadgen_build": rep.get("loadgen_build"),
            "measured_s": res.get("measured_s"),
            "msgs_per_s": res["produce"]["msgs_per_s"],
            "mb_per_s": res["produce"]["mb_per_s"],
            "latency": res["produce"]["latency_us"],
            "consume_msgs_per_s": res["consume"]["msgs_per_s"],
            "consume_mb_per_s": res["consume"]["mb_per_s"],
            "records_failed": totals["records_failed"],
            "records_unsent": totals["records_unsent"],
            "records_acked_total": totals["records_acked"],
            "records_consumed_total": totals["records_consumed"],
            "stored_records": res.get("stored_records_after_run"),
            "errors": res.get("errors") or [],
            "first_refused_batch": res.get("first_refused_batch"),
            "cpu_s": process.get("cpu_s"),
            "cpu_s_per_gb": process.get("cpu_s_per_gb"),
            "rss_bytes": process.get("rss_bytes"),
            "rss_peak_bytes": process.get("rss_peak_bytes"),
            "load1_at_report": rep["machine"].get("load_average_1m"),
        })
        if row.get("loadgen_exit") not in (0, None):
            problems.append(f"loadgen exit {row.get('loadgen_exit')}")
        problems.extend(out["errors"])
        if out["records_failed"]:
            problems.append(f"{out['records_failed']} records failed")
        # Who set the pace: CPU-seconds per wall second of the loadgen process (pinned to one
        # core, so ~1.0 means the generator was saturated) and of the server over the same run.
        wall = _num(row.get("loadgen_wall_s"))
        lg_cpu, srv_cpu = _num(row.get("loadgen_cpu_s")), _num(row.get("server_cpu_s_harness"))
        out["loadgen_cpu_per_wall_s"] = round(lg_cpu / wall, 2) if wall and lg_cpu is not None \
            else None
        out["server_cpu_per_wall_s"] = round(srv_cpu / wall, 2) if wall and srv_cpu is not None \
            else None
        out["node_stats"] = _node_stats(row["report"])
        if out.get("phase") == "replay":
            size = WORKLOADS.get(row["workload"], {}).get("size_bytes", 0)
            consumed = out["records_consumed_total"] or 0
            cpu = _num(row.get("server_cpu_s_harness"))
            out["cpu_s_harness"] = cpu
            out["cpu_s_per_gb_consumed"] = (round(cpu / (consumed * size / 1e9), 3)
                                            if cpu is not None and consumed and size else None)
            stored = out["stored_records"]
            # A replay that read the whole log before the window ended under-reports its rate.
            out["drained_log"] = bool(stored) and consumed >= stored
    out["problems"] = problems
    out["ok"] = not problems
    return out


def _node_stats(report_path):
    """Sprawl's own /stats after the run (run.sh saves it next to the logs), or None."""
    base = os.path.basename(report_path)[:-len(".json")]
    path = os.path.join(os.path.dirname(os.path.dirname(report_path)), "logs",
                        base + ".stats.json")
    stats = _load(path) if os.path.exists(path) else None
    if not isinstance(stats, dict) or "ops" not in stats:
        return None
    keep = ("count", "latency_us_p50", "latency_us_p99", "latency_us_p9999", "latency_us_max")
    return {op: {k: v for k, v in stats["ops"].get(op, {}).items() if k in keep}
            for op in ("produce", "fsync", "fetch")}


def summarize_runs(rows):
    return [summarize_run(r) for r in rows]


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def _measured(r):
    return r["ok"] and r.get("phase") in ("measure", "replay")


def ratios(runs):
    """Per workload, peer and metric: Sprawl / peer per repetition, median and worst."""
    table = []
    for wl, spec in WORKLOADS.items():
        sprawl = next((s for s in spec["systems"] if s.startswith("sprawl")), None)
        by_rep = {}
        for r in runs:
            if r["workload"] == wl and _measured(r):
                by_rep.setdefault(r["rep"], {})[r["system"]] = r
        for peer in spec["systems"]:
            if peer == sprawl:
                continue
            for metric in WORKLOAD_METRICS[wl]:
                get, better = METRICS[metric]
                per_rep = []
                for rep in sorted(by_rep):
                    a, b = by_rep[rep].get(sprawl), by_rep[rep].get(peer)
                    if not a or not b:
                        continue
                    va, vb = _num(get(a)), _num(get(b))
                    if va is None or vb is None or vb == 0:
                        continue
                    entry = {"rep": rep, "sprawl": va, "peer": vb, "ratio": round(va / vb, 3)}
                    # A drained replay under-reports its rate: the ratio is then only a bound.
                    bound = {(True, False): "lower bound", (False, True): "upper bound",
                             (True, True): "both drained"}.get(
                                 (bool(a.get("drained_log")), bool(b.get("drained_log"))))
                    if bound:
                        entry["bound"] = bound
                    per_rep.append(entry)
                if not per_rep:
                    continue
                rs = [p["ratio"] for p in per_rep]
                table.append({
                    "workload": wl, "sprawl": sprawl, "peer": peer, "metric": metric,
                    "better": better, "per_rep": per_rep, "reps_paired": len(per_rep),
                    "median": round(_median(rs), 3),
                    "worst": min(rs) if better == "higher" else max(rs),
                })
    return table


def _meets(value, op, threshold):
    return value >= threshold if op == ">=" else value <= threshold


def goals(table, runs, env):
    rows = []
    for goal, text, checks in GOALS:
        parts = []
        for wl, peer, metric, op, threshold in checks:
            found = next((t for t in table if t["workload"] == wl and t["peer"] == peer
                          and t["metric"] == metric), None)
            part = {"workload": wl, "peer": peer, "metric": metric, "goal": f"{op} {threshold}"}
            if found is None:
                part["status"] = "not measured"
                part["why"] = _why_not_measured(wl, peer, runs, env)
            else:
                bounds = [f"r{p['rep']}: {p['bound']}" for p in found["per_rep"]
                          if p.get("bound")]
                if bounds:
                    part["bounds"] = bounds
                part.update({"median": found["median"], "worst": found["worst"],
                             "reps_paired": found["reps_paired"],
                             "status": "met" if _meets(found["median"], op, threshold)
                             else "missed",
                             "worst_meets": _meets(found["worst"], op, threshold)})
            parts.append(part)
        measured = [p for p in parts if p["status"] != "not measured"]
        if not measured:
            status = "not measured"
        elif any(p["status"] == "missed" for p in measured):
            status = "missed"
        elif len(measured) < len(parts):
            status = "met where measured (" + ", ".join(
                f"{p['peer']} not measured" for p in parts if p["status"] == "not measured") + ")"
        else:
            status = "met"
        rows.append({"goal": goal, "text": text, "status": status, "checks": parts})
    return rows


def _why_not_measured(wl, peer, runs, env):
    if peer.startswith("kafka") and not env.get("kafka_classpath"):
        return env.get("kafka_note") or "Kafka not available"
    if wl not in (env.get("workloads") or "").split():
        return f"workload {wl} was not part of this run"
    failed = [r for r in runs if r["workload"] == wl and not r["ok"]]
    if failed:
        return "; ".join(sorted({f"{r['system']} r{r['rep']}: {', '.join(r['problems'])}"
                                 for r in failed}))[:600]
    return "no paired repetition with both systems"
