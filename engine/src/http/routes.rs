//! `/health`, `/ready`, `/stats`, `/stats/hdr` and `/metrics`.

use std::fmt::Write as _;
use std::rc::Rc;

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use super::respond;
use crate::handlers::local_stats;
use crate::metrics::MetricsSnapshot;
use crate::shard::{CallBody, ReplyBody, Shard};
use crate::stats::{new_histogram, summary, Op, StatsSnapshot, BUCKETS_KEPT, BUCKET_S};

type Reply = Response<super::Body>;

fn error(status: u16, code: &str, message: &str) -> Reply {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    respond(status, "application/json", body.to_string())
}

fn json(v: serde_json::Value) -> Reply {
    respond(200, "application/json", v.to_string())
}

/// Parses the query string `a=1&b=2` of a request (values are not percent-decoded: topic and
/// group names need no escaping).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    query_pairs(req.uri().query().unwrap_or(""))
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `window_s` must be 1..=60 (the interval view keeps the last minute).
fn window(q: &[(String, String)]) -> Result<Option<u64>, Box<Reply>> {
    let max = BUCKET_S * BUCKETS_KEPT as u64;
    match param(q, "window_s") {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(w) if (1..=max).contains(&w) => Ok(Some(w)),
            _ => Err(Box::new(error(
                400,
                "INVALID_REQUEST",
                &format!("window_s must be a whole number of seconds from 1 to {max}, got {v:?}"),
            ))),
        },
    }
}

/// Every shard's histograms and counters.
async fn gather(shard: &Rc<Shard>, window_s: Option<u64>) -> Vec<(StatsSnapshot, MetricsSnapshot)> {
    let mut out = vec![local_stats(shard, window_s)];
    for s in (0..shard.shards).filter(|&s| s != shard.id) {
        if let Some(ReplyBody::Stats(b)) = shard.call(s, CallBody::Stats { window_s }).await {
            out.push(*b);
        }
    }
    out.sort_by_key(|(s, _)| s.shard);
    out
}

/// The node's web page: topics, latency percentiles and a live tail over WebSocket.
const PAGE: &str = include_str!("page.html");

/// Largest request body accepted (a publish of one maximal batch).
const BODY_BYTES_MAX: usize = 8 << 20;

/// An error reply; 429 and 503 carry `Retry-After` and a `retry_after` field.
fn http_error(e: super::rest::HttpError) -> Reply {
    if e.status == 429 || e.status == 503 {
        let body =
            serde_json::json!({"error": {"code": e.code, "message": e.message, "retry_after": 1}});
        let mut r = respond(e.status, "application/json", body.to_string());
        r.headers_mut()
            .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
        return r;
    }
    error(e.status, e.code, &e.message)
}

/// Reads and parses a JSON body (bounded).
async fn json_body(req: Request<Incoming>) -> Result<serde_json::Value, super::rest::HttpError> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(req.into_body(), BODY_BYTES_MAX);
    let bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return Err(super::rest::HttpError {
                status: 413,
                code: "MESSAGE_TOO_LARGE",
                message: format!("request body refused ({e}); the limit is {BODY_BYTES_MAX} bytes"),
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| super::rest::HttpError::bad(format!("the body is not valid JSON: {e}")))
}

fn answer(r: Result<serde_json::Value, super::rest::HttpError>, ok_status: u16) -> Reply {
    match r {
        Ok(v) => respond(ok_status, "application/json", v.to_string()),
        Err(e) => http_error(e),
    }
}

/// The methods a path answers (for 405 answers and their `Allow` header).
fn allowed_methods(segs: &[&str]) -> &'static str {
    match segs {
        ["topics"] => "GET, POST",
        ["topics", _] => "GET, DELETE",
        ["topics", _, "messages"]
        | ["publish"]
        | ["subscribe"]
        | ["admin", "move"]
        | ["groups", _, "topics", _, "offsets"] => "POST",
        _ => "GET",
    }
}

