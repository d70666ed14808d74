//! The part of a hot ring every thread sees: the slot array, the cursors the writer publishes,
//! the lookup counters, and the lock-free read that [`RingReader`] and the owner share.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::sync::{pin, AtomicU64, Guard, Slot};
use crate::fetch::FetchedBatch;

/// A published batch, tagged with the ring position it was pushed at.
pub(super) struct Entry {
    pub(super) position: u64,
    pub(super) batch: FetchedBatch,
}

/// Cursors written only by the ring's writer. Positions count pushes and never wrap in practice
/// (u64); live entries are the positions `[head, tail)`, entry `p` in slot `p & mask`.
#[repr(align(64))]
struct Cursors {
    head: AtomicU64,
    tail: AtomicU64,
    /// Seqlock over changes that reuse positions or break offset contiguity (truncation, a gap):
    /// odd while the writer is in one.
    generation: AtomicU64,
}

/// Lookup counters, bumped by every reader (on their own cache line, away from the cursors).
#[repr(align(64))]
struct Lookups {
    hits: AtomicU64,
    misses: AtomicU64,
}

pub(super) struct Shared {
    slots: Box<[Slot<Entry>]>,
    mask: u64,
    cursors: Cursors,
    lookups: Lookups,
}

impl Shared {
    /// A ring of `capacity` slots (a power of two).
    pub(super) fn new(capacity: usize) -> Shared {
        assert!(capacity.is_power_of_two(), "ring capacity {capacity}");
        Shared {
            slots: (0..capacity).map(|_| Slot::new()).collect(),
            mask: capacity as u64 - 1,
            cursors: Cursors {
                head: AtomicU64::new(0),
                tail: AtomicU64::new(0),
                generation: AtomicU64::new(0),
            },
            lookups: Lookups {
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            },
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn slot(&self, position: u64) -> &Slot<Entry> {
        &self.slots[(position & self.mask) as usize]
    }

    /// The entry pushed at `position`, if it is still in its slot.
    fn entry<'g>(&'g self, position: u64, guard: &'g Guard) -> Option<&'g Entry> {
        self.slot(position)
            .load(guard)
            .filter(|e| e.position == position)
    }

    // Writer side. Every store below is Release, so a reader that Acquire-loads any of them also
    // sees everything the writer did before it (in particular the odd generation of a seqlock).

    pub(super) fn publish_head(&self, head: u64) {
        self.cursors.head.store(head, Ordering::Release);
    }
    pub(super) fn publish_tail(&self, tail: u64) {
        self.cursors.tail.store(tail, Ordering::Release);
    }
    /// Enters (`odd`) or leaves the generation seqlock. Entering needs no ordering of its own:
    /// the Release stores that follow it carry it to any reader that sees their effect.
    pub(super) fn publish_generation(&self, generation: u64) {
        let order = if generation % 2 == 1 {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        self.cursors.generation.store(generation, order);
    }

    pub(super) fn hits(&self) -> u64 {
        self.lookups.hits.load(Ordering::Relaxed)
    }
    pub(super) fn misses(&self) -> u64 {
        self.lookups.misses.load(Ordering::Relaxed)
    }

    /// Batches from the one holding `offset`, up to about `max_bytes` (at least one), or `None`
    /// if the ring does not hold `offset` or the writer truncated it meanwhile. Counts the lookup.
    pub(super) fn read(&self, offset: u64, max_bytes: u32) -> Option<Vec<FetchedBatch>> {
        let out = self.read_uncounted(offset, max_bytes);
        let counter = if out.is_some() {
            &self.lookups.hits
        } else {
            &self.lookups.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        out
    }

    fn read_uncounted(&self, offset: u64, max_bytes: u32) -> Option<Vec<FetchedBatch>> {
        let guard = pin();
        let generation = self.cursors.generation.load(Ordering::Acquire);
        if generation % 2 == 1 {
            return None;
        }
        let tail = self.cursors.tail.load(Ordering::Acquire);
        let head = self.cursors.head.load(Ordering::Acquire);
        // First position whose batch ends at or after `offset`. A position found empty was
        // evicted, and eviction goes oldest first, so what is looked for lies above it.
        let (mut lo, mut hi) = (head, tail);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid, &guard) {
                Some(e) if e.batch.last_offset() >= offset => hi = mid,
                _ => lo = mid + 1,
            }
        }
        let first = self
            .entry(lo, &guard)
            .filter(|e| lo < tail && e.batch.base_offset() <= offset)?;
        let mut total = first.batch.bytes().len() as u64;
        let mut next_offset = first.batch.last_offset() + 1;
        let mut out = vec![first.batch.clone()];
        for position in lo + 1..tail {
            let Some(e) = self.entry(position, &guard) else {
                break;
            };
            let len = e.batch.bytes().len() as u64;
            if e.batch.base_offset() != next_offset || total + len > u64::from(max_bytes) {
                break;
            }
            total += len;
            next_offset = e.batch.last_offset() + 1;
            out.push(e.batch.clone());
        }
        // Every load above was Acquire, so this one comes after them. If any of them saw a change
        // made inside a truncation, this sees that truncation's odd (or a later) generation.
        (self.cursors.generation.load(Ordering::Acquire) == generation).then_some(out)
    }
}

/// A read handle on one partition's hot ring for any thread: `Clone + Send + Sync`, lock-free,
/// and never blocks the writer.
///
/// A read returns whole batches exactly as the ring's owner pushed them: a contiguous run that
/// starts with the batch holding the requested offset, or `None` (a miss) when the ring does not
/// hold it, or lost it to eviction or truncation during the read. Get one from
/// [`crate::PartitionLog::ring_reader`] or [`super::HotRing::reader`]; it stays valid (and keeps
/// seeing new batches) for as long as the ring lives, and only misses once the ring is dropped.
#[derive(Clone)]
pub struct RingReader {
    pub(super) shared: Arc<Shared>,
}

impl RingReader {
    /// Batches from the one holding `offset`, up to about `max_bytes` (at least one), or `None`.
    /// Counts a hit or a miss.
    pub fn read(&self, offset: u64, max_bytes: u32) -> Option<Vec<FetchedBatch>> {
        self.shared.read(offset, max_bytes)
    }
    /// Reads served by the ring (by any reader, the owner's included).
    pub fn hits(&self) -> u64 {
        self.shared.hits()
    }
    /// Reads the ring could not serve.
    pub fn misses(&self) -> u64 {
        self.shared.misses()
    }
}

impl std::fmt::Debug for RingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingReader")
            .field("capacity", &self.shared.capacity())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}
