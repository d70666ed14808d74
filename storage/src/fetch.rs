//! What readers get back: raw stored batches (zero-copy) and, on demand, their decoded records.

use bytes::Bytes;

use crate::config::Compression;
use crate::error::StorageError;
use crate::format::{
    decode_record, header_ranges, BatchHeader, BATCH_HEADER_BYTES, NEVER_EXPIRES, NO_PRODUCER_ID,
};

/// Result of [`crate::PartitionLog::read`].
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub batches: Vec<FetchedBatch>,
    /// Offset after the last returned batch (the read offset if nothing was returned).
    pub next_offset: u64,
}

/// One stored batch exactly as on disk, sharing the segment mapping.
#[derive(Debug, Clone)]
pub struct FetchedBatch {
    header: BatchHeader,
    bytes: Bytes,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: StoredHeaders,
    pub expires_at_ms: Option<i64>,
}

/// A stored record's headers: its header area as stored (`count` entries of `[u32 key len]
/// [u32 value len][key][value]`, bounds checked when the record was decoded), one slice of the
/// batch: a record's headers cost no allocation and one reference count, however many there are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredHeaders {
    area: Bytes,
    count: u32,
}

impl StoredHeaders {
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `(key, value)` of each header, in stored order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        header_ranges(0, &self.area, self.count)
            .map(|((ks, kl), (vs, vl))| (&self.area[ks..ks + kl], &self.area[vs..vs + vl]))
    }

    /// Header `i`, `None` past the last.
    pub fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.iter().nth(i)
    }

    /// Headers laid out as a stored record holds them (for records built outside a log).
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> StoredHeaders {
        let mut area = Vec::new();
        for (k, v) in pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            area.extend_from_slice(&(k.len() as u32).to_le_bytes());
            area.extend_from_slice(&(v.len() as u32).to_le_bytes());
            area.extend_from_slice(k);
            area.extend_from_slice(v);
        }
        StoredHeaders {
            area: Bytes::from(area),
            count: pairs.len() as u32,
        }
    }
}

impl FetchedBatch {
    pub(crate) fn new(header: BatchHeader, bytes: Bytes) -> FetchedBatch {
        debug_assert_eq!(bytes.len(), header.batch_bytes as usize);
        FetchedBatch { header, bytes }
    }

    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }
    pub fn last_offset(&self) -> u64 {
        self.header.last_offset()
    }
    /// Offsets the batch spans (= records appended). After compaction fewer records may remain.
    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }
    /// True if key compaction rewrote this batch (records may be missing inside its span).
    pub fn is_compacted(&self) -> bool {
        self.header.attributes & crate::format::ATTR_COMPACTED != 0
    }
    pub fn first_timestamp_ms(&self) -> i64 {
        self.header.first_timestamp_ms
    }
    pub fn max_timestamp_ms(&self) -> i64 {
        self.header.max_timestamp_ms
    }
    /// Expiry of the batch's longest-lived record, `None` if some record never expires.
    pub fn max_expires_at_ms(&self) -> Option<i64> {
        (self.header.max_expires_at_ms != i64::MAX).then_some(self.header.max_expires_at_ms)
    }
    /// `(producer_id, epoch, base_sequence)` of an idempotent batch.
    pub fn producer(&self) -> Option<(u64, u16, u32)> {
        (self.header.producer_id != NO_PRODUCER_ID).then_some((
            self.header.producer_id,
            self.header.producer_epoch,
            self.header.base_sequence,
        ))
    }
    pub fn compression(&self) -> Compression {
        self.header.compression()
    }
    /// The raw stored batch (header + records section), for zero-copy forwarding.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Recomputes the batch CRC32C.
    pub fn verify(&self) -> bool {
        self.header.verify_crc(&self.bytes)
    }

    /// Records with offset >= `from_offset` not expired at `now_ms`. Verifies the CRC first and
    /// decompresses zstd batches (allocation bounded by `records_bytes`, itself checked against
    /// `BATCH_BYTES_LIMIT`).
    pub fn records(
        &self,
        from_offset: u64,
        now_ms: i64,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let mut out = Vec::new();
        self.records_into(from_offset, now_ms, &mut out)?;
        Ok(out)
    }

    /// [`FetchedBatch::records`] appended to `out` (a reader of many batches keeps one list).
    /// On `Err`, `out` may hold some of this batch's records: the caller discards the read.
    pub fn records_into(
        &self,
        from_offset: u64,
        now_ms: i64,
        out: &mut Vec<StoredRecord>,
    ) -> Result<(), StorageError> {
        let corrupt = |reason: &str| StorageError::Corrupt {
            path: format!("batch@{}", self.header.base_offset).into(),
            position: 0,
            reason: reason.to_string(),
        };
        if !self.verify() {
            return Err(corrupt("batch checksum mismatch"));
        }
        let section = match self.header.compression() {
            Compression::None => self.bytes.slice(BATCH_HEADER_BYTES..),
            Compression::Zstd { .. } => {
                // The declared size sets the allocation: check it against what `append` can ever
                // have written before trusting it (a valid CRC does not make it sane).
                if self.header.records_bytes > crate::config::BATCH_BYTES_LIMIT {
                    return Err(corrupt(&format!(
                        "records_bytes {} exceeds the largest batch a log accepts ({})",
                        self.header.records_bytes,
                        crate::config::BATCH_BYTES_LIMIT
                    )));
                }
                let raw = decompress_bounded(
                    &self.bytes[BATCH_HEADER_BYTES..],
                    self.header.records_bytes as usize,
                )
                .map_err(|e| corrupt(&format!("zstd: {e}")))?;
                if raw.len() != self.header.records_bytes as usize {
                    return Err(corrupt("decompressed size differs from records_bytes"));
                }
                Bytes::from(raw)
            }
        };
        let mut at = 0;
        let mut present: u32 = 0;
        let mut next_delta: u64 = 0;
        // A compacted batch keeps its offset span but may hold fewer records: decode until the
        // section ends, with strictly increasing deltas inside the span.
        while at < section.len() {
            let (r, next) = decode_record(&section, at).map_err(corrupt)?;
            at = next;
            present += 1;
            if u64::from(r.offset_delta) < next_delta || r.offset_delta >= self.header.record_count
            {
                return Err(corrupt(
                    "record offset delta out of order or outside the batch",
                ));
            }
            next_delta = u64::from(r.offset_delta) + 1;
            let offset = self.header.base_offset + u64::from(r.offset_delta);
            let expired = r.expires_at_ms != NEVER_EXPIRES && r.expires_at_ms <= now_ms;
            if offset < from_offset || expired {
                continue;
            }
            let (area_start, area_len) = r.headers_area;
            let headers = StoredHeaders {
                area: if r.header_count == 0 {
                    Bytes::new()
                } else {
                    section.slice(area_start..area_start + area_len)
                },
                count: r.header_count,
            };
            out.push(StoredRecord {
                offset,
                timestamp_ms: r.timestamp_ms,
                key: r.key.map(|(s, l)| section.slice(s..s + l)),
                value: section.slice(r.value.0..r.value.0 + r.value.1),
                headers,
                expires_at_ms: (r.expires_at_ms != NEVER_EXPIRES).then_some(r.expires_at_ms),
            });
        }
        if present > self.header.record_count
            || (present < self.header.record_count && !self.is_compacted())
        {
            return Err(corrupt("record count does not match the batch header"));
        }
        Ok(())
    }
}

