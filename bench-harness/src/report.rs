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
//! "write_fdatasync_1m_mb_per_s": N, "loopback_rtt_64b_us"?: {p50..max},
//! "loopback_rtt_1k_us"?: {p50..max}, "fdatasync_4k_concurrent_us"?: {p50..max}, ..},
//! "runs": [{"scenario", "write_path", "ack_mode", "payload_bytes", "concurrency",
//! "records_per_s", "mb_per_s", "latency_us": {p50..max},
//! "vs_baseline": {..}, "target"?: {"kind", "limit", "description", "actual", "met"},
//! "extra"?: {..}}]}`
//!
//! Most targets compare a run with the device baselines. Two compare it with another run of
//! the same report (same write path) and the loopback round trip: the produce scenarios are
//! judged against the log alone (`Target::P50WithinRunPlusRtt`,
//! `Target::BandwidthPercentOfRunMin`); their `limit` is computed from those measurements.
//! The replicated scenarios' queue-depth-1 runs are compared, percentile by percentile, with
//! the sum of the 4 KiB fdatasync baseline and the loopback 1 KiB round trip
//! (`Comparison::LatencyQd1PlusRtt`, `latency_floor_plus_rtt`): the least one acknowledged
//! write can cost when it needs a durable commit and a hop.

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
    /// A queue-depth-1 run through the network: p50 and p99 against the 4 KiB
    /// write+fdatasync baseline plus the loopback 1 KiB round trip, at the same percentile.
    LatencyQd1PlusRtt,
    /// A run of the default mode: every percentile of its latency (and of its end-to-end
    /// latency) against the 4 KiB write+fdatasync baseline plus the loopback 1 KiB round
    /// trip at the same percentile, and its MB/s against the 1 MiB bandwidth.
    LatencyPlusRttPerPercentile,
    /// Nothing to compare with (yet).
    #[default]
    None,
}

/// A run of the same report another run's target refers to: same write path, this scenario
/// and payload (e.g. `wal_qd1` at 1 KiB for `produce_qd1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunRef {
    /// Scenario name of the referenced run.
    pub scenario: &'static str,
    /// Payload of the referenced run.
    pub payload_bytes: u64,
}

impl RunRef {
    /// The referenced run among `runs`: the first with this scenario and payload on
    /// `write_path`.
    pub fn find<'r>(&self, runs: &'r [RunResult], write_path: &str) -> Option<&'r RunResult> {
        runs.iter().find(|run| {
            run.scenario == self.scenario
                && run.payload_bytes == self.payload_bytes
                && run.write_path == write_path
        })
    }

    /// "wal_qd1 1 KiB".
    fn label(&self) -> String {
        format!(
            "{} {}",
            self.scenario,
            crate::table::format_size(self.payload_bytes)
        )
    }
}

/// What a scenario promises about a run, checked against this run's baselines and, for the
/// last two kinds, another run of the same report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// p50 at most this many times the 4 KiB QD1 baseline's p50.
    P50RatioMax(f64),
    /// p99 at most this many times the 4 KiB QD1 baseline's p99.
    P99RatioMax(f64),
    /// MB/s at least this percentage of the 1 MiB baseline's MB/s.
    BandwidthPercentMin(f64),
    /// p50 (µs) at most the referenced run's p50 + `rtt_multiple` x the loopback 1 KiB
    /// round trip's p50 + `slack_us`: what the network may add on top of the log.
    P50WithinRunPlusRtt {
        /// The run whose p50 is the floor (the log alone).
        reference: RunRef,
        /// Round trips allowed on top of it.
        rtt_multiple: f64,
        /// Fixed allowance for request handling, µs.
        slack_us: u64,
    },
    /// MB/s at least `percent`% of the referenced run's MB/s.
    BandwidthPercentOfRunMin {
        /// The run whose bandwidth is the yardstick.
        reference: RunRef,
        /// Smallest acceptable share, in percent.
        percent: f64,
    },
    /// p50 and p99 each at most this many times the 4 KiB QD1 baseline plus the loopback
    /// 1 KiB round trip at the same percentile (`BaselineRatios::p50_ratio_plus_rtt`).
    P50AndP99RatioPlusRttMax(f64),
}

