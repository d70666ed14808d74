//! The cold tier end to end against a real S3-compatible server (moto on loopback): segments
//! written by the real `PartitionLog`, tiered, read back byte-identical, local copies released
//! only after confirmation, reads gap-free across the local/remote boundary, restart and
//! reconcile, remote retention.

mod cold_support;

use std::sync::Arc;

use cold_support::{append, bucket_name, flush, local_batches, log_config, moto, open_log};
use storage::cold::{
    ChunkCache, ColdError, DeletionReason, ObjectStore, PartitionTier, RemoteReader, TierConfig,
    TierPolicy,
};
use storage::{Compression, LogConfig, PartitionLog};

const NOW_MS: i64 = 1_000_000;

fn tier_config(prefix: &str, policy: TierPolicy) -> TierConfig {
    TierConfig {
        policy,
        chunk_raw_bytes: 4096,
        multipart_threshold_bytes: 12 * 1024,
        multipart_part_bytes: 4096,
        ..TierConfig::new(prefix)
    }
}

/// Everything sealed goes remote; local copies go as soon as they are confirmed.
fn tier_everything() -> TierPolicy {
    TierPolicy {
        tier_after_ms: Some(0),
        local_retention_bytes: Some(1),
        ..TierPolicy::default()
    }
}

/// A log of ~`segments` sealed segments with mixed batch sizes and some zstd batches.
fn fill(dir: &std::path::Path, batches: u64) -> PartitionLog {
    let mut log = open_log(dir, log_config(16 * 1024));
    for i in 0..batches {
        if i == batches / 2 {
            log.close().unwrap();
            let config = LogConfig {
                compression: Compression::Zstd { level: 3 },
                ..log_config(16 * 1024)
            };
            log = open_log(dir, config);
        }
        append(
            &mut log,
            1 + (i % 4) as usize,
            100 + (i as usize * 37) % 900,
            i as i64,
        );
    }
    flush(&mut log);
    log
}

/// Reads every offset from `from` to the end, remote below the local start, local above, and
/// returns each batch's raw bytes: the consumer's view.
fn read_through(log: &PartitionLog, reader: &RemoteReader, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < log.end_offset() {
        let r = if at < log.start_offset() {
            reader.read(at, 8192).expect("remote read")
        } else {
            log.read(at, 8192).expect("local read")
        };
        assert!(!r.batches.is_empty(), "nothing at {at}");
        let first = &r.batches[0];
        assert!(
            first.base_offset() <= at && at <= first.last_offset(),
            "gap at {at}"
        );
        for b in &r.batches {
            out.push((b.base_offset(), b.bytes().to_vec()));
        }
        assert!(r.next_offset > at);
        at = r.next_offset;
    }
    out
}

