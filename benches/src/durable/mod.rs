//! The measurements of the `durable` benchmark (`src/bin/durable.rs`): the "1 MiB append +
//! fdatasync" hardware probe in its two forms ([`probe`]), the group-committed
//! `storage::PartitionLog` ([`log`]), the Linux facts they rely on ([`sys`]) and the report
//! ([`report`]).
//!
//! Only that binary uses this module (through `#[path]`); it is not part of the `benches`
//! library, which forbids `unsafe` (the probe needs fallocate, mmap and madvise).

pub mod log;
pub mod probe;
pub mod report;
pub mod sys;

use std::path::{Path, PathBuf};
use std::time::Duration;

use benches::fixtures::Workload;
use storage::StorageError;

/// Why a measurement stopped. Nothing is retried: a number taken around a failed sync is wrong.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("partition log in {dir} ({phase}): {source}")]
    Storage {
        phase: &'static str,
        dir: PathBuf,
        #[source]
        source: Box<StorageError>,
    },
    #[error(
        "{dir} is on {fs_type}, a memory file system where fdatasync writes nothing to a disk; \
         pass --dir on a disk-backed file system"
    )]
    MemoryFileSystem { dir: PathBuf, fs_type: String },
    #[error("no mount listed in /proc/self/mounts contains {dir}")]
    UnknownMount { dir: PathBuf },
    #[error("the {thread} thread ended before the measurement did")]
    WorkerGone { thread: &'static str },
    #[error(
        "byte count check failed: the log stored {stored_bytes} bytes, the workload predicts \
         {predicted_bytes}"
    )]
    Mismatch {
        stored_bytes: u64,
        predicted_bytes: u64,
    },
    #[error("invalid --{flag}: {reason}")]
    Arg { flag: &'static str, reason: String },
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> DurableError + 'a {
    move |source| DurableError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn storage_err<'a>(
    phase: &'static str,
    dir: &'a Path,
) -> impl FnOnce(StorageError) -> DurableError + 'a {
    move |source| DurableError::Storage {
        phase,
        dir: dir.to_path_buf(),
        source: Box::new(source),
    }
}

/// What every measurement of a run shares.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Length of each measurement (the probe counts only its timed steps, see
    /// [`probe::ProbeResult`]).
    pub duration: Duration,
    /// Each measurement stops once it has written this many bytes.
    pub bytes_max: u64,
    /// The appender waits while this many appended bytes are not yet durable.
    pub backlog_bytes_max: u64,
    pub workload: Workload,
}
