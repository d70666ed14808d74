//! The cold tier through the real binary: a node started with `--s3-*` settings against a real
//! S3-compatible server (moto, started by the test on loopback) uploads sealed segments of a
//! tiered topic, deletes local copies only after the manifest lists them, serves fetches below
//! the local start from the bucket, gap-free, and keeps doing so after kill -9 and restart.
//! A store that does not answer is reported at start-up while local data keeps being served.

#[path = "../../storage/tests/cold_support/mod.rs"]
mod cold_support;
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{http_get, read_all, Node};
use net::codec::{Acks, ErrorCode, TopicConfig};

const RECORD_BYTES: usize = 4096;

fn value(partition: u32, i: u64) -> Vec<u8> {
    cold_support::value(u64::from(partition) << 32 | i, RECORD_BYTES)
}

fn s3_toml(endpoint: &str, bucket: &str, key: &str, secret: &str) -> String {
    format!(
        "s3_endpoint = \"{endpoint}\"\ns3_bucket = \"{bucket}\"\ns3_region = \"{}\"\n\
         s3_access_key = \"{key}\"\ns3_secret_key = \"{secret}\"\ns3_request_timeout_ms = 5000\n",
        cold_support::REGION
    )
}

/// Produces the records of offsets `from..to` (each `RECORD_BYTES`, value from [`value`]) to
/// `partition`, acks=all, in batches of 32.
fn produce(node: &Node, topic: &str, partition: u32, from: u64, to: u64) {
    let mut c = node.client();
    let values: Vec<Vec<u8>> = (from..to).map(|j| value(partition, j)).collect();
    for chunk in values.chunks(32) {
        let views: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        c.produce(topic, partition, Acks::All, None, &common::records(&views))
            .expect("produce");
    }
}

