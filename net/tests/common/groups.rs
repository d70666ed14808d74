//! Consumer-group fixtures: the golden samples of FindCoordinator (18), JoinGroup (19),
//! SyncGroup (20), Heartbeat (21), LeaveGroup (22) and OffsetCommit v1, and their proptest
//! strategies. Kept apart from `samples.rs` and `strategies.rs` so each file stays one
//! responsibility.

use net::codec::{ApiKey, ErrorCode, Frame, GroupTopic, Request, Response};
use proptest::collection::vec;
use proptest::prelude::*;

use super::strategies::{error_code, text, version_of};

/// The member id the coordinator gave the member of every group sample.
pub const MEMBER: &str = "billing-1";
/// The generation of every group sample.
pub const GENERATION: u32 = 3;

/// `billing-1` owns orders/0 and orders/2 in generation 3 (`req_sync_group`).
pub fn owned() -> Vec<GroupTopic<'static>> {
    vec![GroupTopic {
        topic: "orders",
        partitions: vec![0, 2],
    }]
}

/// The assignment of `resp_sync_group`: orders/0, orders/1 and payments/4.
pub fn assigned() -> Vec<GroupTopic<'static>> {
    vec![
        GroupTopic {
            topic: "orders",
            partitions: vec![0, 1],
        },
        GroupTopic {
            topic: "payments",
            partitions: vec![4],
        },
    ]
}

/// The golden vectors added with consumer groups.
pub fn samples() -> Vec<(&'static str, Frame<'static>)> {
    let req = |cid, request| Frame::request_at(cid, 0, request);
    let resp = |cid, response| Frame::response_at(cid, 0, response);
    let ok = ErrorCode::None;
    vec![
        (
            "req_find_coordinator",
            req(21, Request::FindCoordinator { group: "billing" }),
        ),
        (
            "resp_find_coordinator",
            resp(
                21,
                Response::FindCoordinator {
                    error: ok,
                    message: "",
                    node_id: 2,
                    addr: "10.0.0.2:7070",
                },
            ),
        ),
        (
            "req_join_group",
            req(
                22,
                Request::JoinGroup {
                    group: "billing",
                    member_id: "",
                    topics: vec!["orders", "payments"],
                    assignor: "range",
                    session_timeout_ms: 10_000,
                },
            ),
        ),
        (
            "resp_join_group",
            resp(
                22,
                Response::JoinGroup {
                    error: ok,
                    message: "",
                    member_id: MEMBER,
                    generation: GENERATION,
                },
            ),
        ),
        (
            "req_sync_group",
            req(
                23,
                Request::SyncGroup {
                    group: "billing",
                    member_id: MEMBER,
                    generation: GENERATION,
                    owned: owned(),
                },
            ),
        ),
        (
            "resp_sync_group",
            resp(
                23,
                Response::SyncGroup {
                    error: ok,
                    message: "",
                    generation: GENERATION,
                    assigned: assigned(),
                },
            ),
        ),
        (
            "req_heartbeat",
            req(
                24,
                Request::Heartbeat {
                    group: "billing",
                    member_id: MEMBER,
                    generation: GENERATION,
                },
            ),
        ),
        (
            "resp_heartbeat_rebalance",
            resp(
                24,
                Response::Heartbeat {
                    error: ErrorCode::RebalanceInProgress,
                    message: "billing is rebalancing; call SyncGroup",
                },
            ),
        ),
        (
            "req_leave_group",
            req(
                25,
                Request::LeaveGroup {
                    group: "billing",
                    member_id: MEMBER,
                },
            ),
        ),
        (
            "resp_leave_group",
            resp(
                25,
                Response::LeaveGroup {
                    error: ok,
                    message: "",
                },
            ),
        ),
        (
            "req_offset_commit_v1",
            Frame::request_at(14, 1, offset_commit_v1()),
        ),
        (
            "resp_offset_commit_illegal_generation_v1",
            Frame::response_at(
                14,
                1,
                Response::OffsetCommit {
                    error: ErrorCode::IllegalGeneration,
                    message: "billing is at generation 4, not 3",
                },
            ),
        ),
    ]
}

/// `req_offset_commit` (billing commits orders/2 at 43) as member `billing-1` of generation 3.
pub fn offset_commit_v1() -> Request<'static> {
    Request::OffsetCommit {
        consumer: "billing",
        topic: "orders",
        partition: 2,
        offset: 43,
        member_id: MEMBER,
        generation: GENERATION,
    }
}

fn group_topics() -> impl Strategy<Value = Vec<GroupTopic<'static>>> {
    vec((text(), vec(any::<u32>(), 0..5)), 0..4).prop_map(|topics| {
        topics
            .into_iter()
            .map(|(topic, partitions)| GroupTopic { topic, partitions })
            .collect()
    })
}

/// Any request of the five group apis (all at version 0), with short lists.
pub fn group_request() -> impl Strategy<Value = Request<'static>> {
    prop_oneof![
        text().prop_map(|group| Request::FindCoordinator { group }),
        (text(), text(), vec(text(), 0..4), text(), any::<u32>()).prop_map(
            |(group, member_id, topics, assignor, session_timeout_ms)| Request::JoinGroup {
                group,
                member_id,
                topics,
                assignor,
                session_timeout_ms,
            }
        ),
        (text(), text(), any::<u32>(), group_topics()).prop_map(
            |(group, member_id, generation, owned)| Request::SyncGroup {
                group,
                member_id,
                generation,
                owned,
            }
        ),
        (text(), text(), any::<u32>()).prop_map(|(group, member_id, generation)| {
            Request::Heartbeat {
                group,
                member_id,
                generation,
            }
        }),
        (text(), text()).prop_map(|(group, member_id)| Request::LeaveGroup { group, member_id }),
    ]
}

/// Any answer of the five group apis, with an arbitrary error code and message.
pub fn group_response() -> impl Strategy<Value = Response<'static>> {
    let head = || (error_code(), text());
    prop_oneof![
        (head(), any::<u32>(), text()).prop_map(|((error, message), node_id, addr)| {
            Response::FindCoordinator {
                error,
                message,
                node_id,
                addr,
            }
        }),
        (head(), text(), any::<u32>()).prop_map(|((error, message), member_id, generation)| {
            Response::JoinGroup {
                error,
                message,
                member_id,
                generation,
            }
        }),
        (head(), any::<u32>(), group_topics()).prop_map(
            |((error, message), generation, assigned)| Response::SyncGroup {
                error,
                message,
                generation,
                assigned,
            }
        ),
        head().prop_map(|(error, message)| Response::Heartbeat { error, message }),
        head().prop_map(|(error, message)| Response::LeaveGroup { error, message }),
    ]
}

/// An OffsetCommit request at any version it implements: without membership at v0 (`""`, 0),
/// with any member id and generation from v1 on.
pub fn offset_commit_request() -> impl Strategy<Value = (u16, Request<'static>)> {
    version_of(ApiKey::OffsetCommit).prop_flat_map(|version| {
        let membership = if version >= ApiKey::OFFSET_COMMIT_MEMBER_VERSION {
            (text(), any::<u32>()).boxed()
        } else {
            Just(("", 0)).boxed()
        };
        (text(), text(), any::<u32>(), any::<u64>(), membership).prop_map(
            move |(consumer, topic, partition, offset, (member_id, generation))| {
                (
                    version,
                    Request::OffsetCommit {
                        consumer,
                        topic,
                        partition,
                        offset,
                        member_id,
                        generation,
                    },
                )
            },
        )
    })
}
