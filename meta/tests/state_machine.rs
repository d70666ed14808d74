//! Known-answer tests of the metadata state machine: each row is a command
//! applied to the state built by the rows before it, with the expected outcome.

use meta::{Command, CommandError, MetadataState};

fn register(node_id: u64) -> Command {
    Command::RegisterNode {
        node_id,
        client_addr: format!("10.0.0.{node_id}:7070"),
    }
}

fn create(name: &str, partitions: u32, rf: u16, min_insync: u16) -> Command {
    Command::CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: rf,
        min_insync,
        config: vec![
            ("retention.ms".into(), "1000".into()),
            ("retention.ms".into(), "2000".into()),
        ],
    }
}

fn assign(topic: &str, partition: u32, replicas: &[u64]) -> Command {
    Command::AssignReplicas {
        topic: topic.into(),
        partition,
        replicas: replicas.to_vec(),
    }
}

fn leader(topic: &str, partition: u32, leader: u64, leader_epoch: u32) -> Command {
    Command::SetLeader {
        topic: topic.into(),
        partition,
        leader,
        leader_epoch,
    }
}

fn in_sync(topic: &str, partition: u32, leader_epoch: u32, set: &[u64]) -> Command {
    Command::SetInSync {
        topic: topic.into(),
        partition,
        leader_epoch,
        in_sync: set.to_vec(),
    }
}

#[test]
fn table_of_commands_and_outcomes() {
    use CommandError as E;
    let table: Vec<(Command, Result<u64, CommandError>)> = vec![
        (register(1), Ok(1)),
        (register(2), Ok(2)),
        (register(3), Ok(3)),
        (register(0), Err(E::UnknownNode { node_id: 0 })),
        (create("orders", 2, 3, 2), Ok(4)),
        (
            create("orders", 1, 1, 1),
            Err(E::TopicExists {
                topic: "orders".into(),
            }),
        ),
        (
            create("bad name", 1, 1, 1),
            Err(E::InvalidName {
                what: "topic",
                name: "bad name".into(),
            }),
        ),
        (
            create("t", 0, 1, 1),
            Err(E::InvalidPartitionCount {
                partitions: 0,
                max: 4096,
            }),
        ),
        (
            create("t", 1, 3, 4),
            Err(E::InvalidMinInsync {
                min_insync: 4,
                replication_factor: 3,
            }),
        ),
        (
            create("t", 1, 8, 1),
            Err(E::InvalidReplicationFactor {
                replication_factor: 8,
                max: 7,
            }),
        ),
        (
            assign("orders", 0, &[1, 2]),
            Err(E::ReplicaCountMismatch {
                expected: 3,
                actual: 2,
            }),
        ),
        (
            assign("orders", 0, &[1, 2, 2]),
            Err(E::DuplicateNode { node_id: 2 }),
        ),
        (
            assign("orders", 0, &[1, 2, 9]),
            Err(E::UnknownNode { node_id: 9 }),
        ),
        (
            assign("orders", 5, &[1, 2, 3]),
            Err(E::UnknownPartition {
                topic: "orders".into(),
                partition: 5,
                partitions: 2,
            }),
        ),
        (
            assign("nope", 0, &[1, 2, 3]),
            Err(E::UnknownTopic {
                topic: "nope".into(),
            }),
        ),
        (
            leader("orders", 0, 1, 1),
            Err(E::Unassigned {
                topic: "orders".into(),
                partition: 0,
            }),
        ),
        (assign("orders", 0, &[1, 2, 3]), Ok(5)),
        (leader("orders", 0, 1, 1), Ok(6)),
        (
            leader("orders", 0, 2, 1),
            Err(E::EpochNotIncreasing {
                current: 1,
                proposed: 1,
            }),
        ),
        (
            in_sync("orders", 0, 0, &[1, 2]),
            Err(E::StaleLeaderEpoch {
                current: 1,
                proposed: 0,
            }),
        ),
        (
            in_sync("orders", 0, 1, &[1, 4]),
            Err(E::InSyncNotReplica { node_id: 4 }),
        ),
        (
            in_sync("orders", 0, 1, &[2, 3]),
            Err(E::InSyncWithoutLeader { leader: 1 }),
        ),
        (in_sync("orders", 0, 1, &[1, 2]), Ok(7)),
        // No unclean election: 3 fell out of sync.
        (
            leader("orders", 0, 3, 2),
            Err(E::LeaderNotInSync { leader: 3 }),
        ),
        (leader("orders", 0, 2, 5), Ok(8)),
        (
            Command::SetGroupCoordinator {
                group: "billing".into(),
                node_id: 7,
            },
            Err(E::UnknownNode { node_id: 7 }),
        ),
        (
            Command::SetGroupCoordinator {
                group: "billing".into(),
                node_id: 3,
            },
            Ok(9),
        ),
        (
            Command::DeleteTopic {
                name: "nope".into(),
            },
            Err(E::UnknownTopic {
                topic: "nope".into(),
            }),
        ),
    ];
    let mut state = MetadataState::default();
    for (i, (cmd, expected)) in table.iter().enumerate() {
        assert_eq!(&state.apply(cmd), expected, "row {i}: {cmd:?}");
    }
    assert_eq!(state.version, 9);
    assert_eq!(state.rejected, 19);
    let p = state.partition("orders", 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch), (2, 5));
    assert_eq!(p.in_sync, vec![1, 2]);
    assert_eq!(p.replicas, vec![1, 2, 3]);
    let t = &state.topics["orders"];
    assert_eq!(t.topic_id, 4);
    assert_eq!(
        t.config["retention.ms"], "2000",
        "a repeated key keeps its last value"
    );
    assert_eq!(state.groups["billing"], 3);
}

