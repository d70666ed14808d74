//! One client connection: read frames, route them, write replies and pushes.
//!
//! Backpressure falls out of two budgets: a connection may have `conn_inflight_max` requests
//! unanswered, and a shard may hold `shard_inflight_bytes_max` bytes of unanswered requests. A
//! reader that cannot get both permits simply stops reading its socket until replies go out, so TCP
//! slows the producer down; nobody is told "busy". Replies may leave in a different order than their
//! requests (the client matches correlation ids); appends to one partition keep arrival order.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use net::codec::{
    decode, ApiKey, ApiVersionRange, Body, Broker, CodecError, Decoded, ErrorCode, FrameHeader,
    Limits, PartitionMetadata, Request, Response, TopicDescription, TopicMetadata, TopicSummary,
    LENGTH_FIELD_BYTES,
};

use crate::follow::{Follow, Next};
use crate::handlers::{
    self, encode_error, encode_fetch, encode_response, encode_response_sized, resolve, Failure,
    LocalFut, ReadArgs,
};
use crate::metrics::add;
use crate::notify::Notify;
use crate::shard::{CallBody, ReplyBody, Shard};
use crate::stats::Op;

/// How long a refused connection gets to send its first request header before it is closed.
const REFUSE_READ_TIMEOUT: Duration = Duration::from_secs(1);
/// What a client refused for hard overload is told to wait before retrying.
const OVERLOAD_RETRY_AFTER_MS: u32 = 1000;
/// Subscriptions one connection may hold.
const SUBSCRIPTIONS_PER_CONN_MAX: usize = 1024;
/// Bytes of replies gathered into one socket write.
const WRITE_BATCH_BYTES: usize = 256 << 10;
/// Frames at least this large are written on their own instead of copied into the write batch.
const WRITE_DIRECT_BYTES: usize = crate::frame_pool::POOLED_MIN_BYTES;
/// Bytes read from the socket at a time when no frame size is known yet.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Largest push frame payload a subscription asks for.
const SUBSCRIPTION_FETCH_BYTES: u32 = 1 << 20;

struct Subscription {
    credits: Cell<u32>,
    changed: Notify,
    cancelled: Cell<bool>,
}

struct Conn {
    shard: Rc<Shard>,
    tx: LocalSender<Bytes>,
    limits: Cell<Limits>,
    inflight: Rc<Semaphore>,
    subscriptions: RefCell<HashMap<u32, Rc<Subscription>>>,
    closed: Cell<bool>,
    /// The peer is another node asking on a client's behalf (handshake client name
    /// [`crate::metadata::FORWARD_CLIENT_NAME`]): answer from this node alone, never ask further.
    from_peer: Cell<bool>,
    /// This connection's id on its shard (for [`crate::spin_read::SpinGate`]).
    id: u64,
    /// The socket, for [`crate::spin_read`] (the stream itself is split into the two loops).
    fd: std::os::fd::RawFd,
    /// How long to spin on the socket for the next request (zero: never).
    spin_read: Duration,
}

/// Serves one accepted connection until the peer closes it, it misbehaves, or the node stops.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    if shard.connections.get() >= shard.config.connections_per_shard_max || shard.stopping.get() {
        add(&shard.metrics.connections_rejected, 1);
        refuse(&shard, stream).await;
        return;
    }
    add(&shard.metrics.connections_accepted, 1);
    shard.connections.set(shard.connections.get() + 1);
    shard.connections_changed.notify_all();
    let _ = stream.set_nodelay(true);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let (reader, writer) = futures_lite::io::split(stream);
    let inflight_max = shard.config.conn_inflight_max;
    let (tx, rx) = local_channel::new_bounded::<Bytes>(inflight_max as usize + 64);
    let conn = Rc::new(Conn {
        shard: shard.clone(),
        tx,
        limits: Cell::new(Limits::pre_handshake()),
        inflight: Rc::new(Semaphore::new(u64::from(inflight_max))),
        subscriptions: RefCell::new(HashMap::new()),
        closed: Cell::new(false),
        from_peer: Cell::new(false),
        id: shard.next_conn_id.replace(shard.next_conn_id.get() + 1),
        fd,
        spin_read: Duration::from_micros(shard.config.spin_read_us),
    });
    let writer_task = glommio::spawn_local(write_loop(writer, rx));
    read_loop(&conn, reader).await;
    // Finish what is in flight (bounded), then let the writer drain and close.
    for s in conn.subscriptions.borrow().values() {
        s.cancelled.set(true);
        s.changed.notify_all();
    }
    let _ = glommio::timer::timeout(Duration::from_secs(30), async {
        let _ = conn.inflight.acquire(u64::from(inflight_max)).await;
        Ok(())
    })
    .await;
    // The writer ends when the last sender (held inside `Conn`) is dropped: our reference here,
    // and those of subscription tasks, which see `closed` within one poll interval.
    conn.closed.set(true);
    drop(conn);
    writer_task.await;
    shard.connections.set(shard.connections.get() - 1);
    shard.connections_changed.notify_all();
}

