//! Append/read/flush/reopen behaviour of the partition log with real files.

mod common;

use common::*;
use storage::{
    AppendOutcome, Compression, LogConfig, PartitionLog, ProducerInfo, Record, RetentionReason,
    StorageError,
};

#[test]
fn round_trip_with_keys_headers_and_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let headers: [(&[u8], &[u8]); 2] = [(b"h1", b"v1"), (b"", b"")];
    let recs = [
        Record {
            key: Some(b"key"),
            value: b"value-0",
            headers: &headers,
            timestamp_ms: 5,
            ttl_ms: 0,
        },
        Record {
            key: Some(b""),
            value: b"",
            headers: &[],
            timestamp_ms: 7,
            ttl_ms: 100,
        },
        Record {
            key: None,
            value: b"v2",
            headers: &[],
            timestamp_ms: 6,
            ttl_ms: 0,
        },
    ];
    assert_eq!(
        log.append(&recs, None, 1_000).unwrap(),
        AppendOutcome::Appended {
            base_offset: 0,
            last_offset: 2
        }
    );
    let got = read_all(&log, 0, 1_000);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].key.as_deref(), Some(&b"key"[..]));
    assert_eq!(&got[0].value[..], b"value-0");
    assert_eq!(got[0].headers.len(), 2);
    assert_eq!(got[0].headers.get(0).unwrap(), (&b"h1"[..], &b"v1"[..]));
    assert_eq!(got[0].expires_at_ms, None);
    assert_eq!(got[1].key.as_deref(), Some(&b""[..]));
    assert_eq!(got[1].expires_at_ms, Some(1_100));
    assert_eq!(got[2].key, None);
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    // TTL: at 1_100 the second record is expired and never returned.
    let later = read_all(&log, 0, 1_100);
    assert_eq!(
        later.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 2]
    );
    // from_offset filters inside a batch.
    let r = log.read(2, 1 << 20).unwrap();
    assert_eq!(r.batches[0].records(2, 0).unwrap().len(), 1);
}

#[test]
fn default_ttl_applies_to_records_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        default_ttl_ms: Some(50),
        ..small_config()
    };
    let mut log = open(dir.path(), cfg);
    let recs = [
        Record {
            key: None,
            value: b"a",
            headers: &[],
            timestamp_ms: 0,
            ttl_ms: 0,
        },
        Record {
            key: None,
            value: b"b",
            headers: &[],
            timestamp_ms: 0,
            ttl_ms: 500,
        },
    ];
    log.append(&recs, None, 100).unwrap();
    let got = read_all(&log, 0, 0);
    assert_eq!(got[0].expires_at_ms, Some(150));
    assert_eq!(got[1].expires_at_ms, Some(600));
    assert_eq!(read_all(&log, 0, 150).len(), 1);
}

#[test]
fn rejects_empty_and_oversized_batches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        batch_bytes_max: 1024,
        ..small_config()
    };
    let mut log = open(dir.path(), cfg);
    assert!(matches!(
        log.append(&[], None, 0),
        Err(StorageError::EmptyBatch)
    ));
    let big = vec![0u8; 2000];
    let rec = Record {
        key: None,
        value: &big,
        headers: &[],
        timestamp_ms: 0,
        ttl_ms: 0,
    };
    match log.append(&[rec], None, 0) {
        Err(StorageError::BatchTooLarge { bytes, max }) => {
            assert_eq!((bytes, max), (64 + 36 + 2000, 1024))
        }
        other => panic!("expected BatchTooLarge, got {other:?}"),
    }
    assert_eq!(log.end_offset(), 0);
}

#[test]
fn rolls_on_size_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..100 {
        append_n(&mut log, 3, 100, i);
    }
    let stats = log.stats();
    assert!(
        stats.segments >= 5,
        "expected several segments, got {}",
        stats.segments
    );
    assert_eq!(
        stats.sync_fallbacks, stats.rolls,
        "no segment was prepared, every roll is a fallback"
    );
    let got = read_all(&log, 0, 0);
    assert_eq!(got.len(), 300);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as u64);
        assert_eq!(&r.value[..], &value(i as u64, 100)[..]);
    }
    // A read of the middle of a batch returns that whole batch first.
    let r = log.read(61, 1).unwrap();
    assert_eq!(
        (r.batches.len(), r.batches[0].base_offset(), r.next_offset),
        (1, 60, 63)
    );
}

