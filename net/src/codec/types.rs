//! Enumerations and shared structs that appear inside frame bodies.

/// Api keys. The wire value is the discriminant (`u16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum ApiKey {
    ApiVersions = 0,
    Metadata = 1,
    CreateTopic = 2,
    DeleteTopic = 3,
    DescribeTopic = 4,
    ListTopics = 5,
    Produce = 6,
    Fetch = 7,
    Subscribe = 8,
    Credit = 9,
    Unsubscribe = 10,
    OffsetCommit = 11,
    OffsetFetch = 12,
    /// Server -> client subscription data; never sent as a request.
    Push = 13,
    /// Internode: one Raft message between metadata controllers.
    Raft = 14,
    /// Server-to-server and tools: the cluster metadata a metadata controller holds.
    MetaFetch = 15,
    /// Server-to-server: a follower replica fetching a partition's stored batches from its
    /// leader.
    ReplicaFetch = 16,
    /// Server-to-server: a partition leader asking the metadata controller to change the
    /// partition's in-sync replica set.
    AlterInSync = 17,
    /// Consumer groups: which node coordinates a group.
    FindCoordinator = 18,
    /// Consumer groups: a member joins (or rejoins) a group.
    JoinGroup = 19,
    /// Consumer groups: a member learns the partitions assigned to it in a generation.
    SyncGroup = 20,
    /// Consumer groups: a member says it is alive.
    Heartbeat = 21,
    /// Consumer groups: a member leaves its group.
    LeaveGroup = 22,
}

impl ApiKey {
    /// Every api key, in wire order.
    pub const ALL: [ApiKey; 23] = [
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::CreateTopic,
        ApiKey::DeleteTopic,
        ApiKey::DescribeTopic,
        ApiKey::ListTopics,
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::Subscribe,
        ApiKey::Credit,
        ApiKey::Unsubscribe,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::Push,
        ApiKey::Raft,
        ApiKey::MetaFetch,
        ApiKey::ReplicaFetch,
        ApiKey::AlterInSync,
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
    ];

    /// The OffsetCommit version that first carries the committing group member's id and
    /// generation (`member_id`, `generation`); below it both are absent (`""` and `0`).
    pub const OFFSET_COMMIT_MEMBER_VERSION: u16 = 1;

    /// The AlterInSync version that first carries `successor`: the in-sync replica a leader
    /// asking for a new election wants to lead next (a leadership hand-over).
    pub const ALTER_IN_SYNC_SUCCESSOR_VERSION: u16 = 1;

    pub fn from_u16(raw: u16) -> Option<ApiKey> {
        ApiKey::ALL.get(usize::from(raw)).copied()
    }

    /// Versions of this api the codec implements (inclusive range). A new layout gets a new
    /// version; old versions stay decodable (and encodable) for as long as they are listed here.
    pub fn supported_versions(self) -> (u16, u16) {
        match self {
            // v1 appends the tiered-storage settings ([`TopicConfig::TIERING_VERSION`]), v2 the
            // replication settings ([`TopicConfig::REPLICATION_VERSION`]).
            ApiKey::CreateTopic | ApiKey::DescribeTopic => (0, TopicConfig::REPLICATION_VERSION),
            // v1 appends each partition's placement ([`PartitionPlacement::VERSION`]).
            ApiKey::Metadata => (0, PartitionPlacement::VERSION),
            // v1 has the v0 layout; its answers may carry NOT_ENOUGH_REPLICAS
            // ([`ErrorCode::NOT_ENOUGH_REPLICAS_VERSION`]).
            ApiKey::Produce => (0, ErrorCode::NOT_ENOUGH_REPLICAS_VERSION),
            // v1 appends the member id and generation ([`ApiKey::OFFSET_COMMIT_MEMBER_VERSION`]).
            ApiKey::OffsetCommit => (0, ApiKey::OFFSET_COMMIT_MEMBER_VERSION),
            // v1 appends the successor ([`ApiKey::ALTER_IN_SYNC_SUCCESSOR_VERSION`]).
            ApiKey::AlterInSync => (0, ApiKey::ALTER_IN_SYNC_SUCCESSOR_VERSION),
            _ => (0, 0),
        }
    }

    /// The newest version this codec implements; [`crate::codec::Frame::request`] and
    /// [`crate::codec::Frame::response`] build frames at it. A client uses the version it
    /// negotiated instead ([`crate::codec::Frame::request_at`]).
    pub fn current_version(self) -> u16 {
        self.supported_versions().1
    }

