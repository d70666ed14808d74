//! Sprawl's analytics: forecasts, hot partitions, hot keys, anomalies and placement decisions, computed from
//! per-second samples of partition, shard and host series.
//!
//! Every mechanism is a small, named, classical method whose measured error is reported next to the naive
//! baseline's (see `docs/analytics.md`, produced by `cargo run --release -p analytics --bin evaluate`):
//!
//! * **Forecasts** ([`forecast`]): last value, fast SES, a local linear trend (discounted least squares,
//!   t-shrunk slope) restarted by a CUSUM change-point test, damped Holt,
//!   a running median, and, when autocorrelation on the bounded history finds a season, seasonal naive and
//!   additive Holt-Winters. Each series picks its method per horizon by rolling out-of-sample MAE; every
//!   forecast carries the last-value baseline's MAE beside its own.
//! * **Hot partitions** ([`hot`]): exact rates, k-of-n hysteresis, cooldown, and a gated trend projection
//!   that warns before a ramp crosses capacity.
//! * **Hot keys** ([`keys`]): Space-Saving over tumbling windows, fixed memory per partition.
//! * **Anomalies** ([`anomaly`]): robust residual z-score and an EWMA control chart, with a mute period.
//! * **Decisions** ([`decide`]): move a partition to the coolest shard (same node first), split, scale out
//!   ahead of forecast saturation; scale in only on measured load; cooldowns make flapping impossible.
//!   In a cluster ([`lead`]): hand the leadership of a partition from the busiest node to a cooler
//!   in-sync replica, a hint the cluster's controller checks before acting.
//!
//! How the engine drives it (events in, effects out):
//!
//! 1. once per second, [`Analyzer::observe`] each per-partition, per-shard and host [`Sample`]
//!    (a refused sample returns an [`ObserveError`]; limits come from [`Config`]);
//! 2. optionally [`Analyzer::observe_keys`] with `(key hash, weight)` pairs of a partition;
//! 3. [`Analyzer::tick`] with the current [`Placement`]: the [`TickOutput`] carries hot events, anomalies,
//!    decisions and the shard/host forecasts; partition forecasts are read with [`Analyzer::forecast`].
//!
//! What it deliberately does not do: read clocks, spawn threads, draw random numbers, perform I/O, or know
//! about the engine's runtime. Time arrives in the samples, randomness only as the seed of internal hashes,
//! and actions leave as [`Decision`] values that the engine may apply or ignore (analytics is advisory; the
//! engine is correct with it switched off). State per series is bounded at construction (fixed rings).
//!
//! ```
//! use analytics::{Analyzer, Config, Sample, SeriesId, SeriesKind};
//!
//! let mut config = Config::default();
//! config.hot.partition_capacity_msgs_per_s = 1_000.0;
//! let mut a = Analyzer::new(config, 42).expect("valid config");
//! let id = SeriesId::new(SeriesKind::PartitionMsgsPerS, 7);
//! let mut hot_at = None;
//! for t in 0..120u64 {
//!     let rate = if t < 100 { 400.0 } else { 1_500.0 }; // partition 7 turns hot at t = 100
//!     a.observe(Sample { series: id, t_s: t, value: rate }).expect("within the configured limits");
//!     let out = a.tick(t, None);
//!     if out.hot.iter().any(|e| e.kind == analytics::hot::HotKind::Hot) {
//!         hot_at.get_or_insert(t);
//!     }
//! }
//! assert_eq!(hot_at, Some(101)); // two of the last three ticks above capacity
//! let f = a.forecast(id, 0).expect("one-step forecast");
//! assert!(f.value > 1_000.0 && f.baseline_mae.is_finite());
//! ```

#![forbid(unsafe_code)]

pub mod analyzer;
pub mod anomaly;
pub mod config;
pub mod decide;
pub mod forecast;
pub mod hot;
pub mod keys;
pub mod lead;
pub mod ring;
pub mod series;

pub use analyzer::{Analyzer, Anomaly, Forecast, HotEvent, ObserveError, Observed, TickOutput};
pub use config::{Config, ConfigError};
pub use decide::{Decision, Placement, ShardInfo};
pub use forecast::Method;
pub use lead::{LedPartition, NodeLoad};
pub use series::{Sample, SeriesId, SeriesKind};
