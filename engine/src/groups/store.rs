//! Committed group offsets in a cluster: records of the internal compacted topic
//! [`super::OFFSETS_TOPIC`], loaded by a new coordinator and appended with `acks=all`.
//!
//! Record layout (little-endian): key = `kind: u8 = 1 | group_len: u16 | group | topic_len: u16 |
//! topic | partition: u32`, value = `next_offset: u64`; an empty value is a tombstone (the
//! commit is gone). Compaction keeps the newest record per key, so the topic holds about one
//! record per (group, topic, partition). Format notes: `docs/consumer-groups.md`.

use std::collections::HashMap;
use std::rc::Rc;

use net::codec::ErrorCode;
use storage::StorageError;

use crate::handlers::{now_ms, Failure};
use crate::partition::Partition;
use crate::runtime::blocking;
use crate::shard::Shard;

const KIND_OFFSET: u8 = 1;
/// Bytes read per step while loading.
const LOAD_READ_BYTES: u32 = 1 << 20;

/// Where a committed offset belongs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: u32,
}

impl OffsetKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 2 + self.group.len() + 2 + self.topic.len() + 4);
        out.push(KIND_OFFSET);
        for s in [&self.group, &self.topic] {
            // Group and topic names are checked to fit a u16 length before they get here.
            out.extend_from_slice(&(s.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(&self.partition.to_le_bytes());
        out
    }

    /// `None` for a key that is not an offset record (a later record kind, or damage).
    pub fn decode(buf: &[u8]) -> Option<OffsetKey> {
        let (&kind, mut rest) = buf.split_first()?;
        if kind != KIND_OFFSET {
            return None;
        }
        let mut take_str = || -> Option<String> {
            let len = usize::from(u16::from_le_bytes(rest.get(..2)?.try_into().ok()?));
            let s = std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_string();
            rest = &rest[2 + len..];
            Some(s)
        };
        let group = take_str()?;
        let topic = take_str()?;
        let partition = u32::from_le_bytes(rest.try_into().ok()?);
        Some(OffsetKey {
            group,
            topic,
            partition,
        })
    }
}

/// The committed offsets held in one partition of the offsets topic, with the log offset of the
/// record that set each (a later record always wins, whatever order appends complete in).
#[derive(Debug, Default)]
pub struct Offsets {
    map: HashMap<OffsetKey, (u64, u64)>,
}

impl Offsets {
    pub fn get(&self, key: &OffsetKey) -> Option<u64> {
        self.map.get(key).map(|(_, next)| *next)
    }

    /// Applies the record at log offset `at`; `None` = a tombstone.
    pub fn apply(&mut self, at: u64, key: OffsetKey, next: Option<u64>) {
        match (self.map.get(&key), next) {
            (Some((seen, _)), _) if *seen > at => {}
            (_, Some(n)) => {
                self.map.insert(key, (at, n));
            }
            (_, None) => {
                self.map.remove(&key);
            }
        }
    }
}

/// Reads every offset record of `p`'s log (which this node leads) up to its end when the load
/// starts. Each step takes up to [`LOAD_READ_BYTES`] of batches from the log on the reactor (no
/// borrow of the log is held across an await); their checksums and records are checked and
/// decoded on the blocking pool, where reading cold segment pages may wait for the disk.
///
/// The caller checks afterwards that it still leads at the epoch it loaded for: the log may be
/// truncated meanwhile (a lost leadership), which ends the load early.
pub async fn load(p: &Partition) -> Result<Offsets, Failure> {
    let failure = |e: StorageError| {
        Failure::new(
            ErrorCode::StorageError,
            format!("loading group offsets from {}/{}: {e}", p.topic, p.index),
        )
    };
    let mut offsets = Offsets::default();
    let (mut at, end) = {
        let log = p.log.borrow();
        (log.start_offset(), log.end_offset())
    };
    let now = now_ms();
    loop {
        let read = {
            let log = p.log.borrow();
            // Compaction may drop records below `at` meanwhile: newer ones superseded them.
            at = at.max(log.start_offset());
            if at >= end.min(log.end_offset()) {
                break;
            }
            log.read(at, LOAD_READ_BYTES).map_err(failure)?
        };
        if read.batches.is_empty() || read.next_offset <= at {
            break;
        }
        let (from, batches) = (at, read.batches);
        offsets = blocking(move || apply_batches(offsets, &batches, from, now))
            .await
            .map_err(failure)?;
        at = read.next_offset;
    }
    Ok(offsets)
}

/// Applies the offset records at or after `from` in `batches` (verified and decoded here).
fn apply_batches(
    mut offsets: Offsets,
    batches: &[storage::FetchedBatch],
    from: u64,
    now: i64,
) -> Result<Offsets, StorageError> {
    for b in batches {
        for r in b.records(from, now)? {
            let Some(key) = r.key.as_deref().and_then(OffsetKey::decode) else {
                continue;
            };
            let next = <[u8; 8]>::try_from(&r.value[..])
                .ok()
                .map(u64::from_le_bytes);
            offsets.apply(r.offset, key, next);
        }
    }
    Ok(offsets)
}

/// Appends one offset record to `p` with `acks=all` (fdatasync'd here and on the in-sync
/// replicas, below the high watermark) and returns its log offset.
pub async fn append(
    shard: &Rc<Shard>,
    p: &Rc<Partition>,
    key: &OffsetKey,
    next: u64,
) -> Result<u64, Failure> {
    let epoch =
        crate::replication::produce_gate(shard, p, true, ErrorCode::NOT_ENOUGH_REPLICAS_VERSION)
            .map_err(not_coordinator_if_moved)?;
    let key_bytes = key.encode();
    let value = next.to_le_bytes();
    let now = now_ms();
    let record = storage::Record {
        key: Some(&key_bytes),
        value: &value,
        headers: &[],
        timestamp_ms: now,
        ttl_ms: 0,
    };
    let outcome = p.log.borrow_mut().append(&[record], None, now);
    let last = match outcome {
        Ok(storage::AppendOutcome::Appended { last_offset, .. }) => {
            crate::replication::on_append(p);
            p.appended.notify_all();
            p.prepare_next_segment();
            last_offset
        }
        Ok(storage::AppendOutcome::Duplicate { last_offset, .. }) => last_offset,
        Err(e) => return Err(crate::handlers::storage_failure(&e)),
    };
    p.wait_durable(last + 1)
        .await
        .map_err(|msg| Failure::new(ErrorCode::StorageError, msg))?;
    if let Some(epoch) = epoch {
        crate::replication::wait_acks_all(
            shard,
            p,
            epoch,
            last,
            ErrorCode::NOT_ENOUGH_REPLICAS_VERSION,
        )
        .await
        .map_err(not_coordinator_if_moved)?;
    }
    Ok(last)
}

/// A partition leadership problem of the offsets topic is, for a group client, a coordinator
/// that moved.
pub fn not_coordinator_if_moved(f: Failure) -> Failure {
    if f.code == ErrorCode::NotLeader {
        Failure::new(
            ErrorCode::NotCoordinator,
            format!(
                "this node no longer coordinates the group ({}); find the coordinator again",
                f.message
            ),
        )
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_foreign_keys_are_skipped() {
        let k = OffsetKey {
            group: "billing".into(),
            topic: "orders".into(),
            partition: 7,
        };
        assert_eq!(OffsetKey::decode(&k.encode()), Some(k.clone()));
        assert_eq!(OffsetKey::decode(&[]), None);
        assert_eq!(OffsetKey::decode(&[2, 0, 0]), None);
        let mut short = k.encode();
        short.pop();
        assert_eq!(OffsetKey::decode(&short), None);
    }

    #[test]
    fn a_later_record_wins_whatever_order_it_is_applied_in() {
        let k = OffsetKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        };
        let mut o = Offsets::default();
        o.apply(10, k.clone(), Some(5));
        o.apply(8, k.clone(), Some(3));
        assert_eq!(o.get(&k), Some(5));
        o.apply(12, k.clone(), None);
        assert_eq!(o.get(&k), None);
        o.apply(13, k.clone(), Some(9));
        assert_eq!(o.get(&k), Some(9));
    }
}
