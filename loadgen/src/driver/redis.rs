//! Redis Streams: one stream per partition (`<topic>-<partition>`), XADD pipelined per batch,
//! XREAD BLOCK for consumers. Each entry has fields `t` (send timestamp, u64 LE nanoseconds),
//! `v` (value) and, with keys, `k`.
//!
//! Durability is a server setting in Redis (`appendonly`, `appendfsync`), not a per-request
//! option: `--acks leader` accepts whatever the server is configured for, `--acks all` checks
//! that the server runs `appendfsync always` (D2) and refuses otherwise; `--acks none` is
//! refused because Redis always replies.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::conn::BufConn;
use super::resp::{encode_command, read_reply, Value};
use super::{Ack, ConsumerConn, Delivered, DriverError, Endpoint, OutRecord, ProducerConn, Target};
use crate::config::{AckLevel, ConsumeFrom};

const TARGET: &str = "redis";
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// Entries asked for per XREAD.
const READ_COUNT: &[u8] = b"1024";

pub struct RedisTarget {
    endpoint: Endpoint,
}

fn stream_name(topic: &str, partition: u32) -> String {
    format!("{topic}-{partition}")
}

impl RedisTarget {
    pub fn new(endpoint: Endpoint) -> Self {
        RedisTarget { endpoint }
    }

    fn connect(&self) -> Result<BufConn, DriverError> {
        let max = 64 * 1024 * 1024 + 2 * self.endpoint.value_bytes_max as usize;
        BufConn::connect(TARGET, &self.endpoint.addr, max)
    }

    fn partitions(&self) -> Vec<String> {
        (0..self.endpoint.partitions)
            .map(|p| stream_name(&self.endpoint.topic, p))
            .collect()
    }
}

/// Sends one command and waits for its reply; a Redis error reply becomes `Refused`.
fn call(conn: &mut BufConn, args: &[&[u8]], operation: &'static str) -> Result<Value, DriverError> {
    encode_command(&mut conn.write_buf, args);
    conn.flush()?;
    match read_reply(conn, Instant::now() + CONTROL_TIMEOUT)? {
        Some(Value::Error(message)) => Err(DriverError::Refused {
            target: TARGET,
            operation,
            message,
        }),
        Some(value) => Ok(value),
        None => Err(DriverError::Timeout {
            target: TARGET,
            addr: conn.addr.clone(),
            timeout_ms: CONTROL_TIMEOUT.as_millis() as u64,
        }),
    }
}

impl Target for RedisTarget {
    fn server_version(&self) -> Result<String, DriverError> {
        let mut conn = self.connect()?;
        let info = call(&mut conn, &[b"INFO", b"server"], "INFO")?;
        let text = String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned())
    }

    /// Redis creates streams on first XADD; "creating" the topic deletes its streams so the run
    /// starts from empty ones.
    fn create_topic(&self) -> Result<(), DriverError> {
        let mut conn = self.connect()?;
        let names = self.partitions();
        let mut args: Vec<&[u8]> = vec![b"DEL"];
        args.extend(names.iter().map(|n| n.as_bytes()));
        call(&mut conn, &args, "DEL")?;
        Ok(())
    }

    fn open_producer(&self, _producer_index: u32) -> Result<Box<dyn ProducerConn>, DriverError> {
        let mut conn = self.connect()?;
        match self.endpoint.acks {
            AckLevel::None => {
                return Err(DriverError::Unsupported {
                    target: TARGET,
                    what: "--acks none (Redis always replies to XADD)",
                })
            }
            AckLevel::Leader => {}
            AckLevel::All => {
                let reply = call(
                    &mut conn,
                    &[b"CONFIG", b"GET", b"appendfsync"],
                    "CONFIG GET",
                )?;
                let setting = reply
                    .as_array()
                    .and_then(|a| a.get(1))
                    .and_then(Value::as_bytes)
                    .unwrap_or_default();
                let aof = call(&mut conn, &[b"CONFIG", b"GET", b"appendonly"], "CONFIG GET")?;
                let aof_on = aof
                    .as_array()
                    .and_then(|a| a.get(1))
                    .and_then(Value::as_bytes)
                    == Some(b"yes");
                if setting != b"always" || !aof_on {
                    return Err(DriverError::Unsupported {
                        target: TARGET,
                        what:
                            "--acks all unless the server runs appendonly yes + appendfsync always",
                    });
                }
            }
        }
        Ok(Box::new(RedisProducer {
            conn,
            streams: self.partitions(),
            next_token: 0,
            batches: VecDeque::with_capacity(self.endpoint.window as usize),
        }))
    }

    fn open_consumer(
        &self,
        partitions: &[u32],
        from: ConsumeFrom,
    ) -> Result<Box<dyn ConsumerConn>, DriverError> {
        let mut conn = self.connect()?;
        let mut streams = Vec::with_capacity(partitions.len());
        for &p in partitions {
            let name = stream_name(&self.endpoint.topic, p);
            let last_id = match from {
                ConsumeFrom::Earliest => b"0-0".to_vec(),
                ConsumeFrom::Latest => {
                    let reply = call(
                        &mut conn,
                        &[b"XREVRANGE", name.as_bytes(), b"+", b"-", b"COUNT", b"1"],
                        "XREVRANGE",
                    )?;
                    reply
                        .as_array()
                        .and_then(|entries| entries.first())
                        .and_then(Value::as_array)
                        .and_then(|entry| entry.first())
                        .and_then(Value::as_bytes)
                        .map_or_else(|| b"0-0".to_vec(), <[u8]>::to_vec)
                }
            };
            streams.push((name, last_id));
        }
        Ok(Box::new(RedisConsumer { conn, streams }))
    }

    fn stored_records(&self) -> Result<Option<u64>, DriverError> {
        let mut conn = self.connect()?;
        let mut total = 0u64;
        for name in self.partitions() {
            if let Value::Integer(n) = call(&mut conn, &[b"XLEN", name.as_bytes()], "XLEN")? {
                total += n.max(0) as u64;
            }
        }
        Ok(Some(total))
    }
}

