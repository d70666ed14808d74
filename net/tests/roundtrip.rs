//! Property round trips: every request and response survives encode -> decode unchanged, uses
//! exactly the bytes it wrote, and decodes the same when followed by more bytes.

mod common;

use bytes::BytesMut;
use net::codec::{decode, encode, Body, Decoded, Frame, Limits};
use proptest::prelude::*;

fn check_round_trip(frame: Frame<'static>) -> Result<(), TestCaseError> {
    let limits = Limits::default();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"prefix");
    let written =
        encode(&frame, &mut buf, &limits).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(written, buf.len() - 6);
    let mut bytes = buf[6..].to_vec();
    // Trailing bytes of a following frame must not be consumed.
    bytes.extend_from_slice(&[0xde, 0xad]);
    match decode(&bytes, &limits) {
        Ok(Decoded::Frame(decoded, used)) => {
            prop_assert_eq!(used, written);
            prop_assert_eq!(decoded, frame);
        }
        other => prop_assert!(false, "expected a frame, got {:?}", other),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn requests_round_trip(correlation_id in any::<u32>(), request in common::strategies::request()) {
        check_round_trip(Frame::request(correlation_id, request))?;
    }

    #[test]
    fn responses_round_trip(correlation_id in any::<u32>(), response in common::strategies::response()) {
        check_round_trip(Frame::response(correlation_id, response))?;
    }

    #[test]
    fn error_bodies_round_trip_for_any_api_key(
        api_key in any::<u16>(),
        api_version in any::<u16>(),
        correlation_id in any::<u32>(),
        error in common::strategies::error_code(),
        message in common::strategies::text(),
        retry_after_ms in any::<u32>(),
    ) {
        let header = net::codec::FrameHeader { api_key, api_version, correlation_id, flags: 0 };
        check_round_trip(Frame::error(header, error, message, retry_after_ms))?;
    }

    /// The encoder refuses a frame above the limit and leaves the buffer untouched.
    #[test]
    fn encode_respects_the_limit(request in common::strategies::request()) {
        let frame = Frame::request(1, request);
        let mut buf = BytesMut::new();
        let full = encode(&frame, &mut buf, &Limits::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let tight = Limits::new(u32::try_from(full - 4 - 1).unwrap_or(0));
        let mut other = BytesMut::from(&b"keep"[..]);
        prop_assert!(encode(&frame, &mut other, &tight).is_err());
        prop_assert_eq!(&other[..], b"keep");
        // Decoding with the same tight limit rejects it too, from the first 4 bytes alone.
        prop_assert!(decode(&buf[..4], &tight).is_err());
    }
}

#[test]
fn body_kind_follows_the_flags() {
    let bytes = common::encode_frame(&Frame::request(3, net::codec::Request::ListTopics));
    assert!(matches!(common::decode_one(&bytes).body, Body::Request(_)));
}
