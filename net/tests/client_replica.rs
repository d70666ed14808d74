//! `Client::replica_fetch` against fake servers: refused locally when the server does not list
//! ReplicaFetch, every request field reaches the leader, answers (batches or divergence) come
//! back owned, leader refusals are `ClientError::Server`, a reply that does not echo the request
//! is rejected, and the call waits for the leader's long poll.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::fake_server::{
    bytes_of, client_config, serve, serve_with_headers, versions_reply_without,
};
use common::replica_fetch::{BATCHES, BATCH_EPOCHS};
use net::client::{Client, ClientConfig, ClientError, ReplicaFetchReply, ReplicaFetchRequest};
use net::codec::{ApiKey, BatchEpoch, DivergingEpoch, ErrorCode, Frame, Request, Response};

/// Follower 3 of "orders"/2 at offset 41, last epoch 4, durable below 40, in epoch 5.
fn fetch_request() -> ReplicaFetchRequest {
    ReplicaFetchRequest {
        topic: "orders".to_owned(),
        partition: 2,
        replica: 3,
        leader_epoch: 5,
        fetch_offset: 41,
        last_fetched_epoch: Some(4),
        durable_offset: 40,
        max_bytes: 1_048_576,
        max_wait_ms: 0,
    }
}

/// What the fake leader saw of one request, owned.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    topic: String,
    fields: (u32, u32, u32, u64, Option<u32>, u64, u32, u32),
}

fn seen(request: &Request<'_>) -> Seen {
    let Request::ReplicaFetch {
        topic,
        partition,
        replica,
        leader_epoch,
        fetch_offset,
        last_fetched_epoch,
        durable_offset,
        max_bytes,
        max_wait_ms,
    } = *request
    else {
        panic!("unexpected request {request:?}");
    };
    Seen {
        topic: topic.to_owned(),
        fields: (
            partition,
            replica,
            leader_epoch,
            fetch_offset,
            last_fetched_epoch,
            durable_offset,
            max_bytes,
            max_wait_ms,
        ),
    }
}

/// An answer at epoch 5 echoing `fetch_offset` / `last_fetched_epoch`.
fn answer<'a>(
    fetch_offset: u64,
    last_fetched_epoch: Option<u32>,
    diverging: Option<DivergingEpoch>,
    batch_epochs: Vec<BatchEpoch>,
    batches: &'a [u8],
) -> Response<'a> {
    Response::ReplicaFetch {
        error: ErrorCode::None,
        message: "",
        leader_epoch: 5,
        fetch_offset,
        last_fetched_epoch,
        high_watermark: 41,
        log_start_offset: 0,
        diverging,
        batch_epochs,
        batches,
    }
}

#[test]
fn replica_fetch_against_a_server_without_the_api_is_refused_before_sending() {
    let (seen_tx, seen_rx) = mpsc::channel::<ApiKey>();
    let (addr, server) = serve_with_headers(
        |cid| versions_reply_without(cid, &[ApiKey::ReplicaFetch]),
        move |header, request| {
            seen_tx.send(request.api_key()).unwrap();
            match request {
                Request::MetaFetch { .. } => vec![bytes_of(&Frame::response(
                    header.correlation_id,
                    Response::MetaFetch {
                        error: ErrorCode::None,
                        message: "",
                        version: 1,
                        leader_id: 1,
                        state: &[],
                    },
                ))],
                other => panic!("unexpected request {other:?}"),
            }
        },
    );
    let mut client = Client::connect(&addr, client_config()).expect("connect");
    assert!(!client.server_supports(ApiKey::ReplicaFetch));
    let err = client.replica_fetch(&fetch_request()).unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::ApiUnsupported { addr: a, api: ApiKey::ReplicaFetch } if *a == addr
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("ReplicaFetch") && text.contains("api key 16"),
        "{text}"
    );
    assert!(!err.is_retriable());

    // Nothing was sent and the connection still works.
    assert_eq!(client.meta_fetch(0).unwrap().version, 1);
    drop(client);
    server.join().unwrap();
    assert_eq!(seen_rx.try_iter().collect::<Vec<_>>(), [ApiKey::MetaFetch]);
}

