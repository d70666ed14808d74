//! A blocking client over `std::net::TcpStream`.
//!
//! One [`Client`] is one connection. Simple calls (`create_topic`, `fetch`, ...) send a request
//! and wait for its reply. Produce can also be pipelined: [`Client::send_produce`] returns as soon
//! as the frame is written, [`Client::recv_produce`] returns the next acknowledgement (replies are
//! matched by correlation id, in whatever order the server sends them), and
//! [`ClientConfig::produce_window`] bounds how many are in flight. Subscriptions deliver
//! [`PushBatch`]es through [`Client::next_push`]; push frames that arrive while the client waits
//! for a reply are queued (bounded by [`ClientConfig::push_queue_max`]).
//!
//! Every buffer is bounded: the read buffer by the reply frame limit, the queues by the window and
//! the push limit.
//!
//! Versions: the handshake learns the server's `[min, max]` per api, and the client then sends
//! every request of that api at `min(client max, server max)` ([`Client::api_version`]). An api
//! with no common version fails the connect with [`ClientError::UnsupportedServer`]. Settings
//! that only a newer version can carry are refused locally, before anything is sent (for example
//! [`ClientError::TieringUnsupported`], [`ClientError::ReplicationUnsupported`]), and so is a
//! call of an api the server did not list at all
//! ([`ClientError::ApiUnsupported`], e.g. [`Client::meta_fetch`]).
//!
//! Consumer groups: [`Client::find_coordinator`], [`Client::join_group`],
//! [`Client::sync_group`], [`Client::heartbeat`], [`Client::leave_group`] and
//! [`Client::commit_offset_member`] (an offset commit as a group member, OffsetCommit v1).
//!
//! In a cluster, [`ClusterClient`] ([`cluster`]) routes each partition's requests to its leader
//! and each group's requests (and offsets) to the group's coordinator, over one [`Client`] per
//! broker, refreshing its routing and retrying where that is safe.

pub mod cluster;
mod error;
mod group;
mod internode;
mod io;
mod negotiate;
mod types;

use std::collections::{HashMap, VecDeque};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::BytesMut;

pub use cluster::{ClusterClient, ClusterView, PartitionLeader, RoutingConfig, TopicRoute};
pub use error::ClientError;
pub use types::{
    AlterInSyncReply, AlterInSyncRequest, BrokerInfo, ClusterMetadata, FetchResult,
    GroupAssignment, MetaFetchReply, ProduceAck, PushBatch, Record, ReplicaFetchReply,
    ReplicaFetchRequest, ServerInfo, TopicInfo, TopicListing, TopicMetadataInfo,
};

use crate::codec::{
    encode, Acks, ApiKey, Frame, Limits, ProducerIdent, RecordView, Request, TopicConfig,
};
use io::{Incoming, Wait};
use negotiate::negotiate;
use types::Reply;

/// Connection settings. `Default` gives values suited to the CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Sent in the handshake; shows up in server logs.
    pub client_name: String,
    pub connect_timeout_ms: u64,
    /// How long a call waits for its reply (a fetch adds its own `max_wait_ms`).
    pub request_timeout_ms: u64,
    /// Maximum pipelined produce requests in flight.
    pub produce_window: usize,
    /// Maximum push frames queued while the caller is not calling `next_push`.
    pub push_queue_max: usize,
    /// Largest reply frame accepted (value of the `length` field).
    pub reply_frame_bytes_max: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            client_name: format!("sprawl-net/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout_ms: 3_000,
            request_timeout_ms: 30_000,
            produce_window: 64,
            push_queue_max: 1_024,
            reply_frame_bytes_max: Limits::FRAME_BYTES_MAX_DEFAULT,
        }
    }
}

/// A pipelined produce outcome: the correlation id returned by [`Client::send_produce`] and the
/// server's answer for that batch.
pub type ProduceReply = (u32, Result<ProduceAck, ClientError>);

