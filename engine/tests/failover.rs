//! Failover timing on three real nodes over loopback, broken down by stage: kill -9 the leader of
//! a partition (every other cycle the node that also leads the metadata controllers), then
//! watch, from a survivor, when gossip stops listing the victim alive, when the metadata names a
//! new controller leader and a new partition leader, and when an `acks=all` write through a
//! routing client is acknowledged again. A measurement, not a pass/fail test: it is `#[ignore]`d
//! and run on demand (docs/cluster.md, "Failover time"):
//!
//! ```text
//! cargo test -p engine --test failover -- --ignored --nocapture
//! SPRAWL_FAILOVER_CYCLES=20 cargo test -p engine --test failover -- --ignored --nocapture
//! ```

mod common;

use std::time::{Duration, Instant};

use common::cluster::{cluster_doc, Cluster};
use common::Node;
use net::client::{ClientConfig, ClusterClient, RoutingConfig};
use net::codec::{Acks, TopicConfig};
use serde_json::Value;

const TOPIC: &str = "failover";

fn partition0(doc: &Value) -> Option<(u64, u64)> {
    doc["partitions"]
        .as_array()?
        .iter()
        .find(|p| p["topic"] == TOPIC && p["partition"] == 0)
        .map(|p| {
            (
                p["leader"].as_u64().unwrap_or(0),
                p["isr"].as_array().map_or(0, Vec::len) as u64,
            )
        })
}

/// Gossip's state of node `id` (its newest identity: a restarted node leaves an older one).
fn member_state(doc: &Value, id: u64) -> String {
    doc["members"]
        .as_array()
        .and_then(|ms| {
            ms.iter()
                .filter(|m| m["id"].as_u64() == Some(id))
                .max_by_key(|m| m["incarnation"].as_u64())
        })
        .and_then(|m| m["state"].as_str())
        .unwrap_or("absent")
        .to_string()
}

fn client(addrs: &[String]) -> Option<ClusterClient> {
    let boot: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let config = ClientConfig {
        connect_timeout_ms: 500,
        request_timeout_ms: 2_000,
        ..ClientConfig::default()
    };
    let routing = RoutingConfig {
        retries: 0,
        ..RoutingConfig::default()
    };
    ClusterClient::connect_with(&boot, config, routing).ok()
}

/// Milliseconds since `t0`, as printed.
fn ms(t0: Instant, at: Option<Instant>) -> String {
    at.map_or_else(|| "-".into(), |t| format!("{}", (t - t0).as_millis()))
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn failover_stages() {
    let cycles: usize = std::env::var("SPRAWL_FAILOVER_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(root.path(), 3, 3);
    let (mut nodes, addrs) = c.start_registered(3);
    let config = TopicConfig {
        partitions: 1,
        replication_factor: Some(3),
        ..TopicConfig::default()
    };
    client(&addrs)
        .unwrap()
        .create_topic(TOPIC, &config)
        .unwrap();

    println!("cycle victim also_controller_leader suspect_ms controller_ms leader_ms write_ms");
    let mut writes = Vec::new();
    for cycle in 0..cycles {
        // Everything in sync, and the partition led, as node 1 (or 2) sees it.
        let watcher = |nodes: &Vec<Option<Node>>, not: usize| {
            (0..3).find(|i| *i != not && nodes[*i].is_some()).unwrap()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let (leader, ctl_leader) = loop {
            let doc = cluster_doc(nodes[watcher(&nodes, 3)].as_ref().unwrap());
            let ctl = doc["controller"]["leader_id"].as_u64().unwrap_or(0);
            if let Some((l, isr)) = partition0(&doc) {
                if l != 0 && isr == 3 && ctl != 0 {
                    break (l, ctl);
                }
            }
            assert!(Instant::now() < deadline, "not in sync: {doc}");
            std::thread::sleep(Duration::from_millis(100));
        };
        // Odd cycles: make the victim the controller leader when it does not lead partition 0
        // already, by killing the controller leader instead (it may or may not lead p0).
        let victim = if cycle % 2 == 1 { ctl_leader } else { leader };
        let vi = victim as usize - 1;
        let w = watcher(&nodes, vi);
        // One acknowledged write before the kill, so the partition is writable.
        let boot: Vec<&str> = addrs.iter().map(String::as_str).collect();
        let mut cc = ClusterClient::connect(&boot, ClientConfig::default()).unwrap();
        let rec = common::records(&[b"before"]);
        cc.produce(TOPIC, 0, Acks::All, None, &rec).unwrap();

        let t0 = Instant::now();
        nodes[vi].take().unwrap().kill9();
        let (mut suspect, mut controller, mut new_leader, mut write) = (None, None, None, None);
        let survivors: Vec<String> = (0..3)
            .filter(|i| *i != vi)
            .map(|i| addrs[i].clone())
            .collect();
        let mut cc = client(&survivors);
        while t0.elapsed() < Duration::from_secs(40) && write.is_none() {
            let doc = cluster_doc(nodes[w].as_ref().unwrap());
            if suspect.is_none() && member_state(&doc, victim) != "alive" {
                suspect = Some(Instant::now());
            }
            let ctl = doc["controller"]["leader_id"].as_u64().unwrap_or(0);
            if controller.is_none() && ctl != 0 && ctl != victim {
                controller = Some(Instant::now());
            }
            if new_leader.is_none() && partition0(&doc).is_some_and(|(l, _)| l != 0 && l != victim)
            {
                new_leader = Some(Instant::now());
            }
            if cc.is_none() {
                cc = client(&survivors);
            }
            if let Some(client) = cc.as_mut() {
                let rec = common::records(&[b"after"]);
                match client.produce(TOPIC, 0, Acks::All, None, &rec) {
                    Ok(Some(_)) => write = Some(Instant::now()),
                    _ => {
                        let _ = client.refresh_metadata();
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        println!(
            "{cycle} {victim} {} {} {} {} {}",
            victim == ctl_leader,
            ms(t0, suspect),
            ms(t0, controller.filter(|_| victim == ctl_leader)),
            ms(t0, new_leader),
            ms(t0, write)
        );
        if let Some(t) = write {
            writes.push(t - t0);
        }
        nodes[vi] = Some(c.start(vi));
    }
    writes.sort();
    let pct = |p: usize| writes[(writes.len() * p).div_ceil(100).max(1) - 1];
    assert!(!writes.is_empty(), "no write resumed");
    println!(
        "writes resumed after: p50 {:?} p99 {:?} max {:?} ({} of {cycles} cycles)",
        pct(50),
        pct(99),
        writes[writes.len() - 1],
        writes.len()
    );
}
