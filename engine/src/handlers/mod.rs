//! Request handling on the shard that owns the data.
//!
//! Every handler is split in two: a synchronous start (decode, validate, append) that runs the
//! moment the request is taken from a socket or the mesh, so appends keep their arrival order; and a
//! future for whatever must wait (fdatasync, long-poll, other shards), which the caller spawns.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use net::codec::{
    decode, encode, Acks, Body, Decoded, ErrorCode, FetchedRecordView, Frame, FrameHeader, Limits,
    ProducerIdent, RecordView, Request, Response,
};
use storage::{AppendOutcome, LogConfig, ProducerInfo, StorageError, StoredRecord};

use crate::catalog::TopicMeta;
use crate::config::ServeConfig;
use crate::metrics::add;
use crate::partition::Partition;
use crate::shard::{CallBody, ReplyBody, Shard};

mod produce;
mod read;
use produce::{offset_commit, produce_start};
pub use read::{encode_fetch, read_anywhere, read_local, views, wire_bytes_estimate};

/// A future on the shard's own executor.
pub type LocalFut<T> = Pin<Box<dyn Future<Output = T>>>;

/// Header of error frames that answer no particular request (the frame that caused them could
/// not be read far enough to know its header).
pub const NO_HEADER: FrameHeader = FrameHeader {
    api_key: 0,
    api_version: 0,
    correlation_id: 0,
    flags: 0,
};

/// Initial buffer of an encoded response; larger ones grow it.
const RESPONSE_BYTES_TYPICAL: usize = 256;

/// Longest long-poll a fetch may ask for.
pub const FETCH_WAIT_MS_MAX: u32 = 30_000;

/// Wall-clock milliseconds since the Unix epoch (record timestamps, TTL, retention).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The storage configuration of a topic's partitions. A tiered topic's retention applies to its
/// remote log: local segments go only through the cold tier (`crate::tiering`), after upload.
pub fn log_config(cfg: &ServeConfig, t: &TopicMeta) -> LogConfig {
    let s = &t.settings;
    let tiered = crate::tiering::is_tiered(t);
    LogConfig {
        segment_bytes_max: s.segment_bytes.unwrap_or(cfg.segment_bytes_default),
        retention_ms: s.retention_ms.filter(|_| !tiered),
        retention_bytes: s.retention_bytes.filter(|_| !tiered),
        default_ttl_ms: s.default_ttl_ms,
        compacted: s.compacted,
        batch_bytes_max: cfg.frame_bytes_max,
        // Segments are reserved and prefaulted one window (1 MiB) at a time just ahead of the
        // writes, by background jobs: write-prefaulting a window costs a flush at most one
        // window of zeros to write back, and takes the write faults (do_wp_page, page_mkwrite)
        // off the reactor's append memcpy. See docs/benchmarks/prefault.md.
        prefault: storage::Prefault::Write,
        prefault_window_bytes: storage::PREFAULT_WINDOW_BYTES_DEFAULT,
        ..LogConfig::default()
    }
}

/// A failure to report to the client.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// Arguments of a read on the owning shard.
#[derive(Debug, Clone)]
pub struct ReadArgs {
    pub topic_id: u64,
    pub partition: u32,
    pub offset: u64,
    pub max_bytes: u32,
    pub wait_ms: u32,
}

/// Records read from a partition, with its offsets at the time of the read.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    pub records: Vec<StoredRecord>,
    pub high_offset: u64,
    pub start_offset: u64,
}

/// Result of a read.
pub type ReadReply = Result<ReadOutcome, Failure>;

