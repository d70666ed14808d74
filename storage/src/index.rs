//! `.index` and `.timeindex` files of sealed segments: written once when a segment is sealed and
//! synced, loaded on open. A missing or damaged file, or one built for another version of the
//! segment (its header CRC differs), is not an error: recovery rebuilds the index by scanning the
//! segment (which also verifies every batch CRC).

use std::path::{Path, PathBuf};

use crate::error::StorageError;
use crate::format::{
    decode_offset_entries, decode_time_entries, encode_offset_entries, encode_time_entries,
    IndexFileHeader, OffsetIndexEntry, TimeIndexEntry, INDEX_FILE_HEADER_BYTES,
    OFFSET_INDEX_ENTRY_BYTES, OFFSET_INDEX_MAGIC, TIME_INDEX_ENTRY_BYTES, TIME_INDEX_MAGIC,
};
use crate::io::Io;
use crate::segment::{offset_index_path, time_index_path};

/// What identifies the segment version an index belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexOwner {
    pub seq: u64,
    pub segment_header_crc32c: u32,
}

fn write_one(
    io: &Io,
    path: &Path,
    magic: u64,
    owner: IndexOwner,
    count: usize,
    entries: &[u8],
) -> Result<(), StorageError> {
    let mut head = [0u8; INDEX_FILE_HEADER_BYTES];
    IndexFileHeader {
        magic,
        segment_seq: owner.seq,
        entry_count: count as u32,
        entries_crc32c: crc32c::crc32c(entries),
        segment_header_crc32c: owner.segment_header_crc32c,
    }
    .encode(&mut head);
    let f = io
        .write_file(path, &[&head, entries])
        .map_err(|e| StorageError::io(path, "write index", e))?;
    io.sync_data(path, &f)
        .map_err(|e| StorageError::io(path, "fdatasync index", e))
}

/// Paths of the two index files of segment `seq`, with an optional suffix for files being built.
pub(crate) fn index_paths(dir: &Path, seq: u64, suffix: &str) -> [PathBuf; 2] {
    let add = |p: PathBuf| {
        let mut s = p.into_os_string();
        s.push(suffix);
        PathBuf::from(s)
    };
    [
        add(offset_index_path(dir, seq)),
        add(time_index_path(dir, seq)),
    ]
}

/// Writes both index files and fdatasyncs them. Blocking.
pub(crate) fn write_index_files(
    io: &Io,
    paths: &[PathBuf; 2],
    owner: IndexOwner,
    offsets: &[OffsetIndexEntry],
    times: &[TimeIndexEntry],
) -> Result<(), StorageError> {
    let mut buf = Vec::with_capacity(offsets.len() * OFFSET_INDEX_ENTRY_BYTES);
    encode_offset_entries(offsets, &mut buf);
    write_one(
        io,
        &paths[0],
        OFFSET_INDEX_MAGIC,
        owner,
        offsets.len(),
        &buf,
    )?;
    buf.clear();
    encode_time_entries(times, &mut buf);
    write_one(io, &paths[1], TIME_INDEX_MAGIC, owner, times.len(), &buf)
}

fn read_one(
    path: &Path,
    magic: u64,
    owner: IndexOwner,
    entry_bytes: usize,
    entries_max: u64,
) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    // Bound the allocation by what the segment could possibly index before reading.
    if meta.len() > INDEX_FILE_HEADER_BYTES as u64 + entries_max * entry_bytes as u64 {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let head = IndexFileHeader::decode(&bytes, magic)?;
    let body = &bytes[INDEX_FILE_HEADER_BYTES..];
    if head.segment_seq != owner.seq
        || head.segment_header_crc32c != owner.segment_header_crc32c
        || body.len() != head.entry_count as usize * entry_bytes
    {
        return None;
    }
    (crc32c::crc32c(body) == head.entries_crc32c).then(|| body.to_vec())
}

/// Loads both index files of a segment, or `None` if either is missing, fails verification or
/// belongs to another version of the segment. `entries_max` bounds the file size accepted.
pub(crate) fn load_index_files(
    dir: &Path,
    owner: IndexOwner,
    entries_max: u64,
) -> Option<(Vec<OffsetIndexEntry>, Vec<TimeIndexEntry>)> {
    let [op, tp] = index_paths(dir, owner.seq, "");
    let o = read_one(
        &op,
        OFFSET_INDEX_MAGIC,
        owner,
        OFFSET_INDEX_ENTRY_BYTES,
        entries_max,
    )?;
    let t = read_one(
        &tp,
        TIME_INDEX_MAGIC,
        owner,
        TIME_INDEX_ENTRY_BYTES,
        entries_max,
    )?;
    let offsets = decode_offset_entries(&o);
    let times = decode_time_entries(&t);
    // A checksum only proves the bytes are what the writer wrote, not that the writer was right:
    // entries must move forward, or a lookup would skip or misplace batches. Such a file is
    // treated as damaged and rebuilt from the segment.
    let offsets_ordered = offsets
        .windows(2)
        .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position);
    let times_ordered = times.windows(2).all(|w| {
        w[0].max_timestamp_ms <= w[1].max_timestamp_ms
            && w[0].relative_offset < w[1].relative_offset
    });
    (offsets.len() == times.len() && offsets_ordered && times_ordered).then_some((offsets, times))
}

/// Removes the index files of segment `seq`, ignoring files that do not exist.
pub(crate) fn remove_index_files(io: &Io, dir: &Path, seq: u64) -> Result<(), StorageError> {
    for p in index_paths(dir, seq, "") {
        match io.remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(&p, "unlink index", e)),
        }
    }
    Ok(())
}
