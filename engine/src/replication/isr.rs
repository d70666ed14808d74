//! In-sync set changes a partition leader wants ([`cluster::LeaderState::poll_isr_change`]),
//! sent to the metadata controller as AlterInSync (api 17) and committed there as `SetInSync`
//! fenced by leader epoch and in-sync set version. The leader learns the outcome only from the
//! committed metadata (docs/replication-format.md: a proposal ends only through committed
//! metadata), so this module only delivers: one proposal in flight per partition, resent at most
//! every [`RESEND_INTERVAL`] while it stays pending.

use std::rc::Rc;
use std::time::{Duration, Instant};

use cluster::IsrChange;
use net::codec::{ErrorCode, Request, Response};

use crate::controller::{ChangeOutcome, TopicChange};
use crate::handlers::Failure;
use crate::partition::Partition;
use crate::peer::{PeerConfig, PeerConn};
use crate::shard::Shard;

/// A pending proposal is sent again after this long without a newer committed set.
pub const RESEND_INTERVAL: Duration = Duration::from_secs(1);

/// Asks the controller for a new election of `p`: this node is named leader at `leader_epoch`
/// but its epoch history already holds that epoch (it restarted before the controller noticed),
/// and a node never leads twice at one epoch. Sent as an AlterInSync with an empty set.
pub fn request_election(shard: &Rc<Shard>, p: &Rc<Partition>, leader_epoch: u32, isr_version: u32) {
    let change = IsrChange {
        leader_epoch,
        isr_version,
        in_sync: Vec::new(),
    };
    propose(shard, p, change);
}

/// Sends `change` for `p` unless one is in flight or was sent less than [`RESEND_INTERVAL`] ago.
pub fn propose(shard: &Rc<Shard>, p: &Rc<Partition>, change: IsrChange) {
    let last = p.replica.isr_sent.get();
    if p.replica.isr_in_flight.get() || last.is_some_and(|t| t.elapsed() < RESEND_INTERVAL) {
        return;
    }
    p.replica.isr_in_flight.set(true);
    p.replica.isr_sent.set(Some(Instant::now()));
    let (s, part) = (shard.clone(), p.clone());
    glommio::spawn_local(async move {
        if let Err(f) = send(&s, &part.topic, part.index, &change, 0).await {
            part.replica.report(
                &part,
                format!(
                    "in-sync set change to {:?} not delivered: {}",
                    change.in_sync, f.message
                ),
            );
        }
        part.replica.isr_in_flight.set(false);
    })
    .detach();
}

/// Asks the metadata controller to let `successor`, another in-sync replica, lead
/// `topic`/`partition`, which this node leads (a leadership hand-over decided by the analytics
/// shard). Any shard may ask: the epoch and in-sync set version come from the metadata this node
/// holds, and the controller refuses the hand-over unless its committed metadata agrees and the
/// partition's hand-over history allows it (`controller::hand_over`). `Ok` once the new leader
/// is committed.
pub async fn hand_over(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    successor: u32,
) -> Result<(), Failure> {
    let meta = shard.meta.get();
    let ps = meta
        .topics
        .get(topic)
        .and_then(|t| t.partitions.get(partition as usize))
        .ok_or_else(|| crate::handlers::unknown_topic(topic))?;
    let me = shard.config.node_id;
    if ps.leader != u64::from(me) {
        return Err(Failure::new(
            ErrorCode::NotLeader,
            format!(
                "{topic}/{partition} is led by node {}, not this node ({me}); only its leader \
                 hands it over",
                ps.leader
            ),
        ));
    }
    let change = IsrChange {
        leader_epoch: ps.leader_epoch,
        isr_version: ps.isr_version,
        in_sync: Vec::new(),
    };
    send(shard, topic, partition, &change, successor).await
}

fn to_change(
    shard: &Shard,
    topic: &str,
    partition: u32,
    c: &IsrChange,
    successor: u32,
) -> TopicChange {
    TopicChange::InSync {
        topic: topic.to_string(),
        partition,
        leader: u64::from(shard.config.node_id),
        leader_epoch: c.leader_epoch,
        isr_version: c.isr_version,
        in_sync: c.in_sync.iter().map(|n| u64::from(*n)).collect(),
        successor: u64::from(successor),
    }
}