/// Maps a storage error to a protocol error with a message that says what to do.
pub fn storage_failure(e: &StorageError) -> Failure {
    match e {
        StorageError::BatchTooLarge { .. } => Failure::new(
            ErrorCode::MessageTooLarge,
            format!("{e}; send smaller batches"),
        ),
        StorageError::OutOfOrderSequence {
            producer_id,
            expected,
            got,
            ..
        } if expected.wrapping_sub(*got) < 1 << 31 => Failure::new(
            // Behind the producer's position: an old retry of a batch written long ago, older than
            // the dedup window, so its offsets are no longer known. Not a gap, not a new write.
            ErrorCode::DuplicateSequence,
            format!(
                "producer {producer_id}: sequence {got} was already written (next expected {expected}); keep at most {} batches in flight so retries stay inside the dedup window",
                storage::PRODUCER_BATCHES_KEPT
            ),
        ),
        StorageError::OutOfOrderSequence { .. } => {
            Failure::new(ErrorCode::OutOfOrderSequence, e.to_string())
        }
        StorageError::InvalidProducerEpoch { .. } => {
            Failure::new(ErrorCode::InvalidProducerEpoch, e.to_string())
        }
        StorageError::OffsetOutOfRange { .. } => {
            Failure::new(ErrorCode::OffsetOutOfRange, e.to_string())
        }
        other => Failure::new(ErrorCode::StorageError, other.to_string()),
    }
}

/// Message for an unknown topic, with the way out.
pub fn unknown_topic(name: &str) -> Failure {
    Failure::new(
        ErrorCode::UnknownTopic,
        format!(
            "topic {name:?} does not exist; list topics with `sprawl topic list` or create it with `sprawl topic create {name} --partitions N`"
        ),
    )
}

/// Resolves a topic and checks the partition index.
pub fn resolve(shard: &Shard, topic: &str, partition: u32) -> Result<TopicMeta, Failure> {
    let t = shard.topic(topic).ok_or_else(|| unknown_topic(topic))?;
    if partition >= t.partitions {
        return Err(Failure::new(
            ErrorCode::UnknownPartition,
            format!(
                "topic {topic:?} has partitions 0..{}, not {partition}",
                t.partitions
            ),
        ));
    }
    Ok(t)
}

/// Decodes a reply frame (from another shard or node); the generic error body and any error code
/// in the response become a [`Failure`] carrying that code and message.
pub fn decode_reply(reply: &[u8]) -> Result<Response<'_>, Failure> {
    let limits = Limits::new(u32::MAX >> 1);
    match net::codec::decode(reply, &limits) {
        Ok(net::codec::Decoded::Frame(f, _)) => match f.body {
            net::codec::Body::Response(r) => {
                let (code, message) = r.error();
                if code != ErrorCode::None {
                    return Err(Failure::new(code, message));
                }
                Ok(r)
            }
            net::codec::Body::Request(_) => {
                Err(Failure::new(ErrorCode::Internal, "a request came back"))
            }
        },
        _ => Err(Failure::new(ErrorCode::Internal, "undecodable reply")),
    }
}

/// Encodes `request` as a frame and has shard `to` of this node handle it, exactly like a
/// binary-protocol request. Returns the encoded reply frame (empty when the request expects
/// none), still to be read with [`decode_reply`].
///
/// Fails with MESSAGE_TOO_LARGE (the encoder's message) when the request cannot be encoded, and
/// with SHUTTING_DOWN when shard `to` no longer answers.
pub async fn call_shard(
    shard: &Rc<Shard>,
    to: usize,
    request: Request<'_>,
) -> Result<Bytes, Failure> {
    let mut buf = BytesMut::new();
    encode(&Frame::request(0, request), &mut buf, &limits(shard))
        .map_err(|e| Failure::new(ErrorCode::MessageTooLarge, e.to_string()))?;
    let frame = buf.freeze();
    let reply = if to == shard.id {
        start_frame(shard, frame).await
    } else {
        match shard.call(to, CallBody::Frame(frame)).await {
            Some(ReplyBody::Frame(r)) => r,
            _ => {
                return Err(Failure::new(
                    ErrorCode::ShuttingDown,
                    "the shard serving this request is shutting down; retry",
                ))
            }
        }
    };
    Ok(reply.unwrap_or_default())
}

