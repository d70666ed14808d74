//! A client for a Sprawl cluster: each partition's requests go to the node that leads it, each
//! consumer group's requests to the node that coordinates it.
//!
//! [`ClusterClient`] keeps a routing table ([`ClusterView`], from a Metadata request) and at most
//! one [`Client`] per broker address, connected when first needed and dropped when it fails.
//! Produce and fetch go to the partition's leader; group calls (join, sync, heartbeat, leave)
//! and the offset calls go to the coordinator of the group (the consumer name), found with
//! FindCoordinator and cached (`group.rs`; against servers without FindCoordinator the offset
//! calls go to the partition's leader); topic admin goes to any node that answers (the server
//! forwards it to the metadata leader itself).
//!
//! Failures are retried up to [`RoutingConfig::retries`] times, each after a doubling wait and
//! (but for `THROTTLED`) a metadata refresh (at most one per
//! [`RoutingConfig::metadata_refresh_min_ms`]):
//! - `NOT_LEADER`, `NOT_ENOUGH_REPLICAS` (an `acks = all` produce the partition cannot
//!   replicate enough right now), no known leader, or a connection to the leader that cannot be
//!   made: always, nothing was written (for group routing likewise `NOT_COORDINATOR`, no known
//!   coordinator, or one that cannot be reached, after forgetting the cached coordinator);
//! - `THROTTLED`: after the server's `retry_after_ms`;
//! - `UNKNOWN_TOPIC` / `UNKNOWN_PARTITION`: only while the partition is known to exist (this
//!   client created the topic within [`RoutingConfig::created_topic_grace_ms`], or the routing
//!   table lists the partition): the answering node's metadata lags;
//! - a connection that fails after the request was written, a client timeout, or the server's
//!   `TIMEOUT` / `STORAGE_ERROR` / `SHUTTING_DOWN`: only when sending again cannot duplicate
//!   data: fetch and the offset calls, and a produce that carries a [`ProducerIdent`] (the
//!   server drops a resent batch by its sequence). **A produce without a `ProducerIdent` is then
//!   not retried and the error is returned: the batch may have been written.**
//!
//! `REBALANCE_IN_PROGRESS`, `UNKNOWN_MEMBER` and `ILLEGAL_GENERATION` are returned at once: the
//! member must sync or rejoin. When the retries are spent the last error is returned.

mod group;
mod retry;
mod view;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{Client, ClientConfig, ClientError, FetchResult, ProduceAck, TopicInfo, TopicListing};
use crate::codec::{Acks, ProducerIdent, RecordView, TopicConfig};
use retry::{classify, drops_connection, Backoff, Decision, Resend, Stage};
use view::Route;

pub use retry::RoutingConfig;
pub use view::{ClusterView, PartitionLeader, TopicRoute};

/// Topics remembered as created by this client (for the metadata-lag retry rule).
const CREATED_TOPICS_MAX: usize = 1_024;

/// A routing client for a Sprawl cluster (or a single node). See the module docs for the retry
/// rules.
///
/// ```no_run
/// use net::client::{ClientConfig, ClusterClient};
/// use net::codec::{Acks, RecordView};
///
/// let bootstrap = ["10.0.0.1:7070", "10.0.0.2:7070"];
/// let mut cluster = ClusterClient::connect(&bootstrap, ClientConfig::default())?;
/// let value = b"hello";
/// let record = RecordView { key: None, value, headers: vec![], timestamp_ms: 0, ttl_ms: 0 };
/// let ack = cluster.produce("orders", 3, Acks::Leader, None, &[record])?;
/// println!("{:?} via {:?}", ack, cluster.leader_of("orders", 3));
/// # Ok::<(), net::client::ClientError>(())
/// ```
pub struct ClusterClient {
    config: ClientConfig,
    routing: RoutingConfig,
    bootstrap: Vec<String>,
    view: ClusterView,
    /// Address -> connection; at most `routing.brokers_max` entries.
    connections: HashMap<String, Client>,
    last_refresh: Instant,
    /// Topics this client created, and when; at most `CREATED_TOPICS_MAX`, oldest first.
    created: VecDeque<(String, Instant)>,
    /// Group -> its coordinator's node id and address, as FindCoordinator said; at most
    /// `group::COORDINATORS_MAX` entries.
    coordinators: HashMap<String, (u32, String)>,
}

