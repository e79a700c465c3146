//! Results, their comparison with the baselines of the same run, and the JSON report.
//!
//! A scenario produces `RunResult`s; `Report` pairs them with the `Environment` and the
//! `Baselines` measured in the same process, and derives for each run its ratios to the
//! baselines and whether it met its `Target`. Ratios are computed here and only here, by the
//! pure functions `latency_ratio` and `bandwidth_percent`, so the table and the JSON can never
//! disagree. Units: latencies in µs, bandwidth in MB/s with MB = 10^6 bytes.
//!
//! JSON layout (keys are stable; consumers may rely on them):
//! `{"environment": {..}, "baselines": {"fdatasync_4k_qd1_us": {p50..max},
//! "write_fdatasync_1m_mb_per_s": N, ..}, "runs": [{"scenario", "write_path", "ack_mode"?,
//! "payload_bytes", "concurrency", "records_per_s", "mb_per_s", "latency_us": {p50..max},
//! "vs_baseline": {..}, "target"?: {.., "met"}, "extra"?: {..}}]}`

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::baseline::Baselines;
use crate::environment::Environment;

/// Bytes in the MB of every `mb_per_s` in the harness (decimal, as storage vendors use).
pub const MB_BYTES: f64 = 1e6;

/// Percentiles of a latency histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// Largest recorded value.
    pub max: u64,
}

impl LatencySummary {
    /// Summarises a histogram of microsecond values (see `latency::new_histogram`). An empty
    /// histogram summarises to all zeros.
    pub fn from_histogram(histogram: &Histogram<u64>) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            p9999: histogram.value_at_quantile(0.9999),
            max: histogram.max(),
        }
    }
}

/// `count` events over `elapsed`, per second (0 when nothing was measured).
pub fn per_s(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// `bytes` over `elapsed` in MB/s (MB = 10^6 bytes).
pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    per_s(bytes, elapsed) / MB_BYTES
}

/// Which baseline a run is judged against, which decides the ratios shown for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// A queue-depth-1 latency run: p50 and p99 against the 4 KiB write+fdatasync baseline.
    LatencyQd1,
    /// A saturated run: MB/s against the 1 MiB write+fdatasync bandwidth baseline.
    Bandwidth,
    /// Nothing to compare with (yet).
    #[default]
    None,
}

/// What a scenario promises about a run, checked against this run's baselines.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// p50 at most this many times the 4 KiB QD1 baseline's p50.
    P50RatioMax(f64),
    /// p99 at most this many times the 4 KiB QD1 baseline's p99.
    P99RatioMax(f64),
    /// MB/s at least this percentage of the 1 MiB baseline's MB/s.
    BandwidthPercentMin(f64),
}

/// A target's verdict for one run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TargetOutcome {
    /// The measured ratio or percentage the target is about (None: no baseline to divide by).
    pub actual: Option<f64>,
    /// Whether the target held; a target that cannot be evaluated is not met.
    pub met: bool,
}

impl Target {
    /// Human-readable form, e.g. "p50 <= 1.3x baseline".
    pub fn description(&self) -> String {
        match self {
            Target::P50RatioMax(limit) => format!("p50 <= {limit}x baseline"),
            Target::P99RatioMax(limit) => format!("p99 <= {limit}x baseline"),
            Target::BandwidthPercentMin(limit) => format!(">= {limit}% of baseline bandwidth"),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Target::P50RatioMax(_) => "p50_ratio_max",
            Target::P99RatioMax(_) => "p99_ratio_max",
            Target::BandwidthPercentMin(_) => "bandwidth_percent_min",
        }
    }

    fn limit(&self) -> f64 {
        match *self {
            Target::P50RatioMax(limit)
            | Target::P99RatioMax(limit)
            | Target::BandwidthPercentMin(limit) => limit,
        }
    }

    /// Checks the target against a run's ratios.
    pub fn evaluate(&self, ratios: &BaselineRatios) -> TargetOutcome {
        let (actual, met): (Option<f64>, fn(f64, f64) -> bool) = match self {
            Target::P50RatioMax(_) => (ratios.p50_ratio, |actual, limit| actual <= limit),
            Target::P99RatioMax(_) => (ratios.p99_ratio, |actual, limit| actual <= limit),
            Target::BandwidthPercentMin(_) => {
                (ratios.bandwidth_percent, |actual, limit| actual >= limit)
            }
        };
        TargetOutcome {
            actual,
            met: actual.is_some_and(|actual| met(actual, self.limit())),
        }
    }
}

