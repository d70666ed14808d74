//! Cluster membership on shard 0: the gossip driver (`gossip::driver`) started from the node's
//! cluster settings, its view for `GET /cluster` and `/metrics`, and a graceful leave at shutdown.
//!
//! `/cluster` lists the partitions of cluster topics from the metadata (`crate::metadata`): leader,
//! replicas, in-sync set, leader epoch; a node's own topics (and every topic of a node without
//! `--controllers`) are listed with the node itself as their only replica.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use gossip::{DownKind, GossipConfig, GossipDriver, MemberState};
use serde_json::{json, Value};

use crate::shard::{CallBody, ReplyBody, Shard};

/// How often this node's ingest rate is re-announced in gossip (the driver rate-limits further).
const LOAD_ANNOUNCE_EVERY: Duration = Duration::from_secs(5);
/// The shortest time between two load announcements (each renews the gossip identity).
const LOAD_ANNOUNCE_MIN_GAP: Duration = Duration::from_secs(60);

/// Starts gossip on shard 0 when the node is configured for a cluster. Returns the bound gossip
/// address (for `ports.json`), or `None` when the node runs alone.
pub fn start(shard: &Rc<Shard>, http: Option<SocketAddr>) -> Result<Option<SocketAddr>, String> {
    let c = &shard.config.cluster;
    if !c.enabled || shard.id != 0 {
        return Ok(None);
    }
    let bind = SocketAddr::new(shard.config.bind, c.gossip_port);
    let host = c.advertised_host(shard.config.bind);
    let with_host = |addr: Option<SocketAddr>| match addr {
        Some(a) if c.advertise.is_some() || a.ip().is_unspecified() => {
            join_host_port(&host, a.port())
        }
        Some(a) => a.to_string(),
        None => String::new(),
    };
    let client: Option<SocketAddr> = shard.client_addr.borrow().parse().ok();
    let mut g = GossipConfig::new(shard.config.node_id, bind);
    g.advertise_addr = c
        .advertise
        .as_ref()
        .map(|h| join_host_port(h, c.gossip_port));
    g.client_addr = with_host(client);
    g.http_addr = with_host(http);
    g.shard_count = u16::try_from(shard.shards).unwrap_or(u16::MAX);
    g.seeds = c.seeds.clone();
    let handle = GossipDriver::start(g).map_err(|e| match e {
        gossip::GossipError::PortInUse { addr } => format!(
            "gossip port {addr} (UDP) is already in use; choose another with --gossip-port \
             (0 picks a free one)"
        ),
        gossip::GossipError::Bind { addr, source } => format!(
            "cannot bind the gossip port {addr} (UDP): {source}; choose another with \
             --gossip-port (0 picks a free one)"
        ),
        other => format!("cannot start gossip: {other}"),
    })?;
    let bound = handle.local_addr();
    *shard.gossip.borrow_mut() = Some(handle);
    spawn_load_announcer(shard.clone());
    if shard.controller.is_some() {
        spawn_member_feeder(shard.clone());
    }
    Ok(Some(bound))
}

/// How often the controller learns the live members it registers while it leads.
const MEMBER_FEED_EVERY: Duration = Duration::from_millis(200);

