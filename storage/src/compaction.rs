//! Key compaction for compacted topics, as a background job.
//!
//! Semantics: in the rewritten (sealed, checkpointed, not newest) segments a keyed record survives
//! only if it is the latest record for its key anywhere in the log; records without a key survive;
//! records whose TTL expired are dropped. A **tombstone** is a keyed record with an empty value: it is
//! the latest value of its key, so it survives (consumers must see the delete) while every older
//! value of the key is removed. Dropping tombstones themselves after a grace period is not done.
//!
//! Offsets never change. A batch keeps its header span (base offset, `record_count` offsets,
//! timestamps, producer fields, so idempotent-producer state and offset continuity survive) and is
//! marked `compacted`; a batch that loses every record stays as a bare 64-byte header. The new
//! segment is written next to the old one as `{seq}.seg.compacting` (plus index files) by the job;
//! [`PartitionLog::install_compaction`] renames it over the original. Readers holding `Bytes` of the
//! old file keep its mapping; the index files are bound to the new header's CRC, so any crash
//! between renames leaves either version with a valid or rebuildable index.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::StorageError;
use crate::fetch::{FetchedBatch, StoredRecord};
use crate::format::{
    encode_record, record_bytes, seal_batch_crc, BatchHeader, RecordFields, SegmentHeader,
    SegmentState, ATTR_COMPACTED, BATCH_HEADER_BYTES, NEVER_EXPIRES, SEGMENT_HEADER_BYTES,
};
use crate::index::{index_paths, write_index_files, IndexOwner};
use crate::log::PartitionLog;
use crate::segment::{segment_path, sync_dir, Segment};

/// Distinct keys a compaction pass may track; a log with more keys is not compacted.
pub const COMPACTION_KEYS_MAX: usize = 4_000_000;
const TMP_SUFFIX: &str = ".compacting";

struct Snapshot {
    seq: u64,
    header: SegmentHeader,
    data: Bytes,
}

/// A compaction pass, produced by [`PartitionLog::compaction_job`]. `Send`; run it off the reactor.
pub struct CompactionJob {
    io: crate::io::Io,
    dir: PathBuf,
    now_ms: i64,
    snapshots: Vec<Snapshot>,
    targets: usize,
    interval: u32,
    zstd_level: i32,
}

impl std::fmt::Debug for CompactionJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactionJob")
            .field("dir", &self.dir)
            .field("targets", &self.targets)
            .finish()
    }
}

/// Rewritten segments waiting for [`PartitionLog::install_compaction`].
pub struct CompactionDone {
    segments: Vec<(u32, Segment)>,
    pub stats: CompactionStats,
}

impl std::fmt::Debug for CompactionDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactionDone")
            .field("stats", &self.stats)
            .finish()
    }
}

/// What a compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    pub segments_rewritten: u64,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Walks the batches of a snapshot.
fn batches(s: &Snapshot, dir: &Path) -> Result<Vec<FetchedBatch>, StorageError> {
    let path = segment_path(dir, s.seq);
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < s.data.len() {
        let pos = (at + SEGMENT_HEADER_BYTES) as u64;
        let h =
            BatchHeader::decode(&s.data[at..]).map_err(|r| StorageError::corrupt(&path, pos, r))?;
        let end = at + h.batch_bytes as usize;
        if end > s.data.len() {
            return Err(StorageError::corrupt(
                &path,
                pos,
                "batch past the end of data",
            ));
        }
        out.push(FetchedBatch::new(h, s.data.slice(at..end)));
        at = end;
    }
    Ok(out)
}

fn all_records(b: &FetchedBatch, path: &Path) -> Result<Vec<StoredRecord>, StorageError> {
    b.records(0, i64::MIN)
        .map_err(|e| crate::log::relabel(e, path, 0))
}

impl CompactionJob {
    /// Builds the key map over every segment, then rewrites the target segments. Blocking.
    pub fn run(self) -> Result<CompactionDone, StorageError> {
        let mut latest: HashMap<Bytes, u64> = HashMap::new();
        for s in &self.snapshots {
            let path = segment_path(&self.dir, s.seq);
            for b in batches(s, &self.dir)? {
                for r in all_records(&b, &path)? {
                    if let Some(k) = r.key {
                        if latest.len() >= COMPACTION_KEYS_MAX && !latest.contains_key(&k) {
                            return Err(StorageError::CompactionKeyLimit {
                                keys_max: COMPACTION_KEYS_MAX,
                            });
                        }
                        latest.insert(k, r.offset);
                    }
                }
            }
        }
        let mut done = CompactionDone {
            segments: Vec::new(),
            stats: CompactionStats::default(),
        };
        for s in &self.snapshots[..self.targets] {
            let seg = self.rewrite(s, &latest, &mut done.stats)?;
            done.segments.push((s.header.crc32c(), seg));
        }
        if !done.segments.is_empty() {
            sync_dir(&self.io, &self.dir)?;
        }
        Ok(done)
    }

