//! Seeded workloads over a log on a [`FaultDisk`], a model of what was appended and acknowledged,
//! and the check that a recovered log is what a crash may legally leave.
#![allow(dead_code)]

use std::path::Path;

use storage::fault::{CrashOptions, CrashState, CrashSummary, FaultDisk};
use storage::{AppendOutcome, Io, LogConfig, PartitionLog, Record, StorageError};

/// Workloads per property: `SPRAWL_FAULT_CASES` overrides the default.
pub fn cases(default: u64) -> u64 {
    std::env::var("SPRAWL_FAULT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The seeds to run: just `SPRAWL_FAULT_SEED` when set (to reproduce a failure), else `count`
/// seeds derived from `salt`.
pub fn seeds(count: u64, salt: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("SPRAWL_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return vec![seed];
    }
    (0..count)
        .map(|i| Rng(salt.wrapping_mul(0x1000_0000_01B3) ^ i).next())
        .collect()
}

/// Prints the seed (and how to rerun it) if the test panics while it is alive.
pub struct SeedGuard {
    pub test: &'static str,
    pub seed: u64,
    /// Steps run so far (printed on failure).
    pub steps: Vec<Step>,
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("steps: {:?}", self.steps);
            eprintln!(
                "\n{} failed for seed {}: rerun with\n  SPRAWL_FAULT_SEED={} cargo test -p storage --test crash_fault {}\n",
                self.test, self.seed, self.seed, self.test
            );
        }
    }
}

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// What the log holds: batches as stored (exact bytes), its offsets and what was acknowledged.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub start: u64,
    pub end: u64,
    /// `(base_offset, next_offset, stored bytes)`.
    pub batches: Vec<(u64, u64, Vec<u8>)>,
    /// `durable_offset()` of the log: every batch below it must survive any crash.
    pub acked: u64,
}

/// Tiny segments and a dense index, so that a few batches roll, seal and index.
pub fn fault_config(rng: &mut Rng) -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096 * (1 + rng.below(2)),
        index_interval_bytes: 256,
        compacted: rng.below(3) == 0,
        retention_bytes: (rng.below(3) == 0).then_some(6000),
        ..LogConfig::default()
    }
}

/// A log on a fault disk driven by a seeded workload, with its model.
pub struct Workload {
    pub rng: Rng,
    pub seed: u64,
    pub dir: tempfile::TempDir,
    pub disk: FaultDisk,
    pub config: LogConfig,
    pub log: Option<PartitionLog>,
    pub model: Model,
    pub now_ms: i64,
    /// The last error came from a flush job (not from an append made while it ran).
    pub flush_failed: bool,
}

/// One step of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Append,
    Flush,
    /// A flush with appends made while its job runs (group commit).
    FlushDuringAppends,
    Prepare,
    Truncate,
    Retention,
    Compaction,
    Reopen,
}

pub fn fast_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().expect("tempdir")
}

impl Workload {
    pub fn new(seed: u64) -> Workload {
        let mut rng = Rng(seed);
        let config = fault_config(&mut rng);
        let dir = fast_tempdir();
        let disk = FaultDisk::new(dir.path()).expect("fault disk");
        let (log, _) = PartitionLog::open_with(dir.path(), config.clone(), Io::Fault(disk.clone()))
            .expect("open an empty log");
        Workload {
            rng,
            seed,
            dir,
            disk,
            config,
            log: Some(log),
            model: Model::default(),
            now_ms: 1_000,
            flush_failed: false,
        }
    }

    pub fn log(&mut self) -> &mut PartitionLog {
        self.log.as_mut().expect("the log is open")
    }

    pub fn pick_step(&mut self) -> Step {
        match self.rng.below(20) {
            0..=8 => Step::Append,
            9..=11 => Step::Flush,
            12 => Step::FlushDuringAppends,
            13 | 14 => Step::Prepare,
            15 => Step::Truncate,
            16 => Step::Retention,
            17 | 18 => Step::Compaction,
            _ => Step::Reopen,
        }
    }

