//! The remote segment object (`.sgz`): a sealed segment's batches cut into chunks at batch
//! boundaries, each chunk an independent zstd frame, followed by a footer (a copy of the segment
//! header and one entry per chunk) and a fixed 32-byte trailer. A reader that knows the footer
//! fetches exactly the chunk holding an offset with one range GET. Layout: docs/cold-tier-format.md.

use std::io::Read;
use std::path::Path;

use bytes::Bytes;

use crate::cold::error::ColdError;
use crate::config::BATCH_BYTES_LIMIT;
use crate::format::{
    BatchHeader, SegmentHeader, SegmentState, BATCH_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};

/// `b"SPRLCOB1"`: footer magic.
pub const FOOTER_MAGIC: u64 = u64::from_le_bytes(*b"SPRLCOB1");
/// `b"SPRLCOT1"`: trailer magic (the last 8 bytes of every segment object).
pub const TRAILER_MAGIC: u64 = u64::from_le_bytes(*b"SPRLCOT1");
/// Fixed part of the footer: magic, version, reserved, chunk count, segment header.
pub const FOOTER_FIXED_BYTES: usize = 16 + SEGMENT_HEADER_BYTES;
/// One chunk entry in the footer.
pub const CHUNK_ENTRY_BYTES: usize = 48;
/// The trailer at the end of the object.
pub const TRAILER_BYTES: usize = 32;
/// Largest decompressed chunk a reader accepts (bounds its allocation): a chunk closes once it
/// reaches its target (at most 64 MiB), and one batch is at most 64 MiB.
pub const CHUNK_RAW_BYTES_LIMIT: u32 = 2 * BATCH_BYTES_LIMIT;
/// Most chunks one object may have (bounds the footer a reader allocates).
pub const CHUNKS_MAX: u32 = 1 << 20;

const _: () = assert!(FOOTER_FIXED_BYTES == 144);

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Where one chunk is and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Base offset of the chunk's first batch.
    pub first_offset: u64,
    /// Offset after the chunk's last batch.
    pub next_offset: u64,
    /// Byte position of the zstd frame in the object.
    pub stored_pos: u64,
    pub stored_bytes: u32,
    /// Size of the batches once decompressed.
    pub raw_bytes: u32,
    /// CRC32C of the decompressed bytes.
    pub raw_crc32c: u32,
    pub batch_count: u32,
    pub max_timestamp_ms: i64,
}

impl ChunkEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.first_offset.to_le_bytes());
        out.extend_from_slice(&self.next_offset.to_le_bytes());
        out.extend_from_slice(&self.stored_pos.to_le_bytes());
        out.extend_from_slice(&self.stored_bytes.to_le_bytes());
        out.extend_from_slice(&self.raw_bytes.to_le_bytes());
        out.extend_from_slice(&self.raw_crc32c.to_le_bytes());
        out.extend_from_slice(&self.batch_count.to_le_bytes());
        out.extend_from_slice(&self.max_timestamp_ms.to_le_bytes());
    }

    fn decode(b: &[u8]) -> ChunkEntry {
        ChunkEntry {
            first_offset: u64_at(b, 0),
            next_offset: u64_at(b, 8),
            stored_pos: u64_at(b, 16),
            stored_bytes: u32_at(b, 24),
            raw_bytes: u32_at(b, 28),
            raw_crc32c: u32_at(b, 32),
            batch_count: u32_at(b, 36),
            max_timestamp_ms: u64_at(b, 40) as i64,
        }
    }
}

/// The decoded footer of a segment object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    pub segment: SegmentHeader,
    pub chunks: Vec<ChunkEntry>,
}

impl Footer {
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(FOOTER_FIXED_BYTES + self.chunks.len() * CHUNK_ENTRY_BYTES);
        out.extend_from_slice(&FOOTER_MAGIC.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        let mut h = [0u8; SEGMENT_HEADER_BYTES];
        self.segment.encode(&mut h);
        out.extend_from_slice(&h);
        for c in &self.chunks {
            c.encode(&mut out);
        }
        out
    }

