//! The follower's fetch loop for one partition: fetch from the leader the metadata names, apply
//! the answer through [`cluster::FollowerState`] (append the batches verbatim, or truncate to
//! where the logs agree), fdatasync, and report the durable offset in the next fetch (that report
//! is what moves the leader's high watermark and answers `acks=all` producers).
//!
//! One loop per followed partition, on the partition's shard; the loops of a shard share one
//! connection per leader node. The loop ends when the partition stops being a follower here.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use cluster::{BatchSpan, FetchAnswer, FetchReply, FetchRequest, Verdict};
use net::codec::{ErrorCode, Request, Response};

use super::{persist_epochs, Role};
use crate::partition::Partition;
use crate::peer::{PeerConfig, PeerConn};
use crate::shard::Shard;

/// About how many bytes of batches one fetch asks for.
pub const REPLICA_FETCH_BYTES: u32 = 1 << 20;
/// How long the leader may hold a fetch that finds nothing new.
pub const REPLICA_FETCH_WAIT_MS: u32 = 500;
/// Pause after a failed fetch (no leader, leader unreachable, refused) before the next.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Starts the fetch loop of `p` unless it runs already or `p` does not follow.
pub fn ensure_running(shard: &Rc<Shard>, p: &Rc<Partition>) {
    let following = matches!(&*p.replica.role.borrow(), Some(Role::Follower(_)));
    if !following || p.replica.fetching.get() {
        return;
    }
    p.replica.fetching.set(true);
    let (s, part) = (shard.clone(), p.clone());
    glommio::spawn_local(async move {
        run(&s, &part).await;
        part.replica.fetching.set(false);
    })
    .detach();
}

async fn run(shard: &Rc<Shard>, p: &Rc<Partition>) {
    while !p.closed.get() && !shard.stopping.get() {
        if p.replica.busy.get() {
            glommio::timer::sleep(RETRY_PAUSE).await;
            continue;
        }
        let req = match &*p.replica.role.borrow() {
            Some(Role::Follower(f)) => f.next_fetch(),
            _ => return,
        };
        let Some(req) = req else {
            // No leader right now: wait for the metadata to name one.
            glommio::timer::sleep(RETRY_PAUSE).await;
            continue;
        };
        crate::metrics::add(&p.replica.fetches_sent, 1);
        if let Err(e) = fetch_once(shard, p, req).await {
            crate::metrics::add(&p.replica.fetch_errors, 1);
            p.replica.report(p, e);
            glommio::timer::sleep(RETRY_PAUSE).await;
        }
    }
}

/// The shard's connection to the leader `node`, connecting when there is none.
async fn leader_conn(shard: &Rc<Shard>, node: u32) -> Result<Rc<PeerConn>, String> {
    let addr = shard
        .meta
        .get()
        .nodes
        .get(&u64::from(node))
        .map(|n| n.client_addr.clone())
        .ok_or_else(|| format!("leader node {node} is not in the metadata"))?;
    let held = shard.replica_conns.borrow().get(&addr).cloned();
    if let Some(c) = held.filter(|c| !c.is_closed()) {
        return Ok(c);
    }
    let config = PeerConfig {
        client_name: "sprawl-replica".into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        ..PeerConfig::default()
    };
    let c = PeerConn::connect(&addr, config)
        .await
        .map_err(|e| e.to_string())?;
    shard.replica_conns.borrow_mut().insert(addr, c.clone());
    Ok(c)
}

async fn fetch_once(shard: &Rc<Shard>, p: &Rc<Partition>, req: FetchRequest) -> Result<(), String> {
    let leader = match &*p.replica.role.borrow() {
        Some(Role::Follower(f)) => f.leader(),
        _ => None,
    };
    let Some(leader) = leader else {
        return Ok(());
    };
    let conn = leader_conn(shard, leader).await?;
    let reply = conn
        .call(&Request::ReplicaFetch {
            topic: &p.topic,
            partition: p.index,
            replica: req.replica,
            leader_epoch: req.leader_epoch,
            fetch_offset: req.fetch_offset,
            last_fetched_epoch: req.last_fetched_epoch,
            durable_offset: req.durable_offset,
            max_bytes: REPLICA_FETCH_BYTES,
            max_wait_ms: REPLICA_FETCH_WAIT_MS,
        })
        .await
        .map_err(|e| {
            shard.replica_conns.borrow_mut().remove(conn.addr());
            e.to_string()
        })?;
    let decoded = crate::handlers::decode_reply(&reply);
    let Response::ReplicaFetch {
        leader_epoch,
        fetch_offset,
        last_fetched_epoch,
        high_watermark,
        diverging,
        batch_epochs,
        batches,
        ..
    } = (match decoded {
        Ok(r) => r,
        Err(f) if f.code == ErrorCode::NotLeader => {
            // The metadata moves on its own; the next pass follows the new leader.
            return Err(format!("leader {leader} refused the fetch: {}", f.message));
        }
        Err(f) if f.code == ErrorCode::OffsetOutOfRange => {
            return rebase(&conn, p, req.fetch_offset)
                .await
                .map_err(|e| format!("{}; {e}", f.message));
        }
        Err(f) => return Err(format!("fetch from leader {leader} failed: {}", f.message)),
    })
    else {
        return Err(format!(
            "leader {leader} answered ReplicaFetch with another api"
        ));
    };
    let answer = FetchAnswer {
        leader_epoch,
        fetch_offset,
        last_fetched_epoch,
        reply: match diverging {
            Some(d) => FetchReply::Diverging {
                epoch: d.epoch,
                end_offset: d.end_offset,
            },
            None => FetchReply::Records { high_watermark },
        },
    };
    let spans: Vec<BatchSpan> = batch_epochs
        .iter()
        .map(|b| BatchSpan {
            epoch: b.epoch,
            base_offset: b.base_offset,
            next_offset: b.next_offset,
        })
        .collect();
    let blob = reply.slice_ref(batches);
    let verdict = match &mut *p.replica.role.borrow_mut() {
        Some(Role::Follower(f)) => f.on_answer(&answer, &spans),
        _ => return Ok(()),
    };
    let verdict = verdict.map_err(|e| format!("leader {leader} sent a bad answer: {e}"))?;
    match verdict {
        Verdict::Ignore(_) => Ok(()),
        Verdict::Append { epochs_changed } => {
            if epochs_changed {
                // The history reaches the disk before the batches can.
                save_history(p).await?;
            }
            append(p, &blob, &spans)?;
            if !spans.is_empty() {
                let end = p.log.borrow().end_offset();
                p.wait_durable(end).await?;
                super::on_flushed(p);
            }
            Ok(())
        }
        Verdict::Truncate { offset } => {
            truncate(p, offset).await?;
            save_history(p).await
        }
    }
}

