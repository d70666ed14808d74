//! The data under test: real sealed segments written by `storage::PartitionLog`, 1 KiB records in
//! batches of 16, with either incompressible values (xorshift bytes) or compressible ones
//! (JSON-like access-log lines with random ids, the kind of payload a streaming log carries).

use std::path::Path;

use benches::fixtures::BENCH_TIMESTAMP_MS;
use storage::cold::LocalSegment;
use storage::{AppendOutcome, LogConfig, PartitionLog, Record};

use crate::error::BenchError;

/// Records per appended batch.
pub const RECORDS_PER_BATCH: usize = 16;
/// Value bytes per record.
pub const RECORD_VALUE_BYTES: usize = 1024;
/// Appends between two group commits while filling the log.
const APPENDS_PER_FLUSH: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    Incompressible,
    Compressible,
}

impl Payload {
    pub const ALL: [Payload; 2] = [Payload::Incompressible, Payload::Compressible];

    pub fn name(self) -> &'static str {
        match self {
            Payload::Incompressible => "incompressible",
            Payload::Compressible => "compressible",
        }
    }
}

/// Deterministic pseudo-random numbers (xorshift64), seeded per record.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const PATHS: [&str; 6] = [
    "/api/v1/orders",
    "/api/v1/items",
    "/api/v2/search",
    "/static/app.js",
    "/login",
    "/api/v1/cart/checkout",
];
const METHODS: [&str; 3] = ["GET", "POST", "PUT"];
const REGIONS: [&str; 4] = ["eu-west-1", "us-east-2", "ap-south-1", "eu-central-1"];

/// The value of record `seq`: exactly [`RECORD_VALUE_BYTES`] bytes.
pub fn value(payload: Payload, seq: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seq);
    let mut out = Vec::with_capacity(RECORD_VALUE_BYTES);
    match payload {
        Payload::Incompressible => {
            while out.len() < RECORD_VALUE_BYTES {
                out.extend_from_slice(&rng.next().to_le_bytes());
            }
        }
        Payload::Compressible => {
            // Newline-separated JSON lines; ids, sizes and a trace token are random, the field
            // names and most values repeat (zstd level 3 gets about 3-5x on such logs).
            while out.len() < RECORD_VALUE_BYTES {
                let r = rng.next();
                let line = format!(
                    "{{\"ts\":{},\"user\":\"u-{:06}\",\"method\":\"{}\",\"path\":\"{}/{}\",\
                     \"status\":{},\"bytes\":{},\"region\":\"{}\",\"trace\":\"{:016x}\"}}\n",
                    BENCH_TIMESTAMP_MS as u64 + seq,
                    r % 1_000_000,
                    METHODS[(r >> 20) as usize % METHODS.len()],
                    PATHS[(r >> 24) as usize % PATHS.len()],
                    (r >> 28) % 10_000,
                    if (r >> 42).is_multiple_of(16) {
                        404
                    } else {
                        200
                    },
                    (r >> 46) % 65_536,
                    REGIONS[(r >> 62) as usize % REGIONS.len()],
                    rng.next(),
                );
                out.extend_from_slice(line.as_bytes());
            }
        }
    }
    out.truncate(RECORD_VALUE_BYTES);
    out
}

/// Appends batches to a fresh log in `dir` until it holds `segments` sealed, checkpointed
/// segments of about `segment_bytes_max` each; returns them (the active segment is not included).
pub fn write_segments(
    dir: &Path,
    payload: Payload,
    segment_bytes_max: u64,
    segments: usize,
) -> Result<(PartitionLog, Vec<LocalSegment>), BenchError> {
    let log_err = |source| BenchError::Log {
        dir: dir.display().to_string(),
        source: Box::new(source),
    };
    let config = LogConfig {
        segment_bytes_max,
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(dir, config).map_err(log_err)?;
    let mut seq = 0u64;
    let mut appends = 0u64;
    loop {
        let values: Vec<Vec<u8>> = (0..RECORDS_PER_BATCH)
            .map(|i| value(payload, seq + i as u64))
            .collect();
        seq += RECORDS_PER_BATCH as u64;
        let records: Vec<Record<'_>> = values
            .iter()
            .map(|v| Record {
                key: None,
                value: v,
                headers: &[],
                timestamp_ms: BENCH_TIMESTAMP_MS,
                ttl_ms: 0,
            })
            .collect();
        // Without a producer every append is written (no idempotent duplicate is possible).
        if let AppendOutcome::Duplicate { base_offset, .. } = log
            .append(&records, None, BENCH_TIMESTAMP_MS)
            .map_err(log_err)?
        {
            return Err(BenchError::Mismatch {
                what: "append without a producer reported a duplicate at offset",
                expected: log.end_offset(),
                got: base_offset,
            });
        }
        appends += 1;
        if appends.is_multiple_of(APPENDS_PER_FLUSH) {
            flush(&mut log).map_err(log_err)?;
            let sealed = log.tierable_segments();
            if sealed.len() >= segments {
                return Ok((log, sealed.into_iter().take(segments).collect()));
            }
        }
    }
}

fn flush(log: &mut PartitionLog) -> Result<(), storage::StorageError> {
    if let Some(job) = log.begin_flush() {
        let done = job.run()?;
        log.complete_flush(done);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_record_size_and_the_expected_compressibility() {
        for p in Payload::ALL {
            let sample: Vec<u8> = (0..64).flat_map(|s| value(p, s)).collect();
            assert_eq!(sample.len(), 64 * RECORD_VALUE_BYTES);
            let packed = zstd::bulk::compress(&sample, 3).unwrap();
            let ratio = sample.len() as f64 / packed.len() as f64;
            match p {
                Payload::Incompressible => assert!(ratio < 1.01, "{ratio}"),
                Payload::Compressible => assert!((2.0..12.0).contains(&ratio), "{ratio}"),
            }
        }
        assert_ne!(
            value(Payload::Compressible, 1),
            value(Payload::Compressible, 2)
        );
    }

    #[test]
    fn writes_the_requested_sealed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (log, segs) = write_segments(dir.path(), Payload::Compressible, 256 << 10, 3).unwrap();
        assert_eq!(segs.len(), 3);
        for pair in segs.windows(2) {
            assert_eq!(pair[0].next_offset, pair[1].base_offset);
        }
        assert!(segs.iter().all(|s| s.data_bytes > 200 << 10));
        assert!(log.end_offset() >= segs[2].next_offset);
    }
}
