//! Group-committed durable throughput of `storage::PartitionLog` next to the "1 MiB append +
//! fdatasync" hardware probe, same run, interleaved (issue 2's target: the log's durable
//! throughput is at least 60% of the probe's).
//!
//! Per round, in alternating order (probes first in even rounds, the log first in odd ones):
//! - probe `mmap`: memcpy of 1 MiB into a `MAP_SHARED` mapping of a reserved (fallocated) file,
//!   then fdatasync, repeated; each step's pages are write-populated first, untimed, as the
//!   log's prefault jobs do off the appender's thread. The target is judged against this one.
//! - probe `pwrite`: the same with `pwrite` from a buffer, for comparison.
//! - the log, once per `--backlog-mib` cap: a fresh default-config `PartitionLog` appended to
//!   non-stop by this thread (waiting only while the cap's worth of appended bytes is not yet
//!   durable), with group commit (a flush starts whenever none is running) on a flush thread and
//!   segment and prefault jobs on a job thread, as the engine drives them. Throughput counts
//!   only durable bytes. The first cap is the headline; the default second one (2 MiB) makes
//!   flushes about as big as the probe's 1 MiB steps.
//!
//! Every measurement stops after `--seconds` or `--bytes-max` bytes and deletes its files.
//! Output: tables on stdout, `--json` and `--markdown` reports (`benches/durable/run.sh` writes
//! `docs/benchmarks/durable.md` with it). It does not wait for a quiet machine or retry anything.

#[path = "../durable/mod.rs"]
mod durable;

use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;
use benches::fixtures::Workload;

use durable::probe::ProbeKind;
use durable::report::{self, faults, mib, LogRun, Round, Step};
use durable::sys::Machine;
use durable::{log, probe, DurableError, Settings};

const MIB: u64 = 1 << 20;
/// Most backlog caps one run compares.
const BACKLOG_CAPS_MAX: usize = 4;

#[derive(FromArgs)]
/// Group-committed durable throughput of the partition log vs a 1 MiB append + fdatasync probe.
struct Args {
    /// directory on the disk to measure (created if missing; tmpfs is refused)
    #[argh(option, default = "PathBuf::from(\"target/durable-bench\")")]
    dir: PathBuf,
    /// seconds per measurement
    #[argh(option, default = "5.0")]
    seconds: f64,
    /// rounds (each: both probes and the log at every backlog cap)
    #[argh(option, default = "3")]
    rounds: u32,
    /// value bytes per record
    #[argh(option, default = "1024")]
    record_bytes: u32,
    /// records per appended batch
    #[argh(option, default = "16")]
    batch_records: u32,
    /// stop a measurement once it has written this many bytes
    #[argh(option, default = "2 << 30")]
    bytes_max: u64,
    /// comma-separated appender backlog caps in MiB, one log measurement each (the appender
    /// waits while this much appended data is not durable yet); the first is the headline
    #[argh(option, default = "String::from(\"64,2\")")]
    backlog_mib: String,
    /// write the results as JSON here
    #[argh(option)]
    json: Option<PathBuf>,
    /// write the results section of the report as Markdown here
    #[argh(option)]
    markdown: Option<PathBuf>,
}

/// Alternating order, so that a drift of the machine favours neither side.
fn round_order(round: u32, caps: usize) -> Vec<Step> {
    let mut order = vec![Step::Probe(ProbeKind::Mmap), Step::Probe(ProbeKind::Pwrite)];
    order.extend((0..caps).map(Step::Log));
    if !round.is_multiple_of(2) {
        order.reverse();
    }
    order
}

/// Parses `--backlog-mib`: 1 to `BACKLOG_CAPS_MAX` whole MiB counts within 1..=4096.
fn parse_backlog_mib(text: &str) -> Result<Vec<u64>, DurableError> {
    let bad = |reason: String| DurableError::Arg {
        flag: "backlog-mib",
        reason,
    };
    let caps = text
        .split(',')
        .map(|f| {
            let f = f.trim();
            match f.parse::<u64>() {
                Ok(mib @ 1..=4096) => Ok(mib),
                _ => Err(bad(format!(
                    "{f:?} is not a whole number of MiB within 1..=4096"
                ))),
            }
        })
        .collect::<Result<Vec<u64>, DurableError>>()?;
    if caps.len() > BACKLOG_CAPS_MAX {
        return Err(bad(format!("at most {BACKLOG_CAPS_MAX} caps")));
    }
    Ok(caps)
}