#[test]
fn prepared_segments_avoid_sync_fallbacks() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..100 {
        if let Some(job) = log.prepare_segment_job() {
            let seg = std::thread::spawn(move || job.run())
                .join()
                .unwrap()
                .unwrap();
            log.install_prepared(seg);
        }
        append_n(&mut log, 3, 100, i);
    }
    let stats = log.stats();
    assert!(stats.rolls >= 5);
    // A segment is prepared before every roll, including the first, so none is created inline.
    assert_eq!(stats.sync_fallbacks, 0);
    assert_eq!(read_all(&log, 0, 0).len(), 300);
}

#[test]
fn rolls_on_age() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms_max: Some(1_000),
        ..small_config()
    };
    let mut log = open(dir.path(), cfg);
    append_n(&mut log, 1, 10, 0);
    append_n(&mut log, 1, 10, 999);
    assert_eq!(log.stats().segments, 1);
    append_n(&mut log, 1, 10, 1_000);
    assert_eq!(log.stats().segments, 2);
}

#[test]
fn reopen_keeps_everything_after_close_and_after_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..30 {
        append_n(&mut log, 2, 90, i);
    }
    let before = raw_batches(&log, 0);
    log.close().unwrap();
    let (mut log, report) = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(report.tail_cut, None);
    assert!(report.segments_trusted >= 1);
    assert_eq!(raw_batches(&log, 0), before);
    assert_eq!(log.durable_offset(), 60);
    // Crash without close (drop): recovery scans the active segment.
    append_n(&mut log, 2, 90, 100);
    let before = raw_batches(&log, 0);
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(report.tail_cut, None);
    assert!(report.segments_scanned >= 1);
    assert_eq!(raw_batches(&log, 0), before);
    assert_eq!(log.end_offset(), 62);
}

#[test]
fn group_commit_covers_only_what_was_appended_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    assert!(log.begin_flush().is_none(), "nothing dirty");
    append_n(&mut log, 2, 10, 0);
    let job = log.begin_flush().unwrap();
    assert_eq!(job.target_offset(), 2);
    assert!(log.begin_flush().is_none(), "one flush in flight at a time");
    // Appends continue while the flush runs on another thread.
    let handle = std::thread::spawn(move || job.run());
    append_n(&mut log, 3, 10, 0);
    let done = handle.join().unwrap().unwrap();
    assert_eq!(log.durable_offset(), 0);
    log.complete_flush(done);
    assert_eq!(log.durable_offset(), 2);
    flush(&mut log);
    assert_eq!(log.durable_offset(), 5);
    assert!(log.begin_flush().is_none());
}

#[test]
fn failed_flush_fences_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_n(&mut log, 1, 10, 0);
    let _job = log.begin_flush().unwrap();
    log.flush_failed();
    assert!(log.is_fenced());
    assert!(matches!(
        log.append(
            &[Record {
                key: None,
                value: b"x",
                headers: &[],
                timestamp_ms: 0,
                ttl_ms: 0
            }],
            None,
            0
        ),
        Err(StorageError::FlushFailed)
    ));
    assert!(log.begin_flush().is_none());
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(log.end_offset(), 1);
}

#[test]
fn idempotent_producer_dedups_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let rec = Record {
        key: None,
        value: b"v",
        headers: &[],
        timestamp_ms: 0,
        ttl_ms: 0,
    };
    let p = |seq| {
        Some(ProducerInfo {
            producer_id: 42,
            epoch: 3,
            base_sequence: seq,
        })
    };
    assert_eq!(
        log.append(&[rec, rec], p(0), 0).unwrap(),
        AppendOutcome::Appended {
            base_offset: 0,
            last_offset: 1
        }
    );
    append_n(&mut log, 1, 10, 0);
    assert_eq!(
        log.append(&[rec], p(2), 0).unwrap(),
        AppendOutcome::Appended {
            base_offset: 3,
            last_offset: 3
        }
    );
    assert_eq!(
        log.append(&[rec, rec], p(0), 0).unwrap(),
        AppendOutcome::Duplicate {
            base_offset: 0,
            last_offset: 1
        }
    );
    assert!(matches!(
        log.append(&[rec], p(5), 0),
        Err(StorageError::OutOfOrderSequence {
            expected: 3,
            got: 5,
            ..
        })
    ));
    let stale = Some(ProducerInfo {
        producer_id: 42,
        epoch: 2,
        base_sequence: 3,
    });
    assert!(matches!(
        log.append(&[rec], stale, 0),
        Err(StorageError::InvalidProducerEpoch {
            current: 3,
            got: 2,
            ..
        })
    ));
    assert_eq!(log.end_offset(), 4);
    drop(log); // crash
    let mut log = open(dir.path(), small_config());
    assert_eq!(
        log.append(&[rec], p(2), 0).unwrap(),
        AppendOutcome::Duplicate {
            base_offset: 3,
            last_offset: 3
        }
    );
    assert_eq!(
        log.append(&[rec], p(3), 0).unwrap(),
        AppendOutcome::Appended {
            base_offset: 4,
            last_offset: 4
        }
    );
    assert_eq!(log.stats().duplicates, 1);
}

