//! Seed inputs built from real logs, so the fuzzer starts from files storage actually writes
//! (every record feature, a zstd batch, an idempotent batch, sealed segments with index files)
//! instead of having to discover the formats from nothing.

use storage::format::{BATCH_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use storage::{Compression, LogConfig, PartitionLog, ProducerInfo, Record};

use super::index::template;
use super::segment::{segment_file, SegmentFixups};
use super::{scratch_dir, HarnessError};

/// Which fuzz target a seed is for; `name()` is the target's name and corpus directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedTarget {
    /// `fuzz_targets/storage_format.rs`, [`super::check_format`].
    Format,
    /// `fuzz_targets/storage_segment.rs`, [`super::check_segment_file`].
    Segment,
    /// `fuzz_targets/storage_index.rs`, [`super::check_index_files`].
    Index,
}

impl SeedTarget {
    pub const ALL: [SeedTarget; 3] = [SeedTarget::Format, SeedTarget::Segment, SeedTarget::Index];

    pub fn name(self) -> &'static str {
        match self {
            SeedTarget::Format => "storage_format",
            SeedTarget::Segment => "storage_segment",
            SeedTarget::Index => "storage_index",
        }
    }
}

/// One seed: target, a file name for the corpus, the bytes.
pub type Seed = (SeedTarget, String, Vec<u8>);

/// Builds every seed from freshly written logs.
pub fn seed_inputs() -> Result<Vec<Seed>, HarnessError> {
    let mut seeds = Vec::new();
    let (segment, batches) = feature_segment()?;

    // Format: the segment header, each batch as stored, and the sealed files of the template.
    seeds.push((
        SeedTarget::Format,
        "seed-segment-header".to_string(),
        segment[..SEGMENT_HEADER_BYTES].to_vec(),
    ));
    for (i, b) in batches.iter().enumerate() {
        seeds.push((SeedTarget::Format, format!("seed-batch-{i}"), b.clone()));
    }
    for (name, bytes) in template() {
        if !name.ends_with(".seg") {
            seeds.push((SeedTarget::Format, format!("seed-{name}"), bytes.clone()));
        }
    }

    // Segment: the file as written (no fix-ups), and its body under each fix-up combination.
    let mut raw = vec![SegmentFixups::default().to_byte()];
    raw.extend_from_slice(&segment);
    seeds.push((SeedTarget::Segment, "seed-raw".to_string(), raw));
    let body = &segment[SEGMENT_HEADER_BYTES..];
    for (name, fix, base_offset) in [
        ("seed-fixed-active", 0b0011, 0u64),
        ("seed-fixed-sealed", 0b0111, 0),
        ("seed-fixed-sealed-checkpoint", 0b1111, 0),
        ("seed-fixed-high-offsets", 0b1011, 1 << 40),
    ] {
        let mut input = vec![fix];
        input.extend_from_slice(&base_offset.to_le_bytes());
        input.extend_from_slice(body);
        seeds.push((SeedTarget::Segment, name.to_string(), input));
    }

    // Index: the real index files of each sealed segment, raw and as bare entries with fix-ups.
    for seq in 0..2u8 {
        let find = |ext: &str| {
            template()
                .iter()
                .find(|(n, _)| *n == format!("{seq:020}.{ext}"))
                .map(|(_, b)| b.clone())
                .ok_or(HarnessError::Seed {
                    seed: "seed-*-seq*",
                    reason: "the template log lacks an index file of a sealed segment",
                })
        };
        let (offsets, times) = (find("index")?, find("timeindex")?);
        for fix in [false, true] {
            let header = if fix { 32 } else { 0 };
            let (o, t) = (&offsets[header..], &times[header..]);
            let mut input = vec![u8::from(fix) | seq << 1];
            let len = u16::try_from(o.len()).map_err(|_| HarnessError::Seed {
                seed: "seed-*-seq*",
                reason: "offset index longer than the u16 length field",
            })?;
            input.extend_from_slice(&len.to_le_bytes());
            input.extend_from_slice(o);
            input.extend_from_slice(t);
            let kind = if fix { "entries" } else { "raw" };
            seeds.push((SeedTarget::Index, format!("seed-{kind}-seq{seq}"), input));
        }
    }
    Ok(seeds)
}

/// A batch with keys, headers and TTLs, an idempotent batch and a zstd batch, as stored, chained
/// into one active segment (by the same fix-ups the segment target applies). Returns the segment
/// file and each batch's stored bytes.
fn feature_segment() -> Result<(Vec<u8>, Vec<Vec<u8>>), HarnessError> {
    let plain = LogConfig {
        segment_bytes_max: 64 * 1024,
        ..LogConfig::default()
    };
    let mut batches = Vec::new();

    let dir = scratch_dir()?;
    let (mut log, _) = PartitionLog::open(dir.path(), plain.clone())?;
    let headers: [(&[u8], &[u8]); 2] = [(b"trace", b"abc"), (b"", b"")];
    let rec = |key: Option<&'static [u8]>, value: &'static [u8], ttl_ms: u32| Record {
        key,
        value,
        headers: &[],
        timestamp_ms: 5_000,
        ttl_ms,
    };
    let mut with_headers = rec(Some(b"key"), b"value with headers", 60_000);
    with_headers.headers = &headers;
    log.append(
        &[
            with_headers,
            rec(None, b"", 0),
            rec(Some(b""), b"empty key", 0),
        ],
        None,
        5_000,
    )?;
    let producer = ProducerInfo {
        producer_id: 42,
        epoch: 3,
        base_sequence: 7,
    };
    log.append(&[rec(Some(b"p"), b"idempotent", 0)], Some(producer), 5_001)?;
    batches.extend(stored_batches(&log)?);

    let dir = scratch_dir()?;
    let zstd = LogConfig {
        compression: Compression::Zstd { level: 3 },
        ..plain
    };
    let (mut log, _) = PartitionLog::open(dir.path(), zstd)?;
    let compressible = [b'z'; 600];
    let records: Vec<Record<'_>> = (0..4)
        .map(|_| Record {
            key: Some(b"zk"),
            value: &compressible,
            headers: &[],
            timestamp_ms: 5_002,
            ttl_ms: 0,
        })
        .collect();
    log.append(&records, None, 5_002)?;
    let zstd_batch = stored_batches(&log)?;
    if zstd_batch[0].len() >= BATCH_HEADER_BYTES + 4 * 600 {
        return Err(HarnessError::Seed {
            seed: "seed-batch-2",
            reason: "the zstd batch did not compress",
        });
    }
    batches.extend(zstd_batch);

    let fix = SegmentFixups {
        header: true,
        batches: true,
        sealed: false,
        checkpoint: false,
    };
    let mut input = vec![fix.to_byte()];
    input.extend_from_slice(&0u64.to_le_bytes());
    for b in &batches {
        input.extend_from_slice(b);
    }
    Ok((segment_file(&input), batches))
}

fn stored_batches(log: &PartitionLog) -> Result<Vec<Vec<u8>>, HarnessError> {
    let read = log.read(log.start_offset(), 1 << 20)?;
    Ok(read.batches.iter().map(|b| b.bytes().to_vec()).collect())
}
