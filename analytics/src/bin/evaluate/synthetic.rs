//! Forecast (F1, F2), hot partition (H1, H2) and event detection (A3) scores on the synthetic scenarios.

use analytics::Config;
use serde_json::{json, Value};

use crate::replay::{
    forecast_errors, geo_mean, quantile, replay, score_events, score_hot, Alert, AlertSource,
    EventScores, HotScores,
};
use crate::report::{fmt, Row};
use crate::rng::Rng;
use crate::scenario::{self, Scenario, CAPACITY_MSGS_PER_S};

pub const WARMUP_S: u64 = 600;

pub struct Out {
    pub rows: Vec<Row>,
    pub details: Vec<String>,
    pub json: Value,
}

pub fn scenario_config() -> Config {
    let mut c = Config::default();
    c.hot.partition_capacity_msgs_per_s = CAPACITY_MSGS_PER_S;
    c
}

struct Agg {
    rel: Vec<f64>,
    vs_oracle: Vec<f64>,
    vs_future: Vec<f64>,
    mase: Vec<f64>,
    smape: Vec<f64>,
    model: f64,
    last: f64,
    oracle: f64,
}

impl Agg {
    fn new() -> Self {
        Agg {
            rel: vec![],
            vs_oracle: vec![],
            vs_future: vec![],
            mase: vec![],
            smape: vec![],
            model: 0.0,
            last: 0.0,
            oracle: 0.0,
        }
    }
}

