//! `ClusterClient` consumer-group routing against fake multi-connection nodes: group calls and
//! offsets go to the coordinator FindCoordinator names (cached per group); NOT_COORDINATOR and
//! a dead coordinator lead to rediscovery and a retry; an answer without an address resolves
//! through the metadata; REBALANCE_IN_PROGRESS / UNKNOWN_MEMBER are returned, not retried; a
//! new member's join is not resent after a lost answer; against servers without
//! FindCoordinator the offsets go to the partition's leader.

mod common;
#[path = "common/fake_cluster.rs"]
#[allow(dead_code)] // Shared with cluster_client.rs, which uses the rest.
mod fake_cluster;

use std::sync::{Arc, Mutex};

use common::fake_server::{bytes_of, client_config};
use fake_cluster::{
    acks_as, count, leaders, listen, metadata_reply, node, routing, Answer, FakeNode, Listener, Log,
};
use net::client::{ClientError, ClusterClient};
use net::codec::{ApiKey, ErrorCode, Frame, FrameHeader, Request, Response};

/// What every node answers to FindCoordinator: `(node id, address)`; the empty address makes
/// the client resolve the node through the metadata.
type Coordinator = Arc<Mutex<(u32, String)>>;
/// The brokers every node's Metadata reply lists.
type Brokers = Arc<Mutex<Vec<(u32, String)>>>;