#[test]
fn truncate_to_cuts_at_batch_boundaries_and_keeps_readers_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..30 {
        append_n(&mut log, 2, 100, i);
    }
    let held = log.read(40, 1 << 20).unwrap();
    let held_bytes: Vec<Vec<u8>> = held.batches.iter().map(|b| b.bytes().to_vec()).collect();
    assert!(matches!(
        log.truncate_to(41),
        Err(StorageError::NotBatchBoundary { offset: 41 })
    ));
    log.truncate_to(40).unwrap();
    assert_eq!((log.end_offset(), log.durable_offset()), (40, 40));
    assert!(matches!(
        log.read(41, 100),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Bytes handed out before the truncation still read the same.
    for (b, want) in held.batches.iter().zip(&held_bytes) {
        assert_eq!(&b.bytes()[..], &want[..]);
    }
    // New appends reuse the offsets and survive a crash; the truncated data does not come back.
    append_n(&mut log, 1, 7, 99);
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(log.end_offset(), 41);
    let got = read_all(&log, 38, 0);
    assert_eq!(
        got.iter()
            .map(|r| (r.offset, r.value.len()))
            .collect::<Vec<_>>(),
        vec![(38, 100), (39, 100), (40, 7)]
    );
}

#[test]
fn truncate_everything_keeps_the_start_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_n(&mut log, 5, 10, 0);
    log.truncate_to(0).unwrap();
    assert_eq!(log.end_offset(), 0);
    append_n(&mut log, 2, 10, 0);
    log.close().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!((log.start_offset(), log.end_offset()), (0, 2));
}

#[test]
fn offset_for_timestamp_uses_record_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..50i64 {
        let v = value(i as u64, 50);
        let recs = [
            Record {
                key: None,
                value: &v,
                headers: &[],
                timestamp_ms: i * 10,
                ttl_ms: 0,
            },
            Record {
                key: None,
                value: &v,
                headers: &[],
                timestamp_ms: i * 10 + 5,
                ttl_ms: 0,
            },
        ];
        log.append(&recs, None, 0).unwrap();
    }
    assert_eq!(log.offset_for_timestamp(-5).unwrap(), Some(0));
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some(0));
    assert_eq!(log.offset_for_timestamp(1).unwrap(), Some(1));
    assert_eq!(log.offset_for_timestamp(250).unwrap(), Some(50));
    assert_eq!(log.offset_for_timestamp(251).unwrap(), Some(51));
    assert_eq!(log.offset_for_timestamp(495).unwrap(), Some(99));
    assert_eq!(log.offset_for_timestamp(496).unwrap(), None);
    log.close().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.offset_for_timestamp(251).unwrap(), Some(51));
}

#[test]
fn retention_by_time_size_and_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: Some(1_000),
        ..small_config()
    };
    let mut log = open(dir.path(), cfg.clone());
    for i in 0..80 {
        append_n(&mut log, 2, 100, i * 100);
    }
    // Unflushed segments are never deleted.
    assert!(log.enforce_retention(1_000_000).unwrap().removed.is_empty());
    flush(&mut log);
    let report = log.enforce_retention(5_000).unwrap();
    assert!(!report.removed.is_empty());
    assert!(report
        .removed
        .iter()
        .all(|r| r.reason == RetentionReason::Time));
    assert_eq!(report.start_offset, log.start_offset());
    assert!(report.removed.last().unwrap().next_offset == log.start_offset());
    assert!(matches!(
        log.read(0, 10),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        read_all(&log, log.start_offset(), 0).len() as u64,
        160 - log.start_offset()
    );
    // Size retention on a reopened log.
    drop(log);
    let size_cfg = LogConfig {
        retention_bytes: Some(8192),
        ..small_config()
    };
    let mut log = open(dir.path(), size_cfg);
    let report = log.enforce_retention(0).unwrap();
    assert!(report
        .removed
        .iter()
        .all(|r| r.reason == RetentionReason::Size));
    assert!(log.stats().data_bytes >= 8192 - 1024 && log.stats().segments >= 2);
    let start = log.start_offset();
    drop(log);
    assert_eq!(open(dir.path(), small_config()).start_offset(), start);

    // TTL: a segment goes once its newest record expired.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let v = vec![1u8; 500];
    for _ in 0..20 {
        let r = Record {
            key: None,
            value: &v,
            headers: &[],
            timestamp_ms: 0,
            ttl_ms: 10,
        };
        log.append(&[r], None, 0).unwrap();
    }
    flush(&mut log);
    assert!(log.enforce_retention(9).unwrap().removed.is_empty());
    let report = log.enforce_retention(10).unwrap();
    assert!(
        !report.removed.is_empty()
            && report
                .removed
                .iter()
                .all(|r| r.reason == RetentionReason::Ttl)
    );
    assert_eq!(log.stats().segments, 1, "the newest segment always stays");
}

