//! Topic creation and deletion. Runs on shard 0, which owns the catalog file: one change at a time,
//! persisted before any shard sees it, and answered only after every shard has applied it (so a
//! client that got "created" can produce to any shard at once).

use std::rc::Rc;
use std::sync::Arc;

use net::codec::{ErrorCode, TopicConfig};

use crate::catalog::{new_topic_id, validate_topic_name, TopicMeta, TopicSettings, PARTITIONS_MAX};
use crate::handlers::{unknown_topic, Failure};
use crate::runtime::blocking;
use crate::shard::Shard;

/// Smallest and largest segment size a topic may ask for.
pub const SEGMENT_BYTES_MIN: u64 = 1 << 20;
pub const SEGMENT_BYTES_MAX: u64 = 1 << 30;

fn invalid(msg: String) -> Failure {
    Failure::new(ErrorCode::InvalidConfig, msg)
}

/// Checks a topic configuration, naming the first bad setting. `cold_tier` says whether this node
/// has an object store (`--s3-endpoint`), which tiering settings need.
pub fn validate(name: &str, c: &TopicConfig, cold_tier: bool) -> Result<TopicSettings, Failure> {
    validate_topic_name(name).map_err(|m| Failure::new(ErrorCode::InvalidRequest, m))?;
    if name == crate::groups::OFFSETS_TOPIC && !c.compacted {
        return Err(invalid(format!(
            "{name} is the internal consumer group offsets topic: Sprawl creates it (compacted) \
             on the first group request; do not create it by hand"
        )));
    }
    if c.partitions == 0 || c.partitions > PARTITIONS_MAX {
        return Err(invalid(format!(
            "--partitions must be between 1 and {PARTITIONS_MAX}, got {}",
            c.partitions
        )));
    }
    if let Some(s) = c.segment_bytes {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&s) {
            return Err(invalid(format!(
                "--segment-bytes must be between {SEGMENT_BYTES_MIN} (1 MiB) and {SEGMENT_BYTES_MAX} (1 GiB), got {s}"
            )));
        }
    }
    if c.retention_ms == Some(0) {
        return Err(invalid(
            "--retention-ms must be positive (omit it to keep data forever)".into(),
        ));
    }
    if c.retention_bytes == Some(0) {
        return Err(invalid(
            "--retention-bytes must be positive (omit it for no size limit)".into(),
        ));
    }
    if c.default_ttl_ms == Some(0) {
        return Err(invalid(
            "--default-ttl-ms must be positive (omit it for no TTL)".into(),
        ));
    }
    validate_tiering(c, cold_tier)?;
    Ok(TopicSettings {
        retention_ms: c.retention_ms,
        retention_bytes: c.retention_bytes,
        segment_bytes: c.segment_bytes,
        compacted: c.compacted,
        default_ttl_ms: c.default_ttl_ms,
        tier_after_ms: c.tier_after_ms,
        local_retention_bytes: c.local_retention_bytes,
    })
}

fn validate_tiering(c: &TopicConfig, cold_tier: bool) -> Result<(), Failure> {
    if c.tier_after_ms.is_none() && c.local_retention_bytes.is_none() {
        return Ok(());
    }
    if !cold_tier {
        return Err(invalid(
            "--tier-after-ms and --local-retention-bytes need an object store: start the node \
             with --s3-endpoint, --s3-bucket, --s3-access-key and --s3-secret-key (or SPRAWL_S3_*)"
                .into(),
        ));
    }
    if c.compacted {
        return Err(invalid(
            "a compacted topic cannot be tiered: compaction rewrites sealed segments, which the \
             cold tier treats as immutable; drop --compacted or the tiering settings"
                .into(),
        ));
    }
    if c.local_retention_bytes == Some(0) {
        return Err(invalid(
            "--local-retention-bytes must be positive (omit it to tier by age only)".into(),
        ));
    }
    Ok(())
}

/// Writes the catalog file (on the blocking pool).
pub async fn store_catalog(
    shard: &Rc<Shard>,
    catalog: &crate::catalog::Catalog,
) -> Result<(), Failure> {
    let dir = shard.config.data_dir.clone();
    let c = catalog.clone();
    blocking(move || c.store(&dir))
        .await
        .map_err(|e| Failure::new(ErrorCode::StorageError, e.to_string()))
}

