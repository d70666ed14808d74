//! Topic changes through the metadata controller: the leader proposes `CreateTopic` /
//! `DeleteTopic`, places every unassigned partition on live registered nodes (weighted
//! rendezvous, `cluster::replicas`), elects a leader for every partition that has none, and
//! answers the node that asked once the result is committed.
//!
//! Placement and leader election run as a reconcile pass on every tick of the leader rather than
//! as part of the create, so a leader that crashes between `CreateTopic` and the assignments
//! leaves nothing half done: the next leader finishes the job.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use meta::{Applied, Command, MetadataState, PartitionState, ProposalId};

/// How long a topic change may take to commit (and be placed) before the caller is told.
pub const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Topic changes waiting for their commit at once; beyond it a change is refused as busy.
pub const PENDING_MAX: usize = 64;
/// Placement commands proposed per tick (a topic of thousands of partitions is placed over a few
/// ticks instead of flooding the log).
const PLACEMENTS_PER_TICK: usize = 512;
/// A placement proposed but not committed is proposed again after this long.
const PLACEMENT_RETRY: Duration = Duration::from_secs(2);

/// The commands giving partition `partition` of `topic` (now `current`) the replica set
/// `replicas`: `AssignReplicas`, then `SetLeader` of the same leader at the next epoch, so the
/// leader starts over with the new set. Used by reassignment and rebalancing alike.
pub(super) fn assign_replicas(
    topic: &str,
    partition: u32,
    replicas: Vec<u64>,
    current: &PartitionState,
) -> [Command; 2] {
    [
        Command::AssignReplicas {
            topic: topic.to_string(),
            partition,
            replicas,
        },
        Command::SetLeader {
            topic: topic.to_string(),
            partition,
            leader: current.leader,
            leader_epoch: current.leader_epoch + 1,
        },
    ]
}

/// A topic change asked of the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicChange {
    Create {
        name: String,
        partitions: u32,
        replication_factor: u16,
        min_insync: u16,
        /// The topic's settings as the metadata stores them (`settings_to_config`).
        config: Vec<(String, String)>,
    },
    Delete {
        name: String,
    },
    /// A partition leader's in-sync set proposal, fenced by its epoch and the set version it saw.
    /// An empty `in_sync` asks for a new election instead: the leader cannot lead at
    /// `leader_epoch` (its epoch history holds it already, after a fast restart), or, with a
    /// non-zero `successor`, wants that in-sync replica to lead (a hand-over, [`super::hand_over`]).
    InSync {
        topic: String,
        partition: u32,
        leader: u64,
        leader_epoch: u32,
        isr_version: u32,
        in_sync: Vec<u64>,
        successor: u64,
    },
}

/// The controller's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// Created, every partition placed and led; the metadata topic id.
    Created {
        topic_id: u64,
    },
    Deleted,
    /// An in-sync set proposal committed (a newer version of the set exists).
    InSyncCommitted,
    /// This controller does not lead; the leader it knows (0 = none yet) and its client address.
    NotLeader {
        leader_id: u64,
        leader_addr: Option<String>,
    },
    /// A topic of that name exists already.
    Exists,
    /// No topic of that name.
    Unknown,
    /// Refused by the metadata rules (a bad setting or a stale epoch or version).
    Refused {
        message: String,
    },
    /// Not committed (or not placed) within [`PROPOSAL_TIMEOUT`]; it may still take effect.
    TimedOut {
        message: String,
    },
}

fn refusal(e: &meta::CommandError) -> ChangeOutcome {
    match e {
        meta::CommandError::TopicExists { .. } => ChangeOutcome::Exists,
        meta::CommandError::UnknownTopic { .. } => ChangeOutcome::Unknown,
        other => ChangeOutcome::Refused {
            message: other.to_string(),
        },
    }
}

pub(super) struct Pending {
    pub change: TopicChange,
    pub proposal: Option<ProposalId>,
    pub deadline: Instant,
    pub reply: flume::Sender<ChangeOutcome>,
}

