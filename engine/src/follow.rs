//! Following one partition from an offset: the loop behind push subscriptions, WebSocket and
//! Server-Sent Events. It long-polls the owning shard, goes on through a partition move (the old
//! owner answers `NOT_LEADER` until the routing table reaches this shard), ends with `NOT_LEADER`
//! when the cluster moves the partition's leadership to another node, and hands back non-empty
//! batches with the offset advanced past them.

use std::rc::Rc;
use std::time::Duration;

use net::codec::ErrorCode;

use crate::handlers::{self, Failure, ReadArgs, ReadOutcome};
use crate::shard::Shard;

/// How long one internal read long-polls.
const POLL_MS: u32 = 500;
/// Pause before retrying a read that met a partition in the middle of a move.
const MOVE_RETRY: Duration = Duration::from_millis(10);

/// A cursor on one partition.
#[derive(Debug)]
pub struct Follow {
    shard: Rc<Shard>,
    topic_id: u64,
    partition: u32,
    /// The next offset to deliver.
    pub offset: u64,
    max_bytes: u32,
}

impl Follow {
    pub fn new(
        shard: Rc<Shard>,
        topic_id: u64,
        partition: u32,
        offset: u64,
        max_bytes: u32,
    ) -> Self {
        Follow {
            shard,
            topic_id,
            partition,
            offset,
            max_bytes,
        }
    }

    /// True when the cluster metadata names another node (or none) as the partition's leader.
    fn led_elsewhere(&self) -> bool {
        let t = self
            .shard
            .catalog
            .borrow()
            .topics
            .values()
            .find(|t| t.topic_id == self.topic_id)
            .cloned();
        t.is_some_and(|t| crate::metadata::check_leader(&self.shard, &t, self.partition).is_err())
    }

    /// The next batch: at most `limit()` records, `limit` being asked once the read is back (so
    /// credits spent by another reader meanwhile count). `Ok(Next::NoCredit)` when `limit()` is 0
    /// then (nothing is delivered, the offset does not move), `Ok(Next::Stopped)` once `stop()`
    /// says so, or the failure that ends the follow (deleted topic, offset out of range, ...).
    /// Delivered records are counted in the end-to-end latency histogram.
    pub async fn next(
        &mut self,
        limit: &dyn Fn() -> usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Next, Failure> {
        loop {
            if stop() || self.shard.stopping.get() {
                return Ok(Next::Stopped);
            }
            let args = ReadArgs {
                topic_id: self.topic_id,
                partition: self.partition,
                offset: self.offset,
                max_bytes: self.max_bytes,
                wait_ms: POLL_MS,
            };
            let mut out = match handlers::read_anywhere(&self.shard, args).await {
                Ok(out) => out,
                Err(f) if f.code == ErrorCode::NotLeader => {
                    // Another node leads the partition now: the follower must go there. A move
                    // between this node's shards also answers NOT_LEADER, briefly: wait it out.
                    if self.led_elsewhere() {
                        return Err(f);
                    }
                    glommio::timer::sleep(MOVE_RETRY).await;
                    continue;
                }
                Err(f) => return Err(f),
            };
            if stop() {
                return Ok(Next::Stopped);
            }
            if out.records.is_empty() {
                continue;
            }
            let n = limit();
            if n == 0 {
                return Ok(Next::NoCredit);
            }
            out.records.truncate(n);
            self.offset = out.records.last().map_or(self.offset, |r| r.offset + 1);
            handlers::record_e2e(&self.shard, &out.records);
            return Ok(Next::Batch(out));
        }
    }
}

/// What [`Follow::next`] found.
#[derive(Debug)]
pub enum Next {
    /// Records to deliver (at least one).
    Batch(ReadOutcome),
    /// Records are there but no credit is left: wait for credit, then ask again.
    NoCredit,
    /// The caller's stop condition or the node's shutdown.
    Stopped,
}
