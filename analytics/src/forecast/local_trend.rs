//! Local linear trend by discounted least squares, restarted by a CUSUM change-point test.
//!
//! The fit weights the sample of age `x` (0 = newest) by `DISCOUNT^x` and solves the weighted least
//! squares line `y = a + b * x` from five running sums, so an update costs a handful of multiplications and
//! the state is fixed. Three additions make it a forecaster for rates that mostly hold steady but sometimes
//! jump, ramp or drift:
//!
//! * **Slope shrinkage.** The fitted slope is multiplied by `t² / (t² + SLOPE_SHRINK)`, where `t` is its
//!   t-statistic (slope over its standard error). Without a trend the slope is mostly noise and is shrunk
//!   towards zero, which leaves a plain discounted mean; on a ramp `t` is large and the slope is kept.
//!   Forecasts `h` steps ahead damp the slope by `DAMPING` per step.
//! * **Change-point restart.** A two-sided CUSUM (Page's test) runs on the one-step residuals standardised
//!   by their rolling mean absolute value (times `sqrt(pi / 2)`, the Gaussian ratio of sd to MAE, and
//!   widened by the level's own uncertainty). When either side passes `CUSUM_H`, or one residual is beyond
//!   `JUMP_Z` standard deviations, the fit restarts on the samples since that side of the CUSUM left zero
//!   (the test's own estimate of the change time), read back from the history ring. After a restart the
//!   residual scale is learnt again (running mean, then the rolling weight), because a new level often has
//!   a new noise level too (Poisson noise grows with the rate).
//! * **Running-mean start.** With few samples since a restart the weights are nearly equal, so the level is
//!   close to the mean of the samples since the change: the averaging a causal forecaster can do there.

use crate::ring::Ring;

/// Weight of a sample one step older than another (effective window about 50 samples).
pub const DISCOUNT: f32 = 0.98;
/// CUSUM allowance, in residual standard deviations.
pub const CUSUM_K: f32 = 1.0;
/// CUSUM decision threshold, in residual standard deviations.
pub const CUSUM_H: f32 = 4.0;
/// A single residual this many standard deviations away restarts the fit at once.
pub const JUMP_Z: f32 = 8.0;
/// Slope shrinkage constant: the slope keeps the share `t² / (t² + SLOPE_SHRINK)` of its fitted value.
pub const SLOPE_SHRINK: f32 = 4.0;
/// Per-step damping of the slope when forecasting ahead.
pub const DAMPING: f32 = 0.98;
/// Rolling weight of a new absolute residual in the scale, once the running mean has settled.
const SCALE_ALPHA: f32 = 0.02;
/// Residual scale samples needed before the change-point test runs.
const SCALE_MIN_SAMPLES: u8 = 2;
/// Smallest residual standard deviation, relative to the magnitude of the value or forecast.
const SD_FLOOR_REL: f32 = 1e-5;
/// Standard deviation over mean absolute deviation for Gaussian noise, `sqrt(pi / 2)`.
const SD_PER_MAE: f32 = 1.253_314_1;

/// State of the discounted least-squares local trend with CUSUM restart (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LocalTrend {
    /// Sum of weights.
    s0: f32,
    /// Weighted sum of ages.
    s1: f32,
    /// Weighted sum of squared ages.
    s2: f32,
    /// Weighted sum of values.
    sy: f32,
    /// Weighted sum of age x value.
    sxy: f32,
    /// Rolling mean absolute one-step residual since the last restart.
    scale: f32,
    /// Upper and lower CUSUM statistics, in standard deviations.
    cusum_up: f32,
    cusum_down: f32,
    /// Samples since each CUSUM side left zero (saturating).
    run_up: u8,
    run_down: u8,
    /// Residuals in `scale` since the last restart (saturating).
    scale_n: u8,
    /// Restarts so far (saturating; for tests and diagnostics).
    restarts: u8,
}