/// Answers one request.
pub async fn handle(shard: &Rc<Shard>, req: Request<Incoming>) -> Reply {
    use super::rest;
    let q = query(&req);
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let allow = allowed_methods(&segs);
    if !allow.split(", ").any(|m| m == method.as_str()) {
        let mut r = error(
            405,
            "METHOD_NOT_ALLOWED",
            &format!("{method} {path} is not supported (allowed: {allow}); see docs/http-api.md"),
        );
        r.headers_mut()
            .insert("allow", hyper::header::HeaderValue::from_static(allow));
        return r;
    }
    match (&method, segs.as_slice()) {
        (&Method::POST, ["admin", "move"]) => return move_partition(shard, &q).await,
        (&Method::GET, ["ws"]) => {
            return error(
                400,
                "INVALID_REQUEST",
                "GET /ws needs a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Key); use a WebSocket client",
            )
        }
        (&Method::GET, ["topics"]) => return json(rest::list_topics(shard)),
        (&Method::POST, ["topics"]) => {
            let r = match json_body(req).await {
                Ok(body) => rest::create_topic(shard, &body).await,
                Err(e) => Err(e),
            };
            return answer(r, 201);
        }
        (&Method::GET, ["topics", topic]) => {
            return answer(rest::describe_topic(shard, topic).await, 200)
        }
        (&Method::DELETE, ["topics", topic]) => {
            return answer(rest::delete_topic(shard, topic).await, 200);
        }
        (&Method::POST, ["topics", topic, "messages"]) => {
            let topic = topic.to_string();
            let r = match json_body(req).await {
                Ok(body) => rest::post_messages(shard, &topic, &body).await,
                Err(e) => Err(e),
            };
            return answer(r, 200);
        }
        (&Method::GET, ["topics", topic, "events"]) => {
            let last = req
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            return match super::sse::events(shard, topic, &q, last.as_deref()).await {
                Ok(r) => r,
                Err(e) => http_error(e),
            };
        }
        (&Method::GET, ["topics", topic, "partitions", p, "messages"]) => {
            return answer(rest::get_messages(shard, topic, p, &q).await, 200)
        }
        (&Method::GET, ["groups", group, "topics", topic, "messages"]) => {
            return answer(super::groups::read(shard, group, topic, &q).await, 200)
        }
        (&Method::POST, ["groups", group, "topics", topic, "offsets"]) => {
            let (group, topic) = (group.to_string(), topic.to_string());
            let r = match json_body(req).await {
                Ok(body) => super::groups::commit_offsets(shard, &group, &topic, &body).await,
                Err(e) => Err(e),
            };
            return answer(r, 200);
        }
        (&Method::POST, ["subscribe"]) => {
            let r = match json_body(req).await {
                Ok(body) => super::groups::subscribe(shard, &body).await,
                Err(e) => Err(e),
            };
            return answer(r, 200);
        }
        (&Method::POST, ["publish"]) => {
            let r = match json_body(req).await {
                Ok(body) => rest::compat_publish(shard, &body).await,
                Err(e) => Err(e),
            };
            return answer(r, 200);
        }
        (&Method::GET, ["status"]) => {
            let cat = crate::handlers::catalog_snapshot(shard);
            return json(serde_json::json!({
                "status": if shard.stopping.get() { "stopping" } else { "running" },
                "version": env!("CARGO_PKG_VERSION"),
                "node_id": shard.config.node_id,
                "shards": shard.shards,
                "topics": cat.topics.len(),
                "client_address": *shard.client_addr.borrow(),
            }));
        }
        _ => {}
    }
    match path.as_str() {
        "/" | "/index.html" => respond(200, "text/html; charset=utf-8", PAGE),
        "/health" => json(serde_json::json!({"status": "ok"})),
        "/ready" => {
            if shard.stopping.get() {
                error(503, "SHUTTING_DOWN", "the node is shutting down")
            } else {
                json(serde_json::json!({"ready": true, "shards": shard.shards}))
            }
        }
        "/stats" => match window(&q) {
            Ok(w) => json(stats_json(shard, &gather(shard, w).await, w)),
            Err(r) => *r,
        },
        "/stats/hdr" => {
            let w = match window(&q) {
                Ok(w) => w,
                Err(r) => return *r,
            };
            let Some(op) = param(&q, "metric").and_then(Op::from_name) else {
                return error(
                    400,
                    "INVALID_REQUEST",
                    "metric must be one of produce, fetch, e2e, fsync",
                );
            };
            let only_shard = match param(&q, "shard").map(str::parse::<usize>) {
                None => None,
                Some(Ok(s)) if s < shard.shards => Some(s),
                Some(_) => {
                    return error(
                        400,
                        "INVALID_REQUEST",
                        &format!("shard must be 0..{}", shard.shards),
                    )
                }
            };
            let mut merged = new_histogram();
            for (s, _) in gather(shard, w).await {
                if only_shard.is_some_and(|o| o != s.shard) {
                    continue;
                }
                if let Some((_, h)) = s.ops.iter().find(|(o, _)| *o == op) {
                    let _ = merged.add(h);
                }
            }
            match encode_hdr(&merged) {
                Ok(text) => respond(200, "text/plain", text),
                Err(e) => error(500, "INTERNAL", &e),
            }
        }
        "/metrics" => {
            let mut text = prometheus(shard, &gather(shard, None).await);
            if let Some(super::AnalyticsReply::Text(lines)) =
                super::analytics_from_shard0(shard, super::AnalyticsView::Prometheus).await
            {
                text.push_str(&lines);
            }
            text.push_str(&crate::membership::prometheus_from_shard0(shard).await);
            respond(200, "text/plain; version=0.0.4", text)
        }
        "/groups" => json(crate::groups::describe_all(shard).await),
        "/cluster" => match crate::membership::view_from_shard0(shard).await {
            Some(v) => json(v),
            None => error(503, "SHUTTING_DOWN", "shard 0 is shutting down; retry on another node"),
        },
        "/analytics/forecast" | "/analytics/hot" | "/analytics/anomalies"
        | "/analytics/decisions" => {
            let view = match path.as_str() {
                "/analytics/forecast" => super::AnalyticsView::Forecast,
                "/analytics/hot" => super::AnalyticsView::Hot,
                "/analytics/anomalies" => super::AnalyticsView::Anomalies,
                _ => super::AnalyticsView::Decisions,
            };
            match super::analytics_from_shard0(shard, view).await {
                Some(super::AnalyticsReply::Json(v)) => json(v),
                _ => error(
                    404,
                    "ANALYTICS_OFF",
                    "the analytics shard is off; start the node with --analytics advise or act",
                ),
            }
        }
        other => error(
            404,
            "NOT_FOUND",
            &format!("no endpoint {other}; see docs/http-api.md (try /health, /stats, /metrics, /topics)"),
        ),
    }
}

