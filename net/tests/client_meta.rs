//! The cluster additions to the client: `meta_fetch` (refused locally against a server that does
//! not list MetaFetch) and Metadata v1 placements (present exactly when the negotiated version
//! carries them).

mod common;

use std::sync::mpsc;

use common::fake_server::{
    bytes_of, client_config, serve, serve_with_headers, versions_reply_with, versions_reply_without,
};
use net::client::{Client, ClientError, MetaFetchReply};
use net::codec::{
    ApiKey, Broker, ErrorCode, Frame, Limits, PartitionMetadata, PartitionPlacement, Request,
    Response, TopicMetadata,
};

fn placement() -> PartitionPlacement {
    PartitionPlacement {
        leader: 2,
        leader_epoch: 5,
        replicas: vec![2, 1, 3],
        in_sync: vec![2, 3],
    }
}

/// A Metadata reply at `version`: partition 0 placed (from v1 on), partition 1 without a
/// placement.
fn metadata_reply(cid: u32, version: u16) -> Vec<u8> {
    let placed = (version >= PartitionPlacement::VERSION).then(placement);
    bytes_of(&Frame::response_at(
        cid,
        version,
        Response::Metadata {
            error: ErrorCode::None,
            message: "",
            node_id: 2,
            shards: 1,
            brokers: vec![Broker {
                node_id: 2,
                client_address: "127.0.0.1:7070",
            }],
            topics: vec![TopicMetadata {
                name: "orders",
                topic_id: 7,
                partitions: vec![
                    PartitionMetadata {
                        partition: 0,
                        shard: 0,
                        placement: placed,
                    },
                    PartitionMetadata {
                        partition: 1,
                        shard: 0,
                        placement: None,
                    },
                ],
            }],
        },
    ))
}

#[test]
fn meta_fetch_against_a_server_without_the_api_is_refused_before_sending() {
    let (seen_tx, seen_rx) = mpsc::channel::<(ApiKey, u16)>();
    let (addr, server) = serve_with_headers(
        |cid| versions_reply_without(cid, &[ApiKey::MetaFetch]),
        move |header, request| {
            seen_tx
                .send((request.api_key(), header.api_version))
                .unwrap();
            match request {
                Request::Metadata { .. } => {
                    vec![metadata_reply(header.correlation_id, header.api_version)]
                }
                other => panic!("unexpected request {other:?}"),
            }
        },
    );
    let mut client = Client::connect(&addr, client_config()).expect("connect");
    assert!(!client.server_supports(ApiKey::MetaFetch));
    assert!(client.server_supports(ApiKey::Metadata));
    let err = client.meta_fetch(0).unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::ApiUnsupported { addr: a, api: ApiKey::MetaFetch } if *a == addr
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("MetaFetch") && text.contains("api key 15"),
        "{text}"
    );
    assert!(!err.is_retriable());

    // Nothing was sent and the connection still works.
    let metadata = client.metadata(None).unwrap();
    assert_eq!(
        metadata.topics[0].partitions[0].placement,
        Some(placement())
    );
    drop(client);
    server.join().unwrap();
    let seen: Vec<_> = seen_rx.try_iter().collect();
    assert_eq!(seen, [(ApiKey::Metadata, 1)], "only the Metadata request");
}

#[test]
fn meta_fetch_returns_the_state_only_when_newer() {
    let state: &[u8] = b"SPMS\x01\x00\x00\x00 encoded state";
    let (seen_tx, seen_rx) = mpsc::channel::<u64>();
    let (addr, server) = serve(move |cid, request| {
        let Request::MetaFetch { since_version } = *request else {
            panic!("unexpected request {request:?}");
        };
        seen_tx.send(since_version).unwrap();
        let response = if since_version == u64::MAX {
            Response::MetaFetch {
                error: ErrorCode::NotLeader,
                message: "node 3 is not a metadata controller",
                version: 0,
                leader_id: 0,
                state: &[],
            }
        } else {
            let version = 42;
            Response::MetaFetch {
                error: ErrorCode::None,
                message: "",
                version,
                leader_id: 2,
                state: if version > since_version { state } else { &[] },
            }
        };
        vec![bytes_of(&Frame::response(cid, response))]
    });
    let mut client = Client::connect(&addr, client_config()).expect("connect");
    assert!(client.server_supports(ApiKey::MetaFetch));
    assert_eq!(
        client.meta_fetch(0).unwrap(),
        MetaFetchReply {
            version: 42,
            leader_id: 2,
            state: state.to_vec(),
        }
    );
    for since in [42, 43] {
        let reply = client.meta_fetch(since).unwrap();
        assert_eq!((reply.version, reply.leader_id), (42, 2));
        assert!(reply.state.is_empty(), "nothing newer than {since}");
    }
    let err = client.meta_fetch(u64::MAX).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotLeader), "{err}");
    drop(client);
    server.join().unwrap();
    assert_eq!(
        seen_rx.try_iter().collect::<Vec<_>>(),
        [0, 42, 43, u64::MAX]
    );
}

#[test]
fn metadata_carries_placements_at_v1_and_none_at_v0() {
    for (server_max, expected) in [(1u16, Some(placement())), (0, None)] {
        let (seen_tx, seen_rx) = mpsc::channel::<u16>();
        let (addr, server) = serve_with_headers(
            move |cid| {
                versions_reply_with(
                    cid,
                    &[(ApiKey::Metadata, (0, server_max))],
                    Limits::FRAME_BYTES_MAX_DEFAULT,
                )
            },
            move |header, request| {
                assert!(matches!(request, Request::Metadata { .. }), "{request:?}");
                seen_tx.send(header.api_version).unwrap();
                vec![metadata_reply(header.correlation_id, header.api_version)]
            },
        );
        let mut client = Client::connect(&addr, client_config()).expect("connect");
        assert_eq!(client.api_version(ApiKey::Metadata), server_max);
        let metadata = client.metadata(Some(&["orders"])).unwrap();
        let partitions = &metadata.topics[0].partitions;
        assert_eq!(partitions.len(), 2);
        assert_eq!(
            partitions[0].placement, expected,
            "server max v{server_max}"
        );
        assert_eq!(partitions[1].placement, None);
        drop(client);
        server.join().unwrap();
        assert_eq!(seen_rx.try_iter().collect::<Vec<_>>(), [server_max]);
    }
}
