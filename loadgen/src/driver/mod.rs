//! One driver per target system behind the same small traits, so the same generator and the same
//! histograms measure every system.
//!
//! A [`Target`] does the control-plane work (create the topic, count what is stored) and opens
//! connections: a [`ProducerConn`] pipelines batches and reports acknowledgements by token, a
//! [`ConsumerConn`] delivers records with the producer's send timestamp. Every connection is
//! blocking and used by one thread.

pub mod conn;
pub mod http;
pub mod kafka;
mod kafka_wire;
pub mod nats;
pub mod redis;
mod resp;
pub mod sprawl;
pub mod sprawl_consumer;
pub mod sprawl_follow;
mod sprawl_link;
pub mod sprawl_producer;

use std::time::Duration;

use crate::config::{AckLevel, ConsumeFrom, TargetKind};

/// Header (Sprawl, NATS, Kafka) or field (Redis) carrying the send timestamp: u64 little-endian
/// nanoseconds since the Unix epoch.
pub const SEND_TS_HEADER: &str = "lg-ts";

/// A record to send. `send_ts_ns` goes into the record for end-to-end latency.
#[derive(Clone, Copy, Debug)]
pub struct OutRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub send_ts_ns: u64,
}

/// The answer for one batch.
#[derive(Debug)]
pub struct Ack {
    pub token: u64,
    /// `Err` = the server refused the batch (the connection is still usable).
    pub outcome: Result<(), String>,
    /// Times the batch was sent again before this answer (Sprawl: after `NOT_LEADER`,
    /// `NOT_ENOUGH_REPLICAS` or a broken connection); 0 for drivers that never resend.
    pub resends: u32,
    /// An earlier send of the batch may have been written as well: it may be stored twice.
    pub maybe_twice: bool,
}

impl Ack {
    /// The answer to a batch sent once.
    pub fn once(token: u64, outcome: Result<(), String>) -> Self {
        Ack {
            token,
            outcome,
            resends: 0,
            maybe_twice: false,
        }
    }
}

/// A consumed record: the send timestamp it carried (if any) and its value size.
#[derive(Clone, Copy, Debug)]
pub struct Delivered {
    pub send_ts_ns: Option<u64>,
    pub value_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// No connection could be made.
    #[error("cannot connect to {target} at {addr}: {source}")]
    Connect {
        target: &'static str,
        addr: String,
        source: std::io::Error,
    },
    /// A read or write failed; the connection is unusable.
    #[error("I/O error talking to {target} at {addr}: {source}")]
    Io {
        target: &'static str,
        addr: String,
        source: std::io::Error,
    },
    /// The server closed the connection.
    #[error("{target} at {addr} closed the connection")]
    Closed { target: &'static str, addr: String },
    /// The server sent something this driver does not understand; the connection is unusable.
    #[error("{target} at {addr} sent an unexpected reply: {reason}")]
    Protocol {
        target: &'static str,
        addr: String,
        reason: String,
    },
    /// The server refused a control request (create topic, subscribe, ...).
    #[error("{target} refused {operation}: {message}")]
    Refused {
        target: &'static str,
        operation: &'static str,
        message: String,
    },
    /// The Sprawl client failed.
    #[error(transparent)]
    Sprawl(#[from] net::client::ClientError),
    /// The request cannot be expressed for this target.
    #[error("{target} does not support {what}")]
    Unsupported {
        target: &'static str,
        what: &'static str,
    },
    /// No acknowledgement came within the deadline.
    #[error("{target} at {addr}: no reply within {timeout_ms} ms")]
    Timeout {
        target: &'static str,
        addr: String,
        timeout_ms: u64,
    },
}

/// A pipelined producer connection.
pub trait ProducerConn: Send {
    /// Writes one batch for `partition`. Returns the token its [`Ack`] will carry, or `None` when
    /// no acknowledgement will come (`--acks none` where the target supports it).
    fn send(
        &mut self,
        partition: u32,
        records: &[OutRecord<'_>],
    ) -> Result<Option<u64>, DriverError>;

    /// The next acknowledgement of any batch in flight, in whatever order the server answers;
    /// `Ok(None)` when none arrived within `timeout`.
    fn recv_ack(&mut self, timeout: Duration) -> Result<Option<Ack>, DriverError>;
}

/// A consumer connection reading a fixed set of partitions.
pub trait ConsumerConn: Send {
    /// Waits up to `timeout` for records and hands each to `on_record`; returns how many.
    fn poll(
        &mut self,
        timeout: Duration,
        on_record: &mut dyn FnMut(Delivered),
    ) -> Result<usize, DriverError>;
}

/// What a driver needs to know about the run.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub kind: TargetKind,
    pub addr: String,
    pub topic: String,
    pub partitions: u32,
    pub acks: AckLevel,
    /// Batches in flight per producer connection.
    pub window: u32,
    /// Records per batch (to size buffers).
    pub batch: u32,
    pub value_bytes_max: u32,
    /// Sprawl topic creation: copies of each partition (`None` = the server's default).
    pub replication_factor: Option<u16>,
    /// Sprawl topic creation: in-sync copies an `acks=all` produce needs (`None` = default).
    pub min_insync: Option<u16>,
}

/// The control plane of one target and a factory for its connections.
pub trait Target: Send + Sync {
    /// The server's self-reported version, for the report.
    fn server_version(&self) -> Result<String, DriverError>;
    fn create_topic(&self) -> Result<(), DriverError>;
    fn open_producer(&self, producer_index: u32) -> Result<Box<dyn ProducerConn>, DriverError>;
    fn open_consumer(
        &self,
        partitions: &[u32],
        from: ConsumeFrom,
    ) -> Result<Box<dyn ConsumerConn>, DriverError>;
    /// Records stored in the topic (sum over partitions), when the target can tell.
    fn stored_records(&self) -> Result<Option<u64>, DriverError>;
}

/// The driver for `endpoint.kind`.
pub fn open(endpoint: Endpoint) -> Result<Box<dyn Target>, DriverError> {
    Ok(match endpoint.kind {
        TargetKind::Sprawl => Box::new(sprawl::SprawlTarget::new(endpoint)),
        TargetKind::Redis => Box::new(redis::RedisTarget::new(endpoint)),
        TargetKind::Nats => Box::new(nats::NatsTarget::new(endpoint)),
        TargetKind::Kafka => Box::new(kafka::KafkaTarget::new(endpoint)),
        TargetKind::Http => Box::new(http::HttpTarget::new(endpoint)),
    })
}

/// Reads the send timestamp out of a header/field value.
pub fn decode_send_ts(bytes: &[u8]) -> Option<u64> {
    let array: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_le_bytes(array))
}
