//! Key compaction of compacted topics.

mod common;

use std::collections::HashMap;

use common::*;
use storage::{Compression, LogConfig, PartitionLog, ProducerInfo, Record, StorageError};

fn compacted_config() -> LogConfig {
    LogConfig {
        compacted: true,
        ..small_config()
    }
}

/// Appends `rounds` rounds of values for keys k0..k4 (one batch of 5 records per round).
fn fill(log: &mut PartitionLog, rounds: u32) {
    for round in 0..rounds {
        let values: Vec<Vec<u8>> = (0..5)
            .map(|k| format!("k{k}-r{round}-{}", "x".repeat(120)).into_bytes())
            .collect();
        let keys: Vec<Vec<u8>> = (0..5).map(|k| format!("k{k}").into_bytes()).collect();
        let recs: Vec<Record<'_>> = (0..5)
            .map(|k| Record {
                key: Some(&keys[k]),
                value: &values[k],
                headers: &[],
                timestamp_ms: i64::from(round),
                ttl_ms: 0,
            })
            .collect();
        log.append(&recs, None, 0).unwrap();
    }
}

fn run_compaction(log: &mut PartitionLog, now_ms: i64) -> storage::CompactionStats {
    let job = log.compaction_job(now_ms).expect("compaction job");
    let done = std::thread::spawn(move || job.run())
        .join()
        .unwrap()
        .unwrap();
    log.install_compaction(done).unwrap()
}

#[test]
fn keeps_latest_value_per_key_and_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted_config());
    log.append(
        &[Record {
            key: Some(b"gone"),
            value: b"old",
            headers: &[],
            timestamp_ms: 0,
            ttl_ms: 0,
        }],
        None,
        0,
    )
    .unwrap();
    fill(&mut log, 30);
    // Tombstone for "gone", a keyless record, then more rounds so older segments are sealed.
    log.append(
        &[Record {
            key: Some(b"gone"),
            value: b"",
            headers: &[],
            timestamp_ms: 99,
            ttl_ms: 0,
        }],
        None,
        0,
    )
    .unwrap();
    log.append(
        &[Record {
            key: None,
            value: b"no-key",
            headers: &[],
            timestamp_ms: 99,
            ttl_ms: 0,
        }],
        None,
        0,
    )
    .unwrap();
    fill(&mut log, 12);
    flush(&mut log);
    assert!(log.stats().segments >= 3);
    let before = read_all(&log, 0, 0);
    let end = log.end_offset();
    let stats = run_compaction(&mut log, 0);
    assert!(stats.segments_rewritten >= 1 && stats.records_removed > 0);
    assert!(stats.bytes_after < stats.bytes_before);
    assert_eq!(log.end_offset(), end);

    let check = |log: &PartitionLog| {
        let after = read_all(log, 0, 0);
        // The latest record per key (by offset) over the whole log.
        let mut latest: HashMap<Option<Vec<u8>>, u64> = HashMap::new();
        for r in &before {
            if let Some(k) = &r.key {
                latest.insert(Some(k.to_vec()), r.offset);
            }
        }
        let survivors: Vec<u64> = after.iter().map(|r| r.offset).collect();
        for r in &before {
            let latest_for_key = r
                .key
                .as_ref()
                .is_none_or(|k| latest[&Some(k.to_vec())] == r.offset);
            let present = survivors.contains(&r.offset);
            if latest_for_key {
                assert!(
                    present,
                    "offset {} (latest for its key) was removed",
                    r.offset
                );
            }
        }
        // Every survivor is byte-identical to the original record at that offset.
        for a in &after {
            let b = before.iter().find(|b| b.offset == a.offset).unwrap();
            assert_eq!(a, b);
        }
        // The tombstone and the keyless record survived.
        let gone: Vec<_> = after
            .iter()
            .filter(|r| r.key.as_deref() == Some(&b"gone"[..]))
            .collect();
        assert_eq!(gone.len(), 1);
        assert!(gone[0].value.is_empty(), "only the tombstone is left");
        assert!(after.iter().any(|r| r.key.is_none()));
        after.len()
    };
    let n = check(&log);
    assert!(n < before.len());
    // Reads by offset still land on the batch holding (or spanning) a removed offset.
    let r = log.read(2, 1).unwrap();
    assert_eq!(r.batches[0].base_offset(), 1);
    assert!(r.batches[0].is_compacted());
    // Nothing new was sealed: no second pass.
    assert!(log.compaction_job(0).is_none());
    log.close().unwrap();
    let (log, report) = PartitionLog::open(dir.path(), compacted_config()).unwrap();
    assert_eq!(
        report.indexes_rebuilt, 0,
        "compacted segments come with their index files"
    );
    assert_eq!(check(&log), n);
    assert_eq!(log.end_offset(), end);
}

