//! One partition's cold tier as its owning shard drives it: open (load the manifest and reconcile
//! the bucket before any retention), then passes that upload what the topic's policy wants remote,
//! write the manifest, and only then release local copies the confirmed manifest lists.
//!
//! A partition of a tiered topic never runs the log's own retention: local segments go only
//! through [`storage::cold::PartitionTier::local_deletions`] (listed remotely, or past the topic's
//! retention, which applies to the remote log). Reads below the local start go to
//! [`storage::cold::RemoteReader`] on the cold-tier threads ([`read_remote`]).
//!
//! One pass runs at a time per partition ([`PartitionCold::busy`]); closing a partition (topic
//! deleted, partition moved, node stopping) waits for it, so a new owner never reconciles the
//! bucket while the old one still writes to it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use storage::cold::{PartitionTier, RemoteReader, TierConfig, TierPolicy, TierStats};
use storage::ReadResult;

use crate::catalog::TopicMeta;
use crate::cold::{ColdTier, PoolStopped};
use crate::notify::Notify;
use crate::partition::Partition;

/// True when the topic asks for tiering (either setting given).
pub fn is_tiered(t: &TopicMeta) -> bool {
    t.settings.tier_after_ms.is_some() || t.settings.local_retention_bytes.is_some()
}

/// The tier configuration of one partition of a tiered topic: its key prefix in the bucket
/// (`topics/<name>-<topic id>/<partition>`, unique across re-creations of a name) and the policy.
/// The topic's `retention_ms` / `retention_bytes` apply to the remote log.
pub fn tier_config(t: &TopicMeta, partition: u32) -> TierConfig {
    let s = &t.settings;
    let policy = TierPolicy {
        tier_after_ms: s.tier_after_ms,
        local_retention_bytes: s.local_retention_bytes,
        local_retention_ms: None,
        remote_retention_ms: s.retention_ms,
        remote_retention_bytes: s.retention_bytes,
    };
    TierConfig {
        policy,
        ..TierConfig::new(&format!("{}/{partition}", topic_prefix(t)))
    }
}

/// Key prefix of every object of a topic: `topics/<name>-<topic id, 16 hex>`.
pub fn topic_prefix(t: &TopicMeta) -> String {
    format!("topics/{}-{:016x}", t.name, t.topic_id)
}

/// Deletes every object of a deleted topic's `partitions` under `prefix` (its remote log), each
/// partition's manifest first, so that an interrupted run leaves segment objects no manifest
/// lists, never a manifest listing deleted objects. Blocking: run it on the cold-tier threads.
/// Returns the number of objects deleted.
pub fn delete_remote(
    store: &dyn storage::cold::ObjectStore,
    prefix: &str,
    partitions: u32,
) -> Result<u64, storage::cold::StoreError> {
    // A partition holds at most one object per manifest entry, plus unlisted leftovers that
    // reconcile would have removed: the same bound reconcile lists with.
    let limit = 2 * storage::cold::manifest::MANIFEST_ENTRIES_MAX as usize;
    let mut deleted = 0;
    for p in 0..partitions {
        let mut objects = store.list(&format!("{prefix}/{p}/"), limit)?;
        objects.sort_by_key(|o| !o.key.ends_with("/manifest"));
        for o in &objects {
            store.delete(&o.key)?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

enum State {
    /// Not opened yet (store down, or the open failed and is retried by the next pass).
    Closed,
    Open {
        tier: Box<PartitionTier>,
        reader: RemoteReader,
    },
}

/// The cold-tier state of a partition of a tiered topic.
pub struct PartitionCold {
    config: TierConfig,
    state: RefCell<State>,
    busy: Cell<bool>,
    idle: Notify,
    last_error: RefCell<Option<String>>,
}

impl std::fmt::Debug for PartitionCold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionCold")
            .field("prefix", &self.config.prefix)
            .field("open", &self.is_open())
            .finish()
    }
}

impl PartitionCold {
    pub fn new(config: TierConfig) -> PartitionCold {
        PartitionCold {
            config,
            state: RefCell::new(State::Closed),
            busy: Cell::new(false),
            idle: Notify::default(),
            last_error: RefCell::new(None),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(*self.state.borrow(), State::Open { .. })
    }

    /// Counters and remote offsets, once open.
    pub fn stats(&self) -> Option<TierStats> {
        match &*self.state.borrow() {
            State::Open { tier, .. } => Some(tier.stats()),
            State::Closed => None,
        }
    }

    /// The remote log's reader, once open.
    pub fn reader(&self) -> Option<RemoteReader> {
        match &*self.state.borrow() {
            State::Open { reader, .. } => Some(reader.clone()),
            State::Closed => None,
        }
    }

    /// `[start, end)` of the remote log, when open and non-empty.
    pub fn remote_range(&self) -> Option<(u64, u64)> {
        let (start, end) = self.reader()?.offsets();
        (start < end).then_some((start, end))
    }

    /// The last failure of a pass, cleared by a pass without one.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.borrow().clone()
    }

    /// Waits for a running pass to finish (called by `Partition::close`).
    pub async fn wait_idle(&self) {
        while self.busy.get() {
            let seen = self.idle.generation();
            if !self.busy.get() {
                break;
            }
            self.idle.changed_since(seen).await;
        }
    }
}

/// Clears `busy` and wakes `close` when a pass ends, however it ends.
struct BusyGuard<'a>(&'a PartitionCold);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.busy.set(false);
        self.0.idle.notify_all();
    }
}

