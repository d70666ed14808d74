//! proptest strategies producing `'static` borrowed codec types.
//!
//! The codec's types borrow their strings and payloads; strategies generate owned data and leak
//! it (`Box::leak`) to get `'static` views. Each property runs a bounded number of cases, so the
//! leaked memory stays small for the life of the test process.

use net::codec::{
    Acks, ApiKey, ApiVersionRange, Broker, ErrorCode, FetchedRecordView, PartitionInfo,
    PartitionMetadata, PartitionPlacement, ProducerIdent, RecordView, RemoteTierInfo, Request,
    Response, TopicConfig, TopicDescription, TopicMetadata, TopicSummary,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_bytes(b: Vec<u8>) -> &'static [u8] {
    Box::leak(b.into_boxed_slice())
}

pub fn text() -> impl Strategy<Value = &'static str> {
    // Any Unicode, including multi-byte characters, to exercise the UTF-8 length in bytes.
    ".{0,12}".prop_map(leak_str)
}

pub fn blob() -> impl Strategy<Value = &'static [u8]> {
    vec(any::<u8>(), 0..24).prop_map(leak_bytes)
}

/// A blob that is empty one time in four (a MetaFetch reply with nothing newer), otherwise up
/// to a few hundred bytes.
pub fn state_blob() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![
        1 => Just(&[][..]),
        3 => vec(any::<u8>(), 1..300).prop_map(leak_bytes),
    ]
}

pub fn error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL)
}

fn acks() -> impl Strategy<Value = Acks> {
    prop_oneof![Just(Acks::None), Just(Acks::Leader), Just(Acks::All)]
}

fn headers() -> impl Strategy<Value = Vec<(&'static [u8], &'static [u8])>> {
    vec((blob(), blob()), 0..3)
}

/// Any version `api` implements.
pub fn version_of(api: ApiKey) -> impl Strategy<Value = u16> {
    let (min, max) = api.supported_versions();
    min..=max
}

/// `Some` with probability 1/2 when `allowed`, always `None` otherwise.
fn opt_u64_if(allowed: bool) -> BoxedStrategy<Option<u64>> {
    if allowed {
        option::of(any::<u64>()).boxed()
    } else {
        Just(None).boxed()
    }
}

/// `Some` with probability 1/2 when `allowed`, always `None` otherwise.
fn opt_u16_if(allowed: bool) -> BoxedStrategy<Option<u16>> {
    if allowed {
        option::of(any::<u16>()).boxed()
    } else {
        Just(None).boxed()
    }
}

/// A config a CreateTopic / DescribeTopic frame of `version` can carry: the tiering settings
/// only from [`TopicConfig::TIERING_VERSION`] on, the replication settings only from
/// [`TopicConfig::REPLICATION_VERSION`] on.
pub fn topic_config(version: u16) -> impl Strategy<Value = TopicConfig> {
    let tiering = version >= TopicConfig::TIERING_VERSION;
    let replication = version >= TopicConfig::REPLICATION_VERSION;
    (
        any::<u32>(),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        any::<bool>(),
        option::of(any::<u64>()),
        (opt_u64_if(tiering), opt_u64_if(tiering)),
        (opt_u16_if(replication), opt_u16_if(replication)),
    )
        .prop_map(
            |(
                partitions,
                rm,
                rb,
                sb,
                compacted,
                ttl,
                (tier_after_ms, local_retention_bytes),
                (replication_factor, min_insync),
            )| {
                TopicConfig {
                    partitions,
                    retention_ms: rm,
                    retention_bytes: rb,
                    segment_bytes: sb,
                    compacted,
                    default_ttl_ms: ttl,
                    tier_after_ms,
                    local_retention_bytes,
                    replication_factor,
                    min_insync,
                }
            },
        )
}

fn record() -> impl Strategy<Value = RecordView<'static>> {
    (
        option::of(blob()),
        blob(),
        headers(),
        any::<i64>(),
        any::<u32>(),
    )
        .prop_map(|(key, value, headers, timestamp_ms, ttl_ms)| RecordView {
            key,
            value,
            headers,
            timestamp_ms,
            ttl_ms,
        })
}

