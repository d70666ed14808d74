//! The `sprawl` command line against a real node, including the README's quick start.

mod common;

use std::process::Command;

use common::{cli_with_stdin, shards, stderr, stdout, Node, BIN};

#[test]
fn topic_commands_and_pub_sub_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let out = node.cli(&["topic", "create", "orders", "--partitions", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("created topic orders"));

    let out = node.cli(&["topic", "list", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v[0]["name"], "orders");
    assert_eq!(v[0]["partitions"], 3);

    // Each stdin line is one record; json output gives one object per acknowledged record.
    let out = node.cli_stdin(
        &[
            "pub", "--topic", "orders", "--key", "k1", "--output", "json",
        ],
        "one\ntwo\nthree\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let acks: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(acks.len(), 3);
    let partition = acks[0]["partition"].as_u64().unwrap();
    for (i, a) in acks.iter().enumerate() {
        assert_eq!(a["topic"], "orders");
        assert_eq!(
            a["partition"].as_u64().unwrap(),
            partition,
            "same key, same partition"
        );
        assert_eq!(a["offset"].as_u64().unwrap(), i as u64);
        assert!(a["id"].as_str().unwrap().len() > 16);
    }
    let out = node.cli(&[
        "pub",
        "--topic",
        "orders",
        "--acks",
        "leader",
        "single message",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("published 1 record"));

    let out = node.cli(&[
        "sub",
        "--topic",
        "orders",
        "--from-beginning",
        "--count",
        "4",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recs: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 4);
    let mut values: Vec<&str> = recs.iter().map(|r| r["value"].as_str().unwrap()).collect();
    values.sort_unstable();
    assert_eq!(values, vec!["one", "single message", "three", "two"]);
    let keyed: Vec<&serde_json::Value> = recs.iter().filter(|r| r["key"] == "k1").collect();
    assert_eq!(keyed.len(), 3);
    assert!(recs
        .iter()
        .all(|r| r["id"].is_string() && r["timestamp"].is_i64()));

    // A group resumes where it committed.
    let out = node.cli(&[
        "sub",
        "--topic",
        "orders",
        "--partition",
        &partition.to_string(),
        "--from-beginning",
        "--group",
        "g",
        "--count",
        "2",
    ]);
    assert_eq!(stdout(&out), "one\ntwo\n");
    let out = node.cli(&[
        "sub",
        "--topic",
        "orders",
        "--partition",
        &partition.to_string(),
        "--group",
        "g",
        "--count",
        "1",
    ]);
    assert_eq!(stdout(&out), "three\n");

    let out = node.cli(&["topic", "describe", "orders", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["partition_state"].as_array().unwrap().len(), 3);
    let out = node.cli(&["topic", "delete", "orders"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = node.cli(&["topic", "describe", "orders"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("sprawl topic list"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn errors_say_what_to_do() {
    // No node at the address.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let out = cli_with_stdin(&["topic", "list"], &addr, None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sprawl serve"), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let out = node.cli(&["pub", "--topic", "missing", "hello"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("sprawl topic create"),
        "{}",
        stderr(&out)
    );
    let out = node.cli(&["pub", "--topic", "missing", "--acks", "sometimes", "x"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--acks"), "{}", stderr(&out));
    let out = node.cli(&["topic", "create", "t", "--partitions", "0"]);
    assert!(stderr(&out).contains("--partitions"), "{}", stderr(&out));

    // The client port is taken: fail fast, naming the flag.
    let port = node.addr.rsplit(':').next().unwrap();
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--port", port, "--data-dir"])
        .arg(other.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--port"), "{}", stderr(&out));
    // The data directory is in use by the running node.
    let out = Command::new(BIN)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&node.dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
}

/// Runs the README's quick-start commands (with `--broker` pointing at a test node) and checks
/// that each command shown in README.md is one of them, so the README cannot drift.
#[test]
fn readme_quick_start_works() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md at the workspace root");
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), shards());
    let steps: [(&str, &[&str], Option<&str>); 4] = [
        (
            "sprawl topic create orders --partitions 3",
            &["topic", "create", "orders", "--partitions", "3"],
            None,
        ),
        (
            "echo hello | sprawl pub --topic orders",
            &["pub", "--topic", "orders"],
            Some("hello\n"),
        ),
        (
            "sprawl sub --topic orders --from-beginning --count 1",
            &[
                "sub",
                "--topic",
                "orders",
                "--from-beginning",
                "--count",
                "1",
            ],
            None,
        ),
        (
            "sprawl topic describe orders",
            &["topic", "describe", "orders"],
            None,
        ),
    ];
    for (line, args, input) in steps {
        assert!(readme.contains(line), "README.md no longer shows `{line}`");
        let out = cli_with_stdin(args, &node.addr, input);
        assert!(out.status.success(), "`{line}` failed: {}", stderr(&out));
        if line.starts_with("sprawl sub") {
            assert_eq!(stdout(&out), "hello\n");
        }
    }
}

/// Too little locked memory for the shards: refuse at start-up and say what to change.
#[test]
fn memlock_limit_too_small_is_explained() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--port",
        "0",
        "--http-port",
        "0",
        "--shards",
        "1",
        "--data-dir",
    ])
    .arg(dir.path());
    // SAFETY: setrlimit is async-signal-safe; lowering a limit needs no privilege.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256 << 10,
                rlim_max: 256 << 10,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = common::wait_with_timeout(
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        std::time::Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("ulimit -l") && err.contains("--shards"),
        "{err}"
    );
}
