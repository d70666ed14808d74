//! Arbitrary bytes as a segment file, recovered by `PartitionLog::open`.

use std::path::Path;

use storage::format::{
    encode_checkpoint, seal_batch_crc, SegmentHeader, SegmentState, BATCH_HEADER_BYTES,
    CHECKPOINT_BYTES, SEGMENT_HEADER_BYTES,
};
use storage::{AppendOutcome, LogConfig, PartitionLog, Record};

use super::{read_everything, scratch_dir, Outcome};

/// File name of segment seq 0 (`{seq:020}.seg`, see docs/log-format.md).
const SEGMENT_0: &str = "00000000000000000000.seg";

/// Fix-ups selected by the first input byte of [`check_segment_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentFixups {
    /// Write a valid 128-byte segment header (base offset from input bytes 1..9) before the body;
    /// without it, input bytes 1.. are the whole file.
    pub header: bool,
    /// Rewrite each batch's base offset to continue the chain and recompute its CRC.
    pub batches: bool,
    /// Mark the header sealed, with `data_bytes`, `next_offset` and `batch_count` of the chain.
    pub sealed: bool,
    /// Write a checkpoint at the chain's end, so a sealed segment is trusted (index rebuilt).
    pub checkpoint: bool,
}

impl SegmentFixups {
    pub fn from_byte(b: u8) -> SegmentFixups {
        SegmentFixups {
            header: b & 1 != 0,
            batches: b & 2 != 0,
            sealed: b & 4 != 0,
            checkpoint: b & 8 != 0,
        }
    }

    pub fn to_byte(self) -> u8 {
        u8::from(self.header)
            | u8::from(self.batches) << 1
            | u8::from(self.sealed) << 2
            | u8::from(self.checkpoint) << 3
    }
}

/// Files of one partition directory derived from a fuzz input.
struct SegmentInput {
    segment: Vec<u8>,
    checkpoint: Option<[u8; CHECKPOINT_BYTES]>,
}

/// Applies the fix-ups selected by `data[0]`.
fn build(data: &[u8]) -> SegmentInput {
    let Some((&mode, rest)) = data.split_first() else {
        return SegmentInput {
            segment: Vec::new(),
            checkpoint: None,
        };
    };
    let fix = SegmentFixups::from_byte(mode);
    if !fix.header {
        return SegmentInput {
            segment: rest.to_vec(),
            checkpoint: None,
        };
    }
    let mut base = [0u8; 8];
    let n = rest.len().min(8);
    base[..n].copy_from_slice(&rest[..n]);
    let base_offset = u64::from_le_bytes(base);
    let mut body = rest[n..].to_vec();
    let (next_offset, batch_count) = if fix.batches {
        chain_batches(&mut body, base_offset)
    } else {
        (base_offset, 0)
    };
    let header = SegmentHeader {
        state: if fix.sealed {
            SegmentState::Sealed
        } else {
            SegmentState::Active
        },
        seq: 0,
        base_offset,
        created_ms: 0,
        data_bytes: body.len() as u64,
        next_offset,
        max_timestamp_ms: i64::MIN,
        max_expires_at_ms: i64::MIN,
        batch_count,
    };
    let mut segment = vec![0u8; SEGMENT_HEADER_BYTES];
    header.encode(&mut segment);
    segment.extend_from_slice(&body);
    let checkpoint = fix.checkpoint.then(|| {
        let mut b = [0u8; CHECKPOINT_BYTES];
        encode_checkpoint(next_offset, &mut b);
        b
    });
    SegmentInput {
        segment,
        checkpoint,
    }
}

