//! Replication settings and NOT_ENOUGH_REPLICAS through the client: replication settings are
//! refused locally against a server older than CreateTopic v2 and reach a v2 server intact;
//! produce goes out at v1 when the server lists it (v0 otherwise) and NOT_ENOUGH_REPLICAS comes
//! back as a retriable server error, which `ClusterClient` retries even without a producer
//! ident (nothing was written).

mod common;
#[path = "common/fake_cluster.rs"]
#[allow(dead_code)] // Shared with cluster_client.rs, which uses the rest.
mod fake_cluster;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};

use common::fake_server::{
    bytes_of, client_config, ok_produce, record, serve_with_headers, versions_reply_with,
};
use fake_cluster::{leaders, listen, node, produces, routing, Answer, FakeNode, Log};
use net::client::{Client, ClientError, ClusterClient};
use net::codec::{
    Acks, ApiKey, ErrorCode, Frame, FrameHeader, Limits, Request, Response, TopicConfig,
    TopicDescription,
};

const PLAIN: TopicConfig = TopicConfig {
    partitions: 3,
    retention_ms: None,
    retention_bytes: None,
    segment_bytes: None,
    compacted: false,
    default_ttl_ms: None,
    tier_after_ms: None,
    local_retention_bytes: None,
    replication_factor: None,
    min_insync: None,
};

const REPLICATED: TopicConfig = TopicConfig {
    replication_factor: Some(3),
    min_insync: Some(2),
    ..PLAIN
};

const TIERED: TopicConfig = TopicConfig {
    tier_after_ms: Some(60_000),
    ..PLAIN
};

/// A fake server whose CreateTopic / DescribeTopic go up to `max_version`; it records the
/// version and config of every CreateTopic and describes "orders" with the last config created.
fn topic_server(
    max_version: u16,
) -> (
    String,
    std::thread::JoinHandle<()>,
    mpsc::Receiver<(u16, TopicConfig)>,
) {
    let (seen_tx, seen_rx) = mpsc::channel();
    let mut created = PLAIN;
    let (addr, server) = serve_with_headers(
        move |cid| {
            versions_reply_with(
                cid,
                &[
                    (ApiKey::CreateTopic, (0, max_version)),
                    (ApiKey::DescribeTopic, (0, max_version)),
                ],
                Limits::FRAME_BYTES_MAX_DEFAULT,
            )
        },
        move |header, request| {
            let (cid, version) = (header.correlation_id, header.api_version);
            let response = match *request {
                Request::CreateTopic { config, .. } => {
                    seen_tx.send((version, config)).unwrap();
                    created = config;
                    Response::CreateTopic {
                        error: ErrorCode::None,
                        message: "",
                        topic_id: 7,
                    }
                }
                Request::DescribeTopic { name } => Response::DescribeTopic {
                    error: ErrorCode::None,
                    message: "",
                    topic: Some(TopicDescription {
                        name,
                        topic_id: 7,
                        config: created,
                        partitions: vec![],
                    }),
                },
                ref other => panic!("unexpected request {other:?}"),
            };
            vec![bytes_of(&Frame::response_at(cid, version, response))]
        },
    );
    (addr, server, seen_rx)
}

#[test]
fn replication_settings_against_a_create_topic_v1_server_are_refused_before_sending() {
    let (addr, server, seen_rx) = topic_server(1);
    let mut client = Client::connect(&addr, client_config()).unwrap();
    assert_eq!(client.api_version(ApiKey::CreateTopic), 1);

    let err = client.create_topic("orders", &REPLICATED).unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::ReplicationUnsupported {
                addr: a,
                field: "replication_factor",
                negotiated_version: 1,
                required_version: 2,
            } if *a == addr
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("does not support replication settings") && text.contains("CreateTopic v2"),
        "{text}"
    );
    assert!(!err.is_retriable());
    let only_min_insync = TopicConfig {
        min_insync: Some(1),
        ..PLAIN
    };
    let err = client.create_topic("orders", &only_min_insync).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::ReplicationUnsupported {
                field: "min_insync",
                ..
            }
        ),
        "{err:?}"
    );

    // Nothing was sent; the connection works, and v1 settings still go out at v1.
    assert_eq!(client.create_topic("orders", &TIERED).unwrap(), 7);
    let described = client.describe_topic("orders").unwrap();
    assert_eq!(described.config, TIERED);
    drop(client);
    server.join().unwrap();
    assert_eq!(seen_rx.try_iter().collect::<Vec<_>>(), [(1, TIERED)]);
}

#[test]
fn against_a_v0_server_the_tiering_refusal_comes_first() {
    let (addr, server, seen_rx) = topic_server(0);
    let mut client = Client::connect(&addr, client_config()).unwrap();
    let both = TopicConfig {
        tier_after_ms: Some(1),
        ..REPLICATED
    };
    let err = client.create_topic("orders", &both).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::TieringUnsupported {
                field: "tier_after_ms",
                ..
            }
        ),
        "{err:?}"
    );
    let err = client.create_topic("orders", &REPLICATED).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::ReplicationUnsupported {
                negotiated_version: 0,
                ..
            }
        ),
        "{err:?}"
    );
    drop(client);
    server.join().unwrap();
    assert!(seen_rx.try_recv().is_err(), "nothing reached the server");
}

