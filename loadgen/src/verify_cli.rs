//! The command-line side of the checker: `--verify` and `--seq-ledger` after a run,
//! `--verify-ledger FILE` on its own.

use std::io::Write;
use std::path::Path;

use crate::checker::{check_topic, Verdict};
use crate::config::{Args, Config, TargetKind};
use crate::run::RunResult;
use crate::verify::Ledger;

/// After a stamped run: writes the ledger (`--seq-ledger`) and checks the topic (`--verify`).
pub fn after_run(
    args: &Args,
    config: &Config,
    result: &RunResult,
) -> Result<Option<Verdict>, String> {
    if !config.stamp_sequences {
        return Ok(None);
    }
    let ledger = Ledger {
        topic: config.topic.clone(),
        partitions: config.partitions,
        producers: result.ledgers.clone(),
    };
    if let Some(path) = &args.seq_ledger {
        let text = ledger.to_json().to_string();
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("writing the ledger {}: {e}", path.display()))?;
    }
    if !args.verify {
        return Ok(None);
    }
    let verdict = check_topic(&config.broker, &ledger).map_err(|e| format!("--verify: {e}"))?;
    print_verdict(&verdict);
    Ok(Some(verdict))
}

/// The run's outcome given the check's verdict.
pub fn judge(verdict: Option<&Verdict>) -> Result<(), String> {
    match verdict {
        Some(v) if !v.ok() => Err(format!(
            "the check failed: {} lost, {} duplicated, {} reordered, {} misplaced, {} stored despite a refusal, {} unstamped, {} from unknown producers",
            v.lost, v.duplicated, v.reordered, v.misplaced, v.refused_but_stored, v.unstamped, v.unknown_producer
        )),
        _ => Ok(()),
    }
}

/// `--verify-ledger FILE`: checks the topic the ledger names on `--broker`.
pub fn check_ledger_file(args: &Args, path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the ledger {}: {e}", path.display()))?;
    let ledger = Ledger::from_json_text(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let broker = args
        .broker
        .clone()
        .unwrap_or_else(|| TargetKind::Sprawl.default_broker().to_owned());
    let verdict = check_topic(&broker, &ledger).map_err(|e| e.to_string())?;
    print_verdict(&verdict);
    if let Some(report) = &args.report {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "ledger": path.display().to_string(),
            "broker": broker,
            "topic": ledger.topic,
            "verify": verdict.to_json(),
        }))
        .map_err(|e| e.to_string())?;
        std::fs::write(report, text + "\n")
            .map_err(|e| format!("writing {}: {e}", report.display()))?;
    }
    judge(Some(&verdict))
}

fn print_verdict(v: &Verdict) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "verify: {} records read, {} expected; lost {}, duplicated {}, reordered {}, misplaced {}, refused-but-stored {}; refused and absent {}, in doubt {} stored / {} absent; resent and stored again {}, resent and out of order {}: {}",
        v.records_read,
        v.records_expected,
        v.lost,
        v.duplicated,
        v.reordered,
        v.misplaced,
        v.refused_but_stored,
        v.refused,
        v.in_doubt_stored,
        v.in_doubt_absent,
        v.resent_duplicated,
        v.resent_reordered,
        if v.ok() { "ok" } else { "FAILED" }
    );
    for e in &v.examples {
        let _ = writeln!(out, "verify:   {e}");
    }
}
