//! The leader's side of one partition: follower positions, the in-sync set, the high watermark
//! and `acks=all` (`docs/cluster.md`, Replication; rules and their reasons in
//! `docs/replication-format.md`).
//!
//! The high watermark is the lowest **durable** offset over the in-sync set (the leader counts).
//! So everything below it is on the disk of every replica the controller may elect, and survives
//! any crash that loses unsynced data; with the lowest log end instead, the simulation in
//! `tests/replica_sim.rs` elects a leader that lacks records consumers had already read.

use super::fetch::{FetchAnswer, FetchRefusal, FetchReply, FetchRequest, LocalLog};
use super::leader_errors::{check_members, BecomeLeaderError, IsrCommitError, NotEnoughReplicas};

/// Settings of the leader's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderConfig {
    /// A follower that has not reached the leader's log end for this long leaves the in-sync set.
    pub replica_lag_max_ms: u64,
    /// In-sync replicas (the leader counts) an `acks=all` write needs.
    pub min_insync: usize,
}

impl Default for LeaderConfig {
    /// 10 s lag, 2 in sync: the documented defaults.
    fn default() -> Self {
        Self {
            replica_lag_max_ms: 10_000,
            min_insync: 2,
        }
    }
}

/// A proposed in-sync set for the controller. The controller commits it only while `leader_epoch`
/// is the partition's epoch and `isr_version` its in-sync set version (then bumps the version), so
/// a deposed leader or a duplicated, delayed proposal changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    /// The proposing leader's epoch.
    pub leader_epoch: u32,
    /// The committed in-sync set version this proposal replaces.
    pub isr_version: u32,
    /// The proposed set, in replica order, leader included.
    pub in_sync: Vec<u32>,
}

/// What the leader knows about one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerPosition {
    /// The follower's node id.
    pub replica: u32,
    /// Its log end from its latest fetch; `None` before its first fetch in this epoch.
    pub log_end_offset: Option<u64>,
    /// Its durable offset from its latest fetch.
    pub durable_offset: u64,
    /// When it last had everything the leader had (this epoch's start counts as caught up).
    pub last_caught_up_ms: u64,
    last_fetch_ms: u64,
    last_fetch_leader_log_end: u64,
}

/// How a node becomes leader: the partition's metadata plus its own log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInit {
    /// This node.
    pub node_id: u32,
    /// The epoch it was elected at.
    pub leader_epoch: u32,
    /// The replica list, preferred leader first.
    pub replicas: Vec<u32>,
    /// The committed in-sync set (must contain this node).
    pub in_sync: Vec<u32>,
    /// The committed in-sync set's version.
    pub isr_version: u32,
}

/// The leader's bookkeeping for one partition at one leader epoch. A new epoch means a new
/// `LeaderState`; see the crate docs for the calling pattern.
#[derive(Debug, Clone)]
pub struct LeaderState {
    node_id: u32,
    leader_epoch: u32,
    replicas: Vec<u32>,
    in_sync: Vec<u32>,
    isr_version: u32,
    pending: Option<IsrChange>,
    followers: Vec<FollowerPosition>,
    epoch_start_offset: u64,
    local: LocalLog,
    config: LeaderConfig,
}

