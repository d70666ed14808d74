//! The Sprawl producer: each batch goes to its partition's leader, as Metadata v1 names it, over
//! one pipelined socket per leader node ([`Link`], opened when first needed). A single node names
//! itself leader of everything, so it gets exactly one socket, as before routing existed.
//!
//! A batch answered `NOT_LEADER` or `NOT_ENOUGH_REPLICAS`, or `UNKNOWN_TOPIC` /
//! `UNKNOWN_PARTITION` for a partition the routing table lists (the node has not loaded a topic
//! just created: metadata lag), or in flight on a connection that breaks, is sent again (same bytes, same correlation id, so the same token) after a short
//! doubling wait and a metadata refresh, for up to [`RETRY_FOR`]; its [`Ack`] then reports how
//! often it was resent and whether an earlier send may have been written too. **Batches carry no
//! producer identity** (the server's de-duplication keeps only the last
//! `storage::PRODUCER_BATCHES_KEPT` = 5 batches per producer, far below loadgen's windows), so a
//! resend after a broken connection, or after a `NOT_LEADER` whose message says the write "may or
//! may not be kept", can store a batch twice; a resend after a plain refusal cannot. Resent
//! batches land after batches sent later to the same partition.
//!
//! To resend, the encoded frame of every unanswered batch is kept, up to [`RETAINED_BYTES_MAX`];
//! a batch beyond that budget that needs a resend is reported as refused instead.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use net::client::{ClientConfig, ClusterClient, RoutingConfig};
use net::codec::{encode, Acks, ErrorCode, Frame, Limits, RecordView, Request, Response};

use super::sprawl::leader_addr;
use super::sprawl_link::{wait_readable, Link, TARGET};
use super::{Ack, DriverError, Endpoint, OutRecord, ProducerConn, SEND_TS_HEADER};
use crate::config::AckLevel;

/// How long a batch is resent before it is reported as refused. A failover whose victim also led
/// the metadata controllers takes a Raft election first (5-15 s measured in
/// `docs/fault-tests.md`), so this is well above that.
pub const RETRY_FOR: Duration = Duration::from_secs(30);
/// Frames kept for resending, in bytes, per producer.
pub const RETAINED_BYTES_MAX: usize = 256 << 20;
/// The first wait before a resend; doubles per resend of the same batch.
const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(2);
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(200);
/// Metadata is reloaded at most once per this interval.
const REFRESH_MIN: Duration = Duration::from_millis(50);
/// Encode buffers kept for reuse.
const POOL_MAX: usize = 1_024;
/// How long a read on a socket `ppoll` called ready may block (it should not block at all).
const READY_READ_WAIT: Duration = Duration::from_millis(1);

struct Pending {
    partition: u32,
    /// Producer-wide send order (resends go out in it).
    send_seq: u64,
    /// The link the batch was last written on; `None` while it waits for a resend.
    link: Option<usize>,
    /// The encoded frame, when within the retained budget.
    frame: Option<BytesMut>,
    resends: u32,
    maybe_twice: bool,
    first_failure: Option<Instant>,
    retry_at: Instant,
}

/// What a reply says about its batch.
enum Reply {
    Written,
    /// NOT_LEADER / NOT_ENOUGH_REPLICAS: send again; `unknown` when it may have been written.
    Resend {
        message: String,
        unknown: bool,
    },
    /// UNKNOWN_TOPIC / UNKNOWN_PARTITION: not written; sent again only while the routing table
    /// lists the partition (the answering node lags), else refused.
    Unknown(String),
    Refused(String),
}

pub struct SprawlProducer {
    topic: String,
    acks: Acks,
    meta: ClusterClient,
    last_refresh: Instant,
    /// The routing table needs reloading before the next resend.
    stale: bool,
    /// The first resend's reason was printed.
    resend_reported: bool,
    /// The last leader address found unreachable (printed once, not per batch).
    unreachable_reported: Option<String>,
    links: Vec<Option<Link>>,
    /// Partition -> slot in `links` of its leader, while known.
    routes: Vec<Option<usize>>,
    pending: HashMap<u32, Pending>,
    /// Batches waiting for a resend: send order -> correlation id.
    retry: BTreeMap<u64, u32>,
    /// Answers decided without a reply (gave up resending), handed out by `recv_ack`.
    done: VecDeque<Ack>,
    pool: Vec<BytesMut>,
    retained_bytes: usize,
    next_correlation_id: u32,
    next_send_seq: u64,
    timestamps: Vec<[u8; 8]>,
    /// Scratch lists of `wait`: link slots with batches in flight, and those ready to read.
    busy: Vec<usize>,
    ready: Vec<usize>,
}

