//! Replays the committed cargo-fuzz corpora of the storage targets (`fuzz/corpus/storage_*/`)
//! through the very checks the fuzz targets run (`benches::storage_fuzz`), so every input the
//! fuzzer kept stays a regression test under plain `cargo test`. It lives here, not in
//! `storage/tests/`, because the checks are shared with the fuzz targets through this crate.

use std::path::{Path, PathBuf};

use benches::storage_fuzz::{
    check_format, check_index_files, check_segment_file, seed_inputs, Outcome, SeedTarget,
};

fn check(target: SeedTarget, data: &[u8]) -> Outcome {
    match target {
        SeedTarget::Format => check_format(data),
        SeedTarget::Segment => check_segment_file(data),
        SeedTarget::Index => check_index_files(data),
    }
}

fn corpus_dir(target: SeedTarget) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target.name())
}

/// Replays one corpus; returns (inputs, inputs whose log opened, records decoded).
fn replay(target: SeedTarget) -> (u32, u32, u64) {
    let dir = corpus_dir(target);
    let mut totals = (0, 0, 0);
    for entry in std::fs::read_dir(&dir).expect("the fuzz corpus is committed") {
        let path = entry.expect("readable corpus dir").path();
        let data = std::fs::read(&path).expect("readable corpus file");
        let outcome = check(target, &data);
        totals.0 += 1;
        totals.1 += u32::from(outcome.opened);
        totals.2 += outcome.records_decoded;
    }
    totals
}

#[test]
fn format_corpus_replays_cleanly() {
    let (inputs, _, records) = replay(SeedTarget::Format);
    assert!(
        inputs >= 50,
        "only {inputs} inputs in the storage_format corpus"
    );
    assert!(records > 0, "the corpus must reach the record decoder");
}

#[test]
fn segment_corpus_replays_cleanly() {
    let (inputs, opened, records) = replay(SeedTarget::Segment);
    assert!(
        inputs >= 50,
        "only {inputs} inputs in the storage_segment corpus"
    );
    assert!(
        opened > 0 && records > 0,
        "the corpus must hold logs that open and decode"
    );
}

#[test]
fn index_corpus_replays_cleanly() {
    let (inputs, opened, records) = replay(SeedTarget::Index);
    assert!(
        inputs >= 20,
        "only {inputs} inputs in the storage_index corpus"
    );
    assert!(
        opened > 0 && records > 0,
        "the corpus must hold logs that open and decode"
    );
}

/// The seeds are real files: each must get past every outer check (a seed that is rejected
/// early would leave the fuzzer to rediscover the format from nothing).
#[test]
fn seeds_reach_the_decoders_behind_the_checksums() {
    let seeds = seed_inputs().expect("build seeds");
    for target in SeedTarget::ALL {
        assert!(
            seeds.iter().any(|(t, _, _)| *t == target),
            "no seed for {target:?}"
        );
    }
    for (target, name, bytes) in &seeds {
        let outcome = check(*target, bytes);
        match target {
            SeedTarget::Format => assert!(outcome.headers_accepted > 0, "{name}: {outcome:?}"),
            SeedTarget::Segment | SeedTarget::Index => {
                assert!(outcome.opened, "{name}: {outcome:?}");
                assert!(outcome.records_decoded > 0, "{name}: {outcome:?}");
                assert_eq!(outcome.typed_errors, 0, "{name}: {outcome:?}");
            }
        }
    }
    // The feature batch (keys, headers, TTL) decodes all three of its records.
    let batch = seeds
        .iter()
        .find(|(_, n, _)| n == "seed-batch-0")
        .expect("seed-batch-0");
    assert_eq!(check_format(&batch.2).records_decoded, 3);
}