/// Before a shard serves: checks the store and loads the manifests of this shard's tiered
/// partitions (with a first pass each), waiting at most `limit`, so that a restarted node
/// describes and serves its remote log from the first request. A store that does not answer in
/// time leaves the partitions to the periodic passes.
pub async fn open_at_start(
    shard: &Rc<crate::shard::Shard>,
    cold: &Arc<ColdTier>,
    limit: std::time::Duration,
) {
    let parts: Vec<Rc<Partition>> = shard
        .partitions
        .borrow()
        .values()
        .filter(|p| p.cold.get().is_some())
        .cloned()
        .collect();
    let now = crate::handlers::now_ms();
    let cold = cold.clone();
    let is_first_shard = shard.id == 0;
    let _ = glommio::timer::timeout(limit, async move {
        if is_first_shard {
            // Reported at start-up even when nothing is tiered yet.
            cold.ensure_up().await;
        }
        let tasks: Vec<_> = parts
            .into_iter()
            .map(|p| {
                let cold = cold.clone();
                glommio::spawn_local(async move { pass(&p, &cold, now).await })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        Ok(())
    })
    .await;
}

/// One tiering pass over `p`: open if needed, start uploads and wait for them, write the
/// manifest, release what it lists. Does nothing while another pass runs, the partition is
/// closed, or the store is down.
pub async fn pass(p: &Rc<Partition>, cold: &Arc<ColdTier>, now_ms: i64) {
    let Some(pc) = p.cold.get() else {
        return;
    };
    if pc.busy.get() || p.closed.get() || !cold.ensure_up().await {
        return;
    }
    pc.busy.set(true);
    let _guard = BusyGuard(pc);
    let result = run_pass(p, pc, cold, now_ms).await;
    match result {
        Ok(()) => *pc.last_error.borrow_mut() = None,
        Err(e) => {
            let changed = pc.last_error.borrow().as_deref() != Some(e.as_str());
            if changed {
                eprintln!(
                    "sprawl: cold tier of {}/{}: {e} (retried)",
                    p.topic, p.index
                );
            }
            *pc.last_error.borrow_mut() = Some(e);
        }
    }
}

async fn run_pass(
    p: &Rc<Partition>,
    pc: &PartitionCold,
    cold: &Arc<ColdTier>,
    now_ms: i64,
) -> Result<(), String> {
    let stopped = |PoolStopped| "node shutting down".to_string();
    if !pc.is_open() {
        // Load the manifest and reconcile before anything is uploaded or deleted.
        let local = p.log.borrow().tierable_segments();
        let (store, config) = (cold.store(), pc.config.clone());
        let (tier, report) = cold
            .run(move || PartitionTier::open(store, config, &local, now_ms))
            .await
            .map_err(stopped)?
            .map_err(|e| format!("opening the manifest: {e}"))?;
        if !report.deleted.is_empty() || !report.re_recorded.is_empty() {
            eprintln!(
                "sprawl: cold tier of {}/{}: manifest v{} reconciled: {} unlisted object(s) kept, {} deleted",
                p.topic,
                p.index,
                report.manifest_version,
                report.re_recorded.len(),
                report.deleted.len()
            );
        }
        let reader = tier.reader(cold.cache.clone());
        *pc.state.borrow_mut() = State::Open {
            tier: Box::new(tier),
            reader,
        };
    }
    let mut errors = Vec::new();
    // Uploads: started together (the tier caps how many), awaited together.
    let local = p.log.borrow().tierable_segments();
    let jobs = with_tier(pc, |t| t.upload_jobs(&local, now_ms));
    let running: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let cold = cold.clone();
            glommio::spawn_local(async move { cold.run(move || job.run()).await })
        })
        .collect();
    for handle in running {
        let done = handle.await.map_err(stopped)?;
        if let Err(e) = with_tier(pc, |t| t.complete_upload(done)) {
            errors.push(format!("upload: {e}"));
        }
    }
    // The manifest: lists confirmed uploads, drops what is past remote retention.
    if let Some(job) = with_tier(pc, |t| t.manifest_job(now_ms)) {
        let done = cold.run(move || job.run()).await.map_err(stopped)?;
        if let Err(e) = with_tier(pc, |t| t.complete_manifest(done)) {
            errors.push(format!("manifest write: {e}"));
        }
    }
    // Local copies go only now, and only those the confirmed manifest lists.
    if !p.closed.get() {
        let local = p.log.borrow().tierable_segments();
        let deletions = with_tier(pc, |t| t.local_deletions(&local, now_ms));
        let job = p.log.borrow_mut().release_tiered(&deletions);
        if let Some(job) = job {
            crate::runtime::blocking(move || job.run())
                .await
                .map_err(|e| format!("deleting tiered local segments: {e}"))?;
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Runs `f` on the open tier. Only called inside a pass, after the open succeeded.
fn with_tier<R>(pc: &PartitionCold, f: impl FnOnce(&mut PartitionTier) -> R) -> R {
    match &mut *pc.state.borrow_mut() {
        State::Open { tier, .. } => f(tier),
        State::Closed => unreachable!("a pass opens the tier before using it"),
    }
}

/// Reads whole batches from the remote log on a cold-tier thread.
pub async fn read_remote(
    cold: &Arc<ColdTier>,
    reader: RemoteReader,
    offset: u64,
    max_bytes: u32,
) -> Result<ReadResult, String> {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &cold.metrics;
    m.remote_reads.fetch_add(1, Relaxed);
    let result = cold
        .run(move || reader.read(offset, max_bytes))
        .await
        .map_err(|e| e.to_string())?;
    match result {
        Ok(r) => {
            let bytes: usize = r.batches.iter().map(|b| b.bytes().len()).sum();
            m.remote_read_bytes.fetch_add(bytes as u64, Relaxed);
            Ok(r)
        }
        Err(e) => {
            m.remote_read_errors.fetch_add(1, Relaxed);
            Err(format!(
                "reading offset {offset} from the object store {}: {e}",
                cold.describe()
            ))
        }
    }
}

/// Per-partition cold-tier lines of `/metrics`: `(topic, partition, stats)` of every tiered
/// partition whose manifest is loaded.
pub fn render_metrics(out: &mut String, node: u32, parts: &[(&str, u32, &TierStats)]) {
    let fields: [crate::metrics::PartitionFamily<TierStats>; 11] = [
        ("tier_remote_start_offset", "gauge", |s| {
            s.remote_start_offset
        }),
        ("tier_remote_end_offset", "gauge", |s| s.remote_end_offset),
        ("tier_remote_segments", "gauge", |s| s.remote_segments),
        ("tier_remote_data_bytes", "gauge", |s| s.remote_data_bytes),
        ("tier_remote_object_bytes", "gauge", |s| {
            s.remote_object_bytes
        }),
        ("tier_uploads_in_flight", "gauge", |s| s.uploads_in_flight),
        ("tier_uploads_total", "counter", |s| s.uploads_ok),
        ("tier_upload_failures_total", "counter", |s| {
            s.uploads_failed
        }),
        ("tier_manifest_writes_total", "counter", |s| {
            s.manifest_writes
        }),
        ("tier_manifest_write_failures_total", "counter", |s| {
            s.manifest_write_failures
        }),
        ("tier_remote_segments_expired_total", "counter", |s| {
            s.remote_segments_expired
        }),
    ];
    crate::metrics::render_partition_families(out, node, &fields, parts);
}
