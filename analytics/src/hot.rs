//! Hot-partition detection: exact per-partition rates, k-of-n hysteresis, cooldown, and a gated trend
//! projection that warns before a ramp crosses capacity.
//!
//! The projection fits a least-squares line to the last `warn_window` rates. It only warns when the slope is
//! statistically clear (t-statistic), both halves of the window rise (so a single step, which fits a steep
//! line, does not count), the level is already a sizeable fraction of capacity, and the line crosses
//! capacity within `warn_horizon_s`; the warning itself needs k of n agreeing ticks. These gates are what
//! keeps precision up on noisy and bursty traffic.

use crate::config::HotConfig;
use crate::ring::Ring;

/// What happened to a partition at a tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HotKind {
    /// The trend projection expects capacity to be crossed in `eta_s` seconds.
    Warning {
        /// Projected seconds until the fitted line reaches capacity.
        eta_s: f64,
    },
    /// The rate is above capacity (k of n ticks).
    Hot,
    /// Back to normal (below `clear_frac` x capacity long enough, or the warning's trend is gone).
    Cleared,
}

/// Detection phase of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Nothing flagged.
    #[default]
    Normal,
    /// Warned ahead of a projected crossing.
    Warning,
    /// Above capacity.
    Hot,
}

/// Per-partition hysteresis state (16 bytes).
#[derive(Debug, Clone, Copy, Default)]
pub struct HotState {
    above_bits: u16,
    warn_bits: u16,
    below_run: u16,
    phase: Phase,
    cooldown_until_s: u64,
}

/// Least-squares slope, fitted value at the newest point, and the slope's t-statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendFit {
    /// Units per step.
    pub slope: f64,
    /// Fitted value at the newest sample.
    pub fitted_now: f64,
    /// slope / standard error of the slope.
    pub t_stat: f64,
}

/// Fits a line to the `window` newest values of `history` (needs at least 4).
pub fn fit_trend(history: &Ring, window: u32) -> Option<TrendFit> {
    let w = window.min(history.len());
    if w < 4 {
        return None;
    }
    fit_range(history, w - 1, 0)
}

/// Fit over ages `oldest_age..=newest_age` (age 0 is the newest value).
fn fit_range(history: &Ring, oldest_age: u32, newest_age: u32) -> Option<TrendFit> {
    let n = (oldest_age - newest_age + 1) as f64;
    let x_mean = (n - 1.0) / 2.0;
    let mut y_sum = 0.0;
    for age in newest_age..=oldest_age {
        y_sum += history.get(age)? as f64;
    }
    let y_mean = y_sum / n;
    let mut sxy = 0.0;
    let mut sxx = 0.0;
    for age in newest_age..=oldest_age {
        let x = (oldest_age - age) as f64 - x_mean;
        sxy += x * (history.get(age)? as f64 - y_mean);
        sxx += x * x;
    }
    let slope = sxy / sxx;
    let mut rss = 0.0;
    for age in newest_age..=oldest_age {
        let x = (oldest_age - age) as f64 - x_mean;
        let r = history.get(age)? as f64 - y_mean - slope * x;
        rss += r * r;
    }
    let se = (rss / (n - 2.0) / sxx).sqrt();
    let t_stat = if se > 0.0 {
        slope / se
    } else if slope > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    Some(TrendFit {
        slope,
        fitted_now: y_mean + slope * x_mean,
        t_stat,
    })
}

fn k_of_n(bits: u16, n: u32) -> u32 {
    let mask = if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
    (bits & mask).count_ones()
}

impl HotState {
    /// Current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Gated projection: seconds until capacity is crossed, if the trend is convincing.
    fn projected_eta(cfg: &HotConfig, rate: f64, history: &Ring) -> Option<f64> {
        let cap = cfg.partition_capacity_msgs_per_s;
        if rate < cfg.warn_min_level_frac * cap {
            return None;
        }
        let fit = fit_trend(history, cfg.warn_window)?;
        if fit.slope <= 0.0 || fit.t_stat < cfg.warn_t_min {
            return None;
        }
        let w = cfg.warn_window.min(history.len());
        let half = w / 2;
        let older = fit_range(history, w - 1, half)?;
        let newer = fit_range(history, half - 1, 0)?;
        if older.slope < 0.3 * fit.slope || newer.slope < 0.3 * fit.slope {
            return None;
        }
        let eta = (cap - fit.fitted_now) / fit.slope;
        (0.0..=cfg.warn_horizon_s).contains(&eta).then_some(eta)
    }

