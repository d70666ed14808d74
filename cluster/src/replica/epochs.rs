//! The leader-epoch history of one partition replica: which leader epoch wrote which offsets.
//!
//! Each entry says "from `start_offset` on, records were written by the leader of `epoch`", and
//! holds until the next entry's start. Epochs and start offsets both strictly increase. A leader
//! appends an entry when it takes over at a new epoch; a follower appends one when a fetch brings
//! batches of an epoch it has not seen. Comparing two histories with
//! [`LeaderEpochs::end_offset_for`] tells where two replicas' logs diverge without reading any
//! records (`docs/cluster.md`, Replication; Kafka's OffsetForLeaderEpoch).

/// Most entries one history keeps. Retention trims entries below the log start
/// ([`LeaderEpochs::truncate_from_start`]); a partition that has changed leader more than this many
/// times within its retained log refuses new epochs instead of growing without bound.
pub const LEADER_EPOCHS_MAX: usize = 4096;

/// One epoch start: records from `start_offset` on were written by the leader of `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: u32,
    /// The first offset written in that epoch.
    pub start_offset: u64,
}

/// The answer to "where does epoch `e` end?" ([`LeaderEpochs::end_offset_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    /// The largest known epoch at or below the one asked about.
    pub epoch: u32,
    /// The offset just past that epoch's last record: the next epoch's start, or the log end for
    /// the latest epoch.
    pub end_offset: u64,
}

/// Why an epoch start could not be recorded. The history is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// The epoch is older than the latest one recorded.
    #[error("leader epoch {epoch} is older than the latest recorded epoch {latest}")]
    EpochGoesBack {
        /// The epoch offered.
        epoch: u32,
        /// The latest recorded epoch.
        latest: u32,
    },
    /// The start offset lies before the latest epoch's start.
    #[error(
        "epoch {epoch} starting at offset {start_offset} lies before epoch {latest} \
         starting at {latest_start_offset}"
    )]
    OffsetGoesBack {
        /// The epoch offered.
        epoch: u32,
        /// Its start offset.
        start_offset: u64,
        /// The latest recorded epoch.
        latest: u32,
        /// Where that epoch starts.
        latest_start_offset: u64,
    },
    /// The history already holds [`LEADER_EPOCHS_MAX`] entries.
    #[error("the leader-epoch history is full ({max} entries); retention must trim it first")]
    Full {
        /// The limit.
        max: usize,
    },
}