    fn rewrite(
        &self,
        s: &Snapshot,
        latest: &HashMap<Bytes, u64>,
        stats: &mut CompactionStats,
    ) -> Result<Segment, StorageError> {
        let path = segment_path(&self.dir, s.seq);
        let mut out = vec![0u8; SEGMENT_HEADER_BYTES];
        let mut scratch = Vec::new();
        for b in batches(s, &self.dir)? {
            let records = all_records(&b, &path)?;
            let keep: Vec<&StoredRecord> = records
                .iter()
                .filter(|r| r.expires_at_ms.is_none_or(|e| e > self.now_ms))
                .filter(|r| {
                    r.key
                        .as_ref()
                        .is_none_or(|k| latest.get(k) == Some(&r.offset))
                })
                .collect();
            stats.records_removed += (records.len() - keep.len()) as u64;
            if keep.len() == records.len() {
                out.extend_from_slice(b.bytes());
                continue;
            }
            self.encode_compacted(&b, &keep, &mut scratch, &mut out)?;
        }
        stats.segments_rewritten += 1;
        stats.bytes_before += s.data.len() as u64;
        stats.bytes_after += (out.len() - SEGMENT_HEADER_BYTES) as u64;

        // Write, map, index and seal the new file under a temporary name.
        let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", path.display()));
        let mut header = s.header;
        header.state = SegmentState::Sealed;
        header.encode(&mut out);
        drop(
            self.io
                .write_file(&tmp, &[&out])
                .map_err(|e| StorageError::io(&tmp, "write compacted segment", e))?,
        );
        let (file, map) = Segment::open_file(&tmp)?;
        let mut seg = Segment::from_parts(tmp.clone(), file, map, header);
        let end = out.len() as u64;
        let mut pos = SEGMENT_HEADER_BYTES as u64;
        while pos < end {
            let h = BatchHeader::decode(seg.view(pos, BATCH_HEADER_BYTES))
                .map_err(|r| StorageError::corrupt(&tmp, pos, r))?;
            seg.note_batch(pos, &h, self.interval);
            pos += u64::from(h.batch_bytes);
        }
        seg.seal();
        self.io
            .sync_data(&tmp, &seg.file)
            .map_err(|e| StorageError::io(&tmp, "fdatasync", e))?;
        let owner = IndexOwner {
            seq: s.seq,
            segment_header_crc32c: seg.header.crc32c(),
        };
        write_index_files(
            &self.io,
            &index_paths(&self.dir, s.seq, TMP_SUFFIX),
            owner,
            &seg.offset_index,
            &seg.time_index,
        )?;
        Ok(seg)
    }

    /// Re-encodes `keep` as a compacted batch with `b`'s span and producer fields.
    fn encode_compacted(
        &self,
        b: &FetchedBatch,
        keep: &[&StoredRecord],
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        scratch.clear();
        for r in keep {
            let headers: Vec<(&[u8], &[u8])> = r.headers.iter().collect();
            let n = record_bytes(r.key.as_deref(), &r.value, &headers) as usize;
            let at = scratch.len();
            scratch.resize(at + n, 0);
            encode_record(
                &RecordFields {
                    offset_delta: (r.offset - b.base_offset()) as u32,
                    timestamp_ms: r.timestamp_ms,
                    expires_at_ms: r.expires_at_ms.unwrap_or(NEVER_EXPIRES),
                    key: r.key.as_deref(),
                    value: &r.value,
                    headers: &headers,
                },
                &mut scratch[at..],
            );
        }
        let raw_len = scratch.len();
        let mut payload: &[u8] = scratch;
        let compressed;
        let mut zstd = false;
        if b.compression() != crate::Compression::None && raw_len > 0 {
            compressed = zstd::bulk::compress(scratch, self.zstd_level)
                .map_err(|e| StorageError::io(&self.dir, "zstd compress", e))?;
            if compressed.len() < raw_len {
                payload = &compressed;
                zstd = true;
            }
        }
        let (pid, epoch, seq) =
            b.producer()
                .unwrap_or((crate::format::NO_PRODUCER_ID, 0, crate::format::NO_SEQUENCE));
        let header = BatchHeader {
            batch_bytes: (BATCH_HEADER_BYTES + payload.len()) as u32,
            crc32c: 0,
            base_offset: b.base_offset(),
            first_timestamp_ms: b.first_timestamp_ms(),
            max_timestamp_ms: b.max_timestamp_ms(),
            max_expires_at_ms: keep
                .iter()
                .map(|r| r.expires_at_ms.unwrap_or(i64::MAX))
                .max()
                .unwrap_or(i64::MIN),
            producer_id: pid,
            record_count: b.record_count(),
            base_sequence: seq,
            records_bytes: raw_len as u32,
            producer_epoch: epoch,
            attributes: BatchHeader::attributes_for(zstd) | ATTR_COMPACTED,
        };
        let start = out.len();
        out.resize(start + BATCH_HEADER_BYTES, 0);
        header.encode(&mut out[start..]);
        out.extend_from_slice(payload);
        seal_batch_crc(&mut out[start..]);
        Ok(())
    }
}

