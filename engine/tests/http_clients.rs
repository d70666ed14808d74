//! The HTTP API from other clients: Python's standard library client, and 64 concurrent HTTP
//! publishers at a moderate rate (zero errors).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{read_all, shards, Node};

#[test]
fn python_standard_library_client() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/http_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&node.http)
        .output()
        .expect("python3 is installed");
    assert!(
        out.status.success(),
        "{}{}",
        common::stdout(&out),
        common::stderr(&out)
    );
    assert!(common::stdout(&out).starts_with("ok"));
}

/// POSTs `body` on a kept-alive connection; returns the status code.
fn post(stream: &mut BufReader<TcpStream>, host: &str, path: &str, body: &str) -> u16 {
    write!(
        stream.get_mut(),
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut status = String::new();
    stream.read_line(&mut status).unwrap();
    let code: u16 = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut rest = vec![0u8; len];
    stream.read_exact(&mut rest).unwrap();
    code
}

#[test]
fn sixty_four_http_publishers_see_no_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    node.client()
        .create_topic(
            "httpload",
            &net::codec::TopicConfig {
                partitions: 4,
                ..Default::default()
            },
        )
        .unwrap();
    let errors = Arc::new(AtomicU64::new(0));
    let per_client = 25;
    let threads: Vec<_> = (0..64)
        .map(|t| {
            let (host, errors) = (node.http.clone(), errors.clone());
            std::thread::spawn(move || {
                let mut s = BufReader::new(TcpStream::connect(&host).unwrap());
                for i in 0..per_client {
                    let body = format!(r#"{{"value":"c{t}-{i}","acks":"leader"}}"#);
                    let code = post(&mut s, &host, "/topics/httpload/messages", &body);
                    if code != 200 {
                        eprintln!("client {t}: HTTP {code}");
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
    let total: usize = (0..4).map(|p| read_all(&mut c, "httpload", p).len()).sum();
    assert_eq!(total, 64 * per_client);
}
