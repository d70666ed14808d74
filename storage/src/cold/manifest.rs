//! The per-partition manifest object: which segment objects make up the remote log. Binary,
//! little-endian, fixed width, CRC32C-protected (docs/cold-tier-format.md). It is the only source
//! of truth for readers and for "safe to delete": an object the manifest does not list does not
//! exist as far as Sprawl is concerned, and is re-recorded or deleted by reconcile.

use crate::cold::error::ColdError;

/// `b"SPRLMAN1"`.
pub const MANIFEST_MAGIC: u64 = u64::from_le_bytes(*b"SPRLMAN1");
pub const MANIFEST_HEADER_BYTES: usize = 64;
pub const MANIFEST_ENTRY_BYTES: usize = 64;
/// Most entries a manifest may hold (16 MiB of entries); a reader allocates no more.
pub const MANIFEST_ENTRIES_MAX: u32 = 1 << 18;
/// Largest manifest object a reader accepts.
pub const MANIFEST_BYTES_MAX: u64 =
    (MANIFEST_HEADER_BYTES + MANIFEST_ENTRIES_MAX as usize * MANIFEST_ENTRY_BYTES) as u64;

const _: () = assert!(MANIFEST_HEADER_BYTES == 64 && MANIFEST_ENTRY_BYTES == 64);

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// One uploaded segment object as the manifest records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteSegment {
    pub base_offset: u64,
    pub next_offset: u64,
    /// `seq` of the local segment it was built from (informational).
    pub seq: u64,
    /// CRC of the sealed local segment header: part of the object key, binds the object to one
    /// version of the segment file.
    pub segment_header_crc32c: u32,
    pub footer_bytes: u32,
    pub object_bytes: u64,
    /// Bytes of batches (uncompressed), as in the local segment.
    pub data_bytes: u64,
    pub max_timestamp_ms: i64,
    pub uploaded_ms: i64,
}

impl RemoteSegment {
    /// `{prefix}/segments/{base:020}-{next:020}-{crc:08x}.sgz`
    pub fn object_key(&self, prefix: &str) -> String {
        object_key(
            prefix,
            self.base_offset,
            self.next_offset,
            self.segment_header_crc32c,
        )
    }

    /// Position of the footer inside the object.
    pub fn footer_pos(&self) -> u64 {
        self.object_bytes - u64::from(self.footer_bytes) - crate::cold::object::TRAILER_BYTES as u64
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.base_offset.to_le_bytes());
        out.extend_from_slice(&self.next_offset.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.segment_header_crc32c.to_le_bytes());
        out.extend_from_slice(&self.footer_bytes.to_le_bytes());
        out.extend_from_slice(&self.object_bytes.to_le_bytes());
        out.extend_from_slice(&self.data_bytes.to_le_bytes());
        out.extend_from_slice(&self.max_timestamp_ms.to_le_bytes());
        out.extend_from_slice(&self.uploaded_ms.to_le_bytes());
    }

    fn decode(b: &[u8]) -> RemoteSegment {
        RemoteSegment {
            base_offset: u64_at(b, 0),
            next_offset: u64_at(b, 8),
            seq: u64_at(b, 16),
            segment_header_crc32c: u32_at(b, 24),
            footer_bytes: u32_at(b, 28),
            object_bytes: u64_at(b, 32),
            data_bytes: u64_at(b, 40),
            max_timestamp_ms: u64_at(b, 48) as i64,
            uploaded_ms: u64_at(b, 56) as i64,
        }
    }
}

/// Key of the object holding segment `[base, next)` with header CRC `crc`.
pub fn object_key(prefix: &str, base: u64, next: u64, crc: u32) -> String {
    format!("{prefix}/segments/{base:020}-{next:020}-{crc:08x}.sgz")
}

/// Parses a key made by [`object_key`] back into `(base, next, crc)`.
pub fn parse_object_key(prefix: &str, key: &str) -> Option<(u64, u64, u32)> {
    let name = key
        .strip_prefix(prefix)?
        .strip_prefix("/segments/")?
        .strip_suffix(".sgz")?;
    let mut it = name.split('-');
    let (b, n, c) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || b.len() != 20 || n.len() != 20 || c.len() != 8 {
        return None;
    }
    Some((
        b.parse().ok()?,
        n.parse().ok()?,
        u32::from_str_radix(c, 16).ok()?,
    ))
}

/// Key of a partition's manifest.
pub fn manifest_key(prefix: &str) -> String {
    format!("{prefix}/manifest")
}

/// The remote log of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Bumped on every write; a reader can tell two manifests apart.
    pub version: u64,
    /// Offsets below this were deleted by remote retention (0 until the first deletion).
    pub horizon_offset: u64,
    pub written_ms: i64,
    /// Sorted by base offset, non-overlapping.
    pub entries: Vec<RemoteSegment>,
}

impl Manifest {
    /// First offset held remotely (the horizon when empty).
    pub fn start_offset(&self) -> u64 {
        self.entries
            .first()
            .map_or(self.horizon_offset, |e| e.base_offset)
    }

