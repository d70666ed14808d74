//! The REST API on the HTTP port: topics, publishing and reading messages as JSON, and the
//! earlier system's `POST /publish` and `GET /status` (a compatibility layer).
//!
//! Publishing goes through the same path as the binary protocol: the request becomes a Produce
//! frame handled by the partition's owning shard, so durability (`acks`), ordering and limits are
//! identical. Values travel as UTF-8 text, or base64 with `"encoding": "base64"`.

use std::rc::Rc;

use base64::Engine as _;
use bytes::Bytes;
use net::codec::{message_id, Acks, ErrorCode, RecordView, Request, Response, TopicConfig};
use serde_json::{json, Value};

use crate::handlers::{self, Failure, ReadArgs};
use crate::shard::Shard;

/// Records one publish request may carry.
pub const RECORDS_PER_REQUEST_MAX: usize = 10_000;

/// An HTTP-level error: status, protocol code, message.
#[derive(Debug)]
pub struct HttpError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl HttpError {
    pub fn bad(message: impl Into<String>) -> HttpError {
        HttpError {
            status: 400,
            code: "INVALID_REQUEST",
            message: message.into(),
        }
    }
}

impl From<Failure> for HttpError {
    fn from(f: Failure) -> HttpError {
        let status = match f.code {
            ErrorCode::UnknownTopic | ErrorCode::UnknownPartition => 404,
            ErrorCode::TopicExists | ErrorCode::UnknownMember | ErrorCode::IllegalGeneration => 409,
            ErrorCode::MessageTooLarge | ErrorCode::FrameTooLarge => 413,
            ErrorCode::OffsetOutOfRange
            | ErrorCode::InvalidRequest
            | ErrorCode::InvalidConfig
            | ErrorCode::OutOfOrderSequence
            | ErrorCode::DuplicateSequence
            | ErrorCode::InvalidProducerEpoch => 400,
            ErrorCode::Throttled => 429,
            ErrorCode::NotLeader
            | ErrorCode::NotCoordinator
            | ErrorCode::RebalanceInProgress
            | ErrorCode::NotEnoughReplicas
            | ErrorCode::ShuttingDown
            | ErrorCode::Timeout => 503,
            _ => 500,
        };
        HttpError {
            status,
            code: f.code.name(),
            message: f.message,
        }
    }
}

type Result<T> = std::result::Result<T, HttpError>;

fn field_u64(v: &Value, name: &str) -> Result<Option<u64>> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(Some)
            .ok_or_else(|| HttpError::bad(format!("{name} must be a non-negative integer"))),
    }
}

fn field_u16(v: &Value, name: &str) -> Result<Option<u16>> {
    field_u64(v, name)?
        .map(|n| {
            u16::try_from(n)
                .map_err(|_| HttpError::bad(format!("{name} must be an integer from 0 to 65535")))
        })
        .transpose()
}

/// `POST /topics`.
pub async fn create_topic(shard: &Rc<Shard>, body: &Value) -> Result<Value> {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| HttpError::bad("body needs \"name\": the topic name"))?;
    let partitions = field_u64(body, "partitions")?
        .ok_or_else(|| HttpError::bad("body needs \"partitions\": a positive integer"))?;
    let config = TopicConfig {
        partitions: u32::try_from(partitions)
            .map_err(|_| HttpError::bad("partitions is too large"))?,
        retention_ms: field_u64(body, "retention_ms")?,
        retention_bytes: field_u64(body, "retention_bytes")?,
        segment_bytes: field_u64(body, "segment_bytes")?,
        compacted: match body.get("compacted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(HttpError::bad("compacted must be true or false")),
        },
        default_ttl_ms: field_u64(body, "default_ttl_ms")?,
        tier_after_ms: field_u64(body, "tier_after_ms")?,
        local_retention_bytes: field_u64(body, "local_retention_bytes")?,
        replication_factor: field_u16(body, "replication_factor")?,
        min_insync: field_u16(body, "min_insync")?,
    };
    // Topic admin runs on shard 0, which owns the catalog and the admin lock.
    let reply = call_shard(shard, 0, Request::CreateTopic { name, config }).await?;
    let id = match decode_reply(&reply)? {
        Response::CreateTopic { topic_id, .. } => topic_id,
        other => {
            return Err(
                Failure::new(ErrorCode::Internal, format!("unexpected reply {other:?}")).into(),
            )
        }
    };
    Ok(json!({"name": name, "topic_id": format!("{id:016x}"), "partitions": partitions}))
}

/// `DELETE /topics/{t}` (on shard 0, which owns the catalog).
pub async fn delete_topic(shard: &Rc<Shard>, name: &str) -> Result<Value> {
    let reply = call_shard(shard, 0, Request::DeleteTopic { name }).await?;
    decode_reply(&reply)?;
    Ok(json!({ "deleted": name }))
}

