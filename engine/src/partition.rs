//! One partition as its owning shard sees it: the storage log, its waiters, group commit, and its
//! committed consumer offsets.
//!
//! Appends are synchronous memcpys into the mapped segment and never await. Everything that blocks
//! goes off the reactor and its result is handed back, so the reactor only ever does bookkeeping:
//! what a reply waits for (fdatasync, writing an offset commit) and preparing the next segment to
//! the blocking pool, what no reply waits for (reserving and prefaulting the next window of the
//! active one, rewarming after a flush) to the shard's idle-priority [`crate::background`] thread.
//! Segment preparation stays at normal priority: starved behind a saturated reactor, the roll
//! would create the segment inline (8-13 ms on the reactor; seen at idle priority). A partition reopened after a clean close (which seals) gets
//! its next segment prepared by a background job as it opens; that claims one prefault window of
//! disk (`storage::LogConfig::prefault_window_bytes`), not a whole segment. A brand-new partition
//! stays lazy: its first append creates the first segment inline (8-13 ms, counted in
//! `sprawl_partition_sync_segment_creations_total`). Preparing it at creation, inside the open or
//! as a job, made creating a topic of 1,725 partitions take over 10 s (1,725 files, fallocates,
//! populates and fsyncs; the OpenAPI property test timed out), the same trade-off that made the
//! whole-segment version of it a bad idea (docs/decisions.md).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use storage::{LogConfig, PartitionLog};

use crate::notify::Notify;
use crate::offsets;
use crate::runtime::blocking;

/// One batch in this many has its keys sampled for hot-key detection.
pub const KEY_SAMPLE_EVERY: u64 = 8;
/// Sampled keys kept per partition between two analytics ticks.
pub const KEY_SAMPLE_MAX: usize = 1024;

/// Error of a partition operation that is not a storage error.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    Offsets(#[from] offsets::OffsetsIoError),
    #[error(
        "too many consumers ({max}) have committed offsets on this partition; delete unused ones"
    )]
    TooManyConsumers { max: usize },
    #[error("partition is closed (topic deleted or node shutting down)")]
    Closed,
}

/// A partition owned by this shard.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub topic_id: u64,
    pub index: u32,
    pub dir: PathBuf,
    pub log: RefCell<PartitionLog>,
    /// Bumped after every append (long-poll fetches and subscriptions wait on it).
    pub appended: Notify,
    /// Bumped after every completed flush (`acks=all` waiters wait on it).
    pub flushed: Notify,
    flush_running: Cell<bool>,
    flush_error: RefCell<Option<String>>,
    segment_job_running: Cell<bool>,
    prefault_job_running: Cell<bool>,
    /// A flush's rewarm is queued or running on the background thread.
    rewarm_running: Cell<bool>,
    pub closed: Cell<bool>,
    offsets_file: RefCell<Option<Arc<offsets::OffsetsFile>>>,
    offsets_end: Cell<u64>,
    pub committed: RefCell<HashMap<String, u64>>,
    offsets_lock: glommio::sync::Semaphore,
    stats: Rc<crate::stats::ShardStats>,
    pub records_in: Cell<u64>,
    pub bytes_in: Cell<u64>,
    /// Keys of one batch in `KEY_SAMPLE_EVERY`, hashed, for the analytics shard's hot keys.
    pub key_sample: RefCell<Vec<(u64, u64)>>,
    batches_seen: Cell<u64>,
    pub records_out: Cell<u64>,
    pub bytes_out: Cell<u64>,
    /// The cold tier of a tiered topic's partition on a node with an object store; set once,
    /// right after the open.
    pub cold: std::cell::OnceCell<crate::tiering::PartitionCold>,
    /// Leader or follower state of a replicated partition (`crate::replication`).
    pub replica: crate::replication::ReplicaSlot,
}

/// Opens the log and the offsets file of a partition. Blocking: call through [`blocking`].
pub fn open_blocking(
    dir: PathBuf,
    config: LogConfig,
) -> Result<(PartitionLog, offsets::OffsetsFile, HashMap<String, u64>), PartitionError> {
    std::fs::create_dir_all(&dir).map_err(|source| storage::StorageError::Io {
        path: dir.clone(),
        op: "create partition directory",
        source,
    })?;
    let (log, _report) = PartitionLog::open(&dir, config)?;
    let (file, map) = offsets::open(&dir)?;
    Ok((log, file, map))
}

