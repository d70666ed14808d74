//! Produce and consume across several topics, partitions and both shards, over real sockets.

mod common;

use common::{read_all, shards, Node};
use net::codec::{Acks, RecordView, TopicConfig};

fn config(partitions: u32) -> TopicConfig {
    TopicConfig {
        partitions,
        ..TopicConfig::default()
    }
}

#[test]
fn records_round_trip_in_order_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let mut c = node.client();
    let topics = ["alpha", "beta", "gamma"];
    for t in topics {
        c.create_topic(t, &config(4)).unwrap();
    }
    // Every partition of every topic gets 3 batches; values encode where they belong.
    for round in 0..3 {
        for t in topics {
            for p in 0..4 {
                let values: Vec<Vec<u8>> = (0..10)
                    .map(|i| format!("{t}/{p}/{}", round * 10 + i).into_bytes())
                    .collect();
                let views: Vec<RecordView<'_>> = values
                    .iter()
                    .map(|v| RecordView {
                        key: Some(b"k"),
                        value: v,
                        headers: vec![(b"h".as_slice(), b"v".as_slice())],
                        timestamp_ms: 0,
                        ttl_ms: 0,
                    })
                    .collect();
                let acks = if round == 1 { Acks::Leader } else { Acks::All };
                let ack = c.produce(t, p, acks, None, &views).unwrap().unwrap();
                assert_eq!(ack.base_offset, round as u64 * 10);
                assert_eq!(ack.record_count, 10);
                if acks == Acks::All {
                    assert!(ack.durable);
                }
            }
        }
    }
    let meta = c.metadata(None).unwrap();
    let used_shards: std::collections::BTreeSet<u32> = meta
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.shard))
        .collect();
    assert_eq!(
        used_shards.len(),
        shards(),
        "partitions spread over every shard"
    );
    for t in topics {
        for p in 0..4 {
            let recs = read_all(&mut c, t, p);
            assert_eq!(recs.len(), 30);
            for (i, r) in recs.iter().enumerate() {
                assert_eq!(r.offset, i as u64);
                assert_eq!(r.value, format!("{t}/{p}/{i}").into_bytes());
                assert_eq!(r.key.as_deref(), Some(b"k".as_slice()));
                assert_eq!(
                    r.headers,
                    vec![(
                        bytes::Bytes::from_static(b"h"),
                        bytes::Bytes::from_static(b"v")
                    )]
                );
                assert!(
                    r.timestamp_ms > 0,
                    "server stamps records sent without a timestamp"
                );
            }
        }
    }
    // A second connection (likely on the other shard) sees the same data.
    let mut c2 = node.client();
    assert_eq!(read_all(&mut c2, "beta", 3).len(), 30);
    let out = node.terminate();
    assert!(out.status.success(), "SIGTERM exits 0: {out:?}");
}

#[test]
fn subscriptions_push_with_credits_and_long_poll_waits() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let mut c = node.client();
    c.create_topic("events", &config(2)).unwrap();
    let mut consumer = node.client();
    // A long-poll fetch at the end waits for data produced meanwhile.
    let addr = node.addr.clone();
    let producer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut p = net::client::Client::connect(&addr, Default::default()).unwrap();
        let v = common::records(&[b"late"]);
        p.produce("events", 1, Acks::Leader, None, &v).unwrap();
    });
    let f = consumer.fetch("events", 1, 0, 1 << 20, 10_000).unwrap();
    producer.join().unwrap();
    assert_eq!(f.records.len(), 1);
    assert_eq!(f.records[0].value, &b"late"[..]);

    // Subscribe with 5 credits: exactly 5 records arrive until more credit is granted.
    let values: Vec<Vec<u8>> = (0..20).map(|i| format!("m{i}").into_bytes()).collect();
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
    c.produce("events", 0, Acks::Leader, None, &views).unwrap();
    let sub = consumer.subscribe("events", 0, 0, 5).unwrap();
    let mut got = Vec::new();
    while got.len() < 5 {
        let b = consumer
            .next_push(std::time::Duration::from_secs(10))
            .unwrap()
            .expect("push within 10 s");
        assert_eq!(b.subscription_id, sub);
        got.extend(b.records);
    }
    assert_eq!(got.len(), 5, "no more than the credits");
    assert!(consumer
        .next_push(std::time::Duration::from_millis(700))
        .unwrap()
        .is_none());
    consumer.credit(sub, 100).unwrap();
    while got.len() < 20 {
        let b = consumer
            .next_push(std::time::Duration::from_secs(10))
            .unwrap()
            .expect("push within 10 s");
        got.extend(b.records);
    }
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as u64);
        assert_eq!(r.value, format!("m{i}").into_bytes());
    }
    consumer.unsubscribe(sub).unwrap();
}

