//! Apache Kafka through the `kafka-protocol` codecs over a blocking socket (no client library).
//! Single-broker only: every partition's leader is assumed to be the broker given with
//! `--broker` (a KRaft single-node cluster, as BENCHMARKING.md runs it). Records are sent in
//! RecordBatch v2 without compression; the send timestamp travels in the `lg-ts` header.
//!
//! `--acks` maps to Kafka's `acks`: none = 0 (no response), leader = 1, all = -1. Whether an
//! acknowledgement implies fsync is the broker's `flush.messages` setting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{
    create_topics_request::CreatableTopic,
    delete_topics_request::DeleteTopicState,
    fetch_request::{FetchPartition, FetchTopic},
    produce_request::{PartitionProduceData, TopicProduceData},
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, FetchRequest, FetchResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{Record, RecordBatchDecoder};

use super::kafka_wire::{
    encode_batch, error_name, topic_name, KafkaConn, API_VERSIONS_V, CONTROL_TIMEOUT,
    CREATE_TOPICS_V, DELETE_TOPICS_V, FETCH_V, LIST_OFFSETS_V, PRODUCE_V, TARGET,
    TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION,
};
use super::{
    Ack, ConsumerConn, Delivered, DriverError, Endpoint, OutRecord, ProducerConn, Target,
    SEND_TS_HEADER,
};
use crate::config::{AckLevel, ConsumeFrom};

pub struct KafkaTarget {
    endpoint: Endpoint,
}

impl KafkaTarget {
    pub fn new(endpoint: Endpoint) -> Self {
        KafkaTarget { endpoint }
    }

    fn all_partitions(&self) -> Vec<u32> {
        (0..self.endpoint.partitions).collect()
    }

    fn refused(operation: &'static str, message: String) -> DriverError {
        DriverError::Refused {
            target: TARGET,
            operation,
            message,
        }
    }
}