/// A run's standing relative to the baselines; None where the baseline is zero or absent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BaselineRatios {
    /// Run p50 / baseline 4 KiB QD1 p50.
    pub p50_ratio: Option<f64>,
    /// Run p99 / baseline 4 KiB QD1 p99.
    pub p99_ratio: Option<f64>,
    /// 100 * run MB/s / baseline 1 MiB MB/s.
    pub bandwidth_percent: Option<f64>,
}

impl BaselineRatios {
    /// All ratios of a run's latency and bandwidth to the baselines.
    pub fn compute(
        latency_us: &LatencySummary,
        mb_per_s: f64,
        baselines: &Baselines,
    ) -> BaselineRatios {
        let baseline_us = &baselines.fdatasync_4k_qd1_us;
        BaselineRatios {
            p50_ratio: latency_ratio(latency_us.p50, baseline_us.p50),
            p99_ratio: latency_ratio(latency_us.p99, baseline_us.p99),
            bandwidth_percent: bandwidth_percent(mb_per_s, baselines.write_fdatasync_1m_mb_per_s),
        }
    }
}

/// `run_us / baseline_us`, or None when the baseline is 0 (nothing measured, or below 1 µs).
pub fn latency_ratio(run_us: u64, baseline_us: u64) -> Option<f64> {
    (baseline_us > 0).then(|| run_us as f64 / baseline_us as f64)
}

/// `run_mb_per_s` as a percentage of `baseline_mb_per_s`, or None without a usable baseline.
pub fn bandwidth_percent(run_mb_per_s: f64, baseline_mb_per_s: f64) -> Option<f64> {
    let usable = baseline_mb_per_s.is_finite() && baseline_mb_per_s > 0.0;
    (usable && run_mb_per_s.is_finite()).then(|| 100.0 * run_mb_per_s / baseline_mb_per_s)
}

/// One measured run of one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// Scenario name, e.g. "append_qd1".
    pub scenario: String,
    /// "direct" or "mmap" (`WritePathName::as_str`).
    pub write_path: String,
    /// Ack mode of replicated scenarios ("async", "semi-sync", "quorum", "sync").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_mode: Option<String>,
    /// Payload of one record.
    pub payload_bytes: u64,
    /// Requests in flight (1 = queue depth 1).
    pub concurrency: u64,
    /// Records acknowledged per second over the measured duration.
    pub records_per_s: f64,
    /// Payload MB (10^6 bytes) acknowledged per second.
    pub mb_per_s: f64,
    /// Latency percentiles in µs.
    pub latency_us: LatencySummary,
    /// Which baseline the run is compared with; reported under `vs_baseline`.
    #[serde(skip)]
    pub comparison: Comparison,
    /// The scenario's promise for this run; reported with its verdict under `target`.
    #[serde(skip)]
    pub target: Option<Target>,
    /// Scenario-specific numbers (e.g. fsyncs per second, bytes written).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl RunResult {
    /// This run's ratios to `baselines`.
    pub fn ratios(&self, baselines: &Baselines) -> BaselineRatios {
        BaselineRatios::compute(&self.latency_us, self.mb_per_s, baselines)
    }

    /// This run's target verdict, if it has a target.
    pub fn target_outcome(&self, baselines: &Baselines) -> Option<TargetOutcome> {
        let ratios = self.ratios(baselines);
        self.target.map(|target| target.evaluate(&ratios))
    }
}

/// Everything one invocation measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// Where it ran.
    pub environment: Environment,
    /// Device baselines of this run.
    pub baselines: Baselines,
    /// Scenario runs, in the order they ran.
    pub runs: Vec<RunResult>,
}

impl Report {
    /// The report as JSON (see the module documentation for the layout).
    pub fn to_json(&self) -> Value {
        let runs: Vec<RunJson<'_>> = self
            .runs
            .iter()
            .map(|run| RunJson::new(run, &self.baselines))
            .collect();
        let json = ReportJson {
            environment: &self.environment,
            baselines: &self.baselines,
            runs,
        };
        serde_json::to_value(json).expect("the report serialises: it has only string keys")
    }
}

