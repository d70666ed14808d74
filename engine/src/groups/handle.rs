//! What the coordinator does with each group request: the slot of the group (checked and
//! loaded), the group's state machine, and commits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use cluster::group::{Assignor, Beat, Group, GroupError, Tp};
use net::codec::{ErrorCode, Request};

use super::frame::{GroupAnswer, GroupRequest};
use super::store::{self, OffsetKey, Offsets};
use super::{
    call_shard, check_group_name, creating, partition_of, Slot, GROUPS_PER_SLOT_MAX, OFFSETS_TOPIC,
    SINGLE_NODE_SLOT,
};
use crate::handlers::{now_ms, owned, Failure};
use crate::metrics::add;
use crate::partition::Partition;
use crate::shard::Shard;

fn group_failure(e: GroupError) -> Failure {
    let code = match e {
        GroupError::UnknownMember { .. } => ErrorCode::UnknownMember,
        GroupError::IllegalGeneration { .. } => ErrorCode::IllegalGeneration,
        _ => ErrorCode::InvalidRequest,
    };
    Failure::new(code, e.to_string())
}

/// The coordinator slot of `group` on this shard, checked and loaded: `(slot key, the offsets
/// partition it lives in)`; the partition is `None` on a single node.
async fn slot_for(shard: &Rc<Shard>, group: &str) -> Result<(u32, Option<Rc<Partition>>), Failure> {
    check_group_name(group)?;
    if !crate::metadata::cluster_topics(shard) {
        let mut slots = shard.groups.slots.borrow_mut();
        slots.entry(SINGLE_NODE_SLOT).or_insert_with(|| Slot {
            epoch: 0,
            offsets: Offsets::default(),
            groups: HashMap::new(),
        });
        return Ok((SINGLE_NODE_SLOT, None));
    }
    let t = shard.topic(OFFSETS_TOPIC).ok_or_else(creating)?;
    let index = partition_of(group, t.partitions);
    crate::metadata::check_leader(shard, &t, index).map_err(store::not_coordinator_if_moved)?;
    let p = owned(shard, &t, index).map_err(store::not_coordinator_if_moved)?;
    let epoch = leading_epoch(shard, &p, index)?;
    let loaded = |shard: &Shard| {
        let slots = shard.groups.slots.borrow();
        slots.get(&index).is_some_and(|s| s.epoch == epoch)
    };
    if loaded(shard) {
        return Ok((index, Some(p)));
    }
    // One load at a time on this shard: requests arriving meanwhile find the slot loaded.
    let _permit = shard
        .groups
        .load_lock
        .acquire_permit(1)
        .await
        .map_err(|_| Failure::new(ErrorCode::ShuttingDown, "the node is shutting down"))?;
    if !loaded(shard) {
        let offsets = store::load(&p).await?;
        if leading_epoch(shard, &p, index)? != epoch {
            return Err(lost_slot());
        }
        shard.groups.slots.borrow_mut().insert(
            index,
            Slot {
                epoch,
                offsets,
                groups: HashMap::new(),
            },
        );
    }
    Ok((index, Some(p)))
}

/// The epoch at which this node leads offsets partition `index` (`p`); 0 when not replicated.
fn leading_epoch(shard: &Shard, p: &Partition, index: u32) -> Result<u32, Failure> {
    if !crate::replication::is_replicated(shard, p) {
        return Ok(0);
    }
    p.replica.leading_epoch().ok_or_else(|| {
        Failure::new(
            ErrorCode::NotCoordinator,
            format!("this node is taking over {OFFSETS_TOPIC}/{index}; retry"),
        )
    })
}

/// Partition counts of the topics `group`'s members and `extra` subscribe to.
fn topic_counts(
    shard: &Shard,
    group: Option<&Group>,
    extra: &BTreeSet<String>,
) -> BTreeMap<String, u32> {
    let catalog = shard.catalog.borrow().clone();
    let mut names: BTreeSet<&String> = extra.iter().collect();
    let members = group.map(Group::members).unwrap_or_default();
    for m in &members {
        names.extend(m.topics.iter());
    }
    names
        .into_iter()
        .filter_map(|n| Some((n.clone(), catalog.topics.get(n)?.partitions)))
        .collect()
}