    pub fn name(self) -> &'static str {
        match self {
            ApiKey::ApiVersions => "ApiVersions",
            ApiKey::Metadata => "Metadata",
            ApiKey::CreateTopic => "CreateTopic",
            ApiKey::DeleteTopic => "DeleteTopic",
            ApiKey::DescribeTopic => "DescribeTopic",
            ApiKey::ListTopics => "ListTopics",
            ApiKey::Produce => "Produce",
            ApiKey::Fetch => "Fetch",
            ApiKey::Subscribe => "Subscribe",
            ApiKey::Credit => "Credit",
            ApiKey::Unsubscribe => "Unsubscribe",
            ApiKey::OffsetCommit => "OffsetCommit",
            ApiKey::OffsetFetch => "OffsetFetch",
            ApiKey::Push => "Push",
            ApiKey::Raft => "Raft",
            ApiKey::MetaFetch => "MetaFetch",
            ApiKey::ReplicaFetch => "ReplicaFetch",
            ApiKey::AlterInSync => "AlterInSync",
            ApiKey::FindCoordinator => "FindCoordinator",
            ApiKey::JoinGroup => "JoinGroup",
            ApiKey::SyncGroup => "SyncGroup",
            ApiKey::Heartbeat => "Heartbeat",
            ApiKey::LeaveGroup => "LeaveGroup",
        }
    }
}

/// Durability a producer waits for. Wire: `u8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Acks {
    /// No reply at all.
    None = 0,
    /// Reply once the batch is in the leader's mapped segment (survives kill -9, not power loss).
    Leader = 1,
    /// Reply after fdatasync on the leader (and in-sync replicas in a cluster).
    All = 2,
}

impl Acks {
    pub fn from_u8(raw: u8) -> Option<Acks> {
        match raw {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            2 => Some(Acks::All),
            _ => None,
        }
    }
}

macro_rules! error_codes {
    ($($name:ident = $value:literal, $wire:literal, $retriable:literal;)*) => {
        /// The closed set of error codes. Wire: `u16`. See docs/protocol.md for client actions.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum ErrorCode { $($name = $value,)* }

        impl ErrorCode {
            /// Every code, in wire order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            pub fn from_u16(raw: u16) -> Option<ErrorCode> {
                match raw { $($value => Some(ErrorCode::$name),)* _ => None }
            }

            /// The SCREAMING_CASE name used in docs and logs.
            pub fn name(self) -> &'static str {
                match self { $(ErrorCode::$name => $wire,)* }
            }

            /// True when resending the same request later may succeed.
            pub fn is_retriable(self) -> bool {
                match self { $(ErrorCode::$name => $retriable,)* }
            }
        }
    };
}

error_codes! {
    None = 0, "NONE", false;
    UnknownTopic = 1, "UNKNOWN_TOPIC", false;
    UnknownPartition = 2, "UNKNOWN_PARTITION", false;
    TopicExists = 3, "TOPIC_EXISTS", false;
    InvalidRequest = 4, "INVALID_REQUEST", false;
    UnsupportedVersion = 5, "UNSUPPORTED_VERSION", false;
    UnknownApi = 6, "UNKNOWN_API", false;
    OffsetOutOfRange = 7, "OFFSET_OUT_OF_RANGE", false;
    MessageTooLarge = 8, "MESSAGE_TOO_LARGE", false;
    Throttled = 9, "THROTTLED", true;
    StorageError = 10, "STORAGE_ERROR", true;
    DuplicateSequence = 11, "DUPLICATE_SEQUENCE", false;
    OutOfOrderSequence = 12, "OUT_OF_ORDER_SEQUENCE", false;
    InvalidProducerEpoch = 13, "INVALID_PRODUCER_EPOCH", false;
    NotLeader = 14, "NOT_LEADER", true;
    Timeout = 15, "TIMEOUT", true;
    InvalidConfig = 16, "INVALID_CONFIG", false;
    Internal = 17, "INTERNAL", false;
    ShuttingDown = 18, "SHUTTING_DOWN", true;
    FrameTooLarge = 19, "FRAME_TOO_LARGE", false;
    UnknownSubscription = 20, "UNKNOWN_SUBSCRIPTION", false;
    NotEnoughReplicas = 21, "NOT_ENOUGH_REPLICAS", true;
    NotCoordinator = 22, "NOT_COORDINATOR", true;
    UnknownMember = 23, "UNKNOWN_MEMBER", false;
    RebalanceInProgress = 24, "REBALANCE_IN_PROGRESS", true;
    IllegalGeneration = 25, "ILLEGAL_GENERATION", false;
}

