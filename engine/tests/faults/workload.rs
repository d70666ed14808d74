//! The workload: a seeded PRNG, idempotent `acks=all` producers and tailing consumers, one of each
//! per partition, logging every operation into the shared [`History`]. The consumer group's
//! members are in `group.rs`.

use super::*;

/// A small seeded PRNG (splitmix64): the schedule's order, victims, delays and durations.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 for `n == 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A duration between `lo_ms` and `hi_ms` milliseconds, both included.
    pub(crate) fn millis(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(lo_ms + self.below(hi_ms.saturating_sub(lo_ms) + 1))
    }
}

/// The environment variable `name` as a number (decimal, or hex with `0x`), else `default`.
pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    let Ok(text) = std::env::var(name) else {
        return default;
    };
    let text = text.trim().replace('_', "");
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
    .unwrap_or(default)
}

/// Connect 1 s, request 5 s: a request to an isolated node fails instead of hanging for 30 s.
pub(crate) fn client_config() -> ClientConfig {
    ClientConfig {
        client_name: "faults-test".into(),
        connect_timeout_ms: 1_000,
        request_timeout_ms: 5_000,
        ..ClientConfig::default()
    }
}

/// A routing client bootstrapped from the first of `addrs` that answers.
pub(crate) fn connect(addrs: &[String]) -> Option<ClusterClient> {
    let bootstrap: Vec<&str> = addrs.iter().map(String::as_str).collect();
    ClusterClient::connect_with(&bootstrap, client_config(), RoutingConfig::default()).ok()
}

/// State shared by the test thread, the producers and the consumers.
pub(crate) struct Shared {
    pub(crate) history: History,
    pub(crate) addrs: Vec<String>,
    /// Set at the end: producers finish their batch in flight and stop.
    pub(crate) stop_producers: AtomicBool,
    /// Per partition: a consumer stops once it has read up to here.
    pub(crate) consume_until: Vec<AtomicU64>,
    /// Consumers stop when this passes (set at the end).
    pub(crate) consumer_deadline: Mutex<Option<Instant>>,
    /// Per partition: the offset the consumer reads next.
    pub(crate) consumed: Vec<AtomicU64>,
    /// Client errors (each retried) by "operation: kind".
    pub(crate) errors: Mutex<BTreeMap<String, u64>>,
    /// The consumer group's members: when to stop, how far they got, what happened.
    pub(crate) group: GroupShared,
}

impl Shared {
    /// Counts one client error of `operation` ("produce", "fetch") by its kind.
    pub(crate) fn count_error(&self, operation: &str, e: &ClientError) {
        let key = format!("{operation}: {}", error_kind(e));
        *self.errors.lock().unwrap().entry(key).or_default() += 1;
    }

    pub(crate) fn count_kind(&self, operation: &str, kind: &str) {
        let key = format!("{operation}: {kind}");
        *self.errors.lock().unwrap().entry(key).or_default() += 1;
    }
}

/// The server's error code (`NotLeader`), else the client error's variant (`Connect`).
fn error_kind(e: &ClientError) -> String {
    if let Some(code) = e.code() {
        return format!("{code:?}");
    }
    let debug = format!("{e:?}");
    debug
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("")
        .to_string()
}

/// Ends a writer: its batch may or may not be in the log.
fn ends_writer(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(
            ErrorCode::OutOfOrderSequence
                | ErrorCode::DuplicateSequence
                | ErrorCode::InvalidProducerEpoch
        )
    )
}

/// How long a batch in flight is still retried after `stop_producers` was set.
const STOP_RETRY: Duration = Duration::from_secs(60);
/// Failed tries in a row after which the client is dropped and bootstrapped anew.
pub(crate) const FAILURES_BEFORE_RECONNECT: u32 = 3;

