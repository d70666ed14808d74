//! Replication of cluster partitions whose topic has a replication factor above 1: the node's
//! side of `docs/cluster.md` (Replication), driving the pure state machines of the `cluster`
//! crate ([`cluster::LeaderState`], [`cluster::FollowerState`]) with the partition's real log,
//! fdatasyncs, sockets and clock.
//!
//! - Every owning shard reconciles its partitions' roles with the committed metadata every
//!   [`RECONCILE_INTERVAL`] ([`spawn_reconciler`]): the partition's leader (metadata `leader`)
//!   becomes a [`Role::Leader`] at the metadata's epoch once its whole log is fdatasync'd and the
//!   new epoch is in its `leader-epochs` file; any other replica becomes a [`Role::Follower`] and
//!   runs a fetch loop against the leader ([`follower`]).
//! - The leader answers followers' ReplicaFetch requests ([`leader::serve`]); their reports of
//!   what is on their disks move the high watermark. Consumers read only below it
//!   ([`visible_end`]); an `acks=all` produce is answered once the record is on the leader's disk,
//!   on `min_insync` in-sync disks and below the watermark ([`wait_acks_all`]).
//! - In-sync set changes the leader wants go to the metadata controller ([`isr`]).
//!
//! Partitions of topics with one replica keep the single-node path: no role, no watermark, no
//! `leader-epochs` file.
//!
//! Not done here (docs/cluster.md, status): reassignment of replicas after a node loss or join
//! (the replica set stays as placed), unclean election, and a follower that fell below the
//! leader's log start (retention outran it) only reports the refusal.

pub mod follower;
pub mod isr;
pub mod leader;

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use cluster::{FollowerState, LeaderConfig, LeaderEpochs, LeaderInit, LeaderState, LocalLog};
use net::codec::ErrorCode;

use crate::handlers::Failure;
use crate::notify::Notify;
use crate::partition::Partition;
use crate::shard::Shard;

/// How often an owning shard compares its partitions' roles with the metadata.
pub const RECONCILE_INTERVAL: Duration = Duration::from_millis(200);
/// How long an `acks=all` produce waits for its in-sync replicas before it is answered TIMEOUT.
pub const ACKS_ALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A follower leaves the in-sync set when it has not caught up for this long.
pub const REPLICA_LAG_MAX_MS: u64 = 10_000;
/// The epoch history of a replicated partition, next to its segments.
pub const EPOCHS_FILE: &str = "leader-epochs";

/// What this node is for one replicated partition.
#[derive(Debug)]
pub enum Role {
    Leader(LeaderState),
    Follower(FollowerState),
}

/// A partition's replication state, owned by its shard.
#[derive(Debug, Default)]
pub struct ReplicaSlot {
    pub role: RefCell<Option<Role>>,
    /// A role change is in progress (it awaits an fdatasync or a file write).
    busy: Cell<bool>,
    /// Bumped when the high watermark moves or the role changes (acks=all waiters).
    pub changed: Notify,
    /// The follower fetch loop of this partition is running.
    fetching: Cell<bool>,
    /// The last role-change problem logged, so a persisting one is logged once.
    last_error: RefCell<Option<String>>,
    /// An in-sync set proposal is on its way to the controller.
    isr_in_flight: Cell<bool>,
    /// When the last proposal was sent.
    isr_sent: Cell<Option<std::time::Instant>>,
    /// Times this node took over leadership of the partition.
    pub leaderships: Cell<u64>,
    /// Times the follower cut its log back to match its leader.
    pub truncations: Cell<u64>,
    /// ReplicaFetch requests this node answered as leader.
    pub fetches_served: Cell<u64>,
    /// ReplicaFetch requests this node sent as follower, and how many failed.
    pub fetches_sent: Cell<u64>,
    pub fetch_errors: Cell<u64>,
    /// Records the follower appended from its leader.
    pub records_replicated: Cell<u64>,
}

