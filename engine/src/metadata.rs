//! The node's side of the cluster metadata (nodes started with `--controllers`): a cache of the
//! committed metadata, topics that follow it, and topic changes sent to the metadata leader.
//!
//! - [`MetaCache`]: the newest metadata this node has seen, shared by every shard; an older
//!   version than the one held is ignored, so a lagging controller never rolls the view back.
//! - Shard 0 follows the metadata ([`spawn_follower`]): a controller reads its own committed state,
//!   any other node fetches it from a controller (`MetaFetch`, api 15) every
//!   [`FOLLOW_INTERVAL`]. Every topic of the metadata whose partitions are placed becomes a local
//!   topic (catalog flag `cluster`, the metadata's topic id); one the metadata no longer has is
//!   removed with its data. The node's own topics (created before it joined) are left alone.
//! - Produce, fetch and offset commits for a partition of a cluster topic are served only by the
//!   partition's leader; other nodes answer `NOT_LEADER` naming it ([`check_leader`]).
//! - `sprawl topic create|delete` on any node goes to the metadata leader: through the local
//!   controller when this node is one (which forwards to the leader it knows), else to the
//!   controllers in turn.
//!
//! Replicated topics (replication factor > 1) are served by `crate::replication`: the partition's
//! leader takes writes, followers fetch from it, and the controller moves leadership to an
//! in-sync replica when the leader's node is down. Topics of one replica are unavailable while
//! their node is down.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use meta::MetadataState;
use net::codec::{ErrorCode, Request, Response, TopicConfig};

use crate::catalog::{TopicMeta, TopicSettings};
use crate::controller::{config_to_settings, settings_to_config, ChangeOutcome, TopicChange};
use crate::handlers::Failure;
use crate::peer::{PeerConfig, PeerConn, PeerError};
use crate::shard::Shard;

/// Handshake client name of requests one node sends another on a client's behalf; the receiving
/// node answers them from its own state only (no further forwarding).
pub const FORWARD_CLIENT_NAME: &str = "sprawl-forward";

/// How often shard 0 looks for a newer metadata version.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);
/// How long a topic change waits for its topic to show up (or go) in this node's catalog.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// The newest committed metadata this node has seen, shared by its shards.
#[derive(Debug, Default)]
pub struct MetaCache {
    state: RwLock<Arc<MetadataState>>,
}