impl LocalTrend {
    /// Learns `value`. `history` holds the values before it (newest at age 0); it is read only on a
    /// restart, to refit on the samples since the detected change.
    pub fn update(&mut self, value: f32, history: &Ring) {
        if self.s0 <= 0.0 {
            self.add(value);
            return;
        }
        let predicted = self.predict(1) as f32;
        let residual = value - predicted;
        let ready = self.scale_n >= SCALE_MIN_SAMPLES;
        // After a stretch of identical values (a stall at zero) the scale is zero: a floor relative to the
        // magnitude keeps the first different value a jump without treating rounding as one.
        let floor = SD_FLOOR_REL * value.abs().max(predicted.abs()) + f32::MIN_POSITIVE;
        let sd = (SD_PER_MAE * self.scale * (1.0 + 1.0 / self.s0).sqrt()).max(floor);
        let restart_len = if ready {
            let z = residual / sd;
            if z.abs() > JUMP_Z {
                Some(1)
            } else {
                self.cusum_up = step_cusum(self.cusum_up, z, &mut self.run_up);
                self.cusum_down = step_cusum(self.cusum_down, -z, &mut self.run_down);
                if self.cusum_up > CUSUM_H {
                    Some(self.run_up)
                } else if self.cusum_down > CUSUM_H {
                    Some(self.run_down)
                } else {
                    None
                }
            }
        } else {
            None
        };
        if let Some(len) = restart_len {
            self.restart(value, len, history);
            return;
        }
        self.add(value);
        // Clip the residual so one outlier does not inflate the scale for long.
        let clipped = if ready {
            residual.abs().min(4.0 * self.scale)
        } else {
            residual.abs()
        };
        self.scale_n = self.scale_n.saturating_add(1);
        let w = (1.0 / self.scale_n as f32).max(SCALE_ALPHA);
        self.scale += w * (clipped - self.scale);
    }

    /// Forecast `horizon` steps after the last value (the slope shrunk, then damped per step).
    pub fn predict(&self, horizon: u32) -> f64 {
        let (level, slope) = self.level_and_slope();
        // sum of DAMPING^i for i = 1..=horizon
        let phi = DAMPING as f64;
        let reach = phi * (1.0 - phi.powi(horizon.min(1 << 16) as i32)) / (1.0 - phi);
        level + reach * slope
    }

    /// Fitted value at the newest sample and the shrunk slope per step forward.
    pub fn level_and_slope(&self) -> (f64, f64) {
        let s0 = self.s0 as f64;
        if s0 <= 0.0 {
            return (0.0, 0.0);
        }
        let mean_age = self.s1 as f64 / s0;
        let mean = self.sy as f64 / s0;
        let sxx = self.s2 as f64 - self.s1 as f64 * mean_age;
        let sd = (SD_PER_MAE * self.scale) as f64;
        if sxx <= f64::EPSILON * s0 || sd <= 0.0 {
            return (mean, 0.0);
        }
        // Age runs backwards in time, so the slope per step forward is minus the fitted one.
        let slope = -(self.sxy as f64 - self.s1 as f64 * mean) / sxx;
        let t2 = slope * slope * sxx / (sd * sd);
        let shrunk = slope * t2 / (t2 + SLOPE_SHRINK as f64);
        (mean + shrunk * mean_age, shrunk)
    }

    /// Restarts so far (saturating at 255).
    pub fn restarts(&self) -> u8 {
        self.restarts
    }

    /// Ages every sample by one step and adds `value` at age 0.
    fn add(&mut self, value: f32) {
        let d = DISCOUNT;
        self.s2 = d * (self.s2 + 2.0 * self.s1 + self.s0);
        self.s1 = d * (self.s1 + self.s0);
        self.sxy = d * (self.sxy + self.sy);
        self.s0 = d * self.s0 + 1.0;
        self.sy = d * self.sy + value;
    }

    /// Refits on the last `len` samples: `len - 1` from `history` (as far as it reaches) and `value`.
    fn restart(&mut self, value: f32, len: u8, history: &Ring) {
        let older = (len.max(1) as u32 - 1).min(history.len());
        *self = LocalTrend {
            restarts: self.restarts.saturating_add(1),
            ..LocalTrend::default()
        };
        for age in (0..older).rev() {
            if let Some(v) = history.get(age) {
                self.add(v);
            }
        }
        self.add(value);
    }
}

