//! `sprawl pub` and `sprawl sub`.
//!
//! `pub` is an idempotent producer: it picks a random producer id, numbers its batches per
//! partition, pipelines them, and after a retriable failure reconnects and resends everything not
//! yet acknowledged in order; the server drops the copies it already has, so a retry never
//! duplicates. `sub` uses push subscriptions with credit-based flow control, one per partition.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use argh::FromArgs;
use base64::Engine as _;
use net::client::{Client, ClientError, ProduceAck, PushBatch};
use net::codec::{message_id, Acks, ErrorCode, ProducerIdent, RecordView};

use super::{connect, parse_output, Output, DEFAULT_BROKER};

/// Records per produce batch when reading stdin.
const BATCH_RECORDS_MAX: usize = 512;
/// Payload bytes per produce batch when reading stdin.
const BATCH_BYTES_MAX: usize = 512 << 10;
/// How long `pub` keeps retrying after a retriable failure.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// Records a subscription may receive before it is granted more.
const SUB_CREDITS: u32 = 1000;

fn parse_acks(v: &str) -> Result<Acks, String> {
    match v {
        "none" => Ok(Acks::None),
        "leader" => Ok(Acks::Leader),
        "all" => Ok(Acks::All),
        other => Err(format!("--acks must be none, leader or all, not {other:?}")),
    }
}

#[derive(FromArgs, Debug)]
/// Publish records: MESSAGE, or one record per line of standard input.
#[argh(subcommand, name = "pub")]
pub struct PubArgs {
    /// topic to publish to
    #[argh(option)]
    pub topic: String,
    /// record key (also picks the partition: crc32c(key) mod partitions)
    #[argh(option)]
    pub key: Option<String>,
    /// partition (default: by key, else round-robin per batch)
    #[argh(option)]
    pub partition: Option<u32>,
    /// durability to wait for: none, leader or all (default all: fdatasync'd)
    #[argh(option, default = "Acks::All", from_str_fn(parse_acks))]
    pub acks: Acks,
    /// time-to-live of each record, ms (default: the topic's)
    #[argh(option, default = "0")]
    pub ttl_ms: u32,
    /// output: text (a summary on stderr) or json (one object per acknowledged record)
    #[argh(option, default = "Output::Text", from_str_fn(parse_output))]
    pub output: Output,
    /// broker address (default 127.0.0.1:7070)
    #[argh(option, default = "DEFAULT_BROKER.to_string()")]
    pub broker: String,
    /// the message; without it, each line of standard input is one record
    #[argh(positional)]
    pub message: Option<String>,
}

#[derive(FromArgs, Debug)]
/// Consume records and print them.
#[argh(subcommand, name = "sub")]
pub struct SubArgs {
    /// topic to consume
    #[argh(option)]
    pub topic: String,
    /// one partition (default: all)
    #[argh(option)]
    pub partition: Option<u32>,
    /// start at the oldest record (default: only new records, or the group's committed offset)
    #[argh(switch)]
    pub from_beginning: bool,
    /// start at this offset
    #[argh(option)]
    pub offset: Option<u64>,
    /// consumer name: resume from its committed offsets and commit as records are printed
    #[argh(option)]
    pub group: Option<String>,
    /// exit after this many records
    #[argh(option)]
    pub count: Option<u64>,
    /// output: raw (values, one per line) or json (one object per record)
    #[argh(option, default = "Output::Text", from_str_fn(parse_output))]
    pub output: Output,
    /// broker address (default 127.0.0.1:7070)
    #[argh(option, default = "DEFAULT_BROKER.to_string()")]
    pub broker: String,
}

struct Batch {
    partition: u32,
    base_sequence: u32,
    records: Vec<Vec<u8>>,
    correlation_id: Option<u32>,
}

struct Producer {
    broker: String,
    client: Client,
    topic: String,
    key: Option<Vec<u8>>,
    acks: Acks,
    ttl_ms: u32,
    output: Output,
    producer_id: u64,
    next_sequence: HashMap<u32, u32>,
    unacked: VecDeque<Batch>,
    acked_records: u64,
}

fn random_u64() -> u64 {
    crate::catalog::new_topic_id()
}

impl Producer {
    fn send(&mut self, batch: &mut Batch) -> Result<(), ClientError> {
        let key = self.key.as_deref();
        let views: Vec<RecordView<'_>> = batch
            .records
            .iter()
            .map(|v| RecordView {
                key,
                value: v,
                headers: Vec::new(),
                timestamp_ms: 0,
                ttl_ms: self.ttl_ms,
            })
            .collect();
        let ident = ProducerIdent {
            producer_id: self.producer_id,
            epoch: 0,
            base_sequence: batch.base_sequence,
        };
        batch.correlation_id = self.client.send_produce(
            &self.topic,
            batch.partition,
            self.acks,
            Some(ident),
            &views,
        )?;
        Ok(())
    }

