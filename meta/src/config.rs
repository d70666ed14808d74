//! Tunables of a [`crate::MetaNode`], every one a bound.

use crate::command::COMMAND_BYTES_MAX;
use crate::error::MetaError;
use crate::logfile::{SNAPSHOT_FILE_BYTES_MAX, VOTERS_MAX};

/// Configuration of one metadata replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaConfig {
    /// This node's id (never 0); must be one of `voters`.
    pub node_id: u64,
    /// Ids of all voting replicas (1 to 9; 3 or 5 in practice). Fixed at
    /// bootstrap: membership changes are not supported.
    pub voters: Vec<u64>,
    /// Ticks without a leader before a follower campaigns. Each node waits an
    /// extra `0..election_ticks` ticks drawn from `seed` after every term or
    /// role change, so that candidates spread out without ambient randomness.
    pub election_ticks: u32,
    /// Ticks between leader heartbeats; below `election_ticks`.
    pub heartbeat_ticks: u32,
    /// Seed of the election-jitter generator (derive it per node).
    pub seed: u64,
    /// Largest encoded command accepted by `propose`.
    pub proposal_bytes_max: u32,
    /// Largest raft message accepted by `step` (a snapshot must fit).
    pub message_bytes_max: u64,
    /// Entry bytes per append message (raft-rs `max_size_per_msg`).
    pub append_bytes_max: u64,
    /// Append messages in flight per follower (raft-rs `max_inflight_msgs`).
    pub inflight_messages_max: u32,
    /// Committed entry bytes handed out per ready (raft-rs
    /// `max_committed_size_per_ready`).
    pub committed_bytes_per_ready_max: u64,
    /// Entries proposed but not yet applied before `propose` pushes back;
    /// bounds the in-memory log together with `snapshot_every_entries`.
    pub unapplied_entries_max: u64,
    /// Applied entries between snapshots; the log is compacted at each one.
    pub snapshot_every_entries: u64,
    /// Log file size that triggers a rewrite of `raft.log`.
    pub log_file_bytes_max: u64,
}

impl MetaConfig {
    /// Defaults for a node of a group, ticked every 100 ms by the engine:
    /// elections after 0.6-1.2 s without a leader (three missed heartbeats at
    /// least), heartbeats every 200 ms. A dead metadata leader is then replaced
    /// about as fast as gossip suspects a dead node (0.6-2 s), so a partition
    /// failover that needs both waits little for the metadata's own election.
    pub fn new(node_id: u64, voters: Vec<u64>, seed: u64) -> Self {
        Self {
            node_id,
            voters,
            election_ticks: 6,
            heartbeat_ticks: 2,
            seed,
            proposal_bytes_max: COMMAND_BYTES_MAX as u32,
            message_bytes_max: SNAPSHOT_FILE_BYTES_MAX as u64 + (1 << 20),
            append_bytes_max: 1 << 20,
            inflight_messages_max: 64,
            committed_bytes_per_ready_max: 1 << 20,
            unapplied_entries_max: 1024,
            snapshot_every_entries: 4096,
            log_file_bytes_max: 16 << 20,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), MetaError> {
        let fail = |reason: String| Err(MetaError::InvalidConfig { reason });
        if self.node_id == 0 {
            return fail("node_id must not be 0".into());
        }
        if self.voters.is_empty() || self.voters.len() > VOTERS_MAX as usize {
            return fail(format!(
                "{} voters, need 1..={VOTERS_MAX}",
                self.voters.len()
            ));
        }
        let mut sorted = self.voters.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.voters.len() || sorted.contains(&0) {
            return fail(format!(
                "voters {:?} must be distinct and non-zero",
                self.voters
            ));
        }
        if !self.voters.contains(&self.node_id) {
            return fail(format!(
                "node {} is not among voters {:?}",
                self.node_id, self.voters
            ));
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return fail(format!(
                "heartbeat_ticks {} must be in 1..election_ticks {}",
                self.heartbeat_ticks, self.election_ticks
            ));
        }
        if self.proposal_bytes_max as usize > COMMAND_BYTES_MAX {
            return fail(format!("proposal_bytes_max above {COMMAND_BYTES_MAX}"));
        }
        if self.unapplied_entries_max == 0 || self.snapshot_every_entries == 0 {
            return fail("unapplied_entries_max and snapshot_every_entries must be > 0".into());
        }
        if self.inflight_messages_max == 0 {
            return fail("inflight_messages_max must be > 0".into());
        }
        Ok(())
    }
}
