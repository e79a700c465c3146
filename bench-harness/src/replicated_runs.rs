//! The replicated scenarios: a static cluster of three `ringlog serve` processes on
//! 127.0.0.1, 127.0.0.2 and 127.0.0.3 (node 1 leads), driven with acks=-1 under each topic
//! ack mode, per write path (DESIGN.md sections 4 and 8).
//!
//! For every ack mode the leader gets one topic of one partition, replication factor 3,
//! `min_insync_replicas` 2, and that `ack_mode`, and two runs of the same shapes as
//! `produce_qd1` and `produce_saturated` (produce_runs.rs) are measured on it with acks=-1.
//! Before each run the cluster is left to settle (`settle`): the leader's `/metrics` shows
//! all three replicas in the partition's ISR and no follower behind on any partition, and
//! every partition of every node has its filled spare segment ready and none is being
//! zero-filled (`spares_not_ready`, docs/wal-format.md). So a run shares neither the device
//! nor the cores with the previous run's replication backlog or with hundreds of MiB of
//! background zeroes.
//!
//! - `replicated_qd1`: one 1 KiB record per Produce request, the next sent when the previous
//!   is answered, over one blocking connection to the leader (`produce_runs::time_qd1`).
//!   Latency from building the request to reading its answer. Compared at p50 and p99 with
//!   the 4 KiB fdatasync baseline plus the loopback 1 KiB round trip at the same percentile
//!   (`Comparison::LatencyQd1PlusRtt`); `sync` must stay within 2x at both.
//! - `replicated_saturated`: `producers` threads with up to `in_flight_max` requests in
//!   flight each, 16 KiB batches of 16 records (`produce_runs::send_saturated`). Records/s,
//!   MB/s (against the 1 MiB bandwidth baseline) and latency. It warms up for
//!   `--warmup-secs` only: unlike `produce_saturated` it does not wait for the retention
//!   limit, so a roll in the measured window may still zero-fill a new segment.
//!
//! One more `replicated_qd1` row, first, uses acks=1 (leader durable, whatever the topic's
//! ack mode) on a topic of its own: the same cluster and load without waiting for followers.
//! Its `ack_mode` in the report is `acks=1`.
//!
//! Around each run the leader's replication counters (ISR shrinks and expands, acks timed
//! out, NOT_ENOUGH_REPLICAS, degraded semi-sync acks) are read from `/metrics`; their change
//! goes into the run's extras, and into a progress line when it is not zero, since a run
//! whose ISR changed measured something else than its ack mode.
//!
//! Invariants: the cluster's processes are killed when this module returns, with or without
//! an error (`ClusterProcess` owns them); no run is measured before its partition's ISR has
//! every replica.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use hdrhistogram::Histogram;
use ringlog_client::{
    Acks, Client, ClientOptions, Producer, ProducerOptions, BATCH_SIZE_BYTES_DEFAULT,
};
use serde_json::{json, Map, Value};

use crate::latency::new_histogram;
use crate::options::{AckModeName, ReplicatedOptions, WritePathName};
use crate::produce_runs::{
    encoded_batch_bytes, send_saturated, time_qd1, SenderCounts, Window, LINGER, QD1_BATCH_BYTES,
    SATURATED_BATCH_BYTES,
};
use crate::report::{mb_per_s, per_s, Comparison, LatencySummary, RunResult, Target};
use crate::server_process::{ClusterProcess, ClusterSpec};
use crate::steal::{steal_percent_since, CpuTimes};
use crate::wal_runs::records_per_batch;

