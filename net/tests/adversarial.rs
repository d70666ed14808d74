//! Hostile input: oversized and negative length prefixes, lying counts, truncation at every byte,
//! random bytes and mutations. The decoder must answer with `Incomplete` or a typed error, never
//! panic, and anything it accepts must re-encode to the very same bytes.

mod common;

use bytes::BytesMut;
use net::codec::{
    decode, encode, ApiKey, CodecError, Decoded, ErrorCode, Frame, Limits, Malformed,
    PartitionPlacement, HEADER_BYTES,
};
use proptest::prelude::*;

fn header(length: u32, api_key: u16, api_version: u16, flags: u16) -> Vec<u8> {
    let mut b = length.to_le_bytes().to_vec();
    b.extend_from_slice(&api_key.to_le_bytes());
    b.extend_from_slice(&api_version.to_le_bytes());
    b.extend_from_slice(&77u32.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b
}

/// A frame with `body` after a header whose length is filled in correctly.
fn frame(api_key: u16, api_version: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let mut b = header(10 + body.len() as u32, api_key, api_version, flags);
    b.extend_from_slice(body);
    b
}

fn decode_default(bytes: &[u8]) -> Result<Decoded<'_>, CodecError> {
    decode(bytes, &Limits::default())
}

/// Decoding must not panic; an accepted frame must re-encode byte for byte.
fn check_canonical(bytes: &[u8], limits: &Limits) -> Result<(), TestCaseError> {
    if let Ok(Decoded::Frame(frame, used)) = decode(bytes, limits) {
        let mut out = BytesMut::new();
        let written =
            encode(&frame, &mut out, limits).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(written, used);
        prop_assert_eq!(&out[..], &bytes[..used]);
    }
    Ok(())
}

#[test]
fn huge_and_negative_length_prefixes_fail_from_four_bytes() {
    for length in [
        i32::MAX as u32,
        u32::MAX,
        (-1i32) as u32,
        Limits::FRAME_BYTES_MAX_DEFAULT + 1,
    ] {
        let err = decode_default(&length.to_le_bytes()).unwrap_err();
        assert_eq!(
            err,
            CodecError::FrameTooLarge {
                length_bytes: length,
                limit_bytes: Limits::FRAME_BYTES_MAX_DEFAULT
            }
        );
        assert_eq!(err.error_code(), ErrorCode::FrameTooLarge);
        assert_eq!(
            err.skippable(),
            None,
            "an oversized frame cannot be skipped safely"
        );
    }
    for length in [0u32, 1, 9] {
        let err = decode_default(&length.to_le_bytes()).unwrap_err();
        assert!(
            matches!(err, CodecError::FrameTooShort { length_bytes, minimum_bytes: 10 } if length_bytes == length)
        );
    }
}

#[test]
fn pre_handshake_limit_is_smaller() {
    let length = Limits::FRAME_BYTES_MAX_PRE_HANDSHAKE + 1;
    let prefix = length.to_le_bytes();
    assert!(matches!(
        decode(&prefix, &Limits::pre_handshake()),
        Err(CodecError::FrameTooLarge { .. })
    ));
    assert_eq!(
        decode_default(&prefix),
        Ok(Decoded::Incomplete {
            needed: length as usize
        })
    );
    let at_limit = Limits::FRAME_BYTES_MAX_PRE_HANDSHAKE.to_le_bytes();
    assert!(matches!(
        decode(&at_limit, &Limits::pre_handshake()),
        Ok(Decoded::Incomplete { .. })
    ));
}

#[test]
fn every_truncation_is_incomplete_with_the_exact_shortfall() {
    for (name, sample) in common::samples::all() {
        let bytes = common::encode_frame(&sample);
        for cut in 0..bytes.len() {
            let expected = if cut < 4 { 4 - cut } else { bytes.len() - cut };
            assert_eq!(
                decode_default(&bytes[..cut]),
                Ok(Decoded::Incomplete { needed: expected }),
                "{name} cut at {cut}"
            );
        }
    }
}