    /// Runs one step; an `Err` is whatever the log returned (with the log left to the caller).
    pub fn run(&mut self, step: Step) -> Result<(), StorageError> {
        self.now_ms += 1 + self.rng.below(5) as i64;
        match step {
            Step::Append => self.append(),
            Step::Flush => self.flush(false),
            Step::FlushDuringAppends => self.flush(true),
            Step::Prepare => {
                let Some(job) = self.log().prepare_segment_job() else {
                    return Ok(());
                };
                match job.run() {
                    Ok(seg) => {
                        self.log().install_prepared(seg);
                        Ok(())
                    }
                    Err(e) => {
                        self.log().prepare_failed();
                        Err(e)
                    }
                }
            }
            Step::Truncate => {
                let kept = self.model.batches.len();
                if kept < 2 {
                    return Ok(());
                }
                let i = 1 + self.rng.below(kept as u64 - 1) as usize;
                let offset = self.model.batches[i].0;
                let result = self.log().truncate_to(offset);
                // A truncation that fails on disk has still cut the log in memory (and fenced it).
                if self.log().end_offset() == offset {
                    self.model.batches.truncate(i);
                    self.model.end = offset;
                }
                self.model.acked = self.log().durable_offset();
                result
            }
            Step::Retention => {
                let now = self.now_ms;
                if let Some(job) = self.log().retention_job(now) {
                    let start = self.log().start_offset();
                    self.model.start = start;
                    self.model.batches.retain(|b| b.0 >= start);
                    job.run()?;
                }
                Ok(())
            }
            Step::Compaction => {
                let now = self.now_ms;
                let Some(job) = self.log().compaction_job(now) else {
                    return Ok(());
                };
                let done = match job.run() {
                    Ok(d) => d,
                    Err(e) => {
                        self.log().compaction_failed();
                        return Err(e);
                    }
                };
                self.log().install_compaction(done)?;
                self.refresh_bytes()
            }
            Step::Reopen => {
                let log = self.log.take().expect("the log is open");
                log.close()?;
                let (log, _) = PartitionLog::open_with(
                    self.dir.path(),
                    self.config.clone(),
                    Io::Fault(self.disk.clone()),
                )?;
                assert_eq!(
                    (log.start_offset(), log.end_offset()),
                    (self.model.start, self.model.end),
                    "a clean close and reopen changed the offsets"
                );
                self.model.acked = log.durable_offset();
                self.log = Some(log);
                Ok(())
            }
        }
    }

    /// Appends 1-4 records and records the batch exactly as the log stored it, after checking
    /// that it decodes to what was appended.
    pub fn append(&mut self) -> Result<(), StorageError> {
        let count = 1 + self.rng.below(4) as usize;
        let keyed = self.config.compacted;
        let mut owned: Vec<(Option<Vec<u8>>, Vec<u8>)> = Vec::new();
        for _ in 0..count {
            let key = keyed.then(|| format!("k{}", self.rng.below(5)).into_bytes());
            let len = self.rng.below(300) as usize;
            let salt = self.rng.next();
            let value = (0..len).map(|i| (salt >> (i % 56)) as u8).collect();
            owned.push((key, value));
        }
        let now = self.now_ms;
        let records: Vec<Record<'_>> = owned
            .iter()
            .map(|(k, v)| Record {
                key: k.as_deref(),
                value: v,
                headers: &[],
                timestamp_ms: now,
                ttl_ms: 0,
            })
            .collect();
        let outcome = self.log().append(&records, None, now)?;
        let AppendOutcome::Appended {
            base_offset,
            last_offset,
        } = outcome
        else {
            panic!("a non-idempotent append was a duplicate: {outcome:?}");
        };
        let read = self.log().read(base_offset, 1)?;
        let batch = &read.batches[0];
        assert_eq!(batch.base_offset(), base_offset);
        let back = batch.records(base_offset, i64::MIN)?;
        assert_eq!(back.len(), owned.len());
        for (r, (k, v)) in back.iter().zip(&owned) {
            assert_eq!((r.key.as_deref(), &r.value[..]), (k.as_deref(), &v[..]));
        }
        self.model
            .batches
            .push((base_offset, last_offset + 1, batch.bytes().to_vec()));
        self.model.end = last_offset + 1;
        Ok(())
    }

