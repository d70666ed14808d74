//! Reassignment plans: which partitions should change replicas after nodes leave or join
//! (`docs/cluster.md`, Placement).
//!
//! The target of each partition is [`crate::replicas`] over the live candidates. A partition whose
//! current replica *set* equals the target is left alone (order only names the preferred leader,
//! and churning leaders for it is a separate, later step). When fewer live nodes exist than the
//! replication factor, the target keeps current replicas that are down, so the partition gets
//! back to full strength when they return instead of being shrunk for good. Moves are throttled:
//! at most `moves_max` per plan, the most endangered partitions (fewest live replicas) first.

use crate::placement::{replicas, Candidate};
use crate::PlacementError;

/// The current assignment of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Topic id.
    pub topic_id: u64,
    /// Partition index.
    pub partition: u32,
    /// Current replicas, preferred leader first.
    pub replicas: Vec<u32>,
    /// The topic's replication factor.
    pub rf: usize,
}

/// One partition's change: from its current replicas to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// Topic id.
    pub topic_id: u64,
    /// Partition index.
    pub partition: u32,
    /// Replicas before.
    pub from: Vec<u32>,
    /// Replicas after, preferred leader first.
    pub to: Vec<u32>,
}

/// The moves to make now and how many more are waiting for the next round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// At most `moves_max` moves, most endangered partitions first.
    pub moves: Vec<Move>,
    /// Partitions that should move too but exceed this round's limit.
    pub deferred: usize,
}

/// Plans moves for `assignments` given the live `candidates`.
pub fn plan(
    assignments: &[Assignment],
    candidates: &[Candidate],
    moves_max: usize,
) -> Result<Plan, PlacementError> {
    let live = |n: &u32| candidates.iter().any(|c| c.node_id == *n);
    let mut wanted: Vec<(usize, Move)> = Vec::new();
    for a in assignments {
        let rf_live = a.rf.min(candidates.len());
        if rf_live == 0 {
            // No live node at all: nothing can be placed, and nothing is gained by moving.
            continue;
        }
        let mut to = replicas(a.topic_id, a.partition, rf_live, candidates)?;
        for dead in a.replicas.iter().filter(|n| !live(n)) {
            if to.len() >= a.rf {
                break;
            }
            if !to.contains(dead) {
                to.push(*dead);
            }
        }
        let same_set = to.len() == a.replicas.len() && to.iter().all(|n| a.replicas.contains(n));
        if !same_set {
            let live_now = a.replicas.iter().filter(|n| live(n)).count();
            wanted.push((
                live_now,
                Move {
                    topic_id: a.topic_id,
                    partition: a.partition,
                    from: a.replicas.clone(),
                    to,
                },
            ));
        }
    }
    wanted.sort_by_key(|(live_now, m)| (*live_now, m.topic_id, m.partition));
    let deferred = wanted.len().saturating_sub(moves_max);
    wanted.truncate(moves_max);
    Ok(Plan {
        moves: wanted.into_iter().map(|(_, m)| m).collect(),
        deferred,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(ids: &[u32]) -> Vec<Candidate> {
        ids.iter().copied().map(Candidate::new).collect()
    }

    fn assigned(topic_id: u64, partitions: u32, rf: usize, nodes: &[u32]) -> Vec<Assignment> {
        (0..partitions)
            .map(|p| Assignment {
                topic_id,
                partition: p,
                replicas: replicas(topic_id, p, rf, &cands(nodes)).unwrap(),
                rf,
            })
            .collect()
    }

    #[test]
    fn a_stable_cluster_plans_nothing() {
        let a = assigned(9, 64, 3, &[1, 2, 3, 4]);
        assert_eq!(
            plan(&a, &cands(&[1, 2, 3, 4]), 100).unwrap(),
            Plan::default()
        );
    }

    #[test]
    fn a_lost_node_moves_only_its_partitions_keeping_the_survivors() {
        let a = assigned(9, 64, 3, &[1, 2, 3, 4, 5]);
        let had_5 = a.iter().filter(|x| x.replicas.contains(&5)).count();
        let p = plan(&a, &cands(&[1, 2, 3, 4]), 1000).unwrap();
        assert_eq!(p.moves.len(), had_5);
        for m in &p.moves {
            assert!(m.from.contains(&5) && !m.to.contains(&5));
            for n in m.from.iter().filter(|n| **n != 5) {
                assert!(m.to.contains(n), "survivor {n} kept in {m:?}");
            }
        }
    }

    #[test]
    fn fewer_live_nodes_than_rf_keeps_the_dead_replica() {
        let a = assigned(9, 16, 3, &[1, 2, 3]);
        let p = plan(&a, &cands(&[1, 2]), 100).unwrap();
        assert_eq!(
            p,
            Plan::default(),
            "nowhere better to put the third replica"
        );
    }

    #[test]
    fn moves_are_throttled_most_endangered_first() {
        let mut a = assigned(9, 32, 3, &[1, 2, 3, 4, 5, 6]);
        // Partition 0 loses two replicas, the others at most one.
        a[0].replicas = vec![1, 5, 6];
        let p = plan(&a, &cands(&[1, 2, 3, 4]), 2).unwrap();
        assert_eq!(p.moves.len(), 2);
        assert_eq!(p.moves[0].partition, 0);
        assert!(p.deferred > 0);
    }
}