/// Replication numbers of one partition for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct ReplicaStats {
    /// 1 leader, 2 follower, 0 neither (taking over, or not a replica).
    pub role: u64,
    pub leader_epoch: u64,
    pub high_watermark: u64,
    pub in_sync: u64,
    /// Leader only: the largest distance of a follower's log end behind the leader's.
    pub follower_lag_max: u64,
    pub leaderships: u64,
    pub truncations: u64,
    pub fetches_served: u64,
    pub fetches_sent: u64,
    pub fetch_errors: u64,
    pub records_replicated: u64,
}

/// The replication numbers of `p`, `None` when it has never had a role.
pub fn stats(p: &Partition) -> Option<ReplicaStats> {
    let r = &p.replica;
    let mut s = ReplicaStats {
        leaderships: r.leaderships.get(),
        truncations: r.truncations.get(),
        fetches_served: r.fetches_served.get(),
        fetches_sent: r.fetches_sent.get(),
        fetch_errors: r.fetch_errors.get(),
        records_replicated: r.records_replicated.get(),
        ..ReplicaStats::default()
    };
    match &*r.role.borrow() {
        Some(Role::Leader(l)) => {
            let end = l.local().log_end_offset;
            s.role = 1;
            s.leader_epoch = u64::from(l.leader_epoch());
            s.high_watermark = l.high_watermark();
            s.in_sync = l.in_sync().len() as u64;
            s.follower_lag_max = l
                .replicas()
                .iter()
                .filter(|n| **n != l.node_id())
                .map(|n| {
                    let have = l.follower(*n).and_then(|f| f.log_end_offset).unwrap_or(0);
                    end.saturating_sub(have)
                })
                .max()
                .unwrap_or(0);
        }
        Some(Role::Follower(f)) => {
            s.role = 2;
            s.leader_epoch = u64::from(f.leader_epoch());
            s.high_watermark = f.local().high_watermark;
        }
        None if s.leaderships + s.fetches_sent == 0 => return None,
        None => {}
    }
    Some(s)
}

/// Renders the replication lines of `/metrics`.
pub fn render_metrics(out: &mut String, node: u32, parts: &[(&str, u32, &ReplicaStats)]) {
    let fields: [crate::metrics::PartitionFamily<ReplicaStats>; 11] = [
        ("replica_role", "gauge", |s| s.role),
        ("replica_leader_epoch", "gauge", |s| s.leader_epoch),
        ("replica_high_watermark", "gauge", |s| s.high_watermark),
        ("replica_in_sync", "gauge", |s| s.in_sync),
        ("replica_follower_lag_max_offsets", "gauge", |s| {
            s.follower_lag_max
        }),
        ("replica_leaderships_total", "counter", |s| s.leaderships),
        ("replica_truncations_total", "counter", |s| s.truncations),
        ("replica_fetches_served_total", "counter", |s| {
            s.fetches_served
        }),
        ("replica_fetches_total", "counter", |s| s.fetches_sent),
        ("replica_fetch_errors_total", "counter", |s| s.fetch_errors),
        ("replica_records_replicated_total", "counter", |s| {
            s.records_replicated
        }),
    ];
    crate::metrics::render_partition_families(out, node, &fields, parts);
}

impl ReplicaSlot {
    /// The leader epoch while this node leads the partition.
    pub fn leading_epoch(&self) -> Option<u32> {
        match &*self.role.borrow() {
            Some(Role::Leader(l)) => Some(l.leader_epoch()),
            _ => None,
        }
    }

    fn report(&self, p: &Partition, message: String) {
        let mut last = self.last_error.borrow_mut();
        if last.as_deref() != Some(message.as_str()) {
            eprintln!("sprawl: replica {}/{}: {message}", p.topic, p.index);
            *last = Some(message);
        }
    }
}

/// What the metadata asks of this node for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    Lead {
        init: LeaderInit,
        min_insync: usize,
    },
    Follow {
        leader: Option<u32>,
        leader_epoch: u32,
    },
    Nothing,
}

fn ids(v: &[u64]) -> Vec<u32> {
    v.iter().filter_map(|n| u32::try_from(*n).ok()).collect()
}