/// Encodes a response frame; on encoding failure, an INTERNAL error frame instead.
pub fn encode_response(header: FrameHeader, response: Response<'_>, limits: &Limits) -> Bytes {
    // Most responses (produce acknowledgements, commits, errors) fit: one allocation instead of a
    // chain of reallocations as the frame grows (~3% of a shard's CPU at 128 B produce, perf).
    encode_response_sized(header, response, limits, RESPONSE_BYTES_TYPICAL)
}

/// [`encode_response`] into a buffer of `capacity` bytes: a fetch or push of a megabyte of
/// records sized up front is one allocation, not a dozen doublings that copy it again.
pub fn encode_response_sized(
    header: FrameHeader,
    response: Response<'_>,
    limits: &Limits,
    capacity: usize,
) -> Bytes {
    let mut buf = crate::frame_pool::buffer(capacity);
    match encode(
        &Frame::response_at(header.correlation_id, header.api_version, response),
        &mut buf,
        limits,
    ) {
        Ok(_) => buf.freeze(),
        Err(e) => {
            let msg = format!("cannot encode the response: {e}");
            encode_error(header, &Failure::new(ErrorCode::Internal, msg), 0, limits)
        }
    }
}

/// Encodes the generic error frame answering `header`.
pub fn encode_error(
    header: FrameHeader,
    f: &Failure,
    retry_after_ms: u32,
    limits: &Limits,
) -> Bytes {
    let mut buf = BytesMut::new();
    let mut message: &str = &f.message;
    if message.len() > 1024 {
        let mut cut = 1024;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message = &message[..cut];
    }
    let frame = Frame::error(header, f.code, message, retry_after_ms);
    // An error frame with a bounded message always fits any limit the server uses.
    let _ = encode(&frame, &mut buf, limits);
    buf.freeze()
}

pub fn limits(shard: &Shard) -> Limits {
    Limits::new(shard.config.frame_bytes_max)
}

/// Starts work asked for by another shard.
pub fn start_call(shard: &Rc<Shard>, body: CallBody) -> LocalFut<ReplyBody> {
    match body {
        CallBody::Frame(frame) => {
            let fut = start_frame(shard, frame);
            Box::pin(async move { ReplyBody::Frame(fut.await) })
        }
        CallBody::Read(args) => {
            let shard = shard.clone();
            Box::pin(async move { ReplyBody::Read(read_local(&shard, args).await) })
        }
        CallBody::ApplyCatalog(c) => {
            let shard = shard.clone();
            Box::pin(async move { ReplyBody::Done(shard.apply_catalog(c).await) })
        }
        CallBody::PartitionInfo { topic_id } => {
            let info = local_partition_info(shard, topic_id);
            Box::pin(async move { ReplyBody::Info(info) })
        }
        CallBody::Move {
            topic,
            partition,
            to,
        } => {
            let shard = shard.clone();
            Box::pin(async move {
                ReplyBody::Moved(crate::moves::move_partition(&shard, &topic, partition, to).await)
            })
        }
        CallBody::Analytics(view) => {
            let reply = crate::http::analytics_view(shard, view);
            Box::pin(async move { ReplyBody::Analytics(reply) })
        }
        CallBody::RecordsIn => {
            let n = shard.metrics.records_in.get();
            Box::pin(async move { ReplyBody::Count(n) })
        }
        CallBody::ClusterView => {
            let v = crate::membership::view(shard);
            Box::pin(async move { ReplyBody::Json(v) })
        }
        CallBody::Groups => {
            let v = serde_json::Value::Array(crate::groups::describe(shard));
            Box::pin(async move { ReplyBody::Json(v) })
        }
        CallBody::ClusterPrometheus => {
            let mut text = String::new();
            crate::membership::prometheus(shard, &mut text);
            Box::pin(async move { ReplyBody::Text(text) })
        }
        CallBody::Metrics => {
            let m = local_stats_taking_keys(shard, Some(1), true).1;
            Box::pin(async move { ReplyBody::Metrics(Box::new(m)) })
        }
        CallBody::Release {
            topic_id,
            partition,
        } => {
            let shard = shard.clone();
            Box::pin(async move { ReplyBody::Done(shard.release(topic_id, partition).await) })
        }
        CallBody::ApplyRouting(r) => {
            let shard = shard.clone();
            Box::pin(async move { ReplyBody::Done(shard.apply_routing(r).await) })
        }
        CallBody::Stats { window_s } => {
            let snap = local_stats(shard, window_s);
            Box::pin(async move { ReplyBody::Stats(Box::new(snap)) })
        }
    }
}

