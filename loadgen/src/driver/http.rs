//! A Sprawl node through its HTTP REST API (`--target http`, broker = the node's HTTP port), so
//! HTTP publishing can be measured next to the native protocol with the same generator.
//!
//! Producers keep one HTTP/1.1 connection and pipeline up to `--window` requests on it; the node
//! answers in order, so the token of an acknowledgement is the request's sequence number. A batch
//! is one `POST /topics/{t}/messages` with base64 values and the send timestamp in the record
//! header `lg-ts` (decimal nanoseconds). Consumers long-poll
//! `GET /topics/{t}/partitions/{p}/messages`.

use std::collections::VecDeque;
use std::io::Write as _;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::conn::{find_crlf, BufConn};
use super::{
    Ack, ConsumerConn, Delivered, DriverError, Endpoint, OutRecord, ProducerConn, Target,
    SEND_TS_HEADER,
};
use crate::config::{AckLevel, ConsumeFrom};

const NAME: &str = "http";
/// Largest HTTP response this driver buffers.
const RESPONSE_BYTES_MAX: usize = 64 << 20;
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP target.
pub struct HttpTarget {
    endpoint: Endpoint,
}

impl HttpTarget {
    pub fn new(endpoint: Endpoint) -> Self {
        HttpTarget { endpoint }
    }

    fn connect(&self) -> Result<BufConn, DriverError> {
        BufConn::connect(NAME, &self.endpoint.addr, RESPONSE_BYTES_MAX)
    }
}

/// Writes one request with an optional JSON body into the connection's write buffer.
fn request(conn: &mut BufConn, method: &str, path: &str, body: Option<&str>) {
    let host = conn.addr.clone();
    let _ = write!(
        conn.write_buf,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    );
    if let Some(b) = body {
        let _ = write!(
            conn.write_buf,
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        );
    } else {
        conn.write_buf
            .extend_from_slice(b"Content-Length: 0\r\n\r\n");
    }
}

/// Reads one response before `deadline`: `Some((status, body))`, or `None` on timeout.
fn response(conn: &mut BufConn, deadline: Instant) -> Result<Option<(u16, Vec<u8>)>, DriverError> {
    loop {
        let buf = conn.buffered();
        if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let line_end = find_crlf(&buf[..head_end + 2]).unwrap_or(head_end);
            let status: u16 = head[..line_end]
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| conn.protocol("no HTTP status line"))?;
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| conn.protocol("response without Content-Length"))?;
            let total = head_end + 4 + length;
            if buf.len() >= total {
                let body = buf[head_end + 4..total].to_vec();
                conn.consume(total);
                return Ok(Some((status, body)));
            }
        }
        if !conn.fill(deadline)? {
            return Ok(None);
        }
    }
}

fn call(
    conn: &mut BufConn,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, serde_json::Value), DriverError> {
    request(conn, method, path, body);
    conn.flush()?;
    let (status, body) =
        response(conn, Instant::now() + CONTROL_TIMEOUT)?.ok_or_else(|| DriverError::Timeout {
            target: NAME,
            addr: conn.addr.clone(),
            timeout_ms: CONTROL_TIMEOUT.as_millis() as u64,
        })?;
    let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Ok((status, value))
}

impl Target for HttpTarget {
    fn server_version(&self) -> Result<String, DriverError> {
        let mut c = self.connect()?;
        let (_, v) = call(&mut c, "GET", "/status", None)?;
        Ok(format!(
            "sprawl {} (HTTP API)",
            v["version"].as_str().unwrap_or("unknown")
        ))
    }

    fn create_topic(&self) -> Result<(), DriverError> {
        let mut c = self.connect()?;
        let mut body = serde_json::json!({"name": self.endpoint.topic, "partitions": self.endpoint.partitions});
        if let Some(rf) = self.endpoint.replication_factor {
            body["replication_factor"] = rf.into();
        }
        if let Some(min) = self.endpoint.min_insync {
            body["min_insync"] = min.into();
        }
        let (status, v) = call(&mut c, "POST", "/topics", Some(&body.to_string()))?;
        match status {
            201 | 409 => Ok(()),
            _ => Err(DriverError::Refused {
                target: NAME,
                operation: "create topic",
                message: v.to_string(),
            }),
        }
    }

    fn open_producer(&self, _producer_index: u32) -> Result<Box<dyn ProducerConn>, DriverError> {
        Ok(Box::new(HttpProducer {
            conn: self.connect()?,
            path: format!("/topics/{}/messages", self.endpoint.topic),
            acks: match self.endpoint.acks {
                AckLevel::None => "none",
                AckLevel::Leader => "leader",
                AckLevel::All => "all",
            },
            next_token: 0,
            in_flight: VecDeque::new(),
        }))
    }

