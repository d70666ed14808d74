//! `ClusterClient` against fake multi-connection nodes: per-partition routing (offsets to the
//! group's coordinator; tests/cluster_group.rs covers coordinator routing), NOT_LEADER and
//! dead leaders (refresh, retry), retries running out, the no-duplicate rule for produce without
//! a producer ident, metadata lag after create, and single nodes (no placement, node id 0).

mod common;
#[path = "common/fake_cluster.rs"]
#[allow(dead_code)] // Shared with cluster_group.rs, which uses the rest.
mod fake_cluster;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use common::fake_server::{bytes_of, client_config, ok_produce, record};
use fake_cluster::{
    acks_as, count, dead_addr, error_reply, leaders, listen, node, produces, routing, Answer,
    FakeNode, Log,
};
use net::client::{ClientError, ClusterClient, PartitionLeader, RoutingConfig};
use net::codec::{
    Acks, ApiKey, ErrorCode, Frame, FrameHeader, ProducerIdent, Request, Response, TopicConfig,
};

#[test]
fn each_partition_goes_to_its_leader() {
    let (la, lb) = (listen(), listen());
    let brokers = vec![(1, la.addr.clone()), (2, lb.addr.clone())];
    let placement = leaders(&[Some((1, 1)), Some((2, 1))]);
    let log = Log::default();
    let a = FakeNode::start(
        la,
        node(
            "a",
            1,
            brokers.clone(),
            placement.clone(),
            log.clone(),
            acks_as(1),
        ),
    );
    let b = FakeNode::start(
        lb,
        node("b", 2, brokers.clone(), placement, log.clone(), acks_as(2)),
    );
    let mut cluster = ClusterClient::connect(&[&a.addr], client_config()).expect("connect");
    assert_eq!(cluster.leader_of("orders", 0), Some((1, a.addr.as_str())));
    assert_eq!(cluster.leader_of("orders", 1), Some((2, b.addr.as_str())));
    assert_eq!(cluster.leader_of("orders", 2), None);
    let route = cluster.metadata().topic("orders").expect("orders listed");
    assert_eq!(
        route.partitions.get(&1),
        Some(&PartitionLeader::Node {
            node_id: 2,
            leader_epoch: 1
        })
    );

    let v = [record(b"x")];
    for partition in [0, 1, 1, 0] {
        let ack = cluster
            .produce("orders", partition, Acks::Leader, None, &v)
            .expect("produce")
            .expect("acks = leader answers");
        let leader = u64::from(partition + 1);
        assert_eq!((ack.partition, ack.base_offset), (partition, leader * 1000));
    }
    assert_eq!(produces(&log, "a"), [0, 0]);
    assert_eq!(produces(&log, "b"), [1, 1]);

    let fetched = cluster.fetch("orders", 1, 5, 1024, 0).expect("fetch");
    assert_eq!(fetched.high_offset, 5 + 2, "answered by node 2");
    // Offsets live with the group's coordinator (node 1 here), whichever partition they are for.
    cluster.commit_offset("g", "orders", 1, 3).expect("commit");
    assert_eq!(cluster.fetch_offset("g", "orders", 1).unwrap(), Some(100));
    assert_eq!(count(&log, "a", ApiKey::OffsetCommit), 1);
    assert_eq!(count(&log, "a", ApiKey::OffsetFetch), 1);
    assert_eq!(count(&log, "b", ApiKey::OffsetFetch), 0);
    assert_eq!(cluster.coordinator_of("g"), Some((1, a.addr.as_str())));
    assert_eq!(cluster.connection_count(), 2, "one connection per broker");
    assert_eq!(
        count(&log, "b", ApiKey::Metadata),
        0,
        "no refresh was needed"
    );
}

