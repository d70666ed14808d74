//! `/analytics/forecast`, `/analytics/hot`, `/analytics/anomalies`, `/analytics/decisions` and the
//! analytics lines of `/metrics`. Every forecast names its method and carries the last-value
//! baseline's error beside its own.

use std::fmt::Write as _;

use analytics::hot::Phase;
use analytics::{Decision, SeriesId, SeriesKind};
use serde_json::{json, Value};

use crate::analytics_shard::{hot_kind, AnalyticsShard};

fn series_json(a: &AnalyticsShard, s: SeriesId) -> Value {
    let mut v = json!({"series": s.kind.name(), "entity": s.entity});
    if s.kind.is_partition() {
        if let Some((topic, p)) = a.name_of(s.entity) {
            v["topic"] = json!(topic);
            v["partition"] = json!(p);
        }
    }
    v
}

/// Forecasts for every partition's message rate at every horizon, plus shard and host series.
pub fn forecast(a: &AnalyticsShard) -> Value {
    let analyzer = a.analyzer.borrow();
    let horizons = analyzer.config().forecast.horizons_steps.clone();
    let mut out = Vec::new();
    let partitions = a.names.borrow().len() as u32;
    let mut series: Vec<SeriesId> = (0..partitions)
        .flat_map(|e| {
            [
                SeriesId::new(SeriesKind::PartitionMsgsPerS, e),
                SeriesId::new(SeriesKind::PartitionBytesPerS, e),
            ]
        })
        .collect();
    if let Some(t) = &a.recent.borrow().last_tick {
        for f in &t.forecasts {
            if !series.contains(&f.series) {
                series.push(f.series);
            }
        }
    }
    for s in series {
        for (h, steps) in horizons.iter().enumerate() {
            let Some(f) = analyzer.forecast(s, h) else {
                continue;
            };
            let mut v = series_json(a, s);
            v["t_s"] = json!(f.t_s);
            v["horizon_s"] = json!(steps);
            v["value"] = json!(f.value);
            v["method"] = json!(f.method.name());
            v["method_mae"] = json!(f.method_mae);
            v["baseline"] = json!("last_value");
            v["baseline_mae"] = json!(f.baseline_mae);
            v["season_steps"] = json!(f.period_steps);
            out.push(v);
        }
    }
    json!({"mode": a.mode.name(), "forecasts": out})
}

/// Recent hot/warning/cleared events and the current phase of every flagged partition.
pub fn hot(a: &AnalyticsShard) -> Value {
    let analyzer = a.analyzer.borrow();
    let events: Vec<Value> = a
        .recent
        .borrow()
        .hot
        .iter()
        .map(|e| {
            let (kind, eta) = hot_kind(&e.kind);
            let mut v = series_json(a, SeriesId::new(SeriesKind::PartitionMsgsPerS, e.partition));
            v["t_s"] = json!(e.t_s);
            v["kind"] = json!(kind);
            v["eta_s"] = json!(eta);
            v["rate_msgs_per_s"] = json!(e.rate_msgs_per_s);
            v["capacity_msgs_per_s"] = json!(e.capacity_msgs_per_s);
            v
        })
        .collect();
    let current: Vec<Value> = (0..a.names.borrow().len() as u32)
        .filter_map(|e| match analyzer.hot_phase(e)? {
            Phase::Normal => None,
            phase => {
                let mut v = series_json(a, SeriesId::new(SeriesKind::PartitionMsgsPerS, e));
                v["phase"] = json!(if phase == Phase::Hot {
                    "hot"
                } else {
                    "warning"
                });
                Some(v)
            }
        })
        .collect();
    let keys: Vec<Value> = (0..a.names.borrow().len() as u32)
        .filter_map(|e| {
            let (list, total) = analyzer.hot_keys(e)?;
            if list.is_empty() {
                return None;
            }
            let mut v = series_json(a, SeriesId::new(SeriesKind::PartitionMsgsPerS, e));
            v["window_weight"] = json!(total);
            v["keys"] = json!(list
                .iter()
                .map(|k| json!({"key_hash": format!("{:016x}", k.key), "count": k.count, "error": k.error}))
                .collect::<Vec<_>>());
            Some(v)
        })
        .collect();
    json!({
        "method": "k-of-n hysteresis over exact rates, gated trend projection",
        "events": events,
        "current": current,
        "hot_keys_method": "Space-Saving over a sample of one batch in 8 (key = crc32c-based 64-bit hash)",
        "hot_keys": keys,
    })
}

/// Recent anomalies with the prediction they departed from.
pub fn anomalies(a: &AnalyticsShard) -> Value {
    let list: Vec<Value> = a
        .recent
        .borrow()
        .anomalies
        .iter()
        .map(|x| {
            let mut v = series_json(a, x.series);
            v["t_s"] = json!(x.t_s);
            v["value"] = json!(x.value);
            v["predicted"] = json!(x.predicted);
            v["score"] = json!(x.score.score);
            v["z_residual"] = json!(x.score.z_residual);
            v["z_chart"] = json!(x.score.z_chart);
            v
        })
        .collect();
    json!({
        "method": "robust residual z-score and EWMA control chart",
        "anomalies": list,
    })
}

