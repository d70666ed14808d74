//! Moving a partition between shards while producers and a subscriber are using it: every
//! record exactly once, in order, for an idempotent, retrying producer.

mod common;

use common::{http_request, read_all, shards, Node};
use net::codec::TopicConfig;

#[test]
fn live_moves_lose_duplicate_and_reorder_nothing() {
    if shards() < 2 {
        eprintln!("skipped: moving between shards needs 2 cores, this machine has 1");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), 2);
    let mut c = node.client();
    c.create_topic(
        "mv",
        &TopicConfig {
            partitions: 1,
            ..TopicConfig::default()
        },
    )
    .unwrap();
    let lines = 30_000;
    let input: String = (0..lines).map(|i| format!("r{i}\n")).collect();
    let (child, writer) = common::spawn_pub(&node.addr, "mv", input);
    // A subscriber follows the partition across the moves.
    let addr = node.addr.clone();
    let reader = std::thread::spawn(move || {
        let mut s = net::client::Client::connect(&addr, Default::default()).unwrap();
        let id = s.subscribe("mv", 0, 0, 100_000).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while got.len() < lines && std::time::Instant::now() < deadline {
            if let Some(b) = s.next_push(std::time::Duration::from_secs(5)).unwrap() {
                assert_eq!(b.subscription_id, id);
                assert!(b.ended.is_none(), "subscription ended: {:?}", b.ended);
                got.extend(b.records.into_iter().map(|r| (r.offset, r.value)));
            }
        }
        got
    });
    let mut moves = 0;
    let mut last_shard = c.metadata(None).unwrap().topics[0].partitions[0].shard;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while moves < 6 && std::time::Instant::now() < deadline {
        let end = c.describe_topic("mv").unwrap().partitions[0].end_offset;
        if end < (moves + 1) * 3_000 {
            std::thread::yield_now();
            continue;
        }
        let to = 1 - last_shard;
        let (status, body) = http_request(
            "POST",
            &node.http,
            &format!("/admin/move?topic=mv&partition=0&shard={to}"),
        );
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["to_shard"], to);
        let meta = c.metadata(None).unwrap();
        assert_eq!(
            meta.topics[0].partitions[0].shard, to,
            "metadata follows the move"
        );
        last_shard = to;
        moves += 1;
    }
    assert_eq!(
        moves, 6,
        "the producer was too slow to interleave six moves"
    );
    writer.join().unwrap();
    let out = common::wait_with_timeout(child, std::time::Duration::from_secs(120));
    assert!(out.status.success(), "pub failed: {}", common::stderr(&out));
    let expected: Vec<Vec<u8>> = (0..lines).map(|i| format!("r{i}").into_bytes()).collect();
    let stored: Vec<Vec<u8>> = read_all(&mut c, "mv", 0)
        .into_iter()
        .map(|r| r.value.to_vec())
        .collect();
    assert_eq!(stored.len(), lines, "no loss, no duplicates");
    assert!(stored == expected, "stored records are in order");
    let pushed = reader.join().unwrap();
    assert_eq!(pushed.len(), lines);
    for (i, (offset, value)) in pushed.iter().enumerate() {
        assert_eq!(
            *offset, i as u64,
            "the subscriber saw every offset once, in order"
        );
        assert_eq!(value, &expected[i]);
    }
    // Bad move requests say what is wrong.
    let (status, body) = http_request(
        "POST",
        &node.http,
        "/admin/move?topic=mv&partition=0&shard=9",
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = http_request(
        "POST",
        &node.http,
        "/admin/move?topic=nope&partition=0&shard=0",
    );
    assert_eq!(status, 404);
}
