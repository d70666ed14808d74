//! Forecasters chosen per series by rolling out-of-sample error.
//!
//! Every series runs all candidate methods side by side. For each tracked horizon a few forecasts are kept
//! pending until their target step arrives, then scored against the value that really came; the rolling
//! mean absolute error per method and horizon picks the method, and the last-value baseline's error is
//! reported next to it. Nothing here looks at the future: errors are strictly out of sample.

pub mod local_trend;
pub mod season;

use crate::config::{ForecastConfig, HORIZONS_MAX};
use crate::ring::Ring;
use local_trend::LocalTrend;
use season::HoltWinters;

/// Number of candidate methods.
pub const METHODS: usize = 7;
/// Largest number of staggered pending forecasts per horizon.
pub const PENDING_MAX: usize = 2;
/// Scored forecasts a method needs before it can be selected over the baseline.
const SELECT_MIN_SCORED: u16 = 8;

/// A forecasting method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// Baseline: the next value equals the last one.
    LastValue = 0,
    /// Simple exponential smoothing, alpha 0.5.
    SesFast = 1,
    /// Local linear trend by discounted least squares (discount 0.98) with its slope shrunk by its
    /// t-statistic, restarted on the samples since a change when a two-sided CUSUM on the standardised
    /// residuals fires (see [`local_trend`]).
    LocalTrend = 2,
    /// Holt linear trend (alpha 0.1, beta 0.01, damping 0.98).
    Holt = 3,
    /// Running median estimate (stochastic approximation); best under MAE on sparse counts.
    RunningMedian = 4,
    /// Value one detected season earlier.
    SeasonalNaive = 5,
    /// Additive Holt-Winters on the detected season.
    HoltWinters = 6,
}

impl Method {
    /// All methods, indexed by their discriminant.
    pub const ALL: [Method; METHODS] = [
        Method::LastValue,
        Method::SesFast,
        Method::LocalTrend,
        Method::Holt,
        Method::RunningMedian,
        Method::SeasonalNaive,
        Method::HoltWinters,
    ];

    /// Stable name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::LastValue => "last_value",
            Method::SesFast => "ses_0.5",
            Method::LocalTrend => "local_trend_cusum",
            Method::Holt => "holt_damped",
            Method::RunningMedian => "running_median",
            Method::SeasonalNaive => "seasonal_naive",
            Method::HoltWinters => "holt_winters",
        }
    }
}

/// One forecast with its method and the rolling errors that justify it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Steps ahead.
    pub horizon_steps: u32,
    /// Forecast value.
    pub value: f64,
    /// Method selected for this series and horizon.
    pub method: Method,
    /// Rolling out-of-sample MAE of the selected method at this horizon.
    pub method_mae: f64,
    /// Rolling out-of-sample MAE of the last-value baseline at this horizon.
    pub baseline_mae: f64,
    /// Detected season length in steps, if any.
    pub period_steps: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    due_step: u32,
    preds: [f32; METHODS],
}

const EMPTY: u32 = u32::MAX;

/// Candidate methods' state plus the out-of-sample error book-keeping for one series.
#[derive(Debug, Clone)]
pub struct Forecaster {
    step: u32,
    last: f32,
    ses_fast: f32,
    local_trend: LocalTrend,
    holt_level: f32,
    holt_trend: f32,
    median: f32,
    median_scale: f32,
    horizons: [u32; HORIZONS_MAX],
    horizons_len: u8,
    pending_len: u8,
    pending: [[Pending; PENDING_MAX]; HORIZONS_MAX],
    err: [[f32; METHODS]; HORIZONS_MAX],
    err_n: [[u16; METHODS]; HORIZONS_MAX],
    seasonal: Option<Box<HoltWinters>>,
}

