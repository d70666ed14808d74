//! The REST API and the earlier system's compatibility endpoints, over real HTTP (curl and a raw
//! client), happy and error paths.

mod common;

use std::process::Command;

use common::{http_request, shards, Node};

/// `curl -s -w '\n%{http_code}' -X METHOD URL [-d BODY]` -> (status, body).
fn curl(method: &str, url: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "-X", method, url]);
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    let out = cmd
        .output()
        .expect("curl is installed (.ci/run installs it)");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let v = serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_string()));
    (code.parse().unwrap(), v)
}

#[test]
fn rest_topics_publish_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let base = format!("http://{}", node.http);
    let (s, v) = curl(
        "POST",
        &format!("{base}/topics"),
        Some(r#"{"name":"web","partitions":2}"#),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["partitions"], 2);
    let (s, v) = curl(
        "POST",
        &format!("{base}/topics"),
        Some(r#"{"name":"web","partitions":2}"#),
    );
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "TOPIC_EXISTS");
    let (s, v) = curl("GET", &format!("{base}/topics"), None);
    assert_eq!(s, 200);
    assert_eq!(v["topics"][0]["name"], "web");

    // One record, then a batch with a key, headers, base64 and acks=leader, to partition 1.
    let (s, v) = curl(
        "POST",
        &format!("{base}/topics/web/messages"),
        Some(r#"{"value":"hello","partition":1}"#),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"][0]["offset"], 0);
    assert_eq!(v["results"][0]["durable"], true, "acks=all by default");
    let batch = r#"{"partition":1,"acks":"leader","records":[
        {"key":"k","value":"two","headers":{"h":"x"}},
        {"value":"/w==","encoding":"base64"}]}"#;
    let (s, v) = curl("POST", &format!("{base}/topics/web/messages"), Some(batch));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 2);
    assert_eq!(v["results"][1]["offset"], 2);
    let (s, v) = curl(
        "GET",
        &format!("{base}/topics/web/partitions/1/messages?offset=0&max=10"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    let recs = v["records"].as_array().unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0]["value"], "hello");
    assert_eq!(recs[1]["key"], "k");
    assert_eq!(recs[1]["headers"]["h"], "x");
    assert_eq!(recs[2]["encoding"], "base64");
    assert_eq!(recs[2]["value"], "/w==");
    assert_eq!(v["next_offset"], 3);
    // The same records through the binary protocol.
    let mut c = node.client();
    let f = c.fetch("web", 1, 0, 1 << 20, 0).unwrap();
    assert_eq!(f.records[1].value, &b"two"[..]);
    assert_eq!(f.records[2].value, vec![0xffu8]);

    // Compatibility layer: POST /publish with id and ttl, GET /status, /health, /metrics.
    let (s, v) = curl(
        "POST",
        &format!("{base}/publish"),
        Some(r#"{"topic":"web","payload":{"a":1},"id":"m-1","ttl":60}"#),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "published");
    assert!(v["id"].is_string());
    let (s, v) = curl("GET", &format!("{base}/status"), None);
    assert_eq!(s, 200);
    assert_eq!(v["status"], "running");
    assert_eq!(v["topics"], 1);
    assert_eq!(curl("GET", &format!("{base}/health"), None).0, 200);
    let (s, _) = curl("DELETE", &format!("{base}/topics/web"), None);
    assert_eq!(s, 200);
    let (s, v) = curl("GET", &format!("{base}/topics/web"), None);
    assert_eq!(s, 404, "{v}");
}

#[test]
fn rest_errors_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let base = format!("http://{}", node.http);
    let cases: [(&str, &str, Option<&str>, u16, &str); 9] = [
        ("POST", "/topics", Some("{not json"), 400, "not valid JSON"),
        ("POST", "/topics", Some(r#"{"partitions":1}"#), 400, "name"),
        (
            "POST",
            "/topics",
            Some(r#"{"name":"bad name","partitions":1}"#),
            400,
            "topic name",
        ),
        (
            "POST",
            "/topics/nope/messages",
            Some(r#"{"value":"x"}"#),
            404,
            "sprawl topic create",
        ),
        (
            "POST",
            "/publish",
            Some(r#"{"topic":"nope"}"#),
            400,
            "payload",
        ),
        (
            "GET",
            "/topics/nope/partitions/0/messages",
            None,
            404,
            "does not exist",
        ),
        (
            "GET",
            "/topics/nope/partitions/x/messages",
            None,
            400,
            "partition must be a number",
        ),
        ("PUT", "/topics", None, 405, "not supported"),
        ("GET", "/nowhere", None, 404, "no endpoint"),
    ];
    for (method, path, body, status, needle) in cases {
        let (s, v) = curl(method, &format!("{base}{path}"), body);
        assert_eq!(s, status, "{method} {path}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{method} {path}: {msg}");
    }
    // Bad offsets and encodings on an existing topic.
    curl(
        "POST",
        &format!("{base}/topics"),
        Some(r#"{"name":"t","partitions":1}"#),
    );
    let (s, v) = curl(
        "GET",
        &format!("{base}/topics/t/partitions/0/messages?offset=99"),
        None,
    );
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "OFFSET_OUT_OF_RANGE");
    let (s, v) = curl(
        "POST",
        &format!("{base}/topics/t/messages"),
        Some(r#"{"value":"%%","encoding":"base64"}"#),
    );
    assert_eq!(s, 400, "{v}");
    // An oversized body is refused, and the node keeps serving.
    let huge = format!("{{\"value\":\"{}\"}}", "x".repeat(9 << 20));
    let path = dir.path().join("huge.json");
    std::fs::write(&path, huge).unwrap();
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(format!("@{}", path.display()))
        .arg(format!("{base}/topics/t/messages"))
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(code == "413" || code == "000", "huge body answered {code}");
    // Invalid UTF-8 in a JSON body is a 400 that says so.
    let bad_utf8 = dir.path().join("bad.json");
    std::fs::write(&bad_utf8, b"{\"value\":\"\xff\xfe\"}").unwrap();
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-X", "POST", "--data-binary"])
        .arg(format!("@{}", bad_utf8.display()))
        .arg(format!("{base}/topics/t/messages"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("not valid JSON"), "{body}");
    assert_eq!(http_request("GET", &node.http, "/health").0, 200);
}

/// Parses `id:`/`event:`/`data:` blocks of an event stream.
fn sse_events(text: &str) -> Vec<(String, String, serde_json::Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut id = String::new();
            let mut event = String::new();
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.to_string();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).ok();
                }
            }
            Some((id, event, data?))
        })
        .collect()
}

/// `curl -N` for a while; returns what arrived.
fn stream_for(url: &str, secs: &str, last_event_id: Option<&str>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-N", "--max-time", secs, url]);
    if let Some(id) = last_event_id {
        cmd.args(["-H", &format!("Last-Event-ID: {id}")]);
    }
    String::from_utf8(cmd.output().unwrap().stdout).unwrap()
}

#[test]
fn server_sent_events_stream_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let base = format!("http://{}", node.http);
    curl(
        "POST",
        &format!("{base}/topics"),
        Some(r#"{"name":"ev","partitions":2}"#),
    );
    for p in 0..2 {
        for i in 0..3 {
            let body = format!(r#"{{"value":"p{p}-{i}","partition":{p}}}"#);
            assert_eq!(
                curl("POST", &format!("{base}/topics/ev/messages"), Some(&body)).0,
                200
            );
        }
    }
    let text = stream_for(
        &format!("{base}/topics/ev/events?from=beginning"),
        "2",
        None,
    );
    let events = sse_events(&text);
    assert_eq!(events.len(), 6, "{text}");
    assert!(events.iter().all(|e| e.1 == "record"));
    for p in 0..2u64 {
        let values: Vec<&str> = events
            .iter()
            .filter(|e| e.2["partition"] == p)
            .map(|e| e.2["value"].as_str().unwrap())
            .collect();
        assert_eq!(
            values,
            vec![format!("p{p}-0"), format!("p{p}-1"), format!("p{p}-2")]
        );
    }
    // Resume from the id of the third event: exactly the three after it.
    let resume_id = events[2].0.clone();
    let text = stream_for(&format!("{base}/topics/ev/events"), "2", Some(&resume_id));
    let again = sse_events(&text);
    let expected: Vec<&serde_json::Value> = events[3..].iter().map(|e| &e.2).collect();
    let got: Vec<&serde_json::Value> = again.iter().map(|e| &e.2).collect();
    assert_eq!(got, expected, "resume with Last-Event-ID continues exactly");
    // A malformed cursor is a 400 that says what a cursor looks like.
    let (s, v) = curl_with_header(
        &format!("{base}/topics/ev/events"),
        "Last-Event-ID: nonsense",
    );
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("0:13,1:7"));
}

fn curl_with_header(url: &str, header: &str) -> (u16, serde_json::Value) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-H", header, url])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or_default(),
    )
}

/// Slow-loris: a client that sends part of a request head and stalls is disconnected after
/// `http_idle_timeout_ms`, and the node keeps answering others.
#[test]
fn stalled_http_clients_are_disconnected() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with_config(dir.path(), 1, "http_idle_timeout_ms = 300\n");
    let mut slow = std::net::TcpStream::connect(&node.http).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the stalled connection is closed without an answer");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(http_request("GET", &node.http, "/health").0, 200);
}

