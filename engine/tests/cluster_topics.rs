//! Topics through the metadata controllers, on four real nodes (three controllers and one node
//! that only follows the metadata): a topic created on any node is placed over the live nodes,
//! every node learns it, each partition is served by its leader only (the others answer
//! NOT_LEADER naming it), and a delete on any node removes it everywhere.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{cluster_doc, wait_registered, Cluster};
use common::Node;
use net::client::ClientError;
use net::codec::{Acks, ErrorCode, TopicConfig};

/// Waits until a controller leads and the metadata lists `nodes` registered nodes.
/// Waits until `node` has (`Some(id)`) or lacks (`None`) topic `name`.
fn wait_topic(node: &Node, name: &str, want: Option<u64>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let have = node
            .client()
            .list_topics()
            .unwrap()
            .into_iter()
            .find(|t| t.name == name)
            .map(|t| t.topic_id);
        if have == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node at {} has topic {name} = {have:?}, want {want:?}",
            node.addr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn topics_are_placed_over_the_cluster_and_served_by_their_leaders() {
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(root.path(), 4, 3);
    let nodes: Vec<Node> = (0..4).map(|i| c.start(i)).collect();
    wait_registered(&nodes[0], 4);

    // Created on the node that is not a controller: forwarded to the metadata leader.
    let config = TopicConfig {
        partitions: 8,
        ..TopicConfig::default()
    };
    let topic_id = nodes[3].client().create_topic("orders", &config).unwrap();
    for n in &nodes {
        wait_topic(n, "orders", Some(topic_id));
    }
    let err = nodes[1]
        .client()
        .create_topic("orders", &config)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                code: ErrorCode::TopicExists,
                ..
            }
        ),
        "{err:?}"
    );
    let tiered = TopicConfig {
        tier_after_ms: Some(0),
        ..config
    };
    // Refused (these nodes have no object store; with one, tiering is refused in a cluster).
    let err = nodes[0]
        .client()
        .create_topic("tiered", &tiered)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                code: ErrorCode::InvalidConfig,
                ..
            }
        ),
        "{err:?}"
    );

    // Every node shows the same placement; leaders spread over more than one node.
    let doc = cluster_doc(&nodes[3]);
    let addrs: BTreeMap<u64, String> = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["client_addr"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let leaders: BTreeMap<u32, u64> = doc["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["topic"] == "orders")
        .map(|p| {
            assert_eq!(p["replicas"].as_array().unwrap().len(), 1, "{p}");
            (
                p["partition"].as_u64().unwrap() as u32,
                p["leader"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(leaders.len(), 8, "{doc}");
    assert!(leaders.values().all(|l| (1..=4).contains(l)), "{leaders:?}");
    let distinct: std::collections::BTreeSet<_> = leaders.values().collect();
    assert!(
        distinct.len() >= 2,
        "all partitions on one node: {leaders:?}"
    );
    // The other nodes converge on the same view (each polls the metadata every 500 ms).
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in &nodes[..3] {
        while cluster_doc(n)["partitions"] != doc["partitions"] {
            assert!(
                Instant::now() < deadline,
                "views differ: {}",
                cluster_doc(n)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Each partition: the leader takes writes and serves them; any other node says who leads.
    for (&p, &leader) in &leaders {
        let value = format!("record of partition {p}");
        let rec = common::records(&[value.as_bytes()]);
        let wrong = nodes.iter().position(|n| n.addr != addrs[&leader]).unwrap();
        let err = nodes[wrong]
            .client()
            .produce("orders", p, Acks::All, None, &rec)
            .unwrap_err();
        match &err {
            ClientError::Server {
                code: ErrorCode::NotLeader,
                message,
                ..
            } => assert!(message.contains(&addrs[&leader]), "{message}"),
            other => panic!("partition {p} on node {}: {other:?}", wrong + 1),
        }
        let mut lc = net::client::Client::connect(&addrs[&leader], Default::default()).unwrap();
        lc.produce("orders", p, Acks::All, None, &rec).unwrap();
        let f = lc.fetch("orders", p, 0, 1 << 20, 0).unwrap();
        assert_eq!(f.records.len(), 1);
        assert_eq!(f.records[0].value, value.as_bytes());
    }

    // A routing client bootstrapped from one node reaches every partition's leader.
    let mut cc =
        net::client::ClusterClient::connect(&[&nodes[3].addr], Default::default()).unwrap();
    for &p in leaders.keys() {
        let rec = common::records(&[b"routed"]);
        cc.produce("orders", p, Acks::All, None, &rec).unwrap();
        let f = cc.fetch("orders", p, 1, 1 << 20, 0).unwrap();
        assert_eq!(f.records.len(), 1, "partition {p}");
        assert_eq!(f.records[0].value, &b"routed"[..]);
        let (leader, _) = cc.leader_of("orders", p).unwrap();
        assert_eq!(u64::from(leader), leaders[&p]);
    }
    assert!(cc.connection_count() >= 2);

    // Any node describes the topic with each leader's offsets (2 records per partition by now).
    for n in &nodes {
        let info = n.client().describe_topic("orders").unwrap();
        for p in &info.partitions {
            assert_eq!(p.end_offset, 2, "node at {}: {p:?}", n.addr);
        }
    }

    // Deleted through a controller that may not lead: gone everywhere.
    nodes[1].client().delete_topic("orders").unwrap();
    for n in &nodes {
        wait_topic(n, "orders", None);
    }
    let err = nodes[2].client().delete_topic("orders").unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                code: ErrorCode::UnknownTopic,
                ..
            }
        ),
        "{err:?}"
    );
}
