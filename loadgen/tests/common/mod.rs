//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `sprawl` binary: `$SPRAWL_BIN`, or `target/<profile>/sprawl` next to this test's
/// executable, built once with cargo when missing.
pub fn sprawl_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(locate_or_build_sprawl).clone()
}

fn locate_or_build_sprawl() -> PathBuf {
    if let Some(path) = std::env::var_os("SPRAWL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let candidate = profile_dir.join("sprawl");
    if !candidate.is_file() {
        let target_dir = profile_dir.parent().expect("target dir");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-p", "engine", "--bin", "sprawl"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p engine");
        assert!(
            status.success(),
            "cargo build -p engine --bin sprawl failed"
        );
    }
    assert!(
        candidate.is_file(),
        "no sprawl binary at {}",
        candidate.display()
    );
    candidate
}

/// Runs the loadgen binary and returns its output, failing with its stderr when it fails.
pub fn loadgen(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("run loadgen");
    assert!(
        output.status.success(),
        "loadgen {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("read report");
    serde_json::from_str(&text).expect("report is JSON")
}

// Ports below the kernel's ephemeral range, so no outgoing connection takes one between the
// pick and the server's bind (the same helper as the engine's tests).
#[path = "../../../engine/tests/common/ports.rs"]
mod ports;
#[allow(unused_imports)] // not every test binary starts a server of its own
pub use ports::free_port;

/// True when `name` is an executable on PATH.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

/// Waits up to 10 s until something accepts connections on `port`.
pub fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Checks the counts every run must agree on.
pub fn check_counts(report: &serde_json::Value, with_consumer: bool) -> u64 {
    let totals = &report["results"]["totals_including_warmup"];
    let acked = totals["records_acked"].as_u64().expect("records_acked");
    assert!(acked > 0, "nothing was acknowledged: {report}");
    assert_eq!(totals["records_failed"], 0);
    assert_eq!(totals["records_sent"].as_u64(), Some(acked));
    assert_eq!(
        report["results"]["stored_records_after_run"].as_u64(),
        Some(acked)
    );
    if with_consumer {
        assert_eq!(totals["records_consumed"].as_u64(), Some(acked));
    }
    let produce = &report["results"]["produce"];
    let measured = produce["records_acked"].as_u64().expect("measured");
    assert!(
        measured > 0 && measured <= acked,
        "measured {measured}, acked {acked}: {report}"
    );
    assert_eq!(produce["latency_us"]["count"].as_u64(), Some(measured));
    assert!(report["results"]["errors"]
        .as_array()
        .expect("errors")
        .is_empty());
    acked
}
