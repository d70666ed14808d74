//! The follower's side of one partition: what to fetch next and what to do with the answer.

use super::epochs::{EpochError, LEADER_EPOCHS_MAX};
use super::fetch::{BatchSpan, FetchAnswer, FetchReply, FetchRequest, LocalLog, LocalLogError};

/// What the engine must do with a [`FetchAnswer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Append the answer's batches, in order, then persist the epoch history if `epochs_changed`
    /// (before the batches can become durable).
    Append {
        /// Whether the batches started a new epoch.
        epochs_changed: bool,
    },
    /// Truncate the log to `offset` (`PartitionLog::truncate_to`), persist the epoch history,
    /// and fetch again.
    Truncate {
        /// The new log end.
        offset: u64,
    },
    /// Drop the answer.
    Ignore(IgnoreReason),
}

/// Why an answer was dropped. Duplicated, delayed and reordered answers end here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// It comes from another leader epoch than the one this follower follows.
    OtherLeaderEpoch {
        /// The answer's epoch.
        answer_epoch: u32,
        /// The followed epoch.
        leader_epoch: u32,
    },
    /// It answers a fetch from a position this follower has since left.
    StalePosition,
    /// This node is the leader (or there is none): it fetches from nobody.
    NotFollowing,
}

/// A fetch answer that breaks the protocol. The follower's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The batches do not start at the fetch offset or are not contiguous and non-empty.
    #[error(
        "batch {index} covers [{base_offset}, {next_offset}), expected it to start at {expected}"
    )]
    NotContiguous {
        /// Index of the batch.
        index: usize,
        /// Its first offset.
        base_offset: u64,
        /// One past its last offset.
        next_offset: u64,
        /// Where it had to start.
        expected: u64,
    },
    /// A batch's epoch is older than the previous batch's or newer than the leader's.
    #[error("batch {index} has epoch {epoch}, outside [{min}, {leader_epoch}]")]
    BatchEpoch {
        /// Index of the batch.
        index: usize,
        /// Its epoch.
        epoch: u32,
        /// The smallest epoch allowed there.
        min: u32,
        /// The leader's epoch.
        leader_epoch: u32,
    },
    /// The batches bring more new epochs than the history may hold.
    #[error(transparent)]
    Epochs(#[from] EpochError),
    /// A diverging answer would cut below the log start.
    #[error("truncation to {offset} lies below the log start {log_start_offset}")]
    BelowLogStart {
        /// Where the cut would be.
        offset: u64,
        /// The log start.
        log_start_offset: u64,
    },
}

/// The follower's bookkeeping for one partition.
#[derive(Debug, Clone)]
pub struct FollowerState {
    node_id: u32,
    leader: Option<u32>,
    leader_epoch: u32,
    local: LocalLog,
}

impl FollowerState {
    /// Follows `leader` (from metadata; `None` while the partition has none) at `leader_epoch`.
    pub fn new(
        node_id: u32,
        leader: Option<u32>,
        leader_epoch: u32,
        local: LocalLog,
    ) -> Result<Self, LocalLogError> {
        Ok(Self {
            node_id,
            leader,
            leader_epoch,
            local: local.checked()?,
        })
    }

    /// This node.
    pub fn node_id(&self) -> u32 {
        self.node_id
    }
    /// The leader followed, if any.
    pub fn leader(&self) -> Option<u32> {
        self.leader
    }
    /// The leader epoch followed.
    pub fn leader_epoch(&self) -> u32 {
        self.leader_epoch
    }
    /// This replica's log state, epoch history included.
    pub fn local(&self) -> &LocalLog {
        &self.local
    }
    /// Gives the log state back, to lead or to restart.
    pub fn into_local(self) -> LocalLog {
        self.local
    }

    fn fetching(&self) -> bool {
        self.leader.is_some_and(|l| l != self.node_id)
    }

    /// Metadata names `leader` at `leader_epoch`. An older epoch is ignored (metadata arrives
    /// late and out of order). Returns whether the followed leader changed; from then on only
    /// answers from the new epoch apply. If the new leader is this node, the caller turns
    /// [`FollowerState::into_local`] into a [`crate::LeaderState`].
    pub fn on_leader_change(&mut self, leader: Option<u32>, leader_epoch: u32) -> bool {
        if leader_epoch < self.leader_epoch
            || (leader_epoch == self.leader_epoch && leader == self.leader)
        {
            return false;
        }
        self.leader = leader;
        self.leader_epoch = leader_epoch;
        true
    }

    /// The fetch to send now, or `None` when there is no other leader to fetch from.
    pub fn next_fetch(&self) -> Option<FetchRequest> {
        self.fetching().then(|| FetchRequest {
            replica: self.node_id,
            leader_epoch: self.leader_epoch,
            fetch_offset: self.local.log_end_offset,
            last_fetched_epoch: self.local.epochs.latest_epoch(),
            durable_offset: self.local.durable_offset,
        })
    }