impl ErrorCode {
    /// The Produce version from which an answer may carry [`ErrorCode::NotEnoughReplicas`]. A
    /// client that sends an older version does not know the code, so a server answers it
    /// [`ErrorCode::Timeout`] (with a message) in that situation instead. The codec itself
    /// decodes every code of [`ErrorCode::ALL`] in every response, whatever its api and version.
    pub const NOT_ENOUGH_REPLICAS_VERSION: u16 = 1;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name(), *self as u16)
    }
}

/// Topic settings. `None` means "use the server default".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TopicConfig {
    pub partitions: u32,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub segment_bytes: Option<u64>,
    pub compacted: bool,
    pub default_ttl_ms: Option<u64>,
    /// Upload a sealed segment to the object store once its newest record is older than this
    /// many milliseconds. On the wire from CreateTopic / DescribeTopic v1 on; `None` at v0.
    pub tier_after_ms: Option<u64>,
    /// Keep at most this many bytes of sealed segments on local disk (older ones are served from
    /// the object store). On the wire from CreateTopic / DescribeTopic v1 on; `None` at v0.
    pub local_retention_bytes: Option<u64>,
    /// How many replicas each partition has (the leader included); `None` = the server's
    /// default, [`TopicConfig::REPLICATION_FACTOR_DEFAULT`]. On the wire from CreateTopic /
    /// DescribeTopic v2 on; `None` below.
    pub replication_factor: Option<u16>,
    /// How many replicas (the leader included) must be in sync for an `acks = all` produce to
    /// be accepted; `None` = the server's default, `min(2, replication factor)`. On the wire
    /// from CreateTopic / DescribeTopic v2 on; `None` below.
    pub min_insync: Option<u16>,
}

impl TopicConfig {
    /// The CreateTopic and DescribeTopic version that first carries the tiering settings.
    pub const TIERING_VERSION: u16 = 1;

    /// The CreateTopic and DescribeTopic version that first carries the replication settings.
    pub const REPLICATION_VERSION: u16 = 2;
    /// The replication factor a server applies when [`TopicConfig::replication_factor`] is
    /// `None`.
    pub const REPLICATION_FACTOR_DEFAULT: u16 = 1;
    /// When [`TopicConfig::min_insync`] is `None`, a server applies `min(this, replication
    /// factor)`.
    pub const MIN_INSYNC_DEFAULT_MAX: u16 = 2;

    /// The replication factor with the server default applied.
    pub fn replication_factor_or_default(&self) -> u16 {
        self.replication_factor
            .unwrap_or(Self::REPLICATION_FACTOR_DEFAULT)
    }

    /// The min-insync count with the server default applied: `min(2, replication factor)`.
    pub fn min_insync_or_default(&self) -> u16 {
        self.min_insync.unwrap_or_else(|| {
            Self::MIN_INSYNC_DEFAULT_MAX.min(self.replication_factor_or_default())
        })
    }

    /// The name of the first replication setting that is set, if any: a frame below
    /// [`TopicConfig::REPLICATION_VERSION`] cannot carry it.
    pub fn first_replication_field(&self) -> Option<&'static str> {
        if self.replication_factor.is_some() {
            Some("replication_factor")
        } else if self.min_insync.is_some() {
            Some("min_insync")
        } else {
            None
        }
    }

    /// The name of the first tiered-storage setting that is set, if any: a frame below
    /// [`TopicConfig::TIERING_VERSION`] cannot carry it.
    pub fn first_tiering_field(&self) -> Option<&'static str> {
        if self.tier_after_ms.is_some() {
            Some("tier_after_ms")
        } else if self.local_retention_bytes.is_some() {
            Some("local_retention_bytes")
        } else {
            None
        }
    }
}

/// Idempotent producer identity attached to a produce batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProducerIdent {
    pub producer_id: u64,
    pub epoch: u16,
    /// Sequence number of the first record in the batch; record `i` has `base_sequence + i`.
    pub base_sequence: u32,
}

/// A record as sent by a producer, borrowed from the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Vec<(&'a [u8], &'a [u8])>,
    pub timestamp_ms: i64,
    /// Time to live after `timestamp_ms`; 0 = no per-record TTL (the topic default applies).
    pub ttl_ms: u32,
}

/// A record as delivered by fetch or push, borrowed from the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedRecordView<'a> {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Vec<(&'a [u8], &'a [u8])>,
}

/// One entry of the `ApiVersions` response. `api_key` stays raw: a newer server may list keys
/// this client does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiVersionRange {
    pub api_key: u16,
    pub min_version: u16,
    pub max_version: u16,
}