    /// A group commit; on failure the log is fenced, as the engine does.
    pub fn flush(&mut self, with_appends: bool) -> Result<(), StorageError> {
        let Some(job) = self.log().begin_flush() else {
            return Ok(());
        };
        self.flush_failed = false;
        let mut appended = Ok(());
        if with_appends {
            for _ in 0..1 + self.rng.below(2) {
                appended = self.append();
                if appended.is_err() {
                    break;
                }
            }
        }
        match job.run() {
            Ok(done) => {
                self.log().complete_flush(done);
                self.model.acked = self.log().durable_offset();
                appended
            }
            Err(e) => {
                self.log().flush_failed();
                self.flush_failed = true;
                Err(e)
            }
        }
    }

    /// Crashes now (seeded), recovers the crash image on a fresh fault disk, checks it against the
    /// model and continues the workload on the recovered log.
    pub fn crash_and_recover(&mut self, crash_seed: u64) -> CrashSummary {
        let state = self.disk.crash_state().expect("crash state");
        drop(self.log.take());
        let dir = fast_tempdir();
        let summary = state
            .materialize(crash_seed, dir.path(), CrashOptions::default())
            .expect("materialize");
        let disk = FaultDisk::new(dir.path()).expect("fault disk");
        let (log, report) =
            PartitionLog::open_with(dir.path(), self.config.clone(), Io::Fault(disk.clone()))
                .unwrap_or_else(|e| panic!("recovery failed: {e}; crash {summary:?}"));
        check_recovered(&log, &[&self.model], &(&summary, &report));
        self.model = Model {
            start: log.start_offset(),
            end: log.end_offset(),
            batches: batches_of(&log),
            acked: log.end_offset(),
        };
        self.dir = dir;
        self.disk = disk;
        self.log = Some(log);
        summary
    }

    /// Re-reads every batch's stored bytes (compaction rewrote some).
    fn refresh_bytes(&mut self) -> Result<(), StorageError> {
        let log = self.log.as_ref().expect("the log is open");
        for b in &mut self.model.batches {
            let read = log.read(b.0, 1)?;
            b.2 = read.batches[0].bytes().to_vec();
        }
        Ok(())
    }
}

/// Every batch of a log, `(base_offset, next_offset, bytes)`.
pub fn batches_of(log: &PartitionLog) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = log.start_offset();
    while at < log.end_offset() {
        let r = log.read(at, 1 << 20).expect("read a recovered log");
        assert!(!r.batches.is_empty(), "read at {at} returned nothing");
        for b in &r.batches {
            assert!(b.verify(), "a recovered batch fails its checksum");
            out.push((b.base_offset(), b.last_offset() + 1, b.bytes().to_vec()));
        }
        at = r.next_offset;
    }
    out
}

/// Checks that `log` is a state a crash may leave given the models (the state before and after
/// the step the crash interrupted, or just the latter): it starts where one of them starts (or
/// between, when retention was cut short), holds every acknowledged batch, and each of its
/// batches is byte for byte one the models hold at that offset, contiguously.
pub fn check_recovered(log: &PartitionLog, models: &[&Model], context: &dyn std::fmt::Debug) {
    let (start, end) = (log.start_offset(), log.end_offset());
    let lo_start = models.iter().map(|m| m.start).min().unwrap_or(0);
    let hi_start = models.iter().map(|m| m.start).max().unwrap_or(0);
    let required = models.iter().map(|m| m.acked).min().unwrap_or(0);
    let max_end = models.iter().map(|m| m.end).max().unwrap_or(0);
    assert!(
        (lo_start..=hi_start).contains(&start),
        "recovered start {start} outside {lo_start}..={hi_start}: {context:?}"
    );
    assert!(
        end >= required,
        "a flushed batch was lost: recovered end {end} < acknowledged {required}: {context:?}"
    );
    assert!(
        end <= max_end,
        "recovered end {end} beyond anything appended ({max_end}): {context:?}"
    );
    assert_eq!(
        log.durable_offset(),
        end,
        "recovery leaves everything durable"
    );
    let mut at = start;
    for (base, next, bytes) in batches_of(log) {
        assert_eq!(
            base, at,
            "recovered batches are not contiguous: {context:?}"
        );
        let known = models.iter().any(|m| {
            m.batches
                .iter()
                .any(|b| b.0 == base && b.1 == next && b.2 == bytes)
        });
        assert!(
            known,
            "recovered batch at {base} is corrupt or was never appended: {context:?}"
        );
        at = next;
    }
    assert_eq!(at, end, "recovered end differs from the last batch");
}

