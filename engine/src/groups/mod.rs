//! Consumer groups in the node: the coordinator of each group, its members and their assignment
//! (the pure state machine is [`cluster::group`]), and where committed offsets live.
//!
//! Where a group is coordinated:
//! - **in a cluster** (`--controllers`): by the leader of partition `crc32c(group) mod P` of the
//!   internal compacted topic [`OFFSETS_TOPIC`], on the shard owning that partition. Commits are
//!   appended there with `acks=all` ([`store`]), so they survive the loss of the coordinator; a
//!   new leader of the partition reloads them before it answers. Group membership is not stored:
//!   after the coordinator moves, members get UNKNOWN_MEMBER, stop everything and join again
//!   (the window in which two members may read one partition is in `docs/consumer-groups.md`).
//!   The topic is created on the first group request, with replication factor
//!   `min(3, live nodes)`.
//! - **on a single node**: by shard 0, in memory; committed offsets stay in each partition's
//!   `consumer-offsets` file (`crate::offsets`), written by the partition's shard after the
//!   coordinator checked the committing member.
//!
//! What it does not do: consumer-side assignment (the coordinator assigns, with the group's
//! assignor), static membership, transactional offsets. Protocol: `docs/consumer-groups.md`.

pub mod store;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cluster::group::{Assignor, Beat, Group, GroupError, Tp};
use net::codec::{
    encode, Body, Decoded, ErrorCode, Frame, FrameHeader, GroupTopic, Limits, Request, Response,
    TopicConfig,
};

use crate::handlers::{encode_error, encode_response, now_ms, owned, Failure, LocalFut};
use crate::partition::Partition;
use crate::shard::{CallBody, ReplyBody, Shard};
use store::{OffsetKey, Offsets};

/// The internal topic holding committed group offsets in a cluster.
pub const OFFSETS_TOPIC: &str = "__sprawl_offsets";
/// Its partition count (fixed when it is created: a group's coordinator follows from it).
pub const OFFSETS_PARTITIONS: u32 = 8;
/// Its replication factor when at least that many nodes are live (else one per live node).
const OFFSETS_REPLICATION_FACTOR: u16 = 3;
/// Its segment size: the topic is compacted and small.
const OFFSETS_SEGMENT_BYTES: u64 = 16 << 20;
/// Groups one coordinator slot (one offsets partition, or the single node) keeps.
pub const GROUPS_PER_SLOT_MAX: usize = 10_000;
/// The slot key of a single node's groups.
const SINGLE_NODE_SLOT: u32 = u32::MAX;
/// How often expired sessions are looked for.
const EXPIRY_TICK: Duration = Duration::from_millis(250);

/// The coordinator state of one shard.
#[derive(Debug, Default)]
pub struct Coordinator {
    slots: RefCell<HashMap<u32, Slot>>,
    next_member: Cell<u64>,
    /// Set while this shard asks for the offsets topic to be created.
    creating: Cell<bool>,
}

/// Groups of one offsets partition as led at `epoch` (or of the single node).
#[derive(Debug)]
struct Slot {
    epoch: u32,
    offsets: Offsets,
    groups: HashMap<String, Group>,
}

/// Where a group request is handled: which shard of this node, or an error naming the
/// coordinator elsewhere.
pub fn target_shard(shard: &Rc<Shard>, group: &str) -> Result<usize, Failure> {
    check_group_name(group)?;
    if !crate::metadata::cluster_topics(shard) {
        return Ok(0);
    }
    let Some(t) = shard.topic(OFFSETS_TOPIC) else {
        ensure_offsets_topic(shard);
        return Err(creating());
    };
    Ok(shard.owner(t.topic_id, partition_of(group, t.partitions)))
}

/// The node coordinating `group`: `(node id, client address)`.
pub fn find_coordinator(shard: &Rc<Shard>, group: &str) -> Result<(u32, String), Failure> {
    check_group_name(group)?;
    if !crate::metadata::cluster_topics(shard) {
        return Ok((shard.config.node_id, shard.client_addr.borrow().clone()));
    }
    let Some(t) = shard.topic(OFFSETS_TOPIC) else {
        ensure_offsets_topic(shard);
        return Err(creating());
    };
    let p = partition_of(group, t.partitions);
    let state = shard.meta.get();
    let leader = state
        .topics
        .get(OFFSETS_TOPIC)
        .and_then(|m| m.partitions.get(p as usize))
        .map(|m| m.leader);
    match leader.and_then(|l| Some((u32::try_from(l).ok()?, state.nodes.get(&l)?))) {
        Some((id, n)) => Ok((id, n.client_addr.clone())),
        None => Err(Failure::new(
            ErrorCode::NotCoordinator,
            format!(
                "group {group:?} has no coordinator right now (partition {OFFSETS_TOPIC}/{p} has \
                 no live leader); retry"
            ),
        )),
    }
}