/// `POST /admin/move?topic=T&partition=P&shard=S`: move a partition to another shard, live.
async fn move_partition(shard: &Rc<Shard>, q: &[(String, String)]) -> Reply {
    let (Some(topic), Some(partition), Some(to)) = (
        param(q, "topic"),
        param(q, "partition").and_then(|v| v.parse::<u32>().ok()),
        param(q, "shard").and_then(|v| v.parse::<usize>().ok()),
    ) else {
        return error(
            400,
            "INVALID_REQUEST",
            "use POST /admin/move?topic=NAME&partition=N&shard=S with numeric partition and shard",
        );
    };
    // Moves run on shard 0, which holds the admin lock.
    let result = if shard.id == 0 {
        crate::moves::move_partition(shard, topic, partition, to).await
    } else {
        let call = CallBody::Move {
            topic: topic.to_string(),
            partition,
            to,
        };
        match shard.call(0, call).await {
            Some(ReplyBody::Moved(r)) => r,
            _ => Err(crate::handlers::Failure::new(
                net::codec::ErrorCode::ShuttingDown,
                "shard 0 is shutting down",
            )),
        }
    };
    match result {
        Ok(m) => json(serde_json::json!({
            "topic": topic,
            "partition": partition,
            "from_shard": m.from,
            "to_shard": m.to,
            "routing_version": m.version,
        })),
        Err(f) => {
            let status = match f.code {
                net::codec::ErrorCode::UnknownTopic | net::codec::ErrorCode::UnknownPartition => {
                    404
                }
                net::codec::ErrorCode::InvalidRequest => 400,
                _ => 503,
            };
            error(status, f.code.name(), &f.message)
        }
    }
}

/// HDR V2 + DEFLATE, base64: the format other HdrHistogram implementations read.
pub fn encode_hdr(h: &Histogram<u64>) -> Result<String, String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| format!("cannot serialize histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn stats_json(
    shard: &Shard,
    all: &[(StatsSnapshot, MetricsSnapshot)],
    window_s: Option<u64>,
) -> serde_json::Value {
    let mut merged: Vec<(Op, Histogram<u64>)> =
        Op::ALL.iter().map(|o| (*o, new_histogram())).collect();
    let mut topics: std::collections::BTreeMap<String, Histogram<u64>> = Default::default();
    let mut shards = Vec::new();
    for (s, _) in all {
        let mut ops = serde_json::Map::new();
        for (op, h) in &s.ops {
            ops.insert(op.name().to_string(), summary(h, window_s));
            if let Some((_, m)) = merged.iter_mut().find(|(o, _)| o == op) {
                let _ = m.add(h);
            }
        }
        for (t, h) in &s.topics {
            let _ = topics.entry(t.clone()).or_insert_with(new_histogram).add(h);
        }
        shards.push(serde_json::json!({"shard": s.shard, "ops": ops}));
    }
    let ops: serde_json::Map<String, serde_json::Value> = merged
        .iter()
        .map(|(o, h)| (o.name().to_string(), summary(h, window_s)))
        .collect();
    let topics: serde_json::Map<String, serde_json::Value> = topics
        .iter()
        .map(|(t, h)| {
            (
                t.clone(),
                serde_json::json!({"produce": summary(h, window_s)}),
            )
        })
        .collect();
    serde_json::json!({
        "node_id": shard.config.node_id,
        "window_s": window_s,
        "unit": "microseconds",
        "ops": ops,
        "shards": shards,
        "topics": topics,
    })
}