impl Forecaster {
    /// A forecaster for the horizons in `cfg` (validated by [`crate::Config::validate`]).
    pub fn new(cfg: &ForecastConfig) -> Self {
        let mut horizons = [0u32; HORIZONS_MAX];
        let len = cfg.horizons_steps.len().min(HORIZONS_MAX);
        horizons[..len].copy_from_slice(&cfg.horizons_steps[..len]);
        let empty = Pending {
            due_step: EMPTY,
            preds: [f32::NAN; METHODS],
        };
        Forecaster {
            step: 0,
            last: 0.0,
            ses_fast: 0.0,
            local_trend: LocalTrend::default(),
            holt_level: 0.0,
            holt_trend: 0.0,
            median: 0.0,
            median_scale: 0.0,
            horizons,
            horizons_len: len as u8,
            pending_len: (cfg.pending_per_horizon as usize).clamp(1, PENDING_MAX) as u8,
            pending: [[empty; PENDING_MAX]; HORIZONS_MAX],
            err: [[f32::NAN; METHODS]; HORIZONS_MAX],
            err_n: [[0; METHODS]; HORIZONS_MAX],
            seasonal: None,
        }
    }

    /// Samples seen.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// Detected season length, if a season is in use.
    pub fn period_steps(&self) -> Option<u32> {
        self.seasonal.as_ref().map(|s| s.period())
    }

    /// Heap bytes owned (the seasonal state, when present).
    pub fn heap_bytes(&self) -> usize {
        self.seasonal
            .as_ref()
            .map(|s| s.heap_bytes() + std::mem::size_of::<HoltWinters>())
            .unwrap_or(0)
    }

    /// Installs (or replaces) the seasonal model; `history` must already contain the current value.
    pub fn set_season(&mut self, period: u32, history: &Ring, scratch: &mut Vec<f32>) {
        if self.period_steps() == Some(period) {
            return;
        }
        history.copy_oldest_first(scratch);
        let last_step = self.step.saturating_sub(1) as u64;
        self.seasonal = HoltWinters::init(period, scratch, last_step).map(Box::new);
        for h in 0..HORIZONS_MAX {
            for m in [Method::SeasonalNaive, Method::HoltWinters] {
                self.err[h][m as usize] = f32::NAN;
                self.err_n[h][m as usize] = 0;
            }
        }
    }

    /// Drops the seasonal model (the season is no longer found).
    pub fn clear_season(&mut self) {
        self.seasonal = None;
    }

    /// The one-step-ahead forecast of the method currently selected for the shortest horizon.
    pub fn one_step(&self, history: &Ring) -> Option<f64> {
        if self.step == 0 {
            return None;
        }
        let method = self.select(0).0;
        Some(self.predict_method(method, 1, history))
    }

    /// Learns from the next value (before the caller pushes it into the history ring and calls
    /// [`Forecaster::issue_pending`]). `weight` is the rolling-error weight of a new error; `history`
    /// holds the values before this one.
    pub fn observe(&mut self, value: f64, weight: f64, history: &Ring) {
        let v = value as f32;
        let step = self.step;
        // 1. Score forecasts that targeted this step.
        for h in 0..self.horizons_len as usize {
            for p in 0..self.pending_len as usize {
                let slot = self.pending[h][p];
                if slot.due_step != step {
                    continue;
                }
                for m in 0..METHODS {
                    let pred = slot.preds[m];
                    if pred.is_nan() {
                        continue;
                    }
                    let old = self.err[h][m];
                    let e = (pred - v).abs();
                    let n = self.err_n[h][m].saturating_add(1);
                    self.err_n[h][m] = n;
                    let w = (weight as f32).max(1.0 / n as f32);
                    self.err[h][m] = if old.is_nan() { e } else { old + w * (e - old) };
                }
                self.pending[h][p].due_step = EMPTY;
            }
        }
        // 2. Update every method with the new value.
        self.update_models(value, history);
        self.step = step.wrapping_add(1);
    }

    /// Issues pending forecasts after `observe` and the history push.
    pub fn issue_pending(&mut self, history: &Ring) {
        let just_seen = self.step.wrapping_sub(1);
        for h in 0..self.horizons_len as usize {
            let horizon = self.horizons[h];
            let stride = horizon.div_ceil(self.pending_len as u32).max(1);
            if !just_seen.is_multiple_of(stride) {
                continue;
            }
            let Some(p) = self.pending[h][..self.pending_len as usize]
                .iter()
                .position(|s| s.due_step == EMPTY)
            else {
                continue;
            };
            let mut preds = [f32::NAN; METHODS];
            for m in Method::ALL {
                if self.method_available(m, horizon, history) {
                    preds[m as usize] = self.predict_method(m, horizon, history) as f32;
                }
            }
            self.pending[h][p] = Pending {
                due_step: just_seen.wrapping_add(horizon),
                preds,
            };
        }
    }

