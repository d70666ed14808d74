//! The replicated metadata and the deterministic rules that change it.

use std::collections::BTreeMap;

use crate::command::{Command, REPLICAS_MAX};
use crate::error::CommandError;

/// Most topics in a cluster.
pub const TOPICS_MAX: u32 = 4096;
/// Most partitions of one topic.
pub const PARTITIONS_PER_TOPIC_MAX: u32 = 4096;
/// Most partitions over all topics.
pub const PARTITIONS_TOTAL_MAX: u64 = 65_536;
/// Most registered nodes.
pub const NODES_MAX: u32 = 1024;
/// Most consumer groups with a coordinator.
pub const GROUPS_MAX: u32 = 16_384;

/// A registered node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Address clients use, `host:port`.
    pub client_addr: String,
}

/// Replication state of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionState {
    /// Replica node ids, preferred leader first; empty until assigned.
    pub replicas: Vec<u64>,
    /// Current leader, 0 when there is none.
    pub leader: u64,
    /// Bumped by every leader change; fences stale leaders.
    pub leader_epoch: u32,
    /// In-sync replicas, a subset of `replicas`.
    pub in_sync: Vec<u64>,
    /// Version of `in_sync`, 0 until the first assignment. Every accepted
    /// command that writes `in_sync` bumps it by one (wrapping at `u32::MAX`):
    /// every [`Command::SetInSync`], even one that repeats the current set (a
    /// controller commits the same set again to end a leader's pending
    /// proposal), and an [`Command::AssignReplicas`] whose set differs from
    /// the old one (the first assignment, or a reassignment that drops
    /// members). A reassignment that keeps every member leaves it alone.
    /// A `SetInSync` carrying `isr_version: Some(v)` applies only while
    /// `v == isr_version`, so a delayed duplicate of an already committed
    /// proposal cannot re-add a replica removed since.
    pub isr_version: u32,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    /// [`MetadataState::version`] at creation: tells a recreated topic apart.
    pub topic_id: u64,
    /// Replicas per partition.
    pub replication_factor: u16,
    /// In-sync replicas an `acks=all` write needs.
    pub min_insync: u16,
    /// Topic configuration.
    pub config: BTreeMap<String, String>,
    /// One entry per partition, indexed by partition number.
    pub partitions: Vec<PartitionState>,
}

/// The whole cluster metadata. Every replica that applied the same commands in
/// the same order holds an equal value (`==`), including the same `version`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataState {
    /// Number of accepted commands so far; caches ignore older versions.
    pub version: u64,
    /// Number of refused commands so far (kept so replicas stay comparable).
    pub rejected: u64,
    /// Registered nodes by id.
    pub nodes: BTreeMap<u64, NodeInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicState>,
    /// Group coordinators by group name.
    pub groups: BTreeMap<String, u64>,
}

