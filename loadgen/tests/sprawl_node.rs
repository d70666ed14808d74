//! loadgen against a real `sprawl` node: counts in the report must equal what the node stores.

mod common;

use common::{check_counts, loadgen, read_json, sprawl_binary};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use loadgen::spawn::SpawnedNode;
use net::client::{Client, ClientConfig};

#[test]
fn report_counts_match_the_node_closed_and_open_loop() {
    let node = SpawnedNode::start(&sprawl_binary(), 1).expect("start sprawl");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("closed.json");
    let hdr_log = dir.path().join("closed.hlog");
    let plots = dir.path().join("plots");
    let output = loadgen(&[
        "--broker",
        &node.client_addr,
        "--topic",
        "closed",
        "--create-topic",
        "--partitions",
        "3",
        "--producers",
        "2",
        "--consumers",
        "1",
        "--batch",
        "4",
        "--window",
        "16",
        "--keys",
        "zipf",
        "--key-space",
        "100",
        "--size-dist",
        "uniform:16:512",
        "--warmup-secs",
        "1",
        "--duration-secs",
        "1.2",
        "--seed",
        "7",
        "--report",
        report.to_str().unwrap(),
        "--hdr-log",
        hdr_log.to_str().unwrap(),
        "--plot-dir",
        plots.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("produce->ack") && stdout.contains("end-to-end"),
        "{stdout}"
    );

    let r = read_json(&report);
    let acked = check_counts(&r, true);
    // Independently of loadgen: the node's partition end offsets add up to the same count.
    let mut client = Client::connect(&node.client_addr, ClientConfig::default()).unwrap();
    let info = client.describe_topic("closed").unwrap();
    assert_eq!(info.partitions.len(), 3);
    assert_eq!(
        info.partitions.iter().map(|p| p.end_offset).sum::<u64>(),
        acked
    );
    // And so does the node's own accounting on its stats port: records appended per partition,
    // one produce latency per batch of 4, one end-to-end latency per record delivered.
    let metrics = http_get(&node.http_addr, "/metrics");
    let appended: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("sprawl_partition_records_in_total{") && l.contains("topic=\"closed\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(appended as u64, acked, "{metrics}");
    let stats: serde_json::Value =
        serde_json::from_str(&http_get(&node.http_addr, "/stats")).unwrap();
    assert_eq!(
        stats["topics"]["closed"]["produce"]["count"].as_u64(),
        Some(acked / 4)
    );
    assert_eq!(stats["ops"]["e2e"]["count"].as_u64(), Some(acked));
    // Zipf keys put more records on partition 0 (key 0, 3, 6, ...) than on the others.
    assert!(
        info.partitions[0].end_offset > info.partitions[2].end_offset,
        "{info:?}"
    );
    assert_eq!(r["config"]["keys"]["kind"], "zipf");
    assert_eq!(r["config"]["seed"], 7);
    assert!(r["command_line"].as_array().unwrap().len() > 10);
    assert!(r["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(
        r["results"]["consume"]["end_to_end_latency_us"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );

    // The HDR interval log holds decodable histograms for both metrics.
    let log = std::fs::read(&hdr_log).unwrap();
    let mut tags = std::collections::BTreeSet::new();
    let mut produce_samples = 0u64;
    for entry in IntervalLogIterator::new(&log) {
        if let Ok(LogEntry::Interval(h)) = entry {
            let tag = h.tag().map(|t| t.as_str().to_owned()).unwrap_or_default();
            let bytes = base64_decode(h.encoded_histogram());
            let hist: hdrhistogram::Histogram<u64> =
                hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut bytes.as_slice())
                    .unwrap();
            if tag == "produce" {
                produce_samples += hist.len();
            }
            tags.insert(tag);
        }
    }
    assert_eq!(tags.into_iter().collect::<Vec<_>>(), ["e2e", "produce"]);
    assert_eq!(
        Some(produce_samples),
        r["results"]["produce"]["latency_us"]["count"].as_u64()
    );
    for name in ["latency-spectrum.svg", "latency-over-time.svg"] {
        let svg = std::fs::read_to_string(plots.join(name)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{name}"
        );
    }

    // Open loop at 2000 records/s: the measured count follows the rate, not the server's speed.
    let report = dir.path().join("open.json");
    loadgen(&[
        "--broker",
        &node.client_addr,
        "--topic",
        "open",
        "--create-topic",
        "--rate",
        "2000",
        "--warmup-secs",
        "0.2",
        "--duration-secs",
        "1",
        "--acks",
        "all",
        "--report",
        report.to_str().unwrap(),
    ]);
    let r = read_json(&report);
    check_counts(&r, false);
    let measured = r["results"]["produce"]["records_acked"].as_u64().unwrap();
    assert!(
        (1_900..=2_100).contains(&measured),
        "open loop sent {measured} in 1 s at 2000/s"
    );
    assert_eq!(r["config"]["pace"]["kind"], "open");
    assert_eq!(r["config"]["busy_poll"], false);

    // --busy-poll (spinning, non-blocking reads) at window 1, with a consumer: the same counts.
    let report = dir.path().join("busy.json");
    loadgen(&[
        "--broker",
        &node.client_addr,
        "--topic",
        "busy",
        "--create-topic",
        "--window",
        "1",
        "--consumers",
        "1",
        "--busy-poll",
        "--warmup-secs",
        "0.2",
        "--duration-secs",
        "1",
        "--report",
        report.to_str().unwrap(),
    ]);
    let r = read_json(&report);
    check_counts(&r, true);
    assert_eq!(r["config"]["busy_poll"], true);
    node.stop().expect("sprawl stops cleanly on SIGTERM");
}

#[test]
fn spawn_is_a_one_command_demo() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("spawn.json");
    let output = loadgen(&[
        "--spawn",
        "--sprawl-bin",
        sprawl_binary().to_str().unwrap(),
        "--duration-secs",
        "1",
        "--warmup-secs",
        "1",
        "--consumers",
        "1",
        "--report",
        report.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stopped the node"), "{stderr}");
    let r = read_json(&report);
    check_counts(&r, true);
    assert_eq!(r["server"]["spawned"]["shards"], 1);
    // The spawned node's CPU time and memory are accounted.
    let process = &r["server"]["process"];
    assert!(process["rss_bytes"].as_u64().unwrap() > 0, "{process}");
    assert!(process["cpu_s"].as_f64().unwrap() > 0.0, "{process}");
    assert!(process["cpu_s_per_gb"].as_f64().is_some(), "{process}");
    assert_eq!(
        process["bytes_acked"],
        r["results"]["totals_including_warmup"]["bytes_acked"]
    );
}

/// The same generator through the node's HTTP REST API (`--target http`): every acknowledged
/// record is stored and consumed, with latencies recorded.
#[test]
fn http_target_publishes_and_consumes_through_rest() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("http.json");
    let output = loadgen(&[
        "--target",
        "http",
        "--spawn",
        "--sprawl-bin",
        sprawl_binary().to_str().unwrap(),
        "--duration-secs",
        "1",
        "--warmup-secs",
        "1",
        "--consumers",
        "1",
        "--size",
        "200",
        "--report",
        report.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stopped the node"), "{stderr}");
    let r = read_json(&report);
    check_counts(&r, true);
    assert!(r["server"]["version"]
        .as_str()
        .is_some_and(|v| v.contains("HTTP API")));
}

/// `GET path` on a node's HTTP port; the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64 digit") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