/// One partition of a DescribeTopic reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    /// First readable offset of the partition's log. For a tiered partition that is in the
    /// object store when the remote log starts lower than the local one; the local start is in
    /// [`RemoteTierInfo::local_start_offset`].
    pub start_offset: u64,
    pub end_offset: u64,
    pub durable_offset: u64,
    pub shard: u32,
    pub bytes_on_disk: u64,
    /// The partition's remote (object store) tier; `None` for a partition that is not tiered or
    /// whose manifest the node has not loaded yet, and always `None` in a DescribeTopic v0 reply
    /// (the field exists on the wire from v1 on).
    pub remote: Option<RemoteTierInfo>,
}

/// What of a partition lives in the object store (DescribeTopic v1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteTierInfo {
    /// First offset still held on the node's local disk (offsets below it are read from the
    /// object store).
    pub local_start_offset: u64,
    /// First offset held remotely.
    pub remote_start_offset: u64,
    /// One past the last offset held remotely.
    pub remote_end_offset: u64,
    /// Number of uploaded segments.
    pub remote_segments: u32,
    /// Uncompressed batch bytes held remotely.
    pub remote_data_bytes: u64,
    /// Bytes of the objects in the bucket (after compression and framing).
    pub remote_object_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDescription<'a> {
    pub name: &'a str,
    pub topic_id: u64,
    pub config: TopicConfig,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicSummary<'a> {
    pub name: &'a str,
    pub topic_id: u64,
    pub partitions: u32,
}

/// A node and the address clients should connect to (`HOST:PORT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Broker<'a> {
    pub node_id: u32,
    pub client_address: &'a str,
}

/// One partition of a Metadata reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: u32,
    pub shard: u32,
    /// Where the partition lives in the cluster. On the wire from Metadata
    /// v[`PartitionPlacement::VERSION`] on; always `None` in a v0 reply, and `None` at v1 when
    /// the answering node knows no placement (a single node, or metadata not loaded yet).
    pub placement: Option<PartitionPlacement>,
}

/// The replicas of a partition and which of them leads (Metadata v1). Node ids are the
/// cluster's node ids; `0` is never a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionPlacement {
    /// The node that leads the partition; `0` = no leader right now.
    pub leader: u32,
    /// Increases with every leader change; a client that saw a higher epoch ignores a lower one.
    pub leader_epoch: u32,
    /// Every node holding a replica, the preferred leader first. At most
    /// [`PartitionPlacement::NODES_MAX`] entries.
    pub replicas: Vec<u32>,
    /// The replicas that are caught up with the leader. At most
    /// [`PartitionPlacement::NODES_MAX`] entries.
    pub in_sync: Vec<u32>,
}

impl PartitionPlacement {
    /// The Metadata version that first carries [`PartitionMetadata::placement`].
    pub const VERSION: u16 = 1;
    /// Most node ids `replicas` or `in_sync` may hold on the wire (also the cap of an
    /// AlterInSync `in_sync` list); a larger count is malformed (decoding) or refused
    /// (encoding).
    pub const NODES_MAX: usize = 255;
}

/// A ReplicaFetch answer's "your log diverges from mine": the follower's last fetched epoch
/// ends earlier on the leader. The follower truncates to `end_offset` (when that is below its
/// log end) and fetches again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DivergingEpoch {
    /// The largest leader epoch the leader knows at or below the follower's last fetched one.
    pub epoch: u32,
    /// Where that epoch ends on the leader: the offset one past its last record.
    pub end_offset: u64,
}

/// Which leader epoch wrote one batch of a ReplicaFetch answer: offsets
/// `[base_offset, next_offset)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BatchEpoch {
    /// The leader epoch that wrote the batch.
    pub epoch: u32,
    /// The batch's first offset.
    pub base_offset: u64,
    /// One past the batch's last offset.
    pub next_offset: u64,
}

impl BatchEpoch {
    /// Most entries a ReplicaFetch answer's `batch_epochs` may hold on the wire; a larger count
    /// is malformed (decoding) or refused (encoding), checked before any allocation.
    pub const COUNT_MAX: usize = 65_536;
    /// Encoded size of one entry: epoch, base offset, next offset.
    pub const WIRE_BYTES: usize = 4 + 8 + 8;
}

/// One topic's partitions in a consumer group: what a member owns (SyncGroup request) or is
/// assigned (SyncGroup answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupTopic<'a> {
    pub topic: &'a str,
    /// At most [`GroupTopic::PARTITIONS_MAX`] partition ids.
    pub partitions: Vec<u32>,
}