    fn update_models(&mut self, value: f64, history: &Ring) {
        let v = value as f32;
        self.local_trend.update(v, history);
        if self.step == 0 {
            self.last = v;
            self.ses_fast = v;
            self.holt_level = v;
            self.holt_trend = 0.0;
            self.median = v;
            self.median_scale = 0.0;
            return;
        }
        self.last = v;
        self.ses_fast += 0.5 * (v - self.ses_fast);
        // Holt with damped trend.
        let (a, b, phi) = (0.1f32, 0.01f32, 0.98f32);
        let prev_level = self.holt_level;
        let level = a * v + (1.0 - a) * (prev_level + phi * self.holt_trend);
        self.holt_trend = b * (level - prev_level) + (1.0 - b) * phi * self.holt_trend;
        self.holt_level = level;
        // Running median: move a step proportional to the typical deviation towards the value.
        let d = v - self.median;
        self.median_scale += 0.05 * (d.abs() - self.median_scale);
        let eta = (0.1 * self.median_scale).max(1e-6);
        if d > 0.0 {
            self.median += eta.min(d);
        } else if d < 0.0 {
            self.median -= eta.min(-d);
        }
        if let Some(hw) = self.seasonal.as_mut() {
            hw.update(value, self.step as u64);
        }
    }

    fn method_available(&self, m: Method, horizon: u32, history: &Ring) -> bool {
        match m {
            Method::SeasonalNaive => self
                .seasonal
                .as_ref()
                .map(|s| seasonal_age(s.period(), horizon) < history.len())
                .unwrap_or(false),
            Method::HoltWinters => self.seasonal.is_some(),
            _ => self.step > 0,
        }
    }

    /// `history` holds values up to and including the last observed one.
    fn predict_method(&self, m: Method, horizon: u32, history: &Ring) -> f64 {
        match m {
            Method::LastValue => self.last as f64,
            Method::SesFast => self.ses_fast as f64,
            Method::LocalTrend => self.local_trend.predict(horizon),
            Method::Holt => {
                let phi = 0.98f64;
                let mut damp = 0.0;
                let mut p = 1.0;
                for _ in 0..horizon.min(256) {
                    p *= phi;
                    damp += p;
                }
                self.holt_level as f64 + damp * self.holt_trend as f64
            }
            Method::RunningMedian => self.median as f64,
            Method::SeasonalNaive => match &self.seasonal {
                Some(s) => history
                    .get(seasonal_age(s.period(), horizon))
                    .map(|v| v as f64)
                    .unwrap_or(self.last as f64),
                None => self.last as f64,
            },
            Method::HoltWinters => match &self.seasonal {
                Some(s) => {
                    let target = self.step.wrapping_sub(1) as u64 + horizon as u64;
                    s.predict(horizon, target)
                }
                None => self.last as f64,
            },
        }
    }

    /// Method selected for horizon index `h`, with its MAE and the baseline's MAE.
    fn select(&self, h: usize) -> (Method, f64, f64) {
        let base = self.err[h][0];
        let mut best = (Method::LastValue, base);
        for m in Method::ALL.iter().skip(1) {
            let e = self.err[h][*m as usize];
            if e.is_nan() || self.err_n[h][*m as usize] < SELECT_MIN_SCORED {
                continue;
            }
            if best.1.is_nan() || e < best.1 {
                best = (*m, e);
            }
        }
        if self.err_n[h][0] < SELECT_MIN_SCORED {
            best = (Method::LastValue, base);
        }
        (best.0, best.1 as f64, base as f64)
    }

    /// Forecast for the tracked horizon index `h` (see [`Forecaster::horizons`]).
    pub fn predict(&self, h: usize, history: &Ring) -> Option<Prediction> {
        if h >= self.horizons_len as usize || self.step == 0 {
            return None;
        }
        let horizon = self.horizons[h];
        let (method, method_mae, baseline_mae) = self.select(h);
        Some(Prediction {
            horizon_steps: horizon,
            value: self.predict_method(method, horizon, history),
            method,
            method_mae,
            baseline_mae,
            period_steps: self.period_steps(),
        })
    }

