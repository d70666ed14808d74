//! ReplicaFetch (api 16) at the codec level: the encoder refuses what the spec forbids (a
//! diverging answer with batches, too many batch epochs), and hostile bytes (lying counts, bad
//! presence bytes, truncated blobs) fail with typed errors before anything large is allocated.

mod common;

use bytes::BytesMut;
use net::codec::{
    decode, encode, ApiKey, BatchEpoch, CodecError, Decoded, DivergingEpoch, EncodeError,
    ErrorCode, Frame, Limits, Malformed, Request, Response,
};

/// A frame with `body` after a header whose length is filled in correctly.
fn frame(api_version: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let mut b = (10 + body.len() as u32).to_le_bytes().to_vec();
    b.extend_from_slice(&(ApiKey::ReplicaFetch as u16).to_le_bytes());
    b.extend_from_slice(&api_version.to_le_bytes());
    b.extend_from_slice(&77u32.to_le_bytes());
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

/// A request body for topic "t" whose `last_fetched_epoch` presence byte is `presence` (followed
/// by the epoch when it is 1), then the rest of the fields.
fn request_body(presence: u8) -> Vec<u8> {
    let mut b = vec![1, 0, b't'];
    b.extend_from_slice(&[0; 12]); // partition, replica, leader_epoch
    b.extend_from_slice(&7u64.to_le_bytes()); // fetch_offset
    b.push(presence);
    if presence == 1 {
        b.extend_from_slice(&3u32.to_le_bytes());
    }
    b.extend_from_slice(&[0; 8 + 4 + 4]); // durable_offset, max_bytes, max_wait_ms
    b
}

/// An answer body up to and including the `diverging` presence byte (and the diverging epoch when
/// that byte is 1), with `last_fetched_epoch` absent.
fn response_body(diverging: u8) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 0]; // error NONE, empty message
    b.extend_from_slice(&5u32.to_le_bytes()); // leader_epoch
    b.extend_from_slice(&7u64.to_le_bytes()); // fetch_offset
    b.push(0); // last_fetched_epoch absent
    b.extend_from_slice(&[0; 16]); // high_watermark, log_start_offset
    b.push(diverging);
    if diverging == 1 {
        b.extend_from_slice(&[4, 0, 0, 0]); // epoch
        b.extend_from_slice(&3u64.to_le_bytes()); // end_offset
    }
    b
}

fn answer(
    diverging: Option<DivergingEpoch>,
    batch_epochs: Vec<BatchEpoch>,
    batches: &[u8],
) -> Frame<'_> {
    Frame::response_at(
        9,
        0,
        Response::ReplicaFetch {
            error: ErrorCode::None,
            message: "",
            leader_epoch: 5,
            fetch_offset: 7,
            last_fetched_epoch: Some(4),
            high_watermark: 7,
            log_start_offset: 0,
            diverging,
            batch_epochs,
            batches,
        },
    )
}

const EPOCH: BatchEpoch = BatchEpoch {
    epoch: 4,
    base_offset: 7,
    next_offset: 9,
};
const DIVERGING: DivergingEpoch = DivergingEpoch {
    epoch: 4,
    end_offset: 3,
};

#[test]
fn requests_and_answers_round_trip_with_and_without_the_optionals() {
    for last_fetched_epoch in [None, Some(0), Some(u32::MAX)] {
        let frame = Frame::request(
            3,
            Request::ReplicaFetch {
                topic: "orders",
                partition: 1,
                replica: 2,
                leader_epoch: 9,
                fetch_offset: 100,
                last_fetched_epoch,
                durable_offset: 90,
                max_bytes: 1 << 20,
                max_wait_ms: 250,
            },
        );
        assert_eq!(frame.header.api_key, 16);
        let bytes = common::encode_frame(&frame);
        let epoch_bytes = if last_fetched_epoch.is_some() { 5 } else { 1 };
        assert_eq!(bytes.len(), 14 + 2 + 6 + 12 + 8 + epoch_bytes + 16);
        assert_eq!(common::decode_one(&bytes), frame);
    }
    for frame in [
        answer(None, vec![], &[]),
        answer(None, vec![EPOCH; 3], &[0xab; 4096]),
        answer(Some(DIVERGING), vec![], &[]),
    ] {
        assert_eq!(common::decode_one(&common::encode_frame(&frame)), frame);
    }
}

