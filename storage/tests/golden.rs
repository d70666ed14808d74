//! Golden files pin the on-disk format of docs/log-format.md byte for byte.
//!
//! `SPRAWL_WRITE_GOLDEN=1 cargo test -p storage --test golden` regenerates them (only do that for a
//! deliberate, versioned format change); otherwise the tests compare fresh output with the committed
//! bytes and read the committed files back through the real open/recovery path.

use std::path::{Path, PathBuf};

use storage::{LogConfig, PartitionLog, ProducerInfo, Record};

const FILES: [&str; 4] = [
    "00000000000000000000.seg",
    "00000000000000000000.index",
    "00000000000000000000.timeindex",
    "checkpoint",
];
const NOW_MS: i64 = 1_700_000_000_000;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

/// The fixed workload behind the golden files.
fn write_workload(dir: &Path) {
    let (mut log, _) = PartitionLog::open(dir, config()).unwrap();
    let headers: [(&[u8], &[u8]); 1] = [(b"trace", b"ab")];
    let batch1 = [
        Record {
            key: Some(b"k1"),
            value: b"hello",
            headers: &headers,
            timestamp_ms: NOW_MS - 5,
            ttl_ms: 0,
        },
        Record {
            key: None,
            value: b"",
            headers: &[],
            timestamp_ms: NOW_MS - 3,
            ttl_ms: 60_000,
        },
    ];
    log.append(&batch1, None, NOW_MS).unwrap();
    let batch2 = [Record {
        key: Some(b""),
        value: b"idem",
        headers: &[],
        timestamp_ms: NOW_MS,
        ttl_ms: 0,
    }];
    let producer = ProducerInfo {
        producer_id: 0x0102_0304_0506_0708,
        epoch: 9,
        base_sequence: 41,
    };
    log.append(&batch2, Some(producer), NOW_MS).unwrap();
    log.close().unwrap();
}

#[test]
fn fresh_output_matches_golden_bytes() {
    let dir = tempfile::tempdir().unwrap();
    write_workload(dir.path());
    if std::env::var_os("SPRAWL_WRITE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        for f in FILES {
            std::fs::copy(dir.path().join(f), golden_dir().join(f)).unwrap();
        }
    }
    for f in FILES {
        let fresh = std::fs::read(dir.path().join(f)).unwrap();
        let golden = std::fs::read(golden_dir().join(f)).unwrap();
        assert_eq!(fresh, golden, "{f} differs from its golden file");
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Field positions straight from docs/log-format.md, checked against the golden bytes without
/// going through the crate's decoder.
#[test]
fn golden_bytes_follow_the_documented_layout() {
    let seg = std::fs::read(golden_dir().join(FILES[0])).unwrap();
    assert_eq!(&seg[0..8], b"SPRLSEG1");
    assert_eq!(seg[10], 2, "sealed");
    assert_eq!(u64_at(&seg, 24), 0, "base offset");
    assert_eq!(u64_at(&seg, 48), 3, "next offset");
    assert_eq!(u64_at(&seg, 72), 2, "batch count");
    assert_eq!(u32_at(&seg, 124), crc32c::crc32c(&seg[..124]));
    assert_eq!(u64_at(&seg, 40) as usize, seg.len() - 128, "data bytes");
    // First batch at 128.
    let b1 = &seg[128..];
    let len1 = u32_at(b1, 0) as usize;
    assert_eq!(u32_at(b1, 4), crc32c::crc32c(&b1[8..len1]));
    assert_eq!(u64_at(b1, 8), 0);
    assert_eq!(u32_at(b1, 48), 2, "record count");
    assert_eq!(u64_at(b1, 40), u64::MAX, "no producer");
    assert_eq!(u64_at(b1, 32) as i64, i64::MAX, "a record never expires");
    assert_eq!((b1[62], b1[63]), (0, 1), "attributes, magic");
    // First record at 64 inside the batch: key "k1", value "hello", one header.
    let r = &b1[64..];
    assert_eq!(u32_at(r, 24), 2);
    assert_eq!(u32_at(r, 28), 5);
    assert_eq!(u32_at(r, 32), 1);
    assert_eq!(&r[36..38], b"k1");
    assert_eq!(&r[38..43], b"hello");
    assert_eq!(u32_at(r, 43), 5);
    assert_eq!(u32_at(r, 47), 2);
    assert_eq!(&r[51..58], b"traceab");
    assert_eq!(u32_at(r, 0) as usize + 4, 58);
    // Second batch: idempotent producer.
    let b2 = &seg[128 + len1..];
    assert_eq!(u64_at(b2, 8), 2);
    assert_eq!(u64_at(b2, 40), 0x0102_0304_0506_0708);
    assert_eq!(u32_at(b2, 52), 41);
    assert_eq!(u16::from_le_bytes([b2[60], b2[61]]), 9);
    // Index files: one entry each for the first batch, one for the second (interval 64 bytes).
    let idx = std::fs::read(golden_dir().join(FILES[1])).unwrap();
    assert_eq!(&idx[0..8], b"SPRLIDX1");
    assert_eq!(u32_at(&idx, 16), 2);
    assert_eq!(
        u32_at(&idx, 24),
        u32_at(&seg, 124),
        "index bound to the segment header"
    );
    assert_eq!((u32_at(&idx, 32), u32_at(&idx, 36)), (0, 128));
    assert_eq!((u32_at(&idx, 40), u32_at(&idx, 44)), (2, 128 + len1 as u32));
    let tix = std::fs::read(golden_dir().join(FILES[2])).unwrap();
    assert_eq!(&tix[0..8], b"SPRLTIX1");
    assert_eq!(u64_at(&tix, 32) as i64, NOW_MS - 3);
    let ckp = std::fs::read(golden_dir().join(FILES[3])).unwrap();
    assert_eq!(&ckp[0..8], b"SPRLCKP1");
    assert_eq!(u64_at(&ckp, 16), 3);
}

#[test]
fn golden_files_read_back() {
    let dir = tempfile::tempdir().unwrap();
    for f in FILES {
        std::fs::copy(golden_dir().join(f), dir.path().join(f)).unwrap();
    }
    let (log, report) = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!((report.segments_trusted, report.tail_cut), (1, None));
    assert_eq!((log.start_offset(), log.end_offset()), (0, 3));
    let read = log.read(0, 1 << 20).unwrap();
    assert_eq!(read.batches.len(), 2);
    assert_eq!(
        read.batches[1].producer(),
        Some((0x0102_0304_0506_0708, 9, 41))
    );
    let recs: Vec<_> = read
        .batches
        .iter()
        .flat_map(|b| b.records(0, NOW_MS).unwrap())
        .collect();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(&recs[0].value[..], b"hello");
    assert_eq!(recs[0].headers.get(0).unwrap().0, b"trace");
    assert_eq!(recs[1].key, None);
    assert_eq!(recs[1].expires_at_ms, Some(NOW_MS + 60_000));
    assert_eq!(recs[2].key.as_deref(), Some(&b""[..]));
    assert_eq!(recs[2].timestamp_ms, NOW_MS);
    assert_eq!(log.offset_for_timestamp(NOW_MS - 4).unwrap(), Some(1));
}
