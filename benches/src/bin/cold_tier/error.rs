//! Why a benchmark run stopped. Every failure ends the run: a number measured around a failed
//! upload or a short read would be wrong, so nothing is retried or skipped.

use storage::cold::{ColdError, StoreError};
use storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("writing the benchmark log in {dir}: {source}")]
    Log {
        dir: String,
        #[source]
        source: Box<StorageError>,
    },
    #[error("cold tier ({phase}): {source}")]
    Cold {
        phase: &'static str,
        #[source]
        source: Box<ColdError>,
    },
    #[error("object store ({phase}, key {key}): {source}")]
    Store {
        phase: &'static str,
        key: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("rust-s3 probe ({op}, key {key}): {reason}")]
    Probe {
        op: &'static str,
        key: String,
        reason: String,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("result check failed ({what}): expected {expected}, got {got}")]
    Mismatch {
        what: &'static str,
        expected: u64,
        got: u64,
    },
    #[error("invalid argument --{flag}: {reason}")]
    Arg { flag: &'static str, reason: String },
}

impl BenchError {
    pub fn store(phase: &'static str, key: &str) -> impl FnOnce(StoreError) -> BenchError {
        let key = key.to_string();
        move |source| BenchError::Store {
            phase,
            key,
            source: Box::new(source),
        }
    }

    pub fn cold(phase: &'static str) -> impl FnOnce(ColdError) -> BenchError {
        move |source| BenchError::Cold {
            phase,
            source: Box::new(source),
        }
    }

    pub fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.display().to_string();
        move |source| BenchError::Io { op, path, source }
    }

    pub fn check(what: &'static str, expected: u64, got: u64) -> Result<(), BenchError> {
        if expected == got {
            Ok(())
        } else {
            Err(BenchError::Mismatch {
                what,
                expected,
                got,
            })
        }
    }
}
