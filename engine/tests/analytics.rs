//! The analytics shard against a real node: forecasts from real traffic with their baseline
//! beside them, the endpoints in every mode, and (with two shards) a hot shard relieved by a live
//! move that loses nothing.

mod common;

use std::time::{Duration, Instant};

use common::{http_get, read_all, shards, Node};
use net::codec::{Acks, ErrorCode, ProducerIdent, RecordView, TopicConfig};

fn start_with(dir: &std::path::Path, shards: usize, toml: &str) -> (Node, String, String) {
    let node = Node::start_with_config(dir, shards, toml);
    let (addr, http) = (node.addr.clone(), node.http.clone());
    (node, addr, http)
}

/// Produces `n` single-record batches to `partition`, retrying NOT_LEADER (a move in progress)
/// with the same sequence number, so each batch is written exactly once.
fn produce_idempotent(
    c: &mut net::client::Client,
    topic: &str,
    partition: u32,
    producer_id: u64,
    n: u32,
    seq: &mut u32,
) {
    for _ in 0..n {
        let value = format!("{partition}-{seq}");
        let rec = [RecordView {
            key: None,
            value: value.as_bytes(),
            headers: vec![],
            timestamp_ms: 0,
            ttl_ms: 0,
        }];
        let ident = ProducerIdent {
            producer_id,
            epoch: 0,
            base_sequence: *seq,
        };
        loop {
            match c.produce(topic, partition, Acks::Leader, Some(ident), &rec) {
                Ok(_) => break,
                Err(e) if e.code() == Some(ErrorCode::NotLeader) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("produce failed: {e}"),
            }
        }
        *seq += 1;
    }
}

#[test]
fn forecasts_come_from_real_traffic_with_their_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr, http) = start_with(
        dir.path(),
        shards(),
        "analytics = \"advise\"\nanalytics_key_window_s = 2\n",
    );
    let mut c = net::client::Client::connect(&addr, Default::default()).unwrap();
    c.create_topic(
        "f",
        &TopicConfig {
            partitions: 2,
            ..TopicConfig::default()
        },
    )
    .unwrap();
    let mut seq = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let forecasts = loop {
        produce_idempotent(&mut c, "f", 0, 7, 50, &mut seq);
        let (status, body) = http_get(&http, "/analytics/forecast");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["mode"], "advise");
        let list = v["forecasts"].as_array().unwrap().clone();
        if list
            .iter()
            .any(|f| f["topic"] == "f" && f["series"] == "partition_msgs_per_s")
        {
            break list;
        }
        assert!(Instant::now() < deadline, "no forecast after 60 s: {body}");
    };
    let f = forecasts
        .iter()
        .find(|f| f["topic"] == "f" && f["partition"] == 0 && f["series"] == "partition_msgs_per_s")
        .expect("a forecast for the partition with traffic");
    assert!(f["method"].is_string());
    assert_eq!(f["baseline"], "last_value");
    assert!(f.get("baseline_mae").is_some() && f.get("method_mae").is_some());
    assert!(f["value"].as_f64().unwrap() >= 0.0);
    // Keyed traffic gives hot keys (reported per completed window, here 2 s).
    let keyed: Vec<Vec<u8>> = (0..400).map(|i| format!("v{i}").into_bytes()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let views: Vec<RecordView<'_>> = keyed
            .iter()
            .map(|v| RecordView {
                key: Some(b"the-hot-key"),
                value: v,
                headers: vec![],
                timestamp_ms: 0,
                ttl_ms: 0,
            })
            .collect();
        c.produce("f", 1, Acks::Leader, None, &views).unwrap();
        let (_, hot) = http_get(&http, "/analytics/hot");
        let hot: serde_json::Value = serde_json::from_str(&hot).unwrap();
        let has_keys = hot["hot_keys"].as_array().unwrap().iter().any(|k| {
            k["topic"] == "f" && k["partition"] == 1 && k["keys"][0]["count"].as_u64() > Some(0)
        });
        if has_keys {
            break;
        }
        assert!(Instant::now() < deadline, "no hot keys after 60 s: {hot}");
        std::thread::sleep(Duration::from_millis(200));
    }
    for path in [
        "/analytics/hot",
        "/analytics/anomalies",
        "/analytics/decisions",
    ] {
        let (status, body) = http_get(&http, path);
        assert_eq!(status, 200, "{path}: {body}");
        let _: serde_json::Value = serde_json::from_str(&body).unwrap();
    }
    let (_, body) = http_get(&http, "/analytics/decisions");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["ticks"].as_u64().unwrap() >= 2);
    assert!(
        v["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["outcome"] == "advised"),
        "advise mode never acts: {body}"
    );
    let (_, metrics) = http_get(&http, "/metrics");
    assert!(metrics.contains("sprawl_analytics_ticks_total"));
}

