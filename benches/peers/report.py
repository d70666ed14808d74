#!/usr/bin/env python3
"""Bookkeeping and the report of benches/peers/run.sh (python3 standard library only).

Subcommands:
  jsonl FILE k=v k:=json ...   append one JSON object to FILE (strings with =, raw JSON with :=)
  env FILE k=v ...             write the run's settings plus versions and machine facts
  env-finish FILE k=v ...      add keys to an existing env file
  g5-rate RUNS                 half the median NATS msgs/s of G1 (empty when there is none)
  render OUT_DIR DOC_DIR       read OUT_DIR (env.json, runs.jsonl, gates.jsonl, runs/*.json) and
                               write DOC_DIR/peers.md and DOC_DIR/peers.json
"""

import json
import os
import platform
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the repository free of __pycache__

from peers_model import WORKLOADS, goals, ratios, summarize_runs  # noqa: E402
from peers_markdown import render_markdown  # noqa: E402


def parse_pairs(args):
    """k=v gives a string, k:=v parses v as JSON (empty means null)."""
    out = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise SystemExit(f"report.py: expected key=value, got {arg!r}")
        if key.endswith(":"):
            key = key[:-1]
            out[key] = json.loads(value) if value.strip() else None
        else:
            out[key] = value
    return out


def run_text(cmd):
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    return (done.stdout or done.stderr).strip()


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def machine_facts():
    cpuinfo = read_text("/proc/cpuinfo") or ""
    model = next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines()
                  if l.startswith("model name")), None)
    meminfo = read_text("/proc/meminfo") or ""
    mem = re.search(r"MemTotal:\s+(\d+) kB", meminfo)
    return {
        "cpu_model": model,
        "cpus_online": os.cpu_count(),
        "kernel": platform.release(),
        "memory_bytes": int(mem.group(1)) * 1024 if mem else None,
        "hostname": platform.node(),
        "filesystem_of_results": run_text(["df", "-hT", "/tmp"]).splitlines()[-1:],
        "perf": run_text(["perf", "--version"]),
        "python": platform.python_version(),
    }


def versions(env):
    repo = env.get("repo", ".")
    kafka = None
    cp = env.get("kafka_classpath") or ""
    if cp:
        jars = [f for f in os.listdir(cp.rstrip("*").rstrip("/")) if f.startswith("kafka_2.13-")]
        kafka = jars[0][len("kafka_2.13-"):-len(".jar")] if jars else None
    dirty = run_text(["git", "-C", repo, "status", "--porcelain", "--", "engine", "storage",
                      "net", "loadgen", "analytics"])
    return {
        "sprawl_commit": run_text(["git", "-C", repo, "rev-parse", "HEAD"]),
        "sprawl_sources_modified_since_commit": bool(dirty) and not dirty.startswith("unavailable"),
        "nats_server": run_text(["nats-server", "--version"]),
        "redis_server": run_text(["redis-server", "--version"]),
        "kafka": kafka,
        "java": run_text(["java", "-version"]).splitlines()[0] if kafka else None,
        "rustc": run_text(["rustc", "--version"]),
    }


def cmd_env(path, args):
    env = parse_pairs(args)
    env["versions"] = versions(env)
    env["machine"] = machine_facts()
    with open(path, "w", encoding="utf-8") as f:
        json.dump(env, f, indent=2)


def cmd_env_finish(path, args):
    with open(path, encoding="utf-8") as f:
        env = json.load(f)
    env.update(parse_pairs(args))
    with open(path, "w", encoding="utf-8") as f:
        json.dump(env, f, indent=2)


def load_jsonl(path):
    rows = []
    text = read_text(path) or ""
    for line in text.splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def cmd_g5_rate(runs_path):
    runs = summarize_runs(load_jsonl(runs_path))
    rates = sorted(r["msgs_per_s"] for r in runs
                   if r["workload"] == "g1" and r["system"] == "nats" and r["ok"])
    if rates:
        mid = len(rates) // 2
        median = rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2
        print(int(median * 0.5))


def cmd_render(out_dir, doc_dir):
    with open(os.path.join(out_dir, "env.json"), encoding="utf-8") as f:
        env = json.load(f)
    runs = summarize_runs(load_jsonl(os.path.join(out_dir, "runs.jsonl")))
    gates = load_jsonl(os.path.join(out_dir, "gates.jsonl"))
    # The Sprawl version comes from the handshake recorded by loadgen.
    for r in runs:
        if r["system"].startswith("sprawl") and r.get("server_version"):
            env["versions"]["sprawl_handshake"] = r["server_version"]
            break
    for r in runs:
        if r.get("loadgen_version"):
            env["versions"]["loadgen"] = r["loadgen_version"]
            env["versions"]["loadgen_build"] = r.get("loadgen_build")
            break
    table = ratios(runs)
    goal_rows = goals(table, runs, env)
    report = {
        "about": "Sprawl side by side with peers on one box (issue 4 item 4); "
                 "generated by benches/peers/report.py from the run in results_dir",
        "results_dir": out_dir,
        "settings": {k: v for k, v in env.items() if k not in ("versions", "machine")},
        "versions": env["versions"],
        "machine": env["machine"],
        "workloads": WORKLOADS,
        "quiet_gate": gates,
        "runs": runs,
        "ratios": table,
        "goals": goal_rows,
    }
    os.makedirs(doc_dir, exist_ok=True)
    with open(os.path.join(doc_dir, "peers.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    md_path = os.path.join(doc_dir, "peers.md")
    previous = read_text(md_path)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(render_markdown(report, previous))


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, rest = argv[1], argv[2:]
    if cmd == "jsonl" and rest:
        with open(rest[0], "a", encoding="utf-8") as f:
            f.write(json.dumps(parse_pairs(rest[1:])) + "\n")
    elif cmd == "env" and rest:
        cmd_env(rest[0], rest[1:])
    elif cmd == "env-finish" and rest:
        cmd_env_finish(rest[0], rest[1:])
    elif cmd == "g5-rate" and len(rest) == 1:
        cmd_g5_rate(rest[0])
    elif cmd == "render" and len(rest) == 2:
        cmd_render(rest[0], rest[1])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
