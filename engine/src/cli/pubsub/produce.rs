//! The idempotent producer behind `sprawl pub`, routed to each partition's leader.
//!
//! Batches are pipelined to the leader of their partition (one connection per leader address)
//! and acknowledged in any order. After a retriable failure (a dropped connection, `NOT_LEADER`,
//! `NOT_ENOUGH_REPLICAS`, ...) every connection is closed, the routing table is reloaded and
//! every unacknowledged batch is sent again, one at a time and in the original order, to the
//! partition's current leader; the server (or the follower that took over, which holds the same
//! producer state) drops the copies it already has, so a retry never duplicates.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};

use net::client::{Client, ClientError, ClusterClient, ProduceAck};
use net::codec::{message_id, Acks, ErrorCode, ProducerIdent, RecordView};

use super::{breaks_connection, retriable, RETRY_FOR};
use crate::cli::{connect, Output};

/// The first wait before a retry; doubles up to [`RETRY_BACKOFF_MAX`].
const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One produce batch, kept until acknowledged.
struct Batch {
    partition: u32,
    base_sequence: u32,
    records: Vec<Vec<u8>>,
    /// Where it was last sent: the leader's address and the request's correlation id there
    /// (`None` before the first send, and with `acks = none`, which gets no reply).
    sent: Option<(String, u32)>,
}

/// What failed, and on which partition.
struct Failure {
    partition: u32,
    error: ClientError,
}

/// Settings of a [`Producer`], fixed for its life.
pub(super) struct ProducerSettings {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub acks: Acks,
    pub ttl_ms: u32,
    pub output: Output,
}

pub(super) struct Producer {
    cluster: ClusterClient,
    /// Leader address -> connection carrying pipelined batches; closed as a whole on recovery.
    conns: HashMap<String, Client>,
    settings: ProducerSettings,
    producer_id: u64,
    next_sequence: HashMap<u32, u32>,
    /// Batches sent but not acknowledged, in send order; at most
    /// `storage::PRODUCER_BATCHES_KEPT` (the server's dedup window).
    unacked: VecDeque<Batch>,
    /// Records acknowledged (or sent, with `acks = none`).
    pub acked_records: u64,
}

impl Producer {
    pub fn new(cluster: ClusterClient, settings: ProducerSettings, producer_id: u64) -> Self {
        Producer {
            cluster,
            conns: HashMap::new(),
            settings,
            producer_id,
            next_sequence: HashMap::new(),
            unacked: VecDeque::new(),
            acked_records: 0,
        }
    }

    pub fn settings(&self) -> &ProducerSettings {
        &self.settings
    }

    /// Sends `records` as one batch to `partition`'s leader; waits for earlier acknowledgements
    /// first when the dedup window is full.
    pub fn publish(&mut self, partition: u32, records: Vec<Vec<u8>>) -> Result<(), String> {
        let seq = self.next_sequence.entry(partition).or_insert(0);
        let mut batch = Batch {
            partition,
            base_sequence: *seq,
            records,
            sent: None,
        };
        *seq = seq.wrapping_add(batch.records.len() as u32);
        // No more in flight than the server's dedup window: a retry after a crash must find
        // every unacknowledged batch still remembered there.
        while self.unacked.len() >= storage::PRODUCER_BATCHES_KEPT {
            self.receive_one()?;
        }
        match self.send(&mut batch) {
            Ok(()) => {}
            Err(error) if retriable(&error) => {
                self.unacked.push_back(batch);
                return self.recover(Failure { partition, error });
            }
            Err(error) => return Err(self.describe(&Failure { partition, error })),
        }
        if batch.sent.is_none() {
            self.acked_records += batch.records.len() as u64;
        } else {
            self.unacked.push_back(batch);
        }
        Ok(())
    }

    /// Waits until every batch is acknowledged.
    pub fn finish(&mut self) -> Result<(), String> {
        while !self.unacked.is_empty() {
            self.receive_one()?;
        }
        Ok(())
    }

    fn describe(&self, f: &Failure) -> String {
        format!(
            "partition {}/{}: {}",
            self.settings.topic, f.partition, f.error
        )
    }

