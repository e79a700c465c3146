//! Latency-by-percentile plots as SVG, for `--plot FILE.svg`.
//!
//! One chart per report: latency on a log y axis against the percentile on the x axis, which
//! is scaled as `1/(1-p)` on a log axis (HdrHistogram's plotters do the same), so 50%, 90%,
//! 99%, 99.9%, ... are evenly spaced and the tail, where the runs differ most, gets as much
//! room as the median. Each run is one curve (its label, e.g. an ack mode, in the legend);
//! the reference, a latency floor measured in the same run (4 KiB fdatasync, plus the
//! loopback round trip for runs through the network), is a thicker grey line with its own
//! legend entry.
//!
//! Invariants of the SVG written: exactly one `<polyline>` 2 px wide per curve, and one 4 px
//! wide for a non-empty reference (legend markers are rectangles, grid lines are `<line>`s,
//! the axes and tick marks the only other polylines, 1 px wide), every
//! curve's and the reference's label appears as text, and no point at percentile 1.0 (the
//! max, infinitely far right on this axis) or at a latency of 0 (off a log axis) is drawn;
//! the max is in the table and the JSON.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::hgrm::{percentile_rows, PERCENTILE_TICKS_PER_HALF_DISTANCE};
use crate::report::LatencySummary;

/// Plot size in pixels (width, height).
const PLOT_SIZE_PIXELS: (u32, u32) = (1000, 640);

/// The x axis ends at least at 99.9% (`1/(1-p)` = 1000), further if a curve goes further.
const X_AXIS_INVERSE_MIN: f64 = 1e3;

/// Above this many µs on the y axis, latencies are shown in ms.
const Y_AXIS_MILLISECONDS_FROM_US: f64 = 10_000.0;

/// Legend label of the reference drawn by `plot_svg`.
pub const REFERENCE_LABEL_FDATASYNC_PLUS_RTT: &str = "floor: 4 KiB fdatasync + 1 KiB RTT";

/// Legend label of the reference for runs without the network (the device alone).
pub const REFERENCE_LABEL_FDATASYNC: &str = "floor: 4 KiB fdatasync";

/// Curve colours: Okabe-Ito's seven (distinguishable with the common colour-vision
/// deficiencies), then five of Paul Tol's, so that the ten runs of a replicated report get
/// ten colours; they repeat after the last. None is grey, the reference's colour.
const CURVE_COLOURS: [RGBColor; 12] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(51, 34, 136),
    RGBColor(136, 34, 85),
    RGBColor(153, 153, 51),
    RGBColor(68, 170, 153),
    RGBColor(204, 102, 119),
];

const REFERENCE_COLOUR: RGBColor = RGBColor(150, 150, 150);

/// Percentile (0..1) and latency (µs) points.
pub type Points = Vec<(f64, f64)>;

/// Plots `curves` (label, points of percentile in 0..1 and latency in µs) and the
/// fdatasync + RTT `reference` into an SVG file at `path`.
#[allow(
    dead_code,
    reason = "for the default mode, whose floor always has the RTT; the subcommands label theirs"
)]
pub fn plot_svg(
    path: &Path,
    title: &str,
    curves: &[(String, Points)],
    reference: &[(f64, f64)],
) -> anyhow::Result<()> {
    plot_svg_with_reference(
        path,
        title,
        curves,
        REFERENCE_LABEL_FDATASYNC_PLUS_RTT,
        reference,
    )
}

/// `plot_svg` with the reference's legend label given.
pub fn plot_svg_with_reference(
    path: &Path,
    title: &str,
    curves: &[(String, Points)],
    reference_label: &str,
    reference: &[(f64, f64)],
) -> anyhow::Result<()> {
    let curves: Vec<(&str, Points)> = curves
        .iter()
        .map(|(label, points)| (label.as_str(), plottable(points)))
        .collect();
    let reference = plottable(reference);
    let bounds = Bounds::of(curves.iter().map(|(_, points)| points).chain([&reference]));
    draw(path, title, &curves, (reference_label, &reference), &bounds)
        .map_err(|error| anyhow::anyhow!("drawing {}: {error}", path.display()))
}

