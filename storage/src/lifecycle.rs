//! Retention (time, size, TTL), truncation and close.

use crate::error::StorageError;
use crate::format::{BATCH_NEVER_EXPIRES, SEGMENT_HEADER_BYTES};
use crate::jobs::{write_checkpoint, SealWork};
use crate::log::{drop_segment_files, PartitionLog};
use crate::segment::sync_dir;
use crate::segment::Segment;

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
    io: crate::io::Io,
    dir: std::path::PathBuf,
    /// The segment that becomes the first one: its header must be durable before its predecessors
    /// go, or a crash could leave a log with no segment at or below the checkpoint.
    successor: Option<(std::path::PathBuf, std::sync::Arc<std::fs::File>)>,
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
    /// Syncs the new first segment, unlinks the files, fsyncs the directory, then unmaps the
    /// segments (readers holding `Bytes` of them keep their own references). Blocking.
    pub fn run(self) -> Result<RetentionReport, StorageError> {
        if let Some((path, file)) = &self.successor {
            self.io
                .sync_data(path, file)
                .map_err(|e| StorageError::io(path, "fdatasync", e))?;
        }
        for seg in &self.segments {
            drop_segment_files(&self.io, &self.dir, seg)?;
        }
        sync_dir(&self.io, &self.dir)?;
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
    /// and returns a job that syncs the segment that becomes the first one (an active segment's
    /// header is otherwise only durable after the next flush), unlinks their files, fsyncs the
    /// directory and unmaps them; `None`
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
            io: self.io.clone(),
            dir: self.dir.clone(),
            successor: self
                .segments
                .first()
                .map(|s| (s.path.clone(), std::sync::Arc::clone(&s.file))),
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
    ///
    /// If a disk operation fails, the log has still been cut in memory (it ends at `offset`) but
    /// what the disk holds is unknown: the log is fenced like after a failed flush, and a reopen
    /// recovers either the old or the cut log (every batch below `offset` that was durable).
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
        // Validate everything before changing anything: the cut must be a batch boundary, and the
        // kept batches' headers are collected to rebuild the cut segment's index and maxima.
        let cut = if offset == self.segments[si].base_offset() {
            None
        } else {
            let seg = &self.segments[si];
            let (pos, h) = seg.position_of(offset)?;
            if h.base_offset != offset {
                return Err(StorageError::NotBatchBoundary { offset });
            }
            let mut kept = Vec::new();
            let mut p = SEGMENT_HEADER_BYTES as u64;
            while p < pos {
                let h = seg.batch_header_at(p)?;
                kept.push((p, h));
                p += u64::from(h.batch_bytes);
            }
            Some(kept)
        };
        // The checkpoint must never claim more than the chain will hold: lower it before any
        // change below can reach the disk (a re-sealed header may be written back at any time).
        if offset < self.checkpoint_offset {
            if let Err(e) = write_checkpoint(&self.io, &self.dir, offset) {
                self.fenced = true;
                return Err(e);
            }
            self.checkpoint_offset = offset;
        }

        // In memory: from here on the log ends at `offset`.
        let keep = if cut.is_some() { si + 1 } else { si };
        let dropped: Vec<Segment> = self.segments.drain(keep..).collect();
        if let Some(kept) = cut {
            let interval = self.config.index_interval_bytes;
            let seg = self.segments.last_mut().expect("the cut segment was kept");
            let high_water = seg.high_water;
            seg.offset_index.clear();
            seg.time_index.clear();
            seg.write_pos = SEGMENT_HEADER_BYTES as u64;
            seg.next_offset = seg.base_offset();
            seg.max_timestamp_ms = i64::MIN;
            seg.max_expires_at_ms = i64::MIN;
            seg.bytes_since_index = 0;
            seg.batch_count = 0;
            for (p, h) in &kept {
                seg.note_batch(*p, h, interval);
            }
            seg.high_water = high_water;
            seg.seal();
        }
        self.pending_seals.clear();
        self.end_offset = offset;
        self.durable_offset = self.durable_offset.min(offset);
        self.generation += 1;
        self.ring.discard_from(offset);
        let result = self
            .rebuild_producer_state()
            .and_then(|()| self.truncate_on_disk(offset, &dropped));
        if result.is_err() {
            self.fenced = true;
        }
        result
    }

    /// The disk half of `truncate_to`: unlink, make the kept segments durable, checkpoint, and
    /// start the next segment at `offset`.
    fn truncate_on_disk(&mut self, offset: u64, dropped: &[Segment]) -> Result<(), StorageError> {
        for seg in dropped {
            drop_segment_files(&self.io, &self.dir, seg)?;
        }
        sync_dir(&self.io, &self.dir)?;
        // The cut segment was re-sealed (new header, new extent) even when it lies below the
        // checkpoint; it and everything unchecked must be synced and re-indexed.
        let checkpoint = self.checkpoint_offset;
        let last = self.segments.len().saturating_sub(1);
        for (i, seg) in self.segments.iter().enumerate() {
            let resealed = i == last && seg.next_offset == offset;
            if resealed || seg.next_offset > checkpoint || !seg.is_sealed() {
                SealWork::of(seg).run(&self.io, &self.dir)?;
            }
        }
        write_checkpoint(&self.io, &self.dir, offset)?;
        self.checkpoint_offset = offset;
        // The next append rolls into a fresh segment at `offset` (all kept segments are sealed);
        // create it now so the base offset survives a reopen even if nothing is appended.
        if self.segments.is_empty() || self.segments.iter().all(|s| s.is_sealed()) {
            self.roll_at(offset)?;
        }
        self.durable_offset = offset;
        Ok(())
    }

    /// Re-bases an empty log at `offset`: a new replica of a partition whose leader's log starts
    /// there (older records are gone by retention) begins its copy at the same offset. The log
    /// must hold no record (truncate it to its start first); its empty segments are replaced by
    /// one durable, empty segment at `offset`, so the start survives a reopen.
    ///
    /// Errors: [`StorageError::NotEmpty`] when the log holds records, `FlushInFlight` while a
    /// flush runs, and the I/O errors of the change (after which the log is fenced).
    pub fn reset_empty_to(&mut self, offset: u64) -> Result<(), StorageError> {
        if self.fenced {
            return Err(StorageError::FlushFailed);
        }
        if self.end_offset != self.start_offset || self.segments.iter().any(|s| !s.is_empty()) {
            return Err(StorageError::NotEmpty {
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
        let dropped: Vec<Segment> = self.segments.drain(..).collect();
        self.pending_seals.clear();
        self.ring.discard_from(0);
        self.generation += 1;
        self.start_offset = offset;
        self.end_offset = offset;
        self.durable_offset = self.durable_offset.min(offset);
        let result = (|| {
            for seg in &dropped {
                drop_segment_files(&self.io, &self.dir, seg)?;
            }
            sync_dir(&self.io, &self.dir)?;
            self.roll_at(offset)?;
            write_checkpoint(&self.io, &self.dir, offset)?;
            self.checkpoint_offset = offset;
            self.durable_offset = offset;
            self.rebuild_producer_state()
        })();
        if result.is_err() {
            self.fenced = true;
        }
        result
    }

    fn roll_at(&mut self, offset: u64) -> Result<(), StorageError> {
        debug_assert_eq!(self.end_offset, offset);
        let created_ms = self.segments.last().map_or(0, |s| s.header.created_ms);
        self.roll(created_ms)?;
        let seg = self.segments.last().expect("roll installed a segment");
        self.io
            .sync_data(&seg.path, &seg.file)
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
            SealWork::of(seg).run(&self.io, &self.dir)?;
        }
        if !self.segments.is_empty() {
            write_checkpoint(&self.io, &self.dir, self.end_offset)?;
        }
        if let Some(p) = self.prepared.take() {
            self.io
                .remove_file(&p.path)
                .map_err(|e| StorageError::io(&p.path, "unlink prepared segment", e))?;
        }
        Ok(())
    }
}