/// Everything a target may be judged on, gathered from the report (`RunResult::target_inputs`)
/// so that `Target::evaluate` stays a pure function of numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TargetInputs {
    /// The run's ratios to the device baselines.
    pub ratios: BaselineRatios,
    /// The run's p50, µs.
    pub p50_us: u64,
    /// The run's MB/s.
    pub mb_per_s: f64,
    /// p50 of the run the target refers to, if it has one and it is in the report.
    pub reference_p50_us: Option<u64>,
    /// MB/s of the run the target refers to.
    pub reference_mb_per_s: Option<f64>,
    /// p50 of the loopback 1 KiB round-trip baseline, if it was measured.
    pub rtt_1k_p50_us: Option<u64>,
}

/// A target's verdict for one run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TargetOutcome {
    /// The measured value the target is about, in the target's unit (a ratio, a percentage,
    /// or µs); None: no baseline or referenced run to compare with.
    pub actual: Option<f64>,
    /// The bound `actual` is held to; for targets that refer to other measurements it is
    /// computed from them (None when they are missing).
    pub limit: Option<f64>,
    /// Whether the target held; a target that cannot be evaluated is not met.
    pub met: bool,
}

/// The p50 budget of `Target::P50WithinRunPlusRtt`, µs: `reference_p50_us + rtt_multiple x
/// rtt_p50_us + slack_us`.
pub fn p50_budget_us(
    reference_p50_us: u64,
    rtt_p50_us: u64,
    rtt_multiple: f64,
    slack_us: u64,
) -> f64 {
    reference_p50_us as f64 + rtt_multiple * rtt_p50_us as f64 + slack_us as f64
}

impl Target {
    /// Human-readable form, e.g. "p50 <= 1.3x baseline".
    pub fn description(&self) -> String {
        match self {
            Target::P50RatioMax(limit) => format!("p50 <= {limit}x baseline"),
            Target::P99RatioMax(limit) => format!("p99 <= {limit}x baseline"),
            Target::BandwidthPercentMin(limit) => format!(">= {limit}% of baseline bandwidth"),
            Target::P50WithinRunPlusRtt {
                reference,
                rtt_multiple,
                slack_us,
            } => format!(
                "p50 <= {} p50 + {rtt_multiple}x loopback 1 KiB RTT p50 + {slack_us} µs",
                reference.label()
            ),
            Target::BandwidthPercentOfRunMin { reference, percent } => {
                format!(">= {percent}% of {} MB/s", reference.label())
            }
            Target::P50AndP99RatioPlusRttMax(limit) => format!(
                "p50 and p99 each <= {limit}x (4 KiB fdatasync + loopback 1 KiB RTT) \
                 at the same percentile"
            ),
        }
    }

