//! Appending batches exactly as another log stored them: what a follower does with the batches it
//! fetched from its partition's leader. The bytes are copied verbatim (same offsets, timestamps,
//! expiries, producer ids and sequences, compression, CRC), so the follower's log is byte-identical
//! to the leader's and a later leader serves the same batches. Nothing is re-encoded.
//!
//! A replica batch must start exactly at the log's end (a gap or an overlap is refused: the caller
//! truncates to the leader's epoch boundary first, `PartitionLog::truncate_to`), must verify
//! (header, length, CRC) and must fit the batch size limit. Producer state is recorded as on the
//! leader, so a follower that becomes leader deduplicates retries of batches it only replicated.

use crate::error::StorageError;
use crate::format::{BatchHeader, NO_PRODUCER_ID};
use crate::log::{AppendOutcome, PartitionLog};
use crate::producer::ProducerInfo;

impl PartitionLog {
    /// Appends one stored batch (`batch` is the whole batch, header included, as
    /// [`FetchedBatch::bytes`] gives it) at its own offsets. On `Err` nothing was written.
    ///
    /// Errors: [`StorageError::Corrupt`] when the bytes do not verify (position = the log's end
    /// offset), [`StorageError::ReplicaOffsetMismatch`] when the batch does not start at the end
    /// offset, [`StorageError::BatchTooLarge`], and the I/O errors of a segment roll.
    pub fn append_replica(
        &mut self,
        batch: &[u8],
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        if self.fenced {
            return Err(StorageError::FlushFailed);
        }
        let bad = |reason: &str| StorageError::corrupt(self.dir(), self.end_offset, reason);
        let header = BatchHeader::decode(batch).map_err(bad)?;
        if header.batch_bytes as usize != batch.len() {
            return Err(bad("replica batch length differs from its header"));
        }
        if !header.verify_crc(batch) {
            return Err(bad("replica batch fails its CRC32C"));
        }
        let max = self.config.effective_batch_bytes_max();
        if batch.len() as u64 > max {
            return Err(StorageError::BatchTooLarge {
                bytes: batch.len() as u64,
                max,
            });
        }
        if header.base_offset != self.end_offset {
            return Err(StorageError::ReplicaOffsetMismatch {
                expected: self.end_offset,
                got: header.base_offset,
            });
        }
        let base_offset = header.base_offset;
        let last_offset = header.last_offset();
        if last_offset == u64::MAX || last_offset < base_offset {
            return Err(StorageError::OffsetOverflow {
                reason: "u64 offsets exhausted",
            });
        }
        self.place_batch(batch.len() as u64, last_offset, now_ms)?
            .copy_from_slice(batch);
        if header.producer_id != NO_PRODUCER_ID {
            let p = ProducerInfo {
                producer_id: header.producer_id,
                epoch: header.producer_epoch,
                base_sequence: header.base_sequence,
            };
            self.producers
                .record(&p, header.record_count, base_offset, last_offset);
        }
        self.publish_batch(header, last_offset);
        Ok(AppendOutcome::Appended {
            base_offset,
            last_offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{LogConfig, PartitionLog, ProducerInfo, Record, StorageError};

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes_max: 64 << 10,
            ..LogConfig::default()
        }
    }

    fn fill(log: &mut PartitionLog, batches: u64) {
        for i in 0..batches {
            let value = vec![i as u8; 700 + (i as usize % 5) * 100];
            let recs = [
                Record {
                    key: Some(b"k"),
                    value: &value,
                    headers: &[(b"h", b"v")],
                    timestamp_ms: 1_000 + i as i64,
                    ttl_ms: if i % 3 == 0 { 60_000 } else { 0 },
                },
                Record {
                    key: None,
                    value: b"second",
                    headers: &[],
                    timestamp_ms: 1_001 + i as i64,
                    ttl_ms: 0,
                },
            ];
            let producer = (i % 2 == 0).then_some(ProducerInfo {
                producer_id: 9,
                epoch: 1,
                base_sequence: (i as u32 / 2) * 2,
            });
            log.append(&recs, producer, 5_000 + i as i64).unwrap();
        }
    }

    /// Every batch of `log` from `from`, as stored.
    fn batches(log: &PartitionLog, from: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = from;
        while at < log.end_offset() {
            let r = log.read(at, 1 << 20).unwrap();
            out.extend(r.batches.iter().map(|b| b.bytes().to_vec()));
            at = r.next_offset;
        }
        out
    }

    #[test]
    fn an_empty_replica_starts_at_the_leaders_log_start_and_keeps_it_across_a_reopen() {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut leader, _) = PartitionLog::open(ld.path(), config()).unwrap();
        fill(&mut leader, 200);
        // The leader's log as if retention had removed everything before the 120th batch.
        let all = batches(&leader, 0);
        let from = crate::format::BatchHeader::decode(&all[120])
            .unwrap()
            .base_offset;
        let (mut follower, _) = PartitionLog::open(fd.path(), config()).unwrap();
        fill(&mut follower, 3);
        assert!(matches!(
            follower.reset_empty_to(from),
            Err(StorageError::NotEmpty { start: 0, end: 6 })
        ));
        // A follower holding records below the leader's start drops them first.
        follower.truncate_to(0).unwrap();
        follower.reset_empty_to(from).unwrap();
        assert_eq!(
            (follower.start_offset(), follower.end_offset()),
            (from, from)
        );
        assert!(matches!(
            follower.append_replica(&all[119], 9_999),
            Err(StorageError::ReplicaOffsetMismatch { .. })
        ));
        for b in &all[120..150] {
            follower.append_replica(b, 9_999).unwrap();
        }
        follower.close().unwrap();
        let (mut follower, _) = PartitionLog::open(fd.path(), config()).unwrap();
        assert_eq!(follower.start_offset(), from);
        for b in &all[150..] {
            follower.append_replica(b, 9_999).unwrap();
        }
        assert_eq!(batches(&follower, from), all[120..].to_vec());
        // Re-basing an empty log that starts elsewhere survives a reopen without any append.
        let ed = tempfile::tempdir().unwrap();
        let (mut empty, _) = PartitionLog::open(ed.path(), config()).unwrap();
        empty.reset_empty_to(77).unwrap();
        drop(empty);
        let (empty, _) = PartitionLog::open(ed.path(), config()).unwrap();
        assert_eq!((empty.start_offset(), empty.end_offset()), (77, 77));
    }

