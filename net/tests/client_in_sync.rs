//! `Client::alter_in_sync` against fake controllers: refused locally when the server does not
//! list AlterInSync or the set exceeds 255 node ids, every request field reaches the
//! controller, the committed version and set come back owned, and refusals are
//! `ClientError::Server` with the controller's code and message.

mod common;

use std::sync::mpsc;

use common::fake_server::{
    bytes_of, client_config, serve, serve_with_headers, versions_reply_without,
};
use common::replication::IN_SYNC;
use net::client::{AlterInSyncReply, AlterInSyncRequest, Client, ClientError};
use net::codec::{ApiKey, EncodeError, ErrorCode, Frame, PartitionPlacement, Request, Response};

/// Leader 1 of "orders"/2 in epoch 5, at in-sync version 7, asking for [`IN_SYNC`].
fn alter_request() -> AlterInSyncRequest {
    AlterInSyncRequest {
        topic: "orders".to_owned(),
        partition: 2,
        leader: 1,
        leader_epoch: 5,
        isr_version: 7,
        in_sync: IN_SYNC.to_vec(),
        successor: 0,
    }
}

/// What the fake controller saw of one request, owned.
fn seen(request: &Request<'_>) -> AlterInSyncRequest {
    let Request::AlterInSync {
        topic,
        partition,
        leader,
        leader_epoch,
        isr_version,
        ref in_sync,
        successor,
    } = *request
    else {
        panic!("unexpected request {request:?}");
    };
    AlterInSyncRequest {
        topic: topic.to_owned(),
        partition,
        leader,
        leader_epoch,
        isr_version,
        in_sync: in_sync.clone(),
        successor,
    }
}

fn answer(
    cid: u32,
    error: ErrorCode,
    message: &str,
    isr_version: u32,
    in_sync: Vec<u32>,
) -> Vec<u8> {
    bytes_of(&Frame::response(
        cid,
        Response::AlterInSync {
            error,
            message,
            isr_version,
            in_sync,
        },
    ))
}

#[test]
fn alter_in_sync_against_a_server_without_the_api_is_refused_before_sending() {
    let (seen_tx, seen_rx) = mpsc::channel::<ApiKey>();
    let (addr, server) = serve_with_headers(
        |cid| versions_reply_without(cid, &[ApiKey::AlterInSync]),
        move |header, request| {
            seen_tx.send(request.api_key()).unwrap();
            match request {
                Request::MetaFetch { .. } => vec![bytes_of(&Frame::response(
                    header.correlation_id,
                    Response::MetaFetch {
                        error: ErrorCode::None,
                        message: "",
                        version: 3,
                        leader_id: 1,
                        state: &[],
                    },
                ))],
                other => panic!("unexpected request {other:?}"),
            }
        },
    );
    let mut client = Client::connect(&addr, client_config()).expect("connect");
    assert!(!client.server_supports(ApiKey::AlterInSync));
    let err = client.alter_in_sync(&alter_request()).unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::ApiUnsupported { addr: a, api: ApiKey::AlterInSync } if *a == addr
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("AlterInSync") && text.contains("api key 17"),
        "{text}"
    );

    // Nothing was sent and the connection still works.
    assert_eq!(client.meta_fetch(0).unwrap().version, 3);
    drop(client);
    server.join().unwrap();
    assert_eq!(seen_rx.try_iter().collect::<Vec<_>>(), [ApiKey::MetaFetch]);
}