impl Target for KafkaTarget {
    /// Kafka does not report its release; the supported produce/fetch versions identify it.
    fn server_version(&self) -> Result<String, DriverError> {
        let mut conn = KafkaConn::connect(&self.endpoint.addr)?;
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("loadgen"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response: ApiVersionsResponse =
            conn.call(ApiKey::ApiVersions, API_VERSIONS_V, &request)?;
        if response.error_code != 0 {
            return Err(Self::refused(
                "ApiVersions",
                error_name(response.error_code),
            ));
        }
        let mut parts = Vec::new();
        for (api, ours) in [
            (ApiKey::Produce, PRODUCE_V),
            (ApiKey::Fetch, FETCH_V),
            (ApiKey::ListOffsets, LIST_OFFSETS_V),
            (ApiKey::CreateTopics, CREATE_TOPICS_V),
        ] {
            let Some(range) = response.api_keys.iter().find(|k| k.api_key == api as i16) else {
                return Err(DriverError::Unsupported {
                    target: TARGET,
                    what: "a broker without Produce/Fetch/ListOffsets/CreateTopics",
                });
            };
            if !(range.min_version..=range.max_version).contains(&ours) {
                return Err(Self::refused(
                    "ApiVersions",
                    format!(
                        "{api:?} v{ours} not in the broker's v{}..=v{}",
                        range.min_version, range.max_version
                    ),
                ));
            }
            parts.push(format!(
                "{api:?} v{}-{}",
                range.min_version, range.max_version
            ));
        }
        Ok(format!("Kafka protocol ({})", parts.join(", ")))
    }

    /// Deletes the topic if it exists, creates it (replication factor 1) and waits until every
    /// partition has a leader.
    fn create_topic(&self) -> Result<(), DriverError> {
        let mut conn = KafkaConn::connect(&self.endpoint.addr)?;
        let topic = &self.endpoint.topic;
        let delete = DeleteTopicsRequest::default()
            .with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(topic)))
            ])
            .with_timeout_ms(10_000);
        let deleted: DeleteTopicsResponse =
            conn.call(ApiKey::DeleteTopics, DELETE_TOPICS_V, &delete)?;
        for r in &deleted.responses {
            if r.error_code != 0 && r.error_code != UNKNOWN_TOPIC_OR_PARTITION {
                return Err(Self::refused("DeleteTopics", error_name(r.error_code)));
            }
        }
        let create = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(self.endpoint.partitions as i32)
                .with_replication_factor(1)])
            .with_timeout_ms(10_000);
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        // Deletion completes asynchronously: "already exists" means "not gone yet".
        loop {
            let created: CreateTopicsResponse =
                conn.call(ApiKey::CreateTopics, CREATE_TOPICS_V, &create)?;
            let code = created.topics.first().map_or(0, |t| t.error_code);
            match code {
                0 => break,
                TOPIC_ALREADY_EXISTS if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                code => return Err(Self::refused("CreateTopics", error_name(code))),
            }
        }
        loop {
            match conn.list_offsets(topic, &self.all_partitions(), -1)? {
                Ok(_) => return Ok(()),
                Err(code) if Instant::now() >= deadline => {
                    return Err(Self::refused("ListOffsets", error_name(code)))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn open_producer(&self, _producer_index: u32) -> Result<Box<dyn ProducerConn>, DriverError> {
        Ok(Box::new(KafkaProducer {
            conn: KafkaConn::connect(&self.endpoint.addr)?,
            topic: topic_name(&self.endpoint.topic),
            acks: match self.endpoint.acks {
                AckLevel::None => 0,
                AckLevel::Leader => 1,
                AckLevel::All => -1,
            },
            batch_buf: BytesMut::with_capacity(64 * 1024),
            records: Vec::with_capacity(self.endpoint.batch as usize),
        }))
    }

    fn open_consumer(
        &self,
        partitions: &[u32],
        from: ConsumeFrom,
    ) -> Result<Box<dyn ConsumerConn>, DriverError> {
        let mut conn = KafkaConn::connect(&self.endpoint.addr)?;
        let timestamp = match from {
            ConsumeFrom::Latest => -1,
            ConsumeFrom::Earliest => -2,
        };
        let offsets = conn
            .list_offsets(&self.endpoint.topic, partitions, timestamp)?
            .map_err(|code| Self::refused("ListOffsets", error_name(code)))?;
        Ok(Box::new(KafkaConsumer {
            conn,
            topic: topic_name(&self.endpoint.topic),
            positions: partitions.iter().copied().zip(offsets).collect(),
        }))
    }

    fn stored_records(&self) -> Result<Option<u64>, DriverError> {
        let mut conn = KafkaConn::connect(&self.endpoint.addr)?;
        let offsets = conn
            .list_offsets(&self.endpoint.topic, &self.all_partitions(), -1)?
            .map_err(|code| Self::refused("ListOffsets", error_name(code)))?;
        Ok(Some(offsets.iter().map(|&o| o.max(0) as u64).sum()))
    }
}

struct KafkaProducer {
    conn: KafkaConn,
    topic: TopicName,
    acks: i16,
    batch_buf: BytesMut,
    records: Vec<Record>,
}

impl ProducerConn for KafkaProducer {
    fn send(
        &mut self,
        partition: u32,
        records: &[OutRecord<'_>],
    ) -> Result<Option<u64>, DriverError> {
        encode_batch(records, &mut self.records, &mut self.batch_buf)
            .map_err(|e| self.conn.encode_error(e))?;
        let request = ProduceRequest::default()
            .with_acks(self.acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(self.topic.clone())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition as i32)
                    .with_records(Some(self.batch_buf.split().freeze()))])]);
        let correlation_id = self.conn.send(ApiKey::Produce, PRODUCE_V, &request)?;
        Ok((self.acks != 0).then_some(correlation_id as u32 as u64))
    }

    fn recv_ack(&mut self, timeout: Duration) -> Result<Option<Ack>, DriverError> {
        let Some((correlation_id, mut frame)) =
            self.conn
                .recv(ApiKey::Produce, PRODUCE_V, Instant::now() + timeout)?
        else {
            return Ok(None);
        };
        let response = ProduceResponse::decode(&mut frame, PRODUCE_V).map_err(|e| {
            self.conn
                .conn
                .protocol(format!("bad produce response: {e}"))
        })?;
        let refusal = response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.error_code != 0)
            .map(|p| {
                let detail = p.error_message.as_ref().map_or("", |m| m.as_str());
                let record = p
                    .record_errors
                    .first()
                    .and_then(|e| e.batch_index_error_message.as_ref());
                let record = record.map_or("", |m| m.as_str());
                format!("{} {detail} {record}", error_name(p.error_code))
                    .trim_end()
                    .to_owned()
            });
        Ok(Some(Ack::once(
            correlation_id as u32 as u64,
            refusal.map_or(Ok(()), Err),
        )))
    }
}

