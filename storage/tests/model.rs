//! Property test: random append / read / flush / reopen (clean or crash) / truncate / retention
//! sequences against an in-memory model of the log.

mod common;

use proptest::prelude::*;
use storage::{LogConfig, PartitionLog, Record};

#[derive(Debug, Clone)]
enum Op {
    Append { lens: Vec<u16>, keyed: bool },
    Read { at: u16, max_bytes: u16 },
    Flush,
    Prepare,
    Reopen { clean: bool },
    Truncate { at: u16 },
    Retention,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec(0u16..900, 1..5), any::<bool>()).prop_map(|(lens, keyed)| Op::Append { lens, keyed }),
        3 => (any::<u16>(), 1u16..5000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        2 => Just(Op::Flush),
        1 => Just(Op::Prepare),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => Just(Op::Retention),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct ModelRecord {
    offset: u64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    ts: i64,
}

struct Model {
    /// Batches as (base offset, records).
    batches: Vec<(u64, Vec<ModelRecord>)>,
    start: u64,
    end: u64,
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        index_interval_bytes: 512,
        retention_bytes: Some(6000),
        ..LogConfig::default()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = common::fast_tempdir();
    let mut log = Some(PartitionLog::open(dir.path(), config()).unwrap().0);
    let mut model = Model {
        batches: Vec::new(),
        start: 0,
        end: 0,
    };
    for (step, op) in ops.into_iter().enumerate() {
        let l = log.as_mut().unwrap();
        match op {
            Op::Append { lens, keyed } => {
                let values: Vec<Vec<u8>> = lens
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| common::value(model.end + i as u64, n as usize))
                    .collect();
                let key = step.to_le_bytes();
                let recs: Vec<Record<'_>> = values
                    .iter()
                    .map(|v| Record {
                        key: keyed.then_some(&key[..]),
                        value: v,
                        headers: &[],
                        timestamp_ms: step as i64,
                        ttl_ms: 0,
                    })
                    .collect();
                l.append(&recs, None, 0).unwrap();
                let base = model.end;
                let records = values
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| ModelRecord {
                        offset: base + i as u64,
                        key: keyed.then(|| key.to_vec()),
                        value,
                        ts: step as i64,
                    })
                    .collect();
                model.batches.push((base, records));
                model.end += lens.len() as u64;
            }
            Op::Read { at, max_bytes } => {
                let span = model.end - model.start + 1;
                let offset = model.start + u64::from(at) % span;
                let r = l.read(offset, u32::from(max_bytes)).unwrap();
                let got: Vec<ModelRecord> = r
                    .batches
                    .iter()
                    .flat_map(|b| b.records(offset, 0).unwrap())
                    .map(|s| ModelRecord {
                        offset: s.offset,
                        key: s.key.map(|k| k.to_vec()),
                        value: s.value.to_vec(),
                        ts: s.timestamp_ms,
                    })
                    .collect();
                let want: Vec<&ModelRecord> = model
                    .batches
                    .iter()
                    .flat_map(|(_, rs)| rs)
                    .filter(|m| m.offset >= offset)
                    .take(got.len())
                    .collect();
                prop_assert_eq!(got.iter().collect::<Vec<_>>(), want);
                if offset < model.end {
                    prop_assert!(!got.is_empty());
                }
                prop_assert_eq!(r.next_offset, got.last().map_or(offset, |m| m.offset + 1));
            }
            Op::Flush => {
                common::flush(l);
                prop_assert_eq!(l.durable_offset(), model.end);
            }
            Op::Prepare => {
                if let Some(job) = l.prepare_segment_job() {
                    l.install_prepared(job.run().unwrap());
                }
            }
            Op::Reopen { clean } => {
                let old = log.take().unwrap();
                if clean {
                    old.close().unwrap();
                } else {
                    drop(old);
                }
                let (reopened, report) = PartitionLog::open(dir.path(), config()).unwrap();
                prop_assert_eq!(report.tail_cut, None);
                log = Some(reopened);
            }
            Op::Truncate { at } => {
                let boundaries: Vec<u64> = model
                    .batches
                    .iter()
                    .map(|(b, _)| *b)
                    .chain([model.end])
                    .collect();
                let cut = boundaries[usize::from(at) % boundaries.len()];
                l.truncate_to(cut).unwrap();
                model.batches.retain(|(b, _)| *b < cut);
                model.end = cut;
                if model.batches.is_empty() {
                    model.start = cut;
                }
            }
            Op::Retention => {
                let report = l.enforce_retention(0).unwrap();
                prop_assert!(
                    report.start_offset == model.start
                        || model.batches.iter().any(|(b, _)| *b == report.start_offset)
                );
                model.batches.retain(|(b, _)| *b >= report.start_offset);
                model.start = report.start_offset;
            }
        }
        let l = log.as_ref().unwrap();
        prop_assert_eq!(
            (l.start_offset(), l.end_offset()),
            (model.start, model.end),
            "after step {}",
            step
        );
    }
    // Everything in the model is readable at the end, after one more crash-reopen.
    drop(log.take());
    let l = PartitionLog::open(dir.path(), config()).unwrap().0;
    let all: Vec<u64> = common::read_all(&l, l.start_offset(), 0)
        .iter()
        .map(|r| r.offset)
        .collect();
    let want: Vec<u64> = model
        .batches
        .iter()
        .flat_map(|(_, rs)| rs.iter().map(|m| m.offset))
        .collect();
    prop_assert_eq!(all, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}

