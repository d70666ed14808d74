//! Live subscriptions over WebSocket: `GET /ws?topic=T[&partition=P][&from=beginning|end|N]
//! [&group=G][&credits=N]`.
//!
//! The server sends one JSON text message per batch of records:
//! `{"topic", "partition", "records": [{"offset", "timestamp", "id", "key"?, "value",
//! "encoding"?}], "high_offset"}`, never more records than the client has granted credits for
//! (`credits`, default 1000). The client sends JSON text messages: `{"credit": N}` grants N more
//! records; `{"commit": {"partition": P, "offset": O}}` commits the next offset to read for the
//! group (answered `{"committed": ...}`). With `group`, a partition without `from` resumes at the
//! group's committed offset. A reconnecting client resumes with `from=N` (the `next_offset` it
//! kept) or with its group.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::Message;
use futures_util::{SinkExt, StreamExt};
use glommio::channels::local_channel;
use serde_json::{json, Value};

use super::rest::HttpError;
use crate::follow::{Follow, Next};
use crate::handlers;
use crate::notify::Notify;
use crate::shard::Shard;

/// Largest message a client may send (credits and commits are tiny).
const CLIENT_MESSAGE_BYTES_MAX: usize = 64 << 10;
/// Batches queued towards one WebSocket before the partition readers wait.
const OUTBOUND_QUEUE: usize = 64;
/// Records per message at most.
const RECORDS_PER_MESSAGE_MAX: usize = 500;

/// A validated subscription request.
#[derive(Debug, Clone)]
pub struct WsRequest {
    pub topic: String,
    pub topic_id: u64,
    /// (partition, first offset)
    pub starts: Vec<(u32, u64)>,
    pub group: Option<String>,
    pub credits: u32,
}

/// Checks the query before the upgrade, so mistakes get a plain HTTP 4xx with a message.
pub async fn parse(shard: &Rc<Shard>, q: &[(String, String)]) -> Result<WsRequest, HttpError> {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let topic = get("topic").ok_or_else(|| HttpError::bad("add ?topic=NAME to subscribe"))?;
    let (t, parts) = handlers::describe(shard, topic).await?;
    let chosen: Vec<_> = match get("partition") {
        None => parts,
        Some(p) => {
            let p: u32 = p
                .parse()
                .map_err(|_| HttpError::bad(format!("partition must be a number, not {p:?}")))?;
            let one = parts
                .into_iter()
                .find(|x| x.partition == p)
                .ok_or_else(|| {
                    HttpError::from(handlers::Failure::new(
                        net::codec::ErrorCode::UnknownPartition,
                        format!(
                            "topic {topic:?} has partitions 0..{}, not {p}",
                            t.partitions
                        ),
                    ))
                })?;
            vec![one]
        }
    };
    let group = get("group").map(str::to_string);
    let credits = match get("credits") {
        None => 1000,
        Some(c) => c
            .parse::<u32>()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| HttpError::bad("credits must be a positive integer"))?,
    };
    let mut starts = Vec::with_capacity(chosen.len());
    for p in chosen {
        let start = match get("from") {
            Some("beginning") => p.start_offset,
            Some("end") => p.end_offset,
            Some(n) => n.parse::<u64>().map_err(|_| {
                HttpError::bad(format!(
                    "from must be beginning, end or an offset, not {n:?}"
                ))
            })?,
            None => {
                let committed = match &group {
                    Some(g) => committed_offset(shard, topic, p.partition, g).await?,
                    None => None,
                };
                committed.unwrap_or(p.end_offset)
            }
        };
        starts.push((p.partition, start));
    }
    Ok(WsRequest {
        topic: t.name,
        topic_id: t.topic_id,
        starts,
        group,
        credits,
    })
}

async fn committed_offset(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    group: &str,
) -> Result<Option<u64>, HttpError> {
    super::groups::committed_offset(shard, topic, partition, group).await
}

async fn commit(shard: &Rc<Shard>, topic: &str, partition: u32, group: &str, offset: u64) -> Value {
    match super::groups::commit(shard, topic, partition, group, offset).await {
        Ok(()) => json!({"committed": {"partition": partition, "offset": offset}}),
        Err(e) => json!({"error": {"code": e.code, "message": e.message}}),
    }
}

