//! Hot keys (H3): Space-Saving recall against exact per-window counts, with moving heavy keys.

use std::collections::HashMap;

use analytics::{Analyzer, Config};
use serde_json::{json, Value};

use crate::report::{fmt, Row};
use crate::rng::Rng;

const PARTITIONS: u32 = 4;
const MSGS_PER_S: u32 = 1500;
const HEAVY_SHARES: [f64; 7] = [0.05, 0.03, 0.02, 0.015, 0.011, 0.009, 0.008];
const KEYSPACE: u64 = 200_000;
const HOT_SET_PERIOD_S: u64 = 300;

pub fn h3(seed: u64, duration_s: u64) -> anyhow::Result<(Row, Value)> {
    let cfg = Config::default();
    let window_s = cfg.keys.window_s;
    let share_min = cfg.keys.share_min;
    let mut a = Analyzer::new(cfg, seed)?;
    let mut rng = Rng::new(seed ^ 0x4b);
    let mut exact: Vec<HashMap<u64, u64>> = vec![HashMap::new(); PARTITIONS as usize];
    let (mut true_heavy, mut found, mut reported) = (0usize, 0usize, 0usize);
    let mut max_bytes = 0usize;
    let mut exact_bytes_max = 0usize;
    let mut batch = Vec::with_capacity(MSGS_PER_S as usize);
    for t in 0..=duration_s {
        for p in 0..PARTITIONS {
            batch.clear();
            if t < duration_s {
                let epoch = t / HOT_SET_PERIOD_S;
                for _ in 0..MSGS_PER_S {
                    let u = rng.f64();
                    let mut acc = 0.0;
                    let mut key = None;
                    for (i, s) in HEAVY_SHARES.iter().enumerate() {
                        acc += s;
                        if u < acc {
                            // Heavy keys move every HOT_SET_PERIOD_S.
                            key = Some(1_000_000 + epoch * 100 + i as u64 + p as u64 * 10_000_000);
                            break;
                        }
                    }
                    let k = key.unwrap_or_else(|| rng.below(KEYSPACE));
                    batch.push((k, 1u64));
                }
            }
            // The window closes when the first sample of the next window arrives.
            a.observe_keys(p, t, &batch);
            if t > 0 && t % window_s == 0 {
                let ex = &mut exact[p as usize];
                let total: u64 = ex.values().sum();
                exact_bytes_max = exact_bytes_max.max(ex.capacity() * 8 / 7 * 17);
                let truth: Vec<u64> = ex
                    .iter()
                    .filter(|(_, c)| **c as f64 >= share_min * total as f64)
                    .map(|(k, _)| *k)
                    .collect();
                let (rep, rep_total) = a.hot_keys(p).unwrap_or((&[], 0));
                if rep_total != total {
                    anyhow::bail!("window total mismatch: summary {rep_total}, exact {total}");
                }
                true_heavy += truth.len();
                reported += rep.len();
                found += truth
                    .iter()
                    .filter(|k| rep.iter().any(|h| h.key == **k))
                    .count();
                ex.clear();
                max_bytes = max_bytes.max(a.key_state_bytes(p).unwrap_or(0));
            }
            for &(k, w) in &batch {
                *exact[p as usize].entry(k).or_insert(0) += w;
            }
        }
    }
    let recall = found as f64 / true_heavy.max(1) as f64;
    let precision = found as f64 / reported.max(1) as f64;
    let row = Row {
        id: "H3",
        metric: format!(
            "hot keys >= 1% of a partition's window traffic ({} true heavy (window, key) pairs, heavy set moves every {HOT_SET_PERIOD_S} s): recall; state per partition",
            true_heavy
        ),
        measured: format!("recall {}; {} KiB (precision {})", fmt(recall), fmt(max_bytes as f64 / 1024.0), fmt(precision)),
        target: "recall 1.0, <= 32 KiB".into(),
        baseline: format!("exact counting: recall 1.0, {} KiB", fmt(exact_bytes_max as f64 / 1024.0)),
        pass: Some(recall >= 1.0 && max_bytes <= 32 * 1024 && true_heavy > 0),
    };
    let json = json!({
        "true_heavy": true_heavy, "found": found, "reported": reported, "recall": recall, "precision": precision,
        "state_bytes_per_partition_max": max_bytes, "exact_bytes_per_partition_max": exact_bytes_max,
    });
    Ok((row, json))
}