/// A histogram's percentile ticks (the rows of its `.hgrm` file) as (percentile, latency µs)
/// points, without the last one at percentile 1.0.
pub fn histogram_points(histogram: &Histogram<u64>) -> Points {
    percentile_rows(histogram, PERCENTILE_TICKS_PER_HALF_DISTANCE)
        .into_iter()
        .filter(|row| row.quantile < 1.0)
        .map(|row| (row.quantile, row.value as f64))
        .collect()
}

/// A latency summary's percentiles (p50 to p99.99, without the max) as points: how a
/// baseline, which keeps no histogram, becomes a reference line.
pub fn summary_points(summary: &LatencySummary) -> Points {
    vec![
        (0.5, summary.p50 as f64),
        (0.9, summary.p90 as f64),
        (0.99, summary.p99 as f64),
        (0.999, summary.p999 as f64),
        (0.9999, summary.p9999 as f64),
    ]
}

/// The points a log-log chart can show: percentile in [0, 1), latency above 0, both finite;
/// as (`1/(1-p)`, latency µs).
fn plottable(points: &[(f64, f64)]) -> Points {
    points
        .iter()
        .filter(|(quantile, latency_us)| {
            (0.0..1.0).contains(quantile) && latency_us.is_finite() && *latency_us > 0.0
        })
        .map(|&(quantile, latency_us)| (1.0 / (1.0 - quantile), latency_us))
        .collect()
}

/// The ranges of both axes, and the unit of the y axis.
#[derive(Debug, PartialEq)]
struct Bounds {
    /// Largest `1/(1-p)` on the x axis: a power of 10.
    inverse_max: f64,
    /// y axis range in µs.
    latency_us_min: f64,
    latency_us_max: f64,
    /// µs per unit shown on the y axis: 1 (µs) or 1000 (ms).
    us_per_unit: f64,
}

impl Bounds {
    fn of<'p>(point_sets: impl Iterator<Item = &'p Points>) -> Bounds {
        let mut inverse_max = X_AXIS_INVERSE_MIN;
        let mut latency_us_min = f64::INFINITY;
        let mut latency_us_max = 0.0_f64;
        for &(inverse, latency_us) in point_sets.flatten() {
            inverse_max = inverse_max.max(inverse);
            latency_us_min = latency_us_min.min(latency_us);
            latency_us_max = latency_us_max.max(latency_us);
        }
        if latency_us_max == 0.0 {
            // Nothing to draw: an empty chart from 1 µs to 1 ms.
            (latency_us_min, latency_us_max) = (1.0, 1000.0);
        }
        let us_per_unit = if latency_us_max >= Y_AXIS_MILLISECONDS_FROM_US {
            1000.0
        } else {
            1.0
        };
        Bounds {
            inverse_max: 10_f64.powf(inverse_max.log10().ceil()),
            // Margins of a fifth of a decade below and above.
            latency_us_min: latency_us_min / 1.6,
            latency_us_max: latency_us_max * 1.6,
            us_per_unit,
        }
    }

    /// The x axis's labelled points: 0%, 50%, 90%, 99%, ... up to `inverse_max`.
    fn x_key_points(&self) -> Vec<f64> {
        let mut points = vec![1.0, 2.0];
        let mut decade = 10.0;
        while decade <= self.inverse_max {
            points.push(decade);
            decade *= 10.0;
        }
        points
    }

    /// The y axis's labelled points, in its unit: 1, 2, 5, 10, 20, 50, ... within the range.
    fn y_key_points(&self) -> Vec<f64> {
        let (low, high) = (
            self.latency_us_min / self.us_per_unit,
            self.latency_us_max / self.us_per_unit,
        );
        let mut decade = 10_f64.powf(low.log10().floor());
        let mut points = Vec::new();
        while decade <= high {
            for step in [1.0, 2.0, 5.0] {
                let point = decade * step;
                if (low..=high).contains(&point) {
                    points.push(point);
                }
            }
            decade *= 10.0;
        }
        points
    }

    fn y_unit(&self) -> &'static str {
        if self.us_per_unit == 1.0 {
            "µs"
        } else {
            "ms"
        }
    }
}

