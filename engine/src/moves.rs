//! Moving a partition to another shard of this node while it is in use.
//!
//! Run on shard 0 under the admin lock: the current owner flushes and closes the partition
//! (`Release`), then a routing table with a bumped version and the override is applied on every
//! shard; the new owner opens the partition (recovering from the flushed files) before it routes
//! by the new table. Requests that reach the old owner in between get `NOT_LEADER`, which clients
//! retry; idempotent producers keep their batches exactly once and in order across the move
//! (a batch overtaken by a later one is refused as out of sequence and resent in order).

use std::rc::Rc;
use std::sync::Arc;

use net::codec::ErrorCode;

use crate::handlers::{resolve, Failure};
use crate::shard::{CallBody, ReplyBody, Routing, Shard};

/// Moves `topic`/`partition` to shard `to`. A no-op when it is already there.
pub async fn move_partition(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    to: usize,
) -> Result<MoveOutcome, Failure> {
    if to >= shard.shards {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            format!("shard must be 0..{}, got {to}", shard.shards),
        ));
    }
    let _guard = shard
        .admin_lock
        .acquire_permit(1)
        .await
        .map_err(|_| Failure::new(ErrorCode::ShuttingDown, "node is shutting down"))?;
    let t = resolve(shard, topic, partition)?;
    if crate::metadata::replication_of(shard, &t).0 > 1 {
        // The leader or follower state lives on the owning shard; a move would drop it and make
        // the node ask the cluster for a new election.
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            format!(
                "partition {topic}/{partition} is replicated; replicated partitions do not move \
                 between shards yet"
            ),
        ));
    }
    let from = shard.owner(t.topic_id, partition);
    if from == to {
        return Ok(MoveOutcome {
            from,
            to,
            version: shard.routing.borrow().version,
        });
    }
    let released = if from == shard.id {
        shard.release(t.topic_id, partition).await
    } else {
        match shard
            .call(
                from,
                CallBody::Release {
                    topic_id: t.topic_id,
                    partition,
                },
            )
            .await
        {
            Some(ReplyBody::Done(r)) => r,
            _ => Err(format!("shard {from} did not answer")),
        }
    };
    released.map_err(|e| Failure::new(ErrorCode::Internal, e))?;
    let mut next: Routing = (**shard.routing.borrow()).clone();
    next.version += 1;
    next.overrides.insert((t.topic_id, partition), to);
    let version = next.version;
    let next = Arc::new(next);
    let mut errors = Vec::new();
    // The destination first, so it serves as early as possible; then everyone else.
    let order = std::iter::once(to).chain((0..shard.shards).filter(|&s| s != to));
    for s in order {
        let r = if s == shard.id {
            shard.apply_routing(next.clone()).await
        } else {
            match shard.call(s, CallBody::ApplyRouting(next.clone())).await {
                Some(ReplyBody::Done(r)) => r,
                _ => Err(format!("shard {s} did not answer")),
            }
        };
        if let Err(e) = r {
            errors.push(format!("shard {s}: {e}"));
        }
    }
    if !errors.is_empty() {
        return Err(Failure::new(ErrorCode::StorageError, errors.join("; ")));
    }
    Ok(MoveOutcome { from, to, version })
}

/// What a move did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveOutcome {
    pub from: usize,
    pub to: usize,
    /// Routing table version after the move.
    pub version: u64,
}
