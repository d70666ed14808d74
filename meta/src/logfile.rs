//! Record layouts of the two Raft files (`docs/metadata-format.md`):
//! `raft.log`, an append-only sequence of CRC32C-framed records (entries, hard
//! states, boot counters), and `raft.snap`, the latest snapshot.

use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot};

use crate::codec::{open_framed, Reader, Writer};
use crate::command::COMMAND_BYTES_MAX;
use crate::error::CodecError;
use crate::snapshot::SNAPSHOT_BYTES_MAX;

/// Name of the append-only log file.
pub const LOG_FILE: &str = "raft.log";
/// Name of the snapshot file.
pub const SNAPSHOT_FILE: &str = "raft.snap";
/// Largest payload of one log record (kind byte included).
pub const RECORD_BYTES_MAX: usize =
    1 + 8 + 8 + 1 + 4 + COMMAND_BYTES_MAX + 4 + ENTRY_CONTEXT_BYTES_MAX;
/// Largest entry context (the proposal id is 16 bytes).
pub const ENTRY_CONTEXT_BYTES_MAX: usize = 64;
/// Record header: payload length `u32`, CRC32C `u32`.
pub const RECORD_HEADER_BYTES: usize = 8;
/// Most voters a metadata group may have.
pub const VOTERS_MAX: u32 = 9;
/// `b"SPRS"` as a little-endian `u32`.
pub const SNAPSHOT_FILE_MAGIC: u32 = u32::from_le_bytes(*b"SPRS");
/// Snapshot file format version.
pub const SNAPSHOT_FILE_VERSION: u16 = 1;
/// Largest snapshot file.
pub const SNAPSHOT_FILE_BYTES_MAX: usize = SNAPSHOT_BYTES_MAX + 64 + 8 * VOTERS_MAX as usize;

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_BOOT: u8 = 3;

/// One record of `raft.log`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    Entry(Entry),
    HardState(HardState),
    Boot(u64),
}

fn entry_type_code(t: EntryType) -> u8 {
    match t {
        EntryType::EntryNormal => 0,
        EntryType::EntryConfChange => 1,
        EntryType::EntryConfChangeV2 => 2,
    }
}

/// Frames a record: `len u32 | crc32c u32 | kind u8 | payload`.
pub(crate) fn encode_record(rec: &Record, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let mut w = Writer::with_capacity(64);
    match rec {
        Record::Entry(e) => {
            w.u8(KIND_ENTRY);
            w.u64(e.index);
            w.u64(e.term);
            w.u8(entry_type_code(e.get_entry_type()));
            if e.data.len() > COMMAND_BYTES_MAX {
                return Err(CodecError::TooLong {
                    field: "entry data",
                    len: e.data.len() as u64,
                    max: COMMAND_BYTES_MAX as u64,
                });
            }
            w.bytes32(&e.data);
            if e.context.len() > ENTRY_CONTEXT_BYTES_MAX {
                return Err(CodecError::TooLong {
                    field: "entry context",
                    len: e.context.len() as u64,
                    max: ENTRY_CONTEXT_BYTES_MAX as u64,
                });
            }
            w.bytes32(&e.context);
        }
        Record::HardState(hs) => {
            w.u8(KIND_HARD_STATE);
            w.u64(hs.term);
            w.u64(hs.vote);
            w.u64(hs.commit);
        }
        Record::Boot(n) => {
            w.u8(KIND_BOOT);
            w.u64(*n);
        }
    }
    let payload = w.into_vec();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// What [`decode_record`] found at an offset.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A record and its total framed size.
    Record(Record, usize),
    /// The bytes end inside a record: a torn write, safe to cut.
    Torn,
}

/// Decodes the record at the start of `buf`. A record that is complete but
/// fails its CRC is `Torn` only when nothing follows it; anywhere else it is
/// corruption and an error.
pub(crate) fn decode_record(buf: &[u8]) -> Result<Decoded, CodecError> {
    if buf.len() < RECORD_HEADER_BYTES {
        return Ok(Decoded::Torn);
    }
    let mut r = Reader::new(buf);
    let len = r.u32("record length")? as usize;
    let stored = r.u32("record crc")?;
    if buf.iter().all(|&b| b == 0) {
        // File systems may expose a crashed append as zero-filled blocks.
        return Ok(Decoded::Torn);
    }
    if len == 0 || len > RECORD_BYTES_MAX {
        // A length we never write: a torn header if it claims to reach past
        // the end of the file, corruption otherwise.
        if r.remaining() < len.max(1) {
            return Ok(Decoded::Torn);
        }
        return Err(CodecError::TooLong {
            field: "record length",
            len: len as u64,
            max: RECORD_BYTES_MAX as u64,
        });
    }
    if r.remaining() < len {
        return Ok(Decoded::Torn);
    }
    let payload = r.raw(len, "record")?;
    let computed = crc32c::crc32c(payload);
    if computed != stored {
        if r.remaining() == 0 {
            return Ok(Decoded::Torn);
        }
        return Err(CodecError::ChecksumMismatch {
            what: "log record",
            stored,
            computed,
        });
    }
    let mut p = Reader::new(payload);
    let rec = match p.u8("record kind")? {
        KIND_ENTRY => {
            let mut e = Entry {
                index: p.u64("entry index")?,
                term: p.u64("entry term")?,
                ..Entry::default()
            };
            let t = match p.u8("entry type")? {
                0 => EntryType::EntryNormal,
                1 => EntryType::EntryConfChange,
                2 => EntryType::EntryConfChangeV2,
                tag => {
                    return Err(CodecError::UnknownTag {
                        what: "entry type",
                        tag,
                    })
                }
            };
            e.set_entry_type(t);
            e.data = p.bytes32(COMMAND_BYTES_MAX, "entry data")?.to_vec();
            e.context = p
                .bytes32(ENTRY_CONTEXT_BYTES_MAX, "entry context")?
                .to_vec();
            Record::Entry(e)
        }
        KIND_HARD_STATE => Record::HardState(HardState {
            term: p.u64("term")?,
            vote: p.u64("vote")?,
            commit: p.u64("commit")?,
        }),
        KIND_BOOT => Record::Boot(p.u64("boot")?),
        tag => {
            return Err(CodecError::UnknownTag {
                what: "log record",
                tag,
            })
        }
    };
    p.finish("log record")?;
    Ok(Decoded::Record(rec, RECORD_HEADER_BYTES + len))
}

