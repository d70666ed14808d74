//! The ring under real threads: one writer pushing, evicting (capacity, budget, retention) and
//! truncating, three readers checking every batch they get back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::test_batches::{assert_one_history, check_run, sealed, PAYLOAD_BYTES};
use super::{HotRing, MemoryBudget, RingReader};
use crate::config::RingConfig;
use crate::format::BATCH_HEADER_BYTES;

const BATCH_BYTES: u64 = (BATCH_HEADER_BYTES + PAYLOAD_BYTES) as u64;
const WRITER_RUN: Duration = Duration::from_millis(1500);
const READERS: usize = 3;

/// xorshift64: deterministic per thread, no dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

struct Outcome {
    hits: u64,
    batches: u64,
}

fn reader(
    ring: RingReader,
    end: &AtomicU64,
    cuts: &Mutex<Vec<u64>>,
    done: &AtomicBool,
    seed: u64,
) -> Outcome {
    let mut rng = Rng(seed);
    let mut out = Outcome {
        hits: 0,
        batches: 0,
    };
    while !done.load(Ordering::Relaxed) {
        let end = end.load(Ordering::Acquire);
        let offset = end.saturating_sub(1 + rng.below(120));
        let max_bytes = (BATCH_BYTES * (1 + rng.below(12))) as u32;
        let Some(run) = ring.read(offset, max_bytes) else {
            continue;
        };
        let described = check_run(offset, &run);
        let total: u64 = run.iter().map(|b| b.bytes().len() as u64).sum();
        assert!(run.len() == 1 || total <= u64::from(max_bytes));
        // The writer records a truncation before it pushes a batch of the new history, and this
        // thread saw that batch, so the lock below sees the cut.
        let cuts = cuts.lock().expect("cuts lock");
        assert_one_history(&described, &cuts);
        out.hits += 1;
        out.batches += run.len() as u64;
    }
    out
}

#[test]
fn readers_on_other_threads_never_see_torn_or_mixed_batches() {
    let budget = MemoryBudget::new(48 * BATCH_BYTES);
    let mut ring = HotRing::new(RingConfig {
        bytes_max: 64 * BATCH_BYTES,
        entries_max: 64,
    });
    ring.attach_budget(Arc::clone(&budget));
    let end = AtomicU64::new(0);
    let cuts = Mutex::new(vec![0u64]);
    let done = AtomicBool::new(false);
    let readers: Vec<RingReader> = (0..READERS).map(|_| ring.reader()).collect();

    let outcomes = std::thread::scope(|s| {
        let handles: Vec<_> = readers
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let (end, cuts, done) = (&end, &cuts, &done);
                s.spawn(move || reader(r, end, cuts, done, 0x9E37_79B9_7F4A_7C15 + i as u64))
            })
            .collect();

        let mut rng = Rng(42);
        let mut next = 0u64;
        let mut history = 0u64;
        let mut start = 0u64;
        let (mut truncations, mut pushes) = (0u64, 0u64);
        let begun = Instant::now();
        while begun.elapsed() < WRITER_RUN {
            match rng.below(1000) {
                0..=59 if next > start + 10 => {
                    // Truncate a few offsets back and rewrite them in a new history.
                    let cut = next - 1 - rng.below(8);
                    cuts.lock().expect("cuts lock").push(cut);
                    history += 1;
                    ring.discard_from(cut);
                    next = cut;
                    truncations += 1;
                }
                60..=64 => {
                    // Retention moves the log start forward.
                    start = next.saturating_sub(rng.below(40)).max(start);
                    ring.discard_below(start);
                }
                65 => next += 1 + rng.below(3), // a gap: the ring resets
                66 => {
                    budget.set_limit_bytes(8 * BATCH_BYTES);
                    ring.trim_to_budget();
                    budget.set_limit_bytes(48 * BATCH_BYTES);
                }
                _ => {
                    let count = 1 + rng.below(4) as u32;
                    ring.push(sealed(next, count, history));
                    next += u64::from(count);
                    end.store(next, Ordering::Release);
                    pushes += 1;
                }
            }
            assert_eq!(
                budget.used_bytes(),
                ring.bytes(),
                "budget counts what the ring holds"
            );
            assert!(ring.len() <= 64 && ring.bytes() <= 48 * BATCH_BYTES);
        }
        done.store(true, Ordering::Relaxed);
        let outcomes: Vec<Outcome> = handles
            .into_iter()
            .map(|h| h.join().expect("reader thread"))
            .collect();
        assert!(
            pushes > 1000 && truncations > 5,
            "{pushes} pushes, {truncations} truncations"
        );
        outcomes
    });
    for o in &outcomes {
        assert!(o.hits > 0 && o.batches >= o.hits, "a reader never hit");
    }
    let reader = ring.reader();
    let held = ring.read(ring_end(&ring), u32::MAX);
    assert!(reader.hits() >= outcomes.iter().map(|o| o.hits).sum::<u64>());
    drop(ring);
    assert_eq!(
        budget.used_bytes(),
        0,
        "dropping the writer releases its charge"
    );
    // Handles returned earlier outlive the ring; readers of a dropped ring miss.
    if let Some(run) = held {
        check_run(run[0].base_offset(), &run);
    }
    assert!(reader.read(0, u32::MAX).is_none());
}

/// Base offset of the newest batch in `ring` (0 if empty), read through the ring itself.
fn ring_end(ring: &HotRing) -> u64 {
    if ring.is_empty() {
        0
    } else {
        ring.describe(ring.tail - 1, &super::sync::pin()).0
    }
}
