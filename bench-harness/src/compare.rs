//! `--compare FILE.json` and `ringlog-bench compare`: one report against an earlier one, as
//! ratios (new / old).
//!
//! Runs are matched by (scenario, ack mode, write path, payload); when a report holds several
//! runs with the same key they are matched in order. For each matched run the ratio of
//! records/s and of each latency percentile (p50, p90, p99, p99.9, p99.99, max) is printed,
//! and a change beyond ±`CHANGE_FLAG_PERCENT`% is flagged and named as better or worse (more
//! records/s is better, more latency worse). Runs found on one side only are listed. The
//! device baselines are compared too: a run that moved with its baseline says more about the
//! machine than about ringlog. Reports from different machines are compared all the same,
//! with a note (STYLE.md §12: compare within one machine class).
//!
//! Both reports go through the same reader (`ReportFigures::from_json`), which checks the keys
//! of the JSON schema documented in `report.rs`, so a file that is not a ringlog-bench report
//! is refused with the first key that is missing or has the wrong type, before any
//! measuring starts. A ratio whose old value is 0 is shown as "-" and never flagged.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use crate::table::{align_columns, format_size};

/// A ratio further than this from 1.00 (in percent) is flagged.
pub const CHANGE_FLAG_PERCENT: f64 = 10.0;

/// The latency keys of the JSON (`latency_us`) and their column names.
const LATENCY_COLUMNS: [(&str, &str); 6] = [
    ("p50", "p50"),
    ("p90", "p90"),
    ("p99", "p99"),
    ("p999", "p99.9"),
    ("p9999", "p99.99"),
    ("max", "max"),
];

/// Environment keys that, when they differ, make a comparison one across machines.
const MACHINE_KEYS: [&str; 4] = ["cpu", "kernel", "filesystem", "device_model"];

/// What identifies a run across reports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunKey {
    scenario: String,
    ack_mode: Option<String>,
    write_path: String,
    payload_bytes: u64,
}

impl RunKey {
    /// "wal_qd1 direct 1 KiB", or "replicated_qd1 direct sync 1 KiB".
    fn label(&self) -> String {
        let ack_mode = self
            .ack_mode
            .as_ref()
            .map_or_else(String::new, |mode| format!(" {mode}"));
        format!(
            "{} {}{ack_mode} {}",
            self.scenario,
            self.write_path,
            format_size(self.payload_bytes)
        )
    }
}

/// The figures of one run that are compared.
#[derive(Clone, Debug, PartialEq)]
struct RunFigures {
    key: RunKey,
    records_per_s: f64,
    /// In `LATENCY_COLUMNS` order, µs.
    latency_us: [u64; 6],
}

/// The compared figures of a whole report.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportFigures {
    /// Environment values by key (strings only; absent keys are left out).
    environment: BTreeMap<String, String>,
    /// 4 KiB write+fdatasync at queue depth 1, in `LATENCY_COLUMNS` order, µs.
    fdatasync_4k_qd1_us: [u64; 6],
    write_fdatasync_1m_mb_per_s: f64,
    runs: Vec<RunFigures>,
}

impl ReportFigures {
    /// Reads a report's JSON, checking the schema keys it relies on; the error names the
    /// first key that is missing or of the wrong type.
    pub fn from_json(json: &Value) -> Result<ReportFigures, String> {
        let object = json.as_object().ok_or("the top level is not an object")?;
        let environment = object
            .get("environment")
            .and_then(Value::as_object)
            .ok_or("no `environment` object")?;
        let baselines = object.get("baselines").ok_or("no `baselines` object")?;
        let runs = object
            .get("runs")
            .and_then(Value::as_array)
            .ok_or("no `runs` array")?;
        let environment = environment
            .iter()
            .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
            .collect();
        Ok(ReportFigures {
            environment,
            fdatasync_4k_qd1_us: latency_of(baselines, "fdatasync_4k_qd1_us", "baselines")?,
            write_fdatasync_1m_mb_per_s: number(
                baselines,
                "write_fdatasync_1m_mb_per_s",
                "baselines",
            )?,
            runs: runs
                .iter()
                .enumerate()
                .map(|(index, run)| run_figures(run, &format!("runs[{index}]")))
                .collect::<Result<_, _>>()?,
        })
    }
}