    /// The `kind` key of the JSON report.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::P50RatioMax(_) => "p50_ratio_max",
            Target::P99RatioMax(_) => "p99_ratio_max",
            Target::BandwidthPercentMin(_) => "bandwidth_percent_min",
            Target::P50WithinRunPlusRtt { .. } => "p50_within_run_plus_rtt",
            Target::BandwidthPercentOfRunMin { .. } => "bandwidth_percent_of_run_min",
            Target::P50AndP99RatioPlusRttMax(_) => "p50_p99_ratio_plus_rtt_max",
        }
    }

    /// The run this target refers to, if any.
    pub fn reference(&self) -> Option<RunRef> {
        match *self {
            Target::P50WithinRunPlusRtt { reference, .. }
            | Target::BandwidthPercentOfRunMin { reference, .. } => Some(reference),
            Target::P50RatioMax(_)
            | Target::P99RatioMax(_)
            | Target::BandwidthPercentMin(_)
            | Target::P50AndP99RatioPlusRttMax(_) => None,
        }
    }

    /// Checks the target against a run's inputs.
    pub fn evaluate(&self, inputs: &TargetInputs) -> TargetOutcome {
        let (actual, limit, bound) = match *self {
            Target::P50RatioMax(limit) => (inputs.ratios.p50_ratio, Some(limit), Bound::AtMost),
            Target::P99RatioMax(limit) => (inputs.ratios.p99_ratio, Some(limit), Bound::AtMost),
            Target::BandwidthPercentMin(limit) => {
                (inputs.ratios.bandwidth_percent, Some(limit), Bound::AtLeast)
            }
            Target::P50WithinRunPlusRtt {
                rtt_multiple,
                slack_us,
                ..
            } => {
                let budget = inputs
                    .reference_p50_us
                    .zip(inputs.rtt_1k_p50_us)
                    .map(|(reference, rtt)| p50_budget_us(reference, rtt, rtt_multiple, slack_us));
                // A p50 of 0 means nothing was measured: not a pass.
                let actual = (inputs.p50_us > 0).then_some(inputs.p50_us as f64);
                (actual, budget, Bound::AtMost)
            }
            Target::BandwidthPercentOfRunMin { percent, .. } => {
                let share = inputs
                    .reference_mb_per_s
                    .and_then(|reference| bandwidth_percent(inputs.mb_per_s, reference));
                (share, Some(percent), Bound::AtLeast)
            }
            Target::P50AndP99RatioPlusRttMax(limit) => {
                // Both percentiles must hold, so the larger ratio decides; a missing one
                // (no round trip measured) leaves nothing to judge.
                let ratios = &inputs.ratios;
                let larger = ratios
                    .p50_ratio_plus_rtt
                    .zip(ratios.p99_ratio_plus_rtt)
                    .map(|(p50, p99)| p50.max(p99));
                (larger, Some(limit), Bound::AtMost)
            }
        };
        let met = match (actual, limit, bound) {
            (Some(actual), Some(limit), Bound::AtMost) => actual <= limit,
            (Some(actual), Some(limit), Bound::AtLeast) => actual >= limit,
            _ => false,
        };
        TargetOutcome {
            // Without a limit there is nothing to compare with, so no measured value either.
            actual: actual.filter(|_| limit.is_some()),
            limit,
            met,
        }
    }
}

/// Which side of its limit a target wants the measured value on.
#[derive(Clone, Copy, Debug)]
enum Bound {
    AtMost,
    AtLeast,
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
    /// Run p50 / (baseline 4 KiB QD1 p50 + loopback 1 KiB RTT p50); None without a round
    /// trip baseline.
    pub p50_ratio_plus_rtt: Option<f64>,
    /// Run p99 / (baseline 4 KiB QD1 p99 + loopback 1 KiB RTT p99).
    pub p99_ratio_plus_rtt: Option<f64>,
}

impl BaselineRatios {
    /// All ratios of a run's latency and bandwidth to the baselines.
    pub fn compute(
        latency_us: &LatencySummary,
        mb_per_s: f64,
        baselines: &Baselines,
    ) -> BaselineRatios {
        let baseline_us = &baselines.fdatasync_4k_qd1_us;
        let floor_us = latency_floor_plus_rtt(baselines);
        BaselineRatios {
            p50_ratio: latency_ratio(latency_us.p50, baseline_us.p50),
            p99_ratio: latency_ratio(latency_us.p99, baseline_us.p99),
            bandwidth_percent: bandwidth_percent(mb_per_s, baselines.write_fdatasync_1m_mb_per_s),
            p50_ratio_plus_rtt: floor_us.and_then(|floor| latency_ratio(latency_us.p50, floor.p50)),
            p99_ratio_plus_rtt: floor_us.and_then(|floor| latency_ratio(latency_us.p99, floor.p99)),
        }
    }
}

/// The 4 KiB write+fdatasync QD1 baseline plus the loopback 1 KiB round trip, percentile by
/// percentile (p50 + p50, p99 + p99, ...); None when the round trip was not measured.
///
/// Summing percentiles is not the percentile of a sum; it is a simple, slightly generous
/// floor for one write that needs a durable commit and one hop, which is what the replicated
/// queue-depth-1 runs are judged against.
pub fn latency_floor_plus_rtt(baselines: &Baselines) -> Option<LatencySummary> {
    let device = &baselines.fdatasync_4k_qd1_us;
    baselines.loopback_rtt_1k_us.map(|rtt| LatencySummary {
        p50: device.p50 + rtt.p50,
        p90: device.p90 + rtt.p90,
        p99: device.p99 + rtt.p99,
        p999: device.p999 + rtt.p999,
        p9999: device.p9999 + rtt.p9999,
        max: device.max + rtt.max,
    })
}

