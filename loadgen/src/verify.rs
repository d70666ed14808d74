//! Sequence stamps and the producers' ledger, for checking a run for lost, duplicated or
//! reordered records (`--verify`, `--seq-ledger FILE`, `--verify-ledger FILE`).
//!
//! With stamping on, every record's value starts with a [`STAMP_BYTES`]-byte [`Stamp`]: the magic
//! `LGSQ`, the producer index (u32 little-endian), the producer's record sequence number (u64
//! little-endian; 0, 1, 2, ... in send order over all partitions) and the partition the record
//! was sent to (u32 little-endian). The rest of the value is the usual random payload.
//!
//! Each producer keeps a [`ProducerLedger`]: how many records it sent, which ranges the server
//! refused with an error that means "not written" (they must be absent), and which ranges ended in
//! doubt (no answer by the end of the drain, a broken connection, or an error after which the
//! batch may or may not be stored), and which ranges were sent more than once (a Sprawl producer
//! resends after `NOT_LEADER`, `NOT_ENOUGH_REPLICAS` or a broken connection): those may land after
//! records sent later and, when an earlier send may have been written too, be stored twice.
//! [`crate::checker`] reads the topic back and holds it to that.

use std::sync::Mutex;

use serde_json::{json, Value};

/// Bytes of a stamp at the start of a value.
pub const STAMP_BYTES: usize = 20;
const STAMP_MAGIC: [u8; 4] = *b"LGSQ";
/// Refused or in-doubt ranges one producer keeps at most; beyond it the ledger is marked
/// incomplete and the check refuses to judge.
pub const LEDGER_RANGES_MAX: usize = 1 << 20;

/// What a stamped record says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub producer: u32,
    pub seq: u64,
    pub partition: u32,
}

impl Stamp {
    /// Writes the stamp over the first [`STAMP_BYTES`] of `value`; false when it is too short.
    pub fn write(&self, value: &mut [u8]) -> bool {
        let Some(head) = value.get_mut(..STAMP_BYTES) else {
            return false;
        };
        head[0..4].copy_from_slice(&STAMP_MAGIC);
        head[4..8].copy_from_slice(&self.producer.to_le_bytes());
        head[8..16].copy_from_slice(&self.seq.to_le_bytes());
        head[16..20].copy_from_slice(&self.partition.to_le_bytes());
        true
    }

    /// The stamp at the start of `value`, if it carries one.
    pub fn read(value: &[u8]) -> Option<Stamp> {
        let head = value.get(..STAMP_BYTES)?;
        if head[0..4] != STAMP_MAGIC {
            return None;
        }
        let u32_at =
            |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&head[8..16]);
        Some(Stamp {
            producer: u32_at(4),
            seq: u64::from_le_bytes(seq),
            partition: u32_at(16),
        })
    }
}

/// Consecutive sequence numbers `first..first + count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqRange {
    pub first: u64,
    pub count: u32,
}

impl SeqRange {
    pub fn contains(&self, seq: u64) -> bool {
        seq >= self.first && seq - self.first < u64::from(self.count)
    }
}

/// One producer's account of what it sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerLedger {
    pub producer: u32,
    /// Sequence numbers `0..records_sent` were handed out.
    pub records_sent: u64,
    /// Refused with an error that means the batch was not written: must be absent.
    pub refused: Vec<SeqRange>,
    /// May or may not be stored.
    pub in_doubt: Vec<SeqRange>,
    /// Sent again after a refusal that means "not written": may be stored out of order.
    pub resent: Vec<SeqRange>,
    /// Sent again after an earlier send that may have been written: may be stored out of order
    /// and twice.
    pub resent_maybe_twice: Vec<SeqRange>,
    /// More than [`LEDGER_RANGES_MAX`] ranges of one kind: the ledger cannot be checked.
    pub incomplete: bool,
}

impl ProducerLedger {
    pub fn new(producer: u32) -> Self {
        ProducerLedger {
            producer,
            ..ProducerLedger::default()
        }
    }

    /// Hands out `count` sequence numbers; returns the first.
    pub fn next_seqs(&mut self, count: u32) -> u64 {
        let first = self.records_sent;
        self.records_sent += u64::from(count);
        first
    }

    pub fn refuse(&mut self, first: u64, count: u32) {
        push_range(&mut self.refused, &mut self.incomplete, first, count);
    }

    pub fn doubt(&mut self, first: u64, count: u32) {
        push_range(&mut self.in_doubt, &mut self.incomplete, first, count);
    }

    /// Records that the batch `first..first + count` was sent more than once.
    pub fn note_resent(&mut self, first: u64, count: u32, maybe_twice: bool) {
        let list = if maybe_twice {
            &mut self.resent_maybe_twice
        } else {
            &mut self.resent
        };
        push_range(list, &mut self.incomplete, first, count);
    }