fn run_figures(run: &Value, at: &str) -> Result<RunFigures, String> {
    let ack_mode = match run.get("ack_mode") {
        None | Some(Value::Null) => None,
        Some(Value::String(mode)) => Some(mode.clone()),
        Some(_) => return Err(format!("{at}.ack_mode is neither a string nor null")),
    };
    Ok(RunFigures {
        key: RunKey {
            scenario: string(run, "scenario", at)?,
            ack_mode,
            write_path: string(run, "write_path", at)?,
            payload_bytes: integer(run, "payload_bytes", at)?,
        },
        records_per_s: number(run, "records_per_s", at)?,
        latency_us: latency_of(run, "latency_us", at)?,
    })
}

fn string(value: &Value, key: &str, at: &str) -> Result<String, String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{at}.{key} is missing or not a string"))
}

fn integer(value: &Value, key: &str, at: &str) -> Result<u64, String> {
    value
        .get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{at}.{key} is missing or not an integer"))
}

fn number(value: &Value, key: &str, at: &str) -> Result<f64, String> {
    value
        .get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("{at}.{key} is missing or not a number"))
}

fn latency_of(value: &Value, key: &str, at: &str) -> Result<[u64; 6], String> {
    let summary = value
        .get(key)
        .ok_or_else(|| format!("{at}.{key} is missing"))?;
    let mut latency_us = [0; 6];
    for (slot, (name, _)) in latency_us.iter_mut().zip(LATENCY_COLUMNS) {
        *slot = integer(summary, name, &format!("{at}.{key}"))?;
    }
    Ok(latency_us)
}

/// Reads the earlier report of `--compare`; a clear error if it is not one.
pub fn load_earlier(path: &Path) -> anyhow::Result<ReportFigures> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a ringlog-bench report: not JSON", path.display()))?;
    ReportFigures::from_json(&json).map_err(|problem| {
        anyhow::anyhow!(
            "{} is not a ringlog-bench report (its JSON, from --json): {problem}",
            path.display()
        )
    })
}

/// new / old, or None when old is 0 (or either is not a finite number).
fn ratio(new: f64, old: f64) -> Option<f64> {
    let usable = old.is_finite() && new.is_finite() && old != 0.0;
    usable.then(|| new / old)
}

/// Whether a ratio is further than `CHANGE_FLAG_PERCENT` from 1.
fn flagged(ratio: Option<f64>) -> bool {
    ratio.is_some_and(|ratio| (100.0 * (ratio - 1.0)).abs() > CHANGE_FLAG_PERCENT)
}

/// The ratios of one matched run.
#[derive(Clone, Debug, PartialEq)]
struct MatchedRun {
    key: RunKey,
    records_per_s: Option<f64>,
    latency: [Option<f64>; 6],
}

impl MatchedRun {
    fn new(new: &RunFigures, old: &RunFigures) -> MatchedRun {
        let mut latency = [None; 6];
        for (index, slot) in latency.iter_mut().enumerate() {
            *slot = ratio(new.latency_us[index] as f64, old.latency_us[index] as f64);
        }
        MatchedRun {
            key: new.key.clone(),
            records_per_s: ratio(new.records_per_s, old.records_per_s),
            latency,
        }
    }

