//! The cold tier: sealed segments archived to S3-compatible object storage, still readable by
//! offset.
//!
//! A sealed, checkpointed segment is read back from disk, every batch CRC-verified, cut into
//! chunks at batch boundaries, each chunk compressed as an independent zstd frame, and uploaded
//! as one object with a footer (chunk index) and trailer ([`object`]); large objects go up as
//! multipart uploads, several segments in flight. Once the store confirms the object, the
//! partition's manifest ([`manifest`]) is rewritten to list it, and only once *that* write is
//! confirmed does [`PartitionTier::local_deletions`] hand out a [`LocalDeletion`] for the local
//! copy. That ordering is the point of this module: comparable systems lost data by deleting
//! local segments whose upload or manifest was not confirmed. Remote retention works the other
//! way round: the manifest stops listing segments first, then their objects are deleted
//! (idempotently). On restart [`PartitionTier::open`] loads the manifest and reconciles the bucket
//! with it before anything else runs. [`RemoteReader`] serves offsets below the local start with
//! range GETs through a byte-bounded [`ChunkCache`], returning the same [`crate::FetchedBatch`]es
//! a local read would, byte for byte.
//!
//! What this module deliberately does not do:
//! - no async and no threads of its own: every blocking step is a `Send` job for the caller's
//!   blocking pool ([`UploadJob`], [`ManifestJob`], [`ReleaseJob`]); [`PartitionTier::run_pass`]
//!   is a convenience that runs a pass on scoped threads;
//! - no retries inside a call (rust-s3's sleeping retry loop is disabled): a failed upload or
//!   manifest write is retried by the next pass, a failed read by the caller;
//! - no bucket creation in production and no multi-writer fencing: one node (the partition's
//!   leader) owns a partition prefix at a time;
//! - no abort of multipart uploads orphaned by a crash: configure the bucket's
//!   `AbortIncompleteMultipartUpload` lifecycle rule.
//!
//! Formats are specified in `docs/cold-tier-format.md`.
//!
//! ```
//! use std::sync::Arc;
//! use storage::cold::{ChunkCache, MemoryStore, PartitionTier, TierConfig, TierPolicy};
//! use storage::{LogConfig, PartitionLog, Record};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = LogConfig { segment_bytes_max: 4096, ..LogConfig::default() };
//! let (mut log, _) = PartitionLog::open(dir.path(), config).unwrap();
//! let rec = Record { key: None, value: &[7; 200], headers: &[], timestamp_ms: 1_000, ttl_ms: 0 };
//! for i in 0..40 {
//!     log.append(&[rec], None, 1_000 + i).unwrap(); // 300-byte batches: 13 per segment
//! }
//! let done = log.begin_flush().unwrap().run().unwrap();
//! log.complete_flush(done);
//!
//! let store = Arc::new(MemoryStore::new());
//! let policy = TierPolicy { tier_after_ms: Some(0), local_retention_bytes: Some(1), ..TierPolicy::default() };
//! let tier_config = TierConfig { policy, ..TierConfig::new("topics/demo/0") };
//! let local = log.tierable_segments();
//! let (mut tier, _report) = PartitionTier::open(store, tier_config, &local, 10_000).unwrap();
//! let pass = tier.run_pass(&local, 10_000);
//! assert!(pass.errors.is_empty() && pass.manifest_written);
//!
//! // Only now are local copies deletable; the log forgets them, reads below its start go remote.
//! let deletions = tier.local_deletions(&local, 10_000);
//! log.release_tiered(&deletions).unwrap().run().unwrap();
//! let reader = tier.reader(Arc::new(ChunkCache::new(1 << 20)));
//! let remote = reader.read(0, 1 << 20).unwrap();
//! assert_eq!(remote.batches[0].base_offset(), 0);
//! assert_eq!(remote.next_offset, log.start_offset());
//! ```

pub mod error;
mod local;
pub mod manifest;
mod memory;
pub mod object;
mod policy;
mod reader;
pub mod reconcile;
mod s3;
pub mod store;
mod tier;
#[cfg(test)]
mod tier_tests;