#[test]
fn a_diverging_answer_with_batches_is_refused_by_the_encoder() {
    for (field, count, frame) in [
        ("batch_epochs", 1, answer(Some(DIVERGING), vec![EPOCH], &[])),
        ("batches", 3, answer(Some(DIVERGING), vec![], b"abc")),
    ] {
        let mut buf = BytesMut::from(&b"keep"[..]);
        let err = encode(&frame, &mut buf, &Limits::default()).unwrap_err();
        assert_eq!(
            err,
            EncodeError::MustBeEmpty {
                api: ApiKey::ReplicaFetch,
                field,
                count,
                because_present: "diverging",
            }
        );
        assert_eq!(&buf[..], b"keep", "nothing written");
        assert!(err.to_string().contains("ReplicaFetch"), "{err}");
    }
}

#[test]
fn batch_epochs_above_the_cap_are_refused_by_the_encoder() {
    let full = vec![EPOCH; BatchEpoch::COUNT_MAX];
    let frame = answer(None, full, &[]);
    let bytes = common::encode_frame(&frame);
    assert_eq!(
        bytes.len(),
        14 + 4 + 4 + 8 + 5 + 16 + 1 + 4 + 20 * 65_536 + 4
    );
    assert_eq!(common::decode_one(&bytes), frame);

    let frame = answer(None, vec![EPOCH; BatchEpoch::COUNT_MAX + 1], &[]);
    assert_eq!(
        encode(&frame, &mut BytesMut::new(), &Limits::default()),
        Err(EncodeError::CountTooLarge {
            field: "batch_epochs",
            count: 65_537,
            limit: 65_536,
        })
    );
}

#[test]
fn batch_epoch_counts_are_checked_against_the_cap_and_the_bytes_left() {
    // 10 entries claimed, one entry's 20 bytes present.
    let mut body = response_body(0);
    body.extend_from_slice(&10u32.to_le_bytes());
    body.extend_from_slice(&[0; 20]);
    assert_eq!(
        malformed(&frame(0, 1, &body)),
        (
            "batch_epochs",
            Malformed::CountTooLarge {
                count: 10,
                remaining_bytes: 20
            }
        )
    );
    // One above the cap, and u32::MAX: refused before the remaining bytes are looked at.
    for count in [65_537u32, u32::MAX] {
        let mut body = response_body(0);
        body.extend_from_slice(&count.to_le_bytes());
        assert_eq!(
            malformed(&frame(0, 1, &body)),
            (
                "batch_epochs",
                Malformed::CountAboveLimit {
                    count: u64::from(count),
                    limit: 65_536
                }
            )
        );
    }
}

#[test]
fn bad_presence_bytes_are_malformed() {
    assert_eq!(
        malformed(&frame(0, 0, &request_body(2))),
        ("last_fetched_epoch", Malformed::InvalidValue { value: 2 })
    );
    let mut body = response_body(0);
    body[4 + 4 + 8] = 7; // the answer's last_fetched_epoch presence byte
    assert_eq!(
        malformed(&frame(0, 1, &body)),
        ("last_fetched_epoch", Malformed::InvalidValue { value: 7 })
    );
    assert_eq!(
        malformed(&frame(0, 1, &response_body(2))),
        ("diverging", Malformed::InvalidValue { value: 2 })
    );
    // Both valid presence values decode.
    for presence in [0, 1] {
        let bytes = frame(0, 0, &request_body(presence));
        assert!(matches!(
            decode(&bytes, &Limits::default()),
            Ok(Decoded::Frame(_, n)) if n == bytes.len()
        ));
    }
}

