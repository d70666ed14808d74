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

/// A `SetInSync` as new builds propose it: fenced by epoch and isr version.
fn in_sync(
    topic: &str,
    partition: u32,
    leader_epoch: u32,
    isr_version: u32,
    set: &[u64],
) -> Command {
    Command::SetInSync {
        topic: topic.into(),
        partition,
        leader_epoch,
        isr_version: Some(isr_version),
        in_sync: set.to_vec(),
    }
}

/// A `SetInSync` as older builds wrote it (tag 6): fenced by the epoch only.
fn in_sync_legacy(topic: &str, partition: u32, leader_epoch: u32, set: &[u64]) -> Command {
    Command::SetInSync {
        topic: topic.into(),
        partition,
        leader_epoch,
        isr_version: None,
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
            in_sync("orders", 0, 0, 1, &[1, 2]),
            Err(E::StaleLeaderEpoch {
                current: 1,
                proposed: 0,
            }),
        ),
        (
            in_sync("orders", 0, 1, 0, &[1, 2]),
            Err(E::StaleIsrVersion {
                current: 1,
                proposed: 0,
            }),
        ),
        (
            in_sync("orders", 0, 1, 1, &[1, 4]),
            Err(E::InSyncNotReplica { node_id: 4 }),
        ),
        (
            in_sync("orders", 0, 1, 1, &[2, 3]),
            Err(E::InSyncWithoutLeader { leader: 1 }),
        ),
        (in_sync("orders", 0, 1, 1, &[1, 2]), Ok(7)),
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
    assert_eq!(state.rejected, 20);
    let p = state.partition("orders", 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch), (2, 5));
    assert_eq!(p.isr_version, 2, "first assignment, then one SetInSync");
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
    assert_eq!(p.isr_version, 2, "the trimmed set is a new version");
    // The old leader's epoch can no longer update the in-sync set.
    assert_eq!(
        s.apply(&in_sync("t", 0, 1, 2, &[2, 3])),
        Err(CommandError::StaleLeaderEpoch {
            current: 2,
            proposed: 1
        })
    );
    s.apply(&leader("t", 0, 2, 3)).unwrap();
    assert_eq!(s.partition("t", 0).unwrap().leader, 2);
}