#[derive(Serialize)]
struct ReportJson<'r> {
    environment: &'r Environment,
    baselines: &'r Baselines,
    runs: Vec<RunJson<'r>>,
}

#[derive(Serialize)]
struct RunJson<'r> {
    #[serde(flatten)]
    run: &'r RunResult,
    vs_baseline: VsBaselineJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<TargetJson>,
}

impl<'r> RunJson<'r> {
    fn new(run: &'r RunResult, baselines: &Baselines) -> RunJson<'r> {
        let ratios = run.ratios(baselines);
        let target = run.target.map(|target| {
            let outcome = target.evaluate(&ratios);
            TargetJson {
                kind: target.kind(),
                limit: target.limit(),
                description: target.description(),
                actual: outcome.actual,
                met: outcome.met,
            }
        });
        RunJson {
            run,
            vs_baseline: VsBaselineJson::new(run.comparison, &ratios),
            target,
        }
    }
}

/// The ratios relevant to the run's `Comparison` (others are omitted, not nulled).
#[derive(Serialize)]
struct VsBaselineJson {
    comparison: Comparison,
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bandwidth_percent: Option<f64>,
}

impl VsBaselineJson {
    fn new(comparison: Comparison, ratios: &BaselineRatios) -> VsBaselineJson {
        let latency = comparison == Comparison::LatencyQd1;
        let bandwidth = comparison == Comparison::Bandwidth;
        VsBaselineJson {
            comparison,
            p50_ratio: ratios.p50_ratio.filter(|_| latency),
            p99_ratio: ratios.p99_ratio.filter(|_| latency),
            bandwidth_percent: ratios.bandwidth_percent.filter(|_| bandwidth),
        }
    }
}

#[derive(Serialize)]
struct TargetJson {
    kind: &'static str,
    limit: f64,
    description: String,
    actual: Option<f64>,
    met: bool,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::latency::{new_histogram, record_us};

    /// Baselines with a 100 µs p50, 400 µs p99 and 1000 MB/s, for tests of ratios.
    pub(crate) fn sample_baselines() -> Baselines {
        Baselines {
            fdatasync_4k_qd1_us: LatencySummary {
                p50: 100,
                p90: 200,
                p99: 400,
                p999: 800,
                p9999: 1600,
                max: 3200,
            },
            write_fdatasync_1m_mb_per_s: 1000.0,
            ..Baselines::default()
        }
    }

    pub(crate) fn sample_run(comparison: Comparison, target: Option<Target>) -> RunResult {
        RunResult {
            scenario: "append_qd1".to_owned(),
            write_path: "direct".to_owned(),
            ack_mode: None,
            payload_bytes: 4096,
            concurrency: 1,
            records_per_s: 8000.0,
            mb_per_s: 750.0,
            latency_us: LatencySummary {
                p50: 125,
                p90: 300,
                p99: 1000,
                p999: 2000,
                p9999: 4000,
                max: 5000,
            },
            comparison,
            target,
            extra: Map::new(),
        }
    }

    // Uniform 1..=10000 µs: each percentile must land on its rank within 0.1% (3 digits).
    #[test]
    fn summarises_percentiles() {
        let mut histogram = new_histogram();
        for us in 1..=10_000 {
            record_us(&mut histogram, Duration::from_micros(us));
        }
        let summary = LatencySummary::from_histogram(&histogram);
        let expected = [
            (summary.p50, 5000),
            (summary.p90, 9000),
            (summary.p99, 9900),
        ];
        for (actual, wanted) in expected {
            assert!(
                actual.abs_diff(wanted) <= wanted / 1000,
                "{actual} vs {wanted}"
            );
        }
        assert!(summary.p999.abs_diff(9990) <= 10, "{summary:?}");
        assert!(summary.p9999.abs_diff(10_000) <= 10, "{summary:?}");
        assert!(summary.max.abs_diff(10_000) <= 10, "{summary:?}");
        assert_eq!(
            LatencySummary::from_histogram(&new_histogram()),
            LatencySummary::default()
        );
    }