/// A node of a three-node cluster whose partition 0 is led by node 1. It answers
/// FindCoordinator from `coordinator`; group calls and offsets succeed when it is the
/// coordinator (heartbeats of generation 9 answer REBALANCE_IN_PROGRESS, member "gone" is
/// UNKNOWN_MEMBER) and are answered NOT_COORDINATOR otherwise.
fn group_node(
    name: &'static str,
    node_id: u32,
    brokers: Brokers,
    coordinator: Coordinator,
    log: Log,
) -> impl FnMut(FrameHeader, &Request<'_>) -> Answer + Send + 'static {
    move |header, request| {
        log.lock().unwrap().push((name, request.api_key(), None));
        let (cid, version) = (header.correlation_id, header.api_version);
        let ok = ErrorCode::None;
        let (coordinator_id, coordinator_addr) = coordinator.lock().unwrap().clone();
        let in_charge = coordinator_id == node_id;
        let not_coordinator = "this node does not coordinate the group";
        let response = match request {
            Request::Metadata { .. } => {
                let listed = brokers.lock().unwrap().clone();
                let brokers: Vec<(u32, &str)> =
                    listed.iter().map(|(id, a)| (*id, a.as_str())).collect();
                let reply = metadata_reply(header, node_id, &brokers, &[Some((1, 1))]);
                return Answer::Frames(vec![reply]);
            }
            Request::FindCoordinator { .. } => {
                return Answer::Frames(vec![bytes_of(&Frame::response_at(
                    cid,
                    version,
                    Response::FindCoordinator {
                        error: ok,
                        message: "",
                        node_id: coordinator_id,
                        addr: &coordinator_addr,
                    },
                ))]);
            }
            _ if !in_charge => {
                return Answer::Frames(vec![bytes_of(&Frame::error(
                    header,
                    ErrorCode::NotCoordinator,
                    not_coordinator,
                    0,
                ))]);
            }
            Request::JoinGroup {
                member_id: "gone", ..
            } => Response::JoinGroup {
                error: ErrorCode::UnknownMember,
                message: "gone is not a member of billing",
                member_id: "",
                generation: 0,
            },
            Request::Heartbeat {
                member_id: "gone", ..
            } => Response::Heartbeat {
                error: ErrorCode::UnknownMember,
                message: "gone is not a member of billing",
            },
            Request::JoinGroup { .. } => Response::JoinGroup {
                error: ok,
                message: "",
                member_id: "billing-1",
                generation: node_id,
            },
            Request::SyncGroup { generation, .. } => Response::SyncGroup {
                error: ok,
                message: "",
                generation: *generation,
                assigned: common::groups::assigned(),
            },
            Request::Heartbeat { generation: 9, .. } => Response::Heartbeat {
                error: ErrorCode::RebalanceInProgress,
                message: "call SyncGroup",
            },
            Request::Heartbeat { .. } => Response::Heartbeat {
                error: ok,
                message: "",
            },
            Request::LeaveGroup { .. } => Response::LeaveGroup {
                error: ok,
                message: "",
            },
            Request::OffsetCommit { .. } => Response::OffsetCommit {
                error: ok,
                message: "",
            },
            Request::OffsetFetch { .. } => Response::OffsetFetch {
                error: ok,
                message: "",
                offset: Some(u64::from(node_id) * 100),
            },
            other => panic!("{name}: unexpected request {other:?}"),
        };
        Answer::Frames(vec![bytes_of(&Frame::response_at(cid, version, response))])
    }
}

struct Cluster {
    nodes: Vec<Option<FakeNode>>,
    addrs: Vec<String>,
    coordinator: Coordinator,
    log: Log,
}

impl Cluster {
    /// Nodes 1 to 3 ("a", "b", "c"), group coordinated by `coordinator_id`.
    fn start(coordinator_id: u32) -> Cluster {
        let listeners: Vec<Listener> = (0..3).map(|_| listen()).collect();
        let addrs: Vec<String> = listeners.iter().map(|l| l.addr.clone()).collect();
        let brokers: Brokers = Arc::new(Mutex::new((1..).zip(addrs.iter().cloned()).collect()));
        let coordinator = Arc::new(Mutex::new((
            coordinator_id,
            addrs[coordinator_id as usize - 1].clone(),
        )));
        let log = Log::default();
        let nodes = listeners
            .into_iter()
            .zip([("a", 1), ("b", 2), ("c", 3)])
            .map(|(listener, (name, id))| {
                let handler =
                    group_node(name, id, brokers.clone(), coordinator.clone(), log.clone());
                Some(FakeNode::start(listener, handler))
            })
            .collect();
        Cluster {
            nodes,
            addrs,
            coordinator,
            log,
        }
    }

    fn client(&self) -> ClusterClient {
        ClusterClient::connect_with(&[&self.addrs[0]], client_config(), routing()).expect("connect")
    }

    fn move_coordinator(&self, node_id: u32, with_addr: bool) {
        let addr = if with_addr {
            self.addrs[node_id as usize - 1].clone()
        } else {
            String::new()
        };
        *self.coordinator.lock().unwrap() = (node_id, addr);
    }
}

#[test]
fn group_calls_follow_the_coordinator_across_not_coordinator() {
    let cluster = Cluster::start(2);
    let log = &cluster.log;
    let mut client = cluster.client();

    let (member, generation) = client
        .join_group("billing", "", &["orders"], "range", 10_000)
        .unwrap();
    assert_eq!((member.as_str(), generation), ("billing-1", 2));
    assert_eq!(
        client.coordinator_of("billing"),
        Some((2, cluster.addrs[1].as_str()))
    );
    let (generation, assigned) = client.sync_group("billing", &member, 2, &[]).unwrap();
    assert_eq!((generation, assigned.len()), (2, 2));
    client.commit_offset("billing", "orders", 0, 7).unwrap();
    assert_eq!(
        client.fetch_offset("billing", "orders", 0).unwrap(),
        Some(200)
    );
    assert_eq!(count(log, "a", ApiKey::FindCoordinator), 1, "asked once");
    assert_eq!(count(log, "b", ApiKey::OffsetCommit), 1);
    assert_eq!(count(log, "a", ApiKey::OffsetCommit), 0, "not the leader");

    // The coordinator moves to node 3: node 2 refuses, the client asks again and follows.
    cluster.move_coordinator(3, true);
    client.heartbeat("billing", &member, 2).unwrap();
    assert_eq!(count(log, "b", ApiKey::Heartbeat), 1);
    assert_eq!(count(log, "c", ApiKey::Heartbeat), 1);
    assert_eq!(count(log, "a", ApiKey::FindCoordinator), 2);
    assert_eq!(
        client.coordinator_of("billing"),
        Some((3, cluster.addrs[2].as_str()))
    );
    client
        .commit_offset_member("billing", "orders", 0, 8, &member, 3)
        .unwrap();
    client.leave_group("billing", &member).unwrap();
    assert_eq!(count(log, "c", ApiKey::OffsetCommit), 1);
    assert_eq!(count(log, "c", ApiKey::LeaveGroup), 1);

    // The coordinator's Client is handed out for calls the cluster client does not route.
    let coordinator = client.coordinator_client("billing").unwrap();
    assert_eq!(coordinator.addr(), cluster.addrs[2]);
    assert_eq!(
        coordinator.fetch_offset("billing", "orders", 0).unwrap(),
        Some(300)
    );
}

#[test]
fn member_errors_are_returned_not_retried() {
    let cluster = Cluster::start(2);
    let log = &cluster.log;
    let mut client = cluster.client();
    let err = client.heartbeat("billing", "billing-1", 9).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RebalanceInProgress), "{err}");
    let err = client.heartbeat("billing", "gone", 2).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownMember), "{err}");
    let err = client
        .join_group("billing", "gone", &["orders"], "range", 1)
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownMember), "{err}");
    assert_eq!(count(log, "b", ApiKey::Heartbeat), 2, "each sent once");
    assert_eq!(count(log, "b", ApiKey::JoinGroup), 1);
    assert_eq!(count(log, "a", ApiKey::FindCoordinator), 1, "cache kept");
}

