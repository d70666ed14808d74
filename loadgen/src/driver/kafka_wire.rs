//! Kafka wire plumbing for the Kafka driver: length-prefixed framing over [`BufConn`], the API
//! versions spoken, and the RecordBatch encoding of a loadgen batch.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::{
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

use super::conn::BufConn;
use super::{DriverError, OutRecord, SEND_TS_HEADER};

pub(super) const TARGET: &str = "kafka";
pub(super) const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Versions spoken (all present in Kafka 3.x and 4.x; topic names, not ids).
pub(super) const API_VERSIONS_V: i16 = 3;
pub(super) const PRODUCE_V: i16 = 9;
pub(super) const FETCH_V: i16 = 12;
pub(super) const LIST_OFFSETS_V: i16 = 7;
pub(super) const CREATE_TOPICS_V: i16 = 7;
pub(super) const DELETE_TOPICS_V: i16 = 6;
/// Error codes handled by name.
pub(super) const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub(super) const TOPIC_ALREADY_EXISTS: i16 = 36;

pub(super) fn error_name(code: i16) -> String {
    match code.err() {
        Some(e) => format!("{e:?} ({code})"),
        None => format!("error code {code}"),
    }
}

/// A connection speaking Kafka's length-prefixed request/response framing.
pub(super) struct KafkaConn {
    pub(super) conn: BufConn,
    next_correlation_id: i32,
    encode_buf: BytesMut,
}

impl KafkaConn {
    pub(super) fn connect(addr: &str) -> Result<Self, DriverError> {
        Ok(KafkaConn {
            conn: BufConn::connect(TARGET, addr, RESPONSE_BYTES_MAX + 4)?,
            next_correlation_id: 1,
            encode_buf: BytesMut::with_capacity(64 * 1024),
        })
    }

    pub(super) fn encode_error(&self, e: impl std::fmt::Display) -> DriverError {
        self.conn.protocol(format!("cannot encode a request: {e}"))
    }

    /// Writes one request; returns its correlation id.
    pub(super) fn send<R: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &R,
    ) -> Result<i32, DriverError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("loadgen")));
        self.encode_buf.clear();
        let encoded = header
            .encode(&mut self.encode_buf, api.request_header_version(version))
            .and_then(|()| body.encode(&mut self.encode_buf, version));
        encoded.map_err(|e| self.encode_error(e))?;
        let len = u32::try_from(self.encode_buf.len()).map_err(|e| self.encode_error(e))?;
        self.conn.write_buf.extend_from_slice(&len.to_be_bytes());
        self.conn.write_buf.extend_from_slice(&self.encode_buf);
        self.conn.flush()?;
        Ok(correlation_id)
    }

    /// The next response frame before `deadline` (its correlation id and body), or `None`.
    pub(super) fn recv(
        &mut self,
        api: ApiKey,
        version: i16,
        deadline: Instant,
    ) -> Result<Option<(i32, Bytes)>, DriverError> {
        loop {
            let buffered = self.conn.buffered();
            if buffered.len() >= 4 {
                let len = u32::from_be_bytes([buffered[0], buffered[1], buffered[2], buffered[3]])
                    as usize;
                if len > RESPONSE_BYTES_MAX {
                    return Err(self.conn.protocol(format!("response of {len} bytes")));
                }
                if buffered.len() >= 4 + len {
                    let mut frame = Bytes::copy_from_slice(&buffered[4..4 + len]);
                    self.conn.consume(4 + len);
                    let header =
                        ResponseHeader::decode(&mut frame, api.response_header_version(version))
                            .map_err(|e| self.conn.protocol(format!("bad response header: {e}")))?;
                    return Ok(Some((header.correlation_id, frame)));
                }
            }
            if !self.conn.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Sends a request and decodes its response.
    pub(super) fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp, DriverError> {
        let correlation_id = self.send(api, version, body)?;
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        let Some((got, mut frame)) = self.recv(api, version, deadline)? else {
            return Err(DriverError::Timeout {
                target: TARGET,
                addr: self.conn.addr.clone(),
                timeout_ms: CONTROL_TIMEOUT.as_millis() as u64,
            });
        };
        if got != correlation_id {
            return Err(self
                .conn
                .protocol(format!("response {got} to request {correlation_id}")));
        }
        Resp::decode(&mut frame, version)
            .map_err(|e| self.conn.protocol(format!("bad {api:?} response: {e}")))
    }

    /// Offsets of `partitions` at `timestamp` (-1 latest, -2 earliest), or the first error code.
    pub(super) fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[u32],
        timestamp: i64,
    ) -> Result<Result<Vec<i64>, i16>, DriverError> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p as i32)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let response: ListOffsetsResponse =
            self.call(ApiKey::ListOffsets, LIST_OFFSETS_V, &request)?;
        let mut offsets = Vec::with_capacity(partitions.len());
        for &p in partitions {
            let found = response
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .find(|r| r.partition_index == p as i32);
            match found {
                Some(r) if r.error_code == 0 => offsets.push(r.offset),
                Some(r) => return Ok(Err(r.error_code)),
                None => return Ok(Err(UNKNOWN_TOPIC_OR_PARTITION)),
            }
        }
        Ok(Ok(offsets))
    }
}

