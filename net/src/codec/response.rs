//! Response and push bodies (server -> client). Layouts are specified in docs/protocol.md.
//!
//! Every api-specific response starts with `error: u16` and `message: str`. The generic
//! [`Response::Error`] body (flag bit 1) can answer any request, including one whose api key or
//! version the server did not understand.

use super::fetched::{read_fetched, write_fetched};
use super::group::{read_response as read_group_response, write_group_topics};
use super::in_sync::{read_response as read_alter_in_sync, write_nodes};
use super::placement::{read_partitions, write_partitions};
use super::replica::{read_response as read_replica_fetch, write_payload as write_replica_payload};
use super::topic::{
    read_partition_infos, read_topic_config, write_partition_info, write_topic_config,
};
use super::types::{
    ApiKey, ApiVersionRange, BatchEpoch, Broker, DivergingEpoch, ErrorCode, FetchedRecordView,
    GroupTopic, TopicDescription, TopicMetadata, TopicSummary,
};
use super::wire::{FieldError, ReadResult, Reader, WriteResult, Writer};
use super::Malformed;

/// A decoded response or push, borrowing strings and payloads from the input buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// Generic error body, valid for any api key (header flag bit 1).
    Error {
        error: ErrorCode,
        message: &'a str,
        /// Meaningful with `THROTTLED`: wait at least this long before retrying; 0 otherwise.
        retry_after_ms: u32,
    },
    ApiVersions {
        error: ErrorCode,
        message: &'a str,
        versions: Vec<ApiVersionRange>,
        server_version: &'a str,
        /// Largest frame the server accepts after the handshake (value of the `length` field).
        frame_bytes_max: u32,
    },
    Metadata {
        error: ErrorCode,
        message: &'a str,
        node_id: u32,
        shards: u32,
        brokers: Vec<Broker<'a>>,
        topics: Vec<TopicMetadata<'a>>,
    },
    CreateTopic {
        error: ErrorCode,
        message: &'a str,
        topic_id: u64,
    },
    DeleteTopic {
        error: ErrorCode,
        message: &'a str,
    },
    /// The receiving controller took the Raft message (common head only).
    Raft {
        error: ErrorCode,
        message: &'a str,
    },
    DescribeTopic {
        error: ErrorCode,
        message: &'a str,
        /// Present when `error` is `NONE`.
        topic: Option<TopicDescription<'a>>,
    },
    ListTopics {
        error: ErrorCode,
        message: &'a str,
        topics: Vec<TopicSummary<'a>>,
    },
    Produce {
        error: ErrorCode,
        message: &'a str,
        topic_id: u64,
        partition: u32,
        base_offset: u64,
        record_count: u32,
        /// The batch had already been written (idempotent retry); offsets are the original ones.
        duplicate: bool,
        /// The batch is fdatasync'ed (always true for `acks = all`).
        durable: bool,
    },
    Fetch {
        error: ErrorCode,
        message: &'a str,
        /// Offset the next produced record will get (end offset).
        high_offset: u64,
        /// First offset still available.
        start_offset: u64,
        records: Vec<FetchedRecordView<'a>>,
    },
    Subscribe {
        error: ErrorCode,
        message: &'a str,
        subscription_id: u32,
    },
    Credit {
        error: ErrorCode,
        message: &'a str,
    },
    Unsubscribe {
        error: ErrorCode,
        message: &'a str,
    },
    OffsetCommit {
        error: ErrorCode,
        message: &'a str,
    },
    OffsetFetch {
        error: ErrorCode,
        message: &'a str,
        /// `None` when the consumer never committed for this partition.
        offset: Option<u64>,
    },
    /// A metadata controller's cluster metadata (api key 15).
    MetaFetch {
        error: ErrorCode,
        message: &'a str,
        /// The metadata version the answering controller holds.
        version: u64,
        /// The Raft leader the answering controller knows; 0 = none.
        leader_id: u64,
        /// The controller's encoded metadata state (docs/metadata-format.md, "State snapshot");
        /// empty when `version` is not newer than the request's `since_version`.
        state: &'a [u8],
    },
    /// A leader's answer to a follower's ReplicaFetch (api key 16).
    ReplicaFetch {
        error: ErrorCode,
        message: &'a str,
        /// The leader's epoch; a follower ignores answers from any other epoch.
        leader_epoch: u32,
        /// The request's `fetch_offset`, echoed.
        fetch_offset: u64,
        /// The request's `last_fetched_epoch`, echoed.
        last_fetched_epoch: Option<u32>,
        /// The leader's high watermark.
        high_watermark: u64,
        /// The first offset the leader still stores.
        log_start_offset: u64,
        /// Present: the follower's log diverges; it truncates and fetches again (then
        /// `batch_epochs` and `batches` are empty).
        diverging: Option<DivergingEpoch>,
        /// The leader epoch that wrote each returned batch, in offset order; at most
        /// [`BatchEpoch::COUNT_MAX`].
        batch_epochs: Vec<BatchEpoch>,
        /// The stored batches from `fetch_offset` on, concatenated exactly as on the leader's
        /// disk; opaque to this codec.
        batches: &'a [u8],
    },
    /// The metadata controller's answer to a leader's AlterInSync (api key 17).
    AlterInSync {
        error: ErrorCode,
        message: &'a str,
        /// The in-sync set version committed for this change; 0 on error.
        isr_version: u32,
        /// The in-sync set committed; empty on error. At most
        /// [`crate::codec::PartitionPlacement::NODES_MAX`] entries.
        in_sync: Vec<u32>,
    },
    /// Which node coordinates the group (api key 18).
    FindCoordinator {
        error: ErrorCode,
        message: &'a str,
        /// The coordinator's node id.
        node_id: u32,
        /// The coordinator's client address (`HOST:PORT`); empty when unknown.
        addr: &'a str,
    },
    /// A JoinGroup answer (api key 19): the member's id and the generation it joined.
    JoinGroup {
        error: ErrorCode,
        message: &'a str,
        member_id: &'a str,
        generation: u32,
    },
    /// A SyncGroup answer (api key 20): the member's assignment in `generation`.
    SyncGroup {
        error: ErrorCode,
        message: &'a str,
        generation: u32,
        /// At most [`GroupTopic::TOPICS_MAX`] topics.
        assigned: Vec<GroupTopic<'a>>,
    },
    /// A Heartbeat answer (api key 21, common head only); `REBALANCE_IN_PROGRESS` means: call
    /// SyncGroup.
    Heartbeat {
        error: ErrorCode,
        message: &'a str,
    },
    /// A LeaveGroup answer (api key 22, common head only).
    LeaveGroup {
        error: ErrorCode,
        message: &'a str,
    },
    /// Subscription data (api key 13, correlation id = subscription id). A push with an error
    /// other than `NONE` ends the subscription.
    Push {
        error: ErrorCode,
        message: &'a str,
        subscription_id: u32,
        high_offset: u64,
        records: Vec<FetchedRecordView<'a>>,
    },
}

