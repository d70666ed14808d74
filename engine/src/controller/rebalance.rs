//! Moving replicas onto nodes that join (`docs/cluster.md`, Placement): the target of a
//! partition is the weighted rendezvous ranking over the live registered nodes (the placement a
//! new topic would get); a healthy partition whose replicas differ from it moves one replica at
//! a time, adding before removing, so it never has fewer copies than its replication factor:
//!
//! 1. **grow**: the first target node that is not a replica is added as an extra replica (the
//!    metadata allows one above the replication factor while a replica moves); the leader
//!    restarts at the next epoch with the new set and the new replica catches up by replication;
//! 2. **hand over**: once every target node is in sync, a leader that is the surplus replica
//!    passes leadership to the first in-sync target node (next epoch);
//! 3. **shrink**: the surplus replica, no longer leading, is removed (leader's next epoch).
//!
//! Only partitions of replicated topics whose leader and replicas are all live and in sync start
//! a move, at most [`MOVES_IN_FLIGHT_MAX`] at a time, and only onto nodes live for
//! [`JOIN_SETTLE`] (a node that flaps does not pull replicas around). Lost nodes are handled by
//! [`super::reassign`] first: nothing moves while a node holding replicas is down.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use meta::{Command, MetadataState, PartitionState};

use super::topics::assign_replicas;

/// Partitions with an extra replica at once (cluster-wide).
pub const MOVES_IN_FLIGHT_MAX: usize = 2;
/// How long a node must have been live before replicas move onto it.
pub const JOIN_SETTLE: Duration = Duration::from_secs(5);
/// A step proposed but not seen committed is proposed again after this long.
const STEP_RETRY: Duration = Duration::from_secs(3);

/// The controller leader's bookkeeping of moves onto joining nodes.
#[derive(Debug, Default)]
pub struct Rebalancer {
    /// Live registered nodes and since when.
    live_since: BTreeMap<u64, Instant>,
    /// Steps proposed per partition, and when.
    proposed: BTreeMap<(String, u32), Instant>,
}

impl Rebalancer {
    /// Notes who is live at `now` and returns the next steps of moves (see the module docs).
    pub fn pass(
        &mut self,
        state: &MetadataState,
        live: &BTreeSet<u64>,
        now: Instant,
    ) -> Vec<Command> {
        self.live_since
            .retain(|id, _| live.contains(id) && state.nodes.contains_key(id));
        for id in live.iter().filter(|id| state.nodes.contains_key(id)) {
            self.live_since.entry(*id).or_insert(now);
        }
        self.proposed
            .retain(|_, at| now.duration_since(*at) < STEP_RETRY);
        let holder_down = state
            .topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .flat_map(|p| p.replicas.iter())
            .any(|id| !live.contains(id));
        if holder_down {
            return Vec::new();
        }
        let settled: Vec<cluster::Candidate> = self
            .live_since
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= JOIN_SETTLE)
            .filter_map(|(id, _)| u32::try_from(*id).ok().map(cluster::Candidate::new))
            .collect();
        let mut out = Vec::new();
        let mut in_flight = 0;
        let mut healthy = Vec::new();
        for (name, t) in &state.topics {
            let rf = usize::from(t.replication_factor);
            if rf < 2 {
                continue;
            }
            for (i, p) in t.partitions.iter().enumerate() {
                let Ok(index) = u32::try_from(i) else {
                    continue;
                };
                if p.replicas.len() > rf {
                    in_flight += 1;
                    if let Some(cmds) = self.finish(name, index, t.topic_id, rf, p, &settled, now) {
                        out.extend(cmds);
                    }
                } else if p.replicas.len() == rf
                    && p.leader != 0
                    && p.replicas.iter().all(|n| p.in_sync.contains(n))
                {
                    healthy.push((name, index, t.topic_id, rf, p));
                }
            }
        }
        for (name, index, topic_id, rf, p) in healthy {
            if in_flight >= MOVES_IN_FLIGHT_MAX {
                break;
            }
            let key = (name.clone(), index);
            if self.proposed.contains_key(&key) {
                continue;
            }
            let Some(target) = target(topic_id, index, rf, &settled) else {
                continue;
            };
            let Some(&joining) = target.iter().find(|n| !p.replicas.contains(n)) else {
                continue;
            };
            let mut replicas = p.replicas.clone();
            replicas.push(joining);
            out.extend(assign_replicas(name, index, replicas, p));
            self.proposed.insert(key, now);
            in_flight += 1;
        }
        out
    }

    /// The next step of a partition that has an extra replica: hand leadership over or drop the
    /// surplus replica, once every target node is in sync.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        name: &str,
        index: u32,
        topic_id: u64,
        rf: usize,
        p: &PartitionState,
        settled: &[cluster::Candidate],
        now: Instant,
    ) -> Option<Vec<Command>> {
        let key = (name.to_string(), index);
        if self.proposed.contains_key(&key) || p.leader == 0 {
            return None;
        }
        // The target among the current replicas: the new one stays, the worst-ranked old one
        // goes (a target computed afresh could name yet another node).
        let ranked = target(topic_id, index, settled.len(), settled)?;
        let mut keep: Vec<u64> = ranked
            .into_iter()
            .filter(|n| p.replicas.contains(n))
            .take(rf)
            .collect();
        if keep.len() < rf {
            keep = p.replicas[..rf].to_vec();
        }
        let surplus = *p.replicas.iter().find(|n| !keep.contains(n))?;
        if !keep.iter().all(|n| p.in_sync.contains(n)) {
            return None;
        }
        self.proposed.insert(key, now);
        if surplus == p.leader {
            let next = *keep.iter().find(|n| p.in_sync.contains(n))?;
            return Some(vec![Command::SetLeader {
                topic: name.to_string(),
                partition: index,
                leader: next,
                leader_epoch: p.leader_epoch + 1,
            }]);
        }
        let replicas: Vec<u64> = p
            .replicas
            .iter()
            .copied()
            .filter(|n| *n != surplus)
            .collect();
        Some(assign_replicas(name, index, replicas, p).into())
    }
}

