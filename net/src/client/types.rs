//! Owned reply types returned by the client, converted from the borrowed codec responses.
//!
//! The codec decodes zero-copy into the client's read buffer; the client must reuse that buffer,
//! so everything it hands back is copied out once, here.

use bytes::Bytes;

use super::error::ClientError;
use crate::codec::{
    message_id, ApiVersionRange, BatchEpoch, DivergingEpoch, ErrorCode, FetchedRecordView,
    PartitionInfo, PartitionMetadata, Response, TopicConfig,
};

/// What the server said in the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    pub versions: Vec<ApiVersionRange>,
    pub server_version: String,
    pub frame_bytes_max: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: u32,
    pub client_address: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMetadataInfo {
    pub name: String,
    pub topic_id: u64,
    /// Each partition's shard, and its placement when the negotiated Metadata version carries
    /// one (v[`crate::codec::PartitionPlacement::VERSION`] on; `None` from a v0 server).
    pub partitions: Vec<PartitionMetadata>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub node_id: u32,
    pub shards: u32,
    pub brokers: Vec<BrokerInfo>,
    pub topics: Vec<TopicMetadataInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub topic_id: u64,
    pub config: TopicConfig,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicListing {
    pub name: String,
    pub topic_id: u64,
    pub partitions: u32,
}

/// The acknowledgement of one produce batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProduceAck {
    pub topic_id: u64,
    pub partition: u32,
    pub base_offset: u64,
    pub record_count: u32,
    pub duplicate: bool,
    pub durable: bool,
}

impl ProduceAck {
    /// Message ids of the acknowledged records, in order.
    pub fn message_ids(&self) -> impl Iterator<Item = String> + '_ {
        (0..u64::from(self.record_count))
            .map(|i| message_id(self.topic_id, self.partition, self.base_offset + i))
    }
}

/// A delivered record. Key, value and header bytes are slices of the frame that carried them
/// (`Bytes`, reference-counted): receiving a record copies nothing per record, and the frame's
/// memory is freed when the last record sliced from it is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(Bytes, Bytes)>,
}

impl Record {
    /// The record `view` describes; `frame` is the received frame `view` borrows from (its
    /// slices become `Bytes` slices of `frame`, no copy).
    pub(crate) fn from_view(frame: &Bytes, view: &FetchedRecordView<'_>) -> Self {
        Record {
            offset: view.offset,
            timestamp_ms: view.timestamp_ms,
            key: view.key.map(|k| frame.slice_ref(k)),
            value: frame.slice_ref(view.value),
            headers: view
                .headers
                .iter()
                .map(|(k, v)| (frame.slice_ref(k), frame.slice_ref(v)))
                .collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchResult {
    pub high_offset: u64,
    pub start_offset: u64,
    pub records: Vec<Record>,
}

/// A metadata controller's answer to [`crate::client::Client::meta_fetch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaFetchReply {
    /// The metadata version the answering controller holds.
    pub version: u64,
    /// The Raft leader that controller knows; 0 = none.
    pub leader_id: u64,
    /// The encoded metadata state (docs/metadata-format.md, "State snapshot"); empty when
    /// `version` is not newer than the `since_version` that was asked for.
    pub state: Vec<u8>,
}

/// A follower's fetch from a partition's leader ([`crate::client::Client::replica_fetch`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaFetchRequest {
    pub topic: String,
    pub partition: u32,
    /// The follower's node id.
    pub replica: u32,
    /// The leader epoch the follower believes is current.
    pub leader_epoch: u32,
    /// The follower's log end: the next offset it needs.
    pub fetch_offset: u64,
    /// The epoch that wrote the follower's last batch; `None` when its log is empty.
    pub last_fetched_epoch: Option<u32>,
    /// Every offset below this is fdatasync'd on the follower.
    pub durable_offset: u64,
    /// About how many bytes of batches to return (at least one whole batch if one exists).
    pub max_bytes: u32,
    /// How long the leader may hold the request when it has nothing new (long poll); the
    /// client waits this much longer than its request timeout.
    pub max_wait_ms: u32,
}

/// A leader's answer to [`crate::client::Client::replica_fetch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaFetchReply {
    /// The leader's epoch; a follower ignores answers from any other epoch.
    pub leader_epoch: u32,
    /// The request's `fetch_offset`, echoed (the client checks the echo).
    pub fetch_offset: u64,
    /// The request's `last_fetched_epoch`, echoed (the client checks the echo).
    pub last_fetched_epoch: Option<u32>,
    /// The leader's high watermark.
    pub high_watermark: u64,
    /// The first offset the leader still stores.
    pub log_start_offset: u64,
    /// Present: the follower truncates to `end_offset` (if below its log end) and fetches
    /// again; `batch_epochs` and `batches` are then empty.
    pub diverging: Option<DivergingEpoch>,
    /// The leader epoch that wrote each returned batch, in offset order.
    pub batch_epochs: Vec<BatchEpoch>,
    /// The stored batches from `fetch_offset` on, byte for byte as on the leader's disk.
    pub batches: Vec<u8>,
}