#[test]
fn idempotent_state_and_zstd_survive_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compression: Compression::Zstd { level: 3 },
        segment_ms_max: Some(10),
        ..compacted_config()
    };
    let mut log = open(dir.path(), cfg.clone());
    let v = vec![b'v'; 3000];
    let p = |seq| {
        Some(ProducerInfo {
            producer_id: 5,
            epoch: 0,
            base_sequence: seq,
        })
    };
    for i in 0..40u32 {
        let key = format!("key{}", i % 3).into_bytes();
        let recs = [Record {
            key: Some(&key),
            value: &v,
            headers: &[],
            timestamp_ms: 0,
            ttl_ms: 0,
        }];
        // Age-based rolls: the values compress so well that size alone would not roll.
        log.append(&recs, p(i), i64::from(i)).unwrap();
    }
    let filler: Vec<u8> = (0..7000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    log.append(
        &[Record {
            key: None,
            value: &filler,
            headers: &[],
            timestamp_ms: 0,
            ttl_ms: 0,
        }],
        None,
        100,
    )
    .unwrap();
    flush(&mut log);
    let stats = run_compaction(&mut log, 0);
    assert!(stats.records_removed > 0, "{stats:?}");
    drop(log);
    let mut log = open(dir.path(), cfg);
    let rec = [Record {
        key: Some(b"key0"),
        value: &v,
        headers: &[],
        timestamp_ms: 0,
        ttl_ms: 0,
    }];
    // The last batches' producer state is intact: a retry of sequence 39 is still a duplicate.
    assert!(matches!(
        log.append(&rec, p(39), 0).unwrap(),
        storage::AppendOutcome::Duplicate { .. }
    ));
    assert!(matches!(
        log.append(&rec, p(41), 0),
        Err(StorageError::OutOfOrderSequence { expected: 40, .. })
    ));
    let values: Vec<usize> = read_all(&log, 0, 0)
        .iter()
        .filter(|r| r.key.is_some())
        .map(|r| r.value.len())
        .collect();
    assert!(values.iter().all(|&n| n == 3000));
}

#[test]
fn leftovers_of_an_interrupted_pass_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted_config());
    fill(&mut log, 40);
    flush(&mut log);
    let before = raw_batches(&log, 0);
    let job = log.compaction_job(0).unwrap();
    // The job runs (writing temporary files) but the process dies before the install.
    drop(job.run().unwrap());
    drop(log);
    let leftovers = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".compacting")
            })
            .count()
    };
    assert!(leftovers() > 0);
    let log = open(dir.path(), compacted_config());
    assert_eq!(leftovers(), 0);
    assert_eq!(raw_batches(&log, 0), before);
}

#[test]
fn install_skips_segments_removed_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_bytes: Some(1),
        ..compacted_config()
    };
    let mut log = open(dir.path(), cfg);
    fill(&mut log, 40);
    flush(&mut log);
    let job = log.compaction_job(0).unwrap();
    let done = job.run().unwrap();
    assert!(!log.enforce_retention(0).unwrap().removed.is_empty());
    let start = log.start_offset();
    log.install_compaction(done).unwrap();
    assert_eq!(log.start_offset(), start);
    assert_eq!(
        read_all(&log, start, 0).first().map(|r| r.offset),
        Some(start)
    );
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".compacting")
        })
        .count();
    assert_eq!(leftovers, 0);
}

/// A crash between the renames of an install leaves a segment and index files of different
/// versions; the index is bound to its segment header, so recovery notices and rebuilds it.
#[test]
fn crash_between_install_renames_is_recovered() {
    for rename_segment_first in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compacted_config());
        fill(&mut log, 40);
        flush(&mut log);
        let original = read_all(&log, 0, 0);
        let job = log.compaction_job(0).unwrap();
        drop(job.run().unwrap());
        drop(log);
        let seg = dir.path().join(format!("{:020}.seg", 0));
        let idx = dir.path().join(format!("{:020}.index", 0));
        let tidx = dir.path().join(format!("{:020}.timeindex", 0));
        let tmp =
            |p: &std::path::Path| std::path::PathBuf::from(format!("{}.compacting", p.display()));
        if rename_segment_first {
            std::fs::rename(tmp(&seg), &seg).unwrap();
        } else {
            std::fs::rename(tmp(&idx), &idx).unwrap();
            std::fs::rename(tmp(&tidx), &tidx).unwrap();
        }
        let (log, report) = PartitionLog::open(dir.path(), compacted_config()).unwrap();
        assert!(report.indexes_rebuilt >= 1, "{report:?}");
        let got = read_all(&log, 0, 0);
        if rename_segment_first {
            assert!(
                got.len() < original.len(),
                "the compacted segment is in place"
            );
        } else {
            assert_eq!(got, original, "the original segment is still in place");
        }
        assert_eq!(log.end_offset(), original.last().unwrap().offset + 1);
    }
}

/// A replicated partition compacts only below its high watermark: a newer value of a key above
/// the bound (which a follower may still truncate) must not remove the older, committed value.
#[test]
fn compaction_below_a_bound_keeps_values_superseded_only_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted_config());
    fill(&mut log, 30);
    let bound = log.end_offset();
    fill(&mut log, 30);
    flush(&mut log);
    let before = read_all(&log, 0, 0);
    let latest_below = |records: &[storage::StoredRecord]| {
        let mut latest: HashMap<Vec<u8>, u64> = HashMap::new();
        for r in records.iter().filter(|r| r.offset < bound) {
            latest.insert(r.key.as_ref().unwrap().to_vec(), r.offset);
        }
        latest
    };
    let expected = latest_below(&before);
    assert_eq!(expected.len(), 5);
    assert!(
        log.compaction_job_below(0, 0).is_none(),
        "nothing lies below offset 0"
    );

    let job = log
        .compaction_job_below(0, bound)
        .expect("a job below the bound");
    let done = std::thread::spawn(move || job.run())
        .join()
        .unwrap()
        .unwrap();
    let stats = log.install_compaction(done).unwrap();
    assert!(stats.records_removed > 0, "{stats:?}");
    let after = read_all(&log, 0, 0);
    let kept: std::collections::HashSet<u64> = after.iter().map(|r| r.offset).collect();
    for (key, offset) in &expected {
        assert!(
            kept.contains(offset),
            "latest value of {key:?} below the bound (offset {offset}) was removed"
        );
    }
    // Above the bound nothing was touched.
    let above = |rs: &[storage::StoredRecord]| rs.iter().filter(|r| r.offset >= bound).count();
    assert_eq!(above(&after), above(&before));
}