    /// Records a refusal: definite ("not written") errors go to `refused`, the rest in doubt.
    pub fn refusal(&mut self, first: u64, count: u32, message: &str) {
        if refusal_is_definite(message) {
            self.refuse(first, count);
        } else {
            self.doubt(first, count);
        }
    }

    fn to_json(&self) -> Value {
        let ranges =
            |v: &[SeqRange]| -> Value { v.iter().map(|r| json!([r.first, r.count])).collect() };
        json!({
            "producer": self.producer,
            "records_sent": self.records_sent,
            "refused": ranges(&self.refused),
            "in_doubt": ranges(&self.in_doubt),
            "resent": ranges(&self.resent),
            "resent_maybe_twice": ranges(&self.resent_maybe_twice),
            "incomplete": self.incomplete,
        })
    }

    fn from_json(v: &Value) -> Result<Self, LedgerError> {
        let field = |name: &'static str| v.get(name).ok_or(LedgerError::Missing { field: name });
        let u64_of = |name: &'static str| {
            field(name)?
                .as_u64()
                .ok_or(LedgerError::Malformed { field: name })
        };
        let ranges = |name: &'static str| -> Result<Vec<SeqRange>, LedgerError> {
            let list = field(name)?
                .as_array()
                .ok_or(LedgerError::Malformed { field: name })?;
            if list.len() > LEDGER_RANGES_MAX {
                return Err(LedgerError::Malformed { field: name });
            }
            list.iter()
                .map(|r| {
                    match (
                        r.get(0).and_then(Value::as_u64),
                        r.get(1).and_then(Value::as_u64),
                    ) {
                        (Some(first), Some(count)) if count <= u64::from(u32::MAX) => {
                            Ok(SeqRange {
                                first,
                                count: count as u32,
                            })
                        }
                        _ => Err(LedgerError::Malformed { field: name }),
                    }
                })
                .collect()
        };
        Ok(ProducerLedger {
            producer: u32::try_from(u64_of("producer")?)
                .map_err(|_| LedgerError::Malformed { field: "producer" })?,
            records_sent: u64_of("records_sent")?,
            refused: ranges("refused")?,
            in_doubt: ranges("in_doubt")?,
            // Absent from ledgers written before resending existed.
            resent: match v.get("resent") {
                Some(_) => ranges("resent")?,
                None => Vec::new(),
            },
            resent_maybe_twice: match v.get("resent_maybe_twice") {
                Some(_) => ranges("resent_maybe_twice")?,
                None => Vec::new(),
            },
            incomplete: field("incomplete")?
                .as_bool()
                .ok_or(LedgerError::Malformed {
                    field: "incomplete",
                })?,
        })
    }
}

fn push_range(list: &mut Vec<SeqRange>, incomplete: &mut bool, first: u64, count: u32) {
    if count == 0 {
        return;
    }
    if let Some(last) = list.last_mut() {
        if last.first + u64::from(last.count) == first {
            if let Some(sum) = last.count.checked_add(count) {
                last.count = sum;
                return;
            }
        }
    }
    if list.len() >= LEDGER_RANGES_MAX {
        *incomplete = true;
        return;
    }
    list.push(SeqRange { first, count });
}

/// Error codes after which the server has not written the batch (see `net::codec::ErrorCode`);
/// refusals are reported as `NAME(code): message`.
const DEFINITE_REFUSALS: &[&str] = &[
    "NOT_LEADER(",
    "NOT_ENOUGH_REPLICAS(",
    "THROTTLED(",
    "UNKNOWN_TOPIC(",
    "UNKNOWN_PARTITION(",
    "INVALID_REQUEST(",
    "MESSAGE_TOO_LARGE(",
    "FRAME_TOO_LARGE(",
];

/// True when a refusal message names an error that means "not written". A deposed leader
/// answers pending `acks=all` writes `NOT_LEADER` with a message saying the write "may or may
/// not be kept": that one is not definite.
pub fn refusal_is_definite(message: &str) -> bool {
    DEFINITE_REFUSALS.iter().any(|p| message.starts_with(p)) && !message.contains("may or may not")
}

/// Every producer's ledger of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    pub topic: String,
    pub partitions: u32,
    pub producers: Vec<ProducerLedger>,
}