/// Hard overload (every connection slot of the shard taken) or shutdown: answer the client's first
/// request with THROTTLED (and a retry-after) or SHUTTING_DOWN, then close. Bounded in time: a
/// client that sends nothing is closed after `REFUSE_READ_TIMEOUT`.
async fn refuse(shard: &Shard, mut stream: TcpStream) {
    let mut head = [0u8; net::codec::HEADER_BYTES];
    let read = glommio::timer::timeout(REFUSE_READ_TIMEOUT, async {
        Ok(stream.read_exact(&mut head).await.is_ok())
    })
    .await;
    if !matches!(read, Ok(true)) {
        return;
    }
    let header = FrameHeader {
        api_key: u16::from_le_bytes([head[4], head[5]]),
        api_version: u16::from_le_bytes([head[6], head[7]]),
        correlation_id: u32::from_le_bytes([head[8], head[9], head[10], head[11]]),
        flags: 0,
    };
    let (f, retry_after_ms) = if shard.stopping.get() {
        let f = Failure::new(
            ErrorCode::ShuttingDown,
            "the node is shutting down; reconnect to its replacement",
        );
        (f, 0)
    } else {
        add(&shard.metrics.throttled, 1);
        let f = Failure::new(
            ErrorCode::Throttled,
            format!(
                "this shard already serves {} connections (connections_per_shard_max); retry after {OVERLOAD_RETRY_AFTER_MS} ms or reuse connections",
                shard.connections.get()
            ),
        );
        (f, OVERLOAD_RETRY_AFTER_MS)
    };
    let frame = encode_error(header, &f, retry_after_ms, &Limits::pre_handshake());
    let _ = glommio::timer::timeout(REFUSE_READ_TIMEOUT, async {
        let _ = stream.write_all(&frame).await;
        let _ = stream.close().await;
        Ok(())
    })
    .await;
}

async fn write_loop(
    mut writer: futures_lite::io::WriteHalf<TcpStream>,
    rx: local_channel::LocalReceiver<Bytes>,
) {
    let mut batch = BytesMut::with_capacity(WRITE_BATCH_BYTES);
    let mut failed = false;
    'frames: while let Some(first) = rx.recv().await {
        batch.clear();
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            if frame.len() >= WRITE_DIRECT_BYTES {
                // A large frame (a fetch or push of many records) goes out as it is: copying it
                // into the batch costs more than the write it would share.
                let sent = (batch.is_empty() || writer.write_all(&batch).await.is_ok())
                    && writer.write_all(&frame).await.is_ok();
                crate::frame_pool::recycle(frame);
                batch.clear();
                if !sent {
                    failed = true;
                    break 'frames;
                }
            } else {
                batch.extend_from_slice(&frame);
            }
            if batch.len() >= WRITE_BATCH_BYTES {
                break;
            }
            if let Some(Some(more)) = futures_lite::future::poll_once(rx.recv()).await {
                next = Some(more);
            }
        }
        if !batch.is_empty() && writer.write_all(&batch).await.is_err() {
            failed = true;
            break;
        }
    }
    if failed {
        // The peer is gone: keep draining so senders never block on a dead connection.
        while rx.recv().await.is_some() {}
        return;
    }
    let _ = writer.flush().await;
    let _ = writer.close().await;
}

