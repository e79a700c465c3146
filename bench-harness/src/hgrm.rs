//! HdrHistogram percentile-distribution files (`.hgrm`), one per run, for `--hgrm DIR`.
//!
//! The layout is the plain-text one that HdrHistogram's `outputPercentileDistribution` prints
//! and that the common HdrHistogram plotters read (the HdrHistogram web plotter, `hdr-plot`,
//! gnuplot scripts): a header line, one blank line, then one row per percentile tick with the
//! value (scaled to the chosen unit), the percentile as a fraction, the count of values at or
//! below it, and `1/(1-percentile)`; the last row, at percentile 1.0, has no fourth column
//! (it would be infinite). Three footer lines start with `#[`: mean and standard deviation,
//! max and total count, and the histogram's bucket and sub-bucket counts.
//!
//! ```text
//!        Value     Percentile TotalCount 1/(1-Percentile)
//!
//!        0.103 0.000000000000          1           1.00
//!        ...
//!        3.761 1.000000000000       9160
//! #[Mean    =        0.110, StdDeviation   =        0.043]
//! #[Max     =        3.761, Total count    =         9160]
//! #[Buckets =           16, SubBuckets     =         2048]
//! ```
//!
//! Invariants of the rows written: the value, the percentile and the total count never
//! decrease from one row to the next; a non-empty histogram's last row is at percentile 1.0
//! with the histogram's total count and its max. Values are printed with as many decimals as
//! the histogram has significant digits, as HdrHistogram does, so milliseconds from a
//! microsecond histogram keep microsecond resolution.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use hdrhistogram::Histogram;

/// Percentile ticks per half distance to 100% (HdrHistogram's default): 5 rows between 0%
/// and 50%, 5 between 50% and 75%, and so on.
pub const PERCENTILE_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Scaling ratio from the harness's microsecond histograms to milliseconds, the unit the
/// `.hgrm` files are written in (HdrHistogram plotters label their axis in ms by default).
pub const MICROSECONDS_PER_MILLISECOND: f64 = 1000.0;

/// File name extension of the percentile-distribution files.
pub const HGRM_EXTENSION: &str = "hgrm";

/// One percentile tick of a histogram, in the histogram's own unit (µs in this harness).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PercentileRow {
    /// Highest value equivalent to the one at this percentile.
    pub value: u64,
    /// Percentile iterated to, as a fraction in 0..=1.
    pub quantile: f64,
    /// Values recorded at or below `value`.
    pub total_count: u64,
}

/// The percentile ticks of `histogram`, `ticks_per_half_distance` per half distance to 100%,
/// the last one at quantile 1.0 (none for an empty histogram).
pub fn percentile_rows(
    histogram: &Histogram<u64>,
    ticks_per_half_distance: u32,
) -> Vec<PercentileRow> {
    assert!(
        ticks_per_half_distance > 0,
        "ticks_per_half_distance must be > 0"
    );
    let mut total_count = 0_u64;
    histogram
        .iter_quantiles(ticks_per_half_distance)
        .map(|step| {
            total_count += step.count_since_last_iteration();
            PercentileRow {
                value: step.value_iterated_to(),
                quantile: step.quantile_iterated_to(),
                total_count,
            }
        })
        .collect()
}

/// Writes `histogram` as an `.hgrm` percentile distribution, values divided by
/// `value_unit_scaling` (e.g. `MICROSECONDS_PER_MILLISECOND` to turn µs into ms), with
/// `PERCENTILE_TICKS_PER_HALF_DISTANCE` ticks per half distance.
pub fn write_hgrm(
    histogram: &Histogram<u64>,
    value_unit_scaling: f64,
    out: &mut impl Write,
) -> io::Result<()> {
    write_hgrm_ticks(
        histogram,
        PERCENTILE_TICKS_PER_HALF_DISTANCE,
        value_unit_scaling,
        out,
    )
}

/// `write_hgrm` with a chosen number of percentile ticks per half distance.
pub fn write_hgrm_ticks(
    histogram: &Histogram<u64>,
    ticks_per_half_distance: u32,
    value_unit_scaling: f64,
    out: &mut impl Write,
) -> io::Result<()> {
    assert!(
        value_unit_scaling.is_finite() && value_unit_scaling > 0.0,
        "value_unit_scaling={value_unit_scaling}"
    );
    let decimals = usize::from(histogram.sigfig());
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    for row in percentile_rows(histogram, ticks_per_half_distance) {
        let value = row.value as f64 / value_unit_scaling;
        let quantile = row.quantile;
        let total_count = row.total_count;
        if quantile < 1.0 {
            let inverse = 1.0 / (1.0 - quantile);
            writeln!(
                out,
                "{value:12.decimals$} {quantile:2.12} {total_count:10} {inverse:14.2}"
            )?;
        } else {
            writeln!(out, "{value:12.decimals$} {quantile:2.12} {total_count:10}")?;
        }
    }
    write_footer(histogram, value_unit_scaling, out)
}

