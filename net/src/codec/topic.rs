//! The versioned parts of CreateTopic and DescribeTopic bodies: `TopicConfig` (the v0 fields,
//! then the tiering settings from [`TopicConfig::TIERING_VERSION`] on, then the replication
//! settings from [`TopicConfig::REPLICATION_VERSION`] on) and DescribeTopic's `PartitionInfo`
//! (with the remote tier from v1 on).

use super::error::EncodeError;
use super::types::{ApiKey, PartitionInfo, RemoteTierInfo, TopicConfig};
use super::wire::{ReadResult, Reader, WriteResult, Writer};

/// Encoded size of one DescribeTopic v0 `PartitionInfo`: partition, start, end and durable
/// offsets, shard, bytes on disk.
const PARTITION_INFO_V0_BYTES: usize = 4 + 8 + 8 + 8 + 4 + 8;
/// Minimum encoded size of a v1 `PartitionInfo`: the v0 fields and the `remote` presence byte.
const PARTITION_INFO_V1_BYTES_MIN: usize = PARTITION_INFO_V0_BYTES + 1;

/// The `remote` tier info exists on the wire from this DescribeTopic version on.
const REMOTE_TIER_VERSION: u16 = TopicConfig::TIERING_VERSION;

/// Writes a `TopicConfig` in the layout of CreateTopic / DescribeTopic `version`: the v0 fields,
/// then from [`TopicConfig::TIERING_VERSION`] on the tiering settings, then from
/// [`TopicConfig::REPLICATION_VERSION`] on the replication settings. A setting that is set in a
/// frame too old to carry it is an error, never silently dropped.
pub(crate) fn write_topic_config(
    w: &mut Writer<'_>,
    c: &TopicConfig,
    api: ApiKey,
    version: u16,
) -> WriteResult {
    let tiering = version >= TopicConfig::TIERING_VERSION;
    let replication = version >= TopicConfig::REPLICATION_VERSION;
    for (carried, field, required_version) in [
        (
            tiering,
            c.first_tiering_field(),
            TopicConfig::TIERING_VERSION,
        ),
        (
            replication,
            c.first_replication_field(),
            TopicConfig::REPLICATION_VERSION,
        ),
    ] {
        if let (false, Some(field)) = (carried, field) {
            return Err(EncodeError::FieldNeedsVersion {
                api,
                version,
                field,
                required_version,
            });
        }
    }
    w.u32(c.partitions);
    w.opt_u64(c.retention_ms);
    w.opt_u64(c.retention_bytes);
    w.opt_u64(c.segment_bytes);
    w.bool(c.compacted);
    w.opt_u64(c.default_ttl_ms);
    if tiering {
        w.opt_u64(c.tier_after_ms);
        w.opt_u64(c.local_retention_bytes);
    }
    if replication {
        w.opt_u16(c.replication_factor);
        w.opt_u16(c.min_insync);
    }
    Ok(())
}

/// Reads a `TopicConfig` in the layout of CreateTopic / DescribeTopic `version`; the tiering
/// settings are `None` below [`TopicConfig::TIERING_VERSION`], the replication settings below
/// [`TopicConfig::REPLICATION_VERSION`].
pub(crate) fn read_topic_config(r: &mut Reader<'_>, version: u16) -> ReadResult<TopicConfig> {
    let mut config = TopicConfig {
        partitions: r.u32("partitions")?,
        retention_ms: r.opt_u64("retention_ms")?,
        retention_bytes: r.opt_u64("retention_bytes")?,
        segment_bytes: r.opt_u64("segment_bytes")?,
        compacted: r.bool("compacted")?,
        default_ttl_ms: r.opt_u64("default_ttl_ms")?,
        tier_after_ms: None,
        local_retention_bytes: None,
        replication_factor: None,
        min_insync: None,
    };
    if version >= TopicConfig::TIERING_VERSION {
        config.tier_after_ms = r.opt_u64("tier_after_ms")?;
        config.local_retention_bytes = r.opt_u64("local_retention_bytes")?;
    }
    if version >= TopicConfig::REPLICATION_VERSION {
        config.replication_factor = r.opt_u16("replication_factor")?;
        config.min_insync = r.opt_u16("min_insync")?;
    }
    Ok(config)
}

/// Writes one DescribeTopic `PartitionInfo` in the layout of `version`. A remote tier in a v0
/// frame is an error, never silently dropped.
pub(crate) fn write_partition_info(
    w: &mut Writer<'_>,
    p: &PartitionInfo,
    version: u16,
) -> WriteResult {
    let with_remote = version >= REMOTE_TIER_VERSION;
    if !with_remote && p.remote.is_some() {
        return Err(EncodeError::FieldNeedsVersion {
            api: ApiKey::DescribeTopic,
            version,
            field: "remote",
            required_version: REMOTE_TIER_VERSION,
        });
    }
    w.u32(p.partition);
    w.u64(p.start_offset);
    w.u64(p.end_offset);
    w.u64(p.durable_offset);
    w.u32(p.shard);
    w.u64(p.bytes_on_disk);
    if with_remote {
        w.bool(p.remote.is_some());
        if let Some(remote) = &p.remote {
            w.u64(remote.local_start_offset);
            w.u64(remote.remote_start_offset);
            w.u64(remote.remote_end_offset);
            w.u32(remote.remote_segments);
            w.u64(remote.remote_data_bytes);
            w.u64(remote.remote_object_bytes);
        }
    }
    Ok(())
}

/// Reads a DescribeTopic `partitions` list in the layout of `version`.
pub(crate) fn read_partition_infos(
    r: &mut Reader<'_>,
    version: u16,
) -> ReadResult<Vec<PartitionInfo>> {
    let with_remote = version >= REMOTE_TIER_VERSION;
    let element_bytes_min = if with_remote {
        PARTITION_INFO_V1_BYTES_MIN
    } else {
        PARTITION_INFO_V0_BYTES
    };
    r.list("partitions", element_bytes_min, |r| {
        Ok(PartitionInfo {
            partition: r.u32("partition")?,
            start_offset: r.u64("start_offset")?,
            end_offset: r.u64("end_offset")?,
            durable_offset: r.u64("durable_offset")?,
            shard: r.u32("shard")?,
            bytes_on_disk: r.u64("bytes_on_disk")?,
            remote: if with_remote && r.bool("remote")? {
                Some(RemoteTierInfo {
                    local_start_offset: r.u64("local_start_offset")?,
                    remote_start_offset: r.u64("remote_start_offset")?,
                    remote_end_offset: r.u64("remote_end_offset")?,
                    remote_segments: r.u32("remote_segments")?,
                    remote_data_bytes: r.u64("remote_data_bytes")?,
                    remote_object_bytes: r.u64("remote_object_bytes")?,
                })
            } else {
                None
            },
        })
    })
}
