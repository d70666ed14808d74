//! The partitions of a Metadata reply: `(partition, shard)` at v0, followed from
//! [`PartitionPlacement::VERSION`] on by an optional [`PartitionPlacement`].

use super::error::EncodeError;
use super::types::{ApiKey, PartitionMetadata, PartitionPlacement};
use super::wire::{ReadResult, Reader, WriteResult, Writer};

/// Encoded size of a v0 partition entry: partition, shard.
const PARTITION_V0_BYTES: usize = 4 + 4;
/// Minimum encoded size of a v1 partition entry: the v0 fields and the `placement` presence byte.
const PARTITION_V1_BYTES_MIN: usize = PARTITION_V0_BYTES + 1;

/// Writes one topic's partitions in the layout of Metadata `version`. A placement in a frame too
/// old to carry it is an error, never silently dropped.
pub(crate) fn write_partitions(
    w: &mut Writer<'_>,
    partitions: &[PartitionMetadata],
    version: u16,
) -> WriteResult {
    let with_placement = version >= PartitionPlacement::VERSION;
    if !with_placement && partitions.iter().any(|p| p.placement.is_some()) {
        return Err(EncodeError::FieldNeedsVersion {
            api: ApiKey::Metadata,
            version,
            field: "placement",
            required_version: PartitionPlacement::VERSION,
        });
    }
    w.count("partitions", partitions.len())?;
    for p in partitions {
        w.u32(p.partition);
        w.u32(p.shard);
        if with_placement {
            w.bool(p.placement.is_some());
            if let Some(placement) = &p.placement {
                write_placement(w, placement)?;
            }
        }
    }
    Ok(())
}

fn write_placement(w: &mut Writer<'_>, p: &PartitionPlacement) -> WriteResult {
    w.u32(p.leader);
    w.u32(p.leader_epoch);
    for (field, nodes) in [("replicas", &p.replicas), ("in_sync", &p.in_sync)] {
        w.capped_count(field, nodes.len(), PartitionPlacement::NODES_MAX)?;
        for node in nodes {
            w.u32(*node);
        }
    }
    Ok(())
}

/// Reads one topic's partitions in the layout of Metadata `version`; `placement` is `None`
/// below [`PartitionPlacement::VERSION`].
pub(crate) fn read_partitions(
    r: &mut Reader<'_>,
    version: u16,
) -> ReadResult<Vec<PartitionMetadata>> {
    let with_placement = version >= PartitionPlacement::VERSION;
    let element_bytes_min = if with_placement {
        PARTITION_V1_BYTES_MIN
    } else {
        PARTITION_V0_BYTES
    };
    r.list("partitions", element_bytes_min, |r| {
        Ok(PartitionMetadata {
            partition: r.u32("partition")?,
            shard: r.u32("shard")?,
            placement: if with_placement && r.bool("placement")? {
                Some(read_placement(r)?)
            } else {
                None
            },
        })
    })
}

fn read_placement(r: &mut Reader<'_>) -> ReadResult<PartitionPlacement> {
    let nodes = |r: &mut Reader<'_>, field| {
        r.capped_list(field, PartitionPlacement::NODES_MAX, 4, |r| r.u32(field))
    };
    Ok(PartitionPlacement {
        leader: r.u32("leader")?,
        leader_epoch: r.u32("leader_epoch")?,
        replicas: nodes(r, "replicas")?,
        in_sync: nodes(r, "in_sync")?,
    })
}
