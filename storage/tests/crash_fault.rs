//! Crash consistency through the fault-injecting disk (`storage::fault`).
//!
//! Seeded workloads (append, flush, group commit with appends during the fdatasync, segment
//! preparation, truncation, retention, key compaction, close and reopen) run on a `FaultDisk` in
//! capture mode: after every disk operation (write, sync, fallocate, rename, unlink, directory
//! sync) and after every step, the state a power loss would leave is recorded. Each state is
//! materialized with a seeded crash (unsynced pages dropped, written or torn at 512-byte sectors,
//! bits flipped in sectors without durable data, unsynced directory operations cut to a prefix)
//! and recovered; a quarter of them are crashed again during recovery. Properties:
//! - recovery never fails or panics;
//! - every batch acknowledged as flushed before the crash comes back byte for byte;
//! - nothing else comes back but batches that were appended, in order (a prefix of the log);
//! - a log recovered from a crash goes on and survives the next crash the same way;
//! - a failed fdatasync fences the log, and a crash afterwards still keeps every acknowledged batch;
//! - a full disk is a typed `NoSpace` error, the log stays readable and takes appends again once
//!   space is freed.
//!
//! `SPRAWL_FAULT_CASES=n` sets the number of workloads per property; a failure prints its seed,
//! and `SPRAWL_FAULT_SEED=s` reruns just that one.

mod fault_support;

use fault_support::{
    cases, check_recovered, seeds, verify_crash, Model, Rng, SeedGuard, Step, Tally, Workload,
};
use storage::fault::FaultDisk;
use storage::{Io, PartitionLog, StorageError};

/// Crash states checked by the first property must reach this (when the default case count runs).
const CRASH_STATES_MIN: u64 = 1_000;

#[test]
fn crash_after_every_disk_operation_keeps_flushed_batches() {
    let workloads = cases(40);
    let mut tally = Tally::default();
    for seed in seeds(workloads, 1) {
        let mut guard = SeedGuard {
            test: "crash_after_every_disk_operation_keeps_flushed_batches",
            seed,
            steps: Vec::new(),
        };
        let mut w = Workload::new(seed);
        w.disk.set_capture(true);
        let mut crash_rng = Rng(seed ^ 0xC0FF_EE00);
        for _ in 0..28 {
            let before = w.model.clone();
            let step = w.pick_step();
            guard.steps.push(step);
            w.run(step)
                .unwrap_or_else(|e| panic!("{step:?} failed without injected faults: {e}"));
            w.disk.capture_now().expect("capture");
            let captures = w.disk.take_captures();
            let last = captures.len() - 1;
            for (i, state) in captures.iter().enumerate() {
                let models: Vec<&Model> = if i == last {
                    vec![&w.model]
                } else {
                    vec![&before, &w.model]
                };
                let depth = u32::from(crash_rng.below(4) == 0);
                tally.merge(verify_crash(
                    state,
                    crash_rng.next(),
                    &w.config,
                    &models,
                    depth,
                ));
            }
        }
    }
    eprintln!("{workloads} workloads: {tally:?}");
    if workloads >= 40 && std::env::var("SPRAWL_FAULT_SEED").is_err() {
        assert!(tally.states >= CRASH_STATES_MIN, "too few crash states");
        // The faults really happened (else the properties above would be vacuous).
        assert!(tally.pages_dropped > 0 && tally.pages_torn > 0 && tally.bits_flipped > 0);
        assert!(tally.dir_ops_dropped > 0 && tally.tails_cut > 0);
    }
}

#[test]
fn repeated_crashes_and_recoveries_keep_every_flushed_batch() {
    let workloads = cases(120);
    let mut crashes = 0;
    for seed in seeds(workloads, 4) {
        let mut guard = SeedGuard {
            test: "repeated_crashes_and_recoveries_keep_every_flushed_batch",
            seed,
            steps: Vec::new(),
        };
        let mut w = Workload::new(seed);
        let mut crash_rng = Rng(seed ^ 0x5EED);
        for _ in 0..40 {
            let step = w.pick_step();
            guard.steps.push(step);
            w.run(step)
                .unwrap_or_else(|e| panic!("{step:?} failed without injected faults: {e}"));
            if crash_rng.below(4) == 0 {
                w.crash_and_recover(crash_rng.next());
                crashes += 1;
            }
        }
    }
    eprintln!("{crashes} crashes over {workloads} workloads");
    if workloads >= 120 && std::env::var("SPRAWL_FAULT_SEED").is_err() {
        assert!(crashes >= CRASH_STATES_MIN, "only {crashes} crashes");
    }
}