    /// The log is fdatasync'd below `durable_offset` (clamped to the log end: a flush that
    /// began before a truncation cannot make the cut records durable).
    pub fn on_durable(&mut self, durable_offset: u64) {
        let d = durable_offset.min(self.local.log_end_offset);
        self.local.durable_offset = self.local.durable_offset.max(d);
    }

    /// Applies a leader's answer. For `Records`, `batches` are the spans of the batches that came
    /// with it (possibly none); on [`Verdict::Append`] the engine appends exactly those.
    pub fn on_answer(
        &mut self,
        answer: &FetchAnswer,
        batches: &[BatchSpan],
    ) -> Result<Verdict, AnswerError> {
        if !self.fetching() {
            return Ok(Verdict::Ignore(IgnoreReason::NotFollowing));
        }
        if answer.leader_epoch != self.leader_epoch {
            return Ok(Verdict::Ignore(IgnoreReason::OtherLeaderEpoch {
                answer_epoch: answer.leader_epoch,
                leader_epoch: self.leader_epoch,
            }));
        }
        if answer.fetch_offset != self.local.log_end_offset
            || answer.last_fetched_epoch != self.local.epochs.latest_epoch()
        {
            return Ok(Verdict::Ignore(IgnoreReason::StalePosition));
        }
        match answer.reply {
            FetchReply::Records { high_watermark } => self.append(high_watermark, batches),
            FetchReply::Diverging { epoch, end_offset } => self.truncate(epoch, end_offset),
        }
    }

    fn append(
        &mut self,
        high_watermark: u64,
        batches: &[BatchSpan],
    ) -> Result<Verdict, AnswerError> {
        // Check everything before changing anything.
        let mut expected = self.local.log_end_offset;
        let mut min_epoch = self.local.epochs.latest_epoch().unwrap_or(0);
        let mut new_epochs = 0usize;
        for (index, b) in batches.iter().enumerate() {
            if b.base_offset != expected || b.next_offset <= b.base_offset {
                return Err(AnswerError::NotContiguous {
                    index,
                    base_offset: b.base_offset,
                    next_offset: b.next_offset,
                    expected,
                });
            }
            if b.epoch < min_epoch || b.epoch > self.leader_epoch {
                return Err(AnswerError::BatchEpoch {
                    index,
                    epoch: b.epoch,
                    min: min_epoch,
                    leader_epoch: self.leader_epoch,
                });
            }
            let starts_epoch = match (index, self.local.epochs.latest_epoch()) {
                (0, latest) => latest != Some(b.epoch),
                _ => b.epoch != batches[index - 1].epoch,
            };
            new_epochs += usize::from(starts_epoch);
            min_epoch = b.epoch;
            expected = b.next_offset;
        }
        if self.local.epochs.entries().len() + new_epochs > LEADER_EPOCHS_MAX {
            return Err(AnswerError::Epochs(EpochError::Full {
                max: LEADER_EPOCHS_MAX,
            }));
        }
        let mut epochs_changed = false;
        for b in batches {
            epochs_changed |= self.local.epochs.assign(b.epoch, b.base_offset)?;
        }
        self.local.log_end_offset = expected;
        let hw = high_watermark.min(self.local.log_end_offset);
        self.local.high_watermark = self.local.high_watermark.max(hw);
        Ok(Verdict::Append { epochs_changed })
    }

    /// Kafka's truncation rule: cut to where the leader's `epoch` ends or where this replica's
    /// own copy of that epoch ends, whichever is first. When this replica never saw `epoch`, the
    /// cut lands at the start of its first later epoch; the next fetch then names an older last
    /// epoch and the leader checks again, until the two logs agree.
    fn truncate(&mut self, epoch: u32, end_offset: u64) -> Result<Verdict, AnswerError> {
        let log_end = self.local.log_end_offset;
        let own_end = match self.local.epochs.latest() {
            Some(latest) if epoch < latest.epoch => self
                .local
                .epochs
                .end_offset_for(epoch, log_end)
                .map_or(log_end, |e| e.end_offset),
            _ => log_end,
        };
        let offset = end_offset.min(own_end);
        if offset < self.local.log_start_offset {
            return Err(AnswerError::BelowLogStart {
                offset,
                log_start_offset: self.local.log_start_offset,
            });
        }
        self.local.log_end_offset = offset;
        self.local.durable_offset = self.local.durable_offset.min(offset);
        self.local.high_watermark = self.local.high_watermark.min(offset);
        self.local.epochs.truncate_to(offset);
        Ok(Verdict::Truncate { offset })
    }
}