impl MetaCache {
    pub fn get(&self) -> Arc<MetadataState> {
        self.state
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Takes `s` if it is newer than the held version; returns whether it did.
    pub fn offer(&self, s: Arc<MetadataState>) -> bool {
        let mut held = self.state.write().unwrap_or_else(|p| p.into_inner());
        if s.version > held.version {
            *held = s;
            true
        } else {
            false
        }
    }
}

/// True when topics go through the metadata controllers (the node has `--controllers`).
pub fn cluster_topics(shard: &Shard) -> bool {
    !shard.config.cluster.controllers.is_empty()
}

/// `Ok` when this node leads `t`/`partition` (or `t` is the node's own topic).
pub fn check_leader(shard: &Shard, t: &TopicMeta, partition: u32) -> Result<(), Failure> {
    if !t.cluster {
        return Ok(());
    }
    let state = shard.meta.get();
    let p = state
        .topics
        .get(&t.name)
        .filter(|m| m.topic_id == t.topic_id)
        .and_then(|m| m.partitions.get(partition as usize));
    let Some(p) = p else {
        return Err(Failure::new(
            ErrorCode::NotLeader,
            format!(
                "partition {}/{partition} is being changed in the cluster metadata; retry",
                t.name
            ),
        ));
    };
    if p.leader == u64::from(shard.config.node_id) {
        return Ok(());
    }
    let message = match state.nodes.get(&p.leader) {
        Some(n) => format!(
            "partition {}/{partition} is led by node {} at {}; send it there",
            t.name, p.leader, n.client_addr
        ),
        None => format!(
            "partition {}/{partition} has no leader right now (its node is down); retry later",
            t.name
        ),
    };
    Err(Failure::new(ErrorCode::NotLeader, message))
}

/// `(replication factor, min-insync)` of `t`: from the metadata for a cluster topic, `(1, 1)`
/// for the node's own topics.
pub fn replication_of(shard: &Shard, t: &TopicMeta) -> (u16, u16) {
    if !t.cluster {
        return (1, 1);
    }
    shard
        .meta
        .get()
        .topics
        .get(&t.name)
        .filter(|m| m.topic_id == t.topic_id)
        .map_or((1, 1), |m| (m.replication_factor, m.min_insync))
}

/// The placement Metadata v1 reports for `t`/`partition`: from the metadata for a cluster topic,
/// this node alone (epoch 0) for the node's own topics; `None` while the metadata lacks it.
pub fn placement(
    shard: &Shard,
    meta: &MetadataState,
    t: &TopicMeta,
    partition: u32,
) -> Option<net::codec::PartitionPlacement> {
    let ids = |v: &[u64]| v.iter().filter_map(|n| u32::try_from(*n).ok()).collect();
    if !t.cluster {
        let me = shard.config.node_id;
        return Some(net::codec::PartitionPlacement {
            leader: me,
            leader_epoch: 0,
            replicas: vec![me],
            in_sync: vec![me],
        });
    }
    let p = meta
        .topics
        .get(&t.name)
        .filter(|m| m.topic_id == t.topic_id)?
        .partitions
        .get(partition as usize)?;
    Some(net::codec::PartitionPlacement {
        leader: u32::try_from(p.leader).ok()?,
        leader_epoch: p.leader_epoch,
        replicas: ids(&p.replicas),
        in_sync: ids(&p.in_sync),
    })
}

/// Creates a cluster topic through the metadata leader; returns its metadata topic id once this
/// node's catalog has it.
pub async fn create_topic(
    shard: &Rc<Shard>,
    name: &str,
    config: TopicConfig,
    settings: TopicSettings,
) -> Result<u64, Failure> {
    if settings.tier_after_ms.is_some() || settings.local_retention_bytes.is_some() {
        return Err(Failure::new(
            ErrorCode::InvalidConfig,
            "tiered topics are not supported in a cluster yet (one node must own each \
             partition's objects, which needs leadership the cold tier does not follow yet); \
             create the topic without --tier-after-ms / --local-retention-bytes",
        ));
    }
    let (rf, min_insync) = (
        config.replication_factor_or_default(),
        config.min_insync_or_default(),
    );
    let max = cluster::REPLICATION_FACTOR_MAX;
    if rf == 0 || usize::from(rf) > max {
        return Err(Failure::new(
            ErrorCode::InvalidConfig,
            format!("replication factor {rf} is out of range: use 1 to {max}"),
        ));
    }
    if min_insync == 0 || min_insync > rf {
        return Err(Failure::new(
            ErrorCode::InvalidConfig,
            format!(
                "min-insync {min_insync} is out of range: use 1 to the replication factor {rf}"
            ),
        ));
    }
    let change = TopicChange::Create {
        name: name.to_string(),
        partitions: config.partitions,
        replication_factor: rf,
        min_insync,
        config: settings_to_config(&settings),
    };
    let topic_id = match shard.controller.clone() {
        Some(c) => match c.change(change).await {
            ChangeOutcome::Created { topic_id } => topic_id,
            ChangeOutcome::NotLeader {
                leader_addr: Some(addr),
                ..
            } => forward(&addr, name, Some(config)).await?,
            other => return Err(outcome_failure(name, other)),
        },
        None => forward_to_controllers(shard, name, Some(config)).await?,
    };
    wait_applied(shard, name, Some(topic_id)).await?;
    Ok(topic_id)
}

/// Deletes a cluster topic through the metadata leader; returns once this node's catalog no
/// longer has it.
pub async fn delete_topic(shard: &Rc<Shard>, name: &str) -> Result<(), Failure> {
    let change = TopicChange::Delete {
        name: name.to_string(),
    };
    match shard.controller.clone() {
        Some(c) => match c.change(change).await {
            ChangeOutcome::Deleted => {}
            ChangeOutcome::NotLeader {
                leader_addr: Some(addr),
                ..
            } => {
                forward(&addr, name, None).await?;
            }
            other => return Err(outcome_failure(name, other)),
        },
        None => {
            forward_to_controllers(shard, name, None).await?;
        }
    }
    wait_applied(shard, name, None).await
}

fn outcome_failure(name: &str, o: ChangeOutcome) -> Failure {
    match o {
        ChangeOutcome::Exists => Failure::new(
            ErrorCode::TopicExists,
            format!("topic {name:?} already exists in the cluster"),
        ),
        ChangeOutcome::Unknown => crate::handlers::unknown_topic(name),
        ChangeOutcome::NotLeader { leader_id, .. } => Failure::new(
            ErrorCode::NotLeader,
            format!(
                "the metadata controllers have no reachable leader (last known: node \
                 {leader_id}); retry in a few seconds"
            ),
        ),
        ChangeOutcome::Refused { message } => Failure::new(ErrorCode::InvalidConfig, message),
        ChangeOutcome::TimedOut { message } => Failure::new(ErrorCode::Timeout, message),
        ChangeOutcome::Created { .. } | ChangeOutcome::Deleted | ChangeOutcome::InSyncCommitted => {
            Failure::new(
                ErrorCode::Internal,
                "unexpected controller answer".to_string(),
            )
        }
    }
}

/// A cluster topic's partition descriptions with each partition's offsets as its leader reports
/// them (this node's own copy of a partition it does not lead is empty). A leader that does not
/// answer leaves this node's view of its partitions in place.
pub async fn with_leader_offsets(
    shard: &Rc<Shard>,
    t: &TopicMeta,
    mut parts: Vec<net::codec::PartitionInfo>,
) -> Vec<net::codec::PartitionInfo> {
    if !t.cluster {
        return parts;
    }
    let meta = shard.meta.get();
    let me = u64::from(shard.config.node_id);
    let Some(topic) = meta
        .topics
        .get(&t.name)
        .filter(|m| m.topic_id == t.topic_id)
    else {
        return parts;
    };
    let mut by_leader: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for p in &parts {
        let leader = topic
            .partitions
            .get(p.partition as usize)
            .map_or(0, |s| s.leader);
        if leader != me && leader != 0 {
            if let Some(n) = meta.nodes.get(&leader) {
                by_leader
                    .entry(n.client_addr.clone())
                    .or_default()
                    .push(p.partition);
            }
        }
    }
    for (addr, wanted) in by_leader {
        let request = Request::DescribeTopic { name: &t.name };
        let Ok(reply) = peer_call(&addr, &request, Duration::from_secs(5)).await else {
            continue;
        };
        let Ok(Response::DescribeTopic {
            topic: Some(info), ..
        }) = crate::handlers::decode_reply(&reply)
        else {
            continue;
        };
        for rp in info.partitions {
            if !wanted.contains(&rp.partition) {
                continue;
            }
            if let Some(slot) = parts.iter_mut().find(|p| p.partition == rp.partition) {
                *slot = rp;
            }
        }
    }
    parts
}

/// One request to another node over a fresh internode connection (`crate::peer`, on this
/// reactor: no blocking-pool thread waits on the network), named [`FORWARD_CLIENT_NAME`] so the
/// other node answers from its own state. A failure to reach or hear from it is `NOT_LEADER`.
async fn peer_call(addr: &str, request: &Request<'_>, timeout: Duration) -> Result<Bytes, Failure> {
    let config = PeerConfig {
        client_name: FORWARD_CLIENT_NAME.into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: timeout,
        ..PeerConfig::default()
    };
    let unreachable = |e: PeerError| Failure::new(ErrorCode::NotLeader, format!("{e}; retry"));
    let conn = PeerConn::connect(addr, config).await.map_err(unreachable)?;
    conn.call(request).await.map_err(unreachable)
}

/// Sends the create (`config` given) or delete to the node at `addr`; the node's answer is passed
/// on as it is. Returns the topic id of a create (0 for a delete).
async fn forward(addr: &str, name: &str, config: Option<TopicConfig>) -> Result<u64, Failure> {
    let request = match config {
        Some(config) => Request::CreateTopic { name, config },
        None => Request::DeleteTopic { name },
    };
    let reply = peer_call(addr, &request, Duration::from_secs(15)).await?;
    match crate::handlers::decode_reply(&reply)? {
        Response::CreateTopic { topic_id, .. } => Ok(topic_id),
        Response::DeleteTopic { .. } => Ok(0),
        other => Err(Failure::new(
            ErrorCode::Internal,
            format!("{addr} answered {:?} to a topic change", other.api_key()),
        )),
    }
}

/// Forwards to each controller in turn until one answers (a controller forwards on to the leader
/// it knows). A server-side refusal is final; an unreachable controller moves on to the next.
async fn forward_to_controllers(
    shard: &Rc<Shard>,
    name: &str,
    config: Option<TopicConfig>,
) -> Result<u64, Failure> {
    let mut last = None;
    for (_, addr) in &shard.config.cluster.controllers {
        match forward(addr, name, config).await {
            Ok(id) => return Ok(id),
            Err(f) if f.code == ErrorCode::NotLeader => last = Some(f),
            Err(f) => return Err(f),
        }
    }
    Err(last.unwrap_or_else(|| Failure::new(ErrorCode::NotLeader, "no controllers configured")))
}

/// Waits until this node's catalog has `name` with `topic_id` (`Some`) or lacks it (`None`),
/// following the metadata meanwhile.
async fn wait_applied(shard: &Rc<Shard>, name: &str, topic_id: Option<u64>) -> Result<(), Failure> {
    let deadline = std::time::Instant::now() + APPLY_WAIT;
    loop {
        let have = shard.topic(name).map(|t| t.topic_id);
        // A created topic is ready here once the metadata this node holds gives every partition
        // a leader (the controller answered only then; a lagging controller may not have yet).
        let led = topic_id.is_none()
            || shard
                .meta
                .get()
                .topics
                .get(name)
                .is_some_and(|t| t.partitions.iter().all(|p| p.leader != 0));
        if have == topic_id && led {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Failure::new(
                ErrorCode::Timeout,
                format!(
                    "the metadata changed but this node has not applied it within {} s; it \
                     will (check `sprawl topic list`)",
                    APPLY_WAIT.as_secs()
                ),
            ));
        }
        follow_once(shard).await;
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
}

/// Shard 0 of a node with `--controllers`: follows the metadata until the node stops.
pub fn spawn_follower(shard: &Rc<Shard>) {
    if shard.id != 0 || !cluster_topics(shard) {
        return;
    }
    let s = shard.clone();
    glommio::spawn_local(async move {
        while !s.stopping.get() {
            follow_once(&s).await;
            glommio::timer::sleep(FOLLOW_INTERVAL).await;
        }
    })
    .detach();
}

/// One look for newer metadata, applied to the catalog when found.
async fn follow_once(shard: &Rc<Shard>) {
    let latest = match &shard.controller {
        Some(c) => Some(c.view().state.clone()),
        None => fetch_remote(shard).await,
    };
    if let Some(state) = latest {
        shard.meta.offer(state);
    }
    let state = shard.meta.get();
    if let Err(e) = sync_catalog(shard, &state).await {
        eprintln!(
            "sprawl: cannot apply cluster metadata v{}: {e}",
            state.version
        );
    }
}

/// Fetches newer metadata from a controller over the connection shard 0 keeps (rotated to the
/// next controller on failure); `None` when there is nothing newer or none answered. The state is
/// decoded on the blocking pool (it can be megabytes).
async fn fetch_remote(shard: &Rc<Shard>) -> Option<Arc<MetadataState>> {
    let since = shard.meta.get().version;
    let controllers = &shard.config.cluster.controllers;
    let mut errors = Vec::new();
    for _ in 0..controllers.len() {
        let live = shard.meta_conn.borrow().clone().filter(|c| !c.is_closed());
        let conn = match live {
            Some(c) => c,
            None => {
                let addr = &controllers[shard.meta_next.get() % controllers.len()].1;
                let config = PeerConfig {
                    client_name: "sprawl-metadata".into(),
                    connect_timeout: Duration::from_secs(1),
                    request_timeout: Duration::from_secs(5),
                    ..PeerConfig::default()
                };
                match PeerConn::connect(addr, config).await {
                    Ok(c) => {
                        *shard.meta_conn.borrow_mut() = Some(c.clone());
                        c
                    }
                    Err(e) => {
                        errors.push(e.to_string());
                        shard.meta_next.set(shard.meta_next.get() + 1);
                        continue;
                    }
                }
            }
        };
        let reply = conn
            .call(&Request::MetaFetch {
                since_version: since,
            })
            .await;
        let answer = match &reply {
            Ok(frame) => crate::handlers::decode_reply(frame).map_err(|f| f.message),
            Err(e) => Err(e.to_string()),
        };
        match (answer, &reply) {
            (Ok(Response::MetaFetch { state, .. }), Ok(frame)) => {
                if state.is_empty() {
                    return None;
                }
                let bytes = frame.slice_ref(state);
                let decoded = crate::runtime::blocking(move || MetadataState::decode(&bytes)).await;
                return match decoded {
                    Ok(s) => Some(Arc::new(s)),
                    Err(e) => {
                        report_fetch_error(
                            shard,
                            format!("controller sent undecodable metadata: {e}"),
                        );
                        None
                    }
                };
            }
            (Ok(other), _) => {
                errors.push(format!("{}: answered {:?}", conn.addr(), other.api_key()))
            }
            (Err(e), _) => errors.push(format!("{}: {e}", conn.addr())),
        }
        shard.meta_conn.borrow_mut().take();
        shard.meta_next.set(shard.meta_next.get() + 1);
    }
    report_fetch_error(
        shard,
        format!("no metadata controller answered ({})", errors.join("; ")),
    );
    None
}

/// Logs a metadata problem once while it persists.
fn report_fetch_error(shard: &Shard, e: String) {
    let mut logged = shard.meta_fetch_error.borrow_mut();
    if logged.as_deref() != Some(e.as_str()) {
        eprintln!("sprawl: cluster metadata: {e}");
        *logged = Some(e);
    }
}

/// Makes the catalog's cluster topics match `state` (placed topics only).
async fn sync_catalog(shard: &Rc<Shard>, state: &MetadataState) -> Result<(), String> {
    let current = shard.catalog.borrow().clone();
    let wanted = wanted_topics(state)?;
    let unchanged = current
        .topics
        .values()
        .filter(|t| t.cluster)
        .map(|t| (t.name.as_str(), t.topic_id))
        .eq(wanted.values().map(|t| (t.name.as_str(), t.topic_id)))
        && wanted.keys().all(|n| current.topics.contains_key(n));
    if unchanged {
        return Ok(());
    }
    let _guard = shard
        .admin_lock
        .acquire_permit(1)
        .await
        .map_err(|_| "node is shutting down".to_string())?;
    let current = shard.catalog.borrow().clone();
    let mut next = (*current).clone();
    let mut removed = Vec::new();
    for t in current.topics.values().filter(|t| t.cluster) {
        if wanted.get(&t.name).map(|w| w.topic_id) != Some(t.topic_id) {
            next.topics.remove(&t.name);
            removed.push(t.clone());
        }
    }
    for (name, t) in wanted {
        match next.topics.get(&name) {
            Some(have) if !have.cluster => {
                let mut warned = shard.meta_fetch_error.borrow_mut();
                let m = format!("local topic {name:?} hides the cluster topic of that name");
                if warned.as_deref() != Some(m.as_str()) {
                    eprintln!("sprawl: {m}; delete or rename the local one to serve it");
                    *warned = Some(m);
                }
            }
            Some(_) => {}
            None => {
                next.topics.insert(name, t);
            }
        }
    }
    if next == *current {
        return Ok(());
    }
    next.version += 1;
    crate::admin::store_catalog(shard, &next)
        .await
        .map_err(|f| f.message)?;
    shard.broadcast_catalog(Arc::new(next)).await?;
    for t in removed {
        crate::admin::remove_topic_data(shard, &t)
            .await
            .map_err(|f| f.message)?;
    }
    Ok(())
}

/// The cluster topics `state` asks for: every topic whose partitions all have replicas.
fn wanted_topics(state: &MetadataState) -> Result<BTreeMap<String, TopicMeta>, String> {
    let mut out = BTreeMap::new();
    for (name, t) in &state.topics {
        if t.partitions.iter().any(|p| p.replicas.is_empty()) {
            continue;
        }
        let settings = config_to_settings(&t.config).map_err(|e| format!("topic {name}: {e}"))?;
        out.insert(
            name.clone(),
            TopicMeta {
                name: name.clone(),
                topic_id: t.topic_id,
                partitions: u32::try_from(t.partitions.len()).map_err(|e| e.to_string())?,
                settings,
                cluster: true,
            },
        );
    }
    Ok(out)
}
