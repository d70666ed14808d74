//! Test harness: runs the real `sprawl` binary as a child process on a free port.
#![allow(dead_code)]

pub mod cluster;
pub mod history;
pub mod netns;
pub mod ports;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use net::client::{Client, ClientConfig};

pub const BIN: &str = env!("CARGO_BIN_EXE_sprawl");

/// Shards to use: two when the machine has them (the cross-shard paths), else one.
pub fn shards() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(2)
}

/// A running node.
pub struct Node {
    pub dir: PathBuf,
    pub addr: String,
    /// The HTTP stats port address.
    pub http: String,
    pub child: Child,
    shards: usize,
}

impl Node {
    /// Starts a node on a free port with `shards` shards in `dir` and waits until it serves.
    pub fn start_in(dir: &Path, shards: usize) -> Node {
        Node::start_on(dir, shards, 0)
    }

    /// Like [`Node::start_in`] on a given port (0 = any free one).
    pub fn start_on(dir: &Path, shards: usize, port: u16) -> Node {
        Node::start_opts(dir, shards, port, None)
    }

    /// Like [`Node::start_in`] with a TOML configuration file holding `toml`.
    pub fn start_with_config(dir: &Path, shards: usize, toml: &str) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("sprawl.toml");
        std::fs::write(&conf, toml).unwrap();
        Node::start_opts(dir, shards, 0, Some(&conf))
    }

    /// Like [`Node::start_with_config`] on a given client port (0 = any free one).
    pub fn start_on_with_config(dir: &Path, shards: usize, port: u16, toml: &str) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("sprawl.toml");
        std::fs::write(&conf, toml).unwrap();
        Node::start_opts(dir, shards, port, Some(&conf))
    }

    fn start_opts(dir: &Path, shards: usize, port: u16, config: Option<&Path>) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let _ = std::fs::remove_file(dir.join("ports.json"));
        let child = Command::new(BIN)
            .args([
                "serve",
                "--port",
                &port.to_string(),
                "--http-port",
                "0",
                "--shards",
                &shards.to_string(),
            ])
            .arg("--data-dir")
            .arg(dir)
            .arg("--flush-interval-ms")
            .arg("200")
            .args(
                config
                    .map(|c| ["--config".as_ref(), c.as_os_str()])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sprawl");
        let mut node = Node {
            dir: dir.to_path_buf(),
            addr: String::new(),
            http: String::new(),
            child,
            shards,
        };
        (node.addr, node.http) = node.wait_ready();
        node
    }

    fn wait_ready(&mut self) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let ports = self.dir.join("ports.json");
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports) {
                let v: serde_json::Value = serde_json::from_str(&text).expect("ports.json is JSON");
                let client = v["client"].as_str().expect("client address").to_string();
                let http = v["http"].as_str().expect("http address").to_string();
                return (client, http);
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let ss = Command::new("ss")
                    .arg("-tlnp")
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                panic!("sprawl exited during startup with {status}: {err}\n{ss}");
            }
            assert!(
                Instant::now() < deadline,
                "sprawl did not become ready in 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A connected client.
    pub fn client(&self) -> Client {
        Client::connect(&self.addr, ClientConfig::default()).expect("connect")
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait; returns the output.
    pub fn terminate(mut self) -> Output {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }

    /// Kills (-9) and starts again on the same data directory.
    pub fn restart_after_kill(mut self) -> Node {
        self.kill9();
        Node::start_in(&self.dir.clone(), self.shards)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Kills (-9) and starts again on the same data directory and port.
    pub fn restart_same_port(mut self) -> Node {
        self.kill9();
        let port = self.port();
        Node::start_on(&self.dir.clone(), self.shards, port)
    }

    /// Runs the CLI against this node.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_with_stdin(args, &self.addr, None)
    }

    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> Output {
        cli_with_stdin(args, &self.addr, Some(stdin))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `sprawl serve` on free ports with one shard in `data_dir` plus `extra` flags, for a start
/// that is expected to be refused; returns its output (it must exit on its own).
pub fn serve_output(data_dir: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["serve", "--port", "0", "--http-port", "0", "--shards", "1"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run sprawl serve")
}

/// Runs `sprawl ARGS --broker ADDR`, feeding `stdin` if given.
pub fn cli_with_stdin(args: &[&str], broker: &str, stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).args(["--broker", broker]);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn sprawl cli");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut s = child.stdin.take().unwrap();
        s.write_all(input.as_bytes()).unwrap();
    }
    wait_with_timeout(child, Duration::from_secs(60))
}

/// Waits for a child, killing it after `limit` (so a hang fails the test instead of blocking CI).
pub fn wait_with_timeout(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "command did not finish in {limit:?}; stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Reads every record of a partition from its start to its end.
pub fn read_all(c: &mut Client, topic: &str, partition: u32) -> Vec<net::client::Record> {
    let info = c.describe_topic(topic).unwrap();
    let p = info
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .unwrap();
    let mut out = Vec::new();
    let mut offset = p.start_offset;
    while offset < p.end_offset {
        let f = c.fetch(topic, partition, offset, 1 << 20, 0).unwrap();
        assert!(
            !f.records.is_empty(),
            "fetch at {offset} returned nothing before end {}",
            p.end_offset
        );
        offset = f.records.last().unwrap().offset + 1;
        out.extend(f.records);
    }
    out
}

/// `GET path` on the node's HTTP port; returns (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    http_request("GET", addr, path)
}

/// `METHOD path` (no body) on the node's HTTP port; returns (status, body).
pub fn http_request(method: &str, addr: &str, path: &str) -> (u16, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the http port");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("http response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (status, body.to_string())
}

/// Unkeyed records with these values, no headers, server-stamped.
pub fn records<'a>(values: &[&'a [u8]]) -> Vec<net::codec::RecordView<'a>> {
    values
        .iter()
        .map(|v| net::codec::RecordView {
            key: None,
            value: v,
            headers: vec![],
            timestamp_ms: 0,
            ttl_ms: 0,
        })
        .collect()
}

/// Starts `sprawl pub --topic T --acks all` and feeds it `input` from a thread in small chunks,
/// so that whatever the test does to the node lands mid-stream.
pub fn spawn_pub(addr: &str, topic: &str, input: String) -> (Child, std::thread::JoinHandle<()>) {
    let mut child = Command::new(BIN)
        .args(["pub", "--topic", topic, "--acks", "all", "--broker", addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        for chunk in input.as_bytes().chunks(2048) {
            if stdin.write_all(chunk).is_err() {
                return;
            }
            std::thread::yield_now();
        }
    });
    (child, writer)
}