/// `GET /topics`.
pub fn list_topics(shard: &Shard) -> Value {
    let cat = handlers::catalog_snapshot(shard);
    let topics: Vec<Value> = cat
        .topics
        .values()
        .map(|t| json!({"name": t.name, "topic_id": format!("{:016x}", t.topic_id), "partitions": t.partitions}))
        .collect();
    json!({"topics": topics})
}

/// One partition of a topic description as JSON (`GET /topics/{t}` and `sprawl topic describe
/// --output json`): the tier fields are null for a partition that is not tiered.
pub fn partition_json(p: &net::codec::PartitionInfo) -> Value {
    let r = p.remote;
    json!({"partition": p.partition, "shard": p.shard, "start_offset": p.start_offset,
           "end_offset": p.end_offset, "durable_offset": p.durable_offset,
           "bytes_on_disk": p.bytes_on_disk,
           "local_start_offset": r.map(|r| r.local_start_offset),
           "remote_start_offset": r.map(|r| r.remote_start_offset),
           "remote_end_offset": r.map(|r| r.remote_end_offset),
           "remote_segments": r.map(|r| r.remote_segments),
           "remote_data_bytes": r.map(|r| r.remote_data_bytes),
           "remote_object_bytes": r.map(|r| r.remote_object_bytes)})
}

/// `GET /topics/{t}`.
pub async fn describe_topic(shard: &Rc<Shard>, name: &str) -> Result<Value> {
    let (t, parts) = handlers::describe(shard, name).await?;
    let parts = crate::metadata::with_leader_offsets(shard, &t, parts).await;
    let s = &t.settings;
    let parts: Vec<Value> = parts.iter().map(partition_json).collect();
    Ok(
        json!({"name": t.name, "topic_id": format!("{:016x}", t.topic_id), "partitions": t.partitions,
              "retention_ms": s.retention_ms, "retention_bytes": s.retention_bytes,
              "segment_bytes": s.segment_bytes, "compacted": s.compacted,
              "default_ttl_ms": s.default_ttl_ms, "tier_after_ms": s.tier_after_ms,
              "local_retention_bytes": s.local_retention_bytes, "partition_state": parts}),
    )
}

/// A record parsed from JSON.
#[derive(Debug, Default)]
pub struct JsonRecord {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub ttl_ms: u32,
}

fn bytes_of(v: &Value, what: &str, base64: bool) -> Result<Vec<u8>> {
    let s = v
        .as_str()
        .ok_or_else(|| HttpError::bad(format!("{what} must be a string")))?;
    if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| HttpError::bad(format!("{what} is not valid base64: {e}")))
    } else {
        Ok(s.as_bytes().to_vec())
    }
}

/// Parses `{"key", "value", "encoding", "headers", "ttl_ms"}`.
pub fn parse_record(v: &Value) -> Result<JsonRecord> {
    let encoding = match v.get("encoding") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) => Some(e.as_str()),
        Some(_) => return Err(HttpError::bad("encoding must be \"utf8\" or \"base64\"")),
    };
    let b64 = match encoding {
        None | Some("utf8") | Some("text") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(HttpError::bad(format!(
                "encoding must be \"utf8\" or \"base64\", not {other:?}"
            )))
        }
    };
    let value = v
        .get("value")
        .ok_or_else(|| HttpError::bad("each record needs a \"value\""))?;
    let mut rec = JsonRecord {
        value: bytes_of(value, "value", b64)?,
        ..JsonRecord::default()
    };
    if let Some(k) = v.get("key").filter(|k| !k.is_null()) {
        rec.key = Some(bytes_of(k, "key", b64)?);
    }
    if let Some(h) = v.get("headers").filter(|h| !h.is_null()) {
        let obj = h
            .as_object()
            .ok_or_else(|| HttpError::bad("headers must be an object of strings"))?;
        for (k, hv) in obj {
            rec.headers.push((
                k.as_bytes().to_vec(),
                bytes_of(hv, "a header value", false)?,
            ));
        }
    }
    if let Some(ttl) = field_u64(v, "ttl_ms")? {
        rec.ttl_ms = u32::try_from(ttl).map_err(|_| HttpError::bad("ttl_ms is too large"))?;
    }
    Ok(rec)
}

/// Parses `acks` ("none" | "leader" | "all", default "all").
pub fn parse_acks(v: Option<&Value>) -> Result<Acks> {
    let v = match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(HttpError::bad(
                "acks must be \"none\", \"leader\" or \"all\"",
            ))
        }
    };
    match v {
        None | Some("all") => Ok(Acks::All),
        Some("leader") => Ok(Acks::Leader),
        Some("none") => Ok(Acks::None),
        Some(other) => Err(HttpError::bad(format!(
            "acks must be none, leader or all, not {other:?}"
        ))),
    }
}

