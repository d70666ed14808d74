//! The cold tier through a fault-injecting proxy in front of a real S3-compatible server (moto):
//! 5xx answers, answers delayed past the client timeout, requests cut mid-upload (torn multipart
//! uploads included), answers cut after the store applied the request, restarts mid-upload and
//! log reopens. Checked every round: a local segment is released only when the manifest *in the
//! store* lists its offsets and their objects exist; at the end, with faults off, every acked
//! batch reads back byte-identical and gap-free across the local/remote boundary.

mod cold_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cold_support::proxy::FaultProxy;
use cold_support::{append, bucket_name, flush, local_batches, log_config, moto, open_log};
use storage::cold::reconcile::load_manifest;
use storage::cold::{
    ChunkCache, LocalSegment, ObjectStore, PartitionTier, RemoteReader, S3Store, TierConfig,
    TierPolicy,
};
use storage::PartitionLog;

const NOW_MS: i64 = 1_000_000;
const ROUNDS: u64 = 100;
const PREFIX: &str = "t/faults/0";
const SEGMENT_BYTES: u64 = 8 * 1024;

fn open_tier(
    store: &Arc<dyn ObjectStore>,
    config: &TierConfig,
    local: &[LocalSegment],
) -> PartitionTier {
    for _ in 0..200 {
        match PartitionTier::open(Arc::clone(store), config.clone(), local, NOW_MS) {
            Ok((tier, report)) => {
                assert!(
                    report.unknown_keys.is_empty(),
                    "only Sprawl writes here: {:?}",
                    report.unknown_keys
                );
                return tier;
            }
            Err(e) => assert!(e.is_transient(), "open failed for good: {e}"),
        }
    }
    panic!("tier did not open in 200 attempts");
}

/// Every batch from offset 0 as a consumer sees it: remote below the log start, local above.
/// Remote reads are retried on transient errors (faults may be on).
fn read_all(log: &PartitionLog, reader: &RemoteReader) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut attempts = 0;
    while at < log.end_offset() {
        let r = if at < log.start_offset() {
            match reader.read(at, 16 * 1024) {
                Ok(r) => r,
                Err(e) => {
                    assert!(e.is_transient(), "remote read at {at}: {e}");
                    attempts += 1;
                    assert!(attempts < 500, "remote read at {at} keeps failing: {e}");
                    continue;
                }
            }
        } else {
            log.read(at, 16 * 1024).expect("local read")
        };
        let first = r
            .batches
            .first()
            .expect("a read below the end returns a batch");
        assert!(
            first.base_offset() <= at && at <= first.last_offset(),
            "gap at {at}"
        );
        out.extend(
            r.batches
                .iter()
                .map(|b| (b.base_offset(), b.bytes().to_vec())),
        );
        at = r.next_offset;
    }
    out
}

/// A release token is honest only if the manifest actually stored in the bucket lists every
/// offset of the segment and each listed object exists.
fn assert_listed_in_store(direct: &dyn ObjectStore, base: u64, next: u64) {
    let stored = load_manifest(direct, PREFIX).expect("load manifest directly");
    let mut pos = base;
    for e in &stored.entries {
        if e.next_offset <= pos || e.base_offset > pos {
            continue;
        }
        let head = direct.head(&e.object_key(PREFIX)).expect("head");
        assert_eq!(
            head.map(|h| h.size_bytes),
            Some(e.object_bytes),
            "object of {e:?}"
        );
        pos = e.next_offset;
        if pos >= next {
            return;
        }
    }
    panic!("released [{base}, {next}) but the stored manifest covers only up to {pos}");
}

