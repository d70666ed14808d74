//! Regression tests for the defects the storage fuzz targets found (see `docs/benchmarks/micro.md`,
//! "Fuzzing", and `docs/soak.md`): a zstd batch's declared size is checked against the largest
//! batch a log accepts and no longer sizes the output buffer by itself, index files whose
//! entries do not move forward are rebuilt instead of trusted, and a time index whose running
//! maxima understate its batches no longer misleads a timestamp lookup. All need files whose
//! checksums are valid, i.e. written by a buggy or hostile writer, not damaged by the disk.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use benches::storage_fuzz::{check_index_files, check_segment_file, seed_inputs};
use storage::format::BATCH_HEADER_BYTES;

/// Records the largest single allocation, so a test can show that a length read from disk was
/// trusted (libFuzzer's `-malloc_limit_mb=64` does the same).
struct LargestAllocation;

static LARGEST_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator with the caller's layout unchanged; the
// only addition is an atomic maximum, which cannot allocate or unwind.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_BYTES.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

fn seed(name: &str) -> Vec<u8> {
    seed_inputs()
        .expect("build seeds")
        .into_iter()
        .find(|(_, n, _)| n == name)
        .unwrap_or_else(|| panic!("no seed {name}"))
        .2
}

/// Byte positions of the batches in a `storage_segment` input with header fix-ups
/// (mode byte, 8-byte base offset, then batches back to back).
fn batch_positions(input: &[u8]) -> Vec<usize> {
    let mut at = 9;
    let mut out = Vec::new();
    while input.len() - at >= BATCH_HEADER_BYTES {
        out.push(at);
        let len = u32::from_le_bytes(input[at..at + 4].try_into().expect("4 bytes"));
        at += len as usize;
    }
    out
}

/// Reads the seed segment with its zstd batch declaring `records_bytes` (the harness re-seals the
/// CRC) and returns the largest single allocation made meanwhile and the input's length. The
/// two tests that measure run one at a time, so neither resets the other's maximum.
fn largest_allocation_with_zstd_records_bytes(records_bytes: u32) -> (usize, usize) {
    static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let mut input = seed("seed-fixed-active");
    let zstd_batch = *batch_positions(&input).last().expect("three batches");
    assert_eq!(
        input[zstd_batch + 62] & 0b11,
        1,
        "the last seed batch is zstd"
    );
    // records_bytes sits at bytes 56..60 of the batch header.
    input[zstd_batch + 56..zstd_batch + 60].copy_from_slice(&records_bytes.to_le_bytes());
    LARGEST_BYTES.store(0, Ordering::Relaxed);
    check_segment_file(&input);
    (LARGEST_BYTES.load(Ordering::Relaxed), input.len())
}

/// `FetchedBatch::records` passes the header's `records_bytes` (up to 4 GiB) to
/// `zstd::bulk::decompress` as its output capacity, which allocates it before decompressing.
/// libFuzzer: `out-of-memory (malloc(1932407088))` in `storage::fetch::FetchedBatch::records`
/// (storage/src/fetch.rs, the `zstd::bulk::decompress` call).
#[test]
fn zstd_batch_with_huge_records_bytes_allocates_at_most_64_mib() {
    let (largest, len) = largest_allocation_with_zstd_records_bytes(u32::MAX);
    assert!(
        largest <= 64 << 20,
        "one allocation of {largest} bytes while reading a {len}-byte segment"
    );
}

/// Within the batch limit, the declared size still set the allocation: a zstd batch declaring
/// 64 MiB (the limit) of records made a 64 MiB allocation before the frame said otherwise.
/// libFuzzer (2026-12-02, `docs/soak.md`): `out-of-memory (malloc(67108864))` in
/// `storage::fetch::FetchedBatch::records_into`. Now the buffer grows with the actual output.
#[test]
fn zstd_batch_declaring_the_limit_allocates_by_its_output() {
    let (largest, len) = largest_allocation_with_zstd_records_bytes(64 << 20);
    assert!(
        largest <= 4 << 20,
        "one allocation of {largest} bytes while reading a {len}-byte segment"
    );
}

/// A checkpointed segment's `.index` is trusted once its CRCs verify; only its first entry and
/// the positions' upper bound are checked. An entry whose relative offset is out of order makes
/// `read` start at a later batch, silently skipping records. The fuzz harness reports:
/// `assertion left == right failed: batches of one read are contiguous, left: 36, right: 24`
/// (or `read(N) returned a first batch spanning ...`).
#[test]
fn index_with_an_out_of_order_entry_never_makes_read_skip_batches() {
    let mut input = seed("seed-entries-seq1");
    // Layout: mode, u16 length of the offset entries, offset entries (8 bytes each), time entries.
    let offsets_len = usize::from(u16::from_le_bytes([input[1], input[2]]));
    assert!(
        offsets_len >= 5 * 8,
        "the seed segment has at least 5 index entries"
    );
    // Entry 4 now claims relative offset 0 (entries must be increasing).
    let entry = 3 + 4 * 8;
    input[entry..entry + 4].copy_from_slice(&0u32.to_le_bytes());
    let outcome = check_index_files(&input);
    assert!(
        outcome.opened || outcome.typed_errors > 0,
        "either the log reads correctly or the index is reported"
    );
}

/// The same trust in the `.timeindex`: an entry whose running maximum timestamp goes backwards
/// makes `offset_for_timestamp` start its search too late. The fuzz harness reports:
/// `assertion left == right failed: offset_for_timestamp(1000), left: Some(3), right: Some(0)`.
#[test]
fn time_index_with_a_decreasing_entry_never_skips_the_first_match() {
    let mut input = seed("seed-entries-seq0");
    let offsets_len = usize::from(u16::from_le_bytes([input[1], input[2]]));
    let times = 3 + offsets_len;
    assert!(
        input.len() >= times + 2 * 12,
        "the seed has at least 2 time entries"
    );
    // Time entry 1 (12 bytes: i64 max timestamp, u32 relative offset) now claims the smallest
    // timestamp, below entry 0's.
    input[times + 12..times + 20].copy_from_slice(&i64::MIN.to_le_bytes());
    let outcome = check_index_files(&input);
    assert!(
        outcome.opened,
        "a wrong time index is rebuilt or ignored, not fatal"
    );
}

/// Found by the fuzz soak of 2026-12-02 (`docs/soak.md`): time index entries that never go
/// backwards, so they pass the check above, but whose running maxima understate the batches they
/// cover (`i64::MIN + 1000` at offset 0, then `0` at offset 3, over batches stamped from 1000 on)
/// made `offset_for_timestamp(1000)` start at offset 3 and answer 3 instead of 0. The index's
/// CRCs verify (only a writer bug makes such a file), so a lookup now checks a loaded time index
/// against the segment's batch headers the first time it relies on it, and scans the segment
/// when the index understates any batch. The input is also in the replayed corpus.
#[test]
fn time_index_understating_its_batches_never_skips_the_first_match() {
    let input =
        include_bytes!("../../fuzz/corpus/storage_index/3e82003b5d5502c850470f1b9e051789aaf49072");
    let outcome = check_index_files(input);
    assert!(outcome.opened, "the log opens with the understated index");
}
