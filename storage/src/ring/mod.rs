//! Hot tier: a bounded, lock-free, single-producer / multi-consumer ring of the most recent batches
//! of one partition, plus the node-wide memory budget every ring charges.
//!
//! The ring holds `FetchedBatch`es that share the segment mapping, so caching costs no copy; what it
//! buys is skipping the index lookup and header walk for tailing readers, and (when a cold tier
//! evicts local segments) keeping the hot tail resident. It always covers a contiguous range of
//! offsets; eviction drops batches only from the ring, never from the log.
//!
//! # Shape
//!
//! The partition's shard owns the [`HotRing`] (one thread, `&mut` to push, evict and truncate).
//! Any number of [`RingReader`]s (`Clone + Send + Sync`) read it from any thread without locks and
//! without ever making the writer wait. Every push gets the next *position* (a u64 counter); the
//! live entries are positions `[head, tail)`, entry `p` sits in slot `p & mask` of a fixed array of
//! `capacity` slots (`entries_max` rounded up to a power of two). Each slot holds null or a pointer
//! to an immutable heap entry `{position, batch}`; the position tag tells a reader whether the
//! slot still holds the entry it is looking for or was emptied or reused. Entries are reclaimed
//! with crossbeam-epoch: the writer unlinks an entry (swaps null in) and defers its destruction
//! until every thread pinned at that moment has unpinned, so a reader can clone a batch handle
//! out of an entry it loaded even if the writer evicts it at the same time.
//!
//! # Why a read is never torn or wrong
//!
//! Writer (one thread): a push stores the entry into its empty slot (Release), then `tail`
//! (Release). Evicting the oldest stores `head` (Release) and swaps null into the slot (Release).
//! Changes that reuse positions (truncation pops the newest entries, so `tail` moves back and the
//! next push reuses a position) or break offset contiguity (a push after a gap clears the ring)
//! run inside a seqlock: `generation` becomes odd (Relaxed) before the first store of the change
//! and even again (Release) after the last.
//!
//! Reader: load `generation` (Acquire; odd = miss), `tail`, then `head` (Acquire), binary-search
//! positions `[head, tail)` for the first batch ending at or after the offset, collect following
//! entries while their position tags match and their offsets continue the run, then load
//! `generation` again and return the run only if it is unchanged.
//! - No half-written entry: an entry is immutable and published by a Release store; the reader's
//!   Acquire load of the pointer sees the whole entry (and the mapping bytes the writer wrote
//!   before pushing).
//! - No use after free: the reader dereferences entries only while pinned (see `ring/sync.rs`).
//! - No stale entry from an older lap: the reader's Acquire load of `tail = t` synchronizes with
//!   the writer's store of it, which followed the publication of every entry below `t`, so by
//!   coherence a slot load for `p < t` returns entry `p` or something newer (null, or entry
//!   `p + capacity`, rejected by its tag), never entry `p - capacity`.
//! - Within one generation positions are never reused and eviction only takes the oldest entry,
//!   so two entries found present were live together and are offset-contiguous, and an empty
//!   slot means everything below it is gone too (which is what makes the binary search valid).
//! - Across generations: every store of a truncation or gap is Release and sequenced after the
//!   odd generation store, so if the reader Acquire-loaded the effect of any of them (an entry at a
//!   reused position, a moved `tail`, an emptied slot), its later load of `generation` sees the odd
//!   value or a later one and the read is a miss. A reader that saw none of them read the state
//!   before the change. A reader whose first load saw the even value after a change sees all of
//!   its stores, because that value was stored with Release after them.
//!
//! The loom models in `loom_tests.rs` check these properties over all interleavings and
//! weak-memory outcomes of small histories (`RUSTFLAGS="--cfg loom" cargo test -p storage
//! --release --lib ring::loom`).
//!
//! # Memory
//!
//! Byte accounting is exact: a batch is charged to the [`MemoryBudget`] when it is pushed and
//! released when it is unlinked from the ring, whether or not readers still hold handles on it
//! (those handles keep the segment mapping alive, not ring memory).

mod budget;
mod shared;
mod sync;
#[cfg(test)]
mod test_batches;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod stress_tests;
#[cfg(all(test, not(loom)))]
mod tests;

use std::sync::Arc;

pub use budget::{read_host_memory, HostMemory, MemoryBudget};
pub use shared::RingReader;

use crate::config::RingConfig;
use crate::fetch::FetchedBatch;
use shared::{Entry, Shared};
use sync::{pin, Guard};

/// Most batches one ring holds, whatever `RingConfig::entries_max` says: bounds the slot array
/// (8 bytes a slot) allocated up front for every partition.
pub const RING_ENTRIES_LIMIT: u32 = 1 << 16;

/// The per-partition ring's writer, owned by the partition's shard.
pub struct HotRing {
    config: RingConfig,
    shared: Arc<Shared>,
    /// The writer's copies of the cursors it publishes.
    head: u64,
    tail: u64,
    generation: u64,
    bytes: u64,
    budget: Option<Arc<MemoryBudget>>,
}

impl std::fmt::Debug for HotRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotRing")
            .field("config", &self.config)
            .field("entries", &self.len())
            .field("bytes", &self.bytes)
            .field("budget", &self.budget.is_some())
            .finish()
    }
}

impl HotRing {
    /// A ring of at most `min(config.entries_max, RING_ENTRIES_LIMIT)` batches and
    /// `config.bytes_max` bytes; `entries_max == 0` disables it.
    pub fn new(config: RingConfig) -> HotRing {
        let entries_max = config.entries_max.min(RING_ENTRIES_LIMIT);
        let capacity = (entries_max.max(1) as usize).next_power_of_two();
        HotRing {
            config: RingConfig {
                entries_max,
                ..config
            },
            shared: Arc::new(Shared::new(capacity)),
            head: 0,
            tail: 0,
            generation: 0,
            bytes: 0,
            budget: None,
        }
    }

