//! Live skew: `loadgen` with Zipf-distributed keys makes one partition hot on a 2-shard node;
//! the analytics shard (`act`) flags it and relieves its shard with a live move; loadgen's
//! checker then reads the topic back and finds no lost, duplicated or reordered record.
//!
//! Layout: 3 partitions on 2 shards put partitions 0 and 2 on one shard (the default placement
//! alternates by partition parity), and Zipf keys (s = 1.5, key `i` to partition `i % 3`) give
//! partition 0 about 54% of the records, 1 about 27% and 2 about 19%: partition 0 is hot and its
//! shard carries about 73% of the load. The decider then moves partition 2 off that shard
//! (moving partition 0 itself would only relocate the hot spot); the test asserts a move off the
//! hot partition's shard, whichever partition it picks. No timing or throughput assertions beyond
//! generous bounds: performance is measured by `benches/analytics/skew.sh`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{http_get, shards, Node};
use net::codec::TopicConfig;

/// Total records per second (open loop), the hot-partition and shard capacities given to the
/// analytics shard, and how long loadgen runs.
const RATE_MSGS_PER_S: u32 = 3_000;
const PARTITION_CAPACITY_MSGS_PER_S: u32 = 1_200;
const SHARD_CAPACITY_MSGS_PER_S: u32 = 3_000;
const LOAD_SECS: u32 = 14;
/// H1's p90 bound (ANALYTICS.md: a sudden hot partition detected within 10 s), plus the 1 s
/// warm-up and a tick of slack for a busy test machine.
const FLAG_BOUND: Duration = Duration::from_secs(12);
const MOVE_BOUND: Duration = Duration::from_secs(20);

/// The `loadgen` binary: `$LOADGEN_BIN`, or built with cargo into this test's target directory
/// (a no-op when it is up to date, so a stale binary is never used).
fn loadgen_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_loadgen).clone()
}