/// What the metadata wants of this node for `p`; `None` when the partition is not replicated
/// (its topic has one replica, or is the node's own).
fn wanted(shard: &Shard, p: &Partition) -> Option<Wanted> {
    let state = shard.meta.get();
    let t = state
        .topics
        .get(&p.topic)
        .filter(|t| t.topic_id == p.topic_id && t.replication_factor > 1)?;
    let ps = t.partitions.get(p.index as usize)?;
    let me = shard.config.node_id;
    let replicas = ids(&ps.replicas);
    if !replicas.contains(&me) {
        return Some(Wanted::Nothing);
    }
    if ps.leader == u64::from(me) {
        return Some(Wanted::Lead {
            init: LeaderInit {
                node_id: me,
                leader_epoch: ps.leader_epoch,
                replicas,
                in_sync: ids(&ps.in_sync),
                isr_version: ps.isr_version,
            },
            min_insync: usize::from(t.min_insync.max(1)),
        });
    }
    Some(Wanted::Follow {
        leader: u32::try_from(ps.leader).ok().filter(|l| *l != 0),
        leader_epoch: ps.leader_epoch,
    })
}

/// Whether `p` belongs to a replicated topic in the metadata this node holds.
pub fn is_replicated(shard: &Shard, p: &Partition) -> bool {
    wanted(shard, p).is_some()
}

/// The end of what consumers may read: the high watermark while this node leads a replicated
/// partition, `log_end` for an unreplicated one. A replicated partition this node does not (yet)
/// lead shows nothing: check_leader refuses reads there anyway.
pub fn visible_end(p: &Partition, log_end: u64) -> u64 {
    match &*p.replica.role.borrow() {
        Some(Role::Leader(l)) => l.high_watermark().min(log_end),
        Some(Role::Follower(f)) => f.local().high_watermark.min(log_end),
        None => log_end,
    }
}

/// The offset below which key compaction may look at a partition: everything for an
/// unreplicated one, the high watermark for a replicated one (records above it may still be
/// truncated, so they must not decide that an older committed value of their key is gone), and
/// nothing while its role is being set up.
pub fn compaction_bound(shard: &Shard, p: &Partition) -> u64 {
    if !is_replicated(shard, p) {
        return u64::MAX;
    }
    match &*p.replica.role.borrow() {
        Some(Role::Leader(l)) => l.high_watermark(),
        Some(Role::Follower(f)) => f.local().high_watermark,
        None => 0,
    }
}

/// Checks a read of a replicated partition: only an established leader answers (while it takes
/// over, its role is not set and its log may hold records above the watermark).
pub fn read_gate(shard: &Shard, p: &Partition) -> Result<(), Failure> {
    if !is_replicated(shard, p) || p.replica.leading_epoch().is_some() {
        return Ok(());
    }
    Err(Failure::new(
        ErrorCode::NotLeader,
        format!(
            "partition {}/{} is taking over leadership on this node; retry",
            p.topic, p.index
        ),
    ))
}

/// Checks a produce against the partition's role before anything is appended. Returns the leader
/// epoch when the partition is replicated (the produce must then follow the replication rules).
pub fn produce_gate(
    shard: &Shard,
    p: &Partition,
    acks_all: bool,
    api_version: u16,
) -> Result<Option<u32>, Failure> {
    if !is_replicated(shard, p) {
        return Ok(None);
    }
    let role = p.replica.role.borrow();
    let Some(Role::Leader(l)) = &*role else {
        return Err(Failure::new(
            ErrorCode::NotLeader,
            format!(
                "partition {}/{} is taking over leadership on this node; retry",
                p.topic, p.index
            ),
        ));
    };
    if acks_all {
        if let Err(e) = l.check_min_insync() {
            let code = not_enough_replicas_code(api_version);
            return Err(Failure::new(
                code,
                format!(
                    "{e} for partition {}/{}; nothing was written, retry later",
                    p.topic, p.index
                ),
            ));
        }
    }
    Ok(Some(l.leader_epoch()))
}

