//! One fixed, named frame of every kind. These are the golden vectors (see tests/golden.rs) and
//! the seeds of the fuzz corpus; change them only together with docs/protocol.md.

use net::codec::{
    Acks, ApiVersionRange, Broker, ErrorCode, FetchedRecordView, Frame, FrameHeader, PartitionInfo,
    PartitionMetadata, PartitionPlacement, ProducerIdent, RecordView, RemoteTierInfo, Request,
    Response, TopicConfig, TopicDescription, TopicMetadata, TopicSummary,
};

pub const CONFIG: TopicConfig = TopicConfig {
    partitions: 3,
    retention_ms: Some(604_800_000),
    retention_bytes: None,
    segment_bytes: Some(67_108_864),
    compacted: false,
    default_ttl_ms: Some(60_000),
    tier_after_ms: None,
    local_retention_bytes: None,
    replication_factor: None,
    min_insync: None,
};

/// [`CONFIG`] with both tiered-storage settings (CreateTopic / DescribeTopic v1 only).
pub const TIERED_CONFIG: TopicConfig = TopicConfig {
    tier_after_ms: Some(3_600_000),
    local_retention_bytes: Some(1_073_741_824),
    ..CONFIG
};

/// The partition of the v0 `resp_describe_topic` sample.
pub const PARTITION: PartitionInfo = PartitionInfo {
    partition: 0,
    start_offset: 0,
    end_offset: 43,
    durable_offset: 42,
    shard: 1,
    bytes_on_disk: 4096,
    remote: None,
};

/// A tiered partition: offsets below 1000 only live in the object store.
pub const TIERED_PARTITION: PartitionInfo = PartitionInfo {
    partition: 1,
    start_offset: 0,
    end_offset: 1043,
    durable_offset: 1042,
    shard: 0,
    bytes_on_disk: 8192,
    remote: Some(RemoteTierInfo {
        local_start_offset: 1000,
        remote_start_offset: 0,
        remote_end_offset: 1000,
        remote_segments: 2,
        remote_data_bytes: 262_144,
        remote_object_bytes: 65_536,
    }),
};

/// The first 8 bytes of a metadata state snapshot (magic "SPMS", version 1, reserved): opaque
/// to the codec, which only carries the blob.
pub const META_STATE: &[u8] = b"SPMS\x01\x00\x00\x00";

/// The placement of partition 0 in the `resp_metadata_v1` sample: led by node 1 in epoch 3,
/// replicated on nodes 1, 2 and 3, of which 1 and 3 are in sync.
pub fn placement() -> PartitionPlacement {
    PartitionPlacement {
        leader: 1,
        leader_epoch: 3,
        replicas: vec![1, 2, 3],
        in_sync: vec![1, 3],
    }
}

/// A Metadata reply for topic "orders" with two partitions; partition 0 has `placement0`
/// (`None` for the v0 sample), partition 1 never has one.
fn metadata(placement0: Option<PartitionPlacement>) -> Response<'static> {
    Response::Metadata {
        error: ErrorCode::None,
        message: "",
        node_id: 1,
        shards: 2,
        brokers: vec![Broker {
            node_id: 1,
            client_address: "127.0.0.1:7070",
        }],
        topics: vec![TopicMetadata {
            name: "orders",
            topic_id: 0xa3,
            partitions: vec![
                PartitionMetadata {
                    partition: 0,
                    shard: 0,
                    placement: placement0,
                },
                PartitionMetadata {
                    partition: 1,
                    shard: 1,
                    placement: None,
                },
            ],
        }],
    }
}

/// The batch of `req_produce` (and `req_produce_v1`, the same body at version 1): two records
/// of an idempotent producer, acks = all.
pub fn produce_request() -> Request<'static> {
    Request::Produce {
        topic: "orders",
        partition: 2,
        acks: Acks::All,
        producer: Some(ProducerIdent {
            producer_id: 77,
            epoch: 1,
            base_sequence: 10,
        }),
        records: vec![
            RecordView {
                key: Some(b"user-7"),
                value: b"hello",
                headers: vec![(b"trace", b"abc")],
                timestamp_ms: 1_764_460_800_000,
                ttl_ms: 0,
            },
            RecordView {
                key: None,
                value: b"world",
                headers: vec![],
                timestamp_ms: -1,
                ttl_ms: 30_000,
            },
        ],
    }
}

fn fetched() -> Vec<FetchedRecordView<'static>> {
    vec![
        FetchedRecordView {
            offset: 41,
            timestamp_ms: 1_764_460_800_000,
            key: Some(b"user-7"),
            value: b"hello",
            headers: vec![(b"trace", b"abc")],
        },
        FetchedRecordView {
            offset: 42,
            timestamp_ms: 1_764_460_800_001,
            key: None,
            value: b"",
            headers: vec![],
        },
    ]
}