/// The leader's bookkeeping of topic changes and placements in flight.
#[derive(Default)]
pub(super) struct Topics {
    pub pending: Vec<Pending>,
    /// Partitions whose assignment, leader or in-sync set was proposed: when, and the partition's
    /// (leader epoch, in-sync version) then; a committed change makes the entry stale at once.
    placing: BTreeMap<(String, u32), (Instant, (u32, u32))>,
    /// Leaders replaced because they were not live: (old leader, the epoch that replaced it).
    /// The old leader leaves the in-sync set at that epoch while it is still not live.
    deposed: BTreeMap<(String, u32), (u64, u32)>,
    /// Registered nodes gossip does not report live, and since when (as seen by `placements`).
    not_live_since: BTreeMap<u64, Instant>,
    /// (topic, partition, member): when the partition's leader last proposed the member as in
    /// sync through this controller. Kept only for members that are not live.
    vouched: BTreeMap<(String, u32, u64), Instant>,
}

impl Topics {
    /// Resolves pending changes against applied entries and the current state. `leading` false
    /// answers every pending change with `NotLeader`.
    pub fn resolve(
        &mut self,
        applied: &[Applied],
        state: &MetadataState,
        leading: Option<(u64, Option<String>)>,
    ) {
        let now = Instant::now();
        self.pending.retain(|p| {
            let refused = applied
                .iter()
                .find_map(|a| match (&a.proposal, &a.outcome) {
                    (Some(id), Err(e)) if Some(*id) == p.proposal => Some(refusal(e)),
                    _ => None,
                });
            let outcome = if let Some((leader_id, leader_addr)) = &leading {
                Some(ChangeOutcome::NotLeader {
                    leader_id: *leader_id,
                    leader_addr: leader_addr.clone(),
                })
            } else if refused.is_some() {
                refused
            } else {
                match &p.change {
                    TopicChange::Create { name, .. } => state
                        .topics
                        .get(name)
                        .filter(|t| t.partitions.iter().all(|p| p.leader != 0))
                        .map(|t| ChangeOutcome::Created {
                            topic_id: t.topic_id,
                        }),
                    TopicChange::Delete { name } => {
                        (!state.topics.contains_key(name)).then_some(ChangeOutcome::Deleted)
                    }
                    TopicChange::InSync {
                        topic,
                        partition,
                        leader_epoch,
                        isr_version,
                        in_sync,
                        ..
                    } => match state
                        .topics
                        .get(topic)
                        .and_then(|t| t.partitions.get(*partition as usize))
                    {
                        None => Some(ChangeOutcome::Unknown),
                        Some(ps) if in_sync.is_empty() => (ps.leader_epoch > *leader_epoch)
                            .then_some(ChangeOutcome::InSyncCommitted),
                        Some(ps) => (ps.isr_version != *isr_version)
                            .then_some(ChangeOutcome::InSyncCommitted),
                    },
                }
            };
            let outcome = outcome.or_else(|| {
                (now >= p.deadline).then(|| ChangeOutcome::TimedOut {
                    message: format!(
                        "the metadata change did not complete within {} s (are enough nodes \
                         alive and registered for the replication factor? see `sprawl cluster \
                         status`)",
                        PROPOSAL_TIMEOUT.as_secs()
                    ),
                })
            });
            match outcome {
                Some(o) => {
                    let _ = p.reply.try_send(o);
                    false
                }
                None => true,
            }
        });
        if leading.is_some() {
            self.placing.clear();
        }
    }