async fn read_loop(conn: &Rc<Conn>, mut reader: futures_lite::io::ReadHalf<TcpStream>) {
    let shard = &conn.shard;
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        // Wait for a length prefix (or stop).
        if read_until(conn, &mut reader, &mut buf, LENGTH_FIELD_BYTES)
            .await
            .is_none()
        {
            return;
        }
        let length = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let limits = conn.limits.get();
        if length > limits.frame_bytes_max {
            let f = Failure::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "frame of {length} bytes exceeds the limit of {} bytes{}; closing the connection",
                    limits.frame_bytes_max,
                    if limits == Limits::pre_handshake() {
                        " before the ApiVersions handshake"
                    } else {
                        ""
                    }
                ),
            );
            add(&shard.metrics.errors, 1);
            let header = handlers::NO_HEADER;
            let _ = conn.tx.send(encode_error(header, &f, 0, &limits)).await;
            return;
        }
        let total = LENGTH_FIELD_BYTES + length as usize;
        // Budgets first: when they are spent we stop reading, and TCP pushes back.
        if conn.inflight.available() == 0 || shard.inflight_bytes.available() < total as u64 {
            add(&shard.metrics.backpressure_waits, 1);
        }
        let Ok(req_permit) = conn.inflight.clone().acquire_static_permit(1).await else {
            return;
        };
        let Ok(bytes_permit) = shard
            .inflight_bytes
            .clone()
            .acquire_static_permit(total as u64)
            .await
        else {
            return;
        };
        // A client that announces a frame and then stalls must not hold the budget forever. A
        // frame already in the buffer (the usual case with pipelined requests) needs no timer:
        // arming and cancelling one per request cost ~3% of a shard's CPU (perf, 128 B produce).
        let read_timeout = Duration::from_millis(shard.config.frame_read_timeout_ms);
        let body = if buf.len() >= total {
            Ok(Some(total))
        } else {
            glommio::timer::timeout(read_timeout, async {
                Ok(read_until(conn, &mut reader, &mut buf, total).await)
            })
            .await
        };
        match body {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(_) => {
                add(&shard.metrics.errors, 1);
                let f = Failure::new(
                    ErrorCode::Timeout,
                    format!(
                        "the rest of a {length}-byte frame did not arrive within {} ms; closing the connection",
                        read_timeout.as_millis()
                    ),
                );
                let header = handlers::NO_HEADER;
                let _ = conn.tx.send(encode_error(header, &f, 0, &limits)).await;
                return;
            }
        }
        let frame = buf.split_to(total).freeze();
        let received = std::time::Instant::now();
        shard.spin_gate.request(conn.id, received);
        let permits = (req_permit, bytes_permit);
        match decode(&frame, &limits) {
            Ok(Decoded::Frame(f, _)) => {
                let header = f.header;
                let Body::Request(req) = f.body else {
                    let f = Failure::new(
                        ErrorCode::InvalidRequest,
                        "clients send requests; this frame has the response flag set",
                    );
                    let _ = conn.tx.send(encode_error(header, &f, 0, &limits)).await;
                    continue;
                };
                let timed = match &req {
                    Request::Produce { topic, .. } => {
                        Some((Op::Produce, Some(shard.stats.topic_key(topic))))
                    }
                    Request::Fetch { .. } => Some((Op::Fetch, None)),
                    _ => None,
                };
                if let Some(fut) = dispatch(conn, header, req, &frame).await {
                    let conn = conn.clone();
                    glommio::spawn_local(async move {
                        let reply = fut.await;
                        if let Some(reply) = reply {
                            let _ = conn.tx.send(reply).await;
                        }
                        let us = received.elapsed().as_micros() as u64;
                        match timed {
                            Some((Op::Produce, Some(topic))) => {
                                conn.shard.stats.record_produce_keyed(&topic, us)
                            }
                            Some((op, _)) => conn.shard.stats.record(op, us),
                            None => {}
                        }
                        drop(permits);
                    })
                    .detach();
                }
            }
            Ok(Decoded::Incomplete { .. }) => {
                // Cannot happen: the whole frame is in `frame`. Treat it as malformed.
                return;
            }
            Err(e) => {
                add(&shard.metrics.errors, 1);
                let keep_going = answer_codec_error(conn, &e, &limits).await;
                if !keep_going {
                    return;
                }
            }
        }
        if shard.stopping.get() {
            return;
        }
    }
}