    /// Decodes and checks a footer whose bytes end at `footer_pos + b.len()` of the object:
    /// chunks contiguous in offsets and in the object, covering exactly the segment's range.
    pub fn decode(b: &[u8], footer_pos: u64, key: &str) -> Result<Footer, ColdError> {
        let bad = |r: &str| ColdError::corrupt(key, format!("footer: {r}"));
        if b.len() < FOOTER_FIXED_BYTES || u64_at(b, 0) != FOOTER_MAGIC {
            return Err(bad("bad magic or too short"));
        }
        if u16::from_le_bytes([b[8], b[9]]) != 1 {
            return Err(bad("unsupported version"));
        }
        let count = u32_at(b, 12);
        if count > CHUNKS_MAX || b.len() != FOOTER_FIXED_BYTES + count as usize * CHUNK_ENTRY_BYTES
        {
            return Err(bad("chunk count does not match the footer length"));
        }
        let segment = SegmentHeader::decode(&b[16..FOOTER_FIXED_BYTES]).map_err(bad)?;
        if segment.state != SegmentState::Sealed {
            return Err(bad("segment header is not sealed"));
        }
        let chunks: Vec<ChunkEntry> = b[FOOTER_FIXED_BYTES..]
            .chunks_exact(CHUNK_ENTRY_BYTES)
            .map(ChunkEntry::decode)
            .collect();
        let (mut offset, mut pos) = (segment.base_offset, 0u64);
        for c in &chunks {
            if c.first_offset != offset || c.next_offset <= c.first_offset || c.stored_pos != pos {
                return Err(bad("chunks are not contiguous"));
            }
            if c.raw_bytes > CHUNK_RAW_BYTES_LIMIT || c.stored_bytes > CHUNK_RAW_BYTES_LIMIT {
                return Err(bad("chunk larger than the limit"));
            }
            offset = c.next_offset;
            pos += u64::from(c.stored_bytes);
        }
        if offset != segment.next_offset || pos != footer_pos {
            return Err(bad("chunks do not cover the segment"));
        }
        Ok(Footer { segment, chunks })
    }

    /// Index of the chunk holding `offset`, if any.
    pub fn chunk_for(&self, offset: u64) -> Option<usize> {
        let i = self.chunks.partition_point(|c| c.next_offset <= offset);
        (i < self.chunks.len() && self.chunks[i].first_offset <= offset).then_some(i)
    }
}

/// The fixed 32-byte end of an object: where the footer is and its CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub footer_pos: u64,
    pub footer_bytes: u32,
    pub footer_crc32c: u32,
}

