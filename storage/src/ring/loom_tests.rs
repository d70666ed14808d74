//! Model checks of the ring protocol under loom: every interleaving and weak-memory outcome of a
//! writer racing one or two readers. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p storage --release --lib ring::loom`.

use std::sync::atomic::{AtomicUsize, Ordering};

use loom::thread;

use super::test_batches::{assert_one_history, check_run, sealed};
use super::HotRing;
use crate::config::RingConfig;

fn ring(entries_max: u32) -> HotRing {
    HotRing::new(RingConfig {
        bytes_max: 1 << 20,
        entries_max,
    })
}

/// The reader reads offset 1 while the writer pushes two batches into a ring of two entries
/// (evicting the oldest each time, reusing slot 0): a hit is batch 1..=2, maybe followed by 3.
#[test]
fn push_and_evict_against_a_reader() {
    static HITS: AtomicUsize = AtomicUsize::new(0);
    static MISSES: AtomicUsize = AtomicUsize::new(0);
    loom::model(|| {
        let mut w = ring(2);
        w.push(sealed(0, 1, 0));
        let r = w.reader();
        let t = thread::spawn(move || r.read(1, u32::MAX));
        w.push(sealed(1, 2, 0));
        w.push(sealed(3, 1, 0));
        match t.join().expect("reader") {
            Some(run) => {
                let got = check_run(1, &run);
                assert_eq!(got[0], (1, 2, 0));
                assert!(got.len() <= 2);
                HITS.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                MISSES.fetch_add(1, Ordering::Relaxed);
            }
        }
        assert_eq!(
            (w.len(), w.bytes()),
            (2, 2 * w.describe(w.head, &super::sync::pin()).2)
        );
    });
    assert!(HITS.load(Ordering::Relaxed) > 0 && MISSES.load(Ordering::Relaxed) > 0);
}

/// The writer truncates to offset 2 (popping batches 2 and 3, so their positions are reused) and
/// writes 2 and 3 again in a new history while a reader reads from offset 1. The reader must see
/// the log before the truncation or after it, never old 2 followed by new 3.
#[test]
fn truncation_never_mixes_histories() {
    static NEW_HISTORY_SEEN: AtomicUsize = AtomicUsize::new(0);
    loom::model(|| {
        let mut w = ring(4);
        for o in 0..4 {
            w.push(sealed(o, 1, 0));
        }
        let r = w.reader();
        let t = thread::spawn(move || r.read(1, u32::MAX));
        w.discard_from(2);
        w.push(sealed(2, 1, 1));
        w.push(sealed(3, 1, 1));
        if let Some(run) = t.join().expect("reader") {
            let got = check_run(1, &run);
            assert_one_history(&got, &[0, 2]);
            if got.iter().any(|b| b.2 == 1) {
                NEW_HISTORY_SEEN.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    assert!(
        NEW_HISTORY_SEEN.load(Ordering::Relaxed) > 0,
        "some execution reads after the truncation"
    );
}

/// Two readers at different offsets while the writer pushes, evicts for retention and hits a gap.
#[test]
fn two_readers_with_retention_and_a_gap() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let mut w = ring(2);
        w.push(sealed(0, 2, 0));
        w.push(sealed(2, 1, 0));
        let readers: Vec<_> = [0u64, 2]
            .into_iter()
            .map(|offset| {
                let r = w.reader();
                thread::spawn(move || (offset, r.read(offset, u32::MAX)))
            })
            .collect();
        w.discard_below(1);
        w.push(sealed(5, 1, 0));
        for t in readers {
            let (offset, got) = t.join().expect("reader");
            if let Some(run) = got {
                let got = check_run(offset, &run);
                assert!(
                    got.iter().all(|b| b.1 < 3),
                    "the gap batch never joins a run"
                );
            }
        }
        assert_eq!(w.len(), 1);
    });
}
