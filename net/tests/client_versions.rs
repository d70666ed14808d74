//! Version negotiation: the client sends each api at `min(client max, server max)`, refuses
//! settings the negotiated version cannot carry before sending anything, and fails the connect
//! only when an api has no version in common.

mod common;

use std::sync::mpsc;

use common::fake_server::{
    bytes_of, client_config, serve, serve_with_handshake, serve_with_headers, versions_reply_with,
};
use net::client::{Client, ClientError};
use net::codec::{
    ApiKey, ErrorCode, Frame, Limits, PartitionInfo, RemoteTierInfo, Request, Response,
    TopicConfig, TopicDescription,
};

const PLAIN: TopicConfig = TopicConfig {
    partitions: 2,
    retention_ms: Some(86_400_000),
    retention_bytes: None,
    segment_bytes: None,
    compacted: false,
    default_ttl_ms: None,
    tier_after_ms: None,
    local_retention_bytes: None,
    replication_factor: None,
    min_insync: None,
};

const TIERED: TopicConfig = TopicConfig {
    tier_after_ms: Some(600_000),
    local_retention_bytes: Some(1 << 30),
    ..PLAIN
};

const REMOTE: RemoteTierInfo = RemoteTierInfo {
    local_start_offset: 500,
    remote_start_offset: 0,
    remote_end_offset: 500,
    remote_segments: 3,
    remote_data_bytes: 3 << 20,
    remote_object_bytes: 1 << 20,
};

fn partition(remote: Option<RemoteTierInfo>) -> PartitionInfo {
    PartitionInfo {
        partition: 0,
        start_offset: 500,
        end_offset: 700,
        durable_offset: 699,
        shard: 0,
        bytes_on_disk: 4096,
        remote,
    }
}

/// A DescribeTopic reply at `version`: the tiering values only where that version carries them.
fn describe_reply(cid: u32, version: u16, config: TopicConfig) -> Vec<u8> {
    let remote = (version >= TopicConfig::TIERING_VERSION).then_some(REMOTE);
    bytes_of(&Frame::response_at(
        cid,
        version,
        Response::DescribeTopic {
            error: ErrorCode::None,
            message: "",
            topic: Some(TopicDescription {
                name: "orders",
                topic_id: 7,
                config,
                partitions: vec![partition(remote)],
            }),
        },
    ))
}

fn created_reply(cid: u32, version: u16) -> Vec<u8> {
    bytes_of(&Frame::response_at(
        cid,
        version,
        Response::CreateTopic {
            error: ErrorCode::None,
            message: "",
            topic_id: 7,
        },
    ))
}

#[test]
fn tiering_settings_against_a_create_topic_v0_server_are_refused_before_sending() {
    let (seen_tx, seen_rx) = mpsc::channel::<(ApiKey, u16, TopicConfig)>();
    let (addr, server) = serve_with_headers(
        |cid| {
            versions_reply_with(
                cid,
                &[(ApiKey::CreateTopic, (0, 0))],
                Limits::FRAME_BYTES_MAX_DEFAULT,
            )
        },
        move |header, request| {
            let version = header.api_version;
            let cid = header.correlation_id;
            match *request {
                Request::CreateTopic { config, .. } => {
                    seen_tx
                        .send((ApiKey::CreateTopic, version, config))
                        .unwrap();
                    vec![created_reply(cid, version)]
                }
                Request::DescribeTopic { .. } => {
                    let config = if version >= 1 { TIERED } else { PLAIN };
                    seen_tx
                        .send((ApiKey::DescribeTopic, version, config))
                        .unwrap();
                    vec![describe_reply(cid, version, config)]
                }
                ref other => panic!("unexpected request {other:?}"),
            }
        },
    );
    let mut client = Client::connect(&addr, client_config()).expect("versions overlap");
    assert_eq!(client.api_version(ApiKey::CreateTopic), 0);
    // Negotiated per api: DescribeTopic is still at the newest version both sides speak.
    assert_eq!(client.api_version(ApiKey::DescribeTopic), 2);
    assert_eq!(client.api_version(ApiKey::Produce), 1);

    let err = client.create_topic("orders", &TIERED).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::TieringUnsupported {
                field: "tier_after_ms",
                negotiated_version: 0,
                required_version: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("does not support tiering settings")
            && err.to_string().contains(&addr),
        "{err}"
    );
    let only_local = TopicConfig {
        local_retention_bytes: Some(1 << 20),
        ..PLAIN
    };
    let err = client.create_topic("orders", &only_local).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::TieringUnsupported {
                field: "local_retention_bytes",
                ..
            }
        ),
        "{err}"
    );

    // Nothing was sent, and the connection still works: a plain create goes out at v0.
    assert_eq!(client.create_topic("orders", &PLAIN).unwrap(), 7);
    assert_eq!(
        seen_rx.recv().unwrap(),
        (ApiKey::CreateTopic, 0, PLAIN),
        "the first CreateTopic the server saw is the plain one"
    );
    let described = client.describe_topic("orders").unwrap();
    assert_eq!(seen_rx.recv().unwrap(), (ApiKey::DescribeTopic, 2, TIERED));
    assert_eq!(described.config, TIERED);
    assert_eq!(described.partitions, [partition(Some(REMOTE))]);
    drop(client);
    server.join().unwrap();
    assert!(
        seen_rx.try_recv().is_err(),
        "no other request reached the server"
    );
}