/// The three `#[...]` summary lines.
fn write_footer(
    histogram: &Histogram<u64>,
    value_unit_scaling: f64,
    out: &mut impl Write,
) -> io::Result<()> {
    let decimals = usize::from(histogram.sigfig());
    let (mean, deviation, max) = if histogram.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            histogram.mean() / value_unit_scaling,
            histogram.stdev() / value_unit_scaling,
            histogram.max() as f64 / value_unit_scaling,
        )
    };
    writeln!(
        out,
        "#[Mean    = {mean:12.decimals$}, StdDeviation   = {deviation:12.decimals$}]"
    )?;
    writeln!(
        out,
        "#[Max     = {max:12.decimals$}, Total count    = {:12}]",
        histogram.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        histogram.buckets(),
        sub_bucket_count(histogram.sigfig())
    )
}

/// Sub-buckets per bucket of a histogram with `significant_digits` (the hdrhistogram crate
/// does not expose it): the smallest power of two that resolves single units up to
/// 2 x 10^digits, as in every HdrHistogram implementation.
fn sub_bucket_count(significant_digits: u8) -> u64 {
    (2 * 10_u64.pow(u32::from(significant_digits))).next_power_of_two()
}

/// Writes one `<stem>.hgrm` per run into `dir` (created if missing), values in milliseconds,
/// and returns the paths written, in the order of `runs`. Stems must be distinct file names
/// without a path separator (see `file_stem`).
pub fn write_hgrm_dir(
    dir: &Path,
    runs: &[(String, &Histogram<u64>)],
) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut paths = Vec::with_capacity(runs.len());
    for (stem, histogram) in runs {
        assert!(!stem.is_empty(), "empty .hgrm file stem");
        assert!(!stem.contains('/'), "stem={stem}");
        let path = dir.join(format!("{stem}.{HGRM_EXTENSION}"));
        assert!(!paths.contains(&path), "two runs named {stem}");
        write_hgrm_file(&path, histogram).with_context(|| format!("writing {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}

fn write_hgrm_file(path: &Path, histogram: &Histogram<u64>) -> io::Result<()> {
    let mut writer = BufWriter::new(File::create(path)?);
    write_hgrm(histogram, MICROSECONDS_PER_MILLISECOND, &mut writer)?;
    writer.flush()
}

/// A file stem for a run: its parts joined by `-`, every character other than ASCII letters,
/// digits, `_` and `.` replaced by `_` (e.g. `["replicated_qd1", "direct", "acks=1", "1KiB"]`
/// gives `replicated_qd1-direct-acks_1-1KiB`), and `-2`, `-3`, ... appended when an earlier
/// stem in `taken` is the same.
pub fn file_stem(parts: &[&str], taken: &[String]) -> String {
    let cleaned: Vec<String> = parts
        .iter()
        .map(|part| {
            part.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    let base = cleaned.join("-");
    let mut stem = base.clone();
    let mut suffix = 2;
    while taken.contains(&stem) {
        stem = format!("{base}-{suffix}");
        suffix += 1;
    }
    stem
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::latency::new_histogram;

    /// A parsed `.hgrm` file: rows of (value, percentile, total count, 1/(1-p)), and the
    /// footer's max and total count.
    #[derive(Debug)]
    pub(crate) struct ParsedHgrm {
        pub(crate) rows: Vec<(f64, f64, u64, Option<f64>)>,
        pub(crate) max: f64,
        pub(crate) total_count: u64,
    }

    /// Parses what `write_hgrm` writes, strictly: the header, a blank line, rows of 4 columns
    /// (3 for the last), then the three footer lines.
    pub(crate) fn parse_hgrm(text: &str) -> ParsedHgrm {
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("       Value     Percentile TotalCount 1/(1-Percentile)")
        );
        assert_eq!(lines.next(), Some(""));
        let mut rows = Vec::new();
        let mut footer = Vec::new();
        for line in lines {
            if line.starts_with("#[") {
                footer.push(line);
                continue;
            }
            assert!(footer.is_empty(), "row after the footer: {line}");
            let columns: Vec<&str> = line.split_whitespace().collect();
            assert!(columns.len() == 3 || columns.len() == 4, "{line}");
            rows.push((
                columns[0].parse().unwrap(),
                columns[1].parse().unwrap(),
                columns[2].parse().unwrap(),
                columns.get(3).map(|inverse| inverse.parse().unwrap()),
            ));
        }
        assert_eq!(footer.len(), 3, "{footer:?}");
        assert!(footer[0].starts_with("#[Mean    = "), "{}", footer[0]);
        assert!(footer[2].starts_with("#[Buckets = "), "{}", footer[2]);
        let (max, total_count) = footer[1]
            .strip_prefix("#[Max     = ")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|rest| rest.split_once(", Total count    = "))
            .unwrap();
        ParsedHgrm {
            rows,
            max: max.trim().parse().unwrap(),
            total_count: total_count.trim().parse().unwrap(),
        }
    }

    fn written(histogram: &Histogram<u64>, scaling: f64) -> String {
        let mut out = Vec::new();
        write_hgrm(histogram, scaling, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn skewed_histogram() -> Histogram<u64> {
        let mut histogram = new_histogram();
        for us in 1..=10_000 {
            histogram.record(100 + us % 50).unwrap();
        }
        histogram.record_n(2_500, 20).unwrap();
        histogram.record(37_613).unwrap();
        histogram
    }

    // Writes a skewed histogram in ms and parses every row back: value, percentile and count
    // never decrease, only the last row (percentile 1.0, count = total) lacks 1/(1-p), which
    // elsewhere matches the percentile; the footer holds the max and the total count.
    #[test]
    fn rows_parse_back_monotone_and_end_at_the_total() {
        let histogram = skewed_histogram();
        let parsed = parse_hgrm(&written(&histogram, MICROSECONDS_PER_MILLISECOND));
        assert!(parsed.rows.len() > 20, "{}", parsed.rows.len());
        for pair in parsed.rows.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            assert!(after.0 >= before.0, "value {before:?} -> {after:?}");
            assert!(after.1 >= before.1, "percentile {before:?} -> {after:?}");
            assert!(after.2 >= before.2, "count {before:?} -> {after:?}");
        }
        let (last, others) = parsed.rows.split_last().unwrap();
        assert_eq!(last.1, 1.0);
        assert_eq!(last.2, histogram.len());
        assert_eq!(last.3, None);
        for row in others {
            let inverse = row.3.expect("every row but the last has 1/(1-p)");
            assert!((inverse - 1.0 / (1.0 - row.1)).abs() <= 0.005, "{row:?}");
        }
        assert_eq!(parsed.rows[0].1, 0.0);
        assert_eq!(parsed.rows[0].0, 0.1, "min 100 µs as ms");
        assert_eq!(last.0, histogram.max() as f64 / 1000.0);
        assert_eq!(parsed.max, histogram.max() as f64 / 1000.0);
        assert_eq!(parsed.total_count, 10_021);
    }

    // The exact text of a small histogram: column widths, decimals from the significant
    // digits, the footer's bucket counts (3 digits: 2048 sub-buckets, as HdrHistogram prints).
    #[test]
    fn exact_layout_of_a_small_histogram() {
        let mut histogram = new_histogram();
        histogram.record_n(1_000, 3).unwrap();
        histogram.record(2_000).unwrap();
        let text = written(&histogram, MICROSECONDS_PER_MILLISECOND);
        let expected_rows = "       Value     Percentile TotalCount 1/(1-Percentile)\n\
                             \n       1.000 0.000000000000          3           1.00\n";
        assert!(text.starts_with(expected_rows), "{text}");
        assert!(
            text.contains("\n       2.000 1.000000000000          4\n#[Mean"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "#[Mean    =        1.250, StdDeviation   =        0.433]\n\
                 #[Max     =        2.000, Total count    =            4]\n\
                 #[Buckets =           16, SubBuckets     =         2048]\n"
            ),
            "{text}"
        );
        // In µs (scaling 1) the same histogram keeps three decimals.
        assert!(written(&histogram, 1.0).contains("    1000.000 0.000000000000"));
    }

    // An empty histogram still writes a well-formed file: header, no rows, zeroed footer.
    #[test]
    fn empty_histogram() {
        let parsed = parse_hgrm(&written(&new_histogram(), MICROSECONDS_PER_MILLISECOND));
        assert!(parsed.rows.is_empty());
        assert_eq!(parsed.total_count, 0);
        assert_eq!(parsed.max, 0.0);
    }

    #[test]
    fn sub_buckets_per_significant_digits() {
        assert_eq!(sub_bucket_count(1), 32);
        assert_eq!(sub_bucket_count(2), 256);
        assert_eq!(sub_bucket_count(3), 2048);
        assert_eq!(sub_bucket_count(5), 262_144);
    }

    // One file per run under a new directory, named by stem; the files parse.
    #[test]
    fn writes_one_file_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("hgrm");
        let histogram = skewed_histogram();
        let runs = [
            ("sync-open-loop".to_owned(), &histogram),
            ("sync-saturated".to_owned(), &histogram),
        ];
        let paths = write_hgrm_dir(&target, &runs).unwrap();
        assert_eq!(
            paths,
            [
                target.join("sync-open-loop.hgrm"),
                target.join("sync-saturated.hgrm")
            ]
        );
        for path in paths {
            let parsed = parse_hgrm(&fs::read_to_string(path).unwrap());
            assert_eq!(parsed.total_count, histogram.len());
        }
    }

    #[test]
    fn file_stems_are_clean_and_distinct() {
        let mut taken = Vec::new();
        for _ in 0..3 {
            let stem = file_stem(&["replicated_qd1", "direct", "acks=1", "1 KiB"], &taken);
            taken.push(stem);
        }
        assert_eq!(
            taken,
            [
                "replicated_qd1-direct-acks_1-1_KiB",
                "replicated_qd1-direct-acks_1-1_KiB-2",
                "replicated_qd1-direct-acks_1-1_KiB-3",
            ]
        );
        assert_eq!(
            file_stem(&["wal_qd1", "mmap", "../x"], &[]),
            "wal_qd1-mmap-.._x"
        );
    }
}