/// The least a `sync` write can cost when its replicas are local nodes sharing one device,
/// per percentile: every replica's write+fdatasync at once on that device (the concurrent
/// baseline) plus two loopback round trips (client to leader and back, leader to follower
/// and back). None without the concurrent baseline (a cluster elsewhere) or the round trip.
///
/// This is not what the `sync` target is judged against (that is
/// [`latency_floor_plus_rtt`]); it shows how much of a local cluster's latency is ringlog's
/// and how much the shared device's, which a cluster of separate hosts does not have.
pub fn shared_host_sync_bound(baselines: &Baselines) -> Option<LatencySummary> {
    let device = baselines.fdatasync_4k_concurrent_us.as_ref()?;
    let rtt = baselines.loopback_rtt_1k_us?;
    Some(LatencySummary {
        p50: device.p50 + 2 * rtt.p50,
        p90: device.p90 + 2 * rtt.p90,
        p99: device.p99 + 2 * rtt.p99,
        p999: device.p999 + 2 * rtt.p999,
        p9999: device.p9999 + 2 * rtt.p9999,
        max: device.max + 2 * rtt.max,
    })
}

/// Each percentile of a latency divided by the same percentile of another (the floor); None
/// where the floor is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RatioSummary {
    /// p50 / floor p50.
    pub p50: Option<f64>,
    /// p90 / floor p90.
    pub p90: Option<f64>,
    /// p99 / floor p99.
    pub p99: Option<f64>,
    /// p99.9 / floor p99.9.
    pub p999: Option<f64>,
    /// p99.99 / floor p99.99.
    pub p9999: Option<f64>,
    /// max / floor max.
    pub max: Option<f64>,
}

impl RatioSummary {
    /// `latency_us` divided by `floor_us`, percentile by percentile.
    pub fn compute(latency_us: &LatencySummary, floor_us: &LatencySummary) -> RatioSummary {
        RatioSummary {
            p50: latency_ratio(latency_us.p50, floor_us.p50),
            p90: latency_ratio(latency_us.p90, floor_us.p90),
            p99: latency_ratio(latency_us.p99, floor_us.p99),
            p999: latency_ratio(latency_us.p999, floor_us.p999),
            p9999: latency_ratio(latency_us.p9999, floor_us.p9999),
            max: latency_ratio(latency_us.max, floor_us.max),
        }
    }

    /// The ratios in the order of `LatencySummary::values`.
    pub fn values(&self) -> [Option<f64>; 6] {
        [
            self.p50, self.p90, self.p99, self.p999, self.p9999, self.max,
        ]
    }
}

impl LatencySummary {
    /// p50, p90, p99, p99.9, p99.99 and max, in that order.
    pub fn values(&self) -> [u64; 6] {
        [
            self.p50, self.p90, self.p99, self.p999, self.p9999, self.max,
        ]
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
    /// Ack mode of replicated scenarios: the topic's ack mode that acks=-1 waited for
    /// ("async", "semi-sync", "quorum", "sync"), or "acks=1" for the row sent with acks=1;
    /// null for the single-node scenarios.
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
    /// The open loop's target rate, records/s (default mode; absent for closed-loop runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate_records_per_s: Option<f64>,
    /// End-to-end latency percentiles in µs: from a record's due time to its arrival at a
    /// consumer fetching from a follower (default mode's fixed-rate runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_latency_us: Option<LatencySummary>,
    /// Which baseline the run is compared with; reported under `vs_baseline`.
    #[serde(skip)]
    pub comparison: Comparison,
    /// The scenario's promise for this run; reported with its verdict under `target`.
    #[serde(skip)]
    pub target: Option<Target>,
    /// Scenario-specific numbers (e.g. fsyncs per second, bytes written).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
    /// The µs histogram `latency_us` summarises, for `--hgrm` and `--plot`; not in the JSON.
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
    /// The µs histogram `e2e_latency_us` summarises; not in the JSON.
    #[serde(skip)]
    pub e2e_histogram: Option<Histogram<u64>>,
}

impl RunResult {
    /// This run's ratios to `baselines`.
    pub fn ratios(&self, baselines: &Baselines) -> BaselineRatios {
        BaselineRatios::compute(&self.latency_us, self.mb_per_s, baselines)
    }

