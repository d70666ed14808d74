//! `Client`'s consumer-group calls against fake servers: every request field reaches the
//! server, answers come back owned, group error codes are `ClientError::Server` with their code
//! (REBALANCE_IN_PROGRESS included), OffsetCommit goes out at v1 with the member, and calls a
//! server cannot carry are refused before anything is sent.

mod common;

use std::sync::mpsc;

use common::fake_server::{
    bytes_of, client_config, serve, serve_with_headers, versions_reply_with, versions_reply_without,
};
use common::groups::{GENERATION, MEMBER};
use net::client::{Client, ClientError};
use net::codec::{
    ApiKey, EncodeError, ErrorCode, Frame, FrameHeader, GroupTopic, Limits, Request, Response,
};

const GROUP_APIS: [ApiKey; 5] = [
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
];

/// A readable summary of one request, as the fake coordinator saw it (with its version).
fn seen(header: FrameHeader, request: &Request<'_>) -> String {
    format!("v{} {request:?}", header.api_version)
}

fn owned(topics: &[(&str, &[u32])]) -> Vec<(String, Vec<u32>)> {
    topics
        .iter()
        .map(|(t, p)| ((*t).to_owned(), p.to_vec()))
        .collect()
}

/// A coordinator that accepts every group call: `billing-1` joins generation 3 and is
/// assigned orders/0, orders/1 and payments/4; heartbeats answer REBALANCE_IN_PROGRESS.
fn coordinator(cid: u32, version: u16, request: &Request<'_>) -> Vec<u8> {
    let ok = ErrorCode::None;
    let response = match request {
        Request::FindCoordinator { .. } => Response::FindCoordinator {
            error: ok,
            message: "",
            node_id: 2,
            addr: "10.0.0.2:7070",
        },
        Request::JoinGroup { .. } => Response::JoinGroup {
            error: ok,
            message: "",
            member_id: MEMBER,
            generation: GENERATION,
        },
        Request::SyncGroup { .. } => Response::SyncGroup {
            error: ok,
            message: "",
            generation: GENERATION,
            assigned: common::groups::assigned(),
        },
        Request::Heartbeat { .. } => Response::Heartbeat {
            error: ErrorCode::RebalanceInProgress,
            message: "billing is rebalancing; call SyncGroup",
        },
        Request::LeaveGroup { .. } => Response::LeaveGroup {
            error: ok,
            message: "",
        },
        Request::OffsetCommit {
            generation: GENERATION,
            ..
        } => Response::OffsetCommit {
            error: ok,
            message: "",
        },
        Request::OffsetCommit { .. } => Response::OffsetCommit {
            error: ErrorCode::IllegalGeneration,
            message: "billing is at generation 3",
        },
        other => panic!("unexpected request {other:?}"),
    };
    bytes_of(&Frame::response_at(cid, version, response))
}

#[test]
fn group_calls_send_every_field_and_return_owned_answers() {
    let (seen_tx, seen_rx) = mpsc::channel::<String>();
    let (addr, server) = serve_with_headers(
        |cid| versions_reply_with(cid, &[], Limits::FRAME_BYTES_MAX_DEFAULT),
        move |header, request| {
            seen_tx.send(seen(header, request)).unwrap();
            vec![coordinator(
                header.correlation_id,
                header.api_version,
                request,
            )]
        },
    );
    let mut client = Client::connect(&addr, client_config()).expect("connect");
    assert_eq!(client.api_version(ApiKey::OffsetCommit), 1);

    assert_eq!(
        client.find_coordinator("billing").unwrap(),
        (2, "10.0.0.2:7070".to_owned())
    );
    let (member_id, generation) = client
        .join_group("billing", "", &["orders", "payments"], "range", 10_000)
        .unwrap();
    assert_eq!((member_id.as_str(), generation), (MEMBER, GENERATION));
    let mine = owned(&[("orders", &[0, 2])]);
    let (generation, assigned) = client
        .sync_group("billing", &member_id, generation, &mine)
        .unwrap();
    assert_eq!(generation, GENERATION);
    assert_eq!(assigned, owned(&[("orders", &[0, 1]), ("payments", &[4])]));
    let err = client
        .heartbeat("billing", &member_id, generation)
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RebalanceInProgress), "{err}");
    assert!(err.to_string().contains("call SyncGroup"), "{err}");
    client
        .commit_offset_member("billing", "orders", 2, 43, &member_id, generation)
        .unwrap();
    let err = client
        .commit_offset_member("billing", "orders", 2, 44, &member_id, 2)
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::IllegalGeneration), "{err}");
    assert!(!err.is_retriable());
    client.leave_group("billing", &member_id).unwrap();
    drop(client);
    server.join().unwrap();

    let sync = Request::SyncGroup {
        group: "billing",
        member_id: MEMBER,
        generation: GENERATION,
        owned: vec![GroupTopic {
            topic: "orders",
            partitions: vec![0, 2],
        }],
    };
    let header = |api_version| FrameHeader {
        api_key: 0,
        api_version,
        correlation_id: 0,
        flags: 0,
    };
    let expected = [
        seen(header(0), &Request::FindCoordinator { group: "billing" }),
        seen(
            header(0),
            &Request::JoinGroup {
                group: "billing",
                member_id: "",
                topics: vec!["orders", "payments"],
                assignor: "range",
                session_timeout_ms: 10_000,
            },
        ),
        seen(header(0), &sync),
        seen(
            header(0),
            &Request::Heartbeat {
                group: "billing",
                member_id: MEMBER,
                generation: GENERATION,
            },
        ),
        seen(header(1), &common::groups::offset_commit_v1()),
        seen(header(1), &commit(44, MEMBER, 2)),
        seen(
            header(0),
            &Request::LeaveGroup {
                group: "billing",
                member_id: MEMBER,
            },
        ),
    ];
    assert_eq!(seen_rx.try_iter().collect::<Vec<_>>(), expected);
}

