//! Blocking work, packaged as `Send + 'static` jobs: the engine runs them on a blocking thread pool
//! and hands the result back to the log on its shard. The log never blocks on them.
//!
//! Group commit: [`PartitionLog::begin_flush`] snapshots the end offset and the files that hold
//! everything appended so far; the job fdatasyncs them (fdatasync also writes back the file's dirty
//! mmap pages); appends continue meanwhile; [`PartitionLog::complete_flush`] then advances
//! `durable_offset` to the snapshot. At most one flush is in flight per log.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Prefault;
use crate::error::StorageError;
use crate::format::{encode_checkpoint, OffsetIndexEntry, TimeIndexEntry, CHECKPOINT_BYTES};
use crate::index::{index_paths, write_index_files, IndexOwner};
use crate::io::Io;
use crate::log::PartitionLog;
use crate::segment::{create_prepared, prefault_active, PreparedSegment, Segment, TrimGate};
use memmap2::MmapRaw;

pub(crate) const CHECKPOINT_FILE: &str = "checkpoint";

/// Frontiers move in whole pages.
const PAGE_BYTES: u64 = 4096;

/// What must happen to a segment once it is sealed: trim, sync, write its index files.
#[derive(Debug, Clone)]
pub(crate) struct SealWork {
    pub seq: u64,
    pub path: PathBuf,
    pub file: Arc<File>,
    pub gate: Arc<TrimGate>,
    pub high_water: u64,
    pub next_offset: u64,
    pub header_crc32c: u32,
    pub offsets: Vec<OffsetIndexEntry>,
    pub times: Vec<TimeIndexEntry>,
}

impl SealWork {
    pub fn of(seg: &Segment) -> SealWork {
        SealWork {
            seq: seg.seq,
            path: seg.path.clone(),
            file: Arc::clone(&seg.file),
            gate: Arc::clone(&seg.gate),
            high_water: seg.high_water,
            next_offset: seg.next_offset,
            header_crc32c: seg.header.crc32c(),
            offsets: seg.offset_index.clone(),
            times: seg.time_index.clone(),
        }
    }

    /// Trims the unused preallocation (never below bytes a reader may map), syncs data and header,
    /// writes the index files. A [`PrefaultJob`] still running on the segment finishes first, and
    /// one starting later does nothing.
    pub fn run(&self, io: &Io, dir: &std::path::Path) -> Result<(), StorageError> {
        self.gate
            .trim(|| io.set_len(&self.path, &self.file, self.high_water))
            .map_err(|e| StorageError::io(&self.path, "ftruncate", e))?;
        io.sync_data(&self.path, &self.file)
            .map_err(|e| StorageError::io(&self.path, "fdatasync", e))?;
        let owner = IndexOwner {
            seq: self.seq,
            segment_header_crc32c: self.header_crc32c,
        };
        write_index_files(
            io,
            &index_paths(dir, self.seq, ""),
            owner,
            &self.offsets,
            &self.times,
        )
    }
}

/// Writes and syncs the checkpoint file (one sector, CRC-protected, rewritten in place).
pub(crate) fn write_checkpoint(
    io: &Io,
    dir: &std::path::Path,
    checkpoint_offset: u64,
) -> Result<(), StorageError> {
    let path = dir.join(CHECKPOINT_FILE);
    let mut buf = [0u8; CHECKPOINT_BYTES];
    encode_checkpoint(checkpoint_offset, &mut buf);
    let f = io
        .write_at(&path, &buf, 0)
        .map_err(|e| StorageError::io(&path, "write checkpoint", e))?;
    io.sync_data(&path, &f)
        .map_err(|e| StorageError::io(&path, "fdatasync checkpoint", e))
}

/// A group-commit flush, produced by [`PartitionLog::begin_flush`].
#[derive(Debug)]
pub struct FlushJob {
    io: Io,
    dir: PathBuf,
    generation: u64,
    target_offset: u64,
    seals: Vec<SealWork>,
    active: Option<(PathBuf, Arc<File>)>,
}

/// Proof that a [`FlushJob`] finished; hand it to [`PartitionLog::complete_flush`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushDone {
    generation: u64,
    /// Every offset below this is durable.
    pub durable_offset: u64,
    checkpoint_offset: Option<u64>,
}

impl FlushJob {
    /// Offset the flush makes durable (exclusive).
    pub fn target_offset(&self) -> u64 {
        self.target_offset
    }

