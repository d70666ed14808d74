//! Consumer-group reads over plain HTTP, and the earlier system's `POST /subscribe`, which here
//! creates a subscription that really delivers.
//!
//! - `GET /groups/{g}/topics/{t}/messages[?max=100][&wait_ms=0][&partition=P][&commit=true]`
//!   reads from the group's committed offsets (a partition the group never committed starts at
//!   its end). Without `commit=true` nothing is committed: the client commits what it processed
//!   with the `next_offsets` it got (at-least-once); with it, the offsets advance as the answer is
//!   built (at-most-once).
//! - `POST /groups/{g}/topics/{t}/offsets {"offsets": {"0": 12, "1": 7}}` commits next offsets.
//! - `POST /subscribe {"topic", "group"?, "from"?: "beginning" | "end"}` fixes the group's
//!   position now (committing `from`, default `end`, for every partition it has not committed) and
//!   answers with where to read: the group read above, the WebSocket and the event stream. Every
//!   record published after the subscription is delivered there.

use std::rc::Rc;

use net::codec::{ErrorCode, Request, Response};
use serde_json::{json, Value};

use super::rest::{call_owner, call_shard, decode_reply, record_json, HttpError};
use crate::handlers::{self, Failure, ReadArgs};
use crate::shard::Shard;

/// Longest group name.
const GROUP_BYTES_MAX: usize = crate::offsets::CONSUMER_NAME_BYTES_MAX;