async fn save_history(p: &Rc<Partition>) -> Result<(), String> {
    let epochs = match &*p.replica.role.borrow() {
        Some(Role::Follower(f)) => f.local().epochs.clone(),
        _ => return Ok(()),
    };
    persist_epochs(p, epochs).await
}

/// Appends the answer's batches; on failure the role is dropped so that the next reconcile pass
/// rebuilds it from what the log really holds.
fn append(p: &Rc<Partition>, blob: &Bytes, spans: &[BatchSpan]) -> Result<(), String> {
    let mut at = 0usize;
    let now = crate::handlers::now_ms();
    for span in spans {
        let result = next_batch(blob, at).and_then(|len| {
            let batch = &blob[at..at + len];
            p.log
                .borrow_mut()
                .append_replica(batch, now)
                .map_err(|e| e.to_string())?;
            Ok(len)
        });
        match result {
            Ok(len) => at += len,
            Err(e) => {
                p.replica.role.borrow_mut().take();
                return Err(format!(
                    "cannot append the leader's batch at offset {}: {e}",
                    span.base_offset
                ));
            }
        }
    }
    if at != blob.len() {
        p.replica.role.borrow_mut().take();
        return Err(format!(
            "the leader sent {} bytes after its last listed batch",
            blob.len() - at
        ));
    }
    if let (Some(first), Some(last)) = (spans.first(), spans.last()) {
        crate::metrics::add(
            &p.replica.records_replicated,
            last.next_offset - first.base_offset,
        );
        p.appended.notify_all();
        p.prepare_next_segment();
    }
    Ok(())
}

/// The length of the stored batch starting at `at` of `blob`.
fn next_batch(blob: &[u8], at: usize) -> Result<usize, String> {
    let rest = &blob[at.min(blob.len())..];
    let header = storage::format::BatchHeader::decode(rest)
        .map_err(|e| format!("batch header at byte {at}: {e}"))?;
    let len = header.batch_bytes as usize;
    if len > rest.len() {
        return Err(format!(
            "batch at byte {at} claims {len} bytes, {} left",
            rest.len()
        ));
    }
    Ok(len)
}

/// The leader no longer stores `fetch_offset` (retention removed it, or this replica is new and
/// the leader's log starts later): drop this replica's records and start the copy at the leader's
/// log start, with an empty epoch history. Only for a fetch offset below the leader's start.
async fn rebase(conn: &PeerConn, p: &Rc<Partition>, fetch_offset: u64) -> Result<(), String> {
    let reply = conn
        .call(&Request::DescribeTopic { name: &p.topic })
        .await
        .map_err(|e| e.to_string())?;
    let start = match crate::handlers::decode_reply(&reply) {
        Ok(Response::DescribeTopic {
            topic: Some(info), ..
        }) => info
            .partitions
            .iter()
            .find(|i| i.partition == p.index)
            .map(|i| i.start_offset),
        Ok(_) => None,
        Err(f) => {
            return Err(format!(
                "cannot ask the leader for its log start: {}",
                f.message
            ))
        }
    };
    let Some(start) = start.filter(|s| *s > fetch_offset) else {
        return Err("the leader's log start is not above the fetch offset".into());
    };
    p.replica.role.borrow_mut().take();
    let own_start = p.log.borrow().start_offset();
    truncate(p, own_start).await?;
    loop {
        let seen = p.flushed.generation();
        let result = p.log.borrow_mut().reset_empty_to(start);
        match result {
            Ok(()) => break,
            Err(storage::StorageError::FlushInFlight) => p.flushed.changed_since(seen).await,
            Err(e) => return Err(format!("cannot start the copy at offset {start}: {e}")),
        }
    }
    persist_epochs(p, cluster::LeaderEpochs::new()).await?;
    eprintln!(
        "sprawl: replica {}/{}: the leader's log starts at {start}; copying from there",
        p.topic, p.index
    );
    Ok(())
}

/// Cuts the log back to `offset` (waiting out a running flush).
async fn truncate(p: &Rc<Partition>, offset: u64) -> Result<(), String> {
    loop {
        let seen = p.flushed.generation();
        let result = p.log.borrow_mut().truncate_to(offset);
        match result {
            Ok(()) => {
                crate::metrics::add(&p.replica.truncations, 1);
                eprintln!(
                    "sprawl: replica {}/{}: truncated to offset {offset} to match the leader",
                    p.topic, p.index
                );
                return Ok(());
            }
            Err(storage::StorageError::FlushInFlight) => p.flushed.changed_since(seen).await,
            Err(e) => {
                p.replica.role.borrow_mut().take();
                return Err(format!("cannot truncate to offset {offset}: {e}"));
            }
        }
    }
}