#[test]
fn failed_fsync_fences_the_log_and_keeps_acknowledged_batches() {
    let workloads = cases(160);
    let mut fenced = 0;
    let mut tally = Tally::default();
    for seed in seeds(workloads, 2) {
        let _guard = SeedGuard {
            test: "failed_fsync_fences_the_log_and_keeps_acknowledged_batches",
            seed,
            steps: Vec::new(),
        };
        let mut w = Workload::new(seed);
        let fail_at = w.disk.syncs() + w.rng.below(8);
        w.disk.fail_sync(fail_at);
        let mut failure = None;
        for _ in 0..60 {
            let before = w.model.clone();
            let step = match w.pick_step() {
                // A close that fails consumes the log; keep reopening out of this property.
                Step::Reopen => Step::Flush,
                s => s,
            };
            if let Err(e) = w.run(step) {
                failure = Some((step, e, before));
                break;
            }
        }
        let Some((step, err, before)) = failure else {
            continue;
        };
        let StorageError::Io { source, .. } = &err else {
            panic!("{step:?}: an injected EIO surfaced as {err:?}");
        };
        assert_eq!(source.raw_os_error(), Some(libc::EIO));
        let log = w.log.as_mut().expect("the log is open");
        if w.flush_failed {
            assert!(matches!(step, Step::Flush | Step::FlushDuringAppends));
            fenced += 1;
            assert!(log.is_fenced());
            assert!(log.begin_flush().is_none(), "a fenced log started a flush");
            assert!(matches!(
                log.append(&[], None, 0),
                Err(StorageError::FlushFailed)
            ));
            // Nothing was acknowledged by the failed flush, and reads still serve every batch.
            assert_eq!(log.durable_offset(), w.model.acked);
        }
        // Reads are consistent with the model, whatever failed.
        if step == Step::Truncate {
            assert!(
                log.is_fenced(),
                "a truncation that failed on disk must fence the log"
            );
        }
        check_served(log, &w.model);
        // A crash now keeps everything acknowledged before the failure.
        let state = w.disk.crash_state().expect("crash state");
        if seed.is_multiple_of(2) {
            tally.merge(reopened_in_the_same_boot(&mut w, seed));
        }
        for k in 0..8 {
            tally.merge(verify_crash(
                &state,
                seed ^ k,
                &w.config,
                &[&before, &w.model],
                0,
            ));
        }
    }
    eprintln!("{fenced} flushes failed and fenced their log; {tally:?}");
    if std::env::var("SPRAWL_FAULT_SEED").is_err() && workloads >= 100 {
        assert!(
            fenced >= workloads / 4,
            "too few injected failures hit a flush"
        );
        assert!(tally.states >= CRASH_STATES_MIN);
        assert!(tally.pages_lost_to_failed_sync > 0);
    }
}

/// Reopens the log in the same "boot" (page cache intact, including pages a failed sync made
/// clean without writing them) and crashes: everything the reopened log calls durable survives.
fn reopened_in_the_same_boot(w: &mut Workload, seed: u64) -> Tally {
    drop(w.log.take());
    let open =
        || PartitionLog::open_with(w.dir.path(), w.config.clone(), Io::Fault(w.disk.clone()));
    if seed.is_multiple_of(4) {
        // Recovery's own syncs can fail too: such an open fails, and a later one must work.
        w.disk.fail_sync(w.disk.syncs() + (seed >> 8) % 3);
    }
    let mut failed_opens = 0;
    let (log, report) = loop {
        match open() {
            Ok(opened) => break opened,
            Err(e) => {
                failed_opens += 1;
                assert!(failed_opens < 3, "reopen keeps failing: {e}");
                assert!(
                    matches!(&e, StorageError::Io { source, .. } if source.raw_os_error() == Some(libc::EIO))
                );
            }
        }
    };
    check_recovered(&log, &[&w.model], &report);
    assert!(
        report.rewrote_after_failed_sync,
        "the failed sync left no marker"
    );
    assert!(!w.dir.path().join("sync-failed").exists(), "marker kept");
    let reopened = Model {
        start: log.start_offset(),
        end: log.end_offset(),
        batches: fault_support::batches_of(&log),
        acked: log.durable_offset(),
    };
    drop(log);
    let state = w.disk.crash_state().expect("crash state");
    let mut tally = Tally::default();
    for k in 0..4 {
        tally.merge(verify_crash(
            &state,
            seed ^ (k << 8),
            &w.config,
            &[&reopened],
            0,
        ));
    }
    tally
}

