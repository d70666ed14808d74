//! The Sprawl driver. Control calls and consumers use `net`'s blocking [`Client`]; producers
//! speak the same protocol through `net`'s codec on their own socket, because an open-loop
//! producer must wait for acknowledgements with a sub-millisecond deadline (until its next
//! scheduled send), which the client's millisecond request timeout cannot express.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use net::client::{Client, ClientConfig};
use net::codec::{
    decode, encode, Acks, Body, Decoded, ErrorCode, Frame, Limits, RecordView, Request, Response,
    TopicConfig,
};

use super::{
    Ack, ConsumerConn, Delivered, DriverError, Endpoint, OutRecord, ProducerConn, Target,
    SEND_TS_HEADER,
};
use crate::config::{AckLevel, ConsumeFrom};

const TARGET: &str = "sprawl";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Records a consumer lets the server push ahead per partition.
const CONSUMER_CREDITS: u32 = 4_096;

pub struct SprawlTarget {
    endpoint: Endpoint,
}

impl SprawlTarget {
    pub fn new(endpoint: Endpoint) -> Self {
        SprawlTarget { endpoint }
    }

    fn client(&self, push_queue_max: usize) -> Result<Client, DriverError> {
        let config = ClientConfig {
            client_name: format!("loadgen/{}", env!("CARGO_PKG_VERSION")),
            push_queue_max,
            ..ClientConfig::default()
        };
        Ok(Client::connect(&self.endpoint.addr, config)?)
    }
}

impl Target for SprawlTarget {
    fn server_version(&self) -> Result<String, DriverError> {
        Ok(self.client(1)?.server_info().server_version.clone())
    }

    fn create_topic(&self) -> Result<(), DriverError> {
        let config = TopicConfig {
            partitions: self.endpoint.partitions,
            ..TopicConfig::default()
        };
        self.client(1)?
            .create_topic(&self.endpoint.topic, &config)?;
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
        let push_queue_max = (partitions.len() * CONSUMER_CREDITS as usize).max(1_024);
        let mut client = self.client(push_queue_max)?;
        let info = client.describe_topic(&self.endpoint.topic)?;
        let mut subscriptions = Vec::with_capacity(partitions.len());
        for &partition in partitions {
            let Some(p) = info.partitions.iter().find(|p| p.partition == partition) else {
                return Err(DriverError::Refused {
                    target: TARGET,
                    operation: "subscribe",
                    message: format!("topic {} has no partition {partition}", info.name),
                });
            };
            let offset = match from {
                ConsumeFrom::Latest => p.end_offset,
                ConsumeFrom::Earliest => p.start_offset,
            };
            let id = client.subscribe(&self.endpoint.topic, partition, offset, CONSUMER_CREDITS)?;
            subscriptions.push((id, 0u32));
        }
        Ok(Box::new(SprawlConsumer {
            client,
            subscriptions,
        }))
    }

    fn stored_records(&self) -> Result<Option<u64>, DriverError> {
        let info = self.client(1)?.describe_topic(&self.endpoint.topic)?;
        Ok(Some(info.partitions.iter().map(|p| p.end_offset).sum()))
    }
}

/// A pipelined producer on its own socket.
pub struct SprawlProducer {
    addr: String,
    topic: String,
    acks: Acks,
    stream: TcpStream,
    send_limits: Limits,
    recv_limits: Limits,
    write_buf: BytesMut,
    read_buf: Vec<u8>,
    start: usize,
    end: usize,
    next_correlation_id: u32,
    timestamps: Vec<[u8; 8]>,
    read_timeout: Option<Duration>,
}

