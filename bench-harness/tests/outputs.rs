//! End-to-end checks of the output flags `--hgrm`, `--plot` and `--compare`, and of the
//! `compare` subcommand, on a real (short) `wal --quick` run.
//!
//! One run writes the JSON, a `.hgrm` file per run and the SVG plot, and compares itself with
//! a hand-built earlier report; the test then parses every `.hgrm` file back (monotone rows
//! ending at percentile 1.0 and the total count, the footer's max and count), counts the
//! plot's curves (one 2 px polyline per run, one 4 px polyline for the floor), and runs
//! `compare` of the JSON against itself, which must print 1.00x everywhere. A `--compare`
//! file that is not a report must fail the command before anything is measured.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn run_bench(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringlog-bench"))
        .args(arguments)
        .output()
        .expect("the ringlog-bench binary starts")
}

fn assert_success(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}, stderr:\n{stderr}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An earlier report by hand: `wal_qd1` (which the run has) with round figures, and a run
/// the new report lacks.
fn earlier_report() -> Value {
    let latency = json!({"p50": 100, "p90": 150, "p99": 200, "p999": 300, "p9999": 400,
                         "max": 500});
    let run = |scenario: &str| {
        json!({"scenario": scenario, "write_path": "direct", "ack_mode": null,
               "payload_bytes": 1024, "concurrency": 1, "records_per_s": 1000.0,
               "mb_per_s": 1.0, "latency_us": latency.clone(),
               "vs_baseline": {"comparison": "latency_qd1"}})
    };
    json!({
        "environment": {"kernel": "k", "cpu": "c", "filesystem": "f", "device_model": "d",
                        "git_sha": "earlier"},
        "baselines": {"fdatasync_4k_qd1_us": latency, "write_fdatasync_1m_mb_per_s": 100.0},
        "runs": [run("wal_qd1"), run("retired_scenario")],
    })
}

/// Parses a `.hgrm` file: rows of (value, percentile, total count), then the footer's max
/// and total count. Panics on anything out of place.
fn parse_hgrm(text: &str) -> (Vec<(f64, f64, u64)>, f64, u64) {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    assert_eq!(lines.next(), Some(""));
    let mut rows = Vec::new();
    let mut footer = Vec::new();
    for line in lines {
        if line.starts_with("#[") {
            footer.push(line.to_owned());
            continue;
        }
        let columns: Vec<&str> = line.split_whitespace().collect();
        assert!(columns.len() == 4 || columns.len() == 3, "{line}");
        rows.push((
            columns[0].parse().expect("a value"),
            columns[1].parse().expect("a percentile"),
            columns[2].parse().expect("a count"),
        ));
    }
    assert_eq!(footer.len(), 3, "{text}");
    let max_line = footer[1].replace(['#', '[', ']', ','], " ");
    let words: Vec<&str> = max_line.split_whitespace().collect();
    // "Max = 1.234 Total count = 567"
    assert_eq!(words[0], "Max", "{max_line}");
    assert_eq!(words[3..6], ["Total", "count", "="], "{max_line}");
    (
        rows,
        words[2].parse().expect("the max"),
        words[6].parse().expect("the total count"),
    )
}

fn assert_hgrm_file(path: &Path) {
    let text = fs::read_to_string(path).expect("the .hgrm file reads");
    let (rows, max, total_count) = parse_hgrm(&text);
    assert!(total_count > 0, "{}: empty", path.display());
    assert!(rows.len() >= 2, "{}: {text}", path.display());
    for pair in rows.windows(2) {
        assert!(pair[0].0 <= pair[1].0, "{}: value {pair:?}", path.display());
        assert!(
            pair[0].1 <= pair[1].1,
            "{}: percentile {pair:?}",
            path.display()
        );
        assert!(pair[0].2 <= pair[1].2, "{}: count {pair:?}", path.display());
    }
    let last = rows.last().expect("rows");
    assert_eq!(last.1, 1.0, "{}", path.display());
    assert_eq!(last.2, total_count, "{}", path.display());
    assert_eq!(last.0, max, "{}", path.display());
}

/// Polylines of one stroke width: the plot draws runs 2 px wide, the floor 4 px, and only
/// axes and ticks otherwise (1 px).
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