/// What happens to a reply when it arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiter {
    /// A blocking call is waiting for it.
    Call,
    /// A pipelined produce: queued for `recv_produce`.
    Pipelined,
    /// Its caller gave up (timeout): dropped on arrival.
    Abandoned,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    api: ApiKey,
    waiter: Waiter,
}

/// Requests (of any kind) that may be in flight beyond the produce window: blocking calls and
/// calls abandoned after a timeout whose reply has not come yet.
const CALLS_IN_FLIGHT_MAX: usize = 64;

/// A connection to one Sprawl node.
pub struct Client {
    conn: io::Connection,
    config: ClientConfig,
    server: ServerInfo,
    /// The version each api's requests are sent at, indexed by api key.
    api_versions: [u16; ApiKey::ALL.len()],
    send_limits: Limits,
    write_buf: BytesMut,
    next_correlation_id: u32,
    pending: HashMap<u32, Pending>,
    produce_in_flight: usize,
    call_replies: HashMap<u32, Result<Reply, ClientError>>,
    produce_replies: VecDeque<ProduceReply>,
    pushes: VecDeque<PushBatch>,
}

impl Client {
    /// Connects to `addr` (`HOST:PORT`) and performs the `ApiVersions` handshake.
    pub fn connect(addr: &str, config: ClientConfig) -> Result<Self, ClientError> {
        let stream = connect_stream(addr, config.connect_timeout_ms)?;
        let conn = io::Connection::new(
            addr.to_owned(),
            stream,
            Limits::new(config.reply_frame_bytes_max),
            Duration::from_millis(config.request_timeout_ms.max(1)),
        )?;
        let mut client = Client {
            conn,
            config,
            server: ServerInfo {
                versions: Vec::new(),
                server_version: String::new(),
                frame_bytes_max: Limits::FRAME_BYTES_MAX_PRE_HANDSHAKE,
            },
            // Until the handshake says otherwise, the oldest version of everything: the only one
            // any server is guaranteed to speak (the handshake itself is sent at it).
            api_versions: ApiKey::ALL.map(|api| api.supported_versions().0),
            send_limits: Limits::pre_handshake(),
            write_buf: BytesMut::with_capacity(64 * 1024),
            next_correlation_id: 1,
            pending: HashMap::new(),
            produce_in_flight: 0,
            call_replies: HashMap::new(),
            produce_replies: VecDeque::new(),
            pushes: VecDeque::new(),
        };
        let client_name = client.config.client_name.clone();
        let request = Request::ApiVersions {
            client_name: &client_name,
        };
        let Reply::ApiVersions(info) = client.call(request, "the handshake", 0)? else {
            unreachable!("call() checks the reply api matches the request");
        };
        client.api_versions = negotiate(addr, &info.versions)?;
        client.send_limits = Limits::new(info.frame_bytes_max);
        client.server = info;
        Ok(client)
    }

    /// The handshake result.
    pub fn server_info(&self) -> &ServerInfo {
        &self.server
    }

    /// The version requests of `api` are sent at: the highest both this client and the server
    /// implement. For an api the server did not list in the handshake, the oldest version this
    /// client implements.
    pub fn api_version(&self, api: ApiKey) -> u16 {
        self.api_versions[api as usize]
    }

    /// True when the server listed `api` in its handshake, i.e. implements some version of it.
    pub fn server_supports(&self, api: ApiKey) -> bool {
        self.server
            .versions
            .iter()
            .any(|range| range.api_key == api as u16)
    }

    /// The address this client connected to.
    pub fn addr(&self) -> &str {
        self.conn.addr()
    }