impl SprawlProducer {
    pub fn connect(endpoint: &Endpoint) -> Result<Self, DriverError> {
        let config = ClientConfig {
            client_name: format!("loadgen-meta/{}", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let routing = RoutingConfig {
            // This producer paces its own refreshes (REFRESH_MIN) and must never sleep in one.
            metadata_refresh_min_ms: 0,
            ..RoutingConfig::default()
        };
        let meta = ClusterClient::connect_with(&[endpoint.addr.as_str()], config, routing)?;
        let mut producer = SprawlProducer {
            topic: endpoint.topic.clone(),
            acks: match endpoint.acks {
                AckLevel::None => Acks::None,
                AckLevel::Leader => Acks::Leader,
                AckLevel::All => Acks::All,
            },
            meta,
            last_refresh: Instant::now(),
            stale: false,
            resend_reported: false,
            unreachable_reported: None,
            links: Vec::new(),
            routes: vec![None; endpoint.partitions as usize],
            pending: HashMap::with_capacity(2 * endpoint.window as usize),
            retry: BTreeMap::new(),
            done: VecDeque::new(),
            pool: Vec::new(),
            retained_bytes: 0,
            next_correlation_id: 1,
            next_send_seq: 0,
            timestamps: Vec::with_capacity(endpoint.batch as usize),
            busy: Vec::new(),
            ready: Vec::new(),
        };
        // Connect to the first partition's leader now, so that a node that cannot be reached
        // fails the start of the run rather than its first batches.
        if producer.route(0).is_none() && producer.meta.metadata().topic(&producer.topic).is_some()
        {
            eprintln!(
                "loadgen: no leader of {}/0 reachable yet; batches wait for one",
                producer.topic
            );
        }
        Ok(producer)
    }

    /// The slot of `partition`'s leader link, connecting it if needed; `None` when no leader is
    /// known or it cannot be reached (the routing table is then marked stale).
    fn route(&mut self, partition: u32) -> Option<usize> {
        if let Some(Some(slot)) = self.routes.get(partition as usize) {
            if self.links[*slot].is_some() {
                return Some(*slot);
            }
        }
        let Some(addr) = leader_addr(self.meta.metadata(), &self.topic, partition) else {
            self.stale = true;
            return None;
        };
        let existing = self
            .links
            .iter()
            .position(|l| l.as_ref().is_some_and(|l| l.addr == addr));
        let slot = match existing {
            Some(slot) => slot,
            None => {
                let link = match Link::connect(&addr) {
                    Ok(link) => link,
                    Err(e) => {
                        if self.unreachable_reported.as_deref() != Some(addr.as_str()) {
                            eprintln!("loadgen: leader of {}/{partition}: {e}", self.topic);
                            self.unreachable_reported = Some(addr.clone());
                        }
                        self.stale = true;
                        return None;
                    }
                };
                match self.links.iter().position(Option::is_none) {
                    Some(free) => {
                        self.links[free] = Some(link);
                        free
                    }
                    None => {
                        self.links.push(Some(link));
                        self.links.len() - 1
                    }
                }
            }
        };
        if let Some(cached) = self.routes.get_mut(partition as usize) {
            *cached = Some(slot);
        }
        Some(slot)
    }

    /// Reloads the routing table (at most once per [`REFRESH_MIN`]); routes are recomputed.
    fn refresh(&mut self) {
        if !self.stale || self.last_refresh.elapsed() < REFRESH_MIN {
            return;
        }
        self.last_refresh = Instant::now();
        // A failed load keeps the old table; the next resend tries again.
        if self.meta.refresh_metadata().is_ok() {
            self.stale = false;
            self.routes.fill(None);
        }
    }

    /// The link in `slot` failed: every batch in flight on it waits for a resend (it may have
    /// been written), and the slot is freed.
    fn break_link(&mut self, slot: usize, error: &DriverError) {
        self.links[slot] = None;
        for route in self.routes.iter_mut() {
            if *route == Some(slot) {
                *route = None;
            }
        }
        self.stale = true;
        let stranded: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.link == Some(slot))
            .map(|(id, _)| *id)
            .collect();
        for id in stranded {
            self.schedule_resend(id, &error.to_string(), true);
        }
    }

    /// Queues batch `id` for a resend, or gives up on it (see [`RETRY_FOR`]).
    fn schedule_resend(&mut self, id: u32, message: &str, unknown: bool) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        if !self.resend_reported {
            self.resend_reported = true;
            eprintln!(
                "loadgen: resending a batch to {}/{} (first resend of this producer): {message}",
                self.topic, p.partition
            );
        }
        let now = Instant::now();
        p.link = None;
        p.maybe_twice |= unknown;
        let first = *p.first_failure.get_or_insert(now);
        if p.frame.is_none() || now.duration_since(first) >= RETRY_FOR {
            let why = if p.frame.is_none() {
                "its frame was not kept for a resend"
            } else {
                "resent for too long"
            };
            let outcome = Err(format!(
                "{message} (not retried: {why}; {} resends)",
                p.resends
            ));
            let ack = Ack {
                token: u64::from(id),
                outcome,
                resends: p.resends,
                maybe_twice: p.maybe_twice,
            };
            self.finish(id);
            self.done.push_back(ack);
            return;
        }
        let shift = p.resends.min(16);
        p.retry_at = now + (RETRY_BACKOFF_FIRST * (1u32 << shift)).min(RETRY_BACKOFF_MAX);
        self.retry.insert(p.send_seq, id);
        self.stale = true;
    }

