//! The Sprawl consumer for a single node: one push subscription per partition, on a connection
//! to the partition's leader (one connection per leader node), with credit granted back as
//! records are consumed. Against a cluster (metadata listing several nodes) consumers use
//! [`super::sprawl_follow::PartitionFollowers`] instead; this type then only serves a consumer
//! whose partitions' leaders moved onto several nodes during its run.
//!
//! With one leader (always so on a single node) a poll blocks on its connection for the whole
//! timeout. With several, connections are polled in turn for at most [`POLL_SLICE`] each (socket
//! read timeouts round up to the kernel tick, so each turn on an idle connection may cost a
//! millisecond or more): slow, which is why cluster consumers use the per-partition threads.
//!
//! A subscription the server ends with a retriable error (the partition's leader moved) is opened
//! again on the new leader at the next offset not yet delivered, for up to [`RESUBSCRIBE_FOR`].

use std::time::{Duration, Instant};

use net::client::{Client, ClientError, ClusterClient, TopicInfo};
use net::codec::ErrorCode;

use super::sprawl::{client_config, leader_addr, refused};
use super::{Delivered, DriverError, Endpoint, SEND_TS_HEADER};
use crate::config::ConsumeFrom;

/// Records a partition-following thread lets the server push ahead.
pub(super) const CONSUMER_CREDITS: u32 = 4_096;
/// Records one consumer lets the server push ahead over all its partitions (each partition gets
/// an equal share, at least [`CONSUMER_CREDITS_MIN`]). One partition gets all of it: a 1 KiB
/// replay of one partition (G6 in docs/benchmarks/peers.md) ran 269-387k msgs/s with it against
/// 245-333k with 4,096, two servers of three replays each, same machine.
pub(super) const CONSUMER_CREDIT_BUDGET: u32 = 32_768;
/// The smallest credit per partition, however many partitions a consumer reads.
pub(super) const CONSUMER_CREDITS_MIN: u32 = 1_024;

/// The credit each of `partitions` partitions of one consumer gets.
pub(super) fn credits_per_partition(partitions: usize) -> u32 {
    let share = CONSUMER_CREDIT_BUDGET as usize / partitions.max(1);
    (share as u32).max(CONSUMER_CREDITS_MIN)
}
/// The longest wait on one leader's connection while others may have records.
pub const POLL_SLICE: Duration = Duration::from_millis(1);
/// How long a partition's subscription is retried on its (new) leader.
pub const RESUBSCRIBE_FOR: Duration = Duration::from_secs(10);
const RESUBSCRIBE_BACKOFF: Duration = Duration::from_millis(100);

struct Sub {
    id: u32,
    partition: u32,
    /// The first offset not delivered yet.
    next_offset: u64,
    /// Records consumed since the last credit grant.
    uncredited: u32,
}

/// One leader's connection and the subscriptions on it.
struct Feed {
    addr: String,
    client: Client,
    subs: Vec<Sub>,
}

pub struct SprawlConsumer {
    topic: String,
    meta: ClusterClient,
    push_queue_max: usize,
    /// The credit granted per partition ([`credits_per_partition`]).
    credits: u32,
    feeds: Vec<Feed>,
    /// The feed polled first next time (round robin over several leaders).
    turn: usize,
}

impl SprawlConsumer {
    pub fn open(
        endpoint: &Endpoint,
        partitions: &[u32],
        from: ConsumeFrom,
    ) -> Result<Self, DriverError> {
        let credits = credits_per_partition(partitions.len());
        // A push carries at least one record, so the credit bounds the queued pushes.
        let push_queue_max = (partitions.len() * credits as usize).max(1_024);
        let meta = ClusterClient::connect(&[endpoint.addr.as_str()], client_config(1))?;
        let mut consumer = SprawlConsumer {
            topic: endpoint.topic.clone(),
            meta,
            push_queue_max,
            credits,
            feeds: Vec::new(),
            turn: 0,
        };
        for (partition, offset) in
            start_offsets(&mut consumer.meta, &endpoint.topic, partitions, from)?
        {
            consumer.subscribe(partition, offset)?;
        }
        Ok(consumer)
    }