#[test]
fn a_dead_coordinator_is_forgotten_and_rediscovered() {
    let mut cluster = Cluster::start(2);
    let mut client = cluster.client();
    client.heartbeat("billing", "billing-1", 2).unwrap();
    // Node 2 dies; node 3 takes over the group.
    cluster.nodes[1] = None;
    cluster.move_coordinator(3, true);
    // A new member's join is not resent once its outcome is unknown (the answer was lost)...
    let err = client
        .join_group("billing", "", &["orders"], "range", 1)
        .unwrap_err();
    assert!(err.is_retriable(), "a connection failure: {err:?}");
    assert_eq!(count(&cluster.log, "c", ApiKey::JoinGroup), 0);
    // ...but the next call finds node 2 unreachable before sending, forgets it and follows.
    client.heartbeat("billing", "billing-1", 3).unwrap();
    assert_eq!(count(&cluster.log, "c", ApiKey::Heartbeat), 1);
    let (member, _) = client
        .join_group("billing", "billing-1", &["orders"], "range", 1)
        .unwrap();
    assert_eq!(member, "billing-1");
    assert_eq!(
        client.coordinator_of("billing"),
        Some((3, cluster.addrs[2].as_str()))
    );
}

#[test]
fn an_answer_without_an_address_resolves_through_the_metadata() {
    let cluster = Cluster::start(2);
    cluster.move_coordinator(3, false);
    let mut client = cluster.client();
    client.heartbeat("billing", "billing-1", 2).unwrap();
    assert_eq!(
        client.coordinator_of("billing"),
        Some((3, cluster.addrs[2].as_str()))
    );
    assert_eq!(count(&cluster.log, "c", ApiKey::Heartbeat), 1);

    // Node 0 without an address: no coordinator right now, retried, then a typed error.
    cluster.move_coordinator(0, false);
    client.forget_coordinator("billing");
    let err = client.heartbeat("billing", "billing-1", 2).unwrap_err();
    assert!(
        matches!(&err, ClientError::NoCoordinator { group, node_id: 0 } if group == "billing"),
        "{err:?}"
    );
    assert!(err.is_retriable());
    assert_eq!(
        count(&cluster.log, "a", ApiKey::FindCoordinator),
        2 + routing().retries as usize,
        "asked again on every retry"
    );
}

/// FindCoordinator names node 4 without an address, and the client's routing table does not
/// list node 4 yet: the table is reloaded and the call goes to node 4.
#[test]
fn a_coordinator_missing_from_the_routing_table_reloads_it() {
    let (la, ld) = (listen(), listen());
    let a_only = vec![(1, la.addr.clone())];
    let brokers: Brokers = Arc::new(Mutex::new(a_only));
    let coordinator: Coordinator = Arc::new(Mutex::new((4, String::new())));
    let log = Log::default();
    let d_addr = ld.addr.clone();
    let start = |listener, name, id| {
        let handler = group_node(
            name,
            id,
            Arc::clone(&brokers),
            Arc::clone(&coordinator),
            log.clone(),
        );
        FakeNode::start(listener, handler)
    };
    let a = start(la, "a", 1);
    let _d = start(ld, "d", 4);
    let mut client =
        ClusterClient::connect_with(&[&a.addr], client_config(), routing()).expect("connect");
    assert!(!client.metadata().brokers().contains_key(&4));
    // Node 4 joins the cluster after the client loaded its table.
    brokers.lock().unwrap().push((4, d_addr.clone()));
    client.heartbeat("billing", "billing-1", 4).unwrap();
    assert_eq!(client.coordinator_of("billing"), Some((4, d_addr.as_str())));
    assert_eq!(count(&log, "d", ApiKey::Heartbeat), 1);
    assert_eq!(count(&log, "a", ApiKey::FindCoordinator), 2);
    assert_eq!(
        count(&log, "a", ApiKey::Metadata),
        2,
        "bootstrap and one reload"
    );
}

#[test]
fn offsets_go_to_the_leader_when_servers_lack_find_coordinator() {
    let (la, lb) = (listen(), listen());
    let brokers = vec![(1, la.addr.clone()), (2, lb.addr.clone())];
    let placement = leaders(&[Some((1, 1)), Some((2, 1))]);
    let log = Log::default();
    let start = |listener, name, id| {
        let handler = node(
            name,
            id,
            brokers.clone(),
            placement.clone(),
            log.clone(),
            acks_as(id),
        );
        FakeNode::start_without_apis(listener, vec![ApiKey::FindCoordinator], handler)
    };
    let a = start(la, "a", 1);
    let _b = start(lb, "b", 2);
    let mut client =
        ClusterClient::connect_with(&[&a.addr], client_config(), routing()).expect("connect");
    client.commit_offset("g", "orders", 1, 3).unwrap();
    assert_eq!(client.fetch_offset("g", "orders", 1).unwrap(), Some(200));
    assert_eq!(count(&log, "b", ApiKey::OffsetCommit), 1);
    assert_eq!(count(&log, "b", ApiKey::OffsetFetch), 1);
    // Group calls have no such fallback.
    let err = client.heartbeat("g", "m", 1).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::ApiUnsupported {
                api: ApiKey::FindCoordinator,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(count(&log, "a", ApiKey::FindCoordinator), 0, "never sent");
}