impl Partition {
    /// Opens a partition off the reactor.
    pub async fn open(
        topic: String,
        topic_id: u64,
        index: u32,
        dir: PathBuf,
        config: LogConfig,
        ring_budget: Arc<storage::MemoryBudget>,
        stats: Rc<crate::stats::ShardStats>,
    ) -> Result<Rc<Partition>, PartitionError> {
        let d = dir.clone();
        let (mut log, file, committed) = blocking(move || open_blocking(d, config)).await?;
        log.attach_memory_budget(ring_budget);
        let end = file.end;
        // Only a log that has segments gets its next one prepared at open (reopened after a clean
        // close, which seals): a brand-new partition stays lazy, so creating a topic of thousands
        // of partitions claims no disk and queues no jobs.
        let needs_segment = !log.has_active_segment() && log.stats().segments > 0;
        let part = Rc::new(Partition {
            topic,
            topic_id,
            index,
            dir,
            log: RefCell::new(log),
            appended: Notify::default(),
            flushed: Notify::default(),
            flush_running: Cell::new(false),
            flush_error: RefCell::new(None),
            segment_job_running: Cell::new(false),
            prefault_job_running: Cell::new(false),
            rewarm_running: Cell::new(false),
            closed: Cell::new(false),
            offsets_file: RefCell::new(Some(Arc::new(file))),
            offsets_end: Cell::new(end),
            committed: RefCell::new(committed),
            offsets_lock: glommio::sync::Semaphore::new(1),
            stats,
            records_in: Cell::new(0),
            bytes_in: Cell::new(0),
            key_sample: RefCell::new(Vec::new()),
            batches_seen: Cell::new(0),
            records_out: Cell::new(0),
            bytes_out: Cell::new(0),
            cold: std::cell::OnceCell::new(),
            replica: crate::replication::ReplicaSlot::default(),
        });
        if needs_segment {
            // New, or reopened after a clean close: otherwise the first append would create the
            // segment inline on the reactor.
            part.prepare_next_segment();
        }
        Ok(part)
    }

    /// Runs one group commit if anything is dirty and none is running. Every batch appended
    /// before this call is covered; appends continue while the fdatasync runs.
    pub async fn flush(self: &Rc<Self>) {
        if self.flush_running.get() {
            return;
        }
        let Some(mut job) = self.log.borrow_mut().begin_flush() else {
            return;
        };
        // Rewarming the pages the writeback cleaned is not part of the durability a waiting
        // acks=all reply needs: it runs afterwards, on the idle-priority background thread.
        let rewarm = job.take_rewarm();
        self.flush_running.set(true);
        let started = std::time::Instant::now();
        let running = crate::spin_read::BlockingRunning::start();
        let result = blocking(move || job.run()).await;
        drop(running);
        self.stats.record(
            crate::stats::Op::Fsync,
            started.elapsed().as_micros() as u64,
        );
        self.flush_running.set(false);
        match result {
            Ok(done) => {
                self.log.borrow_mut().complete_flush(done);
                *self.flush_error.borrow_mut() = None;
                crate::replication::on_flushed(self);
                // At most one in flight: one still queued behind a busy reactor covers the
                // same pages (it reads the write position when it runs).
                if let Some(rewarm) = rewarm.filter(|_| !self.rewarm_running.get()) {
                    self.rewarm_running.set(true);
                    let me = self.clone();
                    glommio::spawn_local(async move {
                        crate::background::run(move || rewarm.run()).await;
                        me.rewarm_running.set(false);
                    })
                    .detach();
                }
            }
            Err(e) => {
                // The kernel may have dropped the dirty pages: the log fences itself and only a
                // reopen (recovery) can say what survived. Waiters get the error, never a false ack.
                self.log.borrow_mut().flush_failed();
                eprintln!(
                    "sprawl: fdatasync of {}/{} failed, partition fenced until restart: {e}",
                    self.topic, self.index
                );
                *self.flush_error.borrow_mut() = Some(e.to_string());
            }
        }
        self.flushed.notify_all();
    }

    /// Waits until every offset below `end` is durable. Returns the flush error if one occurred.
    pub async fn wait_durable(self: &Rc<Self>, end: u64) -> Result<(), String> {
        loop {
            if self.log.borrow().durable_offset() >= end {
                return Ok(());
            }
            if self.closed.get() {
                return Err("partition closed before the write was synced".into());
            }
            let seen = self.flushed.generation();
            if !self.flush_running.get() {
                let me = self.clone();
                glommio::spawn_local(async move { me.flush().await }).detach();
            }
            self.flushed.changed_since(seen).await;
            if let Some(e) = self.flush_error.borrow().as_ref() {
                if self.log.borrow().durable_offset() < end {
                    return Err(format!("fdatasync failed: {e}"));
                }
            }
            if self.log.borrow().is_fenced() && self.log.borrow().durable_offset() < end {
                return Err(
                    "the partition is fenced after a failed fdatasync; restart the node".into(),
                );
            }
        }
    }

