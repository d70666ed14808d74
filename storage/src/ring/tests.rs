//! Unit tests of the ring (single thread) and the memory budget.
use super::*;
use crate::format::{BatchHeader, BATCH_HEADER_BYTES};
use bytes::Bytes;

fn batch(base: u64, count: u32, len: usize) -> FetchedBatch {
    let h = BatchHeader {
        batch_bytes: len as u32,
        crc32c: 0,
        base_offset: base,
        first_timestamp_ms: 0,
        max_timestamp_ms: 0,
        max_expires_at_ms: i64::MAX,
        producer_id: u64::MAX,
        record_count: count,
        base_sequence: u32::MAX,
        records_bytes: (len - BATCH_HEADER_BYTES) as u32,
        producer_epoch: 0,
        attributes: 0,
    };
    FetchedBatch::new(h, Bytes::from(vec![0u8; len]))
}

fn ring(bytes_max: u64, entries_max: u32) -> HotRing {
    HotRing::new(RingConfig {
        bytes_max,
        entries_max,
    })
}

#[test]
fn bounded_by_entries_and_bytes() {
    let mut r = ring(1000, 3);
    for i in 0..5 {
        r.push(batch(i * 2, 2, 100));
    }
    assert_eq!((r.len(), r.bytes()), (3, 300));
    assert!(r.read(3, 1000).is_none(), "evicted from the ring");
    let got = r.read(5, 1000).unwrap();
    assert_eq!(
        got.iter().map(|b| b.base_offset()).collect::<Vec<_>>(),
        vec![4, 6, 8]
    );
    let mut r = ring(250, 100);
    for i in 0..5 {
        r.push(batch(i, 1, 100));
    }
    assert_eq!((r.len(), r.bytes()), (2, 200));
    // A batch bigger than the ring empties it rather than breaking contiguity.
    r.push(batch(5, 1, 300));
    assert!(r.is_empty());
}

#[test]
fn read_respects_max_bytes_but_returns_one_batch() {
    let mut r = ring(10_000, 100);
    for i in 0..4 {
        r.push(batch(i, 1, 100));
    }
    assert_eq!(r.read(1, 1).unwrap().len(), 1);
    assert_eq!(r.read(1, 250).unwrap().len(), 2);
    assert!(r.read(4, 1000).is_none());
}

#[test]
fn gaps_and_truncation_keep_it_contiguous() {
    let mut r = ring(10_000, 100);
    r.push(batch(0, 2, 100));
    r.push(batch(5, 1, 100));
    assert_eq!(r.len(), 1, "a gap resets the ring");
    r.push(batch(6, 1, 100));
    r.push(batch(7, 3, 100));
    r.discard_from(8);
    assert_eq!(r.read(5, 1000).unwrap().len(), 2);
    r.discard_below(6);
    assert!(r.read(5, 1000).is_none());
    assert_eq!(r.len(), 1);
}

#[test]
fn budget_is_shared_and_shrinkable() {
    let budget = MemoryBudget::new(500);
    let mut a = ring(10_000, 100);
    let mut b = ring(10_000, 100);
    a.attach_budget(Arc::clone(&budget));
    b.attach_budget(Arc::clone(&budget));
    for i in 0..3 {
        a.push(batch(i, 1, 100));
    }
    for i in 0..2 {
        b.push(batch(i, 1, 100));
    }
    assert_eq!(budget.used_bytes(), 500);
    // Full budget: a ring makes room by evicting its own oldest batch.
    b.push(batch(2, 1, 100));
    assert_eq!((a.len(), b.len(), budget.used_bytes()), (3, 2, 500));
    budget.set_limit_bytes(200);
    assert_eq!(budget.over_limit_bytes(), 300);
    assert_eq!(a.trim_to_budget(), 300);
    assert_eq!((a.len(), budget.used_bytes()), (0, 200));
    drop(b);
    assert_eq!(
        budget.used_bytes(),
        0,
        "dropping a ring releases its charge"
    );
    assert!(!budget.try_charge(201));
    assert_eq!(budget.refusals(), 2);
}

#[test]
fn host_memory_drives_the_limit() {
    let budget = MemoryBudget::new(1 << 30);
    let calm = HostMemory {
        total_bytes: 16 << 30,
        available_bytes: 12 << 30,
    };
    assert_eq!(budget.adjust_to_host(calm, 1 << 30, 0.1), 1 << 30);
    let tight = HostMemory {
        total_bytes: 16 << 30,
        available_bytes: (16 << 30) / 10 + (64 << 20),
    };
    assert_eq!(budget.adjust_to_host(tight, 1 << 30, 0.1), 64 << 20);
    assert!((tight.pressure() - 0.896).abs() < 0.01);
    let host = read_host_memory().expect("sysinfo reads /proc/meminfo on Linux");
    assert!(host.total_bytes > 0 && host.available_bytes <= host.total_bytes);
}

#[test]
fn readers_share_the_ring_and_its_counters() {
    let mut r = ring(10_000, 4);
    let reader = r.reader();
    assert!(reader.read(0, 1000).is_none());
    for i in 0..6 {
        r.push(batch(i, 1, 100));
    }
    let other = reader.clone();
    let got = std::thread::spawn(move || other.read(3, 250))
        .join()
        .expect("reader thread")
        .expect("offset 3 is in the ring");
    assert_eq!(
        got.iter().map(|b| b.base_offset()).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert!(r.read(1, 1000).is_none(), "evicted");
    assert_eq!((r.hits(), r.misses()), (1, 2));
    assert_eq!((reader.hits(), reader.misses()), (1, 2));
    // The handle follows the same ring through a budget change and truncation.
    r.attach_budget(MemoryBudget::new(1000));
    r.push(batch(6, 1, 100));
    r.push(batch(7, 2, 100));
    r.discard_from(8);
    assert_eq!(reader.read(6, 1000).map(|v| v.len()), Some(1));
    r.push(batch(7, 1, 100));
    assert_eq!(reader.read(6, 1000).map(|v| v.len()), Some(2));
    drop(r);
    assert!(reader.read(7, 1000).is_none(), "a dropped ring is empty");
}

#[test]
fn slot_array_is_a_bounded_power_of_two() {
    let r = ring(1 << 40, 1000);
    assert_eq!(r.shared.capacity(), 1024);
    let r = ring(1 << 40, u32::MAX);
    assert_eq!(r.shared.capacity(), RING_ENTRIES_LIMIT as usize);
    let mut r = ring(1 << 40, 0);
    assert_eq!(r.shared.capacity(), 1);
    r.push(batch(0, 1, 100));
    assert!(
        r.is_empty() && r.read(0, 1000).is_none(),
        "0 disables the ring"
    );
}

#[test]
fn truncation_and_gaps_move_the_generation_only_when_they_change_something() {
    let mut r = ring(10_000, 8);
    r.discard_from(0);
    for i in 0..4 {
        r.push(batch(i, 1, 100));
    }
    r.discard_from(10);
    assert_eq!(r.generation, 0, "nothing at or above 10");
    r.discard_from(2);
    assert_eq!((r.generation, r.len(), r.tail), (2, 2, 2));
    r.push(batch(2, 1, 100));
    assert_eq!((r.generation, r.tail), (2, 3), "position 2 is reused");
    r.push(batch(9, 1, 100));
    assert_eq!((r.generation, r.len(), r.head), (4, 1, 3), "a gap clears");
    assert_eq!(r.read(9, 1000).map(|v| v[0].base_offset()), Some(9));
}
