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

mod frame;
mod handle;
pub mod store;

pub use frame::start_frame;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use cluster::group::Group;
use net::codec::{ErrorCode, Request, TopicConfig};

use crate::handlers::{now_ms, Failure};
use crate::metrics::add;
use crate::shard::{CallBody, ReplyBody, Shard};
use store::Offsets;

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
#[derive(Debug)]
pub struct Coordinator {
    slots: RefCell<HashMap<u32, Slot>>,
    next_member: Cell<u64>,
    /// Set while this shard asks for the offsets topic to be created.
    creating: Cell<bool>,
    /// Held while a slot's committed offsets load, so that one takeover loads them once.
    load_lock: glommio::sync::Semaphore,
}

impl Default for Coordinator {
    fn default() -> Self {
        Coordinator {
            slots: RefCell::default(),
            next_member: Cell::new(0),
            creating: Cell::new(false),
            load_lock: glommio::sync::Semaphore::new(1),
        }
    }
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
    let reply = crate::handlers::call_shard(shard, to, request).await?;
    crate::handlers::decode_reply(&reply).map(drop)
}

/// True when an OffsetCommit / OffsetFetch for `consumer` goes to the group coordinator rather
/// than to the partition's shard: always in a cluster, and for a commit naming a member.
pub fn offsets_at_coordinator(shard: &Shard, member_id: &str) -> bool {
    crate::metadata::cluster_topics(shard) || !member_id.is_empty()
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
                    let expired = g.expire(now).len() as u64;
                    if expired > 0 {
                        add(&shard.metrics.group_members_expired, expired);
                        add(&shard.metrics.group_rebalances, 1);
                    }
                    !g.is_empty()
                });
            }
        }
    })
    .detach();
}

/// The groups this shard coordinates (as `GET /groups` shows them), sorted by name.
pub fn describe(shard: &Shard) -> Vec<serde_json::Value> {
    let tps = |set: &std::collections::BTreeSet<cluster::group::Tp>| -> Vec<String> {
        set.iter().map(ToString::to_string).collect()
    };
    let slots = shard.groups.slots.borrow();
    let mut out: Vec<(String, serde_json::Value)> = slots
        .iter()
        .flat_map(|(slot, s)| s.groups.iter().map(move |(name, g)| (slot, name, g)))
        .map(|(slot, name, g)| {
            let members: Vec<serde_json::Value> = g
                .members()
                .into_iter()
                .map(|m| {
                    serde_json::json!({
                        "id": m.id,
                        "topics": m.topics,
                        "session_timeout_ms": m.session_timeout_ms,
                        "assigned": tps(&m.assigned),
                        "owned": tps(&m.owned),
                        "target": tps(&m.target),
                        "last_seen_ms": m.last_seen_ms,
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "group": name,
                "generation": g.generation(),
                "assignor": g.assignor().map(|a| a.name()),
                "offsets_partition": (*slot != SINGLE_NODE_SLOT).then_some(*slot),
                "shard": shard.id,
                "members": members,
            });
            (name.clone(), doc)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, v)| v).collect()
}

/// `GET /groups`: every group this node coordinates, from all its shards.
pub async fn describe_all(shard: &Rc<Shard>) -> serde_json::Value {
    let mut groups = describe(shard);
    for s in (0..shard.shards).filter(|&s| s != shard.id) {
        if let Some(ReplyBody::Json(serde_json::Value::Array(more))) =
            shard.call(s, CallBody::Groups).await
        {
            groups.extend(more);
        }
    }
    groups.sort_by(|a, b| a["group"].as_str().cmp(&b["group"].as_str()));
    serde_json::json!({
        "node_id": shard.config.node_id,
        "coordinated_here": groups,
        "note": "groups whose coordinator is this node; in a cluster other groups are on other nodes (FindCoordinator names them)",
    })
}