/// Tells this node's controller which members are alive and which are suspected (this node
/// included), every [`MEMBER_FEED_EVERY`].
fn spawn_member_feeder(shard: Rc<Shard>) {
    glommio::spawn_local(async move {
        while !shard.stopping.get() {
            let members = {
                let gossip = shard.gossip.borrow();
                gossip.as_ref().map(|h| {
                    let me = h.identity();
                    let mut m = vec![(u64::from(me.node_id()), me.client_addr().to_string())];
                    m.extend(
                        h.members()
                            .into_iter()
                            .filter(|s| s.state == MemberState::Alive)
                            .map(|s| {
                                (
                                    u64::from(s.member.node_id()),
                                    s.member.client_addr().to_string(),
                                )
                            }),
                    );
                    m
                })
            };
            let suspect: Vec<u64> = shard.gossip.borrow().as_ref().map_or_else(Vec::new, |h| {
                h.members()
                    .into_iter()
                    .filter(|s| s.state == MemberState::Suspect)
                    .map(|s| u64::from(s.member.node_id()))
                    .collect()
            });
            if let (Some(m), Some(c)) = (members, shard.controller.as_ref()) {
                c.set_members(m, suspect);
            }
            glommio::timer::sleep(MEMBER_FEED_EVERY).await;
        }
    })
    .detach();
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Re-announces this node's produce rate (messages per second, all shards), measured every
/// [`LOAD_ANNOUNCE_EVERY`], when it moved by more than a quarter (and 10 msgs/s) since the last
/// announcement and that was [`LOAD_ANNOUNCE_MIN_GAP`] ago. An announcement renews the gossip
/// identity, which restarts this node's failure-detection probe cycle, so it must be rare:
/// renewing every few seconds under a changing load delayed the detection of crashed peers.
fn spawn_load_announcer(shard: Rc<Shard>) {
    glommio::spawn_local(async move {
        let mut last: Option<(u64, std::time::Instant)> = None;
        let mut announced: Option<(f64, std::time::Instant)> = None;
        while !shard.stopping.get() {
            glommio::timer::sleep(LOAD_ANNOUNCE_EVERY).await;
            let total = records_in(&shard).await;
            let now = std::time::Instant::now();
            if let Some((before, at)) = last {
                let secs = now.duration_since(at).as_secs_f64();
                if secs > 0.0 {
                    let rate = total.saturating_sub(before) as f64 / secs;
                    let due = announced.is_none_or(|(was, when)| {
                        now.duration_since(when) >= LOAD_ANNOUNCE_MIN_GAP
                            && (rate - was).abs() > (was * 0.25).max(10.0)
                    });
                    if due {
                        if let Some(h) = shard.gossip.borrow().as_ref() {
                            let _ = h.set_load(rate as f32);
                        }
                        announced = Some((rate, now));
                    }
                }
            }
            last = Some((total, now));
        }
    })
    .detach();
}

/// Records taken in by every shard since start.
async fn records_in(shard: &Rc<Shard>) -> u64 {
    let mut total = shard.metrics.records_in.get();
    for s in (0..shard.shards).filter(|&s| s != shard.id) {
        if let Some(ReplyBody::Count(n)) = shard.call(s, CallBody::RecordsIn).await {
            total += n;
        }
    }
    total
}

/// The `/cluster` document from shard 0, asked over the mesh from any shard.
pub async fn view_from_shard0(shard: &Rc<Shard>) -> Option<Value> {
    if shard.id == 0 {
        return Some(view(shard));
    }
    match shard.call(0, CallBody::ClusterView).await {
        Some(ReplyBody::Json(v)) => Some(v),
        _ => None,
    }
}

/// The gossip lines of `/metrics` from shard 0.
pub async fn prometheus_from_shard0(shard: &Rc<Shard>) -> String {
    if shard.id == 0 {
        let mut text = String::new();
        prometheus(shard, &mut text);
        return text;
    }
    match shard.call(0, CallBody::ClusterPrometheus).await {
        Some(ReplyBody::Text(t)) => t,
        _ => String::new(),
    }
}

/// Leaves the cluster gracefully (peers see this node as left, not failed).
pub async fn leave(shard: &Shard) {
    let handle = shard.gossip.borrow_mut().take();
    if let Some(h) = handle {
        if let Err(e) = h.leave().await {
            eprintln!("sprawl: leaving the cluster: {e}");
        }
    }
}

fn state_name(s: MemberState) -> &'static str {
    match s {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Down(DownKind::Left) => "left",
        MemberState::Down(DownKind::Failed) => "failed",
    }
}

/// The `GET /cluster` document, rendered on shard 0.
pub fn view(shard: &Shard) -> Value {
    let node_id = shard.config.node_id;
    let gossip = shard.gossip.borrow();
    let mut members = Vec::new();
    if let Some(h) = gossip.as_ref() {
        let me = h.identity();
        members.push(member_json(&me, "alive", true));
        for m in h.members() {
            members.push(member_json(&m.member, state_name(m.state), false));
        }
    }
    members.sort_by_key(|m| m["id"].as_u64());
    let catalog = shard.catalog.borrow().clone();
    let meta = shard.meta.get();
    let mut partitions = Vec::new();
    for t in catalog.topics.values().filter(|t| !t.cluster) {
        for p in 0..t.partitions {
            partitions.push(json!({
                "topic": t.name, "partition": p, "leader": node_id,
                "replicas": [node_id], "isr": [node_id], "scope": "node",
            }));
        }
    }
    for (name, t) in &meta.topics {
        for (i, p) in t.partitions.iter().enumerate() {
            partitions.push(json!({
                "topic": name, "partition": i, "leader": p.leader,
                "leader_epoch": p.leader_epoch, "replicas": p.replicas, "isr": p.in_sync,
                "scope": "cluster",
            }));
        }
    }
    let controllers: Vec<Value> = shard
        .config
        .cluster
        .controllers
        .iter()
        .map(|(id, addr)| json!({"id": id, "client_addr": addr}))
        .collect();
    json!({
        "node_id": node_id,
        "clustered": gossip.is_some(),
        "controllers": controllers,
        "controller": shard.controller.as_ref().map(|c| controller_json(&c.view())),
        "joined": gossip.as_ref().is_some_and(|h| h.is_joined()),
        "gossip_addr": gossip.as_ref().map(|h| h.advertise_addr().to_string()),
        "metadata": if crate::metadata::cluster_topics(shard) {
            json!({"version": meta.version, "topics": meta.topics.len(),
                   "replication": "per topic (--replication-factor); leaders, replicas and in-sync sets under partitions"})
        } else {
            json!("local: without --controllers topics are this node's own")
        },
        "members": members,
        "partitions": partitions,
    })
}