#[derive(Debug, Clone)]
enum CompactOp {
    Append {
        keys: Vec<Option<u8>>,
        tombstone: bool,
    },
    Flush,
    Compact,
    Reopen,
}

fn compact_op() -> impl Strategy<Value = CompactOp> {
    prop_oneof![
        6 => (prop::collection::vec(prop::option::weighted(0.9, 0u8..6), 1..6), prop::bool::weighted(0.1))
            .prop_map(|(keys, tombstone)| CompactOp::Append { keys, tombstone }),
        2 => Just(CompactOp::Flush),
        2 => Just(CompactOp::Compact),
        1 => Just(CompactOp::Reopen),
    ]
}

/// After any sequence of appends and compactions: every record that is the latest of its key (or
/// has no key) is readable, and every readable record is exactly what was appended at that offset.
fn run_compaction_model(ops: Vec<CompactOp>) -> Result<(), TestCaseError> {
    let dir = common::fast_tempdir();
    let config = LogConfig {
        segment_bytes_max: 4096,
        compacted: true,
        ..LogConfig::default()
    };
    let mut log = Some(PartitionLog::open(dir.path(), config.clone()).unwrap().0);
    let mut appended: Vec<(Option<u8>, Vec<u8>)> = Vec::new();
    for op in ops {
        let l = log.as_mut().unwrap();
        match op {
            CompactOp::Append { keys, tombstone } => {
                let key_bytes: Vec<Option<[u8; 1]>> = keys.iter().map(|k| k.map(|k| [k])).collect();
                let values: Vec<Vec<u8>> = (0..keys.len())
                    .map(|i| {
                        if tombstone && i == 0 {
                            Vec::new()
                        } else {
                            common::value(appended.len() as u64 + i as u64, 300)
                        }
                    })
                    .collect();
                let recs: Vec<Record<'_>> = key_bytes
                    .iter()
                    .zip(&values)
                    .map(|(k, v)| Record {
                        key: k.as_ref().map(|k| &k[..]),
                        value: v,
                        headers: &[],
                        timestamp_ms: 0,
                        ttl_ms: 0,
                    })
                    .collect();
                l.append(&recs, None, 0).unwrap();
                appended.extend(keys.into_iter().zip(values));
            }
            CompactOp::Flush => common::flush(l),
            CompactOp::Compact => {
                if let Some(job) = l.compaction_job(0) {
                    let done = job.run().unwrap();
                    l.install_compaction(done).unwrap();
                }
            }
            CompactOp::Reopen => {
                drop(log.take());
                log = Some(PartitionLog::open(dir.path(), config.clone()).unwrap().0);
            }
        }
        let l = log.as_ref().unwrap();
        let got = common::read_all(l, 0, 0);
        let mut latest = std::collections::HashMap::new();
        for (offset, (k, _)) in appended.iter().enumerate() {
            if let Some(k) = k {
                latest.insert(*k, offset as u64);
            }
        }
        for r in &got {
            let (k, v) = &appended[r.offset as usize];
            prop_assert_eq!(r.key.as_deref(), k.as_ref().map(std::slice::from_ref));
            prop_assert_eq!(&r.value[..], &v[..]);
        }
        for (offset, (k, _)) in appended.iter().enumerate() {
            let must = k.is_none_or(|k| latest[&k] == offset as u64);
            if must {
                prop_assert!(
                    got.iter().any(|r| r.offset == offset as u64),
                    "offset {} lost",
                    offset
                );
            }
        }
        prop_assert_eq!(l.end_offset(), appended.len() as u64);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
    #[test]
    fn compaction_keeps_latest_per_key(ops in prop::collection::vec(compact_op(), 1..30)) {
        run_compaction_model(ops)?;
    }
}