impl PartitionLog {
    /// A compaction pass over the sealed, checkpointed segments (never the newest one), or `None`
    /// if the topic is not compacted, a pass is in flight, or no segment was sealed since the last
    /// pass. `now_ms` drives TTL expiry during the rewrite.
    pub fn compaction_job(&mut self, now_ms: i64) -> Option<CompactionJob> {
        self.compaction_job_below(now_ms, u64::MAX)
    }

    /// [`Self::compaction_job`] that sees only whole segments below `bound`: their records make
    /// the key map and only they are rewritten. A replicated partition passes its high
    /// watermark, so a record that a follower may still truncate (above the watermark) never
    /// decides that an older, committed value of its key is gone.
    pub fn compaction_job_below(&mut self, now_ms: i64, bound: u64) -> Option<CompactionJob> {
        if !self.config.compacted || self.compaction_in_flight || self.fenced {
            return None;
        }
        let newest = self.segments.len().checked_sub(1)?;
        let below = self.checkpoint_offset.min(bound);
        let targets = self.segments[..newest]
            .iter()
            .take_while(|s| s.is_sealed() && s.next_offset <= below)
            .count();
        if targets == 0 || self.segments[targets - 1].next_offset <= self.compacted_through {
            return None;
        }
        let snapshots = self
            .segments
            .iter()
            .take_while(|s| bound == u64::MAX || s.next_offset <= bound)
            .map(|s| Snapshot {
                seq: s.seq,
                header: s.header,
                data: s.bytes(SEGMENT_HEADER_BYTES as u64, s.data_bytes() as usize),
            })
            .collect();
        self.compaction_in_flight = true;
        Some(CompactionJob {
            io: self.io.clone(),
            dir: self.dir.clone(),
            now_ms,
            snapshots,
            targets,
            interval: self.config.index_interval_bytes,
            zstd_level: match self.config.compression {
                crate::Compression::Zstd { level } => level,
                crate::Compression::None => 3,
            },
        })
    }

    /// Renames the rewritten segments over the originals and swaps them in. A segment removed or
    /// changed meanwhile (retention, truncation) is skipped and its files deleted. Does a few
    /// renames and a directory fsync: call it from a low-priority queue.
    pub fn install_compaction(
        &mut self,
        done: CompactionDone,
    ) -> Result<CompactionStats, StorageError> {
        self.compaction_in_flight = false;
        for (original_crc, mut seg) in done.segments {
            let [tmp_index, tmp_time] = index_paths(&self.dir, seg.seq, TMP_SUFFIX);
            let current = self
                .segments
                .iter()
                .position(|s| s.seq == seg.seq && s.header.crc32c() == original_crc);
            let Some(i) = current else {
                for p in [&seg.path, &tmp_index, &tmp_time] {
                    self.io
                        .remove_file(p)
                        .map_err(|e| StorageError::io(p, "unlink", e))?;
                }
                continue;
            };
            let final_path = segment_path(&self.dir, seg.seq);
            let [index, time] = index_paths(&self.dir, seg.seq, "");
            for (from, to) in [
                (&seg.path, &final_path),
                (&tmp_index, &index),
                (&tmp_time, &time),
            ] {
                self.io
                    .rename(from, to)
                    .map_err(|e| StorageError::io(from, "rename", e))?;
            }
            seg.path = final_path;
            self.compacted_through = self.compacted_through.max(seg.next_offset);
            self.segments[i] = seg;
        }
        sync_dir(&self.io, &self.dir)?;
        // Serve the compacted versions from now on, not cached originals.
        self.ring.discard_below(self.compacted_through);
        Ok(done.stats)
    }

    /// Reports that a compaction job failed; its temporary files are removed on the next open.
    pub fn compaction_failed(&mut self) {
        self.compaction_in_flight = false;
    }
}

/// Removes leftovers of an interrupted compaction (recovery).
pub(crate) fn is_compaction_leftover(name: &str) -> bool {
    name.ends_with(TMP_SUFFIX)
}