/// Reads until `buf` holds at least `want` bytes. `None` on EOF, error or shutdown.
async fn read_until(
    conn: &Conn,
    reader: &mut futures_lite::io::ReadHalf<TcpStream>,
    buf: &mut BytesMut,
    want: usize,
) -> Option<usize> {
    while buf.len() < want {
        let start = buf.len();
        if !conn.spin_read.is_zero() {
            let inflight_max = u64::from(conn.shard.config.conn_inflight_max);
            let spin = crate::spin_read::Spin {
                fd: conn.fd,
                conn: conn.id,
                gate: &conn.shard.spin_gate,
                budget: conn.spin_read,
            };
            let spun = crate::spin_read::spin_recv(
                &spin,
                buf,
                (want - start).max(READ_CHUNK_BYTES),
                |now| {
                    conn.shard.stopping.get()
                        || crate::spin_read::blocking_running()
                        || crate::spin_read::background_holds_off(crate::background::pending_for(
                            now,
                        ))
                },
                || conn.inflight.available() == inflight_max,
            )
            .await;
            match spun {
                crate::spin_read::Spun::Data => {
                    add(&conn.shard.metrics.spin_reads, 1);
                    continue;
                }
                crate::spin_read::Spun::Closed => return None,
                crate::spin_read::Spun::Missed => add(&conn.shard.metrics.spin_misses, 1),
                crate::spin_read::Spun::Skipped => {}
            }
        }
        let chunk = (want - start).max(READ_CHUNK_BYTES);
        buf.resize(start + chunk, 0);
        let stop = async {
            conn.shard.stopped().await;
            // On shutdown, stop only between frames: a half-read frame is finished first.
            if start == 0 {
                Ok(0)
            } else {
                std::future::pending::<std::io::Result<usize>>().await
            }
        };
        let n = futures_lite::future::or(reader.read(&mut buf[start..]), stop).await;
        match n {
            Ok(0) | Err(_) => {
                buf.truncate(start);
                return None;
            }
            Ok(n) => buf.truncate(start + n),
        }
    }
    Some(want)
}

/// Answers a frame the codec rejected. Returns whether the connection can go on.
async fn answer_codec_error(conn: &Conn, e: &CodecError, limits: &Limits) -> bool {
    let (header, keep) = match e.skippable() {
        Some((header, _)) => (header, true),
        None => (handlers::NO_HEADER, false),
    };
    let f = Failure::new(e.error_code(), e.to_string());
    let _ = conn.tx.send(encode_error(header, &f, 0, limits)).await;
    keep
}

