//! Deterministic simulation of 3 and 5 metadata replicas on a virtual clock.
//!
//! One seed fixes everything: per-node tick phases (clock skew), message
//! latency (hence reordering), drops, duplicates, partitions (full, one-way,
//! minority), pauses, and crashes that lose every unsynced byte or keep a torn
//! prefix of it. No ambient randomness or wall-clock time is used, so a seed
//! replays exactly: a failure prints its seed, and
//! `META_SIM_SEED=<seed> cargo test -p meta --test simulation` reruns that
//! seed alone (add `META_SIM_NODES=5` for the five-node runs and
//! `META_SIM_SCENARIO=minority` for the partitioned-minority scenario).
//! `META_SIM_SEEDS=<count>` runs more seeds per test (soak).
//!
//! The partitioned-minority scenario cuts off 1 of 3 or 2 of 5 followers for
//! 20 election timeouts and heals: with PreVote and CheckQuorum no node's term
//! may move and the leader must stay leader throughout.
//!
//! Checked continuously: at most one leader per term; every node applies the
//! same entry at the same index (so applied sequences are prefixes of one
//! another). Checked at the end, after healing every fault: a leader is elected
//! and commits a fresh proposal on all nodes (liveness); every acknowledged
//! proposal is applied at its acknowledged index on every node; all replicas
//! hold equal states.

mod sim;

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};

use sim::{Sim, Stats};

/// Runs one seed, turning panics into errors so the seed gets printed.
fn run_seed(seed: u64, n: usize, chaos_steps: u64) -> Result<(u64, Stats), String> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut sim = Sim::new(seed, n);
        if chaos_steps == 0 {
            sim.run_minority()?;
        } else {
            sim.run(chaos_steps)?;
        }
        Ok(sim.finish())
    }))
    .unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(format!("panic: {msg}"))
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Which seeds a test runs: its default range, or only `META_SIM_SEED` (when
/// `META_SIM_NODES` and `META_SIM_SCENARIO` match the test), or
/// `META_SIM_SEEDS` seeds from the range start (soak runs).
fn seeds_for(n: usize, scenario: &str, default: Range<u64>) -> Range<u64> {
    if let Some(seed) = env_u64("META_SIM_SEED") {
        let nodes_match = env_u64("META_SIM_NODES").unwrap_or(3) == n as u64;
        let scenario_match =
            std::env::var("META_SIM_SCENARIO").unwrap_or("chaos".into()) == scenario;
        return if nodes_match && scenario_match {
            seed..seed + 1
        } else {
            0..0
        };
    }
    match env_u64("META_SIM_SEEDS") {
        Some(count) => default.start..default.start + count,
        None => default,
    }
}

fn run_seeds(n: usize, scenario: &str, default: Range<u64>) -> Stats {
    let chaos_steps = if scenario == "chaos" { CHAOS_STEPS } else { 0 };
    let mut total = Stats::default();
    for seed in seeds_for(n, scenario, default) {
        match run_seed(seed, n, chaos_steps) {
            Ok((_, stats)) => total.add(&stats),
            Err(e) => panic!(
                "seed {seed} ({n} nodes, {scenario}) failed: {e}\nreproduce: META_SIM_SEED={seed} \
                 META_SIM_NODES={n} META_SIM_SCENARIO={scenario} cargo test -p meta --test simulation"
            ),
        }
    }
    println!("{n} nodes, {scenario}: {total:?}");
    total
}

/// The faults must actually happen, or the checks prove nothing.
fn assert_exercised(total: &Stats, seeds: u64) {
    if std::env::var("META_SIM_SEED").is_ok() {
        return;
    }
    assert!(total.acked > seeds * 5, "{total:?}");
    assert!(
        total.crashes > seeds && total.partitions > seeds / 2,
        "{total:?}"
    );
    assert!(
        total.elections > seeds * 2 && total.snapshots_installed > seeds / 10,
        "{total:?}"
    );
}

/// Steps of chaos per seed (150 raft ticks), before healing.
const CHAOS_STEPS: u64 = 1500;

#[test]
fn three_nodes_600_seeds() {
    let total = run_seeds(3, "chaos", 0..600);
    assert_exercised(&total, 600);
}

#[test]
fn five_nodes_400_seeds() {
    let total = run_seeds(5, "chaos", 10_000..10_400);
    assert_exercised(&total, 400);
}

#[test]
fn a_partitioned_minority_cannot_disrupt_the_majority() {
    for n in [3, 5] {
        run_seeds(n, "minority", 20_000..20_030);
    }
}

#[test]
fn a_seed_replays_identically() {
    for (seed, n) in [(1, 3), (77, 5), (10_003, 5)] {
        let a = run_seed(seed, n, CHAOS_STEPS).unwrap();
        let b = run_seed(seed, n, CHAOS_STEPS).unwrap();
        assert_eq!(a, b, "seed {seed} is not deterministic");
    }
}
