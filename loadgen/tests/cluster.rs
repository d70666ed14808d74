//! loadgen against a 3-node Sprawl cluster (all three metadata controllers), given only the first
//! node's address: it creates a topic with replication factor 3 and min-insync 2, produces with
//! `acks=all` to every partition through each partition's leader, consumes them, and its checker
//! (reading each partition from its leader) finds nothing lost, duplicated or reordered.

mod common;

use std::time::{Duration, Instant};

use common::{check_counts, free_port, loadgen, read_json, sprawl_binary};
use loadgen::spawn::SpawnedNode;
use net::client::{Client, ClientConfig};

const TOPIC: &str = "replicated";
const PARTITIONS: u32 = 6;

/// Starts three nodes, each a controller, joined through the first one's gossip address. The
/// controllers' ports are fixed before the nodes start, so one may be taken in between (e.g. as
/// the source port of a node's own connection attempt): then the cluster starts again on new
/// ports, up to three times.
fn start_cluster() -> Vec<SpawnedNode> {
    let mut attempt = 1;
    loop {
        match try_start_cluster() {
            Ok(nodes) => return nodes,
            Err(e) if attempt < 3 && e.contains("already in use") => {
                eprintln!("start attempt {attempt}: {e}; starting again on other ports");
                attempt += 1;
            }
            Err(e) => panic!("start: {e}"),
        }
    }
}

fn try_start_cluster() -> Result<Vec<SpawnedNode>, String> {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let controllers = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes: Vec<SpawnedNode> = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let mut extra = vec![
            "--node-id".to_owned(),
            (i + 1).to_string(),
            "--controllers".to_owned(),
            controllers.clone(),
            "--gossip-port".to_owned(),
            "0".to_owned(),
        ];
        if let Some(first) = nodes.first() {
            let seed = first.port_file_field("gossip").expect("gossip address");
            extra.extend(["--seeds".to_owned(), seed]);
        }
        let node = SpawnedNode::start_with(&sprawl_binary(), 1, port, &extra);
        nodes.push(node.map_err(|e| format!("{e:?}"))?);
    }
    Ok(nodes)
}