fn fetched() -> impl Strategy<Value = FetchedRecordView<'static>> {
    (
        any::<u64>(),
        any::<i64>(),
        option::of(blob()),
        blob(),
        headers(),
    )
        .prop_map(
            |(offset, timestamp_ms, key, value, headers)| FetchedRecordView {
                offset,
                timestamp_ms,
                key,
                value,
                headers,
            },
        )
}

fn producer() -> impl Strategy<Value = ProducerIdent> {
    (any::<u64>(), any::<u16>(), any::<u32>()).prop_map(|(producer_id, epoch, base_sequence)| {
        ProducerIdent {
            producer_id,
            epoch,
            base_sequence,
        }
    })
}

/// Every request kind at every version its api implements, as `(api_version, request)`; the
/// body only sets fields that version carries.
pub fn request() -> impl Strategy<Value = (u16, Request<'static>)> {
    prop_oneof![
        1 => version_of(ApiKey::CreateTopic).prop_flat_map(|version| {
            (text(), topic_config(version))
                .prop_map(move |(name, config)| (version, Request::CreateTopic { name, config }))
        }),
        1 => (version_of(ApiKey::DescribeTopic), text())
            .prop_map(|(version, name)| (version, Request::DescribeTopic { name })),
        // The Metadata request has one layout at every version.
        1 => (version_of(ApiKey::Metadata), option::of(vec(text(), 0..4)))
            .prop_map(|(version, topics)| (version, Request::Metadata { topics })),
        // Produce v0 and v1 share one layout.
        1 => (version_of(ApiKey::Produce), produce_request())
            .prop_map(|(version, request)| (version, request)),
        1 => super::replica_fetch::request_strategy().prop_map(|request| (0, request)),
        // AlterInSync at v0 (no successor) and v1 (any successor).
        1 => super::replication::alter_in_sync_request_strategy(),
        // OffsetCommit at v0 (no membership) and v1 (any member id and generation).
        1 => super::groups::offset_commit_request(),
        5 => super::groups::group_request().prop_map(|request| (0, request)),
        // The other ten kinds, so every kind stays about equally likely.
        10 => request_v0().prop_map(|request| (0, request)),
    ]
}

fn produce_request() -> impl Strategy<Value = Request<'static>> {
    (
        text(),
        any::<u32>(),
        acks(),
        option::of(producer()),
        vec(record(), 0..4),
    )
        .prop_map(
            |(topic, partition, acks, producer, records)| Request::Produce {
                topic,
                partition,
                acks,
                producer,
                records,
            },
        )
}

/// The requests whose api has only version 0.
fn request_v0() -> impl Strategy<Value = Request<'static>> {
    prop_oneof![
        text().prop_map(|client_name| Request::ApiVersions { client_name }),
        any::<u64>().prop_map(|since_version| Request::MetaFetch { since_version }),
        text().prop_map(|name| Request::DeleteTopic { name }),
        Just(Request::ListTopics),
        (
            text(),
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(topic, partition, offset, max_bytes, max_wait_ms)| {
                Request::Fetch {
                    topic,
                    partition,
                    offset,
                    max_bytes,
                    max_wait_ms,
                }
            }),
        (text(), any::<u32>(), any::<u64>(), any::<u32>()).prop_map(
            |(topic, partition, offset, credits)| Request::Subscribe {
                topic,
                partition,
                offset,
                credits,
            }
        ),
        (any::<u32>(), any::<u32>()).prop_map(|(subscription_id, credits)| Request::Credit {
            subscription_id,
            credits,
        }),
        any::<u32>().prop_map(|subscription_id| Request::Unsubscribe { subscription_id }),
        (text(), text(), any::<u32>()).prop_map(|(consumer, topic, partition)| {
            Request::OffsetFetch {
                consumer,
                topic,
                partition,
            }
        }),
        (any::<u32>(), any::<u32>(), blob()).prop_map(|(from_node, to_node, message)| {
            Request::Raft {
                from_node,
                to_node,
                message,
            }
        }),
    ]
}