#[test]
fn not_leader_refreshes_the_metadata_and_retries_on_the_new_leader() {
    let (la, lb) = (listen(), listen());
    let brokers = vec![(1, la.addr.clone()), (2, lb.addr.clone())];
    let placement = leaders(&[Some((1, 4))]);
    let log = Log::default();
    let moved = placement.clone();
    let b_addr = lb.addr.clone();
    // Node 1 loses the leadership just before the produce arrives.
    let refuse = move |header: FrameHeader, _partition| {
        *moved.lock().unwrap() = vec![Some((2, 5))];
        let message = format!("partition orders/0 is led by node 2 at {b_addr}; send it there");
        Answer::Frames(vec![error_reply(header, ErrorCode::NotLeader, &message)])
    };
    let a = FakeNode::start(
        la,
        node(
            "a",
            1,
            brokers.clone(),
            placement.clone(),
            log.clone(),
            refuse,
        ),
    );
    let b = FakeNode::start(
        lb,
        node("b", 2, brokers, placement, log.clone(), acks_as(2)),
    );
    let mut cluster =
        ClusterClient::connect_with(&[&a.addr], client_config(), routing()).expect("connect");
    assert_eq!(cluster.leader_of("orders", 0), Some((1, a.addr.as_str())));

    // No producer ident: NOT_LEADER means nothing was written, so the retry is safe.
    let ack = cluster
        .produce("orders", 0, Acks::Leader, None, &[record(b"x")])
        .expect("retried on node 2")
        .expect("an ack");
    assert_eq!(ack.base_offset, 2000);
    assert_eq!(produces(&log, "a"), [0]);
    assert_eq!(produces(&log, "b"), [0]);
    assert_eq!(
        count(&log, "a", ApiKey::Metadata),
        2,
        "bootstrap + one refresh"
    );
    assert_eq!(cluster.leader_of("orders", 0), Some((2, b.addr.as_str())));
}

#[test]
fn a_dead_leader_is_refreshed_away_and_the_produce_retried() {
    let la = listen();
    let dead = dead_addr();
    let brokers = vec![(1, la.addr.clone()), (3, dead.clone())];
    // Node 3 (dead) leads partition 0 until the second Metadata request.
    let placement = leaders(&[Some((3, 1))]);
    let log = Log::default();
    let metadata_seen = Arc::new(AtomicU32::new(0));
    let mut inner = node("a", 1, brokers, placement.clone(), log.clone(), acks_as(1));
    let seen = metadata_seen.clone();
    let a = FakeNode::start(la, move |header, request| {
        if let Request::Metadata { .. } = request {
            if seen.fetch_add(1, Ordering::SeqCst) == 1 {
                *placement.lock().unwrap() = vec![Some((1, 2))];
            }
        }
        inner(header, request)
    });
    let mut cluster =
        ClusterClient::connect_with(&[&a.addr], client_config(), routing()).expect("connect");
    assert_eq!(cluster.leader_of("orders", 0), Some((3, dead.as_str())));

    // The connection to the dead leader is never made, so even a plain produce is retried.
    let ack = cluster
        .produce("orders", 0, Acks::Leader, None, &[record(b"x")])
        .expect("retried on node 1")
        .expect("an ack");
    assert_eq!(ack.base_offset, 1000);
    assert_eq!(produces(&log, "a"), [0]);
    assert_eq!(cluster.leader_of("orders", 0), Some((1, a.addr.as_str())));
}

#[test]
fn when_the_retries_run_out_the_last_error_is_returned() {
    let la = listen();
    let brokers = vec![(1, la.addr.clone())];
    let placement = leaders(&[Some((1, 1))]);
    let log = Log::default();
    let stuck = |header, _partition| {
        let message = "partition orders/0 has no leader right now (its node is down); retry later";
        Answer::Frames(vec![error_reply(header, ErrorCode::NotLeader, message)])
    };
    let a = FakeNode::start(la, node("a", 1, brokers, placement, log.clone(), stuck));
    let config = RoutingConfig {
        retries: 2,
        ..routing()
    };
    let mut cluster = ClusterClient::connect_with(&[&a.addr], client_config(), config).unwrap();
    let err = cluster
        .produce("orders", 0, Acks::Leader, None, &[record(b"x")])
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotLeader), "{err}");
    assert!(err.to_string().contains("has no leader right now"), "{err}");
    assert_eq!(produces(&log, "a"), [0, 0, 0], "one try and two retries");
    assert_eq!(
        count(&log, "a", ApiKey::Metadata),
        3,
        "bootstrap + a refresh per retry"
    );
}