impl ClusterClient {
    /// Connects to the first bootstrap address (in order) that answers and loads the metadata of
    /// every topic from it, with the default [`RoutingConfig`].
    pub fn connect(bootstrap: &[&str], config: ClientConfig) -> Result<Self, ClientError> {
        Self::connect_with(bootstrap, config, RoutingConfig::default())
    }

    /// [`ClusterClient::connect`] with explicit routing settings. Fails with the last address's
    /// error when none answers, and with [`ClientError::NoBootstrapAddress`] for an empty list.
    pub fn connect_with(
        bootstrap: &[&str],
        config: ClientConfig,
        routing: RoutingConfig,
    ) -> Result<Self, ClientError> {
        let mut last_error = ClientError::NoBootstrapAddress;
        for addr in bootstrap {
            let loaded = Client::connect(addr, config.clone())
                .and_then(|mut client| client.metadata(None).map(|m| (client, m)));
            let (client, metadata) = match loaded {
                Ok(loaded) => loaded,
                Err(e) => {
                    last_error = e;
                    continue;
                }
            };
            let view = ClusterView::from_metadata(&metadata, addr, routing.brokers_max)?;
            let mut connections = HashMap::new();
            connections.insert((*addr).to_owned(), client);
            return Ok(ClusterClient {
                config,
                routing,
                bootstrap: bootstrap.iter().map(|a| (*a).to_owned()).collect(),
                view,
                connections,
                last_refresh: Instant::now(),
                created: VecDeque::new(),
                coordinators: HashMap::new(),
            });
        }
        Err(last_error)
    }

    /// The current routing table.
    pub fn metadata(&self) -> &ClusterView {
        &self.view
    }

    /// The node the next request for `topic`/`partition` goes to, and its address.
    pub fn leader_of(&self, topic: &str, partition: u32) -> Option<(u32, &str)> {
        self.view.leader_of(topic, partition)
    }

    /// Reloads the routing table from the first node that answers (connected ones first, then
    /// the listed brokers, then the bootstrap addresses). Waits first when the previous load was
    /// less than [`RoutingConfig::metadata_refresh_min_ms`] ago. On failure the previous table
    /// stays in use and the last node's error is returned.
    pub fn refresh_metadata(&mut self) -> Result<&ClusterView, ClientError> {
        self.refresh()?;
        Ok(&self.view)
    }

