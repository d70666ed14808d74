//! Sprawl's cluster decisions as pure functions: where a partition's replicas live, which
//! partitions move when nodes come and go, and who leads a partition after its leader is gone.
//!
//! The design is in `docs/cluster.md`. The controller (the Raft leader of the metadata log, crate
//! `meta`) calls these and commits their results as metadata commands; every other node only reads
//! the committed results. Keeping the decisions here, free of I/O, clocks and randomness, is what
//! lets the cluster simulation and property tests exercise them directly.
//!
//! What this crate deliberately does not do:
//! - no networking, no Raft, no membership: callers pass in the live nodes (from gossip) and the
//!   current assignment (from metadata);
//! - no data movement: a [`Move`] says what the replica set should become; replicas catch up by
//!   replication before old ones are dropped, which is the engine's job.
//!
//! ```
//! use cluster::{elect, plan, replicas, Assignment, Candidate, Election};
//!
//! let live: Vec<Candidate> = [1, 2, 3, 4].into_iter().map(Candidate::new).collect();
//! let r = replicas(7, 0, 3, &live)?;               // preferred leader first
//! assert_eq!(r.len(), 3);
//!
//! // Node r[0] leaves: only partitions that had it move, and survivors stay.
//! let after: Vec<Candidate> = live.iter().copied().filter(|c| c.node_id != r[0]).collect();
//! let a = [Assignment { topic_id: 7, partition: 0, replicas: r.clone(), rf: 3 }];
//! let p = plan(&a, &after, 10)?;
//! assert!(p.moves[0].to.contains(&r[1]) && p.moves[0].to.contains(&r[2]));
//!
//! // Meanwhile its leadership goes to the next live in-sync replica, at a higher epoch.
//! let e = elect(&r, &r, 4, |n| n != r[0], false);
//! assert_eq!(e, Election::Clean { node_id: r[1], epoch: 5 });
//! # Ok::<(), cluster::PlacementError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod election;
mod placement;
mod reassign;

pub use election::{elect, Election};
pub use placement::{hash3, replicas, Candidate, REPLICATION_FACTOR_MAX};
pub use reassign::{plan, Assignment, Move, Plan};

/// Why a placement could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlacementError {
    /// The replication factor is out of range.
    #[error("replication factor {rf} is out of range: use 1 to {max}")]
    ReplicationFactor {
        /// The factor asked for.
        rf: usize,
        /// The largest supported.
        max: usize,
    },
    /// Fewer live nodes than replicas asked for.
    #[error(
        "replication factor {needed} needs {needed} live nodes, {available} available: \
         start more nodes or lower --replication-factor"
    )]
    NotEnoughNodes {
        /// Replicas asked for.
        needed: usize,
        /// Live candidate nodes.
        available: usize,
    },
    /// The same node id appears twice among the candidates.
    #[error("node {node_id} is listed twice among the candidates")]
    DuplicateNode {
        /// The repeated id.
        node_id: u32,
    },
    /// A weight is not a finite positive number.
    #[error("node {node_id} has weight {weight}; weights must be finite and > 0")]
    Weight {
        /// The node.
        node_id: u32,
        /// Its weight.
        weight: f64,
    },
}
