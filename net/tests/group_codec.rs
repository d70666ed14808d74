//! Consumer groups at the codec level: the layouts of apis 18 to 22 and OffsetCommit v1 written
//! out by hand from docs/protocol.md and compared with the golden vectors; the topic and
//! partition caps (round trip at the cap, refused above it when encoding, malformed before any
//! allocation when decoding); OffsetCommit v0 refusing membership fields; the group error codes.

mod common;

use bytes::BytesMut;
use net::codec::{
    decode, encode, ApiKey, Body, CodecError, EncodeError, ErrorCode, Frame, GroupTopic, Limits,
    Malformed, Request, Response, GROUP_TOPICS_MAX,
};
use proptest::prelude::*;

fn golden(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/golden/{name}.bin", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).expect("golden file")
}

/// A frame of `api` at `api_version` with `flags` (0 request, 1 response) around `body`.
fn frame(api: ApiKey, api_version: u16, correlation_id: u32, flags: u16, body: &[u8]) -> Vec<u8> {
    let mut b = (10 + body.len() as u32).to_le_bytes().to_vec();
    b.extend_from_slice(&(api as u16).to_le_bytes());
    b.extend_from_slice(&api_version.to_le_bytes());
    b.extend_from_slice(&correlation_id.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(body);
    b
}

fn str_(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u16).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn u32_(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

/// `GroupTopic` = `topic str, partitions list<u32>`.
fn group_topic(b: &mut Vec<u8>, topic: &str, partitions: &[u32]) {
    str_(b, topic);
    u32_(b, partitions.len() as u32);
    for p in partitions {
        u32_(b, *p);
    }
}

const OK_HEAD: [u8; 4] = [0, 0, 0, 0]; // error NONE, empty message

#[test]
fn group_layouts_match_the_spec() {
    // FindCoordinator: `group str` -> head, `node_id u32, addr str`.
    let mut b = Vec::new();
    str_(&mut b, "billing");
    assert_eq!(
        golden("req_find_coordinator"),
        frame(ApiKey::FindCoordinator, 0, 21, 0, &b)
    );
    let mut b = OK_HEAD.to_vec();
    u32_(&mut b, 2);
    str_(&mut b, "10.0.0.2:7070");
    assert_eq!(
        golden("resp_find_coordinator"),
        frame(ApiKey::FindCoordinator, 0, 21, 1, &b)
    );

    // JoinGroup: `group str, member_id str, topics list<str>, assignor str, session_timeout_ms
    // u32` -> head, `member_id str, generation u32`.
    let mut b = Vec::new();
    str_(&mut b, "billing");
    str_(&mut b, "");
    u32_(&mut b, 2);
    str_(&mut b, "orders");
    str_(&mut b, "payments");
    str_(&mut b, "range");
    u32_(&mut b, 10_000);
    assert_eq!(
        golden("req_join_group"),
        frame(ApiKey::JoinGroup, 0, 22, 0, &b)
    );
    let mut b = OK_HEAD.to_vec();
    str_(&mut b, "billing-1");
    u32_(&mut b, 3);
    assert_eq!(
        golden("resp_join_group"),
        frame(ApiKey::JoinGroup, 0, 22, 1, &b)
    );

    // SyncGroup: `group str, member_id str, generation u32, owned list<GroupTopic>` -> head,
    // `generation u32, assigned list<GroupTopic>`.
    let mut b = Vec::new();
    str_(&mut b, "billing");
    str_(&mut b, "billing-1");
    u32_(&mut b, 3);
    u32_(&mut b, 1);
    group_topic(&mut b, "orders", &[0, 2]);
    assert_eq!(
        golden("req_sync_group"),
        frame(ApiKey::SyncGroup, 0, 23, 0, &b)
    );
    let mut b = OK_HEAD.to_vec();
    u32_(&mut b, 3);
    u32_(&mut b, 2);
    group_topic(&mut b, "orders", &[0, 1]);
    group_topic(&mut b, "payments", &[4]);
    assert_eq!(
        golden("resp_sync_group"),
        frame(ApiKey::SyncGroup, 0, 23, 1, &b)
    );

    // Heartbeat: `group str, member_id str, generation u32` -> head only.
    let mut b = Vec::new();
    str_(&mut b, "billing");
    str_(&mut b, "billing-1");
    u32_(&mut b, 3);
    assert_eq!(
        golden("req_heartbeat"),
        frame(ApiKey::Heartbeat, 0, 24, 0, &b)
    );
    let message = "billing is rebalancing; call SyncGroup";
    let mut b = 24u16.to_le_bytes().to_vec(); // REBALANCE_IN_PROGRESS
    str_(&mut b, message);
    assert_eq!(
        golden("resp_heartbeat_rebalance"),
        frame(ApiKey::Heartbeat, 0, 24, 1, &b)
    );

    // LeaveGroup: `group str, member_id str` -> head only.
    let mut b = Vec::new();
    str_(&mut b, "billing");
    str_(&mut b, "billing-1");
    assert_eq!(
        golden("req_leave_group"),
        frame(ApiKey::LeaveGroup, 0, 25, 0, &b)
    );
    assert_eq!(
        golden("resp_leave_group"),
        frame(ApiKey::LeaveGroup, 0, 25, 1, &OK_HEAD)
    );
}

/// OffsetCommit v1 is the v0 body with `member_id str, generation u32` appended.
#[test]
fn offset_commit_v1_appends_the_member_to_the_v0_body() {
    let v0 = golden("req_offset_commit");
    let mut body = v0[14..].to_vec();
    str_(&mut body, "billing-1");
    u32_(&mut body, 3);
    assert_eq!(
        golden("req_offset_commit_v1"),
        frame(ApiKey::OffsetCommit, 1, 14, 0, &body)
    );
    // The v0 vector decodes without membership.
    let Body::Request(Request::OffsetCommit {
        member_id,
        generation,
        ..
    }) = common::decode_one(&v0).body
    else {
        panic!("req_offset_commit is an OffsetCommit request");
    };
    assert_eq!((member_id, generation), ("", 0));
    let bytes = golden("resp_offset_commit_illegal_generation_v1");
    assert_eq!(&bytes[4..8], [11, 0, 1, 0]); // OffsetCommit, v1
    assert_eq!(&bytes[14..16], [25, 0]); // ILLEGAL_GENERATION
}

#[test]
fn offset_commit_v0_refuses_a_member_and_writes_nothing() {
    let member = common::groups::offset_commit_v1();
    let anonymous_generation = Request::OffsetCommit {
        consumer: "billing",
        topic: "orders",
        partition: 2,
        offset: 43,
        member_id: "",
        generation: 3,
    };
    for (request, field) in [(member, "member_id"), (anonymous_generation, "generation")] {
        let mut buf = BytesMut::from(&b"keep"[..]);
        let result = encode(
            &Frame::request_at(14, 0, request),
            &mut buf,
            &Limits::default(),
        );
        assert_eq!(
            result,
            Err(EncodeError::FieldNeedsVersion {
                api: ApiKey::OffsetCommit,
                version: 0,
                field,
                required_version: ApiKey::OFFSET_COMMIT_MEMBER_VERSION,
            })
        );
        assert_eq!(&buf[..], b"keep");
    }
    assert_eq!(ApiKey::OFFSET_COMMIT_MEMBER_VERSION, 1);
    assert_eq!(ApiKey::OffsetCommit.supported_versions(), (0, 1));
}

fn topics_of(count: usize, partitions: usize) -> Vec<GroupTopic<'static>> {
    (0..count)
        .map(|_| GroupTopic {
            topic: "t",
            partitions: (0..partitions as u32).collect(),
        })
        .collect()
}

fn sync_answer(assigned: Vec<GroupTopic<'static>>) -> Frame<'static> {
    Frame::response(
        5,
        Response::SyncGroup {
            error: ErrorCode::None,
            message: "",
            generation: 1,
            assigned,
        },
    )
}

fn join(topics: Vec<&'static str>) -> Frame<'static> {
    Frame::request(
        5,
        Request::JoinGroup {
            group: "g",
            member_id: "",
            topics,
            assignor: "range",
            session_timeout_ms: 1,
        },
    )
}

#[test]
fn lists_up_to_the_caps_round_trip_and_above_them_are_refused() {
    assert_eq!(GROUP_TOPICS_MAX, 256);
    assert_eq!(GroupTopic::TOPICS_MAX, GROUP_TOPICS_MAX);
    assert_eq!(GroupTopic::PARTITIONS_MAX, 65_536);
    let at_caps = [
        join(vec!["t"; GROUP_TOPICS_MAX]),
        sync_answer(topics_of(GROUP_TOPICS_MAX, 1)),
        sync_answer(topics_of(1, GroupTopic::PARTITIONS_MAX)),
    ];
    for frame in at_caps {
        let bytes = common::encode_frame(&frame);
        assert_eq!(common::decode_one(&bytes), frame);
    }
    let owned_over = Frame::request(
        5,
        Request::SyncGroup {
            group: "g",
            member_id: "m",
            generation: 1,
            owned: topics_of(GROUP_TOPICS_MAX + 1, 0),
        },
    );
    let over = [
        (join(vec!["t"; 257]), "topics", 257, GROUP_TOPICS_MAX),
        (owned_over, "owned", 257, GROUP_TOPICS_MAX),
        (
            sync_answer(topics_of(257, 0)),
            "assigned",
            257,
            GROUP_TOPICS_MAX,
        ),
        (
            sync_answer(topics_of(1, 65_537)),
            "partitions",
            65_537,
            GroupTopic::PARTITIONS_MAX,
        ),
    ];
    for (frame, field, count, limit) in over {
        let mut buf = BytesMut::from(&b"keep"[..]);
        assert_eq!(
            encode(&frame, &mut buf, &Limits::default()),
            Err(EncodeError::CountTooLarge {
                field,
                count,
                limit
            }),
            "{field}"
        );
        assert_eq!(&buf[..], b"keep", "nothing written");
    }
}

fn malformed(bytes: &[u8]) -> (&'static str, Malformed) {
    match decode(bytes, &Limits::default()) {
        Err(CodecError::Malformed { field, reason, .. }) => (field, reason),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn hostile_counts_are_malformed_before_allocating() {
    // JoinGroup claiming more topics than the cap: rejected on the count alone.
    for claimed in [257, u32::MAX] {
        let mut b = Vec::new();
        str_(&mut b, "g");
        str_(&mut b, "");
        u32_(&mut b, claimed);
        b.extend_from_slice(&[0; 16]);
        assert_eq!(
            malformed(&frame(ApiKey::JoinGroup, 0, 1, 0, &b)),
            (
                "topics",
                Malformed::CountAboveLimit {
                    count: u64::from(claimed),
                    limit: 256
                }
            )
        );
    }
    // SyncGroup answer: 256 topics claimed (at the cap) but 6 bytes left (one empty topic).
    let mut b = OK_HEAD.to_vec();
    u32_(&mut b, 1);
    u32_(&mut b, 256);
    group_topic(&mut b, "", &[]);
    assert_eq!(
        malformed(&frame(ApiKey::SyncGroup, 0, 1, 1, &b)),
        (
            "assigned",
            Malformed::CountTooLarge {
                count: 256,
                remaining_bytes: 6
            }
        )
    );
    // One topic whose partition count is above the cap, or at it with 4 bytes present.
    for (claimed, reason) in [
        (
            65_537,
            Malformed::CountAboveLimit {
                count: 65_537,
                limit: 65_536,
            },
        ),
        (
            u32::MAX,
            Malformed::CountAboveLimit {
                count: u64::from(u32::MAX),
                limit: 65_536,
            },
        ),
        (
            65_536,
            Malformed::CountTooLarge {
                count: 65_536,
                remaining_bytes: 4,
            },
        ),
    ] {
        let mut b = Vec::new();
        str_(&mut b, "g");
        str_(&mut b, "m");
        u32_(&mut b, 1); // generation
        u32_(&mut b, 1); // one owned topic
        str_(&mut b, "t");
        u32_(&mut b, claimed);
        u32_(&mut b, 0);
        assert_eq!(
            malformed(&frame(ApiKey::SyncGroup, 0, 1, 0, &b)),
            ("partitions", reason)
        );
    }
    // Truncated inside the session timeout; a stray byte after a LeaveGroup body.
    let mut b = Vec::new();
    str_(&mut b, "g");
    str_(&mut b, "");
    u32_(&mut b, 0);
    str_(&mut b, "range");
    b.extend_from_slice(&[1, 2]);
    assert_eq!(
        malformed(&frame(ApiKey::JoinGroup, 0, 1, 0, &b)),
        (
            "session_timeout_ms",
            Malformed::Truncated {
                needed_bytes: 4,
                remaining_bytes: 2
            }
        )
    );
    let mut b = Vec::new();
    str_(&mut b, "g");
    str_(&mut b, "m");
    b.push(9);
    assert_eq!(
        malformed(&frame(ApiKey::LeaveGroup, 0, 1, 0, &b)),
        ("body", Malformed::TrailingBytes { count: 1 })
    );
    // A group api at a version the codec has no layout for is skippable.
    let bytes = frame(ApiKey::Heartbeat, 1, 1, 0, &[]);
    let err = decode(&bytes, &Limits::default()).unwrap_err();
    assert!(
        matches!(err, CodecError::UnsupportedVersion { .. }),
        "{err:?}"
    );
    assert_eq!(err.skippable().map(|(_, n)| n), Some(bytes.len()));
}

#[test]
fn group_error_codes_have_their_wire_values_names_and_retry_flags() {
    for (code, value, name, retriable) in [
        (ErrorCode::NotCoordinator, 22, "NOT_COORDINATOR", true),
        (ErrorCode::UnknownMember, 23, "UNKNOWN_MEMBER", false),
        (
            ErrorCode::RebalanceInProgress,
            24,
            "REBALANCE_IN_PROGRESS",
            true,
        ),
        (
            ErrorCode::IllegalGeneration,
            25,
            "ILLEGAL_GENERATION",
            false,
        ),
    ] {
        assert_eq!(code as u16, value);
        assert_eq!(ErrorCode::from_u16(value), Some(code));
        assert_eq!(code.name(), name);
        assert_eq!(code.is_retriable(), retriable, "{name}");
    }
    assert_eq!(ErrorCode::from_u16(26), None);
    for (api, key, name) in [
        (ApiKey::FindCoordinator, 18, "FindCoordinator"),
        (ApiKey::JoinGroup, 19, "JoinGroup"),
        (ApiKey::SyncGroup, 20, "SyncGroup"),
        (ApiKey::Heartbeat, 21, "Heartbeat"),
        (ApiKey::LeaveGroup, 22, "LeaveGroup"),
    ] {
        assert_eq!(ApiKey::from_u16(key), Some(api));
        assert_eq!(api.name(), name);
        assert_eq!(api.supported_versions(), (0, 0));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any OffsetCommit encodes at v1 and decodes back; at v0 it encodes exactly when it carries
    /// no membership, and then decodes back too.
    #[test]
    fn offset_commit_encodes_at_v0_only_without_membership(
        (_, request) in common::groups::offset_commit_request(),
        member_id in common::strategies::text(),
        generation in any::<u32>(),
    ) {
        let Request::OffsetCommit { consumer, topic, partition, offset, .. } = request else {
            unreachable!("the strategy makes OffsetCommit requests");
        };
        let request = Request::OffsetCommit {
            consumer, topic, partition, offset, member_id, generation,
        };
        let v1 = Frame::request_at(3, 1, request.clone());
        let bytes = common::encode_frame(&v1);
        prop_assert_eq!(common::decode_one(&bytes), v1);
        let v0 = Frame::request_at(3, 0, request);
        let mut buf = BytesMut::new();
        let result = encode(&v0, &mut buf, &Limits::default());
        if member_id.is_empty() && generation == 0 {
            prop_assert!(result.is_ok(), "{:?}", result);
            prop_assert_eq!(common::decode_one(&buf), v0);
        } else {
            let refused = matches!(result, Err(EncodeError::FieldNeedsVersion { .. }));
            prop_assert!(refused, "{:?}", result);
            prop_assert!(buf.is_empty());
        }
    }
}
