//! What followers and leaders say to each other (`ReplicaFetch` in `docs/cluster.md`), without
//! the transport: topic, partition, `max_bytes` and `wait_ms` belong to the engine's frame.

use super::epochs::LeaderEpochs;

/// A follower's fetch: "I hold everything below `fetch_offset`, my last batch was written in
/// `last_fetched_epoch`, and everything below `durable_offset` is on my disk".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRequest {
    /// The fetching replica's node id.
    pub replica: u32,
    /// The leader epoch the follower believes is current (from metadata).
    pub leader_epoch: u32,
    /// The follower's log end: the next offset it needs.
    pub fetch_offset: u64,
    /// The epoch of the follower's last batch; `None` when its log is empty.
    pub last_fetched_epoch: Option<u32>,
    /// Every offset below this is fdatasync'd on the follower.
    pub durable_offset: u64,
}

/// The leader's answer to a [`FetchRequest`]. It echoes the request's position, so a follower
/// applies an answer only while it still stands where it asked from: a duplicated, delayed or
/// reordered answer finds the follower elsewhere and is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchAnswer {
    /// The leader's epoch; answers from any other epoch are ignored.
    pub leader_epoch: u32,
    /// The request's `fetch_offset`.
    pub fetch_offset: u64,
    /// The request's `last_fetched_epoch`.
    pub last_fetched_epoch: Option<u32>,
    /// What to do.
    pub reply: FetchReply,
}

/// The body of a [`FetchAnswer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchReply {
    /// The follower's log matches the leader's up to `fetch_offset`. The engine sends the batches
    /// stored from `fetch_offset` on (possibly none) as [`BatchSpan`]s with their bytes.
    Records {
        /// The leader's high watermark.
        high_watermark: u64,
    },
    /// The follower's last epoch ends earlier on the leader, at `end_offset` (the leader knows no
    /// later epoch at or below the follower's than `epoch`): truncate and fetch again.
    Diverging {
        /// The largest leader epoch at or below the follower's last one.
        epoch: u32,
        /// Where that epoch ends on the leader.
        end_offset: u64,
    },
}

/// Offsets `[base_offset, next_offset)` of one batch written in leader epoch `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    /// The leader epoch that wrote the batch.
    pub epoch: u32,
    /// Its first offset.
    pub base_offset: u64,
    /// One past its last offset.
    pub next_offset: u64,
}

/// Why a leader refused a fetch. The leader's state is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchRefusal {
    /// The sender is not a follower replica of this partition (or is the leader itself).
    #[error("node {replica} is not a follower replica of this partition")]
    NotReplica {
        /// The sender.
        replica: u32,
    },
    /// The follower is behind on metadata: it must learn the current epoch first.
    #[error(
        "fetch at leader epoch {request_epoch} is fenced: the current epoch is {leader_epoch}"
    )]
    FencedLeaderEpoch {
        /// The epoch in the request.
        request_epoch: u32,
        /// This leader's epoch.
        leader_epoch: u32,
    },
    /// The follower knows a newer epoch than this leader: this leader has probably been deposed.
    #[error(
        "fetch at leader epoch {request_epoch} is newer than this leader's epoch {leader_epoch}"
    )]
    UnknownLeaderEpoch {
        /// The epoch in the request.
        request_epoch: u32,
        /// This leader's epoch.
        leader_epoch: u32,
    },
    /// The fetch offset lies outside the leader's log.
    #[error(
        "fetch offset {fetch_offset} is outside the leader's log \
         [{log_start_offset}, {log_end_offset}]"
    )]
    OffsetOutOfRange {
        /// The offset asked for.
        fetch_offset: u64,
        /// The leader's log start.
        log_start_offset: u64,
        /// The leader's log end.
        log_end_offset: u64,
    },
    /// A non-empty follower log without a last epoch cannot be checked for divergence.
    #[error(
        "fetch from offset {fetch_offset} names no last fetched epoch; truncate to the log \
         start {log_start_offset}"
    )]
    NoLastFetchedEpoch {
        /// The offset asked for.
        fetch_offset: u64,
        /// The leader's log start.
        log_start_offset: u64,
    },
}

/// What a replica knows about its own copy of the partition, handed from one role to the next
/// (follower to leader and back) and rebuilt from the log and the `leader-epochs` file on start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLog {
    /// The first offset still stored.
    pub log_start_offset: u64,
    /// The next offset to be written.
    pub log_end_offset: u64,
    /// Every offset below this is fdatasync'd.
    pub durable_offset: u64,
    /// The high watermark this replica last learned (0 after a restart is safe: it only grows).
    pub high_watermark: u64,
    /// The epoch history of the stored records.
    pub epochs: LeaderEpochs,
}

/// Why a [`LocalLog`] is not usable. Nothing was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LocalLogError {
    /// Offsets out of order.
    #[error(
        "log start {log_start_offset} and durable offset {durable_offset} must not exceed the \
         log end {log_end_offset}"
    )]
    Offsets {
        /// Log start.
        log_start_offset: u64,
        /// Durable offset.
        durable_offset: u64,
        /// Log end.
        log_end_offset: u64,
    },
    /// The epoch history starts beyond the log end, or is empty for a non-empty log.
    #[error(
        "the leader-epoch history does not cover the log [{log_start_offset}, {log_end_offset})"
    )]
    EpochsDoNotCover {
        /// Log start.
        log_start_offset: u64,
        /// Log end.
        log_end_offset: u64,
    },
}

impl LocalLog {
    /// An empty log at offset 0.
    pub fn empty() -> Self {
        Self {
            log_start_offset: 0,
            log_end_offset: 0,
            durable_offset: 0,
            high_watermark: 0,
            epochs: LeaderEpochs::new(),
        }
    }

    /// Checks the offsets and that the epochs cover every stored record; clamps the high
    /// watermark to the log end.
    pub(crate) fn checked(mut self) -> Result<Self, LocalLogError> {
        let (s, d, e) = (
            self.log_start_offset,
            self.durable_offset,
            self.log_end_offset,
        );
        if d > e || s > e {
            return Err(LocalLogError::Offsets {
                log_start_offset: s,
                durable_offset: d,
                log_end_offset: e,
            });
        }
        let covered = match self.epochs.entries().first() {
            None => s == e,
            Some(first) => first.start_offset <= s || s == e,
        };
        let within = self.epochs.latest().is_none_or(|l| l.start_offset <= e);
        if !covered || !within {
            return Err(LocalLogError::EpochsDoNotCover {
                log_start_offset: s,
                log_end_offset: e,
            });
        }
        self.high_watermark = self.high_watermark.min(e);
        Ok(self)
    }
}
