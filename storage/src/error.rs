//! Typed errors of the storage layer. Each variant says whether the log is still usable.

use std::path::PathBuf;

/// Errors returned by [`crate::PartitionLog`] and its jobs.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A system call failed. The log is still consistent unless the variant came from a flush
    /// (see [`StorageError::FlushFailed`]).
    #[error("{op} {path}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The file system is full (ENOSPC or EDQUOT). Nothing was written by the failing call; an
    /// append or roll that gets it leaves the log unchanged and readable, and can be retried once
    /// space is freed. From a flush job it is a failed flush like any other.
    #[error("no space left for {op} {path}")]
    NoSpace { path: PathBuf, op: &'static str },
    /// Data that recovery or a reader must trust failed verification (checksum, framing, continuity).
    /// The log refuses to open rather than silently dropping durable data.
    #[error("corrupt log data in {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// The encoded batch exceeds the limit; nothing was written.
    #[error("batch of {bytes} bytes exceeds the limit of {max} bytes")]
    BatchTooLarge { bytes: u64, max: u64 },
    /// `append` was called with no records; nothing was written.
    #[error("empty batch")]
    EmptyBatch,
    /// The producer's sequence does not follow its last appended batch; nothing was written.
    #[error("producer {producer_id} epoch {epoch}: expected sequence {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: u64,
        epoch: u16,
        expected: u32,
        got: u32,
    },
    /// The producer was fenced by a newer epoch; nothing was written.
    #[error("producer {producer_id}: epoch {got} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: u64,
        current: u16,
        got: u16,
    },
    /// The offset is outside `[start, end]`.
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: u64, start: u64, end: u64 },
    /// A replica batch does not start at the log's end offset (a gap or an overlap); nothing was
    /// written. Truncate to the leader's epoch boundary or fetch from `expected`.
    #[error("replica batch starts at offset {got}, but the log ends at {expected}")]
    ReplicaOffsetMismatch { expected: u64, got: u64 },
    /// `reset_empty_to` on a log that holds records.
    #[error("the log holds offsets {start}..{end}; only an empty log can be re-based")]
    NotEmpty { start: u64, end: u64 },
    /// `truncate_to` was asked to cut inside a batch; batches are never split.
    #[error("offset {offset} is not a batch boundary")]
    NotBatchBoundary { offset: u64 },
    /// A configuration value is out of range.
    #[error("invalid log config `{field}`: {reason}")]
    InvalidConfig {
        field: &'static str,
        reason: &'static str,
    },
    /// A flush (fdatasync) failed earlier. After a failed fdatasync the kernel may have dropped the
    /// dirty pages, so durability of everything past `durable_offset` is unknown: the log refuses
    /// further appends and flushes; close it and reopen (recovery decides what survived).
    #[error("log is fenced after a failed flush: reopen it to run recovery")]
    FlushFailed,
    /// `truncate_to` was called while a flush job is running; retry after `complete_flush`.
    #[error("a flush is in flight")]
    FlushInFlight,
    /// A compaction pass found more distinct keys than it may track; nothing was rewritten.
    #[error("compaction needs more than {keys_max} distinct keys")]
    CompactionKeyLimit { keys_max: usize },
    /// Offsets would exceed the u32 relative offset space of one segment or u64 overall.
    #[error("offset space exhausted: {reason}")]
    OffsetOverflow { reason: &'static str },
}

impl StorageError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        op: &'static str,
        source: std::io::Error,
    ) -> StorageError {
        if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
            return StorageError::NoSpace {
                path: path.into(),
                op,
            };
        }
        StorageError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        position: u64,
        reason: impl Into<String>,
    ) -> StorageError {
        StorageError::Corrupt {
            path: path.into(),
            position,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_its_own_variant() {
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(matches!(
            StorageError::io("/d/x.seg", "fallocate", full),
            StorageError::NoSpace {
                op: "fallocate",
                ..
            }
        ));
        let other = std::io::Error::from_raw_os_error(libc::EIO);
        assert!(matches!(
            StorageError::io("/d/x.seg", "fdatasync", other),
            StorageError::Io { .. }
        ));
    }
}