/// Creates a topic; returns its id.
pub async fn create_topic(
    shard: &Rc<Shard>,
    name: &str,
    config: TopicConfig,
) -> Result<u64, Failure> {
    let settings = validate(name, &config, shard.cold.is_some())?;
    if crate::metadata::cluster_topics(shard) {
        return crate::metadata::create_topic(shard, name, config, settings).await;
    }
    if config.replication_factor_or_default() > 1 || config.min_insync_or_default() > 1 {
        return Err(Failure::new(
            ErrorCode::InvalidConfig,
            format!(
                "replication factor {} needs a cluster: start the nodes with --controllers \
                 (docs/cluster.md), or create the topic without --replication-factor / \
                 --min-insync",
                config.replication_factor_or_default()
            ),
        ));
    }
    let _guard = shard
        .admin_lock
        .acquire_permit(1)
        .await
        .map_err(|_| Failure::new(ErrorCode::ShuttingDown, "node is shutting down"))?;
    let current = shard.catalog.borrow().clone();
    if let Some(t) = current.topics.get(name) {
        return Err(Failure::new(
            ErrorCode::TopicExists,
            format!(
                "topic {name:?} already exists with {} partitions; describe it with `sprawl topic describe {name}`",
                t.partitions
            ),
        ));
    }
    let mut next = (*current).clone();
    next.version += 1;
    let meta = TopicMeta {
        name: name.to_string(),
        topic_id: new_topic_id(),
        partitions: config.partitions,
        settings,
        cluster: false,
    };
    let topic_id = meta.topic_id;
    next.topics.insert(name.to_string(), meta);
    store_catalog(shard, &next).await?;
    shard
        .broadcast_catalog(Arc::new(next))
        .await
        .map_err(|e| Failure::new(ErrorCode::StorageError, e))?;
    Ok(topic_id)
}

/// Deletes a topic and its data.
pub async fn delete_topic(shard: &Rc<Shard>, name: &str) -> Result<(), Failure> {
    if name == crate::groups::OFFSETS_TOPIC {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            format!(
                "{name} holds the cluster's committed consumer group offsets and cannot be deleted"
            ),
        ));
    }
    if crate::metadata::cluster_topics(shard) && shard.topic(name).is_none_or(|t| t.cluster) {
        return crate::metadata::delete_topic(shard, name).await;
    }
    let _guard = shard
        .admin_lock
        .acquire_permit(1)
        .await
        .map_err(|_| Failure::new(ErrorCode::ShuttingDown, "node is shutting down"))?;
    let current = shard.catalog.borrow().clone();
    let Some(meta) = current.topics.get(name).cloned() else {
        return Err(unknown_topic(name));
    };
    let mut next = (*current).clone();
    next.version += 1;
    next.topics.remove(name);
    store_catalog(shard, &next).await?;
    shard
        .broadcast_catalog(Arc::new(next))
        .await
        .map_err(|e| Failure::new(ErrorCode::StorageError, e))?;
    // Every shard has closed the partitions; the data can go, remote objects included (in the
    // background: the answer does not wait for the store).
    if let (Some(cold), true) = (shard.cold.clone(), crate::tiering::is_tiered(&meta)) {
        let prefix = crate::tiering::topic_prefix(&meta);
        let partitions = meta.partitions;
        glommio::spawn_local(async move {
            let store = cold.store();
            let p = prefix.clone();
            let result = cold
                .run(move || crate::tiering::delete_remote(&*store, &p, partitions))
                .await;
            match result {
                Ok(Ok(n)) => eprintln!("sprawl: deleted {n} object(s) under {prefix}/"),
                Ok(Err(e)) => eprintln!(
                    "sprawl: topic deleted, but its objects under {prefix}/ in {} were not all \
                     removed ({e}); delete that prefix by hand",
                    cold.describe()
                ),
                Err(_) => eprintln!(
                    "sprawl: node stopped before the objects under {prefix}/ were deleted; \
                     delete that prefix by hand"
                ),
            }
        })
        .detach();
    }
    remove_topic_data(shard, &meta).await
}

/// Removes a deleted topic's data directory (every shard closed its partitions).
pub async fn remove_topic_data(shard: &Rc<Shard>, meta: &TopicMeta) -> Result<(), Failure> {
    let dir = meta.dir(&shard.config.data_dir);
    blocking(move || match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "topic deleted but {} could not be removed: {e}",
            dir.display()
        )),
    })
    .await
    .map_err(|m| Failure::new(ErrorCode::StorageError, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(partitions: u32) -> TopicConfig {
        TopicConfig {
            partitions,
            ..TopicConfig::default()
        }
    }

    #[test]
    fn bad_settings_name_the_flag() {
        assert!(validate("t", &cfg(3), false).is_ok());
        let e = validate("t", &cfg(0), false).unwrap_err();
        assert!(e.message.contains("--partitions"), "{}", e.message);
        let mut c = cfg(1);
        c.segment_bytes = Some(10);
        let e = validate("t", &c, false).unwrap_err();
        assert!(e.message.contains("--segment-bytes"), "{}", e.message);
        let e = validate("bad name", &cfg(1), false).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn tiering_needs_a_store_and_an_uncompacted_topic() {
        let tiered = TopicConfig {
            tier_after_ms: Some(0),
            ..cfg(1)
        };
        let s = validate("t", &tiered, true).unwrap();
        assert_eq!(s.tier_after_ms, Some(0));
        let e = validate("t", &tiered, false).unwrap_err();
        assert!(e.message.contains("--s3-endpoint"), "{}", e.message);
        let compacted = TopicConfig {
            compacted: true,
            ..tiered
        };
        let e = validate("t", &compacted, true).unwrap_err();
        assert!(e.message.contains("compacted"), "{}", e.message);
        let zero = TopicConfig {
            local_retention_bytes: Some(0),
            ..cfg(1)
        };
        let e = validate("t", &zero, true).unwrap_err();
        assert!(
            e.message.contains("--local-retention-bytes"),
            "{}",
            e.message
        );
    }
}
