//! Configuration of every mechanism, with the defaults the evaluation is run with.

use crate::series::SeriesKind;

/// Largest number of forecast horizons a series tracks.
pub const HORIZONS_MAX: usize = 3;

/// A configuration value outside its allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// `horizons_steps` must hold 1..=HORIZONS_MAX strictly increasing positive horizons.
    #[error("horizons_steps {horizons:?}: need 1..={max} strictly increasing values >= 1")]
    Horizons { horizons: Vec<u32>, max: usize },
    /// A history ring is too short for what the kind asks of it.
    #[error("series kind {kind}: history_len {history_len} below the minimum {min}")]
    HistoryTooShort {
        kind: &'static str,
        history_len: u32,
        min: u32,
    },
    /// A fraction or smoothing factor outside (0, 1].
    #[error("{name} = {value} must be in (0, 1]")]
    Fraction { name: &'static str, value: f64 },
    /// A k-of-n hysteresis with k > n or n > 16.
    #[error("{name}: k {k} of n {n} is invalid (need 1 <= k <= n <= 16)")]
    KOfN { name: &'static str, k: u32, n: u32 },
}

/// Per-kind series settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesConfig {
    /// Values kept in the history ring (bounded memory).
    pub history_len: u32,
    /// Run the forecaster selection (otherwise only last value and a smoothed level are kept).
    pub forecast: bool,
    /// Search for a season in the history (needs `history_len` >= 2 * `season_max_steps`).
    pub season: bool,
    /// Raise anomalies on this series.
    pub anomalies: bool,
    /// Values are counts per step (Poisson-like noise): the anomaly scale gets a sqrt(level) floor.
    pub count_like: bool,
}

/// Forecasting settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastConfig {
    /// Horizons (in steps, one step per sample) tracked and scored per series.
    pub horizons_steps: Vec<u32>,
    /// Pending out-of-sample forecasts kept per horizon (staggered); more gives faster error estimates.
    pub pending_per_horizon: u32,
    /// Weight of a new absolute error in the rolling error per model.
    pub error_weight: f64,
    /// Shortest season searched for, in steps.
    pub season_min_steps: u32,
    /// Longest season searched for, in steps.
    pub season_max_steps: u32,
    /// Autocorrelation a season needs to be accepted.
    pub season_acf_min: f64,
    /// Steps between two season searches on one series.
    pub season_search_every_steps: u32,
}

/// Hot-partition detection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HotConfig {
    /// A partition above this many msgs/s is hot (its capacity).
    pub partition_capacity_msgs_per_s: f64,
    /// Hot when at least `hot_k` of the last `hot_n` ticks were above capacity.
    pub hot_k: u32,
    /// Window of the k-of-n test.
    pub hot_n: u32,
    /// Cleared after this many consecutive ticks below `clear_frac` x capacity.
    pub clear_ticks: u32,
    /// Fraction of capacity under which a tick counts towards clearing.
    pub clear_frac: f64,
    /// After clearing, no new hot/warning event for this long.
    pub cooldown_s: u64,
    /// Trend projection: warn if the fitted line crosses capacity within this many seconds.
    pub warn_horizon_s: f64,
    /// Trend projection only runs above this fraction of capacity.
    pub warn_min_level_frac: f64,
    /// Regression window (samples) of the trend projection; must fit in the history ring.
    pub warn_window: u32,
    /// t-statistic the slope needs.
    pub warn_t_min: f64,
    /// Warning when `warn_k` of the last `warn_n` ticks projected a crossing.
    pub warn_k: u32,
    /// Window of the warning k-of-n test.
    pub warn_n: u32,
}

/// Anomaly detection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyConfig {
    /// Residual z-score that alone raises an anomaly.
    pub z_residual: f64,
    /// EWMA control chart limit (in chart standard deviations).
    pub chart_limit: f64,
    /// Limit of the score-likelihood test: a short average of the raw score, in standard deviations of the
    /// raw score's own long-run distribution (0 disables).
    pub likelihood_limit: f64,
    /// Score with the likelihood test alone (Numenta-style post-processing of the raw score) instead of
    /// the larger of raw score and likelihood.
    pub likelihood_only: bool,
    /// Smoothing of the short EWMA in the control chart.
    pub chart_lambda: f64,
    /// Smoothing of the long-run mean, variance and residual scale.
    pub baseline_alpha: f64,
    /// Alert when the combined score (1.0 = at a limit) is at least this.
    pub score_threshold: f64,
    /// No alert during the first steps of a series.
    pub warmup_steps: u32,
    /// After an alert the series is muted for this many steps.
    pub cooldown_steps: u32,
}