    #[test]
    fn a_replica_is_byte_identical_across_rolls_and_a_reopen() {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut leader, _) = PartitionLog::open(ld.path(), config()).unwrap();
        fill(&mut leader, 300);
        let (mut follower, _) = PartitionLog::open(fd.path(), config()).unwrap();
        let source = batches(&leader, 0);
        for b in &source {
            follower.append_replica(b, 9_999).unwrap();
        }
        assert_eq!(follower.end_offset(), leader.end_offset());
        assert!(follower.stats().segments > 1, "the test must cross a roll");
        assert_eq!(batches(&follower, 0), source);
        // Records decode the same (TTLs, headers, producer ids included).
        let a = leader.read(41, 4096).unwrap();
        let b = follower.read(41, 4096).unwrap();
        assert_eq!(
            a.batches[0].records(41, 0).unwrap(),
            b.batches[0].records(41, 0).unwrap()
        );
        assert_eq!(a.batches[0].producer(), b.batches[0].producer());
        // Durable after a flush; a reopen recovers the same bytes.
        let done = follower.begin_flush().unwrap().run().unwrap();
        follower.complete_flush(done);
        drop(follower);
        let (follower, _) = PartitionLog::open(fd.path(), config()).unwrap();
        assert_eq!(batches(&follower, 0), source);
    }

    #[test]
    fn gaps_overlaps_and_damage_are_refused_and_change_nothing() {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut leader, _) = PartitionLog::open(ld.path(), config()).unwrap();
        fill(&mut leader, 4);
        let src = batches(&leader, 0);
        let (mut f, _) = PartitionLog::open(fd.path(), config()).unwrap();
        let gap = f.append_replica(&src[1], 0).unwrap_err();
        assert!(
            matches!(
                gap,
                StorageError::ReplicaOffsetMismatch {
                    expected: 0,
                    got: 2
                }
            ),
            "{gap:?}"
        );
        f.append_replica(&src[0], 0).unwrap();
        let overlap = f.append_replica(&src[0], 0).unwrap_err();
        assert!(
            matches!(overlap, StorageError::ReplicaOffsetMismatch { .. }),
            "{overlap:?}"
        );
        let mut flipped = src[1].clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let bad = f.append_replica(&flipped, 0).unwrap_err();
        assert!(bad.to_string().contains("CRC32C"), "{bad}");
        let short = f
            .append_replica(&src[1][..src[1].len() - 1], 0)
            .unwrap_err();
        assert!(matches!(short, StorageError::Corrupt { .. }), "{short:?}");
        assert!(f.append_replica(&src[1][..10], 0).is_err());
        assert_eq!(f.end_offset(), 2, "nothing written by the refusals");
        f.append_replica(&src[1], 0).unwrap();
        assert_eq!(batches(&f, 0), src[..2].to_vec());
    }

    #[test]
    fn a_replica_that_becomes_leader_deduplicates_retries_it_only_replicated() {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut leader, _) = PartitionLog::open(ld.path(), config()).unwrap();
        let rec = [Record {
            key: None,
            value: b"x",
            headers: &[],
            timestamp_ms: 1,
            ttl_ms: 0,
        }];
        let p = ProducerInfo {
            producer_id: 77,
            epoch: 3,
            base_sequence: 0,
        };
        leader.append(&rec, Some(p), 1).unwrap();
        let (mut f, _) = PartitionLog::open(fd.path(), config()).unwrap();
        for b in batches(&leader, 0) {
            f.append_replica(&b, 1).unwrap();
        }
        // The producer retries the same batch against the new leader: not written twice.
        let again = f.append(&rec, Some(p), 2).unwrap();
        assert_eq!(
            again,
            crate::AppendOutcome::Duplicate {
                base_offset: 0,
                last_offset: 0
            }
        );
        assert_eq!(f.end_offset(), 1);
    }
}
