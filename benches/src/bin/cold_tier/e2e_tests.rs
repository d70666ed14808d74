//! The whole benchmark against a real moto server on loopback, tiny sizes: every pass runs, every
//! check inside it passes, and the report holds consistent numbers. Skipped (with a note) when
//! moto is not installed, like the storage crate's cold tier tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{run, Args};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> Option<(Server, u16)> {
    let installed = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(
            std::env::var_os("SPRAWL_E2E_REQUIRED").is_none(),
            "moto is missing: pip install 'moto[server]==5.2.1'"
        );
        eprintln!("skipped: moto is not installed (pip install 'moto[server]==5.2.1')");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moto_server");
    let server = Server(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "moto did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((server, port))
}

fn samples<'a>(report: &'a Value, payload: &str, side: &str) -> Vec<&'a Value> {
    report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["payload"] == payload && s["side"] == side)
        .collect()
}

#[test]
fn a_tiny_run_against_moto_measures_every_pass_consistently() {
    let Some((server, port)) = moto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let args = Args {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "eu-west-1".into(),
        bucket: "coldbench-test".into(),
        access_key: "k".into(),
        secret_key: "s".into(),
        server_pid: Some(server.0.id()),
        server: "moto (test)".into(),
        segment_mib: 1,
        segments: 2,
        reps: 1,
        in_flight: "1,2".into(),
        multipart_threshold_mib: 8,
        part_mib: 8,
        fetch_kib: 256,
        quiet_load: 1000.0,
        quiet_wait_s: 0,
        work_dir: Some(dir.path().to_path_buf()),
        report: dir.path().join("report.json"),
        command: "test".into(),
    };
    let report = run(&args).expect("benchmark run");
    // Per payload: 2 concurrencies x (tier, probe) uploads, 2 CPU-only passes, 4 read passes.
    assert_eq!(report["samples"].as_array().unwrap().len(), 2 * 10);
    for payload in ["incompressible", "compressible"] {
        let tier = samples(&report, payload, "tier");
        let probe = samples(&report, payload, "probe");
        assert_eq!((tier.len(), probe.len()), (2, 2));
        let raw = probe[0]["raw_bytes"].as_u64().unwrap();
        // Two sealed 1 MiB segments, each short of full by less than one 17 KiB batch.
        assert!(
            (2 * (1 << 20) - 2 * 17_024..=2 << 20).contains(&raw),
            "{raw}"
        );
        for s in tier.iter().chain(&probe) {
            assert_eq!(s["raw_bytes"].as_u64(), Some(raw));
            assert!(s["wall_s"].as_f64().unwrap() > 0.0);
            assert!(s["server_cpu_s"].as_f64().is_some(), "server CPU sampled");
        }
        // Two single-PUT segments each; the tier adds at least one manifest write.
        assert_eq!(probe[0]["requests"].as_u64(), Some(2));
        assert!(tier[0]["requests"].as_u64().unwrap() >= 3);
        let wire = tier[0]["wire_bytes"].as_f64().unwrap() / raw as f64;
        match payload {
            "incompressible" => assert!(wire > 0.9, "{wire}"),
            _ => assert!(wire < 0.5, "{wire}"),
        }
        let cold = samples(&report, payload, "tier_cold")[0];
        let warm = samples(&report, payload, "tier_warm")[0];
        let ranges = samples(&report, payload, "probe_ranges")[0];
        assert_eq!(cold["requests"], ranges["requests"]);
        assert_eq!(cold["wire_bytes"], ranges["wire_bytes"]);
        assert_eq!(cold["raw_bytes"], warm["raw_bytes"]);
        assert_eq!(warm["requests"].as_u64(), Some(0));
        assert_eq!(warm["cache_misses"].as_u64(), Some(0));
        assert!(cold["cache_misses"].as_u64().unwrap() > 0);
    }
}