    /// Notes, at `now`, the members an in-sync set proposal of a partition's leader (`change`)
    /// adds to the set committed in `state`: the leader vouches for them, it saw them fetching
    /// and caught up.
    pub fn vouch(&mut self, change: &TopicChange, state: &MetadataState, now: Instant) {
        let TopicChange::InSync {
            topic,
            partition,
            in_sync,
            ..
        } = change
        else {
            return;
        };
        let Some(p) = state
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(*partition as usize))
        else {
            return;
        };
        for n in in_sync.iter().filter(|n| !p.in_sync.contains(n)) {
            self.vouched.insert((topic.clone(), *partition, *n), now);
        }
    }

    /// Whether `member` of `topic`/`partition`, which gossip does not report present, may stay in
    /// the in-sync set all the same: its leader proposed it as in sync after gossip last lost
    /// it. Gossip can keep a healed node suspected, then down, for many seconds (its suspicion
    /// never reached it while it was cut off, so it could not refute it); meanwhile the node
    /// fetches and its leader adds it back. Removing it again on gossip's word would undo every
    /// such add. It leaves the set when gossip loses it anew, or by its leader's lag rule.
    fn vouched_since_lost(&self, topic: &str, partition: u32, member: u64) -> bool {
        let Some(lost) = self.not_live_since.get(&member) else {
            return false;
        };
        self.vouched
            .get(&(topic.to_string(), partition, member))
            .is_some_and(|at| at > lost)
    }

    /// Placement commands for partitions without replicas or without a leader, on `live`
    /// registered nodes, and in-sync shrinks for members that are not `present` (neither live
    /// nor only suspected by gossip). Skips what was proposed less than `PLACEMENT_RETRY` ago.
    pub fn placements(
        &mut self,
        state: &MetadataState,
        live: &BTreeSet<u64>,
        present: &BTreeSet<u64>,
    ) -> Vec<Command> {
        let now = Instant::now();
        self.placing
            .retain(|_, (at, _)| now.duration_since(*at) < PLACEMENT_RETRY);
        self.not_live_since
            .retain(|id, _| state.nodes.contains_key(id) && !live.contains(id));
        for id in state.nodes.keys().filter(|id| !live.contains(id)) {
            self.not_live_since.entry(*id).or_insert(now);
        }
        self.vouched.retain(|(topic, _, member), _| {
            !live.contains(member) && state.topics.contains_key(topic)
        });
        let candidates: Vec<cluster::Candidate> = live
            .iter()
            .filter(|id| state.nodes.contains_key(id))
            .filter_map(|id| u32::try_from(*id).ok().map(cluster::Candidate::new))
            .collect();
        let mut out = Vec::new();
        for (name, t) in &state.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                if out.len() >= PLACEMENTS_PER_TICK {
                    return out;
                }
                let Ok(index) = u32::try_from(i) else {
                    continue;
                };
                let key = (name.clone(), index);
                let seen = (p.leader_epoch, p.isr_version);
                if self
                    .placing
                    .get(&key)
                    .is_some_and(|(_, then)| *then == seen)
                {
                    continue;
                }
                let cmd = if p.replicas.is_empty() {
                    let rf = usize::from(t.replication_factor);
                    match cluster::replicas(t.topic_id, index, rf, &candidates) {
                        Ok(r) => Command::AssignReplicas {
                            topic: name.clone(),
                            partition: index,
                            replicas: r.into_iter().map(u64::from).collect(),
                        },
                        // Not enough live nodes yet: the create waits (and times out).
                        Err(_) => continue,
                    }
                } else if p.leader == 0 || !live.contains(&p.leader) {
                    // Failover: only an in-sync replica may lead (no unclean election); a live
                    // one, under a higher epoch that fences the old leader.
                    let Some(&leader) = p
                        .replicas
                        .iter()
                        .find(|n| p.in_sync.contains(n) && live.contains(n))
                    else {
                        continue;
                    };
                    if p.leader != 0 {
                        self.deposed
                            .insert(key.clone(), (p.leader, p.leader_epoch + 1));
                    }
                    Command::SetLeader {
                        topic: name.clone(),
                        partition: index,
                        leader,
                        leader_epoch: p.leader_epoch + 1,
                    }
                } else if let Some(in_sync) = self.shrink(&key, p, live, present) {
                    Command::SetInSync {
                        topic: name.clone(),
                        partition: index,
                        leader_epoch: p.leader_epoch,
                        isr_version: Some(p.isr_version),
                        in_sync,
                    }
                } else if p
                    .in_sync
                    .iter()
                    .any(|n| !present.contains(n) && !self.vouched_since_lost(name, index, *n))
                {
                    // A member that is not present leaves the in-sync set (the live leader stays,
                    // so the set is never empty); the leader's pending proposal ends with the new
                    // version. `present` holds the live members and those gossip has suspected
                    // only briefly (the controller's grace): a crashed follower goes within a
                    // second or two of its suspicion, and a healthy one dropped by a false
                    // suspicion is added back by its leader once it has caught up, and stays
                    // (`vouched_since_lost`).
                    Command::SetInSync {
                        topic: name.clone(),
                        partition: index,
                        leader_epoch: p.leader_epoch,
                        isr_version: Some(p.isr_version),
                        in_sync: p
                            .in_sync
                            .iter()
                            .copied()
                            .filter(|n| {
                                present.contains(n) || self.vouched_since_lost(name, index, *n)
                            })
                            .collect(),
                    }
                } else {
                    continue;
                };
                self.placing.insert(key, (now, seen));
                out.push(cmd);
            }
        }
        out
    }

    /// The in-sync set without the leader this partition's current epoch replaced, while that
    /// node is still not live: it failed as a leader (acknowledgements would otherwise wait for
    /// its fetches until its successor's 10 s lag rule removes it).
    fn shrink(
        &mut self,
        key: &(String, u32),
        p: &meta::PartitionState,
        live: &BTreeSet<u64>,
        present: &BTreeSet<u64>,
    ) -> Option<Vec<u64>> {
        let &(old, epoch) = self.deposed.get(key)?;
        if p.leader_epoch != epoch || live.contains(&old) || !p.in_sync.contains(&old) {
            if p.leader_epoch >= epoch {
                self.deposed.remove(key);
            }
            return None;
        }
        let (topic, partition) = (key.0.as_str(), key.1);
        if self.vouched_since_lost(topic, partition, old) {
            return None;
        }
        Some(
            p.in_sync
                .iter()
                .copied()
                .filter(|n| {
                    *n != old
                        && (present.contains(n) || self.vouched_since_lost(topic, partition, *n))
                })
                .collect(),
        )
    }
}