/// Routes one decoded request. The returned future produces the reply; `None` = nothing to spawn.
async fn dispatch(
    conn: &Rc<Conn>,
    header: FrameHeader,
    req: Request<'_>,
    frame: &Bytes,
) -> Option<LocalFut<Option<Bytes>>> {
    let shard = &conn.shard;
    let limits = conn.limits.get();
    let err = |f: Failure| -> Option<LocalFut<Option<Bytes>>> {
        add(&shard.metrics.errors, 1);
        let b = encode_error(header, &f, 0, &limits);
        Some(Box::pin(std::future::ready(Some(b))))
    };
    let now = |b: Bytes| -> Option<LocalFut<Option<Bytes>>> {
        Some(Box::pin(std::future::ready(Some(b))))
    };
    match req {
        Request::ApiVersions { client_name } => {
            conn.from_peer
                .set(client_name == crate::metadata::FORWARD_CLIENT_NAME);
            let full = Limits::new(shard.config.frame_bytes_max);
            conn.limits.set(full);
            let versions = ApiKey::ALL
                .iter()
                .filter(|k| **k != ApiKey::Push)
                .map(|k| {
                    let (min, max) = k.supported_versions();
                    ApiVersionRange {
                        api_key: *k as u16,
                        min_version: min,
                        max_version: max,
                    }
                })
                .collect();
            now(encode_response(
                header,
                Response::ApiVersions {
                    error: ErrorCode::None,
                    message: "",
                    versions,
                    server_version: env!("CARGO_PKG_VERSION"),
                    frame_bytes_max: shard.config.frame_bytes_max,
                },
                &full,
            ))
        }
        Request::Metadata { topics } => {
            let cat = handlers::catalog_snapshot(shard);
            if let Some(names) = &topics {
                if let Some(missing) = names.iter().find(|n| !cat.topics.contains_key(**n)) {
                    return err(handlers::unknown_topic(missing));
                }
            }
            let addr = shard.client_addr.borrow().clone();
            let meta = shard.meta.get();
            // Metadata v1 carries each partition's placement (cluster topics: from the metadata;
            // the node's own topics: itself).
            let v1 = header.api_version >= net::codec::PartitionPlacement::VERSION;
            let list: Vec<TopicMetadata<'_>> = cat
                .topics
                .values()
                .filter(|t| topics.as_ref().is_none_or(|n| n.contains(&t.name.as_str())))
                .map(|t| TopicMetadata {
                    name: &t.name,
                    topic_id: t.topic_id,
                    partitions: (0..t.partitions)
                        .map(|p| PartitionMetadata {
                            partition: p,
                            shard: shard.owner(t.topic_id, p) as u32,
                            placement: v1
                                .then(|| crate::metadata::placement(shard, &meta, t, p))
                                .flatten(),
                        })
                        .collect(),
                })
                .collect();
            now(encode_response(
                header,
                Response::Metadata {
                    error: ErrorCode::None,
                    message: "",
                    node_id: shard.config.node_id,
                    shards: shard.shards as u32,
                    brokers: if meta.nodes.is_empty() {
                        vec![Broker {
                            node_id: shard.config.node_id,
                            client_address: &addr,
                        }]
                    } else {
                        meta.nodes
                            .iter()
                            .filter_map(|(id, n)| {
                                Some(Broker {
                                    node_id: u32::try_from(*id).ok()?,
                                    client_address: &n.client_addr,
                                })
                            })
                            .collect()
                    },
                    topics: list,
                },
                &limits,
            ))
        }
        Request::ListTopics => {
            let cat = handlers::catalog_snapshot(shard);
            let topics = cat
                .topics
                .values()
                .map(|t| TopicSummary {
                    name: &t.name,
                    topic_id: t.topic_id,
                    partitions: t.partitions,
                })
                .collect();
            now(encode_response(
                header,
                Response::ListTopics {
                    error: ErrorCode::None,
                    message: "",
                    topics,
                },
                &limits,
            ))
        }
        Request::DescribeTopic { name } => {
            let shard = shard.clone();
            let name = name.to_string();
            let local_only = conn.from_peer.get();
            Some(Box::pin(async move {
                let described = match handlers::describe(&shard, &name).await {
                    Ok((t, parts)) if !local_only => {
                        let parts = crate::metadata::with_leader_offsets(&shard, &t, parts).await;
                        Ok((t, parts))
                    }
                    other => other,
                };
                Some(match described {
                    Ok((t, mut partitions)) => {
                        let s = &t.settings;
                        let v1 = header.api_version >= 1;
                        let v2 = header.api_version >= net::codec::TopicConfig::REPLICATION_VERSION;
                        let (rf, min_insync) = crate::metadata::replication_of(&shard, &t);
                        if !v1 {
                            // A v0 client has no fields for the cold tier.
                            partitions.iter_mut().for_each(|p| p.remote = None);
                        }
                        encode_response(
                            header,
                            Response::DescribeTopic {
                                error: ErrorCode::None,
                                message: "",
                                topic: Some(TopicDescription {
                                    name: &t.name,
                                    topic_id: t.topic_id,
                                    config: net::codec::TopicConfig {
                                        partitions: t.partitions,
                                        retention_ms: s.retention_ms,
                                        retention_bytes: s.retention_bytes,
                                        segment_bytes: s.segment_bytes,
                                        compacted: s.compacted,
                                        default_ttl_ms: s.default_ttl_ms,
                                        tier_after_ms: s.tier_after_ms.filter(|_| v1),
                                        local_retention_bytes: s
                                            .local_retention_bytes
                                            .filter(|_| v1),
                                        replication_factor: Some(rf).filter(|_| v2),
                                        min_insync: Some(min_insync).filter(|_| v2),
                                    },
                                    partitions,
                                }),
                            },
                            &limits,
                        )
                    }
                    Err(f) => encode_error(header, &f, 0, &limits),
                })
            }))
        }
        Request::CreateTopic { .. } | Request::DeleteTopic { .. } => Some(
            to_owner(
                shard,
                0,
                frame.clone(),
                header,
                req.expects_reply(),
                &limits,
            )
            .await,
        ),
        Request::Raft {
            from_node,
            to_node,
            message,
        } => {
            let me = shard.config.node_id;
            match &shard.controller {
                Some(c) if to_node == me => {
                    c.deliver(message);
                    now(encode_response(
                        header,
                        Response::Raft {
                            error: ErrorCode::None,
                            message: "",
                        },
                        &limits,
                    ))
                }
                Some(_) => err(Failure::new(
                    ErrorCode::InvalidRequest,
                    format!("Raft message from node {from_node} for node {to_node} reached node {me}; check --controllers on node {from_node}"),
                )),
                None => err(Failure::new(
                    ErrorCode::InvalidRequest,
                    format!("node {me} is not a metadata controller; check --controllers on node {from_node}"),
                )),
            }
        }
        Request::ReplicaFetch {
            topic, partition, ..
        } => match resolve(shard, topic, partition) {
            Ok(t) => {
                let owner = shard.owner(t.topic_id, partition);
                Some(to_owner(shard, owner, frame.clone(), header, true, &limits).await)
            }
            Err(f) => err(f),
        },
        Request::AlterInSync {
            topic,
            partition,
            leader,
            leader_epoch,
            isr_version,
            in_sync,
            successor,
        } => {
            let shard = shard.clone();
            let topic = topic.to_string();
            Some(Box::pin(async move {
                let res = crate::replication::isr::handle(
                    &shard,
                    &topic,
                    partition,
                    leader,
                    leader_epoch,
                    isr_version,
                    &in_sync,
                    successor,
                )
                .await;
                Some(match res {
                    Ok((isr_version, in_sync)) => encode_response(
                        header,
                        Response::AlterInSync {
                            error: ErrorCode::None,
                            message: "",
                            isr_version,
                            in_sync,
                        },
                        &limits,
                    ),
                    Err(f) => encode_error(header, &f, 0, &limits),
                })
            }))
        }
        Request::MetaFetch { since_version } => match &shard.controller {
            Some(c) => {
                let view = c.view();
                let state = &view.state;
                let blob = if state.version > since_version {
                    match state.encode() {
                        Ok(b) => b,
                        Err(e) => {
                            return err(Failure::new(
                                ErrorCode::Internal,
                                format!("cannot encode metadata v{}: {e}", state.version),
                            ))
                        }
                    }
                } else {
                    Vec::new()
                };
                now(encode_response(
                    header,
                    Response::MetaFetch {
                        error: ErrorCode::None,
                        message: "",
                        version: state.version,
                        leader_id: view.leader_id,
                        state: &blob,
                    },
                    &limits,
                ))
            }
            None => err(Failure::new(
                ErrorCode::NotLeader,
                format!(
                    "node {} is not a metadata controller; ask one of its --controllers",
                    shard.config.node_id
                ),
            )),
        },
        Request::FindCoordinator { group } => match crate::groups::find_coordinator(shard, group) {
            Ok((node_id, addr)) => now(encode_response(
                header,
                Response::FindCoordinator {
                    error: ErrorCode::None,
                    message: "",
                    node_id,
                    addr: &addr,
                },
                &limits,
            )),
            Err(f) => err(f),
        },
        Request::JoinGroup { group, .. }
        | Request::SyncGroup { group, .. }
        | Request::Heartbeat { group, .. }
        | Request::LeaveGroup { group, .. } => match crate::groups::target_shard(shard, group) {
            Ok(owner) => Some(to_owner(shard, owner, frame.clone(), header, true, &limits).await),
            Err(f) => err(f),
        },
        Request::OffsetCommit {
            consumer,
            member_id,
            ..
        } if crate::groups::offsets_at_coordinator(shard, member_id) => {
            match crate::groups::target_shard(shard, consumer) {
                Ok(owner) => {
                    Some(to_owner(shard, owner, frame.clone(), header, true, &limits).await)
                }
                Err(f) => err(f),
            }
        }
        Request::OffsetFetch { consumer, .. }
            if crate::groups::offsets_at_coordinator(shard, "") =>
        {
            match crate::groups::target_shard(shard, consumer) {
                Ok(owner) => {
                    Some(to_owner(shard, owner, frame.clone(), header, true, &limits).await)
                }
                Err(f) => err(f),
            }
        }
        Request::Produce {
            topic, partition, ..
        }
        | Request::OffsetCommit {
            topic, partition, ..
        }
        | Request::OffsetFetch {
            topic, partition, ..
        } => {
            let is_produce = matches!(req, Request::Produce { .. });
            let expects_reply = req.expects_reply();
            match resolve(shard, topic, partition) {
                Ok(t) => {
                    let owner = shard.owner(t.topic_id, partition);
                    Some(
                        to_owner(shard, owner, frame.clone(), header, expects_reply, &limits).await,
                    )
                }
                // acks=none never gets a reply, not even an error; the failure is counted.
                Err(_) if is_produce && !expects_reply => {
                    add(&shard.metrics.errors, 1);
                    None
                }
                Err(f) => err(f),
            }
        }
        Request::Fetch {
            topic,
            partition,
            offset,
            max_bytes,
            max_wait_ms,
        } => {
            add(&shard.metrics.fetch_requests, 1);
            let t = match resolve(shard, topic, partition) {
                Ok(t) => t,
                Err(f) => return err(f),
            };
            let args = ReadArgs {
                topic_id: t.topic_id,
                partition,
                offset,
                max_bytes: max_bytes.clamp(1, fetch_bytes_max(&limits)),
                wait_ms: max_wait_ms.min(handlers::FETCH_WAIT_MS_MAX),
            };
            let shard = shard.clone();
            Some(Box::pin(async move {
                Some(match handlers::read_anywhere(&shard, args).await {
                    Ok(out) => {
                        handlers::record_e2e(&shard, &out.records);
                        encode_fetch(header, &out, &limits)
                    }
                    Err(f) => encode_error(header, &f, 0, &limits),
                })
            }))
        }
        Request::Subscribe {
            topic,
            partition,
            offset,
            credits,
        } => {
            let t = match resolve(shard, topic, partition)
                .and_then(|t| crate::metadata::check_leader(shard, &t, partition).map(|()| t))
            {
                Ok(t) => t,
                Err(f) => return err(f),
            };
            if conn.subscriptions.borrow().len() >= SUBSCRIPTIONS_PER_CONN_MAX {
                return err(Failure::new(
                    ErrorCode::InvalidRequest,
                    format!("at most {SUBSCRIPTIONS_PER_CONN_MAX} subscriptions per connection; unsubscribe or open another connection"),
                ));
            }
            let id = shard.next_subscription.get();
            shard.next_subscription.set(id.wrapping_add(1).max(1));
            let sub = Rc::new(Subscription {
                credits: Cell::new(credits),
                changed: Notify::default(),
                cancelled: Cell::new(false),
            });
            conn.subscriptions.borrow_mut().insert(id, sub.clone());
            let reply = encode_response(
                header,
                Response::Subscribe {
                    error: ErrorCode::None,
                    message: "",
                    subscription_id: id,
                },
                &limits,
            );
            // The reply goes out before the first push.
            let _ = conn.tx.send(reply).await;
            let c = conn.clone();
            glommio::spawn_local(run_subscription(c, id, sub, t.topic_id, partition, offset))
                .detach();
            None
        }
        Request::Credit {
            subscription_id,
            credits,
        } => {
            let sub = conn.subscriptions.borrow().get(&subscription_id).cloned();
            match sub {
                Some(s) => {
                    s.credits.set(s.credits.get().saturating_add(credits));
                    s.changed.notify_all();
                    now(encode_response(
                        header,
                        Response::Credit {
                            error: ErrorCode::None,
                            message: "",
                        },
                        &limits,
                    ))
                }
                None => err(unknown_subscription(subscription_id)),
            }
        }
        Request::Unsubscribe { subscription_id } => {
            let sub = conn.subscriptions.borrow_mut().remove(&subscription_id);
            match sub {
                Some(s) => {
                    s.cancelled.set(true);
                    s.changed.notify_all();
                    now(encode_response(
                        header,
                        Response::Unsubscribe {
                            error: ErrorCode::None,
                            message: "",
                        },
                        &limits,
                    ))
                }
                None => err(unknown_subscription(subscription_id)),
            }
        }
    }
}

