//! Cluster membership with real `sprawl` processes gossiping over UDP on loopback: three nodes
//! join through a seed, a SIGTERM'd node is seen as left, a kill -9'd node as failed, and the
//! views are readable with `sprawl cluster status`, `GET /cluster` and `/metrics`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{http_get, stderr, stdout, Node};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sprawl");

fn start(dir: &std::path::Path, node_id: u32, seeds: Option<&str>) -> Node {
    let mut toml = format!("node_id = {node_id}\ngossip_port = 0\n");
    if let Some(s) = seeds {
        toml.push_str(&format!("seeds = [\"{s}\"]\n"));
    }
    Node::start_with_config(dir, 1, &toml)
}

fn gossip_addr(node: &Node) -> String {
    let text = std::fs::read_to_string(node.dir.join("ports.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["gossip"]
        .as_str()
        .expect("ports.json names the gossip address")
        .to_string()
}

/// `sprawl cluster status --output json` against a node's HTTP port.
fn status(node: &Node) -> Value {
    let out = Command::new(BIN)
        .args([
            "cluster", "status", "--output", "json", "--http", &node.http,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cluster status failed: {}",
        stderr(&out)
    );
    serde_json::from_str(&stdout(&out)).expect("cluster status prints JSON")
}

fn states(doc: &Value) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Polls `node`'s view until `want` holds, or panics with the last view after `limit`.
fn wait_for(node: &Node, limit: Duration, what: &str, want: impl Fn(&[(u64, String)]) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let doc = status(node);
        let s = states(&doc);
        if want(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached in {limit:?}; view {s:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn state_of(s: &[(u64, String)], id: u64) -> Option<&str> {
    s.iter().find(|(i, _)| *i == id).map(|(_, st)| st.as_str())
}

#[test]
fn three_nodes_join_see_a_leave_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let n1 = start(&dir.path().join("n1"), 1, None);
    let seed = gossip_addr(&n1);
    let mut n2 = start(&dir.path().join("n2"), 2, Some(&seed));
    let n3 = start(&dir.path().join("n3"), 3, Some(&seed));

    let all_alive = |s: &[(u64, String)]| s.len() == 3 && s.iter().all(|(_, st)| st == "alive");
    for n in [&n1, &n2, &n3] {
        wait_for(n, Duration::from_secs(30), "three members alive", all_alive);
    }
    // Members carry their metadata: node 2's view of node 3 has node 3's real addresses.
    let doc = status(&n2);
    let m3 = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == 3)
        .unwrap()
        .clone();
    assert_eq!(m3["client_addr"], n3.addr.as_str());
    assert_eq!(m3["http_addr"], n3.http.as_str());
    assert_eq!(m3["shards"], 1);
    assert_eq!(doc["joined"], true);

    // A graceful stop is a leave, not a failure.
    let out = n3.terminate();
    assert!(
        out.status.success(),
        "SIGTERM'd node exited {:?}",
        out.status
    );
    for n in [&n1, &n2] {
        wait_for(n, Duration::from_secs(20), "node 3 left", |s| {
            state_of(s, 3) == Some("left")
        });
    }

    // kill -9: failure detection declares it down after the suspicion timeout (12 s).
    n2.kill9();
    wait_for(&n1, Duration::from_secs(60), "node 2 failed", |s| {
        state_of(s, 2) == Some("failed") && state_of(s, 3) == Some("left")
    });

    let (code, metrics) = http_get(&n1.http, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("sprawl_cluster_members{node=\"1\",state=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("sprawl_gossip_datagrams_in_total{node=\"1\"}"));
    let text = Command::new(BIN)
        .args(["cluster", "status", "--http", &n1.http])
        .output()
        .unwrap();
    let text = stdout(&text);
    assert!(text.starts_with("node 1, gossip "), "{text}");
    assert!(text.contains("failed") && text.contains("left"), "{text}");
}

#[test]
fn a_lone_node_says_so_and_cluster_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(&dir.path().join("alone"), 1);
    let (code, body) = http_get(&node.http, "/cluster");
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["clustered"], false);
    let text = Command::new(BIN)
        .args(["cluster", "status", "--http", &node.http])
        .output()
        .unwrap();
    assert!(stdout(&text).contains("runs alone"), "{}", stdout(&text));

    // Cluster settings without a node id, a bad seed and a taken gossip port are refused before
    // anything serves.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    for (args, expect) in [
        (
            vec!["--node-id", "1", "--gossip-port", taken_port.as_str()],
            "--gossip-port",
        ),
        (vec!["--gossip-port", "0"], "node-id"),
        (vec!["--node-id", "1", "--seeds", "nohost"], "HOST:PORT"),
        (
            vec!["--node-id", "1", "--bind", "0.0.0.0", "--gossip-port", "0"],
            "advertise",
        ),
    ] {
        let out = common::serve_output(&dir.path().join("refused"), &args);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }

    // The CLI names the address it could not reach.
    let out = Command::new(BIN)
        .args(["cluster", "status", "--http", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("127.0.0.1:1"), "{}", stderr(&out));
}