    /// Subscribes to `partition` at `offset` on its leader, retrying (with a metadata refresh)
    /// while the leader is unknown, unreachable or answers `NOT_LEADER`.
    fn subscribe(&mut self, partition: u32, offset: u64) -> Result<(), DriverError> {
        let deadline = Instant::now() + RESUBSCRIBE_FOR;
        loop {
            let error = match self.try_subscribe(partition, offset) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let retry = worth_retrying(&self.meta, &self.topic, partition, &error);
            if !retry || Instant::now() >= deadline {
                return Err(error.into());
            }
            std::thread::sleep(RESUBSCRIBE_BACKOFF);
            // A failed load keeps the old table; the next try may still find the leader.
            let _ = self.meta.refresh_metadata();
        }
    }

    fn try_subscribe(&mut self, partition: u32, offset: u64) -> Result<(), ClientError> {
        let Some(addr) = leader_addr(self.meta.metadata(), &self.topic, partition) else {
            return Err(ClientError::NoLeader {
                topic: self.topic.clone(),
                partition,
                leader_node_id: 0,
            });
        };
        let index = match self.feeds.iter().position(|f| f.addr == addr) {
            Some(i) => i,
            None => {
                let client = Client::connect(&addr, client_config(self.push_queue_max))?;
                self.feeds.push(Feed {
                    addr,
                    client,
                    subs: Vec::new(),
                });
                self.feeds.len() - 1
            }
        };
        let feed = &mut self.feeds[index];
        let subscribed = feed
            .client
            .subscribe(&self.topic, partition, offset, self.credits);
        let id = match subscribed {
            Ok(id) => id,
            Err(e) => {
                if !matches!(e, ClientError::Server { .. }) {
                    // The connection is unusable: move its other subscriptions too.
                    self.feeds.swap_remove(index);
                }
                return Err(e);
            }
        };
        feed.subs.push(Sub {
            id,
            partition,
            next_offset: offset,
            uncredited: 0,
        });
        Ok(())
    }

    /// Polls feed `index` for up to `timeout`.
    fn poll_feed(
        &mut self,
        index: usize,
        timeout: Duration,
        on_record: &mut dyn FnMut(Delivered),
    ) -> Result<usize, DriverError> {
        let feed = &mut self.feeds[index];
        let push = match feed.client.next_push(timeout) {
            Ok(Some(push)) => push,
            Ok(None) => return Ok(0),
            Err(e) => {
                // The leader's connection failed: resubscribe every partition it carried.
                let lost = self.feeds.swap_remove(index);
                for sub in lost.subs {
                    self.subscribe(sub.partition, sub.next_offset)?;
                }
                if matches!(e, ClientError::Io { .. } | ClientError::Closed { .. }) {
                    return Ok(0);
                }
                return Err(e.into());
            }
        };
        let Some(pos) = feed.subs.iter().position(|s| s.id == push.subscription_id) else {
            // A push of a subscription already moved elsewhere.
            return Ok(0);
        };
        if let Some((code, message)) = push.ended {
            let sub = feed.subs.swap_remove(pos);
            let moved = code.is_retriable() || code == ErrorCode::UnknownSubscription;
            if !moved {
                return Err(refused("subscription", format!("{code}: {message}")));
            }
            let _ = self.meta.refresh_metadata();
            self.subscribe(sub.partition, sub.next_offset)?;
            return Ok(0);
        }
        for record in &push.records {
            let send_ts_ns = record
                .headers
                .iter()
                .find(|(k, _)| k == SEND_TS_HEADER.as_bytes())
                .and_then(|(_, v)| super::decode_send_ts(v));
            on_record(Delivered {
                send_ts_ns,
                value_bytes: record.value.len() as u64,
            });
        }
        let n = push.records.len();
        let sub = &mut feed.subs[pos];
        if let Some(last) = push.records.last() {
            sub.next_offset = last.offset + 1;
        }
        sub.uncredited += n as u32;
        if sub.uncredited >= self.credits / 2 {
            let grant = sub.uncredited;
            sub.uncredited = 0;
            feed.client.credit(push.subscription_id, grant)?;
        }
        Ok(n)
    }
}