#[test]
fn reassignment_fences_a_removed_leader_and_trims_the_in_sync_set() {
    let mut s = MetadataState::default();
    for n in 1..=4 {
        s.apply(&register(n)).unwrap();
    }
    s.apply(&create("t", 1, 3, 2)).unwrap();
    s.apply(&assign("t", 0, &[1, 2, 3])).unwrap();
    s.apply(&leader("t", 0, 1, 1)).unwrap();
    s.apply(&assign("t", 0, &[2, 3, 4])).unwrap();
    let p = s.partition("t", 0).unwrap();
    assert_eq!(p.leader, 0, "removed leader is cleared");
    assert_eq!(p.leader_epoch, 2, "and fenced by a new epoch");
    assert_eq!(p.in_sync, vec![2, 3], "new replica 4 is not in sync yet");
    // The old leader's epoch can no longer update the in-sync set.
    assert!(s.apply(&in_sync("t", 0, 1, &[2, 3])).is_err());
    s.apply(&leader("t", 0, 2, 3)).unwrap();
    assert_eq!(s.partition("t", 0).unwrap().leader, 2);
}

#[test]
fn a_refused_command_changes_only_the_rejected_counter() {
    let mut s = MetadataState::default();
    s.apply(&register(1)).unwrap();
    s.apply(&create("t", 3, 1, 1)).unwrap();
    let before = s.clone();
    assert!(s.apply(&assign("t", 1, &[2])).is_err());
    assert_eq!(s.rejected, before.rejected + 1);
    s.rejected = before.rejected;
    assert_eq!(s, before);
}

#[test]
fn replicas_applying_the_same_commands_are_equal_and_snapshots_round_trip() {
    let cmds = vec![
        register(1),
        register(2),
        create("a", 3, 2, 1),
        create("b", 1, 1, 1),
        assign("a", 0, &[2, 1]),
        assign("a", 9, &[2, 1]),
        leader("a", 0, 2, 1),
        Command::DeleteTopic { name: "b".into() },
        Command::SetGroupCoordinator {
            group: "g".into(),
            node_id: 1,
        },
    ];
    let mut x = MetadataState::default();
    let mut y = MetadataState::default();
    for c in &cmds {
        let _ = x.apply(c);
        let _ = y.apply(&meta::Command::decode(&c.encode().unwrap()).unwrap());
    }
    assert_eq!(x, y);
    let bytes = x.encode().unwrap();
    assert_eq!(MetadataState::decode(&bytes).unwrap(), x);
    // Any flipped bit is caught by the CRC; any cut is refused.
    for i in [0, 7, bytes.len() / 2, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        assert!(MetadataState::decode(&bad).is_err(), "flip at {i}");
    }
    for cut in 0..bytes.len() {
        assert!(
            MetadataState::decode(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn snapshot_golden_bytes_of_the_empty_state() {
    let bytes = MetadataState::default().encode().unwrap();
    let mut expected = b"SPMS".to_vec();
    expected.extend_from_slice(&[1, 0, 0, 0]); // format version 1, reserved
    expected.extend_from_slice(&[0; 16]); // version, rejected
    expected.extend_from_slice(&[0; 12]); // node, topic and group counts
    let crc = crc32c_of(&expected);
    expected.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(bytes, expected);
}

/// Bitwise CRC32C (Castagnoli, reflected), independent of the crate's.
fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