/// The code of an `acks=all` refusal for lack of in-sync replicas: Produce v0 clients do not
/// know NOT_ENOUGH_REPLICAS and get TIMEOUT with the same message (docs/protocol.md).
fn not_enough_replicas_code(api_version: u16) -> ErrorCode {
    if api_version >= ErrorCode::NOT_ENOUGH_REPLICAS_VERSION {
        ErrorCode::NotEnoughReplicas
    } else {
        ErrorCode::Timeout
    }
}

/// The leader appended: its log now ends at the log's end offset.
pub fn on_append(p: &Partition) {
    let end = p.log.borrow().end_offset();
    if let Some(Role::Leader(l)) = &mut *p.replica.role.borrow_mut() {
        l.on_append(end);
    }
}

/// A flush completed: the leader's durable offset moved (the high watermark may follow), a
/// follower's fetch reports it next.
pub fn on_flushed(p: &Partition) {
    let durable = p.log.borrow().durable_offset();
    let moved = match &mut *p.replica.role.borrow_mut() {
        Some(Role::Leader(l)) => {
            let before = l.high_watermark();
            let end = p.log.borrow().end_offset();
            l.on_append(end);
            l.on_durable(durable.max(l.local().durable_offset)) != before
        }
        Some(Role::Follower(f)) => {
            f.on_durable(durable);
            false
        }
        None => false,
    };
    if moved {
        watermark_moved(p);
    }
}

/// Wakes acks=all waiters and consumers after the high watermark moved.
pub fn watermark_moved(p: &Partition) {
    p.replica.changed.notify_all();
    p.appended.notify_all();
}

/// Waits until the record at `last` satisfies `acks=all` at `epoch`: on the leader's disk, on
/// `min_insync` in-sync disks, below the high watermark. Fails when leadership moves or after
/// [`ACKS_ALL_TIMEOUT`].
pub async fn wait_acks_all(
    shard: &Shard,
    p: &Rc<Partition>,
    epoch: u32,
    last: u64,
    api_version: u16,
) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let deadline = started + ACKS_ALL_TIMEOUT;
    loop {
        let seen = p.replica.changed.generation();
        match &*p.replica.role.borrow() {
            Some(Role::Leader(l)) if l.leader_epoch() == epoch => {
                if l.acks_all_satisfied(last) {
                    let us = started.elapsed().as_micros() as u64;
                    shard.stats.record(crate::stats::Op::Replicate, us);
                    return Ok(());
                }
                // The set shrank below min-insync after the append: the write cannot be
                // acknowledged until it grows back, so say so now instead of timing out.
                if let Err(e) = l.check_min_insync() {
                    return Err(Failure::new(
                        not_enough_replicas_code(api_version),
                        format!(
                            "{e} for partition {}/{} after offset {last} was appended; the write \
                             may or may not be kept: retry (idempotent producers are safe)",
                            p.topic, p.index
                        ),
                    ));
                }
            }
            _ => {
                return Err(Failure::new(
                    ErrorCode::NotLeader,
                    format!(
                        "leadership of {}/{} moved before offset {last} was replicated; the \
                         write may or may not be kept: retry (idempotent producers are safe)",
                        p.topic, p.index
                    ),
                ))
            }
        }
        if p.closed.get() {
            return Err(Failure::new(
                ErrorCode::ShuttingDown,
                "partition closed before the write was replicated",
            ));
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Err(Failure::new(
                ErrorCode::Timeout,
                format!(
                    "offset {last} of {}/{} was not replicated to the in-sync replicas within \
                     {} s; the write may or may not be kept: retry",
                    p.topic,
                    p.index,
                    ACKS_ALL_TIMEOUT.as_secs()
                ),
            ));
        }
        let _ = glommio::timer::timeout(deadline - now, async {
            p.replica.changed.changed_since(seen).await;
            Ok(())
        })
        .await;
    }
}