#[test]
fn no_known_leader_fails_with_a_typed_error_after_the_retries() {
    let la = listen();
    let brokers = vec![(1, la.addr.clone())];
    // Partition 0 has no leader; partition 1 is led by node 9, whose address nobody lists.
    let placement = leaders(&[Some((0, 3)), Some((9, 3))]);
    let log = Log::default();
    let a = FakeNode::start(
        la,
        node("a", 1, brokers, placement, log.clone(), acks_as(1)),
    );
    let config = RoutingConfig {
        retries: 1,
        ..routing()
    };
    let mut cluster = ClusterClient::connect_with(&[&a.addr], client_config(), config).unwrap();
    for (partition, leader) in [(0, 0), (1, 9)] {
        let err = cluster.fetch("orders", partition, 0, 1024, 0).unwrap_err();
        assert!(
            matches!(
                &err,
                ClientError::NoLeader { topic, partition: p, leader_node_id }
                    if topic == "orders" && *p == partition && *leader_node_id == leader
            ),
            "{err:?}"
        );
        assert!(err.is_retriable());
    }
    assert_eq!(count(&log, "a", ApiKey::Fetch), 0, "nothing was sent");
    assert_eq!(
        count(&log, "a", ApiKey::Metadata),
        3,
        "bootstrap + one refresh each"
    );
}

/// Node 1 leads partition 0 and closes the connection on the first produce it receives, then
/// acknowledges (as a deduplicating server would, flagging the duplicate for an ident).
fn crash_once_node() -> (FakeNode, Log) {
    let la = listen();
    let brokers = vec![(1, la.addr.clone())];
    let placement = leaders(&[Some((1, 1))]);
    let log = Log::default();
    let mut crashed = false;
    let crash_once = move |header: FrameHeader, partition| {
        if !crashed {
            crashed = true;
            return Answer::Close;
        }
        Answer::Frames(vec![bytes_of(&Frame::response_at(
            header.correlation_id,
            header.api_version,
            Response::Produce {
                error: ErrorCode::None,
                message: "",
                topic_id: 7,
                partition,
                base_offset: 40,
                record_count: 1,
                duplicate: true,
                durable: true,
            },
        ))])
    };
    let a = FakeNode::start(
        la,
        node("a", 1, brokers, placement, log.clone(), crash_once),
    );
    (a, log)
}

#[test]
fn a_plain_produce_is_not_retried_after_the_connection_fails_mid_request() {
    let (a, log) = crash_once_node();
    let mut cluster = ClusterClient::connect_with(&[&a.addr], client_config(), routing()).unwrap();
    let err = cluster
        .produce("orders", 0, Acks::Leader, None, &[record(b"x")])
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Closed { .. } | ClientError::Io { .. }),
        "{err:?}"
    );
    assert_eq!(
        produces(&log, "a"),
        [0],
        "sent once: it may have been written"
    );
    assert_eq!(
        cluster.connection_count(),
        0,
        "the broken connection was dropped"
    );

    // The next call reconnects.
    let ack = cluster
        .produce("orders", 0, Acks::Leader, None, &[record(b"y")])
        .unwrap()
        .unwrap();
    assert_eq!(ack.base_offset, 40);
}

#[test]
fn an_idempotent_produce_is_retried_after_the_connection_fails_mid_request() {
    let (a, log) = crash_once_node();
    let mut cluster = ClusterClient::connect_with(&[&a.addr], client_config(), routing()).unwrap();
    let producer = ProducerIdent {
        producer_id: 77,
        epoch: 1,
        base_sequence: 0,
    };
    let ack = cluster
        .produce("orders", 0, Acks::Leader, Some(producer), &[record(b"x")])
        .expect("resent: the server drops duplicates by sequence")
        .expect("an ack");
    assert!(ack.duplicate);
    assert_eq!(produces(&log, "a"), [0, 0]);
}

#[test]
fn a_v0_single_node_without_placements_serves_everything_from_the_bootstrap_address() {
    let la = listen();
    // The node advertises an address nothing listens on: routing must not use it.
    let brokers = vec![(1, dead_addr())];
    let placement = leaders(&[Some((5, 1)), Some((5, 1))]);
    let log = Log::default();
    let handler = node("a", 1, brokers, placement, log.clone(), acks_as(1));
    let a = FakeNode::start_with_versions(la, vec![(ApiKey::Metadata, (0, 0))], handler);
    let mut cluster = ClusterClient::connect_with(&[&a.addr], client_config(), routing()).unwrap();
    let route = cluster.metadata().topic("orders").unwrap();
    assert_eq!(route.partitions[&0], PartitionLeader::AnsweringNode);
    for partition in [0, 1] {
        assert_eq!(
            cluster.leader_of("orders", partition),
            Some((1, a.addr.as_str()))
        );
        cluster
            .produce("orders", partition, Acks::Leader, None, &[record(b"x")])
            .unwrap();
    }
    assert_eq!(produces(&log, "a"), [0, 1]);
    assert_eq!(cluster.connection_count(), 1);
}

