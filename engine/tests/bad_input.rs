//! Hostile and broken clients: the node answers or closes, stays up, and others are unaffected.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{shards, Node};
use net::codec::{Acks, RecordView, TopicConfig};

fn raw(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until EOF or timeout; returns what arrived.
fn read_reply(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() >= 4 {
                    let len = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
                    if out.len() >= 4 + len {
                        return out;
                    }
                }
            }
            Err(_) => return out,
        }
    }
}

fn error_code_of(reply: &[u8]) -> Option<u16> {
    match net::codec::decode(reply, &net::codec::Limits::default()) {
        Ok(net::codec::Decoded::Frame(f, _)) => match f.body {
            net::codec::Body::Response(r) => Some(r.error().0 as u16),
            _ => None,
        },
        _ => None,
    }
}

fn header(len: u32, api: u16, version: u16, corr: u32) -> Vec<u8> {
    let mut v = len.to_le_bytes().to_vec();
    v.extend_from_slice(&api.to_le_bytes());
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(&corr.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v
}

#[test]
fn garbage_never_takes_the_node_down() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let mut good = node.client();
    good.create_topic(
        "t",
        &TopicConfig {
            partitions: 2,
            ..TopicConfig::default()
        },
    )
    .unwrap();

    // Oversized and "negative" length prefixes: FRAME_TOO_LARGE, then the connection closes.
    for len in [u32::MAX, i32::MAX as u32, 0x8000_0000, 600 << 10] {
        let mut s = raw(&node.addr);
        s.write_all(&len.to_le_bytes()).unwrap();
        let reply = read_reply(&mut s);
        assert_eq!(
            error_code_of(&reply),
            Some(19),
            "len {len}: FRAME_TOO_LARGE"
        );
    }
    // Unknown api key and unsupported version: an error, and the connection stays usable.
    let mut s = raw(&node.addr);
    s.write_all(&header(10, 999, 0, 7)).unwrap();
    assert_eq!(error_code_of(&read_reply(&mut s)), Some(6), "UNKNOWN_API");
    s.write_all(&header(10, 5, 9, 8)).unwrap();
    assert_eq!(
        error_code_of(&read_reply(&mut s)),
        Some(5),
        "UNSUPPORTED_VERSION"
    );
    // Random bytes from a seeded generator, several connections.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20 {
        let mut s = raw(&node.addr);
        let bytes: Vec<u8> = (0..512)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = s.write_all(&bytes);
        let _ = read_reply(&mut s);
    }
    // Truncated frames: the client goes away mid-frame.
    for cut in [1, 3, 5, 11] {
        let mut s = raw(&node.addr);
        let mut f = header(40, 6, 0, 1);
        f.extend_from_slice(&[0u8; 30]);
        s.write_all(&f[..cut]).unwrap();
        drop(s);
    }
    // Invalid topic names and a huge batch get clear errors.
    let err = good
        .create_topic(
            "bad name!",
            &TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("topic name"), "{err}");
    let big = vec![0u8; 7 << 20];
    let views: Vec<RecordView<'_>> = (0..2)
        .map(|_| RecordView {
            key: None,
            value: &big,
            headers: vec![],
            timestamp_ms: 0,
            ttl_ms: 0,
        })
        .collect();
    let err = good
        .produce("t", 0, Acks::All, None, &views)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("FRAME_TOO_LARGE") || err.contains("too large") || err.contains("encode"),
        "{err}"
    );
    // The well-behaved client and the node are fine.
    let mut good = node.client();
    let v = common::records(&[b"still here"]);
    let ack = good.produce("t", 1, Acks::All, None, &v).unwrap().unwrap();
    assert_eq!(ack.record_count, 1);
    let out = node.terminate();
    assert!(out.status.success());
}

#[test]
fn unknown_topics_and_partitions_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let mut c = node.client();
    let err = c.fetch("nope", 0, 0, 1024, 0).unwrap_err().to_string();
    assert!(
        err.contains("UNKNOWN_TOPIC") && err.contains("sprawl topic create"),
        "{err}"
    );
    c.create_topic(
        "t",
        &TopicConfig {
            partitions: 2,
            ..TopicConfig::default()
        },
    )
    .unwrap();
    let err = c.fetch("t", 5, 0, 1024, 0).unwrap_err().to_string();
    assert!(
        err.contains("UNKNOWN_PARTITION") && err.contains("0..2"),
        "{err}"
    );
    let err = c.fetch("t", 0, 10, 1024, 0).unwrap_err().to_string();
    assert!(err.contains("OFFSET_OUT_OF_RANGE"), "{err}");
    let err = c
        .create_topic(
            "t",
            &TopicConfig {
                partitions: 2,
                ..TopicConfig::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("TOPIC_EXISTS"), "{err}");
    c.delete_topic("t").unwrap();
    let err = c.describe_topic("t").unwrap_err().to_string();
    assert!(err.contains("UNKNOWN_TOPIC"), "{err}");
}

/// A client that announces a large frame and stalls is cut off after `frame_read_timeout_ms`,
/// and the shard's byte budget it held comes back (a full-budget producer still gets through).
#[test]
fn stalled_frames_time_out_and_release_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    // Budget of exactly one large frame: one staller would block every producer on its shard.
    let node = Node::start_with_config(
        dir.path(),
        1,
        "frame_read_timeout_ms = 300\nshard_inflight_bytes_max = 8388608\n",
    );
    let addr = node.addr.clone();
    let mut c = net::client::Client::connect(&addr, Default::default()).unwrap();
    c.create_topic(
        "t",
        &TopicConfig {
            partitions: 1,
            ..TopicConfig::default()
        },
    )
    .unwrap();
    // Handshake, then announce an 8 MiB frame and send only its header.
    let mut staller = raw(&addr);
    let mut hello = header(12, 0, 0, 1);
    hello.extend_from_slice(&0u16.to_le_bytes());
    staller.write_all(&hello).unwrap();
    let _ = read_reply(&mut staller);
    staller.write_all(&header((8 << 20) - 16, 6, 0, 2)).unwrap();
    let reply = read_reply(&mut staller);
    assert_eq!(
        error_code_of(&reply),
        Some(15),
        "TIMEOUT error before the close"
    );
    let v = common::records(&[b"after the staller"]);
    let ack = c.produce("t", 0, Acks::All, None, &v).unwrap().unwrap();
    assert_eq!(ack.base_offset, 0);
}