/// The offsets partition coordinating `group` among `partitions`.
pub fn partition_of(group: &str, partitions: u32) -> u32 {
    crc32c::crc32c(group.as_bytes()) % partitions.max(1)
}

fn check_group_name(group: &str) -> Result<(), Failure> {
    if group.is_empty() || group.len() > cluster::group::NAME_BYTES_MAX {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            format!(
                "group names are 1 to {} bytes, got {}",
                cluster::group::NAME_BYTES_MAX,
                group.len()
            ),
        ));
    }
    Ok(())
}

fn creating() -> Failure {
    Failure::new(
        ErrorCode::NotCoordinator,
        format!("the consumer group topic {OFFSETS_TOPIC} is being created; retry in a moment"),
    )
}

/// Asks (once at a time per shard) for the offsets topic to be created through the metadata
/// controllers.
fn ensure_offsets_topic(shard: &Rc<Shard>) {
    let coordinator = &shard.groups;
    if coordinator.creating.replace(true) {
        return;
    }
    let shard = shard.clone();
    glommio::spawn_local(async move {
        // The controller lowers it to the live node count when fewer are up.
        let rf = OFFSETS_REPLICATION_FACTOR;
        let config = TopicConfig {
            partitions: OFFSETS_PARTITIONS,
            compacted: true,
            segment_bytes: Some(OFFSETS_SEGMENT_BYTES),
            replication_factor: Some(rf),
            ..TopicConfig::default()
        };
        let request = Request::CreateTopic {
            name: OFFSETS_TOPIC,
            config,
        };
        match call_shard(&shard, 0, request).await {
            Ok(()) => {}
            Err(f) if f.code == ErrorCode::TopicExists => {}
            Err(f) => eprintln!(
                "sprawl: creating {OFFSETS_TOPIC} failed: {} ({:?}); a later group request retries",
                f.message, f.code
            ),
        }
        shard.groups.creating.set(false);
    })
    .detach();
}

/// Has shard `to` handle `request`; `Ok` when it answered without an error.
async fn call_shard(shard: &Rc<Shard>, to: usize, request: Request<'_>) -> Result<(), Failure> {
    let limits = crate::handlers::limits(shard);
    let mut buf = BytesMut::new();
    encode(&Frame::request(0, request), &mut buf, &limits).map_err(|e| {
        Failure::new(
            ErrorCode::Internal,
            format!("cannot encode an internal request: {e}"),
        )
    })?;
    let frame = buf.freeze();
    let reply = if to == shard.id {
        crate::handlers::start_frame(shard, frame).await
    } else {
        match shard.call(to, CallBody::Frame(frame)).await {
            Some(ReplyBody::Frame(r)) => r,
            _ => {
                return Err(Failure::new(
                    ErrorCode::ShuttingDown,
                    "node is shutting down",
                ))
            }
        }
    };
    let bad = || {
        Failure::new(
            ErrorCode::Internal,
            "an internal request got no usable answer",
        )
    };
    let reply = reply.ok_or_else(bad)?;
    let Ok(Decoded::Frame(f, _)) = net::codec::decode(&reply, &limits) else {
        return Err(bad());
    };
    let Body::Response(r) = f.body else {
        return Err(bad());
    };
    match r.error() {
        (ErrorCode::None, _) => Ok(()),
        (code, message) => Err(Failure::new(code, message.to_string())),
    }
}

/// A group request, owned, for the coordinator shard.
enum GroupRequest {
    Join {
        group: String,
        member_id: String,
        topics: BTreeSet<String>,
        assignor: String,
        session_timeout_ms: u32,
    },
    Sync {
        group: String,
        member_id: String,
        generation: u32,
        owned: BTreeSet<Tp>,
    },
    Heartbeat {
        group: String,
        member_id: String,
        generation: u32,
    },
    Leave {
        group: String,
        member_id: String,
    },
    Commit {
        group: String,
        member_id: String,
        generation: u32,
        tp: Tp,
        offset: u64,
    },
    FetchOffset {
        group: String,
        tp: Tp,
    },
}

enum GroupAnswer {
    Joined {
        member_id: String,
        generation: u32,
    },
    Synced {
        generation: u32,
        assigned: BTreeSet<Tp>,
    },
    Beat(Beat),
    Done,
    Offset(Option<u64>),
}

