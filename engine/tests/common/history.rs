//! A history of produce attempts, acknowledgements and consumer polls, and a checker that proves
//! from it (plus final reads of every partition) what `RELIABILITY.md` promises: no acknowledged
//! record lost, no duplicate, one value per offset, polls that never go back, no acknowledgement
//! while no majority could have had the record, and replicas that agree after heal.
//!
//! Values are self-describing: [`value`] builds one from (writer, sequence) with a filler derived
//! from both, and [`parse_value`] recognises it, so a corrupted or foreign value is caught too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A record's identity: writer in the high 24 bits, sequence in the low 40.
pub type ValueId = u64;

pub fn value_id(writer: u32, seq: u64) -> ValueId {
    (u64::from(writer) << 40) | (seq & ((1 << 40) - 1))
}

fn filler_byte(id: ValueId, i: usize) -> u8 {
    let x = id
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left((i % 64) as u32)
        ^ i as u64;
    b'a' + (x % 26) as u8
}

/// The value written for (writer, seq): a readable head, then filler up to `len` bytes.
pub fn value(writer: u32, seq: u64, len: usize) -> Vec<u8> {
    let id = value_id(writer, seq);
    let mut v = format!("w{writer}:s{seq}:").into_bytes();
    let head = v.len();
    v.extend((head..len.max(head)).map(|i| filler_byte(id, i)));
    v
}

/// The id of a value [`value`] made, or `None` for anything else (corruption, a foreign value).
pub fn parse_value(v: &[u8]) -> Option<ValueId> {
    let text = std::str::from_utf8(v.get(..v.iter().position(|b| *b == b':')? + 1)?).ok()?;
    let writer: u32 = text.strip_prefix('w')?.strip_suffix(':')?.parse().ok()?;
    let rest = &v[text.len()..];
    let colon = rest.iter().position(|b| *b == b':')?;
    let seq: u64 = std::str::from_utf8(rest.get(1..colon)?)
        .ok()?
        .parse()
        .ok()?;
    if rest.first() != Some(&b's') {
        return None;
    }
    let id = value_id(writer, seq);
    let head = text.len() + colon + 1;
    (v.len() > head && (head..v.len()).all(|i| v[i] == filler_byte(id, i))).then_some(id)
}

/// One entry of the history. Times are since the history started.
#[derive(Clone, Debug)]
pub enum Event {
    /// A batch `first_seq..first_seq + count` of `writer` is sent (once; retries are `Fail`s).
    Invoke {
        at: Duration,
        writer: u32,
        partition: u32,
        first_seq: u64,
        count: u32,
    },
    /// The batch was acknowledged (acks=all) at `base_offset`; `leader` answered.
    Ok {
        at: Duration,
        invoked_at: Duration,
        writer: u32,
        partition: u32,
        first_seq: u64,
        count: u32,
        base_offset: u64,
        duplicate: bool,
        leader: Option<u32>,
    },
    /// One try of the batch failed; it will be sent again (same producer sequence).
    Fail {
        at: Duration,
        writer: u32,
        partition: u32,
        error: String,
    },
    /// The batch was given up with its outcome unknown: it may or may not be in the log.
    Info {
        at: Duration,
        writer: u32,
        partition: u32,
        first_seq: u64,
        count: u32,
        reason: String,
    },
    /// A consumer fetched from `from` and got these (offset, raw value) pairs, in order.
    Poll {
        at: Duration,
        consumer: u32,
        partition: u32,
        from: u64,
        records: Vec<(u64, Option<ValueId>)>,
    },
    /// A consumer-group member learned where to start an assigned partition: the group's
    /// committed offset (`None`: nothing committed, it starts at 0). Asked at `invoked_at`.
    GroupStart {
        at: Duration,
        invoked_at: Duration,
        member: u32,
        partition: u32,
        offset: Option<u64>,
    },
    /// A consumer-group member fetched from `from` and got these (offset, value) pairs.
    GroupPoll {
        at: Duration,
        member: u32,
        partition: u32,
        from: u64,
        records: Vec<(u64, Option<ValueId>)>,
    },
    /// A member's commit of `offset` (the next to read) for `partition`, sent at `invoked_at`,
    /// was acknowledged at `at`.
    GroupCommit {
        at: Duration,
        invoked_at: Duration,
        member: u32,
        partition: u32,
        offset: u64,
    },
}

/// The shared, append-only history.
pub struct History {
    started: Instant,
    events: Mutex<Vec<Event>>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    pub fn new() -> History {
        History {
            started: Instant::now(),
            events: Mutex::new(Vec::new()),
        }
    }

