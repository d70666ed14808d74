//! The blocking client against tiny in-test servers speaking the codec over real sockets.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::fake_server::{
    bytes_of, client_config, ok_produce, record, serve, serve_with_handshake, versions_reply,
};
use net::client::{Client, ClientConfig, ClientError};
use net::codec::{
    decode, message_id, Acks, ApiKey, Broker, Decoded, ErrorCode, FetchedRecordView, Frame, Limits,
    PartitionInfo, PartitionMetadata, Request, Response, TopicConfig, TopicDescription,
    TopicMetadata, TopicSummary,
};

#[test]
fn admin_calls_map_every_field() {
    let config = TopicConfig {
        partitions: 2,
        compacted: true,
        ..TopicConfig::default()
    };
    let (addr, server) = serve(move |cid, request| {
        let frame = match *request {
            Request::CreateTopic {
                name: "orders",
                config: c,
            } if c == config => Response::CreateTopic {
                error: ErrorCode::None,
                message: "",
                topic_id: 9,
            },
            Request::ListTopics => Response::ListTopics {
                error: ErrorCode::None,
                message: "",
                topics: vec![TopicSummary {
                    name: "orders",
                    topic_id: 9,
                    partitions: 2,
                }],
            },
            Request::DescribeTopic { name: "orders" } => Response::DescribeTopic {
                error: ErrorCode::None,
                message: "",
                topic: Some(TopicDescription {
                    name: "orders",
                    topic_id: 9,
                    config,
                    partitions: vec![PartitionInfo {
                        partition: 1,
                        start_offset: 3,
                        end_offset: 10,
                        durable_offset: 9,
                        shard: 1,
                        bytes_on_disk: 512,
                        remote: None,
                    }],
                }),
            },
            Request::OffsetCommit {
                consumer: "g",
                topic: "orders",
                partition: 1,
                offset: 7,
                member_id: "",
                generation: 0,
            } => Response::OffsetCommit {
                error: ErrorCode::None,
                message: "",
            },
            Request::OffsetFetch { consumer: "g", .. } => Response::OffsetFetch {
                error: ErrorCode::None,
                message: "",
                offset: Some(7),
            },
            Request::Metadata {
                topics: Some(ref t),
            } if *t == ["orders"] => Response::Metadata {
                error: ErrorCode::None,
                message: "",
                node_id: 3,
                shards: 2,
                brokers: vec![Broker {
                    node_id: 3,
                    client_address: "127.0.0.1:7070",
                }],
                topics: vec![TopicMetadata {
                    name: "orders",
                    topic_id: 9,
                    partitions: vec![PartitionMetadata {
                        partition: 1,
                        shard: 1,
                        placement: None,
                    }],
                }],
            },
            Request::DeleteTopic { name: "orders" } => Response::DeleteTopic {
                error: ErrorCode::None,
                message: "",
            },
            ref other => panic!("unexpected request {other:?}"),
        };
        vec![bytes_of(&Frame::response(cid, frame))]
    });
    let mut client = Client::connect(&addr, client_config()).expect("connect");
    assert_eq!(client.server_info().server_version, "fake 0.0.1");
    assert_eq!(client.create_topic("orders", &config).unwrap(), 9);
    let topics = client.list_topics().unwrap();
    assert_eq!(
        (
            topics[0].name.as_str(),
            topics[0].topic_id,
            topics[0].partitions
        ),
        ("orders", 9, 2)
    );
    let described = client.describe_topic("orders").unwrap();
    assert_eq!(described.config, config);
    assert_eq!(described.partitions[0].durable_offset, 9);
    client.commit_offset("g", "orders", 1, 7).unwrap();
    assert_eq!(client.fetch_offset("g", "orders", 1).unwrap(), Some(7));
    let metadata = client.metadata(Some(&["orders"])).unwrap();
    assert_eq!((metadata.node_id, metadata.shards), (3, 2));
    assert_eq!(metadata.brokers[0].client_address, "127.0.0.1:7070");
    assert_eq!(
        metadata.topics[0].partitions,
        [PartitionMetadata {
            partition: 1,
            shard: 1,
            placement: None,
        }]
    );
    client.delete_topic("orders").unwrap();
    drop(client);
    server.join().expect("server thread");
}

