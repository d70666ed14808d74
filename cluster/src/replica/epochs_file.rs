//! The `leader-epochs` file: a bounded, CRC-checked, little-endian encoding of a
//! [`LeaderEpochs`] history (byte diagram in `docs/replication-format.md`).
//!
//! The file is small (at most [`LEADER_EPOCHS_FILE_BYTES_MAX`]) and rewritten whole (write a temp
//! file, fdatasync, rename) whenever the history changes, so a torn write is caught by the length
//! or CRC check and the previous file survives the rename.

use super::epochs::{EpochEntry, LeaderEpochs, LEADER_EPOCHS_MAX};

/// First four bytes of the file, `SPLE` (Sprawl Leader Epochs).
pub const LEADER_EPOCHS_MAGIC: [u8; 4] = *b"SPLE";
/// The format version this code writes and reads.
pub const LEADER_EPOCHS_VERSION: u16 = 1;
/// Bytes before the entries: magic, version, reserved, count.
const HEADER_BYTES: usize = 12;
/// Bytes per entry: epoch u32, start offset u64.
const ENTRY_BYTES: usize = 12;
/// Bytes after the entries: the CRC32C.
const TRAILER_BYTES: usize = 4;
/// The largest valid file: a full history.
pub const LEADER_EPOCHS_FILE_BYTES_MAX: usize =
    HEADER_BYTES + LEADER_EPOCHS_MAX * ENTRY_BYTES + TRAILER_BYTES;

/// Why a `leader-epochs` file was refused. Nothing is allocated before the length is checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochsFileError {
    /// Shorter than a header and trailer.
    #[error("leader-epochs file has {len} bytes, at least {min} needed")]
    TooShort {
        /// Bytes given.
        len: usize,
        /// Smallest valid file.
        min: usize,
    },
    /// The magic bytes are wrong: not a leader-epochs file.
    #[error("leader-epochs file starts with {found:02x?}, expected {LEADER_EPOCHS_MAGIC:02x?}")]
    Magic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A version this code does not read.
    #[error(
        "leader-epochs file version {found} is not supported (this build reads \
         {LEADER_EPOCHS_VERSION})"
    )]
    Version {
        /// The version found.
        found: u16,
    },
    /// The reserved field is not zero.
    #[error("leader-epochs file reserved field is {found}, expected 0")]
    Reserved {
        /// The value found.
        found: u16,
    },
    /// More entries than a history may hold.
    #[error("leader-epochs file claims {count} entries, at most {max} allowed")]
    TooManyEntries {
        /// The count field.
        count: u32,
        /// [`LEADER_EPOCHS_MAX`].
        max: usize,
    },
    /// The byte length does not match the entry count (torn or padded file).
    #[error("leader-epochs file has {len} bytes but its {count} entries need {expected}")]
    Length {
        /// Bytes given.
        len: usize,
        /// The count field.
        count: u32,
        /// Bytes that count implies.
        expected: usize,
    },
    /// The checksum does not match the contents.
    #[error(
        "leader-epochs file checksum {stored:#010x} does not match its contents ({computed:#010x})"
    )]
    Crc {
        /// The CRC in the file.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// Entries do not strictly increase in epoch and start offset.
    #[error(
        "leader-epochs file entry {index} does not follow the previous one (epochs and start \
         offsets must increase)"
    )]
    NotIncreasing {
        /// Index of the offending entry.
        index: usize,
    },
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

