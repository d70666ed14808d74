//! The partition log: append, read, offsets. Recovery, flushing and lifecycle live in sibling modules
//! as further `impl PartitionLog` blocks.

use std::path::PathBuf;

use crate::config::{Compression, LogConfig};
use crate::error::StorageError;
use crate::fetch::{FetchedBatch, ReadResult};
use crate::format::{
    encode_record, record_bytes, seal_batch_crc, BatchHeader, RecordFields, BATCH_HEADER_BYTES,
    BATCH_NEVER_EXPIRES, NEVER_EXPIRES, NO_PRODUCER_ID, NO_SEQUENCE, RECORD_PREFIX_BYTES,
    SEGMENT_HEADER_BYTES,
};
use crate::io::Io;
use crate::jobs::SealWork;
use crate::producer::{ProducerInfo, ProducerStates, SequenceCheck};
use crate::ring::HotRing;
use crate::segment::{PreparedSegment, Segment};

/// One record to append, borrowed from the caller's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: &'a [(&'a [u8], &'a [u8])],
    pub timestamp_ms: i64,
    /// Time to live from the append time; `0` = none (then `LogConfig::default_ttl_ms` applies).
    pub ttl_ms: u32,
}

/// Result of a successful `append`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended {
        base_offset: u64,
        last_offset: u64,
    },
    /// An idempotent retry of a batch already in the log: nothing was written.
    Duplicate {
        base_offset: u64,
        last_offset: u64,
    },
}

/// Counters and sizes of one log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    pub segments: u64,
    /// Disk claimed by all segment files: the reserved part of the active one, the trimmed size of
    /// sealed ones (trimming happens in the flush that follows the seal).
    pub bytes_on_disk: u64,
    /// Bytes of batches in all segments.
    pub data_bytes: u64,
    pub appends: u64,
    pub appended_bytes: u64,
    pub duplicates: u64,
    pub rolls: u64,
    /// Rolls that had to create a segment synchronously because none was prepared.
    pub sync_fallbacks: u64,
    /// Appends that had to reserve disk inline (one fallocate) because the batch passed the
    /// frontier before a [`crate::PrefaultJob`] moved it.
    pub inline_reserves: u64,
    /// [`crate::PrefaultJob`]s completed.
    pub prefaults: u64,
    pub flushes: u64,
    pub ring_hits: u64,
    pub ring_misses: u64,
    pub ring_entries: u64,
    pub ring_bytes: u64,
    pub producers: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub appends: u64,
    pub appended_bytes: u64,
    pub duplicates: u64,
    pub rolls: u64,
    pub sync_fallbacks: u64,
    pub inline_reserves: u64,
    pub prefaults: u64,
    pub flushes: u64,
}

