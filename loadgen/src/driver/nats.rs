//! NATS JetStream over the NATS text protocol (no client library, no async runtime). One
//! JetStream stream named after the topic with subjects `<topic>.<partition>`. Producers
//! publish with a reply subject per batch and count the JetStream PubAcks; consumers create one
//! ephemeral push consumer per partition (`ack_policy: none`). The send timestamp travels in the
//! `lg-ts` header (decimal nanoseconds).
//!
//! `--acks leader` waits for the PubAck (file storage: D1, NATS's default); `--acks none`
//! publishes without a reply subject; `--acks all` is refused: fsync-before-ack is a server
//! setting (`sync_interval: always`, NATS 2.10+).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::conn::{find_crlf, BufConn};
use super::{Ack, ConsumerConn, Delivered, DriverError, Endpoint, OutRecord, ProducerConn, Target};
use crate::config::{AckLevel, ConsumeFrom};

const TARGET: &str = "nats";
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// One operation received from the server, borrowing the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Info(&'a [u8]),
    Msg {
        subject: &'a [u8],
        sid: u64,
        headers: &'a [u8],
        payload: &'a [u8],
    },
    Ping,
    Pong,
    Ok,
    Err(&'a [u8]),
}

/// Decodes one operation from the front of `bytes`: `Ok(None)` when more bytes are needed.
pub fn decode_op(bytes: &[u8]) -> Result<Option<(Op<'_>, usize)>, String> {
    let Some(line_end) = find_crlf(bytes) else {
        return Ok(None);
    };
    let line = &bytes[..line_end];
    let after = line_end + 2;
    let mut words = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty());
    let verb = words.next().unwrap_or_default();
    let number = |w: Option<&[u8]>| -> Result<usize, String> {
        w.and_then(|w| std::str::from_utf8(w).ok())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad number in {:?}", String::from_utf8_lossy(line)))
    };
    let op = match verb.to_ascii_uppercase().as_slice() {
        b"PING" => Op::Ping,
        b"PONG" => Op::Pong,
        b"+OK" => Op::Ok,
        b"-ERR" => Op::Err(line.get(5..).unwrap_or_default()),
        b"INFO" => Op::Info(line.get(5..).unwrap_or_default()),
        verb @ (b"MSG" | b"HMSG") => {
            let rest: Vec<&[u8]> = words.collect();
            let with_headers = verb == b"HMSG";
            let sizes = if with_headers { 2 } else { 1 };
            if rest.len() < 2 + sizes || rest.len() > 3 + sizes {
                return Err(format!("malformed {:?}", String::from_utf8_lossy(line)));
            }
            let subject = rest[0];
            let sid = number(Some(rest[1]))? as u64;
            let total = number(rest.last().copied())?;
            let header_len = if with_headers {
                number(Some(rest[rest.len() - 2]))?
            } else {
                0
            };
            if header_len > total || total > MESSAGE_BYTES_MAX {
                return Err(format!("bad sizes in {:?}", String::from_utf8_lossy(line)));
            }
            if bytes.len() < after + total + 2 {
                return Ok(None);
            }
            let body = &bytes[after..after + total];
            let op = Op::Msg {
                subject,
                sid,
                headers: &body[..header_len],
                payload: &body[header_len..],
            };
            return Ok(Some((op, after + total + 2)));
        }
        _ => {
            return Err(format!(
                "unknown operation {:?}",
                String::from_utf8_lossy(line)
            ))
        }
    };
    Ok(Some((op, after)))
}

/// The value of header `name` in a NATS header block.
pub fn header<'a>(headers: &'a [u8], name: &str) -> Option<&'a [u8]> {
    headers.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name.as_bytes())
            .then(|| line[colon + 1..].trim_ascii())
    })
}

/// A connection that has done the INFO/CONNECT/PING handshake.
struct NatsConn {
    conn: BufConn,
    info: Value,
}

static CONNECTION_SEQ: AtomicU64 = AtomicU64::new(0);

fn inbox(kind: &str) -> String {
    let n = CONNECTION_SEQ.fetch_add(1, Ordering::Relaxed);
    format!("_INBOX.lg{kind}.{}.{n}", std::process::id())
}

