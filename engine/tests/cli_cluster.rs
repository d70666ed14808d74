//! `sprawl pub` and `sprawl sub` against a three-node cluster: both reach every partition at its
//! leader whichever node they are given, and `sub` follows a partition to its new leader after
//! the old one is killed (-9), printing every record exactly once and in order.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster::{cluster_doc, free_port, wait_registered, Cluster};
use common::{cli_with_stdin, stderr, Node, BIN};
use net::client::ClusterClient;
use net::codec::TopicConfig;
use serde_json::Value;

const TOPIC: &str = "routed";
const PARTITIONS: u32 = 4;
/// Records per partition in each of the two rounds.
const PER_ROUND: u32 = 20;

/// Partition -> leader node id, once every partition is led and fully in sync as `node` sees it.
fn wait_led_in_sync(node: &Node) -> BTreeMap<u32, u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ps: Vec<Value> = cluster_doc(node)["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["topic"] == TOPIC)
            .cloned()
            .collect();
        let ready = ps.len() == PARTITIONS as usize
            && ps.iter().all(|p| {
                p["leader"].as_u64().unwrap_or(0) != 0
                    && p["isr"].as_array().map_or(0, |a| a.len()) == 3
            });
        if ready {
            return ps
                .iter()
                .map(|p| {
                    let partition = p["partition"].as_u64().unwrap() as u32;
                    (partition, p["leader"].as_u64().unwrap())
                })
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "partitions not led in sync: {ps:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Publishes round `round` (values `p{partition}-{i}`) to every partition through `broker`.
fn publish_round(broker: &str, round: u32) {
    for partition in 0..PARTITIONS {
        let lines: String = (round * PER_ROUND..(round + 1) * PER_ROUND)
            .map(|i| format!("p{partition}-{i}\n"))
            .collect();
        let part = partition.to_string();
        let args = [
            "pub",
            "--topic",
            TOPIC,
            "--partition",
            &part,
            "--acks",
            "all",
        ];
        let out = cli_with_stdin(&args, broker, Some(&lines));
        assert!(out.status.success(), "pub to {partition}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "published {PER_ROUND} records to {TOPIC} (acks=all)"
            )),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn pub_and_sub_reach_every_leader_and_sub_follows_a_killed_leader() {
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(root.path(), 3, 3);
    let mut nodes: Vec<Option<Node>> = (0..3).map(|i| Some(c.start(i))).collect();
    let node = |nodes: &[Option<Node>], i: usize| nodes[i].as_ref().unwrap().addr.clone();
    wait_registered(nodes[0].as_ref().unwrap(), 3);
    let config = TopicConfig {
        partitions: PARTITIONS,
        replication_factor: Some(3),
        min_insync: Some(2),
        ..TopicConfig::default()
    };
    nodes[0]
        .as_ref()
        .unwrap()
        .client()
        .create_topic(TOPIC, &config)
        .unwrap();
    // Every node's metadata has the topic placed, led and in sync before pub and sub start.
    let leaders = wait_led_in_sync(nodes[0].as_ref().unwrap());
    for n in nodes.iter().flatten() {
        wait_led_in_sync(n);
    }

    // The leader of partition 0 is killed later; pub and sub go through the two other nodes,
    // so each of them must route partition 0 (at least) to another node.
    let victim = leaders[&0] as usize - 1;
    let pub_node = (victim + 1) % 3;
    let sub_node = (victim + 2) % 3;
    publish_round(&node(&nodes, pub_node), 0);

    // The first bootstrap address has no node behind it: the next one is used.
    let broker = format!("127.0.0.1:{},{}", free_port(), node(&nodes, sub_node));
    let total = (2 * PER_ROUND * PARTITIONS).to_string();
    let mut sub = Command::new(BIN)
        .args([
            "sub",
            "--topic",
            TOPIC,
            "--from-beginning",
            "--output",
            "json",
        ])
        .args(["--count", &total, "--broker", &broker])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = sub.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines.len() < (PER_ROUND * PARTITIONS) as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(e) => panic!(
                "sub printed {} lines of round 0 ({e}): {lines:?}",
                lines.len()
            ),
        }
    }

    // kill -9 the leader of partition 0 while sub is subscribed there; round 1 goes through a
    // survivor and reaches partition 0 once a follower has taken over.
    nodes[victim].as_mut().unwrap().kill9();
    let killed_at = Instant::now();
    publish_round(&node(&nodes, pub_node), 1);
    eprintln!("round 1 published {:?} after the kill", killed_at.elapsed());

    let deadline = Instant::now() + Duration::from_secs(40);
    while lines.len() < (2 * PER_ROUND * PARTITIONS) as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(e) => {
                let _ = sub.kill();
                let out = sub.wait_with_output().unwrap();
                panic!(
                    "sub printed {} lines ({e}); stderr {}",
                    lines.len(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    let out = common::wait_with_timeout(sub, Duration::from_secs(10));
    assert!(out.status.success(), "sub: {}", stderr(&out));
    reader.join().unwrap();
    assert!(rx.try_recv().is_err(), "sub printed more than --count");

    // Every record exactly once per partition, in order, at consecutive offsets.
    let mut got: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["topic"], TOPIC, "{line}");
        let partition = v["partition"].as_u64().unwrap() as u32;
        let offset = v["offset"].as_u64().unwrap();
        let value = v["value"].as_str().unwrap().to_string();
        got.entry(partition).or_default().push((offset, value));
    }
    for partition in 0..PARTITIONS {
        let want: Vec<(u64, String)> = (0..2 * PER_ROUND)
            .map(|i| (u64::from(i), format!("p{partition}-{i}")))
            .collect();
        assert_eq!(got.get(&partition), Some(&want), "partition {partition}");
    }

    // The survivors elected a new leader for partition 0.
    let after = wait_led_after_kill(nodes[pub_node].as_ref().unwrap());
    assert_ne!(after[&0], leaders[&0]);

    // With the old leader still down, a new sub (bootstrapped through the dead node first)
    // reads everything again from the current leaders, and its group's offsets are committed
    // at them.
    let broker = format!("127.0.0.1:{},{}", c.ports[victim], node(&nodes, sub_node));
    let args = ["sub", "--topic", TOPIC, "--from-beginning", "--group", "g"];
    let out = cli_with_stdin(&[&args[..], &["--count", &total]].concat(), &broker, None);
    assert!(out.status.success(), "second sub: {}", stderr(&out));
    let text = common::stdout(&out);
    for partition in 0..PARTITIONS {
        let prefix = format!("p{partition}-");
        let values: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
        let want: Vec<String> = (0..2 * PER_ROUND).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(values, want, "second sub, partition {partition}");
    }
    let survivors = [node(&nodes, pub_node), node(&nodes, sub_node)];
    let boot: Vec<&str> = survivors.iter().map(String::as_str).collect();
    let mut cc = ClusterClient::connect(&boot, Default::default()).unwrap();
    for partition in 0..PARTITIONS {
        let committed = cc.fetch_offset("g", TOPIC, partition).unwrap();
        assert_eq!(
            committed,
            Some(u64::from(2 * PER_ROUND)),
            "partition {partition}"
        );
    }
}

/// Partition -> leader node id as `node` sees it, once every partition has a leader.
fn wait_led_after_kill(node: &Node) -> BTreeMap<u32, u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let led: BTreeMap<u32, u64> = cluster_doc(node)["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["topic"] == TOPIC && p["leader"].as_u64().unwrap_or(0) != 0)
            .map(|p| {
                let partition = p["partition"].as_u64().unwrap() as u32;
                (partition, p["leader"].as_u64().unwrap())
            })
            .collect();
        if led.len() == PARTITIONS as usize {
            return led;
        }
        assert!(
            Instant::now() < deadline,
            "partitions without a leader: {led:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