/// A partition leader's request to commit a new in-sync replica set
/// ([`crate::client::Client::alter_in_sync`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterInSyncRequest {
    pub topic: String,
    pub partition: u32,
    /// The asking leader's node id.
    pub leader: u32,
    /// The leader epoch the asking leader leads in.
    pub leader_epoch: u32,
    /// The in-sync set version the leader last saw; the controller commits only on top of it.
    pub isr_version: u32,
    /// The in-sync set to commit (node ids, the leader included); at most
    /// [`crate::codec::PartitionPlacement::NODES_MAX`] entries, or the call fails with
    /// [`ClientError::Encode`] and sends nothing. Empty: ask for a new election instead.
    pub in_sync: Vec<u32>,
    /// With an empty `in_sync`: the in-sync replica asked to lead next, `0` to let the
    /// controller pick. Non-zero needs AlterInSync v1 on the server.
    pub successor: u32,
}

/// The metadata controller's answer to [`crate::client::Client::alter_in_sync`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterInSyncReply {
    /// The in-sync set version committed for this change.
    pub isr_version: u32,
    /// The in-sync set committed.
    pub in_sync: Vec<u32>,
}

/// Records pushed for a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushBatch {
    pub subscription_id: u32,
    pub high_offset: u64,
    pub records: Vec<Record>,
    /// Set when the server ended the subscription (then `records` is usually empty).
    pub ended: Option<(ErrorCode, String)>,
}

/// Partitions per topic in a consumer group, owned: `(topic, partition ids)` per topic. What a
/// member owns ([`crate::client::Client::sync_group`]'s `owned`) or is assigned (its answer).
pub type GroupAssignment = Vec<(String, Vec<u32>)>;

/// A reply converted to owned form. Errors were already turned into [`ClientError::Server`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    ApiVersions(ServerInfo),
    Metadata(ClusterMetadata),
    CreateTopic(u64),
    DescribeTopic(TopicInfo),
    ListTopics(Vec<TopicListing>),
    Produce(ProduceAck),
    Fetch(FetchResult),
    Subscribe(u32),
    OffsetFetch(Option<u64>),
    MetaFetch(MetaFetchReply),
    ReplicaFetch(ReplicaFetchReply),
    AlterInSync(AlterInSyncReply),
    /// The coordinator's node id and client address (empty when the server knows none).
    FindCoordinator(u32, String),
    /// The member id and the generation joined.
    JoinGroup(String, u32),
    /// The generation and the assignment: `(topic, partitions)` per topic.
    SyncGroup(u32, GroupAssignment),
    /// DeleteTopic, Credit, Unsubscribe, OffsetCommit, Raft, Heartbeat, LeaveGroup: nothing but
    /// success.
    Done,
}

