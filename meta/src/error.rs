//! Typed errors, one enum per layer. Each variant's doc says what state is left
//! behind.

use std::io;

/// A command, snapshot or log record could not be decoded (or a value was too
/// large to encode). Nothing was changed by the failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ended before `field` was complete.
    #[error("{field}: needs {needed_bytes} bytes, {remaining_bytes} left")]
    Truncated {
        /// Field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed_bytes: u64,
        /// Bytes that were left.
        remaining_bytes: u64,
    },
    /// A length or count exceeds its limit (checked before allocating).
    #[error("{field}: length {len} exceeds the limit {max}")]
    TooLong {
        /// Field being read or written.
        field: &'static str,
        /// Length found.
        len: u64,
        /// Largest accepted length.
        max: u64,
    },
    /// A string field is not UTF-8.
    #[error("{field}: not valid UTF-8")]
    InvalidUtf8 {
        /// Field being read.
        field: &'static str,
    },
    /// An enum tag that this version does not know.
    #[error("{what}: unknown tag {tag}")]
    UnknownTag {
        /// Which enum.
        what: &'static str,
        /// Tag found.
        tag: u8,
    },
    /// A format version this build cannot read.
    #[error("{what}: unsupported format version {version}")]
    UnsupportedVersion {
        /// Which format.
        what: &'static str,
        /// Version found.
        version: u16,
    },
    /// Bytes left over after a complete value.
    #[error("{what}: {trailing_bytes} trailing bytes")]
    TrailingBytes {
        /// Which format.
        what: &'static str,
        /// How many bytes were left.
        trailing_bytes: u64,
    },
    /// The magic number does not match.
    #[error("{what}: bad magic {found:#010x}")]
    BadMagic {
        /// Which format.
        what: &'static str,
        /// Magic found.
        found: u32,
    },
    /// Decoded fields contradict each other (a repeated key, a count over a
    /// cluster limit).
    #[error("{what}: {reason}")]
    Inconsistent {
        /// Which format.
        what: &'static str,
        /// What is contradictory.
        reason: &'static str,
    },
    /// The CRC32C stored with the value does not match its bytes.
    #[error("{what}: crc32c stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Which format.
        what: &'static str,
        /// Checksum in the input.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
}

/// A well-formed command that the current [`crate::MetadataState`] refuses.
/// The state is unchanged; every replica refuses it identically, so the
/// rejection is part of the replicated history rather than a divergence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The topic does not exist.
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// Topic named by the command.
        topic: String,
    },
    /// A topic of that name already exists.
    #[error("topic {topic:?} already exists")]
    TopicExists {
        /// Topic named by the command.
        topic: String,
    },
    /// A topic or group name is empty, too long or has characters outside
    /// `[A-Za-z0-9._-]`.
    #[error("invalid {what} name {name:?}")]
    InvalidName {
        /// "topic" or "group".
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Partition count outside `1..=max`.
    #[error("partition count {partitions} outside 1..={max}")]
    InvalidPartitionCount {
        /// Requested partitions.
        partitions: u32,
        /// Limit.
        max: u32,
    },
    /// Replication factor outside `1..=max`.
    #[error("replication factor {replication_factor} outside 1..={max}")]
    InvalidReplicationFactor {
        /// Requested replication factor.
        replication_factor: u16,
        /// Limit.
        max: u16,
    },
    /// `min_insync` outside `1..=replication_factor`.
    #[error("min-insync {min_insync} outside 1..={replication_factor}")]
    InvalidMinInsync {
        /// Requested minimum in-sync replicas.
        min_insync: u16,
        /// The topic's replication factor.
        replication_factor: u16,
    },
    /// The cluster-wide limit on topics, partitions, nodes or groups is reached.
    #[error("too many {what}: {count} would exceed {max}")]
    LimitReached {
        /// "topics", "partitions", "nodes" or "groups".
        what: &'static str,
        /// Count after the command.
        count: u64,
        /// Limit.
        max: u64,
    },
    /// The partition index is beyond the topic's partition count.
    #[error("topic {topic:?} has {partitions} partitions, no partition {partition}")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Requested partition.
        partition: u32,
        /// The topic's partition count.
        partitions: u32,
    },
    /// A replica list whose length is not the topic's replication factor (or one more, while a
    /// replica moves).
    #[error(
        "{actual} replicas given, replication factor is {expected} (one more is allowed only \
         while a replica moves)"
    )]
    ReplicaCountMismatch {
        /// Replication factor.
        expected: u16,
        /// Replicas given.
        actual: u64,
    },
    /// A node id appears twice in a replica or in-sync list.
    #[error("node {node_id} listed twice")]
    DuplicateNode {
        /// Repeated node id.
        node_id: u64,
    },
    /// A node id that was never registered (or node id 0).
    #[error("unknown node {node_id}")]
    UnknownNode {
        /// Node id.
        node_id: u64,
    },
    /// A leader change whose epoch is not above the current one.
    #[error("leader epoch {proposed} is not above the current {current}")]
    EpochNotIncreasing {
        /// Current leader epoch.
        current: u32,
        /// Epoch in the command.
        proposed: u32,
    },
    /// An in-sync update from a leader epoch other than the current one.
    #[error("leader epoch {proposed} is not the current {current}")]
    StaleLeaderEpoch {
        /// Current leader epoch.
        current: u32,
        /// Epoch in the command.
        proposed: u32,
    },
    /// An in-sync update proposed against an in-sync set version other than
    /// the current one: a delayed or duplicated proposal that another change
    /// has overtaken.
    #[error("in-sync set version {proposed} is not the current {current}")]
    StaleIsrVersion {
        /// Current `isr_version` of the partition.
        current: u32,
        /// Version in the command.
        proposed: u32,
    },
    /// The proposed leader is not in the in-sync set (no unclean election).
    #[error("node {leader} is not in the in-sync set")]
    LeaderNotInSync {
        /// Proposed leader.
        leader: u64,
    },
    /// An in-sync member that is not a replica.
    #[error("node {node_id} is in the in-sync set but not a replica")]
    InSyncNotReplica {
        /// Offending node.
        node_id: u64,
    },
    /// An in-sync set that leaves out the current leader, or is empty.
    #[error("in-sync set must contain the leader {leader}")]
    InSyncWithoutLeader {
        /// Current leader (0 when the partition has none).
        leader: u64,
    },
    /// The log entry does not decode as a command (written by an incompatible
    /// build); every replica skips it identically.
    #[error("undecodable command: {source}")]
    Undecodable {
        /// Why decoding failed.
        source: CodecError,
    },
    /// A partition that has no replicas assigned yet.
    #[error("partition {partition} of {topic:?} has no replicas assigned")]
    Unassigned {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
}