    /// Open connections (at most one per broker address).
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// The connection to the partition's current leader, for calls this type does not route
    /// (subscriptions, pipelined produce). No retry: on `NOT_LEADER` call
    /// [`ClusterClient::refresh_metadata`] and ask again.
    pub fn leader_client(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> Result<&mut Client, ClientError> {
        let addr = self.leader_addr(topic, partition)?;
        self.connection(&addr)
    }

    /// [`Client::produce`] on the partition's leader. Retried per the module docs; without a
    /// `producer` a failure after the batch was written is returned, not retried (the batch may
    /// have been written: resending could duplicate it).
    pub fn produce(
        &mut self,
        topic: &str,
        partition: u32,
        acks: Acks,
        producer: Option<ProducerIdent>,
        records: &[RecordView<'_>],
    ) -> Result<Option<ProduceAck>, ClientError> {
        let resend = match producer {
            Some(_) => Resend::Safe,
            None => Resend::OnlyIfRefused,
        };
        self.on_leader(topic, partition, resend, |client| {
            client.produce(topic, partition, acks, producer, records)
        })
    }

    /// [`Client::fetch`] on the partition's leader.
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<FetchResult, ClientError> {
        self.on_leader(topic, partition, Resend::Safe, |client| {
            client.fetch(topic, partition, offset, max_bytes, max_wait_ms)
        })
    }

    /// [`Client::create_topic`] on any node that answers. Only a node that could not be
    /// connected to is skipped: a failure after the request was sent is returned (the topic may
    /// exist). For a while afterwards `UNKNOWN_TOPIC` for it is retried as metadata lag.
    pub fn create_topic(&mut self, name: &str, config: &TopicConfig) -> Result<u64, ClientError> {
        let topic_id = self.on_any_node(Resend::OnlyIfRefused, |c| c.create_topic(name, config))?;
        self.created.retain(|(t, _)| t != name);
        if self.created.len() >= CREATED_TOPICS_MAX {
            self.created.pop_front();
        }
        self.created.push_back((name.to_owned(), Instant::now()));
        Ok(topic_id)
    }

    /// [`Client::delete_topic`] on any node that answers (skipping only nodes that could not be
    /// connected to).
    pub fn delete_topic(&mut self, name: &str) -> Result<(), ClientError> {
        self.on_any_node(Resend::OnlyIfRefused, |c| c.delete_topic(name))?;
        self.created.retain(|(t, _)| t != name);
        self.view.remove_topic(name);
        Ok(())
    }

    /// [`Client::describe_topic`] on any node that answers.
    pub fn describe_topic(&mut self, name: &str) -> Result<TopicInfo, ClientError> {
        self.on_any_node(Resend::Safe, |c| c.describe_topic(name))
    }

    /// [`Client::list_topics`] on any node that answers.
    pub fn list_topics(&mut self) -> Result<Vec<TopicListing>, ClientError> {
        self.on_any_node(Resend::Safe, Client::list_topics)
    }

    /// Runs `op` on the partition's leader, retrying per the module docs.
    fn on_leader<T>(
        &mut self,
        topic: &str,
        partition: u32,
        resend: Resend,
        mut op: impl FnMut(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        if !self.view.contains_partition(topic, partition) {
            // New to this client (or just created): look before sending it anywhere. A failed
            // load leaves the old table; the request then goes where it can.
            let _ = self.refresh();
        }
        let mut backoff = Backoff::new(&self.routing);
        let mut retries_left = self.routing.retries;
        loop {
            let (error, stage) = match self.attempt(topic, partition, &mut op) {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            let decision = classify(&error, stage, resend);
            let retry = match decision {
                Decision::GiveUp => false,
                // The answering node lags when this client just created the topic or the table
                // (fresh whenever it did not list the partition: see above) lists it.
                Decision::IfPartitionExists => {
                    self.created_recently(topic) || self.view.contains_partition(topic, partition)
                }
                Decision::Refresh | Decision::Wait { .. } => true,
            };
            if !retry || retries_left == 0 {
                return Err(error);
            }
            retries_left -= 1;
            let mut wait_ms = backoff.next_ms();
            if let Decision::Wait { retry_after_ms } = decision {
                wait_ms = wait_ms.max(retry_after_ms);
            }
            std::thread::sleep(Duration::from_millis(wait_ms));
            if !matches!(decision, Decision::Wait { .. }) {
                // A failed load keeps the old table: the leader may be back on the next try.
                let _ = self.refresh();
            }
        }
    }

    /// One try of `op` on the partition's current leader. A partition the table does not list
    /// goes to the node the table came from, which answers for it.
    fn attempt<T>(
        &mut self,
        topic: &str,
        partition: u32,
        op: &mut impl FnMut(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, (ClientError, Stage)> {
        let addr = self
            .leader_addr(topic, partition)
            .map_err(|e| (e, Stage::NotSent))?;
        let client = self.connection(&addr).map_err(|e| (e, Stage::NotSent))?;
        op(client).map_err(|e| {
            if drops_connection(&e) {
                self.connections.remove(&addr);
            }
            (e, Stage::Sent)
        })
    }

    fn leader_addr(&self, topic: &str, partition: u32) -> Result<String, ClientError> {
        match self.view.route(topic, partition) {
            Route::Leader { addr, .. } => Ok(addr.to_owned()),
            Route::Unknown => Ok(self.view.source_addr().to_owned()),
            Route::NoLeader { leader_node_id } => Err(ClientError::NoLeader {
                topic: topic.to_owned(),
                partition,
                leader_node_id,
            }),
        }
    }

    /// Runs `op` on the first node that answers (see [`ClusterClient::candidates`]). The next
    /// node is tried when no connection could be made, or, with `Resend::Safe`, after a
    /// retriable failure.
    fn on_any_node<T>(
        &mut self,
        resend: Resend,
        mut op: impl FnMut(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut last_error = ClientError::NoBootstrapAddress;
        for addr in self.candidates() {
            let client = match self.connection(&addr) {
                Ok(client) => client,
                Err(e) => {
                    last_error = e;
                    continue;
                }
            };
            match op(client) {
                Ok(value) => return Ok(value),
                Err(e) => {
                    if drops_connection(&e) {
                        self.connections.remove(&addr);
                    }
                    if resend == Resend::OnlyIfRefused || !e.is_retriable() {
                        return Err(e);
                    }
                    last_error = e;
                }
            }
        }
        Err(last_error)
    }

    /// Every address worth asking, each once: where the table came from, open connections, the
    /// listed brokers, then the bootstrap addresses.
    fn candidates(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let all = std::iter::once(self.view.source_addr())
            .chain(self.connections.keys().map(String::as_str))
            .chain(self.view.brokers().values().map(String::as_str))
            .chain(self.bootstrap.iter().map(String::as_str));
        for addr in all {
            if !out.iter().any(|a| a == addr) {
                out.push(addr.to_owned());
            }
        }
        out
    }

    /// Loads the table from the first candidate that answers, pacing loads to one per
    /// `metadata_refresh_min_ms`.
    fn refresh(&mut self) -> Result<(), ClientError> {
        let min_interval = Duration::from_millis(self.routing.metadata_refresh_min_ms);
        let since = self.last_refresh.elapsed();
        if since < min_interval {
            std::thread::sleep(min_interval - since);
        }
        self.last_refresh = Instant::now();
        let mut last_error = ClientError::NoBootstrapAddress;
        for addr in self.candidates() {
            let loaded = match self.connection(&addr) {
                Ok(client) => client.metadata(None),
                Err(e) => {
                    last_error = e;
                    continue;
                }
            };
            match loaded {
                Ok(metadata) => {
                    let mut view =
                        ClusterView::from_metadata(&metadata, &addr, self.routing.brokers_max)?;
                    view.keep_newer_epochs(&self.view, self.routing.brokers_max);
                    self.view = view;
                    let view = &self.view;
                    self.connections.retain(|a, _| view.has_addr(a));
                    return Ok(());
                }
                Err(e) => {
                    if drops_connection(&e) {
                        self.connections.remove(&addr);
                    }
                    last_error = e;
                }
            }
        }
        Err(last_error)
    }

    /// The connection to `addr`, made (with the handshake) if there is none. At the limit, a
    /// connection to an address the table no longer lists is closed first, or else any one.
    fn connection(&mut self, addr: &str) -> Result<&mut Client, ClientError> {
        let full = self.connections.len() >= self.routing.brokers_max.max(1);
        if full && !self.connections.contains_key(addr) {
            let victim = self
                .connections
                .keys()
                .find(|a| !self.view.has_addr(a))
                .or_else(|| self.connections.keys().next())
                .cloned();
            if let Some(victim) = victim {
                self.connections.remove(&victim);
            }
        }
        match self.connections.entry(addr.to_owned()) {
            Entry::Occupied(open) => Ok(open.into_mut()),
            Entry::Vacant(slot) => Ok(slot.insert(Client::connect(addr, self.config.clone())?)),
        }
    }

    fn created_recently(&self, topic: &str) -> bool {
        let grace = Duration::from_millis(self.routing.created_topic_grace_ms);
        self.created
            .iter()
            .any(|(t, at)| t == topic && at.elapsed() < grace)
    }
}