    /// "worse: p99 1.25x; better: records/s 1.30x", or "-" when nothing moved beyond the
    /// threshold. Fewer records/s and more latency are worse.
    fn changes(&self) -> String {
        let mut worse = Vec::new();
        let mut better = Vec::new();
        if let Some(value) = self.records_per_s.filter(|_| flagged(self.records_per_s)) {
            let side = if value < 1.0 { &mut worse } else { &mut better };
            side.push(format!("records/s {value:.2}x"));
        }
        for ((_, column), value) in LATENCY_COLUMNS.iter().zip(self.latency) {
            if let Some(value) = value.filter(|_| flagged(value)) {
                let side = if value > 1.0 { &mut worse } else { &mut better };
                side.push(format!("{column} {value:.2}x"));
            }
        }
        let mut parts = Vec::new();
        if !worse.is_empty() {
            parts.push(format!("worse: {}", worse.join(", ")));
        }
        if !better.is_empty() {
            parts.push(format!("better: {}", better.join(", ")));
        }
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// A report compared with an earlier one.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportComparison {
    matched: Vec<MatchedRun>,
    only_new: Vec<RunKey>,
    only_old: Vec<RunKey>,
    /// fdatasync 4 KiB QD1 ratios (`LATENCY_COLUMNS` order) and 1 MiB bandwidth ratio.
    fdatasync_4k_qd1: [Option<f64>; 6],
    write_fdatasync_1m_mb_per_s: Option<f64>,
    /// "cpu: A (earlier) vs B (this report)" for each machine key that differs.
    machine_differences: Vec<String>,
    /// Source revisions (earlier, this run), when both are known.
    git_shas: Option<(String, String)>,
}

/// Compares `new` with `old` (both read by `ReportFigures::from_json`).
pub fn compare(new: &ReportFigures, old: &ReportFigures) -> ReportComparison {
    // Old runs by key, as indices in report order: the first unmatched one is taken.
    let mut old_by_key: BTreeMap<&RunKey, VecDeque<usize>> = BTreeMap::new();
    for (index, run) in old.runs.iter().enumerate() {
        old_by_key.entry(&run.key).or_default().push_back(index);
    }
    let mut old_matched = vec![false; old.runs.len()];
    let mut matched = Vec::new();
    let mut only_new = Vec::new();
    for run in &new.runs {
        match old_by_key.get_mut(&run.key).and_then(VecDeque::pop_front) {
            Some(index) => {
                old_matched[index] = true;
                matched.push(MatchedRun::new(run, &old.runs[index]));
            }
            None => only_new.push(run.key.clone()),
        }
    }
    let only_old = old
        .runs
        .iter()
        .zip(old_matched)
        .filter(|(_, matched)| !matched)
        .map(|(run, _)| run.key.clone())
        .collect();
    let mut fdatasync_4k_qd1 = [None; 6];
    for (index, slot) in fdatasync_4k_qd1.iter_mut().enumerate() {
        *slot = ratio(
            new.fdatasync_4k_qd1_us[index] as f64,
            old.fdatasync_4k_qd1_us[index] as f64,
        );
    }
    ReportComparison {
        matched,
        only_new,
        only_old,
        fdatasync_4k_qd1,
        write_fdatasync_1m_mb_per_s: ratio(
            new.write_fdatasync_1m_mb_per_s,
            old.write_fdatasync_1m_mb_per_s,
        ),
        machine_differences: machine_differences(&new.environment, &old.environment),
        git_shas: old
            .environment
            .get("git_sha")
            .zip(new.environment.get("git_sha"))
            .map(|(old_sha, new_sha)| (old_sha.clone(), new_sha.clone())),
    }
}

fn machine_differences(
    new: &BTreeMap<String, String>,
    old: &BTreeMap<String, String>,
) -> Vec<String> {
    MACHINE_KEYS
        .iter()
        .filter_map(|key| {
            let (old_value, new_value) = (old.get(*key)?, new.get(*key)?);
            (old_value != new_value)
                .then(|| format!("{key}: {old_value} (earlier) vs {new_value} (this report)"))
        })
        .collect()
}

/// "1.00x", or "-" without a ratio.
fn format_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}x"))
}