/// `[A-Za-z0-9._-]{1,249}`, as Kafka allows.
fn check_name(what: &'static str, name: &str) -> Result<(), CommandError> {
    let ok = !name.is_empty()
        && name.len() <= crate::command::NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CommandError::InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

fn check_unique(nodes: &[u64]) -> Result<(), CommandError> {
    for (i, n) in nodes.iter().enumerate() {
        if nodes[..i].contains(n) {
            return Err(CommandError::DuplicateNode { node_id: *n });
        }
    }
    Ok(())
}

impl MetadataState {
    /// Total partitions over all topics.
    pub fn partition_count(&self) -> u64 {
        self.topics
            .values()
            .map(|t| t.partitions.len() as u64)
            .sum()
    }

    /// The state of `topic`/`partition`, if both exist.
    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionState> {
        self.topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)
    }

    /// Applies `cmd`. On success the version goes up by one and is returned; on
    /// a [`CommandError`] nothing but the `rejected` counter changes. Pure: the
    /// outcome depends only on `self` and `cmd`.
    pub fn apply(&mut self, cmd: &Command) -> Result<u64, CommandError> {
        match self.try_apply(cmd) {
            Ok(()) => {
                self.version += 1;
                Ok(self.version)
            }
            Err(e) => {
                self.rejected += 1;
                Err(e)
            }
        }
    }

    fn check_node(&self, node_id: u64) -> Result<(), CommandError> {
        if self.nodes.contains_key(&node_id) {
            Ok(())
        } else {
            Err(CommandError::UnknownNode { node_id })
        }
    }

    fn partition_mut(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> Result<(&mut PartitionState, u16), CommandError> {
        let t = self
            .topics
            .get_mut(topic)
            .ok_or_else(|| CommandError::UnknownTopic {
                topic: topic.to_owned(),
            })?;
        let partitions = t.partitions.len() as u32;
        let rf = t.replication_factor;
        let p = t.partitions.get_mut(partition as usize).ok_or_else(|| {
            CommandError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions,
            }
        })?;
        Ok((p, rf))
    }

    /// Validates everything first, then mutates: a refused command leaves no
    /// trace.
    fn try_apply(&mut self, cmd: &Command) -> Result<(), CommandError> {
        match cmd {
            Command::RegisterNode {
                node_id,
                client_addr,
            } => {
                if *node_id == 0 {
                    return Err(CommandError::UnknownNode { node_id: 0 });
                }
                if !self.nodes.contains_key(node_id) && self.nodes.len() as u32 >= NODES_MAX {
                    return Err(CommandError::LimitReached {
                        what: "nodes",
                        count: self.nodes.len() as u64 + 1,
                        max: u64::from(NODES_MAX),
                    });
                }
                self.nodes.insert(
                    *node_id,
                    NodeInfo {
                        client_addr: client_addr.clone(),
                    },
                );
            }
            Command::CreateTopic {
                name,
                partitions,
                replication_factor,
                min_insync,
                config,
            } => {
                check_name("topic", name)?;
                if self.topics.contains_key(name) {
                    return Err(CommandError::TopicExists {
                        topic: name.clone(),
                    });
                }
                if *partitions == 0 || *partitions > PARTITIONS_PER_TOPIC_MAX {
                    return Err(CommandError::InvalidPartitionCount {
                        partitions: *partitions,
                        max: PARTITIONS_PER_TOPIC_MAX,
                    });
                }
                if *replication_factor == 0 || *replication_factor > REPLICAS_MAX {
                    return Err(CommandError::InvalidReplicationFactor {
                        replication_factor: *replication_factor,
                        max: REPLICAS_MAX,
                    });
                }
                if *min_insync == 0 || min_insync > replication_factor {
                    return Err(CommandError::InvalidMinInsync {
                        min_insync: *min_insync,
                        replication_factor: *replication_factor,
                    });
                }
                if self.topics.len() as u32 >= TOPICS_MAX {
                    return Err(CommandError::LimitReached {
                        what: "topics",
                        count: self.topics.len() as u64 + 1,
                        max: u64::from(TOPICS_MAX),
                    });
                }
                let total = self.partition_count() + u64::from(*partitions);
                if total > PARTITIONS_TOTAL_MAX {
                    return Err(CommandError::LimitReached {
                        what: "partitions",
                        count: total,
                        max: PARTITIONS_TOTAL_MAX,
                    });
                }
                // Later duplicates of a key win, like repeated CLI flags.
                let config = config.iter().cloned().collect();
                self.topics.insert(
                    name.clone(),
                    TopicState {
                        topic_id: self.version + 1,
                        replication_factor: *replication_factor,
                        min_insync: *min_insync,
                        config,
                        partitions: vec![PartitionState::default(); *partitions as usize],
                    },
                );
            }
            Command::DeleteTopic { name } => {
                if self.topics.remove(name).is_none() {
                    return Err(CommandError::UnknownTopic {
                        topic: name.clone(),
                    });
                }
            }
            Command::AssignReplicas {
                topic,
                partition,
                replicas,
            } => {
                check_unique(replicas)?;
                for &n in replicas {
                    self.check_node(n)?;
                }
                let (p, rf) = self.partition_mut(topic, *partition)?;
                // One replica above the factor is allowed while a replica moves (added before
                // the one it replaces is removed), never in a first assignment.
                let extra = usize::from(!p.replicas.is_empty());
                if !(usize::from(rf)..=usize::from(rf) + extra).contains(&replicas.len()) {
                    return Err(CommandError::ReplicaCountMismatch {
                        expected: rf,
                        actual: replicas.len() as u64,
                    });
                }
                let in_sync_before = p.in_sync.clone();
                if p.replicas.is_empty() {
                    // First assignment: every replica starts empty, hence in sync.
                    p.in_sync = replicas.clone();
                } else {
                    p.in_sync.retain(|n| replicas.contains(n));
                }
                if p.in_sync != in_sync_before {
                    p.isr_version = p.isr_version.wrapping_add(1);
                }
                if p.leader != 0 && !replicas.contains(&p.leader) {
                    // The old leader is gone: fence it by bumping the epoch.
                    p.leader = 0;
                    p.leader_epoch += 1;
                }
                p.replicas = replicas.clone();
            }
            Command::SetLeader {
                topic,
                partition,
                leader,
                leader_epoch,
            } => {
                let (p, _) = self.partition_mut(topic, *partition)?;
                if p.replicas.is_empty() {
                    return Err(CommandError::Unassigned {
                        topic: topic.clone(),
                        partition: *partition,
                    });
                }
                if *leader_epoch <= p.leader_epoch {
                    return Err(CommandError::EpochNotIncreasing {
                        current: p.leader_epoch,
                        proposed: *leader_epoch,
                    });
                }
                if !p.in_sync.contains(leader) {
                    return Err(CommandError::LeaderNotInSync { leader: *leader });
                }
                p.leader = *leader;
                p.leader_epoch = *leader_epoch;
            }
            Command::SetInSync {
                topic,
                partition,
                leader_epoch,
                isr_version,
                in_sync,
            } => {
                check_unique(in_sync)?;
                let (p, _) = self.partition_mut(topic, *partition)?;
                if *leader_epoch != p.leader_epoch {
                    return Err(CommandError::StaleLeaderEpoch {
                        current: p.leader_epoch,
                        proposed: *leader_epoch,
                    });
                }
                // `None`: an entry from an older build, fenced by the epoch only.
                if let Some(v) = *isr_version {
                    if v != p.isr_version {
                        return Err(CommandError::StaleIsrVersion {
                            current: p.isr_version,
                            proposed: v,
                        });
                    }
                }
                if let Some(&n) = in_sync.iter().find(|n| !p.replicas.contains(n)) {
                    return Err(CommandError::InSyncNotReplica { node_id: n });
                }
                if in_sync.is_empty() || (p.leader != 0 && !in_sync.contains(&p.leader)) {
                    return Err(CommandError::InSyncWithoutLeader { leader: p.leader });
                }
                p.in_sync = in_sync.clone();
                p.isr_version = p.isr_version.wrapping_add(1);
            }
            Command::SetGroupCoordinator { group, node_id } => {
                check_name("group", group)?;
                self.check_node(*node_id)?;
                if !self.groups.contains_key(group) && self.groups.len() as u32 >= GROUPS_MAX {
                    return Err(CommandError::LimitReached {
                        what: "groups",
                        count: self.groups.len() as u64 + 1,
                        max: u64::from(GROUPS_MAX),
                    });
                }
                self.groups.insert(group.clone(), *node_id);
            }
        }
        Ok(())
    }
}