    /// Forgets batch `id`, recycling its frame buffer.
    fn finish(&mut self, id: u32) -> Option<Pending> {
        let mut p = self.pending.remove(&id)?;
        if let Some(frame) = p.frame.take() {
            self.retained_bytes -= frame.capacity();
            if self.pool.len() < POOL_MAX {
                self.pool.push(frame);
            }
        }
        Some(p)
    }

    /// Sends again every queued batch whose wait is over, in send order.
    fn resend_due(&mut self) {
        let now = Instant::now();
        let due: Vec<(u64, u32)> = self
            .retry
            .iter()
            .filter(|(_, id)| self.pending.get(id).is_some_and(|p| p.retry_at <= now))
            .map(|(seq, id)| (*seq, *id))
            .collect();
        if due.is_empty() {
            return;
        }
        self.refresh();
        for (seq, id) in due {
            let Some(partition) = self.pending.get(&id).map(|p| p.partition) else {
                self.retry.remove(&seq);
                continue;
            };
            let Some(slot) = self.route(partition) else {
                if let Some(p) = self.pending.get_mut(&id) {
                    p.retry_at = now + RETRY_BACKOFF_MAX.min(RETRY_BACKOFF_FIRST * 8);
                }
                continue;
            };
            self.retry.remove(&seq);
            let (Some(p), Some(link)) = (self.pending.get_mut(&id), self.links[slot].as_mut())
            else {
                continue;
            };
            let Some(frame) = p.frame.as_ref() else {
                continue;
            };
            p.resends += 1;
            p.link = Some(slot);
            match link.write(frame) {
                Ok(()) => link.in_flight += 1,
                Err(e) => self.break_link(slot, &e),
            }
        }
    }

    /// Handles one reply read from `slot`; `Some` when it answers its batch for good.
    fn on_reply(&mut self, slot: usize, id: u32, reply: Reply) -> Option<Ack> {
        if let Some(link) = self.links[slot].as_mut() {
            link.in_flight = link.in_flight.saturating_sub(1);
        }
        let outcome = match reply {
            Reply::Written => Ok(()),
            Reply::Refused(message) => Err(message),
            Reply::Unknown(message) => {
                let listed = self.pending.get(&id).is_some_and(|p| {
                    let view = self.meta.metadata();
                    let topic = view.topic(&self.topic);
                    topic.is_some_and(|t| t.partitions.contains_key(&p.partition))
                });
                if listed {
                    self.schedule_resend(id, &message, false);
                    return None;
                }
                Err(message)
            }
            Reply::Resend { message, unknown } => {
                self.schedule_resend(id, &message, unknown);
                return None;
            }
        };
        let p = self.finish(id)?;
        Some(Ack {
            token: u64::from(id),
            outcome,
            resends: p.resends,
            maybe_twice: p.maybe_twice,
        })
    }