/// Handles a request frame owned by this shard (produce, offsets, admin on shard 0).
pub fn start_frame(shard: &Rc<Shard>, frame: Bytes) -> LocalFut<Option<Bytes>> {
    let limits = limits(shard);
    let decoded = match decode(&frame, &limits) {
        Ok(Decoded::Frame(f, _)) => f,
        Ok(Decoded::Incomplete { .. }) | Err(_) => {
            // The forwarding shard decoded this frame already; failing now is a bug.
            let header = NO_HEADER;
            let f = Failure::new(ErrorCode::Internal, "forwarded frame no longer decodes");
            return ready(Some(encode_error(header, &f, 0, &limits)));
        }
    };
    let header = decoded.header;
    let Body::Request(req) = decoded.body else {
        let f = Failure::new(
            ErrorCode::InvalidRequest,
            "a response frame was sent as a request",
        );
        return ready(Some(encode_error(header, &f, 0, &limits)));
    };
    match req {
        Request::Produce {
            topic,
            partition,
            acks,
            producer,
            records,
        } => produce_start(shard, header, topic, partition, acks, producer, &records),
        Request::JoinGroup { .. }
        | Request::SyncGroup { .. }
        | Request::Heartbeat { .. }
        | Request::LeaveGroup { .. } => crate::groups::start_frame(shard, header, &req),
        Request::OffsetCommit { member_id, .. }
            if crate::groups::offsets_at_coordinator(shard, member_id) =>
        {
            crate::groups::start_frame(shard, header, &req)
        }
        Request::OffsetFetch { .. } if crate::groups::offsets_at_coordinator(shard, "") => {
            crate::groups::start_frame(shard, header, &req)
        }
        Request::OffsetCommit {
            consumer,
            topic,
            partition,
            offset,
            ..
        } => {
            let shard = shard.clone();
            let (consumer, topic) = (consumer.to_string(), topic.to_string());
            Box::pin(async move {
                let res = offset_commit(&shard, &consumer, &topic, partition, offset).await;
                Some(match res {
                    Ok(()) => encode_response(
                        header,
                        Response::OffsetCommit {
                            error: ErrorCode::None,
                            message: "",
                        },
                        &limits,
                    ),
                    Err(f) => encode_error(header, &f, 0, &limits),
                })
            })
        }
        Request::OffsetFetch {
            consumer,
            topic,
            partition,
        } => {
            let res = resolve(shard, topic, partition).and_then(|t| {
                let p = owned(shard, &t, partition)?;
                let offset = p.committed.borrow().get(consumer).copied();
                Ok(offset)
            });
            ready(Some(match res {
                Ok(offset) => encode_response(
                    header,
                    Response::OffsetFetch {
                        error: ErrorCode::None,
                        message: "",
                        offset,
                    },
                    &limits,
                ),
                Err(f) => encode_error(header, &f, 0, &limits),
            }))
        }
        Request::CreateTopic { name, config } => {
            let shard = shard.clone();
            let name = name.to_string();
            Box::pin(async move {
                Some(
                    match crate::admin::create_topic(&shard, &name, config).await {
                        Ok(topic_id) => encode_response(
                            header,
                            Response::CreateTopic {
                                error: ErrorCode::None,
                                message: "",
                                topic_id,
                            },
                            &limits,
                        ),
                        Err(f) => encode_error(header, &f, 0, &limits),
                    },
                )
            })
        }
        Request::DeleteTopic { name } => {
            let shard = shard.clone();
            let name = name.to_string();
            Box::pin(async move {
                Some(match crate::admin::delete_topic(&shard, &name).await {
                    Ok(()) => encode_response(
                        header,
                        Response::DeleteTopic {
                            error: ErrorCode::None,
                            message: "",
                        },
                        &limits,
                    ),
                    Err(f) => encode_error(header, &f, 0, &limits),
                })
            })
        }
        Request::ReplicaFetch {
            topic,
            partition,
            replica,
            leader_epoch,
            fetch_offset,
            last_fetched_epoch,
            durable_offset,
            max_bytes,
            max_wait_ms,
        } => {
            let shard = shard.clone();
            let target =
                resolve(&shard, topic, partition).and_then(|t| owned(&shard, &t, partition));
            let req = cluster::FetchRequest {
                replica,
                leader_epoch,
                fetch_offset,
                last_fetched_epoch,
                durable_offset,
            };
            let max_bytes =
                max_bytes.clamp(1, limits.frame_bytes_max.saturating_sub(64 << 10).max(1));
            Box::pin(async move {
                let served = match target {
                    Ok(p) => {
                        crate::replication::leader::serve(&shard, &p, req, max_bytes, max_wait_ms)
                            .await
                    }
                    Err(f) => Err(f),
                };
                Some(match served {
                    Ok(s) => encode_response(
                        header,
                        Response::ReplicaFetch {
                            error: ErrorCode::None,
                            message: "",
                            leader_epoch: s.answer.leader_epoch,
                            fetch_offset: s.answer.fetch_offset,
                            last_fetched_epoch: s.answer.last_fetched_epoch,
                            high_watermark: s.high_watermark(),
                            log_start_offset: s.log_start_offset,
                            diverging: s.diverging(),
                            batch_epochs: s.batch_epochs.clone(),
                            batches: &s.batches,
                        },
                        &limits,
                    ),
                    Err(f) => encode_error(header, &f, 0, &limits),
                })
            })
        }
        other => {
            let f = Failure::new(
                ErrorCode::Internal,
                format!("{:?} is not handled on the owning shard", other.api_key()),
            );
            ready(Some(encode_error(header, &f, 0, &limits)))
        }
    }
}