#[test]
fn pipelined_produce_matches_out_of_order_replies_by_correlation_id() {
    const WINDOW: usize = 8;
    let mut held: Vec<(u32, u32, u64)> = Vec::new();
    let (addr, server) = serve(move |cid, request| {
        let Request::Produce {
            partition, records, ..
        } = request
        else {
            panic!("{request:?}")
        };
        // The value of the first record is the offset the test expects back.
        let offset: u64 = std::str::from_utf8(records[0].value)
            .unwrap()
            .parse()
            .unwrap();
        held.push((cid, *partition, offset));
        if held.len() < WINDOW {
            return vec![];
        }
        // Answer the whole window at once, newest first.
        held.drain(..)
            .rev()
            .map(|(cid, p, o)| ok_produce(cid, p, o, 1))
            .collect()
    });
    let mut client = Client::connect(
        &addr,
        ClientConfig {
            produce_window: WINDOW,
            ..client_config()
        },
    )
    .unwrap();
    let values: Vec<String> = (0..WINDOW).map(|i| (100 + i).to_string()).collect();
    let mut sent = std::collections::HashMap::new();
    for (i, v) in values.iter().enumerate() {
        let cid = client
            .send_produce("t", i as u32, Acks::Leader, None, &[record(v.as_bytes())])
            .unwrap();
        sent.insert(
            cid.expect("acks=leader gets a reply"),
            (i as u32, 100 + i as u64),
        );
    }
    assert_eq!(client.produce_in_flight(), WINDOW);
    let full = client
        .send_produce("t", 0, Acks::Leader, None, &[record(b"1")])
        .unwrap_err();
    assert!(
        matches!(
            full,
            ClientError::WindowFull {
                in_flight: WINDOW,
                window: WINDOW
            }
        ),
        "{full}"
    );

    let mut order = Vec::new();
    for _ in 0..WINDOW {
        let (cid, ack) = client.recv_produce().unwrap();
        let ack = ack.unwrap();
        let (partition, offset) = sent.remove(&cid).expect("each reply matches one send");
        assert_eq!((ack.partition, ack.base_offset), (partition, offset));
        assert_eq!(
            ack.message_ids().next(),
            Some(message_id(0xa3, partition, offset))
        );
        order.push(partition);
    }
    assert_eq!(
        order,
        (0..WINDOW as u32).rev().collect::<Vec<_>>(),
        "replies arrive newest first"
    );
    assert!(matches!(
        client.recv_produce(),
        Err(ClientError::NothingInFlight)
    ));
    drop(client);
    server.join().unwrap();
}

#[test]
fn server_errors_map_to_typed_client_errors() {
    let (addr, server) = serve(|cid, request| {
        let frame = match request {
            Request::CreateTopic { .. } => Frame::response(
                cid,
                Response::CreateTopic {
                    error: ErrorCode::TopicExists,
                    message: "topic `t` exists",
                    topic_id: 0,
                },
            ),
            Request::Produce { .. } => {
                let header = net::codec::FrameHeader {
                    api_key: 6,
                    api_version: 0,
                    correlation_id: cid,
                    flags: 0,
                };
                Frame::error(header, ErrorCode::Throttled, "over budget", 250)
            }
            Request::Fetch { .. } => Frame::response(
                cid,
                Response::Fetch {
                    error: ErrorCode::None,
                    message: "",
                    high_offset: 2,
                    start_offset: 0,
                    records: vec![FetchedRecordView {
                        offset: 1,
                        timestamp_ms: 5,
                        key: Some(b"k"),
                        value: b"v",
                        headers: vec![(b"h", b"1")],
                    }],
                },
            ),
            // Any other request gets bytes that do not decode.
            _ => return vec![vec![0xff, 0xff, 0xff, 0xff]],
        };
        vec![bytes_of(&frame)]
    });
    let mut client = Client::connect(&addr, client_config()).unwrap();
    let err = client
        .create_topic("t", &TopicConfig::default())
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Server { code: ErrorCode::TopicExists, message, retry_after_ms: None } if message == "topic `t` exists"),
        "{err}"
    );
    assert!(err.to_string().contains("TOPIC_EXISTS"), "{err}");
    assert!(!err.is_retriable());

    let err = client
        .produce("t", 0, Acks::All, None, &[record(b"x")])
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                code: ErrorCode::Throttled,
                retry_after_ms: Some(250),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retriable());

    // The connection is still usable after server errors.
    let fetched = client.fetch("t", 0, 1, 1024, 0).unwrap();
    assert_eq!(fetched.records[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(
        fetched.records[0].headers,
        vec![(
            bytes::Bytes::from_static(b"h"),
            bytes::Bytes::from_static(b"1")
        )]
    );

    let err = client.list_topics().unwrap_err();
    assert!(
        matches!(&err, ClientError::Protocol { addr: a, .. } if *a == addr),
        "{err}"
    );
    drop(client);
    server.join().unwrap();
}

#[test]
fn a_reply_that_never_comes_times_out_and_a_late_one_is_ignored() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (addr, server) = serve(move |cid, request| match request {
        Request::Fetch { .. } => {
            // Hold the reply until the client has given up.
            release_rx.recv().expect("test releases the reply");
            vec![bytes_of(&Frame::response(
                cid,
                Response::Fetch {
                    error: ErrorCode::None,
                    message: "",
                    high_offset: 0,
                    start_offset: 0,
                    records: vec![],
                },
            ))]
        }
        Request::ListTopics => vec![bytes_of(&Frame::response(
            cid,
            Response::ListTopics {
                error: ErrorCode::None,
                message: "",
                topics: vec![],
            },
        ))],
        other => panic!("{other:?}"),
    });
    let mut client = Client::connect(
        &addr,
        ClientConfig {
            request_timeout_ms: 150,
            ..client_config()
        },
    )
    .unwrap();
    let err = client.fetch("t", 0, 0, 1024, 0).unwrap_err();
    assert!(
        matches!(&err, ClientError::Timeout { operation: "fetch", timeout_ms: 150, addr: a } if *a == addr),
        "{err}"
    );
    release_tx.send(()).unwrap();
    // The late fetch reply arrives first and is dropped; the list reply is matched.
    assert_eq!(client.list_topics().unwrap(), vec![]);
    drop(client);
    server.join().unwrap();
}

