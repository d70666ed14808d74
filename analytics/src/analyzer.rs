//! The analyzer: owns every series' state and turns samples into forecasts, hot events, anomalies and
//! decisions. Events in (`observe`, `observe_keys`), effects out (`tick`); no clock, no I/O, no randomness.

use std::collections::{BTreeMap, HashMap};

use crate::anomaly::{AlertGate, AnomalyScore, AnomalyState};
use crate::config::{Config, ConfigError, SeriesConfig};
use crate::decide::{Decider, Decision, PartitionLoad, Placement};
use crate::forecast::season::detect_period;
use crate::forecast::{Forecaster, Method};
use crate::hot::{HotKind, HotState, Phase};
use crate::keys::{HotKey, SeededState, WindowedKeys};
use crate::lead::{LeaderBalancer, LedPartition, NodeLoad};
use crate::ring::Ring;
use crate::series::{Sample, SeriesId, SeriesKind};

/// Anomalies buffered between two ticks at most; further ones are counted in `anomalies_dropped`.
pub const ANOMALIES_PER_TICK_MAX: usize = 4096;

/// A forecast for one series and horizon, with its method and the baseline's error beside its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Series forecast.
    pub series: SeriesId,
    /// Time of the last sample the forecast is based on.
    pub t_s: u64,
    /// Steps (seconds at 1 Hz) ahead.
    pub horizon_steps: u32,
    /// Forecast value.
    pub value: f64,
    /// Selected method.
    pub method: Method,
    /// Rolling out-of-sample MAE of the selected method at this horizon.
    pub method_mae: f64,
    /// Rolling out-of-sample MAE of last value at this horizon.
    pub baseline_mae: f64,
    /// Detected season in steps, if any.
    pub period_steps: Option<u32>,
}

/// A hot-partition event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HotEvent {
    /// Partition concerned.
    pub partition: u32,
    /// Tick time.
    pub t_s: u64,
    /// What happened.
    pub kind: HotKind,
    /// Exact rate at this tick.
    pub rate_msgs_per_s: f64,
    /// Capacity it is compared with.
    pub capacity_msgs_per_s: f64,
}

/// An anomalous value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anomaly {
    /// Series concerned.
    pub series: SeriesId,
    /// Sample time.
    pub t_s: u64,
    /// Observed value.
    pub value: f64,
    /// One-step forecast it was compared with.
    pub predicted: Option<f64>,
    /// Score and its parts.
    pub score: AnomalyScore,
}

/// Everything one tick produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickOutput {
    /// Tick time.
    pub t_s: u64,
    /// Forecasts of the shard and host series (partition forecasts are queried with [`Analyzer::forecast`]).
    pub forecasts: Vec<Forecast>,
    /// Hot-partition events.
    pub hot: Vec<HotEvent>,
    /// Anomalies raised since the previous tick.
    pub anomalies: Vec<Anomaly>,
    /// Anomalies beyond [`ANOMALIES_PER_TICK_MAX`] that were not kept.
    pub anomalies_dropped: u32,
    /// Decisions.
    pub decisions: Vec<Decision>,
}

/// A sample the analyzer refused; its state is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ObserveError {
    /// The value is NaN or infinite.
    #[error("series {kind}/{entity}: value {value} is not finite")]
    NonFinite {
        /// Kind name of the refused series.
        kind: &'static str,
        /// Entity of the refused series.
        entity: u32,
        /// The refused value.
        value: f64,
    },
    /// The sample would start tracking a partition beyond `Config::partitions_max`.
    #[error("partition {partition} refused: {limit} partitions already tracked")]
    TooManyPartitions {
        /// The partition of the refused sample.
        partition: u32,
        /// The configured limit.
        limit: u32,
    },
    /// The sample would start tracking a series beyond `Config::other_series_max`.
    #[error("series {kind}/{entity} refused: {limit} shard/host series already tracked")]
    TooManySeries {
        /// Kind name of the refused series.
        kind: &'static str,
        /// Entity of the refused series.
        entity: u32,
        /// The configured limit.
        limit: u32,
    },
}

/// Result of one observation (used by replays that score every step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    /// One-step forecast made before the value arrived.
    pub predicted: Option<f64>,
    /// Anomaly score of the value.
    pub score: AnomalyScore,
    /// True when the score raised an anomaly (threshold and cooldown passed).
    pub alert: bool,
}

/// State of one series.
#[derive(Debug, Clone)]
struct SeriesState {
    history: Ring,
    forecaster: Option<Box<Forecaster>>,
    anomaly: AnomalyState,
    last_alert_step: Option<u32>,
    steps: u32,
    last_t_s: u64,
    last: f32,
    level: f32,
}