/// `(file stem, frame)` for every request, response, push and error body. Every api is sampled
/// at version 0 (those vectors never change); apis with a newer layout also get `<stem>_v<N>`.
pub fn all() -> Vec<(&'static str, Frame<'static>)> {
    let mut all = up_to_meta_fetch();
    all.extend(super::replica_fetch::samples());
    all.extend(super::replication::samples());
    all.extend(super::groups::samples());
    all
}

/// The samples of api keys 0 to 15 and the generic error bodies.
fn up_to_meta_fetch() -> Vec<(&'static str, Frame<'static>)> {
    let req = |cid, request| Frame::request_at(cid, 0, request);
    let resp = |cid, response| Frame::response_at(cid, 0, response);
    let ok = ErrorCode::None;
    vec![
        (
            "req_api_versions",
            req(
                1,
                Request::ApiVersions {
                    client_name: "sprawl-cli/0.1.0",
                },
            ),
        ),
        (
            "req_metadata_all",
            req(2, Request::Metadata { topics: None }),
        ),
        (
            "req_metadata_some",
            req(
                3,
                Request::Metadata {
                    topics: Some(vec!["orders", "ü"]),
                },
            ),
        ),
        (
            "req_create_topic",
            req(
                4,
                Request::CreateTopic {
                    name: "orders",
                    config: CONFIG,
                },
            ),
        ),
        (
            "req_create_topic_v1",
            Frame::request_at(
                4,
                1,
                Request::CreateTopic {
                    name: "orders",
                    config: TIERED_CONFIG,
                },
            ),
        ),
        (
            "req_delete_topic",
            req(5, Request::DeleteTopic { name: "orders" }),
        ),
        (
            "req_describe_topic",
            req(6, Request::DescribeTopic { name: "orders" }),
        ),
        ("req_list_topics", req(7, Request::ListTopics)),
        ("req_produce", req(8, produce_request())),
        (
            "req_produce_acks_none",
            req(
                9,
                Request::Produce {
                    topic: "t",
                    partition: 0,
                    acks: Acks::None,
                    producer: None,
                    records: vec![],
                },
            ),
        ),
        (
            "req_fetch",
            req(
                10,
                Request::Fetch {
                    topic: "orders",
                    partition: 1,
                    offset: 41,
                    max_bytes: 1_048_576,
                    max_wait_ms: 500,
                },
            ),
        ),
        (
            "req_subscribe",
            req(
                11,
                Request::Subscribe {
                    topic: "orders",
                    partition: 0,
                    offset: 0,
                    credits: 1000,
                },
            ),
        ),
        (
            "req_credit",
            req(
                12,
                Request::Credit {
                    subscription_id: 5,
                    credits: 500,
                },
            ),
        ),
        (
            "req_unsubscribe",
            req(13, Request::Unsubscribe { subscription_id: 5 }),
        ),
        (
            "req_offset_commit",
            req(
                14,
                Request::OffsetCommit {
                    consumer: "billing",
                    topic: "orders",
                    partition: 2,
                    offset: 43,
                    member_id: "",
                    generation: 0,
                },
            ),
        ),
        (
            "req_offset_fetch",
            req(
                15,
                Request::OffsetFetch {
                    consumer: "billing",
                    topic: "orders",
                    partition: 2,
                },
            ),
        ),
        (
            "req_raft",
            req(
                16,
                Request::Raft {
                    from_node: 1,
                    to_node: 3,
                    message: &[0x08, 0x03, 0x10, 0x01, 0x18, 0x03],
                },
            ),
        ),
        (
            "req_meta_fetch",
            req(17, Request::MetaFetch { since_version: 41 }),
        ),
        (
            "resp_api_versions",
            resp(
                1,
                Response::ApiVersions {
                    error: ok,
                    message: "",
                    versions: vec![
                        ApiVersionRange {
                            api_key: 0,
                            min_version: 0,
                            max_version: 0,
                        },
                        ApiVersionRange {
                            api_key: 6,
                            min_version: 0,
                            max_version: 0,
                        },
                    ],
                    server_version: "sprawl 0.1.0",
                    frame_bytes_max: 8_388_608,
                },
            ),
        ),
        ("resp_metadata", resp(2, metadata(None))),
        (
            "resp_metadata_v1",
            Frame::response_at(2, 1, metadata(Some(placement()))),
        ),
        (
            "resp_create_topic",
            resp(
                4,
                Response::CreateTopic {
                    error: ok,
                    message: "",
                    topic_id: 0xa3,
                },
            ),
        ),
        (
            "resp_create_topic_exists",
            resp(
                4,
                Response::CreateTopic {
                    error: ErrorCode::TopicExists,
                    message: "topic `orders` already exists",
                    topic_id: 0,
                },
            ),
        ),
        (
            "resp_delete_topic",
            resp(
                5,
                Response::DeleteTopic {
                    error: ok,
                    message: "",
                },
            ),
        ),
        (
            "resp_describe_topic",
            resp(
                6,
                Response::DescribeTopic {
                    error: ok,
                    message: "",
                    topic: Some(TopicDescription {
                        name: "orders",
                        topic_id: 0xa3,
                        config: CONFIG,
                        partitions: vec![PARTITION],
                    }),
                },
            ),
        ),
        (
            "resp_describe_topic_v1",
            Frame::response_at(
                6,
                1,
                Response::DescribeTopic {
                    error: ok,
                    message: "",
                    topic: Some(TopicDescription {
                        name: "orders",
                        topic_id: 0xa3,
                        config: TopicConfig {
                            local_retention_bytes: None,
                            ..TIERED_CONFIG
                        },
                        partitions: vec![PARTITION, TIERED_PARTITION],
                    }),
                },
            ),
        ),
        (
            "resp_describe_topic_unknown",
            resp(
                6,
                Response::DescribeTopic {
                    error: ErrorCode::UnknownTopic,
                    message: "no topic `nope`; list topics with `sprawl topic list`",
                    topic: None,
                },
            ),
        ),
        (
            "resp_list_topics",
            resp(
                7,
                Response::ListTopics {
                    error: ok,
                    message: "",
                    topics: vec![TopicSummary {
                        name: "orders",
                        topic_id: 0xa3,
                        partitions: 3,
                    }],
                },
            ),
        ),
        (
            "resp_produce",
            resp(
                8,
                Response::Produce {
                    error: ok,
                    message: "",
                    topic_id: 0xa3,
                    partition: 2,
                    base_offset: 1047,
                    record_count: 2,
                    duplicate: false,
                    durable: true,
                },
            ),
        ),
        (
            "resp_fetch",
            resp(
                10,
                Response::Fetch {
                    error: ok,
                    message: "",
                    high_offset: 43,
                    start_offset: 0,
                    records: fetched(),
                },
            ),
        ),
        (
            "resp_subscribe",
            resp(
                11,
                Response::Subscribe {
                    error: ok,
                    message: "",
                    subscription_id: 5,
                },
            ),
        ),
        (
            "resp_credit",
            resp(
                12,
                Response::Credit {
                    error: ok,
                    message: "",
                },
            ),
        ),
        (
            "resp_unsubscribe",
            resp(
                13,
                Response::Unsubscribe {
                    error: ok,
                    message: "",
                },
            ),
        ),
        (
            "resp_offset_commit",
            resp(
                14,
                Response::OffsetCommit {
                    error: ok,
                    message: "",
                },
            ),
        ),
        (
            "resp_offset_fetch",
            resp(
                15,
                Response::OffsetFetch {
                    error: ok,
                    message: "",
                    offset: Some(43),
                },
            ),
        ),
        (
            "resp_raft",
            resp(
                16,
                Response::Raft {
                    error: ok,
                    message: "",
                },
            ),
        ),
        (
            "resp_meta_fetch",
            resp(
                17,
                Response::MetaFetch {
                    error: ok,
                    message: "",
                    version: 42,
                    leader_id: 2,
                    state: META_STATE,
                },
            ),
        ),
        (
            "resp_offset_fetch_none",
            resp(
                15,
                Response::OffsetFetch {
                    error: ok,
                    message: "",
                    offset: None,
                },
            ),
        ),
        (
            "push",
            resp(
                5,
                Response::Push {
                    error: ok,
                    message: "",
                    subscription_id: 5,
                    high_offset: 43,
                    records: fetched(),
                },
            ),
        ),
        (
            "error_throttled",
            Frame::error(
                FrameHeader {
                    api_key: 6,
                    api_version: 0,
                    correlation_id: 8,
                    flags: 0,
                },
                ErrorCode::Throttled,
                "shard 1 is over its in-flight budget",
                250,
            ),
        ),
        (
            "error_unknown_api",
            Frame::error(
                FrameHeader {
                    api_key: 999,
                    api_version: 3,
                    correlation_id: 16,
                    flags: 0,
                },
                ErrorCode::UnknownApi,
                "unknown api key 999",
                0,
            ),
        ),
    ]
}
