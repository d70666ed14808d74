//! What a run found: the rounds, their ratios (median and worst), and the JSON and Markdown
//! reports (`docs/benchmarks/durable.md` is written from [`markdown`]).

use serde_json::{json, Value};

use super::log::{LogResult, Stop};
use super::probe::{ProbeKind, ProbeResult};
use super::sys::Machine;
use super::Settings;

/// Issue 2's target: log durable throughput / `mmap` probe throughput.
pub const TARGET_RATIO: f64 = 0.60;
const MIB: u64 = 1 << 20;

/// One measurement of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Probe(ProbeKind),
    /// The log with the backlog cap of this index.
    Log(usize),
}

pub struct LogRun {
    pub backlog_bytes_max: u64,
    pub result: LogResult,
    pub machine: Machine,
}

pub struct Round {
    pub order: Vec<Step>,
    pub mmap: (ProbeResult, Machine),
    pub pwrite: (ProbeResult, Machine),
    pub logs: Vec<LogRun>,
}

impl Round {
    pub fn ratio(&self, cap: usize, kind: ProbeKind) -> f64 {
        let probe = match kind {
            ProbeKind::Mmap => &self.mmap.0,
            ProbeKind::Pwrite => &self.pwrite.0,
        };
        self.logs[cap].result.durable_mb_per_s() / probe.durable_mb_per_s()
    }
}

/// Median and worst (lowest) of per-round ratios.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub worst: f64,
}

pub fn summarize(ratios: &[f64]) -> Option<Summary> {
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    Some(Summary {
        median,
        worst: sorted[0],
    })
}

/// The plain-words verdict against `target`.
pub fn verdict(summary: Summary, target: f64) -> &'static str {
    if summary.worst >= target {
        "met in every round"
    } else if summary.median >= target {
        "met on the median, missed in the worst round"
    } else {
        "missed"
    }
}

fn machine_json(m: &Machine) -> Value {
    json!({ "load_1m": m.load_1m, "cpu_some_avg10": m.cpu_some_avg10,
            "io_some_avg10": m.io_some_avg10 })
}

pub fn probe_json((p, m): &(ProbeResult, Machine)) -> Value {
    json!({ "kind": p.kind.name(), "bytes": p.bytes, "timed_s": p.timed_s, "wall_s": p.wall_s,
            "populate_s": p.populate_s, "syncs": p.syncs, "step_ms_max": p.step_ms_max,
            "durable_mb_per_s": p.durable_mb_per_s(), "machine": machine_json(m) })
}

pub fn log_json(run: &LogRun) -> Value {
    let l = &run.result;
    json!({ "backlog_bytes_max": run.backlog_bytes_max, "stop": format!("{:?}", l.stop),
            "elapsed_s": l.elapsed_s, "durable_bytes": l.durable_bytes,
            "appended_bytes": l.appended_bytes, "backlog_bytes": l.backlog_bytes,
            "appends": l.appends, "flushes": l.flushes, "bytes_per_flush": l.bytes_per_flush(),
            "flush_ms_mean": l.flush_ms_mean, "flush_ms_max": l.flush_ms_max,
            "backlog_waits": l.backlog_waits, "appender_minor_faults": l.minor_faults,
            "inline_reserves": l.inline_reserves, "sync_fallbacks": l.sync_fallbacks,
            "prefaults": l.prefaults, "rolls": l.rolls,
            "durable_mb_per_s": l.durable_mb_per_s(), "machine": machine_json(&run.machine) })
}

