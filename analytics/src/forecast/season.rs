//! Season detection by autocorrelation on the bounded history, and the additive Holt-Winters state.

/// Finds the dominant period of `values` (oldest first) by autocorrelation, after removing a linear trend.
///
/// Returns the first local ACF peak in `[min_lag, max_lag]` whose value reaches both `acf_min` and 90% of
/// the highest peak (so a multiple of the true period is not preferred over the period itself).
/// `scratch` is reused to avoid allocating per call. At least two full periods must be present.
pub fn detect_period(
    values: &[f32],
    min_lag: u32,
    max_lag: u32,
    acf_min: f64,
    scratch: &mut Vec<f64>,
) -> Option<(u32, f64)> {
    let n = values.len();
    let max_lag = (max_lag as usize).min(n / 2);
    let min_lag = (min_lag as usize).max(2);
    if max_lag < min_lag + 2 {
        return None;
    }
    // Detrend with a least-squares line so a ramp does not look like a long season.
    let nf = n as f64;
    let x_mean = (nf - 1.0) / 2.0;
    let y_mean = values.iter().map(|v| *v as f64).sum::<f64>() / nf;
    let mut sxy = 0.0;
    let mut sxx = 0.0;
    for (i, v) in values.iter().enumerate() {
        let dx = i as f64 - x_mean;
        sxy += dx * (*v as f64 - y_mean);
        sxx += dx * dx;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    scratch.clear();
    scratch.extend(
        values
            .iter()
            .enumerate()
            .map(|(i, v)| *v as f64 - y_mean - slope * (i as f64 - x_mean)),
    );
    let denom: f64 = scratch.iter().map(|d| d * d).sum();
    if denom <= f64::EPSILON * nf {
        return None;
    }
    let acf = |lag: usize| -> f64 {
        let s: f64 = scratch[..n - lag]
            .iter()
            .zip(&scratch[lag..])
            .map(|(a, b)| a * b)
            .sum();
        s / denom * nf / (n - lag) as f64
    };
    // Local maxima of the ACF over the searched range.
    let mut prev2 = acf(min_lag - 1);
    let mut prev1 = acf(min_lag);
    let mut peaks: Vec<(usize, f64)> = Vec::new();
    for lag in min_lag + 1..=max_lag {
        let cur = acf(lag);
        if prev1 >= prev2 && prev1 > cur && prev1 >= acf_min {
            peaks.push((lag - 1, prev1));
        }
        prev2 = prev1;
        prev1 = cur;
    }
    let best = peaks.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    peaks
        .into_iter()
        .find(|p| p.1 >= 0.9 * best)
        .map(|(lag, a)| (lag as u32, a))
}

/// Additive Holt-Winters with a damped trend; the season is indexed by step number modulo the period.
#[derive(Debug, Clone)]
pub struct HoltWinters {
    period: u32,
    level: f32,
    trend: f32,
    season: Box<[f32]>,
}

const HW_ALPHA: f64 = 0.2;
const HW_BETA: f64 = 0.01;
const HW_GAMMA: f64 = 0.25;
const HW_PHI: f64 = 0.95;

impl HoltWinters {
    /// Initialises from `values` (oldest first) whose last element has step number `last_step`.
    /// Needs at least two full periods.
    pub fn init(period: u32, values: &[f32], last_step: u64) -> Option<Self> {
        let p = period as usize;
        let n = values.len();
        if p == 0 || n < 2 * p {
            return None;
        }
        let periods = (n / p).min(4);
        let start = n - periods * p;
        let mean_of = |k: usize| -> f64 {
            let s = start + k * p;
            values[s..s + p].iter().map(|v| *v as f64).sum::<f64>() / p as f64
        };
        let mut season = vec![0.0f32; p];
        let mut counts = vec![0u32; p];
        for k in 0..periods {
            let m = mean_of(k);
            for j in 0..p {
                let idx = start + k * p + j;
                let step = last_step + 1 + idx as u64 - n as u64;
                let slot = (step % period as u64) as usize;
                season[slot] += (values[idx] as f64 - m) as f32;
                counts[slot] += 1;
            }
        }
        for (s, c) in season.iter_mut().zip(&counts) {
            if *c > 0 {
                *s /= *c as f32;
            }
        }
        let last_mean = mean_of(periods - 1);
        let prev_mean = mean_of(periods - 2);
        Some(HoltWinters {
            period,
            level: last_mean as f32,
            trend: ((last_mean - prev_mean) / p as f64) as f32,
            season: season.into_boxed_slice(),
        })
    }

    /// The detected period in steps.
    pub fn period(&self) -> u32 {
        self.period
    }

    /// Learns from `value` observed at step number `step`.
    pub fn update(&mut self, value: f64, step: u64) {
        let slot = (step % self.period as u64) as usize;
        let s = self.season[slot] as f64;
        let level = self.level as f64;
        let trend = self.trend as f64;
        let new_level = HW_ALPHA * (value - s) + (1.0 - HW_ALPHA) * (level + HW_PHI * trend);
        let new_trend = HW_BETA * (new_level - level) + (1.0 - HW_BETA) * HW_PHI * trend;
        self.season[slot] = (HW_GAMMA * (value - new_level) + (1.0 - HW_GAMMA) * s) as f32;
        self.level = new_level as f32;
        self.trend = new_trend as f32;
    }

    /// Forecast for step number `target_step`, `h` steps after the last update.
    pub fn predict(&self, h: u32, target_step: u64) -> f64 {
        let mut damp = 0.0;
        let mut phi = 1.0;
        for _ in 0..h.min(256) {
            phi *= HW_PHI;
            damp += phi;
        }
        let slot = (target_step % self.period as u64) as usize;
        self.level as f64 + damp * self.trend as f64 + self.season[slot] as f64
    }

    /// Heap bytes owned.
    pub fn heap_bytes(&self) -> usize {
        self.season.len() * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(n: usize, period: f64, noise_seed: u64) -> Vec<f32> {
        let mut s = noise_seed;
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
                (100.0 + 20.0 * (2.0 * std::f64::consts::PI * i as f64 / period).sin() + 4.0 * u)
                    as f32
            })
            .collect()
    }

    #[test]
    fn finds_known_period_not_its_multiple() {
        let v = sine(1024, 48.0, 7);
        let mut scratch = Vec::new();
        let (p, acf) = detect_period(&v, 4, 512, 0.5, &mut scratch).expect("season");
        assert_eq!(p, 48);
        assert!(acf > 0.8, "acf {acf}");
    }

    #[test]
    fn white_noise_and_ramp_have_no_season() {
        let mut s = 3u64;
        let noise: Vec<f32> = (0..1024)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 40) as f32
            })
            .collect();
        let mut scratch = Vec::new();
        assert_eq!(detect_period(&noise, 4, 512, 0.5, &mut scratch), None);
        let ramp: Vec<f32> = (0..1024).map(|i| i as f32 * 3.0).collect();
        assert_eq!(detect_period(&ramp, 4, 512, 0.5, &mut scratch), None);
    }

    #[test]
    fn holt_winters_tracks_a_clean_season() {
        let v = sine(2000, 24.0, 1);
        let init = &v[..96];
        let mut hw = HoltWinters::init(24, init, 95).expect("init");
        let mut err = 0.0;
        let mut n = 0.0;
        for (i, y) in v.iter().enumerate().skip(96) {
            hw.update(*y as f64, i as u64);
            if i >= 500 && i + 12 < v.len() {
                err += (hw.predict(12, i as u64 + 12) - v[i + 12] as f64).abs();
                n += 1.0;
            }
        }
        let mae = err / n;
        assert!(mae < 4.0, "mae {mae}");
    }
}
