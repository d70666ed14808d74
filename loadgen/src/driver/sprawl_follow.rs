//! The Sprawl consumer against a cluster: one thread per partition follows the partition's
//! leader (its own connection and push subscription) and hands the records to the consumer
//! through a bounded channel, so the consumer waits on all leaders at once with a precise
//! timeout (`net::client::Client` exposes no socket to `poll` several of, and socket read
//! timeouts round up to the kernel's tick, far too coarse to take turns between connections).
//!
//! A partition thread grants credit back as it hands records over (the channel, bounded to
//! [`CHANNEL_PUSHES_MAX`] pushes, is the consumer's backlog). When the server ends its
//! subscription with a retriable error or the connection fails (the leader moved or died), it
//! subscribes again on the new leader at the first offset not yet handed over, for up to
//! [`super::sprawl_consumer::RESUBSCRIBE_FOR`]. One consumer follows at most
//! [`PARTITIONS_PER_CONSUMER_MAX`] partitions (a thread each).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use net::client::{Client, ClusterClient};

use super::sprawl::{client_config, refused};
use super::sprawl_consumer::{start_offsets, subscribe_on_leader, CONSUMER_CREDITS};
use super::{ConsumerConn, Delivered, DriverError, Endpoint, SEND_TS_HEADER};
use crate::config::ConsumeFrom;

/// Pushes waiting for the consumer, over all its partitions.
pub const CHANNEL_PUSHES_MAX: usize = 1_024;
/// Partition threads one consumer may start.
pub const PARTITIONS_PER_CONSUMER_MAX: usize = 256;
/// How long a partition thread waits for a push before it looks at the stop flag.
const PUSH_WAIT: Duration = Duration::from_millis(50);

enum Msg {
    Records(Vec<Delivered>),
    Failed { partition: u32, error: String },
}

/// A consumer whose partitions each have a following thread.
pub struct PartitionFollowers {
    rx: Receiver<Msg>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// One partition's subscription as a thread takes it over.
pub(super) struct Followed {
    pub partition: u32,
    pub client: Client,
    pub subscription_id: u32,
    pub next_offset: u64,
}

impl PartitionFollowers {
    /// Subscribes to each of `partitions` on its leader (through the node at `endpoint.addr`)
    /// and starts its thread.
    pub fn open(
        endpoint: &Endpoint,
        partitions: &[u32],
        from: ConsumeFrom,
    ) -> Result<Self, DriverError> {
        let mut meta = ClusterClient::connect(&[endpoint.addr.as_str()], client_config(1))?;
        let topic = endpoint.topic.as_str();
        let mut subscribed = Vec::with_capacity(partitions.len());
        for (partition, offset) in start_offsets(&mut meta, topic, partitions, from)? {
            let (client, subscription_id) =
                subscribe_on_leader(&mut meta, topic, partition, offset)?;
            subscribed.push(Followed {
                partition,
                client,
                subscription_id,
                next_offset: offset,
            });
        }
        Self::start(&endpoint.addr, topic, subscribed)
    }

    /// Starts one thread per already-subscribed partition. `addr` is the node metadata is
    /// reloaded from.
    pub(super) fn start(
        addr: &str,
        topic: &str,
        subscribed: Vec<Followed>,
    ) -> Result<Self, DriverError> {
        if subscribed.len() > PARTITIONS_PER_CONSUMER_MAX {
            return Err(refused(
                "subscribe",
                format!(
                    "{} partitions for one consumer; at most {PARTITIONS_PER_CONSUMER_MAX} against a cluster (add --consumers)",
                    subscribed.len()
                ),
            ));
        }
        let (tx, rx) = sync_channel(CHANNEL_PUSHES_MAX);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(subscribed.len());
        for followed in subscribed {
            let (thread_tx, thread_stop) = (tx.clone(), stop.clone());
            let (addr, topic) = (addr.to_owned(), topic.to_owned());
            let spawned = std::thread::Builder::new()
                .name(format!("lg-follow-{}", followed.partition))
                .spawn(move || follow(&addr, &topic, followed, &thread_tx, &thread_stop));
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(refused("subscribe", format!("cannot start a thread: {e}")));
                }
            }
        }
        Ok(PartitionFollowers { rx, stop, threads })
    }
}

impl Drop for PartitionFollowers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblocks threads waiting to hand records over.
        while self.rx.try_recv().is_ok() {}
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl ConsumerConn for PartitionFollowers {
    fn poll(
        &mut self,
        timeout: Duration,
        on_record: &mut dyn FnMut(Delivered),
    ) -> Result<usize, DriverError> {
        match self.rx.recv_timeout(timeout) {
            Ok(Msg::Records(records)) => {
                let n = records.len();
                for d in records {
                    on_record(d);
                }
                Ok(n)
            }
            Ok(Msg::Failed { partition, error }) => Err(refused(
                "subscription",
                format!("partition {partition}: {error}"),
            )),
            Err(RecvTimeoutError::Timeout) => Ok(0),
            Err(RecvTimeoutError::Disconnected) => Err(refused(
                "subscription",
                "every partition thread ended".to_owned(),
            )),
        }
    }
}

/// A partition thread: hands pushes over until `stop`, following the leader when it moves.
fn follow(addr: &str, topic: &str, mut f: Followed, tx: &SyncSender<Msg>, stop: &AtomicBool) {
    let mut uncredited = 0u32;
    let mut meta: Option<ClusterClient> = None;
    while !stop.load(Ordering::Relaxed) {
        let moved = match f.client.next_push(PUSH_WAIT) {
            Ok(None) => false,
            Ok(Some(push)) if push.subscription_id != f.subscription_id => false,
            Ok(Some(push)) => match push.ended {
                Some((code, _)) if code.is_retriable() => true,
                Some((code, message)) => {
                    let error = format!("{code}: {message}");
                    let _ = tx.send(Msg::Failed {
                        partition: f.partition,
                        error,
                    });
                    return;
                }
                None => {
                    if let Some(last) = push.records.last() {
                        f.next_offset = last.offset + 1;
                    }
                    let records: Vec<Delivered> = push
                        .records
                        .iter()
                        .map(|r| Delivered {
                            send_ts_ns: r
                                .headers
                                .iter()
                                .find(|(k, _)| k == SEND_TS_HEADER.as_bytes())
                                .and_then(|(_, v)| super::decode_send_ts(v)),
                            value_bytes: r.value.len() as u64,
                        })
                        .collect();
                    uncredited += records.len() as u32;
                    if tx.send(Msg::Records(records)).is_err() {
                        return;
                    }
                    if uncredited >= CONSUMER_CREDITS / 2 {
                        let grant = std::mem::take(&mut uncredited);
                        // A failed grant shows up as a failed read next.
                        let _ = f.client.credit(f.subscription_id, grant);
                    }
                    false
                }
            },
            Err(_) => true,
        };
        if !moved || stop.load(Ordering::Relaxed) {
            continue;
        }
        let resubscribed = meta
            .take()
            .map_or_else(
                || ClusterClient::connect(&[addr], client_config(1)).map_err(DriverError::from),
                Ok,
            )
            .and_then(|mut m| {
                let _ = m.refresh_metadata();
                let got = subscribe_on_leader(&mut m, topic, f.partition, f.next_offset);
                meta = Some(m);
                got
            });
        match resubscribed {
            Ok((client, subscription_id)) => {
                f.client = client;
                f.subscription_id = subscription_id;
                uncredited = 0;
            }
            Err(e) => {
                let _ = tx.send(Msg::Failed {
                    partition: f.partition,
                    error: e.to_string(),
                });
                return;
            }
        }
    }
}