/// The live log serves exactly the model (used after an error: the log must stay consistent).
fn check_served(log: &PartitionLog, m: &Model) {
    assert_eq!((log.start_offset(), log.end_offset()), (m.start, m.end));
    let served = fault_support::batches_of(log);
    assert_eq!(
        served, m.batches,
        "the live log no longer serves what was appended"
    );
}

#[test]
fn full_disk_is_a_typed_error_and_the_log_stays_usable() {
    let workloads = cases(260);
    let mut append_errors = 0;
    let mut tally = Tally::default();
    for seed in seeds(workloads, 3) {
        let _guard = SeedGuard {
            test: "full_disk_is_a_typed_error_and_the_log_stays_usable",
            seed,
            steps: Vec::new(),
        };
        let mut w = Workload::new(seed);
        for _ in 0..w.rng.below(8) {
            let step = w.pick_step();
            if step != Step::Reopen {
                w.run(step).expect("no faults injected yet");
            }
        }
        // Leave a little room (maybe none), then append until the disk is full.
        let used = w.disk.used_bytes().expect("used");
        let slack = w.rng.below(3) * 700;
        w.disk.set_capacity_bytes(Some(used + slack));
        let mut hit = None;
        for _ in 0..150 {
            let before = w.model.clone();
            let step = if w.rng.below(4) == 0 {
                Step::Flush
            } else {
                Step::Append
            };
            match w.run(step) {
                Ok(()) => {}
                Err(e) => {
                    hit = Some((step, e, before));
                    break;
                }
            }
        }
        let (step, err, before) = hit.unwrap_or_else(|| {
            panic!(
                "a capacity-limited disk never filled up: used {:?} of {}",
                w.disk.used_bytes(),
                used + slack
            )
        });
        assert!(
            matches!(err, StorageError::NoSpace { .. }),
            "{step:?} on a full disk returned {err:?}"
        );
        let log = w.log.as_mut().expect("the log is open");
        if step == Step::Append {
            append_errors += 1;
            // The failed append changed nothing: same offsets, same batches, not fenced.
            assert!(!log.is_fenced());
            check_served(log, &w.model);
            // The segment whose creation failed was unlinked again.
            let seg_files = std::fs::read_dir(w.dir.path())
                .expect("read_dir")
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                })
                .count() as u64;
            assert_eq!(
                seg_files,
                log.stats().segments,
                "a half-created segment was left"
            );
            w.disk.set_capacity_bytes(None);
            w.run(Step::Append).expect("append once space is freed");
            w.run(Step::Flush).expect("flush once space is freed");
        } else {
            assert!(log.is_fenced(), "a failed flush must fence the log");
            check_served(log, &w.model);
        }
        let state = w.disk.crash_state().expect("crash state");
        for k in 0..4 {
            tally.merge(verify_crash(
                &state,
                seed ^ k,
                &w.config,
                &[&before, &w.model],
                0,
            ));
        }
        // A clean restart (no crash) of what is on disk now also holds every acknowledged batch.
        let log = w.log.take().expect("the log is open");
        drop(log);
        let disk = FaultDisk::new(w.dir.path()).expect("fault disk");
        let (log, _) = PartitionLog::open_with(w.dir.path(), w.config.clone(), Io::Fault(disk))
            .expect("reopen after a full disk");
        check_recovered(&log, &[&before, &w.model], &seed);
    }
    eprintln!("{append_errors} appends hit a full disk; {tally:?}");
    if std::env::var("SPRAWL_FAULT_SEED").is_err() && workloads >= 200 {
        assert!(append_errors >= workloads / 4);
        assert!(tally.states >= CRASH_STATES_MIN);
    }
}