pub fn order_name(order: &[Step], caps: &[u64]) -> String {
    order
        .iter()
        .map(|s| match s {
            Step::Probe(k) => k.name().to_string(),
            Step::Log(i) => format!("log {}", mib(caps[*i])),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn machine_cell(m: &Machine) -> String {
    format!(
        "{:.1}, {:.0}% / {:.0}%",
        m.load_1m, m.cpu_some_avg10, m.io_some_avg10
    )
}

/// Bytes as MiB, one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MIB as f64)
}

pub fn faults(f: Option<u64>) -> String {
    f.map_or_else(|| "n/a".to_string(), |f| f.to_string())
}

/// The results section of `docs/benchmarks/durable.md`.
pub fn markdown(settings: &Settings, caps: &[u64], fs_type: &str, rounds: &[Round]) -> String {
    let w = settings.workload;
    let cap_list = caps.iter().map(|&c| mib(c)).collect::<Vec<_>>().join(", ");
    let mut out = format!(
        "Settings: {} rounds, {} s per measurement; batches of {} x {} B records ({} B stored per \
         batch); at most {} MiB written per measurement; log measured at appender backlog caps of \
         {cap_list} MiB; directory on {fs_type}.\n\n",
        rounds.len(),
        settings.duration.as_secs_f64(),
        w.records,
        w.value_bytes,
        w.stored_batch_bytes(),
        mib(settings.bytes_max),
    );
    out.push_str("| round | order | probe mmap MB/s | probe pwrite MB/s |");
    for &c in caps {
        out.push_str(&format!(
            " log, cap {} MiB: durable MB/s | / mmap | / pwrite |",
            mib(c)
        ));
    }
    out.push_str(&format!(
        "\n|---|---|---|---|{}\n",
        "---|---|---|".repeat(caps.len())
    ));
    for (i, r) in rounds.iter().enumerate() {
        out.push_str(&format!(
            "| {i} | {} | {:.0} | {:.0} |",
            order_name(&r.order, caps),
            r.mmap.0.durable_mb_per_s(),
            r.pwrite.0.durable_mb_per_s(),
        ));
        for (c, run) in r.logs.iter().enumerate() {
            out.push_str(&format!(
                " {:.0} | {:.2} | {:.2} |",
                run.result.durable_mb_per_s(),
                r.ratio(c, ProbeKind::Mmap),
                r.ratio(c, ProbeKind::Pwrite),
            ));
        }
        out.push('\n');
    }
    out.push_str(
        "\nThe log measurements (throughput = bytes below the durable offset when the \
         measurement stopped / its duration):\n\n| round | cap MiB | stopped by | s | durable MiB \
         | appended MiB | not yet durable at the end, MiB | flushes | mean MiB per flush | flush \
         ms mean / max | backlog waits | appender minor faults | inline reserves | sync segment \
         creations | prefault jobs | rolls | load 1m, cpu / io pressure before |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (i, r) in rounds.iter().enumerate() {
        for run in &r.logs {
            let l = &run.result;
            out.push_str(&format!(
                "| {i} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {:.1} / {:.1} | {} | {} | {} \
                 | {} | {} | {} | {} |\n",
                mib(run.backlog_bytes_max),
                match l.stop {
                    Stop::Deadline => "time",
                    Stop::BytesMax => "--bytes-max",
                },
                l.elapsed_s,
                mib(l.durable_bytes),
                mib(l.appended_bytes),
                mib(l.backlog_bytes),
                l.flushes,
                mib(l.bytes_per_flush() as u64),
                l.flush_ms_mean,
                l.flush_ms_max,
                l.backlog_waits,
                faults(l.minor_faults),
                l.inline_reserves,
                l.sync_fallbacks,
                l.prefaults,
                l.rolls,
                machine_cell(&run.machine),
            ));
        }
    }
    out.push_str(
        "\nThe probes (MB/s = bytes / timed s: the copy or pwrite and the fdatasync of each 1 MiB \
         step; the mmap probe's untimed MADV_POPULATE_WRITE of each step is in the wall time):\n\n\
         | round | probe | MiB | fdatasyncs | timed s | populate s | wall s | slowest step ms | \
         load 1m, cpu / io pressure before |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (i, r) in rounds.iter().enumerate() {
        for (p, m) in [&r.mmap, &r.pwrite] {
            out.push_str(&format!(
                "| {i} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} |\n",
                p.kind.name(),
                mib(p.bytes),
                p.syncs,
                p.timed_s,
                p.populate_s,
                p.wall_s,
                p.step_ms_max,
                machine_cell(m),
            ));
        }
    }
    out.push('\n');
    for (c, &cap) in caps.iter().enumerate() {
        let ratios = |kind| rounds.iter().map(|r| r.ratio(c, kind)).collect::<Vec<_>>();
        let (Some(m), Some(p)) = (
            summarize(&ratios(ProbeKind::Mmap)),
            summarize(&ratios(ProbeKind::Pwrite)),
        ) else {
            continue;
        };
        out.push_str(&format!(
            "- {}log at a {} MiB backlog cap / mmap probe: **median {:.2}, worst {:.2}** \
             (/ pwrite probe: median {:.2}, worst {:.2}): target {}.\n",
            if c == 0 { "headline: " } else { "" },
            mib(cap),
            m.median,
            m.worst,
            p.median,
            p.worst,
            verdict(m, TARGET_RATIO),
        ));
    }
    let headline = summarize(
        &rounds
            .iter()
            .map(|r| r.ratio(0, ProbeKind::Mmap))
            .collect::<Vec<_>>(),
    );
    if let Some(h) = headline {
        out.push_str(&format!(
            "\n**Verdict against issue 2's target (group-committed durable throughput >= {:.0}% \
             of the same-run 1 MiB append + fdatasync probe), headline cap {} MiB: {} (median \
             {:.0}%, worst {:.0}%).**\n",
            TARGET_RATIO * 100.0,
            mib(caps[0]),
            verdict(h, TARGET_RATIO),
            h.median * 100.0,
            h.worst * 100.0,
        ));
    }
    out
}

/// What `--json` writes: settings, every measurement, the ratios per cap.
pub fn json_report(
    settings: &Settings,
    caps: &[u64],
    dir: &std::path::Path,
    fs_type: &str,
    rounds: &[Round],
) -> Value {
    let summary = |c: usize, kind| {
        summarize(&rounds.iter().map(|r| r.ratio(c, kind)).collect::<Vec<_>>())
            .map(|s| json!({ "median": s.median, "worst": s.worst }))
    };
    let w = settings.workload;
    json!({
        "dir": dir.display().to_string(), "fs_type": fs_type,
        "seconds": settings.duration.as_secs_f64(), "record_bytes": w.value_bytes,
        "batch_records": w.records, "stored_batch_bytes": w.stored_batch_bytes(),
        "bytes_max": settings.bytes_max, "backlog_bytes_max": caps,
        "target_ratio": TARGET_RATIO,
        "rounds": rounds.iter().map(|r| json!({
            "order": order_name(&r.order, caps), "probe_mmap": probe_json(&r.mmap),
            "probe_pwrite": probe_json(&r.pwrite),
            "logs": r.logs.iter().map(log_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "ratios": caps.iter().enumerate().map(|(c, cap)| json!({
            "backlog_bytes_max": cap, "mmap": summary(c, ProbeKind::Mmap),
            "pwrite": summary(c, ProbeKind::Pwrite),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_middle_round_and_worst_the_lowest() {
        let s = summarize(&[0.9, 0.5, 0.7]).unwrap();
        assert_eq!(
            s,
            Summary {
                median: 0.7,
                worst: 0.5
            }
        );
        let s = summarize(&[0.8, 0.4, 0.6, 1.0]).unwrap();
        assert!((s.median - 0.7).abs() < 1e-12);
        assert_eq!(s.worst, 0.4);
        let one = summarize(&[0.3]).unwrap();
        assert_eq!((one.median, one.worst), (0.3, 0.3));
        assert_eq!(summarize(&[]), None);
    }

    #[test]
    fn verdict_separates_every_round_median_and_missed() {
        let v = |median, worst| verdict(Summary { median, worst }, 0.6);
        assert_eq!(v(0.9, 0.6), "met in every round");
        assert_eq!(v(0.7, 0.5), "met on the median, missed in the worst round");
        assert_eq!(v(0.59, 0.4), "missed");
    }

    fn probe(kind: ProbeKind, timed_s: f64) -> (ProbeResult, Machine) {
        let result = ProbeResult {
            kind,
            bytes: 1000 << 20,
            timed_s,
            wall_s: timed_s,
            syncs: 1000,
            step_ms_max: 3.0,
            populate_s: 0.0,
        };
        (result, Machine::now())
    }

    fn log(backlog_bytes_max: u64, durable_bytes: u64) -> LogRun {
        LogRun {
            backlog_bytes_max,
            result: LogResult {
                stop: Stop::Deadline,
                elapsed_s: 1.0,
                durable_bytes,
                appended_bytes: durable_bytes + (1 << 20),
                backlog_bytes: 1 << 20,
                appends: 10,
                flushes: 4,
                flush_ms_mean: 2.0,
                flush_ms_max: 5.0,
                backlog_waits: 1,
                minor_faults: Some(7),
                inline_reserves: 0,
                sync_fallbacks: 0,
                prefaults: 3,
                rolls: 1,
            },
            machine: Machine::now(),
        }
    }

    #[test]
    fn markdown_gives_each_cap_its_ratios_and_judges_the_first() {
        let settings = Settings {
            duration: std::time::Duration::from_secs(5),
            bytes_max: 2 << 30,
            backlog_bytes_max: 64 << 20,
            workload: benches::fixtures::Workload::new(16, 1024),
        };
        let caps = [64 << 20, 2 << 20];
        // Probe mmap: 1000 MiB in 2 s; log: 1.4x that at the first cap, 0.5x at the second.
        let mmap_mb_per_s = (1000u64 << 20) as f64 / 1e6 / 2.0;
        let durable = |ratio: f64| (mmap_mb_per_s * ratio * 1e6) as u64;
        let round = Round {
            order: vec![
                Step::Probe(ProbeKind::Mmap),
                Step::Probe(ProbeKind::Pwrite),
                Step::Log(0),
                Step::Log(1),
            ],
            mmap: probe(ProbeKind::Mmap, 2.0),
            pwrite: probe(ProbeKind::Pwrite, 1.0),
            logs: vec![log(caps[0], durable(1.4)), log(caps[1], durable(0.5))],
        };
        let md = markdown(&settings, &caps, "ext4", &[round]);
        assert!(md.contains("| 0 | mmap, pwrite, log 64.0, log 2.0 | 524 | 1049 | 734 | 1.40 | 0.70 | 262 | 0.50 | 0.25 |"), "{md}");
        assert!(
            md.contains("log at a 2.0 MiB backlog cap / mmap probe: **median 0.50, worst 0.50**")
        );
        assert!(md.contains("headline cap 64.0 MiB: met in every round (median 140%, worst 140%)"));
        assert!(md.contains("directory on ext4"));
    }

    #[test]
    fn mib_and_order_names_read_as_in_the_report() {
        assert_eq!(mib(64 << 20), "64.0");
        assert_eq!(mib(3 << 19), "1.5");
        let order = [
            Step::Log(1),
            Step::Probe(ProbeKind::Pwrite),
            Step::Probe(ProbeKind::Mmap),
        ];
        assert_eq!(
            order_name(&order, &[64 << 20, 2 << 20]),
            "log 2.0, pwrite, mmap"
        );
        assert_eq!(faults(None), "n/a");
    }
}
