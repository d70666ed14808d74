//! One segment file: a fixed-length, memory-mapped file of record batches, whose disk blocks are
//! allocated and whose pages are faulted in a window at a time, ahead of the write position.
//!
//! The mapping's `unsafe` lives here (the hot ring's is in `ring/sync.rs`), around one invariant: **bytes of the mapping below
//! `write_pos` (past the 128-byte header) are never written again.** Appends write only at and after
//! `write_pos`; `truncate_to` seals the segment at the cut instead of reusing the bytes, and the only
//! rewritten bytes are the header's, which are never handed out to readers. That is what lets
//! [`Segment::bytes`] hand out `Bytes` that alias the mapping without copying.
//!
//! The file has its full length from the start but is sparse: `[0, allocated)` is reserved with
//! fallocate, and an append never writes past `allocated` (it reserves more first), so a write
//! through the mapping can never hit a hole on a full disk (which would be a SIGBUS, not an
//! error). The frontier moves ahead a window at a time in [`crate::PrefaultJob`]s on a blocking
//! pool, or inline by as much as an append needs.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use memmap2::{MmapOptions, MmapRaw};

use crate::config::Prefault;
use crate::error::StorageError;
use crate::format::{
    BatchHeader, OffsetIndexEntry, SegmentHeader, SegmentState, TimeIndexEntry, BATCH_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
};
use crate::io::Io;

/// `madvise` advice that write-faults every page of a range (Linux >= 5.14).
const MADV_POPULATE_WRITE: libc::c_int = 23;
/// `madvise` advice that read-faults every page of a range (Linux >= 5.14).
const MADV_POPULATE_READ: libc::c_int = 22;
const PAGE_BYTES: usize = 4096;
/// Pages faulted in by one madvise call of a prefault (see `prefault`): 64 KiB, ~10-20 us.
const POPULATE_CHUNK_BYTES: usize = 64 << 10;

pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}
pub(crate) fn offset_index_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.index"))
}
pub(crate) fn time_index_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.timeindex"))
}

/// A read-only window `[start, start + len)` of a mapping, the owner behind zero-copy `Bytes`.
struct MapWindow {
    map: Arc<MmapRaw>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for MapWindow {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `start + len <= map.len()` was checked when the window was built, and the window
        // covers only published batch bytes (below `write_pos`, past the header) which the segment
        // invariant guarantees are never written again; the Arc keeps the mapping alive for as long
        // as this window exists, and unlinking or sealing the file does not unmap it.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.start), self.len) }
    }
}

/// What a segment's blocking jobs share with the shard. The mutex serializes growing a segment (a
/// [`crate::PrefaultJob`]) with trimming it (its seal), both on blocking threads: once trimmed, a
/// segment never grows again, so a late job cannot reserve blocks past the trimmed end. The
/// shard's thread never takes it; it only stores the two hints, which a flush's rewarm reads
/// (`jobs` module doc) and which are never trusted for anything but the range of an madvise.
#[derive(Debug, Default)]
pub(crate) struct TrimGate {
    trimmed: Mutex<bool>,
    /// End of the batches, as of the last append.
    pub write_pos_hint: AtomicU64,
    /// Reserved frontier, as of the last reservation (activation, job or inline).
    pub frontier_hint: AtomicU64,
}

impl TrimGate {
    /// Runs `f` unless the segment was trimmed; `None` if it was.
    pub fn unless_trimmed<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        let trimmed = self.trimmed.lock().unwrap_or_else(|e| e.into_inner());
        (!*trimmed).then(f)
    }

    /// Marks the segment trimmed and runs the trim under the same lock.
    pub fn trim<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut trimmed = self.trimmed.lock().unwrap_or_else(|e| e.into_inner());
        *trimmed = true;
        f()
    }
}

/// A segment created and prefaulted by a [`crate::SegmentJob`], ready to become the active segment.
pub struct PreparedSegment {
    pub(crate) seq: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<File>,
    pub(crate) map: Arc<MmapRaw>,
    /// `[0, allocated)` is reserved and prefaulted.
    pub(crate) allocated: u64,
}

impl std::fmt::Debug for PreparedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedSegment")
            .field("seq", &self.seq)
            .field("path", &self.path)
            .field("allocated", &self.allocated)
            .finish()
    }
}