    /// Time since the history started (the `at` of new events).
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// The history time of an instant.
    pub fn time_of(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.started)
    }

    pub fn log(&self, e: Event) {
        self.events.lock().unwrap().push(e);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

/// Gate counts (every one must be 0) and the first examples of each violation.
#[derive(Debug, Default)]
pub struct Report {
    pub gates: BTreeMap<&'static str, u64>,
    pub examples: BTreeMap<&'static str, Vec<String>>,
    pub stats: BTreeMap<&'static str, u64>,
}

const EXAMPLES_MAX: usize = 8;

impl Report {
    /// Counts one violation of `gate` (creating it) with an example.
    pub fn violation(&mut self, gate: &'static str, example: String) {
        *self.gates.entry(gate).or_default() += 1;
        let ex = self.examples.entry(gate).or_default();
        if ex.len() < EXAMPLES_MAX {
            ex.push(example);
        }
    }

    /// Declares `gate` (so it is listed with 0 when nothing violates it).
    pub fn gate(&mut self, gate: &'static str) {
        self.gates.entry(gate).or_default();
    }

    pub fn failed(&self) -> u64 {
        self.gates.values().sum()
    }

    pub fn render(&self) -> String {
        let mut out = String::from("gates:\n");
        for (g, n) in &self.gates {
            out.push_str(&format!("  {g:<28} {n}\n"));
            for e in self.examples.get(g).into_iter().flatten() {
                out.push_str(&format!("      e.g. {e}\n"));
            }
        }
        out.push_str("stats:\n");
        for (s, n) in &self.stats {
            out.push_str(&format!("  {s:<28} {n}\n"));
        }
        out
    }
}

/// The records of one partition read at the end: (offset, value), in order.
pub type PartitionRead = Vec<(u64, Vec<u8>)>;

/// The acknowledgements (`Event::Ok`) of a history.
fn acks(events: &[Event]) -> impl Iterator<Item = &Event> {
    events.iter().filter(|e| matches!(e, Event::Ok { .. }))
}

/// Checks the history against the final reads (`finals[p]` = every record of partition `p`).
/// `no_majority` are windows (history time) in which no acks=all write may be acknowledged: a
/// batch invoked inside one and acknowledged before it ended is a violation.
pub fn check(
    events: &[Event],
    finals: &BTreeMap<u32, PartitionRead>,
    no_majority: &[(Duration, Duration)],
) -> Report {
    let mut r = Report::default();
    for g in [
        "lost_acked",
        "duplicates",
        "inconsistent_offsets",
        "non_monotonic_polls",
        "unexpected_values",
        "phantom_reads",
        "acked_without_majority",
    ] {
        r.gate(g);
    }
    // Every observation of (partition, offset) -> value, from acks, polls and final reads.
    let mut at_offset: HashMap<(u32, u64), BTreeSet<ValueId>> = HashMap::new();
    // Every observed position of a value.
    let mut positions: HashMap<ValueId, BTreeSet<(u32, u64)>> = HashMap::new();
    // Values ever sent, with their partition.
    let mut sent: HashMap<ValueId, u32> = HashMap::new();
    let mut observe = |p: u32, o: u64, id: ValueId| {
        at_offset.entry((p, o)).or_default().insert(id);
        positions.entry(id).or_default().insert((p, o));
    };

    for e in events {
        if let Event::Invoke {
            writer,
            partition,
            first_seq,
            count,
            ..
        } = e
        {
            for s in *first_seq..first_seq + u64::from(*count) {
                sent.insert(value_id(*writer, s), *partition);
            }
        }
    }
    let mut acked_records = 0u64;
    for e in acks(events) {
        let Event::Ok {
            at,
            invoked_at,
            writer,
            partition,
            first_seq,
            count,
            base_offset,
            ..
        } = e
        else {
            continue;
        };
        acked_records += u64::from(*count);
        for i in 0..u64::from(*count) {
            observe(
                *partition,
                base_offset + i,
                value_id(*writer, first_seq + i),
            );
        }
        if let Some((from, to)) = no_majority
            .iter()
            .find(|(from, to)| invoked_at > from && at < to)
        {
            r.violation(
                "acked_without_majority",
                format!(
                    "p{partition} w{writer} s{first_seq}+{count} at {base_offset}: invoked {invoked_at:?}, acked {at:?}, inside {from:?}..{to:?}"
                ),
            );
        }
    }

    // Final reads: every value parseable, sent, in its partition, offsets gap-free.
    let mut final_records = 0u64;
    for (p, recs) in finals {
        let mut expect = recs.first().map(|(o, _)| *o).unwrap_or(0);
        for (o, v) in recs {
            final_records += 1;
            if *o != expect {
                r.violation(
                    "non_monotonic_polls",
                    format!("final read of p{p}: offset {o} where {expect} was next"),
                );
            }
            expect = o + 1;
            match parse_value(v) {
                Some(id) if sent.get(&id) == Some(p) => observe(*p, *o, id),
                Some(id) => {
                    observe(*p, *o, id);
                    r.violation(
                        "unexpected_values",
                        format!("p{p}@{o}: value {id:#x} was never sent to this partition"),
                    );
                }
                None => r.violation(
                    "unexpected_values",
                    format!(
                        "p{p}@{o}: unrecognised value {:?}",
                        String::from_utf8_lossy(&v[..v.len().min(48)])
                    ),
                ),
            }
        }
    }

    // Polls: consecutive offsets from where the consumer asked, each poll where the previous
    // one of that consumer ended, values recognised and present in the final read.
    let final_at: HashMap<(u32, u64), Option<ValueId>> = finals
        .iter()
        .flat_map(|(p, recs)| recs.iter().map(move |(o, v)| ((*p, *o), parse_value(v))))
        .collect();
    let mut next_from: HashMap<(u32, u32), u64> = HashMap::new();
    let (mut polls, mut polled) = (0u64, 0u64);
    for e in events {
        let Event::Poll {
            consumer,
            partition,
            from,
            records,
            at,
        } = e
        else {
            continue;
        };
        polls += 1;
        let key = (*consumer, *partition);
        if let Some(prev) = next_from.get(&key) {
            if from != prev {
                r.violation(
                    "non_monotonic_polls",
                    format!("consumer {consumer} p{partition} at {at:?}: polled from {from}, previous poll ended at {prev}"),
                );
            }
        }
        let mut expect = *from;
        for (o, id) in records {
            polled += 1;
            if *o != expect {
                r.violation(
                    "non_monotonic_polls",
                    format!("consumer {consumer} p{partition} at {at:?}: got offset {o} where {expect} was next"),
                );
            }
            expect = o + 1;
            match id {
                Some(id) => observe(*partition, *o, *id),
                None => r.violation(
                    "unexpected_values",
                    format!("consumer {consumer} polled an unrecognised value at p{partition}@{o}"),
                ),
            }
            if !final_at.contains_key(&(*partition, *o)) {
                r.violation(
                    "phantom_reads",
                    format!("consumer {consumer} saw p{partition}@{o} at {at:?}; the final log does not have it"),
                );
            }
        }
        next_from.insert(key, expect);
    }

    // Lost: an acknowledged value not at its acknowledged offset in the final read.
    for e in acks(events) {
        let Event::Ok {
            writer,
            partition,
            first_seq,
            count,
            base_offset,
            ..
        } = e
        else {
            continue;
        };
        for i in 0..u64::from(*count) {
            let id = value_id(*writer, first_seq + i);
            let o = base_offset + i;
            match final_at.get(&(*partition, o)) {
                Some(Some(got)) if *got == id => {}
                got => r.violation(
                    "lost_acked",
                    format!(
                        "p{partition}@{o}: acked w{writer} s{} ({id:#x}), final read has {got:?}",
                        first_seq + i
                    ),
                ),
            }
        }
    }

    for ((p, o), ids) in &at_offset {
        if ids.len() > 1 {
            r.violation(
                "inconsistent_offsets",
                format!("p{p}@{o} seen with {} values: {ids:x?}", ids.len()),
            );
        }
    }
    for (id, pos) in &positions {
        if pos.len() > 1 {
            r.violation(
                "duplicates",
                format!("value {id:#x} at {} positions: {pos:?}", pos.len()),
            );
        }
    }

    let count = |pred: fn(&Event) -> bool| events.iter().filter(|e| pred(e)).count() as u64;
    r.stats.insert("acked_records", acked_records);
    r.stats
        .insert("acked_batches", count(|e| matches!(e, Event::Ok { .. })));
    r.stats.insert(
        "acked_duplicate_batches",
        count(|e| {
            matches!(
                e,
                Event::Ok {
                    duplicate: true,
                    ..
                }
            )
        }),
    );
    r.stats.insert("sent_records", sent.len() as u64);
    r.stats
        .insert("failed_tries", count(|e| matches!(e, Event::Fail { .. })));
    r.stats.insert(
        "indeterminate_batches",
        count(|e| matches!(e, Event::Info { .. })),
    );
    r.stats.insert("final_records", final_records);
    r.stats.insert("polls", polls);
    r.stats.insert("polled_records", polled);
    r
}

/// For a leader of `partition` killed at `killed_at`: the time until the first acknowledgement
/// that certainly did not come from the dead process (invoked after the kill, or answered by
/// another leader), or `None` when there was none.
pub fn failover_time(
    events: &[Event],
    partition: u32,
    killed_at: Duration,
    victim: u32,
) -> Option<Duration> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Ok {
                at,
                invoked_at,
                partition: p,
                leader,
                ..
            } if *p == partition
                && *at > killed_at
                && (*invoked_at > killed_at || *leader != Some(victim)) =>
            {
                Some(*at - killed_at)
            }
            _ => None,
        })
        .min()
}
