//! The node-wide memory budget every hot ring charges, and the host memory reading that sizes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
