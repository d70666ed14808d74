//! The checker: reads every partition of a topic from its start and holds the stamped records
//! (see [`crate::verify`]) to the producers' ledger.
//!
//! Per producer, a record sent and neither refused nor in doubt must be stored (else **lost**),
//! at most once (else **duplicated**), in the partition it was sent to (else **misplaced**), and
//! within a partition one producer's sequence numbers must increase (else **reordered**). A
//! record the server refused with a "not written" error must be absent (else
//! **refused_but_stored**). Records without a stamp, or from a producer the ledger does not know,
//! are violations too: the check covers the whole topic. A record its producer sent more than
//! once (see [`crate::verify::ProducerLedger::resent`]) is exempt from the order check, and from
//! the duplicate check when an earlier send may have been written; such records are counted apart.
//!
//! Each partition is read from its leader ([`ClusterClient`]), so a cluster is checked through
//! any one node's address.

use std::time::{Duration, Instant};

use net::client::{ClientConfig, ClusterClient};
use serde_json::{json, Value};

use crate::verify::{Ledger, SeqRange, Stamp};

/// Largest `records_sent` of one producer the checker takes (its bitmap is 1 bit per record).
pub const RECORDS_PER_PRODUCER_MAX: u64 = 1 << 30;
/// Examples of violations kept for the report.
const EXAMPLES_MAX: usize = 20;
/// Bytes asked for per fetch.
const FETCH_BYTES: u32 = 1 << 20;
/// How long a partition may return nothing below its end offset (a replicated partition's
/// consumers read up to the high watermark, which can trail the end briefly).
const STALL_MAX: Duration = Duration::from_secs(10);
/// Long-poll of a fetch that returned nothing.
const STALL_WAIT_MS: u32 = 200;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("the ledger of producer {producer} is incomplete (more than the ranges it can keep)")]
    IncompleteLedger { producer: u32 },
    #[error("producer {producer} sent {records_sent} records, above the checker's limit {max}")]
    TooManyRecords {
        producer: u32,
        records_sent: u64,
        max: u64,
    },
    #[error("the ledger lists producer {producer} twice")]
    DuplicateProducer { producer: u32 },
    #[error("reading {topic}/{partition} at offset {offset}: {source}")]
    Read {
        topic: String,
        partition: u32,
        offset: u64,
        source: Box<net::client::ClientError>,
    },
    #[error("describing topic {topic}: {source}")]
    Describe {
        topic: String,
        source: Box<net::client::ClientError>,
    },
    #[error(
        "{topic}/{partition}: fetch at offset {offset} returned nothing before end {end_offset}"
    )]
    Stalled {
        topic: String,
        partition: u32,
        offset: u64,
        end_offset: u64,
    },
}

struct ProducerState {
    records_sent: u64,
    seen: Vec<u64>,
    /// Highest sequence number seen per partition.
    last: Vec<Option<u64>>,
    refused: Vec<SeqRange>,
    in_doubt: Vec<SeqRange>,
    resent: Vec<SeqRange>,
    resent_maybe_twice: Vec<SeqRange>,
}

fn in_ranges(ranges: &[SeqRange], seq: u64) -> bool {
    // Sorted by `first` in `Checker::new`; ranges of one producer never overlap.
    let i = ranges.partition_point(|r| r.first <= seq);
    i > 0 && ranges[i - 1].contains(seq)
}

/// Counts of what the check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub records_read: u64,
    pub records_expected: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub misplaced: u64,
    pub refused_but_stored: u64,
    pub unstamped: u64,
    pub unknown_producer: u64,
    pub refused: u64,
    pub in_doubt_stored: u64,
    pub in_doubt_absent: u64,
    /// Resent records stored out of order (allowed: see the module docs).
    pub resent_reordered: u64,
    /// Second copies of records resent after a send that may have been written (allowed).
    pub resent_duplicated: u64,
    pub examples: Vec<String>,
}