fn remote_tier_info() -> impl Strategy<Value = RemoteTierInfo> {
    any::<(u64, u64, u64, u32, u64, u64)>().prop_map(
        |(
            local_start_offset,
            remote_start_offset,
            remote_end_offset,
            remote_segments,
            remote_data_bytes,
            remote_object_bytes,
        )| RemoteTierInfo {
            local_start_offset,
            remote_start_offset,
            remote_end_offset,
            remote_segments,
            remote_data_bytes,
            remote_object_bytes,
        },
    )
}

/// A partition a DescribeTopic reply of `version` can carry: `remote` only from v1 on.
fn partition_info(version: u16) -> impl Strategy<Value = PartitionInfo> {
    let remote = if version >= TopicConfig::TIERING_VERSION {
        option::of(remote_tier_info()).boxed()
    } else {
        Just(None).boxed()
    };
    (
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        remote,
    )
        .prop_map(
            |(
                partition,
                start_offset,
                end_offset,
                durable_offset,
                shard,
                bytes_on_disk,
                remote,
            )| {
                PartitionInfo {
                    partition,
                    start_offset,
                    end_offset,
                    durable_offset,
                    shard,
                    bytes_on_disk,
                    remote,
                }
            },
        )
}

/// A DescribeTopic reply whose body a frame of `version` can carry.
pub fn describe_topic_response(version: u16) -> impl Strategy<Value = Response<'static>> {
    (
        (error_code(), text()),
        option::of((
            text(),
            any::<u64>(),
            topic_config(version),
            vec(partition_info(version), 0..3),
        )),
    )
        .prop_map(|((error, message), topic)| Response::DescribeTopic {
            error,
            message,
            topic: topic.map(|(name, topic_id, config, partitions)| TopicDescription {
                name,
                topic_id,
                config,
                partitions,
            }),
        })
}

pub fn placement() -> impl Strategy<Value = PartitionPlacement> {
    (
        any::<u32>(),
        any::<u32>(),
        vec(any::<u32>(), 0..5),
        vec(any::<u32>(), 0..5),
    )
        .prop_map(
            |(leader, leader_epoch, replicas, in_sync)| PartitionPlacement {
                leader,
                leader_epoch,
                replicas,
                in_sync,
            },
        )
}

/// A topic a Metadata reply of `version` can carry: placements only from v1 on.
fn topic_metadata(version: u16) -> impl Strategy<Value = TopicMetadata<'static>> {
    let placement = if version >= PartitionPlacement::VERSION {
        option::of(placement()).boxed()
    } else {
        Just(None).boxed()
    };
    (
        text(),
        any::<u64>(),
        vec((any::<u32>(), any::<u32>(), placement), 0..4),
    )
        .prop_map(|(name, topic_id, parts)| TopicMetadata {
            name,
            topic_id,
            partitions: parts
                .into_iter()
                .map(|(partition, shard, placement)| PartitionMetadata {
                    partition,
                    shard,
                    placement,
                })
                .collect(),
        })
}

/// A Metadata reply whose body a frame of `version` can carry.
pub fn metadata_response(version: u16) -> impl Strategy<Value = Response<'static>> {
    (
        (error_code(), text()),
        any::<u32>(),
        any::<u32>(),
        vec((any::<u32>(), text()), 0..3),
        vec(topic_metadata(version), 0..3),
    )
        .prop_map(
            |((error, message), node_id, shards, brokers, topics)| Response::Metadata {
                error,
                message,
                node_id,
                shards,
                brokers: brokers
                    .into_iter()
                    .map(|(node_id, client_address)| Broker {
                        node_id,
                        client_address,
                    })
                    .collect(),
                topics,
            },
        )
}

