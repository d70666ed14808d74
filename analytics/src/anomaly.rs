//! Anomaly scoring: a robust residual z-score plus an EWMA control chart, and the alert gate.
//!
//! The residual is the value minus the one-step forecast made before it arrived. Its scale is a winsorized
//! running mean absolute deviation (x1.2533 turns it into a standard deviation for Gaussian noise), floored
//! at sqrt(level) for count series so that a sparse Poisson series does not alarm on every 2 instead of 0.
//! The control chart compares a short EWMA of the value with a slowly adapting baseline mean and variance;
//! it catches ramps and small sustained shifts that no single residual reveals.
//!
//! Optionally (`likelihood_limit`), the raw score is post-processed the way Numenta's "anomaly likelihood"
//! does: a short average of the raw score is compared with the raw score's own long-run mean and variance,
//! so a series whose raw score is routinely high must rise above its usual level.

use crate::config::AnomalyConfig;

/// Weight of a new raw score in the short average of the likelihood test (about ten samples).
const LIK_SHORT: f64 = 0.1;
/// Weight of a new raw score in its long-run mean and variance.
const LIK_ALPHA: f64 = 0.001;
/// Raw scores are capped here before entering the long-run statistics (anomalies must not become normal).
const LIK_RAW_CAP: f64 = 2.0;
/// Floor of the raw score's standard deviation (a constant series would otherwise divide by zero).
const LIK_SD_MIN: f64 = 0.02;

/// Per-series anomaly state (a few floats: fits the per-partition budget).
#[derive(Debug, Clone, Copy, Default)]
pub struct AnomalyState {
    steps: u32,
    resid_scale: f32,
    raw_short: f32,
    raw_mean: f32,
    raw_var: f32,
    chart: f32,
    base_mean: f32,
    base_var: f32,
}

/// The score of one value and its parts (all zero for series without anomaly detection).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AnomalyScore {
    /// Combined score: 1.0 means one of the tests is exactly at its limit.
    pub score: f64,
    /// Residual in robust standard deviations (signed).
    pub z_residual: f64,
    /// Control chart statistic in chart standard deviations (signed).
    pub z_chart: f64,
}

impl AnomalyState {
    /// Scores `value` against `predicted` (the one-step forecast made before it), then learns from it.
    /// Returns a zero score during warm-up.
    pub fn score(
        &mut self,
        cfg: &AnomalyConfig,
        value: f64,
        predicted: Option<f64>,
        count_like: bool,
    ) -> AnomalyScore {
        let v = value;
        let a = cfg.baseline_alpha;
        let lambda = cfg.chart_lambda;
        if self.steps == 0 {
            self.base_mean = v as f32;
            self.chart = v as f32;
            self.base_var = 0.0;
            self.resid_scale = 0.0;
            self.steps = 1;
            return AnomalyScore {
                score: 0.0,
                z_residual: 0.0,
                z_chart: 0.0,
            };
        }
        let mean = self.base_mean as f64;
        let var = self.base_var as f64;
        let floor = if count_like { mean.max(1.0) } else { 0.0 };
        let resid = v - predicted.unwrap_or(mean);
        let sigma_resid = (1.2533 * self.resid_scale as f64)
            .max(floor.sqrt())
            .max(1e-9);
        let z_residual = resid / sigma_resid;
        let chart = lambda * v + (1.0 - lambda) * self.chart as f64;
        let sigma = var.max(floor).sqrt().max(1e-9);
        let z_chart = (chart - mean) / (sigma * (lambda / (2.0 - lambda)).sqrt());
        let warm = self.steps >= cfg.warmup_steps;
        let raw = (z_residual.abs() / cfg.z_residual).max(z_chart.abs() / cfg.chart_limit);
        // Score likelihood: a short average of the raw score against the raw score's own long-run
        // distribution, so a series whose raw score is routinely high (spiky traffic) must exceed its
        // usual level, while a sustained rise of a normally quiet score stands out.
        let raw_short = LIK_SHORT * raw + (1.0 - LIK_SHORT) * self.raw_short as f64;
        let raw_mean = self.raw_mean as f64;
        let raw_sd = (self.raw_var as f64).sqrt().max(LIK_SD_MIN);
        let z_lik = (raw_short - raw_mean) / raw_sd;
        let combined = if cfg.likelihood_limit <= 0.0 {
            raw
        } else if cfg.likelihood_only {
            z_lik / cfg.likelihood_limit
        } else {
            raw.max(z_lik / cfg.likelihood_limit)
        };
        let score = if warm { combined } else { 0.0 };
        let wl = LIK_ALPHA.max(1.0 / self.steps as f64);
        let d = raw.min(LIK_RAW_CAP) - raw_mean;
        self.raw_mean = (raw_mean + wl * d) as f32;
        self.raw_var = ((1.0 - wl) * (self.raw_var as f64 + wl * d * d)) as f32;
        self.raw_short = raw_short as f32;
        // Learn, winsorizing so that an anomaly does not immediately become the new normal.
        let w = (a).max(1.0 / self.steps as f64);
        let r_abs = resid.abs();
        let cap = if self.resid_scale > 0.0 {
            5.0 * self.resid_scale as f64
        } else {
            r_abs
        };
        self.resid_scale += (w * (r_abs.min(cap) - self.resid_scale as f64)) as f32;
        let dev = v - mean;
        let dev_cap = if var > 0.0 {
            5.0 * var.sqrt()
        } else {
            dev.abs()
        };
        let dev_c = dev.clamp(-dev_cap, dev_cap);
        self.base_mean = (mean + w * dev_c) as f32;
        self.base_var = ((1.0 - w) * (var + w * dev_c * dev_c)) as f32;
        self.chart = chart as f32;
        self.steps = self.steps.saturating_add(1);
        AnomalyScore {
            score,
            z_residual,
            z_chart,
        }
    }
}

