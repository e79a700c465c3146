//! The optional outputs of a run besides the table and the JSON: `--hgrm DIR` (one
//! HdrHistogram percentile distribution per run), `--plot FILE.svg` (every run's latency by
//! percentile against the baseline floor) and `--compare FILE.json` (ratios to an earlier
//! report), plus the `compare` subcommand, which compares two saved reports.
//!
//! `check_before_measuring` reads the `--compare` file before anything is measured, so a
//! wrong path or a file that is not a report fails the command at once instead of after the
//! runs. Runs without a histogram (none today) are left out of the `.hgrm` files and the
//! plot, with a note on stderr.

use std::path::Path;

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
        write_plot(report, path, command)?;
        eprintln!("wrote {}", path.display());
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

/// The runs that kept a histogram, with it.
fn runs_with_histograms(runs: &[RunResult]) -> Vec<(&RunResult, &Histogram<u64>)> {
    let mut kept = Vec::new();
    for run in runs {
        match &run.histogram {
            Some(histogram) => kept.push((run, histogram)),
            None => eprintln!("note: {} kept no histogram", run_label(run)),
        }
    }
    kept
}

/// "wal_qd1 direct 1 KiB", "replicated_qd1 direct sync 1 KiB".
fn run_label(run: &RunResult) -> String {
    let mut parts = vec![run.scenario.clone(), run.write_path.clone()];
    parts.extend(run.ack_mode.clone());
    parts.push(format_size(run.payload_bytes));
    parts.join(" ")
}

/// One file stem per run: "wal_qd1-direct-1KiB", "replicated_qd1-direct-acks_1-1KiB".
fn hgrm_runs(runs: &[RunResult]) -> Vec<(String, &Histogram<u64>)> {
    let mut stems: Vec<String> = Vec::new();
    let mut named = Vec::new();
    for (run, histogram) in runs_with_histograms(runs) {
        let payload = format_size(run.payload_bytes).replace(' ', "");
        let mut parts = vec![run.scenario.as_str(), run.write_path.as_str()];
        parts.extend(run.ack_mode.as_deref());
        parts.push(&payload);
        let stem = file_stem(&parts, &stems);
        stems.push(stem.clone());
        named.push((stem, histogram));
    }
    named
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

fn write_plot(report: &Report, path: &Path, command: &str) -> anyhow::Result<()> {
    let curves: Vec<(String, Points)> = runs_with_histograms(&report.runs)
        .into_iter()
        .map(|(run, histogram)| (run_label(run), histogram_points(histogram)))
        .collect();
    let (reference_label, reference_points) = reference(&report.baselines);
    let title = format!(
        "ringlog-bench {command}: latency by percentile (git {})",
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
        qd1.histogram = Some(histogram);
        let mut acks1 = qd1.clone();
        acks1.ack_mode = Some("acks=1".to_owned());
        let twin = acks1.clone();
        let without = sample_run(Comparison::LatencyQd1, None);
        vec![qd1, acks1, twin, without]
    }

    // File stems name scenario, path, ack mode and payload, cleaned and made distinct; the
    // run without a histogram is left out.
    #[test]
    fn hgrm_stems_per_run() {
        let runs = runs_with_and_without_histograms();
        let stems: Vec<String> = hgrm_runs(&runs).into_iter().map(|(stem, _)| stem).collect();
        assert_eq!(
            stems,
            [
                "append_qd1-direct-4KiB",
                "append_qd1-direct-acks_1-4KiB",
                "append_qd1-direct-acks_1-4KiB-2",
            ]
        );
        assert_eq!(run_label(&runs[1]), "append_qd1 direct acks=1 4 KiB");
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
