//! Replication bookkeeping for one partition, as pure state machines (`docs/cluster.md`,
//! Replication): the leader-epoch history and its file, the leader's view of its followers, and
//! a follower's fetch state. The engine moves requests, answers and batches between them and the
//! sockets, logs and clock; `tests/replica_sim.rs` moves them over a faulty simulated network.

mod epochs;
mod epochs_file;
mod fetch;
mod follower;
mod leader;
mod leader_errors;

pub use epochs::{EpochEnd, EpochEntry, EpochError, LeaderEpochs, LEADER_EPOCHS_MAX};
pub use epochs_file::{
    EpochsFileError, LEADER_EPOCHS_FILE_BYTES_MAX, LEADER_EPOCHS_MAGIC, LEADER_EPOCHS_VERSION,
};
pub use fetch::{
    BatchSpan, FetchAnswer, FetchRefusal, FetchReply, FetchRequest, LocalLog, LocalLogError,
};
pub use follower::{AnswerError, FollowerState, IgnoreReason, Verdict};
pub use leader::{FollowerPosition, IsrChange, LeaderConfig, LeaderInit, LeaderState};
pub use leader_errors::{BecomeLeaderError, IsrCommitError, MembershipError, NotEnoughReplicas};

#[cfg(test)]
mod follower_tests;
#[cfg(test)]
mod leader_tests;
