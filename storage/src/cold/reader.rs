//! Read-through of the remote log: whole batches from an offset, fetched chunk by chunk with
//! range GETs and kept decompressed in a node-wide LRU bounded in bytes. Readers are `Send + Sync`
//! and run concurrently with each other and with uploads; each read works on one manifest
//! snapshot, so a concurrent manifest write never shows it half a change.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::cold::error::ColdError;
use crate::cold::manifest::{Manifest, RemoteSegment};
use crate::cold::object::{decode_chunk, Footer};
use crate::cold::reconcile::fetch_footer;
use crate::cold::store::ObjectStore;
use crate::cold::tier::SharedManifest;
use crate::fetch::{FetchedBatch, ReadResult};
use crate::format::{BatchHeader, BATCH_HEADER_BYTES};

/// A decompressed, verified chunk: its bytes and where each batch starts.
struct Chunk {
    raw: Bytes,
    batches: Vec<(BatchHeader, u32)>,
}

#[derive(Clone)]
enum Cached {
    Chunk(Arc<Chunk>),
    Footer(Arc<Footer>),
}

/// Cache key: object key and chunk index (`u32::MAX` for the footer).
type Key = (Arc<str>, u32);
const FOOTER_SLOT: u32 = u32::MAX;

#[derive(Default)]
struct Lru {
    map: HashMap<Key, (Cached, u64, u64)>,
    order: BTreeMap<u64, Key>,
    bytes: u64,
    tick: u64,
}

impl Lru {
    fn get(&mut self, key: &Key) -> Option<Cached> {
        self.tick += 1;
        let tick = self.tick;
        let (value, _, t) = self.map.get_mut(key)?;
        self.order.remove(t);
        *t = tick;
        self.order.insert(tick, key.clone());
        Some(value.clone())
    }

