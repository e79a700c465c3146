//! The optional outputs of a run besides the table and the JSON: `--hgrm DIR` (one
//! HdrHistogram percentile distribution per run), `--plot FILE.svg` (every run's latency by
//! percentile against the baseline floor) and `--compare FILE.json` (ratios to an earlier
//! report), plus the `compare` subcommand, which compares two saved reports.
//!
//! Every histogram a run kept is a *series*: its latency histogram, and for the default
//! mode's open-loop runs also the end-to-end one (named `... e2e`). Each series gets a
//! `.hgrm` file and a curve. Curve labels keep only what differs between the curves of a
//! plot (e.g. just the ack mode), the rest goes into the title. A report with several
//! scenarios also gets one plot per scenario next to `FILE.svg` (`FILE-<scenario>.svg`), so
//! the ack modes of one scenario can be read side by side.
//!
//! `check_before_measuring` reads the `--compare` file before anything is measured, so a
//! wrong path or a file that is not a report fails the command at once instead of after the
//! runs. Runs without a histogram are left out of the `.hgrm` files and the plots, with a
//! note on stderr.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use crate::baseline::Baselines;
use crate::cli::{CompareArgs, OutputArgs};
use crate::compare::{self, ReportFigures};
use crate::hgrm::{file_stem, write_hgrm_dir};
use crate::plot::{
    histogram_points, plot_svg_with_reference, summary_points, Points, REFERENCE_LABEL_FDATASYNC,
    REFERENCE_LABEL_FDATASYNC_PLUS_RTT,
};
use crate::report::{latency_floor_plus_rtt, Report, RunResult};
use crate::table::format_size;

/// Fails at once if `--compare` names something that is not a readable report.
pub fn check_before_measuring(outputs: &OutputArgs) -> anyhow::Result<()> {
    if let Some(path) = &outputs.compare {
        compare::load_earlier(path)?;
    }
    Ok(())
}

/// Writes the `.hgrm` files and the plot, and prints the comparison, as the flags ask.
/// `command` names the subcommand in the plot's title.
pub fn write(report: &Report, outputs: &OutputArgs, command: &str) -> anyhow::Result<()> {
    if let Some(dir) = &outputs.hgrm {
        let paths = write_hgrm_dir(dir, &hgrm_runs(&report.runs))?;
        eprintln!("wrote {} .hgrm files to {}", paths.len(), dir.display());
    }
    if let Some(path) = &outputs.plot {
        for written in write_plots(report, path, command)? {
            eprintln!("wrote {}", written.display());
        }
    }
    if let Some(path) = &outputs.compare {
        let earlier = compare::load_earlier(path)?;
        let this = ReportFigures::from_json(&report.to_json()).map_err(|problem| {
            anyhow::anyhow!("this run's report does not read back: {problem}")
        })?;
        print!(
            "{}",
            compare::render(
                &compare::compare(&this, &earlier),
                &path.display().to_string()
            )
        );
    }
    Ok(())
}

/// `ringlog-bench compare EARLIER.json LATER.json`: the later report's ratios to the earlier.
pub fn run_compare(args: &CompareArgs) -> anyhow::Result<()> {
    let earlier = compare::load_earlier(&args.earlier)?;
    let later = compare::load_earlier(&args.later)?;
    print!(
        "{}",
        compare::render(
            &compare::compare(&later, &earlier),
            &args.earlier.display().to_string()
        )
    );
    Ok(())
}

/// One histogram of a run, named by the run's parts: scenario, write path, ack mode (or ""),
/// payload, and "e2e" for the end-to-end latency (or "").
struct Series<'r> {
    parts: [String; 5],
    histogram: &'r Histogram<u64>,
}

impl Series<'_> {
    fn scenario(&self) -> &str {
        &self.parts[0]
    }

    /// "wal_qd1 direct 1 KiB", "open_loop direct sync 1 KiB e2e".
    fn label(&self) -> String {
        join_present(self.parts.iter(), " ")
    }
}

/// The non-empty parts, joined.
fn join_present<'s>(parts: impl Iterator<Item = &'s String>, separator: &str) -> String {
    let present: Vec<&str> = parts
        .filter(|part| !part.is_empty())
        .map(String::as_str)
        .collect();
    present.join(separator)
}