pub fn run(seed: u64, duration_s: u64) -> anyhow::Result<Out> {
    let cfg = scenario_config();
    let mut rng = Rng::new(seed);
    let scenarios: Vec<Scenario> = vec![
        scenario::diurnal(&mut rng, duration_s),
        scenario::bursts(&mut rng, duration_s),
        scenario::hot(&mut rng, duration_s),
        scenario::skew_stalls(&mut rng, duration_s),
        scenario::sparse(&mut rng, duration_s),
    ];
    // [horizon idx][high, low]
    let mut aggs: Vec<[Agg; 2]> = (0..2).map(|_| [Agg::new(), Agg::new()]).collect();
    let mut events = EventScores::default();
    let mut hot = HotScores::default();
    let mut naive_offsets: Vec<(&'static str, f64)> = Vec::new();
    let mut naive_false = 0usize;
    let mut naive_true = 0usize;
    let mut per_scenario = Vec::new();
    let mut details = Vec::new();
    for scn in &scenarios {
        let r = replay(scn, &cfg, seed, true)?;
        let mut scn_rel: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut scn_vs: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for (hi, horizon_aggs) in aggs.iter_mut().enumerate() {
            let h = cfg.forecast.horizons_steps[hi + 1] as usize;
            for p in 0..scn.partitions as usize {
                let e = forecast_errors(scn, &r.preds[hi], p, h, WARMUP_S as usize);
                let class = if e.mean_rate >= 500.0 {
                    0
                } else if e.mean_rate <= 10.0 {
                    1
                } else {
                    continue;
                };
                if e.mae_last > 0.0 && e.mae_oracle_now > 0.0 {
                    scn_rel[hi].push(e.mae_model / e.mae_last);
                    scn_vs[hi].push(e.mae_model / e.mae_oracle_now);
                }
                let a = &mut horizon_aggs[class];
                if e.mae_last > 0.0 {
                    a.rel.push(e.mae_model / e.mae_last);
                }
                if e.mae_oracle_now > 0.0 {
                    a.vs_oracle.push(e.mae_model / e.mae_oracle_now);
                }
                if e.mae_oracle_future > 0.0 {
                    a.vs_future.push(e.mae_model / e.mae_oracle_future);
                }
                a.mase.push(e.mase);
                if class == 0 {
                    a.smape.push(e.smape);
                }
                a.model += e.mae_model;
                a.last += e.mae_last;
                a.oracle += e.mae_oracle_now;
            }
        }
        let ev = score_events(
            &scn.events,
            &r.alerts,
            scn.partitions,
            scn.duration_s,
            WARMUP_S,
        );
        let hs = score_hot(&scn.events, &r.alerts, true);
        details.push(format!(
            "- Scenario `{}`: relMAE (all partitions) {} / {} at 10 s / 60 s; MAE / oracle-now MAE {} / {}; {} partition-events, {} detected, {} false alarms; Hot/Warning alerts {} true, {} false.",
            scn.name,
            fmt(geo_mean(&scn_rel[0])),
            fmt(geo_mean(&scn_rel[1])),
            fmt(geo_mean(&scn_vs[0])),
            fmt(geo_mean(&scn_vs[1])),
            ev.events,
            ev.detected,
            ev.false_alarms,
            hs.true_alerts,
            hs.false_alerts
        ));
        per_scenario.push(json!({
            "scenario": scn.name,
            "partitions": scn.partitions,
            "duration_s": scn.duration_s,
            "events": ev.events,
            "detected": ev.detected,
            "false_alarms": ev.false_alarms,
            "hot_alerts_true": hs.true_alerts,
            "hot_alerts_false": hs.false_alerts,
            "relmae_geomean_10s_60s": [geo_mean(&scn_rel[0]), geo_mean(&scn_rel[1])],
            "vs_oracle_now_geomean_10s_60s": [geo_mean(&scn_vs[0]), geo_mean(&scn_vs[1])],
        }));
        events.events += ev.events;
        events.detected += ev.detected;
        events.false_alarms += ev.false_alarms;
        events.delays_s.extend(ev.delays_s);
        events.partition_days += ev.partition_days;
        hot.offsets_s.extend(hs.offsets_s);
        hot.missed.extend(hs.missed);
        hot.true_alerts += hs.true_alerts;
        hot.false_alerts += hs.false_alerts;
        let (o, t, f) = naive_threshold(scn);
        naive_offsets.extend(o);
        naive_true += t;
        naive_false += f;
    }
    let mut rows = Vec::new();
    let mut fjson = Vec::new();
    // F1 / F2
    for (hi, horizon_aggs) in aggs.iter().enumerate() {
        let h = cfg.forecast.horizons_steps[hi + 1];
        let hi_a = &horizon_aggs[0];
        let rel = geo_mean(&hi_a.rel);
        let vs_o = geo_mean(&hi_a.vs_oracle);
        let vs_f = geo_mean(&hi_a.vs_future);
        let oracle_rel = hi_a.oracle / hi_a.last;
        rows.push(Row {
            id: "F1",
            metric: format!("high-rate partitions (>= 500 msgs/s, n={}), {h} s ahead: relMAE; MAE / oracle-now MAE", hi_a.rel.len()),
            measured: format!("relMAE {}; {} x oracle", fmt(rel), fmt(vs_o)),
            target: "relMAE <= 1.00 and <= 1.02 x oracle".into(),
            baseline: format!("last value 1.000; oracle-now relMAE {}", fmt(oracle_rel)),
            pass: Some(rel <= 1.0 && vs_o <= 1.02),
        });
        let lo = &horizon_aggs[1];
        let rel_lo = geo_mean(&lo.rel);
        rows.push(Row {
            id: "F2",
            metric: format!(
                "low-rate partitions (<= 10 msgs/s, n={}), {h} s ahead: relMAE",
                lo.rel.len()
            ),
            measured: fmt(rel_lo),
            target: "<= 0.80".into(),
            baseline: "last value 1.000".into(),
            pass: Some(rel_lo <= 0.80),
        });
        fjson.push(json!({
            "horizon_s": h,
            "high_rate": {"partitions": hi_a.rel.len(), "relmae_geomean": rel, "vs_oracle_now_geomean": vs_o,
                "vs_oracle_future_geomean": vs_f, "mase_median": quantile(&hi_a.mase, 0.5),
                "smape_pct_median": quantile(&hi_a.smape, 0.5)},
            "low_rate": {"partitions": lo.rel.len(), "relmae_geomean": rel_lo,
                "mase_median": quantile(&lo.mase, 0.5)},
        }));
        details.push(format!(
            "- Forecasts {h} s ahead, high-rate: MASE median {}, sMAPE median {}%, MAE vs perfect-foresight noise-free oracle {} x. Low-rate: MASE median {}.",
            fmt(quantile(&hi_a.mase, 0.5)), fmt(quantile(&hi_a.smape, 0.5)), fmt(vs_f), fmt(quantile(&lo.mase, 0.5))
        ));
    }
    // H1: sudden hot partition.
    let step: Vec<f64> = hot
        .offsets_s
        .iter()
        .filter(|o| o.0 == "hot_step")
        .map(|o| o.1.max(0.0))
        .collect();
    let naive_step: Vec<f64> = naive_offsets
        .iter()
        .filter(|o| o.0 == "hot_step")
        .map(|o| o.1.max(0.0))
        .collect();
    let (p50, p90) = (quantile(&step, 0.5), quantile(&step, 0.9));
    rows.push(Row {
        id: "H1",
        metric: format!(
            "sudden hot partition (n={}): detection delay after crossing capacity, p50 / p90",
            step.len()
        ),
        measured: format!("{} s / {} s", fmt(p50), fmt(p90)),
        target: "p50 <= 3 s, p90 <= 10 s".into(),
        baseline: format!(
            "1-sample threshold {} s / {} s",
            fmt(quantile(&naive_step, 0.5)),
            fmt(quantile(&naive_step, 0.9))
        ),
        pass: Some(p50 <= 3.0 && p90 <= 10.0 && !hot.missed.contains(&"hot_step")),
    });
    // H2: ramps.
    let precision = hot.true_alerts as f64 / (hot.true_alerts + hot.false_alerts).max(1) as f64;
    let naive_precision = naive_true as f64 / (naive_true + naive_false).max(1) as f64;
    for (kind, need) in [("hot_ramp_60s", 10.0), ("hot_ramp_300s", 30.0)] {
        let leads: Vec<f64> = hot
            .offsets_s
            .iter()
            .filter(|o| o.0 == kind)
            .map(|o| -o.1)
            .collect();
        let missed = hot.missed.iter().filter(|m| **m == kind).count();
        let recall = leads.len() as f64 / (leads.len() + missed).max(1) as f64;
        let naive_leads: Vec<f64> = naive_offsets
            .iter()
            .filter(|o| o.0 == kind)
            .map(|o| -o.1)
            .collect();
        let med = quantile(&leads, 0.5);
        rows.push(Row {
            id: "H2",
            metric: format!(
                "{kind} (n={}): median warning lead; alert precision (all scenarios); recall",
                leads.len() + missed
            ),
            measured: format!(
                "lead {} s; precision {}; recall {}",
                fmt(med),
                fmt(precision),
                fmt(recall)
            ),
            target: format!("lead >= {need} s, precision >= 0.8, recall >= 0.9"),
            baseline: format!(
                "1-sample threshold: lead {} s, precision {}",
                fmt(quantile(&naive_leads, 0.5)),
                fmt(naive_precision)
            ),
            pass: Some(med >= need && precision >= 0.8 && recall >= 0.9),
        });
    }
    // A3
    let precision_ev =
        events.detected as f64 / (events.detected + events.false_alarms).max(1) as f64;
    let recall_ev = events.detected as f64 / events.events.max(1) as f64;
    let f1 = if precision_ev + recall_ev > 0.0 {
        2.0 * precision_ev * recall_ev / (precision_ev + recall_ev)
    } else {
        0.0
    };
    let delay = quantile(&events.delays_s, 0.5);
    let fa_day = events.false_alarms as f64 / events.partition_days.max(1e-9);
    rows.push(Row {
        id: "A3",
        metric: format!("synthetic bursts, stalls, hot partitions ({} partition-events, {} partition-days): event F1; median delay; false alarms per partition-day", events.events, fmt(events.partition_days)),
        measured: format!("F1 {}; delay {} s; {} FA/partition-day", fmt(f1), fmt(delay), fmt(fa_day)),
        target: "F1 >= 0.9, delay <= 5 s, <= 1 FA/partition-day".into(),
        baseline: "no detector: F1 0".into(),
        pass: Some(f1 >= 0.9 && delay <= 5.0 && fa_day <= 1.0),
    });
    let json = json!({
        "forecasts": fjson,
        "hot": {"offsets_s": hot.offsets_s.iter().map(|o| json!({"kind": o.0, "alert_minus_cross_s": o.1})).collect::<Vec<_>>(),
                "missed": hot.missed, "true_alerts": hot.true_alerts, "false_alerts": hot.false_alerts,
                "precision": precision, "naive_precision": naive_precision},
        "events": {"events": events.events, "detected": events.detected, "false_alarms": events.false_alarms,
                   "partition_days": events.partition_days, "f1": f1, "delay_p50_s": delay,
                   "delay_p90_s": quantile(&events.delays_s, 0.9), "false_alarms_per_partition_day": fa_day},
        "scenarios": per_scenario,
    });
    Ok(Out {
        rows,
        details,
        json,
    })
}

/// The naive baseline: alert the first second a noisy count exceeds capacity (re-armed after 60 s below).
fn naive_threshold(scn: &Scenario) -> (Vec<(&'static str, f64)>, usize, usize) {
    let mut alerts: Vec<Alert> = Vec::new();
    for p in 0..scn.partitions as usize {
        let mut armed = true;
        let mut below = 0;
        for (t, c) in scn.counts[p].iter().enumerate() {
            if *c as f64 > CAPACITY_MSGS_PER_S {
                below = 0;
                if armed {
                    alerts.push(Alert {
                        partition: p as u32,
                        t_s: t as u64,
                        source: AlertSource::Hot,
                    });
                    armed = false;
                }
            } else {
                below += 1;
                if below >= 60 {
                    armed = true;
                }
            }
        }
    }
    let hs = score_hot(&scn.events, &alerts, true);
    (hs.offsets_s, hs.true_alerts, hs.false_alerts)
}
