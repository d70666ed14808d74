//! Commands replicated through the Raft log, and their encoding
//! (`docs/metadata-format.md`, "Command").

use crate::codec::{Reader, Writer};
use crate::error::CodecError;

/// Version byte that opens every encoded command.
pub const COMMAND_FORMAT_VERSION: u8 = 1;
/// Longest topic or group name, in bytes.
pub const NAME_BYTES_MAX: usize = 249;
/// Longest node address, in bytes.
pub const ADDR_BYTES_MAX: usize = 255;
/// Most configuration entries per topic.
pub const CONFIG_ENTRIES_MAX: u32 = 16;
/// Longest configuration key, in bytes.
pub const CONFIG_KEY_BYTES_MAX: usize = 64;
/// Longest configuration value, in bytes.
pub const CONFIG_VALUE_BYTES_MAX: usize = 256;
/// Most node ids in a replica or in-sync list.
pub const REPLICAS_MAX: u16 = 7;
/// Largest encoded command: a topic at every limit fits.
pub const COMMAND_BYTES_MAX: usize = 2
    + 2
    + NAME_BYTES_MAX
    + 4
    + 2
    + 2
    + 4
    + CONFIG_ENTRIES_MAX as usize * (4 + CONFIG_KEY_BYTES_MAX + CONFIG_VALUE_BYTES_MAX);

/// One change to the cluster metadata. Applied in log order by
/// [`crate::MetadataState::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Add a node to the cluster registry (or update its address).
    RegisterNode {
        /// Node id, never 0.
        node_id: u64,
        /// Address clients use to reach it, `host:port`.
        client_addr: String,
    },
    /// Create a topic with unassigned partitions.
    CreateTopic {
        /// Topic name, `[A-Za-z0-9._-]{1,249}`.
        name: String,
        /// Number of partitions.
        partitions: u32,
        /// Replicas per partition.
        replication_factor: u16,
        /// In-sync replicas an `acks=all` write needs.
        min_insync: u16,
        /// Topic configuration; a repeated key keeps its last value.
        config: Vec<(String, String)>,
    },
    /// Delete a topic and all its partition state.
    DeleteTopic {
        /// Topic name.
        name: String,
    },
    /// Set the replica list of a partition.
    AssignReplicas {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// Node ids, the preferred leader first.
        replicas: Vec<u64>,
    },
    /// Elect a partition leader under a new, higher epoch.
    SetLeader {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// New leader (must be in the in-sync set).
        leader: u64,
        /// New leader epoch, above the current one.
        leader_epoch: u32,
    },
    /// Replace a partition's in-sync set; fenced by the leader epoch and the
    /// in-sync set version. Applying it bumps
    /// [`crate::PartitionState::isr_version`].
    SetInSync {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// The epoch of the leader reporting the set; must be current.
        leader_epoch: u32,
        /// The partition's `isr_version` the proposer saw; must be current.
        /// New proposals must use `Some` (encoded with tag 8). `None` exists
        /// only so entries written by older builds (tag 6) still decode and
        /// apply under the old epoch-only rule, which does not stop a
        /// delayed duplicate from re-adding a replica removed since.
        isr_version: Option<u32>,
        /// In-sync replicas, a subset of the replicas containing the leader.
        in_sync: Vec<u64>,
    },
    /// Choose the coordinator of a consumer group.
    SetGroupCoordinator {
        /// Group name.
        group: String,
        /// Coordinating node.
        node_id: u64,
    },
}

mod tag {
    pub const REGISTER_NODE: u8 = 1;
    pub const CREATE_TOPIC: u8 = 2;
    pub const DELETE_TOPIC: u8 = 3;
    pub const ASSIGN_REPLICAS: u8 = 4;
    pub const SET_LEADER: u8 = 5;
    pub const SET_IN_SYNC: u8 = 6;
    pub const SET_GROUP_COORDINATOR: u8 = 7;
    /// `SetInSync` with its `isr_version`; tag 6 is the legacy layout without.
    pub const SET_IN_SYNC_VERSIONED: u8 = 8;
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), CodecError> {
    if len > max {
        return Err(CodecError::TooLong {
            field,
            len: len as u64,
            max: max as u64,
        });
    }
    Ok(())
}