/// True when a failed subscription may succeed later: a retriable error, or `UNKNOWN_TOPIC` /
/// `UNKNOWN_PARTITION` from a leader that has not loaded a topic the routing table lists (lag).
fn worth_retrying(meta: &ClusterClient, topic: &str, partition: u32, error: &ClientError) -> bool {
    let lagging = matches!(
        error.code(),
        Some(ErrorCode::UnknownTopic | ErrorCode::UnknownPartition)
    ) && meta
        .metadata()
        .topic(topic)
        .is_some_and(|t| t.partitions.contains_key(&partition));
    error.is_retriable() || lagging
}

/// Where each of `partitions` starts: its end (`Latest`) or its start (`Earliest`).
pub(super) fn start_offsets(
    meta: &mut ClusterClient,
    topic: &str,
    partitions: &[u32],
    from: ConsumeFrom,
) -> Result<Vec<(u32, u64)>, DriverError> {
    let info: TopicInfo = meta.describe_topic(topic)?;
    partitions
        .iter()
        .map(|&partition| {
            let Some(p) = info.partitions.iter().find(|p| p.partition == partition) else {
                return Err(refused(
                    "subscribe",
                    format!("topic {} has no partition {partition}", info.name),
                ));
            };
            let offset = match from {
                ConsumeFrom::Latest => p.end_offset,
                ConsumeFrom::Earliest => p.start_offset,
            };
            Ok((partition, offset))
        })
        .collect()
}

/// Subscribes to `partition` at `offset` on its leader over a new connection, retrying (with a
/// metadata refresh) for up to [`RESUBSCRIBE_FOR`] while the leader is unknown, unreachable,
/// answers a retriable error, or has not loaded a topic the routing table lists.
pub(super) fn subscribe_on_leader(
    meta: &mut ClusterClient,
    topic: &str,
    partition: u32,
    offset: u64,
) -> Result<(Client, u32), DriverError> {
    let deadline = Instant::now() + RESUBSCRIBE_FOR;
    loop {
        let attempt = leader_addr(meta.metadata(), topic, partition)
            .ok_or_else(|| ClientError::NoLeader {
                topic: topic.to_owned(),
                partition,
                leader_node_id: 0,
            })
            .and_then(|addr| {
                let mut client = Client::connect(&addr, client_config(1_024))?;
                let id = client.subscribe(topic, partition, offset, CONSUMER_CREDITS)?;
                Ok((client, id))
            });
        let error = match attempt {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        if !worth_retrying(meta, topic, partition, &error) || Instant::now() >= deadline {
            return Err(error.into());
        }
        std::thread::sleep(RESUBSCRIBE_BACKOFF);
        let _ = meta.refresh_metadata();
    }
}

impl super::ConsumerConn for SprawlConsumer {
    fn poll(
        &mut self,
        timeout: Duration,
        on_record: &mut dyn FnMut(Delivered),
    ) -> Result<usize, DriverError> {
        match self.feeds.len() {
            0 => {
                std::thread::sleep(timeout);
                Ok(0)
            }
            1 => self.poll_feed(0, timeout, on_record),
            _ => {
                let deadline = Instant::now() + timeout;
                loop {
                    let now = Instant::now();
                    if now >= deadline || self.feeds.is_empty() {
                        return Ok(0);
                    }
                    let index = self.turn % self.feeds.len();
                    self.turn = index + 1;
                    let slice = (deadline - now).min(POLL_SLICE);
                    let n = self.poll_feed(index, slice, on_record)?;
                    if n > 0 {
                        return Ok(n);
                    }
                }
            }
        }
    }
}