#[test]
fn zstd_batches_round_trip_and_shrink() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compression: Compression::Zstd { level: 3 },
        ..small_config()
    };
    let mut log = open(dir.path(), cfg.clone());
    let v = vec![b'a'; 2000];
    let recs: Vec<Record<'_>> = (0..3)
        .map(|i| Record {
            key: Some(b"k"),
            value: &v,
            headers: &[(b"h", b"x")],
            timestamp_ms: i,
            ttl_ms: 0,
        })
        .collect();
    log.append(&recs, None, 0).unwrap();
    let r = log.read(0, 1 << 20).unwrap();
    assert_eq!(r.batches[0].compression(), Compression::Zstd { level: 0 });
    assert!(r.batches[0].bytes().len() < 1000);
    // Incompressible data is stored plain.
    let noise: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    log.append(
        &[Record {
            key: None,
            value: &noise,
            headers: &[],
            timestamp_ms: 0,
            ttl_ms: 0,
        }],
        None,
        0,
    )
    .unwrap();
    drop(log);
    let log = open(dir.path(), cfg);
    let got = read_all(&log, 0, 0);
    assert_eq!(got.len(), 4);
    assert!(got[..3]
        .iter()
        .all(|r| r.value[..] == v[..] && r.headers.get(0).unwrap().1 == b"x"));
    assert_eq!(&got[3].value[..], &noise[..]);
}

#[test]
fn hot_ring_serves_tailing_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..10 {
        append_n(&mut log, 1, 10, i);
    }
    let r = log.read(8, 1 << 20).unwrap();
    assert_eq!(r.next_offset, 10);
    let s = log.stats();
    assert_eq!((s.ring_hits, s.ring_misses), (1, 0));
    drop(log);
    let log = open(dir.path(), small_config());
    log.read(8, 1 << 20).unwrap();
    assert_eq!(
        log.stats().ring_misses,
        1,
        "a reopened log starts with an empty ring"
    );
}

#[test]
fn sealed_segment_corruption_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..30 {
        append_n(&mut log, 2, 100, i);
    }
    log.close().unwrap();
    // Damage the first (sealed, checkpointed) segment and remove its index so it must be scanned.
    let seg = dir.path().join(format!("{:020}.seg", 0));
    std::fs::remove_file(dir.path().join(format!("{:020}.index", 0))).unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[128 + 70] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    match PartitionLog::open(dir.path(), small_config()) {
        Err(StorageError::Corrupt { path, position, .. }) => {
            assert_eq!(path, seg);
            assert_eq!(position, 128);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn damaged_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..70 {
        append_n(&mut log, 2, 100, i);
    }
    let before = raw_batches(&log, 0);
    log.close().unwrap();
    let idx = dir.path().join(format!("{:020}.timeindex", 0));
    let mut b = std::fs::read(&idx).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0xff;
    std::fs::write(&idx, b).unwrap();
    std::fs::remove_file(dir.path().join(format!("{:020}.index", 1))).unwrap();
    let (log, report) = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(report.indexes_rebuilt, 2);
    assert_eq!(raw_batches(&log, 0), before);
    drop(log);
    let (_, report) = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(
        report.indexes_rebuilt, 0,
        "rebuilt indexes were written back"
    );
}

#[test]
fn interrupted_prepare_does_not_cost_flushed_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_n(&mut log, 2, 100, 0);
    // A prepare job got seq 1 but the crash hit after the file was created, before its header.
    let job = log.prepare_segment_job().unwrap();
    let orphan = dir.path().join(format!("{:020}.seg", 1));
    std::fs::write(&orphan, vec![0u8; 8192]).unwrap();
    drop(job);
    log.prepare_failed();
    // Rolls now create segments synchronously (seq 2, 3, ...) and the data is flushed.
    for i in 0..60 {
        append_n(&mut log, 2, 100, i);
    }
    flush(&mut log);
    let before = raw_batches(&log, 0);
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(raw_batches(&log, 0), before);
    assert!(report.files_removed.contains(&orphan));
    assert!(!orphan.exists());
}

