//! The final table and the JSON report (configuration, command line, machine, versions, results).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::config::{Config, Pace};
use crate::hist::LatencySummary;
use crate::rng::{KeyDist, SizeDist};
use crate::run::RunResult;

/// Facts about the machine the run happened on (Linux `/proc`; fields are `null` elsewhere).
pub fn machine_facts() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let cpu_model = read("/proc/cpuinfo").and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    });
    let memory_bytes = read("/proc/meminfo").and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    let load_average = read("/proc/loadavg").and_then(|s| {
        s.split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
    });
    json!({
        "cpu_model": cpu_model,
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "kernel": read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()),
        "memory_bytes": memory_bytes,
        "load_average_1m": load_average,
        "pressure_cpu": read("/proc/pressure/cpu"),
        "pressure_io": read("/proc/pressure/io"),
        "hostname": read("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()),
    })
}

pub fn config_json(c: &Config) -> Value {
    let keys = match &c.keys {
        KeyDist::None => json!({"kind": "none"}),
        KeyDist::Uniform { key_space } => json!({"kind": "uniform", "key_space": key_space}),
        KeyDist::Zipf { key_space, s } => json!({"kind": "zipf", "key_space": key_space, "s": s}),
    };
    let size = match c.size {
        SizeDist::Fixed { bytes } => json!({"kind": "fixed", "bytes": bytes}),
        SizeDist::Uniform {
            min_bytes,
            max_bytes,
        } => json!({"kind": "uniform", "min_bytes": min_bytes, "max_bytes": max_bytes}),
    };
    let pace = match c.pace {
        Pace::Closed => json!({"kind": "closed", "window": c.window}),
        Pace::Open { rate_per_s } => {
            json!({"kind": "open", "rate_per_s": rate_per_s, "window_max": c.window})
        }
    };
    json!({
        "target": c.target.name(),
        "broker": c.broker,
        "topic": c.topic,
        "partitions": c.partitions,
        "create_topic": c.create_topic,
        "replication_factor": c.replication_factor,
        "min_insync": c.min_insync,
        "producers": c.producers,
        "consumers": c.consumers,
        "consume_from": format!("{:?}", c.consume_from).to_lowercase(),
        "keys": keys,
        "size": size,
        "pace": pace,
        "batch_records": c.batch,
        "warmup_ms": c.warmup_ms,
        "duration_ms": c.duration_ms,
        "acks": c.acks.name(),
        "seed": c.seed,
        "busy_poll": c.busy_poll,
    })
}

/// Throughput of the measured window.
pub struct Rates {
    pub produce_msgs_per_s: f64,
    pub produce_mb_per_s: f64,
    pub consume_msgs_per_s: f64,
    pub consume_mb_per_s: f64,
}

impl Rates {
    pub fn of(r: &RunResult) -> Self {
        let s = r.measured_s.max(1e-9);
        Rates {
            produce_msgs_per_s: r.measured_records_acked as f64 / s,
            produce_mb_per_s: r.measured_bytes_acked as f64 / s / 1e6,
            consume_msgs_per_s: r.measured_records_consumed as f64 / s,
            consume_mb_per_s: r.measured_bytes_consumed as f64 / s / 1e6,
        }
    }
}

/// Inputs of the report that are not part of the run itself.
pub struct ReportContext<'a> {
    pub command_line: &'a [String],
    pub server_version: Option<String>,
    pub stored_records: Option<u64>,
    pub spawned_node: Option<Value>,
    /// CPU time and memory of the server process over the run (`--server-pid`, `--spawn`).
    pub server_process: Option<Value>,
}

pub fn report_json(config: &Config, result: &RunResult, ctx: &ReportContext<'_>) -> Value {
    let rates = Rates::of(result);
    let timeline: Vec<Value> = result
        .timeline
        .iter()
        .map(|p| {
            json!({
                "at_s": (p.at_s * 1000.0).round() / 1000.0,
                "acked_per_s": p.acked_per_s.round(),
                "produce": p.produce.to_json(),
                "end_to_end": p.end_to_end.to_json(),
            })
        })
        .collect();
    json!({
        "loadgen_version": env!("CARGO_PKG_VERSION"),
        "loadgen_build": {
            "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
            "rustc": env!("LOADGEN_RUSTC_VERSION"),
        },
        "command_line": ctx.command_line,
        "config": config_json(config),
        "machine": machine_facts(),
        "server": {
            "version": ctx.server_version,
            "spawned": ctx.spawned_node,
            "process": ctx.server_process,
        },
        "started_unix_ms": result.schedule.start_ns / 1_000_000,
        "results": {
            "measured_s": result.measured_s,
            "produce": {
                "records_acked": result.measured_records_acked,
                "bytes_acked": result.measured_bytes_acked,
                "msgs_per_s": rates.produce_msgs_per_s.round(),
                "mb_per_s": (rates.produce_mb_per_s * 1000.0).round() / 1000.0,
                "latency_us": LatencySummary::of(&result.produce).to_json(),
            },
            "consume": {
                "records": result.measured_records_consumed,
                "bytes": result.measured_bytes_consumed,
                "msgs_per_s": rates.consume_msgs_per_s.round(),
                "mb_per_s": (rates.consume_mb_per_s * 1000.0).round() / 1000.0,
                "end_to_end_latency_us": LatencySummary::of(&result.end_to_end).to_json(),
            },
            "totals_including_warmup": {
                "records_sent": result.records_sent,
                "records_acked": result.records_acked,
                "bytes_acked": result.bytes_acked,
                "records_failed": result.records_failed,
                "records_unsent": result.records_unsent,
                "batches_resent": result.batches_resent,
                "batches_maybe_stored_twice": result.batches_maybe_twice,
                "records_consumed": result.records_consumed,
                "latency_samples_clipped": result.latency_clipped,
            },
            "stored_records_after_run": ctx.stored_records,
            "errors": result.thread_errors,
            "first_refused_batch": result.first_refusal,
            "timeline": timeline,
        },
    })
}