fn check_group(g: &str) -> Result<(), HttpError> {
    if g.is_empty() || g.len() > GROUP_BYTES_MAX {
        return Err(HttpError::bad(format!(
            "group names are 1 to {GROUP_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

/// A group's committed next offset for a partition, through the partition's owner.
pub async fn committed_offset(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    group: &str,
) -> Result<Option<u64>, HttpError> {
    let req = Request::OffsetFetch {
        consumer: group,
        topic,
        partition,
    };
    let reply = call_for_group(shard, group, topic, partition, req).await?;
    match decode_reply(&reply)? {
        Response::OffsetFetch { offset, .. } => Ok(offset),
        other => {
            Err(Failure::new(ErrorCode::Internal, format!("unexpected reply {other:?}")).into())
        }
    }
}

/// Commits a group's next offset for a partition (fdatasync'd before it returns).
pub async fn commit(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    group: &str,
    offset: u64,
) -> Result<(), HttpError> {
    let req = Request::OffsetCommit {
        consumer: group,
        topic,
        partition,
        offset,
        member_id: "",
        generation: 0,
    };
    let reply = call_for_group(shard, group, topic, partition, req).await?;
    decode_reply(&reply).map(drop)
}

/// Sends an offset request where the group's offsets live: the group's coordinator shard in a
/// cluster (which answers NOT_COORDINATOR when another node coordinates the group), the
/// partition's shard on a single node.
async fn call_for_group(
    shard: &Rc<Shard>,
    group: &str,
    topic: &str,
    partition: u32,
    req: Request<'_>,
) -> Result<bytes::Bytes, HttpError> {
    if crate::groups::offsets_at_coordinator(shard, "") {
        let to = crate::groups::target_shard(shard, group)?;
        call_shard(shard, to, req).await
    } else {
        call_owner(shard, topic, partition, req).await
    }
}

fn query_u64(q: &[(String, String)], k: &str, default: u64) -> Result<u64, HttpError> {
    match q.iter().find(|(n, _)| n == k) {
        None => Ok(default),
        Some((_, v)) => v
            .parse()
            .map_err(|_| HttpError::bad(format!("{k} must be a non-negative integer, not {v:?}"))),
    }
}

/// `GET /groups/{g}/topics/{t}/messages`.
pub async fn read(
    shard: &Rc<Shard>,
    group: &str,
    topic: &str,
    q: &[(String, String)],
) -> Result<Value, HttpError> {
    check_group(group)?;
    let (t, parts) = handlers::describe(shard, topic).await?;
    let max = query_u64(q, "max", 100)?;
    if !(1..=10_000).contains(&max) {
        return Err(HttpError::bad(format!("max must be 1 to 10000, got {max}")));
    }
    let wait_ms = query_u64(q, "wait_ms", 0)?;
    if wait_ms > u64::from(handlers::FETCH_WAIT_MS_MAX) {
        return Err(HttpError::bad(format!(
            "wait_ms must be at most {}",
            handlers::FETCH_WAIT_MS_MAX
        )));
    }
    let only = match q.iter().find(|(n, _)| n == "partition") {
        None => None,
        Some((_, v)) => Some(
            v.parse::<u32>()
                .map_err(|_| HttpError::bad(format!("partition must be a number, not {v:?}")))?,
        ),
    };
    let auto_commit = q.iter().any(|(n, v)| n == "commit" && v == "true");
    let chosen: Vec<_> = parts
        .iter()
        .filter(|p| only.is_none_or(|o| o == p.partition))
        .collect();
    if chosen.is_empty() {
        return Err(Failure::new(
            ErrorCode::UnknownPartition,
            format!("topic {topic:?} has partitions 0..{}", t.partitions),
        )
        .into());
    }
    let mut records = Vec::new();
    let mut next = serde_json::Map::new();
    let mut left = max as usize;
    // Only the first partition read may wait: the others answer with what they have.
    let mut wait = wait_ms as u32;
    for p in chosen {
        let start = committed_offset(shard, topic, p.partition, group)
            .await?
            .unwrap_or(p.end_offset)
            .max(p.start_offset);
        let mut offset = start;
        if left > 0 {
            let args = ReadArgs {
                topic_id: t.topic_id,
                partition: p.partition,
                offset,
                max_bytes: 4 << 20,
                wait_ms: wait,
            };
            let mut out = handlers::read_anywhere(shard, args).await?;
            out.records.truncate(left);
            left -= out.records.len();
            if !out.records.is_empty() {
                wait = 0;
            }
            handlers::record_e2e(shard, &out.records);
            for r in &out.records {
                let mut v = record_json(r, t.topic_id, p.partition);
                v["partition"] = json!(p.partition);
                records.push(v);
                offset = r.offset + 1;
            }
        }
        if auto_commit && offset != start {
            commit(shard, topic, p.partition, group, offset).await?;
        }
        next.insert(p.partition.to_string(), json!(offset));
    }
    Ok(json!({"group": group, "topic": topic, "records": records,
              "next_offsets": next, "committed": auto_commit}))
}

/// `POST /groups/{g}/topics/{t}/offsets {"offsets": {"P": next_offset}}`.
pub async fn commit_offsets(
    shard: &Rc<Shard>,
    group: &str,
    topic: &str,
    body: &Value,
) -> Result<Value, HttpError> {
    check_group(group)?;
    let offsets = body
        .get("offsets")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            HttpError::bad("body needs \"offsets\": {\"PARTITION\": NEXT_OFFSET, ...}")
        })?;
    let mut done = serde_json::Map::new();
    for (p, o) in offsets {
        let partition: u32 = p
            .parse()
            .map_err(|_| HttpError::bad(format!("partition keys are numbers, not {p:?}")))?;
        let offset = o
            .as_u64()
            .ok_or_else(|| HttpError::bad(format!("offset of partition {p} must be an integer")))?;
        commit(shard, topic, partition, group, offset).await?;
        done.insert(p.clone(), json!(offset));
    }
    Ok(json!({"group": group, "topic": topic, "committed": done}))
}

/// `POST /subscribe` of the earlier system.
pub async fn subscribe(shard: &Rc<Shard>, body: &Value) -> Result<Value, HttpError> {
    let topic = body
        .get("topic")
        .and_then(Value::as_str)
        .ok_or_else(|| HttpError::bad("body needs \"topic\""))?;
    let group = match body.get("group") {
        None | Some(Value::Null) => format!("sub-{:016x}", crate::catalog::new_topic_id()),
        Some(Value::String(g)) => g.clone(),
        Some(_) => return Err(HttpError::bad("group must be a string")),
    };
    check_group(&group)?;
    let from_beginning = match body.get("from") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "end" => false,
        Some(Value::String(f)) if f == "beginning" => true,
        Some(_) => return Err(HttpError::bad("from must be \"beginning\" or \"end\"")),
    };
    let (_, parts) = handlers::describe(shard, topic).await?;
    for p in &parts {
        if committed_offset(shard, topic, p.partition, &group)
            .await?
            .is_none()
        {
            let at = if from_beginning {
                p.start_offset
            } else {
                p.end_offset
            };
            commit(shard, topic, p.partition, &group, at).await?;
        }
    }
    Ok(json!({
        "subscription": group,
        "topic": topic,
        "read": format!("/groups/{group}/topics/{topic}/messages"),
        "commit": format!("/groups/{group}/topics/{topic}/offsets"),
        "websocket": format!("/ws?topic={topic}&group={group}"),
        "events": format!("/topics/{topic}/events"),
    }))
}