pub use error::{ColdError, StoreError};
pub use local::{DeletionReason, LocalDeletion, LocalSegment, ReleaseJob};
pub use manifest::{Manifest, RemoteSegment};
pub use memory::MemoryStore;
pub use policy::TierPolicy;
pub use reader::{ChunkCache, RemoteReader};
pub use reconcile::ReconcileReport;
pub use s3::{S3Config, S3Store, CHECK_KEY};
pub use store::{put_multipart, ObjectMeta, ObjectStore, UploadedPart};
pub use tier::{
    ManifestDone, ManifestJob, PartitionTier, PassReport, SharedManifest, TierStats, UploadDone,
    UploadJob,
};

/// How one partition is tiered: where in the bucket, how objects are built, and the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierConfig {
    /// Key prefix of the partition, e.g. `topics/orders/3` (no leading or trailing `/`).
    pub prefix: String,
    pub policy: TierPolicy,
    /// Uncompressed bytes per chunk (a chunk closes at the first batch boundary past this): the
    /// unit of a range read and of the read cache.
    pub chunk_raw_bytes: u32,
    pub zstd_level: i32,
    /// Objects at least this big are uploaded with multipart.
    pub multipart_threshold_bytes: u64,
    /// Part size of multipart uploads (at least the store's minimum part size).
    pub multipart_part_bytes: u64,
    /// Uploads of this partition running at once. Each holds its compressed segment in memory.
    pub uploads_in_flight_max: u32,
}

/// Largest chunk target: one chunk must stay far below [`object::CHUNK_RAW_BYTES_LIMIT`].
pub const CHUNK_RAW_BYTES_MAX: u32 = 64 << 20;

impl TierConfig {
    /// Defaults: 1 MiB chunks, zstd level 3, multipart from 16 MiB in 8 MiB parts, 4 in flight,
    /// and a policy that tiers nothing until set.
    pub fn new(prefix: &str) -> TierConfig {
        TierConfig {
            prefix: prefix.to_string(),
            policy: TierPolicy::default(),
            chunk_raw_bytes: 1 << 20,
            zstd_level: 3,
            multipart_threshold_bytes: 16 << 20,
            multipart_part_bytes: 8 << 20,
            uploads_in_flight_max: 4,
        }
    }

    /// Checks every field; `part_bytes_min` is the store's minimum part size.
    pub fn validate(&self, part_bytes_min: u64) -> Result<(), ColdError> {
        let bad = |field, reason| Err(ColdError::InvalidConfig { field, reason });
        let p = &self.prefix;
        if p.is_empty()
            || p.starts_with('/')
            || p.ends_with('/')
            || p.contains("//")
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.=".contains(&b))
        {
            return bad(
                "prefix",
                "must be non-empty ASCII [A-Za-z0-9/-_.=] without leading, trailing or double /",
            );
        }
        if !(4096..=CHUNK_RAW_BYTES_MAX).contains(&self.chunk_raw_bytes) {
            return bad("chunk_raw_bytes", "must be within 4 KiB ..= 64 MiB");
        }
        if !(1..=22).contains(&self.zstd_level) {
            return bad("zstd_level", "must be within 1..=22");
        }
        if self.multipart_part_bytes < part_bytes_min.max(1) {
            return bad(
                "multipart_part_bytes",
                "must be at least the store's minimum part size",
            );
        }
        if self.multipart_part_bytes > 5 << 30 {
            return bad("multipart_part_bytes", "must be at most 5 GiB");
        }
        if self.multipart_threshold_bytes < self.multipart_part_bytes {
            return bad(
                "multipart_threshold_bytes",
                "must be at least multipart_part_bytes",
            );
        }
        if !(1..=64).contains(&self.uploads_in_flight_max) {
            return bad("uploads_in_flight_max", "must be within 1..=64");
        }
        self.policy.validate()
    }
}

// Jobs run on a blocking pool; readers are shared between threads.
const _: () = {
    const fn assert_send<T: Send + 'static>() {}
    const fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send::<UploadJob>();
    assert_send::<UploadDone>();
    assert_send::<ManifestJob>();
    assert_send::<ManifestDone>();
    assert_send::<ReleaseJob>();
    assert_send::<PartitionTier>();
    assert_send::<ColdError>();
    assert_send_sync::<RemoteReader>();
    assert_send_sync::<ChunkCache>();
    assert_send_sync::<S3Store>();
};