/// One step of a one-sided CUSUM on `z`; `run` counts the samples since the statistic left zero.
fn step_cusum(stat: f32, z: f32, run: &mut u8) -> f32 {
    let next = (stat + z - CUSUM_K).max(0.0);
    *run = if next <= 0.0 {
        0
    } else if stat <= 0.0 {
        1
    } else {
        run.saturating_add(1)
    };
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic standard normal draws (splitmix64 + Box-Muller).
    struct Normal(u64);

    impl Normal {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }

        fn next(&mut self) -> f32 {
            let u1 = self.uniform().max(1e-300);
            let u2 = self.uniform();
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        }
    }

    /// Feeds `values` and returns the estimator and its one-step forecast after every sample.
    fn run(values: &[f32]) -> (LocalTrend, Vec<f64>) {
        let mut lt = LocalTrend::default();
        let mut ring = Ring::new(32);
        let mut preds = Vec::with_capacity(values.len());
        for v in values {
            lt.update(*v, &ring);
            ring.push(*v);
            preds.push(lt.predict(1));
        }
        (lt, preds)
    }

    #[test]
    fn constant_with_gaussian_noise_converges_to_the_mean() {
        let mut n = Normal(5);
        let values: Vec<f32> = (0..3000).map(|_| 1000.0 + 30.0 * n.next()).collect();
        let (lt, preds) = run(&values);
        // The discounted mean of ~50 samples has sd 30 / sqrt(99) ~ 3; the shrunk slope adds little.
        let worst = preds[500..]
            .iter()
            .map(|p| (p - 1000.0).abs())
            .fold(0.0, f64::max);
        assert!(worst < 15.0, "worst deviation {worst}");
        let mean_abs = preds[500..].iter().map(|p| (p - 1000.0).abs()).sum::<f64>() / 2500.0;
        assert!(mean_abs < 4.0, "mean deviation {mean_abs}");
        assert!(lt.restarts() <= 3, "false restarts: {}", lt.restarts());
        // Far ahead the damped slope stays small.
        assert!((lt.predict(60) - 1000.0).abs() < 20.0);
    }

    #[test]
    fn step_of_known_size_is_tracked_within_a_few_samples() {
        let mut n = Normal(9);
        let values: Vec<f32> = (0..800)
            .map(|t| if t < 500 { 1000.0 } else { 1300.0 } + 30.0 * n.next())
            .collect();
        let (lt, preds) = run(&values);
        assert!(lt.restarts() >= 1);
        // A 10 sd step: within 3 samples the forecast is nearer the new level than the old one, and
        // within 30 samples it is within 5 sd of the mean of 30 samples (sd 30 / sqrt(30) ~ 5.5).
        assert!(preds[502] > 1150.0, "{}", preds[502]);
        for p in &preds[530..] {
            assert!((p - 1300.0).abs() < 30.0, "{p}");
        }
    }

    #[test]
    fn small_step_is_found_by_the_cusum() {
        let mut n = Normal(13);
        // A 2 sd step: no single residual is extreme, the accumulated sum is.
        let values: Vec<f32> = (0..1000)
            .map(|t| if t < 600 { 500.0 } else { 560.0 } + 30.0 * n.next())
            .collect();
        let (_, preds) = run(&values);
        for p in &preds[650..] {
            assert!((p - 560.0).abs() < 20.0, "{p}");
        }
    }

    #[test]
    fn ramp_slope_is_kept_and_extrapolated() {
        let mut n = Normal(21);
        // Slope 5 per step, noise sd 20: after the warm-up the slope is highly significant.
        let values: Vec<f32> = (0..400)
            .map(|t| 100.0 + 5.0 * t as f32 + 20.0 * n.next())
            .collect();
        let (lt, _) = run(&values);
        let (level, slope) = lt.level_and_slope();
        assert!((slope - 5.0).abs() < 0.5, "slope {slope}");
        assert!(
            (level - (100.0 + 5.0 * 399.0)).abs() < 20.0,
            "level {level}"
        );
        // Ten steps ahead: damped reach sum(0.98^i, i = 1..=10) ~ 8.9 steps of slope.
        let ahead = lt.predict(10);
        assert!((ahead - (level + 8.9 * slope)).abs() < 2.0, "{ahead}");
    }

    #[test]
    fn noise_free_constant_then_step_restarts_at_once() {
        // No noise: the residual scale is only rounding, so nothing restarts and the forecast is the
        // constant; the first different value (a stall ending, say) is a jump against the relative floor.
        let mut values: Vec<f32> = vec![7.0; 100];
        values.extend([0.0f32; 100]);
        values.push(2000.0);
        let (lt, preds) = run(&values[..100]);
        assert_eq!(lt.restarts(), 0);
        assert!((preds[99] - 7.0).abs() < 1e-3);
        assert!((lt.predict(60) - 7.0).abs() < 1e-3);
        let (lt, preds) = run(&values);
        assert_eq!(
            lt.restarts(),
            2,
            "one restart into the stall, one out of it"
        );
        assert!(preds[199].abs() < 1e-3);
        assert_eq!(preds[200], 2000.0);
    }
}