#[test]
fn wal_quick_writes_hgrm_files_a_plot_and_compares() {
    let scratch = tempfile::tempdir().unwrap();
    let path = |name: &str| scratch.path().join(name).to_str().unwrap().to_owned();
    fs::write(path("earlier.json"), earlier_report().to_string()).unwrap();
    let stdout = assert_success(&run_bench(&[
        "wal",
        "--quick",
        "--write-path",
        "direct",
        "--json",
        &path("out.json"),
        "--hgrm",
        &path("hgrm"),
        "--plot",
        &path("plot.svg"),
        "--compare",
        &path("earlier.json"),
        "--dir",
        &path("data"),
        // Small logs and short runs, as in tests/cli.rs: a debug build checks the outputs.
        "--segment-size-bytes",
        "4194304",
        "--retention-bytes",
        "16777216",
        "--duration-secs",
        "1",
        "--warmup-secs",
        "0",
    ]));

    let report: Value =
        serde_json::from_str(&fs::read_to_string(path("out.json")).unwrap()).unwrap();
    for key in ["environment", "baselines", "runs"] {
        assert!(report.get(key).is_some(), "no {key}: {report}");
    }
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(
        runs.len(),
        3,
        "wal_qd1, wal_saturated 16 KiB and 1 KiB: {report}"
    );
    for run in runs {
        for key in [
            "scenario",
            "write_path",
            "ack_mode",
            "payload_bytes",
            "records_per_s",
            "latency_us",
        ] {
            assert!(run.get(key).is_some(), "run without {key}: {run}");
        }
        assert!(
            run.get("histogram").is_none(),
            "histograms stay out of the JSON: {run}"
        );
    }

    let mut hgrm_names: Vec<String> = fs::read_dir(path("hgrm"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    hgrm_names.sort_unstable();
    assert_eq!(
        hgrm_names,
        [
            "wal_qd1-direct-1KiB.hgrm",
            "wal_saturated-direct-16KiB.hgrm",
            "wal_saturated-direct-1KiB.hgrm",
        ]
    );
    for name in &hgrm_names {
        assert_hgrm_file(&scratch.path().join("hgrm").join(name));
    }

    // One plot of every run, labels reduced to what differs (the write path, shared, goes
    // to the title), and one plot per scenario beside it.
    let svg = fs::read_to_string(path("plot.svg")).unwrap();
    assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(polylines_of_width(&svg, 2), runs.len(), "one curve per run");
    assert_eq!(polylines_of_width(&svg, 4), 1, "the fdatasync floor");
    for label in [
        ">wal_qd1 1 KiB<",
        ">wal_saturated 16 KiB<",
        ">wal_saturated 1 KiB<",
        ">floor: 4 KiB fdatasync<",
        "latency by percentile, direct (git ",
    ] {
        assert!(
            svg.replace('\n', "").contains(label),
            "{label} not in the plot"
        );
    }
    for (scenario, curves) in [("wal_qd1", 1), ("wal_saturated", 2)] {
        let svg = fs::read_to_string(path(&format!("plot-{scenario}.svg"))).unwrap();
        assert_eq!(polylines_of_width(&svg, 2), curves, "{scenario}");
        assert_eq!(polylines_of_width(&svg, 4), 1, "{scenario}");
    }

    // --compare against the hand-built report: wal_qd1 matched, the rest listed.
    let (_, comparison) = stdout
        .split_once("compared with ")
        .unwrap_or_else(|| panic!("no comparison:\n{stdout}"));
    let row = comparison
        .lines()
        .find(|line| line.starts_with("wal_qd1 "))
        .unwrap_or_else(|| panic!("no wal_qd1 comparison row:\n{stdout}"));
    // scenario, path, ack "-", "1 KiB", then records/s and the six percentiles as ratios.
    let cells: Vec<&str> = row.split_whitespace().collect();
    for cell in &cells[5..12] {
        let ratio = cell
            .strip_suffix('x')
            .unwrap_or_else(|| panic!("{cell} in {row}"));
        assert!(ratio.parse::<f64>().unwrap() > 0.0, "{row}");
    }
    assert!(
        comparison.contains("only in this report: wal_saturated direct 16 KiB"),
        "{stdout}"
    );
    assert!(
        comparison.contains("retired_scenario direct 1 KiB"),
        "{stdout}"
    );

    // The JSON compared with itself: every ratio 1.00x, nothing unmatched.
    let stdout = assert_success(&run_bench(&[
        "compare",
        &path("out.json"),
        &path("out.json"),
    ]));
    assert!(
        !stdout.contains("ringlog-bench (latency"),
        "no run table: {stdout}"
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("wal_"))
        .collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for row in rows {
        assert_eq!(row.matches("1.00x").count(), 7, "{row}");
        assert!(row.ends_with(" -"), "nothing flagged: {row}");
    }
    assert!(!stdout.contains("only in"), "{stdout}");
}

// A --compare file that is not a report stops the command before it measures anything (no
// data directory is created), and says what is wrong.
#[test]
fn compare_refuses_a_file_that_is_not_a_report() {
    let scratch = tempfile::tempdir().unwrap();
    let not_a_report = scratch.path().join("Cargo.json");
    fs::write(&not_a_report, r#"{"package": {"name": "x"}}"#).unwrap();
    let data_dir = scratch.path().join("data");
    let output = run_bench(&[
        "wal",
        "--quick",
        "--compare",
        not_a_report.to_str().unwrap(),
        "--dir",
        data_dir.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not a ringlog-bench report")
            && stderr.contains("no `environment` object"),
        "{stderr}"
    );
    assert!(!data_dir.exists(), "nothing measured");
    let output = run_bench(&["compare", not_a_report.to_str().unwrap(), "missing.json"]);
    assert!(!output.status.success());
}
