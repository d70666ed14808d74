//! What the nodes say about the cluster: partitions, leaders and in-sync sets from `/cluster`,
//! replica positions from `/metrics`, whole-partition reads, and a per-node view for diagnostics.

use super::*;

/// Node `i`'s `/cluster` document, if it answers.
fn cluster_doc(c: &NsCluster, i: usize) -> Option<Value> {
    let (code, body) = c.get(i, "/cluster")?;
    if code != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// The test topic's partitions in a `/cluster` document, ordered by partition.
fn topic_partitions(doc: &Value) -> Vec<Value> {
    let mut ps: Vec<Value> = doc["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["topic"] == TOPIC)
        .cloned()
        .collect();
    ps.sort_by_key(|p| p["partition"].as_u64());
    ps
}

/// The topic's partitions as the first reachable node not in `avoid` lists them.
pub(crate) fn partitions(c: &NsCluster, avoid: &BTreeSet<usize>) -> Option<Vec<Value>> {
    (0..c.len())
        .filter(|i| !avoid.contains(i))
        .find_map(|i| Some(topic_partitions(&cluster_doc(c, i)?)))
}

/// Partition -> index of the node leading it (partitions without a leader are left out).
pub(crate) fn leaders(c: &NsCluster, avoid: &BTreeSet<usize>) -> BTreeMap<u32, usize> {
    partitions(c, avoid)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let partition = u32::try_from(p["partition"].as_u64()?).ok()?;
            let leader = p["leader"].as_u64().filter(|l| *l != 0)?;
            Some((partition, usize::try_from(leader - 1).ok()?))
        })
        .collect()
}

/// Every partition of the topic is listed, led, and has all replicas in its in-sync set.
pub(crate) fn all_in_sync(ps: &[Value]) -> bool {
    ps.len() == PARTITIONS as usize
        && ps.iter().all(|p| {
            p["leader"].as_u64().unwrap_or(0) != 0
                && p["isr"].as_array().map_or(0, Vec::len) == NODES
        })
}

/// Waits up to `limit` until every node answers and sees every partition led and fully in sync.
pub(crate) fn wait_in_sync(c: &NsCluster, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let ok = (0..c.len())
            .all(|i| cluster_doc(c, i).is_some_and(|doc| all_in_sync(&topic_partitions(&doc))));
        if ok {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Node `i`'s non-zero `sprawl_gossip_*` counters.
fn gossip_counters(c: &NsCluster, i: usize) -> String {
    let Some((200, text)) = c.get(i, "/metrics") else {
        return "no metrics".into();
    };
    text.lines()
        .filter(|l| l.starts_with("sprawl_gossip_") && !l.ends_with(" 0"))
        .map(|l| {
            let name = l.split('{').next().unwrap_or(l);
            let v = l.rsplit(' ').next().unwrap_or("");
            format!("{}={v}", name.trim_start_matches("sprawl_gossip_"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every node's view, one line each: Raft role, term, leader and commit index; gossip member
/// states; partitions with leader and in-sync set; non-zero gossip counters.
pub(crate) fn views(c: &NsCluster) -> String {
    (0..c.len())
        .map(|i| {
            let Some(doc) = cluster_doc(c, i) else {
                return format!("node {}: no answer", i + 1);
            };
            let ctl = &doc["controller"];
            let last_error = match ctl["last_error"].as_str() {
                Some(e) if !e.is_empty() => format!(" last_error {e:?}"),
                _ => String::new(),
            };
            let members: Vec<String> = doc["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| format!("{}:{}", m["id"], m["state"].as_str().unwrap_or("?")))
                .collect();
            let parts: Vec<String> = topic_partitions(&doc)
                .iter()
                .map(|p| {
                    format!(
                        "p{} leader {} isr {}",
                        p["partition"], p["leader"], p["isr"]
                    )
                })
                .collect();
            format!(
                "node {}: raft {} term {} leader {} commit {}{last_error}; gossip {}; {}; {}",
                i + 1,
                ctl["role"],
                ctl["term"],
                ctl["leader_id"],
                ctl["commit_index"],
                members.join(" "),
                parts.join(", "),
                gossip_counters(c, i)
            )
        })
        .collect::<Vec<_>>()
        .join("\n    ")
}

/// One pass over a partition from offset 0 to its end; `None` on any error.
fn read_once(cc: &mut ClusterClient, p: u32, by: &mut BTreeSet<u32>) -> Option<PartitionRead> {
    let mut recs: PartitionRead = Vec::new();
    let mut from = 0u64;
    loop {
        let f = cc.fetch(TOPIC, p, from, 1 << 20, 0).ok()?;
        if let Some((id, _)) = cc.leader_of(TOPIC, p) {
            by.insert(id);
        }
        let Some(last) = f.records.last().map(|r| r.offset) else {
            return Some(recs);
        };
        recs.extend(f.records.into_iter().map(|r| (r.offset, r.value.to_vec())));
        from = last + 1;
    }
}

/// Reads all of partition `p` from its leader (through any of `addrs`), retrying until `limit`
/// (and, with `expect_len`, until at least that many records come back). Returns the records and
/// the ids of the nodes that served them.
pub(crate) fn read_partition(
    addrs: &[String],
    p: u32,
    expect_len: Option<usize>,
    limit: Duration,
) -> Option<(PartitionRead, BTreeSet<u32>)> {
    let deadline = Instant::now() + limit;
    let mut client: Option<ClusterClient> = None;
    let mut best: Option<(PartitionRead, BTreeSet<u32>)> = None;
    while Instant::now() < deadline {
        if client.is_none() {
            client = connect(addrs);
        }
        if let Some(cc) = client.as_mut() {
            let mut by = BTreeSet::new();
            match read_once(cc, p, &mut by) {
                Some(recs) if expect_len.is_none_or(|n| recs.len() >= n) => {
                    return Some((recs, by));
                }
                Some(recs) => best = Some((recs, by)),
                None => client = None,
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // A read that stayed short is still returned, so the caller can report the difference.
    best
}

/// Within `limit`, every node's log end and high watermark of every partition reach the final
/// read's end; the mismatches left at the deadline (empty when all converged).
pub(crate) fn replicas_converged(
    c: &NsCluster,
    ends: &BTreeMap<u32, u64>,
    limit: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let mut bad = Vec::new();
        for i in 0..c.len() {
            for (p, end) in ends {
                for metric in ["partition_end_offset", "replica_high_watermark"] {
                    let got = c.partition_metric(i, metric, TOPIC, *p);
                    if got != Some(*end) {
                        bad.push(format!(
                            "node {} p{p}: {metric} {got:?}, the final read ends at {end}",
                            i + 1
                        ));
                    }
                }
            }
        }
        if bad.is_empty() || Instant::now() >= deadline {
            return bad;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