/// Serves one WebSocket connection (handshake included) until either side closes it or the node
/// stops. A subscription that cannot be served (unknown topic, bad offset, ...) is answered with an
/// `{"error": {...}}` message and a close frame with code 1008 (policy violation).
// The handshake callback's `Result<Response, ErrorResponse>` is tungstenite's `Callback` contract.
#[allow(clippy::result_large_err)]
pub async fn serve(shard: Rc<Shard>, stream: super::Prefixed) {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(CLIENT_MESSAGE_BYTES_MAX);
    config.max_frame_size = Some(CLIENT_MESSAGE_BYTES_MAX);
    let uri = Rc::new(std::cell::RefCell::new(String::new()));
    let seen = uri.clone();
    let callback =
        move |req: &async_tungstenite::tungstenite::handshake::server::Request,
              resp: async_tungstenite::tungstenite::handshake::server::Response| {
            *seen.borrow_mut() = req.uri().to_string();
            Ok(resp)
        };
    let Ok(mut ws) =
        async_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    let q = {
        let uri = uri.borrow();
        super::routes::query_pairs(uri.split_once('?').map_or("", |(_, q)| q))
    };
    let req = match parse(&shard, &q).await {
        Ok(r) => r,
        Err(e) => {
            let msg = json!({"error": {"code": e.code, "message": e.message}});
            let _ = ws.send(Message::text(msg.to_string())).await;
            let close = async_tungstenite::tungstenite::protocol::CloseFrame {
                code: async_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Policy,
                reason: e.code.into(),
            };
            let _ = ws.close(Some(close)).await;
            return;
        }
    };
    let (mut sink, mut incoming) = ws.split();
    let credits = Rc::new(Cell::new(req.credits));
    let changed = Rc::new(Notify::default());
    let done = Rc::new(Cell::new(false));
    let (tx, rx) = local_channel::new_bounded::<String>(OUTBOUND_QUEUE);
    let tx = Rc::new(tx);
    for &(partition, start) in &req.starts {
        let (shard, tx, credits, changed, done) = (
            shard.clone(),
            tx.clone(),
            credits.clone(),
            changed.clone(),
            done.clone(),
        );
        let (topic, topic_id) = (req.topic.clone(), req.topic_id);
        glommio::spawn_local(async move {
            let mut follow = Follow::new(shard, topic_id, partition, start, 1 << 20);
            let stop = || done.get();
            while !stop() {
                if credits.get() == 0 {
                    let seen = changed.generation();
                    let _ = glommio::timer::timeout(Duration::from_millis(200), async {
                        changed.changed_since(seen).await;
                        Ok(())
                    })
                    .await;
                    continue;
                }
                let limit = || (credits.get() as usize).min(RECORDS_PER_MESSAGE_MAX);
                let out = match follow.next(&limit, &stop).await {
                    Ok(Next::Batch(out)) => out,
                    Ok(Next::NoCredit) => continue,
                    Ok(Next::Stopped) => return,
                    Err(f) => {
                        let msg = json!({"error": {"code": f.code.name(), "message": f.message, "partition": partition}});
                        let _ = tx.send(msg.to_string()).await;
                        return;
                    }
                };
                credits.set(credits.get() - out.records.len() as u32);
                let records: Vec<Value> = out
                    .records
                    .iter()
                    .map(|r| super::rest::record_json(r, topic_id, partition))
                    .collect();
                let msg = json!({"topic": topic, "partition": partition, "records": records,
                                 "next_offset": follow.offset, "high_offset": out.high_offset});
                if tx.send(msg.to_string()).await.is_err() {
                    return;
                }
            }
        })
        .detach();
    }
    let replies = tx.clone();
    drop(tx);
    let writer = glommio::spawn_local(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
        let _ = SinkExt::close(&mut sink).await;
    });
    while let Some(msg) = incoming.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t.to_string(),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if let Some(n) = v.get("credit").and_then(Value::as_u64) {
            credits.set(
                credits
                    .get()
                    .saturating_add(n.min(u64::from(u32::MAX)) as u32),
            );
            changed.notify_all();
        }
        if let (Some(group), Some(c)) = (&req.group, v.get("commit")) {
            if let (Some(p), Some(o)) = (
                c.get("partition").and_then(Value::as_u64),
                c.get("offset").and_then(Value::as_u64),
            ) {
                let answer = commit(&shard, &req.topic, p as u32, group, o).await;
                let _ = replies.send(answer.to_string()).await;
            }
        }
    }
    done.set(true);
    changed.notify_all();
    writer.cancel().await;
}