fn put_nodes(w: &mut Writer, field: &'static str, nodes: &[u64]) -> Result<(), CodecError> {
    check_len(field, nodes.len(), usize::from(REPLICAS_MAX))?;
    w.u16(nodes.len() as u16);
    for &n in nodes {
        w.u64(n);
    }
    Ok(())
}

pub(crate) fn get_nodes(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<u64>, CodecError> {
    let n = usize::from(r.u16(field)?);
    check_len(field, n, usize::from(REPLICAS_MAX))?;
    (0..n).map(|_| r.u64(field)).collect()
}

pub(crate) fn put_name(w: &mut Writer, field: &'static str, s: &str) -> Result<(), CodecError> {
    check_len(field, s.len(), NAME_BYTES_MAX)?;
    w.str16(s);
    Ok(())
}

pub(crate) fn put_config(w: &mut Writer, config: &[(String, String)]) -> Result<(), CodecError> {
    check_len("config", config.len(), CONFIG_ENTRIES_MAX as usize)?;
    w.u32(config.len() as u32);
    for (k, v) in config {
        check_len("config key", k.len(), CONFIG_KEY_BYTES_MAX)?;
        check_len("config value", v.len(), CONFIG_VALUE_BYTES_MAX)?;
        w.str16(k);
        w.str16(v);
    }
    Ok(())
}

pub(crate) fn get_config(r: &mut Reader<'_>) -> Result<Vec<(String, String)>, CodecError> {
    let n = r.count(CONFIG_ENTRIES_MAX, 4, "config")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let k = r.str16(CONFIG_KEY_BYTES_MAX, "config key")?;
        let v = r.str16(CONFIG_VALUE_BYTES_MAX, "config value")?;
        out.push((k, v));
    }
    Ok(out)
}

