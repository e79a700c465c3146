//! The report as a text table for a terminal: environment, baselines, one row per run, and a
//! PASS/FAIL line per run that has a target.
//!
//! Rendering only formats what `report.rs` computed (ratios, verdicts); it decides nothing, so
//! the table and the JSON of one run always agree.

use ringlog_types::units::{KIB, MIB};
use serde_json::Value;

use crate::baseline::Baselines;
use crate::environment::Environment;
use crate::replicated_runs::STEAL_KEY;
use crate::report::{
    latency_floor_plus_rtt, shared_host_sync_bound, BaselineRatios, Comparison, LatencySummary,
    RatioSummary, Report, RunResult, Target, TargetOutcome,
};

/// The whole report as text, ending in a newline.
pub fn render(report: &Report) -> String {
    let mut lines = Vec::new();
    render_environment(&report.environment, &mut lines);
    let default_mode = !report.runs.is_empty()
        && report
            .runs
            .iter()
            .all(|run| run.comparison == Comparison::LatencyPlusRttPerPercentile);
    if default_mode {
        render_cluster_and_load(report, &mut lines);
    }
    render_baselines(&report.baselines, &mut lines);
    if default_mode {
        render_mode_floor(&report.baselines, &mut lines);
        render_mode_rows(&report.runs, &report.baselines, &mut lines);
    } else {
        render_floor(report, &mut lines);
        render_runs(&report.runs, &report.baselines, &mut lines);
    }
    render_targets(&report.runs, &report.baselines, &mut lines);
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// The default mode's cluster layout and load shape, under the environment.
fn render_cluster_and_load(report: &Report, lines: &mut Vec<String>) {
    if let Some(cluster) = &report.cluster {
        lines.push(format!("  cluster      {}", describe_cluster(cluster)));
    }
    if let Some(load) = &report.load {
        lines.push(format!("  load         {}", describe_load(load)));
    }
}

/// "local: node 1 leader 127.0.0.1:4000 CPU 0 pid 7, ...; load generator CPU 1", or
/// "remote 127.0.0.1:9092 (cluster c, 3 nodes, leader 1)".
fn describe_cluster(cluster: &serde_json::Value) -> String {
    let nodes = cluster["nodes"].as_array().cloned().unwrap_or_default();
    if cluster["kind"] == "remote" {
        return format!(
            "remote, bootstrap {}: cluster {}, {} node(s), leader node {} at {}, end-to-end \
             consumer on {}",
            cluster["bootstrap"].as_str().unwrap_or("?"),
            cluster["cluster_id"].as_str().unwrap_or("(single node)"),
            nodes.len(),
            cluster["leader"],
            cluster["leader_address"].as_str().unwrap_or("?"),
            cluster["consumer_address"].as_str().unwrap_or("?"),
        );
    }
    let described: Vec<String> = nodes
        .iter()
        .map(|node| {
            format!(
                "node {} {} {} CPU {}",
                node["id"],
                node["role"].as_str().unwrap_or("?"),
                node["client"].as_str().unwrap_or("?"),
                node["cpu"]
            )
        })
        .collect();
    let cpus: Vec<String> = cluster["load_generator_cpus"]
        .as_array()
        .into_iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    format!(
        "local: {}; load generator CPU {}",
        described.join(", "),
        cpus.join(",")
    )
}

/// "1 KiB records, 1 per request, 4 producers x 64 in flight, 1 partition, open loop at
/// 2000 records/s, 6 s measured + 1 s warm-up per run".
fn describe_load(load: &serde_json::Value) -> String {
    let pacing = match load["rate_records_per_s"].as_f64() {
        Some(rate) => format!("open loop at {rate:.0} records/s"),
        None => "closed loop".to_owned(),
    };
    format!(
        "{} records, {} per request, {} producers x {} in flight, {} partition(s), {pacing}, \
         {} s measured + {} s warm-up per run",
        format_size(load["payload_size_bytes"].as_u64().unwrap_or(0)),
        load["batch_records"],
        load["producers"],
        load["in_flight_max"],
        load["partitions"],
        load["duration_secs"],
        load["warmup_secs"]
    )
}

/// The floor every default-mode latency is divided by.
fn render_mode_floor(baselines: &Baselines, lines: &mut Vec<String>) {
    if let Some(floor) = latency_floor_plus_rtt(baselines) {
        lines.push(format!(
            "  floor: 4 KiB fdatasync + loopback 1 KiB RTT, per percentile  {}",
            format_percentiles(&floor)
        ));
    }
}

/// One row per run and one per end-to-end histogram: mode, run, target rate, achieved
/// records/s and MB/s, then each percentile with its ratio to the floor at that percentile.
fn render_mode_rows(runs: &[RunResult], baselines: &Baselines, lines: &mut Vec<String>) {
    lines.push(String::new());
    lines.push(
        "latency in µs from each record's due time (open loop) or send (closed loop) to its \
         ack; e2e: to its arrival at a consumer on a follower; ratio: / floor at the same \
         percentile"
            .to_owned(),
    );
    let show_path = runs.iter().any(|run| run.write_path != runs[0].write_path);
    let mut header = vec!["mode"];
    if show_path {
        header.push("path");
    }
    header.extend([
        "run",
        "target/s",
        "records/s",
        "MB/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
    ]);
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for run in runs {
        let mode = run.ack_mode.clone().unwrap_or_else(|| "-".to_owned());
        let mut cells = vec![mode];
        if show_path {
            cells.push(run.write_path.clone());
        }
        cells.push(run.scenario.replace('_', "-"));
        cells.extend(rate_cells(run));
        cells.extend(latency_cells(
            &run.latency_us,
            run.ratios_plus_rtt(baselines),
        ));
        rows.push(cells);
        if let Some(e2e) = &run.e2e_latency_us {
            let mut cells = vec![String::new()];
            if show_path {
                cells.push(String::new());
            }
            cells.push("e2e".to_owned());
            cells.extend(["".to_owned(), "".to_owned(), "".to_owned()]);
            cells.extend(latency_cells(e2e, run.e2e_ratios_plus_rtt(baselines)));
            rows.push(cells);
        }
    }
    let text_columns = if show_path { 3 } else { 2 };
    lines.extend(align_all_columns(&rows, text_columns));
}

/// Target rate ("-" in a closed loop), achieved records/s and MB/s.
fn rate_cells(run: &RunResult) -> [String; 3] {
    [
        run.target_rate_records_per_s
            .map_or_else(|| "-".to_owned(), |rate| format!("{rate:.0}")),
        format!("{:.0}", run.records_per_s),
        format!("{:.1}", run.mb_per_s),
    ]
}

/// "1234 2.05x" per percentile (the ratio left out without a floor).
fn latency_cells(latency_us: &LatencySummary, ratios: Option<RatioSummary>) -> Vec<String> {
    let ratios = ratios.map(|ratios| ratios.values());
    latency_us
        .values()
        .iter()
        .enumerate()
        .map(
            |(index, value)| match ratios.and_then(|ratios| ratios[index]) {
                Some(ratio) => format!("{value} {ratio:.2}x"),
                None => value.to_string(),
            },
        )
        .collect()
}

/// `align_columns`, with the last column right-aligned too.
fn align_all_columns(rows: &[Vec<String>], text_columns: usize) -> Vec<String> {
    let mut padded: Vec<Vec<String>> = rows.to_vec();
    for row in &mut padded {
        row.push(String::new());
    }
    align_columns(&padded, text_columns)
        .into_iter()
        .map(|line| line.trim_end().to_owned())
        .collect()
}

fn render_environment(environment: &Environment, lines: &mut Vec<String>) {
    let block_size = environment
        .logical_block_size_bytes
        .map_or_else(|| "unknown".to_owned(), |size| format!("{size} B"));
    lines.push("ringlog-bench (latency in µs; MB = 10^6 bytes)".to_owned());
    lines.push(format!("  kernel       {}", environment.kernel));
    lines.push(format!(
        "  cpu          {}, {} cores (CPUs {})",
        environment.cpu, environment.cores, environment.cpus_allowed
    ));
    lines.push(format!("  cpu idle     {}", environment.cpu_idle));
    lines.push(format!(
        "  file system  {} on {} ({})",
        environment.filesystem, environment.mount_point, environment.mount_options
    ));
    lines.push(format!(
        "  device       {}, logical block {block_size}",
        environment.device_model
    ));
    lines.push(format!("  git          {}", environment.git_sha));
    lines.push(format!("  data dir     {}", environment.data_dir));
}

fn render_baselines(baselines: &Baselines, lines: &mut Vec<String>) {
    let mode = if baselines.o_direct {
        "O_DIRECT"
    } else {
        "buffered, O_DIRECT refused"
    };
    lines.push(String::new());
    lines.push(format!(
        "baselines ({mode}, sequential, pre-filled file, this run):"
    ));
    lines.push(format!(
        "  4 KiB write+fdatasync QD1  {}  ({} samples)",
        format_percentiles(&baselines.fdatasync_4k_qd1_us),
        baselines.fdatasync_4k_qd1_sample_count
    ));
    lines.push(format!(
        "  1 MiB write+fdatasync      {:.1} MB/s  p50 {}  p99 {}  ({})",
        baselines.write_fdatasync_1m_mb_per_s,
        baselines.write_fdatasync_1m_us.p50,
        baselines.write_fdatasync_1m_us.p99,
        format_size(baselines.write_fdatasync_1m_total_bytes)
    ));
    if let (Some(latency), Some(writers)) = (
        &baselines.fdatasync_4k_concurrent_us,
        baselines.fdatasync_4k_concurrent_writer_count,
    ) {
        lines.push(format!(
            "  4 KiB write+fdatasync QD1, {writers} writers at once (one per local node, \
             same device)  {}  ({} samples)",
            format_percentiles(latency),
            baselines
                .fdatasync_4k_concurrent_sample_count
                .unwrap_or_default()
        ));
    }
    let rtts = [
        ("64 B ", baselines.loopback_rtt_64b_us),
        ("1 KiB", baselines.loopback_rtt_1k_us),
    ];
    for (size, rtt) in rtts {
        if let Some(rtt) = rtt {
            lines.push(format!(
                "  loopback TCP RTT {size} QD1  {}  ({} samples)",
                format_percentiles(&rtt),
                baselines.loopback_rtt_sample_count.unwrap_or_default()
            ));
        }
    }
    if let Some(steal) = baselines.steal_percent {
        lines.push(format!(
            "  steal (CPU time a hypervisor gave to other guests) during these baselines  \
             {steal:.1}%"
        ));
    }
}

/// The floor the replicated QD1 runs are divided by, when the report has such runs.
fn render_floor(report: &Report, lines: &mut Vec<String>) {
    let compared = report
        .runs
        .iter()
        .any(|run| run.comparison == Comparison::LatencyQd1PlusRtt);
    if let (true, Some(floor)) = (compared, latency_floor_plus_rtt(&report.baselines)) {
        lines.push(format!(
            "  floor: 4 KiB fdatasync + loopback 1 KiB RTT, per percentile  {}",
            format_percentiles(&floor)
        ));
        if let Some(bound) = shared_host_sync_bound(&report.baselines) {
            lines.push(format!(
                "  sync bound on one host: concurrent fdatasync + 2 x loopback 1 KiB RTT  {}",
                format_percentiles(&bound)
            ));
        }
    }
}

fn format_percentiles(latency_us: &LatencySummary) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}",
        latency_us.p50,
        latency_us.p90,
        latency_us.p99,
        latency_us.p999,
        latency_us.p9999,
        latency_us.max
    )
}