/// A ledger file that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LedgerError {
    #[error("ledger: field {field:?} is missing")]
    Missing { field: &'static str },
    #[error("ledger: field {field:?} has the wrong type or is out of range")]
    Malformed { field: &'static str },
    #[error("ledger: not JSON: {reason}")]
    NotJson { reason: String },
}

impl Ledger {
    pub fn to_json(&self) -> Value {
        json!({
            "format": "loadgen-seq-ledger-1",
            "topic": self.topic,
            "partitions": self.partitions,
            "producers": self.producers.iter().map(ProducerLedger::to_json).collect::<Vec<_>>(),
        })
    }

    pub fn from_json_text(text: &str) -> Result<Ledger, LedgerError> {
        let v: Value = serde_json::from_str(text).map_err(|e| LedgerError::NotJson {
            reason: e.to_string(),
        })?;
        let topic = v
            .get("topic")
            .ok_or(LedgerError::Missing { field: "topic" })?
            .as_str()
            .ok_or(LedgerError::Malformed { field: "topic" })?
            .to_owned();
        let partitions = v
            .get("partitions")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .ok_or(LedgerError::Malformed {
                field: "partitions",
            })?;
        let producers = v
            .get("producers")
            .and_then(Value::as_array)
            .ok_or(LedgerError::Malformed { field: "producers" })?
            .iter()
            .map(ProducerLedger::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ledger {
            topic,
            partitions,
            producers,
        })
    }
}

/// Where producer threads leave their ledgers at the end of a run.
#[derive(Debug, Default)]
pub struct LedgerSink {
    ledgers: Mutex<Vec<ProducerLedger>>,
}

impl LedgerSink {
    pub fn push(&self, ledger: ProducerLedger) {
        self.ledgers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ledger);
    }

    /// The ledgers, by producer index.
    pub fn take(&self) -> Vec<ProducerLedger> {
        let mut v = std::mem::take(&mut *self.ledgers.lock().unwrap_or_else(|e| e.into_inner()));
        v.sort_by_key(|l| l.producer);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_foreign_values_are_not_stamps() {
        let s = Stamp {
            producer: 3,
            seq: 0x0102_0304_0506_0708,
            partition: 9,
        };
        let mut value = vec![0xAAu8; 64];
        assert!(s.write(&mut value));
        assert_eq!(Stamp::read(&value), Some(s));
        assert_eq!(
            value[STAMP_BYTES], 0xAA,
            "the payload after the stamp is kept"
        );
        assert!(!s.write(&mut [0u8; STAMP_BYTES - 1]));
        assert_eq!(Stamp::read(&value[..STAMP_BYTES - 1]), None);
        assert_eq!(Stamp::read(&[0u8; 64]), None);
    }

    #[test]
    fn ranges_merge_and_refusals_are_classified() {
        let mut l = ProducerLedger::new(1);
        assert_eq!(l.next_seqs(4), 0);
        assert_eq!(l.next_seqs(4), 4);
        l.refusal(0, 2, "NOT_LEADER(14): partition moved; retry");
        l.refusal(2, 2, "NOT_LEADER(14): partition moved; retry");
        l.refusal(4, 1, "STORAGE_ERROR(10): disk");
        assert_eq!(l.refused, [SeqRange { first: 0, count: 4 }]);
        assert_eq!(l.in_doubt, [SeqRange { first: 4, count: 1 }]);
        assert!(l.refused[0].contains(3) && !l.refused[0].contains(4));
        assert!(!refusal_is_definite("TIMEOUT(15): slow"));
        assert!(refusal_is_definite("NOT_ENOUGH_REPLICAS(21): 1 in sync"));
        assert!(!refusal_is_definite(
            "NOT_LEADER(14): leadership moved; the write may or may not be kept: retry"
        ));
        l.note_resent(0, 2, false);
        l.note_resent(2, 2, false);
        l.note_resent(6, 1, true);
        assert_eq!(l.resent, [SeqRange { first: 0, count: 4 }]);
        assert_eq!(l.resent_maybe_twice, [SeqRange { first: 6, count: 1 }]);
    }

    #[test]
    fn ledger_json_round_trips_and_bad_files_name_the_field() {
        let mut p = ProducerLedger::new(0);
        p.next_seqs(10);
        p.refuse(2, 3);
        p.doubt(9, 1);
        p.note_resent(4, 2, false);
        p.note_resent(7, 1, true);
        let ledger = Ledger {
            topic: "t".into(),
            partitions: 3,
            producers: vec![p],
        };
        let text = ledger.to_json().to_string();
        assert_eq!(Ledger::from_json_text(&text), Ok(ledger));
        assert_eq!(
            Ledger::from_json_text(r#"{"topic": "t", "partitions": 1}"#),
            Err(LedgerError::Malformed { field: "producers" })
        );
        assert!(matches!(
            Ledger::from_json_text("nope"),
            Err(LedgerError::NotJson { .. })
        ));
    }
}
