//! The node's web page in headless Chromium (Debian's `chromium`, driven by playwright-core from
//! `engine/tests/e2e`): it loads, subscribes over WebSocket, and shows a message published over
//! REST. `.ci/run` installs both and sets SPRAWL_E2E_REQUIRED=1, so in CI a missing browser fails
//! the test instead of skipping it.

mod common;

use std::path::Path;
use std::process::Command;

use common::{shards, Node};

#[test]
fn page_shows_a_live_tail_of_rest_publishes() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = Path::new(&chromium).exists() && e2e.join("node_modules/playwright-core").exists();
    if !ready {
        assert!(
            std::env::var_os("SPRAWL_E2E_REQUIRED").is_none(),
            "chromium ({chromium}) or engine/tests/e2e/node_modules is missing: run `apt-get install chromium` and `npm ci` in engine/tests/e2e"
        );
        eprintln!("skipped: no chromium or playwright-core (.ci/run installs them)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let mut c = node.client();
    c.create_topic(
        "web",
        &net::codec::TopicConfig {
            partitions: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let shot = dir.path().join("page.png");
    let child = Command::new("node")
        .arg(e2e.join("page.mjs"))
        .arg(&node.http)
        .arg("web")
        .arg(&shot)
        .env("CHROMIUM", &chromium)
        .current_dir(&e2e)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node is installed");
    let out = common::wait_with_timeout(child, std::time::Duration::from_secs(120));
    assert!(
        out.status.success(),
        "page test failed: {}\n{}",
        common::stdout(&out),
        common::stderr(&out)
    );
    assert!(common::stdout(&out).starts_with("ok"));
    assert!(shot.exists(), "screenshot written");
}