    /// Every percentile of this run's latency over the fdatasync + round-trip floor at the
    /// same percentile; None without a round-trip baseline.
    pub fn ratios_plus_rtt(&self, baselines: &Baselines) -> Option<RatioSummary> {
        let floor = latency_floor_plus_rtt(baselines)?;
        Some(RatioSummary::compute(&self.latency_us, &floor))
    }

    /// The same for the end-to-end latency, if the run has one.
    pub fn e2e_ratios_plus_rtt(&self, baselines: &Baselines) -> Option<RatioSummary> {
        let floor = latency_floor_plus_rtt(baselines)?;
        let e2e = self.e2e_latency_us?;
        Some(RatioSummary::compute(&e2e, &floor))
    }

    /// What this run's target is judged on: its ratios to `baselines`, and the run of `runs`
    /// (the whole report) its target refers to.
    pub fn target_inputs(&self, baselines: &Baselines, runs: &[RunResult]) -> TargetInputs {
        let reference = self
            .target
            .and_then(|target| target.reference())
            .and_then(|reference| reference.find(runs, &self.write_path));
        TargetInputs {
            ratios: self.ratios(baselines),
            p50_us: self.latency_us.p50,
            mb_per_s: self.mb_per_s,
            reference_p50_us: reference.map(|run| run.latency_us.p50),
            reference_mb_per_s: reference.map(|run| run.mb_per_s),
            rtt_1k_p50_us: baselines.loopback_rtt_1k_us.map(|rtt| rtt.p50),
        }
    }

    /// This run's target verdict, if it has a target.
    pub fn target_outcome(
        &self,
        baselines: &Baselines,
        runs: &[RunResult],
    ) -> Option<TargetOutcome> {
        let inputs = self.target_inputs(baselines, runs);
        self.target.map(|target| target.evaluate(&inputs))
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
    /// The cluster the runs measured (default mode): nodes, addresses, CPUs, PIDs, and what
    /// a remote cluster's status said. Reported as `cluster`.
    pub cluster: Option<Value>,
    /// The load's shape and pacing (default mode). Reported as `load`.
    pub load: Option<Value>,
}

impl Report {
    /// A report of `runs`, without cluster or load.
    pub fn new(environment: Environment, baselines: Baselines, runs: Vec<RunResult>) -> Report {
        Report {
            environment,
            baselines,
            runs,
            cluster: None,
            load: None,
        }
    }

    /// Every histogram the runs kept, labelled "<scenario> <path>[ <ack mode>]" and
    /// "... e2e" for the end-to-end ones, as `(label, histogram)` pairs.
    #[allow(dead_code, reason = "for the --hgrm and --plot outputs")]
    pub fn labelled_histograms(&self) -> Vec<(String, &Histogram<u64>)> {
        let mut labelled = Vec::new();
        for run in &self.runs {
            let mut label = format!("{} {}", run.scenario, run.write_path);
            if let Some(ack_mode) = &run.ack_mode {
                label = format!("{label} {ack_mode}");
            }
            if let Some(histogram) = &run.histogram {
                labelled.push((label.clone(), histogram));
            }
            if let Some(histogram) = &run.e2e_histogram {
                labelled.push((format!("{label} e2e"), histogram));
            }
        }
        labelled
    }

