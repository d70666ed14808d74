//! The analytics shard's part in a cluster: once a tick, whether this node, as the busiest node,
//! should hand the leadership of one of the replicated partitions it leads to a cooler in-sync
//! replica ([`analytics::lead`]). In `act` mode the decision goes to the metadata controller as
//! a hint (AlterInSync v1 with a `successor`, [`crate::replication::isr::hand_over`]); the
//! controller checks it against the committed metadata and the partition's hand-over history
//! before it commits the new leader.
//!
//! Inputs, all real: this node's load is the sum of the smoothed produce rates the analyzer
//! keeps for the partitions this node leads (or holds alone); the other nodes' loads are the produce rates they
//! announce in gossip (renewed at most once a minute, on a 25% change); a node's capacity is
//! its shard count (from gossip) times this node's `analytics_shard_capacity_msgs_per_s`, so
//! the setting is assumed to be the same on every node.

use std::rc::Rc;

use analytics::{Decision, LedPartition, NodeLoad};
use gossip::MemberState;

use crate::analytics_shard::{AnalyticsShard, DecisionRecord, Mode};
use crate::shard::Shard;

/// One round of the leadership balance; `local` are the analyzer ids of the partitions this
/// node holds this tick. The decision, if any, is carried out in `act` mode and returned with
/// its outcome.
pub async fn tick(
    shard: &Rc<Shard>,
    a: &AnalyticsShard,
    t_s: u64,
    local: &[u32],
) -> Option<DecisionRecord> {
    let me = shard.config.node_id;
    let per_shard = shard.config.analytics_shard_capacity_msgs_per_s;
    let (others, alive) = {
        let gossip = shard.gossip.borrow();
        let h = gossip.as_ref()?;
        let mut others = Vec::new();
        let mut alive = Vec::new();
        for m in h.members() {
            if m.state == MemberState::Alive && m.member.node_id() != me {
                alive.push(m.member.node_id());
                others.push(NodeLoad {
                    node: m.member.node_id(),
                    load_msgs_per_s: f64::from(m.member.load_msgs_per_s()),
                    capacity_msgs_per_s: f64::from(m.member.shard_count().max(1)) * per_shard,
                });
            }
        }
        (others, alive)
    };
    let meta = shard.meta.get();
    let catalog = shard.catalog.borrow().clone();
    let mut led = Vec::new();
    // Replicated partitions held here but led elsewhere: their produce load is not this node's
    // (and a partition just handed over must not count while its smoothed rate decays).
    let mut led_elsewhere = std::collections::HashSet::new();
    // Leaders as of this tick, replacing the last tick's (bounded by the metadata).
    let before = std::mem::take(&mut *a.leaders.borrow_mut());
    let mut leaders = std::collections::HashMap::new();
    for (name, t) in &meta.topics {
        let Some(topic_id) = catalog.topics.get(name).map(|c| c.topic_id) else {
            continue;
        };
        for (i, ps) in t.partitions.iter().enumerate() {
            let key = (name.clone(), i as u32);
            let was = before.get(&key).copied();
            leaders.insert(key, ps.leader);
            if ps.replicas.len() < 2 {
                continue;
            }
            let entity = a.entity(name, topic_id, i as u32);
            if ps.leader != u64::from(me) {
                led_elsewhere.insert(entity);
                continue;
            }
            if let Some(from) = was.filter(|w| *w != 0 && *w != u64::from(me)) {
                // Taken over from `from`: not handed straight back.
                if let Ok(from) = u32::try_from(from) {
                    a.analyzer.borrow_mut().leader_arrived(entity, from, t_s);
                }
            }
            let in_sync: Vec<u32> = ps
                .in_sync
                .iter()
                .filter_map(|n| u32::try_from(*n).ok())
                .filter(|n| alive.contains(n))
                .collect();
            if !in_sync.is_empty() {
                led.push(LedPartition {
                    partition: entity,
                    in_sync,
                });
            }
        }
    }
    *a.leaders.borrow_mut() = leaders;
    let load: f64 = {
        let analyzer = a.analyzer.borrow();
        local
            .iter()
            .filter(|e| !led_elsewhere.contains(*e))
            .map(|e| analyzer.partition_rate(*e))
            .sum()
    };
    let mut nodes = others;
    nodes.push(NodeLoad {
        node: me,
        load_msgs_per_s: load,
        capacity_msgs_per_s: shard.shards as f64 * per_shard,
    });
    let decision = a
        .analyzer
        .borrow_mut()
        .decide_leader(t_s, me, &nodes, &led)?;
    let Decision::Lead {
        partition, to_node, ..
    } = decision
    else {
        return None;
    };
    let target = a.name_of(partition);
    let mut record = DecisionRecord {
        t_s,
        decision,
        target: target.clone(),
        outcome: "advised".into(),
    };
    if let (Mode::Act, Some((topic, p))) = (a.mode, target) {
        record.outcome = match crate::replication::isr::hand_over(shard, &topic, p, to_node).await {
            Ok(()) => "applied".into(),
            Err(f) => format!("failed: {}", f.message),
        };
    }
    Some(record)
}