impl NatsConn {
    fn connect(addr: &str) -> Result<Self, DriverError> {
        let conn = BufConn::connect(TARGET, addr, MESSAGE_BYTES_MAX + 4096)?;
        let mut nats = NatsConn {
            conn,
            info: Value::Null,
        };
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        let info = nats.next(deadline, |op| match op {
            Op::Info(json) => Ok(serde_json::from_slice::<Value>(json).unwrap_or(Value::Null)),
            other => Err(format!("expected INFO, got {other:?}")),
        })?;
        nats.info = nats
            .expect(info)?
            .map_err(|reason| nats.conn.protocol(reason))?;
        let connect = json!({"verbose": false, "pedantic": false, "headers": true, "no_responders": true,
            "name": "loadgen", "lang": "rust", "version": env!("CARGO_PKG_VERSION"), "protocol": 1});
        nats.conn
            .write_buf
            .extend_from_slice(format!("CONNECT {connect}\r\nPING\r\n").as_bytes());
        nats.conn.flush()?;
        loop {
            let op = nats.next(deadline, |op| match op {
                Op::Pong => Ok(true),
                Op::Err(e) => Err(String::from_utf8_lossy(e).into_owned()),
                _ => Ok(false),
            })?;
            match nats.expect(op)? {
                Ok(true) => return Ok(nats),
                Ok(false) => {}
                Err(message) => {
                    return Err(DriverError::Refused {
                        target: TARGET,
                        operation: "CONNECT",
                        message,
                    })
                }
            }
        }
    }

    fn expect<T>(&self, value: Option<T>) -> Result<T, DriverError> {
        value.ok_or_else(|| DriverError::Timeout {
            target: TARGET,
            addr: self.conn.addr.clone(),
            timeout_ms: CONTROL_TIMEOUT.as_millis() as u64,
        })
    }

    /// The next operation other than PING (answered here), handed to `f`; `None` on timeout.
    fn next<T>(
        &mut self,
        deadline: Instant,
        mut f: impl FnMut(Op<'_>) -> T,
    ) -> Result<Option<T>, DriverError> {
        loop {
            let decoded = decode_op(self.conn.buffered());
            match decoded {
                Ok(Some((Op::Ping, used))) => {
                    self.conn.consume(used);
                    self.conn.write_buf.extend_from_slice(b"PONG\r\n");
                    self.conn.flush()?;
                }
                Ok(Some((op, used))) => {
                    let value = f(op);
                    self.conn.consume(used);
                    return Ok(Some(value));
                }
                Ok(None) => {
                    if !self.conn.fill(deadline)? {
                        return Ok(None);
                    }
                }
                Err(reason) => return Err(self.conn.protocol(reason)),
            }
        }
    }

    /// A JetStream API request: publishes `body` to `subject` and returns the JSON reply.
    fn request(
        &mut self,
        subject: &str,
        body: &Value,
        operation: &'static str,
    ) -> Result<Value, DriverError> {
        let reply_to = inbox("ctl");
        let payload = body.to_string();
        self.conn.write_buf.extend_from_slice(
            format!(
                "SUB {reply_to} 999\r\nUNSUB 999 1\r\nPUB {subject} {reply_to} {}\r\n{payload}\r\n",
                payload.len()
            )
            .as_bytes(),
        );
        self.conn.flush()?;
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        loop {
            let op = self.next(deadline, |op| match op {
                Op::Msg {
                    sid: 999,
                    headers,
                    payload,
                    ..
                } => {
                    if header_status(headers) == Some(503) {
                        Some(Err(
                            "no responders: is JetStream enabled (nats-server -js)?".to_owned(),
                        ))
                    } else {
                        Some(serde_json::from_slice::<Value>(payload).map_err(|e| e.to_string()))
                    }
                }
                Op::Err(e) => Some(Err(String::from_utf8_lossy(e).into_owned())),
                _ => None,
            })?;
            match self.expect(op)? {
                None => {}
                Some(Ok(reply)) => {
                    if let Some(error) = reply.get("error") {
                        return Err(DriverError::Refused {
                            target: TARGET,
                            operation,
                            message: error.to_string(),
                        });
                    }
                    return Ok(reply);
                }
                Some(Err(message)) => {
                    return Err(DriverError::Refused {
                        target: TARGET,
                        operation,
                        message,
                    })
                }
            }
        }
    }
}

/// The status code of a `NATS/1.0 <code>` header block.
fn header_status(headers: &[u8]) -> Option<u16> {
    let first = headers.split(|&b| b == b'\r').next()?;
    let code = first.strip_prefix(b"NATS/1.0")?.trim_ascii();
    std::str::from_utf8(code.get(..3)?).ok()?.parse().ok()
}

pub struct NatsTarget {
    endpoint: Endpoint,
}

impl NatsTarget {
    pub fn new(endpoint: Endpoint) -> Self {
        NatsTarget { endpoint }
    }
}

impl Target for NatsTarget {
    fn server_version(&self) -> Result<String, DriverError> {
        let nats = NatsConn::connect(&self.endpoint.addr)?;
        Ok(nats
            .info
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned())
    }

