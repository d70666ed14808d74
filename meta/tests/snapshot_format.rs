//! Golden bytes of the state snapshot (`docs/metadata-format.md`, "State
//! snapshot"), written by hand: the current version 2, and version 1 as older
//! builds wrote it.

use std::collections::BTreeMap;

use meta::{CodecError, MetadataState, NodeInfo, PartitionState, TopicState};

#[test]
fn snapshot_golden_bytes_of_the_empty_state() {
    let bytes = MetadataState::default().encode().unwrap();
    let mut expected = b"SPMS".to_vec();
    expected.extend_from_slice(&[2, 0, 0, 0]); // format version 2, reserved
    expected.extend_from_slice(&[0; 16]); // version, rejected
    expected.extend_from_slice(&[0; 12]); // node, topic and group counts
    let crc = crc32c_of(&expected);
    expected.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(bytes, expected);
}

/// A one-partition state whose snapshot is built by hand in
/// [`one_partition_snapshot`].
fn one_partition_state(isr_version: u32) -> MetadataState {
    let mut nodes = BTreeMap::new();
    nodes.insert(
        1,
        NodeInfo {
            client_addr: "a:1".into(),
        },
    );
    let mut topics = BTreeMap::new();
    topics.insert(
        "t".to_owned(),
        TopicState {
            topic_id: 2,
            replication_factor: 1,
            min_insync: 1,
            config: BTreeMap::new(),
            partitions: vec![PartitionState {
                replicas: vec![1],
                leader: 1,
                leader_epoch: 4,
                in_sync: vec![1],
                isr_version,
            }],
        },
    );
    MetadataState {
        version: 5,
        rejected: 1,
        nodes,
        topics,
        groups: BTreeMap::new(),
    }
}

/// The snapshot of [`one_partition_state`] in `format_version` 1 or 2,
/// written byte by byte from docs/metadata-format.md.
fn one_partition_snapshot(format_version: u16, isr_version: u32) -> Vec<u8> {
    let mut b = b"SPMS".to_vec();
    b.extend_from_slice(&format_version.to_le_bytes());
    b.extend_from_slice(&[0, 0]); // reserved
    b.extend_from_slice(&5u64.to_le_bytes()); // version
    b.extend_from_slice(&1u64.to_le_bytes()); // rejected
    b.extend_from_slice(&1u32.to_le_bytes()); // nodes
    b.extend_from_slice(&1u64.to_le_bytes()); // node id
    b.extend_from_slice(&[3, 0, b'a', b':', b'1']); // client_addr
    b.extend_from_slice(&1u32.to_le_bytes()); // topics
    b.extend_from_slice(&[1, 0, b't']); // name
    b.extend_from_slice(&2u64.to_le_bytes()); // topic_id
    b.extend_from_slice(&[1, 0, 1, 0]); // rf, min_insync
    b.extend_from_slice(&0u32.to_le_bytes()); // config entries
    b.extend_from_slice(&1u32.to_le_bytes()); // partitions
    b.extend_from_slice(&1u64.to_le_bytes()); // leader
    b.extend_from_slice(&4u32.to_le_bytes()); // leader_epoch
    if format_version >= 2 {
        b.extend_from_slice(&isr_version.to_le_bytes());
    }
    b.extend_from_slice(&[1, 0]); // replicas
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&[1, 0]); // in_sync
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes()); // groups
    let crc = crc32c_of(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

#[test]
fn snapshot_v2_golden_bytes_store_the_isr_version_after_the_epoch() {
    let state = one_partition_state(6);
    let expected = one_partition_snapshot(2, 6);
    assert_eq!(state.encode().unwrap(), expected);
    assert_eq!(MetadataState::decode(&expected).unwrap(), state);
}

#[test]
fn a_version_1_snapshot_decodes_with_isr_version_0() {
    let v1 = one_partition_snapshot(1, 0);
    let state = MetadataState::decode(&v1).unwrap();
    assert_eq!(state, one_partition_state(0));
    assert_eq!(state.partition("t", 0).unwrap().isr_version, 0);
    // Re-encoding writes version 2.
    assert_eq!(state.encode().unwrap(), one_partition_snapshot(2, 0));

    // The empty state in version 1 too.
    let mut empty = b"SPMS".to_vec();
    empty.extend_from_slice(&[1, 0, 0, 0]);
    empty.extend_from_slice(&[0; 28]);
    let crc = crc32c_of(&empty);
    empty.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(
        MetadataState::decode(&empty).unwrap(),
        MetadataState::default()
    );
}

#[test]
fn snapshot_versions_outside_1_to_2_are_refused() {
    for format_version in [0u16, 3, u16::MAX] {
        let bytes = one_partition_snapshot(format_version, 0);
        assert_eq!(
            MetadataState::decode(&bytes),
            Err(CodecError::UnsupportedVersion {
                what: "state snapshot",
                version: format_version
            }),
            "version {format_version}"
        );
    }
    // A version 1 body labelled version 2 is caught by the layout, never
    // misread.
    let mut v1_as_v2 = one_partition_snapshot(1, 0);
    v1_as_v2[4] = 2;
    let n = v1_as_v2.len() - 4;
    let crc = crc32c_of(&v1_as_v2[..n]);
    v1_as_v2[n..].copy_from_slice(&crc.to_le_bytes());
    assert!(MetadataState::decode(&v1_as_v2).is_err());
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