#[test]
fn a_v1_server_gets_tiering_settings_and_reports_the_remote_tier() {
    let (addr, server) = serve_with_headers(
        |cid| {
            versions_reply_with(
                cid,
                &[
                    (ApiKey::CreateTopic, (0, 1)),
                    (ApiKey::DescribeTopic, (0, 1)),
                ],
                Limits::FRAME_BYTES_MAX_DEFAULT,
            )
        },
        |header, request| {
            assert_eq!(header.api_version, 1, "{request:?}");
            let cid = header.correlation_id;
            match *request {
                Request::CreateTopic { config, .. } if config == TIERED => {
                    vec![created_reply(cid, 1)]
                }
                Request::DescribeTopic { .. } => vec![describe_reply(cid, 1, TIERED)],
                ref other => panic!("unexpected request {other:?}"),
            }
        },
    );
    let mut client = Client::connect(&addr, client_config()).unwrap();
    assert_eq!(client.api_version(ApiKey::CreateTopic), 1);
    assert_eq!(client.create_topic("orders", &TIERED).unwrap(), 7);
    let described = client.describe_topic("orders").unwrap();
    assert_eq!(described.config, TIERED);
    assert_eq!(described.partitions[0].remote, Some(REMOTE));
    drop(client);
    server.join().unwrap();
}

#[test]
fn negotiation_takes_the_lower_maximum_and_fails_only_without_overlap() {
    // A newer server (CreateTopic up to v7, DescribeTopic only v0): the client speaks v2 and v0.
    let (addr, server) = serve_with_headers(
        |cid| {
            versions_reply_with(
                cid,
                &[
                    (ApiKey::CreateTopic, (0, 7)),
                    (ApiKey::DescribeTopic, (0, 0)),
                ],
                Limits::FRAME_BYTES_MAX_DEFAULT,
            )
        },
        |header, request| {
            assert_eq!(header.api_version, 0, "{request:?}");
            vec![describe_reply(header.correlation_id, 0, PLAIN)]
        },
    );
    let mut client = Client::connect(&addr, client_config()).unwrap();
    assert_eq!(client.api_version(ApiKey::CreateTopic), 2);
    assert_eq!(client.api_version(ApiKey::DescribeTopic), 0);
    // A v0 reply decodes with the v1-only values absent.
    let described = client.describe_topic("orders").unwrap();
    assert_eq!(described.config, PLAIN);
    assert_eq!(described.partitions, [partition(None)]);
    drop(client);
    server.join().unwrap();

    // A server that dropped DescribeTopic v0 to v2: nothing in common.
    let (addr, server) = serve_with_handshake(
        |cid| {
            versions_reply_with(
                cid,
                &[(ApiKey::DescribeTopic, (3, 4))],
                Limits::FRAME_BYTES_MAX_DEFAULT,
            )
        },
        |_, r| panic!("{r:?}"),
    );
    let err = Client::connect(&addr, client_config())
        .err()
        .expect("no DescribeTopic version in common");
    assert!(
        matches!(
            err,
            ClientError::UnsupportedServer {
                api: ApiKey::DescribeTopic,
                server_min: 3,
                server_max: 4,
                client_min: 0,
                client_max: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("speaks 0..=2"), "{err}");
    server.join().unwrap();
}

#[test]
fn the_default_fake_server_negotiates_the_codec_versions() {
    let (addr, server) = serve(|_, r| panic!("{r:?}"));
    let client = Client::connect(&addr, client_config()).unwrap();
    for api in ApiKey::ALL {
        assert_eq!(
            client.api_version(api),
            api.current_version(),
            "{}",
            api.name()
        );
    }
    drop(client);
    server.join().unwrap();
}