/// Creates `{seq}.seg` of `len_bytes` (sparse), reserves and maps its first `window_bytes`, writes
/// the header, makes the file and its directory entry durable, then prefaults the window.
/// Blocking: runs on a blocking pool, at open, or inline as a counted fallback. On failure (ENOSPC
/// from the creation or the fallocate, typically) the half-made file is unlinked again, so a full
/// disk leaves nothing behind.
pub(crate) fn create_prepared(
    io: &Io,
    dir: &Path,
    seq: u64,
    len_bytes: u64,
    window_bytes: u64,
    mode: Prefault,
) -> Result<PreparedSegment, StorageError> {
    let path = segment_path(dir, seq);
    let file = io
        .create_new(&path)
        .map_err(|e| StorageError::io(&path, "create segment", e))?;
    let allocated = window_bytes.clamp(SEGMENT_HEADER_BYTES as u64, len_bytes);
    match init_prepared(io, dir, &path, &file, seq, len_bytes, allocated) {
        Ok(map) => {
            // Prefault only after the sync: a write fault dirties the page, and a sync after it
            // would write the window's zeros back and write-protect its pages again.
            prefault(&map, 0, allocated, mode, Sharing::Fresh);
            Ok(PreparedSegment {
                seq,
                path,
                file: Arc::new(file),
                map: Arc::new(map),
                allocated,
            })
        }
        Err(e) => {
            // Best effort: if the unlink fails too, the next open removes the never-initialized
            // (or still `Prepared`) file as an orphan.
            drop(file);
            let _ = io.remove_file(&path);
            Err(e)
        }
    }
}

fn init_prepared(
    io: &Io,
    dir: &Path,
    path: &Path,
    file: &File,
    seq: u64,
    len_bytes: u64,
    allocated: u64,
) -> Result<MmapRaw, StorageError> {
    if i64::try_from(len_bytes).is_err() {
        return Err(StorageError::InvalidConfig {
            field: "segment_bytes_max",
            reason: "does not fit in off_t",
        });
    }
    io.set_len(path, file, len_bytes)
        .map_err(|e| StorageError::io(path, "ftruncate", e))?;
    io.allocate_range(path, file, 0, allocated)
        .map_err(|e| StorageError::io(path, "fallocate", e))?;
    let map = MmapOptions::new()
        .len(len_bytes as usize)
        .map_raw(file)
        .map_err(|e| StorageError::io(path, "mmap", e))?;
    // No readahead on faults in this mapping: a window's MADV_POPULATE_* must fault in that window,
    // not zero-fill pages of the sparse file far beyond it (with readahead one 1 MiB populate ran
    // 27 ms on a blocking thread sharing the reactor's core, perf sched). Best effort: without
    // the advice prefaulting is slower, not wrong.
    let _ = map.advise(memmap2::Advice::Random);
    let header = SegmentHeader {
        state: SegmentState::Prepared,
        seq,
        base_offset: 0,
        created_ms: 0,
        data_bytes: 0,
        next_offset: 0,
        max_timestamp_ms: i64::MIN,
        max_expires_at_ms: i64::MIN,
        batch_count: 0,
    };
    let mut buf = [0u8; SEGMENT_HEADER_BYTES];
    header.encode(&mut buf);
    // SAFETY: the mapping is at least one page long (segment_bytes_max >= 4096 is validated) and
    // nobody else can see it yet.
    unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), map.as_mut_ptr(), SEGMENT_HEADER_BYTES) };
    io.sync_all(path, file)
        .map_err(|e| StorageError::io(path, "fsync", e))?;
    sync_dir(io, dir)?;
    Ok(map)
}

/// Who else may be writing the mapping while it is prefaulted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sharing {
    /// A segment being created: nobody else has the mapping yet.
    Fresh,
    /// The active segment: the shard may append into the range concurrently.
    Active,
}

