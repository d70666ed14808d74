//! Sprawl's micro benchmarks (the `[[bench]]` targets of this crate, run with `cargo bench -p
//! benches`) and the storage fuzz checks.
//!
//! The library part holds what benchmarks and fuzzing share:
//! - [`fixtures`]: batch shapes ([`fixtures::Workload`]) with the exact number of bytes an append
//!   stores, so every benchmark and the hardware probe beside it count the same bytes; requests,
//!   responses and logs prepared the way the engine prepares them (a prefaulted next segment).
//! - [`storage_fuzz`]: the checks behind the `storage_*` cargo-fuzz targets in `fuzz/`, also
//!   replayed over the committed corpora by `tests/fuzz_corpus_storage.rs`.
//!
//! What it deliberately does not do: macro load (that is `loadgen`, over real sockets), compare with
//! other brokers, or judge numbers. The machines are shared 2-vCPU VMs, so absolute timings drift;
//! the benchmarks put a hardware probe (memcpy, fdatasync) beside the code under test so the ratio
//! can be read from one run (see `docs/benchmarks/micro.md`).
//!
//! ```
//! use benches::fixtures::{fill_log, open_log, Workload};
//! use storage::LogConfig;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let workload = Workload::new(16, 1024);
//! let mut log = open_log(dir.path(), LogConfig::default()).unwrap();
//! fill_log(&mut log, workload, 2).unwrap();
//! // What one append writes: the 64-byte batch header and a 36-byte prefix per record.
//! assert_eq!(log.stats().appended_bytes, 2 * workload.stored_batch_bytes());
//! assert_eq!(workload.stored_batch_bytes(), 64 + 16 * (36 + 1024));
//!
//! // A fuzz check returns what it reached; it panics only on a storage bug.
//! let outcome = benches::storage_fuzz::check_format(b"not a batch");
//! assert_eq!(outcome.headers_accepted, 0);
//! ```

#![forbid(unsafe_code)]

pub mod fixtures;
pub mod storage_fuzz;
