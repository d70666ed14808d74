//! SVG plots written by hand (no plotting dependency): the percentile spectrum of each latency
//! histogram, and p50/p99/max per interval over time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use crate::run::IntervalPoint;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 450.0;
const MARGIN_LEFT: f64 = 80.0;
const MARGIN_RIGHT: f64 = 150.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 50.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// One line of a chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// How the x axis maps values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    Linear,
    /// Percentile axis: x is `1 / (1 - quantile)`, drawn logarithmically and labelled in
    /// percentiles (the usual HdrHistogram spectrum view).
    Percentile,
}

/// (x, latency in us) points of the percentile spectrum, from p0 to the max.
pub fn spectrum_points(hist: &Histogram<u64>) -> Vec<(f64, f64)> {
    if hist.is_empty() {
        return Vec::new();
    }
    let mut points = Vec::new();
    for v in hist.iter_quantiles(1) {
        let q = v.quantile_iterated_to();
        if q >= 1.0 {
            break;
        }
        points.push((
            1.0 / (1.0 - q),
            hist.highest_equivalent(v.value_iterated_to()) as f64,
        ));
    }
    let last_x = points.last().map_or(1.0, |p| p.0 * 10.0);
    points.push((last_x.max(10.0), hist.max() as f64));
    points
}

fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if v <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// Renders a line chart to an SVG string.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    x_axis: XAxis,
    series: &[Series<'_>],
) -> String {
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let all = series.iter().flat_map(|s| s.points.iter());
    let (x_max_raw, y_max_raw) = all.fold((1.0f64, 0.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let y_max = nice_ceiling(y_max_raw);
    let (x_min, x_max) = match x_axis {
        XAxis::Linear => (0.0, nice_ceiling(x_max_raw)),
        XAxis::Percentile => (0.0, x_max_raw.log10().ceil().max(1.0)),
    };
    let to_x = |x: f64| {
        let v = match x_axis {
            XAxis::Linear => x,
            XAxis::Percentile => x.max(1.0).log10(),
        };
        MARGIN_LEFT + (v - x_min) / (x_max - x_min) * plot_w
    };
    let to_y = |y: f64| MARGIN_TOP + plot_h - y / y_max * plot_h;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    // Axes and grid.
    for i in 0..=5 {
        let y_val = y_max * f64::from(i) / 5.0;
        let y = to_y(y_val);
        let _ = writeln!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            MARGIN_LEFT + plot_w
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            MARGIN_LEFT - 6.0,
            y + 4.0,
            fmt_num(y_val)
        );
    }
    let x_ticks: Vec<(f64, String)> = match x_axis {
        XAxis::Linear => (0..=5)
            .map(|i| {
                let v = x_max * f64::from(i) / 5.0;
                (v, fmt_num(v))
            })
            .collect(),
        XAxis::Percentile => (0..=x_max as i32)
            .map(|d| {
                let x = 10f64.powi(d);
                let label = if d == 0 {
                    "0%".to_owned()
                } else {
                    format!("{}%", 100.0 - 100.0 / x)
                };
                (x, label)
            })
            .collect(),
    };
    for (v, label) in x_ticks {
        let x = to_x(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{MARGIN_TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/>"##,
            MARGIN_TOP + plot_h
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            MARGIN_TOP + plot_h + 16.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        MARGIN_LEFT + plot_w / 2.0,
        HEIGHT - 10.0,
        escape(x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        MARGIN_TOP + plot_h / 2.0,
        MARGIN_TOP + plot_h / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if !s.points.is_empty() {
            let mut path = String::new();
            for (x, y) in &s.points {
                let _ = write!(path, "{:.1},{:.1} ", to_x(*x), to_y(*y));
            }
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"#,
                path.trim_end()
            );
        }
        let ly = MARGIN_TOP + 16.0 + 18.0 * i as f64;
        let lx = MARGIN_LEFT + plot_w + 12.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/>"#,
            lx + 18.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            ly + 4.0,
            escape(s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes `latency-spectrum.svg` and `latency-over-time.svg` into `dir`; returns their paths.
pub fn write_plots(
    dir: &Path,
    title: &str,
    produce: &Histogram<u64>,
    end_to_end: &Histogram<u64>,
    timeline: &[IntervalPoint],
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut spectrum = vec![Series {
        name: "produce->ack",
        points: spectrum_points(produce),
    }];
    if !end_to_end.is_empty() {
        spectrum.push(Series {
            name: "end-to-end",
            points: spectrum_points(end_to_end),
        });
    }
    let spectrum_svg = line_chart(
        &format!("Latency by percentile: {title}"),
        "percentile",
        "latency (us)",
        XAxis::Percentile,
        &spectrum,
    );
    let pick = |f: fn(&IntervalPoint) -> u64| {
        timeline
            .iter()
            .map(|p| (p.at_s, f(p) as f64))
            .collect::<Vec<_>>()
    };
    let mut over_time = vec![
        Series {
            name: "produce p50",
            points: pick(|p| p.produce.p50_us),
        },
        Series {
            name: "produce p99",
            points: pick(|p| p.produce.p99_us),
        },
        Series {
            name: "produce max",
            points: pick(|p| p.produce.max_us),
        },
    ];
    if timeline.iter().any(|p| p.end_to_end.count > 0) {
        over_time.push(Series {
            name: "e2e p99",
            points: pick(|p| p.end_to_end.p99_us),
        });
    }
    let time_svg = line_chart(
        &format!("Latency over time: {title}"),
        "seconds into the measured window",
        "latency (us)",
        XAxis::Linear,
        &over_time,
    );
    let spectrum_path = dir.join("latency-spectrum.svg");
    let time_path = dir.join("latency-over-time.svg");
    std::fs::write(&spectrum_path, spectrum_svg)?;
    std::fs::write(&time_path, time_svg)?;
    Ok(vec![spectrum_path, time_path])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::new_histogram;

    #[test]
    fn spectrum_is_monotonic_and_ends_at_max() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let points = spectrum_points(&h);
        assert!(points.len() > 10);
        assert!(points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(points.last().unwrap().1, h.max() as f64);
    }

    #[test]
    fn chart_is_well_formed_svg() {
        let svg = line_chart(
            "t <1>",
            "x",
            "y",
            XAxis::Linear,
            &[Series {
                name: "a&b",
                points: vec![(0.0, 1.0), (2.0, 30.0)],
            }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("t &lt;1&gt;") && svg.contains("a&amp;b"));
        assert_eq!(svg.matches("<polyline").count(), 1);
    }
}