/// Checks the arguments; returns the shared settings (with the first cap) and every cap in bytes.
fn validate(args: &Args) -> Result<(Settings, Vec<u64>), DurableError> {
    let arg = |flag, reason: &str| {
        Err(DurableError::Arg {
            flag,
            reason: reason.to_string(),
        })
    };
    if !(args.seconds > 0.0 && args.seconds <= 600.0) {
        return arg("seconds", "must be within (0, 600]");
    }
    if !(1..=100).contains(&args.rounds) {
        return arg("rounds", "must be within 1..=100");
    }
    if !(1..=1 << 20).contains(&args.record_bytes) {
        return arg("record-bytes", "must be within 1..=1048576");
    }
    if !(1..=1 << 16).contains(&args.batch_records) {
        return arg("batch-records", "must be within 1..=65536");
    }
    let workload = Workload::new(args.batch_records, args.record_bytes);
    let batch_bytes = workload.stored_batch_bytes();
    let batch_limit = u64::from(storage::LogConfig::default().batch_bytes_max);
    if batch_bytes > batch_limit {
        return arg(
            "batch-records",
            &format!(
                "a batch would store {batch_bytes} bytes, the log takes at most {batch_limit}"
            ),
        );
    }
    if args.bytes_max < probe::PROBE_CHUNK_BYTES {
        return arg("bytes-max", "must be at least 1 MiB (one probe step)");
    }
    let caps: Vec<u64> = parse_backlog_mib(&args.backlog_mib)?
        .into_iter()
        .map(|mib| mib * MIB)
        .collect();
    if caps.iter().any(|&c| c < batch_bytes) {
        return arg("backlog-mib", "every cap must hold at least one batch");
    }
    let settings = Settings {
        duration: Duration::from_secs_f64(args.seconds),
        bytes_max: args.bytes_max,
        backlog_bytes_max: caps[0],
        workload,
    };
    Ok((settings, caps))
}

fn write_file(path: &PathBuf, text: &str) -> Result<(), DurableError> {
    std::fs::write(path, text).map_err(|source| DurableError::Io {
        op: "write",
        path: path.clone(),
        source,
    })
}

/// Runs one round: both probes and the log at every cap, in `round_order`.
fn run_round(
    dir: &std::path::Path,
    settings: &Settings,
    caps: &[u64],
    round: u32,
) -> Result<Round, DurableError> {
    let order = round_order(round, caps.len());
    let (mut mmap, mut pwrite) = (None, None);
    let mut logs: Vec<Option<LogRun>> = caps.iter().map(|_| None).collect();
    for &step in &order {
        let machine = Machine::now();
        match step {
            Step::Probe(kind) => {
                let p = probe::run_probe(dir, kind, settings)?;
                println!(
                    "round {round} probe {:<6}        {:>7.1} MB/s ({} MiB, {} fdatasyncs)",
                    kind.name(),
                    p.durable_mb_per_s(),
                    mib(p.bytes),
                    p.syncs
                );
                match kind {
                    ProbeKind::Mmap => mmap = Some((p, machine)),
                    ProbeKind::Pwrite => pwrite = Some((p, machine)),
                }
            }
            Step::Log(c) => {
                let capped = Settings {
                    backlog_bytes_max: caps[c],
                    ..*settings
                };
                let l = log::run_log(dir, &capped)?;
                println!(
                    "round {round} log, cap {:>6} MiB {:>7.1} MB/s durable ({} flushes, {} MiB per flush, {} MiB not durable at the end, {} appender faults)",
                    mib(caps[c]),
                    l.durable_mb_per_s(),
                    l.flushes,
                    mib(l.bytes_per_flush() as u64),
                    mib(l.backlog_bytes),
                    faults(l.minor_faults)
                );
                logs[c] = Some(LogRun {
                    backlog_bytes_max: caps[c],
                    result: l,
                    machine,
                });
            }
        }
    }
    // `round_order` lists every measurement exactly once, so each slot was filled above.
    Ok(Round {
        order,
        mmap: mmap.expect("round_order runs the mmap probe"),
        pwrite: pwrite.expect("round_order runs the pwrite probe"),
        logs: logs
            .into_iter()
            .map(|l| l.expect("round_order runs the log at every cap"))
            .collect(),
    })
}