/// Faults the pages of `[from, to)` of a segment mapping in (see [`Prefault`] for the trade-off).
/// The range must be reserved ([`Io::allocate_range`]) and lie at or after the write position,
/// except for the page holding it.
fn prefault(map: &MmapRaw, from: u64, to: u64, mode: Prefault, sharing: Sharing) {
    let start = (from as usize / PAGE_BYTES) * PAGE_BYTES;
    let end = (to as usize).min(map.len());
    if start >= end {
        return;
    }
    let advice = match mode {
        Prefault::Write => MADV_POPULATE_WRITE,
        Prefault::Read => MADV_POPULATE_READ,
    };
    // In chunks, yielding the CPU between them: the kernel does not preempt a thread inside
    // madvise for a woken reactor sharing its core, so one call per window held that reactor
    // for the whole window's page zeroing.
    let mut rc = 0;
    let mut at = start;
    while at < end && rc == 0 {
        let len = (end - at).min(POPULATE_CHUNK_BYTES);
        // SAFETY: `at` is page-aligned and `[at, at + len)` lies inside our own mapping;
        // MADV_POPULATE_* do not change the contents of a shared file mapping, they only fault
        // pages in, so concurrent readers of published bytes in the first page see the same bytes.
        rc = unsafe { libc::madvise(map.as_mut_ptr().add(at).cast(), len, advice) };
        at += len;
        if at < end {
            std::thread::yield_now();
        }
    }
    if rc != 0 && mode == Prefault::Write && sharing == Sharing::Fresh {
        // Older kernels (no MADV_POPULATE_*, Linux < 5.14): touch each page with a write of the
        // byte already there. Only while nobody else has the mapping: on the active segment a
        // read-then-write could undo an append made in between, so there the pages simply fault
        // on first use.
        let p = map.as_mut_ptr();
        let mut at = start;
        while at < end {
            // SAFETY: `at < end <= map.len()`, the mapping is writable and, being fresh, not
            // shared with anyone (no reader, no appender).
            unsafe { std::ptr::write_volatile(p.add(at), std::ptr::read_volatile(p.add(at))) };
            at += PAGE_BYTES;
        }
    }
}

/// Prefaults `[from, to)` of the active segment's mapping, which the shard may be appending to
/// (below `from`, or inside the range once an inline reserve moved the frontier past `from`).
pub(crate) fn prefault_active(map: &MmapRaw, from: u64, to: u64, mode: Prefault) {
    prefault(map, from, to, mode, Sharing::Active);
}

pub(crate) fn sync_dir(io: &Io, dir: &Path) -> Result<(), StorageError> {
    io.sync_dir(dir)
        .map_err(|e| StorageError::io(dir, "fsync directory", e))
}

/// Decodes the header of a mapped segment file (at least `SEGMENT_HEADER_BYTES` long).
pub(crate) fn read_header(map: &MmapRaw) -> Result<SegmentHeader, &'static str> {
    if map.len() < SEGMENT_HEADER_BYTES {
        return Err("file shorter than the segment header");
    }
    // SAFETY: length checked above; during recovery nothing else reads or writes the mapping.
    let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr(), SEGMENT_HEADER_BYTES) };
    SegmentHeader::decode(bytes)
}

/// True if the header region of a mapped file is all zero (created, never initialized).
pub(crate) fn header_is_zero(map: &MmapRaw) -> bool {
    let len = map.len().min(SEGMENT_HEADER_BYTES);
    // SAFETY: `len <= map.len()`; during recovery nothing else reads or writes the mapping.
    let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr(), len) };
    bytes.iter().all(|&b| b == 0)
}

/// One segment of a partition log.
pub(crate) struct Segment {
    pub seq: u64,
    pub path: PathBuf,
    pub file: Arc<File>,
    pub map: Arc<MmapRaw>,
    pub header: SegmentHeader,
    /// `[0, allocated)` has disk blocks reserved; appends never write past it (see the module doc).
    /// At least `write_pos`.
    pub allocated: u64,
    pub gate: Arc<TrimGate>,
    /// End of the batches: the next batch is written here.
    pub write_pos: u64,
    /// Largest `write_pos` ever reached; readers may hold bytes below it, so the file is never cut
    /// shorter than this while mapped.
    pub high_water: u64,
    pub next_offset: u64,
    pub max_timestamp_ms: i64,
    pub max_expires_at_ms: i64,
    pub offset_index: Vec<OffsetIndexEntry>,
    pub time_index: Vec<TimeIndexEntry>,
    /// Whether `time_index` is known to bound its batches (see [`Segment::time_index_sound`]):
    /// one of the `TIME_INDEX_*` values. An index built in this process is; one loaded from a
    /// `.timeindex` file is checked the first time a timestamp lookup relies on it.
    pub time_index_trust: AtomicU8,
    pub bytes_since_index: u64,
    pub batch_count: u64,
}

/// [`Segment::time_index_trust`]: built from the batches, or checked against them and sound.
pub(crate) const TIME_INDEX_SOUND: u8 = 0;
/// Loaded from a file and not checked yet.
pub(crate) const TIME_INDEX_UNCHECKED: u8 = 1;
/// Checked and found to understate some batch: lookups in this segment scan it from the start.
pub(crate) const TIME_INDEX_UNSOUND: u8 = 2;