    /// A handle for reading this ring from any thread.
    pub fn reader(&self) -> RingReader {
        RingReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Charges future pushes to `budget` (what is already cached is charged now, or dropped).
    pub fn attach_budget(&mut self, budget: Arc<MemoryBudget>) {
        self.clear();
        self.budget = Some(budget);
    }

    pub fn len(&self) -> usize {
        (self.tail - self.head) as usize
    }
    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    /// Reads served by the ring (by the owner and every [`RingReader`]).
    pub fn hits(&self) -> u64 {
        self.shared.hits()
    }
    /// Reads the ring could not serve.
    pub fn misses(&self) -> u64 {
        self.shared.misses()
    }

    /// `(base_offset, last_offset, bytes)` of the entry at `position` (the writer's own entry).
    fn describe(&self, position: u64, guard: &Guard) -> (u64, u64, u64) {
        let e = self
            .shared
            .slot(position)
            .load(guard)
            .expect("the writer's live positions hold entries");
        debug_assert_eq!(e.position, position);
        (
            e.batch.base_offset(),
            e.batch.last_offset(),
            e.batch.bytes().len() as u64,
        )
    }

    /// Unlinks the entry at `position` and returns its size.
    fn unlink(&self, position: u64, guard: &Guard) -> u64 {
        let e = self
            .shared
            .slot(position)
            .unlink(guard)
            .expect("the writer's live positions hold entries");
        e.batch.bytes().len() as u64
    }

    fn pop_front(&mut self, guard: &Guard) -> bool {
        if self.is_empty() {
            return false;
        }
        let position = self.head;
        self.head += 1;
        self.shared.publish_head(self.head);
        let n = self.unlink(position, guard);
        self.forget(n);
        true
    }

    /// Drops the newest entry. Only inside [`HotRing::seqlocked`].
    fn pop_back(&mut self, guard: &Guard) {
        debug_assert!(self.generation % 2 == 1 && !self.is_empty());
        self.tail -= 1;
        self.shared.publish_tail(self.tail);
        let n = self.unlink(self.tail, guard);
        self.forget(n);
    }

    /// Runs `change` inside the generation seqlock, so that readers overlapping it miss instead
    /// of mixing entries from before and after it.
    fn seqlocked(&mut self, guard: &Guard, change: impl FnOnce(&mut HotRing, &Guard)) {
        self.generation += 1;
        self.shared.publish_generation(self.generation);
        change(self, guard);
        self.generation += 1;
        self.shared.publish_generation(self.generation);
    }

    fn forget(&mut self, n: u64) {
        self.bytes -= n;
        if let Some(budget) = &self.budget {
            budget.release(n);
        }
    }

    pub fn clear(&mut self) {
        self.clear_pinned(&pin());
    }

    fn clear_pinned(&mut self, guard: &Guard) {
        while self.pop_front(guard) {}
    }

    /// Caches the batch just appended. Keeps the ring contiguous: a gap or a refused charge empties it.
    pub fn push(&mut self, batch: FetchedBatch) {
        let len = batch.bytes().len() as u64;
        let guard = &pin();
        if self.config.entries_max == 0 || len > self.config.bytes_max {
            self.clear_pinned(guard);
            return;
        }
        if !self.is_empty()
            && self.describe(self.tail - 1, guard).1.checked_add(1) != Some(batch.base_offset())
        {
            self.seqlocked(guard, HotRing::clear_pinned);
        }
        while self.len() >= self.config.entries_max as usize
            || self.bytes + len > self.config.bytes_max
        {
            self.pop_front(guard);
        }
        if let Some(budget) = self.budget.clone() {
            while !budget.try_charge(len) {
                if !self.pop_front(guard) {
                    return;
                }
            }
        }
        self.bytes += len;
        let position = self.tail;
        self.shared
            .slot(position)
            .publish(Entry { position, batch }, guard);
        self.tail += 1;
        self.shared.publish_tail(self.tail);
    }

    /// Gives memory back while the node budget is over its limit; returns bytes released.
    pub fn trim_to_budget(&mut self) -> u64 {
        let before = self.bytes;
        let guard = &pin();
        while self
            .budget
            .as_ref()
            .is_some_and(|b| b.over_limit_bytes() > 0)
            && self.pop_front(guard)
        {}
        before - self.bytes
    }

    /// Batches from the one holding `offset`, up to about `max_bytes` (at least one), or `None` if
    /// the ring does not hold `offset`. Counts a hit or a miss.
    pub fn read(&self, offset: u64, max_bytes: u32) -> Option<Vec<FetchedBatch>> {
        self.shared.read(offset, max_bytes)
    }

    /// Drops batches holding any offset below `start` (retention moved the log start).
    pub fn discard_below(&mut self, start: u64) {
        let guard = &pin();
        while !self.is_empty() && self.describe(self.head, guard).0 < start {
            self.pop_front(guard);
        }
    }

    /// Drops batches holding any offset >= `offset` (truncation).
    pub fn discard_from(&mut self, offset: u64) {
        let guard = &pin();
        if self.is_empty() || self.describe(self.tail - 1, guard).1 < offset {
            return;
        }
        self.seqlocked(guard, |ring, guard| {
            while !ring.is_empty() && ring.describe(ring.tail - 1, guard).1 >= offset {
                ring.pop_back(guard);
            }
        });
    }
}

impl Drop for HotRing {
    fn drop(&mut self) {
        // Readers may outlive the writer: leave them an empty ring and give the budget back.
        self.clear();
    }
}