impl LeaderState {
    /// Starts leading at `init.leader_epoch` over `local` (which must be durable to its end),
    /// appending the epoch to the history at the log end. The caller persists the history
    /// ([`LeaderState::local`]`.epochs`, the `leader-epochs` file) before accepting produce.
    /// Followers count as caught up at `now_ms`.
    pub fn new(
        init: LeaderInit,
        local: LocalLog,
        config: LeaderConfig,
        now_ms: u64,
    ) -> Result<Self, BecomeLeaderError> {
        check_members(init.node_id, &init.replicas, &init.in_sync)?;
        let mut local = local.checked()?;
        if local.durable_offset < local.log_end_offset {
            return Err(BecomeLeaderError::NotDurable {
                durable_offset: local.durable_offset,
                log_end_offset: local.log_end_offset,
            });
        }
        if let Some(latest) = local.epochs.latest_epoch() {
            if latest >= init.leader_epoch {
                return Err(BecomeLeaderError::EpochNotNew {
                    epoch: init.leader_epoch,
                    latest,
                });
            }
        }
        local
            .epochs
            .assign(init.leader_epoch, local.log_end_offset)?;
        let followers = init
            .replicas
            .iter()
            .filter(|r| **r != init.node_id)
            .map(|&replica| FollowerPosition {
                replica,
                log_end_offset: None,
                durable_offset: 0,
                last_caught_up_ms: now_ms,
                last_fetch_ms: now_ms,
                last_fetch_leader_log_end: local.log_end_offset,
            })
            .collect();
        Ok(Self {
            node_id: init.node_id,
            leader_epoch: init.leader_epoch,
            replicas: init.replicas,
            in_sync: init.in_sync,
            isr_version: init.isr_version,
            pending: None,
            followers,
            epoch_start_offset: local.log_end_offset,
            local,
            config,
        })
    }

    /// This node.
    pub fn node_id(&self) -> u32 {
        self.node_id
    }
    /// The epoch this node leads at.
    pub fn leader_epoch(&self) -> u32 {
        self.leader_epoch
    }
    /// The replica list.
    pub fn replicas(&self) -> &[u32] {
        &self.replicas
    }
    /// The committed in-sync set.
    pub fn in_sync(&self) -> &[u32] {
        &self.in_sync
    }
    /// The committed in-sync set's version.
    pub fn isr_version(&self) -> u32 {
        self.isr_version
    }
    /// The proposal waiting for the controller, to resend until a newer version is committed.
    pub fn pending_isr_change(&self) -> Option<&IsrChange> {
        self.pending.as_ref()
    }
    /// Consumers read below this offset only.
    pub fn high_watermark(&self) -> u64 {
        self.local.high_watermark
    }
    /// Where this epoch's records start.
    pub fn epoch_start_offset(&self) -> u64 {
        self.epoch_start_offset
    }
    /// The leader's own log state, epoch history included.
    pub fn local(&self) -> &LocalLog {
        &self.local
    }
    /// Gives the log state back when this node stops leading.
    pub fn into_local(self) -> LocalLog {
        self.local
    }
    /// What the leader knows about `replica`.
    pub fn follower(&self, replica: u32) -> Option<&FollowerPosition> {
        self.followers.iter().find(|f| f.replica == replica)
    }