    #[test]
    fn rates() {
        assert_eq!(per_s(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(mb_per_s(3_000_000, Duration::from_secs(2)), 1.5);
        assert_eq!(per_s(10, Duration::ZERO), 0.0);
    }

    #[test]
    fn ratios_to_the_baselines() {
        assert_eq!(latency_ratio(130, 100), Some(1.3));
        assert_eq!(latency_ratio(50, 0), None);
        assert_eq!(bandwidth_percent(700.0, 1000.0), Some(70.0));
        assert_eq!(bandwidth_percent(700.0, 0.0), None);
        assert_eq!(bandwidth_percent(f64::NAN, 1000.0), None);

        let ratios = BaselineRatios::compute(
            &sample_run(Comparison::LatencyQd1, None).latency_us,
            750.0,
            &sample_baselines(),
        );
        assert_eq!(ratios.p50_ratio, Some(1.25));
        assert_eq!(ratios.p99_ratio, Some(2.5));
        assert_eq!(ratios.bandwidth_percent, Some(75.0));
    }

    // Each target kind on both sides of its limit, the limit itself, and a missing baseline.
    #[test]
    fn targets_pass_and_fail() {
        let ratios = BaselineRatios {
            p50_ratio: Some(1.25),
            p99_ratio: Some(2.5),
            bandwidth_percent: Some(75.0),
        };
        let cases = [
            (Target::P50RatioMax(1.3), true),
            (Target::P50RatioMax(1.25), true),
            (Target::P50RatioMax(1.2), false),
            (Target::P99RatioMax(2.0), false),
            (Target::P99RatioMax(3.0), true),
            (Target::BandwidthPercentMin(70.0), true),
            (Target::BandwidthPercentMin(75.0), true),
            (Target::BandwidthPercentMin(80.0), false),
        ];
        for (target, met) in cases {
            assert_eq!(target.evaluate(&ratios).met, met, "{target:?}");
        }
        let outcome = Target::P50RatioMax(1.3).evaluate(&BaselineRatios::default());
        assert_eq!(
            outcome,
            TargetOutcome {
                actual: None,
                met: false
            }
        );
        assert_eq!(
            Target::P50RatioMax(1.3).description(),
            "p50 <= 1.3x baseline"
        );
        assert_eq!(
            Target::BandwidthPercentMin(70.0).description(),
            ">= 70% of baseline bandwidth"
        );
    }

    // The JSON carries exactly the schema's keys, omits ack_mode when None, keeps only the
    // ratios relevant to the comparison, and reports the target's verdict.
    #[test]
    fn json_layout() {
        let mut bandwidth_run = sample_run(Comparison::Bandwidth, None);
        bandwidth_run.ack_mode = Some("quorum".to_owned());
        bandwidth_run
            .extra
            .insert("fsyncs".to_owned(), Value::from(12));
        let report = Report {
            environment: Environment::collect(std::path::Path::new("/")),
            baselines: sample_baselines(),
            runs: vec![
                sample_run(Comparison::LatencyQd1, Some(Target::P50RatioMax(1.3))),
                bandwidth_run,
            ],
        };
        let json = report.to_json();
        let run = &json["runs"][0];
        let keys: Vec<&str> = run
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "scenario",
            "write_path",
            "payload_bytes",
            "concurrency",
            "records_per_s",
            "mb_per_s",
            "latency_us",
            "vs_baseline",
            "target",
        ];
        expected.sort_unstable();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        assert_eq!(keys_sorted, expected);
        assert_eq!(run["latency_us"]["p9999"], 4000);
        assert_eq!(run["vs_baseline"]["comparison"], "latency_qd1");
        assert_eq!(run["vs_baseline"]["p50_ratio"], 1.25);
        assert!(run["vs_baseline"].get("bandwidth_percent").is_none());
        assert_eq!(run["target"]["met"], true);
        assert_eq!(run["target"]["kind"], "p50_ratio_max");

        let run = &json["runs"][1];
        assert_eq!(run["ack_mode"], "quorum");
        assert_eq!(run["extra"]["fsyncs"], 12);
        assert_eq!(run["vs_baseline"]["bandwidth_percent"], 75.0);
        assert!(run["vs_baseline"].get("p50_ratio").is_none());
        assert!(run.get("target").is_none());
        assert_eq!(json["baselines"]["fdatasync_4k_qd1_us"]["p50"], 100);
        assert_eq!(json["baselines"]["write_fdatasync_1m_mb_per_s"], 1000.0);
    }
}