fn records(frame: &Bytes, records: &[FetchedRecordView<'_>]) -> Vec<Record> {
    records
        .iter()
        .map(|view| Record::from_view(frame, view))
        .collect()
}

/// Converts a non-push response, mapping a non-`NONE` error code to [`ClientError::Server`].
/// The reply variant always matches the response's api (the caller relies on it).
pub(crate) fn to_reply(
    frame: &Bytes,
    response: &Response<'_>,
    addr: &str,
    correlation_id: u32,
) -> Result<Reply, ClientError> {
    let bad = |reason| ClientError::BadReply {
        addr: addr.to_owned(),
        correlation_id,
        reason,
    };
    let (code, message) = response.error();
    if code != ErrorCode::None {
        let retry_after_ms = match response {
            Response::Error { retry_after_ms, .. } if code == ErrorCode::Throttled => {
                Some(*retry_after_ms)
            }
            _ => None,
        };
        return Err(ClientError::Server {
            code,
            message: message.to_owned(),
            retry_after_ms,
        });
    }
    Ok(match response {
        Response::Error { .. } => return Err(bad("generic error body with error code NONE")),
        Response::ApiVersions {
            versions,
            server_version,
            frame_bytes_max,
            ..
        } => Reply::ApiVersions(ServerInfo {
            versions: versions.clone(),
            server_version: (*server_version).to_owned(),
            frame_bytes_max: *frame_bytes_max,
        }),
        Response::Metadata {
            node_id,
            shards,
            brokers,
            topics,
            ..
        } => Reply::Metadata(ClusterMetadata {
            node_id: *node_id,
            shards: *shards,
            brokers: brokers
                .iter()
                .map(|b| BrokerInfo {
                    node_id: b.node_id,
                    client_address: b.client_address.to_owned(),
                })
                .collect(),
            topics: topics
                .iter()
                .map(|t| TopicMetadataInfo {
                    name: t.name.to_owned(),
                    topic_id: t.topic_id,
                    partitions: t.partitions.clone(),
                })
                .collect(),
        }),
        Response::CreateTopic { topic_id, .. } => Reply::CreateTopic(*topic_id),
        Response::DescribeTopic { topic, .. } => match topic {
            Some(t) => Reply::DescribeTopic(TopicInfo {
                name: t.name.to_owned(),
                topic_id: t.topic_id,
                config: t.config,
                partitions: t.partitions.clone(),
            }),
            None => return Err(bad("DescribeTopic reply without error has no topic")),
        },
        Response::ListTopics { topics, .. } => Reply::ListTopics(
            topics
                .iter()
                .map(|t| TopicListing {
                    name: t.name.to_owned(),
                    topic_id: t.topic_id,
                    partitions: t.partitions,
                })
                .collect(),
        ),
        Response::Produce {
            topic_id,
            partition,
            base_offset,
            record_count,
            duplicate,
            durable,
            ..
        } => Reply::Produce(ProduceAck {
            topic_id: *topic_id,
            partition: *partition,
            base_offset: *base_offset,
            record_count: *record_count,
            duplicate: *duplicate,
            durable: *durable,
        }),
        Response::Fetch {
            high_offset,
            start_offset,
            records: recs,
            ..
        } => Reply::Fetch(FetchResult {
            high_offset: *high_offset,
            start_offset: *start_offset,
            records: records(frame, recs),
        }),
        Response::Subscribe {
            subscription_id, ..
        } => Reply::Subscribe(*subscription_id),
        Response::OffsetFetch { offset, .. } => Reply::OffsetFetch(*offset),
        Response::MetaFetch {
            version,
            leader_id,
            state,
            ..
        } => Reply::MetaFetch(MetaFetchReply {
            version: *version,
            leader_id: *leader_id,
            state: state.to_vec(),
        }),
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
        } => Reply::ReplicaFetch(ReplicaFetchReply {
            leader_epoch: *leader_epoch,
            fetch_offset: *fetch_offset,
            last_fetched_epoch: *last_fetched_epoch,
            high_watermark: *high_watermark,
            log_start_offset: *log_start_offset,
            diverging: *diverging,
            batch_epochs: batch_epochs.clone(),
            batches: batches.to_vec(),
        }),
        Response::AlterInSync {
            isr_version,
            in_sync,
            ..
        } => Reply::AlterInSync(AlterInSyncReply {
            isr_version: *isr_version,
            in_sync: in_sync.clone(),
        }),
        Response::FindCoordinator { node_id, addr, .. } => {
            Reply::FindCoordinator(*node_id, (*addr).to_owned())
        }
        Response::JoinGroup {
            member_id,
            generation,
            ..
        } => Reply::JoinGroup((*member_id).to_owned(), *generation),
        Response::SyncGroup {
            generation,
            assigned,
            ..
        } => Reply::SyncGroup(
            *generation,
            assigned
                .iter()
                .map(|t| (t.topic.to_owned(), t.partitions.clone()))
                .collect(),
        ),
        Response::DeleteTopic { .. }
        | Response::Heartbeat { .. }
        | Response::LeaveGroup { .. }
        | Response::Credit { .. }
        | Response::Unsubscribe { .. }
        | Response::OffsetCommit { .. }
        | Response::Raft { .. }
        | Response::Push { .. } => Reply::Done,
    })
}

/// Converts a push frame body.
pub(crate) fn to_push(frame: &Bytes, response: &Response<'_>) -> Option<PushBatch> {
    match response {
        Response::Push {
            error,
            message,
            subscription_id,
            high_offset,
            records: recs,
        } => Some(PushBatch {
            subscription_id: *subscription_id,
            high_offset: *high_offset,
            records: records(frame, recs),
            ended: (*error != ErrorCode::None).then(|| (*error, (*message).to_owned())),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_slices_its_frame_without_copying() {
        let frame = Bytes::from_static(b"....key-value-hk-hv....");
        let view = FetchedRecordView {
            offset: 7,
            timestamp_ms: 9,
            key: Some(&frame[4..7]),
            value: &frame[8..13],
            headers: vec![(&frame[14..16], &frame[17..19])],
        };
        let r = Record::from_view(&frame, &view);
        assert_eq!((r.offset, r.timestamp_ms), (7, 9));
        assert_eq!(r.key.as_deref(), Some(&b"key"[..]));
        assert_eq!(&r.value[..], b"value");
        assert_eq!(r.headers, vec![(Bytes::from("hk"), Bytes::from("hv"))]);
        // The same memory as the frame's, not a copy.
        assert_eq!(r.value.as_ptr(), frame[8..].as_ptr());
        assert_eq!(r.headers[0].1.as_ptr(), frame[17..].as_ptr());
    }
}
