//! `PartitionLog::ring_reader`: a tailing reader on another thread reads what the owner appends,
//! byte-identical to the log's own read, and follows truncation.

use storage::{LogConfig, PartitionLog, Record};

fn rec(value: &[u8]) -> Record<'_> {
    Record {
        key: None,
        value,
        headers: &[],
        timestamp_ms: 1_000,
        ttl_ms: 0,
    }
}

#[test]
fn a_reader_on_another_thread_sees_appended_batches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = LogConfig {
        segment_bytes_max: 1 << 20,
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), config).expect("open");
    let reader = log.ring_reader();
    for i in 0u8..10 {
        log.append(&[rec(&[i; 100]), rec(&[i; 50])], None, 1_000)
            .expect("append");
    }
    let own = log.read(4, 1 << 20).expect("read");
    let other = reader.clone();
    let got = std::thread::spawn(move || other.read(4, 1 << 20))
        .join()
        .expect("reader thread")
        .expect("the ring holds offset 4");
    assert_eq!(got.len(), own.batches.len());
    for (a, b) in got.iter().zip(&own.batches) {
        assert_eq!(a.bytes(), b.bytes());
    }
    let records = got[0].records(0, 1_000).expect("decode");
    assert_eq!(records[0].value.as_ref(), &[2u8; 100][..]);
    assert_eq!(
        log.stats().ring_hits,
        2,
        "the owner's and the reader's read"
    );

    log.truncate_to(6).expect("truncate");
    assert!(reader.read(6, 1 << 20).is_none(), "truncated away");
    assert_eq!(reader.read(0, 1 << 20).map(|b| b.len()), Some(3));
    log.append(&[rec(b"new")], None, 1_000).expect("append");
    let after = reader.read(6, 1 << 20).expect("the new batch");
    assert_eq!(
        after[0].records(6, 1_000).expect("decode")[0]
            .value
            .as_ref(),
        b"new"
    );
    assert_eq!(log.stats().ring_misses, 1);
}
