//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use storage::{AppendOutcome, LogConfig, PartitionLog, Record, StoredRecord};

/// Small segments so that rolls happen within a few batches.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 8192,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

pub fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).expect("open").0
}

/// Deterministic value bytes for record `n` of length `len`.
pub fn value(n: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (n as usize * 31 + i * 7) as u8).collect()
}

/// Appends `count` records with values of `len` bytes, timestamps `ts`, returns the outcome.
pub fn append_n(log: &mut PartitionLog, count: usize, len: usize, ts: i64) -> AppendOutcome {
    let end = log.end_offset();
    let values: Vec<Vec<u8>> = (0..count).map(|i| value(end + i as u64, len)).collect();
    let records: Vec<Record<'_>> = values
        .iter()
        .map(|v| Record {
            key: None,
            value: v,
            headers: &[],
            timestamp_ms: ts,
            ttl_ms: 0,
        })
        .collect();
    log.append(&records, None, ts).expect("append")
}

/// Runs a group commit to completion.
pub fn flush(log: &mut PartitionLog) {
    if let Some(job) = log.begin_flush() {
        let done = job.run().expect("flush");
        log.complete_flush(done);
    }
}

/// Every record from `from` to the end, via repeated reads.
pub fn read_all(log: &PartitionLog, from: u64, now_ms: i64) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    let mut at = from;
    while at < log.end_offset() {
        let r = log.read(at, 4096).expect("read");
        assert!(
            !r.batches.is_empty(),
            "read at {at} returned nothing before the end"
        );
        for b in &r.batches {
            out.extend(b.records(at, now_ms).expect("records"));
        }
        at = r.next_offset;
    }
    out
}

/// The raw bytes of every batch from `from` to the end.
pub fn raw_batches(log: &PartitionLog, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < log.end_offset() {
        let r = log.read(at, 1 << 20).expect("read");
        for b in &r.batches {
            out.push((b.base_offset(), b.bytes().to_vec()));
        }
        at = r.next_offset;
    }
    out
}

/// A temp dir on tmpfs when there is one: crash states are simulated by editing files, so real
/// fsync latency only slows those tests down.
pub fn fast_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().expect("tempdir")
}
