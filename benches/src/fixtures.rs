//! Workloads and prepared logs shared by the benchmarks, so every bench and its hardware probe agree
//! on byte counts.

use std::fmt;
use std::path::Path;

use net::codec::{Acks, ErrorCode, FetchedRecordView, RecordView, Request, Response};
use storage::format::{BATCH_HEADER_BYTES, RECORD_PREFIX_BYTES};
use storage::{LogConfig, PartitionLog, Record, StorageError};

/// Timestamp given to every benchmark record and used as `now_ms` for appends.
pub const BENCH_TIMESTAMP_MS: i64 = 1_700_000_000_000;

/// One batch shape: `records` records of `value_bytes` each, no key, no headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub records: u32,
    pub value_bytes: u32,
}

impl Workload {
    pub const fn new(records: u32, value_bytes: u32) -> Workload {
        Workload {
            records,
            value_bytes,
        }
    }

    /// Bytes the batch occupies in a segment: the batch header plus, per record, the fixed record
    /// prefix and the value (see `docs/log-format.md`). This is what one append writes.
    pub fn stored_batch_bytes(&self) -> u64 {
        BATCH_HEADER_BYTES as u64
            + u64::from(self.records) * (RECORD_PREFIX_BYTES as u64 + u64::from(self.value_bytes))
    }

    /// Deterministic, non-constant value bytes (a constant pattern would flatter compression).
    pub fn values(&self) -> Vec<Vec<u8>> {
        (0..self.records)
            .map(|r| {
                (0..self.value_bytes)
                    .map(|i| (r.wrapping_mul(131).wrapping_add(i.wrapping_mul(7))) as u8)
                    .collect()
            })
            .collect()
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value_bytes.is_multiple_of(1024) {
            write!(f, "{}x{}KiB", self.records, self.value_bytes / 1024)
        } else {
            write!(f, "{}x{}B", self.records, self.value_bytes)
        }
    }
}

/// Storage records borrowing `values`.
pub fn storage_records(values: &[Vec<u8>]) -> Vec<Record<'_>> {
    values
        .iter()
        .map(|v| Record {
            key: None,
            value: v,
            headers: &[],
            timestamp_ms: BENCH_TIMESTAMP_MS,
            ttl_ms: 0,
        })
        .collect()
}

/// A `Produce` request (acks = leader, no idempotent producer) carrying `values`.
pub fn produce_request(values: &[Vec<u8>]) -> Request<'_> {
    Request::Produce {
        topic: "bench",
        partition: 0,
        acks: Acks::Leader,
        producer: None,
        records: values
            .iter()
            .map(|v| RecordView {
                key: None,
                value: v,
                headers: Vec::new(),
                timestamp_ms: BENCH_TIMESTAMP_MS,
                ttl_ms: 0,
            })
            .collect(),
    }
}

/// A `Fetch` response delivering `values` as consecutive offsets from 1000.
pub fn fetch_response(values: &[Vec<u8>]) -> Response<'_> {
    Response::Fetch {
        error: ErrorCode::None,
        message: "",
        high_offset: 1000 + values.len() as u64,
        start_offset: 0,
        records: values
            .iter()
            .enumerate()
            .map(|(i, v)| FetchedRecordView {
                offset: 1000 + i as u64,
                timestamp_ms: BENCH_TIMESTAMP_MS,
                key: None,
                value: v,
                headers: Vec::new(),
            })
            .collect(),
    }
}

/// Opens a log in `dir` and installs a prepared (preallocated, prefaulted) next segment, so that a
/// roll during the benchmark takes the fast path the engine takes, not the synchronous fallback.
pub fn open_log(dir: &Path, config: LogConfig) -> Result<PartitionLog, StorageError> {
    let (mut log, _report) = PartitionLog::open(dir, config)?;
    ensure_prepared(&mut log)?;
    Ok(log)
}

/// Runs the segment job inline if the log has no prepared segment (the engine runs it on a
/// blocking pool). Benchmarks call this outside the timed region.
pub fn ensure_prepared(log: &mut PartitionLog) -> Result<(), StorageError> {
    if let Some(job) = log.prepare_segment_job() {
        match job.run() {
            Ok(seg) => log.install_prepared(seg),
            Err(e) => {
                log.prepare_failed();
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Runs the due prefault job inline, if any, so that the active segment's reserved, prefaulted
/// frontier stays ahead of the appends (the engine runs it on a blocking pool after an append).
/// Benchmarks call this outside the timed region.
pub fn run_prefault_jobs(log: &mut PartitionLog) -> Result<(), StorageError> {
    while let Some(job) = log.prefault_job() {
        match job.run() {
            Ok(done) => log.complete_prefault(done),
            Err(e) => {
                log.prefault_failed();
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Appends `batches` batches of `workload` and returns the base offset of each.
pub fn fill_log(
    log: &mut PartitionLog,
    workload: Workload,
    batches: u32,
) -> Result<Vec<u64>, StorageError> {
    let values = workload.values();
    let records = storage_records(&values);
    let mut bases = Vec::with_capacity(batches as usize);
    for _ in 0..batches {
        ensure_prepared(log)?;
        match log.append(&records, None, BENCH_TIMESTAMP_MS)? {
            storage::AppendOutcome::Appended { base_offset, .. } => bases.push(base_offset),
            storage::AppendOutcome::Duplicate { .. } => {
                unreachable!("appends without a producer id are never duplicates")
            }
        }
    }
    Ok(bases)
}

/// Runs one group commit to completion, if anything is dirty.
pub fn flush(log: &mut PartitionLog) -> Result<(), StorageError> {
    if let Some(job) = log.begin_flush() {
        match job.run() {
            Ok(done) => log.complete_flush(done),
            Err(e) => {
                log.flush_failed();
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Directory for benchmark logs: `$SPRAWL_BENCH_DIR` if set (to compare file systems), else the
/// system temp dir. Removed when dropped.
pub fn bench_dir() -> std::io::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("sprawl-bench-");
    match std::env::var_os("SPRAWL_BENCH_DIR") {
        Some(base) => builder.tempdir_in(base),
        None => builder.tempdir(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_batch_bytes_matches_what_append_writes() {
        let dir = tempfile::tempdir().unwrap();
        for w in [Workload::new(16, 1024), Workload::new(64, 128)] {
            let mut log = open_log(dir.path(), LogConfig::default()).unwrap();
            let before = log.stats().appended_bytes;
            fill_log(&mut log, w, 1).unwrap();
            assert_eq!(log.stats().appended_bytes - before, w.stored_batch_bytes());
            log.close().unwrap();
        }
        assert_eq!(Workload::new(16, 1024).stored_batch_bytes(), 17_024);
        assert_eq!(Workload::new(64, 128).stored_batch_bytes(), 10_560);
        assert_eq!(Workload::new(16, 1024).to_string(), "16x1KiB");
        assert_eq!(Workload::new(64, 128).to_string(), "64x128B");
    }
}