impl Trailer {
    pub fn encode(&self) -> [u8; TRAILER_BYTES] {
        let mut b = [0u8; TRAILER_BYTES];
        b[0..8].copy_from_slice(&self.footer_pos.to_le_bytes());
        b[8..12].copy_from_slice(&self.footer_bytes.to_le_bytes());
        b[12..16].copy_from_slice(&self.footer_crc32c.to_le_bytes());
        let crc = crc32c::crc32c(&b[..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        b[24..32].copy_from_slice(&TRAILER_MAGIC.to_le_bytes());
        b
    }

    /// Decodes the trailer of an object of `object_bytes` bytes.
    pub fn decode(b: &[u8], object_bytes: u64, key: &str) -> Result<Trailer, ColdError> {
        if b.len() != TRAILER_BYTES
            || u64_at(b, 24) != TRAILER_MAGIC
            || crc32c::crc32c(&b[..20]) != u32_at(b, 20)
        {
            return Err(ColdError::corrupt(key, "bad trailer"));
        }
        let t = Trailer {
            footer_pos: u64_at(b, 0),
            footer_bytes: u32_at(b, 8),
            footer_crc32c: u32_at(b, 12),
        };
        let max_footer =
            FOOTER_FIXED_BYTES as u64 + u64::from(CHUNKS_MAX) * CHUNK_ENTRY_BYTES as u64;
        if u64::from(t.footer_bytes) > max_footer
            || t.footer_pos + u64::from(t.footer_bytes) + TRAILER_BYTES as u64 != object_bytes
        {
            return Err(ColdError::corrupt(
                key,
                "trailer does not match the object size",
            ));
        }
        Ok(t)
    }
}

/// A sealed segment turned into its object bytes, ready to upload.
#[derive(Debug)]
pub struct BuiltObject {
    pub bytes: Vec<u8>,
    pub footer: Footer,
    pub trailer: Trailer,
}

/// Reads a sealed segment file, verifies every batch (framing, continuity, CRC32C) and builds the
/// object: chunks of about `chunk_raw_bytes` closed at batch boundaries, compressed at `zstd_level`.
/// `expected` must match the file's header (its CRC binds the object to this version of the file).
/// Blocking; memory is bounded by the compressed segment plus one chunk.
pub fn build_object(
    path: &Path,
    expected_header_crc32c: u32,
    chunk_raw_bytes: u32,
    zstd_level: i32,
) -> Result<BuiltObject, ColdError> {
    let bad = |position: u64, reason: &str| ColdError::BadLocalSegment {
        path: path.to_path_buf(),
        position,
        reason: reason.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(|e| ColdError::io(path, "open segment", e))?;
    let mut hb = [0u8; SEGMENT_HEADER_BYTES];
    file.read_exact(&mut hb)
        .map_err(|e| ColdError::io(path, "read segment header", e))?;
    let header = SegmentHeader::decode(&hb).map_err(|r| bad(0, r))?;
    if header.state != SegmentState::Sealed {
        return Err(bad(0, "segment is not sealed"));
    }
    if header.crc32c() != expected_header_crc32c {
        return Err(bad(0, "segment header changed since it was listed"));
    }
    if header.next_offset <= header.base_offset {
        return Err(bad(0, "sealed segment holds no offsets"));
    }
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file.take(header.data_bytes));
    let mut bytes = Vec::new();
    let mut chunks = Vec::new();
    let mut raw: Vec<u8> = Vec::new();
    let mut chunk = ChunkEntry {
        first_offset: header.base_offset,
        next_offset: header.base_offset,
        stored_pos: 0,
        stored_bytes: 0,
        raw_bytes: 0,
        raw_crc32c: 0,
        batch_count: 0,
        max_timestamp_ms: i64::MIN,
    };
    let (mut position, mut expected, mut batches) =
        (SEGMENT_HEADER_BYTES as u64, header.base_offset, 0u64);
    let end = SEGMENT_HEADER_BYTES as u64 + header.data_bytes;
    while position < end {
        let at = raw.len();
        let mut bh = [0u8; BATCH_HEADER_BYTES];
        reader
            .read_exact(&mut bh)
            .map_err(|e| ColdError::io(path, "read batch header", e))?;
        let h = BatchHeader::decode(&bh).map_err(|r| bad(position, r))?;
        let len = u64::from(h.batch_bytes);
        if h.batch_bytes > BATCH_BYTES_LIMIT || position + len > end {
            return Err(bad(position, "batch length out of bounds"));
        }
        if h.base_offset != expected {
            return Err(bad(position, "batch offsets are not contiguous"));
        }
        raw.extend_from_slice(&bh);
        raw.resize(at + h.batch_bytes as usize, 0);
        reader
            .read_exact(&mut raw[at + BATCH_HEADER_BYTES..])
            .map_err(|e| ColdError::io(path, "read batch", e))?;
        if !h.verify_crc(&raw[at..]) {
            return Err(bad(position, "batch checksum mismatch"));
        }
        expected = h.last_offset() + 1;
        position += len;
        batches += 1;
        chunk.next_offset = expected;
        chunk.batch_count += 1;
        chunk.max_timestamp_ms = chunk.max_timestamp_ms.max(h.max_timestamp_ms);
        if raw.len() >= chunk_raw_bytes as usize || position == end {
            close_chunk(&mut chunk, &mut raw, &mut bytes, zstd_level, path)?;
            chunks.push(chunk);
            chunk.first_offset = expected;
            chunk.batch_count = 0;
            chunk.max_timestamp_ms = i64::MIN;
        }
    }
    if expected != header.next_offset || batches != header.batch_count {
        return Err(bad(position, "batches do not match the sealed header"));
    }
    if chunks.len() > CHUNKS_MAX as usize {
        return Err(bad(
            0,
            "segment needs too many chunks: raise chunk_raw_bytes",
        ));
    }
    let footer = Footer {
        segment: header,
        chunks,
    };
    let fb = footer.encode();
    let trailer = Trailer {
        footer_pos: bytes.len() as u64,
        footer_bytes: fb.len() as u32,
        footer_crc32c: crc32c::crc32c(&fb),
    };
    bytes.extend_from_slice(&fb);
    bytes.extend_from_slice(&trailer.encode());
    Ok(BuiltObject {
        bytes,
        footer,
        trailer,
    })
}

fn close_chunk(
    chunk: &mut ChunkEntry,
    raw: &mut Vec<u8>,
    out: &mut Vec<u8>,
    level: i32,
    path: &Path,
) -> Result<(), ColdError> {
    let frame = zstd::bulk::compress(raw, level)
        .map_err(|e| ColdError::io(path, "zstd compress chunk", e))?;
    chunk.stored_pos = out.len() as u64;
    chunk.stored_bytes = frame.len() as u32;
    chunk.raw_bytes = raw.len() as u32;
    chunk.raw_crc32c = crc32c::crc32c(raw);
    out.extend_from_slice(&frame);
    raw.clear();
    Ok(())
}

/// Decompresses one stored chunk and checks it against its entry (size, CRC32C).
pub fn decode_chunk(stored: &[u8], entry: &ChunkEntry, key: &str) -> Result<Bytes, ColdError> {
    if stored.len() != entry.stored_bytes as usize || entry.raw_bytes > CHUNK_RAW_BYTES_LIMIT {
        return Err(ColdError::corrupt(
            key,
            "chunk size does not match its entry",
        ));
    }
    let raw = crate::fetch::decompress_bounded(stored, entry.raw_bytes as usize)
        .map_err(|e| ColdError::corrupt(key, format!("zstd: {e}")))?;
    if raw.len() != entry.raw_bytes as usize || crc32c::crc32c(&raw) != entry.raw_crc32c {
        return Err(ColdError::corrupt(key, "chunk checksum mismatch"));
    }
    Ok(Bytes::from(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogConfig, PartitionLog, Record};

    /// A sealed segment written by the real log, and its description.
    fn sealed_segment(dir: &Path) -> (PartitionLog, crate::cold::LocalSegment) {
        let config = LogConfig {
            segment_bytes_max: 16 * 1024,
            ..LogConfig::default()
        };
        let (mut log, _) = PartitionLog::open(dir, config).unwrap();
        for i in 0..80u32 {
            let v = vec![i as u8; 100 + (i as usize * 13) % 300];
            let rec = Record {
                key: None,
                value: &v,
                headers: &[],
                timestamp_ms: i64::from(i),
                ttl_ms: 0,
            };
            log.append(&[rec, rec], None, 1).unwrap();
        }
        let done = log.begin_flush().unwrap().run().unwrap();
        log.complete_flush(done);
        let seg = log.tierable_segments().remove(0);
        (log, seg)
    }

    #[test]
    fn object_round_trips_chunk_by_chunk_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (log, seg) = sealed_segment(dir.path());
        let built = build_object(&seg.path, seg.header_crc32c, 4096, 3).unwrap();
        let f = &built.footer;
        assert!(f.chunks.len() > 2, "several chunks");
        assert_eq!(f.segment.base_offset, seg.base_offset);

        // Trailer and footer decode back from the object bytes alone.
        let n = built.bytes.len() as u64;
        let t = Trailer::decode(&built.bytes[n as usize - TRAILER_BYTES..], n, "k").unwrap();
        assert_eq!(t, built.trailer);
        let fb = &built.bytes[t.footer_pos as usize..n as usize - TRAILER_BYTES];
        assert_eq!(crc32c::crc32c(fb), t.footer_crc32c);
        assert_eq!(&Footer::decode(fb, t.footer_pos, "k").unwrap(), f);

        // Chunks hold exactly the segment's bytes after its header.
        let mut raw = Vec::new();
        for c in &f.chunks {
            let at = c.stored_pos as usize;
            let stored = &built.bytes[at..at + c.stored_bytes as usize];
            raw.extend_from_slice(&decode_chunk(stored, c, "k").unwrap());
            let mut bad = stored.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 0x55;
            assert!(decode_chunk(&bad, c, "k").is_err());
        }
        let file = std::fs::read(&seg.path).unwrap();
        assert_eq!(
            raw,
            &file[SEGMENT_HEADER_BYTES..SEGMENT_HEADER_BYTES + raw.len()]
        );
        assert_eq!(raw.len() as u64, seg.data_bytes);

        // Lookup: every offset maps to the chunk that holds it.
        for o in seg.base_offset..seg.next_offset {
            let c = &f.chunks[f.chunk_for(o).unwrap()];
            assert!(c.first_offset <= o && o < c.next_offset);
        }
        assert_eq!(f.chunk_for(seg.next_offset), None);

        // Damage to the trailer or footer is refused.
        let mut bad = built.bytes.clone();
        let at = bad.len() - 10;
        bad[at] ^= 1;
        assert!(Trailer::decode(&bad[bad.len() - TRAILER_BYTES..], n, "k").is_err());
        assert!(Trailer::decode(&built.bytes[n as usize - TRAILER_BYTES..], n + 1, "k").is_err());
        let mut fb2 = fb.to_vec();
        fb2[FOOTER_FIXED_BYTES + 3] ^= 1;
        assert!(Footer::decode(&fb2, t.footer_pos, "k").is_err());
        drop(log);
    }

    #[test]
    fn a_changed_or_damaged_local_segment_is_not_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, seg) = sealed_segment(dir.path());
        let e = build_object(&seg.path, seg.header_crc32c ^ 1, 4096, 3).unwrap_err();
        assert!(
            matches!(e, ColdError::BadLocalSegment { position: 0, .. }),
            "{e}"
        );
        // Flip a byte inside the first batch's records: its CRC no longer matches.
        let mut file = std::fs::read(&seg.path).unwrap();
        file[SEGMENT_HEADER_BYTES + BATCH_HEADER_BYTES + 5] ^= 1;
        let copy = dir.path().join("copy.seg");
        std::fs::write(&copy, &file).unwrap();
        let e = build_object(&copy, seg.header_crc32c, 4096, 3).unwrap_err();
        assert!(
            matches!(&e, ColdError::BadLocalSegment { reason, .. } if reason.contains("checksum")),
            "{e}"
        );
    }
}
