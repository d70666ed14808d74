//! Sprawl's partition log: an append-only, segmented, memory-mapped log per partition.
//!
//! A log is a list of segment files. The active one is reserved (fallocate) and prefaulted a window
//! at a time ahead of the write position ([`SegmentJob`] creates it with its first window,
//! [`PrefaultJob`]s move the frontier, both off the reactor) and appended to by encoding each batch
//! straight into its mapping: one memcpy of the payload, a CRC32C, a sparse index update (its room
//! prepared by the prefault job). Reads hand out `Bytes`
//! that share the mapping ([`FetchedBatch::bytes`]); published bytes are never rewritten, which is
//! what makes that sound. Durability is group commit: [`PartitionLog::begin_flush`] snapshots what is
//! dirty, a [`FlushJob`] fdatasyncs it on a blocking pool while appends go on (and then makes the
//! pages past the data writable again, so that appends take no page fault), and
//! [`PartitionLog::complete_flush`] advances the durable offset. Open runs crash recovery: trusted
//! sealed segments up to the checkpoint, a CRC-verifying scan after it, a torn tail cut at a batch
//! boundary. Compacted topics get key compaction as a background [`CompactionJob`]. Formats are
//! specified in `docs/log-format.md` and pinned by golden files. Every disk operation goes through
//! [`Io`]: the kernel, or in tests a [`fault::FaultDisk`] that drops, tears and flips unsynced
//! writes at a simulated crash, fails fdatasync and runs out of space
//! ([`PartitionLog::open_with`]).
//!
//! What this crate deliberately does not do:
//! - no async runtime and no threads: blocking work is a `Send` job the caller runs where it likes;
//! - no dependency on other Sprawl crates (the engine converts between their types);
//! - no replication or consumer offsets; the cold tier ([`cold`]) archives sealed segments to an
//!   object store and reads them back, but deciding when to run its jobs is the caller's;
//! - no locks: a log has one owner (its shard); only the hot ring is shared, through atomics: its
//!   node-wide [`MemoryBudget`] and lock-free [`RingReader`]s that tailing readers on any thread
//!   use (the test-only [`fault::FaultDisk`] keeps its state behind a mutex, and a segment's
//!   trim and its [`PrefaultJob`] take one mutex on the blocking pool, never on the shard);
//! - no I/O trait object on the hot path: the [`Io`] seam is an enum over the blocking calls only
//!   (create, fallocate, fdatasync, rename, unlink, index and checkpoint writes). Appends are a
//!   memcpy into the mapping with either backend; [`fault::FaultDisk`] finds unsynced bytes at a
//!   crash by comparing the files with its image of the medium.
//!
//! ```
//! use storage::{AppendOutcome, LogConfig, PartitionLog, Record};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = LogConfig { segment_bytes_max: 1 << 20, ..LogConfig::default() };
//! let (mut log, _report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
//! let rec = Record { key: Some(b"k"), value: b"hello", headers: &[], timestamp_ms: 1_000, ttl_ms: 0 };
//! let out = log.append(&[rec, rec], None, 1_000).unwrap();
//! assert_eq!(out, AppendOutcome::Appended { base_offset: 0, last_offset: 1 });
//!
//! // Group commit: the job is Send and would run on a blocking pool.
//! let job = log.begin_flush().unwrap();
//! let done = job.run().unwrap();
//! log.complete_flush(done);
//! assert_eq!(log.durable_offset(), 2);
//!
//! let read = log.read(1, 64 * 1024).unwrap();
//! let records = read.batches[0].records(1, 1_000).unwrap();
//! assert_eq!(&records[0].value[..], b"hello");
//! assert_eq!(records[0].offset, 1);
//!
//! log.close().unwrap();
//! let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
//! assert_eq!((log.end_offset(), report.tail_cut), (2, None));
//! ```

pub mod cold;
mod compaction;
mod config;
mod crash;
mod error;
pub mod fault;
mod fetch;
pub mod format;
mod index;
mod io;
mod jobs;
mod lifecycle;
mod log;
mod place;
mod producer;
mod recovery;
mod replica;
pub mod ring;
mod segment;

pub use compaction::{CompactionDone, CompactionJob, CompactionStats, COMPACTION_KEYS_MAX};
pub use config::{Compression, LogConfig, Prefault, RingConfig, PREFAULT_WINDOW_BYTES_DEFAULT};
pub use error::StorageError;
pub use fetch::{FetchedBatch, ReadResult, StoredHeaders, StoredRecord};
pub use io::Io;
pub use jobs::{FlushDone, FlushJob, PrefaultDone, PrefaultJob, RewarmJob, SegmentJob};
pub use lifecycle::{RemovedSegment, RetentionJob, RetentionReason, RetentionReport};
pub use log::{AppendOutcome, LogStats, PartitionLog, Record};
pub use producer::{ProducerInfo, PRODUCER_BATCHES_KEPT};
pub use recovery::{RecoveryReport, TailCut};
pub use ring::{read_host_memory, HostMemory, MemoryBudget, RingReader};
pub use segment::PreparedSegment;

// The engine opens logs off the reactor and moves them to their shard; jobs run on a blocking pool.
const _: () = {
    const fn assert_send<T: Send + 'static>() {}
    assert_send::<PartitionLog>();
    assert_send::<FlushJob>();
    assert_send::<RewarmJob>();
    assert_send::<SegmentJob>();
    assert_send::<PrefaultJob>();
    assert_send::<RetentionJob>();
    assert_send::<PreparedSegment>();
    assert_send::<FetchedBatch>();
    assert_send::<StorageError>();
    assert_send::<CompactionJob>();
    assert_send::<CompactionDone>();
    assert_send::<Io>();
    const fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<RingReader>();
};
