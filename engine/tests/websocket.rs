//! Live subscriptions over WebSocket against a real node: credits bound what is pushed, groups
//! resume from committed offsets, and bad subscriptions are refused with a reason.

mod common;

use std::time::Duration;

use common::{http_request, shards, Node};
use net::codec::{Acks, TopicConfig};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<MaybeTlsStream<std::net::TcpStream>>;

fn open(node: &Node, query: &str) -> Ws {
    let (ws, resp) = tungstenite::connect(format!("ws://{}/ws?{query}", node.http)).unwrap();
    assert_eq!(resp.status(), 101);
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(800)))
            .unwrap();
    }
    ws
}

/// The next JSON text message, or `None` when nothing arrives before the read timeout.
fn next(ws: &mut Ws) -> Option<serde_json::Value> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Message::Close(_)) => return None,
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(e) => panic!("websocket error: {e}"),
        }
    }
}

/// (partition, offset, value) of the records in a data message.
fn records(msg: &serde_json::Value) -> Vec<(u64, u64, String)> {
    let p = msg["partition"].as_u64().unwrap();
    msg["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                p,
                r["offset"].as_u64().unwrap(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn credits_bound_pushes_and_groups_resume() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let mut c = node.client();
    c.create_topic(
        "live",
        &TopicConfig {
            partitions: 2,
            ..TopicConfig::default()
        },
    )
    .unwrap();
    for p in 0..2u32 {
        let values: Vec<Vec<u8>> = (0..5).map(|i| format!("p{p}-{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        c.produce("live", p, Acks::All, None, &common::records(&refs))
            .unwrap();
    }
    // Three credits: exactly three records arrive, then nothing until more credit.
    let mut ws = open(&node, "topic=live&from=beginning&credits=3");
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = next(&mut ws).expect("records within the timeout");
        got.extend(records(&m));
    }
    assert_eq!(got.len(), 3, "no more than the credits");
    assert!(next(&mut ws).is_none(), "nothing beyond the credits");
    ws.send(Message::text(r#"{"credit": 100}"#)).unwrap();
    while got.len() < 10 {
        let m = next(&mut ws).expect("the rest after granting credit");
        got.extend(records(&m));
    }
    for p in 0..2u64 {
        let mine: Vec<_> = got.iter().filter(|r| r.0 == p).collect();
        assert_eq!(mine.len(), 5);
        for (i, r) in mine.iter().enumerate() {
            assert_eq!(r.1, i as u64, "in order per partition");
            assert_eq!(r.2, format!("p{p}-{i}"));
        }
    }
    // Live tail: a record produced now is pushed at once.
    c.produce("live", 1, Acks::Leader, None, &common::records(&[b"late"]))
        .unwrap();
    let m = next(&mut ws).expect("the new record");
    assert_eq!(records(&m), vec![(1, 5, "late".to_string())]);
    drop(ws);

    // A group commits, and a new connection of the group resumes there.
    let mut ws = open(
        &node,
        "topic=live&partition=0&group=g1&from=beginning&credits=2",
    );
    let first = records(&next(&mut ws).unwrap());
    assert_eq!(first[0].1, 0);
    ws.send(Message::text(
        r#"{"commit": {"partition": 0, "offset": 2}}"#,
    ))
    .unwrap();
    let mut committed = None;
    while committed.is_none() {
        let m = next(&mut ws).expect("commit answer");
        if m.get("committed").is_some() {
            committed = Some(m);
        }
    }
    assert_eq!(committed.unwrap()["committed"]["offset"], 2);
    drop(ws);
    let mut ws = open(&node, "topic=live&partition=0&group=g1");
    let resumed = records(&next(&mut ws).unwrap());
    assert_eq!(resumed[0].1, 2, "resumes at the committed offset");
}

#[test]
fn bad_subscriptions_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let mut ws = open(&node, "topic=missing");
    let m = next(&mut ws).expect("an error message");
    assert_eq!(m["error"]["code"], "UNKNOWN_TOPIC");
    assert!(m["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sprawl topic create"));
    let mut ws = open(&node, "from=beginning");
    let m = next(&mut ws).expect("an error message");
    assert!(
        m["error"]["message"].as_str().unwrap().contains("topic="),
        "{m}"
    );
    // Plain HTTP on /ws is told to use a WebSocket client.
    let (status, body) = http_request("GET", &node.http, "/ws?topic=x");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("WebSocket"));
}
