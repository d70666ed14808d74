//! `sprawl cluster status`: the node's view of the cluster, read from its HTTP port (`GET /cluster`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use argh::FromArgs;
use serde_json::Value;

use super::{parse_output, Output};

/// Default HTTP address of the cluster commands.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
/// Largest `/cluster` document accepted (a cluster of thousands of partitions fits easily).
const RESPONSE_BYTES_MAX: u64 = 64 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(FromArgs, Debug)]
/// Inspect the cluster.
#[argh(subcommand, name = "cluster")]
pub struct ClusterArgs {
    #[argh(subcommand)]
    pub command: ClusterCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum ClusterCommand {
    Status(StatusArgs),
}

#[derive(FromArgs, Debug)]
/// Members with their state, and partitions with leader, replicas and in-sync set.
#[argh(subcommand, name = "status")]
pub struct StatusArgs {
    /// HTTP address of any node (default 127.0.0.1:8080)
    #[argh(option, default = "DEFAULT_HTTP.to_string()")]
    pub http: String,
    /// output format: text or json
    #[argh(option, default = "Output::Text", from_str_fn(parse_output))]
    pub output: Output,
}

pub fn run(a: ClusterArgs) -> Result<(), String> {
    match a.command {
        ClusterCommand::Status(s) => status(s),
    }
}

fn status(a: StatusArgs) -> Result<(), String> {
    let doc = get_json(&a.http, "/cluster")?;
    match a.output {
        Output::Json => {
            println!("{doc}");
        }
        Output::Text => print!("{}", render(&doc)),
    }
    Ok(())
}

/// The human-readable form: a header line, a member table and a partition table.
fn render(doc: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let node = doc["node_id"].as_u64().unwrap_or(0);
    if doc["clustered"].as_bool() != Some(true) {
        let _ = writeln!(
            out,
            "node {node} runs alone (start it with --seeds/--gossip-port to form a cluster)"
        );
    } else {
        let _ = writeln!(
            out,
            "node {node}, gossip {}, {}",
            doc["gossip_addr"].as_str().unwrap_or("?"),
            if doc["joined"].as_bool() == Some(true) {
                "joined"
            } else {
                "not joined yet (no seed answered)"
            }
        );
    }
    let _ = writeln!(
        out,
        "{:>6}  {:<8}  {:<22}  {:<22}  {:<22}  {:>6}  {:>12}",
        "ID", "STATE", "CLIENT", "HTTP", "GOSSIP", "SHARDS", "LOAD msgs/s"
    );
    for m in doc["members"].as_array().into_iter().flatten() {
        let me = if m["self"].as_bool() == Some(true) {
            "*"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:>6}  {:<8}  {:<22}  {:<22}  {:<22}  {:>6}  {:>12.0}",
            format!("{me}{}", m["id"]),
            m["state"].as_str().unwrap_or("?"),
            m["client_addr"].as_str().unwrap_or(""),
            m["http_addr"].as_str().unwrap_or(""),
            m["gossip_addr"].as_str().unwrap_or(""),
            m["shards"],
            m["load_msgs_per_s"].as_f64().unwrap_or(0.0),
        );
    }
    let metadata = match &doc["metadata"] {
        Value::String(s) => s.clone(),
        m => format!(
            "cluster metadata v{}, {} topics; {}",
            m["version"],
            m["topics"],
            m["replication"].as_str().unwrap_or("")
        ),
    };
    let _ = writeln!(out, "partitions ({metadata})");
    let _ = writeln!(
        out,
        "{:<24}  {:>9}  {:>6}  {:<12}  {:<12}",
        "TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"
    );
    let list = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().map(Value::to_string).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    for p in doc["partitions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<24}  {:>9}  {:>6}  {:<12}  {:<12}",
            p["topic"].as_str().unwrap_or("?"),
            p["partition"],
            p["leader"],
            list(&p["replicas"]),
            list(&p["isr"]),
        );
    }
    out
}

/// `GET path` on a node's HTTP port with `Connection: close`; the body parsed as JSON.
fn get_json(addr: &str, path: &str) -> Result<Value, String> {
    let unreachable = |e: &dyn std::fmt::Display| {
        format!("cannot reach the node's HTTP port at {addr}: {e} (is it running? pass --http HOST:PORT)")
    };
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| unreachable(&e))?
        .next()
        .ok_or_else(|| unreachable(&"the name resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&sock, TIMEOUT).map_err(|e| unreachable(&e))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| unreachable(&e))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| unreachable(&e))?;
    let mut raw = Vec::new();
    stream
        .take(RESPONSE_BYTES_MAX)
        .read_to_end(&mut raw)
        .map_err(|e| unreachable(&e))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        format!("{addr} sent no complete HTTP response; is it a Sprawl HTTP port?")
    })?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!(
            "{addr}{path} answered HTTP {status}: {}",
            body.trim()
        ));
    }
    serde_json::from_str(body)
        .map_err(|e| format!("{addr}{path} did not answer JSON ({e}); is it a Sprawl HTTP port?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_members_and_partitions() {
        let doc = serde_json::json!({
            "node_id": 2, "clustered": true, "joined": true, "gossip_addr": "192.0.2.2:7946",
            "metadata": "local",
            "members": [
                {"id": 1, "state": "alive", "self": false, "client_addr": "192.0.2.1:7070",
                 "http_addr": "192.0.2.1:8080", "gossip_addr": "192.0.2.1:7946", "shards": 2,
                 "load_msgs_per_s": 1500.4},
                {"id": 2, "state": "alive", "self": true, "client_addr": "192.0.2.2:7070",
                 "http_addr": "192.0.2.2:8080", "gossip_addr": "192.0.2.2:7946", "shards": 2,
                 "load_msgs_per_s": 0.0},
                {"id": 3, "state": "failed", "self": false, "client_addr": "192.0.2.3:7070",
                 "http_addr": "", "gossip_addr": "192.0.2.3:7946", "shards": 1,
                 "load_msgs_per_s": 0.0}
            ],
            "partitions": [{"topic": "orders", "partition": 0, "leader": 2, "replicas": [2], "isr": [2]}]
        });
        let text = render(&doc);
        assert!(
            text.starts_with("node 2, gossip 192.0.2.2:7946, joined\n"),
            "{text}"
        );
        assert!(text.contains("*2  alive"), "{text}");
        assert!(text.contains("3  failed"), "{text}");
        assert!(text.contains("1500"), "{text}");
        assert!(text.contains("orders"), "{text}");
    }

    #[test]
    fn an_unreachable_node_is_named() {
        let err = get_json("127.0.0.1:1", "/cluster").unwrap_err();
        assert!(
            err.contains("127.0.0.1:1") && err.contains("--http"),
            "{err}"
        );
    }
}
