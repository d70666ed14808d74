//! The Sprawl driver, for a single node or a cluster. Every partition is served by its leader
//! node, which Metadata v1 names (a single node names itself for everything): producers
//! ([`SprawlProducer`]) send each batch to its partition's leader over one pipelined socket per
//! leader and resend on `NOT_LEADER` / `NOT_ENOUGH_REPLICAS` / a broken connection; consumers
//! ([`SprawlConsumer`]) subscribe to each partition on its leader. Control calls (create,
//! describe) go to the `--broker` node, which answers for the cluster.
//!
//! Producers speak the protocol through `net`'s codec on their own sockets, because an open-loop
//! producer must wait for acknowledgements with a sub-millisecond deadline (until its next
//! scheduled send), which the client's millisecond request timeout cannot express.

use std::time::{Duration, Instant};

use net::client::{Client, ClientConfig, ClusterView, PartitionLeader};
use net::codec::TopicConfig;

pub use super::sprawl_consumer::SprawlConsumer;
pub use super::sprawl_follow::PartitionFollowers;
use super::sprawl_link::TARGET;
pub use super::sprawl_producer::SprawlProducer;
use super::{ConsumerConn, DriverError, Endpoint, ProducerConn, Target};
use crate::config::ConsumeFrom;

/// How long `create_topic` waits for every partition to have a leader (and, when replicated,
/// every replica in sync) before the run starts anyway.
const PLACEMENT_WAIT: Duration = Duration::from_secs(20);

pub struct SprawlTarget {
    endpoint: Endpoint,
}

impl SprawlTarget {
    pub fn new(endpoint: Endpoint) -> Self {
        SprawlTarget { endpoint }
    }

    fn client(&self) -> Result<Client, DriverError> {
        Ok(Client::connect(&self.endpoint.addr, client_config(1))?)
    }

    /// Waits (up to [`PLACEMENT_WAIT`]) until the metadata names a leader with a known address
    /// for every partition and, for a replicated topic, lists every replica in sync, and every
    /// other node's metadata lists the topic too (nodes load new topics a little later); true
    /// when it does.
    fn wait_placed(&self) -> Result<bool, DriverError> {
        let mut client = self.client()?;
        let deadline = Instant::now() + PLACEMENT_WAIT;
        loop {
            let metadata = client.metadata(Some(&[self.endpoint.topic.as_str()]))?;
            let known = |node: u32| metadata.brokers.iter().any(|b| b.node_id == node);
            let placed = metadata
                .topics
                .iter()
                .find(|t| t.name == self.endpoint.topic)
                .is_some_and(|t| {
                    t.partitions.len() == self.endpoint.partitions as usize
                        && t.partitions.iter().all(|p| match &p.placement {
                            None => true,
                            // A lone node may be node 0 and name itself leader 0.
                            Some(pl) if metadata.brokers.len() <= 1 => {
                                pl.in_sync.len() >= pl.replicas.len()
                            }
                            Some(pl) => {
                                pl.leader != 0
                                    && known(pl.leader)
                                    && pl.in_sync.len() >= pl.replicas.len()
                            }
                        })
                });
            let everywhere = || {
                metadata.brokers.iter().all(|b| {
                    let c = Client::connect(&b.client_address, client_config(1));
                    c.and_then(|mut c| c.metadata(Some(&[self.endpoint.topic.as_str()])))
                        .is_ok_and(|m| m.topics.iter().any(|t| t.name == self.endpoint.topic))
                })
            };
            if placed && (metadata.brokers.len() <= 1 || everywhere()) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub(super) fn client_config(push_queue_max: usize) -> ClientConfig {
    ClientConfig {
        client_name: format!("loadgen/{}", env!("CARGO_PKG_VERSION")),
        push_queue_max,
        ..ClientConfig::default()
    }
}

/// Where requests for `topic`/`partition` go per `view`: the leader's address, the answering
/// node's for a partition the table does not list (it answers for itself), `None` while the
/// partition has no reachable leader.
pub(super) fn leader_addr(view: &ClusterView, topic: &str, partition: u32) -> Option<String> {
    match view.topic(topic).and_then(|t| t.partitions.get(&partition)) {
        None => Some(view.source_addr().to_owned()),
        Some(PartitionLeader::NoLeader { .. }) => None,
        Some(_) => view.leader_of(topic, partition).map(|(_, a)| a.to_owned()),
    }
}

impl Target for SprawlTarget {
    fn server_version(&self) -> Result<String, DriverError> {
        Ok(self.client()?.server_info().server_version.clone())
    }

    fn create_topic(&self) -> Result<(), DriverError> {
        let config = TopicConfig {
            partitions: self.endpoint.partitions,
            replication_factor: self.endpoint.replication_factor,
            min_insync: self.endpoint.min_insync,
            ..TopicConfig::default()
        };
        self.client()?.create_topic(&self.endpoint.topic, &config)?;
        if !self.wait_placed()? {
            eprintln!(
                "loadgen: after {} s not every partition of {} has a leader with all replicas in sync; starting anyway",
                PLACEMENT_WAIT.as_secs(),
                self.endpoint.topic
            );
        }
        Ok(())
    }

    fn open_producer(&self, _producer_index: u32) -> Result<Box<dyn ProducerConn>, DriverError> {
        Ok(Box::new(SprawlProducer::connect(&self.endpoint)?))
    }

    fn open_consumer(
        &self,
        partitions: &[u32],
        from: ConsumeFrom,
    ) -> Result<Box<dyn ConsumerConn>, DriverError> {
        // A cluster (several nodes in the metadata) gets a thread per partition.
        let nodes = self.client()?.metadata(Some(&[]))?.brokers.len();
        if nodes > 1 {
            let followers = PartitionFollowers::open(&self.endpoint, partitions, from)?;
            return Ok(Box::new(followers));
        }
        Ok(Box::new(SprawlConsumer::open(
            &self.endpoint,
            partitions,
            from,
        )?))
    }

    fn stored_records(&self) -> Result<Option<u64>, DriverError> {
        let info = self.client()?.describe_topic(&self.endpoint.topic)?;
        Ok(Some(info.partitions.iter().map(|p| p.end_offset).sum()))
    }
}

/// A refusal of a control request, in the driver's terms.
pub(super) fn refused(operation: &'static str, message: String) -> DriverError {
    DriverError::Refused {
        target: TARGET,
        operation,
        message,
    }
}