fn unknown_subscription(id: u32) -> Failure {
    Failure::new(
        ErrorCode::UnknownSubscription,
        format!("no subscription {id} on this connection"),
    )
}

/// Largest fetch payload that still fits a response frame under `limits`.
fn fetch_bytes_max(limits: &Limits) -> u32 {
    limits
        .frame_bytes_max
        .saturating_sub(64 << 10)
        .max(64 << 10)
}

/// Hands a frame to the owning shard: the synchronous start runs now (here or there, in order).
async fn to_owner(
    shard: &Rc<Shard>,
    owner: usize,
    frame: Bytes,
    header: FrameHeader,
    expects_reply: bool,
    limits: &Limits,
) -> LocalFut<Option<Bytes>> {
    if owner == shard.id {
        return handlers::start_frame(shard, frame);
    }
    add(&shard.metrics.forwarded_calls, 1);
    // Sending inside the read loop keeps per-partition order: the mesh channel is FIFO.
    let pending = shard.send_call(owner, CallBody::Frame(frame)).await;
    let limits = *limits;
    Box::pin(async move {
        let reply = match pending {
            Some(p) => p.wait().await,
            None => None,
        };
        match reply {
            Some(ReplyBody::Frame(reply)) => reply,
            _ if expects_reply => {
                let f = Failure::new(
                    ErrorCode::ShuttingDown,
                    "the shard owning this partition is shutting down; retry against the restarted node",
                );
                Some(encode_error(header, &f, 0, &limits))
            }
            _ => None,
        }
    })
}

