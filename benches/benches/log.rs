//! `storage::PartitionLog`: append, read, group-commit flush, each beside a hardware probe that
//! moves the same bytes (memcpy for append, pwrite + fdatasync for flush), so that the ratio
//! can be read from one run on a noisy shared VM.
//!
//! Logs live in a temp dir (`$SPRAWL_BENCH_DIR` to pick the file system) with the engine's
//! default 64 MiB segments. Counters: bytes = bytes written, checksummed or made durable per
//! iteration (batch header and record prefixes included, see `Workload::stored_batch_bytes`);
//! items = records. Zero-copy reads touch no payload byte, so they count records only.

use std::cell::RefCell;
use std::os::unix::fs::FileExt;

use benches::fixtures::{
    bench_dir, ensure_prepared, fill_log, flush, open_log, run_prefault_jobs, storage_records,
    Workload, BENCH_TIMESTAMP_MS,
};
use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};
use storage::{LogConfig, RingConfig};

/// The two batch shapes appended: few large records and many small ones.
const APPEND_WORKLOADS: [Workload; 2] = [Workload::new(16, 1024), Workload::new(64, 128)];
/// Appends (and probe copies) per timed sample. Fixed so that a 64 MiB segment lasts several
/// samples and the next one can be prepared between samples, untimed, as the engine does it
/// off the reactor.
const APPEND_SAMPLE_SIZE: u32 = 64;
/// Prefault window of the append benchmark's log (the engine's default is 1 MiB, with a job after
/// every append).
const APPEND_PREFAULT_WINDOW_BYTES: u64 = 4 << 20;
/// Batches in the log the read benchmarks read from.
const READ_LOG_BATCHES: u32 = 256;
/// `max_bytes` of each read, a typical fetch size.
const READ_BYTES_MAX: u32 = 64 * 1024;
/// Destination of the memcpy probe: the footprint of one segment, walked forward the same way.
const PROBE_BUFFER_BYTES: usize = 64 << 20;
/// Segment size of the flush benchmark's log (small: its first flush writes it all back).
const FLUSH_SEGMENT_BYTES: u64 = 16 << 20;

fn main() {
    divan::main();
}

fn stored_bytes(workload: Workload) -> usize {
    workload.stored_batch_bytes() as usize
}

/// `PartitionLog::append` of one batch into a prefaulted, never-flushed active segment (the
/// `acks=leader` path: no fdatasync). Rolls to a segment prepared between samples; the prefault
/// jobs also run between samples (untimed, as the engine runs them off the reactor).
#[divan::bench(args = APPEND_WORKLOADS, sample_size = APPEND_SAMPLE_SIZE)]
fn append(bencher: Bencher, workload: Workload) {
    let dir = bench_dir().expect("bench dir");
    // The engine runs the prefault job after every append; here it runs between samples, so the
    // window must hold a sample's appends (64 x 17 KiB) past the half-window trigger.
    let config = LogConfig {
        prefault_window_bytes: APPEND_PREFAULT_WINDOW_BYTES,
        ..LogConfig::default()
    };
    let log = RefCell::new(open_log(dir.path(), config).expect("open log"));
    let values = workload.values();
    let records = storage_records(&values);
    bencher
        .counter(BytesCount::new(stored_bytes(workload)))
        .counter(ItemsCount::new(workload.records))
        .with_inputs(|| {
            let mut log = log.borrow_mut();
            ensure_prepared(&mut log).expect("prepare a segment");
            run_prefault_jobs(&mut log).expect("prefault");
        })
        .bench_local_values(|()| {
            log.borrow_mut()
                .append(black_box(&records), None, BENCH_TIMESTAMP_MS)
                .expect("append")
        });
    let stats = log.borrow().stats();
    assert_eq!(
        stats.sync_fallbacks, 0,
        "every roll found a prepared segment"
    );
    assert_eq!(
        stats.inline_reserves, 0,
        "the prefault jobs kept the frontier ahead"
    );
}

/// Hardware probe for `append`: memcpy of the same byte count from a cache-hot source (as the
/// producer's records are) to the next position of a 64 MiB prefaulted buffer (as the segment).
#[divan::bench(args = APPEND_WORKLOADS, sample_size = APPEND_SAMPLE_SIZE)]
fn append_probe_memcpy(bencher: Bencher, workload: Workload) {
    let len = stored_bytes(workload);
    let src: Vec<u8> = (0..len).map(|i| i as u8).collect();
    // Non-zero fill so every page is really allocated and mapped before timing.
    let mut dst = vec![0xa5u8; PROBE_BUFFER_BYTES];
    let mut at = 0;
    bencher
        .counter(BytesCount::new(len))
        .counter(ItemsCount::new(workload.records))
        .bench_local(|| {
            if at + len > dst.len() {
                at = 0;
            }
            dst[at..at + len].copy_from_slice(black_box(&src));
            at += len;
            black_box(&dst[at - 1]);
        });
}

/// A log of `READ_LOG_BATCHES` batches, the offset a consumer 8 batches behind the end reads
/// from, and the bytes and records one 64 KiB read from there returns.
fn read_setup(
    workload: Workload,
    ring: RingConfig,
) -> (tempfile::TempDir, storage::PartitionLog, u64, usize, u32) {
    let dir = bench_dir().expect("bench dir");
    let config = LogConfig {
        ring,
        ..LogConfig::default()
    };
    let mut log = open_log(dir.path(), config).expect("open log");
    let bases = fill_log(&mut log, workload, READ_LOG_BATCHES).expect("fill log");
    // A consumer a few batches behind the end: the case the hot ring is for.
    let from = bases[bases.len() - 8];
    let read = log.read(from, READ_BYTES_MAX).expect("read");
    let bytes = read.batches.iter().map(|b| b.bytes().len()).sum();
    let records = read.batches.iter().map(|b| b.record_count()).sum();
    (dir, log, from, bytes, records)
}

