//! Replays scenarios through the analyzer and scores forecasts, hot detection and anomalies.

use analytics::hot::HotKind;
use analytics::{Analyzer, Config, Sample, SeriesId, SeriesKind};

use crate::scenario::{Event, Scenario};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertSource {
    Anomaly,
    Warning,
    Hot,
}

#[derive(Debug, Clone, Copy)]
pub struct Alert {
    pub partition: u32,
    pub t_s: u64,
    pub source: AlertSource,
}

pub struct Replay {
    /// `[horizon index][partition][t]` forecasts made at t (NaN when none).
    pub preds: Vec<Vec<Vec<f32>>>,
    pub alerts: Vec<Alert>,
}

/// Feeds every partition's count each second, ticks, and records forecasts at horizon indices 1 and 2.
pub fn replay(
    scn: &Scenario,
    cfg: &Config,
    seed: u64,
    track_forecasts: bool,
) -> anyhow::Result<Replay> {
    let mut a = Analyzer::new(cfg.clone(), seed)?;
    let n = scn.partitions as usize;
    let t_max = scn.duration_s as usize;
    let mut preds = vec![vec![vec![f32::NAN; if track_forecasts { t_max } else { 0 }]; n]; 2];
    let mut alerts = Vec::new();
    for t in 0..t_max {
        for p in 0..n {
            a.observe(Sample {
                series: SeriesId::new(SeriesKind::PartitionMsgsPerS, p as u32),
                t_s: t as u64,
                value: scn.counts[p][t] as f64,
            })?;
        }
        let out = a.tick(t as u64, None);
        for an in &out.anomalies {
            alerts.push(Alert {
                partition: an.series.entity,
                t_s: an.t_s,
                source: AlertSource::Anomaly,
            });
        }
        for h in &out.hot {
            let source = match h.kind {
                HotKind::Warning { .. } => AlertSource::Warning,
                HotKind::Hot => AlertSource::Hot,
                HotKind::Cleared => continue,
            };
            alerts.push(Alert {
                partition: h.partition,
                t_s: h.t_s,
                source,
            });
        }
        if track_forecasts {
            for (hi, per_h) in preds.iter_mut().enumerate() {
                for (p, row) in per_h.iter_mut().enumerate() {
                    let id = SeriesId::new(SeriesKind::PartitionMsgsPerS, p as u32);
                    if let Some(f) = a.forecast(id, hi + 1) {
                        row[t] = f.value as f32;
                    }
                }
            }
        }
    }
    Ok(Replay { preds, alerts })
}

/// Per-partition forecast errors at one horizon.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForecastErrors {
    pub mae_model: f64,
    pub mae_last: f64,
    /// Forecast = noise-free rate now (knows the present exactly, not the future).
    pub mae_oracle_now: f64,
    /// Forecast = noise-free rate at the target time (perfect foresight; only noise remains).
    pub mae_oracle_future: f64,
    pub mase: f64,
    pub smape: f64,
    pub mean_rate: f64,
}

/// Errors of forecasts made at `t >= warmup` for `t + h`, against the noisy counts.
pub fn forecast_errors(
    scn: &Scenario,
    preds: &[Vec<f32>],
    p: usize,
    h: usize,
    warmup: usize,
) -> ForecastErrors {
    let c = &scn.counts[p];
    let tr = &scn.truth[p];
    let n = c.len();
    let mut e = ForecastErrors::default();
    let mut k = 0.0;
    let mut naive1 = 0.0;
    for t in 1..n {
        naive1 += (c[t] - c[t - 1]).abs() as f64;
    }
    naive1 /= (n - 1) as f64;
    let mut smape_n = 0.0;
    for t in warmup..n.saturating_sub(h) {
        let pred = preds[p][t];
        if pred.is_nan() {
            continue;
        }
        let y = c[t + h] as f64;
        e.mae_model += (pred as f64 - y).abs();
        e.mae_last += (c[t] as f64 - y).abs();
        e.mae_oracle_now += (tr[t] as f64 - y).abs();
        e.mae_oracle_future += (tr[t + h] as f64 - y).abs();
        let denom = pred.abs() as f64 + y.abs();
        if denom > 0.0 {
            e.smape += 2.0 * (pred as f64 - y).abs() / denom;
            smape_n += 1.0;
        }
        e.mean_rate += y;
        k += 1.0;
    }
    if k > 0.0 {
        e.mae_model /= k;
        e.mae_last /= k;
        e.mae_oracle_now /= k;
        e.mae_oracle_future /= k;
        e.mean_rate /= k;
        e.mase = if naive1 > 0.0 {
            e.mae_model / naive1
        } else {
            f64::NAN
        };
    }
    if smape_n > 0.0 {
        e.smape = 100.0 * e.smape / smape_n;
    }
    e
}