#[test]
fn a_v2_server_gets_the_replication_settings_and_describes_them() {
    let (addr, server, seen_rx) = topic_server(2);
    let mut client = Client::connect(&addr, client_config()).unwrap();
    assert_eq!(client.api_version(ApiKey::CreateTopic), 2);
    assert_eq!(client.api_version(ApiKey::DescribeTopic), 2);
    assert_eq!(client.create_topic("orders", &REPLICATED).unwrap(), 7);
    let described = client.describe_topic("orders").unwrap();
    assert_eq!(described.config, REPLICATED);
    assert_eq!(described.config.replication_factor_or_default(), 3);
    assert_eq!(described.config.min_insync_or_default(), 2);
    drop(client);
    server.join().unwrap();
    assert_eq!(seen_rx.try_iter().collect::<Vec<_>>(), [(2, REPLICATED)]);
}

fn not_enough_replicas(cid: u32, version: u16) -> Vec<u8> {
    bytes_of(&Frame::response_at(
        cid,
        version,
        Response::Produce {
            error: ErrorCode::NotEnoughReplicas,
            message: "orders/0 has 1 in-sync replica, min-insync is 2; nothing was written",
            topic_id: 0,
            partition: 0,
            base_offset: 0,
            record_count: 0,
            duplicate: false,
            durable: false,
        },
    ))
}

/// A server whose Produce goes up to `max_version`; it reports each produce's version and
/// answers NOT_ENOUGH_REPLICAS to `acks = all` (at v1) and acknowledges the rest.
fn produce_server(max_version: u16) -> (String, std::thread::JoinHandle<()>, mpsc::Receiver<u16>) {
    let (seen_tx, seen_rx) = mpsc::channel();
    let (addr, server) = serve_with_headers(
        move |cid| {
            versions_reply_with(
                cid,
                &[(ApiKey::Produce, (0, max_version))],
                Limits::FRAME_BYTES_MAX_DEFAULT,
            )
        },
        move |header, request| {
            let Request::Produce { acks, .. } = *request else {
                panic!("unexpected request {request:?}");
            };
            seen_tx.send(header.api_version).unwrap();
            let cid = header.correlation_id;
            if acks == Acks::All && header.api_version >= 1 {
                vec![not_enough_replicas(cid, header.api_version)]
            } else {
                vec![ok_produce(cid, 0, 5, 1)]
            }
        },
    );
    (addr, server, seen_rx)
}

#[test]
fn produce_goes_out_at_v1_and_not_enough_replicas_is_a_retriable_server_error() {
    let (addr, server, seen_rx) = produce_server(1);
    let mut client = Client::connect(&addr, client_config()).unwrap();
    assert_eq!(client.api_version(ApiKey::Produce), 1);
    let err = client
        .produce("orders", 0, Acks::All, None, &[record(b"x")])
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotEnoughReplicas), "{err}");
    assert!(err.is_retriable());
    assert!(err.to_string().contains("NOT_ENOUGH_REPLICAS(21)"), "{err}");
    // Pipelined produce uses the negotiated version too.
    let cid = client
        .send_produce("orders", 0, Acks::All, None, &[record(b"y")])
        .unwrap()
        .expect("acks = all is answered");
    let (got, result) = client.recv_produce().unwrap();
    assert_eq!(got, cid);
    assert_eq!(
        result.unwrap_err().code(),
        Some(ErrorCode::NotEnoughReplicas)
    );
    let ack = client
        .produce("orders", 0, Acks::Leader, None, &[record(b"z")])
        .unwrap()
        .expect("acks = leader is answered");
    assert_eq!(ack.base_offset, 5);
    drop(client);
    server.join().unwrap();
    assert_eq!(seen_rx.try_iter().collect::<Vec<_>>(), [1, 1, 1]);
}

#[test]
fn a_produce_v0_server_gets_v0() {
    let (addr, server, seen_rx) = produce_server(0);
    let mut client = Client::connect(&addr, client_config()).unwrap();
    assert_eq!(client.api_version(ApiKey::Produce), 0);
    let ack = client
        .produce("orders", 0, Acks::All, None, &[record(b"x")])
        .unwrap()
        .expect("an ack");
    assert_eq!(ack.base_offset, 5);
    drop(client);
    server.join().unwrap();
    assert_eq!(seen_rx.try_iter().collect::<Vec<_>>(), [0]);
}

#[test]
fn the_cluster_client_retries_not_enough_replicas_even_without_a_producer_ident() {
    let la = listen();
    let brokers = vec![(1, la.addr.clone())];
    let log = Log::default();
    let refusals = Arc::new(AtomicU32::new(2));
    let versions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (left, seen) = (Arc::clone(&refusals), Arc::clone(&versions));
    let on_produce = move |header: FrameHeader, partition| {
        seen.lock().unwrap().push(header.api_version);
        let cid = header.correlation_id;
        if left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            Answer::Frames(vec![not_enough_replicas(cid, header.api_version)])
        } else {
            Answer::Frames(vec![ok_produce(cid, partition, 40, 1)])
        }
    };
    let placement = leaders(&[Some((1, 1))]);
    let a = FakeNode::start(
        la,
        node("a", 1, brokers, placement, log.clone(), on_produce),
    );
    let mut cluster = ClusterClient::connect_with(&[&a.addr], client_config(), routing()).unwrap();
    let ack = cluster
        .produce("orders", 0, Acks::All, None, &[record(b"x")])
        .expect("retried until the in-sync set is big enough")
        .expect("an ack");
    assert_eq!(ack.base_offset, 40);
    assert_eq!(
        produces(&log, "a"),
        [0, 0, 0],
        "two refusals, then the write"
    );
    assert_eq!(*versions.lock().unwrap(), [1, 1, 1]);
}