#[test]
fn pushes_interleaved_with_replies_are_queued_in_order() {
    let (addr, server) = serve(|cid, request| {
        let push = |sub: u32, offset: u64| {
            bytes_of(&Frame::response(
                sub,
                Response::Push {
                    error: ErrorCode::None,
                    message: "",
                    subscription_id: sub,
                    high_offset: offset + 1,
                    records: vec![FetchedRecordView {
                        offset,
                        timestamp_ms: 0,
                        key: None,
                        value: b"p",
                        headers: vec![],
                    }],
                },
            ))
        };
        match request {
            Request::Subscribe { credits: 2, .. } => vec![
                bytes_of(&Frame::response(
                    cid,
                    Response::Subscribe {
                        error: ErrorCode::None,
                        message: "",
                        subscription_id: 4,
                    },
                )),
                push(4, 0),
            ],
            // Two pushes arrive before the credit reply.
            Request::Credit {
                subscription_id: 4,
                credits: 1,
            } => vec![
                push(4, 1),
                push(4, 2),
                bytes_of(&Frame::response(
                    cid,
                    Response::Credit {
                        error: ErrorCode::None,
                        message: "",
                    },
                )),
            ],
            Request::Unsubscribe { subscription_id: 4 } => vec![
                push(4, 3),
                bytes_of(&Frame::response(
                    cid,
                    Response::Unsubscribe {
                        error: ErrorCode::None,
                        message: "",
                    },
                )),
            ],
            other => panic!("{other:?}"),
        }
    });
    let mut client = Client::connect(&addr, client_config()).unwrap();
    assert_eq!(client.subscribe("t", 0, 0, 2).unwrap(), 4);
    client.credit(4, 1).unwrap();
    let mut offsets = Vec::new();
    for _ in 0..3 {
        let push = client
            .next_push(Duration::from_secs(5))
            .unwrap()
            .expect("a push");
        assert_eq!(push.subscription_id, 4);
        assert_eq!(push.ended, None);
        offsets.push(push.records[0].offset);
    }
    assert_eq!(offsets, [0, 1, 2]);
    client.unsubscribe(4).unwrap();
    // The push that raced the unsubscribe was dropped with the subscription.
    assert_eq!(client.next_push(Duration::from_millis(50)).unwrap(), None);
    drop(client);
    server.join().unwrap();
}