    fn open_consumer(
        &self,
        partitions: &[u32],
        from: ConsumeFrom,
    ) -> Result<Box<dyn ConsumerConn>, DriverError> {
        let mut conn = self.connect()?;
        let (_, v) = call(
            &mut conn,
            "GET",
            &format!("/topics/{}", self.endpoint.topic),
            None,
        )?;
        let mut next = Vec::with_capacity(partitions.len());
        for &p in partitions {
            let state = v["partition_state"]
                .as_array()
                .and_then(|a| a.iter().find(|s| s["partition"] == p))
                .ok_or_else(|| conn.protocol(format!("no state for partition {p}")))?;
            let key = match from {
                ConsumeFrom::Latest => "end_offset",
                ConsumeFrom::Earliest => "start_offset",
            };
            next.push((p, state[key].as_u64().unwrap_or(0)));
        }
        Ok(Box::new(HttpConsumer {
            conn,
            topic: self.endpoint.topic.clone(),
            next,
            turn: 0,
        }))
    }

    fn stored_records(&self) -> Result<Option<u64>, DriverError> {
        let mut c = self.connect()?;
        let (_, v) = call(
            &mut c,
            "GET",
            &format!("/topics/{}", self.endpoint.topic),
            None,
        )?;
        let total = v["partition_state"].as_array().map(|a| {
            a.iter()
                .map(|s| {
                    s["end_offset"].as_u64().unwrap_or(0) - s["start_offset"].as_u64().unwrap_or(0)
                })
                .sum()
        });
        Ok(total)
    }
}

struct HttpProducer {
    conn: BufConn,
    path: String,
    acks: &'static str,
    next_token: u64,
    in_flight: VecDeque<u64>,
}

impl ProducerConn for HttpProducer {
    fn send(
        &mut self,
        partition: u32,
        records: &[OutRecord<'_>],
    ) -> Result<Option<u64>, DriverError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let list: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let mut v = serde_json::json!({
                    "value": b64.encode(r.value),
                    "encoding": "base64",
                    "headers": {SEND_TS_HEADER: r.send_ts_ns.to_string()},
                });
                if let Some(k) = r.key {
                    v["key"] = serde_json::json!(b64.encode(k));
                }
                v
            })
            .collect();
        let body = serde_json::json!({"partition": partition, "acks": self.acks, "records": list});
        let path = self.path.clone();
        request(&mut self.conn, "POST", &path, Some(&body.to_string()));
        self.conn.flush()?;
        // The node answers every HTTP request, acks=none included (with an empty result list).
        let token = self.next_token;
        self.next_token += 1;
        self.in_flight.push_back(token);
        Ok(Some(token))
    }

    fn recv_ack(&mut self, timeout: Duration) -> Result<Option<Ack>, DriverError> {
        if self.in_flight.is_empty() {
            return Ok(None);
        }
        let Some((status, body)) = response(&mut self.conn, Instant::now() + timeout)? else {
            return Ok(None);
        };
        let token = self
            .in_flight
            .pop_front()
            .ok_or_else(|| self.conn.protocol("a response with no request in flight"))?;
        let outcome = if status == 200 {
            Ok(())
        } else {
            Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)))
        };
        Ok(Some(Ack::once(token, outcome)))
    }
}

struct HttpConsumer {
    conn: BufConn,
    topic: String,
    next: Vec<(u32, u64)>,
    turn: usize,
}

impl ConsumerConn for HttpConsumer {
    fn poll(
        &mut self,
        timeout: Duration,
        on_record: &mut dyn FnMut(Delivered),
    ) -> Result<usize, DriverError> {
        self.turn = (self.turn + 1) % self.next.len();
        let (p, offset) = self.next[self.turn];
        let wait_ms = timeout.as_millis().min(30_000) as u64;
        let path = format!(
            "/topics/{}/partitions/{p}/messages?offset={offset}&max=1000&wait_ms={wait_ms}",
            self.topic
        );
        request(&mut self.conn, "GET", &path, None);
        self.conn.flush()?;
        let deadline = Instant::now() + timeout + Duration::from_secs(5);
        let Some((status, body)) = response(&mut self.conn, deadline)? else {
            return Err(DriverError::Timeout {
                target: NAME,
                addr: self.conn.addr.clone(),
                timeout_ms: timeout.as_millis() as u64,
            });
        };
        if status != 200 {
            return Err(self
                .conn
                .protocol(format!("HTTP {status}: {}", String::from_utf8_lossy(&body))));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| self.conn.protocol(e.to_string()))?;
        let records = v["records"].as_array().map_or(&[][..], Vec::as_slice);
        for r in records {
            let value_bytes = match r["value"].as_str() {
                Some(s) if r["encoding"] == "base64" => s.len() as u64 / 4 * 3,
                Some(s) => s.len() as u64,
                None => 0,
            };
            let send_ts_ns = r["headers"][SEND_TS_HEADER]
                .as_str()
                .and_then(|t| t.parse().ok());
            on_record(Delivered {
                send_ts_ns,
                value_bytes,
            });
        }
        if let Some(n) = v["next_offset"].as_u64() {
            self.next[self.turn].1 = n;
        }
        Ok(records.len())
    }
}