impl<'a> Response<'a> {
    /// The api this response answers; `None` for [`Response::Error`], which takes the api key of
    /// the request it answers.
    pub fn api_key(&self) -> Option<ApiKey> {
        Some(match self {
            Response::Error { .. } => return None,
            Response::ApiVersions { .. } => ApiKey::ApiVersions,
            Response::Metadata { .. } => ApiKey::Metadata,
            Response::CreateTopic { .. } => ApiKey::CreateTopic,
            Response::DeleteTopic { .. } => ApiKey::DeleteTopic,
            Response::DescribeTopic { .. } => ApiKey::DescribeTopic,
            Response::ListTopics { .. } => ApiKey::ListTopics,
            Response::Produce { .. } => ApiKey::Produce,
            Response::Fetch { .. } => ApiKey::Fetch,
            Response::Subscribe { .. } => ApiKey::Subscribe,
            Response::Credit { .. } => ApiKey::Credit,
            Response::Unsubscribe { .. } => ApiKey::Unsubscribe,
            Response::OffsetCommit { .. } => ApiKey::OffsetCommit,
            Response::OffsetFetch { .. } => ApiKey::OffsetFetch,
            Response::Push { .. } => ApiKey::Push,
            Response::Raft { .. } => ApiKey::Raft,
            Response::MetaFetch { .. } => ApiKey::MetaFetch,
            Response::ReplicaFetch { .. } => ApiKey::ReplicaFetch,
            Response::AlterInSync { .. } => ApiKey::AlterInSync,
            Response::FindCoordinator { .. } => ApiKey::FindCoordinator,
            Response::JoinGroup { .. } => ApiKey::JoinGroup,
            Response::SyncGroup { .. } => ApiKey::SyncGroup,
            Response::Heartbeat { .. } => ApiKey::Heartbeat,
            Response::LeaveGroup { .. } => ApiKey::LeaveGroup,
        })
    }