    /// Sends `batch` to its partition's current leader, connecting if needed.
    fn send(&mut self, batch: &mut Batch) -> Result<(), ClientError> {
        let topic = self.settings.topic.as_str();
        let addr = match self.cluster.leader_of(topic, batch.partition) {
            Some((_, addr)) => addr.to_owned(),
            None => {
                return Err(ClientError::NoLeader {
                    topic: topic.to_owned(),
                    partition: batch.partition,
                    leader_node_id: 0,
                })
            }
        };
        let client = match self.conns.entry(addr.clone()) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(slot) => slot.insert(connect(&addr)?),
        };
        let key = self.settings.key.as_deref();
        let views: Vec<RecordView<'_>> = batch
            .records
            .iter()
            .map(|v| RecordView {
                key,
                value: v,
                headers: Vec::new(),
                timestamp_ms: 0,
                ttl_ms: self.settings.ttl_ms,
            })
            .collect();
        let ident = ProducerIdent {
            producer_id: self.producer_id,
            epoch: 0,
            base_sequence: batch.base_sequence,
        };
        let sent = client.send_produce(
            topic,
            batch.partition,
            self.settings.acks,
            Some(ident),
            &views,
        );
        match sent {
            Ok(correlation_id) => {
                batch.sent = correlation_id.map(|cid| (addr, cid));
                Ok(())
            }
            Err(e) => {
                if breaks_connection(&e) {
                    self.conns.remove(&addr);
                }
                Err(e)
            }
        }
    }

    /// Receives one reply on the connection of the oldest unacknowledged batch.
    fn receive_one(&mut self) -> Result<(), String> {
        let Some(front) = self.unacked.front() else {
            return Ok(());
        };
        let partition = front.partition;
        let Some((addr, _)) = front.sent.clone() else {
            let error = ClientError::Closed {
                addr: "(batch not sent)".to_owned(),
            };
            return self.recover(Failure { partition, error });
        };
        let Some(client) = self.conns.get_mut(&addr) else {
            let error = ClientError::Closed { addr };
            return self.recover(Failure { partition, error });
        };
        match client.recv_produce() {
            Ok((cid, Ok(ack))) => {
                self.acknowledge(&addr, cid, &ack);
                Ok(())
            }
            Ok((cid, Err(error))) => {
                let partition = self
                    .unacked
                    .iter()
                    .find(|b| {
                        b.sent
                            .as_ref()
                            .is_some_and(|(a, c)| *a == addr && *c == cid)
                    })
                    .map_or(partition, |b| b.partition);
                let failure = Failure { partition, error };
                if retriable(&failure.error) {
                    self.recover(failure)
                } else {
                    Err(self.describe(&failure))
                }
            }
            Err(error) => {
                self.conns.remove(&addr);
                let failure = Failure { partition, error };
                if retriable(&failure.error) {
                    self.recover(failure)
                } else {
                    Err(self.describe(&failure))
                }
            }
        }
    }

    fn acknowledge(&mut self, addr: &str, cid: u32, ack: &ProduceAck) {
        let Some(pos) = self
            .unacked
            .iter()
            .position(|b| b.sent.as_ref().is_some_and(|(a, c)| a == addr && *c == cid))
        else {
            return;
        };
        let batch = self.unacked.remove(pos).unwrap_or_else(|| unreachable!());
        self.acked_records += batch.records.len() as u64;
        if self.settings.output == Output::Json {
            let mut out = std::io::stdout().lock();
            for i in 0..u64::from(ack.record_count) {
                let offset = ack.base_offset + i;
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "topic": self.settings.topic,
                        "partition": ack.partition,
                        "offset": offset,
                        "id": message_id(ack.topic_id, ack.partition, offset),
                    })
                );
            }
        }
    }

    /// Closes every connection, reloads the routing table and resends every unacknowledged
    /// batch, in order, to its partition's current leader, until all are acknowledged or
    /// [`RETRY_FOR`] has passed (then the error names the partition and the last error).
    fn recover(&mut self, first: Failure) -> Result<(), String> {
        let started = Instant::now();
        let mut last = first;
        let mut backoff = RETRY_BACKOFF_FIRST;
        let mut attempts = 0u32;
        loop {
            if started.elapsed() > RETRY_FOR {
                return Err(format!(
                    "gave up after {attempts} retries in {} s: {}",
                    RETRY_FOR.as_secs(),
                    self.describe(&last)
                ));
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            attempts += 1;
            // Replies still owed on the old connections would only be stale now.
            self.conns.clear();
            if let Err(error) = self.cluster.refresh_metadata() {
                last = Failure {
                    partition: last.partition,
                    error,
                };
                continue;
            }
            match self.resend_all() {
                Ok(()) => return Ok(()),
                Err(f) if retriable(&f.error) => last = f,
                Err(f) => return Err(self.describe(&f)),
            }
        }
    }

    fn resend_all(&mut self) -> Result<(), Failure> {
        // One at a time: after a failure nothing may overtake the batch that failed.
        while let Some(mut b) = self.unacked.pop_front() {
            let partition = b.partition;
            if let Err(error) = self.send(&mut b) {
                self.unacked.push_front(b);
                return Err(Failure { partition, error });
            }
            let Some((addr, _)) = b.sent.clone() else {
                self.acked_records += b.records.len() as u64;
                continue;
            };
            let reply = match self.conns.get_mut(&addr) {
                Some(client) => client.recv_produce(),
                None => Err(ClientError::Closed { addr: addr.clone() }),
            };
            match reply {
                Ok((cid, Ok(ack))) => {
                    self.unacked.push_front(b);
                    self.acknowledge(&addr, cid, &ack);
                }
                Ok((
                    _,
                    Err(ClientError::Server {
                        code: ErrorCode::DuplicateSequence,
                        ..
                    }),
                )) => {
                    // Written before the failure; the server no longer knows its offsets.
                    self.acked_records += b.records.len() as u64;
                }
                Ok((_, Err(error))) => {
                    self.unacked.push_front(b);
                    return Err(Failure { partition, error });
                }
                Err(error) => {
                    self.conns.remove(&addr);
                    self.unacked.push_front(b);
                    return Err(Failure { partition, error });
                }
            }
        }
        Ok(())
    }
}