fn prometheus(shard: &Shard, all: &[(StatsSnapshot, MetricsSnapshot)]) -> String {
    let mut out = String::with_capacity(16 << 10);
    let node = shard.config.node_id;
    if let Some((_, first)) = all.first() {
        for (i, (name, _)) in first.counters.iter().enumerate() {
            let _ = writeln!(out, "# TYPE sprawl_{name} counter");
            for (_, m) in all {
                let v = m.counters.get(i).map_or(0, |c| c.1);
                let _ = writeln!(
                    out,
                    "sprawl_{name}{{node=\"{node}\",shard=\"{}\"}} {v}",
                    m.shard
                );
            }
        }
    }
    type ShardGauge = fn(&crate::metrics::MetricsSnapshot) -> u64;
    let gauges: [(&str, ShardGauge); 2] = [
        ("connections_open", |m| m.connections_open),
        ("frame_pool_bytes", |m| m.frame_pool_bytes),
    ];
    for (name, value) in gauges {
        let _ = writeln!(out, "# TYPE sprawl_{name} gauge");
        for (_, m) in all {
            let _ = writeln!(
                out,
                "sprawl_{name}{{node=\"{node}\",shard=\"{}\"}} {}",
                m.shard,
                value(m)
            );
        }
    }
    type Field = fn(&crate::metrics::PartitionMetrics) -> u64;
    let fields: [(&str, &str, Field); 16] = [
        ("partition_records_in_total", "counter", |p| p.records_in),
        ("partition_bytes_in_total", "counter", |p| p.bytes_in),
        ("partition_records_out_total", "counter", |p| p.records_out),
        ("partition_bytes_out_total", "counter", |p| p.bytes_out),
        ("partition_end_offset", "gauge", |p| p.end_offset),
        ("partition_durable_offset", "gauge", |p| p.durable_offset),
        ("partition_segments", "gauge", |p| p.segments),
        ("partition_disk_bytes", "gauge", |p| p.bytes_on_disk),
        ("partition_fsyncs_total", "counter", |p| p.flushes),
        ("ring_hits_total", "counter", |p| p.ring_hits),
        ("ring_misses_total", "counter", |p| p.ring_misses),
        ("ring_bytes", "gauge", |p| p.ring_bytes),
        ("partition_segment_rolls_total", "counter", |p| p.rolls),
        ("partition_sync_segment_creations_total", "counter", |p| {
            p.sync_fallbacks
        }),
        ("partition_inline_reserves_total", "counter", |p| {
            p.inline_reserves
        }),
        ("partition_prefault_windows_total", "counter", |p| {
            p.prefaults
        }),
    ];
    for (name, kind, get) in fields {
        let _ = writeln!(out, "# TYPE sprawl_{name} {kind}");
        for (_, m) in all {
            for p in &m.partitions {
                let _ = writeln!(
                    out,
                    "sprawl_{name}{{node=\"{node}\",topic=\"{}\",partition=\"{}\"}} {}",
                    p.topic,
                    p.partition,
                    get(p)
                );
            }
        }
    }
    if let Some(cold) = &shard.cold {
        cold.render_metrics(&mut out, node);
        let tiered: Vec<_> = all
            .iter()
            .flat_map(|(_, m)| &m.partitions)
            .filter_map(|p| Some((p.topic.as_str(), p.partition, p.tier.as_ref()?)))
            .collect();
        crate::tiering::render_metrics(&mut out, node, &tiered);
    }
    let replicas: Vec<_> = all
        .iter()
        .flat_map(|(_, m)| &m.partitions)
        .filter_map(|p| Some((p.topic.as_str(), p.partition, p.replica.as_ref()?)))
        .collect();
    if !replicas.is_empty() {
        crate::replication::render_metrics(&mut out, node, &replicas);
    }
    let _ = writeln!(out, "# TYPE sprawl_latency_us summary");
    for op in Op::ALL {
        let mut h = new_histogram();
        for (s, _) in all {
            if let Some((_, x)) = s.ops.iter().find(|(o, _)| *o == op) {
                let _ = h.add(x);
            }
        }
        for q in [0.5, 0.9, 0.99, 0.999, 0.9999] {
            let v = if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            };
            let _ = writeln!(
                out,
                "sprawl_latency_us{{node=\"{node}\",op=\"{}\",quantile=\"{q}\"}} {v}",
                op.name()
            );
        }
        let _ = writeln!(
            out,
            "sprawl_latency_us_sum{{node=\"{node}\",op=\"{}\"}} {}",
            op.name(),
            (h.mean() * h.len() as f64).round() as u64
        );
        let _ = writeln!(
            out,
            "sprawl_latency_us_count{{node=\"{node}\",op=\"{}\"}} {}",
            op.name(),
            h.len()
        );
    }
    out
}
