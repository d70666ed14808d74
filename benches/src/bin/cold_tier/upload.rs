//! Upload throughput: the cold tier archiving sealed segments (read, verify, zstd, PUT or
//! multipart, manifest writes) next to the plain rust-s3 probe that PUTs the same segment bytes
//! with the same number of requests in flight.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use s3::Bucket;
use storage::cold::{
    put_multipart, LocalSegment, ManifestDone, PartitionTier, TierConfig, UploadDone,
};
use storage::format::SEGMENT_HEADER_BYTES;

use crate::counting::{CountingStore, Traffic};
use crate::error::BenchError;
use crate::sys::{CpuSample, Spent};

/// `now_ms` handed to the tier: later than every record, so a zero-age policy tiers everything.
pub const TIER_NOW_MS: i64 = benches::fixtures::BENCH_TIMESTAMP_MS + 3_600_000;

/// One measured upload of a set of segments.
#[derive(Debug, Clone, Copy)]
pub struct Upload {
    pub spent: Spent,
    pub segments: u64,
    /// Bytes of the segment files (header + batches): what is archived.
    pub raw_bytes: u64,
    /// Body bytes sent to the store (objects, parts, manifests).
    pub wire_bytes: u64,
    pub requests: u64,
}

/// Raw bytes of the sealed segments: the unit every MB/s in the report counts.
pub fn segment_bytes(local: &[LocalSegment]) -> u64 {
    local
        .iter()
        .map(|s| SEGMENT_HEADER_BYTES as u64 + s.data_bytes)
        .sum()
}

enum Finished {
    Upload(Box<UploadDone>),
    Manifest(Box<ManifestDone>),
}

/// Tiers every segment of `local` through `PartitionTier`'s job API the way an engine with a
/// blocking pool would: up to `config.uploads_in_flight_max` uploads running at any time (a new
/// one starts as soon as one finishes), manifest writes as soon as uploads are confirmed, one at a
/// time. Opening the tier (manifest load, bucket listing) is not timed. Returns the tier, whose
/// manifest now lists every segment, for the read benchmark.
pub fn tier_upload(
    store: &Arc<CountingStore>,
    config: TierConfig,
    local: &[LocalSegment],
    server_pid: Option<u32>,
) -> Result<(PartitionTier, Upload), BenchError> {
    let dyn_store: Arc<dyn storage::cold::ObjectStore> = store.clone();
    let (mut tier, _report) = PartitionTier::open(dyn_store, config, local, TIER_NOW_MS)
        .map_err(BenchError::cold("open tier"))?;
    let end_offset = local.last().map_or(0, |s| s.next_offset);
    let traffic_before = store.traffic();
    let clock = CpuSample::now(server_pid);
    std::thread::scope(|scope| -> Result<(), BenchError> {
        let (tx, rx) = mpsc::channel::<Finished>();
        let mut running = 0usize;
        let mut manifest_running = false;
        loop {
            for job in tier.upload_jobs(local, TIER_NOW_MS) {
                let tx = tx.clone();
                running += 1;
                scope.spawn(move || tx.send(Finished::Upload(Box::new(job.run()))));
            }
            if !manifest_running {
                if let Some(job) = tier.manifest_job(TIER_NOW_MS) {
                    let tx = tx.clone();
                    running += 1;
                    manifest_running = true;
                    scope.spawn(move || tx.send(Finished::Manifest(Box::new(job.run()))));
                }
            }
            if running == 0 {
                return Ok(());
            }
            // Every spawned job sends exactly once and `tx` lives here, so this cannot hang up.
            let Ok(done) = rx.recv() else {
                return Err(BenchError::Mismatch {
                    what: "upload jobs still running when their channel closed",
                    expected: 0,
                    got: running as u64,
                });
            };
            running -= 1;
            match done {
                Finished::Upload(d) => tier
                    .complete_upload(*d)
                    .map_err(BenchError::cold("upload"))?,
                Finished::Manifest(d) => {
                    manifest_running = false;
                    tier.complete_manifest(*d)
                        .map_err(BenchError::cold("manifest write"))?;
                }
            }
        }
    })?;
    let spent = clock.since(server_pid);
    let traffic = store.traffic().minus(traffic_before);
    BenchError::check(
        "remote end offset after the tier upload",
        end_offset,
        tier.manifest().end_offset(),
    )?;
    Ok((
        tier,
        Upload {
            spent,
            segments: local.len() as u64,
            raw_bytes: segment_bytes(local),
            wire_bytes: traffic.bytes_sent,
            requests: traffic.requests,
        },
    ))
}