    fn publish(&mut self, partition: u32, records: Vec<Vec<u8>>) -> Result<(), String> {
        let seq = self.next_sequence.entry(partition).or_insert(0);
        let mut batch = Batch {
            partition,
            base_sequence: *seq,
            records,
            correlation_id: None,
        };
        *seq = seq.wrapping_add(batch.records.len() as u32);
        // No more in flight than the server's dedup window: a retry after a crash must find
        // every unacknowledged batch still remembered there.
        while self.client.produce_in_flight() >= storage::PRODUCER_BATCHES_KEPT {
            self.receive_one()?;
        }
        match self.send(&mut batch) {
            Ok(()) => {}
            Err(e) if retriable(&e) => {
                self.unacked.push_back(batch);
                return self.recover(e);
            }
            Err(e) => return Err(e.to_string()),
        }
        if self.acks == Acks::None {
            self.acked_records += batch.records.len() as u64;
        } else {
            self.unacked.push_back(batch);
        }
        Ok(())
    }

    fn receive_one(&mut self) -> Result<(), String> {
        match self.client.recv_produce() {
            Ok((cid, Ok(ack))) => {
                self.acknowledge(cid, &ack);
                Ok(())
            }
            Ok((_, Err(e))) if retriable(&e) => self.recover(e),
            Ok((_, Err(e))) => Err(e.to_string()),
            Err(e) if retriable(&e) => self.recover(e),
            Err(e) => Err(e.to_string()),
        }
    }