struct KafkaConsumer {
    conn: KafkaConn,
    topic: TopicName,
    /// partition -> next offset to read
    positions: HashMap<u32, i64>,
}

impl ConsumerConn for KafkaConsumer {
    fn poll(
        &mut self,
        timeout: Duration,
        on_record: &mut dyn FnMut(Delivered),
    ) -> Result<usize, DriverError> {
        let partitions = self.positions.iter().map(|(&p, &offset)| {
            FetchPartition::default()
                .with_partition(p as i32)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)
        });
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(timeout.as_millis().clamp(1, 60_000) as i32)
            .with_min_bytes(1)
            .with_max_bytes(16 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(self.topic.clone())
                .with_partitions(partitions.collect())]);
        let correlation_id = self.conn.send(ApiKey::Fetch, FETCH_V, &request)?;
        let deadline = Instant::now() + timeout + CONTROL_TIMEOUT;
        let Some((got, mut frame)) = self.conn.recv(ApiKey::Fetch, FETCH_V, deadline)? else {
            return Err(DriverError::Timeout {
                target: TARGET,
                addr: self.conn.conn.addr.clone(),
                timeout_ms: (timeout + CONTROL_TIMEOUT).as_millis() as u64,
            });
        };
        if got != correlation_id {
            return Err(self
                .conn
                .conn
                .protocol(format!("fetch response {got} to request {correlation_id}")));
        }
        let response = FetchResponse::decode(&mut frame, FETCH_V)
            .map_err(|e| self.conn.conn.protocol(format!("bad fetch response: {e}")))?;
        if response.error_code != 0 {
            return Err(KafkaTarget::refused(
                "Fetch",
                error_name(response.error_code),
            ));
        }
        let mut n = 0;
        for data in response.responses.iter().flat_map(|t| &t.partitions) {
            if data.error_code != 0 {
                return Err(KafkaTarget::refused("Fetch", error_name(data.error_code)));
            }
            let partition = data.partition_index as u32;
            let Some(mut records) = data.records.clone() else {
                continue;
            };
            let Some(position) = self.positions.get_mut(&partition) else {
                continue;
            };
            while records.has_remaining() {
                // A fetch may end with a partial batch: stop at the first one that does not decode.
                let Ok(set) = RecordBatchDecoder::decode(&mut records) else {
                    break;
                };
                for record in &set.records {
                    if record.control || record.offset < *position {
                        continue;
                    }
                    let send_ts_ns = record
                        .headers
                        .get(&StrBytes::from_static_str(SEND_TS_HEADER))
                        .and_then(|v| v.as_deref())
                        .and_then(super::decode_send_ts);
                    on_record(Delivered {
                        send_ts_ns,
                        value_bytes: record.value.as_ref().map_or(0, |v| v.len() as u64),
                    });
                    *position = record.offset + 1;
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}
