//! Retention (time, size, TTL), truncation and close.

use crate::error::StorageError;
use crate::format::{BATCH_NEVER_EXPIRES, SEGMENT_HEADER_BYTES};
use crate::jobs::{write_checkpoint, SealWork};
use crate::log::{drop_segment_files, PartitionLog};
use crate::segment::sync_dir;

/// Why a segment was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionReason {
    /// Its newest timestamp is older than `retention_ms`.
    Time,
    /// The log is bigger than `retention_bytes` even without it.
    Size,
    /// Every record in it has expired.
    Ttl,
}

/// One segment removed by retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedSegment {
    pub base_offset: u64,
    pub next_offset: u64,
    pub data_bytes: u64,
    pub reason: RetentionReason,
}

/// Result of [`PartitionLog::enforce_retention`].
/// Deletion of segments already detached from the log, produced by
/// [`PartitionLog::retention_job`]. `Send`: run it on a blocking thread.
pub struct RetentionJob {
    dir: std::path::PathBuf,
    segments: Vec<crate::segment::Segment>,
    report: RetentionReport,
}

impl std::fmt::Debug for RetentionJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetentionJob")
            .field("dir", &self.dir)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl RetentionJob {
    /// Unlinks the files, fsyncs the directory, then unmaps the segments (readers holding
    /// `Bytes` of them keep their own references). Blocking.
    pub fn run(self) -> Result<RetentionReport, StorageError> {
        for seg in &self.segments {
            drop_segment_files(&self.dir, seg)?;
        }
        sync_dir(&self.dir)?;
        drop(self.segments);
        Ok(self.report)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub removed: Vec<RemovedSegment>,
    pub start_offset: u64,
}

impl PartitionLog {
    /// Deletes the oldest sealed segments that are past retention (time or size) or whose newest
    /// record has expired. Blocking: [`PartitionLog::retention_job`] is the same split into a cheap
    /// in-memory step and a job for a blocking thread, which is what the engine uses.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<RetentionReport, StorageError> {
        match self.retention_job(now_ms) {
            Some(job) => job.run(),
            None => Ok(RetentionReport {
                removed: Vec::new(),
                start_offset: self.start_offset,
            }),
        }
    }

    /// Detaches the segments past retention (time, size, or every record expired) from the log
    /// and returns a job that unlinks their files, fsyncs the directory and unmaps them; `None`
    /// when nothing is due. Only segments covered by the checkpoint (synced, indexed) go, and the
    /// newest segment always stays, so the log's offsets survive a reopen. Reads stop seeing the
    /// detached segments at once; a crash before the job ran just leaves the files to a later
    /// pass, because they are still on disk and recovery finds them.
    pub fn retention_job(&mut self, now_ms: i64) -> Option<RetentionJob> {
        let mut removed = Vec::new();
        let mut detached = Vec::new();
        let mut total: u64 = self.segments.iter().map(|s| s.data_bytes()).sum();
        while self.segments.len() > 1 {
            let seg = &self.segments[0];
            if !seg.is_sealed() || seg.next_offset > self.checkpoint_offset {
                break;
            }
            let time = self.config.retention_ms.is_some_and(|r| {
                seg.max_timestamp_ms < now_ms.saturating_sub(i64::try_from(r).unwrap_or(i64::MAX))
            });
            let size = self
                .config
                .retention_bytes
                .is_some_and(|r| total - seg.data_bytes() >= r);
            let ttl =
                seg.max_expires_at_ms != BATCH_NEVER_EXPIRES && seg.max_expires_at_ms <= now_ms;
            let reason = if time {
                RetentionReason::Time
            } else if size {
                RetentionReason::Size
            } else if ttl {
                RetentionReason::Ttl
            } else {
                break;
            };
            let seg = self.segments.remove(0);
            total -= seg.data_bytes();
            removed.push(RemovedSegment {
                base_offset: seg.base_offset(),
                next_offset: seg.next_offset,
                data_bytes: seg.data_bytes(),
                reason,
            });
            detached.push(seg);
            self.start_offset = self.segments[0].base_offset();
        }
        if detached.is_empty() {
            return None;
        }
        self.ring.discard_below(self.start_offset);
        Some(RetentionJob {
            dir: self.dir.clone(),
            segments: detached,
            report: RetentionReport {
                removed,
                start_offset: self.start_offset,
            },
        })
    }

    /// Drops every offset >= `offset` (which must be a batch boundary within `[start, end]`).
    /// Blocking and durable when it returns: later segments are unlinked, the segment holding the cut
    /// is sealed at the cut (its bytes are not reused, so readers' `Bytes` stay valid) and synced,
    /// and appends continue in a fresh segment. Refused while a flush is in flight.
    pub fn truncate_to(&mut self, offset: u64) -> Result<(), StorageError> {
        if self.fenced {
            return Err(StorageError::FlushFailed);
        }
        if offset < self.start_offset || offset > self.end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                start: self.start_offset,
                end: self.end_offset,
            });
        }
        if offset == self.end_offset {
            return Ok(());
        }
        if self.flush_in_flight {
            return Err(StorageError::FlushInFlight);
        }
        let si = self
            .segment_index_for(offset)
            .ok_or(StorageError::OffsetOutOfRange {
                offset,
                start: self.start_offset,
                end: self.end_offset,
            })?;
        let cut_pos = if offset == self.segments[si].base_offset() {
            None
        } else {
            let (pos, h) = self.segments[si].position_of(offset)?;
            if h.base_offset != offset {
                return Err(StorageError::NotBatchBoundary { offset });
            }
            Some(pos)
        };
        let keep = if cut_pos.is_some() { si + 1 } else { si };
        for seg in self.segments.drain(keep..) {
            drop_segment_files(&self.dir, &seg)?;
        }
        sync_dir(&self.dir)?;
        if let Some(pos) = cut_pos {
            let interval = self.config.index_interval_bytes;
            let seg = self.segments.last_mut().expect("the cut segment was kept");
            let high_water = seg.high_water;
            // Replay the kept batches' headers to rebuild index and maxima up to the cut.
            seg.offset_index.clear();
            seg.time_index.clear();
            seg.write_pos = SEGMENT_HEADER_BYTES as u64;
            seg.next_offset = seg.base_offset();
            seg.max_timestamp_ms = i64::MIN;
            seg.max_expires_at_ms = i64::MIN;
            seg.bytes_since_index = 0;
            seg.batch_count = 0;
            let mut p = SEGMENT_HEADER_BYTES as u64;
            while p < pos {
                let h = crate::format::BatchHeader::decode(
                    seg.view(p, crate::format::BATCH_HEADER_BYTES),
                )
                .map_err(|r| StorageError::corrupt(&seg.path, p, r))?;
                seg.note_batch(p, &h, interval);
                p += u64::from(h.batch_bytes);
            }
            seg.high_water = high_water;
            seg.seal();
        }
        // Make every kept segment durable and indexed, then move the checkpoint to the cut.
        self.pending_seals.clear();
        let checkpoint = self.checkpoint_offset;
        for seg in self
            .segments
            .iter()
            .filter(|s| s.next_offset > checkpoint || !s.is_sealed())
        {
            SealWork::of(seg).run(&self.dir)?;
        }
        self.end_offset = offset;
        self.durable_offset = self.durable_offset.min(offset);
        self.generation += 1;
        write_checkpoint(&self.dir, offset)?;
        self.checkpoint_offset = offset;
        self.ring.discard_from(offset);
        self.rebuild_producer_state()?;
        // The next append rolls into a fresh segment at `offset` (all kept segments are sealed);
        // create it now so the base offset survives a reopen even if nothing is appended.
        if self.segments.is_empty() || self.segments.iter().all(|s| s.is_sealed()) {
            self.roll_at(offset)?;
        }
        self.durable_offset = offset;
        Ok(())
    }

    fn roll_at(&mut self, offset: u64) -> Result<(), StorageError> {
        debug_assert_eq!(self.end_offset, offset);
        let created_ms = self.segments.last().map_or(0, |s| s.header.created_ms);
        self.roll(created_ms)?;
        let seg = self.segments.last().expect("roll installed a segment");
        seg.file
            .sync_data()
            .map_err(|e| StorageError::io(&seg.path, "fdatasync", e))?;
        if self.segments.len() == 1 {
            self.start_offset = offset;
        }
        Ok(())
    }

    /// Seals the active segment, trims its unused preallocation, syncs everything, writes the index
    /// files and the checkpoint, and removes an unused prepared segment. Blocking.
    pub fn close(mut self) -> Result<(), StorageError> {
        if self.fenced {
            return Err(StorageError::FlushFailed);
        }
        if let Some(seg) = self.segments.last_mut().filter(|s| !s.is_sealed()) {
            seg.seal();
            self.pending_seals.push(SealWork::of(seg));
        }
        let checkpoint = self.checkpoint_offset;
        // A flush may still be running with some seals; redo every unchecked segment to be sure.
        for seg in self
            .segments
            .iter()
            .filter(|s| s.next_offset > checkpoint || s.is_empty())
        {
            SealWork::of(seg).run(&self.dir)?;
        }
        if !self.segments.is_empty() {
            write_checkpoint(&self.dir, self.end_offset)?;
        }
        if let Some(p) = self.prepared.take() {
            std::fs::remove_file(&p.path)
                .map_err(|e| StorageError::io(&p.path, "unlink prepared segment", e))?;
        }
        Ok(())
    }
}
