//! Numenta Anomaly Benchmark: loader and a port of its scorer (standard profile).
//!
//! Scorer (NAB `sweeper.py`): rows in the probationary period (min(floor(0.15 n), 0.15 * 5000)) are ignored;
//! inside a label window only the first detection counts, worth A_TP * sigma(position) where
//! sigma(x) = 2 / (1 + e^(5x)) - 1 and x = -(right - i + 1) / width; a detection outside windows is worth
//! A_FP * sigma((i - prevRight) / (prevWidth - 1)) after a window, or A_FP * -1 before any; every missed
//! window costs A_FN. Scores are summed over files and normalised between the null detector (no detection)
//! and the perfect one (a detection at every window start): 100 * (raw - null) / (perfect - null).

use std::path::{Path, PathBuf};

use anyhow::Context;

pub const A_TP: f64 = 1.0;
pub const A_FP: f64 = 0.11;
pub const A_FN: f64 = 1.0;

pub struct NabSeries {
    pub name: String,
    pub values: Vec<f64>,
    /// Label windows as inclusive row-index ranges.
    pub windows: Vec<(usize, usize)>,
}

/// Loads every labelled CSV under `dir/data` with its windows from `dir/labels/combined_windows.json`.
pub fn load(dir: &Path) -> anyhow::Result<Vec<NabSeries>> {
    let labels_path = dir.join("labels").join("combined_windows.json");
    let labels_text = std::fs::read_to_string(&labels_path)
        .with_context(|| format!("reading {}", labels_path.display()))?;
    let labels: serde_json::Value = serde_json::from_str(&labels_text)
        .with_context(|| format!("parsing {}", labels_path.display()))?;
    let obj = labels
        .as_object()
        .context("combined_windows.json is not an object")?;
    let mut names: Vec<&String> = obj.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let path: PathBuf = dir.join("data").join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut stamps = Vec::new();
        let mut values = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1) {
            let Some((ts, v)) = line.split_once(',') else {
                anyhow::bail!("{}: line {} has no comma", path.display(), i + 1);
            };
            let v: f64 = v
                .trim()
                .parse()
                .with_context(|| format!("{}: line {} value {v:?}", path.display(), i + 1))?;
            stamps.push(ts.trim().to_string());
            values.push(v);
        }
        let mut windows = Vec::new();
        for w in obj[name].as_array().context("window list")? {
            let pair = w.as_array().context("window pair")?;
            let start = pair
                .first()
                .and_then(|s| s.as_str())
                .context("window start")?;
            let end = pair.get(1).and_then(|s| s.as_str()).context("window end")?;
            // Label stamps carry microseconds ("2014-02-19 10:50:00.000000"); rows do not.
            let start = &start[..start.len().min(19)];
            let end = &end[..end.len().min(19)];
            let lo = stamps.iter().position(|s| s.as_str() >= start);
            let hi = stamps.iter().rposition(|s| s.as_str() <= end);
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if lo <= hi {
                    windows.push((lo, hi));
                }
            }
        }
        out.push(NabSeries {
            name: name.clone(),
            values,
            windows,
        });
    }
    Ok(out)
}

pub fn probationary_rows(n: usize) -> usize {
    ((0.15 * n as f64).floor() as usize).min((0.15 * 5000.0) as usize)
}

fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// Raw NAB score of one file for a detection vector, plus counts (tp, fp, fn).
pub fn score_file(
    n: usize,
    windows: &[(usize, usize)],
    detections: &[usize],
) -> (f64, usize, usize, usize) {
    let prob = probationary_rows(n);
    let mut score = 0.0;
    let mut detected = vec![false; windows.len()];
    let (mut tp, mut fp) = (0, 0);
    for &i in detections {
        if i < prob || i >= n {
            continue;
        }
        if let Some(w) = windows.iter().position(|&(lo, hi)| i >= lo && i <= hi) {
            if !detected[w] {
                detected[w] = true;
                let (lo, hi) = windows[w];
                let width = (hi - lo + 1) as f64;
                let pos = -((hi - i + 1) as f64) / width;
                score += A_TP * scaled_sigmoid(pos);
                tp += 1;
            }
        } else {
            let prev = windows
                .iter()
                .filter(|&&(_, hi)| hi < i)
                .max_by_key(|w| w.1);
            let unweighted = match prev {
                None => -1.0,
                Some(&(lo, hi)) => {
                    let width = (hi - lo + 1) as f64;
                    scaled_sigmoid((i - hi) as f64 / (width - 1.0).max(1.0))
                }
            };
            score += A_FP * unweighted;
            fp += 1;
        }
    }
    let missed = detected.iter().filter(|d| !**d).count();
    score -= A_FN * missed as f64;
    (score, tp, fp, missed)
}

/// Normalised score over all files for the given detections per file.
pub fn normalised(series: &[NabSeries], detections: &[Vec<usize>]) -> (f64, usize, usize, usize) {
    let mut raw = 0.0;
    let mut null = 0.0;
    let mut perfect = 0.0;
    let (mut tp, mut fp, mut fneg) = (0, 0, 0);
    for (s, d) in series.iter().zip(detections) {
        let n = s.values.len();
        let (r, a, b, c) = score_file(n, &s.windows, d);
        raw += r;
        tp += a;
        fp += b;
        fneg += c;
        null += score_file(n, &s.windows, &[]).0;
        let starts: Vec<usize> = s.windows.iter().map(|w| w.0).collect();
        perfect += score_file(n, &s.windows, &starts).0;
    }
    let denom = perfect - null;
    let norm = if denom > 0.0 {
        100.0 * (raw - null) / denom
    } else {
        f64::NAN
    };
    (norm, tp, fp, fneg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_scores_100_and_null_scores_0() {
        let series = vec![NabSeries {
            name: "x".into(),
            values: vec![0.0; 1000],
            windows: vec![(400, 499), (700, 799)],
        }];
        assert_eq!(normalised(&series, &[vec![]]).0, 0.0);
        assert!((normalised(&series, &[vec![400, 700]]).0 - 100.0).abs() < 1e-9);
        // A late detection is worth less than an early one; a false positive costs.
        let late = normalised(&series, &[vec![490, 790]]).0;
        assert!(late > 0.0 && late < 70.0, "{late}");
        let with_fp = normalised(&series, &[vec![400, 700, 300]]).0;
        assert!(with_fp < 100.0);
    }
}
