//! Tests of the analyzer: determinism, end-to-end events, limits and the per-partition budget.

use super::*;
use crate::decide::ShardInfo;

fn run(seed: u64) -> Vec<TickOutput> {
    let mut config = Config::default();
    config.hot.partition_capacity_msgs_per_s = 2_000.0;
    let mut a = Analyzer::new(config, seed).expect("config");
    let placement = Placement {
        shards: (0..2)
            .map(|s| ShardInfo {
                shard: s,
                node: 0,
                capacity_msgs_per_s: 10_000.0,
            })
            .collect(),
        assignment: (0..8).map(|p| (p, if p < 6 { 0 } else { 1 })).collect(),
    };
    let mut outs = Vec::new();
    for t in 0..400u64 {
        for p in 0..8u32 {
            let base = 500.0 + 100.0 * p as f64;
            let v = if p == 3 && t >= 300 {
                4_000.0
            } else {
                base + (t % 7) as f64
            };
            a.observe(Sample {
                series: SeriesId::new(SeriesKind::PartitionMsgsPerS, p),
                t_s: t,
                value: v,
            })
            .expect("within limits");
        }
        a.observe(Sample {
            series: SeriesId::new(SeriesKind::HostCpuPct, 0),
            t_s: t,
            value: 40.0 + (t % 10) as f64,
        })
        .expect("within limits");
        outs.push(a.tick(t, Some(&placement)));
    }
    outs
}

#[test]
fn same_seed_same_outputs() {
    // Compared through Debug so that NaN errors of not-yet-scored methods compare equal.
    assert_eq!(format!("{:?}", run(5)), format!("{:?}", run(5)));
}

#[test]
fn hot_partition_is_flagged_moved_and_reported() {
    let outs = run(1);
    let hot: Vec<&HotEvent> = outs.iter().flat_map(|o| o.hot.iter()).collect();
    assert!(hot
        .iter()
        .any(|e| e.partition == 3 && e.kind == HotKind::Hot && e.t_s == 301));
    let anomalies: Vec<&Anomaly> = outs.iter().flat_map(|o| o.anomalies.iter()).collect();
    assert!(anomalies
        .iter()
        .any(|a| a.series.entity == 3 && a.t_s == 300));
    let moves = outs
        .iter()
        .flat_map(|o| o.decisions.iter())
        .filter(|d| matches!(d, Decision::Move { .. }))
        .count();
    assert!(
        moves >= 1,
        "six partitions on shard 0, two on shard 1: expected a move"
    );
    // Host series forecasts are published every tick with the baseline's error beside them.
    let last = outs.last().expect("ticks");
    assert_eq!(last.forecasts.len(), 3);
    assert!(last.forecasts.iter().all(|f| f.baseline_mae.is_finite()));
}

#[test]
fn partition_state_fits_the_budget() {
    let mut a = Analyzer::new(Config::default(), 0).expect("config");
    for kind in [
        SeriesKind::PartitionMsgsPerS,
        SeriesKind::PartitionBytesPerS,
        SeriesKind::ConsumerLagMsgs,
        SeriesKind::FetchPerS,
    ] {
        a.observe(Sample {
            series: SeriesId::new(kind, 9),
            t_s: 0,
            value: 1.0,
        })
        .expect("within limits");
    }
    let bytes = a.partition_state_bytes(9).expect("tracked");
    assert!(bytes <= 1024, "{bytes} B per partition");
}

#[test]
fn partitions_beyond_the_limit_are_refused() {
    let config = Config {
        partitions_max: 2,
        ..Config::default()
    };
    let mut a = Analyzer::new(config, 0).expect("config");
    let sample = |p: u32| Sample {
        series: SeriesId::new(SeriesKind::PartitionMsgsPerS, p),
        t_s: 0,
        value: 1.0,
    };
    assert!(a.observe(sample(0)).is_ok());
    assert!(a.observe(sample(1)).is_ok());
    assert_eq!(
        a.observe(sample(2)),
        Err(ObserveError::TooManyPartitions {
            partition: 2,
            limit: 2
        })
    );
    // Known partitions keep being accepted; non-finite values never are.
    assert!(a.observe(sample(1)).is_ok());
    let nan = Sample {
        value: f64::NAN,
        ..sample(1)
    };
    assert!(matches!(
        a.observe(nan),
        Err(ObserveError::NonFinite { entity: 1, .. })
    ));
    assert_eq!(a.partitions(), 2);
}
