//! Ordering rules of the tier with an in-process store that fails on command: a failed upload
//! or manifest write never makes anything deletable, and a failed lower upload keeps the ones
//! above it out of the manifest until it is retried.

use std::sync::{Arc, Mutex};

use crate::cold::error::StoreError;
use crate::cold::store::{ObjectMeta, ObjectStore, UploadedPart};
use crate::cold::{LocalSegment, MemoryStore, PartitionTier, TierConfig, TierPolicy};
use crate::{LogConfig, PartitionLog, Record};

/// A [`MemoryStore`] whose puts fail while their key contains `fail_put`.
struct Flaky {
    inner: MemoryStore,
    fail_put: Mutex<Option<String>>,
}

impl Flaky {
    fn check(&self, key: &str) -> Result<(), StoreError> {
        match &*self.fail_put.lock().unwrap() {
            Some(pat) if key.contains(pat.as_str()) => Err(StoreError::Http {
                endpoint: "flaky".into(),
                key: key.into(),
                op: "put",
                status: 503,
                body: String::new(),
            }),
            _ => Ok(()),
        }
    }
    fn fail(&self, pat: Option<String>) {
        *self.fail_put.lock().unwrap() = pat;
    }
}

impl ObjectStore for Flaky {
    fn put(&self, key: &str, body: &[u8]) -> Result<(), StoreError> {
        self.check(key)?;
        self.inner.put(key, body)
    }
    fn multipart_begin(&self, key: &str) -> Result<String, StoreError> {
        self.check(key)?;
        self.inner.multipart_begin(key)
    }
    fn multipart_part(
        &self,
        key: &str,
        id: &str,
        n: u32,
        body: &[u8],
    ) -> Result<UploadedPart, StoreError> {
        self.inner.multipart_part(key, id, n, body)
    }
    fn multipart_complete(
        &self,
        key: &str,
        id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), StoreError> {
        self.inner.multipart_complete(key, id, parts)
    }
    fn multipart_abort(&self, key: &str, id: &str) -> Result<(), StoreError> {
        self.inner.multipart_abort(key, id)
    }
    fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        self.inner.get_range(key, start, len)
    }
    fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.head(key)
    }
    fn list(&self, prefix: &str, limit: usize) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list(prefix, limit)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
    fn part_bytes_min(&self) -> u64 {
        1
    }
}

fn log_with_segments(dir: &std::path::Path) -> (PartitionLog, Vec<LocalSegment>) {
    let config = LogConfig {
        segment_bytes_max: 4096,
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(dir, config).unwrap();
    let rec = Record {
        key: None,
        value: &[3; 300],
        headers: &[],
        timestamp_ms: 5,
        ttl_ms: 0,
    };
    for i in 0..60 {
        log.append(&[rec], None, i).unwrap();
    }
    let done = log.begin_flush().unwrap().run().unwrap();
    log.complete_flush(done);
    let local = log.tierable_segments();
    assert!(local.len() >= 4);
    (log, local)
}

fn config() -> TierConfig {
    TierConfig {
        policy: TierPolicy {
            tier_after_ms: Some(0),
            local_retention_bytes: Some(1),
            ..TierPolicy::default()
        },
        chunk_raw_bytes: 4096,
        multipart_threshold_bytes: 4096,
        multipart_part_bytes: 1024,
        ..TierConfig::new("t/x/0")
    }
}

#[test]
fn a_failed_lower_upload_keeps_higher_ones_out_of_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, local) = log_with_segments(dir.path());
    let store = Arc::new(Flaky {
        inner: MemoryStore::new(),
        fail_put: Mutex::new(None),
    });
    let (mut tier, _) = PartitionTier::open(store.clone(), config(), &local, 100).unwrap();
    store.fail(Some(format!("segments/{:020}-", local[0].base_offset)));
    let pass = tier.run_pass(&local, 100);
    assert_eq!(pass.errors.len(), 1);
    assert_eq!(pass.uploaded.len(), 3, "the others in flight went up");
    assert!(
        tier.manifest().entries.is_empty(),
        "but are not listed above a hole"
    );
    assert!(tier.local_deletions(&local, 100).is_empty());

    store.fail(None);
    let pass = tier.run_pass(&local, 100);
    assert!(pass.errors.is_empty() && pass.manifest_written);
    let e = &tier.manifest().entries;
    assert_eq!(e.len(), local.len());
    assert!(e.windows(2).all(|w| w[0].next_offset == w[1].base_offset));
    assert_eq!(e[0].base_offset, local[0].base_offset);
    assert_eq!(tier.stats().uploads_failed, 1);
}

#[test]
fn nothing_is_deletable_until_the_manifest_write_is_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, local) = log_with_segments(dir.path());
    let store = Arc::new(Flaky {
        inner: MemoryStore::new(),
        fail_put: Mutex::new(None),
    });
    let (mut tier, _) = PartitionTier::open(store.clone(), config(), &local, 100).unwrap();
    store.fail(Some("/manifest".into()));
    for _ in 0..3 {
        let pass = tier.run_pass(&local, 100);
        assert!(!pass.manifest_written && !pass.errors.is_empty());
        assert!(tier.local_deletions(&local, 100).is_empty());
        assert!(local.iter().all(|s| tier.is_safe_to_delete(s).is_none()));
    }
    assert_eq!(
        tier.stats().uploads_ok,
        local.len() as u64,
        "uploaded once, not again"
    );
    store.fail(None);
    assert!(tier.run_pass(&local, 100).manifest_written);
    let deletions = tier.local_deletions(&local, 100);
    assert_eq!(deletions.len(), local.len());
    let start = local.last().unwrap().next_offset;
    log.release_tiered(&deletions).unwrap().run().unwrap();
    assert_eq!(log.start_offset(), start);
    // A token is matched against the log's segments: replaying it releases nothing more.
    assert!(log.release_tiered(&deletions).is_none());
}

#[test]
fn retention_never_deletes_an_object_the_manifest_still_lists() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, local) = log_with_segments(dir.path());
    let store = Arc::new(Flaky {
        inner: MemoryStore::new(),
        fail_put: Mutex::new(None),
    });
    let (mut tier, _) = PartitionTier::open(store.clone(), config(), &local, 100).unwrap();
    while tier.manifest().entries.len() < local.len() {
        assert!(tier.run_pass(&local, 100).errors.is_empty());
    }
    let keep = config().policy;
    tier.set_policy(TierPolicy {
        remote_retention_bytes: Some(1),
        ..keep
    })
    .unwrap();
    // The manifest dropping the old segments is never confirmed...
    store.fail(Some("/manifest".into()));
    assert!(!tier.run_pass(&local, 100).manifest_written);
    // ...and the retention is lifted again before the next write.
    store.fail(None);
    tier.set_policy(keep).unwrap();
    tier.run_pass(&local, 100);
    assert_eq!(tier.manifest().entries.len(), local.len());
    for e in &tier.manifest().entries {
        let key = e.object_key("t/x/0");
        assert!(
            store.head(&key).unwrap().is_some(),
            "{key} deleted while listed"
        );
    }
    assert_eq!(tier.manifest().horizon_offset, 0);
}
