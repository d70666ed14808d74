//! Runs the evaluation harness in quick mode and checks that its report is complete and well-formed.

use std::process::Command;

const TARGETS: [&str; 13] = [
    "F1", "F2", "F3", "F4", "H1", "H2", "H3", "A1", "A3", "D1", "D2", "C1", "C2",
];

#[test]
fn quick_evaluation_writes_a_complete_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("analytics.md");
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_evaluate"))
        .args(["--quick", "--seed", "3", "--out"])
        .arg(&md)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run evaluate");
    assert!(
        out.status.success(),
        "evaluate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid json");
    let targets = report["targets"].as_array().expect("targets array");
    for id in TARGETS {
        assert!(
            targets.iter().any(|t| t["id"] == id),
            "target {id} missing from the report"
        );
    }
    for t in targets {
        assert!(t["measured"].as_str().is_some_and(|m| !m.is_empty()), "{t}");
    }
    // Forecast errors are finite and the baseline comparison is present.
    for f in report["synthetic"]["forecasts"]
        .as_array()
        .expect("forecasts")
    {
        for class in ["high_rate", "low_rate"] {
            let rel = f[class]["relmae_geomean"]
                .as_f64()
                .expect("relMAE is a number");
            assert!(rel.is_finite() && rel > 0.0, "{class}: {rel}");
        }
    }
    // The hot-partition events of the quick run are all found.
    assert!(report["synthetic"]["hot"]["missed"]
        .as_array()
        .is_some_and(|m| m.is_empty()));
    let text = std::fs::read_to_string(&md).expect("markdown written");
    assert!(text.contains("cargo run --release -p analytics --bin evaluate"));
    assert!(text.contains("| F1 |") && text.contains("| C2 |"));
    assert!(text.contains("QUICK MODE"));
}