    /// The next whole reply buffered on any link, handled.
    fn next_buffered(&mut self) -> Result<Option<Ack>, DriverError> {
        for slot in 0..self.links.len() {
            while let Some(link) = self.links[slot].as_mut() {
                let Some((id, reply)) = link.buffered_frame(interpret)? else {
                    break;
                };
                let reply = reply.map_err(|reason| link.protocol(reason))?;
                if !self.pending.contains_key(&id) {
                    return Err(link.protocol(format!("a reply to unknown request {id}")));
                }
                if let Some(ack) = self.on_reply(slot, id, reply) {
                    return Ok(Some(ack));
                }
            }
        }
        Ok(None)
    }

    /// Waits until `until` for bytes on the links with batches in flight (or, with none, just
    /// sleeps until then).
    fn wait(&mut self, until: Instant) {
        let timeout = until.saturating_duration_since(Instant::now());
        let mut busy = std::mem::take(&mut self.busy);
        busy.clear();
        busy.extend(
            (0..self.links.len())
                .filter(|&s| self.links[s].as_ref().is_some_and(|l| l.in_flight > 0)),
        );
        let fill = |this: &mut Self, slot: usize, deadline: Instant| {
            let Some(link) = this.links[slot].as_mut() else {
                return;
            };
            if let Err(e) = link.fill(deadline) {
                this.break_link(slot, &e);
            }
        };
        match busy.as_slice() {
            [] => std::thread::sleep(timeout),
            // One leader (always so on a single node): block on its socket, as before routing.
            [slot] => fill(self, *slot, until),
            slots => {
                let links: Vec<&Link> = slots
                    .iter()
                    .filter_map(|&s| self.links[s].as_ref())
                    .collect();
                let mut ready = std::mem::take(&mut self.ready);
                if let Err(e) = wait_readable(&links, timeout, &mut ready) {
                    eprintln!("loadgen: waiting for replies: {e}");
                }
                drop(links);
                let now = Instant::now();
                for &i in &ready {
                    fill(self, slots[i], now + READY_READ_WAIT);
                }
                self.ready = ready;
            }
        }
        self.busy = busy;
    }
}

/// What a reply frame says; `Err` = not a produce reply at all.
fn interpret(response: &Response<'_>) -> Result<Reply, String> {
    let (code, message) = response.error();
    match (code, response) {
        (ErrorCode::None, Response::Produce { .. }) => Ok(Reply::Written),
        (ErrorCode::None, other) => Err(format!(
            "expected a produce reply, got api {:?}",
            other.api_key()
        )),
        (ErrorCode::NotLeader | ErrorCode::NotEnoughReplicas, _) => Ok(Reply::Resend {
            // A deposed leader answers pending acks=all writes this way (engine::replication).
            unknown: message.contains("may or may not"),
            message: format!("{code}: {message}"),
        }),
        (ErrorCode::UnknownTopic | ErrorCode::UnknownPartition, _) => {
            Ok(Reply::Unknown(format!("{code}: {message}")))
        }
        (code, _) => Ok(Reply::Refused(format!("{code}: {message}"))),
    }
}

