//! Server-Sent Events: `GET /topics/{t}/events[?partition=P][&from=beginning|end|N]`.
//!
//! One event per record: `event: record`, `data:` the record as JSON (as in the read endpoint,
//! plus `partition`), and `id:` the cursor of every followed partition after this record
//! (`0:13,1:7`: the next offset to read per partition). A client that reconnects with the standard
//! `Last-Event-ID` header resumes exactly where it stopped, across all partitions. There are no
//! credits: the body is written only as fast as the client reads it (a bounded queue between the
//! partition readers and the socket), and a comment line every 15 s keeps idle streams open.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::channels::local_channel;

use super::rest::{record_json, HttpError};
use super::Body;
use crate::follow::{Follow, Next};
use crate::handlers;
use crate::shard::Shard;

/// Chunks queued towards one stream before the partition readers wait.
const QUEUE_CHUNKS: usize = 64;
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Parses a `Last-Event-ID` cursor (`0:13,1:7`).
pub fn parse_cursor(s: &str) -> Option<BTreeMap<u32, u64>> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|pair| {
            let (p, o) = pair.split_once(':')?;
            Some((p.trim().parse().ok()?, o.trim().parse().ok()?))
        })
        .collect()
}

fn render_cursor(c: &BTreeMap<u32, u64>) -> String {
    c.iter()
        .map(|(p, o)| format!("{p}:{o}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Opens an event stream for `topic`.
pub async fn events(
    shard: &Rc<Shard>,
    topic: &str,
    q: &[(String, String)],
    last_event_id: Option<&str>,
) -> Result<hyper::Response<Body>, HttpError> {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (t, parts) = handlers::describe(shard, topic).await?;
    let only: Option<u32> = match get("partition") {
        None => None,
        Some(p) => Some(
            p.parse()
                .map_err(|_| HttpError::bad(format!("partition must be a number, not {p:?}")))?,
        ),
    };
    let resume = match last_event_id {
        Some(id) => Some(parse_cursor(id).ok_or_else(|| {
            HttpError::bad(format!(
                "Last-Event-ID {id:?} is not a cursor like 0:13,1:7 (partition:next offset)"
            ))
        })?),
        None => None,
    };
    let mut cursor = BTreeMap::new();
    for p in parts
        .iter()
        .filter(|p| only.is_none_or(|o| o == p.partition))
    {
        let start = match (
            resume.as_ref().and_then(|r| r.get(&p.partition)),
            get("from"),
        ) {
            (Some(o), _) => *o,
            (None, Some("beginning")) => p.start_offset,
            (None, None | Some("end")) => p.end_offset,
            (None, Some(n)) => n.parse().map_err(|_| {
                HttpError::bad(format!(
                    "from must be beginning, end or an offset, not {n:?}"
                ))
            })?,
        };
        cursor.insert(p.partition, start);
    }
    if cursor.is_empty() {
        return Err(HttpError::from(handlers::Failure::new(
            net::codec::ErrorCode::UnknownPartition,
            format!("topic {topic:?} has partitions 0..{}", t.partitions),
        )));
    }
    let cursor = Rc::new(RefCell::new(cursor));
    let (tx, rx) = local_channel::new_bounded::<Bytes>(QUEUE_CHUNKS);
    let tx = Rc::new(tx);
    let done = Rc::new(Cell::new(false));
    let starts: Vec<(u32, u64)> = cursor.borrow().iter().map(|(p, o)| (*p, *o)).collect();
    for (partition, start) in starts {
        let (shard, tx, cursor, done) = (shard.clone(), tx.clone(), cursor.clone(), done.clone());
        let topic_id = t.topic_id;
        glommio::spawn_local(async move {
            let mut follow = Follow::new(shard, topic_id, partition, start, 1 << 20);
            let stop = || done.get();
            loop {
                let out = match follow.next(&|| usize::MAX, &stop).await {
                    Ok(Next::Batch(out)) => out,
                    Ok(Next::NoCredit) => continue,
                    Ok(Next::Stopped) => return,
                    Err(f) => {
                        let data = serde_json::json!({"code": f.code.name(), "message": f.message});
                        let _ = tx
                            .send(Bytes::from(format!("event: error\ndata: {data}\n\n")))
                            .await;
                        done.set(true);
                        return;
                    }
                };
                let mut chunk = String::new();
                for r in &out.records {
                    cursor.borrow_mut().insert(partition, r.offset + 1);
                    let mut v = record_json(r, topic_id, partition);
                    v["partition"] = serde_json::json!(partition);
                    let id = render_cursor(&cursor.borrow());
                    chunk.push_str(&format!("id: {id}\nevent: record\ndata: {v}\n\n"));
                }
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    done.set(true);
                    return;
                }
            }
        })
        .detach();
    }
    {
        let (tx, done, shard) = (tx.clone(), done.clone(), shard.clone());
        glommio::spawn_local(async move {
            while !done.get() && !shard.stopping.get() {
                glommio::timer::sleep(KEEPALIVE).await;
                if tx
                    .send(Bytes::from_static(b": keepalive\n\n"))
                    .await
                    .is_err()
                {
                    done.set(true);
                }
            }
        })
        .detach();
    }
    drop(tx);
    // When the client goes away hyper drops the body, the receiver with it, and every sender
    // above fails and stops.
    let stream = futures_lite::stream::unfold(rx, |rx| async move {
        let chunk = rx.recv().await?;
        Some((chunk, rx))
    });
    let body = Body::Stream(Box::pin(stream));
    hyper::Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(body)
        .map_err(|e| HttpError::bad(format!("cannot build the response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = parse_cursor("0:13,1:7").unwrap();
        assert_eq!(c.get(&0), Some(&13));
        assert_eq!(render_cursor(&c), "0:13,1:7");
        assert!(parse_cursor("0-13").is_none());
        assert!(parse_cursor("x:1").is_none());
    }
}