/// `raft.snap`: magic, version, index, term, voters, state bytes, CRC32C.
pub(crate) fn encode_snapshot_file(snap: &Snapshot) -> Result<Vec<u8>, CodecError> {
    let meta = snap.get_metadata();
    let voters = &meta.get_conf_state().voters;
    if voters.len() > VOTERS_MAX as usize {
        return Err(CodecError::TooLong {
            field: "voters",
            len: voters.len() as u64,
            max: u64::from(VOTERS_MAX),
        });
    }
    if snap.data.len() > SNAPSHOT_BYTES_MAX {
        return Err(CodecError::TooLong {
            field: "snapshot data",
            len: snap.data.len() as u64,
            max: SNAPSHOT_BYTES_MAX as u64,
        });
    }
    let mut w = Writer::with_capacity(32 + snap.data.len());
    w.u32(SNAPSHOT_FILE_MAGIC);
    w.u16(SNAPSHOT_FILE_VERSION);
    w.u16(0);
    w.u64(meta.index);
    w.u64(meta.term);
    w.u32(voters.len() as u32);
    for &v in voters {
        w.u64(v);
    }
    w.bytes32(&snap.data);
    let mut bytes = w.into_vec();
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    Ok(bytes)
}

/// Reads `raft.snap`. It is only ever replaced atomically, so any damage is
/// corruption, never a torn write.
pub(crate) fn decode_snapshot_file(bytes: &[u8]) -> Result<Snapshot, CodecError> {
    const WHAT: &str = "snapshot file";
    let (_, mut r) = open_framed(
        bytes,
        WHAT,
        SNAPSHOT_FILE_MAGIC,
        SNAPSHOT_FILE_VERSION..=SNAPSHOT_FILE_VERSION,
    )?;
    let mut snap = Snapshot::default();
    let index = r.u64("index")?;
    let term = r.u64("term")?;
    let n = r.count(VOTERS_MAX, 8, "voters")?;
    let voters = (0..n)
        .map(|_| r.u64("voter"))
        .collect::<Result<Vec<_>, _>>()?;
    snap.data = r.bytes32(SNAPSHOT_BYTES_MAX, "snapshot data")?.to_vec();
    r.finish(WHAT)?;
    let meta = snap.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.set_conf_state(ConfState::from((voters, Vec::<u64>::new())));
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec(),
            ..Entry::default()
        }
    }

    #[test]
    fn records_round_trip_and_tails_are_torn() {
        let recs = [
            Record::Boot(3),
            Record::HardState(HardState {
                term: 2,
                vote: 1,
                commit: 5,
            }),
            Record::Entry(entry(6, 2, b"cmd")),
        ];
        let mut buf = Vec::new();
        for r in &recs {
            encode_record(r, &mut buf).unwrap();
        }
        let mut off = 0;
        for r in &recs {
            match decode_record(&buf[off..]).unwrap() {
                Decoded::Record(got, used) => {
                    assert_eq!(&got, r);
                    off += used;
                }
                Decoded::Torn => panic!("torn at {off}"),
            }
        }
        assert_eq!(off, buf.len());
        // Any cut inside the last record reads as torn.
        let last_start = buf.len() - (RECORD_HEADER_BYTES + 1 + 8 + 8 + 1 + 4 + 3 + 4);
        for cut in last_start + 1..buf.len() {
            assert!(matches!(
                decode_record(&buf[last_start..cut]),
                Ok(Decoded::Torn)
            ));
        }
    }

    #[test]
    fn a_bad_crc_before_more_records_is_corruption() {
        let mut buf = Vec::new();
        encode_record(&Record::Boot(1), &mut buf).unwrap();
        encode_record(&Record::Boot(2), &mut buf).unwrap();
        buf[RECORD_HEADER_BYTES + 2] ^= 0x10;
        assert!(matches!(
            decode_record(&buf),
            Err(CodecError::ChecksumMismatch { .. })
        ));
        // The same damage in the last record is a torn write.
        let first = RECORD_HEADER_BYTES + 9;
        assert!(matches!(decode_record(&buf[..first]), Ok(Decoded::Torn)));
    }

    #[test]
    fn snapshot_file_round_trips_and_detects_flips() {
        let mut snap = Snapshot {
            data: b"state".to_vec(),
            ..Snapshot::default()
        };
        snap.mut_metadata().index = 9;
        snap.mut_metadata().term = 4;
        snap.mut_metadata()
            .set_conf_state(ConfState::from((vec![1, 2, 3], Vec::<u64>::new())));
        let bytes = encode_snapshot_file(&snap).unwrap();
        assert_eq!(decode_snapshot_file(&bytes).unwrap(), snap);
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert!(matches!(
            decode_snapshot_file(&bad),
            Err(CodecError::ChecksumMismatch { .. })
        ));
    }
}