    /// The error code and message every response carries.
    pub fn error(&self) -> (ErrorCode, &'a str) {
        match *self {
            Response::Error { error, message, .. }
            | Response::ApiVersions { error, message, .. }
            | Response::Metadata { error, message, .. }
            | Response::CreateTopic { error, message, .. }
            | Response::DeleteTopic { error, message }
            | Response::Raft { error, message }
            | Response::DescribeTopic { error, message, .. }
            | Response::ListTopics { error, message, .. }
            | Response::Produce { error, message, .. }
            | Response::Fetch { error, message, .. }
            | Response::Subscribe { error, message, .. }
            | Response::Credit { error, message }
            | Response::Unsubscribe { error, message }
            | Response::OffsetCommit { error, message }
            | Response::OffsetFetch { error, message, .. }
            | Response::MetaFetch { error, message, .. }
            | Response::ReplicaFetch { error, message, .. }
            | Response::AlterInSync { error, message, .. }
            | Response::FindCoordinator { error, message, .. }
            | Response::JoinGroup { error, message, .. }
            | Response::SyncGroup { error, message, .. }
            | Response::Heartbeat { error, message }
            | Response::LeaveGroup { error, message }
            | Response::Push { error, message, .. } => (error, message),
        }
    }

    /// Writes the body in the layout of `version` (a version [`ApiKey::supported_versions`]
    /// lists; the caller checked it). The generic error body ignores the version.
    pub(crate) fn write(&self, version: u16, w: &mut Writer<'_>) -> WriteResult {
        let (error, message) = self.error();
        w.u16(error as u16);
        w.str("message", message)?;
        match self {
            Response::Error { retry_after_ms, .. } => w.u32(*retry_after_ms),
            Response::ApiVersions {
                versions,
                server_version,
                frame_bytes_max,
                ..
            } => {
                w.count("versions", versions.len())?;
                for v in versions {
                    w.u16(v.api_key);
                    w.u16(v.min_version);
                    w.u16(v.max_version);
                }
                w.str("server_version", server_version)?;
                w.u32(*frame_bytes_max);
            }
            Response::Metadata {
                node_id,
                shards,
                brokers,
                topics,
                ..
            } => {
                w.u32(*node_id);
                w.u32(*shards);
                w.count("brokers", brokers.len())?;
                for b in brokers {
                    w.u32(b.node_id);
                    w.str("client_address", b.client_address)?;
                }
                w.count("topics", topics.len())?;
                for t in topics {
                    w.str("name", t.name)?;
                    w.u64(t.topic_id);
                    write_partitions(w, &t.partitions, version)?;
                }
            }
            Response::CreateTopic { topic_id, .. } => w.u64(*topic_id),
            Response::DeleteTopic { .. }
            | Response::Raft { .. }
            | Response::Credit { .. }
            | Response::Unsubscribe { .. }
            | Response::OffsetCommit { .. }
            | Response::Heartbeat { .. }
            | Response::LeaveGroup { .. } => {}
            Response::DescribeTopic { topic, .. } => {
                w.bool(topic.is_some());
                if let Some(t) = topic {
                    w.str("name", t.name)?;
                    w.u64(t.topic_id);
                    write_topic_config(w, &t.config, ApiKey::DescribeTopic, version)?;
                    w.count("partitions", t.partitions.len())?;
                    for p in &t.partitions {
                        write_partition_info(w, p, version)?;
                    }
                }
            }
            Response::ListTopics { topics, .. } => {
                w.count("topics", topics.len())?;
                for t in topics {
                    w.str("name", t.name)?;
                    w.u64(t.topic_id);
                    w.u32(t.partitions);
                }
            }
            Response::Produce {
                topic_id,
                partition,
                base_offset,
                record_count,
                duplicate,
                durable,
                ..
            } => {
                w.u64(*topic_id);
                w.u32(*partition);
                w.u64(*base_offset);
                w.u32(*record_count);
                w.bool(*duplicate);
                w.bool(*durable);
            }
            Response::Fetch {
                high_offset,
                start_offset,
                records,
                ..
            } => {
                w.u64(*high_offset);
                w.u64(*start_offset);
                write_fetched(w, records)?;
            }
            Response::Subscribe {
                subscription_id, ..
            } => w.u32(*subscription_id),
            Response::OffsetFetch { offset, .. } => w.opt_u64(*offset),
            Response::MetaFetch {
                version: meta_version,
                leader_id,
                state,
                ..
            } => {
                w.u64(*meta_version);
                w.u64(*leader_id);
                w.bytes("state", state)?;
            }
            Response::ReplicaFetch {
                leader_epoch,
                fetch_offset,
                last_fetched_epoch,
                high_watermark,
                log_start_offset,
                diverging,
                batch_epochs,
                batches,
                ..
            } => {
                w.u32(*leader_epoch);
                w.u64(*fetch_offset);
                w.opt_u32(*last_fetched_epoch);
                w.u64(*high_watermark);
                w.u64(*log_start_offset);
                write_replica_payload(w, diverging.as_ref(), batch_epochs, batches)?;
            }
            Response::AlterInSync {
                isr_version,
                in_sync,
                ..
            } => {
                w.u32(*isr_version);
                write_nodes(w, in_sync)?;
            }
            Response::FindCoordinator { node_id, addr, .. } => {
                w.u32(*node_id);
                w.str("addr", addr)?;
            }
            Response::JoinGroup {
                member_id,
                generation,
                ..
            } => {
                w.str("member_id", member_id)?;
                w.u32(*generation);
            }
            Response::SyncGroup {
                generation,
                assigned,
                ..
            } => {
                w.u32(*generation);
                write_group_topics(w, "assigned", assigned)?;
            }
            Response::Push {
                subscription_id,
                high_offset,
                records,
                ..
            } => {
                w.u32(*subscription_id);
                w.u64(*high_offset);
                write_fetched(w, records)?;
            }
        }
        Ok(())
    }

