//! The pure decoders of `storage::format` on arbitrary bytes.

use storage::format::{
    decode_checkpoint, decode_offset_entries, decode_record, decode_time_entries,
    encode_checkpoint, encode_offset_entries, encode_time_entries, header_ranges, BatchHeader,
    IndexFileHeader, SegmentHeader, BATCH_HEADER_BYTES, CHECKPOINT_BYTES, INDEX_FILE_HEADER_BYTES,
    OFFSET_INDEX_ENTRY_BYTES, OFFSET_INDEX_MAGIC, SEGMENT_HEADER_BYTES, TIME_INDEX_ENTRY_BYTES,
    TIME_INDEX_MAGIC,
};

use super::Outcome;

/// Runs every `storage::format` decoder over `data`. Panics if a decoder panics or if something
/// it accepts does not survive an encode/decode round trip.
pub fn check_format(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    if let Ok(h) = SegmentHeader::decode(data) {
        out.headers_accepted += 1;
        let mut again = [0u8; SEGMENT_HEADER_BYTES];
        h.encode(&mut again);
        assert_eq!(
            SegmentHeader::decode(&again),
            Ok(h),
            "segment header round trip"
        );
    }
    check_batch(data, &mut out);
    for magic in [OFFSET_INDEX_MAGIC, TIME_INDEX_MAGIC] {
        if let Some(h) = IndexFileHeader::decode(data, magic) {
            out.headers_accepted += 1;
            let mut again = [0u8; INDEX_FILE_HEADER_BYTES];
            h.encode(&mut again);
            // Every byte of the index header is a field or the CRC: the encoding is canonical.
            assert_eq!(&again[..], &data[..INDEX_FILE_HEADER_BYTES]);
        }
    }
    if let Some(offset) = decode_checkpoint(data) {
        out.headers_accepted += 1;
        let mut again = [0u8; CHECKPOINT_BYTES];
        encode_checkpoint(offset, &mut again);
        assert_eq!(
            decode_checkpoint(&again),
            Some(offset),
            "checkpoint round trip"
        );
    }
    let offsets = decode_offset_entries(data);
    assert_eq!(offsets.len(), data.len() / OFFSET_INDEX_ENTRY_BYTES);
    let mut again = Vec::new();
    encode_offset_entries(&offsets, &mut again);
    assert_eq!(&again[..], &data[..again.len()]);
    let times = decode_time_entries(data);
    assert_eq!(times.len(), data.len() / TIME_INDEX_ENTRY_BYTES);
    again.clear();
    encode_time_entries(&times, &mut again);
    assert_eq!(&again[..], &data[..again.len()]);
    out
}

/// A batch header at the start of `data`, then its records section walked record by record.
fn check_batch(data: &[u8], out: &mut Outcome) {
    let section = match BatchHeader::decode(data) {
        Ok(h) => {
            out.headers_accepted += 1;
            assert!(h.batch_bytes as usize >= BATCH_HEADER_BYTES && h.record_count > 0);
            let mut again = [0u8; BATCH_HEADER_BYTES];
            h.encode(&mut again);
            // All 64 bytes are fields (CRC and magic included): the encoding is canonical.
            assert_eq!(
                &again[..],
                &data[..BATCH_HEADER_BYTES],
                "batch header round trip"
            );
            let end = (h.batch_bytes as usize).min(data.len());
            // `verify_crc` must reject a short slice rather than index past it.
            let _ = h.verify_crc(&data[..end]);
            &data[BATCH_HEADER_BYTES..end]
        }
        // The record decoder is also reached on its own: a records section after a damaged header.
        Err(_) => data.get(BATCH_HEADER_BYTES..).unwrap_or(data),
    };
    walk_records(section, out);
}

/// Decodes records back to back until the section ends or a record is rejected.
fn walk_records(section: &[u8], out: &mut Outcome) {
    let mut at = 0;
    while at < section.len() {
        let Ok((r, next)) = decode_record(section, at) else {
            return;
        };
        assert!(
            next > at && next <= section.len(),
            "record end {next} after {at}"
        );
        let within = |(start, len): (usize, usize)| {
            assert!(
                start >= at && start.checked_add(len).is_some_and(|e| e <= next),
                "field {start}+{len} outside record {at}..{next}"
            );
        };
        if let Some(key) = r.key {
            within(key);
        }
        within(r.value);
        within(r.headers_area);
        let area_end = r.headers_area.0 + r.headers_area.1;
        for (k, v) in header_ranges(r.headers_area.0, section, r.header_count) {
            for (start, len) in [k, v] {
                assert!(start >= r.headers_area.0 && start + len <= area_end);
            }
        }
        out.records_decoded += 1;
        at = next;
    }
}