#[test]
fn connect_failures_name_the_address() {
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let err = Client::connect(&free, client_config())
        .err()
        .expect("nothing listens there");
    assert!(
        matches!(&err, ClientError::Connect { addr, .. } if *addr == free),
        "{err}"
    );
    assert!(
        err.to_string().contains(&free) && err.to_string().contains("sprawl serve"),
        "{err}"
    );

    let err = Client::connect("no-such-host.invalid:7070", client_config())
        .err()
        .expect("unresolvable");
    assert!(
        matches!(
            err,
            ClientError::Resolve { .. } | ClientError::Connect { .. }
        ),
        "{err}"
    );
}

#[test]
fn handshake_rejects_an_incompatible_server_and_learns_its_frame_limit() {
    let (addr, server) = serve_with_handshake(
        |cid| versions_reply(cid, (2, 3), 1 << 20),
        |_, r| panic!("{r:?}"),
    );
    let err = Client::connect(&addr, client_config())
        .err()
        .expect("neither produce v0 nor v1 is offered");
    assert!(
        matches!(
            err,
            ClientError::UnsupportedServer {
                api: ApiKey::Produce,
                server_min: 2,
                server_max: 3,
                ..
            }
        ),
        "{err}"
    );
    server.join().unwrap();

    let (addr, server) = serve_with_handshake(
        |cid| versions_reply(cid, (0, 0), 256),
        |cid, _| vec![ok_produce(cid, 0, 0, 1)],
    );
    let mut client = Client::connect(&addr, client_config()).unwrap();
    assert_eq!(client.server_info().frame_bytes_max, 256);
    let big = vec![7u8; 300];
    let err = client
        .produce("t", 0, Acks::Leader, None, &[record(&big)])
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Encode(net::codec::EncodeError::FrameTooLarge {
                limit_bytes: 256,
                ..
            })
        ),
        "{err}"
    );
    // Nothing was sent, so the connection still works.
    assert!(client
        .produce("t", 0, Acks::Leader, None, &[record(b"small")])
        .unwrap()
        .is_some());
    drop(client);
    server.join().unwrap();
}

#[test]
fn a_closed_connection_is_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        // Read the whole handshake request, then hang up without answering.
        while !matches!(decode(&got, &Limits::default()), Ok(Decoded::Frame(..))) {
            let n = stream.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
    });
    let err = Client::connect(&addr, client_config())
        .err()
        .expect("server hung up");
    assert!(
        matches!(&err, ClientError::Closed { addr: a } if *a == addr)
            || matches!(err, ClientError::Io { .. }),
        "{err}"
    );
    server.join().unwrap();
}

#[test]
fn a_nonsensical_reply_is_a_typed_error_not_a_panic() {
    let (addr, server) = serve(|cid, request| {
        let header = net::codec::FrameHeader {
            api_key: request.api_key() as u16,
            api_version: 0,
            correlation_id: cid,
            flags: 0,
        };
        vec![bytes_of(&Frame::error(header, ErrorCode::None, "", 0))]
    });
    let mut client = Client::connect(&addr, client_config()).unwrap();
    let err = client.list_topics().unwrap_err();
    assert!(matches!(err, ClientError::BadReply { .. }), "{err}");
    drop(client);
    server.join().unwrap();
}

#[test]
fn acks_none_sends_without_waiting_and_takes_no_window_slot() {
    let (count_tx, count_rx) = mpsc::channel::<usize>();
    let mut produced = 0;
    let (addr, server) = serve(move |cid, request| match request {
        Request::Produce {
            acks: Acks::None,
            records,
            ..
        } => {
            produced += records.len();
            vec![]
        }
        Request::ListTopics => {
            count_tx.send(produced).unwrap();
            vec![bytes_of(&Frame::response(
                cid,
                Response::ListTopics {
                    error: ErrorCode::None,
                    message: "",
                    topics: vec![],
                },
            ))]
        }
        other => panic!("{other:?}"),
    });
    let mut client = Client::connect(
        &addr,
        ClientConfig {
            produce_window: 1,
            ..client_config()
        },
    )
    .unwrap();
    assert_eq!(
        client
            .produce("t", 0, Acks::None, None, &[record(b"a")])
            .unwrap(),
        None
    );
    for _ in 0..3 {
        let sent = client
            .send_produce("t", 0, Acks::None, None, &[record(b"b")])
            .unwrap();
        assert_eq!(sent, None);
    }
    assert_eq!(client.produce_in_flight(), 0);
    client.list_topics().unwrap();
    assert_eq!(
        count_rx.recv().unwrap(),
        4,
        "every fire-and-forget batch reached the server"
    );
    drop(client);
    server.join().unwrap();
}