/// `PartitionLog::read` of up to 64 KiB of recent batches served by the hot ring (zero-copy
/// handles, no decoding; 3 batches of 16 x 1 KiB or 6 of 64 x 128 B).
#[divan::bench(args = APPEND_WORKLOADS)]
fn read_recent_hot_ring(bencher: Bencher, workload: Workload) {
    let (_dir, log, from, _bytes, records) = read_setup(workload, RingConfig::default());
    let hits = log.stats().ring_hits;
    bencher
        .counter(ItemsCount::new(records))
        .bench_local(|| log.read(black_box(from), READ_BYTES_MAX).expect("read"));
    assert!(
        log.stats().ring_hits > hits,
        "reads were served by the ring"
    );
}

/// `PartitionLog::read` of the same window with the ring disabled: sparse index lookup and a walk
/// of batch headers in the mapped segment (zero-copy handles, no decoding).
#[divan::bench(args = APPEND_WORKLOADS)]
fn read_recent_segment(bencher: Bencher, workload: Workload) {
    let no_ring = RingConfig {
        entries_max: 0,
        ..RingConfig::default()
    };
    let (_dir, log, from, _bytes, records) = read_setup(workload, no_ring);
    bencher
        .counter(ItemsCount::new(records))
        .bench_local(|| log.read(black_box(from), READ_BYTES_MAX).expect("read"));
    assert_eq!(log.stats().ring_hits, 0, "reads went to the segment");
}

/// `read` from the ring plus `FetchedBatch::records` on every batch: CRC32C over every byte and
/// record decoding, what a fetch that re-encodes records pays.
#[divan::bench(args = APPEND_WORKLOADS)]
fn read_recent_and_decode(bencher: Bencher, workload: Workload) {
    let (_dir, log, from, bytes, records) = read_setup(workload, RingConfig::default());
    bencher
        .counter(BytesCount::new(bytes))
        .counter(ItemsCount::new(records))
        .bench_local(|| {
            let read = log.read(black_box(from), READ_BYTES_MAX).expect("read");
            let mut decoded = 0;
            for batch in &read.batches {
                decoded += batch.records(from, 0).expect("decode").len();
            }
            assert_eq!(decoded, records as usize);
        });
}

/// Group commit after one 16 x 1 KiB append: `begin_flush`, `FlushJob::run` (fdatasync of the
/// active segment), `complete_flush`. The append happens untimed before each flush; bytes = the
/// batch made durable. Steady state: the warm-up flush already wrote back the prefaulted segment.
#[divan::bench(sample_count = 50, sample_size = 1)]
fn flush_one_batch(bencher: Bencher) {
    let workload = Workload::new(16, 1024);
    let dir = bench_dir().expect("bench dir");
    let config = LogConfig {
        segment_bytes_max: FLUSH_SEGMENT_BYTES,
        ..LogConfig::default()
    };
    let log = RefCell::new(open_log(dir.path(), config).expect("open log"));
    fill_log(&mut log.borrow_mut(), workload, 1).expect("warm-up append");
    flush(&mut log.borrow_mut()).expect("warm-up flush");
    let values = workload.values();
    let records = storage_records(&values);
    bencher
        .counter(BytesCount::new(stored_bytes(workload)))
        .with_inputs(|| {
            let mut log = log.borrow_mut();
            ensure_prepared(&mut log).expect("prepare a segment");
            log.append(&records, None, BENCH_TIMESTAMP_MS)
                .expect("append")
        })
        .bench_local_values(|_appended| {
            let mut log = log.borrow_mut();
            let job = log.begin_flush().expect("the append left the log dirty");
            let done = job.run().expect("fdatasync");
            log.complete_flush(done);
        });
    let log = log.borrow();
    assert_eq!(log.durable_offset(), log.end_offset());
}

/// Hardware probe for `flush_one_batch`: pwrite of the same bytes at the end of a preallocated
/// file (untimed), then one fdatasync (timed).
#[divan::bench(sample_count = 50, sample_size = 1)]
fn flush_probe_fdatasync(bencher: Bencher) {
    let len = stored_bytes(Workload::new(16, 1024));
    let dir = bench_dir().expect("bench dir");
    let path = dir.path().join("probe");
    let file = std::fs::File::create(&path).expect("create probe file");
    // Write the whole file once so its blocks are allocated, like a preallocated segment.
    let chunk = vec![0u8; 1 << 20];
    for i in 0..FLUSH_SEGMENT_BYTES / chunk.len() as u64 {
        file.write_all_at(&chunk, i * chunk.len() as u64)
            .expect("preallocate probe file");
    }
    file.sync_all().expect("sync probe file");
    let batch = vec![0x5au8; len];
    let mut at = 0u64;
    bencher
        .counter(BytesCount::new(len))
        .with_inputs(|| {
            if at + len as u64 > FLUSH_SEGMENT_BYTES {
                at = 0;
            }
            file.write_all_at(&batch, at).expect("pwrite");
            at += len as u64;
        })
        .bench_local_values(|()| file.sync_data().expect("fdatasync"));
}