/// An append-only, segmented, memory-mapped partition log. See the crate docs for the model.
pub struct PartitionLog {
    /// Where file-system calls go (the real kernel, or a fault-injecting disk in tests).
    pub(crate) io: Io,
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Ordered by base offset; only the last one may be unsealed (the active segment).
    pub(crate) segments: Vec<Segment>,
    pub(crate) start_offset: u64,
    pub(crate) end_offset: u64,
    pub(crate) durable_offset: u64,
    pub(crate) checkpoint_offset: u64,
    pub(crate) next_seq: u64,
    pub(crate) prepared: Option<PreparedSegment>,
    pub(crate) prepare_in_flight: bool,
    pub(crate) prefault_in_flight: bool,
    pub(crate) flush_in_flight: bool,
    /// Bumped by `truncate_to`; a flush begun before a truncation cannot advance `durable_offset`.
    pub(crate) generation: u64,
    pub(crate) pending_seals: Vec<SealWork>,
    pub(crate) producers: ProducerStates,
    pub(crate) ring: HotRing,
    pub(crate) scratch: Vec<u8>,
    pub(crate) fenced: bool,
    pub(crate) compaction_in_flight: bool,
    /// Segments ending at or below this offset were rewritten by the last compaction pass.
    pub(crate) compacted_through: u64,
    /// Active segment (seq) and write position when the last flush began: how far appends got
    /// between two flushes, which sizes the next flush's rewarm (see [`crate::FlushJob`]).
    pub(crate) last_flush_pos: Option<(u64, u64)>,
    /// `counters.appends` when the last flush completed: equal at the next `begin_flush` means
    /// flushes run back to back, and then a rewarm would only add zero pages to the next one.
    pub(crate) appends_at_flush_complete: Option<u64>,
    pub(crate) counters: Counters,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("start_offset", &self.start_offset)
            .field("end_offset", &self.end_offset)
            .field("durable_offset", &self.durable_offset)
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl PartitionLog {
    pub fn start_offset(&self) -> u64 {
        self.start_offset
    }
    /// Next offset to be assigned.
    pub fn end_offset(&self) -> u64 {
        self.end_offset
    }
    /// Every offset below this has been fdatasync'd.
    pub fn durable_offset(&self) -> u64 {
        self.durable_offset
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn stats(&self) -> LogStats {
        LogStats {
            segments: self.segments.len() as u64,
            bytes_on_disk: self
                .segments
                .iter()
                .map(|s| {
                    if s.is_sealed() {
                        s.high_water
                    } else {
                        s.allocated
                    }
                })
                .sum(),
            data_bytes: self.segments.iter().map(Segment::data_bytes).sum(),
            appends: self.counters.appends,
            appended_bytes: self.counters.appended_bytes,
            duplicates: self.counters.duplicates,
            rolls: self.counters.rolls,
            sync_fallbacks: self.counters.sync_fallbacks,
            inline_reserves: self.counters.inline_reserves,
            prefaults: self.counters.prefaults,
            flushes: self.counters.flushes,
            ring_hits: self.ring.hits(),
            ring_misses: self.ring.misses(),
            ring_entries: self.ring.len() as u64,
            ring_bytes: self.ring.bytes(),
            producers: self.producers.len() as u64,
        }
    }

    /// Makes the hot ring charge `budget` (shared by every ring of the node).
    pub fn attach_memory_budget(&mut self, budget: std::sync::Arc<crate::ring::MemoryBudget>) {
        self.ring.attach_budget(budget);
    }

    /// Evicts from the hot ring while the node budget is over its limit; returns bytes released.
    pub fn trim_ring(&mut self) -> u64 {
        self.ring.trim_to_budget()
    }

    /// A lock-free read handle on the hot ring for any thread (see [`crate::ring::RingReader`]).
    pub fn ring_reader(&self) -> crate::ring::RingReader {
        self.ring.reader()
    }

    pub(crate) fn active(&self) -> Option<&Segment> {
        self.segments.last().filter(|s| !s.is_sealed())
    }

    /// True if appends have a segment to go to without a roll: false for a new log and for one
    /// reopened after a clean close (which seals). Then the next append creates a segment inline
    /// unless one was prepared ([`PartitionLog::prepare_segment_job`]).
    pub fn has_active_segment(&self) -> bool {
        self.active().is_some()
    }

    /// Appends one batch. On `Err` nothing was written and the log is unchanged.
    pub fn append(
        &mut self,
        records: &[Record<'_>],
        producer: Option<ProducerInfo>,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        if self.fenced {
            return Err(StorageError::FlushFailed);
        }
        if records.is_empty() {
            return Err(StorageError::EmptyBatch);
        }
        let max = self.config.effective_batch_bytes_max();
        if records.len() as u64 > max / RECORD_PREFIX_BYTES as u64 {
            return Err(StorageError::BatchTooLarge {
                bytes: records.len() as u64 * RECORD_PREFIX_BYTES as u64,
                max,
            });
        }
        let raw_bytes: u64 = records
            .iter()
            .map(|r| record_bytes(r.key, r.value, r.headers))
            .sum();
        let total = BATCH_HEADER_BYTES as u64 + raw_bytes;
        if total > max {
            return Err(StorageError::BatchTooLarge { bytes: total, max });
        }
        let count = records.len() as u32;
        if let Some(p) = &producer {
            if let SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } = self.producers.check(p, count)?
            {
                self.counters.duplicates += 1;
                return Ok(AppendOutcome::Duplicate {
                    base_offset,
                    last_offset,
                });
            }
        }
        let base_offset = self.end_offset;
        let last_offset = base_offset
            .checked_add(u64::from(count) - 1)
            .filter(|l| *l < u64::MAX)
            .ok_or(StorageError::OffsetOverflow {
                reason: "u64 offsets exhausted",
            })?;

        let default_ttl_ms = self.config.default_ttl_ms;
        let expiry = |r: &Record<'_>| -> i64 {
            let ttl_ms = if r.ttl_ms != 0 {
                Some(u64::from(r.ttl_ms))
            } else {
                default_ttl_ms
            };
            match ttl_ms {
                // Clamp so that an expiry can never collide with the "never" sentinel (0).
                Some(t) => now_ms
                    .saturating_add(i64::try_from(t).unwrap_or(i64::MAX))
                    .max(1),
                None => NEVER_EXPIRES,
            }
        };
        let mut header = BatchHeader {
            batch_bytes: 0,
            crc32c: 0,
            base_offset,
            first_timestamp_ms: records[0].timestamp_ms,
            max_timestamp_ms: records
                .iter()
                .map(|r| r.timestamp_ms)
                .max()
                .unwrap_or(i64::MIN),
            max_expires_at_ms: records
                .iter()
                .map(|r| match expiry(r) {
                    NEVER_EXPIRES => BATCH_NEVER_EXPIRES,
                    e => e,
                })
                .max()
                .unwrap_or(BATCH_NEVER_EXPIRES),
            producer_id: producer.map_or(NO_PRODUCER_ID, |p| p.producer_id),
            record_count: count,
            base_sequence: producer.map_or(NO_SEQUENCE, |p| p.base_sequence),
            records_bytes: raw_bytes as u32,
            producer_epoch: producer.map_or(0, |p| p.epoch),
            attributes: 0,
        };

        // zstd: encode into scratch, compress into scratch's tail, keep it only if it shrank.
        let mut compressed_len = None;
        if let Compression::Zstd { level } = self.config.compression {
            self.scratch.clear();
            self.scratch.resize(raw_bytes as usize, 0);
            encode_records(records, &expiry, &mut self.scratch);
            let bound = zstd::zstd_safe::compress_bound(raw_bytes as usize);
            self.scratch.resize(raw_bytes as usize + bound, 0);
            let (src, dst) = self.scratch.split_at_mut(raw_bytes as usize);
            let n = zstd::bulk::compress_to_buffer(src, dst, level)
                .map_err(|e| StorageError::io(&self.dir, "zstd compress", e))?;
            if (n as u64) < raw_bytes {
                compressed_len = Some(n);
            }
        }
        let stored = BATCH_HEADER_BYTES as u64 + compressed_len.map_or(raw_bytes, |n| n as u64);
        header.batch_bytes = stored as u32;
        header.attributes = BatchHeader::attributes_for(compressed_len.is_some());

        // The compressed bytes stay in `scratch`, which the placed range borrows alongside.
        let scratch = std::mem::take(&mut self.scratch);
        let buf = match self.place_batch(stored, last_offset, now_ms) {
            Ok(buf) => buf,
            Err(e) => {
                self.scratch = scratch;
                return Err(e);
            }
        };
        header.encode(buf);
        match compressed_len {
            Some(n) => {
                let start = raw_bytes as usize;
                buf[BATCH_HEADER_BYTES..].copy_from_slice(&scratch[start..start + n]);
            }
            None => encode_records(records, &expiry, &mut buf[BATCH_HEADER_BYTES..]),
        }
        header.crc32c = seal_batch_crc(buf);
        self.scratch = scratch;
        if let Some(p) = &producer {
            self.producers.record(p, count, base_offset, last_offset);
        }
        self.publish_batch(header, last_offset);
        Ok(AppendOutcome::Appended {
            base_offset,
            last_offset,
        })
    }

    /// Zero-copy read of whole batches holding offsets >= `offset`, up to about `max_bytes` (at
    /// least one batch when `offset < end_offset`). Served from the hot ring when it covers `offset`.
    pub fn read(&self, offset: u64, max_bytes: u32) -> Result<ReadResult, StorageError> {
        if offset < self.start_offset || offset > self.end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                start: self.start_offset,
                end: self.end_offset,
            });
        }
        if offset == self.end_offset {
            return Ok(ReadResult {
                batches: Vec::new(),
                next_offset: offset,
            });
        }
        if let Some(batches) = self.ring.read(offset, max_bytes) {
            let next_offset = batches.last().map_or(offset, |b| b.last_offset() + 1);
            return Ok(ReadResult {
                batches,
                next_offset,
            });
        }
        self.read_from_segments(offset, max_bytes)
    }

    pub(crate) fn segment_index_for(&self, offset: u64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.base_offset() <= offset);
        (i > 0).then(|| i - 1)
    }

    fn read_from_segments(&self, offset: u64, max_bytes: u32) -> Result<ReadResult, StorageError> {
        let mut batches = Vec::new();
        let mut total: u64 = 0;
        let mut next_offset = offset;
        let mut si = self
            .segment_index_for(offset)
            .ok_or(StorageError::OffsetOutOfRange {
                offset,
                start: self.start_offset,
                end: self.end_offset,
            })?;
        'segments: while si < self.segments.len() {
            let seg = &self.segments[si];
            if seg.is_empty() || next_offset >= seg.next_offset {
                si += 1;
                continue;
            }
            let (start_pos, _) = seg.position_of(next_offset)?;
            let mut pos = start_pos;
            let mut headers = Vec::new();
            while pos < seg.write_pos {
                let h = seg.batch_header_at(pos)?;
                let len = u64::from(h.batch_bytes);
                if !(batches.is_empty() && headers.is_empty()) && total + len > u64::from(max_bytes)
                {
                    break;
                }
                total += len;
                headers.push((pos, h));
                pos += len;
            }
            if !headers.is_empty() {
                let shared = seg.bytes(start_pos, (pos - start_pos) as usize);
                for (p, h) in &headers {
                    let at = (p - start_pos) as usize;
                    batches.push(FetchedBatch::new(
                        *h,
                        shared.slice(at..at + h.batch_bytes as usize),
                    ));
                }
                next_offset = headers
                    .last()
                    .map_or(next_offset, |(_, h)| h.last_offset() + 1);
            }
            if pos < seg.write_pos {
                break 'segments;
            }
            si += 1;
        }
        Ok(ReadResult {
            batches,
            next_offset,
        })
    }

    /// First offset whose record timestamp is >= `ts_ms`, or `None` if every record is older.
    pub fn offset_for_timestamp(&self, ts_ms: i64) -> Result<Option<u64>, StorageError> {
        for seg in &self.segments {
            if seg.is_empty() || seg.max_timestamp_ms < ts_ms {
                continue;
            }
            // The last index entry whose running max is < ts: nothing before it can match, if the
            // index bounds its batches (checked once for an index loaded from a file).
            let i = if seg.time_index_sound()? {
                seg.time_index
                    .partition_point(|e| e.max_timestamp_ms < ts_ms)
            } else {
                0
            };
            let from = if i == 0 {
                seg.base_offset()
            } else {
                seg.base_offset() + u64::from(seg.time_index[i - 1].relative_offset)
            };
            if from >= seg.next_offset {
                // A sound entry this far bounds every batch of the segment: none matches.
                continue;
            }
            let mut pos = if i == 0 {
                SEGMENT_HEADER_BYTES as u64
            } else {
                seg.position_of(from)?.0
            };
            while pos < seg.write_pos {
                let h = seg.batch_header_at(pos)?;
                if h.max_timestamp_ms >= ts_ms {
                    let batch = FetchedBatch::new(h, seg.bytes(pos, h.batch_bytes as usize));
                    let hit = batch
                        .records(0, i64::MIN)
                        .map_err(|e| relabel(e, &seg.path, pos))?
                        .into_iter()
                        .find(|r| r.timestamp_ms >= ts_ms);
                    if let Some(r) = hit {
                        return Ok(Some(r.offset));
                    }
                }
                pos += u64::from(h.batch_bytes);
            }
        }
        Ok(None)
    }
}