impl LeaderEpochs {
    /// The file bytes of this history.
    pub fn encode(&self) -> Vec<u8> {
        let entries = self.entries();
        let mut out =
            Vec::with_capacity(HEADER_BYTES + entries.len() * ENTRY_BYTES + TRAILER_BYTES);
        out.extend_from_slice(&LEADER_EPOCHS_MAGIC);
        out.extend_from_slice(&LEADER_EPOCHS_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        // The history never exceeds LEADER_EPOCHS_MAX (4096) entries, so the count fits a u32.
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for e in entries {
            out.extend_from_slice(&e.epoch.to_le_bytes());
            out.extend_from_slice(&e.start_offset.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a history from file bytes, checking size, magic, version, count, length, CRC and
    /// order before building anything.
    pub fn decode(bytes: &[u8]) -> Result<Self, EpochsFileError> {
        let min = HEADER_BYTES + TRAILER_BYTES;
        if bytes.len() < min {
            return Err(EpochsFileError::TooShort {
                len: bytes.len(),
                min,
            });
        }
        let mut found = [0u8; 4];
        found.copy_from_slice(&bytes[..4]);
        if found != LEADER_EPOCHS_MAGIC {
            return Err(EpochsFileError::Magic { found });
        }
        let version = u16_at(bytes, 4);
        if version != LEADER_EPOCHS_VERSION {
            return Err(EpochsFileError::Version { found: version });
        }
        let reserved = u16_at(bytes, 6);
        if reserved != 0 {
            return Err(EpochsFileError::Reserved { found: reserved });
        }
        let count = u32_at(bytes, 8);
        let n = usize::try_from(count)
            .ok()
            .filter(|n| *n <= LEADER_EPOCHS_MAX)
            .ok_or(EpochsFileError::TooManyEntries {
                count,
                max: LEADER_EPOCHS_MAX,
            })?;
        let expected = HEADER_BYTES + n * ENTRY_BYTES + TRAILER_BYTES;
        if bytes.len() != expected {
            return Err(EpochsFileError::Length {
                len: bytes.len(),
                count,
                expected,
            });
        }
        let body = expected - TRAILER_BYTES;
        let stored = u32_at(bytes, body);
        let computed = crc32c::crc32c(&bytes[..body]);
        if stored != computed {
            return Err(EpochsFileError::Crc { stored, computed });
        }
        let entries = (0..n)
            .map(|i| {
                let at = HEADER_BYTES + i * ENTRY_BYTES;
                EpochEntry {
                    epoch: u32_at(bytes, at),
                    start_offset: u64_at(bytes, at + 4),
                }
            })
            .collect();
        LeaderEpochs::from_entries(entries)
            .map_err(|index| EpochsFileError::NotIncreasing { index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the format: epochs 3 at 0 and 7 at 0x0102.
    #[test]
    fn golden_bytes() {
        let mut h = LeaderEpochs::new();
        h.assign(3, 0).unwrap();
        h.assign(7, 0x0102).unwrap();
        let bytes = h.encode();
        let body: Vec<u8> = [
            &b"SPLE"[..],
            &[1, 0, 0, 0],
            &[2, 0, 0, 0],
            &[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[7, 0, 0, 0, 0x02, 0x01, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(&bytes[..body.len()], &body[..]);
        assert_eq!(bytes.len(), body.len() + 4);
        assert_eq!(&bytes[body.len()..], &crc32c::crc32c(&body).to_le_bytes());
        assert_eq!(LeaderEpochs::decode(&bytes), Ok(h));
    }

    #[test]
    fn empty_history_round_trips() {
        let bytes = LeaderEpochs::new().encode();
        assert_eq!(bytes.len(), 16);
        assert_eq!(LeaderEpochs::decode(&bytes), Ok(LeaderEpochs::new()));
    }

    #[test]
    fn every_header_field_is_checked() {
        let mut h = LeaderEpochs::new();
        h.assign(1, 4).unwrap();
        let good = h.encode();
        let with = |at: usize, b: u8| {
            let mut v = good.clone();
            v[at] = b;
            v
        };
        assert_eq!(
            LeaderEpochs::decode(&good[..15]),
            Err(EpochsFileError::TooShort { len: 15, min: 16 })
        );
        assert!(matches!(
            LeaderEpochs::decode(&with(0, b'X')),
            Err(EpochsFileError::Magic { .. })
        ));
        assert_eq!(
            LeaderEpochs::decode(&with(4, 2)),
            Err(EpochsFileError::Version { found: 2 })
        );
        assert_eq!(
            LeaderEpochs::decode(&with(6, 1)),
            Err(EpochsFileError::Reserved { found: 1 })
        );
        let mut huge = good.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            LeaderEpochs::decode(&huge),
            Err(EpochsFileError::TooManyEntries {
                count: u32::MAX,
                max: LEADER_EPOCHS_MAX
            })
        );
        assert_eq!(
            LeaderEpochs::decode(&good[..good.len() - 1]),
            Err(EpochsFileError::Length {
                len: 27,
                count: 1,
                expected: 28
            })
        );
        assert!(matches!(
            LeaderEpochs::decode(&with(14, 9)),
            Err(EpochsFileError::Crc { .. })
        ));
    }

    #[test]
    fn out_of_order_entries_with_a_valid_crc_are_refused() {
        let mut body = Vec::new();
        body.extend_from_slice(b"SPLE");
        body.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
        for (epoch, start) in [(5u32, 10u64), (4, 20)] {
            body.extend_from_slice(&epoch.to_le_bytes());
            body.extend_from_slice(&start.to_le_bytes());
        }
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            LeaderEpochs::decode(&body),
            Err(EpochsFileError::NotIncreasing { index: 1 })
        );
    }

    #[test]
    fn the_largest_history_fits_the_stated_bound() {
        let mut h = LeaderEpochs::new();
        for i in 0..LEADER_EPOCHS_MAX as u32 {
            h.assign(i + 1, u64::from(i) * 3).unwrap();
        }
        let bytes = h.encode();
        assert_eq!(bytes.len(), LEADER_EPOCHS_FILE_BYTES_MAX);
        assert_eq!(LeaderEpochs::decode(&bytes), Ok(h));
    }
}