impl GroupTopic<'_> {
    /// Most topics a JoinGroup `topics` list or a SyncGroup `owned` / `assigned` list may hold
    /// on the wire; a larger count is malformed (decoding, checked before any allocation) or
    /// refused (encoding).
    pub const TOPICS_MAX: usize = GROUP_TOPICS_MAX;
    /// Most partition ids one [`GroupTopic`] may hold on the wire (the codec has no other
    /// partition-count limit); checked like [`GroupTopic::TOPICS_MAX`].
    pub const PARTITIONS_MAX: usize = 65_536;
    /// Minimum encoded size of one entry: an empty topic name (its `u16` length) and an empty
    /// partition list (its `u32` count).
    pub const WIRE_BYTES_MIN: usize = 2 + 4;
}

/// Most topics per consumer-group topic list (JoinGroup `topics`, SyncGroup `owned` and
/// `assigned`); see [`GroupTopic::TOPICS_MAX`].
pub const GROUP_TOPICS_MAX: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMetadata<'a> {
    pub name: &'a str,
    pub topic_id: u64,
    pub partitions: Vec<PartitionMetadata>,
}

/// The printable, unique id of a record: `<topic_id as 16 lowercase hex>-<partition>-<offset>`
/// (decimal partition and offset), e.g. `00000000000000a3-2-1047`.
///
/// Topic ids are never reused, so the id stays unique even after a topic is deleted and a topic
/// with the same name is created again.
pub fn message_id(topic_id: u64, partition: u32, offset: u64) -> String {
    format!("{topic_id:016x}-{partition}-{offset}")
}

/// Parses a [`message_id`] back into `(topic_id, partition, offset)`.
pub fn parse_message_id(id: &str) -> Option<(u64, u32, u64)> {
    let mut parts = id.splitn(3, '-');
    let topic = parts.next()?;
    let partition = parts.next()?;
    let offset = parts.next()?;
    if topic.len() != 16 || !topic.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if [partition, offset]
        .iter()
        .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some((
        u64::from_str_radix(topic, 16).ok()?,
        partition.parse().ok()?,
        offset.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_printable_and_parse_back() {
        assert_eq!(message_id(0xa3, 2, 1047), "00000000000000a3-2-1047");
        for (t, p, o) in [(0, 0, 0), (u64::MAX, u32::MAX, u64::MAX), (0xa3, 2, 1047)] {
            assert_eq!(parse_message_id(&message_id(t, p, o)), Some((t, p, o)));
        }
        for bad in [
            "",
            "a3-2-1",
            "00000000000000a3-2",
            "00000000000000a3--1",
            "00000000000000zz-1-1",
            "00000000000000a3-1-+1",
        ] {
            assert_eq!(parse_message_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn enums_round_trip_through_their_wire_values() {
        for (i, api) in ApiKey::ALL.iter().enumerate() {
            assert_eq!(*api as usize, i);
            assert_eq!(ApiKey::from_u16(*api as u16), Some(*api));
        }
        assert_eq!(ApiKey::from_u16(ApiKey::ALL.len() as u16), None);
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "codes are dense");
            assert_eq!(ErrorCode::from_u16(*code as u16), Some(*code));
        }
        assert_eq!(ErrorCode::from_u16(ErrorCode::ALL.len() as u16), None);
        for acks in [Acks::None, Acks::Leader, Acks::All] {
            assert_eq!(Acks::from_u8(acks as u8), Some(acks));
        }
        assert_eq!(Acks::from_u8(3), None);
    }

    #[test]
    fn replication_defaults_follow_the_replication_factor() {
        let config = |replication_factor, min_insync| TopicConfig {
            replication_factor,
            min_insync,
            ..TopicConfig::default()
        };
        let effective =
            |c: TopicConfig| (c.replication_factor_or_default(), c.min_insync_or_default());
        assert_eq!(effective(config(None, None)), (1, 1));
        assert_eq!(effective(config(Some(1), None)), (1, 1));
        assert_eq!(effective(config(Some(2), None)), (2, 2));
        assert_eq!(effective(config(Some(5), None)), (5, 2));
        assert_eq!(effective(config(Some(5), Some(3))), (5, 3));
        assert_eq!(effective(config(None, Some(1))), (1, 1));
        assert_eq!(config(None, None).first_replication_field(), None);
        assert_eq!(
            config(Some(3), Some(2)).first_replication_field(),
            Some("replication_factor")
        );
        assert_eq!(
            config(None, Some(2)).first_replication_field(),
            Some("min_insync")
        );
    }
}