/// Output of a zstd frame allocated up front, at most: larger declared sizes grow the buffer as
/// output actually arrives. A batch (or cold chunk) whose checksum verifies may still declare a
/// size its frame does not hold (a buggy or hostile writer): sizing the buffer by the declaration
/// alone let a few hundred bytes of input allocate 64 MiB (libFuzzer, `storage_segment`).
const ZSTD_PREALLOC_MAX: usize = 1 << 20;

/// Decompresses one zstd frame whose size is declared elsewhere (a batch's `records_bytes`, a
/// cold chunk's `raw_bytes`): up to `expected` bytes, one more to tell a frame that holds more
/// than declared (the caller compares the length with `expected`).
///
/// The frame's window is bounded by `expected` too: zstd allocates the window a frame header asks
/// for (up to 128 MiB) before it decodes a byte, and every frame Sprawl writes is compressed in
/// one call with its size known, so its window never exceeds the data. A frame asking for more
/// is refused ("Frame requires too much memory").
pub(crate) fn decompress_bounded(src: &[u8], expected: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(expected.min(ZSTD_PREALLOC_MAX));
    let mut decoder = zstd::stream::read::Decoder::with_buffer(src)?.single_frame();
    decoder.window_log_max(window_log_for(expected))?;
    decoder.take(expected as u64 + 1).read_to_end(&mut out)?;
    Ok(out)
}

