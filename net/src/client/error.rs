//! Client errors. Each variant names the address or the server's error code and message.

use crate::codec::{ApiKey, CodecError, EncodeError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address could not be resolved. No connection exists.
    #[error("cannot resolve broker address {addr}: {source}")]
    Resolve {
        addr: String,
        source: std::io::Error,
    },
    /// Nothing accepted the connection. No connection exists.
    #[error("no Sprawl node reachable at {addr} ({source}); start one with `sprawl serve` or pass --broker HOST:PORT")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    /// A read or write failed. The connection is unusable; reconnect.
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    /// No complete reply arrived in time. Replies may still arrive later; the connection stays
    /// usable, but the request's outcome is unknown.
    #[error("timed out after {timeout_ms} ms waiting for {operation} from {addr}")]
    Timeout {
        addr: String,
        operation: &'static str,
        timeout_ms: u64,
    },
    /// The server closed the connection. Reconnect.
    #[error("{addr} closed the connection")]
    Closed { addr: String },
    /// The server answered with an error code. The connection stays usable.
    #[error("server error {code}: {message}")]
    Server {
        code: ErrorCode,
        message: String,
        /// Set with `THROTTLED`: wait this long before retrying.
        retry_after_ms: Option<u32>,
    },
    /// The server sent bytes that do not decode. The connection is unusable.
    #[error("undecodable reply from {addr}: {source}")]
    Protocol { addr: String, source: CodecError },
    /// The request could not be encoded (too long a field, or larger than the server accepts).
    /// Nothing was sent; the connection stays usable.
    #[error("cannot encode request: {0}")]
    Encode(#[from] EncodeError),
    /// The reply to a request was of another api. The connection is unusable.
    #[error("reply to correlation id {correlation_id} was api key {got_api_key}, expected {}", expected.name())]
    UnexpectedReply {
        correlation_id: u32,
        expected: ApiKey,
        got_api_key: u16,
    },
    /// The server sent a frame that decodes but makes no sense here (a request, a generic error
    /// body with code `NONE`, a successful describe without a topic). The connection is unusable.
    #[error("bad reply from {addr} (correlation id {correlation_id}): {reason}")]
    BadReply {
        addr: String,
        correlation_id: u32,
        reason: &'static str,
    },
    /// A reply arrived for a correlation id that is not in flight. The connection is unusable.
    #[error("{addr} sent a reply for correlation id {correlation_id}, which is not in flight")]
    UnknownCorrelation { addr: String, correlation_id: u32 },
    /// The server and this client have no version of `api` in common.
    #[error("server at {addr} supports {} versions {server_min}..={server_max}, this client speaks {client_min}..={client_max}", api.name())]
    UnsupportedServer {
        addr: String,
        api: ApiKey,
        server_min: u16,
        server_max: u16,
        client_min: u16,
        client_max: u16,
    },
    /// The server did not list `api` in its `ApiVersions` reply, so it does not implement it.
    /// Nothing was sent; the connection stays usable.
    #[error("server at {addr} does not implement {} (api key {}): it is not in the server's ApiVersions reply; use a server that does", api.name(), *api as u16)]
    ApiUnsupported { addr: String, api: ApiKey },
    /// A topic was to be created with a tiered-storage setting, but the server speaks no
    /// CreateTopic version that carries it. Nothing was sent; the connection stays usable.
    #[error("server at {addr} does not support tiering settings (`{field}` needs CreateTopic v{required_version}, the server speaks v{negotiated_version}); upgrade the server or create the topic without tiering settings")]
    TieringUnsupported {
        addr: String,
        /// The first tiering setting that was set.
        field: &'static str,
        negotiated_version: u16,
        required_version: u16,
    },
    /// A topic was to be created with a replication setting, but the server speaks no
    /// CreateTopic version that carries it. Nothing was sent; the connection stays usable.
    #[error("server at {addr} does not support replication settings (`{field}` needs CreateTopic v{required_version}, the server speaks v{negotiated_version}); upgrade the server or create the topic without replication settings")]
    ReplicationUnsupported {
        addr: String,
        /// The first replication setting that was set.
        field: &'static str,
        negotiated_version: u16,
        required_version: u16,
    },
    /// An offset was to be committed as a group member (a member id or generation was given),
    /// but the server speaks no OffsetCommit version that carries them. Nothing was sent; the
    /// connection stays usable.
    #[error("server at {addr} does not support group-member offset commits (the member id and generation need OffsetCommit v{required_version}, the server speaks v{negotiated_version}); upgrade the server or commit without a member id")]
    GroupMembershipUnsupported {
        addr: String,
        negotiated_version: u16,
        required_version: u16,
    },
    /// FindCoordinator named no reachable coordinator for the group: none right now (node 0
    /// without an address), or a node whose client address neither the answer nor the metadata
    /// lists. Retriable: the cluster client asks again after a backoff.
    #[error("group {group:?} {}", no_coordinator_detail(*node_id))]
    NoCoordinator { group: String, node_id: u32 },
    /// The pipelining window is full: receive a reply before sending more.
    #[error("{in_flight} requests in flight, the window is {window}: receive a reply first")]
    WindowFull { in_flight: usize, window: usize },
    /// Push frames arrived faster than they were consumed and the bounded queue filled up.
    /// The push that did not fit was dropped, so its subscription now has a gap: unsubscribe
    /// and subscribe again from the last offset seen. Grant fewer credits or call `next_push`
    /// more often. The connection itself stays usable.
    #[error("{queued} push frames are queued, the limit is {limit}")]
    PushQueueFull { queued: usize, limit: usize },
    /// `recv_produce` was called with nothing in flight.
    #[error("no produce request is in flight")]
    NothingInFlight,
    /// [`crate::client::ClusterClient::connect`] was given an empty bootstrap list.
    #[error("no bootstrap address given: pass at least one HOST:PORT")]
    NoBootstrapAddress,
    /// A Metadata reply listed more brokers than the cluster client keeps
    /// ([`crate::client::RoutingConfig::brokers_max`]). The reply was not used.
    #[error("metadata from {addr} lists {brokers} brokers, more than the {limit} this client keeps (RoutingConfig::brokers_max)")]
    TooManyBrokers {
        addr: String,
        brokers: usize,
        limit: usize,
    },
    /// The cluster client's metadata names no reachable leader for the partition: none right
    /// now (`leader_node_id` 0), or a node whose address the metadata does not list. Nothing was
    /// sent; refresh the metadata and retry.
    #[error("partition {topic}/{partition} {}", no_leader_detail(*leader_node_id))]
    NoLeader {
        topic: String,
        partition: u32,
        leader_node_id: u32,
    },
}

fn no_leader_detail(leader_node_id: u32) -> String {
    if leader_node_id == 0 {
        "has no leader right now; retry after the cluster elects one".to_owned()
    } else {
        format!("is led by node {leader_node_id}, whose client address the metadata does not list; refresh the metadata and retry")
    }
}

fn no_coordinator_detail(node_id: u32) -> String {
    if node_id == 0 {
        "has no coordinator right now; retry after the cluster picks one".to_owned()
    } else {
        format!("is coordinated by node {node_id}, whose client address is unknown; refresh the metadata and retry")
    }
}

impl ClientError {
    /// The server's error code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the same request may succeed if sent again (possibly after reconnecting).
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Server { code, .. } => code.is_retriable(),
            ClientError::Timeout { .. }
            | ClientError::Io { .. }
            | ClientError::Closed { .. }
            | ClientError::Connect { .. }
            | ClientError::NoLeader { .. }
            | ClientError::NoCoordinator { .. } => true,
            _ => false,
        }
    }
}
