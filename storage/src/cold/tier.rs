//! One partition's cold tier: which local segments to upload, the in-flight uploads, the
//! manifest, and the "safe to delete" rule. The state machine is synchronous and cheap; every
//! blocking step is a `Send` job ([`UploadJob`], [`ManifestJob`]) the engine runs on a blocking
//! pool and hands back (`complete_*`), like the log's own flush jobs. [`PartitionTier::run_pass`]
//! strings the jobs together on scoped threads for callers without a pool (tests, tools).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::cold::error::ColdError;
use crate::cold::local::{DeletionReason, LocalDeletion, LocalSegment};
use crate::cold::manifest::{manifest_key, Manifest, RemoteSegment, MANIFEST_ENTRIES_MAX};
use crate::cold::object::build_object;
use crate::cold::reader::{ChunkCache, RemoteReader};
use crate::cold::reconcile::{load_manifest, reconcile, ReconcileReport};
use crate::cold::store::{put_multipart, ObjectStore};
use crate::cold::{TierConfig, TierPolicy};

/// The manifest readers see; replaced (never mutated) after each confirmed manifest write.
pub type SharedManifest = Arc<RwLock<Arc<Manifest>>>;

/// Counters and sizes for `sprawl topic describe` and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierStats {
    pub remote_start_offset: u64,
    pub remote_end_offset: u64,
    pub remote_segments: u64,
    /// Uncompressed bytes of batches held remotely.
    pub remote_data_bytes: u64,
    /// Bytes of objects in the bucket.
    pub remote_object_bytes: u64,
    pub manifest_version: u64,
    pub uploads_in_flight: u64,
    /// Uploaded and confirmed, waiting for the manifest write that lists them.
    pub uploads_unlisted: u64,
    pub uploads_ok: u64,
    pub uploads_failed: u64,
    pub manifest_writes: u64,
    pub manifest_write_failures: u64,
    pub remote_segments_expired: u64,
    pub object_delete_failures: u64,
}

/// Reads a sealed segment, builds its object and uploads it (multipart when large). Blocking.
pub struct UploadJob {
    store: Arc<dyn ObjectStore>,
    config: TierConfig,
    segment: LocalSegment,
    now_ms: i64,
}

impl std::fmt::Debug for UploadJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadJob")
            .field("prefix", &self.config.prefix)
            .field("segment", &self.segment)
            .finish()
    }
}

/// Result of an [`UploadJob`], handed back to [`PartitionTier::complete_upload`].
#[derive(Debug)]
pub struct UploadDone {
    base_offset: u64,
    result: Result<RemoteSegment, ColdError>,
}

impl UploadDone {
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }
    pub fn result(&self) -> Result<&RemoteSegment, &ColdError> {
        self.result.as_ref()
    }
}

impl UploadJob {
    pub fn segment(&self) -> &LocalSegment {
        &self.segment
    }

    /// Builds and uploads the object. The upload is confirmed when this returns `Ok` inside the
    /// result: the store acknowledged the PUT (or the multipart completion).
    pub fn run(self) -> UploadDone {
        let base_offset = self.segment.base_offset;
        UploadDone {
            base_offset,
            result: self.upload(),
        }
    }

    fn upload(&self) -> Result<RemoteSegment, ColdError> {
        let c = &self.config;
        let built = build_object(
            &self.segment.path,
            self.segment.header_crc32c,
            c.chunk_raw_bytes,
            c.zstd_level,
        )?;
        let h = built.footer.segment;
        let entry = RemoteSegment {
            base_offset: h.base_offset,
            next_offset: h.next_offset,
            seq: h.seq,
            segment_header_crc32c: self.segment.header_crc32c,
            footer_bytes: built.trailer.footer_bytes,
            object_bytes: built.bytes.len() as u64,
            data_bytes: h.data_bytes,
            max_timestamp_ms: h.max_timestamp_ms,
            uploaded_ms: self.now_ms,
        };
        let key = entry.object_key(&c.prefix);
        if built.bytes.len() as u64 >= c.multipart_threshold_bytes {
            put_multipart(&*self.store, &key, &built.bytes, c.multipart_part_bytes)?;
        } else {
            self.store.put(&key, &built.bytes)?;
        }
        Ok(entry)
    }
}

/// Writes a new manifest, then deletes the objects it dropped (remote retention). Blocking.
pub struct ManifestJob {
    store: Arc<dyn ObjectStore>,
    key: String,
    manifest: Manifest,
    appended: Vec<u64>,
    delete_keys: Vec<String>,
}

impl std::fmt::Debug for ManifestJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestJob")
            .field("key", &self.key)
            .field("version", &self.manifest.version)
            .field("appended", &self.appended)
            .field("delete_keys", &self.delete_keys)
            .finish()
    }
}