async fn run_subscription(
    conn: Rc<Conn>,
    id: u32,
    sub: Rc<Subscription>,
    topic_id: u64,
    partition: u32,
    offset: u64,
) {
    let limits = conn.limits.get();
    let max_bytes = SUBSCRIPTION_FETCH_BYTES.min(fetch_bytes_max(&limits));
    let mut follow = Follow::new(conn.shard.clone(), topic_id, partition, offset, max_bytes);
    let stop = || sub.cancelled.get() || conn.closed.get();
    while !stop() {
        if sub.credits.get() == 0 {
            let seen = sub.changed.generation();
            if sub.credits.get() == 0 {
                let _ = glommio::timer::timeout(Duration::from_millis(200), async {
                    sub.changed.changed_since(seen).await;
                    Ok(())
                })
                .await;
            }
            continue;
        }
        match follow.next(&|| sub.credits.get() as usize, &stop).await {
            Ok(Next::Stopped) => break,
            Ok(Next::NoCredit) => continue,
            Ok(Next::Batch(out)) => {
                sub.credits
                    .set(sub.credits.get() - out.records.len() as u32);
                if conn.tx.send(push_frame(id, &out, &limits)).await.is_err() {
                    break;
                }
            }
            Err(f) => {
                let header = FrameHeader {
                    api_key: ApiKey::Push as u16,
                    api_version: 0,
                    correlation_id: id,
                    flags: 0,
                };
                let frame = encode_response(
                    header,
                    Response::Push {
                        error: f.code,
                        message: &f.message,
                        subscription_id: id,
                        high_offset: 0,
                        records: Vec::new(),
                    },
                    &limits,
                );
                let _ = conn.tx.send(frame).await;
                break;
            }
        }
    }
    conn.subscriptions.borrow_mut().remove(&id);
}

fn push_frame(id: u32, out: &handlers::ReadOutcome, limits: &Limits) -> Bytes {
    let header = FrameHeader {
        api_key: ApiKey::Push as u16,
        api_version: 0,
        correlation_id: id,
        flags: 0,
    };
    encode_response_sized(
        header,
        Response::Push {
            error: ErrorCode::None,
            message: "",
            subscription_id: id,
            high_offset: out.high_offset,
            records: handlers::views(&out.records),
        },
        limits,
        handlers::wire_bytes_estimate(&out.records),
    )
}