    /// Does the fdatasync(s). Blocking.
    pub fn run(self) -> Result<FlushDone, StorageError> {
        for s in &self.seals {
            s.run(&self.io, &self.dir)?;
        }
        if let Some((path, file)) = &self.active {
            self.io
                .sync_data(path, file)
                .map_err(|e| StorageError::io(path, "fdatasync", e))?;
        }
        // Every segment sealed before this job was synced by an earlier (completed) flush, so the
        // last seal's end is a valid checkpoint.
        let checkpoint_offset = self.seals.last().map(|s| s.next_offset);
        if let Some(c) = checkpoint_offset {
            write_checkpoint(&self.io, &self.dir, c)?;
        }
        Ok(FlushDone {
            generation: self.generation,
            durable_offset: self.target_offset,
            checkpoint_offset,
        })
    }
}

/// Creation of the next segment, produced by [`PartitionLog::prepare_segment_job`].
#[derive(Debug)]
pub struct SegmentJob {
    io: Io,
    dir: PathBuf,
    seq: u64,
    len_bytes: u64,
    window_bytes: u64,
    prefault: Prefault,
}

impl SegmentJob {
    /// Creates the (sparse) file, reserves and prefaults its first window, writes and syncs the
    /// header. Blocking.
    pub fn run(self) -> Result<PreparedSegment, StorageError> {
        create_prepared(
            &self.io,
            &self.dir,
            self.seq,
            self.len_bytes,
            self.window_bytes,
            self.prefault,
        )
    }
}

/// Moves the reserved and prefaulted frontier of the active segment one window further ahead of
/// the write position; produced by [`PartitionLog::prefault_job`].
pub struct PrefaultJob {
    io: Io,
    path: PathBuf,
    file: Arc<File>,
    map: Arc<MmapRaw>,
    gate: Arc<TrimGate>,
    seq: u64,
    from: u64,
    to: u64,
    prefault: Prefault,
}

impl std::fmt::Debug for PrefaultJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefaultJob")
            .field("path", &self.path)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("prefault", &self.prefault)
            .finish()
    }
}

/// Result of a [`PrefaultJob`]; hand it to [`PartitionLog::complete_prefault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefaultDone {
    seq: u64,
    /// `[0, allocated)` of the segment is now reserved; `None` if the segment was sealed and
    /// trimmed before the job ran (it did nothing).
    pub allocated: Option<u64>,
}

impl PrefaultJob {
    /// The byte range `[from, to)` of the segment the job reserves and prefaults.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.from..self.to
    }

    /// fallocate + madvise(MADV_POPULATE_*) of the range. Blocking (about 0.1-0.3 ms per MiB).
    pub fn run(self) -> Result<PrefaultDone, StorageError> {
        // Under the gate: a seal's trim either happened before (then nothing is reserved past
        // the trimmed end) or waits until the reservation is done (and frees it).
        let grown = self
            .gate
            .unless_trimmed(|| {
                self.io
                    .allocate_range(&self.path, &self.file, self.from, self.to - self.from)
                    .map_err(|e| StorageError::io(&self.path, "fallocate", e))?;
                prefault_active(&self.map, self.from, self.to, self.prefault);
                Ok::<(), StorageError>(())
            })
            .transpose()?
            .is_some();
        Ok(PrefaultDone {
            seq: self.seq,
            allocated: grown.then_some(self.to),
        })
    }
}

impl PartitionLog {
    /// Starts a group commit covering every batch appended so far. `None` when nothing is dirty or a
    /// flush is already in flight (appends made meanwhile go into the next one: call `begin_flush`
    /// again after `complete_flush` while `durable_offset() < end_offset()`).
    pub fn begin_flush(&mut self) -> Option<FlushJob> {
        if self.fenced || self.flush_in_flight {
            return None;
        }
        if self.end_offset == self.durable_offset && self.pending_seals.is_empty() {
            return None;
        }
        self.flush_in_flight = true;
        Some(FlushJob {
            io: self.io.clone(),
            dir: self.dir.clone(),
            generation: self.generation,
            target_offset: self.end_offset,
            seals: std::mem::take(&mut self.pending_seals),
            active: self.active().map(|s| (s.path.clone(), Arc::clone(&s.file))),
        })
    }