    /// Offset after the last remote segment (the horizon when empty).
    pub fn end_offset(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.horizon_offset, |e| e.next_offset)
    }

    pub fn remote_data_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.data_bytes).sum()
    }

    pub fn remote_object_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.object_bytes).sum()
    }

    /// Index of the entry holding `offset`, or of the first entry after it.
    pub fn entry_at_or_after(&self, offset: u64) -> Option<usize> {
        let i = self.entries.partition_point(|e| e.next_offset <= offset);
        (i < self.entries.len()).then_some(i)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut entries = Vec::with_capacity(self.entries.len() * MANIFEST_ENTRY_BYTES);
        for e in &self.entries {
            e.encode(&mut entries);
        }
        let mut out = Vec::with_capacity(MANIFEST_HEADER_BYTES + entries.len());
        out.extend_from_slice(&MANIFEST_MAGIC.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.horizon_offset.to_le_bytes());
        out.extend_from_slice(&self.written_ms.to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&entries).to_le_bytes());
        out.extend_from_slice(&[0u8; 16]);
        let crc = crc32c::crc32c(&out[..60]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&entries);
        out
    }

    /// Decodes and validates: magic, version, both CRCs, the length, and the ordering invariant
    /// (entries sorted, non-empty, non-overlapping, none below the horizon).
    pub fn decode(b: &[u8], key: &str) -> Result<Manifest, ColdError> {
        let bad = |r: &str| ColdError::corrupt(key, format!("manifest: {r}"));
        if b.len() < MANIFEST_HEADER_BYTES || u64_at(b, 0) != MANIFEST_MAGIC {
            return Err(bad("bad magic or too short"));
        }
        if crc32c::crc32c(&b[..60]) != u32_at(b, 60) {
            return Err(bad("header checksum mismatch"));
        }
        if u16::from_le_bytes([b[8], b[9]]) != 1 {
            return Err(bad("unsupported version"));
        }
        let count = u32_at(b, 12);
        if count > MANIFEST_ENTRIES_MAX
            || b.len() != MANIFEST_HEADER_BYTES + count as usize * MANIFEST_ENTRY_BYTES
        {
            return Err(bad("entry count does not match the length"));
        }
        let body = &b[MANIFEST_HEADER_BYTES..];
        if crc32c::crc32c(body) != u32_at(b, 40) {
            return Err(bad("entries checksum mismatch"));
        }
        let m = Manifest {
            version: u64_at(b, 16),
            horizon_offset: u64_at(b, 24),
            written_ms: u64_at(b, 32) as i64,
            entries: body
                .chunks_exact(MANIFEST_ENTRY_BYTES)
                .map(RemoteSegment::decode)
                .collect(),
        };
        m.check().map_err(bad)?;
        Ok(m)
    }

    /// The ordering invariant; also asserted before every write.
    pub fn check(&self) -> Result<(), &'static str> {
        let mut floor = self.horizon_offset;
        for e in &self.entries {
            if e.next_offset <= e.base_offset {
                return Err("entry with an empty offset range");
            }
            if e.base_offset < floor {
                return Err("entries overlap or lie below the horizon");
            }
            let min_object = (e.footer_bytes as usize + crate::cold::object::TRAILER_BYTES) as u64;
            if e.object_bytes < min_object {
                return Err("entry object smaller than its footer");
            }
            floor = e.next_offset;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(base: u64, next: u64) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            next_offset: next,
            seq: base,
            segment_header_crc32c: 0xdead_beef,
            footer_bytes: 192,
            object_bytes: 4096,
            data_bytes: 3000,
            max_timestamp_ms: 7,
            uploaded_ms: 9,
        }
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let m = Manifest {
            version: 3,
            horizon_offset: 10,
            written_ms: 99,
            entries: vec![entry(10, 20), entry(20, 35)],
        };
        let b = m.encode();
        assert_eq!(b.len(), 64 + 2 * 64);
        assert_eq!(Manifest::decode(&b, "k").unwrap(), m);
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x10;
            assert!(
                Manifest::decode(&d, "k").is_err(),
                "flip at byte {i} accepted"
            );
        }
        assert!(Manifest::decode(&b[..b.len() - 1], "k").is_err());
    }

    #[test]
    fn rejects_overlap_and_entries_below_the_horizon() {
        let mut m = Manifest {
            entries: vec![entry(0, 20), entry(19, 30)],
            ..Manifest::default()
        };
        assert!(m.check().is_err());
        m.entries = vec![entry(5, 20)];
        m.horizon_offset = 6;
        assert!(m.check().is_err());
        m.horizon_offset = 5;
        assert!(m.check().is_ok());
    }

    #[test]
    fn object_keys_parse_back() {
        let k = object_key("t/p0", 123, 456, 0xabc);
        assert_eq!(
            k,
            "t/p0/segments/00000000000000000123-00000000000000000456-00000abc.sgz"
        );
        assert_eq!(parse_object_key("t/p0", &k), Some((123, 456, 0xabc)));
        assert_eq!(parse_object_key("t/p1", &k), None);
        assert_eq!(parse_object_key("t/p0", "t/p0/segments/1-2-3.sgz"), None);
    }
}
