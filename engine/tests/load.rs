//! Many producers at once: zero errors at moderate load; under overload the node slows producers
//! down instead of failing them, and keeps everything it acknowledged.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{read_all, shards, Node};
use net::client::{Client, ClientConfig};
use net::codec::{Acks, RecordView, TopicConfig};

#[test]
fn sixty_four_producers_see_no_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    node.client()
        .create_topic(
            "busy",
            &TopicConfig {
                partitions: 8,
                ..TopicConfig::default()
            },
        )
        .unwrap();
    let errors = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..64u32)
        .map(|t| {
            let addr = node.addr.clone();
            let errors = errors.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&addr, ClientConfig::default()).unwrap();
                for b in 0..20u32 {
                    let values: Vec<Vec<u8>> = (0..10)
                        .map(|i| format!("{t}-{b}-{i}").into_bytes())
                        .collect();
                    let views: Vec<RecordView<'_>> = values
                        .iter()
                        .map(|v| RecordView {
                            key: None,
                            value: v,
                            headers: vec![],
                            timestamp_ms: 0,
                            ttl_ms: 0,
                        })
                        .collect();
                    let acks = if b % 2 == 0 { Acks::All } else { Acks::Leader };
                    if let Err(e) = c.produce("busy", (t + b) % 8, acks, None, &views) {
                        eprintln!("producer {t}: {e}");
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        errors.load(Ordering::SeqCst),
        0,
        "light load never sees a rejection"
    );
    let mut c = node.client();
    let total: usize = (0..8).map(|p| read_all(&mut c, "busy", p).len()).sum();
    assert_eq!(total, 64 * 20 * 10);
}

#[test]
fn overload_slows_producers_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    node.client()
        .create_topic(
            "flood",
            &TopicConfig {
                partitions: 4,
                ..TopicConfig::default()
            },
        )
        .unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let addr = node.addr.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                let config = ClientConfig {
                    produce_window: 64,
                    ..ClientConfig::default()
                };
                let mut c = Client::connect(&addr, config).unwrap();
                let value = vec![b'x'; 1024];
                let views: Vec<RecordView<'_>> = (0..64)
                    .map(|_| RecordView {
                        key: None,
                        value: &value,
                        headers: vec![],
                        timestamp_ms: 0,
                        ttl_ms: 0,
                    })
                    .collect();
                let mut sent = 0;
                while sent < 300 {
                    while c.produce_in_flight() < 64 && sent < 300 {
                        c.send_produce("flood", t % 4, Acks::All, None, &views)
                            .unwrap();
                        sent += 1;
                    }
                    let (_, r) = c.recv_produce().unwrap();
                    let ack = r.expect("no batch is rejected under overload");
                    acked.fetch_add(u64::from(ack.record_count), Ordering::SeqCst);
                }
                while c.produce_in_flight() > 0 {
                    let (_, r) = c.recv_produce().unwrap();
                    acked.fetch_add(u64::from(r.unwrap().record_count), Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = node.client();
    let total: u64 = (0..4)
        .map(|p| read_all(&mut c, "flood", p).len() as u64)
        .sum();
    assert_eq!(total, acked.load(Ordering::SeqCst));
    assert_eq!(total, 8 * 300 * 64);
}

/// Hard overload (every connection slot taken): a new client's first request is answered
/// THROTTLED with a retry-after, the refusal is counted, and existing clients carry on.
#[test]
fn hard_overload_is_throttled_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with_config(dir.path(), 1, "connections_per_shard_max = 1\n");
    let (addr, http) = (node.addr.clone(), node.http.clone());
    let mut first = Client::connect(&addr, ClientConfig::default()).unwrap();
    first
        .create_topic(
            "t",
            &TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .unwrap();
    let err = match Client::connect(&addr, ClientConfig::default()) {
        Ok(_) => panic!("a second connection was accepted beyond connections_per_shard_max = 1"),
        Err(e) => e,
    };
    match &err {
        net::client::ClientError::Server {
            code,
            retry_after_ms,
            message,
        } => {
            assert_eq!(*code, net::codec::ErrorCode::Throttled, "{message}");
            assert_eq!(*retry_after_ms, Some(1000));
            assert!(message.contains("connections_per_shard_max"), "{message}");
        }
        other => panic!("expected THROTTLED, got {other}"),
    }
    // The first client is unaffected, and the refusal is counted.
    let v = common::records(&[b"ok"]);
    first.produce("t", 0, Acks::All, None, &v).unwrap();
    let (_, metrics) = common::http_get(&http, "/metrics");
    assert!(
        metrics.contains("sprawl_throttled_total{node=\"0\",shard=\"0\"} 1"),
        "{metrics}"
    );
}