    fn acknowledge(&mut self, cid: u32, ack: &ProduceAck) {
        let Some(pos) = self
            .unacked
            .iter()
            .position(|b| b.correlation_id == Some(cid))
        else {
            return;
        };
        let batch = self.unacked.remove(pos).unwrap_or_else(|| unreachable!());
        self.acked_records += batch.records.len() as u64;
        if self.output == Output::Json {
            let mut out = std::io::stdout().lock();
            for i in 0..u64::from(ack.record_count) {
                let offset = ack.base_offset + i;
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "topic": self.topic,
                        "partition": ack.partition,
                        "offset": offset,
                        "id": message_id(ack.topic_id, ack.partition, offset),
                    })
                );
            }
        }
    }

    /// Reconnects and resends every unacknowledged batch, in order, until acknowledged.
    fn recover(&mut self, first: ClientError) -> Result<(), String> {
        let started = Instant::now();
        let mut last = first.to_string();
        let mut backoff = Duration::from_millis(50);
        loop {
            if started.elapsed() > RETRY_FOR {
                return Err(format!(
                    "gave up after {} s of retries; last error: {last}",
                    RETRY_FOR.as_secs()
                ));
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(1));
            match connect(&self.broker) {
                Ok(c) => self.client = c,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            }
            match self.resend_all() {
                Ok(()) => return Ok(()),
                Err(e) if retriable(&e) => last = e.to_string(),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    fn resend_all(&mut self) -> Result<(), ClientError> {
        // One at a time: after a failure nothing may overtake the batch that failed.
        while let Some(mut b) = self.unacked.pop_front() {
            if let Err(e) = self.send(&mut b) {
                self.unacked.push_front(b);
                return Err(e);
            }
            let reply = self.client.recv_produce();
            match reply {
                Ok((cid, Ok(ack))) => {
                    self.unacked.push_front(b);
                    self.acknowledge(cid, &ack);
                }
                Ok((
                    _,
                    Err(ClientError::Server {
                        code: ErrorCode::DuplicateSequence,
                        ..
                    }),
                )) => {
                    // Written before the crash; the server no longer knows its offsets.
                    self.acked_records += b.records.len() as u64;
                }
                Ok((_, Err(e))) | Err(e) => {
                    self.unacked.push_front(b);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        while !self.unacked.is_empty() && self.client.produce_in_flight() > 0 {
            self.receive_one()?;
        }
        if !self.unacked.is_empty() {
            let e = ClientError::Closed {
                addr: self.broker.clone(),
            };
            self.recover(e)?;
        }
        Ok(())
    }
}

fn retriable(e: &ClientError) -> bool {
    match e {
        ClientError::Io { .. } | ClientError::Closed { .. } | ClientError::Connect { .. } => true,
        ClientError::Server { code, .. } => {
            code.is_retriable() || *code == ErrorCode::OutOfOrderSequence
        }
        ClientError::Timeout { .. } => true,
        _ => false,
    }
}

pub fn run_pub(a: PubArgs) -> Result<(), String> {
    let mut client = connect(&a.broker).map_err(|e| e.to_string())?;
    let meta = client
        .metadata(Some(&[a.topic.as_str()]))
        .map_err(|e| e.to_string())?;
    let partitions = meta
        .topics
        .iter()
        .find(|t| t.name == a.topic)
        .map(|t| t.partitions.len() as u32)
        .ok_or_else(|| {
            format!(
                "topic {:?} does not exist; create it with `sprawl topic create {} --partitions N`",
                a.topic, a.topic
            )
        })?;
    if let Some(p) = a.partition {
        if p >= partitions {
            return Err(format!(
                "--partition {p} does not exist: topic {} has partitions 0..{partitions}",
                a.topic
            ));
        }
    }
    let key = a.key.map(String::into_bytes);
    let fixed = a
        .partition
        .or_else(|| key.as_ref().map(|k| crc32c::crc32c(k) % partitions));
    let mut p = Producer {
        broker: a.broker,
        client,
        topic: a.topic,
        key,
        acks: a.acks,
        ttl_ms: a.ttl_ms,
        output: a.output,
        producer_id: random_u64(),
        next_sequence: HashMap::new(),
        unacked: VecDeque::new(),
        acked_records: 0,
    };
    let mut rr = (random_u64() % u64::from(partitions)) as u32;
    let mut next_partition = || {
        fixed.unwrap_or_else(|| {
            rr = (rr + 1) % partitions;
            rr
        })
    };
    if let Some(m) = a.message {
        p.publish(next_partition(), vec![m.into_bytes()])?;
    } else {
        let mut reader = std::io::BufReader::with_capacity(256 << 10, std::io::stdin().lock());
        loop {
            let mut batch = Vec::new();
            let mut bytes = 0;
            loop {
                let mut line = Vec::new();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| format!("reading standard input: {e}"))?;
                if n == 0 {
                    break;
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                bytes += line.len();
                batch.push(line);
                // Batch only what is already buffered, so interactive lines go out at once.
                let more_buffered = reader.buffer().contains(&b'\n');
                if !more_buffered || batch.len() >= BATCH_RECORDS_MAX || bytes >= BATCH_BYTES_MAX {
                    break;
                }
            }
            if batch.is_empty() {
                break;
            }
            p.publish(next_partition(), batch)?;
        }
    }
    p.finish()?;
    if p.output == Output::Text {
        eprintln!(
            "published {} record{} to {} (acks={})",
            p.acked_records,
            if p.acked_records == 1 { "" } else { "s" },
            p.topic,
            match p.acks {
                Acks::None => "none, not confirmed",
                Acks::Leader => "leader",
                Acks::All => "all",
            }
        );
    }
    Ok(())
}

fn text_or_base64(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            true,
        ),
    }
}

pub fn run_sub(a: SubArgs) -> Result<(), String> {
    if a.from_beginning && a.offset.is_some() {
        return Err("use either --from-beginning or --offset, not both".into());
    }
    let mut client = connect(&a.broker).map_err(|e| e.to_string())?;
    let info = client.describe_topic(&a.topic).map_err(|e| e.to_string())?;
    let partitions: Vec<_> = match a.partition {
        Some(p) => {
            let part = info
                .partitions
                .iter()
                .find(|x| x.partition == p)
                .ok_or_else(|| {
                    format!(
                        "--partition {p} does not exist: topic {} has partitions 0..{}",
                        a.topic, info.config.partitions
                    )
                })?;
            vec![*part]
        }
        None => info.partitions.clone(),
    };
    let mut subs = HashMap::new();
    for part in &partitions {
        let committed = match &a.group {
            Some(g) => client
                .fetch_offset(g, &a.topic, part.partition)
                .map_err(|e| e.to_string())?,
            None => None,
        };
        let start = a.offset.or(committed).unwrap_or(if a.from_beginning {
            part.start_offset
        } else {
            part.end_offset
        });
        let id = client
            .subscribe(&a.topic, part.partition, start, SUB_CREDITS)
            .map_err(|e| e.to_string())?;
        subs.insert(id, part.partition);
    }
    let mut printed = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        if a.count.is_some_and(|c| printed >= c) {
            return Ok(());
        }
        let Some(batch) = client
            .next_push(Duration::from_secs(1))
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let PushBatch {
            subscription_id,
            records,
            ended,
            ..
        } = batch;
        let Some(&partition) = subs.get(&subscription_id) else {
            continue;
        };
        if let Some((code, message)) = ended {
            return Err(format!(
                "subscription to {}/{partition} ended: {code}: {message}",
                a.topic
            ));
        }
        let mut last = None;
        let mut consumed = 0u32;
        for r in &records {
            if a.count.is_some_and(|c| printed >= c) {
                break;
            }
            match a.output {
                Output::Text => {
                    let _ = out.write_all(&r.value);
                    let _ = out.write_all(b"\n");
                }
                Output::Json => {
                    let (value, b64) = text_or_base64(&r.value);
                    let mut obj = serde_json::json!({
                        "topic": a.topic,
                        "partition": partition,
                        "offset": r.offset,
                        "id": message_id(info.topic_id, partition, r.offset),
                        "key": r.key.as_deref().map(|k| text_or_base64(k).0),
                        "value": value,
                        "timestamp": r.timestamp_ms,
                    });
                    if b64 {
                        obj["encoding"] = "base64".into();
                    }
                    if r.key.as_deref().is_some_and(|k| text_or_base64(k).1) {
                        obj["key_encoding"] = "base64".into();
                    }
                    let _ = writeln!(out, "{obj}");
                }
            }
            printed += 1;
            consumed += 1;
            last = Some(r.offset);
        }
        let _ = out.flush();
        if let (Some(g), Some(off)) = (&a.group, last) {
            client
                .commit_offset(g, &a.topic, partition, off + 1)
                .map_err(|e| e.to_string())?;
        }
        if consumed > 0 {
            client
                .credit(subscription_id, consumed)
                .map_err(|e| e.to_string())?;
        }
    }
}