/// True when an OffsetCommit / OffsetFetch for `consumer` goes to the group coordinator rather
/// than to the partition's shard: always in a cluster, and for a commit naming a member.
pub fn offsets_at_coordinator(shard: &Shard, member_id: &str) -> bool {
    crate::metadata::cluster_topics(shard) || !member_id.is_empty()
}

/// Handles a group request (or a coordinator-bound offset request) on the coordinator shard.
pub fn start_frame(
    shard: &Rc<Shard>,
    header: FrameHeader,
    req: &Request<'_>,
) -> LocalFut<Option<Bytes>> {
    let limits = crate::handlers::limits(shard);
    let owned_tps = |list: &[GroupTopic<'_>]| -> BTreeSet<Tp> {
        list.iter()
            .flat_map(|t| t.partitions.iter().map(|p| Tp::new(t.topic, *p)))
            .collect()
    };
    if let Request::SyncGroup { owned, .. } = req {
        let reported: usize = owned.iter().map(|t| t.partitions.len()).sum();
        if reported as u64 > cluster::group::GROUP_PARTITIONS_MAX {
            let f = Failure::new(
                ErrorCode::InvalidRequest,
                format!(
                    "a sync reports {reported} owned partitions; a group has at most {}",
                    cluster::group::GROUP_PARTITIONS_MAX
                ),
            );
            return Box::pin(std::future::ready(Some(encode_error(
                header, &f, 0, &limits,
            ))));
        }
    }
    let request = match req {
        Request::JoinGroup {
            group,
            member_id,
            topics,
            assignor,
            session_timeout_ms,
        } => GroupRequest::Join {
            group: group.to_string(),
            member_id: member_id.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            assignor: assignor.to_string(),
            session_timeout_ms: *session_timeout_ms,
        },
        Request::SyncGroup {
            group,
            member_id,
            generation,
            owned,
        } => GroupRequest::Sync {
            group: group.to_string(),
            member_id: member_id.to_string(),
            generation: *generation,
            owned: owned_tps(owned),
        },
        Request::Heartbeat {
            group,
            member_id,
            generation,
        } => GroupRequest::Heartbeat {
            group: group.to_string(),
            member_id: member_id.to_string(),
            generation: *generation,
        },
        Request::LeaveGroup { group, member_id } => GroupRequest::Leave {
            group: group.to_string(),
            member_id: member_id.to_string(),
        },
        Request::OffsetCommit {
            consumer,
            topic,
            partition,
            offset,
            member_id,
            generation,
        } => GroupRequest::Commit {
            group: consumer.to_string(),
            member_id: member_id.to_string(),
            generation: *generation,
            tp: Tp::new(topic, *partition),
            offset: *offset,
        },
        Request::OffsetFetch {
            consumer,
            topic,
            partition,
        } => GroupRequest::FetchOffset {
            group: consumer.to_string(),
            tp: Tp::new(topic, *partition),
        },
        _ => {
            let f = Failure::new(ErrorCode::Internal, "not a group request");
            return Box::pin(std::future::ready(Some(encode_error(
                header, &f, 0, &limits,
            ))));
        }
    };
    let shard = shard.clone();
    Box::pin(async move {
        let api = header.api_key;
        Some(match handle(&shard, request).await {
            Ok(answer) => encode_answer(header, api, answer, &limits),
            Err(f) => encode_error(header, &f, 0, &limits),
        })
    })
}