/// The smallest zstd window log (10 to 27) whose window holds `bytes`.
fn window_log_for(bytes: usize) -> u32 {
    let needed = usize::BITS - bytes.saturating_sub(1).leading_zeros();
    needed.clamp(10, 27)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode_record, record_bytes, seal_batch_crc, RecordFields};
    use proptest::prelude::*;

    /// Wraps an arbitrary records section in a header with a valid CRC, so decoding gets past the
    /// checksum and has to survive whatever the section holds.
    fn batch_over(section: &[u8], record_count: u32, zstd: bool) -> FetchedBatch {
        let mut buf = vec![0u8; BATCH_HEADER_BYTES + section.len()];
        let mut h = BatchHeader {
            batch_bytes: buf.len() as u32,
            crc32c: 0,
            base_offset: 100,
            first_timestamp_ms: 0,
            max_timestamp_ms: 0,
            max_expires_at_ms: i64::MAX,
            producer_id: NO_PRODUCER_ID,
            record_count,
            base_sequence: u32::MAX,
            records_bytes: section.len() as u32,
            producer_epoch: 0,
            attributes: BatchHeader::attributes_for(zstd),
        };
        h.encode(&mut buf);
        buf[BATCH_HEADER_BYTES..].copy_from_slice(section);
        h.crc32c = seal_batch_crc(&mut buf);
        FetchedBatch::new(h, Bytes::from(buf))
    }

    #[test]
    fn a_frame_asking_for_a_window_beyond_its_data_is_refused() {
        let data = vec![7u8; 4096];
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(27))
            .unwrap();
        std::io::Write::write_all(&mut enc, &data).unwrap();
        let frame = enc.finish().unwrap();
        assert!(
            decompress_bounded(&frame, data.len()).is_err(),
            "a 4 KiB frame declaring a 128 MiB window is refused before the window is allocated"
        );
        // What Sprawl writes (one call, size known) decodes, at any size.
        for len in [0usize, 1, 1000, 1 << 10, (1 << 10) + 1, 3 << 20] {
            let raw: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let frame = zstd::bulk::compress(&raw, 19).unwrap();
            assert_eq!(decompress_bounded(&frame, len).unwrap(), raw, "{len} bytes");
        }
        assert_eq!(window_log_for(0), 10);
        assert_eq!(window_log_for(1 << 20), 20);
        assert_eq!(window_log_for((1 << 20) + 1), 21);
        assert_eq!(window_log_for(usize::MAX), 27);
    }

    #[test]
    fn headers_keep_their_order_and_bytes() {
        let h = StoredHeaders::from_pairs(&[(&b"a"[..], &b""[..]), (b"", b"xyz"), (b"k", b"v")]);
        assert_eq!((h.len(), h.is_empty()), (3, false));
        let got: Vec<(&[u8], &[u8])> = h.iter().collect();
        assert_eq!(
            got,
            vec![(&b"a"[..], &b""[..]), (b"", b"xyz"), (b"k", b"v")]
        );
        assert_eq!(h.get(2), Some((&b"k"[..], &b"v"[..])));
        assert_eq!(h.get(3), None);
        let none = StoredHeaders::from_pairs::<&[u8], &[u8]>(&[]);
        assert!(none.is_empty() && none.iter().next().is_none());
        assert_eq!(none, StoredHeaders::default());
    }

    proptest! {
        #[test]
        fn arbitrary_sections_never_panic(section in prop::collection::vec(any::<u8>(), 0..300), count in 1u32..5, zstd: bool) {
            let _ = batch_over(&section, count, zstd).records(0, 0);
        }

        #[test]
        fn records_round_trip(
            recs in prop::collection::vec((prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
                prop::collection::vec(any::<u8>(), 0..50),
                prop::collection::vec((prop::collection::vec(any::<u8>(), 0..8), prop::collection::vec(any::<u8>(), 0..8)), 0..3),
                any::<i64>()), 1..6)
        ) {
            let mut section = Vec::new();
            for (i, (k, v, hs, ts)) in recs.iter().enumerate() {
                let headers: Vec<(&[u8], &[u8])> = hs.iter().map(|(a, b)| (&a[..], &b[..])).collect();
                let mut buf = vec![0u8; record_bytes(k.as_deref(), v, &headers) as usize];
                encode_record(&RecordFields { offset_delta: i as u32, timestamp_ms: *ts, expires_at_ms: 0, key: k.as_deref(), value: v, headers: &headers }, &mut buf);
                section.extend_from_slice(&buf);
            }
            let got = batch_over(&section, recs.len() as u32, false).records(0, 0).unwrap();
            prop_assert_eq!(got.len(), recs.len());
            for (g, (k, v, hs, ts)) in got.iter().zip(&recs) {
                prop_assert_eq!(g.key.as_deref(), k.as_deref());
                prop_assert_eq!(&g.value[..], &v[..]);
                prop_assert_eq!(g.timestamp_ms, *ts);
                let gh: Vec<(Vec<u8>, Vec<u8>)> = g.headers.iter().map(|(a, b)| (a.to_vec(), b.to_vec())).collect();
                prop_assert_eq!(&gh, hs);
            }
        }
    }

    #[test]
    fn checksum_mismatch_is_reported() {
        let b = batch_over(&[0u8; 40], 1, false);
        let mut raw = b.bytes().to_vec();
        raw[70] ^= 1;
        let bad = FetchedBatch::new(b.header, Bytes::from(raw));
        assert!(!bad.verify());
        assert!(matches!(
            bad.records(0, 0),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
