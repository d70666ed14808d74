//! The Raft-replicated metadata on three real `sprawl` processes named in `--controllers`: they
//! elect one leader, the leader registers every live member, a kill -9 of the leader gives a new
//! leader at a higher term with the metadata intact, and the killed node catches up after a
//! restart. Raft messages travel as `Raft` frames over the client ports.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{controller, Cluster};
use common::{http_get, Node};
use serde_json::Value;

/// Waits until every node in `nodes` reports the same leader (not 0, not `not`) whose metadata
/// lists `registered` nodes; returns (leader id, term).
fn agreed_leader(nodes: &[&Node], not: u64, registered: usize, limit: Duration) -> (u64, u64) {
    let deadline = Instant::now() + limit;
    loop {
        let views: Vec<Value> = nodes.iter().map(|n| controller(n)).collect();
        let leaders: Vec<u64> = views
            .iter()
            .map(|v| v["leader_id"].as_u64().unwrap())
            .collect();
        let leader = leaders[0];
        let leading = views.iter().filter(|v| v["role"] == "leader").count();
        let all_registered = views
            .iter()
            .all(|v| v["nodes"].as_array().unwrap().len() == registered);
        if leader != 0
            && leader != not
            && leaders.iter().all(|l| *l == leader)
            && leading == 1
            && all_registered
        {
            let term = views[0]["term"].as_u64().unwrap();
            return (leader, term);
        }
        assert!(
            Instant::now() < deadline,
            "no agreed leader with {registered} registered nodes in {limit:?}: {views:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn three_controllers_elect_register_fail_over_and_catch_up() {
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(root.path(), 3, 3);
    let mut nodes: Vec<Option<Node>> = (0..3).map(|i| Some(c.start(i))).collect();
    let all: Vec<&Node> = nodes.iter().flatten().collect();
    let (leader, term) = agreed_leader(&all, 0, 3, Duration::from_secs(60));
    // Every registered address is the member's real client address.
    let view = controller(all[0]);
    for (i, n) in all.iter().enumerate() {
        let entry = view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == (i + 1) as u64)
            .unwrap_or_else(|| panic!("node {} not registered: {view}", i + 1));
        assert_eq!(entry["client_addr"], n.addr.as_str());
    }
    let version = view["version"].as_u64().unwrap();
    assert!(version >= 3, "{view}");

    // kill -9 the leader: the other two elect a new one at a higher term; metadata survives.
    let li = (leader - 1) as usize;
    nodes[li].as_mut().unwrap().kill9();
    nodes[li] = None;
    let rest: Vec<&Node> = nodes.iter().flatten().collect();
    let (new_leader, new_term) = agreed_leader(&rest, leader, 3, Duration::from_secs(60));
    assert_ne!(new_leader, leader);
    assert!(new_term > term, "term {new_term} after {term}");

    // The killed node comes back on its port and catches up with the log.
    nodes[li] = Some(c.start(li));
    let all: Vec<&Node> = nodes.iter().flatten().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let views: Vec<Value> = all.iter().map(|n| controller(n)).collect();
        let applied: Vec<u64> = views
            .iter()
            .map(|v| v["applied_index"].as_u64().unwrap())
            .collect();
        let leaders: Vec<u64> = views
            .iter()
            .map(|v| v["leader_id"].as_u64().unwrap())
            .collect();
        if applied.iter().all(|a| *a == applied[0])
            && leaders.iter().all(|l| *l == leaders[0] && *l != 0)
            && views[li]["version"].as_u64().unwrap() >= version
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted node did not catch up: {views:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, metrics) = http_get(&all[li].http, "/metrics");
    assert!(metrics.contains("sprawl_raft_term{node="), "{metrics}");
    assert!(
        metrics.contains("sprawl_metadata_version{node="),
        "{metrics}"
    );
}

#[test]
fn raft_frames_to_a_node_that_is_not_a_controller_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let node = Node::start_in(&root.path().join("plain"), 1);
    let mut client = node.client();
    let err = client.raft(1, 0, b"not raft").unwrap_err().to_string();
    assert!(err.contains("not a metadata controller"), "{err}");
    let out = common::serve_output(
        &root.path().join("bad"),
        &[
            "--node-id",
            "1",
            "--controllers",
            "1@127.0.0.1:7070,1@127.0.0.1:7071",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listed twice"), "{stderr}");
}
