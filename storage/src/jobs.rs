//! Blocking work, packaged as `Send + 'static` jobs: the engine runs them on a blocking thread pool
//! and hands the result back to the log on its shard. The log never blocks on them.
//!
//! Group commit: [`PartitionLog::begin_flush`] snapshots the end offset and the files that hold
//! everything appended so far; the job fdatasyncs them (fdatasync also writes back the file's dirty
//! mmap pages); appends continue meanwhile; [`PartitionLog::complete_flush`] then advances
//! `durable_offset` to the snapshot. At most one flush is in flight per log.
//!
//! Writeback write-protects every page it cleans (that is how the kernel notices the next write
//! to a shared file mapping), including the write-prefaulted pages just past the data, so the
//! first append to each of them after a flush would take a minor fault on the shard. A flush job
//! therefore *rewarms* those pages after its fdatasync (`MADV_POPULATE_WRITE` again, off the
//! reactor): from the write position as the shard last published it (pages below it hold data the
//! writeback may just have cleaned; dirtying them again would make the next flush write them
//! twice), as many bytes as were appended between the last two flushes began, capped at the
//! reserved frontier. At a steady rate the appends fill the rewarmed pages before the next flush
//! starts, so the rewarm adds no zero pages to the next writeback and the append path takes no
//! fault; appends that land on a page while its writeback runs still fault.
//!
//! When flushes run back to back (the next begins as the last completes, before any append, as
//! under a steady `acks=all` load), the next flush's writeback would clean the rewarmed pages
//! again before the appends reach them: the rewarm would only add zero pages to its I/O, so such a
//! flush does not rewarm. A page written while a flush is in flight then faults once per flush
//! (a shared file mapping cannot be writable and clean at once).

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::config::Prefault;
use crate::error::StorageError;
use crate::format::{
    encode_checkpoint, OffsetIndexEntry, TimeIndexEntry, BATCH_HEADER_BYTES, CHECKPOINT_BYTES,
};
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
    rewarm: Option<Rewarm>,
}

/// Pages of the active segment to write-prefault again once the flush's fdatasync is done:
/// `bytes` from the write position the shard published last, up to the reserved frontier.
struct Rewarm {
    map: Arc<MmapRaw>,
    gate: Arc<TrimGate>,
    bytes: u64,
}

impl Rewarm {
    fn run(&self) {
        let from = self.gate.write_pos_hint.load(Ordering::Relaxed);
        let to = (from + self.bytes)
            .next_multiple_of(PAGE_BYTES)
            .min(self.gate.frontier_hint.load(Ordering::Relaxed));
        if from < to {
            // Under the gate: a segment sealed and trimmed meanwhile is left alone (its mapping
            // past the trimmed end has no file behind it).
            self.gate
                .unless_trimmed(|| prefault_active(&self.map, from, to, Prefault::Write));
        }
    }
}

/// The rewarm of a [`FlushJob`], taken out of it with [`FlushJob::take_rewarm`]: run it after the
/// flush job has finished (before, it would rewarm pages the fdatasync then cleans again).
#[derive(Debug)]
pub struct RewarmJob(Rewarm);

impl RewarmJob {
    /// Write-prefaults the pages just past the write position. Blocking; never fails (a page it
    /// cannot prefault faults on the append instead).
    pub fn run(self) {
        self.0.run();
    }

    /// Bytes it write-prefaults at most.
    pub fn bytes(&self) -> u64 {
        self.0.bytes
    }
}

impl std::fmt::Debug for Rewarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewarm")
            .field("bytes", &self.bytes)
            .finish()
    }
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

    /// How many bytes past the write position the job write-prefaults again after its fdatasync
    /// (see the module doc; fewer if the frontier is closer); `None` when it rewarms nothing.
    pub fn rewarm_bytes(&self) -> Option<u64> {
        self.rewarm.as_ref().map(|r| r.bytes)
    }

    /// Takes the rewarm out of the job, to be run separately once the job is done (e.g. at a
    /// lower priority: nothing waits for it). [`FlushJob::run`] then does not rewarm.
    pub fn take_rewarm(&mut self) -> Option<RewarmJob> {
        self.rewarm.take().map(RewarmJob)
    }

    /// Does the fdatasync(s), then rewarms the pages just past the data (unless
    /// [`FlushJob::take_rewarm`] took that part). Blocking.
    pub fn run(self) -> Result<FlushDone, StorageError> {
        for s in &self.seals {
            s.run(&self.io, &self.dir)?;
        }
        if let Some((path, file)) = &self.active {
            self.io
                .sync_data(path, file)
                .map_err(|e| StorageError::io(path, "fdatasync", e))?;
        }
        if let Some(r) = &self.rewarm {
            r.run();
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
    /// Capacities of the fresh offset and time index vectors to prepare, when the active
    /// segment's are about to run out of room.
    index_room: Option<(usize, usize)>,
}

/// Fresh, already touched vectors for the active segment's in-memory index (see
/// [`PartitionLog::prefault_job`]): growing a vector on the shard would fault its new pages in
/// on the append path, one fault per 4 KiB of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexRoom {
    offsets: Vec<OffsetIndexEntry>,
    times: Vec<TimeIndexEntry>,
}