struct RedisProducer {
    conn: BufConn,
    streams: Vec<String>,
    next_token: u64,
    /// Batches in flight in send order (Redis answers in order): token, replies still due,
    /// first error seen.
    batches: VecDeque<(u64, u32, Option<String>)>,
}

impl ProducerConn for RedisProducer {
    fn send(
        &mut self,
        partition: u32,
        records: &[OutRecord<'_>],
    ) -> Result<Option<u64>, DriverError> {
        let stream = self.streams[partition as usize].as_bytes();
        for r in records {
            let ts = r.send_ts_ns.to_le_bytes();
            match r.key {
                Some(key) => encode_command(
                    &mut self.conn.write_buf,
                    &[b"XADD", stream, b"*", b"t", &ts, b"k", key, b"v", r.value],
                ),
                None => encode_command(
                    &mut self.conn.write_buf,
                    &[b"XADD", stream, b"*", b"t", &ts, b"v", r.value],
                ),
            }
        }
        self.conn.flush()?;
        let token = self.next_token;
        self.next_token += 1;
        self.batches.push_back((token, records.len() as u32, None));
        Ok(Some(token))
    }

    fn recv_ack(&mut self, timeout: Duration) -> Result<Option<Ack>, DriverError> {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(front) = self.batches.front_mut() else {
                return Ok(None);
            };
            if front.1 == 0 {
                let (token, _, error) = self.batches.pop_front().unwrap_or_default();
                return Ok(Some(Ack::once(token, error.map_or(Ok(()), Err))));
            }
            let Some(reply) = read_reply(&mut self.conn, deadline)? else {
                return Ok(None);
            };
            let Some(front) = self.batches.front_mut() else {
                return Err(self.conn.protocol("a reply with no request in flight"));
            };
            front.1 -= 1;
            if let Value::Error(message) = reply {
                front.2.get_or_insert(message);
            }
        }
    }
}

struct RedisConsumer {
    conn: BufConn,
    /// (stream, last id read)
    streams: Vec<(String, Vec<u8>)>,
}

impl ConsumerConn for RedisConsumer {
    fn poll(
        &mut self,
        timeout: Duration,
        on_record: &mut dyn FnMut(Delivered),
    ) -> Result<usize, DriverError> {
        let block_ms = timeout.as_millis().max(1).to_string();
        let mut args: Vec<&[u8]> = vec![
            b"XREAD",
            b"COUNT",
            READ_COUNT,
            b"BLOCK",
            block_ms.as_bytes(),
            b"STREAMS",
        ];
        args.extend(self.streams.iter().map(|(s, _)| s.as_bytes()));
        args.extend(self.streams.iter().map(|(_, id)| id.as_slice()));
        encode_command(&mut self.conn.write_buf, &args);
        self.conn.flush()?;
        let deadline = Instant::now() + timeout + CONTROL_TIMEOUT;
        let reply = match read_reply(&mut self.conn, deadline)? {
            Some(Value::Error(message)) => {
                return Err(DriverError::Refused {
                    target: TARGET,
                    operation: "XREAD",
                    message,
                })
            }
            Some(reply) => reply,
            None => {
                return Err(DriverError::Timeout {
                    target: TARGET,
                    addr: self.conn.addr.clone(),
                    timeout_ms: deadline_ms(timeout),
                })
            }
        };
        let Some(per_stream) = reply.as_array() else {
            return Ok(0); // nil: BLOCK timed out
        };
        let mut n = 0;
        for stream in per_stream {
            let (Some(name), Some(entries)) = (
                stream
                    .as_array()
                    .and_then(|s| s.first())
                    .and_then(Value::as_bytes),
                stream
                    .as_array()
                    .and_then(|s| s.get(1))
                    .and_then(Value::as_array),
            ) else {
                return Err(self.conn.protocol("malformed XREAD reply"));
            };
            for entry in entries {
                let parts = entry.as_array().unwrap_or_default();
                let (Some(id), Some(fields)) = (
                    parts.first().and_then(Value::as_bytes),
                    parts.get(1).and_then(Value::as_array),
                ) else {
                    return Err(self.conn.protocol("malformed stream entry"));
                };
                let mut delivered = Delivered {
                    send_ts_ns: None,
                    value_bytes: 0,
                };
                for pair in fields.chunks(2) {
                    match (pair[0].as_bytes(), pair.get(1).and_then(Value::as_bytes)) {
                        (Some(b"t"), Some(v)) => delivered.send_ts_ns = super::decode_send_ts(v),
                        (Some(b"v"), Some(v)) => delivered.value_bytes = v.len() as u64,
                        _ => {}
                    }
                }
                on_record(delivered);
                n += 1;
                if let Some(slot) = self.streams.iter_mut().find(|(s, _)| s.as_bytes() == name) {
                    slot.1.clear();
                    slot.1.extend_from_slice(id);
                }
            }
        }
        Ok(n)
    }
}

fn deadline_ms(timeout: Duration) -> u64 {
    (timeout + CONTROL_TIMEOUT).as_millis() as u64
}
