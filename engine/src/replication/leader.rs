//! The leader's side of ReplicaFetch (api 16): record the follower's position (which may move
//! the high watermark), then send the batches stored from its fetch offset on, exactly as they
//! are on disk, each with the leader epoch that wrote it. With nothing new the request is held up
//! to its `max_wait_ms` (long poll), answered as soon as a batch is appended.

use std::rc::Rc;
use std::time::{Duration, Instant};

use cluster::{FetchAnswer, FetchRefusal, FetchReply, FetchRequest};
use net::codec::{BatchEpoch, DivergingEpoch, ErrorCode};

use super::{watermark_moved, Role};
use crate::handlers::Failure;
use crate::partition::Partition;
use crate::shard::Shard;

/// The longest a ReplicaFetch is held when nothing new is stored.
pub const REPLICA_WAIT_MS_MAX: u32 = 1_000;

/// What the leader sends back.
#[derive(Debug)]
pub struct Served {
    pub answer: FetchAnswer,
    pub log_start_offset: u64,
    pub batch_epochs: Vec<BatchEpoch>,
    /// The batches, concatenated as on disk.
    pub batches: Vec<u8>,
}

impl Served {
    /// The answer's `diverging` field.
    pub fn diverging(&self) -> Option<DivergingEpoch> {
        match self.answer.reply {
            FetchReply::Diverging { epoch, end_offset } => {
                Some(DivergingEpoch { epoch, end_offset })
            }
            FetchReply::Records { .. } => None,
        }
    }

    /// The answer's `high_watermark` field.
    pub fn high_watermark(&self) -> u64 {
        match self.answer.reply {
            FetchReply::Records { high_watermark } => high_watermark,
            FetchReply::Diverging { .. } => 0,
        }
    }
}

fn refusal(p: &Partition, r: FetchRefusal) -> Failure {
    let code = match r {
        FetchRefusal::OffsetOutOfRange { .. } | FetchRefusal::NoLastFetchedEpoch { .. } => {
            ErrorCode::OffsetOutOfRange
        }
        _ => ErrorCode::NotLeader,
    };
    Failure::new(code, format!("{}/{}: {r}", p.topic, p.index))
}

/// Applies the fetch to the leader's state; `Err` when this node does not lead `p`.
fn on_fetch(p: &Partition, req: &FetchRequest) -> Result<FetchAnswer, Failure> {
    let now = crate::handlers::now_ms().max(0) as u64;
    let mut role = p.replica.role.borrow_mut();
    let Some(Role::Leader(l)) = &mut *role else {
        return Err(Failure::new(
            ErrorCode::NotLeader,
            format!("{}/{} is not led by this node right now", p.topic, p.index),
        ));
    };
    let before = l.high_watermark();
    let answer = l.on_fetch(req, now).map_err(|r| refusal(p, r))?;
    let moved = l.high_watermark() != before;
    drop(role);
    if moved {
        watermark_moved(p);
    }
    Ok(answer)
}

/// Answers one ReplicaFetch for `p`, a partition this shard owns.
pub async fn serve(
    shard: &Rc<Shard>,
    p: &Rc<Partition>,
    req: FetchRequest,
    max_bytes: u32,
    max_wait_ms: u32,
) -> Result<Served, Failure> {
    let mut answer = on_fetch(p, &req)?;
    // Counted once: a held fetch is applied again below to refresh its answer.
    crate::metrics::add(&p.replica.fetches_served, 1);
    if matches!(answer.reply, FetchReply::Records { .. }) && max_wait_ms > 0 {
        let deadline =
            Instant::now() + Duration::from_millis(max_wait_ms.min(REPLICA_WAIT_MS_MAX).into());
        loop {
            let seen = p.appended.generation();
            if p.log.borrow().end_offset() > req.fetch_offset
                || p.closed.get()
                || shard.stopping.get()
            {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let _ = glommio::timer::timeout(deadline - now, async {
                p.appended.changed_since(seen).await;
                Ok(())
            })
            .await;
        }
        // The position is unchanged; this refreshes the watermark sent back.
        answer = on_fetch(p, &req)?;
    }
    let log_start_offset = p.log.borrow().start_offset();
    let mut served = Served {
        answer,
        log_start_offset,
        batch_epochs: Vec::new(),
        batches: Vec::new(),
    };
    if served.diverging().is_some() {
        return Ok(served);
    }
    let read = p
        .log
        .borrow()
        .read(req.fetch_offset, max_bytes)
        .map_err(|e| crate::handlers::storage_failure(&e))?;
    let role = p.replica.role.borrow();
    let Some(Role::Leader(l)) = &*role else {
        return Err(Failure::new(
            ErrorCode::NotLeader,
            format!("{}/{} stopped being led by this node", p.topic, p.index),
        ));
    };
    let epochs = &l.local().epochs;
    let mut expected = req.fetch_offset;
    for b in &read.batches {
        let base = b.base_offset();
        let next = b.last_offset() + 1;
        // Only the contiguous run from the fetch offset: a follower appends at its log end.
        if base != expected {
            break;
        }
        let Some(epoch) = epochs.epoch_of(base) else {
            return Err(Failure::new(
                ErrorCode::Internal,
                format!(
                    "{}/{}: offset {base} has no leader epoch in the history",
                    p.topic, p.index
                ),
            ));
        };
        served.batch_epochs.push(BatchEpoch {
            epoch,
            base_offset: base,
            next_offset: next,
        });
        served.batches.extend_from_slice(b.bytes());
        expected = next;
        if served.batch_epochs.len() >= BatchEpoch::COUNT_MAX {
            break;
        }
    }
    if served.batch_epochs.is_empty() && !read.batches.is_empty() {
        return Err(Failure::new(
            ErrorCode::Internal,
            format!(
                "{}/{}: the stored batch after offset {} does not start there (compacted?)",
                p.topic, p.index, req.fetch_offset
            ),
        ));
    }
    Ok(served)
}