/// The best `count` nodes for a partition by weighted rendezvous over `candidates`.
fn target(
    topic_id: u64,
    index: u32,
    count: usize,
    candidates: &[cluster::Candidate],
) -> Option<Vec<u64>> {
    let count = count
        .min(candidates.len())
        .min(cluster::REPLICATION_FACTOR_MAX);
    cluster::replicas(topic_id, index, count, candidates)
        .ok()
        .map(|r| r.into_iter().map(u64::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four registered nodes, topic `t` (8 partitions, `rf`) placed over nodes 1-3 only.
    fn state(rf: u16) -> MetadataState {
        super::super::topics::tests::test_state(4, rf, 8, 3)
    }

    /// Every replica catches up at once: the in-sync set becomes the replica set.
    fn catch_up(s: &mut MetadataState) {
        let parts: Vec<(u32, PartitionState)> = s.topics["t"]
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u32, p.clone()))
            .collect();
        for (i, p) in parts {
            if p.in_sync.len() < p.replicas.len() && p.leader != 0 {
                s.apply(&Command::SetInSync {
                    topic: "t".into(),
                    partition: i,
                    leader_epoch: p.leader_epoch,
                    isr_version: Some(p.isr_version),
                    in_sync: p.replicas.clone(),
                })
                .unwrap();
            }
        }
    }

    #[test]
    fn a_joined_node_gets_its_share_one_move_at_a_time_never_below_the_factor() {
        let mut s = state(2);
        let all: BTreeSet<u64> = (1..=4).collect();
        let candidates: Vec<cluster::Candidate> = (1..=4).map(cluster::Candidate::new).collect();
        let mut r = Rebalancer::default();
        let t0 = Instant::now();
        assert!(
            r.pass(&s, &all, t0).is_empty(),
            "node 4 has not settled yet"
        );
        let mut now = t0 + JOIN_SETTLE;
        for _ in 0..200 {
            let cmds = r.pass(&s, &all, now);
            for c in &cmds {
                s.apply(c).unwrap();
            }
            let parts = &s.topics["t"].partitions;
            let moving = parts.iter().filter(|p| p.replicas.len() > 2).count();
            assert!(moving <= MOVES_IN_FLIGHT_MAX, "{moving} moves at once");
            for p in parts {
                assert!(p.replicas.len() >= 2 && p.in_sync.len() >= 2.min(p.replicas.len()));
                assert!(p.leader == 0 || p.replicas.contains(&p.leader));
            }
            catch_up(&mut s);
            now += STEP_RETRY;
        }
        let topic_id = s.topics["t"].topic_id;
        for (i, p) in s.topics["t"].partitions.iter().enumerate() {
            let want: BTreeSet<u64> = cluster::replicas(topic_id, i as u32, 2, &candidates)
                .unwrap()
                .into_iter()
                .map(u64::from)
                .collect();
            let got: BTreeSet<u64> = p.replicas.iter().copied().collect();
            assert_eq!(got, want, "partition {i}");
            assert!(p.replicas.contains(&p.leader), "partition {i} led");
        }
        assert!(
            s.topics["t"]
                .partitions
                .iter()
                .any(|p| p.replicas.contains(&4)),
            "node 4 got nothing"
        );
    }

    #[test]
    fn nothing_moves_while_a_replica_holder_is_down() {
        let s = state(2);
        let live: BTreeSet<u64> = [1, 2, 4].into_iter().collect();
        let mut r = Rebalancer::default();
        let t0 = Instant::now();
        r.pass(&s, &live, t0);
        assert!(r.pass(&s, &live, t0 + JOIN_SETTLE * 2).is_empty());
    }
}