/// Publishes records to one partition through the owning shard. `None` for `acks=none`.
pub async fn publish(
    shard: &Rc<Shard>,
    topic: &str,
    partition: Option<u32>,
    records: &[JsonRecord],
    acks: Acks,
) -> Result<Vec<Value>> {
    if records.is_empty() || records.len() > RECORDS_PER_REQUEST_MAX {
        return Err(HttpError::bad(format!(
            "send 1 to {RECORDS_PER_REQUEST_MAX} records per request"
        )));
    }
    let t = shard
        .topic(topic)
        .ok_or_else(|| HttpError::from(handlers::unknown_topic(topic)))?;
    let partition = match partition {
        Some(p) => p,
        None => match &records[0].key {
            Some(k) => crc32c::crc32c(k) % t.partitions,
            None => {
                let n = shard.http_round_robin.get();
                shard.http_round_robin.set(n.wrapping_add(1));
                n % t.partitions
            }
        },
    };
    handlers::resolve(shard, topic, partition)?;
    let views: Vec<RecordView<'_>> = records
        .iter()
        .map(|r| RecordView {
            key: r.key.as_deref(),
            value: &r.value,
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect(),
            timestamp_ms: 0,
            ttl_ms: r.ttl_ms,
        })
        .collect();
    let request = Request::Produce {
        topic,
        partition,
        acks,
        producer: None,
        records: views,
    };
    let started = std::time::Instant::now();
    let reply = call_owner(shard, topic, partition, request).await?;
    // A REST publish is a produce like any other in the latency histograms.
    shard
        .stats
        .record_produce(topic, started.elapsed().as_micros() as u64);
    if reply.is_empty() {
        return Ok(Vec::new());
    }
    match decode_reply(&reply)? {
        Response::Produce {
            topic_id,
            partition,
            base_offset,
            record_count,
            duplicate,
            durable,
            ..
        } => Ok((0..u64::from(record_count))
            .map(|i| {
                let offset = base_offset + i;
                json!({"partition": partition, "offset": offset,
                       "id": message_id(topic_id, partition, offset),
                       "duplicate": duplicate, "durable": durable})
            })
            .collect()),
        other => Err(HttpError::from(Failure::new(
            ErrorCode::Internal,
            format!("unexpected reply {other:?}"),
        ))),
    }
}

/// Encodes `request` as a frame and has the partition's owning shard handle it, exactly like a
/// binary-protocol request. Returns the encoded reply (empty when the request expects none).
pub async fn call_owner(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    request: Request<'_>,
) -> Result<Bytes> {
    let t = handlers::resolve(shard, topic, partition)?;
    let owner = shard.owner(t.topic_id, partition);
    call_shard(shard, owner, request).await
}

/// Encodes `request` as a frame and has shard `to` handle it (shard 0 for topic admin); see
/// [`handlers::call_shard`]. A request too large to encode is a 413 saying what to send instead.
pub async fn call_shard(shard: &Rc<Shard>, to: usize, request: Request<'_>) -> Result<Bytes> {
    handlers::call_shard(shard, to, request)
        .await
        .map_err(|mut f| {
            if f.code == ErrorCode::MessageTooLarge {
                f.message
                    .push_str("; send fewer or smaller records per request");
            }
            HttpError::from(f)
        })
}

/// Decodes a reply frame; the generic error body and any error code become an [`HttpError`].
pub fn decode_reply(reply: &[u8]) -> Result<Response<'_>> {
    Ok(handlers::decode_reply(reply)?)
}

/// `POST /topics/{t}/messages`: one record object, or `{"records": [...], "acks", "partition"}`.
pub async fn post_messages(shard: &Rc<Shard>, topic: &str, body: &Value) -> Result<Value> {
    let acks = parse_acks(body.get("acks"))?;
    let partition = field_u64(body, "partition")?
        .map(|p| u32::try_from(p).map_err(|_| HttpError::bad("partition is too large")))
        .transpose()?;
    let records = match body.get("records") {
        Some(Value::Array(list)) => list.iter().map(parse_record).collect::<Result<Vec<_>>>()?,
        Some(_) => return Err(HttpError::bad("records must be an array of record objects")),
        None => vec![parse_record(body)?],
    };
    let results = publish(shard, topic, partition, &records, acks).await?;
    Ok(json!({"topic": topic, "results": results}))
}