/// Decision settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionConfig {
    /// Rebalance when the busiest shard is above this ratio of the mean shard load.
    pub imbalance_ratio: f64,
    /// Ignore imbalance while the busiest shard is below this fraction of its capacity.
    pub min_busy_frac: f64,
    /// Minimum seconds between two moves of the same partition.
    pub move_cooldown_s: u64,
    /// A partition never returns to the shard it last left within this many seconds (no flapping).
    pub no_return_s: u64,
    /// Moves issued per tick at most.
    pub moves_per_tick_max: u32,
    /// Recommend a split when one partition alone exceeds this fraction of a shard's capacity.
    pub split_frac: f64,
    /// Minimum seconds between two split recommendations for one partition.
    pub split_cooldown_s: u64,
    /// Scale-out when the cluster load forecast this far ahead reaches `scale_out_frac` of capacity.
    pub scale_lead_s: f64,
    /// Fraction of cluster capacity that counts as saturated.
    pub scale_out_frac: f64,
    /// Consecutive ticks the forecast must agree before recommending scale-out.
    pub scale_out_confirm_ticks: u32,
    /// Minimum seconds between two scale-out recommendations.
    pub scale_cooldown_s: u64,
    /// Scale-in is only ever suggested on *measured* load below this fraction for `scale_in_after_s`.
    pub scale_in_frac: f64,
    /// Seconds of measured low load before scale-in is suggested.
    pub scale_in_after_s: u64,
}

/// Hot-key settings.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyConfig {
    /// Space-Saving counters per partition (keys with share >= 1/counters are always kept).
    pub counters: u32,
    /// Report keys with at least this share of the window's traffic.
    pub share_min: f64,
    /// Tumbling window length in seconds.
    pub window_s: u64,
}

/// Whole analyzer configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Partitions tracked at most; samples of further partitions are refused.
    pub partitions_max: u32,
    /// Shard, host and generic series tracked at most; samples of further series are refused.
    pub other_series_max: u32,
    /// Settings per series kind, indexed like [`SeriesKind::ALL`].
    pub series: [SeriesConfig; 10],
    /// Forecasting.
    pub forecast: ForecastConfig,
    /// Hot partitions.
    pub hot: HotConfig,
    /// Anomalies.
    pub anomaly: AnomalyConfig,
    /// Decisions.
    pub decision: DecisionConfig,
    /// Hot keys.
    pub keys: KeyConfig,
}

impl Config {
    /// Settings of one kind.
    pub fn series_config(&self, kind: SeriesKind) -> &SeriesConfig {
        let idx = SeriesKind::ALL.iter().position(|k| *k == kind).unwrap_or(9);
        &self.series[idx]
    }

    /// Mutable settings of one kind.
    pub fn series_config_mut(&mut self, kind: SeriesKind) -> &mut SeriesConfig {
        let idx = SeriesKind::ALL.iter().position(|k| *k == kind).unwrap_or(9);
        &mut self.series[idx]
    }