/// Result of a [`ManifestJob`], handed back to [`PartitionTier::complete_manifest`].
#[derive(Debug)]
pub struct ManifestDone {
    manifest: Manifest,
    appended: Vec<u64>,
    /// `Ok(keys whose delete failed)` once the manifest write was confirmed.
    result: Result<Vec<String>, ColdError>,
    /// The deletes that never ran because the manifest write failed.
    unrun_deletes: Vec<String>,
}

impl ManifestJob {
    pub fn run(self) -> ManifestDone {
        let (result, unrun_deletes) = match self.store.put(&self.key, &self.manifest.encode()) {
            // Only now, with the manifest no longer listing them, may the objects go.
            Ok(()) => {
                let failed = self
                    .delete_keys
                    .into_iter()
                    .filter(|k| self.store.delete(k).is_err())
                    .collect();
                (Ok(failed), Vec::new())
            }
            Err(e) => (Err(ColdError::from(e)), self.delete_keys),
        };
        ManifestDone {
            manifest: self.manifest,
            appended: self.appended,
            result,
            unrun_deletes,
        }
    }
}

/// What one [`PartitionTier::run_pass`] did.
#[derive(Debug, Default)]
pub struct PassReport {
    pub uploaded: Vec<u64>,
    pub manifest_written: bool,
    /// Failures of this pass (uploads, manifest); everything failed is retried by the next pass.
    pub errors: Vec<ColdError>,
}

/// The cold tier of one partition. Owned by the partition's shard; not shared.
pub struct PartitionTier {
    store: Arc<dyn ObjectStore>,
    config: TierConfig,
    manifest: Manifest,
    shared: SharedManifest,
    /// Confirmed uploads not yet listed by a confirmed manifest, by base offset.
    uploaded: BTreeMap<u64, RemoteSegment>,
    /// Base offsets of running upload jobs.
    in_flight: BTreeMap<u64, u64>,
    manifest_in_flight: bool,
    next_manifest_version: u64,
    /// Base offset of the oldest local sealed segment last seen (`upload_jobs`, `open`).
    local_floor: Option<u64>,
    /// Objects dropped from the manifest whose delete failed; retried with the next manifest job.
    orphans: Vec<String>,
    stats: TierStats,
}

impl std::fmt::Debug for PartitionTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionTier")
            .field("prefix", &self.config.prefix)
            .field("stats", &self.stats())
            .finish()
    }
}

impl PartitionTier {
    /// Loads the partition's manifest and reconciles the bucket with it and with the local
    /// sealed segments (see [`ReconcileReport`]). Must run before any retention, local or remote.
    /// Blocking. An error leaves nothing changed in the store except idempotent deletes of
    /// objects no manifest lists; the node keeps serving local data and retries later.
    pub fn open(
        store: Arc<dyn ObjectStore>,
        config: TierConfig,
        local: &[LocalSegment],
        now_ms: i64,
    ) -> Result<(PartitionTier, ReconcileReport), ColdError> {
        config.validate(store.part_bytes_min())?;
        let manifest = load_manifest(&*store, &config.prefix)?;
        let (recorded, report) = reconcile(&*store, &config.prefix, &manifest, local, now_ms)?;
        let next_manifest_version = manifest.version + 1;
        let shared = Arc::new(RwLock::new(Arc::new(manifest.clone())));
        let mut tier = PartitionTier {
            store,
            config,
            manifest,
            shared,
            uploaded: recorded.into_iter().map(|e| (e.base_offset, e)).collect(),
            in_flight: BTreeMap::new(),
            manifest_in_flight: false,
            next_manifest_version,
            local_floor: local.first().map(|s| s.base_offset),
            orphans: Vec::new(),
            stats: TierStats::default(),
        };
        tier.refresh_stats();
        Ok((tier, report))
    }