impl Command {
    /// Encodes the command: version byte, tag byte, fields.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut w = Writer::with_capacity(64);
        w.u8(COMMAND_FORMAT_VERSION);
        match self {
            Command::RegisterNode {
                node_id,
                client_addr,
            } => {
                w.u8(tag::REGISTER_NODE);
                w.u64(*node_id);
                check_len("client_addr", client_addr.len(), ADDR_BYTES_MAX)?;
                w.str16(client_addr);
            }
            Command::CreateTopic {
                name,
                partitions,
                replication_factor,
                min_insync,
                config,
            } => {
                w.u8(tag::CREATE_TOPIC);
                put_name(&mut w, "topic", name)?;
                w.u32(*partitions);
                w.u16(*replication_factor);
                w.u16(*min_insync);
                put_config(&mut w, config)?;
            }
            Command::DeleteTopic { name } => {
                w.u8(tag::DELETE_TOPIC);
                put_name(&mut w, "topic", name)?;
            }
            Command::AssignReplicas {
                topic,
                partition,
                replicas,
            } => {
                w.u8(tag::ASSIGN_REPLICAS);
                put_name(&mut w, "topic", topic)?;
                w.u32(*partition);
                put_nodes(&mut w, "replicas", replicas)?;
            }
            Command::SetLeader {
                topic,
                partition,
                leader,
                leader_epoch,
            } => {
                w.u8(tag::SET_LEADER);
                put_name(&mut w, "topic", topic)?;
                w.u32(*partition);
                w.u64(*leader);
                w.u32(*leader_epoch);
            }
            Command::SetInSync {
                topic,
                partition,
                leader_epoch,
                isr_version,
                in_sync,
            } => {
                w.u8(match isr_version {
                    None => tag::SET_IN_SYNC,
                    Some(_) => tag::SET_IN_SYNC_VERSIONED,
                });
                put_name(&mut w, "topic", topic)?;
                w.u32(*partition);
                w.u32(*leader_epoch);
                if let Some(v) = isr_version {
                    w.u32(*v);
                }
                put_nodes(&mut w, "in_sync", in_sync)?;
            }
            Command::SetGroupCoordinator { group, node_id } => {
                w.u8(tag::SET_GROUP_COORDINATOR);
                put_name(&mut w, "group", group)?;
                w.u64(*node_id);
            }
        }
        debug_assert!(w.len() <= COMMAND_BYTES_MAX);
        Ok(w.into_vec())
    }

    /// Decodes exactly one command from `bytes` (no trailing bytes allowed).
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() > COMMAND_BYTES_MAX {
            return Err(CodecError::TooLong {
                field: "command",
                len: bytes.len() as u64,
                max: COMMAND_BYTES_MAX as u64,
            });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8("command version")?;
        if version != COMMAND_FORMAT_VERSION {
            return Err(CodecError::UnsupportedVersion {
                what: "command",
                version: u16::from(version),
            });
        }
        let cmd = match r.u8("command tag")? {
            tag::REGISTER_NODE => Command::RegisterNode {
                node_id: r.u64("node_id")?,
                client_addr: r.str16(ADDR_BYTES_MAX, "client_addr")?,
            },
            tag::CREATE_TOPIC => Command::CreateTopic {
                name: r.str16(NAME_BYTES_MAX, "topic")?,
                partitions: r.u32("partitions")?,
                replication_factor: r.u16("replication_factor")?,
                min_insync: r.u16("min_insync")?,
                config: get_config(&mut r)?,
            },
            tag::DELETE_TOPIC => Command::DeleteTopic {
                name: r.str16(NAME_BYTES_MAX, "topic")?,
            },
            tag::ASSIGN_REPLICAS => Command::AssignReplicas {
                topic: r.str16(NAME_BYTES_MAX, "topic")?,
                partition: r.u32("partition")?,
                replicas: get_nodes(&mut r, "replicas")?,
            },
            tag::SET_LEADER => Command::SetLeader {
                topic: r.str16(NAME_BYTES_MAX, "topic")?,
                partition: r.u32("partition")?,
                leader: r.u64("leader")?,
                leader_epoch: r.u32("leader_epoch")?,
            },
            tag::SET_IN_SYNC => Command::SetInSync {
                topic: r.str16(NAME_BYTES_MAX, "topic")?,
                partition: r.u32("partition")?,
                leader_epoch: r.u32("leader_epoch")?,
                isr_version: None,
                in_sync: get_nodes(&mut r, "in_sync")?,
            },
            tag::SET_IN_SYNC_VERSIONED => Command::SetInSync {
                topic: r.str16(NAME_BYTES_MAX, "topic")?,
                partition: r.u32("partition")?,
                leader_epoch: r.u32("leader_epoch")?,
                isr_version: Some(r.u32("isr_version")?),
                in_sync: get_nodes(&mut r, "in_sync")?,
            },
            tag::SET_GROUP_COORDINATOR => Command::SetGroupCoordinator {
                group: r.str16(NAME_BYTES_MAX, "group")?,
                node_id: r.u64("node_id")?,
            },
            other => {
                return Err(CodecError::UnknownTag {
                    what: "command",
                    tag: other,
                })
            }
        };
        r.finish("command")?;
        Ok(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Command> {
        vec![
            Command::RegisterNode {
                node_id: 3,
                client_addr: "10.0.0.3:7070".into(),
            },
            Command::CreateTopic {
                name: "orders".into(),
                partitions: 12,
                replication_factor: 3,
                min_insync: 2,
                config: vec![("retention.ms".into(), "86400000".into())],
            },
            Command::DeleteTopic {
                name: "orders".into(),
            },
            Command::AssignReplicas {
                topic: "orders".into(),
                partition: 4,
                replicas: vec![1, 2, 3],
            },
            Command::SetLeader {
                topic: "orders".into(),
                partition: 4,
                leader: 2,
                leader_epoch: 9,
            },
            Command::SetInSync {
                topic: "orders".into(),
                partition: 4,
                leader_epoch: 9,
                isr_version: None,
                in_sync: vec![2, 3],
            },
            Command::SetInSync {
                topic: "orders".into(),
                partition: 4,
                leader_epoch: 9,
                isr_version: Some(17),
                in_sync: vec![2, 3],
            },
            Command::SetGroupCoordinator {
                group: "billing".into(),
                node_id: 1,
            },
        ]
    }

    #[test]
    fn every_command_round_trips() {
        for cmd in samples() {
            let bytes = cmd.encode().unwrap();
            assert_eq!(Command::decode(&bytes).unwrap(), cmd);
            // Every strict prefix is refused, never misread.
            for cut in 0..bytes.len() {
                assert!(Command::decode(&bytes[..cut]).is_err(), "{cmd:?} cut {cut}");
            }
        }
    }

    #[test]
    fn golden_bytes_of_set_leader() {
        let cmd = Command::SetLeader {
            topic: "t".into(),
            partition: 2,
            leader: 7,
            leader_epoch: 5,
        };
        let expected: Vec<u8> = vec![
            1, 5, // version, tag
            1, 0, b't', // name length (u16), name
            2, 0, 0, 0, // partition
            7, 0, 0, 0, 0, 0, 0, 0, // leader
            5, 0, 0, 0, // leader epoch
        ];
        assert_eq!(cmd.encode().unwrap(), expected);
    }

    #[test]
    fn golden_bytes_of_set_in_sync_legacy_and_versioned() {
        let legacy = Command::SetInSync {
            topic: "t".into(),
            partition: 2,
            leader_epoch: 5,
            isr_version: None,
            in_sync: vec![7],
        };
        // Tag 6, exactly the layout older builds wrote.
        let expected: Vec<u8> = vec![
            1, 6, // version, tag
            1, 0, b't', // name length (u16), name
            2, 0, 0, 0, // partition
            5, 0, 0, 0, // leader epoch
            1, 0, // in-sync count (u16)
            7, 0, 0, 0, 0, 0, 0, 0, // node 7
        ];
        assert_eq!(legacy.encode().unwrap(), expected);
        assert_eq!(Command::decode(&expected).unwrap(), legacy);

        let versioned = Command::SetInSync {
            topic: "t".into(),
            partition: 2,
            leader_epoch: 5,
            isr_version: Some(0x0102_0304),
            in_sync: vec![7],
        };
        let expected: Vec<u8> = vec![
            1, 8, // version, tag
            1, 0, b't', // name length (u16), name
            2, 0, 0, 0, // partition
            5, 0, 0, 0, // leader epoch
            4, 3, 2, 1, // isr version
            1, 0, // in-sync count (u16)
            7, 0, 0, 0, 0, 0, 0, 0, // node 7
        ];
        assert_eq!(versioned.encode().unwrap(), expected);
        assert_eq!(Command::decode(&expected).unwrap(), versioned);
    }

    #[test]
    fn limits_are_enforced_both_ways() {
        let long = "x".repeat(NAME_BYTES_MAX + 1);
        let err = Command::DeleteTopic { name: long }.encode().unwrap_err();
        assert!(matches!(err, CodecError::TooLong { field: "topic", .. }));
        let err = Command::AssignReplicas {
            topic: "t".into(),
            partition: 0,
            replicas: vec![1; 8],
        }
        .encode()
        .unwrap_err();
        assert!(matches!(
            err,
            CodecError::TooLong {
                field: "replicas",
                ..
            }
        ));
        // A hand-made replica count of 0xFFFF is refused from the count alone.
        let bytes = [1, 4, 1, 0, b't', 0, 0, 0, 0, 0xFF, 0xFF];
        let err = Command::decode(&bytes).unwrap_err();
        assert!(matches!(
            err,
            CodecError::TooLong {
                field: "replicas",
                len: 65535,
                ..
            }
        ));
        assert!(matches!(
            Command::decode(&[1, 99]),
            Err(CodecError::UnknownTag { tag: 99, .. })
        ));
        assert!(matches!(
            Command::decode(&[2, 1]),
            Err(CodecError::UnsupportedVersion { version: 2, .. })
        ));
    }
}