impl SprawlProducer {
    pub fn connect(endpoint: &Endpoint) -> Result<Self, DriverError> {
        let stream = connect(&endpoint.addr)?;
        let frame_bytes_max = Limits::FRAME_BYTES_MAX_DEFAULT;
        let mut producer = SprawlProducer {
            addr: endpoint.addr.clone(),
            topic: endpoint.topic.clone(),
            acks: match endpoint.acks {
                AckLevel::None => Acks::None,
                AckLevel::Leader => Acks::Leader,
                AckLevel::All => Acks::All,
            },
            stream,
            send_limits: Limits::pre_handshake(),
            recv_limits: Limits::new(frame_bytes_max),
            write_buf: BytesMut::with_capacity(64 * 1024),
            read_buf: vec![0; READ_CHUNK_BYTES],
            start: 0,
            end: 0,
            next_correlation_id: 1,
            timestamps: Vec::with_capacity(endpoint.batch as usize),
            read_timeout: None,
        };
        let name = format!("loadgen/{}", env!("CARGO_PKG_VERSION"));
        producer.write_frame(0, Request::ApiVersions { client_name: &name })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let limits = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if let Some(result) = producer.next_frame(remaining, |response| match response {
                Response::ApiVersions {
                    frame_bytes_max, ..
                } => Ok(*frame_bytes_max),
                other => Err(format!("expected ApiVersions, got {:?}", other.api_key())),
            })? {
                break result;
            }
            if remaining.is_zero() {
                return Err(DriverError::Timeout {
                    target: TARGET,
                    addr: producer.addr.clone(),
                    timeout_ms: 10_000,
                });
            }
        };
        let frame_bytes_max = limits.1.map_err(|reason| producer.protocol(reason))?;
        producer.send_limits = Limits::new(frame_bytes_max);
        Ok(producer)
    }

    fn protocol(&self, reason: String) -> DriverError {
        DriverError::Protocol {
            target: TARGET,
            addr: self.addr.clone(),
            reason,
        }
    }

    fn io(&self, source: std::io::Error) -> DriverError {
        DriverError::Io {
            target: TARGET,
            addr: self.addr.clone(),
            source,
        }
    }

    fn write_frame(
        &mut self,
        correlation_id: u32,
        request: Request<'_>,
    ) -> Result<(), DriverError> {
        self.write_buf.clear();
        encode(
            &Frame::request(correlation_id, request),
            &mut self.write_buf,
            &self.send_limits,
        )
        .map_err(|e| self.protocol(format!("cannot encode the request: {e}")))?;
        let written = self.stream.write_all(&self.write_buf);
        written.map_err(|e| self.io(e))
    }

    /// Decodes the next buffered frame, reading for at most `timeout`. Returns its correlation
    /// id and what `interpret` made of its response, or `None` on timeout.
    fn next_frame<T>(
        &mut self,
        timeout: Duration,
        interpret: impl FnOnce(&Response<'_>) -> T,
    ) -> Result<Option<(u32, T)>, DriverError> {
        let deadline = Instant::now() + timeout;
        loop {
            match decode(&self.read_buf[self.start..self.end], &self.recv_limits) {
                Ok(Decoded::Frame(frame, used)) => {
                    let correlation_id = frame.header.correlation_id;
                    let Body::Response(response) = &frame.body else {
                        return Err(self.protocol("the server sent a request frame".into()));
                    };
                    let value = interpret(response);
                    self.start += used;
                    return Ok(Some((correlation_id, value)));
                }
                Ok(Decoded::Incomplete { needed }) => {
                    if !self.fill(needed, deadline)? {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(self.protocol(format!("undecodable reply: {e}"))),
            }
        }
    }

    /// Reads at least one byte before `deadline`; false on timeout.
    fn fill(&mut self, needed: usize, deadline: Instant) -> Result<bool, DriverError> {
        if self.start > 0 {
            self.read_buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // decode() checked the length prefix against the limit, so this stays bounded.
        let want = self.end + needed.max(READ_CHUNK_BYTES);
        if self.read_buf.len() < want {
            self.read_buf.resize(want, 0);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Ok(false);
        }
        // Round up so that short waits stay short but a wait is never zero (which means "block").
        let timeout = Some(remaining.max(Duration::from_micros(1)));
        if self.read_timeout != timeout {
            let set = self.stream.set_read_timeout(timeout);
            set.map_err(|e| self.io(e))?;
            self.read_timeout = timeout;
        }
        loop {
            match self.stream.read(&mut self.read_buf[self.end..]) {
                Ok(0) => {
                    return Err(DriverError::Closed {
                        target: TARGET,
                        addr: self.addr.clone(),
                    })
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(false)
                }
                Err(e) => return Err(self.io(e)),
            }
        }
    }
}

impl ProducerConn for SprawlProducer {
    fn send(
        &mut self,
        partition: u32,
        records: &[OutRecord<'_>],
    ) -> Result<Option<u64>, DriverError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        self.timestamps.clear();
        self.timestamps
            .extend(records.iter().map(|r| r.send_ts_ns.to_le_bytes()));
        let timestamps = &self.timestamps;
        let views: Vec<RecordView<'_>> = records
            .iter()
            .zip(timestamps)
            .map(|(r, ts)| RecordView {
                key: r.key,
                value: r.value,
                headers: vec![(SEND_TS_HEADER.as_bytes(), &ts[..])],
                timestamp_ms: (r.send_ts_ns / 1_000_000) as i64,
                ttl_ms: 0,
            })
            .collect();
        let request = Request::Produce {
            topic: &self.topic,
            partition,
            acks: self.acks,
            producer: None,
            records: views,
        };
        self.write_buf.clear();
        let encoded = encode(
            &Frame::request(correlation_id, request),
            &mut self.write_buf,
            &self.send_limits,
        );
        encoded.map_err(|e| self.protocol(format!("cannot encode the batch: {e}")))?;
        let written = self.stream.write_all(&self.write_buf);
        written.map_err(|e| self.io(e))?;
        Ok((self.acks != Acks::None).then_some(u64::from(correlation_id)))
    }

    fn recv_ack(&mut self, timeout: Duration) -> Result<Option<Ack>, DriverError> {
        let frame = self.next_frame(timeout, |response| {
            let (code, message) = response.error();
            match (code, response) {
                (ErrorCode::None, Response::Produce { .. }) => Ok(Ok(())),
                (ErrorCode::None, other) => Err(format!(
                    "expected a produce reply, got api {:?}",
                    other.api_key()
                )),
                (code, _) => Ok(Err(format!("{code}: {message}"))),
            }
        })?;
        let Some((correlation_id, outcome)) = frame else {
            return Ok(None);
        };
        let outcome = outcome.map_err(|reason| self.protocol(reason))?;
        Ok(Some(Ack {
            token: u64::from(correlation_id),
            outcome,
        }))
    }
}

fn connect(addr: &str) -> Result<TcpStream, DriverError> {
    use std::net::ToSocketAddrs;
    let error = |source| DriverError::Connect {
        target: TARGET,
        addr: addr.to_owned(),
        source,
    };
    let mut last = std::io::Error::new(ErrorKind::NotFound, "the name resolved to no address");
    for candidate in addr.to_socket_addrs().map_err(error)? {
        match TcpStream::connect_timeout(&candidate, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(error)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(error(last))
}

/// A consumer: one push subscription per partition on one connection, with credit granted back
/// as records are consumed.
pub struct SprawlConsumer {
    client: Client,
    /// (subscription id, records consumed since the last credit grant)
    subscriptions: Vec<(u32, u32)>,
}

impl ConsumerConn for SprawlConsumer {
    fn poll(
        &mut self,
        timeout: Duration,
        on_record: &mut dyn FnMut(Delivered),
    ) -> Result<usize, DriverError> {
        let Some(push) = self.client.next_push(timeout)? else {
            return Ok(0);
        };
        if let Some((code, message)) = push.ended {
            return Err(DriverError::Refused {
                target: TARGET,
                operation: "subscription",
                message: format!("{code}: {message}"),
            });
        }
        for record in &push.records {
            let send_ts_ns = record
                .headers
                .iter()
                .find(|(k, _)| k == SEND_TS_HEADER.as_bytes())
                .and_then(|(_, v)| super::decode_send_ts(v));
            on_record(Delivered {
                send_ts_ns,
                value_bytes: record.value.len() as u64,
            });
        }
        let n = push.records.len();
        if let Some(sub) = self
            .subscriptions
            .iter_mut()
            .find(|(id, _)| *id == push.subscription_id)
        {
            sub.1 += n as u32;
            if sub.1 >= CONSUMER_CREDITS / 2 {
                let grant = sub.1;
                sub.1 = 0;
                self.client.credit(push.subscription_id, grant)?;
            }
        }
        Ok(n)
    }
}
