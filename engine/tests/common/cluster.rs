//! Several real nodes on fixed ports forming one cluster: the first `controllers` of them are
//! the metadata controllers (`--controllers`); every node joins gossip through the gossip
//! addresses the other nodes had when they last started (a restarted node gets a new one).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use net::client::{ClientError, ClusterClient};
use net::codec::Acks;
use serde_json::Value;

use super::{http_get, Node};

pub use super::ports::free_port;

/// The nodes' directories, client ports and shared settings.
pub struct Cluster {
    pub dirs: Vec<PathBuf>,
    pub ports: Vec<u16>,
    pub controllers: String,
    /// Each node's gossip address as of its last start.
    pub gossip: Vec<Option<String>>,
    /// More TOML lines for every node's configuration file.
    pub extra: String,
}

impl Cluster {
    /// `nodes` nodes under `root`, the first `controllers` of them metadata controllers.
    pub fn new(root: &Path, nodes: usize, controllers: usize) -> Cluster {
        let ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
        let list = ports[..controllers]
            .iter()
            .enumerate()
            .map(|(i, p)| format!("\"{}@127.0.0.1:{p}\"", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        Cluster {
            dirs: (1..=nodes).map(|i| root.join(format!("n{i}"))).collect(),
            ports,
            controllers: list,
            gossip: vec![None; nodes],
            extra: String::new(),
        }
    }

    fn toml(&self, i: usize) -> String {
        let mut t = format!(
            "node_id = {}\ngossip_port = 0\ncontrollers = [{}]\n",
            i + 1,
            self.controllers
        );
        let seeds: Vec<String> = self
            .gossip
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .filter_map(|(_, g)| g.as_ref().map(|g| format!("\"{g}\"")))
            .collect();
        if !seeds.is_empty() {
            t.push_str(&format!("seeds = [{}]\n", seeds.join(", ")));
        }
        t.push_str(&self.extra);
        t
    }

    /// Starts (or restarts) node `i` (0-based; node id `i + 1`) on its port; it joins gossip
    /// through the other nodes started so far.
    pub fn start(&mut self, i: usize) -> Node {
        let node = Node::start_on_with_config(&self.dirs[i], 1, self.ports[i], &self.toml(i));
        let ports: Value = serde_json::from_str(
            &std::fs::read_to_string(self.dirs[i].join("ports.json")).unwrap(),
        )
        .unwrap();
        self.gossip[i] = Some(ports["gossip"].as_str().unwrap().to_string());
        node
    }

    /// Starts nodes `0..count` (with [`Cluster::extra`] as set now) and waits until node 0 sees a
    /// metadata leader with all `count` registered. Returns the nodes, as `Option`s so a test can
    /// kill one and restart it in its place, and their client addresses in the same order.
    pub fn start_registered(&mut self, count: usize) -> (Vec<Option<Node>>, Vec<String>) {
        let nodes: Vec<Option<Node>> = (0..count).map(|i| Some(self.start(i))).collect();
        let addrs: Vec<String> = nodes.iter().flatten().map(|n| n.addr.clone()).collect();
        if let Some(first) = nodes.first().and_then(Option::as_ref) {
            wait_registered(first, count);
        }
        (nodes, addrs)
    }
}

/// `GET /cluster` of `node`.
pub fn cluster_doc(node: &Node) -> Value {
    let (code, body) = http_get(&node.http, "/cluster");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The partitions of `topic` in `/cluster` of `node`.
pub fn topic_partitions(node: &Node, topic: &str) -> Vec<Value> {
    cluster_doc(node)["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["topic"] == topic)
        .cloned()
        .collect()
}

/// The controller section of `/cluster`.
pub fn controller(node: &Node) -> Value {
    cluster_doc(node)["controller"].clone()
}

/// Waits (up to 60 s) until `node` sees a metadata leader with `nodes` registered nodes.
pub fn wait_registered(node: &Node, nodes: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let v = controller(node);
        if v["leader_id"].as_u64().unwrap_or(0) != 0
            && v["nodes"].as_array().map_or(0, Vec::len) == nodes
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no metadata leader with {nodes} registered nodes: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Produces `value` to `topic`/`partition` with acks=all, retrying through leader changes for up to
/// `limit`; returns the acknowledged offset and how long it took.
pub fn produce_retrying(
    addrs: &[String],
    topic: &str,
    partition: u32,
    value: &str,
    limit: Duration,
) -> (u64, Duration) {
    let started = Instant::now();
    let boot: Vec<&str> = addrs.iter().map(|s| s.as_str()).collect();
    let mut last: Option<ClientError> = None;
    while started.elapsed() < limit {
        if let Ok(mut cc) = ClusterClient::connect(&boot, Default::default()) {
            let rec = super::records(&[value.as_bytes()]);
            match cc.produce(topic, partition, Acks::All, None, &rec) {
                Ok(Some(ack)) => return (ack.base_offset, started.elapsed()),
                Ok(None) => panic!("acks=all produce got no acknowledgement"),
                Err(e) => last = Some(e),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no acks=all write to partition {partition} within {limit:?}: {last:?}");
}

/// Every record of `topic`/`partition`, read from its current leader.
pub fn read_partition(addrs: &[String], topic: &str, partition: u32) -> Vec<(u64, Vec<u8>)> {
    let boot: Vec<&str> = addrs.iter().map(|s| s.as_str()).collect();
    let mut cc = ClusterClient::connect(&boot, Default::default()).unwrap();
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let f = cc.fetch(topic, partition, offset, 1 << 20, 0).unwrap();
        if f.records.is_empty() {
            return out;
        }
        for r in f.records {
            offset = r.offset + 1;
            out.push((r.offset, r.value.to_vec()));
        }
    }
}