#[test]
fn replica_fetch_sends_every_field_and_returns_batches_or_divergence() {
    let (seen_tx, seen_rx) = mpsc::channel::<Seen>();
    let (addr, server) = serve(move |cid, request| {
        seen_tx.send(seen(request)).unwrap();
        let Request::ReplicaFetch {
            fetch_offset,
            last_fetched_epoch,
            ..
        } = *request
        else {
            unreachable!("seen() checked the api");
        };
        let response = if fetch_offset == 41 {
            answer(41, last_fetched_epoch, None, BATCH_EPOCHS.to_vec(), BATCHES)
        } else {
            let diverging = DivergingEpoch {
                epoch: 4,
                end_offset: 43,
            };
            answer(
                fetch_offset,
                last_fetched_epoch,
                Some(diverging),
                vec![],
                &[],
            )
        };
        vec![bytes_of(&Frame::response(cid, response))]
    });
    let mut client = Client::connect(&addr, client_config()).expect("connect");
    assert!(client.server_supports(ApiKey::ReplicaFetch));

    let reply = client.replica_fetch(&fetch_request()).unwrap();
    assert_eq!(
        reply,
        ReplicaFetchReply {
            leader_epoch: 5,
            fetch_offset: 41,
            last_fetched_epoch: Some(4),
            high_watermark: 41,
            log_start_offset: 0,
            diverging: None,
            batch_epochs: BATCH_EPOCHS.to_vec(),
            batches: BATCHES.to_vec(),
        }
    );

    let behind = ReplicaFetchRequest {
        fetch_offset: 50,
        last_fetched_epoch: None,
        durable_offset: 50,
        ..fetch_request()
    };
    let reply = client.replica_fetch(&behind).unwrap();
    assert_eq!(
        reply.diverging,
        Some(DivergingEpoch {
            epoch: 4,
            end_offset: 43
        })
    );
    assert_eq!((reply.fetch_offset, reply.last_fetched_epoch), (50, None));
    assert!(reply.batch_epochs.is_empty() && reply.batches.is_empty());

    drop(client);
    server.join().unwrap();
    let topic = "orders".to_owned();
    assert_eq!(
        seen_rx.try_iter().collect::<Vec<_>>(),
        [
            Seen {
                topic: topic.clone(),
                fields: (2, 3, 5, 41, Some(4), 40, 1_048_576, 0),
            },
            Seen {
                topic,
                fields: (2, 3, 5, 50, None, 50, 1_048_576, 0),
            },
        ]
    );
}

#[test]
fn leader_refusals_are_server_errors_and_a_wrong_echo_is_a_bad_reply() {
    let (addr, server) = serve(move |cid, request| {
        let Request::ReplicaFetch {
            leader_epoch,
            fetch_offset,
            last_fetched_epoch,
            ..
        } = *request
        else {
            panic!("unexpected request {request:?}");
        };
        let refusal = |error, message| Response::ReplicaFetch {
            error,
            message,
            leader_epoch: 0,
            fetch_offset: 0,
            last_fetched_epoch: None,
            high_watermark: 0,
            log_start_offset: 0,
            diverging: None,
            batch_epochs: vec![],
            batches: &[],
        };
        let response = match (leader_epoch, fetch_offset) {
            (4, _) => refusal(
                ErrorCode::NotLeader,
                "fetch at leader epoch 4 is fenced: the current epoch is 5",
            ),
            (_, 9_999) => refusal(
                ErrorCode::OffsetOutOfRange,
                "fetch offset 9999 is outside the leader's log [0, 44]",
            ),
            // Echoes an offset the follower never asked for.
            _ => answer(fetch_offset + 1, last_fetched_epoch, None, vec![], &[]),
        };
        vec![bytes_of(&Frame::response(cid, response))]
    });
    let mut client = Client::connect(&addr, client_config()).expect("connect");

    let stale = ReplicaFetchRequest {
        leader_epoch: 4,
        ..fetch_request()
    };
    let err = client.replica_fetch(&stale).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotLeader), "{err}");
    assert!(err.is_retriable());
    assert!(err.to_string().contains("fenced"), "{err}");

    let out_of_range = ReplicaFetchRequest {
        fetch_offset: 9_999,
        ..fetch_request()
    };
    let err = client.replica_fetch(&out_of_range).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::OffsetOutOfRange), "{err}");

    let err = client.replica_fetch(&fetch_request()).unwrap_err();
    assert!(
        matches!(&err, ClientError::BadReply { addr: a, correlation_id: 4, reason }
            if *a == addr && reason.contains("echo")),
        "{err:?}"
    );
    drop(client);
    server.join().unwrap();
}

#[test]
fn the_call_waits_for_the_leaders_long_poll() {
    let (addr, server) = serve(move |cid, request| {
        let Request::ReplicaFetch {
            fetch_offset,
            last_fetched_epoch,
            ..
        } = *request
        else {
            panic!("unexpected request {request:?}");
        };
        // A leader with nothing new holds the fetch before answering.
        std::thread::sleep(Duration::from_millis(400));
        let response = answer(fetch_offset, last_fetched_epoch, None, vec![], &[]);
        vec![bytes_of(&Frame::response(cid, response))]
    });
    let config = ClientConfig {
        request_timeout_ms: 150,
        ..client_config()
    };
    let mut client = Client::connect(&addr, config).expect("connect");
    // 150 ms alone would time out; the 1 s long-poll bound is added to it.
    let long_poll = ReplicaFetchRequest {
        max_wait_ms: 1_000,
        ..fetch_request()
    };
    let reply = client.replica_fetch(&long_poll).unwrap();
    assert!(reply.batches.is_empty());
    // Without a long-poll bound the same wait is a timeout.
    let err = client.replica_fetch(&fetch_request()).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                operation: "replica fetch",
                timeout_ms: 150,
                ..
            }
        ),
        "{err:?}"
    );
    drop(client);
    server.join().unwrap();
}