/// Every histogram the runs kept, in run order, a run's end-to-end one after its own.
fn series(runs: &[RunResult]) -> Vec<Series<'_>> {
    let mut all = Vec::new();
    for run in runs {
        let parts = |kind: &str| {
            [
                run.scenario.clone(),
                run.write_path.clone(),
                run.ack_mode.clone().unwrap_or_default(),
                format_size(run.payload_bytes),
                kind.to_owned(),
            ]
        };
        match &run.histogram {
            Some(histogram) => all.push(Series {
                parts: parts(""),
                histogram,
            }),
            None => eprintln!(
                "note: {} kept no histogram",
                join_present(parts("").iter(), " ")
            ),
        }
        if let Some(histogram) = &run.e2e_histogram {
            all.push(Series {
                parts: parts("e2e"),
                histogram,
            });
        }
    }
    all
}

/// One file stem per series: "wal_qd1-direct-1KiB", "open_loop-direct-acks_1-1KiB-e2e".
fn hgrm_runs(runs: &[RunResult]) -> Vec<(String, &Histogram<u64>)> {
    let mut stems: Vec<String> = Vec::new();
    let mut named = Vec::new();
    for series in series(runs) {
        let parts: Vec<String> = series
            .parts
            .iter()
            .filter(|part| !part.is_empty())
            .map(|part| part.replace(' ', ""))
            .collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let stem = file_stem(&parts, &stems);
        stems.push(stem.clone());
        named.push((stem, series.histogram));
    }
    named
}

