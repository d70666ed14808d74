#!/usr/bin/env python3
"""Tests of the peer report: pairing, ratios, goal verdicts and the Markdown (python3 -m unittest).

Run from anywhere: `python3 benches/peers/test_report.py`.
"""

import json
import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peers_markdown import ANALYSIS_BEGIN, ANALYSIS_END, render_markdown  # noqa: E402
from peers_model import goals, ratios, summarize_runs  # noqa: E402


def loadgen_report(msgs, p50=100, p99=1000, cpu_per_gb=10.0, consumed=0, stored=None):
    lat = {"count": 1000, "min_us": 1, "mean_us": 1.0, "p50_us": p50, "p90_us": p50,
           "p99_us": p99, "p99_9_us": p99, "p99_99_us": p99, "max_us": p99}
    return {
        "loadgen_version": "0.1.0", "loadgen_build": {"profile": "release"},
        "machine": {"pressure_cpu": "some avg10=1.00 avg60=2.00 avg300=0 total=0",
                    "pressure_io": None, "load_average_1m": 0.5},
        "server": {"version": "sprawl 0.1.0", "process": {"cpu_s": 1.0,
                                                          "cpu_s_per_gb": cpu_per_gb}},
        "results": {
            "measured_s": 5.0,
            "produce": {"msgs_per_s": msgs, "mb_per_s": msgs / 1000, "latency_us": lat},
            "consume": {"msgs_per_s": consumed, "mb_per_s": consumed / 1000},
            "totals_including_warmup": {"records_failed": 0, "records_unsent": 0,
                                        "records_acked": 10, "records_consumed": consumed * 2},
            "stored_records_after_run": stored, "errors": [], "first_refused_batch": None,
        },
    }


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.rows = []

    def tearDown(self):
        self.dir.cleanup()

    def add(self, workload, rep, system, report, phase="measure", exit_code=0):
        path = os.path.join(self.dir.name, f"{workload}-{rep}-{system}-{phase}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(report, f)
        self.rows.append({"workload": workload, "rep": rep, "system": system, "phase": phase,
                          "report": path, "loadgen_exit": exit_code, "loadgen_cmd": "loadgen",
                          "server_cmd": "server", "server_cpu_s_harness": "2.0"})

    def test_ratios_pair_repetitions_and_report_median_and_worst(self):
        for rep, (s, n) in enumerate([(600, 100), (400, 100), (900, 100)], start=1):
            self.add("g1", rep, "sprawl-d1", loadgen_report(s, p99=100, cpu_per_gb=2.0))
            self.add("g1", rep, "nats", loadgen_report(n, p99=1000, cpu_per_gb=10.0))
        table = ratios(summarize_runs(self.rows))
        rate = next(t for t in table if t["metric"] == "msgs_per_s" and t["peer"] == "nats")
        self.assertEqual(rate["median"], 6.0)
        self.assertEqual(rate["worst"], 4.0)
        self.assertEqual(rate["reps_paired"], 3)
        cpu = next(t for t in table if t["metric"] == "cpu_s_per_gb")
        self.assertEqual(cpu["median"], 0.2)
        env = {"workloads": "g1", "kafka_classpath": "", "kafka_note": "no kafka"}
        verdict = {g["goal"]: g for g in goals(table, summarize_runs(self.rows), env)}
        self.assertEqual(verdict["G1"]["status"], "met")
        self.assertFalse(verdict["G1"]["checks"][0]["worst_meets"])
        self.assertEqual(verdict["G7"]["status"], "met where measured (kafka-d1 not measured)")
        self.assertEqual(verdict["G8"]["status"], "not measured")
        self.assertEqual(verdict["G8"]["checks"][0]["why"], "no kafka")
        self.assertEqual(verdict["G4"]["status"], "not measured")

    def test_failed_run_is_not_paired_and_goal_is_missed_on_median(self):
        self.add("g4", 1, "sprawl-d1", loadgen_report(10, p50=60, p99=200))
        self.add("g4", 1, "nats", loadgen_report(10, p50=70, p99=170))
        self.add("g4", 2, "sprawl-d1", loadgen_report(10, p50=10, p99=20), exit_code=1)
        self.add("g4", 2, "nats", loadgen_report(10, p50=70, p99=170))
        runs = summarize_runs(self.rows)
        table = ratios(runs)
        p50 = next(t for t in table if t["metric"] == "p50_us")
        self.assertEqual(p50["reps_paired"], 1)
        verdict = {g["goal"]: g for g in goals(table, runs, {"workloads": "g4"})}
        self.assertEqual(verdict["G4"]["status"], "missed")

    def test_replay_that_drains_the_log_is_flagged(self):
        self.add("g6", 1, "sprawl-d1", loadgen_report(0, consumed=500, stored=1000), "replay")
        run = summarize_runs(self.rows)[0]
        self.assertTrue(run["drained_log"])
        # 2 CPU-s over 1000 records of 1 KiB.
        self.assertEqual(run["cpu_s_per_gb_consumed"], round(2.0 / (1000 * 1024 / 1e9), 3))
        # NATS not drained, Sprawl drained: Sprawl's rate is a floor, so is the ratio.
        self.add("g6", 1, "nats", loadgen_report(0, consumed=250, stored=10**6), "replay")
        ratio = ratios(summarize_runs(self.rows))[0]
        self.assertEqual(ratio["per_rep"][0]["ratio"], 2.0)
        self.assertEqual(ratio["per_rep"][0]["bound"], "lower bound")

    def test_markdown_keeps_the_hand_written_analysis(self):
        self.add("g1", 1, "sprawl-d1", loadgen_report(500))
        self.add("g1", 1, "nats", loadgen_report(100))
        runs = summarize_runs(self.rows)
        table = ratios(runs)
        report = {"settings": {"workloads": "g1", "reps": 1}, "results_dir": self.dir.name,
                  "versions": {}, "machine": {}, "quiet_gate": [], "runs": runs,
                  "ratios": table, "goals": goals(table, runs, {"workloads": "g1"})}
        previous = f"old\n{ANALYSIS_BEGIN}\nthe shard is the limit\n{ANALYSIS_END}\nold\n"
        md = render_markdown(report, previous)
        self.assertIn("the shard is the limit", md)
        self.assertIn("| G1 |", md)
        self.assertIn("5.00x", md)
        self.assertEqual(md.count(ANALYSIS_BEGIN), 1)


if __name__ == "__main__":
    unittest.main()