/// What the checked crashes did, summed (to show the faults really happened).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub states: u64,
    pub pages_dropped: u64,
    pub pages_torn: u64,
    pub bits_flipped: u64,
    pub dir_ops_dropped: u64,
    pub pages_lost_to_failed_sync: u64,
    pub tails_cut: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.states += other.states;
        self.pages_dropped += other.pages_dropped;
        self.pages_torn += other.pages_torn;
        self.bits_flipped += other.bits_flipped;
        self.dir_ops_dropped += other.dir_ops_dropped;
        self.pages_lost_to_failed_sync += other.pages_lost_to_failed_sync;
        self.tails_cut += other.tails_cut;
    }

    pub fn merge(&mut self, other: Tally) {
        self.add(other);
    }
}

/// Materializes `state` with `crash_seed`, recovers it on a fresh fault disk and checks it. With
/// `depth > 0` the recovery itself is crashed after each of its disk operations and each of those
/// states is checked too (the last one, after recovery finished, must keep all it recovered).
/// Returns the number of crash states checked.
pub fn verify_crash(
    state: &CrashState,
    crash_seed: u64,
    config: &LogConfig,
    models: &[&Model],
    depth: u32,
) -> Tally {
    let dir = fast_tempdir();
    let summary: CrashSummary = state
        .materialize(crash_seed, dir.path(), CrashOptions::default())
        .expect("materialize a crash state");
    let disk = FaultDisk::new(dir.path()).expect("fault disk over the crash image");
    disk.set_capture(depth > 0);
    let (mut log, report) =
        PartitionLog::open_with(dir.path(), config.clone(), Io::Fault(disk.clone()))
            .unwrap_or_else(|e| panic!("recovery failed: {e}; crash {summary:?}"));
    let context = (&summary, &report, state.op);
    check_recovered(&log, models, &context);
    let mut tally = Tally {
        states: 1,
        pages_dropped: summary.pages_dropped,
        pages_torn: summary.pages_torn,
        bits_flipped: summary.bits_flipped,
        dir_ops_dropped: summary.dir_ops_pending - summary.dir_ops_kept,
        pages_lost_to_failed_sync: summary.pages_lost_to_failed_sync,
        tails_cut: u64::from(report.tail_cut.is_some()),
    };
    if depth > 0 {
        disk.capture_now().expect("capture");
        let recovered = Model {
            start: log.start_offset(),
            end: log.end_offset(),
            batches: batches_of(&log),
            acked: log.end_offset(),
        };
        let captures = disk.take_captures();
        let last = captures.len() - 1;
        for (i, s) in captures.iter().enumerate() {
            let seed = crash_seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9);
            let inner: Vec<&Model> = if i == last {
                vec![&recovered]
            } else {
                models.to_vec()
            };
            tally.add(verify_crash(s, seed, config, &inner, depth - 1));
        }
    }
    // The recovered log takes appends and a flush.
    let rec = Record {
        key: Some(b"after"),
        value: b"recovery",
        headers: &[],
        timestamp_ms: i64::MAX / 2,
        ttl_ms: 0,
    };
    log.append(&[rec], None, i64::MAX / 2)
        .unwrap_or_else(|e| panic!("append after recovery: {e}; {context:?}"));
    let job = log.begin_flush().expect("something to flush");
    let done = job.run().expect("flush after recovery");
    log.complete_flush(done);
    tally
}