impl Verdict {
    /// True when nothing was lost, duplicated, reordered, misplaced or stored despite a refusal.
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.reordered == 0
            && self.misplaced == 0
            && self.refused_but_stored == 0
            && self.unstamped == 0
            && self.unknown_producer == 0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "ok": self.ok(),
            "records_read": self.records_read,
            "records_expected": self.records_expected,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "misplaced": self.misplaced,
            "refused_but_stored": self.refused_but_stored,
            "unstamped": self.unstamped,
            "unknown_producer": self.unknown_producer,
            "refused_absent": self.refused,
            "in_doubt_stored": self.in_doubt_stored,
            "in_doubt_absent": self.in_doubt_absent,
            "resent_reordered": self.resent_reordered,
            "resent_duplicated": self.resent_duplicated,
            "examples": self.examples,
        })
    }

    fn example(&mut self, text: impl FnOnce() -> String) {
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(text());
        }
    }
}

/// Checks records one at a time against a ledger.
pub struct Checker {
    producers: Vec<Option<ProducerState>>,
    partitions: u32,
    verdict: Verdict,
}

impl Checker {
    pub fn new(ledger: &Ledger) -> Result<Checker, CheckError> {
        let mut producers: Vec<Option<ProducerState>> = Vec::new();
        for p in &ledger.producers {
            if p.incomplete {
                return Err(CheckError::IncompleteLedger {
                    producer: p.producer,
                });
            }
            if p.records_sent > RECORDS_PER_PRODUCER_MAX {
                return Err(CheckError::TooManyRecords {
                    producer: p.producer,
                    records_sent: p.records_sent,
                    max: RECORDS_PER_PRODUCER_MAX,
                });
            }
            let index = p.producer as usize;
            if producers.len() <= index {
                producers.resize_with(index + 1, || None);
            }
            if producers[index].is_some() {
                return Err(CheckError::DuplicateProducer {
                    producer: p.producer,
                });
            }
            // Refusals are noted in the order answers arrive, which need not be send order.
            let (mut refused, mut in_doubt) = (p.refused.clone(), p.in_doubt.clone());
            let (mut resent, mut resent_maybe_twice) =
                (p.resent.clone(), p.resent_maybe_twice.clone());
            for list in [
                &mut refused,
                &mut in_doubt,
                &mut resent,
                &mut resent_maybe_twice,
            ] {
                list.sort_unstable_by_key(|r| r.first);
            }
            producers[index] = Some(ProducerState {
                records_sent: p.records_sent,
                seen: vec![0; p.records_sent.div_ceil(64) as usize],
                last: vec![None; ledger.partitions as usize],
                refused,
                in_doubt,
                resent,
                resent_maybe_twice,
            });
        }
        Ok(Checker {
            producers,
            partitions: ledger.partitions,
            verdict: Verdict::default(),
        })
    }

    /// One stored record of `partition` at `offset`.
    pub fn observe(&mut self, partition: u32, offset: u64, value: &[u8]) {
        let v = &mut self.verdict;
        v.records_read += 1;
        let Some(stamp) = Stamp::read(value) else {
            v.unstamped += 1;
            v.example(|| format!("partition {partition} offset {offset}: no stamp"));
            return;
        };
        let state = self
            .producers
            .get_mut(stamp.producer as usize)
            .and_then(Option::as_mut)
            .filter(|s| stamp.seq < s.records_sent);
        let Some(state) = state else {
            v.unknown_producer += 1;
            v.example(|| {
                format!("partition {partition} offset {offset}: {stamp:?} not in the ledger")
            });
            return;
        };
        if stamp.partition != partition {
            v.misplaced += 1;
            v.example(|| format!("partition {partition} offset {offset}: {stamp:?} was sent to another partition"));
        }
        let (word, bit) = ((stamp.seq / 64) as usize, 1u64 << (stamp.seq % 64));
        let maybe_twice = in_ranges(&state.resent_maybe_twice, stamp.seq);
        let resent = maybe_twice || in_ranges(&state.resent, stamp.seq);
        if state.seen[word] & bit != 0 && maybe_twice {
            v.resent_duplicated += 1;
            return;
        }
        if state.seen[word] & bit != 0 {
            v.duplicated += 1;
            v.example(|| {
                format!(
                    "partition {partition} offset {offset}: producer {} seq {} stored again",
                    stamp.producer, stamp.seq
                )
            });
            return;
        }
        state.seen[word] |= bit;
        if resent {
            // Resent records may land after later ones; they do not move the order mark either.
            let last = state.last.get(partition as usize).copied().flatten();
            if last.is_some_and(|prev| stamp.seq < prev) {
                v.resent_reordered += 1;
            }
            return;
        }
        if let Some(last) = state.last.get_mut(partition as usize) {
            match *last {
                Some(prev) if stamp.seq < prev => {
                    v.reordered += 1;
                    v.example(|| format!("partition {partition} offset {offset}: producer {} seq {} after seq {prev}", stamp.producer, stamp.seq));
                }
                _ => *last = Some(stamp.seq),
            }
        }
    }