/// "99.9%" for `1/(1-p)` = 1000: as many decimals as the percentile needs at that decade.
fn percentile_label(inverse: f64) -> String {
    let percent = 100.0 * (1.0 - 1.0 / inverse);
    let decimals = (inverse.log10().round() - 2.0).max(0.0);
    // At most 16 decades fit in an f64's precision, so the cast cannot lose anything.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let decimals = decimals as usize;
    format!("{percent:.decimals$}%")
}

/// A latency in the y axis's unit, without trailing zeros: "0.5", "20", "1500".
fn latency_label(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(
    path: &Path,
    title: &str,
    curves: &[(&str, Points)],
    reference: (&str, &Points),
    bounds: &Bounds,
) -> DrawResult {
    let root = SVGBackend::new(path, PLOT_SIZE_PIXELS).into_drawing_area();
    root.fill(&WHITE)?;
    let unit = bounds.us_per_unit;
    let x_range = (1.0..bounds.inverse_max)
        .log_scale()
        .with_key_points(bounds.x_key_points());
    let y_range = (bounds.latency_us_min / unit..bounds.latency_us_max / unit)
        .log_scale()
        .with_key_points(bounds.y_key_points());
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .margin_right(44)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc(format!("latency ({})", bounds.y_unit()))
        .x_label_formatter(&|inverse| percentile_label(*inverse))
        .y_label_formatter(&|value| latency_label(*value))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;

    let (reference_label, reference_points) = reference;
    if !reference_points.is_empty() {
        let style = REFERENCE_COLOUR.stroke_width(4);
        let points = reference_points.iter().map(|&(x, y)| (x, y / unit));
        chart
            .draw_series(LineSeries::new(points, style))?
            .label(reference_label)
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 2), (x + 18, y + 2)], REFERENCE_COLOUR.filled())
            });
    }
    for (index, (label, points)) in curves.iter().enumerate() {
        let colour = CURVE_COLOURS[index % CURVE_COLOURS.len()];
        let points = points.iter().map(|&(x, y)| (x, y / unit));
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 2), (x + 18, y + 2)], colour.filled()));
    }
    chart
        .configure_series_labels()
        // Latency rises with the percentile, so the lower right corner is the emptiest.
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::new_histogram;

    /// Checks that every element is closed, in order: `<a ...>...</a>` or `<a .../>`, with
    /// the prolog and comments skipped. Enough to catch a truncated or malformed file.
    fn assert_xml_balanced(text: &str) {
        let mut open: Vec<String> = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find('<') {
            let end = rest[start..].find('>').expect("unterminated tag") + start;
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop().as_deref(), Some(name.trim()), "closing {name}");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("tag name");
                open.push(name.to_owned());
            }
        }
        assert!(open.is_empty(), "unclosed: {open:?}");
    }

    fn histogram_of(base_us: u64) -> Histogram<u64> {
        let mut histogram = new_histogram();
        for index in 0..10_000 {
            histogram.record(base_us + index % 100).unwrap();
        }
        histogram.record(base_us * 20).unwrap();
        histogram
    }

    /// Polylines of the given stroke width. The axes and tick marks are polylines of width 1;
    /// curves are drawn 2 wide and the reference 4 wide, so these counts are exact.
    fn polylines_of_width(svg: &str, width: u32) -> usize {
        let attribute = format!("stroke-width=\"{width}\"");
        svg.split("<polyline")
            .skip(1)
            .filter(|element| {
                element
                    .split("/>")
                    .next()
                    .is_some_and(|tag| tag.contains(&attribute))
            })
            .count()
    }

    // Three curves and a reference: the SVG is well formed, has exactly one data polyline per
    // curve and one for the reference, and every label is in its text.
    #[test]
    fn one_polyline_per_curve_and_the_reference_with_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.svg");
        let curves: Vec<(String, Points)> = [("async", 100), ("semi-sync", 200), ("acks=1", 300)]
            .iter()
            .map(|&(label, base_us)| (label.to_owned(), histogram_points(&histogram_of(base_us))))
            .collect();
        let reference = summary_points(&LatencySummary {
            p50: 90,
            p90: 95,
            p99: 120,
            p999: 300,
            p9999: 900,
            max: 2000,
        });
        plot_svg(&path, "replicated_qd1 (direct)", &curves, &reference).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.trim_start().starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        assert_xml_balanced(&svg);
        assert_eq!(polylines_of_width(&svg, 2), 3, "{svg}");
        assert_eq!(polylines_of_width(&svg, 4), 1, "{svg}");
        let other = svg.matches("<polyline").count() - 4;
        assert_eq!(
            polylines_of_width(&svg, 1),
            other,
            "only axes and ticks besides: {svg}"
        );
        assert_eq!(svg.matches("<path").count(), 0, "{svg}");
        for label in [
            "async",
            "semi-sync",
            "acks=1",
            REFERENCE_LABEL_FDATASYNC_PLUS_RTT,
        ] {
            assert!(
                svg.contains(&format!(">\n{label}\n<")) || svg.contains(&format!(">{label}<")),
                "label {label} missing:\n{svg}"
            );
        }
        for tick in ["50%", "90%", "99%", "99.9%", "99.99%"] {
            assert!(svg.contains(tick), "tick {tick} missing");
        }
        assert!(svg.contains("latency (µs)"), "values up to 6 ms stay in µs");
        assert!(svg.contains("replicated_qd1 (direct)"));
    }

    // Without a reference there is one polyline per curve; latencies of 10 ms and more are
    // shown in ms.
    #[test]
    fn no_reference_and_a_millisecond_axis() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.svg");
        let curves = vec![("sync".to_owned(), histogram_points(&histogram_of(5_000)))];
        plot_svg_with_reference(&path, "t", &curves, REFERENCE_LABEL_FDATASYNC, &[]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_xml_balanced(&svg);
        assert_eq!(polylines_of_width(&svg, 2), 1, "{svg}");
        assert_eq!(polylines_of_width(&svg, 4), 0, "{svg}");
        assert!(svg.contains("latency (ms)"));
        assert!(!svg.contains(REFERENCE_LABEL_FDATASYNC));
    }

    // Histogram points: percentiles rise from 0 to below 1, latencies never fall, and the
    // max (percentile 1.0) is left out; points a log chart cannot show are filtered.
    #[test]
    fn points_from_a_histogram() {
        let histogram = histogram_of(100);
        let points = histogram_points(&histogram);
        assert_eq!(points[0], (0.0, 100.0));
        assert!(points.iter().all(|&(quantile, _)| quantile < 1.0));
        assert!(points
            .windows(2)
            .all(|pair| pair[0].0 <= pair[1].0 && pair[0].1 <= pair[1].1));
        assert!(points.last().unwrap().0 > 0.999);
        assert!(histogram_points(&new_histogram()).is_empty());
        let filtered = plottable(&[
            (0.5, 10.0),
            (1.0, 20.0),
            (0.9, 0.0),
            (-0.1, 5.0),
            (0.99, f64::NAN),
        ]);
        assert_eq!(filtered, [(2.0, 10.0)]);
    }

    #[test]
    fn axis_labels_and_bounds() {
        let labels: Vec<String> = [1.0, 2.0, 10.0, 100.0, 1e3, 1e4, 1e5]
            .iter()
            .map(|&inverse| percentile_label(inverse))
            .collect();
        assert_eq!(
            labels,
            ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        );
        assert_eq!(latency_label(0.5), "0.5");
        assert_eq!(latency_label(20.0), "20");
        assert_eq!(latency_label(1500.0), "1500");
        let points = vec![(2.0, 100.0), (20_000.0, 50_000.0)];
        let bounds = Bounds::of([&points].into_iter());
        assert_eq!(bounds.inverse_max, 1e5);
        assert_eq!(bounds.us_per_unit, 1000.0);
        assert_eq!(
            bounds.x_key_points(),
            [1.0, 2.0, 10.0, 100.0, 1e3, 1e4, 1e5]
        );
        let empty = Bounds::of(std::iter::empty());
        assert_eq!(empty.inverse_max, 1e3);
        assert_eq!(empty.us_per_unit, 1.0);
    }
}
