//! Checks run by the storage fuzz targets in `fuzz/fuzz_targets/` and replayed over the committed
//! corpora by `tests/fuzz_corpus_storage.rs`: one definition, so the replay can never drift from
//! what was fuzzed.
//!
//! Storage reads disk bytes it cannot trust (a torn write, a flipped bit, a file from another
//! version). Each check feeds arbitrary bytes to a storage parser and asserts that it returns a
//! value or a typed [`StorageError`], never panics, never allocates from an unchecked length
//! (libFuzzer runs with `-malloc_limit_mb=64`), and that whatever it accepts behaves like a log:
//! - [`check_format`]: the pure decoders in `storage::format` (batch header, records section,
//!   segment header, index files, checkpoint), with encode/decode round trips;
//! - [`check_segment_file`]: the input becomes a segment file that [`storage::PartitionLog::open`]
//!   recovers, then every batch is read and decoded, one record is appended and read back, and the
//!   log is closed and reopened;
//! - [`check_index_files`]: a real log with sealed, checkpointed segments gets fuzzed `.index` /
//!   `.timeindex` files, then it is opened, read and searched by timestamp against a full scan.
//!
//! Checksums defeat a byte-level fuzzer: a random batch almost never has a valid CRC32C. So the
//! first input byte selects fix-ups the harness applies before writing the files (valid segment
//! header, chained base offsets, recomputed CRCs, index headers bound to the segment). Inputs
//! without fix-ups test what a damaged disk produces; inputs with fix-ups reach the decoders behind
//! the checksums, i.e. what a buggy or hostile writer could produce.

mod format;
mod index;
mod seeds;
mod segment;

use std::path::PathBuf;

use storage::{PartitionLog, StorageError};

/// Why building seed inputs or the index target's template log failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("storage refused a well-formed seed log: {0}")]
    Storage(#[from] StorageError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("seed {seed}: {reason}")]
    Seed {
        seed: &'static str,
        reason: &'static str,
    },
}

impl HarnessError {
    fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> HarnessError {
        let path = path.into();
        move |source| HarnessError::Io { op, path, source }
    }
}

pub use format::check_format;
pub use index::check_index_files;
pub use seeds::{seed_inputs, Seed, SeedTarget};
pub use segment::{check_segment_file, SegmentFixups};

/// Reads at most this many times per input, so a log with millions of tiny batches cannot turn
/// one input into a libFuzzer timeout.
const READS_MAX: u32 = 4096;
/// `max_bytes` of every read issued by the checks.
const READ_BYTES_MAX: u32 = 64 * 1024;

/// What one check reached, so tests can prove that seed inputs get past the outer checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Headers (segment, batch, index, checkpoint) a decoder accepted.
    pub headers_accepted: u32,
    /// `PartitionLog::open` succeeded.
    pub opened: bool,
    pub batches_read: u64,
    pub records_decoded: u64,
    /// Typed errors returned (corruption reported instead of a panic).
    pub typed_errors: u32,
}

impl Outcome {
    fn note_error(&mut self, e: &StorageError) {
        // Every variant carries a message naming what was wrong; an empty one would be useless.
        assert!(!e.to_string().is_empty());
        self.typed_errors += 1;
    }
}

/// Where the log-based checks create their directories: tmpfs when available (libFuzzer runs
/// thousands of inputs per second and every `open` fdatasyncs), else the system temp dir.
fn scratch_dir() -> Result<tempfile::TempDir, HarnessError> {
    let shm = PathBuf::from("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("sprawl-fuzz-");
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(&shm) {
            return Ok(dir);
        }
    }
    builder.tempdir().map_err(HarnessError::io(
        "create scratch dir in",
        std::env::temp_dir(),
    ))
}

/// `(offset, timestamp_ms)` of every record a full read of `log` decoded.
type Scanned = Vec<(u64, i64)>;

/// Reads the whole log batch by batch, checking the read contract, and decodes every batch.
/// Returns the decoded records, or `None` if a typed error stopped the scan.
fn read_everything(log: &PartitionLog, out: &mut Outcome) -> Option<Scanned> {
    let mut scanned = Vec::new();
    let mut at = log.start_offset();
    let end = log.end_offset();
    let mut clean = true;
    for _ in 0..READS_MAX {
        if at >= end {
            return clean.then_some(scanned);
        }
        let read = match log.read(at, READ_BYTES_MAX) {
            Ok(read) => read,
            Err(e) => {
                out.note_error(&e);
                return None;
            }
        };
        let first = read
            .batches
            .first()
            .unwrap_or_else(|| panic!("read({at}) below the end offset {end} returned no batch"));
        assert!(
            first.base_offset() <= at && at <= first.last_offset(),
            "read({at}) returned a first batch spanning {}..={}",
            first.base_offset(),
            first.last_offset()
        );
        assert!(
            read.next_offset > at && read.next_offset <= end,
            "read({at}) returned next_offset {} (end {end})",
            read.next_offset
        );
        let mut expected_base = first.base_offset();
        for batch in &read.batches {
            assert_eq!(
                batch.base_offset(),
                expected_base,
                "batches of one read are contiguous"
            );
            expected_base = batch.last_offset() + 1;
            out.batches_read += 1;
            match batch.records(at, i64::MIN) {
                Ok(records) => {
                    for r in &records {
                        assert!(
                            r.offset >= at.max(batch.base_offset())
                                && r.offset <= batch.last_offset(),
                            "record offset {} outside batch {}..={} read from {at}",
                            r.offset,
                            batch.base_offset(),
                            batch.last_offset()
                        );
                        scanned.push((r.offset, r.timestamp_ms));
                    }
                    out.records_decoded += records.len() as u64;
                }
                Err(e) => {
                    out.note_error(&e);
                    clean = false;
                }
            }
        }
        assert_eq!(expected_base, read.next_offset);
        at = read.next_offset;
    }
    None
}
