//! Idempotent-producer state: the last few batches per producer, enough to answer a retry with the
//! offsets it got the first time and to reject gaps and fenced epochs.

use std::collections::{HashMap, VecDeque};

use crate::error::StorageError;

/// Producer identity and sequence carried by an idempotent append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: u64,
    pub epoch: u16,
    pub base_sequence: u32,
}

/// Batches remembered per producer (Kafka keeps the same number of in-flight batches).
pub const PRODUCER_BATCHES_KEPT: usize = 5;
/// Producers remembered per partition; the least recently appended one is forgotten beyond this.
pub const PRODUCERS_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_sequence: u32,
    last_sequence: u32,
    base_offset: u64,
    last_offset: u64,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: u16,
    batches: VecDeque<BatchMeta>,
    last_seen_offset: u64,
}

/// What `check` decided about an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    Append,
    Duplicate { base_offset: u64, last_offset: u64 },
}

#[derive(Debug, Default)]
pub(crate) struct ProducerStates {
    producers: HashMap<u64, ProducerEntry>,
}

impl ProducerStates {
    pub fn clear(&mut self) {
        self.producers.clear();
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Validates a batch of `record_count` records from `p` without changing state.
    pub fn check(
        &self,
        p: &ProducerInfo,
        record_count: u32,
    ) -> Result<SequenceCheck, StorageError> {
        let Some(entry) = self.producers.get(&p.producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if p.epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id: p.producer_id,
                current: entry.epoch,
                got: p.epoch,
            });
        }
        if p.epoch > entry.epoch {
            if p.base_sequence != 0 {
                return Err(StorageError::OutOfOrderSequence {
                    producer_id: p.producer_id,
                    epoch: p.epoch,
                    expected: 0,
                    got: p.base_sequence,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        let last_sequence = p.base_sequence.wrapping_add(record_count - 1);
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == p.base_sequence && b.last_sequence == last_sequence)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
            });
        }
        let expected = entry
            .batches
            .back()
            .map_or(p.base_sequence, |b| b.last_sequence.wrapping_add(1));
        if p.base_sequence != expected {
            return Err(StorageError::OutOfOrderSequence {
                producer_id: p.producer_id,
                epoch: p.epoch,
                expected,
                got: p.base_sequence,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records an appended (or recovered) batch.
    pub fn record(
        &mut self,
        p: &ProducerInfo,
        record_count: u32,
        base_offset: u64,
        last_offset: u64,
    ) {
        if !self.producers.contains_key(&p.producer_id) && self.producers.len() >= PRODUCERS_MAX {
            if let Some(oldest) = self
                .producers
                .iter()
                .min_by_key(|(_, e)| e.last_seen_offset)
                .map(|(id, _)| *id)
            {
                self.producers.remove(&oldest);
            }
        }
        let entry = self.producers.entry(p.producer_id).or_default();
        if p.epoch != entry.epoch {
            entry.epoch = p.epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == PRODUCER_BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_sequence: p.base_sequence,
            last_sequence: p.base_sequence.wrapping_add(record_count - 1),
            base_offset,
            last_offset,
        });
        entry.last_seen_offset = last_offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(epoch: u16, seq: u32) -> ProducerInfo {
        ProducerInfo {
            producer_id: 7,
            epoch,
            base_sequence: seq,
        }
    }

    #[test]
    fn sequence_rules() {
        let mut s = ProducerStates::default();
        assert_eq!(s.check(&p(0, 0), 3).unwrap(), SequenceCheck::Append);
        s.record(&p(0, 0), 3, 10, 12);
        assert_eq!(
            s.check(&p(0, 0), 3).unwrap(),
            SequenceCheck::Duplicate {
                base_offset: 10,
                last_offset: 12
            }
        );
        assert!(matches!(
            s.check(&p(0, 4), 1),
            Err(StorageError::OutOfOrderSequence { expected: 3, .. })
        ));
        assert_eq!(s.check(&p(0, 3), 1).unwrap(), SequenceCheck::Append);
        s.record(&p(1, 0), 1, 13, 13);
        assert!(matches!(
            s.check(&p(0, 3), 1),
            Err(StorageError::InvalidProducerEpoch { current: 1, .. })
        ));
        assert!(matches!(
            s.check(&p(2, 5), 1),
            Err(StorageError::OutOfOrderSequence { expected: 0, .. })
        ));
    }

    #[test]
    fn keeps_only_last_five_batches() {
        let mut s = ProducerStates::default();
        for i in 0..7u32 {
            s.record(&p(0, i), 1, u64::from(i), u64::from(i));
        }
        assert!(matches!(
            s.check(&p(0, 1), 1),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
        assert_eq!(
            s.check(&p(0, 2), 1).unwrap(),
            SequenceCheck::Duplicate {
                base_offset: 2,
                last_offset: 2
            }
        );
    }
}