/// Nodes of the cluster, and replicas of every topic.
pub const NODE_COUNT: u32 = 3;
/// `cluster.id` of the benchmark's cluster.
const CLUSTER_ID: &str = "bench";
/// `replication.replica_lag_max_ms`: long enough that a saturated follower stays in the ISR.
const REPLICA_LAG_MAX: Duration = Duration::from_secs(10);
/// `min_insync_replicas` of every topic (the usual choice with 3 replicas).
const MIN_INSYNC_REPLICAS: u32 = 2;
/// Longest wait for a new topic's ISR to hold every replica.
const ISR_WAIT_MAX: Duration = Duration::from_secs(30);
/// Pause between two reads of the leader's `/metrics` while waiting for the ISR.
const ISR_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Longest wait for the cluster to settle before a run (`settle`).
const SETTLE_WAIT_MAX: Duration = Duration::from_secs(60);
/// Pause between two looks at the cluster while it settles.
const SETTLE_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Longest pause between two checks on the senders during the saturated run's warm-up.
const WARMUP_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The target for `sync` at queue depth 1: p50 and p99 each at most this many times
/// (4 KiB fdatasync + loopback 1 KiB round trip) at the same percentile.
const SYNC_QD1_RATIO_MAX: f64 = 2.0;
/// `ack_mode` reported for the acks=1 row, which does not wait for the topic's ack mode.
const ACKS_LEADER_LABEL: &str = "acks=1";
/// Run extra holding the run's steal time, percent of CPU time (`steal.rs`).
pub(crate) const STEAL_KEY: &str = "steal_percent";
/// Steal time from which a run gets a progress note, percent of CPU time.
const STEAL_NOTE_PERCENT: f64 = 5.0;
/// Name of the acks=1 row's topic.
const ACKS_LEADER_TOPIC: &str = "replicated-acks1";