/// POST /subscribe fixes a position and then delivers what is published after it; group reads
/// resume from committed offsets (at-least-once without commit=true, at-most-once with it).
#[test]
fn subscribe_then_read_as_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let base = format!("http://{}", node.http);
    curl(
        "POST",
        &format!("{base}/topics"),
        Some(r#"{"name":"sub","partitions":2}"#),
    );
    let old = r#"{"records":[{"value":"before","partition":0}],"partition":0}"#;
    assert_eq!(
        curl("POST", &format!("{base}/topics/sub/messages"), Some(old)).0,
        200
    );
    let (s, v) = curl(
        "POST",
        &format!("{base}/subscribe"),
        Some(r#"{"topic":"sub"}"#),
    );
    assert_eq!(s, 200, "{v}");
    let read = v["read"].as_str().unwrap().to_string();
    let commit_url = v["commit"].as_str().unwrap().to_string();
    assert!(v["subscription"].as_str().unwrap().starts_with("sub-"));
    for i in 0..4 {
        let body = format!(r#"{{"value":"after-{i}","partition":{}}}"#, i % 2);
        assert_eq!(
            curl("POST", &format!("{base}/topics/sub/messages"), Some(&body)).0,
            200
        );
    }
    // Delivered: only what came after the subscription, nothing committed yet.
    let (s, v) = curl("GET", &format!("{base}{read}?max=10"), None);
    assert_eq!(s, 200, "{v}");
    let mut values: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(values, vec!["after-0", "after-1", "after-2", "after-3"]);
    let again = curl("GET", &format!("{base}{read}?max=10"), None).1;
    assert_eq!(
        again["records"].as_array().unwrap().len(),
        4,
        "uncommitted: read again"
    );
    // Commit what was processed; the next read is empty and waits (long-poll) for new records.
    let commit_body = serde_json::json!({"offsets": v["next_offsets"]}).to_string();
    let (s, c) = curl("POST", &format!("{base}{commit_url}"), Some(&commit_body));
    assert_eq!(s, 200, "{c}");
    let (_, empty) = curl("GET", &format!("{base}{read}?max=10"), None);
    assert_eq!(empty["records"].as_array().unwrap().len(), 0);
    // commit=true advances as it reads.
    curl(
        "POST",
        &format!("{base}/topics/sub/messages"),
        Some(r#"{"value":"later","partition":1}"#),
    );
    let (_, v) = curl(
        "GET",
        &format!("{base}{read}?commit=true&wait_ms=1000"),
        None,
    );
    assert_eq!(v["records"][0]["value"], "later");
    assert_eq!(v["committed"], true);
    let (_, v) = curl("GET", &format!("{base}{read}"), None);
    assert_eq!(v["records"].as_array().unwrap().len(), 0);
    // Errors name what to fix.
    let (s, v) = curl(
        "POST",
        &format!("{base}/subscribe"),
        Some(r#"{"topic":"sub","from":"middle"}"#),
    );
    assert_eq!(s, 400, "{v}");
    let (s, _) = curl(
        "POST",
        &format!("{base}/subscribe"),
        Some(r#"{"topic":"nope"}"#),
    );
    assert_eq!(s, 404);
}
