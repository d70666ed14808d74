//! A shard spins on its one active connection's socket for the next request
//! (`engine/src/spin_read.rs`): the spin is taken when one client sends one request at a time,
//! can be turned off, and never keeps other clients, `acks=all` syncs or the stats port waiting.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::{read_all, Node};
use net::client::{Client, ClientConfig};
use net::codec::{Acks, TopicConfig};

/// Sum over shards of a per-shard counter in `/metrics`.
fn counter(node: &Node, name: &str) -> u64 {
    let (status, text) = common::http_get(&node.http, "/metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|l| l.starts_with(&format!("sprawl_{name}{{")))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("unparsable metric line {l:?}"))
        })
        .sum()
}

fn create(node: &Node, topic: &str) {
    node.client()
        .create_topic(
            topic,
            &TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .unwrap();
}

/// One request at a time from one client, `n` records, checked back in order.
fn ping_pong(node: &Node, topic: &str, n: u32) {
    let mut c = node.client();
    for i in 0..n {
        let value = format!("{topic}-{i}");
        let v = common::records(&[value.as_bytes()]);
        let ack = c.produce(topic, 0, Acks::Leader, None, &v).unwrap();
        assert_eq!(ack.map(|a| a.base_offset), Some(u64::from(i)));
    }
    let got = read_all(&mut node.client(), topic, 0);
    assert_eq!(got.len(), n as usize);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.value, format!("{topic}-{i}").as_bytes());
    }
}

#[test]
fn a_lone_client_sending_one_request_at_a_time_is_read_by_spinning() {
    let dir = tempfile::tempdir().unwrap();
    // A long budget so that a client slowed by a busy test machine is still caught.
    let node = Node::start_with_config(dir.path(), 1, "spin_read_us = 5000\n");
    create(&node, "ping");
    ping_pong(&node, "ping", 300);
    let reads = counter(&node, "spin_reads_total");
    assert!(
        reads > 0,
        "no request was read while spinning (misses: {})",
        counter(&node, "spin_misses_total")
    );
}

#[test]
fn spinning_is_off_with_a_zero_budget() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with_config(dir.path(), 1, "spin_read_us = 0\n");
    create(&node, "still");
    ping_pong(&node, "still", 100);
    assert_eq!(counter(&node, "spin_reads_total"), 0);
    assert_eq!(counter(&node, "spin_misses_total"), 0);
}

#[test]
fn other_clients_syncs_and_the_stats_port_are_served_while_one_client_spins() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with_config(dir.path(), 1, "spin_read_us = 5000\n");
    create(&node, "hot");
    create(&node, "other");
    // A client that sends its next request as soon as the last is answered, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let spinner = {
        let (addr, stop, sent) = (node.addr.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut c = Client::connect(&addr, ClientConfig::default()).unwrap();
            let v = common::records(&[b"x"]);
            while !stop.load(Ordering::SeqCst) {
                c.produce("hot", 0, Acks::Leader, None, &v).unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while sent.load(Ordering::SeqCst) < 200 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Meanwhile: another client's acks=all produces (each waits for an fdatasync) and reads, and
    // the stats port.
    let mut other = node.client();
    for i in 0..50u32 {
        let value = format!("o-{i}");
        let v = common::records(&[value.as_bytes()]);
        other.produce("other", 0, Acks::All, None, &v).unwrap();
        let (status, body) = common::http_get(&node.http, "/health");
        assert_eq!(status, 200, "{body}");
    }
    let got = read_all(&mut other, "other", 0);
    assert_eq!(got.len(), 50);
    stop.store(true, Ordering::SeqCst);
    spinner.join().unwrap();
    let n = sent.load(Ordering::SeqCst);
    assert_eq!(read_all(&mut node.client(), "hot", 0).len() as u64, n);
}
