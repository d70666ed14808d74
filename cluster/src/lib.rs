//! Sprawl's cluster decisions and replication bookkeeping, as pure code: where a partition's
//! replicas live, which partitions move when nodes come and go, who leads a partition after its
//! leader is gone, and, per partition, the state machines of replication (the leader-epoch
//! history and its `leader-epochs` file, the leader's view of its followers with the in-sync set,
//! high watermark and `acks=all`, and a follower's fetch and truncation state).
//!
//! The design is in `docs/cluster.md`; the replication rules, their reasons and the file format
//! are in `docs/replication-format.md`. The controller (the Raft leader of the metadata log, crate
//! `meta`) calls the decisions and commits their results as metadata commands; every other node
//! only reads the committed results. The engine feeds [`LeaderState`] and [`FollowerState`] the
//! fetches, answers, appends and fdatasyncs it performs. Keeping all of it here, free of I/O,
//! clocks (time comes in as `now_ms`) and randomness, is what lets the deterministic simulation in
//! `tests/replica_sim.rs` and the property tests exercise it directly.
//! The [`group`] module is the consumer-group coordinator: assignors and the per-group state
//! machine that moves partitions between members without two ever consuming one at once.
//!
//! What this crate deliberately does not do:
//! - no networking, no Raft, no membership: callers pass in the live nodes (from gossip) and the
//!   current assignment (from metadata);
//! - no data movement: a [`Move`] says what the replica set should become; replicas catch up by
//!   replication before old ones are dropped, which is the engine's job;
//! - no record bytes: the replica state machines see offsets, epochs and batch spans; reading,
//!   appending, truncating and syncing the log, and writing the `leader-epochs` file, is the
//!   engine's.
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
//!
//! One partition replicated on nodes 1 (leader) and 2:
//!
//! ```
//! use cluster::{
//!     BatchSpan, FetchReply, FollowerState, LeaderConfig, LeaderInit, LeaderState, LocalLog,
//!     Verdict,
//! };
//!
//! let init = LeaderInit { node_id: 1, leader_epoch: 1, replicas: vec![1, 2], in_sync: vec![1, 2], isr_version: 0 };
//! let mut leader = LeaderState::new(init, LocalLog::empty(), LeaderConfig::default(), 0)?;
//! let mut follower = FollowerState::new(2, Some(1), 1, LocalLog::empty())?;
//!
//! leader.on_append(3); // the engine appended offsets 0..3 ...
//! leader.on_durable(3); // ... and fdatasync'd them
//! assert!(!leader.acks_all_satisfied(2), "node 2 does not have them yet");
//!
//! let answer = leader.on_fetch(&follower.next_fetch().unwrap(), 10)?;
//! assert_eq!(answer.reply, FetchReply::Records { high_watermark: 0 });
//! let batch = BatchSpan { epoch: 1, base_offset: 0, next_offset: 3 };
//! assert!(matches!(follower.on_answer(&answer, &[batch])?, Verdict::Append { .. }));
//! follower.on_durable(3); // the follower appended and synced the batch
//!
//! // Its next fetch reports offset 3 durable: the high watermark and acks=all follow.
//! leader.on_fetch(&follower.next_fetch().unwrap(), 20)?;
//! assert_eq!(leader.high_watermark(), 3);
//! assert!(leader.acks_all_satisfied(2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod election;
pub mod group;
mod placement;
mod reassign;
mod replica;

pub use election::{elect, Election};
pub use group::{Assignor, Group, GroupError, Tp};
pub use placement::{hash3, replicas, Candidate, REPLICATION_FACTOR_MAX};
pub use reassign::{plan, Assignment, Move, Plan};
pub use replica::*;

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
