//! Property tests of the codecs: every valid command round-trips, and no byte
//! string makes a decoder panic or over-allocate.

use meta::{Command, MetadataState};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,20}"
}

fn nodes() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(any::<u64>(), 0..=7)
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (any::<u64>(), ".{0,40}").prop_map(|(node_id, client_addr)| Command::RegisterNode {
            node_id,
            client_addr,
        }),
        (
            name(),
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
            prop::collection::vec((".{0,10}", ".{0,30}"), 0..=16),
        )
            .prop_map(
                |(name, partitions, replication_factor, min_insync, config)| {
                    Command::CreateTopic {
                        name,
                        partitions,
                        replication_factor,
                        min_insync,
                        config,
                    }
                }
            ),
        name().prop_map(|name| Command::DeleteTopic { name }),
        (name(), any::<u32>(), nodes()).prop_map(|(topic, partition, replicas)| {
            Command::AssignReplicas {
                topic,
                partition,
                replicas,
            }
        }),
        (name(), any::<u32>(), any::<u64>(), any::<u32>()).prop_map(
            |(topic, partition, leader, leader_epoch)| Command::SetLeader {
                topic,
                partition,
                leader,
                leader_epoch,
            }
        ),
        // Both encodings: tag 6 (`None`, older builds) and tag 8 (`Some`).
        (
            name(),
            any::<u32>(),
            any::<u32>(),
            prop::option::of(any::<u32>()),
            nodes()
        )
            .prop_map(|(topic, partition, leader_epoch, isr_version, in_sync)| {
                Command::SetInSync {
                    topic,
                    partition,
                    leader_epoch,
                    isr_version,
                    in_sync,
                }
            }),
        (name(), any::<u64>())
            .prop_map(|(group, node_id)| Command::SetGroupCoordinator { group, node_id }),
    ]
}

proptest! {
    #[test]
    fn commands_round_trip(cmd in command()) {
        let bytes = cmd.encode().unwrap();
        if let Command::SetInSync { isr_version, .. } = &cmd {
            prop_assert_eq!(bytes[1], if isr_version.is_some() { 8 } else { 6 });
        }
        prop_assert_eq!(Command::decode(&bytes).unwrap(), cmd);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Command::decode(&bytes);
        let _ = MetadataState::decode(&bytes);
    }

    #[test]
    fn random_snapshot_bodies_with_a_valid_crc_never_panic(
        format_version in 1u16..=2,
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        // Past the CRC, magic and version checks, so the field decoders (of
        // both supported versions) see the noise.
        let mut bytes = b"SPMS".to_vec();
        bytes.extend_from_slice(&format_version.to_le_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&body);
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let _ = MetadataState::decode(&bytes);
    }

    #[test]
    fn applying_random_commands_keeps_snapshots_exact(cmds in prop::collection::vec(command(), 0..40)) {
        let mut state = MetadataState::default();
        for c in &cmds {
            let _ = state.apply(c);
        }
        prop_assert_eq!(state.version + state.rejected, cmds.len() as u64);
        let bytes = state.encode().unwrap();
        prop_assert_eq!(MetadataState::decode(&bytes).unwrap(), state);
    }
}