    /// Deletes and re-creates the stream (file storage) so the run starts empty.
    fn create_topic(&self) -> Result<(), DriverError> {
        let mut nats = NatsConn::connect(&self.endpoint.addr)?;
        let topic = &self.endpoint.topic;
        // A missing stream is fine here.
        let _ = nats.request(
            &format!("$JS.API.STREAM.DELETE.{topic}"),
            &json!({}),
            "stream delete",
        );
        let config = json!({"name": topic, "subjects": [format!("{topic}.*")], "storage": "file", "num_replicas": 1});
        nats.request(
            &format!("$JS.API.STREAM.CREATE.{topic}"),
            &config,
            "stream create",
        )?;
        Ok(())
    }

    fn open_producer(&self, _producer_index: u32) -> Result<Box<dyn ProducerConn>, DriverError> {
        if self.endpoint.acks == AckLevel::All {
            return Err(DriverError::Unsupported {
                target: TARGET,
                what: "--acks all (fsync before ack is the server's sync_interval setting)",
            });
        }
        let mut nats = NatsConn::connect(&self.endpoint.addr)?;
        let reply_prefix = inbox("p");
        nats.conn
            .write_buf
            .extend_from_slice(format!("SUB {reply_prefix}.* 1\r\n").as_bytes());
        nats.conn.flush()?;
        let subjects = (0..self.endpoint.partitions)
            .map(|p| format!("{}.{p}", self.endpoint.topic))
            .collect();
        Ok(Box::new(NatsProducer {
            nats,
            subjects,
            reply_prefix,
            with_acks: self.endpoint.acks == AckLevel::Leader,
            next_token: 0,
            in_flight: HashMap::with_capacity(2 * self.endpoint.window as usize),
        }))
    }

    fn open_consumer(
        &self,
        partitions: &[u32],
        from: ConsumeFrom,
    ) -> Result<Box<dyn ConsumerConn>, DriverError> {
        let mut nats = NatsConn::connect(&self.endpoint.addr)?;
        let deliver_prefix = inbox("c");
        // One exact subscription per deliver subject: NATS 2.9 does not count a wildcard
        // subscription as interest for a push consumer, so nothing would be delivered.
        for p in partitions {
            let sub = format!("SUB {deliver_prefix}.{p} {}\r\n", 1 + p);
            nats.conn.write_buf.extend_from_slice(sub.as_bytes());
        }
        nats.conn.flush()?;
        let topic = &self.endpoint.topic;
        for p in partitions {
            let config = json!({"stream_name": topic, "config": {
                "deliver_subject": format!("{deliver_prefix}.{p}"),
                "deliver_policy": match from { ConsumeFrom::Latest => "new", ConsumeFrom::Earliest => "all" },
                "ack_policy": "none",
                "filter_subject": format!("{topic}.{p}"),
            }});
            nats.request(
                &format!("$JS.API.CONSUMER.CREATE.{topic}"),
                &config,
                "consumer create",
            )?;
        }
        Ok(Box::new(NatsConsumer { nats }))
    }