    /// The last confirmed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn config(&self) -> &TierConfig {
        &self.config
    }

    /// Changes the policy (topic config altered); takes effect at the next pass.
    pub fn set_policy(&mut self, policy: TierPolicy) -> Result<(), ColdError> {
        policy.validate()?;
        self.config.policy = policy;
        Ok(())
    }

    /// A reader of this partition's remote log (`Send + Sync`, cheap to clone) that follows
    /// every confirmed manifest, sharing `cache` with other partitions.
    pub fn reader(&self, cache: Arc<ChunkCache>) -> RemoteReader {
        RemoteReader::new(
            Arc::clone(&self.store),
            self.config.prefix.clone(),
            Arc::clone(&self.shared),
            cache,
        )
    }

    pub fn stats(&self) -> TierStats {
        self.stats.clone()
    }

    fn refresh_stats(&mut self) {
        let m = &self.manifest;
        self.stats.remote_start_offset = m.start_offset();
        self.stats.remote_end_offset = m.end_offset();
        self.stats.remote_segments = m.entries.len() as u64;
        self.stats.remote_data_bytes = m.remote_data_bytes();
        self.stats.remote_object_bytes = m.remote_object_bytes();
        self.stats.manifest_version = m.version;
        self.stats.uploads_in_flight = self.in_flight.len() as u64;
        self.stats.uploads_unlisted = self.uploaded.len() as u64;
    }

    /// Starts uploads the policy asks for, oldest first, up to `uploads_in_flight_max` running.
    /// `local` is the log's [`crate::PartitionLog::tierable_segments`].
    pub fn upload_jobs(&mut self, local: &[LocalSegment], now_ms: i64) -> Vec<UploadJob> {
        let wanted = self.config.policy.upload_prefix(local, now_ms);
        let listed = self.manifest.entries.len() + self.uploaded.len() + self.in_flight.len();
        let room = (self.config.uploads_in_flight_max as usize)
            .saturating_sub(self.in_flight.len())
            .min((MANIFEST_ENTRIES_MAX as usize).saturating_sub(listed));
        let end = self.manifest.end_offset();
        self.local_floor = local.first().map(|s| s.base_offset);
        let mut jobs = Vec::new();
        for s in &local[..wanted] {
            if jobs.len() == room {
                break;
            }
            if s.base_offset < end
                || self.in_flight.contains_key(&s.base_offset)
                || self.uploaded.contains_key(&s.base_offset)
            {
                continue;
            }
            self.in_flight.insert(s.base_offset, s.next_offset);
            jobs.push(UploadJob {
                store: Arc::clone(&self.store),
                config: self.config.clone(),
                segment: s.clone(),
                now_ms,
            });
        }
        self.refresh_stats();
        jobs
    }

    /// Takes back a finished upload. On failure the segment is simply eligible again.
    pub fn complete_upload(&mut self, done: UploadDone) -> Result<(), ColdError> {
        if self.in_flight.remove(&done.base_offset).is_none() {
            return Err(ColdError::UnexpectedCompletion {
                base_offset: done.base_offset,
                reason: "no upload of this segment is in flight",
            });
        }
        let r = match done.result {
            Ok(entry) => {
                self.stats.uploads_ok += 1;
                self.uploaded.insert(entry.base_offset, entry);
                Ok(())
            }
            Err(e) => {
                self.stats.uploads_failed += 1;
                Err(e)
            }
        };
        self.refresh_stats();
        r
    }

    /// A manifest write when something changed: confirmed uploads that extend the remote log
    /// (in offset order, never past a lower upload still in flight), and remote segments past
    /// retention (dropped from the manifest first, their objects deleted after it is written).
    /// At most one is outstanding: hand its result to [`PartitionTier::complete_manifest`]
    /// (likewise every [`UploadJob`] to [`PartitionTier::complete_upload`]), or the tier waits.
    pub fn manifest_job(&mut self, now_ms: i64) -> Option<ManifestJob> {
        if self.manifest_in_flight {
            return None;
        }
        let mut next = self.manifest.clone();
        let mut appended = Vec::new();
        let lowest_in_flight = self.in_flight.keys().next().copied().unwrap_or(u64::MAX);
        let stale: Vec<u64> = self
            .uploaded
            .range(..next.end_offset())
            .map(|(b, _)| *b)
            .collect();
        for b in stale {
            // Overlaps what the manifest already lists (cannot happen while the tier is the only
            // writer): never list it twice.
            self.uploaded.remove(&b);
        }
        for (base, e) in &self.uploaded {
            // Contiguous with the remote log, or nothing local lies below it (the offsets in
            // between are gone locally, so a gap is all there can be). A failed upload of a
            // lower segment blocks the ones above it until it is retried.
            let end = next.end_offset();
            let contiguous =
                *base == end || (*base > end && self.local_floor.is_none_or(|f| f >= *base));
            if !contiguous || *base > lowest_in_flight {
                break;
            }
            next.entries.push(*e);
            appended.push(*base);
        }
        let expired = self.config.policy.remote_expired_prefix(&next, now_ms);
        let mut delete_keys = std::mem::take(&mut self.orphans);
        for e in next.entries.drain(..expired) {
            next.horizon_offset = e.next_offset;
            delete_keys.push(e.object_key(&self.config.prefix));
        }
        // Never delete an object the manifest about to be written lists (a retried delete from
        // a failed write whose segments the policy no longer expires, after a config change).
        let prefix = &self.config.prefix;
        let listed: std::collections::HashSet<String> =
            next.entries.iter().map(|e| e.object_key(prefix)).collect();
        delete_keys.sort();
        delete_keys.dedup();
        delete_keys.retain(|k| !listed.contains(k));
        // With only retried deletes left, the same manifest is rewritten (idempotent) and the
        // deletes run again after it.
        if appended.is_empty() && expired == 0 && delete_keys.is_empty() {
            return None;
        }
        self.stats.remote_segments_expired += expired as u64;
        next.version = self.next_manifest_version;
        self.next_manifest_version += 1;
        next.written_ms = now_ms;
        if let Err(reason) = next.check() {
            panic!(
                "cold tier built an invalid manifest for {}: {reason}",
                self.config.prefix
            );
        }
        self.manifest_in_flight = true;
        Some(ManifestJob {
            store: Arc::clone(&self.store),
            key: manifest_key(&self.config.prefix),
            manifest: next,
            appended,
            delete_keys,
        })
    }

    /// Takes back a manifest write. Only a confirmed write changes what readers see and what is
    /// safe to delete; a failed one changes nothing and is retried by the next `manifest_job`.
    pub fn complete_manifest(&mut self, done: ManifestDone) -> Result<(), ColdError> {
        self.manifest_in_flight = false;
        match done.result {
            Ok(failed_deletes) => {
                self.stats.manifest_writes += 1;
                self.stats.object_delete_failures += failed_deletes.len() as u64;
                self.orphans = failed_deletes;
                for b in &done.appended {
                    self.uploaded.remove(b);
                }
                self.manifest = done.manifest;
                let snapshot = Arc::new(self.manifest.clone());
                *self.shared.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
                self.refresh_stats();
                Ok(())
            }
            Err(e) => {
                self.stats.manifest_write_failures += 1;
                // The write may have landed anyway; the next version supersedes it either way.
                // Deletes that did not run are retried after the next confirmed write.
                self.orphans = done.unrun_deletes;
                Err(e)
            }
        }
    }

    /// Why `s` may be deleted locally, or `None` if it must stay: its offsets are listed by the
    /// confirmed manifest, or below the remote retention horizon. Uploads that are confirmed but
    /// not yet listed do not count.
    pub fn is_safe_to_delete(&self, s: &LocalSegment) -> Option<DeletionReason> {
        if s.next_offset <= self.manifest.horizon_offset {
            return Some(DeletionReason::PastRemoteRetention);
        }
        let entries = &self.manifest.entries;
        let mut pos = s.base_offset;
        let mut i = self.manifest.entry_at_or_after(pos)?;
        while pos < s.next_offset {
            let e = entries.get(i)?;
            if e.base_offset > pos {
                return None;
            }
            pos = e.next_offset;
            i += 1;
        }
        Some(DeletionReason::Tiered)
    }

    /// The oldest local segments that are safe to delete *and* that the local retention policy
    /// wants gone (or that are past remote retention), as tokens for
    /// [`crate::PartitionLog::release_tiered`].
    pub fn local_deletions(&self, local: &[LocalSegment], now_ms: i64) -> Vec<LocalDeletion> {
        let mut remaining: u64 = local.iter().map(|s| s.data_bytes).sum();
        let mut out = Vec::new();
        for s in local {
            let reason = match self.is_safe_to_delete(s) {
                Some(DeletionReason::PastRemoteRetention) => DeletionReason::PastRemoteRetention,
                Some(DeletionReason::Tiered)
                    if self.config.policy.wants_local_deleted(s, remaining, now_ms) =>
                {
                    DeletionReason::Tiered
                }
                _ => break,
            };
            out.push(LocalDeletion {
                seq: s.seq,
                base_offset: s.base_offset,
                next_offset: s.next_offset,
                reason,
            });
            remaining -= s.data_bytes;
        }
        out
    }

    /// One blocking pass: start the uploads the policy wants (in parallel, bounded), take them
    /// back, then write the manifest if anything changed.
    pub fn run_pass(&mut self, local: &[LocalSegment], now_ms: i64) -> PassReport {
        let mut report = PassReport::default();
        let jobs = self.upload_jobs(local, now_ms);
        let dones: Vec<UploadDone> = std::thread::scope(|s| {
            let handles: Vec<_> = jobs.into_iter().map(|j| s.spawn(move || j.run())).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for d in dones {
            let base = d.base_offset;
            match self.complete_upload(d) {
                Ok(()) => report.uploaded.push(base),
                Err(e) => report.errors.push(e),
            }
        }
        if let Some(job) = self.manifest_job(now_ms) {
            match self.complete_manifest(job.run()) {
                Ok(()) => report.manifest_written = true,
                Err(e) => report.errors.push(e),
            }
        }
        report
    }
}