impl SeriesState {
    fn new(cfg: &Config, sc: &SeriesConfig) -> Self {
        SeriesState {
            history: Ring::new(sc.history_len),
            forecaster: sc
                .forecast
                .then(|| Box::new(Forecaster::new(&cfg.forecast))),
            anomaly: AnomalyState::default(),
            last_alert_step: None,
            steps: 0,
            last_t_s: 0,
            last: 0.0,
            level: 0.0,
        }
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.history.heap_bytes()
            + self
                .forecaster
                .as_ref()
                .map(|f| std::mem::size_of::<Forecaster>() + f.heap_bytes())
                .unwrap_or(0)
    }

    /// Smoothed level used for loads.
    fn level(&self) -> f64 {
        self.level as f64
    }
}

/// Per-partition state: four series and the hot detector.
#[derive(Debug, Clone)]
struct PartitionState {
    series: [SeriesState; 4],
    hot: HotState,
    hot_since_s: Option<u64>,
    fresh: bool,
}

fn partition_slot(kind: SeriesKind) -> Option<usize> {
    match kind {
        SeriesKind::PartitionMsgsPerS => Some(0),
        SeriesKind::PartitionBytesPerS => Some(1),
        SeriesKind::ConsumerLagMsgs => Some(2),
        SeriesKind::FetchPerS => Some(3),
        _ => None,
    }
}

/// The analytics engine. See the crate documentation for an example.
#[derive(Debug, Clone)]
pub struct Analyzer {
    config: Config,
    seed: u64,
    partitions: HashMap<u32, PartitionState, SeededState>,
    others: BTreeMap<SeriesId, SeriesState>,
    keys: HashMap<u32, WindowedKeys, SeededState>,
    decider: Decider,
    leader: LeaderBalancer,
    anomalies: Vec<Anomaly>,
    anomalies_dropped: u32,
    scratch_f32: Vec<f32>,
    scratch_f64: Vec<f64>,
}