/// billing commits orders/2 at `offset` as `member_id` of `generation`.
fn commit(offset: u64, member_id: &'static str, generation: u32) -> Request<'static> {
    Request::OffsetCommit {
        consumer: "billing",
        topic: "orders",
        partition: 2,
        offset,
        member_id,
        generation,
    }
}

#[test]
fn group_calls_against_a_server_without_them_are_refused_before_sending() {
    let (seen_tx, seen_rx) = mpsc::channel::<ApiKey>();
    let (addr, server) = serve_with_headers(
        |cid| versions_reply_without(cid, &GROUP_APIS),
        move |header, request| {
            seen_tx.send(request.api_key()).unwrap();
            vec![coordinator(
                header.correlation_id,
                header.api_version,
                request,
            )]
        },
    );
    let mut client = Client::connect(&addr, client_config()).expect("connect");
    let results = [
        client.find_coordinator("billing").map(drop),
        client
            .join_group("billing", "", &["orders"], "range", 1)
            .map(drop),
        client.sync_group("billing", MEMBER, 1, &[]).map(drop),
        client.heartbeat("billing", MEMBER, 1),
        client.leave_group("billing", MEMBER),
    ];
    for (api, result) in GROUP_APIS.iter().zip(results) {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, ClientError::ApiUnsupported { api: a, .. } if a == api),
            "{err:?}"
        );
        assert!(err.to_string().contains(api.name()), "{err}");
    }
    // The connection still works, and OffsetCommit still goes out (at v1).
    client
        .commit_offset_member("billing", "orders", 2, 43, MEMBER, GENERATION)
        .unwrap();
    drop(client);
    server.join().unwrap();
    assert_eq!(
        seen_rx.try_iter().collect::<Vec<_>>(),
        [ApiKey::OffsetCommit]
    );
}

#[test]
fn a_member_commit_against_an_offset_commit_v0_server_is_refused_before_sending() {
    let (seen_tx, seen_rx) = mpsc::channel::<String>();
    let (addr, server) = serve_with_headers(
        |cid| {
            versions_reply_with(
                cid,
                &[(ApiKey::OffsetCommit, (0, 0))],
                Limits::FRAME_BYTES_MAX_DEFAULT,
            )
        },
        move |header, request| {
            seen_tx.send(seen(header, request)).unwrap();
            vec![bytes_of(&Frame::response_at(
                header.correlation_id,
                header.api_version,
                Response::OffsetCommit {
                    error: ErrorCode::None,
                    message: "",
                },
            ))]
        },
    );
    let mut client = Client::connect(&addr, client_config()).expect("connect");
    assert_eq!(client.api_version(ApiKey::OffsetCommit), 0);
    for (member_id, generation) in [(MEMBER, GENERATION), ("", 1)] {
        let err = client
            .commit_offset_member("billing", "orders", 2, 43, member_id, generation)
            .unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::GroupMembershipUnsupported {
                    negotiated_version: 0,
                    required_version: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("OffsetCommit v1"), "{err}");
    }
    // Without membership the commit goes out at v0.
    client.commit_offset("billing", "orders", 2, 43).unwrap();
    drop(client);
    server.join().unwrap();
    let plain = commit(43, "", 0);
    let header = FrameHeader {
        api_key: 11,
        api_version: 0,
        correlation_id: 0,
        flags: 0,
    };
    assert_eq!(
        seen_rx.try_iter().collect::<Vec<_>>(),
        [seen(header, &plain)]
    );
}

#[test]
fn oversized_group_lists_are_refused_before_sending() {
    let (seen_tx, seen_rx) = mpsc::channel::<ApiKey>();
    let (addr, server) = serve(move |cid, request| {
        seen_tx.send(request.api_key()).unwrap();
        vec![coordinator(cid, 0, request)]
    });
    let mut client = Client::connect(&addr, client_config()).expect("connect");
    let topics = vec!["t"; 257];
    let err = client
        .join_group("billing", "", &topics, "range", 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Encode(EncodeError::CountTooLarge {
                field: "topics",
                count: 257,
                limit: 256
            })
        ),
        "{err:?}"
    );
    let partitions = vec![("orders".to_owned(), (0..65_537).collect::<Vec<u32>>())];
    let err = client
        .sync_group("billing", MEMBER, 1, &partitions)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Encode(EncodeError::CountTooLarge {
                field: "partitions",
                count: 65_537,
                limit: 65_536
            })
        ),
        "{err:?}"
    );
    // The largest lists the wire carries do go out.
    client
        .join_group("billing", "", &topics[..256], "range", 1)
        .unwrap();
    drop(client);
    server.join().unwrap();
    assert_eq!(seen_rx.try_iter().collect::<Vec<_>>(), [ApiKey::JoinGroup]);
}