pub(super) fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// Encodes `records` as one uncompressed RecordBatch v2 into `out` (cleared first); `scratch`
/// is reused between batches.
pub fn encode_batch(
    records: &[OutRecord<'_>],
    scratch: &mut Vec<Record>,
    out: &mut BytesMut,
) -> Result<(), String> {
    scratch.clear();
    for (i, r) in records.iter().enumerate() {
        let mut headers = kafka_protocol::indexmap::IndexMap::new();
        headers.insert(
            StrBytes::from_static_str(SEND_TS_HEADER),
            Some(Bytes::copy_from_slice(&r.send_ts_ns.to_le_bytes())),
        );
        scratch.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch when `offset - sequence` changes, and a
            // produce request may carry one batch only: keep the difference constant here and
            // restore "no sequence" in the batch header below.
            sequence: i as i32,
            timestamp: (r.send_ts_ns / 1_000_000) as i64,
            key: r.key.map(Bytes::copy_from_slice),
            value: Some(Bytes::copy_from_slice(r.value)),
            headers,
        });
    }
    out.clear();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(out, scratch.iter(), &options).map_err(|e| e.to_string())?;
    // A batch without a producer id must carry base sequence -1 (brokers refuse others with
    // INVALID_RECORD); the CRC-32C covers everything from the attributes on, so recompute it.
    if out.len() < BATCH_HEADER_BYTES {
        return Err(format!(
            "encoded batch of {} bytes is shorter than its header",
            out.len()
        ));
    }
    out[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&NO_SEQUENCE.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// RecordBatch v2 header layout (Kafka's DefaultRecordBatch).
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const BASE_SEQUENCE_AT: usize = 53;
const BATCH_HEADER_BYTES: usize = 61;

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn batches_round_trip_with_send_timestamps() {
        let records = [
            OutRecord {
                key: Some(b"k1"),
                value: b"hello",
                send_ts_ns: 1_700_000_000_123_456_789,
            },
            OutRecord {
                key: None,
                value: b"",
                send_ts_ns: 1_700_000_000_223_456_789,
            },
        ];
        let mut scratch = Vec::new();
        let mut out = BytesMut::new();
        encode_batch(&records, &mut scratch, &mut out).unwrap();
        let mut bytes = out.freeze();
        let info = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).unwrap();
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].record_count, 2);
        assert_eq!(info[0].base_sequence, NO_SEQUENCE);
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(set.records.len(), 2);
        assert_eq!(set.records[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(set.records[1].offset, 1);
        assert_eq!(set.records[1].timestamp, 1_700_000_000_223);
        let ts = set.records[1]
            .headers
            .get(&StrBytes::from_static_str(SEND_TS_HEADER))
            .cloned()
            .flatten();
        assert_eq!(
            ts.as_deref().and_then(crate::driver::decode_send_ts),
            Some(1_700_000_000_223_456_789)
        );
    }
}