/// One producer: batches of [`BATCH_RECORDS`] values, `acks=all`, one in flight, each sent again
/// with the same sequence until acknowledged. Writer ids are distinct per partition and writer.
pub(crate) fn produce_loop(shared: &Shared, partition: u32) {
    let h = &shared.history;
    let mut client: Option<ClusterClient> = None;
    let mut writers = 0u32;
    'writers: loop {
        writers += 1;
        let writer = partition * 1_000_000 + writers;
        let mut seq = 0u64;
        loop {
            if shared.stop_producers.load(Ordering::Relaxed) {
                return;
            }
            let values: Vec<Vec<u8>> = (0..u64::from(BATCH_RECORDS))
                .map(|i| history::value(writer, seq + i, VALUE_BYTES))
                .collect();
            let records: Vec<RecordView<'_>> = values
                .iter()
                .map(|v| RecordView {
                    key: None,
                    value: v,
                    headers: vec![],
                    timestamp_ms: 0,
                    ttl_ms: 0,
                })
                .collect();
            let ident = ProducerIdent {
                producer_id: u64::from(writer),
                epoch: 0,
                base_sequence: seq as u32,
            };
            let invoked_at = h.now();
            h.log(Event::Invoke {
                at: invoked_at,
                writer,
                partition,
                first_seq: seq,
                count: BATCH_RECORDS,
            });
            let mut stopped: Option<Instant> = None;
            let mut failures = 0u32;
            loop {
                if shared.stop_producers.load(Ordering::Relaxed)
                    && stopped.get_or_insert_with(Instant::now).elapsed() > STOP_RETRY
                {
                    h.log(Event::Info {
                        at: h.now(),
                        writer,
                        partition,
                        first_seq: seq,
                        count: BATCH_RECORDS,
                        reason: "not acknowledged within 60 s of the stop".into(),
                    });
                    return;
                }
                if failures >= FAILURES_BEFORE_RECONNECT {
                    client = None;
                    failures = 0;
                }
                let c = match client.as_mut() {
                    Some(c) => c,
                    None => match connect(&shared.addrs) {
                        Some(c) => client.insert(c),
                        None => {
                            shared.count_kind("produce", "Connect");
                            h.log(Event::Fail {
                                at: h.now(),
                                writer,
                                partition,
                                error: "no node reachable".into(),
                            });
                            std::thread::sleep(Duration::from_millis(200));
                            continue;
                        }
                    },
                };
                match c.produce(TOPIC, partition, Acks::All, Some(ident), &records) {
                    Ok(Some(ack)) => {
                        let leader = c.leader_of(TOPIC, partition).map(|(id, _)| id);
                        h.log(Event::Ok {
                            at: h.now(),
                            invoked_at,
                            writer,
                            partition,
                            first_seq: seq,
                            count: BATCH_RECORDS,
                            base_offset: ack.base_offset,
                            duplicate: ack.duplicate,
                            leader,
                        });
                        seq += u64::from(BATCH_RECORDS);
                        break;
                    }
                    Ok(None) => {
                        shared.count_kind("produce", "NoAck");
                        failures += 1;
                        h.log(Event::Fail {
                            at: h.now(),
                            writer,
                            partition,
                            error: "acks=all produce not answered".into(),
                        });
                    }
                    Err(e) if ends_writer(&e) => {
                        shared.count_error("produce", &e);
                        h.log(Event::Info {
                            at: h.now(),
                            writer,
                            partition,
                            first_seq: seq,
                            count: BATCH_RECORDS,
                            reason: e.to_string(),
                        });
                        continue 'writers;
                    }
                    Err(e) => {
                        shared.count_error("produce", &e);
                        failures += 1;
                        h.log(Event::Fail {
                            at: h.now(),
                            writer,
                            partition,
                            error: e.to_string(),
                        });
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        }
    }
}

/// The most bytes one consumer fetch asks for.
pub(crate) const FETCH_BYTES_MAX: u32 = 1 << 20;

/// One consumer: long polls (200 ms) from where its previous poll ended, logging each non-empty
/// poll, until it has read up to `consume_until[partition]` or the consumer deadline passed.
pub(crate) fn consume_loop(shared: &Shared, partition: u32, consumer: u32) {
    let p = partition as usize;
    let mut client: Option<ClusterClient> = None;
    let mut from = 0u64;
    let mut failures = 0u32;
    loop {
        if from >= shared.consume_until[p].load(Ordering::Relaxed) {
            return;
        }
        if shared
            .consumer_deadline
            .lock()
            .unwrap()
            .is_some_and(|d| Instant::now() > d)
        {
            return;
        }
        if failures >= FAILURES_BEFORE_RECONNECT {
            client = None;
            failures = 0;
        }
        let c = match client.as_mut() {
            Some(c) => c,
            None => match connect(&shared.addrs) {
                Some(c) => client.insert(c),
                None => {
                    shared.count_kind("fetch", "Connect");
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            },
        };
        match c.fetch(TOPIC, partition, from, FETCH_BYTES_MAX, 200) {
            Ok(f) => {
                failures = 0;
                let Some(last) = f.records.last().map(|r| r.offset) else {
                    continue;
                };
                let records = f
                    .records
                    .iter()
                    .map(|r| (r.offset, history::parse_value(&r.value)))
                    .collect();
                shared.history.log(Event::Poll {
                    at: shared.history.now(),
                    consumer,
                    partition,
                    from,
                    records,
                });
                from = last + 1;
                shared.consumed[p].store(from, Ordering::Relaxed);
            }
            Err(e) => {
                shared.count_error("fetch", &e);
                failures += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