    /// `topics = None` asks for every topic. Each partition carries its placement when the
    /// negotiated Metadata version has room for it (v1 on) and the server knows one.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> Result<ClusterMetadata, ClientError> {
        let request = Request::Metadata {
            topics: topics.map(<[&str]>::to_vec),
        };
        match self.call(request, "metadata", 0)? {
            Reply::Metadata(m) => Ok(m),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    /// Creates a topic and returns its id.
    ///
    /// Tiered-storage settings (`tier_after_ms`, `local_retention_bytes`) need CreateTopic
    /// v[`TopicConfig::TIERING_VERSION`]; against an older server the call fails with
    /// [`ClientError::TieringUnsupported`] and sends nothing, rather than create a topic without
    /// the policy that was asked for. Likewise the replication settings (`replication_factor`,
    /// `min_insync`) need v[`TopicConfig::REPLICATION_VERSION`]; against an older server the
    /// call fails with [`ClientError::ReplicationUnsupported`] and sends nothing. (Tiering is
    /// checked first.)
    pub fn create_topic(&mut self, name: &str, config: &TopicConfig) -> Result<u64, ClientError> {
        let version = self.api_version(ApiKey::CreateTopic);
        let addr = || self.conn.addr().to_owned();
        if let (true, Some(field)) = (
            version < TopicConfig::TIERING_VERSION,
            config.first_tiering_field(),
        ) {
            return Err(ClientError::TieringUnsupported {
                addr: addr(),
                field,
                negotiated_version: version,
                required_version: TopicConfig::TIERING_VERSION,
            });
        }
        if let (true, Some(field)) = (
            version < TopicConfig::REPLICATION_VERSION,
            config.first_replication_field(),
        ) {
            return Err(ClientError::ReplicationUnsupported {
                addr: addr(),
                field,
                negotiated_version: version,
                required_version: TopicConfig::REPLICATION_VERSION,
            });
        }
        let request = Request::CreateTopic {
            name,
            config: *config,
        };
        match self.call(request, "create topic", 0)? {
            Reply::CreateTopic(id) => Ok(id),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    pub fn delete_topic(&mut self, name: &str) -> Result<(), ClientError> {
        self.call(Request::DeleteTopic { name }, "delete topic", 0)
            .map(drop)
    }

    pub fn describe_topic(&mut self, name: &str) -> Result<TopicInfo, ClientError> {
        match self.call(Request::DescribeTopic { name }, "describe topic", 0)? {
            Reply::DescribeTopic(t) => Ok(t),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    pub fn list_topics(&mut self) -> Result<Vec<TopicListing>, ClientError> {
        match self.call(Request::ListTopics, "list topics", 0)? {
            Reply::ListTopics(t) => Ok(t),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    /// Produces one batch and waits for its acknowledgement; `Ok(None)` with `acks = none`,
    /// which the server never answers.
    ///
    /// Sent at the negotiated Produce version: v1 (same layout as v0) when the server lists it,
    /// whose answer to an `acks = all` batch the partition cannot replicate enough is
    /// [`ClientError::Server`] with [`crate::codec::ErrorCode::NotEnoughReplicas`] (nothing was
    /// written; retriable). A v0 server answers `TIMEOUT` in that situation instead.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: u32,
        acks: Acks,
        producer: Option<ProducerIdent>,
        records: &[RecordView<'_>],
    ) -> Result<Option<ProduceAck>, ClientError> {
        let request = produce_request(topic, partition, acks, producer, records);
        if acks == Acks::None {
            self.send(request, Waiter::Call)?;
            return Ok(None);
        }
        match self.call(request, "produce acknowledgement", 0)? {
            Reply::Produce(ack) => Ok(Some(ack)),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    /// Sends a produce batch without waiting. Returns its correlation id, or `None` with
    /// `acks = none` (no reply will come). Fails with [`ClientError::WindowFull`] when
    /// [`ClientConfig::produce_window`] requests are in flight: call [`Client::recv_produce`].
    pub fn send_produce(
        &mut self,
        topic: &str,
        partition: u32,
        acks: Acks,
        producer: Option<ProducerIdent>,
        records: &[RecordView<'_>],
    ) -> Result<Option<u32>, ClientError> {
        if self.produce_in_flight >= self.config.produce_window {
            return Err(ClientError::WindowFull {
                in_flight: self.produce_in_flight,
                window: self.config.produce_window,
            });
        }
        let request = produce_request(topic, partition, acks, producer, records);
        let waiter = if acks == Acks::None {
            Waiter::Call
        } else {
            Waiter::Pipelined
        };
        let correlation_id = self.send(request, waiter)?;
        Ok((acks != Acks::None).then_some(correlation_id))
    }

    /// Pipelined produce requests awaiting their acknowledgement.
    pub fn produce_in_flight(&self) -> usize {
        self.produce_in_flight
    }

    /// Waits for the next pipelined produce reply. The outer error is a connection failure;
    /// the inner one is the server's answer for that batch.
    pub fn recv_produce(&mut self) -> Result<ProduceReply, ClientError> {
        if self.produce_replies.is_empty() && self.produce_in_flight == 0 {
            return Err(ClientError::NothingInFlight);
        }
        let wait = self.wait(0, "produce acknowledgement");
        loop {
            if let Some(reply) = self.produce_replies.pop_front() {
                return Ok(reply);
            }
            self.receive_one(wait)?;
        }
    }

    /// Fetches records from `offset`; the server may hold the request up to `max_wait_ms`
    /// when no record is available yet.
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<FetchResult, ClientError> {
        let request = Request::Fetch {
            topic,
            partition,
            offset,
            max_bytes,
            max_wait_ms,
        };
        match self.call(request, "fetch", u64::from(max_wait_ms))? {
            Reply::Fetch(f) => Ok(f),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    /// Starts a push subscription and returns its id. The server pushes at most `credits`
    /// records before [`Client::credit`] grants more.
    pub fn subscribe(
        &mut self,
        topic: &str,
        partition: u32,
        offset: u64,
        credits: u32,
    ) -> Result<u32, ClientError> {
        let request = Request::Subscribe {
            topic,
            partition,
            offset,
            credits,
        };
        match self.call(request, "subscribe", 0)? {
            Reply::Subscribe(id) => Ok(id),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    /// Grants `credits` more records to a subscription.
    pub fn credit(&mut self, subscription_id: u32, credits: u32) -> Result<(), ClientError> {
        let request = Request::Credit {
            subscription_id,
            credits,
        };
        self.call(request, "credit", 0).map(drop)
    }

    /// Ends a subscription and drops its queued pushes.
    pub fn unsubscribe(&mut self, subscription_id: u32) -> Result<(), ClientError> {
        self.call(Request::Unsubscribe { subscription_id }, "unsubscribe", 0)?;
        self.pushes.retain(|p| p.subscription_id != subscription_id);
        Ok(())
    }

    /// The next pushed batch of any subscription, or `None` if none arrives within `timeout`.
    pub fn next_push(&mut self, timeout: Duration) -> Result<Option<PushBatch>, ClientError> {
        let wait = Wait::new(timeout, "a push");
        loop {
            if let Some(push) = self.pushes.pop_front() {
                return Ok(Some(push));
            }
            match self.receive_one(wait) {
                Ok(()) => {}
                Err(ClientError::Timeout { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Commits `offset` (the next offset to consume) for a named consumer, outside group
    /// membership (see [`Client::commit_offset_member`] for a group member's commit).
    pub fn commit_offset(
        &mut self,
        consumer: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), ClientError> {
        self.commit_offset_member(consumer, topic, partition, offset, "", 0)
    }

    /// The committed offset of a named consumer, `None` if it never committed.
    pub fn fetch_offset(
        &mut self,
        consumer: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, ClientError> {
        let request = Request::OffsetFetch {
            consumer,
            topic,
            partition,
        };
        match self.call(request, "offset fetch", 0)? {
            Reply::OffsetFetch(o) => Ok(o),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    fn wait(&self, extra_ms: u64, operation: &'static str) -> Wait {
        let timeout_ms = self.config.request_timeout_ms.saturating_add(extra_ms);
        Wait::new(Duration::from_millis(timeout_ms), operation)
    }

    /// Sends `request` and waits for its reply.
    fn call(
        &mut self,
        request: Request<'_>,
        operation: &'static str,
        extra_wait_ms: u64,
    ) -> Result<Reply, ClientError> {
        let correlation_id = self.send(request, Waiter::Call)?;
        let wait = self.wait(extra_wait_ms, operation);
        loop {
            if let Some(reply) = self.call_replies.remove(&correlation_id) {
                return reply;
            }
            if let Err(e) = self.receive_one(wait) {
                if let Some(p) = self.pending.get_mut(&correlation_id) {
                    p.waiter = Waiter::Abandoned;
                }
                return Err(e);
            }
        }
    }

    /// Encodes and writes one request; registers it as pending when a reply is expected.
    fn send(&mut self, request: Request<'_>, waiter: Waiter) -> Result<u32, ClientError> {
        if self.pending.len() >= self.config.produce_window + CALLS_IN_FLIGHT_MAX {
            return Err(ClientError::WindowFull {
                in_flight: self.pending.len(),
                window: self.config.produce_window + CALLS_IN_FLIGHT_MAX,
            });
        }
        let mut correlation_id = self.next_correlation_id;
        while self.pending.contains_key(&correlation_id) {
            correlation_id = correlation_id.wrapping_add(1);
        }
        self.next_correlation_id = correlation_id.wrapping_add(1);
        let api = request.api_key();
        let expects_reply = request.expects_reply();
        self.write_buf.clear();
        encode(
            &Frame::request_at(correlation_id, self.api_version(api), request),
            &mut self.write_buf,
            &self.send_limits,
        )?;
        self.conn.write_all(&self.write_buf)?;
        if expects_reply {
            self.pending.insert(correlation_id, Pending { api, waiter });
            if waiter == Waiter::Pipelined {
                self.produce_in_flight += 1;
            }
        }
        Ok(correlation_id)
    }

    /// Reads one frame and routes it: a reply to its waiter, a push to the push queue.
    fn receive_one(&mut self, wait: Wait) -> Result<(), ClientError> {
        match self.conn.read_incoming(wait)? {
            Incoming::Push(push) => {
                if self.pushes.len() >= self.config.push_queue_max {
                    return Err(ClientError::PushQueueFull {
                        queued: self.pushes.len(),
                        limit: self.config.push_queue_max,
                    });
                }
                self.pushes.push_back(push);
            }
            Incoming::Reply {
                correlation_id,
                api_key,
                result,
            } => {
                let Some(pending) = self.pending.remove(&correlation_id) else {
                    return Err(ClientError::UnknownCorrelation {
                        addr: self.conn.addr().to_owned(),
                        correlation_id,
                    });
                };
                if api_key != pending.api as u16 {
                    return Err(ClientError::UnexpectedReply {
                        correlation_id,
                        expected: pending.api,
                        got_api_key: api_key,
                    });
                }
                match pending.waiter {
                    Waiter::Call => {
                        self.call_replies.insert(correlation_id, result);
                    }
                    Waiter::Pipelined => {
                        self.produce_in_flight -= 1;
                        let ack = result.map(|reply| match reply {
                            Reply::Produce(ack) => ack,
                            other => unreachable!("api key checked above: {other:?}"),
                        });
                        self.produce_replies.push_back((correlation_id, ack));
                    }
                    Waiter::Abandoned => {}
                }
            }
        }
        Ok(())
    }
}

fn produce_request<'a>(
    topic: &'a str,
    partition: u32,
    acks: Acks,
    producer: Option<ProducerIdent>,
    records: &[RecordView<'a>],
) -> Request<'a> {
    Request::Produce {
        topic,
        partition,
        acks,
        producer,
        records: records.to_vec(),
    }
}

fn connect_stream(addr: &str, connect_timeout_ms: u64) -> Result<TcpStream, ClientError> {
    let candidates = addr
        .to_socket_addrs()
        .map_err(|source| ClientError::Resolve {
            addr: addr.to_owned(),
            source,
        })?;
    let timeout = Duration::from_millis(connect_timeout_ms.max(1));
    let mut last_error = None;
    for candidate in candidates {
        match TcpStream::connect_timeout(&candidate, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    Err(ClientError::Connect {
        addr: addr.to_owned(),
        source: last_error.unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the name resolved to no address",
            )
        }),
    })
}