fn ready<T: 'static>(v: T) -> LocalFut<T> {
    Box::pin(std::future::ready(v))
}

/// The open partition for `(topic, partition)` if this shard owns it.
pub fn owned(shard: &Shard, t: &TopicMeta, partition: u32) -> Result<Rc<Partition>, Failure> {
    crate::metadata::check_leader(shard, t, partition)?;
    shard.partition(t.topic_id, partition).ok_or_else(|| {
        Failure::new(
            ErrorCode::NotLeader,
            format!(
                "partition {}/{partition} is not open on shard {} (routing changed); retry",
                t.name, shard.id
            ),
        )
    })
}

/// Partition descriptions of a topic for the partitions this shard owns.
pub fn local_partition_info(shard: &Shard, topic_id: u64) -> Vec<net::codec::PartitionInfo> {
    let mut out: Vec<net::codec::PartitionInfo> =
        shard
            .partitions
            .borrow()
            .values()
            .filter(|p| p.topic_id == topic_id)
            .map(|p| {
                let log = p.log.borrow();
                // The start is the log's, remote part included: "from the beginning" reads it all.
                let local_start = log.start_offset();
                let start = p
                    .cold
                    .get()
                    .and_then(|c| c.remote_range())
                    .map_or(local_start, |(rs, _)| rs.min(local_start));
                net::codec::PartitionInfo {
                    partition: p.index,
                    start_offset: start,
                    end_offset: log.end_offset(),
                    durable_offset: log.durable_offset(),
                    shard: shard.id as u32,
                    bytes_on_disk: log.stats().bytes_on_disk,
                    remote: p.cold.get().and_then(|c| c.stats()).map(|s| {
                        net::codec::RemoteTierInfo {
                            local_start_offset: local_start,
                            remote_start_offset: s.remote_start_offset,
                            remote_end_offset: s.remote_end_offset,
                            remote_segments: u32::try_from(s.remote_segments).unwrap_or(u32::MAX),
                            remote_data_bytes: s.remote_data_bytes,
                            remote_object_bytes: s.remote_object_bytes,
                        }
                    }),
                }
            })
            .collect();
    out.sort_by_key(|p| p.partition);
    out
}