fn encode_answer(header: FrameHeader, api: u16, answer: GroupAnswer, limits: &Limits) -> Bytes {
    let none = ErrorCode::None;
    match answer {
        GroupAnswer::Joined {
            member_id,
            generation,
        } => encode_response(
            header,
            Response::JoinGroup {
                error: none,
                message: "",
                member_id: &member_id,
                generation,
            },
            limits,
        ),
        GroupAnswer::Synced {
            generation,
            assigned,
        } => {
            let mut by_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
            for tp in &assigned {
                by_topic.entry(&tp.topic).or_default().push(tp.partition);
            }
            encode_response(
                header,
                Response::SyncGroup {
                    error: none,
                    message: "",
                    generation,
                    assigned: by_topic
                        .into_iter()
                        .map(|(topic, partitions)| GroupTopic { topic, partitions })
                        .collect(),
                },
                limits,
            )
        }
        GroupAnswer::Offset(offset) => encode_response(
            header,
            Response::OffsetFetch {
                error: none,
                message: "",
                offset,
            },
            limits,
        ),
        GroupAnswer::Beat(_) | GroupAnswer::Done => {
            let response = match net::codec::ApiKey::from_u16(api) {
                Some(net::codec::ApiKey::Heartbeat) => Response::Heartbeat {
                    error: none,
                    message: "",
                },
                Some(net::codec::ApiKey::LeaveGroup) => Response::LeaveGroup {
                    error: none,
                    message: "",
                },
                _ => Response::OffsetCommit {
                    error: none,
                    message: "",
                },
            };
            encode_response(header, response, limits)
        }
    }
}

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
fn slot_for(shard: &Rc<Shard>, group: &str) -> Result<(u32, Option<Rc<Partition>>), Failure> {
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
    let epoch = if crate::replication::is_replicated(shard, &p) {
        p.replica.leading_epoch().ok_or_else(|| {
            Failure::new(
                ErrorCode::NotCoordinator,
                format!("this node is taking over {OFFSETS_TOPIC}/{index}; retry"),
            )
        })?
    } else {
        0
    };
    let mut slots = shard.groups.slots.borrow_mut();
    if slots.get(&index).is_none_or(|s| s.epoch != epoch) {
        let offsets = store::load(&p)?;
        slots.insert(
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

async fn handle(shard: &Rc<Shard>, request: GroupRequest) -> Result<GroupAnswer, Failure> {
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
            let (key, _) = slot_for(shard, &group)?;
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
                Ok(j) => j,
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
        } => with_group(shard, &group, &member_id, |g| {
            let counts = topic_counts(shard, Some(g), &BTreeSet::new());
            g.set_topics(counts)?;
            let s = g.sync(&member_id, generation, owned, now)?;
            Ok(GroupAnswer::Synced {
                generation: s.generation,
                assigned: s.assigned,
            })
        }),
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
            })?;
            match beat {
                GroupAnswer::Beat(Beat::SyncNeeded) => Err(Failure::new(
                    ErrorCode::RebalanceInProgress,
                    format!("group {group:?} has a new assignment for member {member_id:?}: call SyncGroup"),
                )),
                _ => Ok(GroupAnswer::Done),
            }
        }
        GroupRequest::Leave { group, member_id } => {
            let (key, _) = slot_for(shard, &group)?;
            let mut slots = shard.groups.slots.borrow_mut();
            let slot = slots.get_mut(&key).ok_or_else(lost_slot)?;
            let Some(g) = slot.groups.get_mut(&group) else {
                return Err(group_failure(GroupError::UnknownMember { member_id }));
            };
            g.leave(&member_id).map_err(group_failure)?;
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
            let (key, p) = slot_for(shard, &group)?;
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
fn with_group(
    shard: &Rc<Shard>,
    group: &str,
    member_id: &str,
    f: impl FnOnce(&mut Group) -> Result<GroupAnswer, GroupError>,
) -> Result<GroupAnswer, Failure> {
    let (key, _) = slot_for(shard, group)?;
    let mut slots = shard.groups.slots.borrow_mut();
    let slot = slots.get_mut(&key).ok_or_else(lost_slot)?;
    let Some(g) = slot.groups.get_mut(group) else {
        return Err(group_failure(GroupError::UnknownMember {
            member_id: member_id.to_string(),
        }));
    };
    f(g).map_err(group_failure)
}

async fn commit(
    shard: &Rc<Shard>,
    group: String,
    member_id: String,
    generation: u32,
    tp: Tp,
    offset: u64,
) -> Result<GroupAnswer, Failure> {
    let (key, p) = slot_for(shard, &group)?;
    if !member_id.is_empty() {
        let slots = shard.groups.slots.borrow();
        let slot = slots.get(&key).ok_or_else(lost_slot)?;
        let Some(g) = slot.groups.get(&group) else {
            return Err(group_failure(GroupError::UnknownMember { member_id }));
        };
        g.check_commit(&member_id, generation, &tp)
            .map_err(group_failure)?;
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
    Ok(GroupAnswer::Done)
}

/// Expires group members whose sessions ran out, on every shard.
pub fn spawn_expiry(shard: &Rc<Shard>) {
    let shard = shard.clone();
    glommio::spawn_local(async move {
        while !shard.stopping.get() {
            glommio::timer::sleep(EXPIRY_TICK).await;
            let now = now_ms().max(0) as u64;
            let mut slots = shard.groups.slots.borrow_mut();
            for slot in slots.values_mut() {
                slot.groups.retain(|_, g| {
                    g.expire(now);
                    !g.is_empty()
                });
            }
        }
    })
    .detach();
}

/// Groups and members this shard coordinates, for `/groups` and status output.
pub fn describe(shard: &Shard) -> Vec<(String, u32, Vec<cluster::group::MemberInfo>)> {
    let slots = shard.groups.slots.borrow();
    let mut out: Vec<_> = slots
        .values()
        .flat_map(|s| s.groups.iter())
        .map(|(name, g)| (name.clone(), g.generation(), g.members()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