fn controller_json(v: &crate::controller::ControllerView) -> Value {
    json!({
        "role": v.role,
        "term": v.term,
        "leader_id": v.leader_id,
        "commit_index": v.commit_index,
        "applied_index": v.applied_index,
        "version": v.version,
        "voters": v.voters,
        "nodes": v.nodes.iter().map(|(id, addr)| json!({"id": id, "client_addr": addr})).collect::<Vec<_>>(),
        "topics": v.topics,
        "last_error": v.last_error,
    })
}

fn member_json(m: &gossip::Member, state: &str, this_node: bool) -> Value {
    json!({
        "id": m.node_id(),
        "state": state,
        "self": this_node,
        "incarnation": m.incarnation(),
        "client_addr": m.client_addr(),
        "http_addr": m.http_addr(),
        "gossip_addr": m.gossip_addr(),
        "shards": m.shard_count(),
        "load_msgs_per_s": m.load_msgs_per_s(),
    })
}

/// Gossip and controller lines for `/metrics` (nothing when the node runs alone).
pub fn prometheus(shard: &Shard, out: &mut String) {
    use std::fmt::Write;
    if let Some(c) = shard.controller.as_ref() {
        use std::sync::atomic::Ordering::Relaxed;
        let node = shard.config.node_id;
        let v = c.view();
        let k = &c.counters;
        let gauges = [
            (
                "raft_term",
                "current Raft term of the metadata controller",
                v.term,
            ),
            (
                "raft_leader_id",
                "metadata leader this controller knows (0 = none)",
                v.leader_id,
            ),
            (
                "raft_commit_index",
                "highest committed metadata log index",
                v.commit_index,
            ),
            (
                "raft_applied_index",
                "highest applied metadata log index",
                v.applied_index,
            ),
            (
                "metadata_version",
                "version of the applied cluster metadata",
                v.version,
            ),
            (
                "raft_is_leader",
                "1 while this controller leads",
                u64::from(v.role == "leader"),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP sprawl_{name} {help}");
            let _ = writeln!(out, "# TYPE sprawl_{name} gauge");
            let _ = writeln!(out, "sprawl_{name}{{node=\"{node}\"}} {value}");
        }
        let counters = [
            (
                "raft_messages_sent_total",
                "Raft messages delivered to peer controllers",
                &k.sent_total,
            ),
            (
                "raft_send_errors_total",
                "Raft sends or connects that failed",
                &k.send_errors_total,
            ),
            (
                "raft_outbound_dropped_total",
                "Raft messages dropped (peer queue full or unreachable)",
                &k.outbound_dropped_total,
            ),
            (
                "raft_inbound_dropped_total",
                "received Raft messages dropped (controller queue full)",
                &k.inbound_dropped_total,
            ),
            (
                "raft_inbound_invalid_total",
                "received Raft messages the controller refused",
                &k.inbound_invalid_total,
            ),
            (
                "metadata_proposals_total",
                "metadata commands proposed by this controller",
                &k.proposals_total,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP sprawl_{name} {help}");
            let _ = writeln!(out, "# TYPE sprawl_{name} counter");
            let _ = writeln!(
                out,
                "sprawl_{name}{{node=\"{node}\"}} {}",
                value.load(Relaxed)
            );
        }
    }
    let gossip = shard.gossip.borrow();
    let Some(h) = gossip.as_ref() else {
        return;
    };
    let node = shard.config.node_id;
    let s = h.stats();
    let counters = [
        (
            "datagrams_in_total",
            "gossip datagrams received",
            s.datagrams_in_total,
        ),
        (
            "datagrams_out_total",
            "gossip datagrams sent",
            s.datagrams_out_total,
        ),
        ("bytes_in_total", "gossip bytes received", s.bytes_in_total),
        ("bytes_out_total", "gossip bytes sent", s.bytes_out_total),
        (
            "decode_errors_total",
            "gossip datagrams dropped as undecodable",
            s.decode_errors_total,
        ),
        (
            "send_errors_total",
            "gossip sends that failed",
            s.send_errors_total,
        ),
        (
            "refuted_suspicions_total",
            "suspicions refuted in time",
            s.refuted_suspicions_total,
        ),
        (
            "join_attempts_total",
            "join rounds sent to the seeds",
            s.join_attempts_total,
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(out, "# HELP sprawl_gossip_{name} {help}");
        let _ = writeln!(out, "# TYPE sprawl_gossip_{name} counter");
        let _ = writeln!(out, "sprawl_gossip_{name}{{node=\"{node}\"}} {v}");
    }
    let mut by_state = std::collections::BTreeMap::from([
        ("alive", 0u64),
        ("suspect", 0),
        ("left", 0),
        ("failed", 0),
    ]);
    for m in h.members() {
        *by_state.entry(state_name(m.state)).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "# HELP sprawl_cluster_members other members known, by state"
    );
    let _ = writeln!(out, "# TYPE sprawl_cluster_members gauge");
    for (state, n) in by_state {
        let _ = writeln!(
            out,
            "sprawl_cluster_members{{node=\"{node}\",state=\"{state}\"}} {n}"
        );
    }
}