async fn send(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    c: &IsrChange,
    successor: u32,
) -> Result<(), Failure> {
    if let Some(ctl) = shard.controller.clone() {
        match ctl
            .change(to_change(shard, topic, partition, c, successor))
            .await
        {
            ChangeOutcome::InSyncCommitted => return Ok(()),
            ChangeOutcome::NotLeader {
                leader_addr: Some(addr),
                ..
            } => return send_to(shard, &addr, topic, partition, c, successor).await,
            ChangeOutcome::Refused { message } => {
                return Err(Failure::new(ErrorCode::InvalidRequest, message))
            }
            ChangeOutcome::TimedOut { message } => {
                return Err(Failure::new(ErrorCode::Timeout, message))
            }
            other => {
                return Err(Failure::new(
                    ErrorCode::NotLeader,
                    format!("the controller answered {other:?}"),
                ))
            }
        }
    }
    let mut last = None;
    for (_, addr) in &shard.config.cluster.controllers {
        match send_to(shard, addr, topic, partition, c, successor).await {
            Ok(()) => return Ok(()),
            Err(f) if f.code == ErrorCode::NotLeader => last = Some(f),
            Err(f) => return Err(f),
        }
    }
    Err(last.unwrap_or_else(|| Failure::new(ErrorCode::NotLeader, "no controllers configured")))
}

async fn send_to(
    shard: &Rc<Shard>,
    addr: &str,
    topic: &str,
    partition: u32,
    c: &IsrChange,
    successor: u32,
) -> Result<(), Failure> {
    let config = PeerConfig {
        client_name: "sprawl-isr".into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(15),
        ..PeerConfig::default()
    };
    let unreachable = |e: crate::peer::PeerError| Failure::new(ErrorCode::NotLeader, e.to_string());
    let conn = PeerConn::connect(addr, config).await.map_err(unreachable)?;
    let reply = conn
        .call(&Request::AlterInSync {
            topic,
            partition,
            leader: shard.config.node_id,
            leader_epoch: c.leader_epoch,
            isr_version: c.isr_version,
            in_sync: c.in_sync.clone(),
            successor,
        })
        .await
        .map_err(unreachable)?;
    match crate::handlers::decode_reply(&reply)? {
        Response::AlterInSync { .. } => Ok(()),
        other => Err(Failure::new(
            ErrorCode::Internal,
            format!("{addr} answered {:?} to AlterInSync", other.api_key()),
        )),
    }
}

/// A controller's handling of an AlterInSync request from a partition leader: the committed
/// `(isr_version, in_sync)` once the metadata holds a newer set than the one the leader saw
/// (or, for an election or hand-over, a newer leader epoch).
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    shard: &Shard,
    topic: &str,
    partition: u32,
    leader: u32,
    leader_epoch: u32,
    isr_version: u32,
    in_sync: &[u32],
    successor: u32,
) -> Result<(u32, Vec<u32>), Failure> {
    if successor != 0 && !in_sync.is_empty() {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            format!(
                "a successor ({successor}) goes with an empty in-sync set (a hand-over), not \
                 with {in_sync:?}"
            ),
        ));
    }
    // An empty set is the leader's request for a new election (it cannot lead at its epoch).
    if !in_sync.is_empty() && !in_sync.contains(&leader) {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            format!("the proposed in-sync set {in_sync:?} lacks its leader {leader}"),
        ));
    }
    let Some(ctl) = shard.controller.clone() else {
        return Err(Failure::new(
            ErrorCode::NotLeader,
            format!(
                "node {} is not a metadata controller; ask one of its --controllers",
                shard.config.node_id
            ),
        ));
    };
    let change = TopicChange::InSync {
        topic: topic.to_string(),
        partition,
        leader: u64::from(leader),
        leader_epoch,
        isr_version,
        in_sync: in_sync.iter().map(|n| u64::from(*n)).collect(),
        successor: u64::from(successor),
    };
    match ctl.change(change).await {
        ChangeOutcome::InSyncCommitted => {
            let state = ctl.view().state.clone();
            let ps = state
                .topics
                .get(topic)
                .and_then(|t| t.partitions.get(partition as usize));
            Ok(ps.map_or((0, Vec::new()), |ps| {
                (ps.isr_version, super::ids(&ps.in_sync))
            }))
        }
        ChangeOutcome::NotLeader {
            leader_id,
            leader_addr,
        } => Err(Failure::new(
            ErrorCode::NotLeader,
            match leader_addr {
                Some(a) => format!("the metadata leader is node {leader_id} at {a}"),
                None => "the metadata controllers have no leader right now; retry".into(),
            },
        )),
        ChangeOutcome::Unknown => Err(crate::handlers::unknown_topic(topic)),
        ChangeOutcome::Refused { message } => Err(Failure::new(ErrorCode::InvalidRequest, message)),
        other => Err(Failure::new(
            ErrorCode::Internal,
            format!("unexpected controller answer {other:?}"),
        )),
    }
}