fn decision_json(d: &Decision) -> Value {
    match *d {
        Decision::Move {
            from_shard,
            to_shard,
            cross_node,
            rate_msgs_per_s,
            ..
        } => json!({"kind": "move", "from_shard": from_shard, "to_shard": to_shard,
                    "cross_node": cross_node, "rate_msgs_per_s": rate_msgs_per_s}),
        Decision::Split {
            rate_msgs_per_s,
            split_key,
            ..
        } => json!({"kind": "split", "rate_msgs_per_s": rate_msgs_per_s, "split_key": split_key}),
        Decision::ScaleOut {
            load_msgs_per_s,
            capacity_msgs_per_s,
            lead_s,
            predicted,
        } => json!({"kind": "scale_out", "load_msgs_per_s": load_msgs_per_s,
                    "capacity_msgs_per_s": capacity_msgs_per_s, "lead_s": lead_s,
                    "predicted": predicted}),
        Decision::Lead {
            from_node,
            to_node,
            rate_msgs_per_s,
            ..
        } => json!({"kind": "lead", "from_node": from_node, "to_node": to_node,
                    "rate_msgs_per_s": rate_msgs_per_s}),
        Decision::ScaleIn {
            load_msgs_per_s,
            capacity_msgs_per_s,
        } => json!({"kind": "scale_in", "load_msgs_per_s": load_msgs_per_s,
                    "capacity_msgs_per_s": capacity_msgs_per_s}),
    }
}

/// Recent decisions and what became of them.
pub fn decisions(a: &AnalyticsShard) -> Value {
    let recent = a.recent.borrow();
    let list: Vec<Value> = recent
        .decisions
        .iter()
        .map(|r| {
            let mut v = decision_json(&r.decision);
            v["t_s"] = json!(r.t_s);
            v["outcome"] = json!(r.outcome);
            if let Some((t, p)) = &r.target {
                v["topic"] = json!(t);
                v["partition"] = json!(p);
            }
            v
        })
        .collect();
    json!({
        "mode": a.mode.name(),
        "ticks": recent.ticks,
        "tick_us_last": recent.tick_us_last,
        "tick_us_max": recent.tick_us_max,
        "decisions": list,
    })
}

/// Analytics lines for `/metrics`.
pub fn prometheus(a: &AnalyticsShard, node: u32, out: &mut String) {
    let recent = a.recent.borrow();
    let _ = writeln!(out, "# TYPE sprawl_analytics_ticks_total counter");
    let _ = writeln!(
        out,
        "sprawl_analytics_ticks_total{{node=\"{node}\"}} {}",
        recent.ticks
    );
    let _ = writeln!(out, "# TYPE sprawl_analytics_tick_us gauge");
    let _ = writeln!(
        out,
        "sprawl_analytics_tick_us{{node=\"{node}\"}} {}",
        recent.tick_us_last
    );
    let mut counts: std::collections::BTreeMap<(&str, String), u64> = Default::default();
    for r in &recent.decisions {
        let kind = match r.decision {
            Decision::Move { .. } => "move",
            Decision::Split { .. } => "split",
            Decision::ScaleOut { .. } => "scale_out",
            Decision::ScaleIn { .. } => "scale_in",
            Decision::Lead { .. } => "lead",
        };
        let outcome = r.outcome.split(':').next().unwrap_or("").to_string();
        *counts.entry((kind, outcome)).or_default() += 1;
    }
    let _ = writeln!(out, "# TYPE sprawl_analytics_recent_decisions gauge");
    for ((kind, outcome), n) in counts {
        let _ = writeln!(
            out,
            "sprawl_analytics_recent_decisions{{node=\"{node}\",kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
        );
    }
    drop(recent);
    let analyzer = a.analyzer.borrow();
    let rows: Vec<(String, analytics::Forecast)> = a
        .names
        .borrow()
        .iter()
        .enumerate()
        .filter_map(|(e, (topic, p))| {
            let f = analyzer.forecast(SeriesId::new(SeriesKind::PartitionMsgsPerS, e as u32), 0)?;
            let labels = format!(
                "node=\"{node}\",topic=\"{topic}\",partition=\"{p}\",method=\"{}\"",
                f.method.name()
            );
            Some((labels, f))
        })
        .collect();
    type Pick = fn(&analytics::Forecast) -> f64;
    let families: [(&str, Pick); 3] = [
        ("sprawl_analytics_forecast_msgs_per_s", |f| f.value),
        ("sprawl_analytics_method_mae", |f| f.method_mae),
        ("sprawl_analytics_baseline_mae", |f| f.baseline_mae),
    ];
    for (name, pick) in families {
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, f) in &rows {
            let _ = writeln!(out, "{name}{{{labels}}} {}", pick(f));
        }
    }
}