/// Reads the `leader-epochs` file of `dir` (absent: empty history). Blocking.
fn read_epochs(dir: &Path) -> Result<LeaderEpochs, String> {
    let path = dir.join(EPOCHS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => LeaderEpochs::decode(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LeaderEpochs::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces the `leader-epochs` file durably (temp file, fdatasync, rename, directory sync).
/// Blocking.
fn write_epochs(dir: &Path, epochs: &LeaderEpochs) -> Result<(), String> {
    use std::io::Write;
    let path = dir.join(EPOCHS_FILE);
    let tmp = dir.join(format!("{EPOCHS_FILE}.tmp"));
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", tmp.display());
    let mut f = std::fs::File::create(&tmp).map_err(|e| fail("create", e))?;
    f.write_all(&epochs.encode())
        .map_err(|e| fail("write", e))?;
    f.sync_data().map_err(|e| fail("fdatasync", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| fail("rename", e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

/// Persists `epochs` for `p` off the reactor.
pub async fn persist_epochs(p: &Partition, epochs: LeaderEpochs) -> Result<(), String> {
    let dir = p.dir.clone();
    crate::runtime::blocking(move || write_epochs(&dir, &epochs)).await
}

/// This replica's log state, from the log and its `leader-epochs` file (fitted to the recovered
/// log with `recover_to`, so a history that outlived a torn tail is cut back).
async fn load_local(p: &Partition) -> Result<LocalLog, String> {
    let dir = p.dir.clone();
    let mut epochs = crate::runtime::blocking(move || read_epochs(&dir)).await?;
    let (start, end, durable) = {
        let log = p.log.borrow();
        (log.start_offset(), log.end_offset(), log.durable_offset())
    };
    let mut changed = epochs.recover_to(end);
    changed |= epochs.truncate_from_start(start);
    let local = LocalLog {
        log_start_offset: start,
        log_end_offset: end,
        durable_offset: durable,
        high_watermark: 0,
        epochs,
    };
    if changed {
        persist_epochs(p, local.epochs.clone()).await?;
    }
    Ok(local)
}

/// The current role's log state (refreshed from the log), or the one on disk.
async fn take_local(p: &Partition) -> Result<LocalLog, String> {
    let role = p.replica.role.borrow_mut().take();
    let mut local = match role {
        Some(Role::Leader(l)) => l.into_local(),
        Some(Role::Follower(f)) => f.into_local(),
        None => return load_local(p).await,
    };
    let log = p.log.borrow();
    local.log_start_offset = log.start_offset();
    local.log_end_offset = log.end_offset();
    local.durable_offset = log.durable_offset();
    local.epochs.recover_to(local.log_end_offset);
    Ok(local)
}

/// Spawns the shard's reconciler: every [`RECONCILE_INTERVAL`], each owned partition of a
/// replicated topic takes the role the metadata gives it.
pub fn spawn_reconciler(shard: &Rc<Shard>) {
    if !crate::metadata::cluster_topics(shard) {
        return;
    }
    let s = shard.clone();
    glommio::spawn_local(async move {
        while !s.stopping.get() {
            glommio::timer::sleep(RECONCILE_INTERVAL).await;
            let parts: Vec<Rc<Partition>> = s.partitions.borrow().values().cloned().collect();
            for p in parts {
                if p.closed.get() || p.replica.busy.get() {
                    continue;
                }
                if let Some(w) = wanted(&s, &p) {
                    reconcile(&s, &p, w).await;
                }
            }
        }
    })
    .detach();
}

async fn reconcile(shard: &Rc<Shard>, p: &Rc<Partition>, w: Wanted) {
    let now = crate::handlers::now_ms().max(0) as u64;
    // Steady states first: bookkeeping only, then what it asks for.
    let steady = steady_pass(p, &w, now);
    match steady {
        Steady::No => {}
        Steady::Leading {
            committed,
            history_changed,
            change,
        } => {
            if committed {
                watermark_moved(p);
            }
            if history_changed {
                let epochs = match &*p.replica.role.borrow() {
                    Some(Role::Leader(l)) => Some(l.local().epochs.clone()),
                    _ => None,
                };
                if let Some(e) = epochs {
                    if let Err(e) = persist_epochs(p, e).await {
                        p.replica.report(p, e);
                    }
                }
            }
            if let Some(c) = change {
                isr::propose(shard, p, c);
            }
            return;
        }
        Steady::Following => {
            follower::ensure_running(shard, p);
            return;
        }
        Steady::Idle => return,
    }
    p.replica.busy.set(true);
    let result = change_role(shard, p, w, now).await;
    p.replica.busy.set(false);
    watermark_moved(p);
    match result {
        Ok(()) => {
            *p.replica.last_error.borrow_mut() = None;
            follower::ensure_running(shard, p);
        }
        Err(e) => p.replica.report(p, e),
    }
}

/// What a reconcile pass found without changing the role.
enum Steady {
    /// The role must change.
    No,
    Leading {
        committed: bool,
        history_changed: bool,
        change: Option<cluster::IsrChange>,
    },
    Following,
    Idle,
}

fn steady_pass(p: &Partition, w: &Wanted, now: u64) -> Steady {
    let mut role = p.replica.role.borrow_mut();
    match (&mut *role, w) {
        (Some(Role::Leader(l)), Wanted::Lead { init, .. })
            if l.leader_epoch() == init.leader_epoch =>
        {
            let start = p.log.borrow().start_offset();
            let history_changed = l.on_log_start(start);
            let committed = l
                .on_isr_committed(init.leader_epoch, init.isr_version, &init.in_sync)
                .unwrap_or(false);
            let change = l
                .poll_isr_change(now)
                .or_else(|| l.pending_isr_change().cloned());
            Steady::Leading {
                committed,
                history_changed,
                change,
            }
        }
        (
            Some(Role::Follower(f)),
            Wanted::Follow {
                leader,
                leader_epoch,
            },
        ) => {
            f.on_leader_change(*leader, *leader_epoch);
            Steady::Following
        }
        (None, Wanted::Nothing) => Steady::Idle,
        _ => Steady::No,
    }
}

/// Moves `p` into the role `w` asks for. On failure the partition has no role (it serves
/// nothing) and the next pass tries again.
async fn change_role(
    shard: &Rc<Shard>,
    p: &Rc<Partition>,
    w: Wanted,
    now_ms: u64,
) -> Result<(), String> {
    let me = shard.config.node_id;
    let local = take_local(p).await?;
    match w {
        Wanted::Nothing => Ok(()),
        Wanted::Follow {
            leader,
            leader_epoch,
        } => {
            let f = FollowerState::new(me, leader, leader_epoch, local)
                .map_err(|e| format!("cannot follow: {e}"))?;
            *p.replica.role.borrow_mut() = Some(Role::Follower(f));
            Ok(())
        }
        Wanted::Lead { init, min_insync } => {
            // A new leader's whole log must be on disk before its epoch starts
            // (docs/replication-format.md: a node never leads twice at one epoch).
            let end = local.log_end_offset;
            p.wait_durable(end).await?;
            let mut local = local;
            local.durable_offset = p.log.borrow().durable_offset();
            let config = LeaderConfig {
                replica_lag_max_ms: REPLICA_LAG_MAX_MS,
                min_insync,
            };
            let (epoch, isr_version) = (init.leader_epoch, init.isr_version);
            let l = match LeaderState::new(init, local, config, now_ms) {
                Ok(l) => l,
                Err(e @ cluster::BecomeLeaderError::EpochNotNew { .. }) => {
                    isr::request_election(shard, p, epoch, isr_version);
                    return Err(format!(
                        "cannot lead at epoch {epoch} ({e}); asked the controller for a new \
                         election"
                    ));
                }
                Err(e) => return Err(format!("cannot lead at epoch {epoch}: {e}")),
            };
            // The new epoch is on disk before the first produce of it is accepted.
            persist_epochs(p, l.local().epochs.clone()).await?;
            eprintln!(
                "sprawl: replica {}/{}: leading at epoch {epoch} from offset {}",
                p.topic,
                p.index,
                l.epoch_start_offset()
            );
            *p.replica.role.borrow_mut() = Some(Role::Leader(l));
            crate::metrics::add(&p.replica.leaderships, 1);
            Ok(())
        }
    }
}