/// Describes a topic by asking every shard for the partitions it owns.
pub async fn describe(
    shard: &Rc<Shard>,
    name: &str,
) -> Result<(TopicMeta, Vec<net::codec::PartitionInfo>), Failure> {
    let t = shard.topic(name).ok_or_else(|| unknown_topic(name))?;
    let mut parts = local_partition_info(shard, t.topic_id);
    for s in (0..shard.shards).filter(|&s| s != shard.id) {
        match shard
            .call(
                s,
                CallBody::PartitionInfo {
                    topic_id: t.topic_id,
                },
            )
            .await
        {
            Some(ReplyBody::Info(mut v)) => parts.append(&mut v),
            _ => {
                return Err(Failure::new(
                    ErrorCode::ShuttingDown,
                    format!("shard {s} did not answer"),
                ))
            }
        }
    }
    parts.sort_by_key(|p| p.partition);
    Ok((t, parts))
}

/// Shared by the connection code: the catalog as an `Arc` snapshot.
pub fn catalog_snapshot(shard: &Shard) -> Arc<crate::catalog::Catalog> {
    shard.catalog.borrow().clone()
}

/// Histograms and counters of this shard.
pub fn local_stats(
    shard: &Shard,
    window_s: Option<u64>,
) -> (crate::stats::StatsSnapshot, crate::metrics::MetricsSnapshot) {
    local_stats_taking_keys(shard, window_s, false)
}

/// [`local_stats`]; with `take_keys` the sampled keys are handed over (the analytics shard).
pub fn local_stats_taking_keys(
    shard: &Shard,
    window_s: Option<u64>,
    take_keys: bool,
) -> (crate::stats::StatsSnapshot, crate::metrics::MetricsSnapshot) {
    let stats = shard.stats.snapshot(shard.id, window_s);
    let mut partitions: Vec<crate::metrics::PartitionMetrics> = shard
        .partitions
        .borrow()
        .values()
        .map(|p| {
            let log = p.log.borrow();
            let st = log.stats();
            crate::metrics::PartitionMetrics {
                topic: p.topic.clone(),
                partition: p.index,
                records_in: p.records_in.get(),
                bytes_in: p.bytes_in.get(),
                records_out: p.records_out.get(),
                bytes_out: p.bytes_out.get(),
                end_offset: log.end_offset(),
                durable_offset: log.durable_offset(),
                segments: st.segments,
                bytes_on_disk: st.bytes_on_disk,
                flushes: st.flushes,
                ring_hits: st.ring_hits,
                ring_misses: st.ring_misses,
                ring_bytes: st.ring_bytes,
                sync_fallbacks: st.sync_fallbacks,
                inline_reserves: st.inline_reserves,
                prefaults: st.prefaults,
                rolls: st.rolls,
                lag_msgs: p.lag_msgs(),
                tier: p.cold.get().and_then(|c| c.stats()),
                replica: crate::replication::stats(p),
                key_sample: if take_keys {
                    std::mem::take(&mut *p.key_sample.borrow_mut())
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let metrics = crate::metrics::MetricsSnapshot {
        shard: shard.id,
        counters: shard.metrics.counters(),
        connections_open: shard.connections.get() as u64,
        frame_pool_bytes: crate::frame_pool::pooled().1 as u64,
        partitions,
    };
    (stats, metrics)
}

/// Records end-to-end latency (record timestamp to delivery) of delivered records.
pub fn record_e2e(shard: &Shard, records: &[StoredRecord]) {
    let now = now_ms();
    for r in records {
        let ms = now.saturating_sub(r.timestamp_ms).max(0) as u64;
        shard.stats.record(crate::stats::Op::EndToEnd, ms * 1000);
    }
}