#[test]
fn a_length_prefix_that_lies_short_is_an_error_or_a_canonical_frame() {
    for (name, sample) in common::samples::all() {
        let bytes = common::encode_frame(&sample);
        for length in 10..(bytes.len() - 4) as u32 {
            let mut lying = bytes.clone();
            lying[..4].copy_from_slice(&length.to_le_bytes());
            match decode_default(&lying) {
                Ok(Decoded::Frame(_, used)) => assert_eq!(used, length as usize + 4, "{name}"),
                Ok(Decoded::Incomplete { .. }) => panic!("{name}: all bytes are present"),
                Err(e) => assert!(
                    e.skippable().is_some(),
                    "{name}: body errors keep the stream in sync: {e}"
                ),
            }
            check_canonical(&lying, &Limits::default()).unwrap();
        }
    }
}

#[test]
fn counts_larger_than_the_remaining_bytes_fail_before_allocating() {
    // Produce: topic "t", partition 0, acks 1, no producer, records count u32::MAX, 3 bytes left.
    let mut body = vec![1, 0, b't', 0, 0, 0, 0, 1, 0];
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    body.extend_from_slice(&[1, 2, 3]);
    let bytes = frame(6, 0, 0, &body);
    let err = decode_default(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::Malformed {
                field: "records",
                reason: Malformed::CountTooLarge { count, remaining_bytes: 3 },
                ..
            } if count == u64::from(u32::MAX)
        ),
        "{err:?}"
    );
    assert_eq!(err.error_code(), ErrorCode::InvalidRequest);
    assert_eq!(err.skippable().map(|(_, n)| n), Some(bytes.len()));

    // Metadata: i32 count i32::MAX with no bytes left, and a negative count other than -1.
    let bytes = frame(1, 0, 0, &i32::MAX.to_le_bytes());
    assert!(matches!(
        decode_default(&bytes),
        Err(CodecError::Malformed {
            reason: Malformed::CountTooLarge { .. },
            ..
        })
    ));
    let bytes = frame(1, 0, 0, &(-2i32).to_le_bytes());
    assert!(matches!(
        decode_default(&bytes),
        Err(CodecError::Malformed {
            reason: Malformed::InvalidValue { value: -2 },
            ..
        })
    ));

    // A value length of u32::MAX inside a record.
    let mut body = vec![1, 0, b't', 0, 0, 0, 0, 1, 0, 1, 0, 0, 0];
    body.extend_from_slice(&[0; 12]); // timestamp, ttl
    body.extend_from_slice(&(-1i32).to_le_bytes()); // no key
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    body.extend_from_slice(&[0; 4]);
    let err = decode_default(&frame(6, 0, 0, &body)).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::Malformed {
                field: "value",
                reason: Malformed::Truncated { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

/// A Metadata v1 reply body up to (and including) the `placement` presence byte of its only
/// partition: empty head, node 1, 1 shard, no brokers, topic "t" with one partition.
fn metadata_v1_body(placement: u8) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 0]; // error NONE, empty message
    b.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]); // node_id, shards
    b.extend_from_slice(&[0, 0, 0, 0]); // no brokers
    b.extend_from_slice(&[1, 0, 0, 0, 1, 0, b't']); // one topic, "t"
    b.extend_from_slice(&[0; 8]); // topic_id
    b.extend_from_slice(&[1, 0, 0, 0]); // one partition
    b.extend_from_slice(&[0; 8]); // partition, shard
    b.push(placement);
    b
}

