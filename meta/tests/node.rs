//! A single node on real files (tempfile) and on the crash-simulating memory
//! backend: reopen restores everything that was synced, compaction keeps the
//! state, torn tails are cut and corruption is reported.

use std::fs::OpenOptions;
use std::io::Write;

use meta::{
    Backend, Command, DirBackend, MemBackend, MetaConfig, MetaError, MetaNode, ProposeError, Role,
    StorageError,
};

fn config() -> MetaConfig {
    let mut c = MetaConfig::new(1, vec![1], 9);
    c.snapshot_every_entries = 5;
    c
}

fn elect<B: Backend>(node: &mut MetaNode<B>) {
    for _ in 0..100 {
        if node.status().role == Role::Leader {
            return;
        }
        node.tick();
        while node.has_ready() {
            node.drain().unwrap();
        }
    }
    panic!("no leader after 100 ticks: {:?}", node.status());
}

fn topic(i: u32) -> Command {
    Command::CreateTopic {
        name: format!("t{i}"),
        partitions: i % 3 + 1,
        replication_factor: 1,
        min_insync: 1,
        config: vec![],
    }
}

/// Proposes `cmds` one by one and drains until each is applied.
fn run<B: Backend>(node: &mut MetaNode<B>, cmds: impl IntoIterator<Item = Command>) {
    for cmd in cmds {
        let id = node.propose(&cmd).unwrap();
        let mut seen = false;
        while node.has_ready() {
            let out = node.drain().unwrap();
            seen |= out.applied.iter().any(|a| a.proposal == Some(id));
        }
        assert!(seen, "{cmd:?} not applied");
    }
}

#[test]
fn reopen_from_disk_restores_state_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let (state, status) = {
        let mut node = MetaNode::open(config(), DirBackend::open(dir.path()).unwrap()).unwrap();
        elect(&mut node);
        run(&mut node, (0..13).map(topic));
        // Compaction happened (every 5 entries) and left entries after it.
        let st = node.status();
        assert!(st.snapshot_index >= 10, "{st:?}");
        assert!(st.applied_index > st.snapshot_index, "{st:?}");
        (node.state().clone(), st)
    };
    assert_eq!(state.topics.len(), 13);
    assert!(dir.path().join("raft.log").exists() && dir.path().join("raft.snap").exists());

    let mut node = MetaNode::open(config(), DirBackend::open(dir.path()).unwrap()).unwrap();
    // Committed entries after the snapshot are applied again by the drains.
    elect(&mut node);
    while node.has_ready() {
        node.drain().unwrap();
    }
    assert_eq!(node.state(), &state);
    assert!(node.status().term > status.term);
    // New proposals carry the new boot number, so ids never repeat.
    let id = node.propose(&topic(100)).unwrap();
    assert_eq!(id.boot, 2);
    assert_eq!(id.seq, 0);
}

#[test]
fn crash_keeps_everything_synced_and_a_torn_tail_is_cut() {
    let disk = MemBackend::new();
    let mut node = MetaNode::open(config(), disk.clone()).unwrap();
    elect(&mut node);
    run(&mut node, (0..7).map(topic));
    let state = node.state().clone();
    let syncs = disk.sync_count();
    assert!(
        syncs >= 7,
        "every appended entry is synced before it is applied"
    );
    // An unsynced commit-only hard state may still be in the tail.
    drop(node);
    disk.crash(5);

    let mut node = MetaNode::open(config(), disk.clone()).unwrap();
    elect(&mut node);
    while node.has_ready() {
        node.drain().unwrap();
    }
    assert_eq!(node.state(), &state);

    // Garbage after the last record (a torn append) is cut on open.
    drop(node);
    let mut raw = disk.clone();
    raw.append("raft.log", &[40, 0, 0, 0, 1, 2, 3]).unwrap();
    let mut node = MetaNode::open(config(), disk.clone()).unwrap();
    elect(&mut node);
    while node.has_ready() {
        node.drain().unwrap();
    }
    assert_eq!(node.state(), &state);
}

#[test]
fn a_flipped_bit_inside_the_log_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut node = MetaNode::open(config(), DirBackend::open(dir.path()).unwrap()).unwrap();
        elect(&mut node);
        run(&mut node, (0..3).map(topic));
    }
    let path = dir.path().join("raft.log");
    let mut bytes = std::fs::read(&path).unwrap();
    // Record 0 is the boot counter: flip a bit of its payload.
    bytes[10] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let err = MetaNode::open(config(), DirBackend::open(dir.path()).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            MetaError::Storage(StorageError::Corrupt { offset: 0, .. })
        ),
        "{err:?}"
    );
    // A torn tail on real files, by contrast, just disappears.
    bytes[10] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0, 0, 0]).unwrap();
    drop(f);
    MetaNode::open(config(), DirBackend::open(dir.path()).unwrap()).unwrap();
}

#[test]
fn voters_are_fixed_at_bootstrap() {
    let disk = MemBackend::new();
    drop(MetaNode::open(config(), disk.clone()).unwrap());
    let err = MetaNode::open(MetaConfig::new(1, vec![1, 2, 3], 9), disk).unwrap_err();
    assert!(matches!(
        err,
        MetaError::Storage(StorageError::VotersMismatch { .. })
    ));
}

#[test]
fn bad_configs_and_bad_messages_are_refused() {
    for bad in [
        MetaConfig::new(0, vec![1], 0),
        MetaConfig::new(4, vec![1, 2, 3], 0),
        MetaConfig::new(1, vec![1, 1, 2], 0),
        MetaConfig::new(1, (1..=10).collect(), 0),
        MetaConfig {
            heartbeat_ticks: 10,
            ..MetaConfig::new(1, vec![1], 0)
        },
    ] {
        let err = MetaNode::open(bad.clone(), MemBackend::new()).unwrap_err();
        assert!(matches!(err, MetaError::InvalidConfig { .. }), "{bad:?}");
    }
    let mut node = MetaNode::open(MetaConfig::new(1, vec![1, 2, 3], 0), MemBackend::new()).unwrap();
    assert!(matches!(
        node.step(&[0xFF, 0xFF, 0xFF]),
        Err(MetaError::MessageDecode(_))
    ));
    let huge = vec![0u8; (node_message_limit() + 1) as usize];
    assert!(matches!(
        node.step(&huge),
        Err(MetaError::MessageTooLarge { .. })
    ));
    // A follower does not take proposals.
    assert!(matches!(
        node.propose(&topic(1)),
        Err(ProposeError::NotLeader { leader_id: 0 })
    ));
}

fn node_message_limit() -> u64 {
    MetaConfig::new(1, vec![1], 0).message_bytes_max
}

#[test]
fn proposals_beyond_the_limits_push_back() {
    let mut c = config();
    c.unapplied_entries_max = 3;
    let mut node = MetaNode::open(c, MemBackend::new()).unwrap();
    elect(&mut node);
    // Without draining, nothing gets applied.
    for i in 0..3 {
        node.propose(&topic(i)).unwrap();
    }
    assert!(matches!(
        node.propose(&topic(9)),
        Err(ProposeError::Backpressure { max: 3, .. })
    ));
    while node.has_ready() {
        node.drain().unwrap();
    }
    node.propose(&topic(9)).unwrap();
    let long = Command::CreateTopic {
        name: "x".into(),
        partitions: 1,
        replication_factor: 1,
        min_insync: 1,
        config: (0..17).map(|i| (format!("k{i}"), String::new())).collect(),
    };
    assert!(matches!(node.propose(&long), Err(ProposeError::Codec(_))));
}
