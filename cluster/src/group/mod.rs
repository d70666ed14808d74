//! Consumer-group coordination as a pure state machine: who is in a group, which partitions each
//! member should consume (the *target*, computed by an [`Assignor`]), and which partitions each
//! member may still be consuming (its *owned* set), so that a partition is never handed to a
//! member while another one may still read from it.
//!
//! # The protocol a client follows
//!
//! 1. **Join**: `join(member_id, topics, assignor, session_timeout_ms, now_ms)`. A new consumer
//!    joins with an id the engine generated for it (the wire protocol's "empty member id" means
//!    "give me one"); the answer carries the group's current generation. Joining again with a
//!    known id refreshes the member and, if its subscription changed, starts a new generation.
//! 2. **Sync**: `sync(member_id, generation, owned, now_ms)`, reporting in `owned` the partitions
//!    it is *still consuming*. The answer's `assigned` set is what it may consume now.
//! 3. **Consume** exactly the `assigned` partitions. Any partition it consumed before and that is
//!    not in `assigned` has been *revoked*: stop fetching it, commit its offsets (commits are
//!    accepted for partitions the member still owns, see [`Group::check_commit`]), then sync
//!    again reporting only what it still consumes. Until that second sync the coordinator keeps
//!    counting the revoked partition as the member's, and gives it to nobody else.
//! 4. **Heartbeat** within the session timeout: `heartbeat(member_id, generation, now_ms)`.
//!    [`Beat::SyncNeeded`] means the generation moved on, a partition it waits for has been
//!    released, or it still holds a revoked partition (its last sync reported one): sync again
//!    (step 2). [`Beat::Stable`] means carry on.
//! 5. On [`GroupError::UnknownMember`] (the member left or its session expired, and its
//!    partitions may already belong to others) stop consuming everything and join again with an
//!    empty member id. On [`GroupError::IllegalGeneration`] join again with its id.
//!
//! A member whose session expires is dropped by [`Group::expire`] and its partitions are handed
//! on; this relies on the client stopping by itself when it has not heard from the coordinator
//! for a session timeout, as Kafka clients do. `leave` is the polite way out.
//!
//! # Why "revoke before reassign"
//!
//! Kafka's eager protocol stops every consumer on every rebalance. The cooperative protocol
//! (KIP-429, and the server-side KIP-848) instead moves only the partitions whose owner changes,
//! in two steps: the old owner is told to give the partition up, and only after it reports that
//! it has does the new owner receive it. Here the coordinator records, per member, `owned` =
//! what the member may be consuming, taken conservatively (a sync can only shrink it to what the
//! member reports, and grow it by what it is given), and a target partition is given only when
//! no other member owns it. The owned sets are therefore pairwise disjoint at every step, which
//! `tests/group_props.rs` checks over random event sequences, along with convergence: members
//! that keep syncing end up owning exactly their targets.
//!
//! # Limits
//!
//! Every collection is bounded: [`MEMBERS_MAX`] members per group, [`TOPICS_PER_MEMBER_MAX`]
//! topics per member, [`GROUP_PARTITIONS_MAX`] assignable partitions per group, and names of at
//! most [`NAME_BYTES_MAX`] bytes. Session timeouts lie in
//! [`SESSION_TIMEOUT_MS_MIN`]..=[`SESSION_TIMEOUT_MS_MAX`].
//!
//! ```
//! use cluster::group::{Assignor, Beat, Group, Tp};
//! use std::collections::{BTreeMap, BTreeSet};
//!
//! let subs: BTreeSet<String> = ["orders".to_string()].into();
//! let mut g = Group::new("billing");
//! let a = g.join("a", subs.clone(), Assignor::CooperativeSticky, 10_000, 0)?;
//! g.set_topics(BTreeMap::from([("orders".to_string(), 4)]))?;
//! let a_first = g.sync("a", g.generation(), BTreeSet::new(), 10)?;
//! assert_eq!(a_first.assigned.len(), 4); // alone: all four partitions
//!
//! // b joins: the target moves two partitions to b, but a still owns them.
//! let b = g.join("b", subs, Assignor::CooperativeSticky, 10_000, 20)?;
//! assert!(b.generation > a.generation);
//! assert!(g.sync("b", b.generation, BTreeSet::new(), 30)?.assigned.is_empty());
//! assert_eq!(g.heartbeat("a", a_first.generation, 40)?, Beat::SyncNeeded);
//!
//! // a syncs: its answer drops the two; it stops them, commits, and reports the rest.
//! let a_now = g.sync("a", b.generation, a_first.assigned.clone(), 50)?;
//! assert_eq!(a_now.assigned.len(), 2);
//! let a_done = g.sync("a", b.generation, a_now.assigned.clone(), 60)?;
//! assert_eq!(a_done.assigned, a_now.assigned);
//!
//! // Now b is told to sync, and gets the two released partitions.
//! assert_eq!(g.heartbeat("b", b.generation, 70)?, Beat::SyncNeeded);
//! let b_now = g.sync("b", b.generation, BTreeSet::new(), 80)?;
//! assert_eq!(b_now.assigned.len(), 2);
//! assert!(b_now.assigned.is_disjoint(&a_done.assigned));
//! assert!(b_now.assigned.contains(&Tp::new("orders", 3)));
//! # Ok::<(), cluster::group::GroupError>(())
//! ```