/// Waits until the first node's metadata lists all three nodes (the controllers elected a
/// leader, which registered them).
fn wait_registered(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let brokers = Client::connect(addr, ClientConfig::default())
            .and_then(|mut c| c.metadata(Some(&[])))
            .map(|m| m.brokers.len())
            .unwrap_or(0);
        if brokers == 3 {
            return;
        }
        assert!(Instant::now() < deadline, "{brokers} of 3 nodes registered");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn acks_all_through_one_node_reaches_every_partition_on_its_leader() {
    let nodes = start_cluster();
    let entry = nodes[0].client_addr.clone();
    wait_registered(&entry);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("cluster.json");
    let output = loadgen(&[
        "--broker",
        &entry,
        "--topic",
        TOPIC,
        "--create-topic",
        "--partitions",
        &PARTITIONS.to_string(),
        "--replication-factor",
        "3",
        "--min-insync",
        "2",
        "--acks",
        "all",
        "--producers",
        "2",
        "--consumers",
        "1",
        "--batch",
        "4",
        "--window",
        "8",
        "--size",
        "256",
        "--warmup-secs",
        "0.5",
        "--duration-secs",
        "2",
        "--verify",
        "--report",
        report.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        stdout.contains("verify:") && stdout.contains(": ok"),
        "{stdout}"
    );

    let r = read_json(&report);
    let acked = check_counts(&r, true);
    assert_eq!(r["config"]["replication_factor"], 3);
    assert_eq!(r["verify"]["ok"], true, "{}", r["verify"]);
    assert_eq!(r["verify"]["lost"], 0);
    assert_eq!(r["verify"]["records_expected"].as_u64(), Some(acked));

    // The topic really is replicated and spread: three replicas per partition, and the node
    // loadgen was given does not lead them all (so batches went to other nodes).
    let mut client = Client::connect(&entry, ClientConfig::default()).unwrap();
    let metadata = client.metadata(Some(&[TOPIC])).unwrap();
    let topic = metadata.topics.iter().find(|t| t.name == TOPIC).unwrap();
    assert_eq!(topic.partitions.len(), PARTITIONS as usize);
    let mut leaders: Vec<u32> = Vec::new();
    for p in &topic.partitions {
        let placement = p.placement.as_ref().expect("Metadata v1 placement");
        assert_eq!(placement.replicas.len(), 3, "{placement:?}");
        leaders.push(placement.leader);
    }
    assert!(
        leaders.iter().any(|&l| l != metadata.node_id),
        "node {} leads every partition: {leaders:?}",
        metadata.node_id
    );
    // Every partition received records (the sum is what loadgen acknowledged).
    let info = client.describe_topic(TOPIC).unwrap();
    for p in &info.partitions {
        assert!(
            p.end_offset > 0,
            "partition {} is empty: {info:?}",
            p.partition
        );
    }
    assert_eq!(
        info.partitions.iter().map(|p| p.end_offset).sum::<u64>(),
        acked
    );
    for node in nodes {
        node.stop().expect("clean stop");
    }
}

/// A partition leader other than the node loadgen was given is killed (SIGKILL) while loadgen
/// produces and consumes: batches stranded on it are resent to the new leaders, the consumer
/// follows its partitions to them, nothing acknowledged is lost or goes unread.
#[test]
fn a_leader_killed_mid_run_costs_resends_not_records() {
    let mut nodes = start_cluster();
    let entry = nodes[0].client_addr.clone();
    wait_registered(&entry);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("failover.json");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--broker",
            &entry,
            "--topic",
            "failover",
            "--create-topic",
            "--partitions",
            &PARTITIONS.to_string(),
            "--replication-factor",
            "3",
            "--min-insync",
            "2",
            "--acks",
            "all",
            "--producers",
            "2",
            "--consumers",
            "1",
            "--batch",
            "2",
            "--window",
            "8",
            "--size",
            "128",
            "--warmup-secs",
            "0.5",
            "--duration-secs",
            "6",
            "--verify",
            "--report",
            report.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run loadgen");

    // Once the topic exists and records flow, kill the node leading the most partitions among
    // those loadgen was not given.
    let deadline = Instant::now() + Duration::from_secs(30);
    let victim_id = loop {
        let leaders: Vec<u32> = Client::connect(&entry, ClientConfig::default())
            .and_then(|mut c| c.metadata(Some(&["failover"])))
            .map(|m| {
                m.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .filter_map(|p| p.placement.as_ref().map(|pl| pl.leader))
                    .collect()
            })
            .unwrap_or_default();
        let busiest = [2u32, 3]
            .into_iter()
            .max_by_key(|id| leaders.iter().filter(|l| *l == id).count())
            .filter(|id| leaders.contains(id));
        if let (true, Some(id)) = (leaders.len() == PARTITIONS as usize, busiest) {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "no partition led by node 2 or 3: {leaders:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_millis(2_000));
    // Dropping a SpawnedNode kills it with SIGKILL.
    drop(nodes.remove(victim_id as usize - 1));

    let output = run.wait_with_output().expect("loadgen exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadgen failed:\n{stdout}\n{stderr}"
    );
    let r = read_json(&report);
    let totals = &r["results"]["totals_including_warmup"];
    assert_eq!(totals["records_failed"], 0, "{stdout}\n{stderr}");
    // Every acknowledged record was consumed (records stored twice by a resend are read twice).
    let acked = totals["records_acked"].as_u64().unwrap();
    let consumed = totals["records_consumed"].as_u64().unwrap();
    assert!(
        acked > 0 && consumed >= acked,
        "consumed {consumed} of {acked}: {stdout}\n{stderr}"
    );
    assert!(
        totals["batches_resent"].as_u64().unwrap_or(0) > 0,
        "killing a leader caused no resend: {stdout}\n{stderr}"
    );
    assert_eq!(r["verify"]["ok"], true, "{}", r["verify"]);
    assert_eq!(r["verify"]["lost"], 0);
    // The victim's partitions moved to the surviving nodes, and every partition kept taking
    // records (loadgen round-robins over all of them until the end of the run).
    let mut client = Client::connect(&entry, ClientConfig::default()).unwrap();
    let metadata = client.metadata(Some(&["failover"])).unwrap();
    for p in &metadata.topics[0].partitions {
        let leader = p.placement.as_ref().map(|pl| pl.leader);
        assert!(
            leader.is_some_and(|l| l != 0 && l != victim_id),
            "partition {} led by {leader:?} after node {victim_id} died",
            p.partition
        );
    }
    eprintln!("node {victim_id} killed; loadgen said:\n{stdout}\n{stderr}");
    for node in nodes {
        node.stop().expect("clean stop");
    }
}