#[test]
fn tiered_segments_read_back_byte_identical_and_gap_free_across_the_boundary() {
    let Some(m) = moto() else { return };
    let store = m.bucket(&bucket_name("roundtrip"));
    let dir = tempfile::tempdir().unwrap();
    let mut log = fill(dir.path(), 160);
    let before = local_batches(&log, 0);
    let local = log.tierable_segments();
    assert!(
        local.len() >= 5,
        "want several sealed segments, got {}",
        local.len()
    );

    let (mut tier, report) = PartitionTier::open(
        store.clone(),
        tier_config("t/rt/0", tier_everything()),
        &local,
        NOW_MS,
    )
    .unwrap();
    assert_eq!((report.manifest_version, report.manifest_entries), (0, 0));
    // Nothing is safe to delete before an upload and its manifest are confirmed.
    assert!(tier.local_deletions(&local, NOW_MS).is_empty());

    // Job API: uploads confirmed but not yet listed still do not make anything deletable.
    let jobs = tier.upload_jobs(&local, NOW_MS);
    assert_eq!(jobs.len(), 4, "bounded by uploads_in_flight_max");
    assert!(tier.upload_jobs(&local, NOW_MS).is_empty(), "no room left");
    let dones: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = jobs.into_iter().map(|j| s.spawn(move || j.run())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for d in dones {
        tier.complete_upload(d).unwrap();
    }
    assert!(tier.local_deletions(&local, NOW_MS).is_empty());
    assert!(local.iter().all(|s| tier.is_safe_to_delete(s).is_none()));
    let job = tier.manifest_job(NOW_MS).unwrap();
    tier.complete_manifest(job.run()).unwrap();
    assert_eq!(tier.local_deletions(&local, NOW_MS).len(), 4);

    // The rest through the blocking pass.
    while tier.manifest().end_offset() < local.last().unwrap().next_offset {
        let pass = tier.run_pass(&local, NOW_MS);
        assert!(pass.errors.is_empty(), "{:?}", pass.errors);
    }
    assert!(
        tier.manifest()
            .entries
            .iter()
            .any(|e| e.object_bytes >= 12 * 1024),
        "some objects went up as multipart uploads"
    );
    let stats = tier.stats();
    assert_eq!(stats.remote_segments, local.len() as u64);
    assert_eq!(stats.remote_start_offset, 0);
    assert!(stats.remote_object_bytes > 0 && stats.uploads_ok == local.len() as u64);

    // Remote batches are the local ones, byte for byte, from every starting offset.
    let cache = Arc::new(ChunkCache::new(64 * 1024));
    let reader = tier.reader(Arc::clone(&cache));
    let remote_end = tier.manifest().end_offset();
    let expect: Vec<_> = before
        .iter()
        .filter(|(b, _)| *b < remote_end)
        .cloned()
        .collect();
    let mut got = Vec::new();
    let mut at = 0;
    while at < remote_end {
        let r = reader.read(at, 5000).unwrap();
        got.extend(
            r.batches
                .iter()
                .map(|b| (b.base_offset(), b.bytes().to_vec())),
        );
        at = r.next_offset;
    }
    assert_eq!(got, expect);
    for (i, (base, bytes)) in before.iter().enumerate().take(expect.len()).step_by(7) {
        let r = reader.read(*base, 1).unwrap();
        assert_eq!(r.batches.len(), 1);
        assert_eq!(r.batches[0].bytes().to_vec(), *bytes, "batch {i}");
        assert!(r.batches[0].verify());
        let last = r.batches[0].last_offset();
        let r = reader.read(last, 1).unwrap();
        assert_eq!(
            r.batches[0].base_offset(),
            *base,
            "a mid-batch offset returns its batch"
        );
    }
    assert!(cache.hits() > 0 && cache.bytes() <= 64 * 1024);

    // Release the confirmed local copies: reads cross the boundary without a gap.
    let deletions = tier.local_deletions(&local, NOW_MS);
    assert_eq!(deletions.len(), local.len());
    assert!(deletions
        .iter()
        .all(|d| d.reason() == DeletionReason::Tiered));
    let job = log
        .release_tiered(&deletions)
        .expect("something to release");
    let released = job.run().unwrap();
    assert_eq!(
        released.len(),
        local.len(),
        "the active segment stays, every sealed one goes"
    );
    assert!(log.start_offset() > 0);
    assert!(!local[0].path.exists());
    assert_eq!(read_through(&log, &reader, 0), before);

    // And after a restart of the log, which now starts at the first kept segment.
    let start = log.start_offset();
    log.close().unwrap();
    let log = open_log(dir.path(), log_config(16 * 1024));
    assert_eq!(log.start_offset(), start);
    assert_eq!(read_through(&log, &reader, 0), before);
    assert!(matches!(
        reader.read(remote_end + 1, 100),
        Err(ColdError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn restart_mid_upload_reconciles_without_loss_or_duplicates() {
    let Some(m) = moto() else { return };
    let store = m.bucket(&bucket_name("restart"));
    let dir = tempfile::tempdir().unwrap();
    let log = fill(dir.path(), 120);
    let before = local_batches(&log, 0);
    let local = log.tierable_segments();
    let config = tier_config("t/restart/0", tier_everything());

    let (mut tier, _) = PartitionTier::open(store.clone(), config.clone(), &local, NOW_MS).unwrap();
    let pass = tier.run_pass(&local[..2], NOW_MS);
    assert!(pass.errors.is_empty() && pass.manifest_written);
    // "Killed mid-upload": segments 2 and 3 uploaded, 4 half way through a multipart upload,
    // none of them in a manifest; an object of an older version of segment 3 is also there.
    let jobs = tier.upload_jobs(&local, NOW_MS);
    assert!(jobs.len() >= 2);
    let mut jobs = jobs.into_iter();
    let (j2, j3) = (jobs.next().unwrap(), jobs.next().unwrap());
    assert!(j2.run().result().is_ok() && j3.run().result().is_ok());
    let torn = format!(
        "t/restart/0/segments/{:020}-{:020}-00000000.sgz",
        local[4].base_offset, local[4].next_offset
    );
    let id = store.multipart_begin(&torn).unwrap();
    store.multipart_part(&torn, &id, 1, &[1; 4096]).unwrap();
    let stale = format!(
        "t/restart/0/segments/{:020}-{:020}-0badc0de.sgz",
        local[3].base_offset, local[3].next_offset
    );
    store.put(&stale, b"an older version of segment 3").unwrap();
    store
        .put("t/restart/0/segments/notes.txt", b"not ours")
        .unwrap();
    drop(tier);

    let (mut tier, report) =
        PartitionTier::open(store.clone(), config.clone(), &local, NOW_MS).unwrap();
    assert_eq!(report.manifest_entries, 2);
    assert_eq!(
        report.re_recorded,
        [
            (local[2].base_offset, local[2].next_offset),
            (local[3].base_offset, local[3].next_offset)
        ]
    );
    assert_eq!(report.deleted, [stale]);
    assert_eq!(report.unknown_keys, ["t/restart/0/segments/notes.txt"]);
    assert_eq!(
        store.head(&torn).unwrap(),
        None,
        "a torn multipart upload is no object"
    );
    // Re-recorded uploads are not deletable before the manifest lists them.
    assert!(tier.is_safe_to_delete(&local[2]).is_none());
    while tier.manifest().end_offset() < local.last().unwrap().next_offset {
        let pass = tier.run_pass(&local, NOW_MS);
        assert!(pass.errors.is_empty(), "{:?}", pass.errors);
    }
    assert_eq!(
        tier.stats().uploads_ok,
        (local.len() - 4) as u64,
        "2 and 3 were not re-uploaded"
    );
    let entries = &tier.manifest().entries;
    assert_eq!(entries.len(), local.len(), "each segment listed once");
    assert!(entries
        .windows(2)
        .all(|w| w[0].next_offset == w[1].base_offset));
    let objects = store.list("t/restart/0/segments/", 1000).unwrap();
    assert_eq!(
        objects.len(),
        local.len() + 1,
        "one object per segment plus notes.txt"
    );
    store.multipart_abort(&torn, &id).unwrap();

    // A third open finds nothing to fix, and the remote log is the local one.
    let (tier, report) = PartitionTier::open(store.clone(), config, &local, NOW_MS).unwrap();
    assert!(report.re_recorded.is_empty() && report.deleted.is_empty());
    let reader = tier.reader(Arc::new(ChunkCache::new(1 << 20)));
    let mut got = Vec::new();
    let mut at = 0;
    while at < tier.manifest().end_offset() {
        let r = reader.read(at, 1 << 20).unwrap();
        got.extend(
            r.batches
                .iter()
                .map(|b| (b.base_offset(), b.bytes().to_vec())),
        );
        at = r.next_offset;
    }
    let end = tier.manifest().end_offset();
    assert_eq!(
        got,
        before
            .into_iter()
            .filter(|(b, _)| *b < end)
            .collect::<Vec<_>>()
    );
}

#[test]
fn remote_retention_updates_the_manifest_then_deletes_objects() {
    let Some(m) = moto() else { return };
    let store = m.bucket(&bucket_name("retention"));
    let dir = tempfile::tempdir().unwrap();
    let mut log = fill(dir.path(), 120);
    let local = log.tierable_segments();
    let keep_bytes: u64 = local.iter().rev().take(2).map(|s| s.data_bytes).sum();
    let policy = TierPolicy {
        tier_after_ms: Some(0),
        remote_retention_bytes: Some(keep_bytes),
        ..TierPolicy::default()
    };
    let config = tier_config("t/ret/0", policy);
    let (mut tier, _) = PartitionTier::open(store.clone(), config.clone(), &local, NOW_MS).unwrap();
    while tier.stats().uploads_ok < local.len() as u64 {
        let pass = tier.run_pass(&local, NOW_MS);
        assert!(pass.errors.is_empty(), "{:?}", pass.errors);
    }
    let m1 = tier.manifest().clone();
    assert_eq!(m1.entries.len(), 2, "only the newest two segments are kept");
    let horizon = local[local.len() - 2].base_offset;
    assert_eq!((m1.horizon_offset, m1.start_offset()), (horizon, horizon));
    let objects = store.list("t/ret/0/segments/", 1000).unwrap();
    assert_eq!(objects.len(), 2, "expired objects deleted: {objects:?}");
    let reader = tier.reader(Arc::new(ChunkCache::new(1 << 20)));
    assert!(
        matches!(reader.read(0, 100), Err(ColdError::OffsetOutOfRange { start, .. }) if start == horizon)
    );
    assert_eq!(
        reader.read(horizon, 1).unwrap().batches[0].base_offset(),
        horizon
    );

    // Local copies below the horizon are past retention everywhere; the others stay (no local
    // retention policy).
    let deletions = tier.local_deletions(&local, NOW_MS);
    assert_eq!(deletions.len(), local.len() - 2);
    assert!(deletions
        .iter()
        .all(|d| d.reason() == DeletionReason::PastRemoteRetention));
    log.release_tiered(&deletions).unwrap().run().unwrap();
    assert_eq!(log.start_offset(), horizon);

    // Idempotent: a second pass and a restart change nothing.
    let pass = tier.run_pass(&log.tierable_segments(), NOW_MS);
    assert!(pass.errors.is_empty() && !pass.manifest_written);
    let (tier2, report) =
        PartitionTier::open(store.clone(), config, &log.tierable_segments(), NOW_MS).unwrap();
    assert!(report.deleted.is_empty() && report.re_recorded.is_empty());
    assert_eq!(tier2.manifest(), tier.manifest());
}

#[test]
fn concurrent_readers_share_a_small_cache_while_uploads_run() {
    let Some(m) = moto() else { return };
    let store = m.bucket(&bucket_name("concurrent"));
    let dir = tempfile::tempdir().unwrap();
    let log = fill(dir.path(), 160);
    let before = local_batches(&log, 0);
    let local = log.tierable_segments();
    let (mut tier, _) = PartitionTier::open(
        store,
        tier_config("t/conc/0", tier_everything()),
        &local,
        NOW_MS,
    )
    .unwrap();
    let pass = tier.run_pass(&local[..3], NOW_MS);
    assert!(pass.errors.is_empty());
    let cache = Arc::new(ChunkCache::new(12 * 1024));
    let reader = tier.reader(Arc::clone(&cache));
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let reader = reader.clone();
            let before = &before;
            s.spawn(move || {
                for i in 0..40u64 {
                    let (_, end) = reader.offsets();
                    let at = (i * 13 + t * 5) % end;
                    let r = reader.read(at, 3000).unwrap();
                    for b in &r.batches {
                        let want = before
                            .iter()
                            .find(|(base, _)| *base == b.base_offset())
                            .unwrap();
                        assert_eq!(&b.bytes()[..], &want.1[..]);
                    }
                    assert!(r.batches[0].base_offset() <= at && at <= r.batches[0].last_offset());
                }
            });
        }
        // Uploads and manifest writes go on meanwhile; readers follow the manifest.
        while tier.manifest().end_offset() < local.last().unwrap().next_offset {
            let pass = tier.run_pass(&local, NOW_MS);
            assert!(pass.errors.is_empty(), "{:?}", pass.errors);
        }
    });
    assert!(cache.bytes() <= 12 * 1024);
    assert!(cache.misses() > 0);
}

#[test]
fn a_damaged_manifest_stops_open_with_a_typed_error() {
    let Some(m) = moto() else { return };
    let store = m.bucket(&bucket_name("damaged"));
    let dir = tempfile::tempdir().unwrap();
    let log = fill(dir.path(), 40);
    let local = log.tierable_segments();
    let config = tier_config("t/dmg/0", tier_everything());
    let (mut tier, _) = PartitionTier::open(store.clone(), config.clone(), &local, NOW_MS).unwrap();
    assert!(tier.run_pass(&local, NOW_MS).manifest_written);
    let mut bytes = store.get_range("t/dmg/0/manifest", 0, 64 + 64).unwrap();
    bytes[70] ^= 1;
    store.put("t/dmg/0/manifest", &bytes).unwrap();
    let e = PartitionTier::open(store, config, &local, NOW_MS).unwrap_err();
    assert!(
        matches!(e, ColdError::CorruptObject { ref key, .. } if key == "t/dmg/0/manifest"),
        "{e}"
    );
}