#[test]
fn missing_durable_segment_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..60 {
        append_n(&mut log, 2, 100, i);
    }
    log.close().unwrap();
    let mut segs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    std::fs::remove_file(segs.last().unwrap()).unwrap();
    match PartitionLog::open(dir.path(), small_config()) {
        Err(StorageError::Corrupt { reason, .. }) => {
            assert!(reason.contains("below the checkpoint"), "{reason}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn failed_segment_creation_is_an_error_and_leaves_the_log_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    // Something occupies the path of the next segment file, so creating it fails.
    let blocker = dir.path().join(format!("{:020}.seg", 0));
    std::fs::create_dir(&blocker).unwrap();
    let rec = Record {
        key: None,
        value: b"v",
        headers: &[],
        timestamp_ms: 0,
        ttl_ms: 0,
    };
    match log.append(&[rec], None, 0) {
        Err(StorageError::Io { op, path, .. }) => {
            assert_eq!((op, path), ("create segment", blocker.clone()))
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert_eq!((log.end_offset(), log.durable_offset()), (0, 0));
    assert!(log.begin_flush().is_none());
    std::fs::remove_dir(&blocker).unwrap();
    assert_eq!(
        log.append(&[rec], None, 0).unwrap(),
        AppendOutcome::Appended {
            base_offset: 0,
            last_offset: 0
        }
    );
    flush(&mut log);
    drop(log);
    assert_eq!(read_all(&open(dir.path(), small_config()), 0, 0).len(), 1);
}

#[test]
fn read_prefaulted_segments_work_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        prefault: storage::Prefault::Read,
        ..small_config()
    };
    let mut log = open(dir.path(), cfg.clone());
    for i in 0..60 {
        if let Some(job) = log.prepare_segment_job() {
            log.install_prepared(job.run().unwrap());
        }
        append_n(&mut log, 2, 100, i);
    }
    assert!(log.stats().rolls >= 2 && log.stats().sync_fallbacks == 0);
    flush(&mut log);
    let before = raw_batches(&log, 0);
    drop(log);
    assert_eq!(raw_batches(&open(dir.path(), cfg), 0), before);
}

/// An `.index` file written wrong but checksummed right: entry 1 points at the batch that holds
/// entry 2's offset (positions still increase, so the file loads). A read from entry 1's offset
/// must still start at that offset, not at the later batch.
#[test]
fn index_entry_pointing_past_its_offset_never_makes_read_skip() {
    use storage::format::{
        decode_offset_entries, encode_offset_entries, IndexFileHeader, SegmentHeader,
        INDEX_FILE_HEADER_BYTES, OFFSET_INDEX_MAGIC,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..70 {
        append_n(&mut log, 2, 100, i);
    }
    log.close().unwrap();
    let path = dir.path().join(format!("{:020}.index", 0));
    let file = std::fs::read(&path).unwrap();
    let header = IndexFileHeader::decode(&file, OFFSET_INDEX_MAGIC).expect("index header");
    let mut entries = decode_offset_entries(&file[INDEX_FILE_HEADER_BYTES..]);
    assert!(entries.len() >= 4, "the segment has several index entries");
    // Entry 1 takes the position between entries 2 and 3 (a batch start at or after entry 2's).
    entries[1].position = entries[2].position;
    entries[2].position = (entries[2].position + entries[3].position) / 2;
    let target = u64::from(entries[1].relative_offset);
    let mut body = Vec::new();
    encode_offset_entries(&entries, &mut body);
    let segment = std::fs::read(dir.path().join(format!("{:020}.seg", 0))).unwrap();
    let mut out = vec![0u8; INDEX_FILE_HEADER_BYTES];
    IndexFileHeader {
        entries_crc32c: crc32c::crc32c(&body),
        segment_header_crc32c: SegmentHeader::decode(&segment).unwrap().crc32c(),
        ..header
    }
    .encode(&mut out);
    out.extend_from_slice(&body);
    std::fs::write(&path, out).unwrap();

    let (log, report) = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(report.indexes_rebuilt, 0, "the index file was trusted");
    let read = log.read(target, 4096).unwrap();
    let first = read.batches.first().expect("a batch");
    assert!(
        first.base_offset() <= target && first.last_offset() >= target,
        "read from {target} returned the batch at {}",
        first.base_offset()
    );
}