#[test]
fn fault_rounds_lose_nothing_and_never_release_unconfirmed_segments() {
    let Some(m) = moto() else { return };
    let started = Instant::now();
    let bucket = bucket_name("faults");
    let direct = m.bucket(&bucket);
    let proxy = FaultProxy::start(
        ([127, 0, 0, 1], m.port).into(),
        0x5eed_c01d,
        Duration::from_millis(400),
    );
    let mut s3 = m.config(&bucket);
    s3.endpoint = proxy.endpoint();
    s3.request_timeout_ms = 250;
    let faulty: Arc<dyn ObjectStore> = Arc::new(S3Store::new(s3).unwrap());
    let config = TierConfig {
        policy: TierPolicy {
            tier_after_ms: Some(0),
            local_retention_bytes: Some(2 * SEGMENT_BYTES),
            ..TierPolicy::default()
        },
        chunk_raw_bytes: 4096,
        multipart_threshold_bytes: 6 * 1024,
        multipart_part_bytes: 4096,
        uploads_in_flight_max: 3,
        ..TierConfig::new(PREFIX)
    };

    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), log_config(SEGMENT_BYTES));
    let cache = Arc::new(ChunkCache::new(256 * 1024));
    proxy.set_fault_percent(25);
    let mut tier = open_tier(&faulty, &config, &log.tierable_segments());
    let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let (mut released_total, mut restarts) = (0usize, 0u32);

    for round in 0..ROUNDS {
        // Acked writes: appended and flushed (fdatasync'd) before they count.
        for i in 0..3 {
            append(
                &mut log,
                1 + (round as usize + i) % 3,
                150 + (round as usize * 53) % 700,
                round as i64,
            );
        }
        flush(&mut log);
        let from = model
            .keys()
            .next_back()
            .map_or(log.start_offset(), |b| b + 1);
        for (base, bytes) in local_batches(&log, from) {
            model.entry(base).or_insert(bytes);
        }

        let local = log.tierable_segments();
        let _pass = tier.run_pass(&local, NOW_MS);
        let deletions = tier.local_deletions(&local, NOW_MS);
        for d in &deletions {
            assert_listed_in_store(&*direct, d.base_offset(), d.next_offset());
        }
        if let Some(job) = log.release_tiered(&deletions) {
            released_total += job.run().unwrap().len();
        }

        if round % 10 == 9 {
            // Killed mid-upload: some jobs ran, their completions never came back.
            let local = log.tierable_segments();
            let jobs = tier.upload_jobs(&local, NOW_MS);
            for job in jobs.into_iter().take(1) {
                let _ = job.run();
            }
            drop(tier);
            restarts += 1;
            if round % 20 == 19 {
                log.close().unwrap();
                log = open_log(dir.path(), log_config(SEGMENT_BYTES));
            }
            tier = open_tier(&faulty, &config, &log.tierable_segments());
        }
        if round % 50 == 49 {
            let reader = tier.reader(Arc::clone(&cache));
            let got = read_all(&log, &reader);
            assert_eq!(got.len(), model.len(), "round {round}");
            assert!(
                got.into_iter().eq(model.clone()),
                "round {round}: bytes differ"
            );
        }
    }
    let injected = proxy.counts.injected();

    // Heal: faults off, the tier catches up, a final restart reconciles, nothing is lost.
    proxy.set_fault_percent(0);
    for _ in 0..20 {
        let local = log.tierable_segments();
        let pass = tier.run_pass(&local, NOW_MS);
        assert!(pass.errors.is_empty(), "{:?}", pass.errors);
        if let Some(job) = log.release_tiered(&tier.local_deletions(&local, NOW_MS)) {
            released_total += job.run().unwrap().len();
        }
        if pass.uploaded.is_empty() && !pass.manifest_written {
            break;
        }
    }
    let tier = open_tier(&faulty, &config, &log.tierable_segments());
    let reader = tier.reader(Arc::clone(&cache));
    let got = read_all(&log, &reader);
    assert!(
        got.into_iter().eq(model.clone()),
        "after recovery: lost or changed batches"
    );
    let entries = &tier.manifest().entries;
    assert!(
        entries
            .windows(2)
            .all(|w| w[0].next_offset == w[1].base_offset),
        "remote log has a gap or overlap"
    );
    assert_eq!(tier.manifest().start_offset(), 0);
    assert!(
        tier.manifest().end_offset() >= log.start_offset(),
        "gap between remote and local"
    );
    let objects = direct.list(&format!("{PREFIX}/segments/"), 10_000).unwrap();
    assert_eq!(
        objects.len(),
        entries.len(),
        "exactly one object per listed segment"
    );

    let c = &proxy.counts;
    eprintln!(
        "cold faults: {ROUNDS} rounds, {injected} faults injected over {} connections \
         (503 {}, delays {}, cut requests {}, cut answers {}), {restarts} restarts, \
         {released_total} local segments released, {} batches checked, {:.1} s",
        c.connections.load(std::sync::atomic::Ordering::Relaxed),
        c.status_503.load(std::sync::atomic::Ordering::Relaxed),
        c.delays.load(std::sync::atomic::Ordering::Relaxed),
        c.cut_requests.load(std::sync::atomic::Ordering::Relaxed),
        c.cut_responses.load(std::sync::atomic::Ordering::Relaxed),
        model.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(injected >= ROUNDS, "only {injected} faults injected");
    assert!(released_total > 0, "the test must exercise local release");
    assert!(log.start_offset() > 0);
}
