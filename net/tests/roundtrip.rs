//! Property round trips: every request and response, at every version its api implements,
//! survives encode -> decode unchanged, uses exactly the bytes it wrote, and decodes the same when
//! followed by more bytes. A value a version cannot carry is refused by the encoder.

mod common;

use bytes::BytesMut;
use net::codec::{
    decode, encode, ApiKey, Body, Decoded, EncodeError, ErrorCode, Frame, Limits,
    PartitionMetadata, PartitionPlacement, Request, Response, TopicConfig, TopicMetadata,
};
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
    fn requests_round_trip(
        correlation_id in any::<u32>(),
        (version, request) in common::strategies::request(),
    ) {
        check_round_trip(Frame::request_at(correlation_id, version, request))?;
    }

    #[test]
    fn responses_round_trip(
        correlation_id in any::<u32>(),
        (version, response) in common::strategies::response(),
    ) {
        check_round_trip(Frame::response_at(correlation_id, version, response))?;
    }

    /// A v0 CreateTopic carries a config exactly when no tiering setting is set; otherwise the
    /// encoder names the first one set and the version it needs, and writes nothing.
    #[test]
    fn v0_create_topic_refuses_tiering_settings(
        name in common::strategies::text(),
        config in common::strategies::topic_config(1),
    ) {
        let frame = Frame::request_at(9, 0, Request::CreateTopic { name, config });
        let mut buf = BytesMut::from(&b"keep"[..]);
        let result = encode(&frame, &mut buf, &Limits::default());
        match config.first_tiering_field() {
            None => {
                prop_assert!(result.is_ok(), "{:?}", result);
                let decoded = common::decode_one(&buf[4..]);
                prop_assert_eq!(decoded, frame);
            }
            Some(field) => {
                prop_assert_eq!(result, Err(EncodeError::FieldNeedsVersion {
                    api: ApiKey::CreateTopic,
                    version: 0,
                    field,
                    required_version: TopicConfig::TIERING_VERSION,
                }));
                prop_assert_eq!(&buf[..], b"keep");
            }
        }
    }

    /// CreateTopic below v2 refuses a replication setting (naming the first one set and v2),
    /// after any tiering setting v0 cannot carry, and writes nothing; without them the frame
    /// round-trips at that version.
    #[test]
    fn pre_v2_create_topic_refuses_replication_settings(
        name in common::strategies::text(),
        config in common::strategies::topic_config(2),
        version in 0u16..TopicConfig::REPLICATION_VERSION,
    ) {
        let frame = Frame::request_at(9, version, Request::CreateTopic { name, config });
        let mut buf = BytesMut::from(&b"keep"[..]);
        let result = encode(&frame, &mut buf, &Limits::default());
        let tiering = config
            .first_tiering_field()
            .filter(|_| version < TopicConfig::TIERING_VERSION)
            .map(|field| (field, TopicConfig::TIERING_VERSION));
        let refused = tiering.or_else(|| {
            config
                .first_replication_field()
                .map(|field| (field, TopicConfig::REPLICATION_VERSION))
        });
        match refused {
            None => {
                prop_assert!(result.is_ok(), "{:?}", result);
                prop_assert_eq!(common::decode_one(&buf[4..]), frame);
            }
            Some((field, required_version)) => {
                prop_assert_eq!(result, Err(EncodeError::FieldNeedsVersion {
                    api: ApiKey::CreateTopic,
                    version,
                    field,
                    required_version,
                }));
                prop_assert_eq!(&buf[..], b"keep");
            }
        }
    }

    /// A v1 DescribeTopic reply refuses a replication setting with a typed error, and carries
    /// the same reply once none is set.
    #[test]
    fn v1_describe_topic_refuses_replication_settings(
        response in common::strategies::describe_topic_response(2),
    ) {
        let Response::DescribeTopic { topic, .. } = &response else {
            unreachable!("the strategy builds DescribeTopic replies");
        };
        let field = topic.as_ref().and_then(|t| t.config.first_replication_field());
        let frame = Frame::response_at(3, 1, response.clone());
        let result = encode(&frame, &mut BytesMut::new(), &Limits::default());
        match field {
            None => prop_assert!(result.is_ok(), "{:?}", result),
            Some(field) => prop_assert_eq!(result, Err(EncodeError::FieldNeedsVersion {
                api: ApiKey::DescribeTopic,
                version: 1,
                field,
                required_version: TopicConfig::REPLICATION_VERSION,
            })),
        }
    }

    /// A v0 DescribeTopic reply refuses a v1 description (tiering settings or remote tier info)
    /// with a typed error, and carries one without them.
    #[test]
    fn v0_describe_topic_refuses_v1_values(
        response in common::strategies::describe_topic_response(1),
    ) {
        let Response::DescribeTopic { topic, .. } = &response else {
            unreachable!("the strategy builds DescribeTopic replies");
        };
        let expected_field = topic.as_ref().and_then(|t| {
            t.config
                .first_tiering_field()
                .or_else(|| t.partitions.iter().any(|p| p.remote.is_some()).then_some("remote"))
        });
        let frame = Frame::response_at(3, 0, response.clone());
        let result = encode(&frame, &mut BytesMut::new(), &Limits::default());
        match expected_field {
            None => prop_assert!(result.is_ok(), "{:?}", result),
            Some(field) => prop_assert_eq!(result, Err(EncodeError::FieldNeedsVersion {
                api: ApiKey::DescribeTopic,
                version: 0,
                field,
                required_version: 1,
            })),
        }
    }

    /// A v0 Metadata reply refuses a placement with a typed error naming it, and carries the
    /// same reply once no partition has one.
    #[test]
    fn v0_metadata_refuses_placement(response in common::strategies::metadata_response(1)) {
        let Response::Metadata { topics, .. } = &response else {
            unreachable!("the strategy builds Metadata replies");
        };
        let placed = topics
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.placement.is_some());
        let frame = Frame::response_at(3, 0, response.clone());
        let mut buf = BytesMut::from(&b"keep"[..]);
        let result = encode(&frame, &mut buf, &Limits::default());
        if placed {
            prop_assert_eq!(result, Err(EncodeError::FieldNeedsVersion {
                api: ApiKey::Metadata,
                version: 0,
                field: "placement",
                required_version: PartitionPlacement::VERSION,
            }));
            prop_assert_eq!(&buf[..], b"keep");
        } else {
            prop_assert!(result.is_ok(), "{:?}", result);
            prop_assert_eq!(common::decode_one(&buf[4..]), frame);
        }
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
    fn encode_respects_the_limit((version, request) in common::strategies::request()) {
        let frame = Frame::request_at(1, version, request);
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

#[test]
fn versions_the_codec_does_not_implement_are_refused_by_the_encoder() {
    for (api_version, frame) in [
        (
            3,
            Frame::request_at(1, 3, Request::DescribeTopic { name: "t" }),
        ),
        (
            2,
            Frame::request_at(
                1,
                2,
                Request::Produce {
                    topic: "t",
                    partition: 0,
                    acks: net::codec::Acks::All,
                    producer: None,
                    records: vec![],
                },
            ),
        ),
        (
            2,
            Frame::request_at(
                1,
                2,
                Request::AlterInSync {
                    topic: "t",
                    partition: 0,
                    leader: 1,
                    leader_epoch: 1,
                    isr_version: 1,
                    in_sync: vec![1],
                    successor: 0,
                },
            ),
        ),
        (1, Frame::request_at(1, 1, Request::ListTopics)),
    ] {
        let api = match &frame.body {
            Body::Request(r) => r.api_key(),
            Body::Response(_) => unreachable!("requests only"),
        };
        let (supported_min, supported_max) = api.supported_versions();
        let err = encode(&frame, &mut BytesMut::new(), &Limits::default()).unwrap_err();
        assert_eq!(
            err,
            EncodeError::UnsupportedVersion {
                api,
                version: api_version,
                supported_min,
                supported_max,
            }
        );
    }
    // The generic error body has one layout for every version.
    let header = net::codec::FrameHeader {
        api_key: ApiKey::ListTopics as u16,
        api_version: 9,
        correlation_id: 1,
        flags: 0,
    };
    let frame = Frame::error(header, net::codec::ErrorCode::UnsupportedVersion, "v9", 0);
    assert!(encode(&frame, &mut BytesMut::new(), &Limits::default()).is_ok());
}

#[test]
fn the_encode_error_names_the_field_and_the_version_it_needs() {
    let config = TopicConfig {
        partitions: 1,
        local_retention_bytes: Some(1 << 30),
        ..TopicConfig::default()
    };
    let frame = Frame::request_at(1, 0, Request::CreateTopic { name: "t", config });
    let err = encode(&frame, &mut BytesMut::new(), &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`local_retention_bytes` is set, but CreateTopic v0 cannot carry it: it needs v1 or later"
    );
}

fn metadata_with(placement: PartitionPlacement) -> Response<'static> {
    Response::Metadata {
        error: ErrorCode::None,
        message: "",
        node_id: 1,
        shards: 1,
        brokers: vec![],
        topics: vec![TopicMetadata {
            name: "t",
            topic_id: 1,
            partitions: vec![PartitionMetadata {
                partition: 0,
                shard: 0,
                placement: Some(placement),
            }],
        }],
    }
}