impl Analyzer {
    /// A new analyzer; `seed` keys every internal hash so runs are reproducible.
    pub fn new(config: Config, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Analyzer {
            config,
            seed,
            partitions: HashMap::with_hasher(SeededState::new(seed)),
            others: BTreeMap::new(),
            keys: HashMap::with_hasher(SeededState::new(seed ^ 0x6b65)),
            decider: Decider::new(seed),
            leader: LeaderBalancer::new(seed),
            anomalies: Vec::new(),
            anomalies_dropped: 0,
            scratch_f32: Vec::new(),
            scratch_f64: Vec::new(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Feeds one sample. Samples of one series must come in time order, normally one per second.
    /// A sample that would exceed the configured number of tracked partitions or series is refused.
    pub fn observe(&mut self, sample: Sample) -> Result<Observed, ObserveError> {
        let cfg = &self.config;
        let kind = sample.series.kind;
        let sc = cfg.series_config(kind);
        let entity = sample.series.entity;
        if !sample.value.is_finite() {
            return Err(ObserveError::NonFinite {
                kind: kind.name(),
                entity,
                value: sample.value,
            });
        }
        let is_new_partition =
            partition_slot(kind).is_some() && !self.partitions.contains_key(&entity);
        if is_new_partition && self.partitions.len() >= cfg.partitions_max as usize {
            return Err(ObserveError::TooManyPartitions {
                partition: entity,
                limit: cfg.partitions_max,
            });
        }
        let is_new_other =
            partition_slot(kind).is_none() && !self.others.contains_key(&sample.series);
        if is_new_other && self.others.len() >= cfg.other_series_max as usize {
            return Err(ObserveError::TooManySeries {
                kind: kind.name(),
                entity,
                limit: cfg.other_series_max,
            });
        }
        let state = match partition_slot(kind) {
            Some(slot) => {
                let p = self
                    .partitions
                    .entry(sample.series.entity)
                    .or_insert_with(|| PartitionState {
                        series: std::array::from_fn(|i| {
                            let k = [
                                SeriesKind::PartitionMsgsPerS,
                                SeriesKind::PartitionBytesPerS,
                                SeriesKind::ConsumerLagMsgs,
                                SeriesKind::FetchPerS,
                            ][i];
                            SeriesState::new(cfg, cfg.series_config(k))
                        }),
                        hot: HotState::default(),
                        hot_since_s: None,
                        fresh: false,
                    });
                if slot == 0 {
                    p.fresh = true;
                }
                &mut p.series[slot]
            }
            None => self
                .others
                .entry(sample.series)
                .or_insert_with(|| SeriesState::new(cfg, sc)),
        };
        let value = sample.value;
        let predicted = match &state.forecaster {
            Some(f) => f.one_step(&state.history),
            None => (state.steps > 0).then_some(state.level as f64),
        };
        let score = if sc.anomalies {
            state
                .anomaly
                .score(&cfg.anomaly, value, predicted, sc.count_like)
        } else {
            AnomalyScore::default()
        };
        let gate = AlertGate {
            threshold: cfg.anomaly.score_threshold,
            cooldown_steps: cfg.anomaly.cooldown_steps,
        };
        let alert =
            sc.anomalies && gate.check(score.score, state.steps, &mut state.last_alert_step);
        if let Some(f) = state.forecaster.as_mut() {
            f.observe(value, cfg.forecast.error_weight, &state.history);
        }
        state.history.push(value as f32);
        if let Some(f) = state.forecaster.as_mut() {
            f.issue_pending(&state.history);
            let every = cfg.forecast.season_search_every_steps.max(1);
            if sc.season
                && state.steps % every == every - 1
                && state.history.len() >= 2 * cfg.forecast.season_min_steps
            {
                state.history.copy_oldest_first(&mut self.scratch_f32);
                match detect_period(
                    &self.scratch_f32,
                    cfg.forecast.season_min_steps,
                    cfg.forecast.season_max_steps,
                    cfg.forecast.season_acf_min,
                    &mut self.scratch_f64,
                ) {
                    Some((period, _)) => {
                        f.set_season(period, &state.history, &mut self.scratch_f32)
                    }
                    None => f.clear_season(),
                }
            }
        }
        state.level = if state.steps == 0 {
            value as f32
        } else {
            state.level + 0.5 * (value as f32 - state.level)
        };
        state.last = value as f32;
        state.steps = state.steps.saturating_add(1);
        state.last_t_s = sample.t_s;
        if alert {
            if self.anomalies.len() < ANOMALIES_PER_TICK_MAX {
                self.anomalies.push(Anomaly {
                    series: sample.series,
                    t_s: sample.t_s,
                    value,
                    predicted,
                    score,
                });
            } else {
                self.anomalies_dropped += 1;
            }
        }
        Ok(Observed {
            predicted,
            score,
            alert,
        })
    }

    /// Feeds `(key_hash, weight)` pairs seen on `partition` (all of them, or a uniform sample).
    pub fn observe_keys(&mut self, partition: u32, now_s: u64, keys: &[(u64, u64)]) {
        let kc = &self.config.keys;
        let seed = self.seed;
        let w = self
            .keys
            .entry(partition)
            .or_insert_with(|| WindowedKeys::new(kc.counters, seed ^ partition as u64));
        w.roll(now_s, kc.window_s, kc.share_min);
        for &(k, wt) in keys {
            w.add(k, wt);
        }
    }

    /// Runs hot detection, decisions and the tick's forecasts. `placement` enables move/split/scale advice.
    pub fn tick(&mut self, now_s: u64, placement: Option<&Placement>) -> TickOutput {
        let mut out = TickOutput {
            t_s: now_s,
            ..TickOutput::default()
        };
        let hot_cfg = &self.config.hot;
        for (&pid, p) in self.partitions.iter_mut() {
            if !p.fresh {
                continue;
            }
            p.fresh = false;
            let msgs = &p.series[0];
            let rate = msgs.last as f64;
            if let Some(kind) = p.hot.tick(hot_cfg, now_s, rate, &msgs.history) {
                match kind {
                    HotKind::Hot => p.hot_since_s = Some(now_s),
                    HotKind::Cleared => p.hot_since_s = None,
                    HotKind::Warning { .. } => {}
                }
                out.hot.push(HotEvent {
                    partition: pid,
                    t_s: now_s,
                    kind,
                    rate_msgs_per_s: rate,
                    capacity_msgs_per_s: hot_cfg.partition_capacity_msgs_per_s,
                });
            }
        }
        out.hot.sort_by_key(|e| e.partition);
        let kc = &self.config.keys;
        for w in self.keys.values_mut() {
            w.roll(now_s, kc.window_s, kc.share_min);
        }
        if let Some(pl) = placement {
            let parts = &self.partitions;
            let keys = &self.keys;
            let load_of = |pid: u32| -> PartitionLoad {
                match parts.get(&pid) {
                    Some(p) => PartitionLoad {
                        rate_msgs_per_s: p.series[0].level(),
                        hot_for_s: (p.hot.phase() == Phase::Hot)
                            .then(|| p.hot_since_s.map(|s| now_s.saturating_sub(s)))
                            .flatten(),
                        top_key: keys
                            .get(&pid)
                            .and_then(|k| k.last_report().0.first().map(|h| h.key)),
                    },
                    None => PartitionLoad {
                        rate_msgs_per_s: 0.0,
                        hot_for_s: None,
                        top_key: None,
                    },
                }
            };
            self.decider.decide(
                &self.config.decision,
                now_s,
                pl,
                &load_of,
                &mut out.decisions,
            );
        }
        for (id, s) in &self.others {
            if let Some(f) = &s.forecaster {
                for h in 0..f.horizons().len() {
                    if let Some(p) = f.predict(h, &s.history) {
                        out.forecasts.push(to_forecast(*id, s.last_t_s, p));
                    }
                }
            }
        }
        out.anomalies = std::mem::take(&mut self.anomalies);
        out.anomalies_dropped = std::mem::take(&mut self.anomalies_dropped);
        out
    }

    /// In a cluster, once per tick after [`Analyzer::tick`]: whether this node (`me`, among
    /// `nodes`) should hand the leadership of one of the partitions it leads (`led`) to another
    /// in-sync replica ([`crate::lead`]). Rates are the partitions' smoothed msgs/s.
    pub fn decide_leader(
        &mut self,
        now_s: u64,
        me: u32,
        nodes: &[NodeLoad],
        led: &[LedPartition],
    ) -> Option<Decision> {
        let parts = &self.partitions;
        let rate_of = |pid: u32| parts.get(&pid).map_or(0.0, |p| p.series[0].level());
        let p = self
            .leader
            .decide(&self.config.decision, now_s, me, nodes, led, &rate_of)?;
        Some(Decision::Lead {
            partition: p.partition,
            from_node: p.from_node,
            to_node: p.to_node,
            rate_msgs_per_s: p.rate_msgs_per_s,
        })
    }

    /// Smoothed msgs/s of a partition (0 when it has no samples).
    pub fn partition_rate(&self, partition: u32) -> f64 {
        self.partitions
            .get(&partition)
            .map_or(0.0, |p| p.series[0].level())
    }

    /// Tells the leadership balance that this node now leads `partition`, taken over from
    /// `from_node`: it is not handed back there within `no_return_s`.
    pub fn leader_arrived(&mut self, partition: u32, from_node: u32, now_s: u64) {
        self.leader.arrived(partition, from_node, now_s);
    }

    fn series(&self, id: SeriesId) -> Option<&SeriesState> {
        match partition_slot(id.kind) {
            Some(slot) => self.partitions.get(&id.entity).map(|p| &p.series[slot]),
            None => self.others.get(&id),
        }
    }

    /// Forecast of `series` at horizon index `h` of the configured horizons.
    pub fn forecast(&self, series: SeriesId, h: usize) -> Option<Forecast> {
        let s = self.series(series)?;
        let p = s.forecaster.as_ref()?.predict(h, &s.history)?;
        Some(to_forecast(series, s.last_t_s, p))
    }

    /// Forecast of `series` at horizon index `h` by one named method (for evaluation and debugging).
    pub fn forecast_with(&self, series: SeriesId, method: Method, h: usize) -> Option<f64> {
        let s = self.series(series)?;
        s.forecaster.as_ref()?.predict_with(method, h, &s.history)
    }

    /// Current hot phase of a partition.
    pub fn hot_phase(&self, partition: u32) -> Option<Phase> {
        self.partitions.get(&partition).map(|p| p.hot.phase())
    }

    /// Heavy keys of the last complete window of `partition`, and the window's total weight.
    pub fn hot_keys(&self, partition: u32) -> Option<(&[HotKey], u64)> {
        self.keys.get(&partition).map(|k| k.last_report())
    }

    /// Bytes of hot-key state of `partition`.
    pub fn key_state_bytes(&self, partition: u32) -> Option<usize> {
        self.keys.get(&partition).map(|k| k.memory_bytes())
    }

    /// Bytes of analytics state of one partition (its four series and hot detector, excluding hot keys),
    /// plus its share of the partition map's table.
    pub fn partition_state_bytes(&self, partition: u32) -> Option<usize> {
        self.partitions.get(&partition).map(|p| {
            std::mem::size_of::<(u32, PartitionState)>()
                + 1
                + p.series
                    .iter()
                    .map(|s| s.bytes() - std::mem::size_of::<SeriesState>())
                    .sum::<usize>()
        })
    }

    /// Number of partitions tracked.
    pub fn partitions(&self) -> usize {
        self.partitions.len()
    }
}

fn to_forecast(series: SeriesId, t_s: u64, p: crate::forecast::Prediction) -> Forecast {
    Forecast {
        series,
        t_s,
        horizon_steps: p.horizon_steps,
        value: p.value,
        method: p.method,
        method_mae: p.method_mae,
        baseline_mae: p.baseline_mae,
        period_steps: p.period_steps,
    }
}

#[cfg(test)]
#[path = "analyzer_tests.rs"]
mod tests;
