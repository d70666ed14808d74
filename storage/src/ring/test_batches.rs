//! Batches for the concurrency tests whose contents can be checked: a sealed CRC32C over a payload
//! that repeats the batch's own offsets and the history (truncation count) it was written in.

use bytes::Bytes;

use crate::fetch::FetchedBatch;
use crate::format::{seal_batch_crc, BatchHeader, BATCH_HEADER_BYTES, NO_PRODUCER_ID};

/// Payload bytes of every test batch beyond its 64-byte header.
pub(super) const PAYLOAD_BYTES: usize = 24;

/// A batch of offsets `[base, base + count)` written in `history`, with a valid CRC.
pub(super) fn sealed(base: u64, count: u32, history: u64) -> FetchedBatch {
    let len = BATCH_HEADER_BYTES + PAYLOAD_BYTES;
    let mut buf = vec![0u8; len];
    let mut h = BatchHeader {
        batch_bytes: len as u32,
        crc32c: 0,
        base_offset: base,
        first_timestamp_ms: 0,
        max_timestamp_ms: 0,
        max_expires_at_ms: i64::MAX,
        producer_id: NO_PRODUCER_ID,
        record_count: count,
        base_sequence: u32::MAX,
        records_bytes: PAYLOAD_BYTES as u32,
        producer_epoch: 0,
        attributes: 0,
    };
    h.encode(&mut buf);
    let p = &mut buf[BATCH_HEADER_BYTES..];
    p[..8].copy_from_slice(&base.to_le_bytes());
    p[8..16].copy_from_slice(&u64::from(count).to_le_bytes());
    p[16..24].copy_from_slice(&history.to_le_bytes());
    h.crc32c = seal_batch_crc(&mut buf);
    FetchedBatch::new(h, Bytes::from(buf))
}

/// Checks a batch returned by a read against its own payload and returns its history. Panics
/// (failing the test) on a torn or mismatched batch.
pub(super) fn history_of(b: &FetchedBatch) -> u64 {
    assert!(b.verify(), "batch at {} fails its CRC", b.base_offset());
    let p = &b.bytes()[BATCH_HEADER_BYTES..];
    let word = |i: usize| u64::from_le_bytes(p[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    assert_eq!(
        word(0),
        b.base_offset(),
        "payload names another base offset"
    );
    assert_eq!(
        word(1),
        u64::from(b.record_count()),
        "payload names another count"
    );
    word(2)
}

/// Checks one read result: starts with the batch holding `offset`, offsets contiguous, every
/// batch intact. Returns `(base_offset, last_offset, history)` per batch.
pub(super) fn check_run(offset: u64, run: &[FetchedBatch]) -> Vec<(u64, u64, u64)> {
    let first = run.first().expect("a hit returns at least one batch");
    assert!(
        first.base_offset() <= offset && offset <= first.last_offset(),
        "read at {offset} starts with batch {}..={}",
        first.base_offset(),
        first.last_offset()
    );
    for w in run.windows(2) {
        assert_eq!(
            w[0].last_offset() + 1,
            w[1].base_offset(),
            "returned batches are not contiguous"
        );
    }
    run.iter()
        .map(|b| (b.base_offset(), b.last_offset(), history_of(b)))
        .collect()
}

/// `cuts[k]` is the offset history `k` truncated to (`cuts[0]` unused). A run is one log state iff
/// no batch written in history `h` that a later history in the run cut away appears in it.
pub(super) fn assert_one_history(run: &[(u64, u64, u64)], cuts: &[u64]) {
    let newest = run.iter().map(|r| r.2).max().unwrap_or(0);
    for &(base, last, h) in run {
        let lowest_cut = cuts[h as usize + 1..=newest as usize]
            .iter()
            .copied()
            .min()
            .unwrap_or(u64::MAX);
        assert!(
            last < lowest_cut,
            "batch {base}..={last} of history {h} read together with history {newest}, \
             which truncated to {lowest_cut}"
        );
    }
}