fn render_runs(runs: &[RunResult], baselines: &Baselines, lines: &mut Vec<String>) {
    lines.push(String::new());
    if runs.is_empty() {
        lines.push("runs: none".to_owned());
        return;
    }
    let show_ack = runs.iter().any(|run| run.ack_mode.is_some());
    let mut header = vec!["scenario", "path"];
    if show_ack {
        header.push("ack");
    }
    header.extend([
        "payload",
        "conc",
        "records/s",
        "MB/s",
        "p50",
        "p99",
        "p99.9",
        "max",
        "vs baseline",
    ]);
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for run in runs {
        let mut cells = vec![run.scenario.clone(), run.write_path.clone()];
        if show_ack {
            cells.push(run.ack_mode.clone().unwrap_or_else(|| "-".to_owned()));
        }
        cells.extend([
            format_size(run.payload_bytes),
            run.concurrency.to_string(),
            format!("{:.0}", run.records_per_s),
            format!("{:.1}", run.mb_per_s),
            run.latency_us.p50.to_string(),
            run.latency_us.p99.to_string(),
            run.latency_us.p999.to_string(),
            run.latency_us.max.to_string(),
            format_vs_baseline(run.comparison, &run.ratios(baselines)),
        ]);
        rows.push(cells);
    }
    // Names on the left, numbers on the right, the free-text ratio cell last and unpadded.
    let text_columns = if show_ack { 3 } else { 2 };
    lines.extend(align_columns(&rows, text_columns));
}