    /// Applies a finished flush: `durable_offset` advances to the flush's snapshot (appends that
    /// happened meanwhile stay dirty for the next flush).
    pub fn complete_flush(&mut self, done: FlushDone) {
        self.flush_in_flight = false;
        self.counters.flushes += 1;
        if done.generation != self.generation {
            return;
        }
        self.durable_offset = self
            .durable_offset
            .max(done.durable_offset.min(self.end_offset));
        if let Some(c) = done.checkpoint_offset {
            self.checkpoint_offset = self.checkpoint_offset.max(c);
        }
    }

    /// Reports that a flush job failed. After a failed fdatasync the kernel may already have dropped
    /// the dirty pages, so retrying could report durability falsely: the log is fenced (appends and
    /// flushes return [`StorageError::FlushFailed`] / `None`) until it is reopened. The failed sync
    /// left a `sync-failed` marker, so the reopen writes the pages after the checkpoint again
    /// before trusting them (the page cache may hold pages the kernel never wrote).
    pub fn flush_failed(&mut self) {
        self.flush_in_flight = false;
        self.fenced = true;
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced
    }

    /// A job creating the next segment, or `None` if one is prepared or being prepared.
    pub fn prepare_segment_job(&mut self) -> Option<SegmentJob> {
        if self.prepared.is_some() || self.prepare_in_flight || self.fenced {
            return None;
        }
        self.prepare_in_flight = true;
        let seq = self.next_seq;
        self.next_seq += 1;
        Some(SegmentJob {
            io: self.io.clone(),
            dir: self.dir.clone(),
            seq,
            len_bytes: self.config.segment_bytes_max,
            window_bytes: self.config.effective_prefault_window_bytes(),
            prefault: self.config.prefault,
        })
    }

    /// A job moving the active segment's reserved, prefaulted frontier about one window ahead of
    /// the write position, once the write position is within half a window of it. `None` when no
    /// job is due, one is in flight (at most one per log), or the log is fenced. Cheap enough to
    /// call after every append.
    pub fn prefault_job(&mut self) -> Option<PrefaultJob> {
        if self.prefault_in_flight || self.fenced {
            return None;
        }
        let window = self.config.effective_prefault_window_bytes();
        let seg = self.active()?;
        let capacity = seg.capacity();
        if seg.allocated >= capacity || seg.write_pos + window / 2 < seg.allocated {
            return None;
        }
        let to = (seg.write_pos + window)
            .next_multiple_of(PAGE_BYTES)
            .min(capacity);
        let job = PrefaultJob {
            io: self.io.clone(),
            path: seg.path.clone(),
            file: Arc::clone(&seg.file),
            map: Arc::clone(&seg.map),
            gate: Arc::clone(&seg.gate),
            seq: seg.seq,
            from: seg.allocated,
            to,
            prefault: self.config.prefault,
        };
        self.prefault_in_flight = true;
        Some(job)
    }

    /// Applies a finished [`PrefaultJob`]: the frontier of its segment moves, if that segment is
    /// still the active one.
    pub fn complete_prefault(&mut self, done: PrefaultDone) {
        self.prefault_in_flight = false;
        self.counters.prefaults += 1;
        let Some(allocated) = done.allocated else {
            return;
        };
        if let Some(seg) = self
            .segments
            .last_mut()
            .filter(|s| !s.is_sealed() && s.seq == done.seq)
        {
            seg.allocated = seg.allocated.max(allocated);
        }
    }

    /// Reports that a [`PrefaultJob`] failed (ENOSPC, typically), so that a later
    /// `prefault_job` retries. Appends reserve what they need inline meanwhile, and fail with
    /// [`StorageError::NoSpace`] if the disk is still full.
    pub fn prefault_failed(&mut self) {
        self.prefault_in_flight = false;
    }

    /// Installs a prepared segment for the next roll. A segment made obsolete meanwhile (a
    /// synchronous roll took a later sequence number) is unlinked; if that unlink fails the file is
    /// left for the next open, which deletes unused prepared segments.
    pub fn install_prepared(&mut self, seg: PreparedSegment) {
        self.prepare_in_flight = false;
        let newest = self.segments.last().map_or(0, |s| s.seq);
        if self.prepared.is_some() || (!self.segments.is_empty() && seg.seq <= newest) {
            let _ = self.io.remove_file(&seg.path);
            return;
        }
        self.prepared = Some(seg);
    }

    /// Reports that a [`SegmentJob`] failed, so that a later `prepare_segment_job` retries.
    pub fn prepare_failed(&mut self) {
        self.prepare_in_flight = false;
    }
}