    fn insert(&mut self, key: Key, value: Cached, weight: u64, bytes_max: u64) {
        if weight > bytes_max {
            return;
        }
        if let Some((_, w, t)) = self.map.remove(&key) {
            self.order.remove(&t);
            self.bytes -= w;
        }
        while self.bytes + weight > bytes_max {
            let Some((_, victim)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, w, _)) = self.map.remove(&victim) {
                self.bytes -= w;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.map.insert(key, (value, weight, self.tick));
        self.bytes += weight;
    }
}

/// Node-wide cache of decompressed chunks and object footers, bounded in bytes. Fetches happen
/// outside the lock; two readers missing the same chunk at once may both fetch it.
pub struct ChunkCache {
    bytes_max: u64,
    lru: Mutex<Lru>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache")
            .field("bytes_max", &self.bytes_max)
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl ChunkCache {
    pub fn new(bytes_max: u64) -> ChunkCache {
        ChunkCache {
            bytes_max,
            lru: Mutex::new(Lru::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // A panic while holding the lock leaves the LRU consistent (every mutation completes
        // before anything that can panic), so a poisoned lock is still usable.
        self.lru.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &Key) -> Option<Cached> {
        let hit = self.lock().get(key);
        let counter = if hit.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    fn insert(&self, key: Key, value: Cached, weight: u64) {
        self.lock().insert(key, value, weight, self.bytes_max);
    }
}

/// Reads one partition's remote log. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct RemoteReader {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    manifest: SharedManifest,
    cache: Arc<ChunkCache>,
}

impl std::fmt::Debug for RemoteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteReader")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RemoteReader {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        prefix: String,
        manifest: SharedManifest,
        cache: Arc<ChunkCache>,
    ) -> RemoteReader {
        RemoteReader {
            store,
            prefix,
            manifest,
            cache,
        }
    }

    fn snapshot(&self) -> Arc<Manifest> {
        Arc::clone(&self.manifest.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// `[start, end)` of the remote log as of the last confirmed manifest.
    pub fn offsets(&self) -> (u64, u64) {
        let m = self.snapshot();
        (m.start_offset(), m.end_offset())
    }

    /// Whole batches holding offsets >= `offset`, up to about `max_bytes` (at least one batch
    /// when `offset` is below the remote end), byte-identical to the local segment they came
    /// from. A fetch failure after at least one batch ends the read early instead of failing it.
    pub fn read(&self, offset: u64, max_bytes: u32) -> Result<ReadResult, ColdError> {
        let m = self.snapshot();
        let (start, end) = (m.start_offset(), m.end_offset());
        if offset < start || offset > end {
            return Err(ColdError::OffsetOutOfRange { offset, start, end });
        }
        let mut batches: Vec<FetchedBatch> = Vec::new();
        let mut next = offset;
        let mut total: u64 = 0;
        let mut i = m.entry_at_or_after(offset).unwrap_or(m.entries.len());
        'segments: while i < m.entries.len() {
            let e = &m.entries[i];
            next = next.max(e.base_offset);
            match self.read_segment(e, &mut next, &mut total, max_bytes, &mut batches) {
                Ok(true) => break 'segments,
                Ok(false) => i += 1,
                Err(_) if !batches.is_empty() => break 'segments,
                Err(err) => return Err(err),
            }
        }
        Ok(ReadResult {
            batches,
            next_offset: next,
        })
    }

    /// Appends batches of one remote segment from `*next`; `Ok(true)` when `max_bytes` is reached.
    fn read_segment(
        &self,
        e: &RemoteSegment,
        next: &mut u64,
        total: &mut u64,
        max_bytes: u32,
        out: &mut Vec<FetchedBatch>,
    ) -> Result<bool, ColdError> {
        let key: Arc<str> = e.object_key(&self.prefix).into();
        let footer = self.footer(&key, e)?;
        let mut ci = footer
            .chunk_for(*next)
            .ok_or_else(|| ColdError::corrupt(&key, "no chunk holds a listed offset"))?;
        while ci < footer.chunks.len() {
            let chunk = self.chunk(&key, &footer, ci)?;
            for (h, pos) in &chunk.batches {
                if h.last_offset() < *next {
                    continue;
                }
                let len = u64::from(h.batch_bytes);
                if !out.is_empty() && *total + len > u64::from(max_bytes) {
                    return Ok(true);
                }
                let at = *pos as usize;
                out.push(FetchedBatch::new(
                    *h,
                    chunk.raw.slice(at..at + len as usize),
                ));
                *total += len;
                *next = h.last_offset() + 1;
            }
            ci += 1;
        }
        Ok(false)
    }

    fn footer(&self, key: &Arc<str>, e: &RemoteSegment) -> Result<Arc<Footer>, ColdError> {
        let slot = (Arc::clone(key), FOOTER_SLOT);
        if let Some(Cached::Footer(f)) = self.cache.get(&slot) {
            return Ok(f);
        }
        let f = fetch_footer(&*self.store, key, e.object_bytes, e.footer_bytes)?;
        let h = f.segment;
        if h.base_offset != e.base_offset
            || h.next_offset != e.next_offset
            || h.crc32c() != e.segment_header_crc32c
        {
            return Err(ColdError::corrupt(
                key,
                "footer does not match the manifest entry",
            ));
        }
        let f = Arc::new(f);
        self.cache.insert(
            slot,
            Cached::Footer(Arc::clone(&f)),
            u64::from(e.footer_bytes),
        );
        Ok(f)
    }

    fn chunk(&self, key: &Arc<str>, footer: &Footer, ci: usize) -> Result<Arc<Chunk>, ColdError> {
        let slot = (Arc::clone(key), ci as u32);
        if let Some(Cached::Chunk(c)) = self.cache.get(&slot) {
            return Ok(c);
        }
        let entry = &footer.chunks[ci];
        let stored = self
            .store
            .get_range(key, entry.stored_pos, u64::from(entry.stored_bytes))?;
        let raw = decode_chunk(&stored, entry, key)?;
        let batches = split_batches(&raw, entry.first_offset, entry.next_offset, key)?;
        if batches.len() != entry.batch_count as usize {
            return Err(ColdError::corrupt(key, "chunk batch count mismatch"));
        }
        let chunk = Arc::new(Chunk { raw, batches });
        self.cache.insert(
            slot,
            Cached::Chunk(Arc::clone(&chunk)),
            u64::from(entry.raw_bytes),
        );
        Ok(chunk)
    }
}

/// Splits a decompressed chunk into batches, checking framing, offset continuity from `first` to
/// `next` and every batch CRC (the pair of the checks made before upload).
fn split_batches(
    raw: &Bytes,
    first: u64,
    next: u64,
    key: &str,
) -> Result<Vec<(BatchHeader, u32)>, ColdError> {
    let mut out = Vec::new();
    let (mut pos, mut expected) = (0usize, first);
    while pos < raw.len() {
        let h = BatchHeader::decode(&raw[pos..]).map_err(|r| ColdError::corrupt(key, r))?;
        let len = h.batch_bytes as usize;
        if len < BATCH_HEADER_BYTES || len > raw.len() - pos {
            return Err(ColdError::corrupt(key, "batch length out of bounds"));
        }
        if h.base_offset != expected || !h.verify_crc(&raw[pos..pos + len]) {
            return Err(ColdError::corrupt(
                key,
                "batch discontinuous or checksum mismatch",
            ));
        }
        out.push((h, pos as u32));
        expected = h.last_offset() + 1;
        pos += len;
    }
    if expected != next {
        return Err(ColdError::corrupt(
            key,
            "chunk does not end where its entry says",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_least_recent_within_the_byte_limit() {
        let mut lru = Lru::default();
        let k = |n: u32| (Arc::<str>::from("o"), n);
        let v = || {
            Cached::Chunk(Arc::new(Chunk {
                raw: Bytes::new(),
                batches: Vec::new(),
            }))
        };
        lru.insert(k(1), v(), 40, 100);
        lru.insert(k(2), v(), 40, 100);
        assert!(lru.get(&k(1)).is_some());
        lru.insert(k(3), v(), 40, 100);
        assert!(lru.get(&k(2)).is_none(), "least recently used goes first");
        assert!(lru.get(&k(1)).is_some() && lru.get(&k(3)).is_some());
        assert_eq!(lru.bytes, 80);
        lru.insert(k(4), v(), 101, 100);
        assert!(
            lru.get(&k(4)).is_none(),
            "larger than the cache: not cached"
        );
        assert_eq!((lru.map.len(), lru.order.len()), (2, 2));
    }
}
