//! Committed consumer offsets of one partition, kept next to its log in `consumer-offsets`.
//!
//! The file is an append-only sequence of records, each `len: u32 | crc32c: u32 | name_len: u16 |
//! name | offset: u64` (little-endian; `len` counts the bytes after the crc, the crc covers them).
//! Loading keeps the last offset per consumer and stops at the first torn or corrupt record (a crash
//! mid-append), which it cuts off. The file is rewritten compactly at load time when it holds more
//! than four times its live records. These functions do blocking I/O: the engine calls them off the
//! reactor. Format notes: `docs/catalog-format.md`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Longest consumer (group) name.
pub const CONSUMER_NAME_BYTES_MAX: usize = 255;
/// Most distinct consumers remembered per partition.
pub const CONSUMERS_MAX: usize = 10_000;
const RECORD_OVERHEAD: usize = 4 + 4 + 2 + 8;

/// I/O failure on the offsets file (the in-memory map is unchanged).
#[derive(Debug, thiserror::Error)]
#[error("consumer offsets file {path}: {op}: {source}")]
pub struct OffsetsIoError {
    pub path: PathBuf,
    pub op: &'static str,
    pub source: std::io::Error,
}

/// Encodes one commit record.
pub fn encode_record(name: &str, offset: u64) -> Vec<u8> {
    let name = name.as_bytes();
    let body_len = 2 + name.len() + 8;
    let mut out = Vec::with_capacity(8 + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(&offset.to_le_bytes());
    let crc = crc32c::crc32c(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes records from `buf`; returns the map and the length of the valid prefix.
pub fn decode_all(buf: &[u8]) -> (HashMap<String, u64>, usize) {
    let mut map = HashMap::new();
    let mut pos = 0;
    while buf.len() - pos >= RECORD_OVERHEAD {
        let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap_or_default()) as usize;
        if !(10..=10 + CONSUMER_NAME_BYTES_MAX).contains(&len) || buf.len() - pos - 8 < len {
            break;
        }
        let crc = u32::from_le_bytes(buf[pos + 4..pos + 8].try_into().unwrap_or_default());
        let body = &buf[pos + 8..pos + 8 + len];
        if crc32c::crc32c(body) != crc {
            break;
        }
        let name_len = u16::from_le_bytes([body[0], body[1]]) as usize;
        if 2 + name_len + 8 != len {
            break;
        }
        let Ok(name) = std::str::from_utf8(&body[2..2 + name_len]) else {
            break;
        };
        let offset = u64::from_le_bytes(body[2 + name_len..].try_into().unwrap_or_default());
        map.insert(name.to_string(), offset);
        pos += 8 + len;
    }
    (map, pos)
}

/// The open offsets file of one partition.
#[derive(Debug)]
pub struct OffsetsFile {
    pub path: PathBuf,
    pub file: File,
    /// Where the next record goes.
    pub end: u64,
}

/// Opens (creating) `<dir>/consumer-offsets`, cuts a torn tail, compacts if bloated.
pub fn open(dir: &Path) -> Result<(OffsetsFile, HashMap<String, u64>), OffsetsIoError> {
    let path = dir.join("consumer-offsets");
    let err = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| OffsetsIoError {
            path: p,
            op,
            source,
        }
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(err("open", &path))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).map_err(err("read", &path))?;
    let (map, valid) = decode_all(&buf);
    let live: usize = map.keys().map(|k| RECORD_OVERHEAD + k.len()).sum();
    if valid > 4 * live + 4096 {
        let tmp = dir.join("consumer-offsets.tmp");
        let mut out = File::create(&tmp).map_err(err("create", &tmp))?;
        let mut bytes = Vec::with_capacity(live);
        for (k, v) in &map {
            bytes.extend_from_slice(&encode_record(k, *v));
        }
        out.write_all(&bytes).map_err(err("write", &tmp))?;
        out.sync_data().map_err(err("fdatasync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(err("rename", &path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err("fsync directory", dir))?;
        file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(err("reopen", &path))?;
        let end = bytes.len() as u64;
        return Ok((OffsetsFile { path, file, end }, map));
    }
    if valid < buf.len() {
        file.set_len(valid as u64)
            .map_err(err("truncate torn tail", &path))?;
    }
    Ok((
        OffsetsFile {
            path,
            file,
            end: valid as u64,
        },
        map,
    ))
}

/// Writes one record at `position` and fdatasyncs it.
pub fn write_synced(
    file: &File,
    path: &Path,
    position: u64,
    record: &[u8],
) -> Result<(), OffsetsIoError> {
    let err = |op: &'static str| {
        let p = path.to_path_buf();
        move |source| OffsetsIoError {
            path: p,
            op,
            source,
        }
    };
    file.write_all_at(record, position).map_err(err("write"))?;
    file.sync_data().map_err(err("fdatasync"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_commit_wins_and_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (f, map) = open(dir.path()).unwrap();
        assert!(map.is_empty());
        let mut pos = f.end;
        for (name, off) in [("a", 1), ("b", 7), ("a", 5)] {
            let rec = encode_record(name, off);
            write_synced(&f.file, &f.path, pos, &rec).unwrap();
            pos += rec.len() as u64;
        }
        // A torn record at the end (half written).
        let torn = encode_record("c", 9);
        write_synced(&f.file, &f.path, pos, &torn[..torn.len() / 2]).unwrap();
        drop(f);
        let (f, map) = open(dir.path()).unwrap();
        assert_eq!(map.get("a"), Some(&5));
        assert_eq!(map.get("b"), Some(&7));
        assert_eq!(map.get("c"), None);
        assert_eq!(f.end, pos, "torn tail cut");
        assert_eq!(std::fs::metadata(&f.path).unwrap().len(), pos);
    }

    #[test]
    fn bloated_file_is_compacted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (f, _) = open(dir.path()).unwrap();
        let mut pos = 0;
        for i in 0..2000u64 {
            let rec = encode_record("group-1", i);
            f.file.write_all_at(&rec, pos).unwrap();
            pos += rec.len() as u64;
        }
        drop(f);
        let (f, map) = open(dir.path()).unwrap();
        assert_eq!(map.get("group-1"), Some(&1999));
        assert_eq!(f.end, encode_record("group-1", 0).len() as u64);
        let (_, again) = open(dir.path()).unwrap();
        assert_eq!(again, map);
    }

    #[test]
    fn bit_flip_stops_the_scan() {
        let mut buf = encode_record("x", 1);
        buf.extend_from_slice(&encode_record("y", 2));
        let first_len = encode_record("x", 1).len();
        buf[first_len + 9] ^= 0x40;
        let (map, valid) = decode_all(&buf);
        assert_eq!(valid, first_len);
        assert_eq!(map.len(), 1);
    }
}