impl IndexRoom {
    fn prepare(offsets: usize, times: usize) -> IndexRoom {
        IndexRoom {
            offsets: touched(
                offsets,
                OffsetIndexEntry {
                    relative_offset: 0,
                    position: 0,
                },
            ),
            times: touched(
                times,
                TimeIndexEntry {
                    max_timestamp_ms: 0,
                    relative_offset: 0,
                },
            ),
        }
    }
}

/// An empty vector with room for `capacity` entries whose pages are already faulted in.
fn touched<T: Copy>(capacity: usize, fill: T) -> Vec<T> {
    let mut v = Vec::with_capacity(capacity);
    v.resize(capacity, fill);
    // The writes must happen (they fault the pages in): the optimizer may not drop them.
    std::hint::black_box(&mut v);
    v.clear();
    v
}

/// Room the index vectors need beyond their length before the job after next can grow them:
/// two windows of appends, each adding an entry per `index_interval_bytes` at most (and one per
/// batch, which is at least a batch header).
fn index_headroom(window_bytes: u64, index_interval_bytes: u32) -> usize {
    let spacing = u64::from(index_interval_bytes).max(BATCH_HEADER_BYTES as u64);
    (2 * window_bytes / spacing + 2) as usize
}

/// The capacity to grow to, or `None` while `len` leaves `headroom` free.
fn grown_capacity(len: usize, capacity: usize, headroom: usize) -> Option<usize> {
    (capacity - len < headroom).then(|| (2 * capacity).max(len + 2 * headroom))
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefaultDone {
    seq: u64,
    /// `[0, allocated)` of the segment is now reserved; `None` if the segment was sealed and
    /// trimmed before the job ran (it did nothing).
    pub allocated: Option<u64>,
    index_room: Option<IndexRoom>,
}

impl PrefaultJob {
    /// The byte range `[from, to)` of the segment the job reserves and prefaults.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.from..self.to
    }

    /// fallocate + madvise(MADV_POPULATE_*) of the range, and room for the segment's index when
    /// it runs short. Blocking (about 0.1-0.3 ms per MiB).
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
                self.gate
                    .frontier_hint
                    .fetch_max(self.to, Ordering::Relaxed);
                Ok::<(), StorageError>(())
            })
            .transpose()?
            .is_some();
        let index_room = self
            .index_room
            .filter(|_| grown)
            .map(|(offsets, times)| IndexRoom::prepare(offsets, times));
        Ok(PrefaultDone {
            seq: self.seq,
            allocated: grown.then_some(self.to),
            index_room,
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
        let rewarm = self.rewarm_for_flush();
        Some(FlushJob {
            io: self.io.clone(),
            dir: self.dir.clone(),
            generation: self.generation,
            target_offset: self.end_offset,
            seals: std::mem::take(&mut self.pending_seals),
            active: self.active().map(|s| (s.path.clone(), Arc::clone(&s.file))),
            rewarm,
        })
    }

    /// The pages a flush beginning now rewarms (module doc): from the write position, as many
    /// bytes as were appended since the previous flush began (one page at least), up to the
    /// reserved frontier. Nothing with [`Prefault::Read`], whose pages fault on first write anyway.
    fn rewarm_for_flush(&mut self) -> Option<Rewarm> {
        let previous = self.last_flush_pos.take();
        let back_to_back = self.appends_at_flush_complete == Some(self.counters.appends);
        let seg = self.active()?;
        let (seq, write_pos) = (seg.seq, seg.write_pos);
        let since = match previous {
            Some((s, pos)) if s == seq && pos <= write_pos => write_pos - pos,
            _ => write_pos,
        };
        let rewarm = (self.config.prefault == Prefault::Write && !back_to_back).then(|| Rewarm {
            map: Arc::clone(&seg.map),
            gate: Arc::clone(&seg.gate),
            bytes: since.max(PAGE_BYTES),
        });
        self.last_flush_pos = Some((seq, write_pos));
        rewarm
    }

    /// Applies a finished flush: `durable_offset` advances to the flush's snapshot (appends that
    /// happened meanwhile stay dirty for the next flush).
    pub fn complete_flush(&mut self, done: FlushDone) {
        self.flush_in_flight = false;
        self.counters.flushes += 1;
        self.appends_at_flush_complete = Some(self.counters.appends);
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
        let headroom = index_headroom(window, self.config.index_interval_bytes);
        let offsets = &seg.offset_index;
        let times = &seg.time_index;
        let index_room = match (
            grown_capacity(offsets.len(), offsets.capacity(), headroom),
            grown_capacity(times.len(), times.capacity(), headroom),
        ) {
            (None, None) => None,
            // 0: that one has room (an empty vector allocates nothing).
            (o, t) => Some((o.unwrap_or(0), t.unwrap_or(0))),
        };
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
            index_room,
        };
        self.prefault_in_flight = true;
        Some(job)
    }

    /// Applies a finished [`PrefaultJob`]: the frontier of its segment moves, if that segment is
    /// still the active one, and its index moves into the prepared room (a copy into memory
    /// already faulted in) if the job brought more than the index has now.
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
            if let Some(mut room) = done.index_room {
                if room.offsets.capacity() > seg.offset_index.capacity() {
                    room.offsets.extend_from_slice(&seg.offset_index);
                    seg.offset_index = room.offsets;
                }
                if room.times.capacity() > seg.time_index.capacity() {
                    room.times.extend_from_slice(&seg.time_index);
                    seg.time_index = room.times;
                }
            }
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