pub(super) async fn handle(
    shard: &Rc<Shard>,
    request: GroupRequest,
) -> Result<GroupAnswer, Failure> {
    let now = now_ms().max(0) as u64;
    match request {
        GroupRequest::Join {
            group,
            member_id,
            topics,
            assignor,
            session_timeout_ms,
        } => {
            let assignor = Assignor::parse(&assignor).map_err(group_failure)?;
            let catalog = shard.catalog.borrow().clone();
            if let Some(missing) = topics
                .iter()
                .find(|t| !catalog.topics.contains_key(*t) || *t == OFFSETS_TOPIC)
            {
                return Err(Failure::new(
                    ErrorCode::UnknownTopic,
                    format!("group {group:?} subscribes to topic {missing:?}, which does not exist; create it first"),
                ));
            }
            let (key, _) = slot_for(shard, &group).await?;
            let member_id = if member_id.is_empty() {
                let n = shard.groups.next_member.get() + 1;
                shard.groups.next_member.set(n);
                format!("{}-{}-{}-{now}", shard.config.node_id, shard.id, n)
            } else {
                member_id
            };
            let mut slots = shard.groups.slots.borrow_mut();
            let slot = slots.get_mut(&key).ok_or_else(lost_slot)?;
            if !slot.groups.contains_key(&group) && slot.groups.len() >= GROUPS_PER_SLOT_MAX {
                return Err(Failure::new(
                    ErrorCode::InvalidRequest,
                    format!("this coordinator already holds {GROUPS_PER_SLOT_MAX} groups; remove idle groups or add nodes"),
                ));
            }
            let g = slot
                .groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group));
            let before = g.generation();
            // The group keeps partition counts only for topics a member subscribes to: the
            // new member's topics get theirs once it has joined.
            let joined = g
                .join(&member_id, topics, assignor, session_timeout_ms, now)
                .and_then(|j| {
                    let counts = topic_counts(shard, Some(g), &BTreeSet::new());
                    g.set_topics(counts)?;
                    Ok(cluster::group::Joined {
                        generation: g.generation(),
                        ..j
                    })
                });
            let joined = match joined {
                Ok(j) => {
                    add(&shard.metrics.group_joins, 1);
                    if j.generation != before {
                        add(&shard.metrics.group_rebalances, 1);
                    }
                    j
                }
                Err(e) => {
                    if g.is_empty() {
                        slot.groups.remove(&group);
                    }
                    return Err(group_failure(e));
                }
            };
            Ok(GroupAnswer::Joined {
                member_id: joined.member_id,
                generation: joined.generation,
            })
        }
        GroupRequest::Sync {
            group,
            member_id,
            generation,
            owned,
        } => {
            with_group(shard, &group, &member_id, |g| {
                let counts = topic_counts(shard, Some(g), &BTreeSet::new());
                g.set_topics(counts)?;
                let s = g.sync(&member_id, generation, owned, now)?;
                Ok(GroupAnswer::Synced {
                    generation: s.generation,
                    assigned: s.assigned,
                })
            })
            .await
        }
        GroupRequest::Heartbeat {
            group,
            member_id,
            generation,
        } => {
            let beat = with_group(shard, &group, &member_id, |g| {
                let counts = topic_counts(shard, Some(g), &BTreeSet::new());
                g.set_topics(counts)?;
                g.heartbeat(&member_id, generation, now)
                    .map(GroupAnswer::Beat)
            })
            .await?;
            match beat {
                GroupAnswer::Beat(Beat::SyncNeeded) => Err(Failure::new(
                    ErrorCode::RebalanceInProgress,
                    format!("group {group:?} has a new assignment for member {member_id:?}: call SyncGroup"),
                )),
                _ => Ok(GroupAnswer::Done),
            }
        }
        GroupRequest::Leave { group, member_id } => {
            let (key, _) = slot_for(shard, &group).await?;
            let mut slots = shard.groups.slots.borrow_mut();
            let slot = slots.get_mut(&key).ok_or_else(lost_slot)?;
            let Some(g) = slot.groups.get_mut(&group) else {
                return Err(group_failure(GroupError::UnknownMember { member_id }));
            };
            g.leave(&member_id).map_err(group_failure)?;
            add(&shard.metrics.group_rebalances, 1);
            if g.is_empty() {
                slot.groups.remove(&group);
            }
            Ok(GroupAnswer::Done)
        }
        GroupRequest::Commit {
            group,
            member_id,
            generation,
            tp,
            offset,
        } => commit(shard, group, member_id, generation, tp, offset).await,
        GroupRequest::FetchOffset { group, tp } => {
            let (key, p) = slot_for(shard, &group).await?;
            if p.is_none() {
                return Err(Failure::new(
                    ErrorCode::Internal,
                    "offset fetch reached the single-node coordinator",
                ));
            }
            let slots = shard.groups.slots.borrow();
            let slot = slots.get(&key).ok_or_else(lost_slot)?;
            Ok(GroupAnswer::Offset(slot.offsets.get(&OffsetKey {
                group,
                topic: tp.topic,
                partition: tp.partition,
            })))
        }
    }
}