/// Curve labels with the parts shared by every series left out (they go in the title, which
/// this returns second); a single series, or one left with nothing, keeps its whole label.
fn curve_labels(series: &[Series<'_>]) -> (Vec<String>, String) {
    let Some(first) = series.first() else {
        return (Vec::new(), String::new());
    };
    let shared: Vec<bool> = (0..first.parts.len())
        .map(|slot| {
            series
                .iter()
                .all(|each| each.parts[slot] == first.parts[slot])
        })
        .collect();
    if series.len() == 1 {
        return (vec![first.label()], String::new());
    }
    let labels = series
        .iter()
        .map(|each| {
            let differing = each
                .parts
                .iter()
                .zip(&shared)
                .filter(|(_, shared)| !**shared);
            let label = join_present(differing.map(|(part, _)| part), " ");
            // A series that differs only by lacking a part (no ack mode) keeps its name.
            if label.is_empty() {
                each.label()
            } else {
                label
            }
        })
        .collect();
    let common = first
        .parts
        .iter()
        .zip(&shared)
        .filter(|(_, shared)| **shared);
    (labels, join_present(common.map(|(part, _)| part), " "))
}

/// The floor the runs are compared with, as a reference line: the 4 KiB fdatasync baseline
/// plus the loopback 1 KiB round trip where it was measured, the fdatasync alone otherwise.
fn reference(baselines: &Baselines) -> (&'static str, Points) {
    match latency_floor_plus_rtt(baselines) {
        Some(floor) => (REFERENCE_LABEL_FDATASYNC_PLUS_RTT, summary_points(&floor)),
        None => (
            REFERENCE_LABEL_FDATASYNC,
            summary_points(&baselines.fdatasync_4k_qd1_us),
        ),
    }
}

/// `path` with every series, and with several scenarios one more plot per scenario beside
/// it; returns the files written.
fn write_plots(report: &Report, path: &Path, command: &str) -> anyhow::Result<Vec<PathBuf>> {
    let all = series(&report.runs);
    let mut scenarios: Vec<&str> = Vec::new();
    for each in &all {
        if !scenarios.contains(&each.scenario()) {
            scenarios.push(each.scenario());
        }
    }
    let mut written = vec![path.to_owned()];
    write_plot(report, path, command, &all)?;
    if scenarios.len() > 1 {
        for scenario in scenarios {
            let subset: Vec<Series<'_>> = series(&report.runs)
                .into_iter()
                .filter(|each| each.scenario() == scenario)
                .collect();
            let scenario_path = scenario_plot_path(path, scenario);
            write_plot(report, &scenario_path, command, &subset)?;
            written.push(scenario_path);
        }
    }
    Ok(written)
}

/// "plots/run.svg" and "open_loop" give "plots/run-open_loop.svg".
fn scenario_plot_path(path: &Path, scenario: &str) -> PathBuf {
    let stem = path.file_stem().map_or_else(
        || "plot".to_owned(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    let extension = path.extension().map_or_else(
        || "svg".to_owned(),
        |extension| extension.to_string_lossy().into_owned(),
    );
    path.with_file_name(format!(
        "{stem}-{}.{extension}",
        file_stem(&[scenario], &[])
    ))
}

fn write_plot(
    report: &Report,
    path: &Path,
    command: &str,
    series: &[Series<'_>],
) -> anyhow::Result<()> {
    let (labels, common) = curve_labels(series);
    let curves: Vec<(String, Points)> = labels
        .into_iter()
        .zip(series)
        .map(|(label, each)| (label, histogram_points(each.histogram)))
        .collect();
    let (reference_label, reference_points) = reference(&report.baselines);
    let common = if common.is_empty() {
        String::new()
    } else {
        format!(", {common}")
    };
    let title = format!(
        "ringlog-bench {command}: latency by percentile{common} (git {})",
        report.environment.git_sha
    );
    plot_svg_with_reference(path, &title, &curves, reference_label, &reference_points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::new_histogram;
    use crate::report::tests::{sample_baselines, sample_run};
    use crate::report::{Comparison, LatencySummary};

    fn runs_with_and_without_histograms() -> Vec<RunResult> {
        let mut histogram = new_histogram();
        for us in 100..200 {
            histogram.record(us).unwrap();
        }
        let mut qd1 = sample_run(Comparison::LatencyQd1, None);
        qd1.histogram = Some(histogram.clone());
        let mut acks1 = qd1.clone();
        acks1.ack_mode = Some("acks=1".to_owned());
        acks1.e2e_histogram = Some(histogram);
        let twin = qd1.clone();
        let without = sample_run(Comparison::LatencyQd1, None);
        vec![qd1, acks1, twin, without]
    }

    // File stems name scenario, path, ack mode, payload and e2e, cleaned and made distinct;
    // the run without a histogram is left out.
    #[test]
    fn hgrm_stems_per_series() {
        let runs = runs_with_and_without_histograms();
        let stems: Vec<String> = hgrm_runs(&runs).into_iter().map(|(stem, _)| stem).collect();
        assert_eq!(
            stems,
            [
                "append_qd1-direct-4KiB",
                "append_qd1-direct-acks_1-4KiB",
                "append_qd1-direct-acks_1-4KiB-e2e",
                "append_qd1-direct-4KiB-2",
            ]
        );
    }

    // Labels keep only what differs (here the ack mode and e2e); the shared parts make the
    // title. One series keeps its whole label.
    #[test]
    fn curve_labels_keep_what_differs() {
        let runs = runs_with_and_without_histograms();
        let all = series(&runs);
        let (labels, common) = curve_labels(&all);
        let whole = "append_qd1 direct 4 KiB";
        assert_eq!(labels, [whole, "acks=1", "acks=1 e2e", whole]);
        assert_eq!(common, "append_qd1 direct 4 KiB");
        let (labels, common) = curve_labels(&all[1..2]);
        assert_eq!(labels, ["append_qd1 direct acks=1 4 KiB"]);
        assert_eq!(common, "");
        assert_eq!(
            scenario_plot_path(Path::new("out/run.svg"), "open_loop"),
            Path::new("out/run-open_loop.svg")
        );
    }

    // Without a round trip the reference is the fdatasync baseline; with one, the sum.
    #[test]
    fn reference_line_follows_the_baselines() {
        let mut baselines = sample_baselines();
        let (label, points) = reference(&baselines);
        assert_eq!(label, REFERENCE_LABEL_FDATASYNC);
        assert_eq!(points[0], (0.5, 100.0));
        baselines.loopback_rtt_1k_us = Some(LatencySummary {
            p50: 25,
            ..LatencySummary::default()
        });
        let (label, points) = reference(&baselines);
        assert_eq!(label, REFERENCE_LABEL_FDATASYNC_PLUS_RTT);
        assert_eq!(points[0], (0.5, 125.0));
    }
}