/// Event detection scores (A3).
#[derive(Debug, Clone, Default)]
pub struct EventScores {
    pub events: usize,
    pub detected: usize,
    pub false_alarms: usize,
    pub delays_s: Vec<f64>,
    pub partition_days: f64,
}

/// An event is detected by the first alert on its partition in `[onset, onset + 60 s]`; alerts outside
/// every `[onset - 5 s, end + 120 s]` of their partition are false alarms.
pub fn score_events(
    events: &[Event],
    alerts: &[Alert],
    partitions: u32,
    duration_s: u64,
    warmup_s: u64,
) -> EventScores {
    let mut s = EventScores {
        events: events.len(),
        partition_days: partitions as f64 * (duration_s - warmup_s) as f64 / 86_400.0,
        ..EventScores::default()
    };
    for e in events {
        let first = alerts
            .iter()
            .filter(|a| {
                a.partition == e.partition && a.t_s + 5 >= e.onset_s && a.t_s <= e.onset_s + 60
            })
            .map(|a| a.t_s)
            .min();
        if let Some(t) = first {
            s.detected += 1;
            s.delays_s.push(t.saturating_sub(e.onset_s) as f64);
        }
    }
    for a in alerts.iter().filter(|a| a.t_s >= warmup_s) {
        let explained = events.iter().any(|e| {
            e.partition == a.partition && a.t_s + 5 >= e.onset_s && a.t_s <= e.end_s + 120
        });
        if !explained {
            s.false_alarms += 1;
        }
    }
    s
}

/// Hot-partition scores: per event the time from capacity crossing to the first Hot/Warning alert (negative
/// = warned ahead), and precision of Hot/Warning alerts.
#[derive(Debug, Clone, Default)]
pub struct HotScores {
    /// (event kind name, alert time - crossing time) for detected events.
    pub offsets_s: Vec<(&'static str, f64)>,
    pub missed: Vec<&'static str>,
    pub true_alerts: usize,
    pub false_alerts: usize,
}

pub fn score_hot(events: &[Event], alerts: &[Alert], hot_sources_only: bool) -> HotScores {
    let mut s = HotScores::default();
    let is_hot_alert = |a: &Alert| !hot_sources_only || a.source != AlertSource::Anomaly;
    for e in events.iter().filter(|e| e.kind.is_hot()) {
        let Some(cross) = e.cross_s else { continue };
        let first = alerts
            .iter()
            .filter(|a| {
                is_hot_alert(a)
                    && a.partition == e.partition
                    && a.t_s >= e.onset_s
                    && a.t_s <= cross + 10
            })
            .map(|a| a.t_s)
            .min();
        match first {
            Some(t) => s.offsets_s.push((e.kind.name(), t as f64 - cross as f64)),
            None => s.missed.push(e.kind.name()),
        }
    }
    for a in alerts.iter().filter(|a| is_hot_alert(a)) {
        let ok = events.iter().any(|e| {
            e.kind.is_hot() && e.partition == a.partition && a.t_s >= e.onset_s && a.t_s <= e.end_s
        });
        if ok {
            s.true_alerts += 1;
        } else {
            s.false_alerts += 1;
        }
    }
    s
}

pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let idx = ((s.len() - 1) as f64 * q).round() as usize;
    s[idx]
}

pub fn geo_mean(v: &[f64]) -> f64 {
    let ok: Vec<f64> = v
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    if ok.is_empty() {
        return f64::NAN;
    }
    (ok.iter().map(|x| x.ln()).sum::<f64>() / ok.len() as f64).exp()
}