impl Segment {
    /// Turns a prepared segment into the active one starting at `base_offset`.
    pub fn activate(prepared: PreparedSegment, base_offset: u64, now_ms: i64) -> Segment {
        let header = SegmentHeader {
            state: SegmentState::Active,
            seq: prepared.seq,
            base_offset,
            created_ms: now_ms,
            data_bytes: 0,
            next_offset: base_offset,
            max_timestamp_ms: i64::MIN,
            max_expires_at_ms: i64::MIN,
            batch_count: 0,
        };
        let mut seg = Segment {
            seq: prepared.seq,
            path: prepared.path,
            file: prepared.file,
            map: prepared.map,
            header,
            allocated: prepared.allocated,
            gate: Arc::new(TrimGate {
                frontier_hint: AtomicU64::new(prepared.allocated),
                ..TrimGate::default()
            }),
            write_pos: SEGMENT_HEADER_BYTES as u64,
            high_water: SEGMENT_HEADER_BYTES as u64,
            next_offset: base_offset,
            max_timestamp_ms: i64::MIN,
            max_expires_at_ms: i64::MIN,
            offset_index: Vec::new(),
            time_index: Vec::new(),
            time_index_trust: AtomicU8::new(TIME_INDEX_SOUND),
            bytes_since_index: 0,
            batch_count: 0,
        };
        seg.store_header();
        seg
    }