/// Turns scores into alerts: threshold plus a per-series mute period after each alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertGate {
    /// Alert when the score reaches this.
    pub threshold: f64,
    /// Steps muted after an alert.
    pub cooldown_steps: u32,
}

impl AlertGate {
    /// Decides for the score at `step`; `last_alert_step` is updated on an alert.
    pub fn check(&self, score: f64, step: u32, last_alert_step: &mut Option<u32>) -> bool {
        if score < self.threshold {
            return false;
        }
        if let Some(last) = *last_alert_step {
            if (step as u64) < last as u64 + self.cooldown_steps as u64 {
                return false;
            }
        }
        *last_alert_step = Some(step);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn lcg(s: &mut u64) -> f64 {
        *s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*s >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn step_change_is_flagged_and_noise_is_not() {
        let cfg = Config::default().anomaly;
        let mut st = AnomalyState::default();
        let mut s = 5u64;
        let mut max_quiet: f64 = 0.0;
        for _ in 0..5000 {
            let v = 1000.0 + (lcg(&mut s) - 0.5) * 100.0;
            let sc = st.score(&cfg, v, Some(1000.0), false);
            max_quiet = max_quiet.max(sc.score);
        }
        assert!(max_quiet < 1.0, "quiet max score {max_quiet}");
        let sc = st.score(&cfg, 1500.0, Some(1000.0), false);
        assert!(sc.score >= 1.0 && sc.z_residual > 0.0, "{sc:?}");
    }

    #[test]
    fn slow_ramp_is_caught_by_the_chart() {
        let cfg = Config::default().anomaly;
        let mut st = AnomalyState::default();
        let mut s = 9u64;
        for _ in 0..2000 {
            let v = 100.0 + (lcg(&mut s) - 0.5) * 10.0;
            st.score(&cfg, v, Some(100.0), false);
        }
        let mut caught = None;
        for i in 0..60 {
            let v = 100.0 + i as f64 * 1.0 + (lcg(&mut s) - 0.5) * 10.0;
            // Predicted by a tracking forecaster: residuals stay small.
            let sc = st.score(&cfg, v, Some(v - 0.5), false);
            if sc.score >= 1.0 {
                caught = Some(i);
                break;
            }
        }
        let at = caught.expect("ramp caught");
        assert!(at <= 20, "caught after {at} steps");
    }

    #[test]
    fn likelihood_ignores_routine_spikes_but_flags_a_new_regime() {
        let mut cfg = Config::default().anomaly;
        cfg.likelihood_limit = 2.0;
        cfg.likelihood_only = true;
        let mut st = AnomalyState::default();
        let mut s = 21u64;
        let mut spike_scores: f64 = 0.0;
        // Noise with a spike every 50 steps: the raw score fires on every spike.
        for i in 0..5000 {
            let spike = if i % 50 == 0 { 60.0 } else { 0.0 };
            let v = 100.0 + (lcg(&mut s) - 0.5) * 10.0 + spike;
            let sc = st.score(&cfg, v, Some(100.0), false);
            if i > 3000 {
                spike_scores = spike_scores.max(sc.score);
            }
        }
        assert!(spike_scores < 1.0, "routine spikes scored {spike_scores}");
        // A new regime: the level jumps and stays.
        let mut flagged = false;
        for _ in 0..20 {
            let v = 160.0 + (lcg(&mut s) - 0.5) * 10.0;
            flagged |= st.score(&cfg, v, Some(100.0), false).score >= 1.0;
        }
        assert!(flagged);
    }

    #[test]
    fn gate_mutes_during_cooldown() {
        let g = AlertGate {
            threshold: 1.0,
            cooldown_steps: 10,
        };
        let mut last = None;
        assert!(g.check(2.0, 100, &mut last));
        assert!(!g.check(2.0, 105, &mut last));
        assert!(!g.check(0.5, 120, &mut last));
        assert!(g.check(2.0, 110, &mut last));
    }
}