fn malformed(bytes: &[u8]) -> (&'static str, Malformed) {
    match decode_default(bytes) {
        Err(CodecError::Malformed { field, reason, .. }) => (field, reason),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn placement_lists_are_checked_against_the_bytes_left_and_the_cap() {
    // replicas count 200 (under the cap) with 8 bytes left: cannot fit.
    let mut body = metadata_v1_body(1);
    body.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]); // leader, leader_epoch
    body.extend_from_slice(&200u32.to_le_bytes());
    body.extend_from_slice(&[0; 8]);
    assert_eq!(
        malformed(&frame(1, 1, 1, &body)),
        (
            "replicas",
            Malformed::CountTooLarge {
                count: 200,
                remaining_bytes: 8
            }
        )
    );

    // in_sync count u32::MAX: above the cap, refused before the remaining bytes are looked at.
    let mut body = metadata_v1_body(1);
    body.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]);
    body.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]); // replicas [1]
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        malformed(&frame(1, 1, 1, &body)),
        (
            "in_sync",
            Malformed::CountAboveLimit {
                count: u64::from(u32::MAX),
                limit: PartitionPlacement::NODES_MAX as u64
            }
        )
    );

    // 256 replicas that are all present: still one above the cap.
    let mut body = metadata_v1_body(1);
    body.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]);
    body.extend_from_slice(&256u32.to_le_bytes());
    body.extend_from_slice(&[1; 256 * 4]);
    body.extend_from_slice(&[0; 4]); // in_sync empty
    assert_eq!(
        malformed(&frame(1, 1, 1, &body)),
        (
            "replicas",
            Malformed::CountAboveLimit {
                count: 256,
                limit: 255
            }
        )
    );
    // 255 of them decode.
    let mut body = metadata_v1_body(1);
    body.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]);
    body.extend_from_slice(&255u32.to_le_bytes());
    body.extend_from_slice(&[1; 255 * 4]);
    body.extend_from_slice(&[0; 4]);
    let bytes = frame(1, 1, 1, &body);
    assert!(
        matches!(decode_default(&bytes), Ok(Decoded::Frame(_, n)) if n == bytes.len()),
        "{:?}",
        decode_default(&bytes)
    );
}

#[test]
fn metadata_v1_and_meta_fetch_reject_bad_presence_bytes_and_truncation() {
    // placement presence byte 2.
    assert_eq!(
        malformed(&frame(1, 1, 1, &metadata_v1_body(2))),
        ("placement", Malformed::InvalidValue { value: 2 })
    );
    // The same partitions at v0 have no presence byte: the extra byte is trailing.
    assert_eq!(
        malformed(&frame(1, 0, 1, &metadata_v1_body(0))),
        ("body", Malformed::TrailingBytes { count: 1 })
    );
    // At v1 a partition without its presence byte is truncated.
    let mut body = metadata_v1_body(0);
    body.pop();
    assert_eq!(
        malformed(&frame(1, 1, 1, &body)),
        (
            "partitions",
            Malformed::CountTooLarge {
                count: 1,
                remaining_bytes: 8
            }
        )
    );

    // MetaFetch reply whose state says 100 bytes but 3 remain.
    let mut body = vec![0, 0, 0, 0];
    body.extend_from_slice(&7u64.to_le_bytes());
    body.extend_from_slice(&1u64.to_le_bytes());
    body.extend_from_slice(&100u32.to_le_bytes());
    body.extend_from_slice(&[1, 2, 3]);
    assert_eq!(
        malformed(&frame(15, 0, 1, &body)),
        (
            "state",
            Malformed::Truncated {
                needed_bytes: 100,
                remaining_bytes: 3
            }
        )
    );
    // A MetaFetch request short of its u64, and one with a byte too many.
    assert_eq!(
        malformed(&frame(15, 0, 0, &[1, 2, 3])),
        (
            "since_version",
            Malformed::Truncated {
                needed_bytes: 8,
                remaining_bytes: 3
            }
        )
    );
    assert_eq!(
        malformed(&frame(15, 0, 0, &[0; 9])),
        ("body", Malformed::TrailingBytes { count: 1 })
    );
    // MetaFetch has no v1.
    assert!(matches!(
        decode_default(&frame(15, 1, 0, &[0; 8])),
        Err(CodecError::UnsupportedVersion {
            supported_min: 0,
            supported_max: 0,
            ..
        })
    ));
}