#[test]
fn a_lone_node_zero_leading_every_partition_gets_everything() {
    let la = listen();
    let brokers = vec![(0, la.addr.clone())];
    let placement = leaders(&[Some((0, 0)), Some((0, 0))]);
    let log = Log::default();
    let a = FakeNode::start(
        la,
        node("a", 0, brokers, placement, log.clone(), acks_as(0)),
    );
    let mut cluster = ClusterClient::connect_with(&[&a.addr], client_config(), routing()).unwrap();
    for partition in [0, 1] {
        assert_eq!(
            cluster.leader_of("orders", partition),
            Some((0, a.addr.as_str()))
        );
        cluster
            .produce("orders", partition, Acks::Leader, None, &[record(b"x")])
            .unwrap();
    }
    assert_eq!(produces(&log, "a"), [0, 1]);
    assert_eq!(count(&log, "a", ApiKey::Metadata), 1, "no refresh needed");
}

#[test]
fn unknown_topic_right_after_create_is_metadata_lag_and_retried() {
    let la = listen();
    let brokers = vec![(1, la.addr.clone())];
    // The metadata does not list "fresh" yet, and the first produce for it finds the node
    // behind; a typo'd topic is never created.
    let placement = leaders(&[Some((1, 1))]);
    let log = Log::default();
    let mut lagging = true;
    let produce = move |header: FrameHeader, partition| {
        if lagging {
            lagging = false;
            let message = "no topic named fresh";
            return Answer::Frames(vec![error_reply(header, ErrorCode::UnknownTopic, message)]);
        }
        Answer::Frames(vec![ok_produce(header.correlation_id, partition, 0, 1)])
    };
    let a = FakeNode::start(la, node("a", 1, brokers, placement, log.clone(), produce));
    let mut cluster = ClusterClient::connect_with(&[&a.addr], client_config(), routing()).unwrap();
    let config = TopicConfig {
        partitions: 1,
        ..TopicConfig::default()
    };
    assert_eq!(cluster.create_topic("fresh", &config).unwrap(), 9);
    cluster
        .produce("fresh", 0, Acks::Leader, None, &[record(b"x")])
        .expect("retried past the lag");
    assert_eq!(produces(&log, "a"), [0, 0]);
}

#[test]
fn unknown_topic_that_nobody_created_is_returned_at_once() {
    let la = listen();
    let brokers = vec![(1, la.addr.clone())];
    let placement = leaders(&[Some((1, 1))]);
    let log = Log::default();
    let unknown = |header, _partition| {
        let message = "no topic named typo";
        Answer::Frames(vec![error_reply(header, ErrorCode::UnknownTopic, message)])
    };
    let a = FakeNode::start(la, node("a", 1, brokers, placement, log.clone(), unknown));
    let mut cluster = ClusterClient::connect_with(&[&a.addr], client_config(), routing()).unwrap();
    let err = cluster
        .produce("typo", 0, Acks::Leader, None, &[record(b"x")])
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopic), "{err}");
    assert_eq!(produces(&log, "a"), [0], "not retried");
    assert_eq!(
        count(&log, "a", ApiKey::Metadata),
        2,
        "bootstrap + one look for the topic before sending"
    );
}

#[test]
fn unknown_partition_from_a_leader_behind_the_metadata_is_retried() {
    let la = listen();
    let brokers = vec![(1, la.addr.clone())];
    // The metadata lists partition 0, but its leader has not loaded it yet the first time.
    let placement = leaders(&[Some((1, 1))]);
    let log = Log::default();
    let mut behind = true;
    let produce = move |header: FrameHeader, partition| {
        if behind {
            behind = false;
            let message = "orders has no partition 0";
            return Answer::Frames(vec![error_reply(
                header,
                ErrorCode::UnknownPartition,
                message,
            )]);
        }
        Answer::Frames(vec![ok_produce(header.correlation_id, partition, 3, 1)])
    };
    let a = FakeNode::start(la, node("a", 1, brokers, placement, log.clone(), produce));
    let mut cluster = ClusterClient::connect_with(&[&a.addr], client_config(), routing()).unwrap();
    let ack = cluster
        .produce("orders", 0, Acks::Leader, None, &[record(b"x")])
        .expect("retried past the lag")
        .expect("an ack");
    assert_eq!(ack.base_offset, 3);
    assert_eq!(produces(&log, "a"), [0, 0]);
}