    /// Checks every range; the analyzer refuses an invalid configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let h = &self.forecast.horizons_steps;
        if h.is_empty() || h.len() > HORIZONS_MAX || h[0] == 0 || h.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(ConfigError::Horizons {
                horizons: h.clone(),
                max: HORIZONS_MAX,
            });
        }
        for (kind, sc) in SeriesKind::ALL.iter().zip(self.series.iter()) {
            let mut min = 4;
            if sc.season {
                min = min.max(2 * self.forecast.season_max_steps);
            }
            if kind.is_partition() && *kind == SeriesKind::PartitionMsgsPerS {
                min = min.max(self.hot.warn_window);
            }
            if sc.history_len < min {
                return Err(ConfigError::HistoryTooShort {
                    kind: kind.name(),
                    history_len: sc.history_len,
                    min,
                });
            }
        }
        for (name, value) in [
            ("forecast.error_weight", self.forecast.error_weight),
            ("hot.clear_frac", self.hot.clear_frac),
            ("hot.warn_min_level_frac", self.hot.warn_min_level_frac),
            ("anomaly.chart_lambda", self.anomaly.chart_lambda),
            ("anomaly.baseline_alpha", self.anomaly.baseline_alpha),
            ("decision.split_frac", self.decision.split_frac),
            ("decision.scale_out_frac", self.decision.scale_out_frac),
            ("decision.scale_in_frac", self.decision.scale_in_frac),
            ("keys.share_min", self.keys.share_min),
        ] {
            if !(value > 0.0 && value <= 1.0) {
                return Err(ConfigError::Fraction { name, value });
            }
        }
        for (name, k, n) in [
            ("hot", self.hot.hot_k, self.hot.hot_n),
            ("warn", self.hot.warn_k, self.hot.warn_n),
        ] {
            if k == 0 || k > n || n > 16 {
                return Err(ConfigError::KOfN { name, k, n });
            }
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        let light = |anomalies: bool, count_like: bool| SeriesConfig {
            history_len: 4,
            forecast: false,
            season: false,
            anomalies,
            count_like,
        };
        let full = |history_len: u32, season: bool, count_like: bool| SeriesConfig {
            history_len,
            forecast: true,
            season,
            anomalies: true,
            count_like,
        };
        Config {
            partitions_max: 100_000,
            other_series_max: 4096,
            series: [
                full(32, false, true),   // PartitionMsgsPerS
                light(false, false),     // PartitionBytesPerS
                light(true, false),      // ConsumerLagMsgs
                light(false, true),      // FetchPerS
                full(1024, true, true),  // ShardMsgsPerS
                full(1024, true, false), // HostCpuPct
                full(1024, true, false), // HostMemBytes
                full(1024, true, false), // HostDiskBytesPerS
                full(1024, true, false), // HostNetBytesPerS
                full(1024, true, false), // Generic
            ],
            forecast: ForecastConfig {
                horizons_steps: vec![1, 10, 60],
                pending_per_horizon: 2,
                error_weight: 0.02,
                season_min_steps: 4,
                season_max_steps: 512,
                season_acf_min: 0.5,
                season_search_every_steps: 256,
            },
            hot: HotConfig {
                partition_capacity_msgs_per_s: 10_000.0,
                hot_k: 2,
                hot_n: 3,
                clear_ticks: 10,
                clear_frac: 0.9,
                cooldown_s: 60,
                warn_horizon_s: 60.0,
                warn_min_level_frac: 0.5,
                warn_window: 24,
                warn_t_min: 6.0,
                warn_k: 3,
                warn_n: 4,
            },
            anomaly: AnomalyConfig {
                z_residual: 6.0,
                chart_limit: 6.0,
                chart_lambda: 0.2,
                likelihood_limit: 0.0,
                likelihood_only: false,
                baseline_alpha: 0.01,
                score_threshold: 1.0,
                warmup_steps: 60,
                cooldown_steps: 60,
            },
            decision: DecisionConfig {
                imbalance_ratio: 1.10,
                min_busy_frac: 0.2,
                move_cooldown_s: 1800,
                no_return_s: 7200,
                moves_per_tick_max: 2,
                split_frac: 0.7,
                split_cooldown_s: 1800,
                scale_lead_s: 900.0,
                scale_out_frac: 0.8,
                scale_out_confirm_ticks: 5,
                scale_cooldown_s: 3600,
                scale_in_frac: 0.3,
                scale_in_after_s: 3600,
            },
            keys: KeyConfig {
                counters: 256,
                share_min: 0.01,
                window_s: 60,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn rejects_bad_horizons_and_short_history() {
        let mut c = Config::default();
        c.forecast.horizons_steps = vec![10, 1];
        assert!(matches!(c.validate(), Err(ConfigError::Horizons { .. })));
        let mut c = Config::default();
        c.series_config_mut(SeriesKind::Generic).history_len = 100;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::HistoryTooShort { .. })
        ));
    }
}