#[test]
fn unknown_apis_versions_and_flags_are_typed_and_skippable() {
    let bytes = frame(999, 0, 0, b"whatever");
    let err = decode_default(&bytes).unwrap_err();
    assert!(
        matches!(err, CodecError::UnknownApi { header, frame_bytes } if header.api_key == 999 && frame_bytes == bytes.len())
    );
    assert_eq!(err.error_code(), ErrorCode::UnknownApi);

    // Push is server -> client only.
    assert!(matches!(
        decode_default(&frame(13, 0, 0, &[])),
        Err(CodecError::UnknownApi { .. })
    ));

    let err = decode_default(&frame(5, 7, 0, &[])).unwrap_err();
    assert!(matches!(
        err,
        CodecError::UnsupportedVersion {
            supported_min: 0,
            supported_max: 0,
            ..
        }
    ));
    assert_eq!(err.error_code(), ErrorCode::UnsupportedVersion);
    let (header, skip) = err.skippable().unwrap();
    // The server can answer it with the generic error body, which the client decodes.
    let answer = Frame::error(
        header,
        err.error_code(),
        "ListTopics v7 is not supported",
        0,
    );
    let encoded = common::encode_frame(&answer);
    assert_eq!(common::decode_one(&encoded), answer);
    assert_eq!(skip, HEADER_BYTES);

    for flags in [0b100, 0x8000, 0b10] {
        assert!(
            matches!(
                decode_default(&frame(5, 0, flags, &[])),
                Err(CodecError::Malformed { field: "flags", .. })
            ),
            "flags {flags:#x}"
        );
    }
}

#[test]
fn invalid_field_values_are_rejected() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("client_name", frame(0, 0, 0, &[2, 0, 0xff, 0xfe])), // invalid UTF-8
        (
            "acks",
            frame(6, 0, 0, &[1, 0, b't', 0, 0, 0, 0, 3, 0, 0, 0, 0, 0]),
        ), // acks = 3
        (
            "producer",
            frame(6, 0, 0, &[1, 0, b't', 0, 0, 0, 0, 1, 2, 0, 0, 0, 0]),
        ), // presence 2
        ("body", frame(5, 0, 0, &[0])),                       // trailing byte
        ("error", frame(3, 0, 1, &[99, 0, 0, 0])),            // unknown error code
        ("compacted", {
            let mut b = vec![1, 0, b't', 1, 0, 0, 0, 0, 0, 0];
            b.push(7); // compacted = 7
            b.push(0);
            frame(2, 0, 0, &b)
        }),
        // CreateTopic v1: a valid v0 config, then tier_after_ms with presence 5.
        (
            "tier_after_ms",
            frame(2, 1, 0, &[1, 0, b't', 1, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0]),
        ),
        // The same v0 body at v1 lacks the two tiering presence bytes.
        (
            "tier_after_ms",
            frame(2, 1, 0, &[1, 0, b't', 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        ),
        ("remote", {
            // DescribeTopic v1 reply: head, topic present, name "t", topic_id, a v1 config with
            // nothing set, one partition whose `remote` presence byte is 2.
            let mut b = vec![0, 0, 0, 0, 1, 1, 0, b't'];
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&[1, 0, 0, 0]); // partitions
            b.extend_from_slice(&[0; 7]); // five v0 optionals/bools and two v1 optionals
            b.extend_from_slice(&[1, 0, 0, 0]); // partition count
            b.extend_from_slice(&[0; 40]);
            b.push(2);
            frame(4, 1, 1, &b)
        }),
    ];
    for (field, bytes) in cases {
        match decode_default(&bytes) {
            Err(CodecError::Malformed { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: expected Malformed, got {other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_canonical(&bytes, &Limits::default())?;
        check_canonical(&bytes, &Limits::new(64))?;
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(
        api_key in 0u16..ApiKey::ALL.len() as u16,
        api_version in 0u16..3,
        flags in 0u16..4,
        body in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        check_canonical(&frame(api_key, api_version, flags, &body), &Limits::default())?;
    }

    #[test]
    fn mutated_samples_never_panic(
        which in any::<proptest::sample::Index>(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let samples = common::samples::all();
        let (_, sample) = &samples[which.index(samples.len())];
        let mut bytes = common::encode_frame(sample);
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        check_canonical(&bytes, &Limits::default())?;
    }
}
