//! What can go wrong when a node leads, and the membership checks behind it.

use super::epochs::EpochError;
use super::fetch::LocalLogError;
use crate::REPLICATION_FACTOR_MAX;

/// How many in-sync replicas there are when an `acks=all` produce arrives with too few.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not enough in-sync replicas: {in_sync} in sync, {min_insync} required")]
pub struct NotEnoughReplicas {
    /// In-sync replicas now (leader included).
    pub in_sync: usize,
    /// The topic's `min-insync`.
    pub min_insync: usize,
}

/// Why a node cannot lead. Nothing was built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BecomeLeaderError {
    /// The replica list or in-sync set is malformed.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// The epoch history already holds this epoch or a later one: a node never leads twice at
    /// one epoch, since records it lost in a crash could then be rewritten differently.
    #[error("cannot lead at epoch {epoch}: the log already holds epoch {latest}")]
    EpochNotNew {
        /// The epoch offered.
        epoch: u32,
        /// The latest epoch in the history.
        latest: u32,
    },
    /// Part of the log is not yet on disk. A new leader fdatasyncs its whole log first, so the
    /// epoch it starts (persisted in `leader-epochs`) begins at or below whatever a crash leaves;
    /// otherwise a crash could drop the epoch from the history and let it lead twice at it.
    #[error(
        "cannot lead with offsets {durable_offset}..{log_end_offset} not yet durable: \
         fdatasync the log first"
    )]
    NotDurable {
        /// The durable offset.
        durable_offset: u64,
        /// The log end.
        log_end_offset: u64,
    },
    /// The epoch history cannot take the new epoch.
    #[error(transparent)]
    Epochs(#[from] EpochError),
    /// The local log state is inconsistent.
    #[error(transparent)]
    LocalLog(#[from] LocalLogError),
}

/// What is wrong with a replica list or in-sync set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// More replicas than supported.
    #[error("{count} replicas, at most {max} supported")]
    TooManyReplicas {
        /// Replicas given.
        count: usize,
        /// [`REPLICATION_FACTOR_MAX`].
        max: usize,
    },
    /// A node appears twice.
    #[error("node {node_id} is listed twice")]
    Duplicate {
        /// The node.
        node_id: u32,
    },
    /// An in-sync node is not a replica.
    #[error("in-sync node {node_id} is not a replica")]
    NotReplica {
        /// The node.
        node_id: u32,
    },
    /// The leader is missing from the replicas or the in-sync set.
    #[error("the leader {leader} is missing from the {what}")]
    LeaderMissing {
        /// The leader.
        leader: u32,
        /// `"replicas"` or `"in-sync set"`.
        what: &'static str,
    },
}

/// Why a committed in-sync set was not applied. The leader's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsrCommitError {
    /// The commit belongs to another leader epoch.
    #[error(
        "in-sync set committed at leader epoch {committed_epoch}, this leader is at {leader_epoch}"
    )]
    OtherEpoch {
        /// The commit's epoch.
        committed_epoch: u32,
        /// This leader's epoch.
        leader_epoch: u32,
    },
    /// The committed set is malformed.
    #[error(transparent)]
    Membership(#[from] MembershipError),
}

pub(super) fn check_members(
    leader: u32,
    replicas: &[u32],
    in_sync: &[u32],
) -> Result<(), MembershipError> {
    if replicas.len() > REPLICATION_FACTOR_MAX {
        return Err(MembershipError::TooManyReplicas {
            count: replicas.len(),
            max: REPLICATION_FACTOR_MAX,
        });
    }
    for list in [replicas, in_sync] {
        for (i, n) in list.iter().enumerate() {
            if list[..i].contains(n) {
                return Err(MembershipError::Duplicate { node_id: *n });
            }
        }
    }
    if let Some(n) = in_sync.iter().find(|n| !replicas.contains(n)) {
        return Err(MembershipError::NotReplica { node_id: *n });
    }
    for (list, what) in [(replicas, "replicas"), (in_sync, "in-sync set")] {
        if !list.contains(&leader) {
            return Err(MembershipError::LeaderMissing { leader, what });
        }
    }
    Ok(())
}