/// Walks batches by their length fields, giving each the base offset that continues the chain
/// and a valid CRC. Stops at the first length that cannot frame a batch. Returns the chain's end
/// offset and the number of batches fixed.
fn chain_batches(body: &mut [u8], base_offset: u64) -> (u64, u64) {
    let mut pos = 0usize;
    let mut next = base_offset;
    let mut count = 0;
    while body.len() - pos >= BATCH_HEADER_BYTES {
        let len = u32::from_le_bytes([body[pos], body[pos + 1], body[pos + 2], body[pos + 3]]);
        let len = len as usize;
        if len < BATCH_HEADER_BYTES || len > body.len() - pos {
            break;
        }
        let records = u32::from_le_bytes([
            body[pos + 48],
            body[pos + 49],
            body[pos + 50],
            body[pos + 51],
        ]);
        let Some(after) = next.checked_add(u64::from(records)) else {
            break;
        };
        body[pos + 8..pos + 16].copy_from_slice(&next.to_le_bytes());
        seal_batch_crc(&mut body[pos..pos + len]);
        next = after;
        count += 1;
        pos += len;
    }
    (next, count)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// The segment file a fuzz input describes (after its fix-ups).
pub(super) fn segment_file(data: &[u8]) -> Vec<u8> {
    build(data).segment
}

/// Writes `data` (after fix-ups) as segment 0 of a fresh partition directory and runs the log over
/// it: open (recovery), read and decode everything, append and read back one record, close,
/// reopen. Panics on a storage panic or a broken log contract; typed errors are fine.
pub fn check_segment_file(data: &[u8]) -> Outcome {
    let input = build(data);
    let dir = scratch_dir().expect("scratch dir for the fuzzed partition");
    std::fs::write(dir.path().join(SEGMENT_0), &input.segment).expect("write fuzzed segment");
    if let Some(cp) = input.checkpoint {
        std::fs::write(dir.path().join("checkpoint"), cp).expect("write fuzzed checkpoint");
    }
    run_log(dir.path())
}

fn run_log(dir: &Path) -> Outcome {
    let mut out = Outcome::default();
    let mut log = match PartitionLog::open(dir, config()) {
        Ok((log, _report)) => log,
        Err(e) => {
            out.note_error(&e);
            return out;
        }
    };
    out.opened = true;
    assert!(log.start_offset() <= log.end_offset());
    assert_eq!(
        log.durable_offset(),
        log.end_offset(),
        "recovery syncs what it keeps"
    );
    read_everything(&log, &mut out);

    let end = log.end_offset();
    let value = b"appended after recovery";
    let record = Record {
        key: Some(b"k"),
        value,
        headers: &[],
        timestamp_ms: 1_000,
        ttl_ms: 0,
    };
    match log.append(&[record], None, 1_000) {
        Ok(AppendOutcome::Appended {
            base_offset,
            last_offset,
        }) => {
            assert_eq!((base_offset, last_offset), (end, end));
            let read = log
                .read(base_offset, 4096)
                .expect("a just-appended offset is readable");
            let records = read.batches[0]
                .records(base_offset, i64::MIN)
                .expect("a just-appended batch decodes");
            assert_eq!(&records[0].value[..], value);
        }
        Ok(AppendOutcome::Duplicate { .. }) => panic!("an append without producer id duplicated"),
        Err(e) => out.note_error(&e),
    }
    let end = log.end_offset();
    match log.close() {
        Ok(()) => {}
        Err(e) => {
            out.note_error(&e);
            return out;
        }
    }
    let (again, report) = PartitionLog::open(dir, config())
        .unwrap_or_else(|e| panic!("reopen after a clean close failed: {e}"));
    assert_eq!(
        again.end_offset(),
        end,
        "a clean close keeps every offset (report {report:?})"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixups_round_trip_through_the_mode_byte() {
        for b in 0..16u8 {
            assert_eq!(SegmentFixups::from_byte(b).to_byte(), b);
        }
    }

    #[test]
    fn chain_batches_stops_at_a_length_that_cannot_frame_a_batch() {
        let mut body = vec![0u8; 200];
        body[..4].copy_from_slice(&100u32.to_le_bytes());
        body[48..52].copy_from_slice(&3u32.to_le_bytes());
        body[100..104].copy_from_slice(&500u32.to_le_bytes());
        assert_eq!(chain_batches(&mut body, 7), (10, 1));
        assert_eq!(&body[8..16], &7u64.to_le_bytes());
    }
}