/// Pads every column to its widest cell: the first `text_columns` left-aligned, the others
/// right-aligned, except the last column, which is left as it is.
pub(crate) fn align_columns(rows: &[Vec<String>], text_columns: usize) -> Vec<String> {
    let column_count = rows.iter().map(Vec::len).max().unwrap_or_default();
    let widths: Vec<usize> = (0..column_count)
        .map(|column| {
            let cells = rows.iter().filter_map(|row| row.get(column));
            cells
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or_default()
        })
        .collect();
    rows.iter()
        .map(|row| {
            let last = row.len().saturating_sub(1);
            let cells = row.iter().enumerate().map(|(column, cell)| {
                let width = widths[column];
                if column == last {
                    cell.clone()
                } else if column < text_columns {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            });
            cells.collect::<Vec<_>>().join("  ")
        })
        .collect()
}

fn render_targets(runs: &[RunResult], baselines: &Baselines, lines: &mut Vec<String>) {
    let verdicts: Vec<String> = runs
        .iter()
        .filter_map(|run| {
            let target = run.target?;
            let outcome = run.target_outcome(baselines, runs)?;
            let verdict = if outcome.met { "PASS" } else { "FAIL" };
            let mut text = format!(
                "  {verdict}  {}  target: {}, measured {}",
                run_label(run),
                target.description(),
                format_target_actual(target, &outcome, &run.ratios(baselines))
            );
            if let Some(shared) = format_shared_host_ratios(run, target, baselines) {
                text.push_str("\n        ");
                text.push_str(&shared);
            }
            if let Some(steal) = format_steal(run, baselines) {
                text.push_str("\n        ");
                text.push_str(&steal);
            }
            Some(text)
        })
        .collect();
    if !verdicts.is_empty() {
        lines.push(String::new());
        lines.push("targets:".to_owned());
        lines.extend(verdicts);
    }
}

/// For a QD1 target judged against fdatasync + RTT, on a local cluster: the run against
/// the bound one shared device and loopback set (`shared_host_sync_bound`), for information.
fn format_shared_host_ratios(
    run: &RunResult,
    target: Target,
    baselines: &Baselines,
) -> Option<String> {
    if !matches!(target, Target::P50AndP99RatioPlusRttMax(_)) {
        return None;
    }
    let bound = shared_host_sync_bound(baselines)?;
    let ratios = RatioSummary::compute(&run.latency_us, &bound);
    Some(format!(
        "(information: against the sync bound on one host, p50 {}  p99 {}; three nodes \
         on one device commit at once, which nodes on separate hosts do not)",
        format_ratio(ratios.p50),
        format_ratio(ratios.p99)
    ))
}

/// The steal time behind a verdict, for runs that measured their own (the replicated
/// ones): a ratio between a baseline and a run that saw different neighbours on a shared
/// host says little about ringlog.
fn format_steal(run: &RunResult, baselines: &Baselines) -> Option<String> {
    let run_steal = run.extra.get(STEAL_KEY).and_then(Value::as_f64)?;
    let known =
        |steal: Option<f64>| steal.map_or_else(|| "unknown".to_owned(), |s| format!("{s:.1}%"));
    Some(format!(
        "(steal, CPU time a hypervisor gave to other guests: {} during the baselines, {} \
         during this run)",
        known(baselines.steal_percent),
        known(Some(run_steal))
    ))
}

/// The measured value a target is about, in the target's own unit, with the computed bound
/// for a latency budget (whose bound comes from other measurements), and both percentiles for
/// a target on two.
fn format_target_actual(
    target: Target,
    outcome: &TargetOutcome,
    ratios: &BaselineRatios,
) -> String {
    let Some(actual) = outcome.actual else {
        let missing = if target.reference().is_some() {
            "the run or baseline it refers to is missing"
        } else {
            "no baseline to compare with"
        };
        return format!("nothing ({missing})");
    };
    match target {
        Target::BandwidthPercentMin(_) | Target::BandwidthPercentOfRunMin { .. } => {
            format!("{actual:.0}%")
        }
        Target::P50RatioMax(_) | Target::P99RatioMax(_) => format!("{actual:.2}x"),
        Target::P50AndP99RatioPlusRttMax(_) => format!(
            "p50 {}  p99 {}",
            format_ratio(ratios.p50_ratio_plus_rtt),
            format_ratio(ratios.p99_ratio_plus_rtt)
        ),
        Target::P50WithinRunPlusRtt { .. } => match outcome.limit {
            Some(budget) => format!("{actual:.0} µs (budget {budget:.0} µs)"),
            None => format!("{actual:.0} µs"),
        },
    }
}

/// "scenario (write path[, ack mode])", e.g. "append_qd1 (direct, quorum)".
fn run_label(run: &RunResult) -> String {
    match &run.ack_mode {
        Some(ack_mode) => format!("{} ({}, {ack_mode})", run.scenario, run.write_path),
        None => format!("{} ({})", run.scenario, run.write_path),
    }
}

/// "1.25x", or "-" without a value.
fn format_ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}x"))
}