/// The human table printed at the end.
pub fn table(config: &Config, result: &RunResult) -> String {
    let rates = Rates::of(result);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} | {} partition(s), {} producer(s), {} consumer(s), batch {}, acks {} | {:.1} s measured",
        config.target.name(),
        config.broker,
        config.partitions,
        config.producers,
        config.consumers,
        config.batch,
        config.acks.name(),
        result.measured_s
    );
    let _ = writeln!(
        out,
        "{:<14} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "latency (us)", "msgs/s", "MB/s", "p50", "p99", "p99.9", "p99.99", "max", "errors"
    );
    let rows = [
        (
            "produce->ack",
            rates.produce_msgs_per_s,
            rates.produce_mb_per_s,
            LatencySummary::of(&result.produce),
            result.records_failed,
        ),
        (
            "end-to-end",
            rates.consume_msgs_per_s,
            rates.consume_mb_per_s,
            LatencySummary::of(&result.end_to_end),
            0,
        ),
    ];
    for (name, msgs, mb, l, errors) in rows {
        if name == "end-to-end" && config.consumers == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "{name:<14} {msgs:>12.0} {mb:>9.2} {:>9} {:>9} {:>9} {:>9} {:>9} {errors:>8}",
            l.p50_us, l.p99_us, l.p999_us, l.p9999_us, l.max_us
        );
    }
    for e in &result.thread_errors {
        let _ = writeln!(out, "error: {e}");
    }
    if result.records_unsent > 0 {
        let _ = writeln!(
            out,
            "open loop: the target fell behind; {} scheduled records were never sent",
            result.records_unsent
        );
    }
    if result.batches_resent > 0 {
        let _ = writeln!(
            out,
            "resent {} time(s) after NOT_LEADER / NOT_ENOUGH_REPLICAS / a broken connection; {} batch(es) may be stored twice",
            result.batches_resent, result.batches_maybe_twice
        );
    }
    if let Some(e) = &result.first_refusal {
        let _ = writeln!(out, "first refused batch: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Args;
    use crate::hist::{new_histogram, record_latency};
    use crate::workers::Schedule;
    use argh::FromArgs;

    fn result() -> RunResult {
        let mut produce = new_histogram();
        for i in 1..=1000u64 {
            record_latency(&mut produce, 0, i * 1_000, 1);
        }
        RunResult {
            schedule: Schedule::new(1_700_000_000_000_000_000, 500, 2_000),
            measured_s: 2.0,
            produce,
            end_to_end: new_histogram(),
            records_sent: 1_200,
            records_acked: 1_200,
            bytes_acked: 1_228_800,
            records_failed: 0,
            records_unsent: 0,
            batches_resent: 0,
            batches_maybe_twice: 0,
            records_consumed: 0,
            measured_records_acked: 1_000,
            measured_bytes_acked: 1_024_000,
            measured_records_consumed: 0,
            measured_bytes_consumed: 0,
            latency_clipped: 0,
            timeline: Vec::new(),
            thread_errors: Vec::new(),
            first_refusal: None,
            ledgers: Vec::new(),
        }
    }

    #[test]
    fn report_carries_config_command_line_and_results() {
        let args =
            Args::from_args(&["loadgen"], &["--rate", "500", "--duration-secs", "2"]).unwrap();
        let config = args.to_config().unwrap();
        let command_line = vec!["loadgen".to_owned(), "--rate".to_owned(), "500".to_owned()];
        let ctx = ReportContext {
            command_line: &command_line,
            server_version: Some("0.1.0".into()),
            stored_records: Some(1_200),
            spawned_node: None,
            server_process: None,
        };
        let r = report_json(&config, &result(), &ctx);
        assert_eq!(r["command_line"][2], "500");
        assert_eq!(
            r["config"]["pace"],
            serde_json::json!({"kind": "open", "rate_per_s": 500.0, "window_max": 64})
        );
        assert_eq!(r["config"]["size"]["bytes"], 1024);
        assert_eq!(r["server"]["version"], "0.1.0");
        assert!(r["loadgen_build"]["rustc"]
            .as_str()
            .unwrap()
            .starts_with("rustc "));
        assert_eq!(r["started_unix_ms"], 1_700_000_000_000u64);
        let produce = &r["results"]["produce"];
        assert_eq!(produce["msgs_per_s"], 500.0);
        assert_eq!(produce["mb_per_s"], 0.512);
        assert_eq!(produce["latency_us"]["count"], 1000);
        assert_eq!(produce["latency_us"]["p50_us"], 500);
        assert_eq!(produce["latency_us"]["max_us"], 1000);
        assert_eq!(r["results"]["stored_records_after_run"], 1200);
        assert!(r["machine"].get("kernel").is_some());
        // The table shows the same figures.
        let t = table(&config, &result());
        assert!(
            t.contains("produce->ack") && t.contains("500") && !t.contains("end-to-end"),
            "{t}"
        );
    }
}