/// The metadata command that carries out `change`; `Err` names why none can (a stale
/// re-election request).
pub fn command_for(
    change: &TopicChange,
    state: &MetadataState,
    live: &BTreeSet<u64>,
) -> Result<Command, String> {
    Ok(match change {
        TopicChange::Create {
            name,
            partitions,
            replication_factor,
            min_insync,
            config,
        } => {
            // The internal offsets topic is created by the first group request, whenever that
            // comes: with as many replicas as there are live nodes then (up to what was asked),
            // so a node being down does not stop consumer groups from starting.
            let (replication_factor, min_insync) = if name == crate::groups::OFFSETS_TOPIC {
                let live = u16::try_from(live.len()).unwrap_or(u16::MAX).max(1);
                let rf = (*replication_factor).min(live);
                (rf, (*min_insync).min(rf))
            } else {
                (*replication_factor, *min_insync)
            };
            Command::CreateTopic {
                name: name.clone(),
                partitions: *partitions,
                replication_factor,
                min_insync,
                config: config.clone(),
            }
        }
        TopicChange::Delete { name } => Command::DeleteTopic { name: name.clone() },
        TopicChange::InSync {
            topic,
            partition,
            leader,
            leader_epoch,
            in_sync,
            ..
        } if in_sync.is_empty() => {
            reelection(state, live, topic, *partition, *leader, *leader_epoch)?
        }
        TopicChange::InSync {
            topic,
            partition,
            leader_epoch,
            isr_version,
            in_sync,
            ..
        } => Command::SetInSync {
            topic: topic.clone(),
            partition: *partition,
            leader_epoch: *leader_epoch,
            isr_version: Some(*isr_version),
            in_sync: in_sync.clone(),
        },
    })
}

