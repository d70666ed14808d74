//! Read-through throughput: `RemoteReader::read` walking the whole remote log from its start, with
//! a cold and then a warm `ChunkCache`, next to plain rust-s3 `get_object_range` of the same byte
//! ranges (footer + chunks of the tier's objects) and of the matching raw ranges of the probe's
//! uncompressed copies. All readers are sequential, one request at a time, like one consumer.

use std::sync::Arc;

use s3::Bucket;
use storage::cold::reconcile::fetch_footer;
use storage::cold::{ChunkCache, Manifest, RemoteReader};
use storage::format::SEGMENT_HEADER_BYTES;

use crate::counting::CountingStore;
use crate::error::BenchError;
use crate::sys::{CpuSample, Spent};

/// One measured pass over the remote log.
#[derive(Debug, Clone, Copy)]
pub struct Read {
    pub spent: Spent,
    /// Bytes of batches delivered (decompressed): the numerator of every read MB/s.
    pub raw_bytes: u64,
    /// Body bytes received from the store.
    pub wire_bytes: u64,
    pub requests: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

/// One range GET of the probe.
#[derive(Debug, Clone)]
pub struct Range {
    pub key: String,
    pub start: u64,
    pub len: u64,
}

/// What the probes read for one remote log.
#[derive(Debug, Clone, Default)]
pub struct Ranges {
    /// Exactly the tier's cold-cache requests: per object the footer + trailer, then each chunk.
    pub tier_objects: Vec<Range>,
    /// The same batches as plain bytes of the probe's uncompressed segment copies, one range per
    /// chunk (chunks hold the batches in file order after the segment header).
    pub raw_copies: Vec<Range>,
    /// Bytes of batches both cover.
    pub raw_bytes: u64,
}

/// Builds the probe ranges from the manifest and the objects' footers (untimed).
pub fn ranges(
    store: &CountingStore,
    manifest: &Manifest,
    tier_prefix: &str,
    probe_key: impl Fn(u64) -> String,
) -> Result<Ranges, BenchError> {
    let mut out = Ranges::default();
    for e in &manifest.entries {
        let key = e.object_key(tier_prefix);
        let footer = fetch_footer(store, &key, e.object_bytes, e.footer_bytes)
            .map_err(BenchError::cold("fetch footer for the probe"))?;
        let tail = u64::from(e.footer_bytes) + storage::cold::object::TRAILER_BYTES as u64;
        out.tier_objects.push(Range {
            key: key.clone(),
            start: e.object_bytes - tail,
            len: tail,
        });
        let copy = probe_key(e.base_offset);
        let mut raw_pos = SEGMENT_HEADER_BYTES as u64;
        for c in &footer.chunks {
            out.tier_objects.push(Range {
                key: key.clone(),
                start: c.stored_pos,
                len: u64::from(c.stored_bytes),
            });
            out.raw_copies.push(Range {
                key: copy.clone(),
                start: raw_pos,
                len: u64::from(c.raw_bytes),
            });
            raw_pos += u64::from(c.raw_bytes);
        }
        BenchError::check(
            "raw bytes of a segment's chunks",
            SEGMENT_HEADER_BYTES as u64 + e.data_bytes,
            raw_pos,
        )?;
        out.raw_bytes += e.data_bytes;
    }
    Ok(out)
}

/// Reads the whole remote log sequentially, `fetch_max_bytes` per call (one consumer fetch),
/// through `cache`, checking that every offset arrives once and in order.
pub fn tier_read(
    reader: &RemoteReader,
    cache: &ChunkCache,
    store: &CountingStore,
    fetch_max_bytes: u32,
    server_pid: Option<u32>,
) -> Result<Read, BenchError> {
    let (start, end) = reader.offsets();
    let (hits0, misses0) = (cache.hits(), cache.misses());
    let traffic0 = store.traffic();
    let clock = CpuSample::now(server_pid);
    let mut offset = start;
    let mut raw_bytes = 0u64;
    while offset < end {
        let r = reader
            .read(offset, fetch_max_bytes)
            .map_err(BenchError::cold("remote read"))?;
        for b in &r.batches {
            BenchError::check(
                "base offset of the next remote batch",
                offset,
                b.base_offset(),
            )?;
            raw_bytes += b.bytes().len() as u64;
            offset = b.last_offset() + 1;
        }
        BenchError::check("next offset of a remote read", offset, r.next_offset)?;
        if r.batches.is_empty() {
            return Err(BenchError::Mismatch {
                what: "a remote read below the end returned no batch at offset",
                expected: end,
                got: offset,
            });
        }
    }
    let spent = clock.since(server_pid);
    let traffic = store.traffic().minus(traffic0);
    Ok(Read {
        spent,
        raw_bytes,
        wire_bytes: traffic.bytes_received,
        requests: traffic.requests,
        cache_hits: cache.hits() - hits0,
        cache_misses: cache.misses() - misses0,
    })
}

/// GETs `ranges` one after the other with rust-s3's `get_object_range`, checking each length.
/// `raw_bytes` is the batch bytes these ranges stand for (the same numerator as the tier's).
pub fn probe_read(
    bucket: &Bucket,
    ranges: &[Range],
    raw_bytes: u64,
    server_pid: Option<u32>,
) -> Result<Read, BenchError> {
    let clock = CpuSample::now(server_pid);
    let mut wire_bytes = 0u64;
    for r in ranges {
        let body = bucket
            .get_object_range(&r.key, r.start, Some(r.start + r.len - 1))
            .map_err(|e| BenchError::Probe {
                op: "get_object_range",
                key: r.key.clone(),
                reason: e.to_string(),
            })?;
        BenchError::check(
            "probe range GET length",
            r.len,
            body.as_slice().len() as u64,
        )?;
        wire_bytes += r.len;
    }
    Ok(Read {
        spent: clock.since(server_pid),
        raw_bytes,
        wire_bytes,
        requests: ranges.len() as u64,
        cache_hits: 0,
        cache_misses: 0,
    })
}

/// A reader of `tier` with its own cache of `cache_bytes`.
pub fn fresh_reader(
    tier: &storage::cold::PartitionTier,
    cache_bytes: u64,
) -> (RemoteReader, Arc<ChunkCache>) {
    let cache = Arc::new(ChunkCache::new(cache_bytes));
    (tier.reader(Arc::clone(&cache)), cache)
}
