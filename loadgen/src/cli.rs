//! The `loadgen` command: flags -> (optional local node) -> run -> table, report, log, plots.

use std::io::Write;

use serde_json::json;

use crate::config::{Args, Config, TargetKind};
use crate::driver::{self, Endpoint, Target};
use crate::procstat::{self, ProcSample};
use crate::report::{report_json, table, ReportContext};
use crate::run::run;
use crate::spawn::{default_binary, SpawnedNode};

/// Runs the command; the error is the message to print.
pub fn main_with_args(args: &Args, command_line: &[String]) -> Result<(), String> {
    if let Some(path) = &args.verify_ledger {
        return crate::verify_cli::check_ledger_file(args, path);
    }
    let mut config = args.to_config().map_err(|e| e.to_string())?;
    if cfg!(debug_assertions) {
        eprintln!("loadgen: this is a debug build; use `cargo build --release -p loadgen` for numbers you quote");
    }
    let node = if args.spawn {
        let binary = args
            .sprawl_bin
            .clone()
            .or_else(default_binary)
            .ok_or("cannot locate this executable's directory; pass --sprawl-bin PATH")?;
        let node = SpawnedNode::start(&binary, args.spawn_shards).map_err(|e| e.to_string())?;
        eprintln!(
            "loadgen: started {} (pid {}) at {} with data in {}",
            binary.display(),
            node.pid().unwrap_or(0),
            node.client_addr,
            node.data_dir.path().display()
        );
        config.broker = if config.target == TargetKind::Http {
            node.http_addr.clone()
        } else {
            node.client_addr.clone()
        };
        Some(node)
    } else {
        None
    };
    let outcome = drive(args, &config, command_line, node.as_ref());
    if let Some(node) = node {
        let pid = node.pid().unwrap_or(0);
        node.stop().map_err(|e| e.to_string())?;
        eprintln!("loadgen: stopped the node (pid {pid}) with SIGTERM");
    }
    outcome
}

fn drive(
    args: &Args,
    config: &Config,
    command_line: &[String],
    node: Option<&SpawnedNode>,
) -> Result<(), String> {
    let endpoint = Endpoint {
        kind: config.target,
        addr: config.broker.clone(),
        topic: config.topic.clone(),
        partitions: config.partitions,
        acks: config.acks,
        window: config.window,
        batch: config.batch,
        value_bytes_max: config.size.max_bytes(),
        replication_factor: config.replication_factor,
        min_insync: config.min_insync,
    };
    driver::conn::set_busy_poll(config.busy_poll);
    let target: Box<dyn Target> = driver::open(endpoint).map_err(|e| e.to_string())?;
    let server_version = target.server_version().map_err(|e| e.to_string())?;
    if config.create_topic {
        target
            .create_topic()
            .map_err(|e| format!("creating topic {}: {e}", config.topic))?;
    }
    let server_pid = args.server_pid.or_else(|| node.and_then(SpawnedNode::pid));
    let before = server_pid.and_then(procstat::sample);
    let result =
        run(config, target.as_ref(), args.hdr_log.as_deref()).map_err(|e| e.to_string())?;
    let after = server_pid.and_then(procstat::sample);
    let server_process = match (server_pid, before, after) {
        (Some(pid), Some(before), Some(after)) => {
            Some(server_usage(pid, &before, &after, result.bytes_acked))
        }
        (Some(pid), _, _) => {
            eprintln!("loadgen: cannot read /proc/{pid}: no server CPU or memory figures");
            None
        }
        _ => None,
    };
    let verdict = crate::verify_cli::after_run(args, config, &result)?;
    let stored_records = match target.stored_records() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("loadgen: cannot count stored records: {e}");
            None
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = write!(stdout, "{}", table(config, &result));
    if let Some(p) = &server_process {
        let _ = writeln!(
            stdout,
            "server pid {}: {:.2} CPU-s, {} CPU-s/GB, RSS {} MiB (peak {} MiB)",
            p["pid"],
            p["cpu_s"].as_f64().unwrap_or(0.0),
            p["cpu_s_per_gb"],
            p["rss_bytes"].as_u64().unwrap_or(0) >> 20,
            p["rss_peak_bytes"].as_u64().unwrap_or(0) >> 20
        );
    }
    if let Some(dir) = &args.plot_dir {
        let title = format!("{} {}", config.target.name(), config.broker);
        let paths = crate::plot::write_plots(
            dir,
            &title,
            &result.produce,
            &result.end_to_end,
            &result.timeline,
        )
        .map_err(|e| format!("writing plots into {}: {e}", dir.display()))?;
        for p in paths {
            let _ = writeln!(stdout, "plot: {}", p.display());
        }
    }
    if let Some(path) = &args.report {
        let spawned_node = node.map(|n| {
            json!({
                "binary": n.binary.display().to_string(),
                "shards": n.shards,
                "client_addr": n.client_addr,
            })
        });
        let ctx = ReportContext {
            command_line,
            server_version: Some(server_version),
            stored_records,
            spawned_node,
            server_process,
        };
        let mut report = report_json(config, &result, &ctx);
        if let Some(v) = &verdict {
            report["verify"] = v.to_json();
        }
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        let _ = writeln!(stdout, "report: {}", path.display());
    }
    if let Some(path) = &args.hdr_log {
        let _ = writeln!(stdout, "hdr log: {}", path.display());
    }
    if matches!(config.target, TargetKind::Sprawl | TargetKind::Http)
        && stored_records.is_some_and(|n| n < result.records_acked)
        && config.acks != crate::config::AckLevel::None
    {
        return Err(format!(
            "the node stores {} records but acknowledged {}",
            stored_records.unwrap_or(0),
            result.records_acked
        ));
    }
    if !result.thread_errors.is_empty() {
        return Err(format!("{} worker(s) failed", result.thread_errors.len()));
    }
    crate::verify_cli::judge(verdict.as_ref())
}

/// The server's CPU time over the run and its memory at the end. CPU-seconds per GB divides by
/// the value bytes acknowledged (warm-up included, like the CPU time).
fn server_usage(
    pid: u32,
    before: &ProcSample,
    after: &ProcSample,
    bytes_acked: u64,
) -> serde_json::Value {
    let cpu_s = (after.cpu_s - before.cpu_s).max(0.0);
    let per_gb =
        (bytes_acked > 0).then(|| (cpu_s / (bytes_acked as f64 / 1e9) * 1000.0).round() / 1000.0);
    json!({
        "pid": pid,
        "cpu_s": (cpu_s * 1000.0).round() / 1000.0,
        "cpu_s_per_gb": per_gb,
        "bytes_acked": bytes_acked,
        "rss_bytes": after.rss_bytes,
        "rss_peak_bytes": after.rss_peak_bytes,
    })
}