/// The (epoch, start offset) history of one partition replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochs {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochs {
    /// An empty history (a replica with an empty log).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a history from entries, checking that epochs and start offsets strictly increase
    /// and that there are at most [`LEADER_EPOCHS_MAX`]. Returns the index of the first bad entry.
    pub fn from_entries(entries: Vec<EpochEntry>) -> Result<Self, usize> {
        if entries.len() > LEADER_EPOCHS_MAX {
            return Err(LEADER_EPOCHS_MAX);
        }
        for (i, pair) in entries.windows(2).enumerate() {
            if pair[1].epoch <= pair[0].epoch || pair[1].start_offset <= pair[0].start_offset {
                return Err(i + 1);
            }
        }
        Ok(Self { entries })
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The most recent entry, if any.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The most recent epoch, if any: what a follower sends as its last fetched epoch.
    pub fn latest_epoch(&self) -> Option<u32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The epoch that wrote `offset`, if the history covers it.
    pub fn epoch_of(&self, offset: u64) -> Option<u32> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Returns whether the history changed: the
    /// latest epoch again is a no-op (its later batches continue it). An entry that starts exactly
    /// where the latest one starts replaces it, since the latest epoch then wrote nothing.
    pub fn assign(&mut self, epoch: u32, start_offset: u64) -> Result<bool, EpochError> {
        if let Some(latest) = self.latest() {
            if epoch == latest.epoch {
                return Ok(false);
            }
            if epoch < latest.epoch {
                return Err(EpochError::EpochGoesBack {
                    epoch,
                    latest: latest.epoch,
                });
            }
            if start_offset < latest.start_offset {
                return Err(EpochError::OffsetGoesBack {
                    epoch,
                    start_offset,
                    latest: latest.epoch,
                    latest_start_offset: latest.start_offset,
                });
            }
            if start_offset == latest.start_offset {
                self.entries.pop();
            }
        }
        if self.entries.len() >= LEADER_EPOCHS_MAX {
            return Err(EpochError::Full {
                max: LEADER_EPOCHS_MAX,
            });
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        Ok(true)
    }

    /// Kafka's OffsetForLeaderEpoch rule, for a replica whose log ends at `log_end_offset`:
    /// - the latest epoch ends at the log end;
    /// - an older epoch `e` ends where the first epoch above `e` starts, and the answer names the
    ///   largest epoch at or below `e` this replica knows (which may be smaller than `e`: this
    ///   replica never saw `e`);
    /// - an epoch below every known one ends where the first known one starts;
    /// - `None` when the history is empty or `e` is above every known epoch.
    pub fn end_offset_for(&self, epoch: u32, log_end_offset: u64) -> Option<EpochEnd> {
        let latest = self.latest()?;
        if epoch == latest.epoch {
            return Some(EpochEnd {
                epoch,
                end_offset: log_end_offset,
            });
        }
        let higher = self.entries.partition_point(|e| e.epoch <= epoch);
        let next = self.entries.get(higher)?;
        let floor_epoch = match higher.checked_sub(1) {
            Some(i) => self.entries[i].epoch,
            None => epoch,
        };
        Some(EpochEnd {
            epoch: floor_epoch,
            end_offset: next.start_offset,
        })
    }

    /// Drops every entry that starts at or after `end_offset`, after the log was cut there.
    /// Returns whether anything was dropped.
    pub fn truncate_to(&mut self, end_offset: u64) -> bool {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// After a restart, fits the history to the recovered log end: drops entries that start
    /// beyond it, but keeps one that starts exactly there. That entry is a leadership that wrote
    /// nothing durable; keeping it stops this node from leading at that epoch again
    /// ([`crate::BecomeLeaderError::EpochNotNew`]), since followers may hold records of that
    /// epoch that this node lost. Returns whether anything was dropped.
    pub fn recover_to(&mut self, log_end_offset: u64) -> bool {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset <= log_end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Forgets epochs that ended before `log_start_offset`, after retention removed their records.
    /// The epoch holding the new log start is kept and starts there. Returns whether anything
    /// changed.
    pub fn truncate_from_start(&mut self, log_start_offset: u64) -> bool {
        let covering = self
            .entries
            .partition_point(|e| e.start_offset <= log_start_offset);
        let Some(keep_from) = covering.checked_sub(1) else {
            return false;
        };
        let changed = keep_from > 0 || self.entries[keep_from].start_offset != log_start_offset;
        self.entries.drain(..keep_from);
        self.entries[0].start_offset = log_start_offset;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(pairs: &[(u32, u64)]) -> LeaderEpochs {
        LeaderEpochs::from_entries(
            pairs
                .iter()
                .map(|&(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn end_offset_for_follows_the_kafka_rule() {
        // Epochs 1 at 0, 3 at 10, 6 at 25; log end 40.
        let h = history(&[(1, 0), (3, 10), (6, 25)]);
        let end = |e| h.end_offset_for(e, 40).map(|x| (x.epoch, x.end_offset));
        assert_eq!(end(6), Some((6, 40)), "latest epoch ends at the log end");
        assert_eq!(end(3), Some((3, 25)), "known epoch ends at the next start");
        assert_eq!(
            end(4),
            Some((3, 25)),
            "unknown epoch: the floor epoch answers"
        );
        assert_eq!(end(5), Some((3, 25)));
        assert_eq!(end(1), Some((1, 10)));
        assert_eq!(end(0), Some((0, 0)), "below every epoch: the first start");
        assert_eq!(end(7), None, "above every epoch is undefined");
        assert_eq!(LeaderEpochs::new().end_offset_for(1, 0), None);
    }

    #[test]
    fn assign_keeps_epochs_and_offsets_increasing() {
        let mut h = LeaderEpochs::new();
        assert_eq!(h.assign(2, 0), Ok(true));
        assert_eq!(h.assign(2, 7), Ok(false), "same epoch continues");
        assert_eq!(
            h.assign(1, 9),
            Err(EpochError::EpochGoesBack {
                epoch: 1,
                latest: 2
            })
        );
        assert_eq!(h.assign(4, 10), Ok(true));
        assert_eq!(
            h.assign(5, 3),
            Err(EpochError::OffsetGoesBack {
                epoch: 5,
                start_offset: 3,
                latest: 4,
                latest_start_offset: 10
            })
        );
        // Epoch 4 wrote nothing: epoch 5 at the same start replaces it.
        assert_eq!(h.assign(5, 10), Ok(true));
        assert_eq!(h, history(&[(2, 0), (5, 10)]));
        assert_eq!(h.epoch_of(9), Some(2));
        assert_eq!(h.epoch_of(10), Some(5));
    }

    #[test]
    fn assign_refuses_past_the_limit() {
        let mut h = LeaderEpochs::new();
        for i in 0..LEADER_EPOCHS_MAX as u32 {
            h.assign(i, u64::from(i)).unwrap();
        }
        assert_eq!(
            h.assign(u32::MAX, u64::MAX),
            Err(EpochError::Full {
                max: LEADER_EPOCHS_MAX
            })
        );
        assert_eq!(h.entries().len(), LEADER_EPOCHS_MAX);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut h = history(&[(1, 0), (3, 10), (6, 25)]);
        assert!(
            h.truncate_to(25),
            "an epoch starting at the cut holds nothing"
        );
        assert_eq!(h, history(&[(1, 0), (3, 10)]));
        assert!(!h.truncate_to(30));
        assert!(h.truncate_from_start(12));
        assert_eq!(h, history(&[(3, 12)]));
        assert!(!h.truncate_from_start(12));
        let mut h = history(&[(1, 5), (2, 9)]);
        assert!(!h.truncate_from_start(3), "nothing below the first start");
        assert!(h.truncate_to(0));
        assert_eq!(h.latest(), None);
    }

    #[test]
    fn recovery_keeps_an_epoch_that_starts_at_the_log_end() {
        let mut h = history(&[(1, 0), (3, 10), (6, 25)]);
        assert!(!h.recover_to(25));
        assert_eq!(h.latest_epoch(), Some(6));
        assert!(h.recover_to(24));
        assert_eq!(h, history(&[(1, 0), (3, 10)]));
    }

    #[test]
    fn from_entries_names_the_first_bad_entry() {
        let e = |epoch, start_offset| EpochEntry {
            epoch,
            start_offset,
        };
        assert_eq!(
            LeaderEpochs::from_entries(vec![e(1, 0), e(2, 5), e(2, 6)]),
            Err(2)
        );
        assert_eq!(LeaderEpochs::from_entries(vec![e(1, 5), e(2, 5)]), Err(1));
    }
}