/// `GET /topics/{t}/partitions/{p}/messages?offset=&max=&wait_ms=`.
pub async fn get_messages(
    shard: &Rc<Shard>,
    topic: &str,
    partition: &str,
    q: &[(String, String)],
) -> Result<Value> {
    let partition: u32 = partition
        .parse()
        .map_err(|_| HttpError::bad(format!("partition must be a number, not {partition:?}")))?;
    let num = |k: &str, default: u64| -> Result<u64> {
        match q.iter().find(|(n, _)| n == k) {
            None => Ok(default),
            Some((_, v)) => v.parse().map_err(|_| {
                HttpError::bad(format!("{k} must be a non-negative integer, not {v:?}"))
            }),
        }
    };
    let t = handlers::resolve(shard, topic, partition)?;
    let offset = num("offset", 0)?;
    let max = num("max", 100)?;
    if !(1..=10_000).contains(&max) {
        return Err(HttpError::bad(format!("max must be 1 to 10000, got {max}")));
    }
    let wait_ms = num("wait_ms", 0)?;
    if wait_ms > u64::from(handlers::FETCH_WAIT_MS_MAX) {
        return Err(HttpError::bad(format!(
            "wait_ms must be at most {}, got {wait_ms}",
            handlers::FETCH_WAIT_MS_MAX
        )));
    }
    let (max, wait_ms) = (max as usize, wait_ms as u32);
    let args = ReadArgs {
        topic_id: t.topic_id,
        partition,
        offset,
        max_bytes: 4 << 20,
        wait_ms,
    };
    let mut out = handlers::read_anywhere(shard, args).await?;
    out.records.truncate(max);
    handlers::record_e2e(shard, &out.records);
    let next = out.records.last().map_or(offset, |r| r.offset + 1);
    let records: Vec<Value> = out
        .records
        .iter()
        .map(|r| record_json(r, t.topic_id, partition))
        .collect();
    Ok(
        json!({"topic": topic, "partition": partition, "records": records,
              "next_offset": next, "high_offset": out.high_offset, "start_offset": out.start_offset}),
    )
}

/// One stored record as JSON: offset, timestamp, message id, key, value (base64 with
/// `"encoding": "base64"` when not UTF-8) and headers.
pub fn record_json(r: &storage::StoredRecord, topic_id: u64, partition: u32) -> Value {
    let mut v = json!({"offset": r.offset, "timestamp": r.timestamp_ms,
                       "id": message_id(topic_id, partition, r.offset)});
    let (value, b64) = text_or_base64(&r.value);
    v["value"] = json!(value);
    if b64 {
        v["encoding"] = json!("base64");
    }
    if let Some(k) = &r.key {
        v["key"] = json!(text_or_base64(k).0);
    }
    let headers: serde_json::Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, hv)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                json!(text_or_base64(hv).0),
            )
        })
        .collect();
    if !headers.is_empty() {
        v["headers"] = Value::Object(headers);
    }
    v
}

fn text_or_base64(b: &[u8]) -> (String, bool) {
    match std::str::from_utf8(b) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(b), true),
    }
}

/// `POST /publish {"topic", "payload", "id"?, "ttl"?}` of the earlier system: `payload` is text
/// (or any JSON, stored as its JSON text), `id` is kept as the record header `id`, `ttl` is
/// seconds to expiry. Answers with the message id the node assigned.
pub async fn compat_publish(shard: &Rc<Shard>, body: &Value) -> Result<Value> {
    let topic = body
        .get("topic")
        .and_then(Value::as_str)
        .ok_or_else(|| HttpError::bad("body needs \"topic\""))?;
    let payload = match body.get("payload") {
        None | Some(Value::Null) => return Err(HttpError::bad("body needs \"payload\"")),
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(other) => other.to_string().into_bytes(),
    };
    let mut rec = JsonRecord {
        value: payload,
        ..JsonRecord::default()
    };
    if let Some(id) = body.get("id").filter(|v| !v.is_null()) {
        let id = id.as_str().map_or_else(|| id.to_string(), str::to_string);
        rec.headers.push((b"id".to_vec(), id.into_bytes()));
    }
    if let Some(ttl_s) = field_u64(body, "ttl")? {
        let ms = ttl_s
            .checked_mul(1000)
            .and_then(|ms| u32::try_from(ms).ok())
            .ok_or_else(|| HttpError::bad("ttl (seconds) is too large; at most 4294967"))?;
        rec.ttl_ms = ms.max(1);
    }
    let results = publish(shard, topic, None, &[rec], Acks::All).await?;
    let r = results.first().cloned().unwrap_or(Value::Null);
    Ok(json!({"status": "published", "topic": topic, "id": r["id"],
              "partition": r["partition"], "offset": r["offset"]}))
}