/// The plain rust-s3 client the probe uses (its own `Bucket`, same endpoint, path style and
/// timeout as the tier's `S3Store`), plus an uncounted `S3Store` for `put_multipart`.
pub struct Probe {
    pub bucket: Box<Bucket>,
    pub store: storage::cold::S3Store,
}

/// Reads the segment file's header and batches (what the tier archives, without the
/// preallocated tail) into memory.
pub fn read_segment_file(s: &LocalSegment) -> Result<Vec<u8>, BenchError> {
    let len = SEGMENT_HEADER_BYTES as u64 + s.data_bytes;
    let file = std::fs::File::open(&s.path).map_err(BenchError::io("open segment", &s.path))?;
    let mut body = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len)
        .read_to_end(&mut body)
        .map_err(BenchError::io("read segment", &s.path))?;
    BenchError::check("segment file bytes read", len, body.len() as u64)?;
    Ok(body)
}

/// Key of the probe's copy of a segment.
pub fn probe_key(prefix: &str, s: &LocalSegment) -> String {
    format!("{prefix}/{:020}.seg", s.base_offset)
}

/// Uploads the same segment bytes with plain rust-s3 calls, `in_flight` workers pulling segments
/// oldest first: `put_object` below `multipart_threshold_bytes`, `put_multipart` in parts of
/// `part_bytes` above, exactly the rule the tier applies to its objects. Each worker reads the
/// segment file itself, as the tier's upload job does.
pub fn probe_upload(
    probe: &Probe,
    prefix: &str,
    local: &[LocalSegment],
    in_flight: usize,
    (multipart_threshold_bytes, part_bytes): (u64, u64),
    server_pid: Option<u32>,
) -> Result<Upload, BenchError> {
    let next = AtomicUsize::new(0);
    let clock = CpuSample::now(server_pid);
    let results: Vec<Result<Traffic, BenchError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..in_flight.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<Traffic, BenchError> {
                    let mut t = Traffic::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(s) = local.get(i) else {
                            return Ok(t);
                        };
                        let body = read_segment_file(s)?;
                        let key = probe_key(prefix, s);
                        if body.len() as u64 >= multipart_threshold_bytes {
                            let parts = put_multipart(&probe.store, &key, &body, part_bytes)
                                .map_err(BenchError::store("probe multipart upload", &key))?;
                            t.requests += u64::from(parts) + 2;
                        } else {
                            probe.bucket.put_object(&key, &body).map_err(|e| {
                                BenchError::Probe {
                                    op: "put_object",
                                    key: key.clone(),
                                    reason: e.to_string(),
                                }
                            })?;
                            t.requests += 1;
                        }
                        t.bytes_sent += body.len() as u64;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let spent = clock.since(server_pid);
    let mut total = Traffic::default();
    for r in results {
        let t = r?;
        total.requests += t.requests;
        total.bytes_sent += t.bytes_sent;
    }
    let raw_bytes = segment_bytes(local);
    BenchError::check("probe bytes uploaded", raw_bytes, total.bytes_sent)?;
    Ok(Upload {
        spent,
        segments: local.len() as u64,
        raw_bytes,
        wire_bytes: total.bytes_sent,
        requests: total.requests,
    })
}