    /// The committed set plus any member a pending proposal adds: until the controller answers,
    /// either set may be the one it elects from, so the high watermark respects both.
    fn maximal_in_sync(&self) -> impl Iterator<Item = u32> + '_ {
        let added = self
            .pending
            .iter()
            .flat_map(|p| p.in_sync.iter().copied())
            .filter(|n| !self.in_sync.contains(n));
        self.in_sync.iter().copied().chain(added)
    }

    fn durable_of(&self, node: u32) -> u64 {
        if node == self.node_id {
            return self.local.durable_offset;
        }
        self.follower(node).map_or(0, |f| f.durable_offset)
    }

    fn advance_high_watermark(&mut self) {
        let lowest = self
            .maximal_in_sync()
            .map(|n| self.durable_of(n))
            .min()
            .unwrap_or(self.local.durable_offset);
        if lowest > self.local.high_watermark {
            self.local.high_watermark = lowest;
        }
    }

    /// The leader appended records: its log now ends at `log_end_offset`.
    ///
    /// # Panics
    /// If the log end goes backwards: a leader never truncates its log.
    pub fn on_append(&mut self, log_end_offset: u64) {
        assert!(
            log_end_offset >= self.local.log_end_offset,
            "leader log end went back from {} to {log_end_offset}",
            self.local.log_end_offset
        );
        self.local.log_end_offset = log_end_offset;
    }

    /// The leader's log is fdatasync'd below `durable_offset`. Returns the high watermark.
    ///
    /// # Panics
    /// If the durable offset goes backwards or past the log end.
    pub fn on_durable(&mut self, durable_offset: u64) -> u64 {
        assert!(
            durable_offset >= self.local.durable_offset
                && durable_offset <= self.local.log_end_offset,
            "leader durable offset {durable_offset} outside [{}, {}]",
            self.local.durable_offset,
            self.local.log_end_offset
        );
        self.local.durable_offset = durable_offset;
        self.advance_high_watermark();
        self.local.high_watermark
    }

    /// Retention removed records below `log_start_offset`: forget the epochs that ended there.
    /// Returns whether the epoch history changed (and must be rewritten).
    pub fn on_log_start(&mut self, log_start_offset: u64) -> bool {
        self.local.log_start_offset = log_start_offset.min(self.local.log_end_offset);
        self.local
            .epochs
            .truncate_from_start(self.local.log_start_offset)
    }

    /// Answers a follower's fetch and records its position. On `Records` the engine sends the
    /// batches stored from the request's `fetch_offset` on.
    pub fn on_fetch(
        &mut self,
        req: &FetchRequest,
        now_ms: u64,
    ) -> Result<FetchAnswer, FetchRefusal> {
        let Some(fi) = self.followers.iter().position(|f| f.replica == req.replica) else {
            return Err(FetchRefusal::NotReplica {
                replica: req.replica,
            });
        };
        if req.leader_epoch < self.leader_epoch {
            return Err(FetchRefusal::FencedLeaderEpoch {
                request_epoch: req.leader_epoch,
                leader_epoch: self.leader_epoch,
            });
        }
        if req.leader_epoch > self.leader_epoch {
            return Err(FetchRefusal::UnknownLeaderEpoch {
                request_epoch: req.leader_epoch,
                leader_epoch: self.leader_epoch,
            });
        }
        let leader_epoch = self.leader_epoch;
        let answer = |reply| FetchAnswer {
            leader_epoch,
            fetch_offset: req.fetch_offset,
            last_fetched_epoch: req.last_fetched_epoch,
            reply,
        };
        let log_end = self.local.log_end_offset;
        match req.last_fetched_epoch {
            Some(last) => {
                let end = self.local.epochs.end_offset_for(last, log_end);
                let diverging = match end {
                    Some(e) if e.epoch == last && e.end_offset >= req.fetch_offset => None,
                    Some(e) => Some((e.epoch, e.end_offset)),
                    // An epoch above every one this leader knows (epochs only grow through
                    // elections, so no honest follower sends one): back to the leader's latest.
                    None => self.local.epochs.latest().map(|l| (l.epoch, log_end)),
                };
                if let Some((epoch, end_offset)) = diverging {
                    return Ok(answer(FetchReply::Diverging { epoch, end_offset }));
                }
            }
            None if req.fetch_offset > self.local.log_start_offset => {
                return Err(FetchRefusal::NoLastFetchedEpoch {
                    fetch_offset: req.fetch_offset,
                    log_start_offset: self.local.log_start_offset,
                });
            }
            None => {}
        }
        if req.fetch_offset < self.local.log_start_offset || req.fetch_offset > log_end {
            return Err(FetchRefusal::OffsetOutOfRange {
                fetch_offset: req.fetch_offset,
                log_start_offset: self.local.log_start_offset,
                log_end_offset: log_end,
            });
        }
        let f = &mut self.followers[fi];
        f.log_end_offset = Some(req.fetch_offset);
        f.durable_offset = req.durable_offset.min(req.fetch_offset);
        // Kafka's rule: caught up now if it has the whole log; caught up as of its previous
        // fetch if it now has what the leader had back then (a follower that keeps fetching under
        // steady produce is never "behind" by more than one round trip).
        if req.fetch_offset >= log_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if req.fetch_offset >= f.last_fetch_leader_log_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_log_end = log_end;
        self.advance_high_watermark();
        Ok(answer(FetchReply::Records {
            high_watermark: self.local.high_watermark,
        }))
    }

    fn lagging(&self, f: &FollowerPosition, now_ms: u64) -> bool {
        now_ms.saturating_sub(f.last_caught_up_ms) > self.config.replica_lag_max_ms
    }

    /// A follower may join when it is not lagging and everything below both the high watermark
    /// and this epoch's start is on its disk. The epoch start matters because a new leader's high
    /// watermark can lag behind what the previous leader acknowledged; everything acknowledged
    /// before this epoch lies below its start, and a joiner that lacked some of it could be
    /// elected next. Having fetched up to it also means the follower cut any divergent suffix.
    fn may_join(&self, f: &FollowerPosition, now_ms: u64) -> bool {
        f.log_end_offset.is_some()
            && f.durable_offset >= self.local.high_watermark.max(self.epoch_start_offset)
            && !self.lagging(f, now_ms)
    }

    /// The in-sync set this leader wants now, if it differs from the committed one and nothing is
    /// pending: lagging followers leave, caught-up ones join. The returned proposal stays pending
    /// (resend it with [`LeaderState::pending_isr_change`]) until [`LeaderState::on_isr_committed`]
    /// brings a newer version. A refusal from the controller does not end it: a duplicate of the
    /// proposal may have committed, or may still commit, and only the committed metadata tells.
    pub fn poll_isr_change(&mut self, now_ms: u64) -> Option<IsrChange> {
        if self.pending.is_some() {
            return None;
        }
        let wanted: Vec<u32> = self
            .replicas
            .iter()
            .copied()
            .filter(|&n| {
                if n == self.node_id {
                    return true;
                }
                let Some(f) = self.follower(n) else {
                    return false;
                };
                if self.in_sync.contains(&n) {
                    !self.lagging(f, now_ms)
                } else {
                    self.may_join(f, now_ms)
                }
            })
            .collect();
        let same =
            wanted.len() == self.in_sync.len() && wanted.iter().all(|n| self.in_sync.contains(n));
        if same {
            return None;
        }
        let change = IsrChange {
            leader_epoch: self.leader_epoch,
            isr_version: self.isr_version,
            in_sync: wanted,
        };
        self.pending = Some(change.clone());
        self.advance_high_watermark();
        Some(change)
    }

    /// The controller committed `in_sync` as version `isr_version` at `leader_epoch` (this
    /// leader's proposal or its own removal of a dead node). Returns whether anything changed;
    /// an older or equal version is old news. A newer version ends any pending proposal: it was
    /// either this one or makes it stale.
    pub fn on_isr_committed(
        &mut self,
        leader_epoch: u32,
        isr_version: u32,
        in_sync: &[u32],
    ) -> Result<bool, IsrCommitError> {
        if leader_epoch != self.leader_epoch {
            return Err(IsrCommitError::OtherEpoch {
                committed_epoch: leader_epoch,
                leader_epoch: self.leader_epoch,
            });
        }
        if isr_version <= self.isr_version {
            return Ok(false);
        }
        check_members(self.node_id, &self.replicas, in_sync)?;
        self.in_sync = in_sync.to_vec();
        self.isr_version = isr_version;
        self.pending = None;
        self.advance_high_watermark();
        Ok(true)
    }

    /// Whether an `acks=all` produce may be appended now: the smaller of the committed and the
    /// pending in-sync set must have `min_insync` members.
    pub fn check_min_insync(&self) -> Result<(), NotEnoughReplicas> {
        let pending = self
            .pending
            .as_ref()
            .map_or(usize::MAX, |p| p.in_sync.len());
        let in_sync = self.in_sync.len().min(pending);
        if in_sync < self.config.min_insync {
            return Err(NotEnoughReplicas {
                in_sync,
                min_insync: self.config.min_insync,
            });
        }
        Ok(())
    }

    /// Whether the record at `offset` may be acknowledged to an `acks=all` producer: the leader
    /// has it on disk, at least `min_insync` in-sync replicas (the leader counts) report it on
    /// disk, and it is below the high watermark (so it is on the disk of every replica the
    /// controller could elect, not only of `min_insync` of them).
    pub fn acks_all_satisfied(&self, offset: u64) -> bool {
        let durable_here = self.local.durable_offset > offset;
        let durable_in_sync = self
            .maximal_in_sync()
            .filter(|n| self.durable_of(*n) > offset)
            .count();
        durable_here
            && durable_in_sync >= self.config.min_insync
            && self.local.high_watermark > offset
    }
}
