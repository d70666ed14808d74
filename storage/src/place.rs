//! Where a batch goes: room in the active segment (rolling to the prepared segment, reserving disk
//! when the prefault frontier lags), the write into the unpublished range, and its publication
//! (indexes, end offset, hot ring). Shared by leader appends (`PartitionLog::append`) and replica
//! appends (`PartitionLog::append_replica`), which differ only in how the bytes are produced.

use crate::error::StorageError;
use crate::fetch::FetchedBatch;
use crate::format::BatchHeader;
use crate::jobs::SealWork;
use crate::log::{drop_segment_files, PartitionLog};
use crate::segment::{create_prepared, Segment};

impl PartitionLog {
    /// Readies the active segment for one batch of `stored` bytes ending at `last_offset` (rolling
    /// and reserving as needed) and returns the unpublished range to write it into. Readers see
    /// nothing until [`PartitionLog::publish_batch`].
    pub(crate) fn place_batch(
        &mut self,
        stored: u64,
        last_offset: u64,
        now_ms: i64,
    ) -> Result<&mut [u8], StorageError> {
        self.ensure_room(stored, last_offset, now_ms)?;
        let seg = self
            .segments
            .last_mut()
            .expect("ensure_room leaves an active segment");
        if seg.is_empty() {
            // A segment's age counts from its first batch.
            seg.header.created_ms = now_ms;
            seg.store_header();
        }
        Ok(seg.unpublished_mut(stored as usize))
    }

    /// Publishes the batch written into the range [`PartitionLog::place_batch`] returned: indexes,
    /// end offset, hot ring, counters.
    pub(crate) fn publish_batch(&mut self, header: BatchHeader, last_offset: u64) {
        let interval = self.config.index_interval_bytes;
        let stored = header.batch_bytes as usize;
        let seg = self
            .segments
            .last_mut()
            .expect("place_batch left an active segment");
        let position = seg.write_pos;
        seg.note_batch(position, &header, interval);
        let bytes = seg.bytes(position, stored);
        self.end_offset = last_offset + 1;
        self.ring.push(FetchedBatch::new(header, bytes));
        self.counters.appends += 1;
        self.counters.appended_bytes += stored as u64;
    }

    /// Makes sure the active segment can take `stored` more bytes ending at `last_offset`, rolling
    /// (to the prepared segment, or synchronously as a counted fallback) when it cannot, and that
    /// those bytes are reserved on disk (inline, as a counted fallback, when the frontier lags).
    fn ensure_room(
        &mut self,
        stored: u64,
        last_offset: u64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        if let Some(seg) = self.active() {
            let fits = seg.write_pos + stored <= seg.capacity();
            let rel_ok = last_offset - seg.base_offset() < u64::from(u32::MAX);
            let young = match self.config.segment_ms_max {
                Some(age_ms) if !seg.is_empty() => {
                    now_ms.saturating_sub(seg.header.created_ms) < age_ms as i64
                }
                _ => true,
            };
            if fits && rel_ok && young {
                return self.reserve(stored);
            }
        }
        self.roll(now_ms)?;
        let seg = self
            .segments
            .last()
            .expect("roll installs an active segment");
        if seg.write_pos + stored > seg.capacity() {
            // Only possible when a recovered segment is smaller than the configured size.
            return Err(StorageError::BatchTooLarge {
                bytes: stored,
                max: seg.capacity() - seg.write_pos,
            });
        }
        self.reserve(stored)
    }

    /// Reserves `stored` bytes at the write position, plus half a window, if the frontier lags:
    /// while the [`crate::PrefaultJob`] is late the shard pays one fallocate per half window, not
    /// per page (those pages are not prefaulted: their first write faults).
    fn reserve(&mut self, stored: u64) -> Result<(), StorageError> {
        let ahead = self.config.effective_prefault_window_bytes() / 2;
        let seg = self
            .segments
            .last_mut()
            .expect("reserve follows a check for an active segment");
        let end = seg.write_pos + stored;
        if end <= seg.allocated {
            return Ok(());
        }
        seg.reserve_inline(&self.io, end.next_multiple_of(4096) + ahead)?;
        self.counters.inline_reserves += 1;
        Ok(())
    }

    /// Seals the active segment (if any) and activates a new one at `end_offset`.
    pub(crate) fn roll(&mut self, now_ms: i64) -> Result<(), StorageError> {
        let prepared = match self.prepared.take() {
            Some(p) => p,
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.counters.sync_fallbacks += 1;
                create_prepared(
                    &self.io,
                    &self.dir,
                    seq,
                    self.config.segment_bytes_max,
                    self.config.effective_prefault_window_bytes(),
                    self.config.prefault,
                )?
            }
        };
        if let Some(seg) = self.segments.last_mut().filter(|s| !s.is_sealed()) {
            if seg.is_empty() {
                // Never leave an empty sealed segment behind: reuse its slot by dropping it.
                let seg = self.segments.pop().expect("checked above");
                drop_segment_files(&self.io, &self.dir, &seg)?;
            } else {
                seg.seal();
                self.pending_seals.push(SealWork::of(seg));
            }
        }
        self.segments
            .push(Segment::activate(prepared, self.end_offset, now_ms));
        self.counters.rolls += 1;
        Ok(())
    }
}