/// kill -9, then everything the node wrote to stderr.
fn kill_and_stderr(node: &mut Node) -> String {
    use std::io::Read;
    node.kill9();
    let mut err = String::new();
    node.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// `GET /topics/{topic}` partition states.
fn partition_states(node: &Node, topic: &str) -> Vec<serde_json::Value> {
    let (status, body) = http_get(&node.http, &format!("/topics/{topic}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["partition_state"].as_array().unwrap().clone()
}

/// Waits until every partition has at least `segments` remote segments and a local start above
/// 0 (local copies released); returns the states.
fn wait_tiered(node: &Node, topic: &str, segments: u64) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let states = partition_states(node, topic);
        let done = states.iter().all(|p| {
            p["remote_segments"].as_u64().unwrap_or(0) >= segments
                && p["local_start_offset"].as_u64().unwrap_or(0) > 0
        });
        if done {
            return states;
        }
        assert!(
            Instant::now() < deadline,
            "not tiered within 90 s: {states:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every record from offset 0 is there, in order, with the value it was produced with.
fn check_all(node: &Node, topic: &str, partition: u32, count: u64) {
    let mut c = node.client();
    let got = read_all(&mut c, topic, partition);
    check_values(&got, partition, count);
}

/// Like [`check_all`] while the store fails: retriable errors are retried, as clients must.
fn check_all_retrying(node: &Node, topic: &str, partition: u32, count: u64) {
    let mut c = node.client();
    let mut got: Vec<net::client::Record> = Vec::new();
    let mut retries = 0;
    while (got.len() as u64) < count {
        let offset = got.last().map_or(0, |r| r.offset + 1);
        match c.fetch(topic, partition, offset, 1 << 20, 0) {
            Ok(f) => {
                assert!(!f.records.is_empty(), "fetch at {offset} returned nothing");
                got.extend(f.records);
            }
            Err(net::client::ClientError::Server { code, message, .. }) if code.is_retriable() => {
                retries += 1;
                assert!(retries < 200, "fetch at {offset} keeps failing: {message}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("fetch at {offset}: {e}"),
        }
    }
    check_values(&got, partition, count);
}

fn check_values(got: &[net::client::Record], partition: u32, count: u64) {
    assert_eq!(
        got.len() as u64,
        count,
        "partition {partition}: record count"
    );
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as u64, "partition {partition}: gap or reorder");
        assert!(
            r.value == value(partition, i as u64),
            "partition {partition}: value of offset {i} differs"
        );
    }
}

fn metric(node: &Node, name: &str) -> f64 {
    let (_, body) = http_get(&node.http, "/metrics");
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn segment_files(dir: &Path) -> usize {
    walk(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .count()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn tiered_topic_reads_back_across_tiers_and_a_kill9_restart() {
    let Some(moto) = cold_support::moto() else {
        return;
    };
    let bucket = cold_support::bucket_name("engine-tiered");
    let store = moto.bucket(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let toml = s3_toml(&moto.endpoint, &bucket, &moto.access_key, &moto.secret_key);
    let node = Node::start_with_config(dir.path(), common::shards(), &toml);
    let out = node.cli(&[
        "topic",
        "create",
        "hist",
        "--partitions",
        "2",
        "--segment-bytes",
        "1048576",
        "--tier-after-ms",
        "0",
        "--local-retention-bytes",
        "1",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    // 4 KiB records, 1 MiB segments: ~4 sealed segments per partition.
    const COUNT: u64 = 1100;
    for p in 0..2 {
        produce(&node, "hist", p, 0, COUNT);
    }
    let states = wait_tiered(&node, "hist", 2);
    for s in &states {
        let remote_end = s["remote_end_offset"].as_u64().unwrap();
        let local_start = s["local_start_offset"].as_u64().unwrap();
        assert!(
            local_start <= remote_end,
            "a local copy went before its upload was listed: {s}"
        );
        assert_eq!(s["start_offset"].as_u64(), Some(0), "{s}");
        assert!(s["remote_object_bytes"].as_u64().unwrap() > 0, "{s}");
    }
    for p in 0..2 {
        check_all(&node, "hist", p, COUNT);
    }
    // The CLI describes both tiers (DescribeTopic v1).
    let out = node.cli(&["topic", "describe", "hist", "--output", "json"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(v["tier_after_ms"], 0);
    assert_eq!(v["local_retention_bytes"], 1);
    for (cli, http) in v["partition_state"].as_array().unwrap().iter().zip(&states) {
        assert_eq!(cli["start_offset"], 0, "{cli}");
        assert!(cli["local_start_offset"].as_u64().unwrap() > 0, "{cli}");
        assert!(cli["remote_segments"].as_u64().unwrap() >= 2, "{cli}");
        assert_eq!(cli["remote_start_offset"], http["remote_start_offset"]);
    }
    let text = common::stdout(&node.cli(&["topic", "describe", "hist"]));
    assert!(text.contains("cold tier: tier_after_ms 0"), "{text}");
    assert_eq!(metric(&node, "sprawl_cold_store_up"), 1.0);
    assert!(metric(&node, "sprawl_tier_uploads_total") >= 4.0);
    assert!(metric(&node, "sprawl_cold_remote_reads_total") >= 2.0);
    // A fetch that starts in the middle of a remote batch gets that offset first.
    let f = node.client().fetch("hist", 1, 7, 64 << 10, 0).unwrap();
    assert_eq!(f.records[0].offset, 7);
    assert_eq!(f.start_offset, 0);

    // kill -9, restart: the manifest is loaded before anything else, nothing lost or doubled.
    let mut node = node;
    node.kill9();
    let node = Node::start_with_config(dir.path(), common::shards(), &toml);
    for p in 0..2 {
        check_all(&node, "hist", p, COUNT);
    }
    // More data after the restart tiers on top of the remote log, still gap-free.
    produce_more_and_check(&node, dir.path());

    // Deleting the topic deletes its objects too.
    use storage::cold::ObjectStore;
    assert!(!store.list("topics/", 100).unwrap().is_empty());
    node.client().delete_topic("hist").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store.list("topics/", 100).unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "objects left after the topic was deleted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn produce_more_and_check(node: &Node, dir: &Path) {
    const COUNT: u64 = 1100;
    let before = partition_states(node, "hist");
    let remote_before = before[0]["remote_segments"].as_u64().unwrap();
    produce(node, "hist", 0, COUNT, COUNT + 300);
    let deadline = Instant::now() + Duration::from_secs(60);
    while partition_states(node, "hist")[0]["remote_segments"]
        .as_u64()
        .unwrap()
        <= remote_before
    {
        assert!(Instant::now() < deadline, "no new upload after restart");
        std::thread::sleep(Duration::from_millis(200));
    }
    check_all(node, "hist", 0, COUNT + 300);
    // Local copies are gone for what is remote: far fewer segment files than were written.
    let files = segment_files(dir);
    assert!(files <= 6, "{files} local segment files remain");
}

#[test]
fn unreachable_store_is_reported_and_local_data_still_served() {
    // A port nothing listens on: connection refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let toml = s3_toml(&endpoint, "sprawl-nowhere", "k", "s");
    let mut node = Node::start_with_config(dir.path(), 1, &toml);
    let config = TopicConfig {
        partitions: 1,
        tier_after_ms: Some(0),
        ..TopicConfig::default()
    };
    node.client().create_topic("local", &config).unwrap();
    produce(&node, "local", 0, 0, 10);
    check_all(&node, "local", 0, 10);
    assert_eq!(metric(&node, "sprawl_cold_store_up"), 0.0);
    let err = kill_and_stderr(&mut node);
    assert!(
        err.contains("not usable") && err.contains("serving local data"),
        "start-up did not report the store: {err}"
    );
}

#[test]
fn wrong_credentials_are_reported_at_start_up() {
    let Some(moto) = cold_support::moto_auth() else {
        return;
    };
    let bucket = cold_support::bucket_name("engine-creds");
    moto.bucket(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let toml = s3_toml(&moto.endpoint, &bucket, &moto.access_key, "not-the-secret");
    let mut node = Node::start_with_config(dir.path(), 1, &toml);
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&node, "sprawl_cold_store_checks_failed_total") < 1.0 {
        assert!(Instant::now() < deadline, "the store check never failed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = kill_and_stderr(&mut node);
    assert!(
        err.contains("not usable") && err.contains(&bucket),
        "start-up did not report the refused credentials: {err}"
    );
}

#[test]
fn tiering_settings_need_an_object_store() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), 1);
    let config = TopicConfig {
        partitions: 1,
        local_retention_bytes: Some(1 << 30),
        ..TopicConfig::default()
    };
    let err = node.client().create_topic("t", &config).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("--s3-endpoint"), "{text}");
    assert!(
        matches!(
            err,
            net::client::ClientError::Server {
                code: ErrorCode::InvalidConfig,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn faulty_store_and_a_kill_during_uploads_lose_nothing() {
    let Some(moto) = cold_support::moto() else {
        return;
    };
    let bucket = cold_support::bucket_name("engine-faults");
    moto.bucket(&bucket);
    let upstream: std::net::SocketAddr = format!("127.0.0.1:{}", moto.port).parse().unwrap();
    // Delayed answers outlive the node's 5 s request timeout: they count as timeouts.
    let proxy = cold_support::proxy::FaultProxy::start(upstream, 0x5eed, Duration::from_secs(6));
    let dir = tempfile::tempdir().unwrap();
    let toml = s3_toml(
        &proxy.endpoint(),
        &bucket,
        &moto.access_key,
        &moto.secret_key,
    );
    let node = Node::start_with_config(dir.path(), 1, &toml);
    let config = TopicConfig {
        partitions: 1,
        segment_bytes: Some(1 << 20),
        tier_after_ms: Some(0),
        local_retention_bytes: Some(1),
        ..TopicConfig::default()
    };
    node.client().create_topic("faulty", &config).unwrap();
    // 5xx, timeouts, requests cut mid-upload, answers cut after the store applied them.
    proxy.set_fault_percent(30);
    const FIRST: u64 = 1100;
    produce(&node, "faulty", 0, 0, FIRST);
    wait_tiered(&node, "faulty", 3);
    assert!(
        proxy.counts.injected() >= 3,
        "too few faults injected to mean anything: {}",
        proxy.counts.injected()
    );
    check_all_retrying(&node, "faulty", 0, FIRST);

    // More sealed segments, then kill -9 while their uploads run (or are about to).
    const MORE: u64 = 600;
    produce(&node, "faulty", 0, FIRST, FIRST + MORE);
    let remote_before = partition_states(&node, "faulty")[0]["remote_segments"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut node = node;
    node.kill9();
    proxy.set_fault_percent(0);
    let node = Node::start_with_config(dir.path(), 1, &toml);
    // The manifest is reconciled with what the killed node left; everything reads back once.
    check_all(&node, "faulty", 0, FIRST + MORE);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = &partition_states(&node, "faulty")[0];
        let remote = s["remote_segments"].as_u64().unwrap_or(0);
        let local_start = s["local_start_offset"].as_u64().unwrap_or(0);
        if remote > remote_before && local_start > FIRST {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new segments were not tiered after the restart: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    check_all(&node, "faulty", 0, FIRST + MORE);
}