/// Runs the replicated scenarios on a fresh cluster per write path and returns their results
/// in order. `progress` receives one line per step.
pub fn run_replicated_scenarios(
    options: &ReplicatedOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<RunResult>> {
    let mut results = Vec::new();
    for write_path in &options.produce.wal.write_paths {
        let dir = options
            .produce
            .wal
            .dir
            .join(format!("cluster-{}", write_path.as_str()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let spec = ClusterSpec {
            binary: options.produce.ringlog_bin.clone(),
            dir: dir.clone(),
            cluster_id: CLUSTER_ID.to_owned(),
            node_count: NODE_COUNT,
            write_path: *write_path,
            segment_size_bytes: options.produce.wal.segment_size_bytes,
            retention_bytes: Some(options.produce.wal.retention_bytes),
            replica_lag_max: REPLICA_LAG_MAX,
        };
        let mut cluster = ClusterProcess::start(&spec)?;
        let shard_cpus = cluster.shard_cpus();
        progress(&format!(
            "replicated: {NODE_COUNT}-node cluster ({write_path}) pids {:?}, leader on {}, \
             shard threads on CPUs {}",
            cluster.pids(),
            cluster.leader().bootstrap(),
            shard_cpus.join(" | ")
        ));
        // On an error the nodes' logs explain more than the client's error does: they follow
        // it. The cluster is dropped (its nodes killed) on the way out.
        let runs = run_on_cluster(&mut cluster, &dir, options, *write_path, progress).map_err(
            |error| {
                anyhow!(
                    "on the {write_path} cluster: {error:#}\nthe nodes' last log lines:\n{}",
                    cluster.log_tails()
                )
            },
        )?;
        for mut run in runs {
            // Where the nodes' shards ran: on one host they may share cores, unlike a real
            // cluster's nodes.
            run.extra.insert("shard_cpus".into(), json!(shard_cpus));
            results.push(run);
        }
        cluster.stop()?;
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(results)
}

/// The acks=1 row, then both runs of every ack mode, on one running cluster.
fn run_on_cluster(
    cluster: &mut ClusterProcess,
    dir: &Path,
    options: &ReplicatedOptions,
    write_path: WritePathName,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<RunResult>> {
    let mut client = Client::connect(&cluster.leader().bootstrap(), ClientOptions::default())
        .context("connecting to the leader")?;
    let mut results = Vec::new();

    // acks=1 does not consult the topic's ack mode; `async` is the one that matches it.
    let topic = ACKS_LEADER_TOPIC;
    let isr_full_after = create_topic(cluster, &mut client, topic, AckModeName::Async)?;
    progress(&format!(
        "replicated: replicated_qd1 1 KiB records, acks=1, 1 request in flight ({write_path}; \
         ISR full after {} ms)",
        isr_full_after.as_millis()
    ));
    let run = measure(cluster, dir, topic, progress, || {
        run_qd1(&client, topic, Acks::Leader, options)
    })?;
    results.push(run.into_result(write_path, ACKS_LEADER_LABEL, isr_full_after));

    for ack_mode in &options.ack_modes {
        let topic = format!("replicated-{ack_mode}");
        let isr_full_after = create_topic(cluster, &mut client, &topic, *ack_mode)?;
        progress(&format!(
            "replicated: replicated_qd1 1 KiB records, acks=-1 ({ack_mode}), 1 request in \
             flight ({write_path}; ISR full after {} ms)",
            isr_full_after.as_millis()
        ));
        let run = measure(cluster, dir, &topic, progress, || {
            run_qd1(&client, &topic, Acks::All, options)
        })?;
        results.push(run.into_result(write_path, ack_mode.as_str(), isr_full_after));

        progress(&format!(
            "replicated: replicated_saturated 16 KiB batches, acks=-1 ({ack_mode}), {} \
             producers x {} in flight ({write_path})",
            options.produce.producers, options.produce.in_flight_max
        ));
        let run = measure(cluster, dir, &topic, progress, || {
            run_saturated(&client, &topic, options)
        })?;
        results.push(run.into_result(write_path, ack_mode.as_str(), isr_full_after));
    }
    Ok(results)
}

/// Creates `topic` on the leader (one partition, every node a replica, `ack_mode`) and waits
/// until its ISR holds every replica; returns how long that took.
fn create_topic(
    cluster: &mut ClusterProcess,
    client: &mut Client,
    topic: &str,
    ack_mode: AckModeName,
) -> anyhow::Result<Duration> {
    let configs = topic_configs(ack_mode);
    let replication_factor = i16::try_from(NODE_COUNT).expect("three nodes");
    client
        .create_topic_with(topic, 1, replication_factor, &configs)
        .with_context(|| format!("creating topic {topic} ({ack_mode})"))?;
    let created = Instant::now();
    wait_for_full_isr(cluster, topic)?;
    Ok(created.elapsed())
}

/// Waits until the cluster is quiet enough to measure on `topic`: its ISR holds every
/// replica, no follower is behind on any partition (`ringlog_follower_lag_records` all 0),
/// and every node's spare segments under `dir` are filled (`spares_not_ready`). Returns how
/// long that took.
fn settle(cluster: &mut ClusterProcess, dir: &Path, topic: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let deadline = started + SETTLE_WAIT_MAX;
    let isr_series = isr_size_series(topic);
    loop {
        cluster.check_running()?;
        let metrics = cluster.leader().http_get("/metrics")?;
        let isr_size = metric_value(&metrics, &isr_series);
        let lag_records = follower_lag_records(&metrics);
        let spares = spares_not_ready(dir);
        if isr_size == Some(u64::from(NODE_COUNT)) && lag_records == 0 && spares.is_empty() {
            return Ok(started.elapsed());
        }
        if Instant::now() >= deadline {
            bail!(
                "the cluster did not settle within {} s: {isr_series} {isr_size:?}, followers \
                 {lag_records} records behind in all, spares not ready: {spares:?}",
                SETTLE_WAIT_MAX.as_secs()
            );
        }
        thread::sleep(SETTLE_POLL_INTERVAL);
    }
}

/// Records the followers have not fetched, summed over every partition and follower.
fn follower_lag_records(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("ringlog_follower_lag_records{"))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(_, value)| value.trim().parse::<u64>().ok())
        .sum()
}

/// What keeps the nodes' spare segments from being settled under `dir`: each spare still
/// being zero-filled (`<dir>/n<id>/data/<partition>/.spare-N.tmp`, docs/wal-format.md), and
/// each partition directory (one holding a segment) with no filled spare (`.spare-N.log`)
/// yet. A partition keeps a filled spare ready, and the next fill starts only after a new
/// segment took the last one, so a moment with no fill running is not enough: a new
/// partition's second fill starts after its first spare became its first segment. The
/// directories are the bench's own.
pub(crate) fn spares_not_ready(dir: &Path) -> Vec<PathBuf> {
    let mut not_ready = Vec::new();
    for id in 1..=NODE_COUNT {
        let data_dir = dir.join(format!("n{id}")).join("data");
        let Ok(partitions) = std::fs::read_dir(&data_dir) else {
            continue;
        };
        for partition in partitions.flatten() {
            let Ok(files) = std::fs::read_dir(partition.path()) else {
                continue;
            };
            let mut has_segment = false;
            let mut has_spare = false;
            for file in files.flatten() {
                let name = file.file_name();
                let name = name.to_string_lossy();
                match spare_file_kind(&name) {
                    Some(SpareFile::Filling) => not_ready.push(file.path()),
                    Some(SpareFile::Ready) => has_spare = true,
                    None => has_segment |= is_segment_file(&name),
                }
            }
            if has_segment && !has_spare {
                not_ready.push(partition.path());
            }
        }
    }
    not_ready
}

/// A spare segment's file, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpareFile {
    /// `.spare-<n>.tmp`: the housekeeper is still zero-filling it.
    Filling,
    /// `.spare-<n>.log`: filled, ready for the next segment.
    Ready,
}

fn spare_file_kind(file_name: &str) -> Option<SpareFile> {
    let rest = file_name.strip_prefix(".spare-")?;
    if rest.ends_with(".tmp") {
        Some(SpareFile::Filling)
    } else if rest.ends_with(".log") {
        Some(SpareFile::Ready)
    } else {
        None
    }
}

/// `<20 digits>.log`: a segment, named by its base offset.
fn is_segment_file(file_name: &str) -> bool {
    file_name
        .strip_suffix(".log")
        .is_some_and(|base| base.len() == 20 && base.bytes().all(|b| b.is_ascii_digit()))
}

/// The CreateTopics configs of a topic with `ack_mode` (docs/replication.md#topic-settings).
pub(crate) fn topic_configs(ack_mode: AckModeName) -> Vec<(String, String)> {
    vec![
        ("ack_mode".to_owned(), ack_mode.as_str().to_owned()),
        (
            "min_insync_replicas".to_owned(),
            MIN_INSYNC_REPLICAS.to_string(),
        ),
    ]
}

/// The `partition` label of a topic's only partition in the node's metrics.
fn partition_label(topic: &str) -> String {
    format!("{topic}-0")
}

/// Polls the leader's `/metrics` until the partition's ISR holds all `NODE_COUNT` replicas
/// (followers join after their first fetches), or fails after `ISR_WAIT_MAX`.
fn wait_for_full_isr(cluster: &mut ClusterProcess, topic: &str) -> anyhow::Result<()> {
    let series = isr_size_series(topic);
    let deadline = Instant::now() + ISR_WAIT_MAX;
    loop {
        cluster.check_running()?;
        let metrics = cluster.leader().http_get("/metrics")?;
        let isr_size = metric_value(&metrics, &series);
        if isr_size == Some(u64::from(NODE_COUNT)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the ISR of {} did not reach {NODE_COUNT} replicas within {} s (leader's {series} \
                 is {}); follower gauges:\n{}",
                partition_label(topic),
                ISR_WAIT_MAX.as_secs(),
                isr_size.map_or_else(|| "absent".to_owned(), |size| size.to_string()),
                follower_lines(&metrics, topic)
            );
        }
        thread::sleep(ISR_POLL_INTERVAL);
    }
}

/// `ringlog_partition_isr_size{partition="<topic>-0"}`.
fn isr_size_series(topic: &str) -> String {
    format!(
        "ringlog_partition_isr_size{{partition=\"{}\"}}",
        partition_label(topic)
    )
}

/// The leader's per-follower gauges of `topic`'s partition, for an error message.
fn follower_lines(metrics: &str, topic: &str) -> String {
    let label = format!("{{partition=\"{}\",", partition_label(topic));
    let lines: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("ringlog_follower_") && line.contains(&label))
        .collect();
    lines.join("\n")
}

/// The value of the sample `series` (a metric name with its labels, exactly as the node
/// writes them) in a Prometheus text exposition; None if absent or not an integer.
pub(crate) fn metric_value(metrics: &str, series: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The leader's counters that say whether a run kept its ISR and its ack mode.
pub(crate) const REPLICATION_COUNTERS: [(&str, &str); 6] = [
    ("isr_shrinks", "ringlog_isr_shrinks_total"),
    ("isr_expands", "ringlog_isr_expands_total"),
    ("acks_timed_out", "ringlog_acks_timed_out_total"),
    ("not_enough_replicas", "ringlog_not_enough_replicas_total"),
    (
        "not_enough_replicas_after_append",
        "ringlog_not_enough_replicas_after_append_total",
    ),
    ("degraded_acks", "ringlog_degraded_acks_total"),
];

/// Values of `REPLICATION_COUNTERS`, in that order (0 where absent).
pub(crate) fn replication_counters(metrics: &str) -> [u64; REPLICATION_COUNTERS.len()] {
    REPLICATION_COUNTERS.map(|(_, series)| metric_value(metrics, series).unwrap_or(0))
}

/// Lets the cluster settle, then runs `run` between two reads of the leader's counters and
/// adds their change (and the ISR size at the end, and the settling time) to the run's
/// extras. Fails if a node died meanwhile.
fn measure(
    cluster: &mut ClusterProcess,
    dir: &Path,
    topic: &str,
    progress: &mut dyn FnMut(&str),
    run: impl FnOnce() -> anyhow::Result<Measured>,
) -> anyhow::Result<Measured> {
    let settled_after = settle(cluster, dir, topic)?;
    let before = replication_counters(&cluster.leader().http_get("/metrics")?);
    let cpu_before = CpuTimes::now();
    let mut measured = run()?;
    let steal = steal_percent_since(cpu_before);
    cluster.check_running()?;
    let metrics = cluster.leader().http_get("/metrics")?;
    let after = replication_counters(&metrics);
    let mut changes = Map::new();
    for (index, (key, _)) in REPLICATION_COUNTERS.iter().enumerate() {
        changes.insert(
            (*key).to_owned(),
            json!(after[index].saturating_sub(before[index])),
        );
    }
    let changed: Vec<String> = changes
        .iter()
        .filter(|(_, change)| change.as_u64() != Some(0))
        .map(|(key, change)| format!("{key} +{change}"))
        .collect();
    let isr_size = metric_value(&metrics, &isr_size_series(topic));
    if !changed.is_empty() || isr_size != Some(u64::from(NODE_COUNT)) {
        progress(&format!(
            "replicated: note: during this run {}; ISR size at the end {}",
            if changed.is_empty() {
                "no replication counter changed".to_owned()
            } else {
                changed.join(", ")
            },
            isr_size.map_or_else(|| "absent".to_owned(), |size| size.to_string())
        ));
    }
    measured
        .extra
        .insert("replication_counters".into(), Value::Object(changes));
    measured
        .extra
        .insert("isr_size_after".into(), json!(isr_size));
    measured.extra.insert(
        "settled_after_secs".into(),
        json!(settled_after.as_secs_f64()),
    );
    if let Some(steal) = steal {
        measured.extra.insert(STEAL_KEY.into(), json!(steal));
        if steal >= STEAL_NOTE_PERCENT {
            progress(&format!(
                "replicated: note: the hypervisor gave {steal:.0}% of this machine's CPU time                  to other guests during this run (steal): its latencies are the neighbours'                  as much as ringlog's"
            ));
        }
    }
    let summary = LatencySummary::from_histogram(&measured.histogram);
    progress(&format!(
        "replicated: {} requests answered, p50 {} µs, p99 {} µs",
        measured.acked_requests, summary.p50, summary.p99
    ));
    Ok(measured)
}

/// What one replicated run measured.
struct Measured {
    scenario: &'static str,
    acks: Acks,
    batch_bytes: u64,
    concurrency: u64,
    histogram: Histogram<u64>,
    acked_requests: u64,
    elapsed: Duration,
    extra: Map<String, Value>,
}

impl Measured {
    /// The report row; `ack_mode` is the topic's ack mode, or `acks=1`.
    fn into_result(
        self,
        write_path: WritePathName,
        ack_mode: &str,
        isr_full_after: Duration,
    ) -> RunResult {
        let records = self.acked_requests * records_per_batch(self.batch_bytes);
        let (comparison, target) = row_judgement(self.concurrency, self.acks, ack_mode);
        let mut extra = self.extra;
        extra.insert("acks".into(), json!(self.acks.code()));
        extra.insert("replication_factor".into(), json!(NODE_COUNT));
        extra.insert("min_insync_replicas".into(), json!(MIN_INSYNC_REPLICAS));
        extra.insert(
            "isr_full_after_secs".into(),
            json!(isr_full_after.as_secs_f64()),
        );
        extra.insert(
            "requests_per_s".into(),
            json!(per_s(self.acked_requests, self.elapsed)),
        );
        extra.insert(
            "records_per_request".into(),
            json!(records_per_batch(self.batch_bytes)),
        );
        extra.insert("measured_secs".into(), json!(self.elapsed.as_secs_f64()));
        RunResult {
            scenario: self.scenario.to_owned(),
            write_path: write_path.as_str().to_owned(),
            ack_mode: Some(ack_mode.to_owned()),
            payload_bytes: self.batch_bytes,
            concurrency: self.concurrency,
            records_per_s: per_s(records, self.elapsed),
            mb_per_s: mb_per_s(self.acked_requests * self.batch_bytes, self.elapsed),
            latency_us: LatencySummary::from_histogram(&self.histogram),
            target_rate_records_per_s: None,
            e2e_latency_us: None,
            comparison,
            target,
            extra,
            histogram: Some(self.histogram),
            e2e_histogram: None,
        }
    }
}

/// How a row is compared with the baselines, and its target: queue-depth-1 rows against
/// fdatasync + round trip (`sync` with acks=-1 must stay within `SYNC_QD1_RATIO_MAX`),
/// saturated rows against the 1 MiB bandwidth.
fn row_judgement(concurrency: u64, acks: Acks, ack_mode: &str) -> (Comparison, Option<Target>) {
    if concurrency > 1 {
        return (Comparison::Bandwidth, None);
    }
    let is_sync = acks == Acks::All && ack_mode == AckModeName::Sync.as_str();
    let target = is_sync.then_some(Target::P50AndP99RatioPlusRttMax(SYNC_QD1_RATIO_MAX));
    (Comparison::LatencyQd1PlusRtt, target)
}

/// One 1 KiB record per request with `acks`, each sent when the previous one is answered.
fn run_qd1(
    client: &Client,
    topic: &str,
    acks: Acks,
    options: &ReplicatedOptions,
) -> anyhow::Result<Measured> {
    let wal = &options.produce.wal;
    let timed = time_qd1(client, topic, acks, wal.warmup, wal.duration)?;
    Ok(Measured {
        scenario: "replicated_qd1",
        acks,
        batch_bytes: QD1_BATCH_BYTES,
        concurrency: 1,
        histogram: timed.histogram,
        acked_requests: timed.acked_requests,
        elapsed: timed.elapsed,
        extra: Map::new(),
    })
}

/// `producers` threads sending full 16 KiB batches with acks=-1 and many requests in
/// flight: `--warmup-secs` unmeasured, then `--duration-secs` measured.
fn run_saturated(
    client: &Client,
    topic: &str,
    options: &ReplicatedOptions,
) -> anyhow::Result<Measured> {
    let produce = &options.produce;
    let producer_options = ProducerOptions {
        acks: Acks::All,
        batch_size_bytes: BATCH_SIZE_BYTES_DEFAULT,
        linger: LINGER,
        in_flight_max: produce.in_flight_max,
    };
    let producers: Vec<Producer> = (0..produce.producers)
        .map(|_| Producer::new(client, producer_options.clone()))
        .collect();
    let window = Window {
        start: OnceLock::new(),
        duration: produce.wal.duration,
        abandoned: AtomicBool::new(false),
    };
    let (warmed, counts) = thread::scope(|scope| {
        let window = &window;
        let senders: Vec<_> = producers
            .iter()
            .map(|producer| scope.spawn(move || send_saturated(producer, topic, window)))
            .collect();
        let warmed = warm_up(produce.wal.warmup, || {
            senders.iter().any(thread::ScopedJoinHandle::is_finished)
        });
        match &warmed {
            Ok(()) => {
                window.start.set(Instant::now()).ok();
            }
            Err(_) => window.abandoned.store(true, Ordering::Relaxed),
        }
        let counts = senders
            .into_iter()
            .map(|sender| {
                sender
                    .join()
                    .map_err(|_| anyhow!("a producer thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<SenderCounts>>>();
        (warmed, counts)
    });
    // A sender's own error explains a failed warm-up better than the warm-up's.
    let counts = counts?;
    warmed?;
    let merged = merge_counts(&counts)?;
    let mut extra = Map::new();
    extra.insert("producers".into(), json!(produce.producers));
    extra.insert("in_flight_max".into(), json!(produce.in_flight_max));
    extra.insert(
        "in_flight_observed_max".into(),
        json!(merged.in_flight_count_max),
    );
    extra.insert("batch_bytes".into(), json!(encoded_batch_bytes()));
    extra.insert(
        "warmup_secs".into(),
        json!(produce.wal.warmup.as_secs_f64()),
    );
    Ok(Measured {
        scenario: "replicated_saturated",
        acks: Acks::All,
        batch_bytes: SATURATED_BATCH_BYTES,
        concurrency: (produce.producers * produce.in_flight_max) as u64,
        histogram: merged.histogram,
        acked_requests: merged.acked_requests,
        elapsed: window.duration,
        extra,
    })
}

/// The saturated senders' counts added up: one histogram, all answers, the deepest
/// pipeline any of them saw.
fn merge_counts(counts: &[SenderCounts]) -> anyhow::Result<SenderCounts> {
    let mut merged = SenderCounts {
        histogram: new_histogram(),
        acked_requests: 0,
        in_flight_count_max: 0,
    };
    for sender in counts {
        merged
            .histogram
            .add(&sender.histogram)
            .context("merging latency histograms")?;
        merged.acked_requests += sender.acked_requests;
        merged.in_flight_count_max = merged.in_flight_count_max.max(sender.in_flight_count_max);
    }
    Ok(merged)
}

/// Lets the senders run for `warmup`, failing early if `senders_stopped` says one has ended
/// (it failed, and its error is the one to report).
fn warm_up(warmup: Duration, senders_stopped: impl Fn() -> bool) -> anyhow::Result<()> {
    let end = Instant::now() + warmup;
    loop {
        if senders_stopped() {
            bail!("a producer stopped during the warm-up");
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        thread::sleep(left.min(WARMUP_POLL_INTERVAL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "\
# HELP ringlog_isr_shrinks_total Followers that left an ISR.
# TYPE ringlog_isr_shrinks_total counter
ringlog_isr_shrinks_total 2
ringlog_isr_expands_total 7
ringlog_partition_isr_size{partition=\"replicated-sync-0\"} 3
ringlog_partition_isr_size{partition=\"replicated-sync-10\"} 1
ringlog_partition_isr_size{partition=\"replicated-async-0\"} 2
ringlog_follower_in_isr{partition=\"replicated-sync-0\",follower=\"2\"} 1
ringlog_follower_in_isr{partition=\"replicated-sync-10\",follower=\"2\"} 0
";

    // Samples are found by their exact name and labels: a longer name or another partition
    // whose label starts the same does not match.
    #[test]
    fn reads_metric_samples() {
        assert_eq!(metric_value(METRICS, "ringlog_isr_shrinks_total"), Some(2));
        assert_eq!(
            metric_value(METRICS, &isr_size_series("replicated-sync")),
            Some(3)
        );
        assert_eq!(
            metric_value(METRICS, &isr_size_series("replicated-async")),
            Some(2)
        );
        assert_eq!(
            metric_value(METRICS, &isr_size_series("replicated-quorum")),
            None
        );
        assert_eq!(metric_value(METRICS, "ringlog_isr"), None);
        assert_eq!(
            follower_lines(METRICS, "replicated-sync"),
            "ringlog_follower_in_isr{partition=\"replicated-sync-0\",follower=\"2\"} 1"
        );
        let counters = replication_counters(METRICS);
        assert_eq!(counters, [2, 7, 0, 0, 0, 0]);
        assert_eq!(follower_lag_records(METRICS), 0);
        let lagging = "ringlog_follower_lag_records{partition=\"a-0\",follower=\"2\"} 5\n\
                       ringlog_follower_lag_records{partition=\"b-0\",follower=\"3\"} 7\n\
                       ringlog_follower_lag_ms{partition=\"b-0\",follower=\"3\"} 900\n";
        assert_eq!(follower_lag_records(lagging), 12);
    }

    // A spare being filled is not ready, and neither is a partition directory with segments
    // but no filled spare; a directory without segments (the trash) needs no spare.
    #[test]
    fn finds_spares_not_ready() {
        assert_eq!(
            spare_file_kind(".spare-00000000000000000008.tmp"),
            Some(SpareFile::Filling)
        );
        assert_eq!(
            spare_file_kind(".spare-00000000000000000007.log"),
            Some(SpareFile::Ready)
        );
        assert_eq!(spare_file_kind("00000000000000000000.log"), None);
        assert_eq!(spare_file_kind("x.tmp"), None);
        assert!(is_segment_file("00000000000000000000.log"));
        assert!(!is_segment_file("00000000000000000000.index"));
        assert!(!is_segment_file("0000000000000000000.log"));
        assert!(!is_segment_file(".spare-0000000000000000000.log"));
        let scratch = tempfile::tempdir().unwrap();
        assert!(spares_not_ready(scratch.path()).is_empty());
        let data = scratch.path().join("n3/data");
        let partition = data.join("replicated-sync-0");
        std::fs::create_dir_all(&partition).unwrap();
        std::fs::create_dir_all(data.join("deleted")).unwrap();
        std::fs::write(partition.join("00000000000000000000.log"), b"").unwrap();
        assert_eq!(
            spares_not_ready(scratch.path()),
            std::slice::from_ref(&partition)
        );
        std::fs::write(partition.join(".spare-00000000000000000002.tmp"), b"").unwrap();
        let mut not_ready = spares_not_ready(scratch.path());
        not_ready.sort();
        assert_eq!(
            not_ready,
            [
                partition.clone(),
                partition.join(".spare-00000000000000000002.tmp")
            ]
        );
        std::fs::rename(
            partition.join(".spare-00000000000000000002.tmp"),
            partition.join(".spare-00000000000000000002.log"),
        )
        .unwrap();
        assert!(spares_not_ready(scratch.path()).is_empty());
    }

    // Every topic asks for its ack mode and min_insync_replicas = 2, the names the node reads.
    #[test]
    fn topic_configs_name_the_ack_mode() {
        let configs = topic_configs(AckModeName::SemiSync);
        assert_eq!(
            configs,
            [
                ("ack_mode".to_owned(), "semi-sync".to_owned()),
                ("min_insync_replicas".to_owned(), "2".to_owned()),
            ]
        );
    }

    // Only `sync` at queue depth 1 with acks=-1 carries the target; every QD1 row is
    // compared with fdatasync + round trip, every saturated row with the bandwidth.
    #[test]
    fn rows_are_judged_by_shape_and_ack_mode() {
        let sync_qd1 = row_judgement(1, Acks::All, "sync");
        assert_eq!(
            sync_qd1,
            (
                Comparison::LatencyQd1PlusRtt,
                Some(Target::P50AndP99RatioPlusRttMax(2.0))
            )
        );
        assert_eq!(
            row_judgement(1, Acks::All, "quorum"),
            (Comparison::LatencyQd1PlusRtt, None)
        );
        assert_eq!(
            row_judgement(1, Acks::Leader, ACKS_LEADER_LABEL),
            (Comparison::LatencyQd1PlusRtt, None)
        );
        assert_eq!(
            row_judgement(256, Acks::All, "sync"),
            (Comparison::Bandwidth, None)
        );
    }

    // A row carries its ack mode, the acks it was sent with and the rates of its counts.
    #[test]
    fn rows_carry_ack_mode_and_acks() {
        let measured = Measured {
            scenario: "replicated_saturated",
            acks: Acks::All,
            batch_bytes: SATURATED_BATCH_BYTES,
            concurrency: 256,
            histogram: new_histogram(),
            acked_requests: 100,
            elapsed: Duration::from_secs(2),
            extra: Map::new(),
        };
        let isr_full_after = Duration::from_millis(500);
        let row = measured.into_result(WritePathName::Direct, "quorum", isr_full_after);
        assert_eq!(row.ack_mode.as_deref(), Some("quorum"));
        assert_eq!(row.records_per_s, 800.0);
        assert_eq!(row.mb_per_s, 100.0 * 16384.0 / 2e6);
        assert_eq!(row.extra["acks"], -1);
        assert_eq!(row.extra["isr_full_after_secs"], 0.5);
        assert_eq!(row.comparison, Comparison::Bandwidth);
    }
}