    fn stored_records(&self) -> Result<Option<u64>, DriverError> {
        let mut nats = NatsConn::connect(&self.endpoint.addr)?;
        let info = nats.request(
            &format!("$JS.API.STREAM.INFO.{}", self.endpoint.topic),
            &json!({}),
            "stream info",
        )?;
        Ok(info.pointer("/state/messages").and_then(Value::as_u64))
    }
}

struct NatsProducer {
    nats: NatsConn,
    subjects: Vec<String>,
    reply_prefix: String,
    with_acks: bool,
    next_token: u64,
    /// token -> (PubAcks still due, first error)
    in_flight: HashMap<u64, (u32, Option<String>)>,
}

impl ProducerConn for NatsProducer {
    fn send(
        &mut self,
        partition: u32,
        records: &[OutRecord<'_>],
    ) -> Result<Option<u64>, DriverError> {
        use std::io::Write as _;
        let token = self.next_token;
        self.next_token += 1;
        let subject = &self.subjects[partition as usize];
        let out = &mut self.nats.conn.write_buf;
        for r in records {
            let mut headers = [0u8; 128];
            let mut cursor = std::io::Cursor::new(&mut headers[..]);
            let _ = write!(cursor, "NATS/1.0\r\nlg-ts: {}\r\n", r.send_ts_ns);
            if let Some(key) = r.key {
                let _ = cursor.write_all(b"lg-key: ");
                let _ = cursor.write_all(&key[..key.len().min(40)]);
                let _ = cursor.write_all(b"\r\n");
            }
            let _ = cursor.write_all(b"\r\n");
            let header_len = cursor.position() as usize;
            let total = header_len + r.value.len();
            if self.with_acks {
                let _ = write!(
                    out,
                    "HPUB {subject} {}.{token} {header_len} {total}\r\n",
                    self.reply_prefix
                );
            } else {
                let _ = write!(out, "HPUB {subject} {header_len} {total}\r\n");
            }
            out.extend_from_slice(&headers[..header_len]);
            out.extend_from_slice(r.value);
            out.extend_from_slice(b"\r\n");
        }
        self.nats.conn.flush()?;
        if !self.with_acks {
            return Ok(None);
        }
        self.in_flight.insert(token, (records.len() as u32, None));
        Ok(Some(token))
    }

    fn recv_ack(&mut self, timeout: Duration) -> Result<Option<Ack>, DriverError> {
        let deadline = Instant::now() + timeout;
        loop {
            let op = self.nats.next(deadline, |op| match op {
                Op::Msg {
                    subject,
                    headers,
                    payload,
                    ..
                } => {
                    let token = subject
                        .rsplit(|&b| b == b'.')
                        .next()
                        .and_then(|t| std::str::from_utf8(t).ok())
                        .and_then(|t| t.parse::<u64>().ok());
                    let error = if header_status(headers) == Some(503) {
                        Some("no responders: no stream listens on the subject".to_owned())
                    } else if payload.windows(7).any(|w| w == b"\"error\"") {
                        Some(String::from_utf8_lossy(payload).into_owned())
                    } else {
                        None
                    };
                    Ok(token.map(|t| (t, error)))
                }
                Op::Err(e) => Err(String::from_utf8_lossy(e).into_owned()),
                _ => Ok(None),
            })?;
            let Some(op) = op else {
                return Ok(None);
            };
            let Some((token, error)) = op.map_err(|m| DriverError::Refused {
                target: TARGET,
                operation: "publish",
                message: m,
            })?
            else {
                continue;
            };
            let Some(entry) = self.in_flight.get_mut(&token) else {
                return Err(self
                    .nats
                    .conn
                    .protocol(format!("PubAck for unknown batch {token}")));
            };
            entry.0 -= 1;
            if let Some(e) = error {
                entry.1.get_or_insert(e);
            }
            if entry.0 == 0 {
                let (_, error) = self.in_flight.remove(&token).unwrap_or_default();
                return Ok(Some(Ack::once(token, error.map_or(Ok(()), Err))));
            }
        }
    }
}

struct NatsConsumer {
    nats: NatsConn,
}

impl ConsumerConn for NatsConsumer {
    fn poll(
        &mut self,
        timeout: Duration,
        on_record: &mut dyn FnMut(Delivered),
    ) -> Result<usize, DriverError> {
        let deadline = Instant::now() + timeout;
        let mut n = 0;
        loop {
            // After the first message, take only what is already buffered or arrives at once.
            let wait_until = if n == 0 { deadline } else { Instant::now() };
            let got = self.nats.next(wait_until, |op| match op {
                Op::Msg {
                    headers, payload, ..
                } => {
                    let send_ts_ns = header(headers, super::SEND_TS_HEADER)
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| v.parse().ok());
                    on_record(Delivered {
                        send_ts_ns,
                        value_bytes: payload.len() as u64,
                    });
                    Ok(true)
                }
                Op::Err(e) => Err(String::from_utf8_lossy(e).into_owned()),
                _ => Ok(false),
            })?;
            match got {
                None => return Ok(n),
                Some(Ok(true)) => n += 1,
                Some(Ok(false)) => {}
                Some(Err(message)) => {
                    return Err(DriverError::Refused {
                        target: TARGET,
                        operation: "consume",
                        message,
                    })
                }
            }
            if n >= 4096 {
                return Ok(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_operations() {
        let wire = b"MSG a.b 7 11\r\nhello world\r\nHMSG _INBOX.x.3 1 23 25\r\nNATS/1.0\r\nlg-ts: 42\r\n\r\nhi\r\nPING\r\n";
        let (op, used) = decode_op(wire).unwrap().unwrap();
        assert_eq!(
            op,
            Op::Msg {
                subject: b"a.b",
                sid: 7,
                headers: b"",
                payload: b"hello world"
            }
        );
        let (op, used2) = decode_op(&wire[used..]).unwrap().unwrap();
        let Op::Msg {
            subject,
            headers,
            payload,
            ..
        } = op
        else {
            panic!("{op:?}")
        };
        assert_eq!((subject, payload), (&b"_INBOX.x.3"[..], &b"hi"[..]));
        assert_eq!(header(headers, "lg-ts"), Some(&b"42"[..]));
        assert_eq!(header_status(headers), None);
        assert_eq!(
            decode_op(&wire[used + used2..]).unwrap().unwrap().0,
            Op::Ping
        );
        for cut in 0..used {
            assert_eq!(decode_op(&wire[..cut]).unwrap(), None);
        }
        assert_eq!(header_status(b"NATS/1.0 503\r\n\r\n"), Some(503));
        assert!(decode_op(b"MSG a 1 x\r\n").is_err());
        assert!(decode_op(b"WHAT\r\n").is_err());
    }
}