    /// The report as JSON (see the module documentation for the layout).
    pub fn to_json(&self) -> Value {
        let runs: Vec<RunJson<'_>> = self
            .runs
            .iter()
            .map(|run| RunJson::new(run, &self.baselines, &self.runs))
            .collect();
        let json = ReportJson {
            environment: &self.environment,
            baselines: &self.baselines,
            cluster: self.cluster.as_ref(),
            load: self.load.as_ref(),
            runs,
        };
        serde_json::to_value(json).expect("the report serialises: it has only string keys")
    }
}

#[derive(Serialize)]
struct ReportJson<'r> {
    environment: &'r Environment,
    baselines: &'r Baselines,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'r Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    load: Option<&'r Value>,
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
    fn new(run: &'r RunResult, baselines: &Baselines, runs: &[RunResult]) -> RunJson<'r> {
        let ratios = run.ratios(baselines);
        let inputs = run.target_inputs(baselines, runs);
        let target = run.target.map(|target| {
            let outcome = target.evaluate(&inputs);
            TargetJson {
                kind: target.kind(),
                limit: outcome.limit,
                description: target.description(),
                actual: outcome.actual,
                met: outcome.met,
            }
        });
        let mut vs_baseline = VsBaselineJson::new(run.comparison, &ratios);
        if run.comparison == Comparison::LatencyPlusRttPerPercentile {
            vs_baseline.latency_ratios = run.ratios_plus_rtt(baselines);
            vs_baseline.e2e_latency_ratios = run.e2e_ratios_plus_rtt(baselines);
        }
        RunJson {
            run,
            vs_baseline,
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
    /// Every percentile over the fdatasync + round-trip floor (default mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ratios: Option<RatioSummary>,
    /// The same for the end-to-end latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    e2e_latency_ratios: Option<RatioSummary>,
}

impl VsBaselineJson {
    fn new(comparison: Comparison, ratios: &BaselineRatios) -> VsBaselineJson {
        let (p50_ratio, p99_ratio) = match comparison {
            Comparison::LatencyQd1 => (ratios.p50_ratio, ratios.p99_ratio),
            Comparison::LatencyQd1PlusRtt => (ratios.p50_ratio_plus_rtt, ratios.p99_ratio_plus_rtt),
            Comparison::LatencyPlusRttPerPercentile => {
                (ratios.p50_ratio_plus_rtt, ratios.p99_ratio_plus_rtt)
            }
            Comparison::Bandwidth | Comparison::None => (None, None),
        };
        let bandwidth = matches!(
            comparison,
            Comparison::Bandwidth | Comparison::LatencyPlusRttPerPercentile
        );
        VsBaselineJson {
            comparison,
            p50_ratio,
            p99_ratio,
            bandwidth_percent: ratios.bandwidth_percent.filter(|_| bandwidth),
            latency_ratios: None,
            e2e_latency_ratios: None,
        }
    }
}

#[derive(Serialize)]
struct TargetJson {
    kind: &'static str,
    limit: Option<f64>,
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
            target_rate_records_per_s: None,
            e2e_latency_us: None,
            comparison,
            target,
            extra: Map::new(),
            histogram: None,
            e2e_histogram: None,
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
        assert_eq!(ratios.p50_ratio_plus_rtt, None, "no round trip measured");
    }

    // The floor of a replicated QD1 run adds the device and the round trip percentile by
    // percentile, and each ratio divides by the floor at its own percentile (p99 by p99).
    #[test]
    fn ratios_to_the_fdatasync_plus_rtt_floor() {
        let mut baselines = sample_baselines();
        assert_eq!(latency_floor_plus_rtt(&baselines), None);
        baselines.loopback_rtt_1k_us = Some(LatencySummary {
            p50: 25,
            p90: 30,
            p99: 100,
            p999: 200,
            p9999: 400,
            max: 800,
        });
        let floor = latency_floor_plus_rtt(&baselines).unwrap();
        assert_eq!(
            floor,
            LatencySummary {
                p50: 125,
                p90: 230,
                p99: 500,
                p999: 1000,
                p9999: 2000,
                max: 4000,
            }
        );
        // sample_run: p50 125 µs, p99 1000 µs.
        let run = sample_run(Comparison::LatencyQd1PlusRtt, None);
        let ratios = run.ratios(&baselines);
        assert_eq!(ratios.p50_ratio_plus_rtt, Some(1.0));
        assert_eq!(ratios.p99_ratio_plus_rtt, Some(2.0));
        // The device-only ratios are unchanged.
        assert_eq!(ratios.p50_ratio, Some(1.25));
        assert_eq!(ratios.p99_ratio, Some(2.5));

        // The replicated target holds only if both percentiles do; its measured value is the
        // larger ratio, and without a round trip it cannot pass.
        let target = Target::P50AndP99RatioPlusRttMax(2.0);
        let outcome = run.target_outcome(&baselines, &[]);
        assert_eq!(outcome, None, "the run has no target");
        let inputs = run.target_inputs(&baselines, &[]);
        assert_eq!(
            target.evaluate(&inputs),
            TargetOutcome {
                actual: Some(2.0),
                limit: Some(2.0),
                met: true
            }
        );
        assert!(!Target::P50AndP99RatioPlusRttMax(1.99).evaluate(&inputs).met);
        let no_rtt = run.target_inputs(&sample_baselines(), &[]);
        assert!(!target.evaluate(&no_rtt).met);
        assert_eq!(target.evaluate(&no_rtt).actual, None);
    }

    // Each target kind on both sides of its limit, the limit itself, and a missing baseline.
    #[test]
    fn targets_pass_and_fail() {
        let ratios = BaselineRatios {
            p50_ratio: Some(1.25),
            p99_ratio: Some(2.5),
            bandwidth_percent: Some(75.0),
            p50_ratio_plus_rtt: Some(1.5),
            p99_ratio_plus_rtt: Some(1.9),
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
            (Target::P50AndP99RatioPlusRttMax(2.0), true),
            (Target::P50AndP99RatioPlusRttMax(1.9), true),
            (Target::P50AndP99RatioPlusRttMax(1.8), false),
        ];
        let inputs = TargetInputs {
            ratios,
            ..TargetInputs::default()
        };
        for (target, met) in cases {
            assert_eq!(target.evaluate(&inputs).met, met, "{target:?}");
        }
        let outcome = Target::P50RatioMax(1.3).evaluate(&TargetInputs::default());
        assert_eq!(
            outcome,
            TargetOutcome {
                actual: None,
                limit: Some(1.3),
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

    const WAL_QD1_1K: RunRef = RunRef {
        scenario: "wal_qd1",
        payload_bytes: 1024,
    };
    const WAL_SATURATED_16K: RunRef = RunRef {
        scenario: "wal_saturated",
        payload_bytes: 16384,
    };

    #[test]
    fn p50_budget_adds_round_trips_and_slack() {
        assert_eq!(p50_budget_us(100, 30, 2.0, 50), 210.0);
        assert_eq!(p50_budget_us(0, 0, 2.0, 50), 50.0);
        assert_eq!(p50_budget_us(99, 25, 1.5, 0), 136.5);
    }

    // The targets that refer to another run and to the round trip: on both sides of the
    // bound, on the bound, and not met (with no measured value) when a reference is missing.
    #[test]
    fn targets_relative_to_other_runs() {
        let latency = Target::P50WithinRunPlusRtt {
            reference: WAL_QD1_1K,
            rtt_multiple: 2.0,
            slack_us: 50,
        };
        let inputs = |p50_us, reference_p50_us, rtt_1k_p50_us| TargetInputs {
            p50_us,
            reference_p50_us,
            rtt_1k_p50_us,
            ..TargetInputs::default()
        };
        // Budget: 100 + 2 x 30 + 50 = 210 µs.
        let outcome = latency.evaluate(&inputs(200, Some(100), Some(30)));
        assert_eq!(
            outcome,
            TargetOutcome {
                actual: Some(200.0),
                limit: Some(210.0),
                met: true
            }
        );
        assert!(latency.evaluate(&inputs(210, Some(100), Some(30))).met);
        assert!(!latency.evaluate(&inputs(211, Some(100), Some(30))).met);
        let no_rtt = latency.evaluate(&inputs(100, Some(100), None));
        assert_eq!(
            no_rtt,
            TargetOutcome {
                actual: None,
                limit: None,
                met: false
            }
        );
        assert!(!latency.evaluate(&inputs(100, None, Some(30))).met);
        assert!(!latency.evaluate(&inputs(0, Some(100), Some(30))).met);
        assert_eq!(
            latency.description(),
            "p50 <= wal_qd1 1 KiB p50 + 2x loopback 1 KiB RTT p50 + 50 µs"
        );

        let bandwidth = Target::BandwidthPercentOfRunMin {
            reference: WAL_SATURATED_16K,
            percent: 50.0,
        };
        let inputs = |mb_per_s, reference_mb_per_s| TargetInputs {
            mb_per_s,
            reference_mb_per_s,
            ..TargetInputs::default()
        };
        let outcome = bandwidth.evaluate(&inputs(600.0, Some(1000.0)));
        assert_eq!(
            outcome,
            TargetOutcome {
                actual: Some(60.0),
                limit: Some(50.0),
                met: true
            }
        );
        assert!(bandwidth.evaluate(&inputs(500.0, Some(1000.0))).met);
        assert!(!bandwidth.evaluate(&inputs(499.0, Some(1000.0))).met);
        assert!(!bandwidth.evaluate(&inputs(600.0, Some(0.0))).met);
        assert!(!bandwidth.evaluate(&inputs(600.0, None)).met);
        assert_eq!(
            bandwidth.description(),
            ">= 50% of wal_saturated 16 KiB MB/s"
        );
    }

    // A run's target finds its reference on the same write path, with the same scenario and
    // payload, and takes the round trip from the baselines.
    #[test]
    fn target_inputs_come_from_the_report() {
        let mut baselines = sample_baselines();
        baselines.loopback_rtt_1k_us = Some(LatencySummary {
            p50: 30,
            ..LatencySummary::default()
        });
        let reference = |write_path: &str, payload_bytes, p50| {
            let mut run = sample_run(Comparison::LatencyQd1, None);
            run.scenario = "wal_qd1".to_owned();
            run.write_path = write_path.to_owned();
            run.payload_bytes = payload_bytes;
            run.latency_us.p50 = p50;
            run
        };
        let mut produce = sample_run(
            Comparison::LatencyQd1,
            Some(Target::P50WithinRunPlusRtt {
                reference: WAL_QD1_1K,
                rtt_multiple: 2.0,
                slack_us: 50,
            }),
        );
        produce.scenario = "produce_qd1".to_owned();
        produce.latency_us.p50 = 250;
        let runs = vec![
            reference("mmap", 1024, 10),
            reference("direct", 4096, 20),
            reference("direct", 1024, 100),
            produce.clone(),
        ];
        let inputs = produce.target_inputs(&baselines, &runs);
        assert_eq!(inputs.reference_p50_us, Some(100));
        assert_eq!(inputs.rtt_1k_p50_us, Some(30));
        assert_eq!(inputs.p50_us, 250);
        let outcome = produce.target_outcome(&baselines, &runs).unwrap();
        assert_eq!(outcome.limit, Some(210.0));
        assert!(!outcome.met);
        // Without the reference run, the target is not met.
        assert!(!produce.target_outcome(&baselines, &runs[3..]).unwrap().met);
    }

    // The JSON carries exactly the schema's keys, ack_mode null when None, keeps only the
    // ratios relevant to the comparison, and reports the target's verdict.
    #[test]
    fn json_layout() {
        let mut bandwidth_run = sample_run(Comparison::Bandwidth, None);
        bandwidth_run.ack_mode = Some("quorum".to_owned());
        let mut replicated_run = sample_run(
            Comparison::LatencyQd1PlusRtt,
            Some(Target::P50AndP99RatioPlusRttMax(2.0)),
        );
        replicated_run.ack_mode = Some("sync".to_owned());
        let mut baselines = sample_baselines();
        baselines.loopback_rtt_1k_us = Some(LatencySummary {
            p50: 25,
            p99: 100,
            ..LatencySummary::default()
        });
        bandwidth_run
            .extra
            .insert("fsyncs".to_owned(), Value::from(12));
        let report = Report::new(
            Environment::collect(std::path::Path::new("/")),
            baselines,
            vec![
                sample_run(Comparison::LatencyQd1, Some(Target::P50RatioMax(1.3))),
                bandwidth_run,
                replicated_run,
            ],
        );
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
            "ack_mode",
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
        assert_eq!(run["ack_mode"], Value::Null);
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
        let run = &json["runs"][2];
        assert_eq!(run["ack_mode"], "sync");
        assert_eq!(run["vs_baseline"]["comparison"], "latency_qd1_plus_rtt");
        assert_eq!(run["vs_baseline"]["p50_ratio"], 1.0);
        assert_eq!(run["vs_baseline"]["p99_ratio"], 2.0);
        assert_eq!(run["target"]["kind"], "p50_p99_ratio_plus_rtt_max");
        assert_eq!(run["target"]["actual"], 2.0);
        assert_eq!(run["target"]["met"], true);
        assert_eq!(json["baselines"]["fdatasync_4k_qd1_us"]["p50"], 100);
        assert_eq!(json["baselines"]["write_fdatasync_1m_mb_per_s"], 1000.0);
    }
}
