//! Replication fixtures: the golden samples of CreateTopic / DescribeTopic v2 (replication
//! settings), Produce v1 (which may answer NOT_ENOUGH_REPLICAS) and AlterInSync (api 17), and
//! the AlterInSync proptest strategies. Kept apart from `samples.rs` and `strategies.rs` so each
//! file stays one responsibility.

use net::codec::{ApiKey, ErrorCode, Frame, Request, Response, TopicConfig, TopicDescription};
use proptest::collection::vec;
use proptest::prelude::*;

use super::samples::{produce_request, PARTITION, TIERED_CONFIG, TIERED_PARTITION};
use super::strategies::{error_code, text};

/// [`TIERED_CONFIG`] replicated three times, acks = all needing two in-sync replicas
/// (CreateTopic / DescribeTopic v2 only).
pub const REPLICATED_CONFIG: TopicConfig = TopicConfig {
    replication_factor: Some(3),
    min_insync: Some(2),
    ..TIERED_CONFIG
};

/// The in-sync set of `req_alter_in_sync` / `resp_alter_in_sync`: node 2 dropped out of
/// `[1, 2, 3]`.
pub const IN_SYNC: [u32; 2] = [1, 3];

/// Leader 1 of "orders"/2 in epoch 5, having seen in-sync set version 7, asks to shrink the set
/// to [`IN_SYNC`].
pub fn alter_in_sync_request() -> Request<'static> {
    Request::AlterInSync {
        topic: "orders",
        partition: 2,
        leader: 1,
        leader_epoch: 5,
        isr_version: 7,
        in_sync: IN_SYNC.to_vec(),
        successor: 0,
    }
}

/// The golden vectors added with replication.
pub fn samples() -> Vec<(&'static str, Frame<'static>)> {
    let ok = ErrorCode::None;
    vec![
        (
            "req_create_topic_v2",
            Frame::request_at(
                4,
                2,
                Request::CreateTopic {
                    name: "orders",
                    config: REPLICATED_CONFIG,
                },
            ),
        ),
        (
            "resp_describe_topic_v2",
            Frame::response_at(
                6,
                2,
                Response::DescribeTopic {
                    error: ok,
                    message: "",
                    topic: Some(TopicDescription {
                        name: "orders",
                        topic_id: 0xa3,
                        // The config of `resp_describe_topic_v1`, replicated three times with
                        // the server's default min_insync (reported as absent).
                        config: TopicConfig {
                            local_retention_bytes: None,
                            min_insync: None,
                            ..REPLICATED_CONFIG
                        },
                        partitions: vec![PARTITION, TIERED_PARTITION],
                    }),
                },
            ),
        ),
        ("req_produce_v1", Frame::request_at(8, 1, produce_request())),
        (
            "resp_produce_not_enough_replicas_v1",
            Frame::response_at(
                8,
                1,
                Response::Produce {
                    error: ErrorCode::NotEnoughReplicas,
                    message: "orders/2 has 1 in-sync replica, min-insync is 2; nothing was written",
                    topic_id: 0,
                    partition: 0,
                    base_offset: 0,
                    record_count: 0,
                    duplicate: false,
                    durable: false,
                },
            ),
        ),
        (
            "req_alter_in_sync",
            Frame::request_at(20, 0, alter_in_sync_request()),
        ),
        (
            "req_alter_in_sync_hand_over_v1",
            Frame::request_at(21, 1, hand_over_request()),
        ),
        (
            "resp_alter_in_sync",
            Frame::response_at(
                20,
                0,
                Response::AlterInSync {
                    error: ok,
                    message: "",
                    isr_version: 8,
                    in_sync: IN_SYNC.to_vec(),
                },
            ),
        ),
    ]
}

fn nodes() -> impl Strategy<Value = Vec<u32>> {
    vec(any::<u32>(), 0..6)
}

/// Any AlterInSync request with a short in-sync list, with its version: v0 without a
/// successor, v1 with any.
pub fn alter_in_sync_request_strategy() -> impl Strategy<Value = (u16, Request<'static>)> {
    (
        text(),
        any::<(u32, u32, u32, u32)>(),
        nodes(),
        0..=ApiKey::ALTER_IN_SYNC_SUCCESSOR_VERSION,
        any::<u32>(),
    )
        .prop_map(
            |(
                topic,
                (partition, leader, leader_epoch, isr_version),
                in_sync,
                version,
                successor,
            )| {
                let successor = if version >= ApiKey::ALTER_IN_SYNC_SUCCESSOR_VERSION {
                    successor
                } else {
                    0
                };
                (
                    version,
                    Request::AlterInSync {
                        topic,
                        partition,
                        leader,
                        leader_epoch,
                        isr_version,
                        in_sync,
                        successor,
                    },
                )
            },
        )
}

/// Leader 1 of "orders"/2 in epoch 5 asks to hand its leadership to node 3 (an empty in-sync
/// set with a successor, AlterInSync v1).
pub fn hand_over_request() -> Request<'static> {
    Request::AlterInSync {
        topic: "orders",
        partition: 2,
        leader: 1,
        leader_epoch: 5,
        isr_version: 7,
        in_sync: Vec::new(),
        successor: 3,
    }
}

/// Any AlterInSync answer with a short in-sync list and an arbitrary error code and message.
pub fn alter_in_sync_response() -> impl Strategy<Value = Response<'static>> {
    ((error_code(), text()), any::<u32>(), nodes()).prop_map(
        |((error, message), isr_version, in_sync)| Response::AlterInSync {
            error,
            message,
            isr_version,
            in_sync,
        },
    )
}