    /// Advances one tick with the exact `rate` (msgs/s) whose value is already the newest in `history`.
    pub fn tick(
        &mut self,
        cfg: &HotConfig,
        now_s: u64,
        rate: f64,
        history: &Ring,
    ) -> Option<HotKind> {
        let cap = cfg.partition_capacity_msgs_per_s;
        let above = rate > cap;
        self.above_bits = (self.above_bits << 1) | above as u16;
        if rate < cfg.clear_frac * cap {
            self.below_run = self.below_run.saturating_add(1);
        } else {
            self.below_run = 0;
        }
        let hot_now = k_of_n(self.above_bits, cfg.hot_n) >= cfg.hot_k;
        let in_cooldown = now_s < self.cooldown_until_s;
        match self.phase {
            Phase::Hot => {
                if self.below_run as u32 >= cfg.clear_ticks {
                    self.phase = Phase::Normal;
                    self.warn_bits = 0;
                    self.cooldown_until_s = now_s + cfg.cooldown_s;
                    return Some(HotKind::Cleared);
                }
                None
            }
            Phase::Normal | Phase::Warning => {
                if hot_now && !in_cooldown {
                    self.phase = Phase::Hot;
                    self.below_run = 0;
                    return Some(HotKind::Hot);
                }
                let eta = Self::projected_eta(cfg, rate, history);
                self.warn_bits = (self.warn_bits << 1) | eta.is_some() as u16;
                let warn_votes = k_of_n(self.warn_bits, cfg.warn_n);
                match (self.phase, eta) {
                    (Phase::Normal, Some(eta)) if warn_votes >= cfg.warn_k && !in_cooldown => {
                        self.phase = Phase::Warning;
                        Some(HotKind::Warning { eta_s: eta })
                    }
                    (Phase::Warning, _)
                        if warn_votes == 0 && self.below_run as u32 >= cfg.clear_ticks =>
                    {
                        self.phase = Phase::Normal;
                        self.cooldown_until_s = now_s + cfg.cooldown_s;
                        Some(HotKind::Cleared)
                    }
                    _ => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn drive(rates: &[f64]) -> Vec<(u64, HotKind)> {
        let cfg = Config::default().hot;
        let mut st = HotState::default();
        let mut ring = Ring::new(32);
        let mut out = Vec::new();
        for (t, r) in rates.iter().enumerate() {
            ring.push(*r as f32);
            if let Some(k) = st.tick(&cfg, t as u64, *r, &ring) {
                out.push((t as u64, k));
            }
        }
        out
    }

    #[test]
    fn step_is_hot_after_two_ticks() {
        let mut rates = vec![5000.0; 100];
        rates.extend(vec![12_000.0; 50]);
        let ev = drive(&rates);
        assert_eq!(ev, vec![(101, HotKind::Hot)]);
    }

    #[test]
    fn oscillation_around_capacity_does_not_flap() {
        // Alternating just above and just below capacity for 10 minutes: one Hot event, never cleared.
        let rates: Vec<f64> = (0..600)
            .map(|i| if i % 2 == 0 { 10_100.0 } else { 9_900.0 })
            .collect();
        let ev = drive(&rates);
        assert_eq!(ev.len(), 1, "{ev:?}");
    }

    #[test]
    fn ramp_is_warned_before_crossing_and_step_below_capacity_is_not() {
        // 300 s ramp from 3,000 to 15,000 msgs/s: crosses 10,000 at t = 100 + 175.
        let mut rates = vec![3000.0; 100];
        rates.extend((0..300).map(|i| 3000.0 + 40.0 * i as f64));
        let ev = drive(&rates);
        let (t, kind) = ev[0];
        assert!(matches!(kind, HotKind::Warning { .. }), "{ev:?}");
        assert!(t + 30 <= 275, "warned at {t}");
        // A step from 5,000 to 8,000 stays below capacity: no event at all.
        let mut rates = vec![5000.0; 100];
        rates.extend(vec![8000.0; 100]);
        assert_eq!(drive(&rates), vec![]);
    }
}