/// Every response kind at every version its api implements, as `(api_version, response)`, each
/// with an arbitrary error code and message; the body only sets fields that version carries.
pub fn response() -> impl Strategy<Value = (u16, Response<'static>)> {
    prop_oneof![
        1 => version_of(ApiKey::DescribeTopic).prop_flat_map(|version| {
            describe_topic_response(version).prop_map(move |response| (version, response))
        }),
        1 => (version_of(ApiKey::CreateTopic), error_code(), text(), any::<u64>()).prop_map(
            |(version, error, message, topic_id)| (
                version,
                Response::CreateTopic {
                    error,
                    message,
                    topic_id,
                }
            )
        ),
        1 => version_of(ApiKey::Metadata).prop_flat_map(|version| {
            metadata_response(version).prop_map(move |response| (version, response))
        }),
        // Produce v0 and v1 share one layout; any code (NOT_ENOUGH_REPLICAS included) decodes
        // at either version.
        1 => (version_of(ApiKey::Produce), produce_response())
            .prop_map(|(version, response)| (version, response)),
        1 => super::replica_fetch::response_strategy().prop_map(|response| (0, response)),
        1 => super::replication::alter_in_sync_response().prop_map(|response| (0, response)),
        // OffsetCommit answers are the common head at v0 and v1.
        1 => (version_of(ApiKey::OffsetCommit), (error_code(), text())).prop_map(
            |(version, (error, message))| (version, Response::OffsetCommit { error, message })
        ),
        5 => super::groups::group_response().prop_map(|response| (0, response)),
        // The generic error body and the other eleven kinds.
        12 => response_v0().prop_map(|response| (0, response)),
    ]
}

fn produce_response() -> impl Strategy<Value = Response<'static>> {
    (
        (error_code(), text()),
        any::<(u64, u32, u64, u32, bool, bool)>(),
    )
        .prop_map(
            |(
                (error, message),
                (topic_id, partition, base_offset, record_count, duplicate, durable),
            )| {
                Response::Produce {
                    error,
                    message,
                    topic_id,
                    partition,
                    base_offset,
                    record_count,
                    duplicate,
                    durable,
                }
            },
        )
}

/// The responses whose api has only version 0, and the generic error body.
fn response_v0() -> impl Strategy<Value = Response<'static>> {
    let head = || (error_code(), text());
    prop_oneof![
        (head(), any::<u32>()).prop_map(|((error, message), retry_after_ms)| Response::Error {
            error,
            message,
            retry_after_ms,
        }),
        (
            head(),
            vec(any::<(u16, u16, u16)>(), 0..5),
            text(),
            any::<u32>()
        )
            .prop_map(|((error, message), v, server_version, frame_bytes_max)| {
                Response::ApiVersions {
                    error,
                    message,
                    versions: v
                        .into_iter()
                        .map(|(api_key, min_version, max_version)| ApiVersionRange {
                            api_key,
                            min_version,
                            max_version,
                        })
                        .collect(),
                    server_version,
                    frame_bytes_max,
                }
            }),
        (head(), any::<u64>(), any::<u64>(), state_blob()).prop_map(
            |((error, message), version, leader_id, state)| Response::MetaFetch {
                error,
                message,
                version,
                leader_id,
                state,
            }
        ),
        head().prop_map(|(error, message)| Response::DeleteTopic { error, message }),
        (head(), vec((text(), any::<u64>(), any::<u32>()), 0..4)).prop_map(
            |((error, message), topics)| Response::ListTopics {
                error,
                message,
                topics: topics
                    .into_iter()
                    .map(|(name, topic_id, partitions)| TopicSummary {
                        name,
                        topic_id,
                        partitions,
                    })
                    .collect(),
            }
        ),
        (head(), any::<u64>(), any::<u64>(), vec(fetched(), 0..4)).prop_map(
            |((error, message), high_offset, start_offset, records)| Response::Fetch {
                error,
                message,
                high_offset,
                start_offset,
                records,
            }
        ),
        (head(), any::<u32>()).prop_map(|((error, message), subscription_id)| {
            Response::Subscribe {
                error,
                message,
                subscription_id,
            }
        }),
        head().prop_map(|(error, message)| Response::Credit { error, message }),
        head().prop_map(|(error, message)| Response::Unsubscribe { error, message }),
        head().prop_map(|(error, message)| Response::Raft { error, message }),
        (head(), option::of(any::<u64>())).prop_map(|((error, message), offset)| {
            Response::OffsetFetch {
                error,
                message,
                offset,
            }
        }),
        (head(), any::<u32>(), any::<u64>(), vec(fetched(), 0..4)).prop_map(
            |((error, message), subscription_id, high_offset, records)| Response::Push {
                error,
                message,
                subscription_id,
                high_offset,
                records,
            }
        ),
    ]
}
