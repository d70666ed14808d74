//! `storage::ring::HotRing` on its own: push of a batch handle and read of recent batches, by the
//! owner and through a `RingReader` on another thread while the owner pushes.
//!
//! The ring holds `FetchedBatch` handles that share the segment mapping, so its cost depends on
//! the number of batches, not their size. Batches come from a real log (the handles cannot be
//! made any other way), the ring has the default capacity (1024 batches, 4 MiB). Reads hand out
//! handles without touching payload bytes, so the counters are items = batches returned.

use benches::fixtures::{bench_dir, fill_log, open_log, Workload};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use storage::ring::HotRing;
use storage::{FetchedBatch, LogConfig, RingConfig};

/// Distinct batches the push benchmark cycles through. Each wrap-around breaks contiguity, which
/// empties the ring, and the next 1024 pushes evict nothing: 1.6 % of pushes.
const PUSH_CYCLE_BATCHES: u32 = 65_536;
/// `max_bytes` of each read, a typical fetch size.
const READ_BYTES_MAX: u32 = 64 * 1024;

fn main() {
    divan::main();
}

/// Contiguous batches of `workload` as zero-copy handles, and the dir that must outlive them.
fn batches(workload: Workload, count: u32) -> (tempfile::TempDir, Vec<FetchedBatch>) {
    let dir = bench_dir().expect("bench dir");
    let config = LogConfig {
        ring: RingConfig {
            entries_max: 0,
            ..RingConfig::default()
        },
        ..LogConfig::default()
    };
    let mut log = open_log(dir.path(), config).expect("open log");
    fill_log(&mut log, workload, count).expect("fill log");
    let mut out = Vec::with_capacity(count as usize);
    let mut at = log.start_offset();
    while at < log.end_offset() {
        let read = log.read(at, 1 << 20).expect("read");
        at = read.next_offset;
        out.extend(read.batches);
    }
    (dir, out)
}

/// `HotRing::push` of one batch handle into a full ring (evicting the oldest), including the
/// clone of the handle pushed (one atomic increment).
#[divan::bench]
fn push(bencher: Bencher) {
    let (_dir, batches) = batches(Workload::new(1, 64), PUSH_CYCLE_BATCHES);
    let mut ring = HotRing::new(RingConfig::default());
    let full = RingConfig::default().entries_max as usize;
    for b in &batches[..full] {
        ring.push(b.clone());
    }
    let mut next = full;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        ring.push(black_box(&batches[next]).clone());
        next = (next + 1) % batches.len();
    });
    assert!(!ring.is_empty() && ring.len() <= full);
}

/// A full ring of 16 x 128 B batches, the offset of a reader `behind` batches from the end, and
/// how many batches one 64 KiB read from there returns.
fn read_setup(behind: usize) -> (tempfile::TempDir, HotRing, u64, usize) {
    let entries = RingConfig::default().entries_max;
    let (dir, batches) = batches(Workload::new(16, 128), entries);
    let mut ring = HotRing::new(RingConfig::default());
    for b in &batches {
        ring.push(b.clone());
    }
    assert_eq!(ring.len(), batches.len(), "the ring holds every batch");
    let from = batches[batches.len() - behind].base_offset();
    let read = ring
        .read(from, READ_BYTES_MAX)
        .expect("the ring covers the offset");
    (dir, ring, from, read.len())
}

/// `HotRing::read` by a tailing consumer at the newest batch: one 16 x 128 B batch returned.
#[divan::bench]
fn read_newest(bencher: Bencher) {
    let (_dir, ring, from, returned) = read_setup(1);
    assert_eq!(returned, 1);
    bencher
        .counter(ItemsCount::new(returned))
        .bench_local(|| ring.read(black_box(from), READ_BYTES_MAX));
}

/// `HotRing::read` of up to 64 KiB from 32 batches behind the end: binary search plus one handle
/// clone per 16 x 128 B batch returned (items = batches).
#[divan::bench]
fn read_64kib(bencher: Bencher) {
    let (_dir, ring, from, returned) = read_setup(32);
    assert!(
        returned > 1 && returned < 32,
        "64 KiB holds {returned} of 32 batches"
    );
    bencher
        .counter(ItemsCount::new(returned))
        .bench_local(|| ring.read(black_box(from), READ_BYTES_MAX));
}

/// The tailing pattern: the owner pushes one batch (evicting the oldest of a full ring) and a
/// `RingReader` reads it back at once (items = 1 push + read).
#[divan::bench]
fn push_then_read_newest(bencher: Bencher) {
    let (_dir, batches) = batches(Workload::new(1, 64), PUSH_CYCLE_BATCHES);
    let mut ring = HotRing::new(RingConfig::default());
    let reader = ring.reader();
    let full = RingConfig::default().entries_max as usize;
    for b in &batches[..full] {
        ring.push(b.clone());
    }
    let mut next = full;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        let b = &batches[next];
        ring.push(black_box(b).clone());
        next = (next + 1) % batches.len();
        reader.read(black_box(b.base_offset()), READ_BYTES_MAX)
    });
}

/// `RingReader::read` of the newest batch on the bench thread while another thread pushes into
/// the same ring as fast as it can (items = reads; a read that races a wrap-around misses).
#[divan::bench]
fn reader_read_newest_while_pushing(bencher: Bencher) {
    let (_dir, batches) = batches(Workload::new(1, 64), PUSH_CYCLE_BATCHES);
    let batches = Arc::new(batches);
    let mut ring = HotRing::new(RingConfig::default());
    let reader = ring.reader();
    let newest = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    ring.push(batches[0].clone());
    let writer = {
        let (batches, newest, stop) =
            (Arc::clone(&batches), Arc::clone(&newest), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut next = 1;
            while !stop.load(Ordering::Relaxed) {
                let b = &batches[next];
                ring.push(b.clone());
                newest.store(b.base_offset(), Ordering::Relaxed);
                next = (next + 1) % batches.len();
            }
        })
    };
    bencher
        .counter(ItemsCount::new(1usize))
        .bench_local(|| reader.read(black_box(newest.load(Ordering::Relaxed)), READ_BYTES_MAX));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer thread");
}