#[test]
fn a_moving_replica_may_be_added_before_the_one_it_replaces_is_removed() {
    let mut s = MetadataState::default();
    for n in 1..=4 {
        s.apply(&register(n)).unwrap();
    }
    s.apply(&create("t", 1, 2, 2)).unwrap();
    // A first assignment has exactly the replication factor.
    assert_eq!(
        s.apply(&assign("t", 0, &[1, 2, 3])),
        Err(CommandError::ReplicaCountMismatch {
            expected: 2,
            actual: 3
        })
    );
    s.apply(&assign("t", 0, &[1, 2])).unwrap();
    s.apply(&leader("t", 0, 1, 1)).unwrap();
    // Then one more while a replica moves, not two.
    s.apply(&assign("t", 0, &[1, 2, 3])).unwrap();
    let p = s.partition("t", 0).unwrap();
    assert_eq!((p.leader, p.in_sync.clone()), (1, vec![1, 2]));
    assert_eq!(
        s.apply(&assign("t", 0, &[1, 2, 3, 4])),
        Err(CommandError::ReplicaCountMismatch {
            expected: 2,
            actual: 4
        })
    );
    s.apply(&assign("t", 0, &[1, 3])).unwrap();
    assert_eq!(s.partition("t", 0).unwrap().replicas, vec![1, 3]);
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
        in_sync("a", 0, 1, 1, &[2]),
        in_sync("a", 0, 1, 2, &[2, 1]),
        in_sync("a", 0, 1, 2, &[2]),
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
    assert_eq!(x.partition("a", 0).unwrap().isr_version, 3);
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

/// Nodes 1..=4, topic `t` with one partition of replication factor 3,
/// replicas [1, 2, 3] (isr_version 1), leader 1 at epoch 1; state version 7.
fn led_partition() -> MetadataState {
    let mut s = MetadataState::default();
    for n in 1..=4 {
        s.apply(&register(n)).unwrap();
    }
    s.apply(&create("t", 1, 3, 2)).unwrap();
    s.apply(&assign("t", 0, &[1, 2, 3])).unwrap();
    s.apply(&leader("t", 0, 1, 1)).unwrap();
    let p = s.partition("t", 0).unwrap();
    assert_eq!((p.in_sync.as_slice(), p.isr_version), (&[1, 2, 3][..], 1));
    s
}

#[test]
fn a_delayed_duplicate_with_a_stale_isr_version_is_refused_and_changes_nothing() {
    let mut s = led_partition();
    // The leader proposed re-adding 3 at version 1, then (that proposal
    // delayed) removing it, also at version 1: the removal commits first.
    assert_eq!(s.apply(&in_sync("t", 0, 1, 1, &[1, 2])), Ok(8));
    let p = s.partition("t", 0).unwrap();
    assert_eq!((p.in_sync.as_slice(), p.isr_version), (&[1, 2][..], 2));

    // A delayed duplicate of an older proposal (seen at version 1) that would
    // re-add 3: same epoch, stale version.
    let before = s.clone();
    assert_eq!(
        s.apply(&in_sync("t", 0, 1, 1, &[1, 2, 3])),
        Err(CommandError::StaleIsrVersion {
            current: 2,
            proposed: 1
        })
    );
    // A version from the future is just as stale.
    assert_eq!(
        s.apply(&in_sync("t", 0, 1, 3, &[1, 2, 3])),
        Err(CommandError::StaleIsrVersion {
            current: 2,
            proposed: 3
        })
    );
    assert_eq!(s.rejected, before.rejected + 2, "counted as refusals");
    assert_eq!(s.version, before.version, "state version not bumped");
    s.rejected = before.rejected;
    assert_eq!(s, before, "isr_version and in_sync untouched");

    // The current version applies; even the same set again is a new version
    // (how a controller ends a leader's pending proposal).
    assert_eq!(s.apply(&in_sync("t", 0, 1, 2, &[1, 2])), Ok(9));
    assert_eq!(s.partition("t", 0).unwrap().isr_version, 3);
    assert_eq!(s.apply(&in_sync("t", 0, 1, 3, &[1, 2, 3])), Ok(10));
    let p = s.partition("t", 0).unwrap();
    assert_eq!((p.in_sync.as_slice(), p.isr_version), (&[1, 2, 3][..], 4));
}

#[test]
fn the_epoch_is_checked_before_the_isr_version() {
    let mut s = led_partition();
    assert_eq!(
        s.apply(&in_sync("t", 0, 0, 0, &[1, 2])),
        Err(CommandError::StaleLeaderEpoch {
            current: 1,
            proposed: 0
        })
    );
    // A current version under a stale epoch is still refused.
    assert_eq!(
        s.apply(&in_sync("t", 0, 2, 1, &[1, 2])),
        Err(CommandError::StaleLeaderEpoch {
            current: 1,
            proposed: 2
        })
    );
    assert_eq!(s.partition("t", 0).unwrap().isr_version, 1);
}

#[test]
fn assign_replicas_bumps_the_isr_version_only_when_the_set_changes() {
    let mut s = MetadataState::default();
    for n in 1..=5 {
        s.apply(&register(n)).unwrap();
    }
    s.apply(&create("t", 2, 3, 2)).unwrap();
    let isr = |s: &MetadataState| {
        let p = s.partition("t", 0).unwrap();
        (p.in_sync.clone(), p.isr_version)
    };
    assert_eq!(isr(&s), (vec![], 0), "unassigned: version 0");

    // First assignment: in_sync = replicas, a change.
    s.apply(&assign("t", 0, &[1, 2, 3])).unwrap();
    assert_eq!(isr(&s), (vec![1, 2, 3], 1));
    // The other partition is untouched.
    assert_eq!(s.partition("t", 1).unwrap().isr_version, 0);

    // Same members, new order: the in-sync set does not change.
    s.apply(&assign("t", 0, &[3, 2, 1])).unwrap();
    assert_eq!(isr(&s), (vec![1, 2, 3], 1));

    // Dropping member 3: a change.
    s.apply(&assign("t", 0, &[1, 2, 4])).unwrap();
    assert_eq!(isr(&s), (vec![1, 2], 2));

    // Swapping 4 (not in sync) for 5: replicas change, the set does not.
    s.apply(&assign("t", 0, &[1, 2, 5])).unwrap();
    assert_eq!(isr(&s), (vec![1, 2], 2));

    // A refused reassignment leaves it alone.
    assert!(s.apply(&assign("t", 0, &[1, 2])).is_err());
    assert_eq!(isr(&s), (vec![1, 2], 2));

    // The version assignment produced is the one a proposal must carry.
    assert_eq!(
        s.apply(&in_sync("t", 0, 0, 1, &[1, 2, 5])),
        Err(CommandError::StaleIsrVersion {
            current: 2,
            proposed: 1
        })
    );
    s.apply(&in_sync("t", 0, 0, 2, &[1, 2, 5])).unwrap();
    assert_eq!(isr(&s), (vec![1, 2, 5], 3));
}

#[test]
fn a_legacy_set_in_sync_applies_under_the_epoch_rule_alone() {
    let mut s = led_partition();
    s.apply(&in_sync("t", 0, 1, 1, &[1, 2])).unwrap();
    assert_eq!(s.partition("t", 0).unwrap().isr_version, 2);

    // A tag-6 entry (as older builds wrote it) decodes with no version...
    let legacy = in_sync_legacy("t", 0, 1, &[1, 2, 3]);
    let bytes = legacy.encode().unwrap();
    assert_eq!(bytes[1], 6, "legacy tag");
    assert_eq!(Command::decode(&bytes).unwrap(), legacy);
    // ...and applies whatever the version, bumping it like any change.
    assert_eq!(s.apply(&legacy), Ok(9));
    let p = s.partition("t", 0).unwrap();
    assert_eq!((p.in_sync.as_slice(), p.isr_version), (&[1, 2, 3][..], 3));

    // The epoch still fences it.
    let before = s.clone();
    assert_eq!(
        s.apply(&in_sync_legacy("t", 0, 0, &[1])),
        Err(CommandError::StaleLeaderEpoch {
            current: 1,
            proposed: 0
        })
    );
    s.rejected = before.rejected;
    assert_eq!(s, before);
}