    /// Opens an existing segment file read-write and maps all of it.
    pub fn open_file(path: &Path) -> Result<(Arc<File>, Arc<MmapRaw>), StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StorageError::io(path, "open segment", e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(path, "stat", e))?
            .len();
        let map = MmapOptions::new()
            .len(len as usize)
            .map_raw(&file)
            .map_err(|e| StorageError::io(path, "mmap", e))?;
        Ok((Arc::new(file), Arc::new(map)))
    }

    /// Builds a segment from recovered state (see `recovery`).
    pub fn from_parts(
        path: PathBuf,
        file: Arc<File>,
        map: Arc<MmapRaw>,
        header: SegmentHeader,
    ) -> Segment {
        Segment {
            seq: header.seq,
            path,
            file,
            map,
            header,
            // Which blocks a recovered file has is unknown beyond its data (`note_batch` raises
            // this to the end of the batches); appends reserve the rest before they write it.
            allocated: SEGMENT_HEADER_BYTES as u64,
            gate: Arc::default(),
            write_pos: SEGMENT_HEADER_BYTES as u64,
            high_water: SEGMENT_HEADER_BYTES as u64,
            next_offset: header.base_offset,
            max_timestamp_ms: i64::MIN,
            max_expires_at_ms: i64::MIN,
            offset_index: Vec::new(),
            time_index: Vec::new(),
            time_index_trust: AtomicU8::new(TIME_INDEX_SOUND),
            bytes_since_index: 0,
            batch_count: 0,
        }
    }

    pub fn capacity(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }

    pub fn is_empty(&self) -> bool {
        self.next_offset == self.header.base_offset
    }

    pub fn data_bytes(&self) -> u64 {
        self.write_pos - SEGMENT_HEADER_BYTES as u64
    }

    /// Reads bytes `[start, start + len)` of the mapping. Only for bytes this thread does not write
    /// concurrently: published batches, the header, or anything during recovery.
    pub fn view(&self, start: u64, len: usize) -> &[u8] {
        let start = start as usize;
        assert!(start + len <= self.map.len(), "segment view out of bounds");
        // SAFETY: bounds checked above; the range is either published (immutable) or owned by the
        // caller through `&self` of the single owner, so no write overlaps this borrow.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(start), len) }
    }

    /// Zero-copy handle on published bytes `[start, start + len)`.
    pub fn bytes(&self, start: u64, len: usize) -> Bytes {
        let end = start as usize + len;
        assert!(
            start as usize >= SEGMENT_HEADER_BYTES && end as u64 <= self.write_pos,
            "only published batch bytes may be shared"
        );
        Bytes::from_owner(MapWindow {
            map: Arc::clone(&self.map),
            start: start as usize,
            len,
        })
    }

    /// Reserves (inline, blocking) up to `to`, at most the capacity. The append path's fallback
    /// when a batch would pass the frontier before a [`crate::PrefaultJob`] moved it.
    pub fn reserve_inline(&mut self, io: &Io, to: u64) -> Result<(), StorageError> {
        let to = to.min(self.capacity());
        if to <= self.allocated {
            return Ok(());
        }
        io.allocate_range(&self.path, &self.file, self.allocated, to - self.allocated)
            .map_err(|e| StorageError::io(&self.path, "fallocate", e))?;
        self.allocated = to;
        self.gate.frontier_hint.fetch_max(to, Ordering::Relaxed);
        Ok(())
    }

    /// Mutable access to the unpublished range `[write_pos, write_pos + len)`.
    pub fn unpublished_mut(&mut self, len: usize) -> &mut [u8] {
        let start = self.write_pos as usize;
        assert!(
            (start + len) as u64 <= self.allocated && start + len <= self.map.len(),
            "append past the reserved part of the segment"
        );
        // SAFETY: bounds checked above. No `Bytes` covers bytes at or after `write_pos` (see the
        // module invariant) and `&mut self` excludes any other borrow of the mapping in this thread.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(start), len) }
    }

    /// Rewrites the header bytes from `self.header` (never shared with readers).
    pub fn store_header(&mut self) {
        let mut buf = [0u8; SEGMENT_HEADER_BYTES];
        self.header.encode(&mut buf);
        // SAFETY: the mapping is longer than the header (checked at create/open); header bytes are
        // never handed out as `Bytes`, and `&mut self` excludes local borrows.
        unsafe {
            std::ptr::copy_nonoverlapping(buf.as_ptr(), self.map.as_mut_ptr(), SEGMENT_HEADER_BYTES)
        };
    }

    /// Writes every page of `[0, write_pos)` again with the byte already there, so that the kernel
    /// considers them dirty and the next sync writes them (see `io::SYNC_FAILED_FILE`). Recovery
    /// only: no readers exist yet.
    pub fn rewrite_pages(&mut self, io: &Io) -> Result<(), StorageError> {
        let len = (self.write_pos as usize).min(self.map.len());
        let p = self.map.as_mut_ptr();
        let mut at = 0;
        while at < len {
            // SAFETY: `at < len <= map.len()`; recovery owns the mapping exclusively (no `Bytes`
            // exist yet) and the byte written is the byte read, so no content changes.
            unsafe { std::ptr::write_volatile(p.add(at), std::ptr::read_volatile(p.add(at))) };
            at += PAGE_BYTES;
        }
        io.note_rewritten(&self.path, &self.file)
            .map_err(|e| StorageError::io(&self.path, "rewrite pages", e))
    }

    /// Zeroes `[from, map.len())` where it is not already zero. Recovery only: no readers exist yet.
    pub fn zero_tail(&mut self, from: u64) -> bool {
        let mut changed = false;
        let len = self.map.len();
        let mut at = from as usize;
        while at < len {
            let end = ((at / PAGE_BYTES) + 1) * PAGE_BYTES;
            let end = end.min(len);
            // SAFETY: `at < end <= len`; recovery owns the mapping exclusively (no Bytes exist yet).
            let chunk =
                unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(at), end - at) };
            if chunk.iter().any(|&b| b != 0) {
                chunk.fill(0);
                changed = true;
            }
            at = end;
        }
        changed
    }

    /// Records the batch just written at `position` in the in-memory indexes and counters.
    pub fn note_batch(&mut self, position: u64, h: &BatchHeader, index_interval_bytes: u32) {
        let rel = (h.base_offset - self.header.base_offset) as u32;
        if self.offset_index.is_empty() || self.bytes_since_index >= u64::from(index_interval_bytes)
        {
            self.offset_index.push(OffsetIndexEntry {
                relative_offset: rel,
                position: position as u32,
            });
            let running = self.max_timestamp_ms.max(h.max_timestamp_ms);
            self.time_index.push(TimeIndexEntry {
                max_timestamp_ms: running,
                relative_offset: rel,
            });
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += u64::from(h.batch_bytes);
        self.max_timestamp_ms = self.max_timestamp_ms.max(h.max_timestamp_ms);
        self.max_expires_at_ms = self.max_expires_at_ms.max(h.max_expires_at_ms);
        self.next_offset = h.last_offset() + 1;
        self.write_pos = position + u64::from(h.batch_bytes);
        self.high_water = self.high_water.max(self.write_pos);
        self.gate
            .write_pos_hint
            .store(self.write_pos, Ordering::Relaxed);
        // Bytes holding batches have their blocks (recovery learns the frontier this way).
        self.allocated = self.allocated.max(self.write_pos);
        self.batch_count += 1;
    }

    /// Decodes the header of the published batch at `pos`, checking it lies inside the data.
    pub fn batch_header_at(&self, pos: u64) -> Result<BatchHeader, StorageError> {
        if pos + BATCH_HEADER_BYTES as u64 > self.write_pos {
            return Err(StorageError::corrupt(
                &self.path,
                pos,
                "batch header past the end of data",
            ));
        }
        let h = BatchHeader::decode(self.view(pos, BATCH_HEADER_BYTES))
            .map_err(|r| StorageError::corrupt(&self.path, pos, r))?;
        if pos + u64::from(h.batch_bytes) > self.write_pos {
            return Err(StorageError::corrupt(
                &self.path,
                pos,
                "batch extends past the end of data",
            ));
        }
        Ok(h)
    }

    /// Whether every time index entry is at least the largest timestamp of the batches before the
    /// one holding its offset, which is what lets a timestamp lookup skip those batches. True of
    /// an index this process built; a `.timeindex` file whose checksums verify can still break it
    /// (a writer bug), and only the batches can tell. Checked once, by walking every batch header
    /// of the segment, then remembered.
    pub fn time_index_sound(&self) -> Result<bool, StorageError> {
        match self.time_index_trust.load(Ordering::Relaxed) {
            TIME_INDEX_SOUND => return Ok(true),
            TIME_INDEX_UNSOUND => return Ok(false),
            _ => {}
        }
        let base = self.header.base_offset;
        let mut entries = self.time_index.iter().peekable();
        // Largest timestamp of the batches before the one at `pos`.
        let mut before = i64::MIN;
        let mut sound = true;
        let mut pos = SEGMENT_HEADER_BYTES as u64;
        while pos < self.write_pos && sound {
            let h = self.batch_header_at(pos)?;
            let last = h.last_offset().saturating_sub(base);
            while let Some(e) = entries.next_if(|e| u64::from(e.relative_offset) <= last) {
                sound &= e.max_timestamp_ms >= before;
            }
            before = before.max(h.max_timestamp_ms);
            pos += u64::from(h.batch_bytes);
        }
        // Entries past the last batch must bound all of them.
        sound &= entries.all(|e| e.max_timestamp_ms >= before);
        let trust = if sound {
            TIME_INDEX_SOUND
        } else {
            TIME_INDEX_UNSOUND
        };
        self.time_index_trust.store(trust, Ordering::Relaxed);
        Ok(sound)
    }

    /// Byte position of the batch containing `offset` (which must be in this segment), found from
    /// the sparse index and a short walk of batch headers.
    pub fn position_of(&self, offset: u64) -> Result<(u64, BatchHeader), StorageError> {
        let rel = offset - self.header.base_offset;
        let i = self
            .offset_index
            .partition_point(|e| u64::from(e.relative_offset) <= rel);
        let entry = i.checked_sub(1).map(|k| self.offset_index[k]);
        let mut pos = entry.map_or(SEGMENT_HEADER_BYTES as u64, |e| u64::from(e.position));
        // Every entry is made at the start of the batch it names; an index file written wrong but
        // checksummed right may say otherwise, and then the walk starts at the first batch.
        let mut check = entry.map(|e| self.header.base_offset + u64::from(e.relative_offset));
        loop {
            let h = self.batch_header_at(pos)?;
            if check.take().is_some_and(|base| h.base_offset != base) {
                pos = SEGMENT_HEADER_BYTES as u64;
                continue;
            }
            if h.last_offset() >= offset {
                return Ok((pos, h));
            }
            pos += u64::from(h.batch_bytes);
        }
    }

    /// Marks the segment sealed at its current end (header only; durability comes from the next
    /// fdatasync of this file).
    pub fn seal(&mut self) {
        self.header.state = SegmentState::Sealed;
        self.header.data_bytes = self.data_bytes();
        self.header.next_offset = self.next_offset;
        self.header.max_timestamp_ms = self.max_timestamp_ms;
        self.header.max_expires_at_ms = self.max_expires_at_ms;
        self.header.batch_count = self.batch_count;
        self.store_header();
        // Readers of a sealed segment go front to back: readahead is welcome again (it was off
        // while the segment was prefaulted a window at a time, see `create_prepared`).
        let _ = self.map.advise(memmap2::Advice::Normal);
    }

    pub fn is_sealed(&self) -> bool {
        self.header.state == SegmentState::Sealed
    }
}