    /// Decodes a response body at a supported `version`: the generic error body (whose layout
    /// never changes) when `api` is `None`.
    pub(crate) fn read(
        api: Option<ApiKey>,
        version: u16,
        r: &mut Reader<'a>,
    ) -> ReadResult<Response<'a>> {
        let raw = r.u16("error")?;
        let error = ErrorCode::from_u16(raw).ok_or(FieldError {
            field: "error",
            reason: Malformed::InvalidValue {
                value: i64::from(raw),
            },
        })?;
        let message = r.str("message")?;
        let Some(api) = api else {
            return Ok(Response::Error {
                error,
                message,
                retry_after_ms: r.u32("retry_after_ms")?,
            });
        };
        Ok(match api {
            ApiKey::ApiVersions => Response::ApiVersions {
                error,
                message,
                versions: r.list("versions", 6, |r| {
                    Ok(ApiVersionRange {
                        api_key: r.u16("api_key")?,
                        min_version: r.u16("min_version")?,
                        max_version: r.u16("max_version")?,
                    })
                })?,
                server_version: r.str("server_version")?,
                frame_bytes_max: r.u32("frame_bytes_max")?,
            },
            ApiKey::Metadata => Response::Metadata {
                error,
                message,
                node_id: r.u32("node_id")?,
                shards: r.u32("shards")?,
                brokers: r.list("brokers", 6, |r| {
                    Ok(Broker {
                        node_id: r.u32("node_id")?,
                        client_address: r.str("client_address")?,
                    })
                })?,
                topics: r.list("topics", 14, |r| {
                    Ok(TopicMetadata {
                        name: r.str("name")?,
                        topic_id: r.u64("topic_id")?,
                        partitions: read_partitions(r, version)?,
                    })
                })?,
            },
            ApiKey::CreateTopic => Response::CreateTopic {
                error,
                message,
                topic_id: r.u64("topic_id")?,
            },
            ApiKey::DeleteTopic => Response::DeleteTopic { error, message },
            ApiKey::DescribeTopic => {
                let topic = if r.bool("topic")? {
                    Some(TopicDescription {
                        name: r.str("name")?,
                        topic_id: r.u64("topic_id")?,
                        config: read_topic_config(r, version)?,
                        partitions: read_partition_infos(r, version)?,
                    })
                } else {
                    None
                };
                Response::DescribeTopic {
                    error,
                    message,
                    topic,
                }
            }
            ApiKey::ListTopics => Response::ListTopics {
                error,
                message,
                topics: r.list("topics", 14, |r| {
                    Ok(TopicSummary {
                        name: r.str("name")?,
                        topic_id: r.u64("topic_id")?,
                        partitions: r.u32("partitions")?,
                    })
                })?,
            },
            ApiKey::Produce => Response::Produce {
                error,
                message,
                topic_id: r.u64("topic_id")?,
                partition: r.u32("partition")?,
                base_offset: r.u64("base_offset")?,
                record_count: r.u32("record_count")?,
                duplicate: r.bool("duplicate")?,
                durable: r.bool("durable")?,
            },
            ApiKey::Fetch => Response::Fetch {
                error,
                message,
                high_offset: r.u64("high_offset")?,
                start_offset: r.u64("start_offset")?,
                records: read_fetched(r)?,
            },
            ApiKey::Subscribe => Response::Subscribe {
                error,
                message,
                subscription_id: r.u32("subscription_id")?,
            },
            ApiKey::Credit => Response::Credit { error, message },
            ApiKey::Raft => Response::Raft { error, message },
            ApiKey::Unsubscribe => Response::Unsubscribe { error, message },
            ApiKey::OffsetCommit => Response::OffsetCommit { error, message },
            ApiKey::OffsetFetch => Response::OffsetFetch {
                error,
                message,
                offset: r.opt_u64("offset")?,
            },
            ApiKey::MetaFetch => Response::MetaFetch {
                error,
                message,
                version: r.u64("version")?,
                leader_id: r.u64("leader_id")?,
                state: r.bytes("state")?,
            },
            ApiKey::ReplicaFetch => read_replica_fetch(r, error, message)?,
            ApiKey::AlterInSync => read_alter_in_sync(r, error, message)?,
            ApiKey::FindCoordinator
            | ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup => read_group_response(api, r, error, message)?,
            ApiKey::Push => Response::Push {
                error,
                message,
                subscription_id: r.u32("subscription_id")?,
                high_offset: r.u64("high_offset")?,
                records: read_fetched(r)?,
            },
        })
    }
}