#[test]
fn connect_skips_dead_bootstrap_addresses_and_refuses_an_empty_list() {
    let la = listen();
    let brokers = vec![(1, la.addr.clone())];
    let log = Log::default();
    let a = FakeNode::start(
        la,
        node("a", 1, brokers, leaders(&[None]), log.clone(), acks_as(1)),
    );
    let dead = dead_addr();
    let cluster = ClusterClient::connect(&[&dead, &a.addr], client_config()).unwrap();
    assert_eq!(cluster.metadata().source_addr(), a.addr);

    let err = ClusterClient::connect(&[&dead], client_config())
        .err()
        .unwrap();
    assert!(
        matches!(&err, ClientError::Connect { addr, .. } if *addr == dead),
        "{err:?}"
    );
    let err = ClusterClient::connect(&[], client_config()).err().unwrap();
    assert!(matches!(err, ClientError::NoBootstrapAddress), "{err:?}");
}

#[test]
fn a_lagging_node_never_moves_a_partition_back_to_a_lower_epoch() {
    let (la, lb) = (listen(), listen());
    let brokers = vec![(1, la.addr.clone()), (2, lb.addr.clone())];
    let log = Log::default();
    // Node 1 knows epoch 5 (led by 1); node 2 still says epoch 4 (led by 2).
    let a = FakeNode::start(
        la,
        node(
            "a",
            1,
            brokers.clone(),
            leaders(&[Some((1, 5))]),
            log.clone(),
            acks_as(1),
        ),
    );
    let b = FakeNode::start(
        lb,
        node(
            "b",
            2,
            brokers,
            leaders(&[Some((2, 4))]),
            log.clone(),
            acks_as(2),
        ),
    );
    let mut cluster = ClusterClient::connect_with(&[&a.addr], client_config(), routing()).unwrap();
    // With node 1 stopped, the refresh finds its connection closed and asks node 2.
    drop(a);
    let view = cluster.refresh_metadata().expect("node 2 answers");
    assert_eq!(view.source_addr(), b.addr);
    assert_eq!(
        view.topic("orders").unwrap().partitions[&0],
        PartitionLeader::Node {
            node_id: 1,
            leader_epoch: 5
        }
    );
}

#[test]
fn more_brokers_than_the_limit_is_a_typed_error() {
    let la = listen();
    let brokers = vec![(1, la.addr.clone()), (2, dead_addr())];
    let log = Log::default();
    let a = FakeNode::start(la, node("a", 1, brokers, leaders(&[]), log, acks_as(1)));
    let config = RoutingConfig {
        brokers_max: 1,
        ..routing()
    };
    let err = ClusterClient::connect_with(&[&a.addr], client_config(), config)
        .err()
        .unwrap();
    assert!(
        matches!(&err, ClientError::TooManyBrokers { addr, brokers: 2, limit: 1 } if *addr == a.addr),
        "{err:?}"
    );
}

#[test]
fn throttled_is_retried_on_the_same_node_without_a_refresh() {
    let la = listen();
    let brokers = vec![(1, la.addr.clone())];
    let placement = leaders(&[Some((1, 1))]);
    let log = Log::default();
    let mut throttled = false;
    let produce = move |header: FrameHeader, partition| {
        if !throttled {
            throttled = true;
            let refusal = Frame::error(header, ErrorCode::Throttled, "over budget", 1);
            return Answer::Frames(vec![bytes_of(&refusal)]);
        }
        Answer::Frames(vec![ok_produce(header.correlation_id, partition, 8, 1)])
    };
    let a = FakeNode::start(la, node("a", 1, brokers, placement, log.clone(), produce));
    let mut cluster = ClusterClient::connect_with(&[&a.addr], client_config(), routing()).unwrap();
    let ack = cluster
        .produce("orders", 0, Acks::Leader, None, &[record(b"x")])
        .expect("refused unwritten, so resent")
        .expect("an ack");
    assert_eq!(ack.base_offset, 8);
    assert_eq!(produces(&log, "a"), [0, 0]);
    assert_eq!(
        count(&log, "a", ApiKey::Metadata),
        1,
        "the leader did not change"
    );
}
