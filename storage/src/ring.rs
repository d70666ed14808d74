//! Hot tier: a bounded ring of the most recent batches of one partition, plus the node-wide memory
//! budget every ring charges.
//!
//! The ring holds `FetchedBatch`es that share the segment mapping, so caching costs no copy; what it
//! buys is skipping the index lookup and header walk for tailing readers, and (when a cold tier
//! evicts local segments) keeping the hot tail resident. It always covers a contiguous range ending
//! at the log's end offset; eviction drops batches only from the ring, never from the log.
//!
//! The ring is owned by its partition's shard (single owner, `&mut` to push); the budget is shared
//! by every shard through atomics.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::RingConfig;
use crate::fetch::FetchedBatch;

/// A node-wide cap on the bytes all hot rings may hold. Shrink it under memory pressure with
/// [`MemoryBudget::set_limit_bytes`]; rings give memory back on their next push or
/// [`crate::PartitionLog::trim_ring`].
#[derive(Debug)]
pub struct MemoryBudget {
    limit_bytes: AtomicU64,
    used_bytes: AtomicU64,
    refusals: AtomicU64,
}

impl MemoryBudget {
    pub fn new(limit_bytes: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit_bytes: AtomicU64::new(limit_bytes),
            used_bytes: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
        })
    }

    /// Reserves `bytes` if that keeps usage within the limit.
    pub fn try_charge(&self, bytes: u64) -> bool {
        let limit = self.limit_bytes.load(Ordering::Relaxed);
        let ok = self
            .used_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|n| *n <= limit)
            })
            .is_ok();
        if !ok {
            self.refusals.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Returns `bytes` previously charged.
    pub fn release(&self, bytes: u64) {
        let prev = self.used_bytes.fetch_sub(bytes, Ordering::AcqRel);
        assert!(
            prev >= bytes,
            "memory budget released more than was charged"
        );
    }

    pub fn set_limit_bytes(&self, limit_bytes: u64) {
        self.limit_bytes.store(limit_bytes, Ordering::Relaxed);
    }
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes.load(Ordering::Relaxed)
    }
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Relaxed)
    }
    /// Bytes in use beyond the limit (after a shrink), which rings should give back.
    pub fn over_limit_bytes(&self) -> u64 {
        self.used_bytes().saturating_sub(self.limit_bytes())
    }
    /// Charges refused because the budget was full.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    /// Sets the limit from host memory: `base_limit_bytes`, shrunk so that at least
    /// `reserve_ratio` of the host's memory stays available. Returns the new limit.
    pub fn adjust_to_host(
        &self,
        host: HostMemory,
        base_limit_bytes: u64,
        reserve_ratio: f64,
    ) -> u64 {
        let reserve = (host.total_bytes as f64 * reserve_ratio.clamp(0.0, 1.0)) as u64;
        // Memory the rings could still take without eating into the reserve.
        let headroom = host.available_bytes.saturating_sub(reserve) + self.used_bytes();
        let limit = base_limit_bytes.min(headroom);
        self.set_limit_bytes(limit);
        limit
    }
}

/// Host memory as seen by sysinfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMemory {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

impl HostMemory {
    /// 0.0 = all memory available, 1.0 = none.
    pub fn pressure(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        1.0 - (self.available_bytes.min(self.total_bytes) as f64 / self.total_bytes as f64)
    }
}

/// Reads total and available memory of the host. Blocking-cheap (reads /proc/meminfo); call it from
/// a periodic control task, not per request. `None` if sysinfo cannot read the host.
pub fn read_host_memory() -> Option<HostMemory> {
    let mut sys = sysinfo::System::new().ok()?;
    sys.refresh_memory();
    Some(HostMemory {
        total_bytes: sys.total_memory(),
        available_bytes: sys.available_memory(),
    })
}

/// The per-partition ring.
#[derive(Debug)]
pub struct HotRing {
    config: RingConfig,
    entries: VecDeque<FetchedBatch>,
    bytes: u64,
    budget: Option<Arc<MemoryBudget>>,
}

impl HotRing {
    pub fn new(config: RingConfig) -> HotRing {
        HotRing {
            config,
            entries: VecDeque::new(),
            bytes: 0,
            budget: None,
        }
    }

    /// Charges future pushes to `budget` (what is already cached is charged now, or dropped).
    pub fn attach_budget(&mut self, budget: Arc<MemoryBudget>) {
        self.clear();
        self.budget = Some(budget);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn pop_front(&mut self) -> bool {
        match self.entries.pop_front() {
            Some(b) => {
                self.forget(b.bytes().len() as u64);
                true
            }
            None => false,
        }
    }

    fn forget(&mut self, n: u64) {
        self.bytes -= n;
        if let Some(budget) = &self.budget {
            budget.release(n);
        }
    }

    pub fn clear(&mut self) {
        while self.pop_front() {}
    }

    /// Caches the batch just appended. Keeps the ring contiguous: a gap or a refused charge empties it.
    pub fn push(&mut self, batch: FetchedBatch) {
        let len = batch.bytes().len() as u64;
        if self.config.entries_max == 0 || len > self.config.bytes_max {
            self.clear();
            return;
        }
        if self
            .entries
            .back()
            .is_some_and(|b| b.last_offset() + 1 != batch.base_offset())
        {
            self.clear();
        }
        while self.entries.len() >= self.config.entries_max as usize
            || self.bytes + len > self.config.bytes_max
        {
            self.pop_front();
        }
        if let Some(budget) = self.budget.clone() {
            while !budget.try_charge(len) {
                if !self.pop_front() {
                    return;
                }
            }
        }
        self.bytes += len;
        self.entries.push_back(batch);
    }

    /// Gives memory back while the node budget is over its limit; returns bytes released.
    pub fn trim_to_budget(&mut self) -> u64 {
        let before = self.bytes;
        while self
            .budget
            .as_ref()
            .is_some_and(|b| b.over_limit_bytes() > 0)
            && self.pop_front()
        {}
        before - self.bytes
    }

    /// Batches from the one holding `offset`, up to about `max_bytes` (at least one), or `None` if
    /// the ring does not hold `offset`.
    pub fn read(&self, offset: u64, max_bytes: u32) -> Option<Vec<FetchedBatch>> {
        let first = self.entries.front()?;
        let last = self.entries.back()?;
        if offset < first.base_offset() || offset > last.last_offset() {
            return None;
        }
        let i = self.entries.partition_point(|b| b.last_offset() < offset);
        let mut out = Vec::new();
        let mut total = 0u64;
        for b in self.entries.range(i..) {
            let len = b.bytes().len() as u64;
            if !out.is_empty() && total + len > u64::from(max_bytes) {
                break;
            }
            total += len;
            out.push(b.clone());
        }
        Some(out)
    }

    /// Drops batches holding any offset below `start` (retention moved the log start).
    pub fn discard_below(&mut self, start: u64) {
        while self
            .entries
            .front()
            .is_some_and(|b| b.base_offset() < start)
        {
            self.pop_front();
        }
    }

    /// Drops batches holding any offset >= `offset` (truncation).
    pub fn discard_from(&mut self, offset: u64) {
        while let Some(b) = self.entries.back() {
            if b.last_offset() < offset {
                break;
            }
            let n = b.bytes().len() as u64;
            self.entries.pop_back();
            self.forget(n);
        }
    }
}

impl Drop for HotRing {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
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
}
