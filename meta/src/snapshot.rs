//! Encoding of a whole [`MetadataState`] for Raft snapshots
//! (`docs/metadata-format.md`, "State snapshot").

use crate::codec::{open_framed, Writer};
use crate::command::{get_config, get_nodes, put_config, put_name, ADDR_BYTES_MAX, NAME_BYTES_MAX};
use crate::error::CodecError;
use crate::state::{
    MetadataState, NodeInfo, PartitionState, TopicState, GROUPS_MAX, NODES_MAX,
    PARTITIONS_PER_TOPIC_MAX, PARTITIONS_TOTAL_MAX, TOPICS_MAX,
};

/// `b"SPMS"` read as a little-endian `u32`.
pub const SNAPSHOT_MAGIC: u32 = u32::from_le_bytes(*b"SPMS");
/// Format version written after the magic. Version 2 added each partition's
/// `isr_version`.
pub const SNAPSHOT_FORMAT_VERSION: u16 = 2;
/// Oldest format version this build still reads (its partitions decode with
/// `isr_version` 0).
pub const SNAPSHOT_FORMAT_VERSION_MIN: u16 = 1;
/// Largest encoded state this build reads: every cluster limit at once stays
/// below it (topics with full configs ~22 MiB, partitions ~8 MiB, groups
/// ~4 MiB, nodes ~0.3 MiB).
pub const SNAPSHOT_BYTES_MAX: usize = 48 << 20;

const WHAT: &str = "state snapshot";
/// Smallest encoded node, topic, partition and group: used to bound counts by
/// the bytes that remain before reserving memory.
const NODE_BYTES_MIN: usize = 8 + 2;
const TOPIC_BYTES_MIN: usize = 2 + 8 + 2 + 2 + 4 + 4;
/// (A version 2 partition is 4 bytes longer; the version 1 bound holds for both.)
const PARTITION_BYTES_MIN: usize = 8 + 4 + 2 + 2;
const GROUP_BYTES_MIN: usize = 2 + 8;

fn put_nodes(w: &mut Writer, nodes: &[u64]) {
    w.u16(nodes.len() as u16);
    for &n in nodes {
        w.u64(n);
    }
}

impl MetadataState {
    /// Encodes the state, CRC32C last. Fails only if a field breaks a codec
    /// limit, which [`MetadataState::apply`] never lets in.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut w = Writer::with_capacity(256);
        w.u32(SNAPSHOT_MAGIC);
        w.u16(SNAPSHOT_FORMAT_VERSION);
        w.u16(0);
        w.u64(self.version);
        w.u64(self.rejected);
        w.u32(self.nodes.len() as u32);
        for (id, node) in &self.nodes {
            w.u64(*id);
            w.str16(&node.client_addr);
        }
        w.u32(self.topics.len() as u32);
        for (name, t) in &self.topics {
            put_name(&mut w, "topic", name)?;
            w.u64(t.topic_id);
            w.u16(t.replication_factor);
            w.u16(t.min_insync);
            let config: Vec<(String, String)> = t
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            put_config(&mut w, &config)?;
            w.u32(t.partitions.len() as u32);
            for p in &t.partitions {
                w.u64(p.leader);
                w.u32(p.leader_epoch);
                w.u32(p.isr_version);
                put_nodes(&mut w, &p.replicas);
                put_nodes(&mut w, &p.in_sync);
            }
        }
        w.u32(self.groups.len() as u32);
        for (group, node) in &self.groups {
            put_name(&mut w, "group", group)?;
            w.u64(*node);
        }
        if w.len() + 4 > SNAPSHOT_BYTES_MAX {
            return Err(CodecError::TooLong {
                field: "state snapshot",
                len: w.len() as u64 + 4,
                max: SNAPSHOT_BYTES_MAX as u64,
            });
        }
        let mut bytes = w.into_vec();
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        Ok(bytes)
    }

    /// Decodes what [`MetadataState::encode`] wrote, checking the CRC first and
    /// every count against its limit before allocating. Also reads format
    /// version 1 (older builds), whose partitions get `isr_version` 0.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() > SNAPSHOT_BYTES_MAX {
            return Err(CodecError::TooLong {
                field: WHAT,
                len: bytes.len() as u64,
                max: SNAPSHOT_BYTES_MAX as u64,
            });
        }
        let (format_version, mut r) = open_framed(
            bytes,
            WHAT,
            SNAPSHOT_MAGIC,
            SNAPSHOT_FORMAT_VERSION_MIN..=SNAPSHOT_FORMAT_VERSION,
        )?;
        let has_isr_version = format_version >= 2;
        let mut state = MetadataState {
            version: r.u64("version")?,
            rejected: r.u64("rejected")?,
            ..MetadataState::default()
        };
        let inconsistent = |reason| CodecError::Inconsistent { what: WHAT, reason };

        let n = r.count(NODES_MAX, NODE_BYTES_MIN, "nodes")?;
        for _ in 0..n {
            let id = r.u64("node id")?;
            let client_addr = r.str16(ADDR_BYTES_MAX, "client_addr")?;
            if state.nodes.insert(id, NodeInfo { client_addr }).is_some() {
                return Err(inconsistent("node listed twice"));
            }
        }
        let n = r.count(TOPICS_MAX, TOPIC_BYTES_MIN, "topics")?;
        let mut partitions_total = 0u64;
        for _ in 0..n {
            let name = r.str16(NAME_BYTES_MAX, "topic")?;
            let topic_id = r.u64("topic id")?;
            let replication_factor = r.u16("replication_factor")?;
            let min_insync = r.u16("min_insync")?;
            let config = get_config(&mut r)?.into_iter().collect();
            let np = r.count(PARTITIONS_PER_TOPIC_MAX, PARTITION_BYTES_MIN, "partitions")?;
            partitions_total += np as u64;
            if partitions_total > PARTITIONS_TOTAL_MAX {
                return Err(inconsistent("more partitions than the cluster limit"));
            }
            let mut partitions = Vec::with_capacity(np);
            for _ in 0..np {
                let leader = r.u64("leader")?;
                let leader_epoch = r.u32("leader_epoch")?;
                let isr_version = if has_isr_version {
                    r.u32("isr_version")?
                } else {
                    0
                };
                let replicas = get_nodes(&mut r, "replicas")?;
                let in_sync = get_nodes(&mut r, "in_sync")?;
                partitions.push(PartitionState {
                    replicas,
                    leader,
                    leader_epoch,
                    in_sync,
                    isr_version,
                });
            }
            let topic = TopicState {
                topic_id,
                replication_factor,
                min_insync,
                config,
                partitions,
            };
            if state.topics.insert(name, topic).is_some() {
                return Err(inconsistent("topic listed twice"));
            }
        }
        let n = r.count(GROUPS_MAX, GROUP_BYTES_MIN, "groups")?;
        for _ in 0..n {
            let group = r.str16(NAME_BYTES_MAX, "group")?;
            let node = r.u64("coordinator")?;
            if state.groups.insert(group, node).is_some() {
                return Err(inconsistent("group listed twice"));
            }
        }
        r.finish(WHAT)?;
        Ok(state)
    }
}