fn lost_slot() -> Failure {
    Failure::new(
        ErrorCode::NotCoordinator,
        "the coordinator moved meanwhile; find it again",
    )
}

/// Runs `f` on an existing group; an unknown group is an unknown member.
async fn with_group(
    shard: &Rc<Shard>,
    group: &str,
    member_id: &str,
    f: impl FnOnce(&mut Group) -> Result<GroupAnswer, GroupError>,
) -> Result<GroupAnswer, Failure> {
    let (key, _) = slot_for(shard, group).await?;
    let mut slots = shard.groups.slots.borrow_mut();
    let slot = slots.get_mut(&key).ok_or_else(lost_slot)?;
    let Some(g) = slot.groups.get_mut(group) else {
        return Err(group_failure(GroupError::UnknownMember {
            member_id: member_id.to_string(),
        }));
    };
    let before = g.generation();
    let answer = f(g).map_err(group_failure);
    if g.generation() != before {
        add(&shard.metrics.group_rebalances, 1);
    }
    answer
}

async fn commit(
    shard: &Rc<Shard>,
    group: String,
    member_id: String,
    generation: u32,
    tp: Tp,
    offset: u64,
) -> Result<GroupAnswer, Failure> {
    let (key, p) = slot_for(shard, &group).await?;
    if !member_id.is_empty() {
        let slots = shard.groups.slots.borrow();
        let slot = slots.get(&key).ok_or_else(lost_slot)?;
        let Some(g) = slot.groups.get(&group) else {
            return Err(group_failure(GroupError::UnknownMember { member_id }));
        };
        if let Err(e) = g.check_commit(&member_id, generation, &tp) {
            add(&shard.metrics.group_commits_fenced, 1);
            return Err(group_failure(e));
        }
    }
    let Some(p) = p else {
        // Single node: the partition's shard keeps the offset in its file.
        let t = crate::handlers::resolve(shard, &tp.topic, tp.partition)?;
        let owner = shard.owner(t.topic_id, tp.partition);
        let request = Request::OffsetCommit {
            consumer: &group,
            topic: &tp.topic,
            partition: tp.partition,
            offset,
            member_id: "",
            generation: 0,
        };
        call_shard(shard, owner, request).await?;
        add(&shard.metrics.group_commits, 1);
        return Ok(GroupAnswer::Done);
    };
    if crate::handlers::resolve(shard, &tp.topic, tp.partition).is_err() {
        return Err(Failure::new(
            ErrorCode::UnknownTopic,
            format!(
                "cannot commit for {}/{}: no such topic partition",
                tp.topic, tp.partition
            ),
        ));
    }
    let epoch = shard.groups.slots.borrow().get(&key).map(|s| s.epoch);
    let offset_key = OffsetKey {
        group,
        topic: tp.topic,
        partition: tp.partition,
    };
    let at = store::append(shard, &p, &offset_key, offset).await?;
    let mut slots = shard.groups.slots.borrow_mut();
    match slots.get_mut(&key) {
        Some(s) if Some(s.epoch) == epoch => s.offsets.apply(at, offset_key, Some(offset)),
        _ => return Err(lost_slot()),
    }
    add(&shard.metrics.group_commits, 1);
    Ok(GroupAnswer::Done)
}