#[test]
fn alter_in_sync_sends_every_field_and_returns_the_committed_set() {
    let (seen_tx, seen_rx) = mpsc::channel::<AlterInSyncRequest>();
    let (addr, server) = serve(move |cid, request| {
        let asked = seen(request);
        // The controller commits on top of the version the leader saw.
        let committed = asked.isr_version + 1;
        let reply = answer(cid, ErrorCode::None, "", committed, asked.in_sync.clone());
        seen_tx.send(asked).unwrap();
        vec![reply]
    });
    let mut client = Client::connect(&addr, client_config()).expect("connect");
    assert!(client.server_supports(ApiKey::AlterInSync));
    assert_eq!(
        client.api_version(ApiKey::AlterInSync),
        ApiKey::ALTER_IN_SYNC_SUCCESSOR_VERSION
    );

    let reply = client.alter_in_sync(&alter_request()).unwrap();
    assert_eq!(
        reply,
        AlterInSyncReply {
            isr_version: 8,
            in_sync: IN_SYNC.to_vec(),
        }
    );
    // Growing back to every replica, and the largest set the wire carries.
    let grown = AlterInSyncRequest {
        isr_version: 8,
        in_sync: vec![1, 2, 3],
        ..alter_request()
    };
    assert_eq!(client.alter_in_sync(&grown).unwrap().in_sync, [1, 2, 3]);
    let full = AlterInSyncRequest {
        in_sync: (1..=255).collect(),
        ..alter_request()
    };
    assert_eq!(client.alter_in_sync(&full).unwrap().in_sync.len(), 255);
    // A leadership hand-over: no set, a successor (v1).
    let hand_over = AlterInSyncRequest {
        in_sync: Vec::new(),
        successor: 3,
        ..alter_request()
    };
    assert!(client.alter_in_sync(&hand_over).unwrap().in_sync.is_empty());

    drop(client);
    server.join().unwrap();
    assert_eq!(
        seen_rx.try_iter().collect::<Vec<_>>(),
        [alter_request(), grown, full, hand_over]
    );
}

#[test]
fn controller_refusals_are_server_errors_and_oversized_sets_are_not_sent() {
    let (seen_tx, seen_rx) = mpsc::channel::<u32>();
    let (addr, server) = serve(move |cid, request| {
        let asked = seen(request);
        seen_tx.send(asked.leader_epoch).unwrap();
        let (error, message) = match (asked.leader_epoch, asked.isr_version) {
            (4, _) => (
                ErrorCode::InvalidRequest,
                "stale leader epoch 4: orders/2 is in epoch 5",
            ),
            (_, 6) => (
                ErrorCode::InvalidRequest,
                "stale isr_version 6: the in-sync set of orders/2 is at version 7",
            ),
            (9, _) => (
                ErrorCode::NotLeader,
                "this controller does not lead the metadata; the leader is at 10.0.0.2:7070",
            ),
            _ => (ErrorCode::Timeout, "not committed within 5000 ms"),
        };
        vec![answer(cid, error, message, 0, vec![])]
    });
    let mut client = Client::connect(&addr, client_config()).expect("connect");

    let oversized = AlterInSyncRequest {
        in_sync: (1..=256).collect(),
        ..alter_request()
    };
    let err = client.alter_in_sync(&oversized).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Encode(EncodeError::CountTooLarge {
                field: "in_sync",
                count: 256,
                limit: PartitionPlacement::NODES_MAX,
            })
        ),
        "{err:?}"
    );

    let cases = [
        (4, 7, ErrorCode::InvalidRequest, "stale leader epoch", false),
        (5, 6, ErrorCode::InvalidRequest, "stale isr_version", false),
        (9, 7, ErrorCode::NotLeader, "10.0.0.2:7070", true),
        (5, 7, ErrorCode::Timeout, "not committed", true),
    ];
    for (leader_epoch, isr_version, code, text, retriable) in cases {
        let request = AlterInSyncRequest {
            leader_epoch,
            isr_version,
            ..alter_request()
        };
        let err = client.alter_in_sync(&request).unwrap_err();
        assert_eq!(err.code(), Some(code), "{err}");
        assert!(err.to_string().contains(text), "{err}");
        assert_eq!(err.is_retriable(), retriable, "{err}");
    }
    drop(client);
    server.join().unwrap();
    assert_eq!(
        seen_rx.try_iter().collect::<Vec<_>>(),
        [4, 5, 9, 5],
        "the oversized set never reached the controller"
    );
}