/// The ratio cell of a run: latency ratios for QD1 runs, bandwidth share for saturated ones.
pub fn format_vs_baseline(comparison: Comparison, ratios: &BaselineRatios) -> String {
    match comparison {
        Comparison::LatencyQd1 => format!(
            "p50 {}  p99 {}",
            format_ratio(ratios.p50_ratio),
            format_ratio(ratios.p99_ratio)
        ),
        Comparison::LatencyQd1PlusRtt | Comparison::LatencyPlusRttPerPercentile => format!(
            "p50 {}  p99 {}  of fdatasync+RTT",
            format_ratio(ratios.p50_ratio_plus_rtt),
            format_ratio(ratios.p99_ratio_plus_rtt)
        ),
        Comparison::Bandwidth => match ratios.bandwidth_percent {
            Some(percent) => format!("{percent:.0}% of 1 MiB bandwidth"),
            None => "- of 1 MiB bandwidth".to_owned(),
        },
        Comparison::None => "-".to_owned(),
    }
}

/// A byte count in the largest binary unit that divides it: "4 KiB", "1 MiB", "100 B".
pub fn format_size(bytes: u64) -> String {
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{sample_baselines, sample_run};

    #[test]
    fn sizes() {
        let cases = [
            (0, "0 B"),
            (100, "100 B"),
            (4096, "4 KiB"),
            (1536, "1536 B"),
            (MIB, "1 MiB"),
            (MIB + KIB, "1025 KiB"),
            (64 * MIB, "64 MiB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(format_size(bytes), text);
        }
    }

    #[test]
    fn ratio_cells() {
        let ratios = BaselineRatios {
            p50_ratio: Some(1.25),
            p99_ratio: None,
            bandwidth_percent: Some(74.6),
            p50_ratio_plus_rtt: Some(1.5),
            p99_ratio_plus_rtt: Some(1.875),
        };
        assert_eq!(
            format_vs_baseline(Comparison::LatencyQd1, &ratios),
            "p50 1.25x  p99 -"
        );
        assert_eq!(
            format_vs_baseline(Comparison::Bandwidth, &ratios),
            "75% of 1 MiB bandwidth"
        );
        assert_eq!(
            format_vs_baseline(Comparison::LatencyQd1PlusRtt, &ratios),
            "p50 1.50x  p99 1.88x  of fdatasync+RTT"
        );
        assert_eq!(format_vs_baseline(Comparison::None, &ratios), "-");
    }

    // Text columns pad left-aligned, numbers right-aligned, and the last cell is not padded.
    #[test]
    fn aligns_columns() {
        let rows = [
            vec!["name".to_owned(), "n".to_owned(), "note".to_owned()],
            vec!["a".to_owned(), "1000".to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            align_columns(&rows, 1),
            ["name     n  note", "a     1000  x"]
        );
    }

    /// The sample baselines with a loopback 1 KiB round trip of p50 25 µs, p99 100 µs.
    fn baselines_with_rtt() -> Baselines {
        let mut baselines = sample_baselines();
        baselines.loopback_rtt_1k_us = Some(LatencySummary {
            p50: 25,
            p99: 100,
            ..LatencySummary::default()
        });
        baselines
    }

    /// A `replicated_qd1` run under `sync` with the 2x target.
    fn sync_qd1_run() -> RunResult {
        let mut run = sample_run(
            Comparison::LatencyQd1PlusRtt,
            Some(Target::P50AndP99RatioPlusRttMax(2.0)),
        );
        run.scenario = "replicated_qd1".to_owned();
        run.ack_mode = Some("sync".to_owned());
        run
    }

    // A replicated QD1 row shows its ack mode, its ratios to fdatasync + round trip, the floor
    // line they are divided by, and both ratios in its verdict; single-node rows get "-" in
    // the ack column.
    #[test]
    fn renders_replicated_rows() {
        let report = Report::new(
            Environment::collect(std::path::Path::new("/")),
            baselines_with_rtt(),
            vec![sample_run(Comparison::LatencyQd1, None), sync_qd1_run()],
        );
        let text = render(&report);
        assert!(
            text.contains("floor: 4 KiB fdatasync + loopback 1 KiB RTT, per percentile  p50 125"),
            "{text}"
        );
        let row = text
            .lines()
            .find(|line| line.starts_with("replicated_qd1"))
            .unwrap();
        assert!(row.contains(" sync "), "{row}");
        assert!(
            row.ends_with("p50 1.00x  p99 2.00x  of fdatasync+RTT"),
            "{row}"
        );
        let single = text
            .lines()
            .find(|line| line.starts_with("append_qd1"))
            .unwrap();
        assert!(single.contains(" - "), "{single}");
        assert!(
            text.contains("PASS  replicated_qd1 (direct, sync)  target: p50 and p99 each <= 2x"),
            "{text}"
        );
        assert!(text.contains("measured p50 1.00x  p99 2.00x"), "{text}");
        assert!(
            !text.contains("sync bound on one host"),
            "no concurrent baseline: {text}"
        );
        assert!(!text.contains("steal"), "no steal measured: {text}");
    }

    // The steal of the baselines is printed under them, and the verdict of a run that
    // measured its own names both; unmeasured baselines are "unknown".
    #[test]
    fn renders_the_steal_behind_a_verdict() {
        let mut baselines = baselines_with_rtt();
        baselines.steal_percent = Some(12.5);
        let mut run = sync_qd1_run();
        run.extra.insert(STEAL_KEY.into(), serde_json::json!(40.0));
        let report = Report::new(
            Environment::collect(std::path::Path::new("/")),
            baselines.clone(),
            vec![run],
        );
        let text = render(&report);
        assert!(
            text.contains(
                "steal (CPU time a hypervisor gave to other guests) during these baselines  12.5%"
            ),
            "{text}"
        );
        assert!(
            text.contains("12.5% during the baselines, 40.0% during this run)"),
            "{text}"
        );
        // Without the run's own steal the verdict says nothing about it.
        let report = Report::new(
            Environment::collect(std::path::Path::new("/")),
            baselines,
            vec![sync_qd1_run()],
        );
        let text = render(&report);
        assert!(!text.contains("during this run"), "{text}");
        let mut run = sync_qd1_run();
        run.extra.insert(STEAL_KEY.into(), serde_json::json!(3.0));
        let report = Report::new(
            Environment::collect(std::path::Path::new("/")),
            baselines_with_rtt(),
            vec![run],
        );
        let text = render(&report);
        assert!(
            text.contains("unknown during the baselines, 3.0% during this run)"),
            "{text}"
        );
    }

    // With the concurrent-writers baseline (a local cluster), the bound one shared device
    // sets is printed under the floor, and the sync verdict gets the run's ratios to it.
    #[test]
    fn renders_the_shared_host_bound_of_a_local_cluster() {
        let mut baselines = baselines_with_rtt();
        baselines.fdatasync_4k_concurrent_us = Some(LatencySummary {
            p50: 75,
            p99: 300,
            ..LatencySummary::default()
        });
        baselines.fdatasync_4k_concurrent_writer_count = Some(3);
        let report = Report::new(
            Environment::collect(std::path::Path::new("/")),
            baselines,
            vec![sync_qd1_run()],
        );
        let text = render(&report);
        assert!(
            text.contains(
                "sync bound on one host: concurrent fdatasync + 2 x loopback 1 KiB RTT  p50 125  \
                 p90 0  p99 500"
            ),
            "{text}"
        );
        assert!(
            text.contains("against the sync bound on one host, p50 1.00x  p99 2.00x"),
            "{text}"
        );
    }

    // Renders a report with one passing and one failing target and checks that the rows, the
    // ratio cells and both verdict lines appear.
    #[test]
    fn renders_rows_and_verdicts() {
        let report = Report::new(
            Environment::collect(std::path::Path::new("/")),
            sample_baselines(),
            vec![
                sample_run(Comparison::LatencyQd1, Some(Target::P50RatioMax(1.3))),
                sample_run(
                    Comparison::Bandwidth,
                    Some(Target::BandwidthPercentMin(80.0)),
                ),
            ],
        );
        let text = render(&report);
        assert!(text.contains("p50 1.25x  p99 2.50x"), "{text}");
        assert!(text.contains("75% of 1 MiB bandwidth"), "{text}");
        assert!(
            text.contains(
                "PASS  append_qd1 (direct)  target: p50 <= 1.3x baseline, measured 1.25x"
            ),
            "{text}"
        );
        assert!(
            text.contains("FAIL  append_qd1 (direct)  target: >= 80% of baseline bandwidth"),
            "{text}"
        );
        assert!(
            text.lines().all(|line| line.chars().count() <= 140),
            "{text}"
        );

        let empty = Report {
            runs: Vec::new(),
            ..report
        };
        assert!(render(&empty).contains("runs: none"));
    }
}
