//! Fake cluster nodes for `ClusterClient` tests. Unlike `fake_server::serve`, a node accepts any
//! number of connections (one thread each), and every connection shares one handler, so a test
//! can script a node's answers across reconnects.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use net::client::RoutingConfig;
use net::codec::{
    decode, ApiKey, Body, Broker, Decoded, ErrorCode, Frame, FrameHeader, Limits,
    PartitionMetadata, PartitionPlacement, Request, Response, TopicMetadata,
};

use crate::common::fake_server::{
    bytes_of, ok_produce, versions_reply_with, versions_reply_without,
};

/// What a node does with one request.
pub enum Answer {
    /// Write these frames.
    Frames(Vec<Vec<u8>>),
    /// Close the connection without answering (a node dying mid-request).
    Close,
}

type Handler = dyn FnMut(FrameHeader, &Request<'_>) -> Answer + Send;
/// Builds the ApiVersions answer for a correlation id.
type Handshake = dyn Fn(u32) -> Vec<u8> + Send + Sync;

/// A bound address whose node has not started yet (so metadata can name it first).
pub struct Listener {
    pub addr: String,
    listener: TcpListener,
}

pub fn listen() -> Listener {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr").to_string();
    Listener { addr, listener }
}

/// An address nothing listens on: connecting to it is refused.
pub fn dead_addr() -> String {
    listen().addr
}

/// Dropping a node stops it: no new connections, and its open connections are shut down.
pub struct FakeNode {
    pub addr: String,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl FakeNode {
    /// Serves with every api at the codec's own versions.
    pub fn start<H>(listener: Listener, handler: H) -> FakeNode
    where
        H: FnMut(FrameHeader, &Request<'_>) -> Answer + Send + 'static,
    {
        Self::start_with_versions(listener, Vec::new(), handler)
    }

    /// Serves with the handshake listing `overrides` instead of the codec's ranges.
    pub fn start_with_versions<H>(
        listener: Listener,
        overrides: Vec<(ApiKey, (u16, u16))>,
        handler: H,
    ) -> FakeNode
    where
        H: FnMut(FrameHeader, &Request<'_>) -> Answer + Send + 'static,
    {
        Self::start_with_handshake(
            listener,
            move |cid| versions_reply_with(cid, &overrides, Limits::FRAME_BYTES_MAX_DEFAULT),
            handler,
        )
    }

    /// Serves with the handshake leaving out the `missing` apis (a server that predates them).
    pub fn start_without_apis<H>(listener: Listener, missing: Vec<ApiKey>, handler: H) -> FakeNode
    where
        H: FnMut(FrameHeader, &Request<'_>) -> Answer + Send + 'static,
    {
        Self::start_with_handshake(
            listener,
            move |cid| versions_reply_without(cid, &missing),
            handler,
        )
    }

    fn start_with_handshake<V, H>(listener: Listener, handshake: V, handler: H) -> FakeNode
    where
        V: Fn(u32) -> Vec<u8> + Send + Sync + 'static,
        H: FnMut(FrameHeader, &Request<'_>) -> Answer + Send + 'static,
    {
        let handler: Arc<Mutex<Box<Handler>>> = Arc::new(Mutex::new(Box::new(handler)));
        let handshake: Arc<Handshake> = Arc::new(handshake);
        let stop = Arc::new(AtomicBool::new(false));
        let accept_stop = Arc::clone(&stop);
        let open = Arc::new(Mutex::new(Vec::new()));
        let accept_open = Arc::clone(&open);
        let Listener { addr, listener } = listener;
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { return };
                if let Ok(copy) = stream.try_clone() {
                    accept_open.lock().expect("open lock").push(copy);
                }
                let handler = Arc::clone(&handler);
                let handshake = Arc::clone(&handshake);
                std::thread::spawn(move || serve_connection(stream, &*handshake, &handler));
            }
        });
        FakeNode {
            addr,
            stop,
            accept: Some(accept),
            open,
        }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for stream in self.open.lock().expect("open lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn serve_connection(mut stream: TcpStream, handshake: &Handshake, handler: &Mutex<Box<Handler>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        loop {
            let (answer, used) = match decode(&buf, &Limits::default()).expect("client frames") {
                Decoded::Incomplete { .. } => break,
                Decoded::Frame(frame, used) => {
                    let Body::Request(request) = &frame.body else {
                        panic!("client sent a response")
                    };
                    let answer = match request {
                        Request::ApiVersions { .. } => {
                            Answer::Frames(vec![handshake(frame.header.correlation_id)])
                        }
                        other => {
                            let mut handler = handler.lock().expect("handler lock");
                            (*handler)(frame.header, other)
                        }
                    };
                    (answer, used)
                }
            };
            buf.drain(..used);
            match answer {
                Answer::Close => {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                Answer::Frames(frames) => {
                    for bytes in frames {
                        if stream.write_all(&bytes).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A Metadata reply (at the request's version) from node `node_id`, listing `brokers` and one
/// topic `orders` (id 7) whose partition `i` has placement `partitions[i]` = `(leader, epoch)`
/// (`None` = no placement). Placements are left out below Metadata v1.
pub fn metadata_reply(
    header: FrameHeader,
    node_id: u32,
    brokers: &[(u32, &str)],
    partitions: &[Option<(u32, u32)>],
) -> Vec<u8> {
    let with_placement = header.api_version >= PartitionPlacement::VERSION;
    let partitions = partitions
        .iter()
        .zip(0u32..)
        .map(|(placement, partition)| PartitionMetadata {
            partition,
            shard: 0,
            placement: placement.filter(|_| with_placement).map(|(leader, epoch)| {
                PartitionPlacement {
                    leader,
                    leader_epoch: epoch,
                    replicas: vec![leader],
                    in_sync: vec![leader],
                }
            }),
        })
        .collect();
    bytes_of(&Frame::response_at(
        header.correlation_id,
        header.api_version,
        Response::Metadata {
            error: ErrorCode::None,
            message: "",
            node_id,
            shards: 1,
            brokers: brokers
                .iter()
                .map(|(node_id, client_address)| Broker {
                    node_id: *node_id,
                    client_address,
                })
                .collect(),
            topics: vec![TopicMetadata {
                name: "orders",
                topic_id: 7,
                partitions,
            }],
        },
    ))
}

/// The generic error answer to `header`.
pub fn error_reply(header: FrameHeader, code: ErrorCode, message: &str) -> Vec<u8> {
    bytes_of(&Frame::error(header, code, message, 0))
}

// Scripting helpers shared by the cluster tests.

/// `(node, api, partition)` of every request a node handled (the handshake aside).
pub type Log = Arc<Mutex<Vec<(&'static str, ApiKey, Option<u32>)>>>;
/// Partition `i` -> `(leader, epoch)`, as every node's Metadata reply says.
pub type Leaders = Arc<Mutex<Vec<Option<(u32, u32)>>>>;

pub fn leaders(initial: &[Option<(u32, u32)>]) -> Leaders {
    Arc::new(Mutex::new(initial.to_vec()))
}

/// Quick retries, so failing paths stay fast (nothing here asserts on time).
pub fn routing() -> RoutingConfig {
    RoutingConfig {
        retry_backoff_ms: 1,
        retry_backoff_max_ms: 4,
        metadata_refresh_min_ms: 1,
        ..RoutingConfig::default()
    }
}

pub fn partition_of(request: &Request<'_>) -> Option<u32> {
    match request {
        Request::Produce { partition, .. }
        | Request::Fetch { partition, .. }
        | Request::OffsetCommit { partition, .. }
        | Request::OffsetFetch { partition, .. } => Some(*partition),
        _ => None,
    }
}

pub fn produces(log: &Log, node: &str) -> Vec<u32> {
    let log = log.lock().unwrap();
    log.iter()
        .filter(|(n, api, _)| *n == node && *api == ApiKey::Produce)
        .filter_map(|(_, _, p)| *p)
        .collect()
}

pub fn count(log: &Log, node: &str, api: ApiKey) -> usize {
    let log = log.lock().unwrap();
    log.iter()
        .filter(|(n, a, _)| *n == node && *a == api)
        .count()
}

/// A node that answers Metadata from `leaders`, fetch / offset calls / admin successfully,
/// FindCoordinator with the broker of the lowest node id, and produce through
/// `on_produce(header, partition)`.
pub fn node<P>(
    name: &'static str,
    node_id: u32,
    brokers: Vec<(u32, String)>,
    leaders: Leaders,
    log: Log,
    mut on_produce: P,
) -> impl FnMut(FrameHeader, &Request<'_>) -> Answer + Send + 'static
where
    P: FnMut(FrameHeader, u32) -> Answer + Send + 'static,
{
    move |header, request| {
        log.lock()
            .unwrap()
            .push((name, request.api_key(), partition_of(request)));
        let cid = header.correlation_id;
        let version = header.api_version;
        let response = match request {
            Request::Metadata { .. } => {
                let brokers: Vec<(u32, &str)> =
                    brokers.iter().map(|(id, a)| (*id, a.as_str())).collect();
                let leaders = leaders.lock().unwrap().clone();
                return Answer::Frames(vec![metadata_reply(header, node_id, &brokers, &leaders)]);
            }
            Request::Produce { partition, .. } => return on_produce(header, *partition),
            Request::Fetch { offset, .. } => Response::Fetch {
                error: ErrorCode::None,
                message: "",
                high_offset: *offset + u64::from(node_id),
                start_offset: 0,
                records: vec![],
            },
            Request::OffsetCommit { .. } => Response::OffsetCommit {
                error: ErrorCode::None,
                message: "",
            },
            Request::OffsetFetch { .. } => Response::OffsetFetch {
                error: ErrorCode::None,
                message: "",
                offset: Some(u64::from(node_id) * 100),
            },
            Request::CreateTopic { .. } => Response::CreateTopic {
                error: ErrorCode::None,
                message: "",
                topic_id: 9,
            },
            // Every group is coordinated by the listed broker with the lowest node id.
            Request::FindCoordinator { .. } => {
                let (node_id, addr) = brokers
                    .iter()
                    .min_by_key(|(id, _)| *id)
                    .expect("a node lists at least one broker");
                return Answer::Frames(vec![bytes_of(&Frame::response_at(
                    cid,
                    version,
                    Response::FindCoordinator {
                        error: ErrorCode::None,
                        message: "",
                        node_id: *node_id,
                        addr,
                    },
                ))]);
            }
            other => panic!("{name}: unexpected request {other:?}"),
        };
        Answer::Frames(vec![bytes_of(&Frame::response_at(cid, version, response))])
    }
}

/// Acknowledges every produce at offset `node_id * 1000`.
pub fn acks_as(node_id: u32) -> impl FnMut(FrameHeader, u32) -> Answer + Send + 'static {
    move |header, partition| {
        let base_offset = u64::from(node_id) * 1000;
        Answer::Frames(vec![ok_produce(
            header.correlation_id,
            partition,
            base_offset,
            1,
        )])
    }
}