/// Reading or writing the Raft files failed. After an `Io` error during a
/// write the on-disk state is whatever the last successful sync left; the node
/// must be dropped and reopened.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O call failed.
    #[error("{op} {file}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// File name inside the data directory.
        file: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file holds something other than a torn tail that cannot be decoded.
    #[error("{file} at byte {offset}: {source}")]
    Corrupt {
        /// File name.
        file: String,
        /// Byte offset of the bad record.
        offset: u64,
        /// What was wrong.
        #[source]
        source: CodecError,
    },
    /// A file is larger than this build will read into memory.
    #[error("{file} is {bytes} bytes, limit {max}")]
    TooLarge {
        /// File name.
        file: String,
        /// Its size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The voters stored on disk are not the ones configured.
    #[error("stored voters {stored:?} differ from configured {configured:?}")]
    VotersMismatch {
        /// Voters on disk.
        stored: Vec<u64>,
        /// Voters in the config.
        configured: Vec<u64>,
    },
}

/// Errors of [`crate::MetaNode`].
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The configuration is inconsistent; nothing was opened.
    #[error("invalid config: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// Persisting or loading failed; drop the node and reopen it.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// raft-rs refused an operation (a bug in how it was driven, or a message
    /// from an unknown peer). The node stays usable.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// A received message is larger than `message_bytes_max`; it was not decoded.
    #[error("raft message of {bytes} bytes exceeds {max}")]
    MessageTooLarge {
        /// Size received.
        bytes: u64,
        /// Limit.
        max: u64,
    },
    /// A received message is not a valid protobuf `eraftpb.Message`.
    #[error("raft message: {0}")]
    MessageDecode(#[from] prost::DecodeError),
    /// A snapshot received from the leader does not decode (or the local
    /// state does not encode at compaction); nothing was installed, but the
    /// Ready was not completed: drop the node and reopen it.
    #[error("snapshot from the leader: {0}")]
    BadSnapshot(#[source] CodecError),
    /// A received message is addressed to another node or from a non-voter.
    #[error("message from {from} to {to} is not for node {node_id}")]
    Misrouted {
        /// Sender.
        from: u64,
        /// Addressee.
        to: u64,
        /// This node.
        node_id: u64,
    },
}

/// Why a proposal was not accepted. Nothing was appended.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals; retry at `leader_id` (0 = unknown).
    #[error("not the leader (leader is {leader_id})")]
    NotLeader {
        /// Current leader as far as this node knows, 0 if none.
        leader_id: u64,
    },
    /// The encoded command is larger than `proposal_bytes_max`.
    #[error("proposal of {bytes} bytes exceeds {max}")]
    TooLarge {
        /// Encoded size.
        bytes: u64,
        /// Limit.
        max: u64,
    },
    /// The uncommitted log is full (no quorum?); retry later.
    #[error("{entries} uncommitted entries, limit {max}")]
    Backpressure {
        /// Entries not yet applied.
        entries: u64,
        /// Limit.
        max: u64,
    },
    /// The command cannot be encoded (a field over its limit).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// raft-rs dropped the proposal (for example during a leader transfer).
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}