#[test]
fn truncated_blobs_and_fields_are_malformed() {
    // batches says 100 bytes, 3 remain.
    let mut body = response_body(0);
    body.extend_from_slice(&0u32.to_le_bytes()); // no batch epochs
    body.extend_from_slice(&100u32.to_le_bytes());
    body.extend_from_slice(&[1, 2, 3]);
    assert_eq!(
        malformed(&frame(0, 1, &body)),
        (
            "batches",
            Malformed::Truncated {
                needed_bytes: 100,
                remaining_bytes: 3
            }
        )
    );
    // A present last_fetched_epoch cut after 2 of its 4 bytes.
    let mut body = request_body(1);
    body.truncate(3 + 12 + 8 + 1 + 2);
    assert_eq!(
        malformed(&frame(0, 0, &body)),
        (
            "last_fetched_epoch",
            Malformed::Truncated {
                needed_bytes: 4,
                remaining_bytes: 2
            }
        )
    );
    // A request with one byte too many.
    let mut body = request_body(0);
    body.push(0);
    assert_eq!(
        malformed(&frame(0, 0, &body)),
        ("body", Malformed::TrailingBytes { count: 1 })
    );
}

#[test]
fn a_diverging_answer_carrying_batches_is_malformed() {
    let mut body = response_body(1);
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&[0; 20]);
    body.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(
        malformed(&frame(0, 1, &body)),
        (
            "batch_epochs",
            Malformed::MustBeEmpty {
                count: 1,
                because_present: "diverging"
            }
        )
    );
    let mut body = response_body(1);
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&2u32.to_le_bytes());
    body.extend_from_slice(b"xy");
    assert_eq!(
        malformed(&frame(0, 1, &body)),
        (
            "batches",
            Malformed::MustBeEmpty {
                count: 2,
                because_present: "diverging"
            }
        )
    );
    // The same diverging answer with both empty decodes.
    let mut body = response_body(1);
    body.extend_from_slice(&[0; 8]);
    let bytes = frame(0, 1, &body);
    assert!(matches!(
        decode(&bytes, &Limits::default()),
        Ok(Decoded::Frame(_, n)) if n == bytes.len()
    ));
}

#[test]
fn replica_fetch_has_only_version_0() {
    assert_eq!(ApiKey::ReplicaFetch.supported_versions(), (0, 0));
    assert_eq!(ApiKey::from_u16(16), Some(ApiKey::ReplicaFetch));
    assert!(matches!(
        decode(&frame(1, 0, &request_body(0)), &Limits::default()),
        Err(CodecError::UnsupportedVersion {
            supported_min: 0,
            supported_max: 0,
            ..
        })
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Any combination of `diverging`, batch epochs and batches: the encoder accepts it exactly
    /// when a present `diverging` comes without batches, and what it accepts decodes unchanged.
    #[test]
    fn the_encoder_accepts_exactly_the_answers_the_spec_allows(
        diverging in proptest::option::of(proptest::prelude::any::<(u32, u64)>()),
        epochs in 0usize..3,
        batches in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3),
    ) {
        let diverging = diverging.map(|(epoch, end_offset)| DivergingEpoch { epoch, end_offset });
        let frame = answer(diverging, vec![EPOCH; epochs], &batches);
        let allowed = diverging.is_none() || (epochs == 0 && batches.is_empty());
        let mut buf = BytesMut::new();
        let result = encode(&frame, &mut buf, &Limits::default());
        proptest::prop_assert_eq!(result.is_ok(), allowed, "{:?}", result);
        if allowed {
            proptest::prop_assert_eq!(common::decode_one(&buf), frame);
        } else {
            proptest::prop_assert!(buf.is_empty());
        }
    }
}
