//! The Redis Streams and NATS JetStream drivers against real servers. Each test skips (prints
//! why and returns) when the server binary is not installed; install `redis-server` and
//! `nats-server` (Debian packages) to run them.

mod common;

use std::process::{Child, Command, Stdio};

use common::{check_counts, free_port, loadgen, on_path, read_json, wait_for_port};

/// Kills the server when the test ends, pass or fail.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(program: &str, args: &[&str]) -> Server {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    Server(child)
}

#[test]
fn redis_streams_driver() {
    if !on_path("redis-server") {
        eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
        return;
    }
    let port = free_port();
    let _server = start(
        "redis-server",
        &[
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    );
    wait_for_port(port);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("redis.json");
    let broker = format!("127.0.0.1:{port}");
    loadgen(&[
        "--target",
        "redis",
        "--broker",
        &broker,
        "--create-topic",
        "--partitions",
        "2",
        "--consumers",
        "1",
        "--batch",
        "8",
        "--keys",
        "uniform",
        "--size",
        "128",
        "--warmup-secs",
        "0.2",
        "--duration-secs",
        "1",
        "--report",
        report.to_str().unwrap(),
    ]);
    let r = read_json(&report);
    check_counts(&r, true);
    assert!(r["server"]["version"].as_str().unwrap().contains('.'));
    // D2 needs appendfsync always: this server runs without an AOF, so --acks all is refused.
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--target",
            "redis",
            "--broker",
            &broker,
            "--acks",
            "all",
            "--duration-secs",
            "0.2",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("appendfsync always"));
}

#[test]
fn nats_jetstream_driver() {
    if !on_path("nats-server") {
        eprintln!("skipped: nats-server is not installed (apt-get install nats-server)");
        return;
    }
    let port = free_port();
    let store = tempfile::tempdir().unwrap();
    let _server = start(
        "nats-server",
        &[
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-sd",
            store.path().to_str().unwrap(),
        ],
    );
    wait_for_port(port);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("nats.json");
    loadgen(&[
        "--target",
        "nats",
        "--broker",
        &format!("127.0.0.1:{port}"),
        "--create-topic",
        "--partitions",
        "2",
        "--consumers",
        "2",
        "--batch",
        "4",
        "--size",
        "128",
        "--warmup-secs",
        "0.2",
        "--duration-secs",
        "1",
        "--busy-poll",
        "--report",
        report.to_str().unwrap(),
    ]);
    let r = read_json(&report);
    check_counts(&r, true);
    assert_eq!(
        r["config"]["busy_poll"], true,
        "the NATS run spins (--busy-poll)"
    );
    assert!(
        r["results"]["consume"]["end_to_end_latency_us"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );
}

/// Kafka is not a Debian package: this test runs against a broker the caller started (e.g. a
/// KRaft single node from the Maven Central jars) and named in `LOADGEN_KAFKA_BROKER`.
#[test]
fn kafka_driver() {
    let Ok(broker) = std::env::var("LOADGEN_KAFKA_BROKER") else {
        eprintln!("skipped: set LOADGEN_KAFKA_BROKER=HOST:PORT to a running Kafka broker");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("kafka.json");
    loadgen(&[
        "--target",
        "kafka",
        "--broker",
        &broker,
        "--topic",
        "loadgen-test",
        "--create-topic",
        "--partitions",
        "2",
        "--consumers",
        "1",
        "--batch",
        "4",
        "--keys",
        "uniform",
        "--warmup-secs",
        "0.2",
        "--duration-secs",
        "1",
        "--report",
        report.to_str().unwrap(),
    ]);
    let r = read_json(&report);
    check_counts(&r, true);
}