mod assign;
mod state;
mod sticky;

pub use assign::{assign_range, Assignments, Assignor, Subscriptions, Tp};
pub use state::{Beat, Group, Joined, MemberInfo, Synced};
pub use sticky::assign_sticky;

/// The most members one group may have.
pub const MEMBERS_MAX: usize = 1000;
/// The most topics one member may subscribe to.
pub const TOPICS_PER_MEMBER_MAX: usize = 256;
/// The shortest session timeout a member may ask for.
pub const SESSION_TIMEOUT_MS_MIN: u32 = 1000;
/// The longest session timeout a member may ask for.
pub const SESSION_TIMEOUT_MS_MAX: u32 = 300_000;
/// The most partitions (summed over the topics its members subscribe to) one group assigns.
/// Assignment costs time proportional to this, so it is bounded like everything else.
pub const GROUP_PARTITIONS_MAX: u64 = 65_536;
/// The longest member id or topic name, in bytes.
pub const NAME_BYTES_MAX: usize = 255;

/// Why a group operation was refused. The group's state is unchanged after every error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The member is not in the group: it never joined, left, or its session expired.
    #[error(
        "member {member_id:?} is not in the group (it left or its session expired): stop \
         consuming and join again with an empty member id"
    )]
    UnknownMember {
        /// The id the request named.
        member_id: String,
    },
    /// The request carried a generation the group has not reached, or (for a commit) an old
    /// generation for a partition the member no longer owns.
    #[error(
        "member {member_id:?} sent generation {got} but the group is at generation {expected}: \
         join again (or sync) to get the current generation and assignment"
    )]
    IllegalGeneration {
        /// The member.
        member_id: String,
        /// The group's current generation.
        expected: u32,
        /// The generation the request carried.
        got: u32,
    },
    /// A member asked for another assignor than the one the group uses.
    #[error(
        "the group uses the {group_assignor} assignor but the member asked for \
         {requested}: configure every member of a group with the same assignor"
    )]
    InconsistentAssignor {
        /// The group's assignor.
        group_assignor: Assignor,
        /// The one asked for.
        requested: Assignor,
    },
    /// The group already has the most members allowed.
    #[error(
        "the group already has {max} members, the most allowed: use another group or fewer \
         consumers"
    )]
    GroupFull {
        /// [`MEMBERS_MAX`].
        max: usize,
    },
    /// A member subscribed to too many topics.
    #[error(
        "a member subscribed to {count} topics, at most {max} are allowed: subscribe to fewer"
    )]
    TooManyTopics {
        /// Topics in the subscription.
        count: usize,
        /// [`TOPICS_PER_MEMBER_MAX`].
        max: usize,
    },
    /// The session timeout is outside the allowed range.
    #[error("session timeout {ms} ms is out of range: use {min} to {max} ms")]
    InvalidSessionTimeout {
        /// The timeout asked for.
        ms: u32,
        /// [`SESSION_TIMEOUT_MS_MIN`].
        min: u32,
        /// [`SESSION_TIMEOUT_MS_MAX`].
        max: u32,
    },
    /// No assignor has this name.
    #[error("unknown assignor {name:?}: use \"range\" or \"cooperative-sticky\"")]
    UnknownAssignor {
        /// The name asked for (cut to [`NAME_BYTES_MAX`] bytes).
        name: String,
    },
    /// A member id is empty or too long.
    #[error("member id {member_id:?} is invalid: it must be 1 to {bytes_max} bytes")]
    InvalidMemberId {
        /// The id (cut to [`NAME_BYTES_MAX`] bytes).
        member_id: String,
        /// [`NAME_BYTES_MAX`].
        bytes_max: usize,
    },
    /// A subscribed topic name is empty or too long.
    #[error("topic name {name:?} is invalid: it must be 1 to {bytes_max} bytes")]
    InvalidTopicName {
        /// The name (cut to [`NAME_BYTES_MAX`] bytes).
        name: String,
        /// [`NAME_BYTES_MAX`].
        bytes_max: usize,
    },
    /// The subscribed topics have more partitions in total than a group may assign.
    #[error(
        "the group's subscribed topics have {total} partitions, a group assigns at most {max}: \
         split the consumers over several groups"
    )]
    TooManyPartitions {
        /// Partitions of all subscribed topics.
        total: u64,
        /// [`GROUP_PARTITIONS_MAX`].
        max: u64,
    },
}

/// `s` cut to at most [`NAME_BYTES_MAX`] bytes on a character boundary, for error fields.
pub(crate) fn cut(s: &str) -> String {
    let mut end = s.len().min(NAME_BYTES_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests;