    /// Forecast of a given method (for evaluation of single methods), at horizon index `h`.
    pub fn predict_with(&self, method: Method, h: usize, history: &Ring) -> Option<f64> {
        if h >= self.horizons_len as usize || self.step == 0 {
            return None;
        }
        let horizon = self.horizons[h];
        if !self.method_available(method, horizon, history) {
            return None;
        }
        Some(self.predict_method(method, horizon, history))
    }

    /// Tracked horizons, in steps.
    pub fn horizons(&self) -> &[u32] {
        &self.horizons[..self.horizons_len as usize]
    }

    /// Rolling MAE per method at horizon index `h` (NaN where not yet scored).
    pub fn method_errors(&self, h: usize) -> [f32; METHODS] {
        self.err[h.min(HORIZONS_MAX - 1)]
    }
}

/// Age in the history ring (0 = newest) of the value one season before the target `horizon` steps ahead.
fn seasonal_age(period: u32, horizon: u32) -> u32 {
    let k = horizon.div_ceil(period).max(1);
    k * period - horizon
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn run(values: &[f64], cfg: &ForecastConfig) -> (Forecaster, Ring) {
        let mut f = Forecaster::new(cfg);
        let mut ring = Ring::new(64);
        for v in values {
            f.observe(*v, cfg.error_weight, &ring);
            ring.push(*v as f32);
            f.issue_pending(&ring);
        }
        (f, ring)
    }

    #[test]
    fn constant_series_is_forecast_exactly() {
        let cfg = Config::default().forecast;
        let (f, ring) = run(&[42.0; 200], &cfg);
        for h in 0..3 {
            let p = f.predict(h, &ring).expect("forecast");
            assert_eq!(p.value, 42.0);
            assert_eq!(p.baseline_mae, 0.0);
        }
    }

    #[test]
    fn level_shifts_select_the_local_trend() {
        // A noisy rate (sd ~ 30) that steps between 1000 and 1600 every 300 samples: the change-point
        // restart keeps the long average between steps, which neither last value nor the slow smoothers
        // manage, so the local trend wins at 10 steps ahead (every step still costs ~10 samples of error).
        let cfg = Config::default().forecast;
        let mut s = 3u64;
        let values: Vec<f64> = (0..6000u32)
            .map(|t| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let level = if (t / 300).is_multiple_of(2) {
                    1000.0
                } else {
                    1600.0
                };
                level + ((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 104.0
            })
            .collect();
        let (f, ring) = run(&values, &cfg);
        let p = f.predict(1, &ring).expect("forecast");
        assert_eq!(p.method, Method::LocalTrend, "{p:?}");
        assert!(p.method_mae < 0.9 * p.baseline_mae, "{p:?}");
        let errs = f.method_errors(1);
        for m in [
            Method::LastValue,
            Method::SesFast,
            Method::Holt,
            Method::RunningMedian,
        ] {
            assert!(
                errs[Method::LocalTrend as usize] < errs[m as usize],
                "{m:?}: {errs:?}"
            );
        }
    }

    #[test]
    fn noisy_level_prefers_smoothing_over_last_value() {
        let cfg = Config::default().forecast;
        let mut s = 11u64;
        let values: Vec<f64> = (0..3000)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                1000.0 + ((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 100.0
            })
            .collect();
        let (f, ring) = run(&values, &cfg);
        let p = f.predict(0, &ring).expect("forecast");
        assert_ne!(p.method, Method::LastValue);
        assert!(p.method_mae < 0.8 * p.baseline_mae, "{p:?}");
    }

    #[test]
    fn seasonal_naive_is_exact_on_a_periodic_series() {
        let cfg = Config::default().forecast;
        let values: Vec<f64> = (0..64).map(|i| (i % 8) as f64).collect();
        let mut f = Forecaster::new(&cfg);
        let mut ring = Ring::new(64);
        let mut scratch = Vec::new();
        for v in &values {
            f.observe(*v, cfg.error_weight, &ring);
            ring.push(*v as f32);
            f.issue_pending(&ring);
        }
        f.set_season(8, &ring, &mut scratch);
        // Last value is 7 (step 63); 10 steps ahead is step 73 whose phase is 1.
        let v = f
            .predict_with(Method::SeasonalNaive, 1, &ring)
            .expect("seasonal");
        assert_eq!(v, 1.0);
    }
}