#[test]
fn placement_lists_above_the_cap_are_refused_by_the_encoder() {
    let full = PartitionPlacement {
        leader: 1,
        leader_epoch: 1,
        replicas: (1..=255).collect(),
        in_sync: (1..=255).collect(),
    };
    let frame = Frame::response_at(1, 1, metadata_with(full.clone()));
    let bytes = common::encode_frame(&frame);
    assert_eq!(common::decode_one(&bytes), frame);

    for (field, placement) in [
        (
            "replicas",
            PartitionPlacement {
                replicas: (1..=256).collect(),
                ..full.clone()
            },
        ),
        (
            "in_sync",
            PartitionPlacement {
                in_sync: (1..=256).collect(),
                ..full.clone()
            },
        ),
    ] {
        let frame = Frame::response_at(1, 1, metadata_with(placement));
        let mut buf = BytesMut::from(&b"keep"[..]);
        assert_eq!(
            encode(&frame, &mut buf, &Limits::default()),
            Err(EncodeError::CountTooLarge {
                field,
                count: 256,
                limit: PartitionPlacement::NODES_MAX,
            })
        );
        assert_eq!(&buf[..], b"keep");
    }
}

#[test]
fn meta_fetch_carries_empty_and_non_empty_state() {
    for state in [&b""[..], b"SPMS", &[0u8; 4096]] {
        let frame = Frame::response(
            5,
            Response::MetaFetch {
                error: ErrorCode::None,
                message: "",
                version: 9,
                leader_id: 2,
                state,
            },
        );
        let bytes = common::encode_frame(&frame);
        assert_eq!(bytes.len(), 14 + 4 + 8 + 8 + 4 + state.len());
        assert_eq!(common::decode_one(&bytes), frame);
    }
    let frame = Frame::request(6, Request::MetaFetch { since_version: 0 });
    assert_eq!(frame.header.api_key, 15);
    assert_eq!(common::decode_one(&common::encode_frame(&frame)), frame);
}
