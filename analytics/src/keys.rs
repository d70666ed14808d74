//! Hot keys inside a partition: the Space-Saving summary (Metwally et al.) over tumbling windows.
//!
//! With `k` counters every key whose true count exceeds `N / k` is guaranteed to be in the summary and its
//! count is over-estimated by at most `N / k`. Reporting every key whose estimate reaches `share_min * N`
//! therefore has recall 1.0 whenever `k >= 1 / share_min`. Memory is fixed at construction: `k` entries in a
//! min-heap plus a hash index of the same size, no growth afterwards.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Deterministic, seeded hasher (splitmix64 finaliser over the key) so iteration-free lookups never
/// depend on process randomness.
#[derive(Debug, Clone, Copy)]
pub struct SeededState {
    seed: u64,
}

/// The hasher built by [`SeededState`].
#[derive(Debug, Clone, Copy)]
pub struct SeededHasher {
    state: u64,
}

impl SeededState {
    /// A hasher family keyed by `seed`.
    pub fn new(seed: u64) -> Self {
        SeededState { seed }
    }
}

impl BuildHasher for SeededState {
    type Hasher = SeededHasher;
    fn build_hasher(&self) -> SeededHasher {
        SeededHasher { state: self.seed }
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

impl Hasher for SeededHasher {
    fn finish(&self) -> u64 {
        mix(self.state)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.state = mix(self.state ^ u64::from_le_bytes(b)).wrapping_add(0x9e3779b97f4a7c15);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.state = mix(self.state ^ i);
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: u64,
    count: u64,
    error: u64,
}

/// A key reported as hot in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotKey {
    /// The key (the engine passes a 64-bit hash of the record key).
    pub key: u64,
    /// Estimated weight in the window (an over-estimate by at most `error`).
    pub count: u64,
    /// Maximum over-estimation.
    pub error: u64,
}

/// Space-Saving summary with a fixed number of counters.
#[derive(Debug, Clone)]
pub struct SpaceSaving {
    heap: Vec<Entry>,
    index: HashMap<u64, u32, SeededState>,
    capacity: u32,
    total: u64,
}

impl SpaceSaving {
    /// A summary with `counters` slots (allocated here, never grown).
    pub fn new(counters: u32, seed: u64) -> Self {
        let cap = counters.max(1);
        SpaceSaving {
            heap: Vec::with_capacity(cap as usize),
            index: HashMap::with_capacity_and_hasher(cap as usize, SeededState::new(seed)),
            capacity: cap,
            total: 0,
        }
    }

    /// Total weight seen since the last reset.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Counts `weight` occurrences of `key`.
    pub fn add(&mut self, key: u64, weight: u64) {
        self.total += weight;
        if let Some(&pos) = self.index.get(&key) {
            self.heap[pos as usize].count += weight;
            self.sift_down(pos as usize);
            return;
        }
        if (self.heap.len() as u32) < self.capacity {
            self.heap.push(Entry {
                key,
                count: weight,
                error: 0,
            });
            let pos = self.heap.len() - 1;
            self.index.insert(key, pos as u32);
            self.sift_up(pos);
            return;
        }
        // Replace the minimum: the new key inherits its count as error.
        let min = self.heap[0];
        self.index.remove(&min.key);
        self.heap[0] = Entry {
            key,
            count: min.count + weight,
            error: min.count,
        };
        self.index.insert(key, 0);
        self.sift_down(0);
    }

    /// Keys whose estimated count is at least `share_min` of the total, heaviest first.
    pub fn heavy(&self, share_min: f64) -> Vec<HotKey> {
        let bar = share_min * self.total as f64;
        let mut out: Vec<HotKey> = self
            .heap
            .iter()
            .filter(|e| e.count as f64 >= bar && e.count > 0)
            .map(|e| HotKey {
                key: e.key,
                count: e.count,
                error: e.error,
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
        out
    }

    /// Forgets everything (keeps the allocations).
    pub fn reset(&mut self) {
        self.heap.clear();
        self.index.clear();
        self.total = 0;
    }

    /// Bytes owned, including the hash index's table (estimated from its capacity).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.heap.capacity() * std::mem::size_of::<Entry>()
            // hashbrown: one (key, value) slot plus one control byte per bucket, buckets = capacity * 8 / 7.
            + (self.index.capacity() * 8 / 7 + 1) * (std::mem::size_of::<(u64, u32)>() + 1)
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.index.insert(self.heap[a].key, a as u32);
        self.index.insert(self.heap[b].key, b as u32);
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.heap[parent].count <= self.heap[pos].count {
                break;
            }
            self.swap(parent, pos);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * pos + 1;
            let r = l + 1;
            let mut smallest = pos;
            if l < n && self.heap[l].count < self.heap[smallest].count {
                smallest = l;
            }
            if r < n && self.heap[r].count < self.heap[smallest].count {
                smallest = r;
            }
            if smallest == pos {
                break;
            }
            self.swap(pos, smallest);
            pos = smallest;
        }
    }
}

/// Tumbling-window hot keys of one partition: the summary of the current window and the report of the last
/// complete one.
#[derive(Debug, Clone)]
pub struct WindowedKeys {
    current: SpaceSaving,
    window_start_s: Option<u64>,
    last_report: Vec<HotKey>,
    last_total: u64,
}

impl WindowedKeys {
    /// A tracker with `counters` Space-Saving slots.
    pub fn new(counters: u32, seed: u64) -> Self {
        WindowedKeys {
            current: SpaceSaving::new(counters, seed),
            window_start_s: None,
            last_report: Vec::new(),
            last_total: 0,
        }
    }

    /// Closes the window if `now_s` is past it; returns true when a new report was produced.
    pub fn roll(&mut self, now_s: u64, window_s: u64, share_min: f64) -> bool {
        let start = *self.window_start_s.get_or_insert(now_s);
        if now_s < start + window_s.max(1) {
            return false;
        }
        self.last_report = self.current.heavy(share_min);
        self.last_total = self.current.total();
        self.current.reset();
        self.window_start_s = Some(now_s);
        true
    }

    /// Counts keys observed at `now_s`.
    pub fn add(&mut self, key: u64, weight: u64) {
        self.current.add(key, weight);
    }

    /// Heavy keys of the last complete window and that window's total weight.
    pub fn last_report(&self) -> (&[HotKey], u64) {
        (&self.last_report, self.last_total)
    }

    /// Bytes owned (summary plus the report, whose length is bounded by the counters).
    pub fn memory_bytes(&self) -> usize {
        self.current.memory_bytes()
            + std::mem::size_of::<Self>()
            + self.current.capacity as usize * std::mem::size_of::<HotKey>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_heavy_hitters_are_always_reported() {
        // 200k events: key 7 has 2%, key 9 has 1.2%, the rest spread over 50k keys.
        let mut ss = SpaceSaving::new(256, 1);
        let mut s = 1u64;
        for i in 0..200_000u64 {
            let key = if i % 50 == 0 {
                7
            } else if i % 83 == 0 {
                9
            } else {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                1000 + (s >> 33) % 50_000
            };
            ss.add(key, 1);
        }
        let heavy = ss.heavy(0.01);
        let keys: Vec<u64> = heavy.iter().map(|h| h.key).collect();
        assert!(keys.contains(&7) && keys.contains(&9), "{keys:?}");
        assert_eq!(heavy[0].key, 7);
        assert!(heavy[0].count >= 4000 && heavy[0].count <= 4000 + 200_000 / 256);
        assert!(ss.memory_bytes() <= 32 * 1024, "{}", ss.memory_bytes());
    }

    #[test]
    fn exact_when_fewer_keys_than_counters() {
        let mut ss = SpaceSaving::new(8, 0);
        for k in 0..5u64 {
            ss.add(k, k + 1);
        }
        let h = ss.heavy(0.0);
        assert_eq!(h.len(), 5);
        assert!(h.iter().all(|e| e.error == 0 && e.count == e.key + 1));
    }

    #[test]
    fn window_rolls_and_reports() {
        let mut w = WindowedKeys::new(64, 3);
        assert!(!w.roll(0, 10, 0.1));
        for _ in 0..100 {
            w.add(42, 1);
        }
        w.add(1, 1);
        assert!(w.roll(10, 10, 0.1));
        let (rep, total) = w.last_report();
        assert_eq!(total, 101);
        assert_eq!(rep.len(), 1);
        assert_eq!(rep[0].key, 42);
    }
}