fn run(args: &Args) -> Result<(), DurableError> {
    let (settings, caps) = validate(args)?;
    let created = !args.dir.exists();
    let (dir, fs_type) = durable::sys::prepare_dir(&args.dir)?;
    println!(
        "durable: {} rounds x {} s in {} ({fs_type})",
        args.rounds,
        args.seconds,
        dir.display()
    );
    let rounds = (0..args.rounds)
        .map(|round| run_round(&dir, &settings, &caps, round))
        .collect::<Result<Vec<_>, _>>()?;
    if created {
        // Only if empty: every measurement removed its own files.
        let _ = std::fs::remove_dir(&dir);
    }
    let md = report::markdown(&settings, &caps, &fs_type, &rounds);
    print!("\n{md}");
    if let Some(path) = &args.markdown {
        write_file(path, &md)?;
    }
    if let Some(path) = &args.json {
        let report = report::json_report(&settings, &caps, &dir, &fs_type, &rounds);
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        write_file(path, &(text + "\n"))?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Args = argh::from_env();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("durable: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(seconds: f64, backlog_mib: &str) -> Args {
        Args {
            dir: PathBuf::from("unused"),
            seconds,
            rounds: 3,
            record_bytes: 1024,
            batch_records: 16,
            bytes_max: 2 << 30,
            backlog_mib: backlog_mib.to_string(),
            json: None,
            markdown: None,
        }
    }

    fn flag(a: &Args) -> &'static str {
        match validate(a) {
            Err(DurableError::Arg { flag, .. }) => flag,
            other => panic!("expected an argument error, got {other:?}"),
        }
    }

    #[test]
    fn rounds_alternate_which_side_goes_first() {
        let even = round_order(0, 2);
        assert_eq!(
            even,
            [
                Step::Probe(ProbeKind::Mmap),
                Step::Probe(ProbeKind::Pwrite),
                Step::Log(0),
                Step::Log(1)
            ]
        );
        let odd = round_order(1, 2);
        assert_eq!(odd.first(), Some(&Step::Log(1)));
        assert_eq!(odd.last(), Some(&Step::Probe(ProbeKind::Mmap)));
        assert_eq!(round_order(2, 2), even);
        assert_eq!(round_order(0, 1).len(), 3);
    }

    #[test]
    fn backlog_caps_are_whole_mib_and_few() {
        assert_eq!(parse_backlog_mib("64,2").unwrap(), vec![64, 2]);
        assert_eq!(parse_backlog_mib(" 8 ").unwrap(), vec![8]);
        for bad in ["", "0", "4097", "1.5", "64,,2", "1,2,3,4,5", "-1"] {
            assert!(parse_backlog_mib(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn arguments_are_checked_before_anything_runs() {
        let (settings, caps) = validate(&args(5.0, "64,2")).unwrap();
        assert_eq!(settings.workload.stored_batch_bytes(), 17_024);
        assert_eq!(settings.duration, Duration::from_secs(5));
        assert_eq!(caps, vec![64 << 20, 2 << 20]);
        assert_eq!(settings.backlog_bytes_max, 64 << 20);
        assert_eq!(flag(&args(0.0, "64")), "seconds");
        assert_eq!(flag(&args(f64::NAN, "64")), "seconds");
        assert_eq!(flag(&args(5.0, "x")), "backlog-mib");
        let mut big = args(5.0, "64");
        big.batch_records = 1 << 16;
        assert_eq!(flag(&big), "batch-records");
        // Two 1 MiB records make a batch bigger than a 1 MiB cap.
        let mut wide = args(5.0, "1");
        wide.record_bytes = 1 << 20;
        wide.batch_records = 2;
        assert_eq!(flag(&wide), "backlog-mib");
        let mut small = args(5.0, "64");
        small.bytes_max = 4096;
        assert_eq!(flag(&small), "bytes-max");
    }
}