#[test]
fn analytics_off_means_off() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _, http) = start_with(dir.path(), 1, "analytics = \"off\"\n");
    let (status, body) = http_get(&http, "/analytics/forecast");
    assert_eq!(status, 404);
    assert!(body.contains("--analytics"), "{body}");
    let (_, metrics) = http_get(&http, "/metrics");
    assert!(!metrics.contains("sprawl_analytics_ticks_total"));
    drop(node);
    // A bad mode is refused at start-up with the setting named.
    let out = std::process::Command::new(common::BIN)
        .args([
            "serve",
            "--port",
            "0",
            "--http-port",
            "0",
            "--analytics",
            "sometimes",
            "--data-dir",
        ])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("analytics"));
}

/// Two partitions on one shard carry all the traffic: the analytics shard moves one of them to the
/// idle shard, live, and every record is still there exactly once, in order.
#[test]
fn a_hot_shard_is_relieved_by_a_live_move() {
    if shards() < 2 {
        eprintln!("skipped: needs 2 cores for 2 shards");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let toml = "analytics = \"act\"\nanalytics_shard_capacity_msgs_per_s = 400.0\nanalytics_partition_capacity_msgs_per_s = 150.0\n";
    let (_node, addr, http) = start_with(dir.path(), 2, toml);
    let mut c = net::client::Client::connect(&addr, Default::default()).unwrap();
    c.create_topic(
        "load",
        &TopicConfig {
            partitions: 4,
            ..TopicConfig::default()
        },
    )
    .unwrap();
    let meta = c.metadata(None).unwrap();
    let parts = &meta.topics[0].partitions;
    let busy_shard = parts[0].shard;
    let busy: Vec<u32> = parts
        .iter()
        .filter(|p| p.shard == busy_shard)
        .map(|p| p.partition)
        .collect();
    assert_eq!(busy.len(), 2);
    let mut seqs = [0u32; 4];
    let deadline = Instant::now() + Duration::from_secs(90);
    let moved = loop {
        for &p in &busy {
            produce_idempotent(
                &mut c,
                "load",
                p,
                100 + u64::from(p),
                40,
                &mut seqs[p as usize],
            );
        }
        let now: Vec<u32> = c.metadata(None).unwrap().topics[0]
            .partitions
            .iter()
            .map(|p| p.shard)
            .collect();
        if let Some(&p) = busy.iter().find(|&&p| now[p as usize] != busy_shard) {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no move within 90 s: {}",
            http_get(&http, "/analytics/decisions").1
        );
    };
    let (_, body) = http_get(&http, "/analytics/decisions");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let applied = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "move" && d["outcome"] == "applied")
        .unwrap_or_else(|| panic!("no applied move recorded: {body}"));
    assert_eq!(applied["topic"], "load");
    assert_eq!(applied["partition"], moved);
    // Keep producing after the move, then check every partition.
    for &p in &busy {
        produce_idempotent(
            &mut c,
            "load",
            p,
            100 + u64::from(p),
            40,
            &mut seqs[p as usize],
        );
    }
    for &p in &busy {
        let values: Vec<String> = read_all(&mut c, "load", p)
            .into_iter()
            .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
            .collect();
        let expected: Vec<String> = (0..seqs[p as usize]).map(|i| format!("{p}-{i}")).collect();
        assert_eq!(
            values, expected,
            "partition {p}: every record once, in order"
        );
    }
}