#[test]
fn offsets_commit_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let mut c = node.client();
    c.create_topic("orders", &config(3)).unwrap();
    let v = common::records(&[b"x"]);
    for p in 0..3 {
        for _ in 0..5 {
            c.produce("orders", p, Acks::All, None, &v).unwrap();
        }
    }
    assert_eq!(c.fetch_offset("g1", "orders", 2).unwrap(), None);
    c.commit_offset("g1", "orders", 2, 4).unwrap();
    c.commit_offset("g1", "orders", 2, 5).unwrap();
    c.commit_offset("g2", "orders", 0, 1).unwrap();
    let err = c
        .commit_offset("g1", "orders", 2, 99)
        .unwrap_err()
        .to_string();
    assert!(err.contains("OFFSET_OUT_OF_RANGE"), "{err}");
    drop(c);
    let node = node.restart_after_kill();
    let mut c = node.client();
    assert_eq!(c.fetch_offset("g1", "orders", 2).unwrap(), Some(5));
    assert_eq!(c.fetch_offset("g2", "orders", 0).unwrap(), Some(1));
}

#[test]
fn ttl_expired_records_are_never_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let mut c = node.client();
    c.create_topic("ephemeral", &config(1)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let rec = |value: &'static [u8], ttl_ms: u32, ts: i64| RecordView {
        key: None,
        value,
        headers: vec![],
        timestamp_ms: ts,
        ttl_ms,
    };
    // TTL counts from the moment the node appends the record (immune to client clock skew).
    c.produce("ephemeral", 0, Acks::All, None, &[rec(b"old", 1, now)])
        .unwrap();
    c.produce(
        "ephemeral",
        0,
        Acks::All,
        None,
        &[rec(b"fresh", 3_600_000, now)],
    )
    .unwrap();
    // Wait (on the clock, not a sleep) until the 1 ms TTL has certainly run out.
    let appended_by = std::time::SystemTime::now();
    while appended_by.elapsed().unwrap() < std::time::Duration::from_millis(3) {
        std::hint::spin_loop();
    }
    let f = c.fetch("ephemeral", 0, 0, 1 << 20, 0).unwrap();
    let values: Vec<&[u8]> = f.records.iter().map(|r| &r.value[..]).collect();
    assert_eq!(values, vec![b"fresh".as_slice()]);
    assert_eq!(f.records[0].offset, 1);
}

/// A fetch returns about `max_bytes` of records (each counted as key + value + 32 bytes), at
/// least one, in order, whether the records were stored as one batch or one batch each (then
/// the log's read, which counts stored batch bytes, may stop first).
#[test]
fn a_fetch_stops_at_its_byte_budget_but_returns_at_least_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let mut c = node.client();
    c.create_topic("budget", &config(2)).unwrap();
    let values: Vec<Vec<u8>> = (0..10).map(|i| vec![b'a' + i as u8; 100]).collect();
    // Partition 0: one batch of ten records; partition 1: ten batches of one.
    let all: Vec<&[u8]> = values.iter().map(|v| &v[..]).collect();
    c.produce("budget", 0, Acks::Leader, None, &common::records(&all))
        .unwrap();
    for v in &values {
        c.produce("budget", 1, Acks::Leader, None, &common::records(&[v]))
            .unwrap();
    }
    for p in 0..2 {
        // 132 bytes a record: 300 bytes hold two, 1 byte still gets one.
        for (max_bytes, want) in [(300, 2), (1, 1), (1 << 20, 10)] {
            for from in [0u64, 4] {
                let f = c.fetch("budget", p, from, max_bytes, 0).unwrap();
                let got: Vec<(u64, &[u8])> =
                    f.records.iter().map(|r| (r.offset, &r.value[..])).collect();
                let expected: Vec<(u64, &[u8])> = (from..10)
                    .take(want)
                    .map(|o| (o, &values[o as usize][..]))
                    .collect();
                let case = format!("partition {p}, max_bytes {max_bytes}, from {from}");
                assert!(!got.is_empty() && got.len() <= expected.len(), "{case}");
                assert_eq!(got, expected[..got.len()], "{case}");
                if p == 0 || max_bytes == 1 << 20 {
                    assert_eq!(got.len(), expected.len(), "{case}");
                }
            }
        }
    }
}