/// Attaches the file and position to a corruption error raised while decoding a fetched batch.
pub(crate) fn relabel(e: StorageError, path: &std::path::Path, position: u64) -> StorageError {
    match e {
        StorageError::Corrupt { reason, .. } => StorageError::Corrupt {
            path: path.to_path_buf(),
            position,
            reason,
        },
        other => other,
    }
}

/// Encodes `records` back to back into `out` (sized exactly by `record_bytes`).
fn encode_records(records: &[Record<'_>], expiry: &dyn Fn(&Record<'_>) -> i64, out: &mut [u8]) {
    let mut at = 0;
    for (i, r) in records.iter().enumerate() {
        at += encode_record(
            &RecordFields {
                offset_delta: i as u32,
                timestamp_ms: r.timestamp_ms,
                expires_at_ms: expiry(r),
                key: r.key,
                value: r.value,
                headers: r.headers,
            },
            &mut out[at..],
        );
    }
}

/// Unlinks a segment's files. Readers holding its `Bytes` keep the mapping alive.
pub(crate) fn drop_segment_files(
    io: &Io,
    dir: &std::path::Path,
    seg: &Segment,
) -> Result<(), StorageError> {
    io.remove_file(&seg.path)
        .map_err(|e| StorageError::io(&seg.path, "unlink segment", e))?;
    crate::index::remove_index_files(io, dir, seg.seq)
}