/// The partition's state if `asker` still leads it at `leader_epoch`; otherwise why `what` (a
/// request of that leader) is stale, or that the partition is unknown.
pub(super) fn led_by<'a>(
    state: &'a MetadataState,
    topic: &str,
    partition: u32,
    asker: u64,
    leader_epoch: u32,
    what: &str,
) -> Result<&'a meta::PartitionState, String> {
    let ps = state
        .topics
        .get(topic)
        .and_then(|t| t.partitions.get(partition as usize))
        .ok_or_else(|| format!("unknown partition {topic}/{partition}"))?;
    if ps.leader != asker || ps.leader_epoch != leader_epoch {
        return Err(format!(
            "stale {what}: {topic}/{partition} is led by node {} at epoch {}, not by node \
             {asker} at epoch {leader_epoch}",
            ps.leader, ps.leader_epoch
        ));
    }
    Ok(ps)
}

/// The election a leader asks for when it cannot lead at `leader_epoch`: the first live in-sync
/// replica other than the asker (else the asker itself) at the next epoch. `Err` names why none
/// is proposed: the request is stale or nobody can lead.
pub fn reelection(
    state: &MetadataState,
    live: &BTreeSet<u64>,
    topic: &str,
    partition: u32,
    asker: u64,
    leader_epoch: u32,
) -> Result<Command, String> {
    let ps = led_by(
        state,
        topic,
        partition,
        asker,
        leader_epoch,
        "re-election request",
    )?;
    let electable = |n: &&u64| ps.in_sync.contains(n) && (live.contains(n) || **n == asker);
    let leader = ps
        .replicas
        .iter()
        .filter(electable)
        .find(|n| **n != asker)
        .or_else(|| ps.replicas.iter().find(|n| **n == asker))
        .copied()
        .ok_or_else(|| format!("no in-sync replica of {topic}/{partition} can lead"))?;
    Ok(Command::SetLeader {
        topic: topic.to_string(),
        partition,
        leader,
        leader_epoch: leader_epoch + 1,
    })
}

/// Config keys of the metadata's topic record for the node's topic settings.
pub fn settings_to_config(s: &crate::catalog::TopicSettings) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut put = |k: &str, v: Option<u64>| {
        if let Some(v) = v {
            out.push((k.to_string(), v.to_string()));
        }
    };
    put("retention_ms", s.retention_ms);
    put("retention_bytes", s.retention_bytes);
    put("segment_bytes", s.segment_bytes);
    put("default_ttl_ms", s.default_ttl_ms);
    put("tier_after_ms", s.tier_after_ms);
    put("local_retention_bytes", s.local_retention_bytes);
    if s.compacted {
        out.push(("compacted".to_string(), "1".to_string()));
    }
    out
}

/// The node's topic settings from the metadata's config keys; unknown keys (a newer node's) are
/// ignored, a malformed number is an error naming the key.
pub fn config_to_settings(
    config: &BTreeMap<String, String>,
) -> Result<crate::catalog::TopicSettings, String> {
    let num = |k: &str| -> Result<Option<u64>, String> {
        config
            .get(k)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("topic config {k}={v:?} is not a number"))
            })
            .transpose()
    };
    Ok(crate::catalog::TopicSettings {
        retention_ms: num("retention_ms")?,
        retention_bytes: num("retention_bytes")?,
        segment_bytes: num("segment_bytes")?,
        compacted: config.get("compacted").is_some_and(|v| v == "1"),
        default_ttl_ms: num("default_ttl_ms")?,
        tier_after_ms: num("tier_after_ms")?,
        local_retention_bytes: num("local_retention_bytes")?,
    })
}

#[cfg(test)]
#[path = "topics_tests.rs"]
pub(super) mod tests;