    /// Starts the background work the log asks for after an append: preparing the next segment,
    /// and moving the active segment's reserved, prefaulted frontier ahead of the writes.
    pub fn prepare_next_segment(self: &Rc<Self>) {
        self.prefault_ahead();
        if self.segment_job_running.get() {
            return;
        }
        let Some(job) = self.log.borrow_mut().prepare_segment_job() else {
            return;
        };
        self.segment_job_running.set(true);
        let me = self.clone();
        glommio::spawn_local(async move {
            let result = blocking(move || job.run()).await;
            me.segment_job_running.set(false);
            match result {
                Ok(seg) if !me.closed.get() => me.log.borrow_mut().install_prepared(seg),
                Ok(_) => {}
                Err(e) => {
                    // Without this the log would consider the job still running and never ask
                    // for another: every later roll would create its segment inline.
                    me.log.borrow_mut().prepare_failed();
                    eprintln!(
                        "sprawl: preparing the next segment of {}/{} failed (appends will create it inline): {e}",
                        me.topic, me.index
                    );
                }
            }
        })
        .detach();
    }

    /// Reserves and prefaults the next window of the active segment in the background once the
    /// writes come within half a window of the frontier (at most one job per partition).
    fn prefault_ahead(self: &Rc<Self>) {
        if self.prefault_job_running.get() {
            return;
        }
        let Some(job) = self.log.borrow_mut().prefault_job() else {
            return;
        };
        self.prefault_job_running.set(true);
        let me = self.clone();
        glommio::spawn_local(async move {
            let result = crate::background::run(move || job.run()).await;
            me.prefault_job_running.set(false);
            match result {
                Ok(done) => me.log.borrow_mut().complete_prefault(done),
                Err(e) => {
                    me.log.borrow_mut().prefault_failed();
                    eprintln!(
                        "sprawl: reserving the next window of {}/{} failed (appends will reserve inline): {e}",
                        me.topic, me.index
                    );
                }
            }
        })
        .detach();
    }

    /// Samples the keys of one batch in `KEY_SAMPLE_EVERY` (each with that weight), bounded by
    /// `KEY_SAMPLE_MAX` until the analytics shard collects them. The other batches pay one add.
    pub fn sample_keys<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) {
        let n = self.batches_seen.get();
        self.batches_seen.set(n.wrapping_add(1));
        if !n.is_multiple_of(KEY_SAMPLE_EVERY) {
            return;
        }
        let mut sample = self.key_sample.borrow_mut();
        for k in keys {
            if sample.len() >= KEY_SAMPLE_MAX {
                break;
            }
            let h =
                u64::from(crc32c::crc32c(k)) << 32 | u64::from(crc32c::crc32c_append(0x5eed, k));
            sample.push((h, KEY_SAMPLE_EVERY));
        }
    }

    /// Committed-offset lag: end offset minus the lowest committed offset.
    pub fn lag_msgs(&self) -> Option<u64> {
        let end = self.log.borrow().end_offset();
        self.committed
            .borrow()
            .values()
            .min()
            .map(|c| end.saturating_sub(*c))
    }

    /// Records a committed offset durably (fdatasync'd before it returns).
    pub async fn commit_offset(
        self: &Rc<Self>,
        consumer: &str,
        offset: u64,
    ) -> Result<(), PartitionError> {
        let _permit = self
            .offsets_lock
            .acquire_permit(1)
            .await
            .map_err(|_| PartitionError::Closed)?;
        {
            let committed = self.committed.borrow();
            if !committed.contains_key(consumer) && committed.len() >= offsets::CONSUMERS_MAX {
                return Err(PartitionError::TooManyConsumers {
                    max: offsets::CONSUMERS_MAX,
                });
            }
        }
        let file = self
            .offsets_file
            .borrow()
            .clone()
            .ok_or(PartitionError::Closed)?;
        let record = offsets::encode_record(consumer, offset);
        let position = self.offsets_end.get();
        let len = record.len() as u64;
        blocking(move || offsets::write_synced(&file.file, &file.path, position, &record)).await?;
        self.offsets_end.set(position + len);
        self.committed
            .borrow_mut()
            .insert(consumer.to_string(), offset);
        Ok(())
    }

    /// Flushes and closes; the partition refuses work afterwards.
    pub async fn close(self: &Rc<Self>) {
        self.closed.set(true);
        // A tiering pass still writing to the bucket must end before a new owner (after a move)
        // or a restart reconciles the bucket.
        if let Some(cold) = self.cold.get() {
            cold.wait_idle().await;
        }
        // Let an offset commit already writing finish: after a move, the new owner reads the
        // file, and a late write would land behind its back.
        let held = self.offsets_lock.acquire_permit(1).await;
        self.offsets_lock.close();
        drop(held);
        // Wait for a running flush, then flush what remains.
        while self.flush_running.get() {
            let seen = self.flushed.generation();
            self.flushed.changed_since(seen).await;
        }
        self.flush().await;
        self.appended.notify_all();
        self.flushed.notify_all();
        self.offsets_file.borrow_mut().take();
    }
}