impl ProducerConn for SprawlProducer {
    fn send(
        &mut self,
        partition: u32,
        records: &[OutRecord<'_>],
    ) -> Result<Option<u64>, DriverError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let slot = self.route(partition);
        self.timestamps.clear();
        self.timestamps
            .extend(records.iter().map(|r| r.send_ts_ns.to_le_bytes()));
        let timestamps = &self.timestamps;
        let views: Vec<RecordView<'_>> = records
            .iter()
            .zip(timestamps)
            .map(|(r, ts)| RecordView {
                key: r.key,
                value: r.value,
                headers: vec![(SEND_TS_HEADER.as_bytes(), &ts[..])],
                timestamp_ms: (r.send_ts_ns / 1_000_000) as i64,
                ttl_ms: 0,
            })
            .collect();
        let request = Request::Produce {
            topic: &self.topic,
            partition,
            acks: self.acks,
            producer: None,
            records: views,
        };
        let limits = match slot.and_then(|s| self.links[s].as_ref()) {
            Some(link) => *link.send_limits(),
            None => Limits::new(Limits::FRAME_BYTES_MAX_DEFAULT),
        };
        let mut frame = self
            .pool
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(64 * 1024));
        frame.clear();
        if let Err(e) = encode(
            &Frame::request(correlation_id, request),
            &mut frame,
            &limits,
        ) {
            return Err(DriverError::Protocol {
                target: TARGET,
                addr: self.meta.metadata().source_addr().to_owned(),
                reason: format!("cannot encode the batch: {e}"),
            });
        }
        if self.acks == Acks::None {
            // No answer will come, so nothing can be resent: write it where the table says.
            let result = match slot.and_then(|s| self.links[s].as_mut()) {
                Some(link) => link.write(&frame),
                None => Err(DriverError::Refused {
                    target: TARGET,
                    operation: "produce",
                    message: format!("no reachable leader for {}/{partition}", self.topic),
                }),
            };
            self.pool.push(frame);
            return result.map(|()| None);
        }
        let retained = self.retained_bytes + frame.capacity() <= RETAINED_BYTES_MAX;
        let send_seq = self.next_send_seq;
        self.next_send_seq += 1;
        let written = slot
            .and_then(|s| self.links[s].as_mut().map(|l| (s, l)))
            .map(|(s, link)| (s, link.write(&frame)));
        if retained {
            self.retained_bytes += frame.capacity();
        }
        self.pending.insert(
            correlation_id,
            Pending {
                partition,
                send_seq,
                link: slot,
                frame: retained.then_some(frame),
                resends: 0,
                maybe_twice: false,
                first_failure: None,
                retry_at: Instant::now(),
            },
        );
        match written {
            Some((s, Ok(()))) => {
                if let Some(link) = self.links[s].as_mut() {
                    link.in_flight += 1;
                }
            }
            Some((s, Err(e))) => self.break_link(s, &e),
            None => self.schedule_resend(
                correlation_id,
                &format!("no reachable leader for {}/{partition}", self.topic),
                false,
            ),
        }
        Ok(Some(u64::from(correlation_id)))
    }

    fn recv_ack(&mut self, timeout: Duration) -> Result<Option<Ack>, DriverError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ack) = self.done.pop_front() {
                return Ok(Some(ack));
            }
            if !self.retry.is_empty() {
                self.resend_due();
                if let Some(ack) = self.done.pop_front() {
                    return Ok(Some(ack));
                }
            }
            if let Some(ack) = self.next_buffered()? {
                return Ok(Some(ack));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let next_retry = self
                .retry
                .values()
                .filter_map(|id| self.pending.get(id).map(|p| p.retry_at))
                .min();
            let until = next_retry.map_or(deadline, |at| at.min(deadline));
            self.wait(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified_for_resending() {
        let refusal = |code: ErrorCode, message: &'static str| Response::Error {
            error: code,
            message,
            retry_after_ms: 0,
        };
        let reply = interpret(&refusal(ErrorCode::NotLeader, "leader is node 2 at h:1"));
        assert!(matches!(reply, Ok(Reply::Resend { unknown: false, .. })));
        let reply = interpret(&refusal(ErrorCode::NotEnoughReplicas, "1 of 2 in sync"));
        assert!(matches!(reply, Ok(Reply::Resend { unknown: false, .. })));
        let moved = "leadership moved; the write may or may not be kept: retry";
        let reply = interpret(&refusal(ErrorCode::NotLeader, moved));
        assert!(matches!(reply, Ok(Reply::Resend { unknown: true, .. })));
        let reply = interpret(&refusal(ErrorCode::UnknownTopic, "no such topic"));
        assert!(matches!(reply, Ok(Reply::Unknown(m)) if m.starts_with("UNKNOWN_TOPIC(")));
        let reply = interpret(&refusal(ErrorCode::MessageTooLarge, "too big"));
        assert!(matches!(reply, Ok(Reply::Refused(m)) if m.starts_with("MESSAGE_TOO_LARGE(")));
    }
}
