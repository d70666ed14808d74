//! Replacing the replicas of nodes that are gone for good (`docs/cluster.md`, Placement): once a
//! registered node has been out of gossip's live set for the node-loss grace period, each
//! partition of a replicated topic that lists it gets a live node in its place (the best-ranked by
//! weighted rendezvous among live nodes that are not already replicas), keeping every surviving
//! replica where it is. The leader stays; its epoch is bumped in the same step so that it starts
//! over with the new replica set, and the new replica catches up by replication before it may
//! join the in-sync set.
//!
//! What this does not do: move replicas onto a node that joins ([`super::rebalance`] does, adding
//! before removing), touch topics of one replica (their only copy is on the lost node), or move a
//! partition whose leader is down (the failover in [`super::topics`] comes first).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use meta::{Command, MetadataState};

use super::topics::assign_replicas;

/// Partitions given new replicas per tick.
const REASSIGN_PER_TICK: usize = 16;
/// A reassignment proposed but not committed is proposed again after this long.
const REASSIGN_RETRY: Duration = Duration::from_secs(5);

/// The controller leader's bookkeeping of node losses and reassignments in flight.
#[derive(Debug)]
pub struct Reassigner {
    grace: Duration,
    /// Registered nodes not live, and since when.
    down_since: BTreeMap<u64, Instant>,
    proposed: BTreeMap<(String, u32), Instant>,
}

impl Reassigner {
    pub fn new(grace: Duration) -> Self {
        Reassigner {
            grace,
            down_since: BTreeMap::new(),
            proposed: BTreeMap::new(),
        }
    }

    /// Registered nodes down for at least the grace period at `now`.
    pub fn lost(&self, now: Instant) -> BTreeSet<u64> {
        self.down_since
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= self.grace)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Notes who is present (live or only suspected) at `now` and returns the reassignment
    /// commands to propose: for each partition moved, `AssignReplicas` with the lost members
    /// replaced by `live` nodes, then `SetLeader` of the same leader at the next epoch.
    pub fn pass(
        &mut self,
        state: &MetadataState,
        live: &BTreeSet<u64>,
        present: &BTreeSet<u64>,
        now: Instant,
    ) -> Vec<Command> {
        for id in state.nodes.keys() {
            if present.contains(id) {
                self.down_since.remove(id);
            } else {
                self.down_since.entry(*id).or_insert(now);
            }
        }
        self.down_since.retain(|id, _| state.nodes.contains_key(id));
        self.proposed
            .retain(|_, at| now.duration_since(*at) < REASSIGN_RETRY);
        let lost = self.lost(now);
        if lost.is_empty() {
            return Vec::new();
        }
        let candidates: Vec<cluster::Candidate> = live
            .iter()
            .filter(|id| state.nodes.contains_key(id))
            .filter_map(|id| u32::try_from(*id).ok().map(cluster::Candidate::new))
            .collect();
        let mut out = Vec::new();
        let mut moved = 0;
        for (name, t) in &state.topics {
            if t.replication_factor < 2 {
                continue;
            }
            for (i, p) in t.partitions.iter().enumerate() {
                if moved >= REASSIGN_PER_TICK {
                    return out;
                }
                let Ok(index) = u32::try_from(i) else {
                    continue;
                };
                let key = (name.clone(), index);
                let leader_live = p.leader != 0 && live.contains(&p.leader);
                if !leader_live
                    || !p.replicas.iter().any(|n| lost.contains(n))
                    || self.proposed.contains_key(&key)
                {
                    continue;
                }
                let rank_count = candidates.len().min(cluster::REPLICATION_FACTOR_MAX);
                let Ok(ranked) = cluster::replicas(t.topic_id, index, rank_count, &candidates)
                else {
                    continue;
                };
                let mut replicas: Vec<u64> = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|n| !lost.contains(n))
                    .collect();
                for c in ranked.into_iter().map(u64::from) {
                    if replicas.len() >= usize::from(t.replication_factor) {
                        break;
                    }
                    if !replicas.contains(&c) {
                        replicas.push(c);
                    }
                }
                if replicas.len() < usize::from(t.replication_factor) {
                    // Not enough live nodes: keep the lost replica listed until one comes.
                    continue;
                }
                out.extend(assign_replicas(name, index, replicas, p));
                self.proposed.insert(key, now);
                moved += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(nodes: u64, rf: u16) -> MetadataState {
        super::super::topics::tests::test_state(nodes, rf, 4, 3)
    }

    #[test]
    fn a_node_lost_past_the_grace_period_is_replaced_by_a_live_one() {
        let mut s = state(4, 3);
        let grace = Duration::from_secs(30);
        let mut r = Reassigner::new(grace);
        let t0 = Instant::now();
        let all: BTreeSet<u64> = (1..=4).collect();
        assert!(r.pass(&s, &all, &all, t0).is_empty());
        // Node 2 goes: nothing before the grace period ends.
        let live: BTreeSet<u64> = [1, 3, 4].into_iter().collect();
        assert!(r
            .pass(&s, &live, &live, t0 + Duration::from_secs(1))
            .is_empty());
        assert!(r
            .pass(&s, &live, &live, t0 + Duration::from_secs(20))
            .is_empty());
        let cmds = r.pass(&s, &live, &live, t0 + Duration::from_secs(32));
        let with_2 = s.topics["t"]
            .partitions
            .iter()
            .filter(|p| p.replicas.contains(&2) && p.leader != 2)
            .count();
        assert_eq!(cmds.len(), 2 * with_2, "{cmds:?}");
        for pair in cmds.chunks(2) {
            let Command::AssignReplicas {
                partition,
                replicas,
                ..
            } = &pair[0]
            else {
                panic!("{pair:?}")
            };
            let before = &s.topics["t"].partitions[*partition as usize];
            assert!(
                !replicas.contains(&2) && replicas.contains(&4),
                "{replicas:?}"
            );
            // Survivors stay.
            for n in before.replicas.iter().filter(|n| **n != 2) {
                assert!(replicas.contains(n));
            }
            assert!(
                matches!(&pair[1], Command::SetLeader { leader, leader_epoch, .. }
                if *leader == before.leader && *leader_epoch == before.leader_epoch + 1)
            );
            for c in pair {
                s.apply(c).unwrap();
            }
        }
        // Done: nothing more, and a retry is not proposed while the first is in flight.
        assert!(r
            .pass(&s, &live, &live, t0 + Duration::from_secs(33))
            .is_empty());
    }

    #[test]
    fn without_a_spare_node_or_with_one_replica_nothing_moves() {
        let s = state(3, 3);
        let mut r = Reassigner::new(Duration::ZERO);
        let live: BTreeSet<u64> = [1, 3].into_iter().collect();
        let t0 = Instant::now();
        r.pass(&s, &live, &live, t0);
        assert!(r
            .pass(&s, &live, &live, t0 + Duration::from_secs(1))
            .is_empty());
        let s = state(4, 1);
        let mut r = Reassigner::new(Duration::ZERO);
        r.pass(&s, &live, &live, t0);
        assert!(r
            .pass(&s, &live, &live, t0 + Duration::from_secs(1))
            .is_empty());
        assert_eq!(
            r.lost(t0 + Duration::from_secs(1)),
            [2, 4].into_iter().collect()
        );
    }
}