fn build_loadgen() -> PathBuf {
    if let Some(path) = std::env::var_os("LOADGEN_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test> -> target/<profile>
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("target dir");
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "-q", "-p", "loadgen", "--bin", "loadgen"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build -p loadgen");
    assert!(status.success(), "cargo build -p loadgen failed");
    let binary = profile_dir.join("loadgen");
    assert!(binary.is_file(), "no loadgen at {}", binary.display());
    binary
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The first `hot` event for `topic`, as (partition, event).
fn first_hot(http: &str, topic: &str) -> Option<(u32, serde_json::Value)> {
    let (status, body) = http_get(http, "/analytics/hot");
    assert_eq!(status, 200, "{body}");
    json(&body)["events"]
        .as_array()?
        .iter()
        .find(|e| e["topic"] == topic && e["kind"] == "hot")
        .map(|e| {
            (
                e["partition"].as_u64().unwrap_or(u64::MAX) as u32,
                e.clone(),
            )
        })
}

/// The first applied move of a partition of `topic`.
fn first_applied_move(http: &str, topic: &str) -> Option<serde_json::Value> {
    let (status, body) = http_get(http, "/analytics/decisions");
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["mode"], "act");
    v["decisions"]
        .as_array()?
        .iter()
        .find(|d| d["kind"] == "move" && d["topic"] == topic && d["outcome"] == "applied")
        .cloned()
}

/// (partition, shard, end offset) of every partition.
type Layout = Vec<(u32, u32, u64)>;

fn layout(node: &Node, topic: &str) -> Layout {
    let info = node.client().describe_topic(topic).unwrap();
    info.partitions
        .iter()
        .map(|p| (p.partition, p.shard, p.end_offset))
        .collect()
}

#[test]
fn skewed_keys_make_a_hot_partition_that_is_flagged_and_relieved_without_loss() {
    if shards() < 2 {
        eprintln!("skipped: needs 2 cores for 2 shards");
        return;
    }
    let loadgen = loadgen_binary();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "analytics = \"act\"\nanalytics_partition_capacity_msgs_per_s = {PARTITION_CAPACITY_MSGS_PER_S}.0\nanalytics_shard_capacity_msgs_per_s = {SHARD_CAPACITY_MSGS_PER_S}.0\n"
    );
    let node = Node::start_with_config(&dir.path().join("node"), 2, &toml);
    let topic = "skew";
    node.client()
        .create_topic(
            topic,
            &TopicConfig {
                partitions: 3,
                ..TopicConfig::default()
            },
        )
        .unwrap();
    let before = layout(&node, topic);
    let hot_shard = before[0].1;
    assert_eq!(before[2].1, hot_shard, "partitions 0 and 2 share a shard");
    assert_ne!(before[1].1, hot_shard, "partition 1 is on the other shard");

    let report = dir.path().join("report.json");
    let ledger = dir.path().join("ledger.json");
    let started = Instant::now();
    let mut child = Command::new(&loadgen)
        .args([
            "--broker",
            &node.addr,
            "--topic",
            topic,
            "--partitions",
            "3",
        ])
        .args(["--keys", "zipf", "--zipf-s", "1.5", "--key-space", "1000"])
        .args(["--size", "64", "--batch", "10", "--window", "64"])
        .args(["--rate", &RATE_MSGS_PER_S.to_string()])
        .args([
            "--warmup-secs",
            "1",
            "--duration-secs",
            &LOAD_SECS.to_string(),
        ])
        .arg("--verify")
        .arg("--seq-ledger")
        .arg(&ledger)
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen");

    let mut flagged: Option<(Duration, u32, serde_json::Value)> = None;
    let mut moved: Option<(Duration, serde_json::Value, Layout)> = None;
    while child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(250));
        if flagged.is_none() {
            if let Some((p, e)) = first_hot(&node.http, topic) {
                flagged = Some((started.elapsed(), p, e));
            }
        }
        if moved.is_none() {
            if let Some(d) = first_applied_move(&node.http, topic) {
                moved = Some((started.elapsed(), d, layout(&node, topic)));
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(u64::from(LOAD_SECS) + 40),
            "loadgen did not finish"
        );
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "loadgen failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decisions = http_get(&node.http, "/analytics/decisions").1;

    // Flagged: the Zipf head's partition, within H1's bound.
    let (flag_after, hot_partition, event) =
        flagged.unwrap_or_else(|| panic!("no hot partition flagged: {decisions}"));
    assert_eq!(
        hot_partition, 0,
        "the Zipf head's partition is the hot one: {event}"
    );
    assert!(
        event["rate_msgs_per_s"].as_f64().unwrap() > f64::from(PARTITION_CAPACITY_MSGS_PER_S),
        "{event}"
    );
    assert!(flag_after <= FLAG_BOUND, "flagged after {flag_after:?}");

    // Relieved: a live move off the hot partition's shard, carried out while load continued.
    let (move_after, decision, during) =
        moved.unwrap_or_else(|| panic!("no applied move: {decisions}"));
    assert!(move_after <= MOVE_BOUND, "moved after {move_after:?}");
    assert_eq!(
        decision["from_shard"].as_u64(),
        Some(u64::from(hot_shard)),
        "{decision}"
    );
    assert_ne!(
        decision["to_shard"].as_u64(),
        Some(u64::from(hot_shard)),
        "{decision}"
    );
    let moved_partition = decision["partition"].as_u64().unwrap() as usize;
    assert!(moved_partition == 0 || moved_partition == 2, "{decision}");
    let after = layout(&node, topic);
    assert_ne!(after[moved_partition].1, hot_shard, "{after:?}");
    assert!(
        after[moved_partition].2 > during[moved_partition].2,
        "records reached the moved partition after the move: {during:?} -> {after:?}"
    );

    // The checker read every partition back: nothing lost, duplicated or reordered.
    let report = json(&std::fs::read_to_string(&report).unwrap());
    let verify = &report["verify"];
    assert_eq!(verify["ok"], true, "{verify}");
    for key in [
        "lost",
        "duplicated",
        "reordered",
        "misplaced",
        "refused_but_stored",
    ] {
        assert_eq!(verify[key], 0, "{key}: {verify}");
    }
    let total: u64 = after.iter().map(|p| p.2).sum();
    assert_eq!(verify["records_read"].as_u64(), Some(total), "{verify}");
    assert!(
        verify["records_expected"].as_u64().unwrap() >= u64::from(RATE_MSGS_PER_S) * 5,
        "{verify}"
    );
    assert!(stdout.contains("verify:"), "{stdout}");
}
