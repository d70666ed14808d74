//! Replication at the codec level: AlterInSync (api 17) caps its `in_sync` list at 255 node ids
//! when encoding and decoding (before allocating), and rejects hostile bytes with typed errors;
//! Produce v1 shares the v0 layout; NOT_ENOUGH_REPLICAS is code 21, retriable, and (like every
//! code) decodes in any response whatever its api and version.

mod common;

use bytes::BytesMut;
use net::codec::{
    decode, encode, ApiKey, CodecError, EncodeError, ErrorCode, Frame, Limits, Malformed,
    PartitionPlacement, Request, Response,
};

/// A frame of `api_key` v0 with `flags` around `body`, its length filled in.
fn frame(api_key: ApiKey, api_version: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let mut b = (10 + body.len() as u32).to_le_bytes().to_vec();
    b.extend_from_slice(&(api_key as u16).to_le_bytes());
    b.extend_from_slice(&api_version.to_le_bytes());
    b.extend_from_slice(&33u32.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(body);
    b
}

fn malformed(bytes: &[u8]) -> (&'static str, Malformed) {
    match decode(bytes, &Limits::default()) {
        Err(CodecError::Malformed { field, reason, .. }) => (field, reason),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

fn request(in_sync: Vec<u32>) -> Frame<'static> {
    Frame::request(
        4,
        Request::AlterInSync {
            topic: "orders",
            partition: 2,
            leader: 1,
            leader_epoch: 5,
            isr_version: 7,
            in_sync,
            successor: 0,
        },
    )
}

fn answer(error: ErrorCode, message: &str, isr_version: u32, in_sync: Vec<u32>) -> Frame<'_> {
    Frame::response(
        4,
        Response::AlterInSync {
            error,
            message,
            isr_version,
            in_sync,
        },
    )
}

#[test]
fn in_sync_lists_up_to_the_cap_round_trip_and_above_it_are_refused() {
    let full: Vec<u32> = (1..=255).collect();
    assert_eq!(full.len(), PartitionPlacement::NODES_MAX);
    for frame in [request(full.clone()), answer(ErrorCode::None, "", 8, full)] {
        let bytes = common::encode_frame(&frame);
        assert_eq!(common::decode_one(&bytes), frame);
    }
    let over: Vec<u32> = (1..=256).collect();
    for frame in [request(over.clone()), answer(ErrorCode::None, "", 8, over)] {
        let mut buf = BytesMut::from(&b"keep"[..]);
        assert_eq!(
            encode(&frame, &mut buf, &Limits::default()),
            Err(EncodeError::CountTooLarge {
                field: "in_sync",
                count: 256,
                limit: PartitionPlacement::NODES_MAX,
            })
        );
        assert_eq!(&buf[..], b"keep", "nothing written");
    }
}

#[test]
fn refusals_round_trip_with_their_message() {
    for (error, message) in [
        (
            ErrorCode::NotLeader,
            "node 2 does not lead the metadata; the leader is node 1 at 10.0.0.1:7070",
        ),
        (
            ErrorCode::InvalidRequest,
            "stale isr_version 6: the in-sync set of orders/2 is at version 7",
        ),
        (ErrorCode::UnknownPartition, "orders has 2 partitions"),
        (ErrorCode::Timeout, "not committed within 5000 ms"),
    ] {
        let frame = answer(error, message, 0, vec![]);
        let bytes = common::encode_frame(&frame);
        assert_eq!(bytes.len(), 14 + 2 + 2 + message.len() + 4 + 4);
        assert_eq!(common::decode_one(&bytes), frame);
    }
}

/// A request body for topic "t" up to `isr_version`, then `tail` (the in-sync count and nodes).
fn request_body(tail: &[u8]) -> Vec<u8> {
    let mut b = vec![1, 0, b't'];
    b.extend_from_slice(&2u32.to_le_bytes()); // partition
    b.extend_from_slice(&1u32.to_le_bytes()); // leader
    b.extend_from_slice(&5u32.to_le_bytes()); // leader_epoch
    b.extend_from_slice(&7u32.to_le_bytes()); // isr_version
    b.extend_from_slice(tail);
    b
}

fn count(n: u32) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

#[test]
fn hostile_in_sync_counts_are_malformed_before_allocating() {
    // Above the cap: rejected on the count alone, whatever follows.
    for claimed in [256, u32::MAX] {
        let mut tail = count(claimed);
        tail.extend_from_slice(&[0; 8]);
        let bytes = frame(ApiKey::AlterInSync, 0, 0, &request_body(&tail));
        assert_eq!(
            malformed(&bytes),
            (
                "in_sync",
                Malformed::CountAboveLimit {
                    count: u64::from(claimed),
                    limit: 255,
                }
            )
        );
    }
    // At the cap but with only two node ids present.
    let mut tail = count(255);
    tail.extend_from_slice(&[0; 8]);
    let bytes = frame(ApiKey::AlterInSync, 0, 0, &request_body(&tail));
    assert_eq!(
        malformed(&bytes),
        (
            "in_sync",
            Malformed::CountTooLarge {
                count: 255,
                remaining_bytes: 8,
            }
        )
    );
    // The same in an answer.
    let mut body = vec![0, 0, 0, 0]; // error NONE, empty message
    body.extend_from_slice(&8u32.to_le_bytes()); // isr_version
    body.extend_from_slice(&count(300));
    let bytes = frame(ApiKey::AlterInSync, 0, 1, &body);
    assert_eq!(
        malformed(&bytes),
        (
            "in_sync",
            Malformed::CountAboveLimit {
                count: 300,
                limit: 255
            }
        )
    );
}

#[test]
fn truncated_and_overlong_bodies_are_malformed() {
    // Stops inside isr_version.
    let body = request_body(&[]);
    let bytes = frame(ApiKey::AlterInSync, 0, 0, &body[..body.len() - 2]);
    assert_eq!(
        malformed(&bytes),
        (
            "isr_version",
            Malformed::Truncated {
                needed_bytes: 4,
                remaining_bytes: 2,
            }
        )
    );
    // One node id and a stray byte.
    let mut tail = count(1);
    tail.extend_from_slice(&[3, 0, 0, 0, 9]);
    let bytes = frame(ApiKey::AlterInSync, 0, 0, &request_body(&tail));
    assert_eq!(
        malformed(&bytes),
        ("body", Malformed::TrailingBytes { count: 1 })
    );
    // v1 stops inside the successor.
    let mut tail = count(0);
    tail.extend_from_slice(&[3, 0]);
    let bytes = frame(ApiKey::AlterInSync, 1, 0, &request_body(&tail));
    assert_eq!(
        malformed(&bytes),
        (
            "successor",
            Malformed::Truncated {
                needed_bytes: 4,
                remaining_bytes: 2,
            }
        )
    );
    // A version the codec has no layout for is skippable, not malformed.
    let bytes = frame(ApiKey::AlterInSync, 2, 0, &request_body(&count(0)));
    let err = decode(&bytes, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::UnsupportedVersion {
                supported_min: 0,
                supported_max: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.skippable().map(|(_, n)| n), Some(bytes.len()));
}

#[test]
fn not_enough_replicas_is_code_21_and_retriable() {
    assert_eq!(ErrorCode::NotEnoughReplicas as u16, 21);
    assert_eq!(ErrorCode::from_u16(21), Some(ErrorCode::NotEnoughReplicas));
    assert_eq!(ErrorCode::NotEnoughReplicas.name(), "NOT_ENOUGH_REPLICAS");
    assert!(ErrorCode::NotEnoughReplicas.is_retriable());
    assert_eq!(ErrorCode::from_u16(22), Some(ErrorCode::NotCoordinator));
    assert_eq!(ErrorCode::NOT_ENOUGH_REPLICAS_VERSION, 1);
    assert_eq!(
        ApiKey::Produce.supported_versions(),
        (0, ErrorCode::NOT_ENOUGH_REPLICAS_VERSION)
    );
}

/// Produce v1 is the v0 layout; the codec does not check which codes a version may carry, so
/// code 21 decodes in a v0 answer too (keeping the server from sending it to a v0 producer is
/// the server's rule), while a code outside the table is malformed at every version.
#[test]
fn produce_v1_shares_the_v0_layout_and_codes_are_not_checked_per_version() {
    let v0 = common::encode_frame(&Frame::request_at(8, 0, common::samples::produce_request()));
    let v1 = common::encode_frame(&Frame::request_at(8, 1, common::samples::produce_request()));
    assert_eq!(v0[..6], v1[..6]);
    assert_eq!((v0[6], v1[6]), (0, 1));
    assert_eq!(v0[8..], v1[8..]);

    let mut body = vec![21, 0, 0, 0]; // NOT_ENOUGH_REPLICAS, empty message
    body.extend_from_slice(&[0; 8 + 4 + 8 + 4 + 1 + 1]);
    for version in [0, 1] {
        let bytes = frame(ApiKey::Produce, version, 1, &body);
        let decoded = common::decode_one(&bytes);
        let Some((code, _)) = (match &decoded.body {
            net::codec::Body::Response(r) => Some(r.error()),
            net::codec::Body::Request(_) => None,
        }) else {
            panic!("a response: {decoded:?}");
        };
        assert_eq!(code, ErrorCode::NotEnoughReplicas, "v{version}");
    }
    let unknown_code = ErrorCode::ALL.len() as u16;
    body[..2].copy_from_slice(&unknown_code.to_le_bytes());
    for version in [0, 1] {
        let bytes = frame(ApiKey::Produce, version, 1, &body);
        assert_eq!(
            malformed(&bytes),
            (
                "error",
                Malformed::InvalidValue {
                    value: i64::from(unknown_code)
                }
            )
        );
    }
}