    /// Accounts for the records that never showed up and returns the verdict.
    pub fn finish(mut self) -> Verdict {
        let v = &mut self.verdict;
        for (index, state) in self.producers.iter().enumerate() {
            let Some(s) = state else { continue };
            for seq in 0..s.records_sent {
                let seen = s.seen[(seq / 64) as usize] & (1u64 << (seq % 64)) != 0;
                if in_ranges(&s.refused, seq) {
                    if seen {
                        v.refused_but_stored += 1;
                        v.example(|| format!("producer {index} seq {seq}: refused, yet stored"));
                    } else {
                        v.refused += 1;
                    }
                } else if in_ranges(&s.in_doubt, seq) {
                    if seen {
                        v.in_doubt_stored += 1;
                    } else {
                        v.in_doubt_absent += 1;
                    }
                } else {
                    v.records_expected += 1;
                    if !seen {
                        v.lost += 1;
                        v.example(|| {
                            format!("producer {index} seq {seq}: acknowledged, not stored")
                        });
                    }
                }
            }
        }
        self.verdict
    }

    /// Partitions the ledger names.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }
}

/// Reads every partition of the ledger's topic from its start, each from its leader (found
/// through the Sprawl node at `addr`), and checks it.
pub fn check_topic(addr: &str, ledger: &Ledger) -> Result<Verdict, CheckError> {
    let mut checker = Checker::new(ledger)?;
    let topic = ledger.topic.clone();
    let config = ClientConfig {
        client_name: format!("loadgen-checker/{}", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    };
    let mut client =
        ClusterClient::connect(&[addr], config).map_err(|source| CheckError::Describe {
            topic: topic.clone(),
            source: Box::new(source),
        })?;
    let info = client
        .describe_topic(&topic)
        .map_err(|source| CheckError::Describe {
            topic: topic.clone(),
            source: Box::new(source),
        })?;
    for p in &info.partitions {
        let mut offset = p.start_offset;
        let mut stalled_since: Option<Instant> = None;
        while offset < p.end_offset {
            let wait_ms = if stalled_since.is_some() {
                STALL_WAIT_MS
            } else {
                0
            };
            let fetched = client
                .fetch(&topic, p.partition, offset, FETCH_BYTES, wait_ms)
                .map_err(|source| CheckError::Read {
                    topic: topic.clone(),
                    partition: p.partition,
                    offset,
                    source: Box::new(source),
                })?;
            let Some(last) = fetched.records.last() else {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() < STALL_MAX {
                    continue;
                }
                return Err(CheckError::Stalled {
                    topic: topic.clone(),
                    partition: p.partition,
                    offset,
                    end_offset: p.end_offset,
                });
            };
            stalled_since = None;
            offset = last.offset + 1;
            for r in &fetched.records {
                checker.observe(p.partition, r.offset, &r.value);
            }
        }
    }
    Ok(checker.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{ProducerLedger, STAMP_BYTES};

    fn value(producer: u32, seq: u64, partition: u32) -> Vec<u8> {
        let mut v = vec![7u8; STAMP_BYTES + 4];
        Stamp {
            producer,
            seq,
            partition,
        }
        .write(&mut v);
        v
    }

    fn ledger(sent: u64, refused: &[(u64, u32)], doubt: &[(u64, u32)]) -> Ledger {
        let mut p = ProducerLedger::new(0);
        p.next_seqs(sent as u32);
        for &(f, c) in refused {
            p.refuse(f, c);
        }
        for &(f, c) in doubt {
            p.doubt(f, c);
        }
        Ledger {
            topic: "t".into(),
            partitions: 2,
            producers: vec![p],
        }
    }

    #[test]
    fn a_clean_log_passes_with_refusals_and_doubts_accounted() {
        // seqs 0..6: 2 and 3 refused, 5 in doubt (and stored); 0, 1, 4 over two partitions.
        let mut c = Checker::new(&ledger(6, &[(2, 2)], &[(5, 1)])).unwrap();
        c.observe(0, 0, &value(0, 0, 0));
        c.observe(1, 0, &value(0, 1, 1));
        c.observe(0, 1, &value(0, 4, 0));
        c.observe(1, 1, &value(0, 5, 1));
        let v = c.finish();
        assert!(v.ok(), "{v:?}");
        assert_eq!(
            (v.records_expected, v.refused, v.in_doubt_stored),
            (3, 2, 1)
        );
    }

    #[test]
    fn loss_duplicates_reordering_and_stored_refusals_are_each_caught() {
        let mut c = Checker::new(&ledger(5, &[(4, 1)], &[])).unwrap();
        c.observe(0, 0, &value(0, 2, 0));
        c.observe(0, 1, &value(0, 0, 0)); // reordered
        c.observe(0, 2, &value(0, 2, 0)); // duplicated
        c.observe(1, 0, &value(0, 3, 0)); // misplaced
        c.observe(1, 1, &value(0, 4, 1)); // refused, yet stored
        c.observe(1, 2, b"plain"); // unstamped
        c.observe(1, 3, &value(9, 0, 1)); // unknown producer
        let v = c.finish();
        assert!(!v.ok());
        assert_eq!(v.lost, 1, "seq 1 never arrived: {v:?}");
        assert_eq!(v.reordered, 1);
        assert_eq!(v.duplicated, 1);
        assert_eq!(v.misplaced, 1);
        assert_eq!(v.refused_but_stored, 1);
        assert_eq!(v.unstamped, 1);
        assert_eq!(v.unknown_producer, 1);
        assert!(!v.examples.is_empty());
    }

    #[test]
    fn resent_records_may_land_late_and_twice_only_when_the_ledger_says_so() {
        // seqs 0..6 on partition 0: 1 resent after a refusal, 2 resent after a broken connection.
        let mut l = ledger(6, &[], &[]);
        l.producers[0].note_resent(1, 1, false);
        l.producers[0].note_resent(2, 1, true);
        let mut c = Checker::new(&l).unwrap();
        for (offset, seq) in [0u64, 2, 3, 4, 1, 2, 5].into_iter().enumerate() {
            c.observe(0, offset as u64, &value(0, seq, 0));
        }
        let v = c.finish();
        assert!(v.ok(), "{v:?}");
        assert_eq!((v.resent_reordered, v.resent_duplicated), (1, 1));

        // The same log without the resends in the ledger: 1 is reordered, 2 duplicated.
        let mut c = Checker::new(&ledger(6, &[], &[])).unwrap();
        for (offset, seq) in [0u64, 2, 3, 4, 1, 2, 5].into_iter().enumerate() {
            c.observe(0, offset as u64, &value(0, seq, 0));
        }
        let v = c.finish();
        assert_eq!((v.reordered, v.duplicated), (1, 1), "{v:?}");

        // A record resent after a plain refusal may not be stored twice.
        let mut l = ledger(2, &[], &[]);
        l.producers[0].note_resent(1, 1, false);
        let mut c = Checker::new(&l).unwrap();
        for (offset, seq) in [0u64, 1, 1].into_iter().enumerate() {
            c.observe(0, offset as u64, &value(0, seq, 0));
        }
        assert_eq!(c.finish().duplicated, 1);
    }

    #[test]
    fn an_incomplete_ledger_is_refused() {
        let mut l = ledger(1, &[], &[]);
        l.producers[0].incomplete = true;
        assert!(matches!(
            Checker::new(&l),
            Err(CheckError::IncompleteLedger { producer: 0 })
        ));
    }
}
