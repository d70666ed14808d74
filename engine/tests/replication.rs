//! Replicated partitions on three real nodes (all three metadata controllers): a topic with
//! replication factor 3 and min-insync 2 takes `acks=all` writes on its leaders, every
//! acknowledged record survives a kill -9 of a partition leader (a follower takes over under a
//! new epoch and serves them), the killed node comes back as a follower, catches up and rejoins
//! the in-sync set, and consumers never see a record twice or out of order.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{produce_retrying, read_partition, topic_partitions, Cluster};
use common::Node;
use net::client::ClientError;
use net::codec::{Acks, TopicConfig};
use serde_json::Value;

const TOPIC: &str = "replicated";
const PARTITIONS: u32 = 2;

fn partitions(node: &Node) -> Vec<Value> {
    topic_partitions(node, TOPIC)
}

/// Waits until every partition, as `node` sees it, satisfies `ok`.
fn wait_partitions(node: &Node, what: &str, limit: Duration, ok: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let ps = partitions(node);
        if ps.len() == PARTITIONS as usize && ps.iter().all(&ok) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {ps:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn isr_len(p: &Value) -> usize {
    p["isr"].as_array().map_or(0, |a| a.len())
}

#[test]
fn acknowledged_records_survive_a_leader_kill_and_the_node_rejoins_in_sync() {
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(root.path(), 3, 3);
    let (mut nodes, addrs) = c.start_registered(3);

    let config = TopicConfig {
        partitions: PARTITIONS,
        replication_factor: Some(3),
        min_insync: Some(2),
        ..TopicConfig::default()
    };
    nodes[1]
        .as_ref()
        .unwrap()
        .client()
        .create_topic(TOPIC, &config)
        .unwrap();
    let first = nodes[0].as_ref().unwrap();
    wait_partitions(
        first,
        "placed on 3 replicas",
        Duration::from_secs(20),
        |p| p["replicas"].as_array().unwrap().len() == 3 && isr_len(p) == 3,
    );

    // acks=all writes, acknowledged once on the leader's disk and on min-insync disks.
    let mut acked: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for i in 0..200u32 {
        let partition = i % PARTITIONS;
        let value = format!("before-{i}");
        let (offset, _) =
            produce_retrying(&addrs, TOPIC, partition, &value, Duration::from_secs(20));
        acked.entry(partition).or_default().push((offset, value));
    }

    // kill -9 the leader of partition 0: a follower takes over under a higher epoch.
    let before: Vec<Value> = partitions(first);
    let p0 = before.iter().find(|p| p["partition"] == 0).unwrap();
    let (leader, epoch) = (p0["leader"].as_u64().unwrap(), p0["leader_epoch"].as_u64());
    let victim = leader as usize - 1;
    nodes[victim].as_mut().unwrap().kill9();
    let survivor_index = (victim + 1) % 3;
    let survivors: Vec<String> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, a)| a.clone())
        .collect();
    let (offset, took) =
        produce_retrying(&survivors, TOPIC, 0, "after-kill", Duration::from_secs(60));
    eprintln!("writes to partition 0 resumed {took:?} after its leader was killed");
    acked
        .get_mut(&0)
        .unwrap()
        .push((offset, "after-kill".into()));
    let after = partitions(nodes[survivor_index].as_ref().unwrap());
    let p0 = after.iter().find(|p| p["partition"] == 0).unwrap();
    assert_ne!(p0["leader"].as_u64().unwrap(), leader, "{p0}");
    assert!(
        p0["leader_epoch"].as_u64() > epoch,
        "{p0} vs epoch {epoch:?}"
    );

    // Nothing acknowledged is lost, nothing is duplicated, offsets are the acknowledged ones.
    for partition in 0..PARTITIONS {
        let stored = read_partition(&survivors, TOPIC, partition);
        let want = &acked[&partition];
        assert_eq!(stored.len(), want.len(), "partition {partition}");
        for ((o, v), (wo, wv)) in stored.iter().zip(want) {
            assert_eq!(
                (o, v.as_slice()),
                (wo, wv.as_bytes()),
                "partition {partition}"
            );
        }
    }

    // The killed node restarts, follows, catches up and rejoins every in-sync set.
    nodes[victim] = Some(c.start(victim));
    let survivor = nodes[survivor_index].as_ref().unwrap();
    wait_partitions(survivor, "rejoined in sync", Duration::from_secs(90), |p| {
        isr_len(p) == 3
    });
    let (offset, _) = produce_retrying(&addrs, TOPIC, 1, "after-rejoin", Duration::from_secs(20));
    acked
        .get_mut(&1)
        .unwrap()
        .push((offset, "after-rejoin".into()));
    for partition in 0..PARTITIONS {
        let stored = read_partition(&addrs, TOPIC, partition);
        let values: Vec<&[u8]> = stored.iter().map(|(_, v)| v.as_slice()).collect();
        let want: Vec<&[u8]> = acked[&partition]
            .iter()
            .map(|(_, v)| v.as_bytes())
            .collect();
        assert_eq!(values, want, "partition {partition} after the rejoin");
    }

    // The stats port shows it: the new leader of partition 0 took over once, its followers
    // replicated records, and acks=all waits are in the replicate histogram.
    let p0 = partitions(survivor)
        .into_iter()
        .find(|p| p["partition"] == 0)
        .unwrap();
    let new_leader = nodes[p0["leader"].as_u64().unwrap() as usize - 1]
        .as_ref()
        .unwrap();
    let (code, text) = common::http_get(&new_leader.http, "/metrics");
    assert_eq!(code, 200);
    let metric = |text: &str, name: &str| -> Option<u64> {
        let prefix = format!("sprawl_{name}{{");
        text.lines()
            .find(|l| {
                l.starts_with(&prefix) && l.contains(&format!("topic=\"{TOPIC}\",partition=\"0\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    assert_eq!(metric(&text, "replica_role"), Some(1), "{text}");
    assert!(metric(&text, "replica_leaderships_total") >= Some(1));
    assert!(metric(&text, "replica_fetches_served_total") > Some(0));
    assert!(metric(&text, "replica_high_watermark") > Some(0));
    let follower = nodes
        .iter()
        .flatten()
        .find(|n| n.addr != new_leader.addr)
        .unwrap();
    let (_, text) = common::http_get(&follower.http, "/metrics");
    assert_eq!(metric(&text, "replica_role"), Some(2), "{text}");
    let (_, stats) = common::http_get(&new_leader.http, "/stats");
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert!(
        stats["ops"]["replicate"]["count"].as_u64() > Some(0),
        "{stats}"
    );
}

#[test]
fn a_lost_follower_leaves_the_in_sync_set_and_min_insync_refuses_writes_until_it_returns() {
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(root.path(), 3, 3);
    let (mut nodes, addrs) = c.start_registered(3);
    let config = TopicConfig {
        partitions: PARTITIONS,
        replication_factor: Some(3),
        min_insync: Some(3),
        ..TopicConfig::default()
    };
    nodes[0]
        .as_ref()
        .unwrap()
        .client()
        .create_topic(TOPIC, &config)
        .unwrap();
    wait_partitions(
        nodes[0].as_ref().unwrap(),
        "all in sync",
        Duration::from_secs(20),
        |p| isr_len(p) == 3,
    );
    let (first, _) = produce_retrying(&addrs, TOPIC, 1, "all three", Duration::from_secs(20));

    // kill -9 a node that does not lead partition 1: it leaves partition 1's in-sync set.
    let p1 = partitions(nodes[0].as_ref().unwrap())
        .into_iter()
        .find(|p| p["partition"] == 1)
        .unwrap();
    let leader = p1["leader"].as_u64().unwrap() as usize - 1;
    let victim = (leader + 1) % 3;
    nodes[victim].as_mut().unwrap().kill9();
    let watcher = nodes[leader].as_ref().unwrap();
    wait_partitions(
        watcher,
        "victim out of sync",
        Duration::from_secs(60),
        |p| p["partition"] != 1 || isr_len(p) == 2,
    );

    // The leader itself has applied the smaller set (its /metrics shows what it enforces).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = common::http_get(&watcher.http, "/metrics");
        let want = format!(
            "sprawl_replica_in_sync{{node=\"{}\",topic=\"{TOPIC}\",partition=\"1\"}} 2",
            leader + 1
        );
        if text.lines().any(|l| l == want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leader still enforces 3 in sync:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Two in sync, three required: refused up front with NOT_ENOUGH_REPLICAS, nothing written.
    let mut lc = net::client::Client::connect(&addrs[leader], Default::default()).unwrap();
    let rec = common::records(&[b"refused"]);
    let err = lc.produce(TOPIC, 1, Acks::All, None, &rec).unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Server {
                code: net::codec::ErrorCode::NotEnoughReplicas,
                ..
            }
        ),
        "{err:?}"
    );

    // The node returns, catches up and rejoins: writes are taken again, gap-free.
    nodes[victim] = Some(c.start(victim));
    let watcher = nodes[leader].as_ref().unwrap();
    wait_partitions(
        watcher,
        "victim back in sync",
        Duration::from_secs(60),
        |p| isr_len(p) == 3,
    );
    let (next, _) = produce_retrying(&addrs, TOPIC, 1, "back to three", Duration::from_secs(20));
    assert_eq!(next, first + 1, "the refused write left no record");
    let stored = read_partition(&addrs, TOPIC, 1);
    let values: Vec<&[u8]> = stored.iter().map(|(_, v)| v.as_slice()).collect();
    assert_eq!(values, vec![&b"all three"[..], b"back to three"]);
}

#[test]
fn a_leader_restarted_at_once_never_leads_twice_at_one_epoch_and_writes_resume() {
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(root.path(), 3, 3);
    let (mut nodes, addrs) = c.start_registered(3);
    let config = TopicConfig {
        partitions: PARTITIONS,
        replication_factor: Some(3),
        ..TopicConfig::default()
    };
    nodes[2]
        .as_ref()
        .unwrap()
        .client()
        .create_topic(TOPIC, &config)
        .unwrap();
    wait_partitions(
        nodes[0].as_ref().unwrap(),
        "all in sync",
        Duration::from_secs(20),
        |p| isr_len(p) == 3,
    );
    let mut acked = Vec::new();
    for i in 0..20 {
        let v = format!("first-{i}");
        acked.push((
            produce_retrying(&addrs, TOPIC, 0, &v, Duration::from_secs(20)).0,
            v,
        ));
    }
    let p0 = partitions(nodes[0].as_ref().unwrap())
        .into_iter()
        .find(|p| p["partition"] == 0)
        .unwrap();
    let (leader, epoch) = (
        p0["leader"].as_u64().unwrap() as usize - 1,
        p0["leader_epoch"].as_u64().unwrap(),
    );

    // kill -9 and start again at once, typically before failure detection: the node is still
    // named leader at an epoch its leader-epochs file holds, so it asks for a new election.
    nodes[leader].as_mut().unwrap().kill9();
    nodes[leader] = Some(c.start(leader));
    let (offset, took) =
        produce_retrying(&addrs, TOPIC, 0, "after-restart", Duration::from_secs(30));
    eprintln!("writes to partition 0 resumed {took:?} after its leader restarted");
    acked.push((offset, "after-restart".into()));
    let watcher = nodes[(leader + 1) % 3].as_ref().unwrap();
    let p0 = partitions(watcher)
        .into_iter()
        .find(|p| p["partition"] == 0)
        .unwrap();
    assert!(p0["leader_epoch"].as_u64().unwrap() > epoch, "{p0}");
    let stored = read_partition(&addrs, TOPIC, 0);
    let want: Vec<(u64, Vec<u8>)> = acked
        .iter()
        .map(|(o, v)| (*o, v.as_bytes().to_vec()))
        .collect();
    assert_eq!(stored, want);
    let out = nodes[leader].take().unwrap().terminate();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "restarted leader asked for a new election: {}",
        err.contains("asked the controller for a new election")
    );
}

#[test]
fn a_lost_replica_is_replaced_and_the_new_copy_serves_everything() {
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(root.path(), 4, 3);
    c.extra = "node_loss_grace_ms = 3000\n".into();
    let (mut nodes, addrs) = c.start_registered(4);
    let config = TopicConfig {
        partitions: PARTITIONS,
        replication_factor: Some(3),
        ..TopicConfig::default()
    };
    nodes[3]
        .as_ref()
        .unwrap()
        .client()
        .create_topic(TOPIC, &config)
        .unwrap();
    wait_partitions(
        nodes[0].as_ref().unwrap(),
        "all in sync",
        Duration::from_secs(20),
        |p| isr_len(p) == 3,
    );
    let mut acked: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for i in 0..100u32 {
        let partition = i % PARTITIONS;
        let v = format!("before-{i}");
        let (offset, _) = produce_retrying(&addrs, TOPIC, partition, &v, Duration::from_secs(20));
        acked.entry(partition).or_default().push((offset, v));
    }

    // A replica of partition 0 that does not lead it, and the node that holds no copy of it.
    let p0 = partitions(nodes[0].as_ref().unwrap())
        .into_iter()
        .find(|p| p["partition"] == 0)
        .unwrap();
    let ids = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect()
    };
    let (leader, replicas) = (p0["leader"].as_u64().unwrap(), ids(&p0["replicas"]));
    let victim = *replicas.iter().find(|n| **n != leader).unwrap();
    let spare = (1..=4u64).find(|n| !replicas.contains(n)).unwrap();
    nodes[victim as usize - 1].as_mut().unwrap().kill9();
    let watcher = nodes[leader as usize - 1].as_ref().unwrap();

    // After the 3 s grace the spare node takes the lost replica's place, catches up and joins.
    wait_partitions(
        watcher,
        "replaced and in sync",
        Duration::from_secs(60),
        |p| {
            let r = ids(&p["replicas"]);
            !r.contains(&victim) && r.len() == 3 && isr_len(p) == 3
        },
    );
    let p0 = partitions(watcher)
        .into_iter()
        .find(|p| p["partition"] == 0)
        .unwrap();
    assert!(ids(&p0["replicas"]).contains(&spare), "{p0}");
    assert_eq!(p0["leader"].as_u64().unwrap(), leader, "{p0}");

    // The new copy is complete: with the old leader gone too, it or the other survivor serves
    // every acknowledged record. (The lost node comes back first, no longer a replica of
    // partition 0, so that two of the three metadata controllers stay up.)
    nodes[victim as usize - 1] = Some(c.start(victim as usize - 1));
    nodes[leader as usize - 1].as_mut().unwrap().kill9();
    let survivors: Vec<String> = (1..=4u64)
        .filter(|n| *n != leader)
        .map(|n| addrs[n as usize - 1].clone())
        .collect();
    let (offset, _) = produce_retrying(&survivors, TOPIC, 0, "after", Duration::from_secs(60));
    acked.get_mut(&0).unwrap().push((offset, "after".into()));
    let stored = read_partition(&survivors, TOPIC, 0);
    let want: Vec<(u64, Vec<u8>)> = acked[&0]
        .iter()
        .map(|(o, v)| (*o, v.as_bytes().to_vec()))
        .collect();
    assert_eq!(stored, want);
}

#[test]
fn a_joining_node_takes_its_share_of_replicas_and_nothing_is_lost() {
    const JOINED: &str = "rebalanced";
    const JOINED_PARTITIONS: u32 = 8;
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(root.path(), 4, 3);
    let (mut nodes, mut addrs) = c.start_registered(3);
    let config = TopicConfig {
        partitions: JOINED_PARTITIONS,
        replication_factor: Some(2),
        ..TopicConfig::default()
    };
    let topic_id = nodes[0]
        .as_ref()
        .unwrap()
        .client()
        .create_topic(JOINED, &config)
        .unwrap();
    let mut acked: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for i in 0..80u32 {
        let partition = i % JOINED_PARTITIONS;
        let v = format!("before-join-{i}");
        let (offset, _) = produce_retrying(&addrs, JOINED, partition, &v, Duration::from_secs(20));
        acked.entry(partition).or_default().push((offset, v));
    }

    // Node 4 joins: every partition ends on the replicas placement would give it over four
    // nodes, two replicas each, both in sync.
    nodes.push(Some(c.start(3)));
    addrs.push(nodes[3].as_ref().unwrap().addr.clone());
    let candidates: Vec<cluster::Candidate> = (1..=4).map(cluster::Candidate::new).collect();
    let target = |p: u32| -> Vec<u64> {
        let mut t: Vec<u64> = cluster::replicas(topic_id, p, 2, &candidates)
            .unwrap()
            .into_iter()
            .map(u64::from)
            .collect();
        t.sort();
        t
    };
    assert!(
        (0..JOINED_PARTITIONS).any(|p| target(p).contains(&4)),
        "placement gives node 4 nothing of this topic; pick another partition count"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ps = topic_partitions(nodes[0].as_ref().unwrap(), JOINED);
        let settled = ps.iter().all(|p| {
            let i = p["partition"].as_u64().unwrap() as u32;
            let mut r: Vec<u64> = p["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap())
                .collect();
            r.sort();
            r == target(i) && isr_len(p) == 2 && p["leader"].as_u64().unwrap_or(0) != 0
        });
        if settled && ps.len() == JOINED_PARTITIONS as usize {
            break;
        }
        assert!(Instant::now() < deadline, "not rebalanced: {ps:?}");
        std::thread::sleep(Duration::from_millis(250));
    }

    // Every acknowledged record is still there, and writes go on.
    for (partition, want) in &acked {
        let stored = read_partition(&addrs, JOINED, *partition);
        let got: Vec<(u64, String)> = stored
            .into_iter()
            .map(|(o, v)| (o, String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(&got, want, "partition {partition}");
    }
    produce_retrying(&addrs, JOINED, 0, "after-join", Duration::from_secs(20));
}