/// The comparison as text, ending in a newline; `earlier` names the earlier report.
pub fn render(comparison: &ReportComparison, earlier: &str) -> String {
    let mut lines = vec![
        String::new(),
        format!(
            "compared with {earlier} (ratios this report / earlier; changes beyond \u{b1}{}% \
             are named):",
            CHANGE_FLAG_PERCENT
        ),
    ];
    if let Some((old_sha, new_sha)) = &comparison.git_shas {
        lines.push(format!(
            "  git          {old_sha} (earlier) -> {new_sha} (this report)"
        ));
    }
    for difference in &comparison.machine_differences {
        lines.push(format!(
            "  note: another machine, {difference}; ratios across machines say little"
        ));
    }
    let device: Vec<String> = LATENCY_COLUMNS
        .iter()
        .zip(comparison.fdatasync_4k_qd1)
        .map(|((_, column), ratio)| format!("{column} {}", format_ratio(ratio)))
        .collect();
    lines.push(format!(
        "  baseline 4 KiB write+fdatasync QD1  {}",
        device.join("  ")
    ));
    lines.push(format!(
        "  baseline 1 MiB write+fdatasync      MB/s {}",
        format_ratio(comparison.write_fdatasync_1m_mb_per_s)
    ));
    lines.push(String::new());
    if comparison.matched.is_empty() {
        lines.push("no run of this report matches one of the earlier report".to_owned());
    } else {
        lines.extend(render_matched(&comparison.matched));
    }
    for key in &comparison.only_new {
        lines.push(format!("  only in this report: {}", key.label()));
    }
    for key in &comparison.only_old {
        lines.push(format!("  only in {earlier}: {}", key.label()));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn render_matched(matched: &[MatchedRun]) -> Vec<String> {
    let mut header = vec!["scenario", "path", "ack", "payload", "records/s"];
    header.extend(LATENCY_COLUMNS.iter().map(|(_, column)| *column));
    header.push("changes");
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for run in matched {
        let mut cells = vec![
            run.key.scenario.clone(),
            run.key.write_path.clone(),
            run.key.ack_mode.clone().unwrap_or_else(|| "-".to_owned()),
            format_size(run.key.payload_bytes),
            format_ratio(run.records_per_s),
        ];
        cells.extend(run.latency.iter().map(|ratio| format_ratio(*ratio)));
        cells.push(run.changes());
        rows.push(cells);
    }
    align_columns(&rows, 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(scenario: &str, ack_mode: Value, records_per_s: f64, p99: u64) -> Value {
        json!({
            "scenario": scenario,
            "write_path": "direct",
            "ack_mode": ack_mode,
            "payload_bytes": 1024,
            "concurrency": 1,
            "records_per_s": records_per_s,
            "mb_per_s": 1.0,
            "latency_us": {"p50": 100, "p90": 150, "p99": p99, "p999": 400, "p9999": 800,
                           "max": 1000},
            "vs_baseline": {"comparison": "latency_qd1"},
        })
    }

    fn report(cpu: &str, sha: &str, p50: u64, runs: Vec<Value>) -> Value {
        json!({
            "environment": {"kernel": "6.1", "cpu": cpu, "filesystem": "ext4",
                            "device_model": "vda", "git_sha": sha, "cores": 2},
            "baselines": {
                "fdatasync_4k_qd1_us": {"p50": p50, "p90": 100, "p99": 200, "p999": 300,
                                        "p9999": 400, "max": 500},
                "write_fdatasync_1m_mb_per_s": 1000.0,
                "o_direct": true,
            },
            "runs": runs,
        })
    }

    fn figures(json: &Value) -> ReportFigures {
        ReportFigures::from_json(json).unwrap()
    }

    // Two hand-built reports: runs are matched by (scenario, ack mode, path, payload) even
    // out of order, ratios are new/old, a >10% change is named on the right side (fewer
    // records/s and higher p99 are worse, lower p99 better), and unmatched runs are listed.
    #[test]
    fn matches_runs_and_flags_changes_beyond_ten_percent() {
        let old = report(
            "cpu A",
            "aaa",
            50,
            vec![
                run("wal_qd1", Value::Null, 1000.0, 200),
                run("replicated_qd1", json!("sync"), 1000.0, 200),
                run("replicated_qd1", json!("async"), 1000.0, 200),
                run("gone", Value::Null, 10.0, 200),
            ],
        );
        let new = report(
            "cpu A",
            "bbb",
            55,
            vec![
                run("replicated_qd1", json!("async"), 1050.0, 150),
                run("wal_qd1", Value::Null, 800.0, 250),
                run("replicated_qd1", json!("sync"), 1000.0, 209),
                run("fresh", Value::Null, 10.0, 200),
            ],
        );
        let comparison = compare(&figures(&new), &figures(&old));
        assert_eq!(comparison.matched.len(), 3);
        let wal = &comparison.matched[1];
        assert_eq!(wal.key.scenario, "wal_qd1");
        assert_eq!(wal.records_per_s, Some(0.8));
        assert_eq!(wal.latency[2], Some(1.25));
        assert_eq!(wal.latency[0], Some(1.0));
        assert_eq!(wal.changes(), "worse: records/s 0.80x, p99 1.25x");
        assert_eq!(comparison.matched[0].changes(), "better: p99 0.75x");
        assert_eq!(comparison.matched[2].changes(), "-", "+4.5% is within 10%");
        assert_eq!(comparison.only_new.len(), 1);
        assert_eq!(comparison.only_new[0].scenario, "fresh");
        assert_eq!(comparison.only_old.len(), 1);
        assert_eq!(comparison.only_old[0].scenario, "gone");
        assert_eq!(comparison.fdatasync_4k_qd1[0], Some(1.1));
        assert!(comparison.machine_differences.is_empty());

        let text = render(&comparison, "old.json");
        assert!(
            text.contains("git          aaa (earlier) -> bbb (this report)"),
            "{text}"
        );
        assert!(
            text.contains("baseline 4 KiB write+fdatasync QD1  p50 1.10x"),
            "{text}"
        );
        let row = text
            .lines()
            .find(|line| line.starts_with("wal_qd1"))
            .unwrap();
        assert!(row.contains("0.80x"), "{row}");
        assert!(row.ends_with("worse: records/s 0.80x, p99 1.25x"), "{row}");
        let async_row = text
            .lines()
            .find(|line| line.starts_with("replicated_qd1") && line.contains("async"))
            .unwrap();
        assert!(async_row.ends_with("better: p99 0.75x"), "{async_row}");
        assert!(
            text.contains("only in this report: fresh direct 1 KiB"),
            "{text}"
        );
        assert!(
            text.contains("only in old.json: gone direct 1 KiB"),
            "{text}"
        );
    }

    // A report compared with itself: every ratio 1.00x, nothing flagged or unmatched, and
    // duplicated keys pair up in order.
    #[test]
    fn a_report_against_itself_is_all_ones() {
        let json = report(
            "cpu A",
            "aaa",
            50,
            vec![
                run("wal_saturated", Value::Null, 1000.0, 200),
                run("wal_saturated", Value::Null, 2000.0, 300),
            ],
        );
        let comparison = compare(&figures(&json), &figures(&json));
        assert_eq!(comparison.matched.len(), 2);
        for run in &comparison.matched {
            assert_eq!(run.records_per_s, Some(1.0));
            assert!(run.latency.iter().all(|ratio| *ratio == Some(1.0)));
            assert_eq!(run.changes(), "-");
        }
        assert!(comparison.only_new.is_empty() && comparison.only_old.is_empty());
        let text = render(&comparison, "same.json");
        let rows: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("wal_"))
            .collect();
        assert_eq!(rows.len(), 2);
        for row in rows {
            assert_eq!(row.matches("1.00x").count(), 7, "{row}");
        }
    }

    // Old values of 0 give no ratio ("-") and no flag; another CPU is noted.
    #[test]
    fn zero_old_values_and_another_machine() {
        let mut old = report("cpu A", "aaa", 0, vec![run("wal_qd1", Value::Null, 0.0, 0)]);
        old["runs"][0]["latency_us"]["p50"] = json!(0);
        let new = report(
            "cpu B",
            "aaa",
            50,
            vec![run("wal_qd1", Value::Null, 10.0, 200)],
        );
        let comparison = compare(&figures(&new), &figures(&old));
        let run = &comparison.matched[0];
        assert_eq!(run.records_per_s, None);
        assert_eq!(run.latency[0], None);
        assert_eq!(run.latency[2], None);
        assert_eq!(run.changes(), "-");
        assert_eq!(
            comparison.machine_differences,
            ["cpu: cpu A (earlier) vs cpu B (this report)"]
        );
        let text = render(&comparison, "old.json");
        assert!(text.contains("note: another machine, cpu: cpu A"), "{text}");
    }

    // Documents that are not reports are refused, naming what is wrong.
    #[test]
    fn refuses_what_is_not_a_report() {
        let valid = report("cpu", "sha", 50, vec![run("wal_qd1", Value::Null, 1.0, 2)]);
        let mut no_p99 = valid.clone();
        no_p99["runs"][0]["latency_us"]
            .as_object_mut()
            .unwrap()
            .remove("p99");
        let mut bad_ack = valid.clone();
        bad_ack["runs"][0]["ack_mode"] = json!(3);
        let mut no_bandwidth = valid.clone();
        no_bandwidth["baselines"]
            .as_object_mut()
            .unwrap()
            .remove("write_fdatasync_1m_mb_per_s");
        let cases = [
            (json!([1, 2]), "the top level is not an object"),
            (json!({"runs": []}), "no `environment` object"),
            (
                json!({"environment": {}, "baselines": {}}),
                "no `runs` array",
            ),
            (
                no_p99,
                "runs[0].latency_us.p99 is missing or not an integer",
            ),
            (bad_ack, "runs[0].ack_mode is neither a string nor null"),
            (
                no_bandwidth,
                "baselines.write_fdatasync_1m_mb_per_s is missing or not a number",
            ),
        ];
        for (json, problem) in cases {
            assert_eq!(ReportFigures::from_json(&json).unwrap_err(), problem);
        }
        // Absent ack_mode (older reports) reads as null.
        let mut no_ack = valid;
        no_ack["runs"][0]
            .as_object_mut()
            .unwrap()
            .remove("ack_mode");
        assert_eq!(figures(&no_ack).runs[0].key.ack_mode, None);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cargo.json");
        fs::write(&path, "[package]\nname = \"x\"\n").unwrap();
        let error = format!("{:#}", load_earlier(&path).unwrap_err());
        assert!(
            error.contains("is not a ringlog-bench report: not JSON"),
            "{error}"
        );
        fs::write(&path, "{\"name\": \"x\"}").unwrap();
        let error = format!("{:#}", load_earlier(&path).unwrap_err());
        assert!(
            error.ends_with(
                "is not a ringlog-bench report (its JSON, from --json): no `environment` object"
            ),
            "{error}"
        );
    }
}
