//! kill -9 while producing with acks=all, restart, and check every acknowledged record.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{read_all, shards, Node};
use net::client::{Client, ClientConfig};
use net::codec::{Acks, ProducerIdent, RecordView, TopicConfig};

/// Acknowledged records: `(partition, offset) -> value`.
type Acked = Arc<Mutex<BTreeMap<(u32, u64), Vec<u8>>>>;

/// Produces distinct values with acks=all until stopped or the connection dies; records
/// `(partition, offset) -> value` for every acknowledgement.
fn produce_until_killed(
    addr: String,
    partitions: u32,
    stop: Arc<AtomicBool>,
    acked: Acked,
    thread: u32,
) {
    let Ok(mut c) = Client::connect(&addr, ClientConfig::default()) else {
        return;
    };
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let p = (n % u64::from(partitions)) as u32;
        let values: Vec<Vec<u8>> = (0..8)
            .map(|i| format!("t{thread}-b{n}-r{i}").into_bytes())
            .collect();
        let views: Vec<RecordView<'_>> = values
            .iter()
            .map(|v| RecordView {
                key: None,
                value: v,
                headers: vec![],
                timestamp_ms: 0,
                ttl_ms: 0,
            })
            .collect();
        match c.produce("durable", p, Acks::All, None, &views) {
            Ok(Some(ack)) => {
                assert!(ack.durable);
                let mut map = acked.lock().unwrap();
                for (i, v) in values.into_iter().enumerate() {
                    map.insert((p, ack.base_offset + i as u64), v);
                }
            }
            Ok(None) => unreachable!("acks=all always answers"),
            Err(_) => return,
        }
        n += 1;
    }
}

#[test]
fn acked_records_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start_in(dir.path(), shards());
    let partitions = 4;
    node.client()
        .create_topic(
            "durable",
            &TopicConfig {
                partitions,
                segment_bytes: Some(1 << 20),
                ..TopicConfig::default()
            },
        )
        .unwrap();
    let acked: Acked = Arc::new(Mutex::new(BTreeMap::new()));
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (addr, stop, acked) = (node.addr.clone(), stop.clone(), acked.clone());
                std::thread::spawn(move || {
                    produce_until_killed(addr, partitions, stop, acked, round * 10 + t)
                })
            })
            .collect();
        // Let acknowledgements accumulate, then kill mid-stream.
        let target = (round as usize + 1) * 400;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while acked.lock().unwrap().len() < target && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        node = node.restart_after_kill();
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().unwrap();
        }
    }
    let acked = acked.lock().unwrap();
    assert!(
        acked.len() >= 1200,
        "only {} records were acknowledged",
        acked.len()
    );
    let mut c = node.client();
    let mut seen = std::collections::HashSet::new();
    for p in 0..partitions {
        let recs = read_all(&mut c, "durable", p);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.offset, i as u64, "offsets are dense after recovery");
            assert!(
                seen.insert(r.value.clone()),
                "duplicate value {:?}",
                r.value
            );
        }
        for ((ap, off), v) in acked.range((p, 0)..(p + 1, 0)) {
            let r = recs
                .get(*off as usize)
                .unwrap_or_else(|| panic!("acked record {ap}/{off} lost"));
            assert_eq!(&r.value, v, "acked record {ap}/{off} has the wrong value");
        }
    }
}

#[test]
fn retried_batches_are_written_once_even_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let mut c = node.client();
    c.create_topic(
        "idem",
        &TopicConfig {
            partitions: 2,
            ..TopicConfig::default()
        },
    )
    .unwrap();
    let values: Vec<Vec<u8>> = (0..5).map(|i| vec![b'a' + i]).collect();
    let views: Vec<RecordView<'_>> = values
        .iter()
        .map(|v| RecordView {
            key: None,
            value: v,
            headers: vec![],
            timestamp_ms: 0,
            ttl_ms: 0,
        })
        .collect();
    let ident = |seq| ProducerIdent {
        producer_id: 42,
        epoch: 1,
        base_sequence: seq,
    };
    let first = c
        .produce("idem", 1, Acks::All, Some(ident(0)), &views)
        .unwrap()
        .unwrap();
    let again = c
        .produce("idem", 1, Acks::All, Some(ident(0)), &views)
        .unwrap()
        .unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(first.base_offset, again.base_offset);
    let second = c
        .produce("idem", 1, Acks::All, Some(ident(5)), &views)
        .unwrap()
        .unwrap();
    assert_eq!(second.base_offset, 5);
    // A gap in the sequence is refused, not silently accepted.
    let gap = c
        .produce("idem", 1, Acks::All, Some(ident(50)), &views)
        .unwrap_err();
    assert!(gap.to_string().contains("OUT_OF_ORDER_SEQUENCE"), "{gap}");
    drop(c);
    let node = node.restart_after_kill();
    let mut c = node.client();
    let retry = c
        .produce("idem", 1, Acks::All, Some(ident(5)), &views)
        .unwrap()
        .unwrap();
    assert!(retry.duplicate, "dedup state is rebuilt from the log");
    assert_eq!(retry.base_offset, 5);
    assert_eq!(read_all(&mut c, "idem", 1).len(), 10);
}

/// `sprawl pub` keeps publishing through a kill -9 and restart: it reconnects, resends what was
/// not acknowledged, and the server drops the copies it already had. Every line exactly once.
#[test]
fn cli_producer_retries_through_a_crash_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start_in(dir.path(), shards());
    node.client()
        .create_topic(
            "retry",
            &TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .unwrap();
    let lines = 20_000;
    let input: String = (0..lines).map(|i| format!("line-{i}\n")).collect();
    let (child, writer) = common::spawn_pub(&node.addr, "retry", input);
    // Kill once some records are in, then come back on the same port.
    let mut c = node.client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while c.describe_topic("retry").unwrap().partitions[0].end_offset < 2_000
        && std::time::Instant::now() < deadline
    {
        std::thread::yield_now();
    }
    drop(c);
    node = node.restart_same_port();
    writer.join().unwrap();
    let out = common::wait_with_timeout(child, std::time::Duration::from_secs(90));
    assert!(out.status.success(), "pub failed: {}", common::stderr(&out));
    let mut c = node.client();
    let recs = read_all(&mut c, "retry", 0);
    let values: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (0..lines).map(|i| format!("line-{i}")).collect();
    assert_eq!(values.len(), expected.len(), "no loss, no duplicates");
    assert_eq!(values, expected, "in order");
}
