//! The default mode's scenarios: for acks=1 and each topic ack mode, a fixed-rate open-loop
//! run and a saturation run, on a local 3-node cluster (one per write path) or on an existing
//! cluster (`--target`), through `load_generator.rs` (DESIGN.md sections 4 and 8).
//!
//! Local: three `ringlog serve` children on 127.0.0.1-3 (`ClusterProcess`, node 1 leads),
//! each shard pinned to its own CPU as far as there are CPUs (the leader alone on the first),
//! the load generator's threads on the CPUs no node has, or else beside the followers; the
//! layout goes into the progress lines and the report. Remote: no process is started; the
//! first address bootstraps, the nodes' status documents (`status_request.rs`) say who leads
//! and how many replicas there are, and are recorded in the report.
//!
//! Per mode a topic `ringlog-bench-<mode>` (remote: `ringlog-bench-<mode>-<pid>`, deleted at
//! the end) is created with `--partitions` partitions, every node a replica, the mode's
//! `ack_mode` (acks=1 rows: `async`, which acks=1 does not consult) and `min_insync_replicas`
//! 2. Before each run the cluster settles: every partition's ISR holds every replica and no
//! follower is behind (the leader's status document), and, locally, every node has the
//! filled spare segment of each partition ready (none still being zero-filled). Then:
//!
//! - the fixed-rate run (`open_loop`, or `closed_loop` with `--closed-loop`): the load at
//!   `--rate-records-per-sec`, latency from each record's due time;
//! - the saturation run (`saturated`): the same shape in a closed loop, as fast as the
//!   answers come back.
//!
//! Every row is compared, percentile by percentile, with the 4 KiB fdatasync baseline plus
//! the loopback 1 KiB round trip (`Comparison::LatencyPlusRttPerPercentile`).
//!
//! Invariants: the local nodes are killed when this module returns, with or without an error
//! (`ClusterProcess` owns them); no run starts before its topic's ISR is full; a stalled
//! leader (`--stall-leader-ms`) always gets its SIGCONT before the run's result is taken.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ringlog_client::{Acks, Client, ClientOptions};
use serde_json::{json, Map, Value};

use crate::follower_fetch::{E2eConsumer, E2eControl, E2eOutcome};
use crate::latency::new_histogram;
use crate::load_generator::{
    pin_current_thread, run_load, LoadOutcome, LoadPlan, RunClock, Window,
};
use crate::options::{AckModeName, LoadShape, ModeName, Pacing, ScenarioOptions, Stall};
use crate::progress::Progress;
use crate::replicated_runs::{replication_counters, spares_not_ready, REPLICATION_COUNTERS};
use crate::report::{mb_per_s, per_s, Comparison, LatencySummary, RunResult};
use crate::server_process::{load_generator_cpus, ClusterProcess, ClusterSpec};
use crate::status_request::query_status;

/// Nodes of the local cluster.
pub const NODE_COUNT: u32 = 3;
/// `cluster.id` of the local cluster.
const CLUSTER_ID: &str = "bench";
/// `replication.replica_lag_max_ms` of the local nodes: long enough that a saturated
/// follower stays in the ISR.
const REPLICA_LAG_MAX: Duration = Duration::from_secs(10);
/// `min_insync_replicas` of every topic (the usual choice with 3 replicas; fewer replicas
/// lower it to their count).
const MIN_INSYNC_REPLICAS: usize = 2;
/// Longest wait for a new topic's ISRs to hold every replica.
const ISR_WAIT_MAX: Duration = Duration::from_secs(30);
/// Longest wait for the cluster to settle before a run.
const SETTLE_WAIT_MAX: Duration = Duration::from_secs(60);
/// Pause between two looks at the cluster while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Time between planning a run's window and its first due time: the threads start first.
const WINDOW_LEAD: Duration = Duration::from_millis(20);
/// How long the end-to-end consumer may take, after the load, to read everything that was
/// acknowledged (the followers' HW catches up within a replica fetch or two).
const E2E_DRAIN_MAX: Duration = Duration::from_secs(10);
/// Prefix of every topic the default mode creates.
pub const TOPIC_PREFIX: &str = "ringlog-bench-";

/// Estimated seconds of everything but the runs, for the planned duration: baselines
/// (`--quick` plans: at most 3 s per device baseline plus pre-filling, 2 s per round trip).
pub const BASELINES_PLANNED: Duration = Duration::from_secs(12);
/// Estimated start of a local cluster (three nodes to health and a Kafka connection).
const CLUSTER_START_PLANNED: Duration = Duration::from_secs(3);
/// Estimated topic creation, ISR wait and settling per mode.
const MODE_SETUP_PLANNED: Duration = Duration::from_secs(2);
/// Estimated settling and draining per run, beside its warm-up and measured time.
const RUN_OVERHEAD_PLANNED: Duration = Duration::from_secs(1);

/// What the default mode measured.
#[derive(Debug)]
pub struct ScenarioResults {
    /// The rows, in the order they ran.
    pub runs: Vec<RunResult>,
    /// The cluster's layout (and, remote, its status documents), for the report.
    pub cluster: Value,
}

/// How long `options` should take, baselines included (the progress bar's 100%).
pub fn planned_duration(options: &ScenarioOptions) -> Duration {
    let remote = options.target.is_some();
    let clusters = if remote {
        1
    } else {
        u32::try_from(options.write_paths.len()).unwrap_or(u32::MAX)
    };
    let starts = if remote { 0 } else { clusters };
    let runs_per_mode = if options.saturation { 2 } else { 1 };
    let run = options.warmup + options.duration + RUN_OVERHEAD_PLANNED;
    let mode = MODE_SETUP_PLANNED + run * runs_per_mode;
    let modes = u32::try_from(options.modes.len()).unwrap_or(u32::MAX);
    BASELINES_PLANNED + CLUSTER_START_PLANNED * starts + mode * modes * clusters
}

/// Runs every mode of `options` on local clusters (one per write path) or on `--target`.
pub fn run_scenarios(
    options: &ScenarioOptions,
    progress: &Progress,
) -> anyhow::Result<ScenarioResults> {
    match &options.target {
        Some(addresses) => run_remote(options, addresses, progress),
        None => run_local(options, progress),
    }
}

fn run_local(options: &ScenarioOptions, progress: &Progress) -> anyhow::Result<ScenarioResults> {
    let binary = options
        .ringlog_bin
        .clone()
        .context("a local cluster needs the ringlog binary")?;
    let generator_cpus = load_generator_cpus(NODE_COUNT);
    let mut runs = Vec::new();
    let mut nodes_json = Vec::new();
    for write_path in &options.write_paths {
        let dir = options.dir.join(format!("cluster-{write_path}"));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        progress.phase(&format!("starting the {write_path} cluster"));
        let spec = ClusterSpec {
            binary: binary.clone(),
            dir: dir.clone(),
            cluster_id: CLUSTER_ID.to_owned(),
            node_count: NODE_COUNT,
            write_path: *write_path,
            segment_size_bytes: options.segment_size_bytes,
            retention_bytes: Some(options.retention_bytes),
            replica_lag_max: REPLICA_LAG_MAX,
        };
        let mut cluster = ClusterProcess::start(&spec)?;
        let layout = local_layout(&cluster, *write_path, &generator_cpus);
        progress.line(&format!(
            "cluster ({write_path}): {}; load generator on CPU {}",
            describe_nodes(&layout),
            format_cpus(&generator_cpus)
        ));
        progress.line(&format!("leader pid {}", cluster.pids()[0]));
        nodes_json.extend(layout);
        // The bench's own threads (metrics polls, the producers it starts) stay off the
        // leader's CPU.
        pin_current_thread(generator_cpus.first().copied());
        let label = write_path.as_str().to_owned();
        let mut access = Access::Local {
            cluster: &mut cluster,
            dir: &dir,
        };
        let measured = run_modes(&mut access, options, &label, &generator_cpus, progress);
        let measured = match measured {
            Ok(measured) => measured,
            Err(error) => bail!(
                "on the {write_path} cluster: {error:#}\nthe nodes' last log lines:\n{}",
                cluster.log_tails()
            ),
        };
        runs.extend(measured);
        cluster.stop()?;
        std::fs::remove_dir_all(&dir).ok();
    }
    let cluster = json!({
        "kind": "local",
        "nodes": nodes_json,
        "load_generator_cpus": generator_cpus,
        "replica_lag_max_ms": u64::try_from(REPLICA_LAG_MAX.as_millis()).unwrap_or(u64::MAX),
    });
    Ok(ScenarioResults { runs, cluster })
}

fn run_remote(
    options: &ScenarioOptions,
    addresses: &[String],
    progress: &Progress,
) -> anyhow::Result<ScenarioResults> {
    let bootstrap = addresses
        .first()
        .context("--target names no address")?
        .clone();
    let first = query_status(&bootstrap).with_context(|| {
        format!("asking {bootstrap} for its status (is it a ringlog node's Kafka address?)")
    })?;
    let remote = RemoteCluster::from_status(&bootstrap, &first)?;
    let statuses = remote.statuses();
    progress.line(&format!(
        "target: cluster {}, {} node(s), leader node {} at {}",
        first["cluster_id"].as_str().unwrap_or("(single node)"),
        remote.replicas,
        remote.leader_id,
        remote.leader_address
    ));
    let mut access = Access::Remote(remote);
    let label = "remote".to_owned();
    let runs = run_modes(&mut access, options, &label, &[], progress)?;
    let Access::Remote(remote) = access else {
        unreachable!("the access stays remote")
    };
    let cluster = json!({
        "kind": "remote",
        "addresses": addresses,
        "bootstrap": bootstrap,
        "leader": remote.leader_id,
        "leader_address": remote.leader_address,
        "consumer_address": remote.follower_address,
        "replicas": remote.replicas,
        "cluster_id": first["cluster_id"],
        "epoch": first["epoch"],
        "nodes": first["nodes"],
        "status": statuses,
    });
    Ok(ScenarioResults { runs, cluster })
}

/// Each node of a local cluster: id, role, addresses, PID and CPU.
fn local_layout(
    cluster: &ClusterProcess,
    write_path: crate::options::WritePathName,
    generator_cpus: &[usize],
) -> Vec<Value> {
    let shard_cpus = cluster.shard_cpus();
    cluster
        .nodes()
        .iter()
        .zip(cluster.node_cpus())
        .zip(shard_cpus)
        .enumerate()
        .map(|(index, ((node, cpu), shard_cpus))| {
            let addresses = node.addresses();
            json!({
                "id": index + 1,
                "role": if index == 0 { "leader" } else { "follower" },
                "write_path": write_path.as_str(),
                "client": addresses.client.to_string(),
                "http": addresses.http.to_string(),
                "replication": addresses.replication.to_string(),
                "pid": node.pid(),
                "cpu": cpu,
                "shard_cpus": shard_cpus,
                "shares_cpu_with_load_generator": generator_cpus.contains(cpu),
            })
        })
        .collect()
}

/// "node 1 (leader) 127.0.0.1:40001 pid 12 CPU 0, node 2 ...".
fn describe_nodes(layout: &[Value]) -> String {
    let nodes: Vec<String> = layout
        .iter()
        .map(|node| {
            format!(
                "node {} ({}) {} pid {} CPU {}",
                node["id"],
                node["role"].as_str().unwrap_or("?"),
                node["client"].as_str().unwrap_or("?"),
                node["pid"],
                node["cpu"]
            )
        })
        .collect();
    nodes.join(", ")
}

/// "1", "1,2", or "-" for none.
pub fn format_cpus(cpus: &[usize]) -> String {
    if cpus.is_empty() {
        return "-".to_owned();
    }
    let list: Vec<String> = cpus.iter().map(ToString::to_string).collect();
    list.join(",")
}

/// A cluster the bench did not start, as its status documents describe it.
#[derive(Debug)]
struct RemoteCluster {
    leader_id: u64,
    leader_address: String,
    /// A node other than the leader, where the end-to-end consumer reads (the leader if the
    /// cluster has one node).
    follower_address: String,
    /// Every node's Kafka address, in id order.
    node_addresses: Vec<String>,
    replicas: usize,
}

impl RemoteCluster {
    fn from_status(bootstrap: &str, status: &Value) -> anyhow::Result<RemoteCluster> {
        let nodes: Vec<(u64, String)> = status["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|node| Some((node["id"].as_u64()?, node["client"].as_str()?.to_owned())))
            .collect();
        if nodes.is_empty() {
            bail!("{bootstrap}'s status names no nodes");
        }
        let leader_id = status["leader"].as_u64().unwrap_or(0);
        let leader_address = nodes
            .iter()
            .find(|(id, _)| *id == leader_id)
            .map_or_else(|| bootstrap.to_owned(), |(_, address)| address.clone());
        let follower_address = nodes
            .iter()
            .find(|(id, _)| *id != leader_id)
            .map_or_else(|| leader_address.clone(), |(_, address)| address.clone());
        Ok(RemoteCluster {
            leader_id,
            leader_address,
            follower_address,
            replicas: nodes.len(),
            node_addresses: nodes.into_iter().map(|(_, address)| address).collect(),
        })
    }

    /// Every node's status document (an error string for a node that does not answer).
    fn statuses(&self) -> Vec<Value> {
        self.node_addresses
            .iter()
            .map(|address| match query_status(address) {
                Ok(document) => document,
                Err(error) => json!({"client": address, "error": format!("{error:#}")}),
            })
            .collect()
    }
}

/// What the scenarios need of the cluster, local or remote.
enum Access<'c> {
    Local {
        cluster: &'c mut ClusterProcess,
        dir: &'c Path,
    },
    Remote(RemoteCluster),
}

impl Access<'_> {
    /// The leader's Kafka address (bootstrap, and the status request).
    fn leader_address(&self) -> String {
        match self {
            Access::Local { cluster, .. } => cluster.leader().bootstrap(),
            Access::Remote(remote) => remote.leader_address.clone(),
        }
    }

    /// Where the end-to-end consumer fetches: a follower (node 2 locally).
    fn follower_address(&self) -> String {
        match self {
            Access::Local { cluster, .. } => cluster.nodes()[1].bootstrap(),
            Access::Remote(remote) => remote.follower_address.clone(),
        }
    }

    fn replicas(&self) -> usize {
        match self {
            Access::Local { cluster, .. } => cluster.nodes().len(),
            Access::Remote(remote) => remote.replicas,
        }
    }

    fn leader_pid(&self) -> Option<u32> {
        match self {
            Access::Local { cluster, .. } => Some(cluster.leader().pid()),
            Access::Remote(_) => None,
        }
    }

    /// Fails if a local node has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        match self {
            Access::Local { cluster, .. } => cluster.check_running(),
            Access::Remote(_) => Ok(()),
        }
    }

    /// The local nodes' spare segments not filled yet (none known remotely).
    fn spares_not_ready(&self) -> Vec<PathBuf> {
        match self {
            Access::Local { dir, .. } => spares_not_ready(dir),
            Access::Remote(_) => Vec::new(),
        }
    }

    /// The leader's replication counters (local: from `/metrics`; remote: unknown).
    fn counters(&self) -> anyhow::Result<Option<[u64; REPLICATION_COUNTERS.len()]>> {
        match self {
            Access::Local { cluster, .. } => {
                let metrics = cluster.leader().http_get("/metrics")?;
                Ok(Some(replication_counters(&metrics)))
            }
            Access::Remote(_) => Ok(None),
        }
    }

    /// The leader's view of `topic`'s partitions.
    fn topic_state(&self, topic: &str, partitions: i32) -> anyhow::Result<TopicState> {
        let status = query_status(&self.leader_address())?;
        Ok(TopicState::from_status(&status, topic, partitions))
    }
}

/// A topic's partitions as the leader's status document shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TopicState {
    /// Partitions of the topic the leader leads.
    partitions_led: usize,
    /// The smallest ISR among them.
    isr_size_min: Option<u64>,
    /// Records the followers have not fetched, over every partition and follower.
    lag_records: u64,
}

impl TopicState {
    fn from_status(status: &Value, topic: &str, partitions: i32) -> TopicState {
        let names: Vec<String> = (0..partitions)
            .map(|partition| format!("{topic}-{partition}"))
            .collect();
        let led: Vec<&Value> = status["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|partition| {
                partition["role"].as_str() != Some("follower")
                    && partition["partition"]
                        .as_str()
                        .is_some_and(|name| names.iter().any(|wanted| wanted == name))
            })
            .collect();
        let isr_size_min = led
            .iter()
            .map(|partition| partition["isr_size"].as_u64().unwrap_or(0))
            .min();
        let lag_records = led
            .iter()
            .flat_map(|partition| partition["followers"].as_array().into_iter().flatten())
            .map(|follower| follower["lag_records"].as_u64().unwrap_or(0))
            .sum();
        TopicState {
            partitions_led: led.len(),
            isr_size_min,
            lag_records,
        }
    }

    fn isr_full(&self, partitions: i32, replicas: usize) -> bool {
        usize::try_from(partitions).is_ok_and(|partitions| self.partitions_led == partitions)
            && self.isr_size_min == u64::try_from(replicas).ok()
    }
}

/// What every run of one cluster shares.
struct RunSetup<'a> {
    options: &'a ScenarioOptions,
    /// The write path, or "remote".
    write_path: &'a str,
    clock: RunClock,
    cpus: &'a [usize],
}

/// Every mode's runs on one cluster; remote topics are deleted afterwards, also on error.
fn run_modes(
    access: &mut Access<'_>,
    options: &ScenarioOptions,
    write_path: &str,
    cpus: &[usize],
    progress: &Progress,
) -> anyhow::Result<Vec<RunResult>> {
    let mut client = Client::connect(&access.leader_address(), ClientOptions::default())
        .context("connecting to the leader")?;
    let setup = RunSetup {
        options,
        write_path,
        clock: RunClock::start(),
        cpus,
    };
    let mut runs = Vec::new();
    let mut created = Vec::new();
    let mut outcome = Ok(());
    for mode in &options.modes {
        let topic = topic_name(*mode, matches!(access, Access::Remote(_)));
        match run_mode(access, &mut client, *mode, &topic, &setup, progress) {
            Ok(mode_runs) => runs.extend(mode_runs),
            Err(error) => {
                outcome = Err(error.context(format!("{mode} on topic {topic}")));
            }
        }
        created.push(topic);
        if outcome.is_err() {
            break;
        }
    }
    if matches!(access, Access::Remote(_)) {
        for topic in &created {
            if let Err(error) = client.delete_topic(topic) {
                progress.line(&format!("note: could not delete topic {topic}: {error}"));
            }
        }
    }
    outcome.map(|()| runs)
}

/// `ringlog-bench-<mode>`, and on a remote cluster `-<pid>` too (several benches, or an
/// earlier one's leftovers, must not share a topic).
fn topic_name(mode: ModeName, remote: bool) -> String {
    let base = format!("{TOPIC_PREFIX}{}", mode.topic_suffix());
    if remote {
        format!("{base}-{}", std::process::id())
    } else {
        base
    }
}

/// The CreateTopics configs of a mode's topic with `replicas` replicas.
fn topic_configs(ack_mode: AckModeName, replicas: usize) -> Vec<(String, String)> {
    vec![
        ("ack_mode".to_owned(), ack_mode.as_str().to_owned()),
        (
            "min_insync_replicas".to_owned(),
            MIN_INSYNC_REPLICAS.min(replicas).to_string(),
        ),
    ]
}

/// Creates the mode's topic, waits for full ISRs, then runs the fixed-rate run and, unless
/// left out, the saturation run.
fn run_mode(
    access: &mut Access<'_>,
    client: &mut Client,
    mode: ModeName,
    topic: &str,
    setup: &RunSetup<'_>,
    progress: &Progress,
) -> anyhow::Result<Vec<RunResult>> {
    let options = setup.options;
    let shape = options.shape;
    progress.phase(&format!("{mode}: creating {topic}"));
    let replicas = access.replicas();
    let replication_factor = i16::try_from(replicas).context("replica count")?;
    client
        .create_topic_with(
            topic,
            shape.partitions,
            replication_factor,
            &topic_configs(mode.topic_ack_mode(), replicas),
        )
        .with_context(|| format!("creating topic {topic}"))?;
    let created = Instant::now();
    wait_for(access, topic, shape.partitions, ISR_WAIT_MAX, false)?;
    let isr_full_after = created.elapsed();
    let acks = match mode {
        ModeName::Acks1 => Acks::Leader,
        ModeName::AckMode(_) => Acks::All,
    };
    let mut results = Vec::new();
    let fixed = RunKind::Fixed(options.pacing);
    results.push(measure_run(
        access, client, mode, topic, acks, fixed, setup, progress,
    )?);
    if options.saturation {
        let saturated = RunKind::Saturated;
        let run = measure_run(
            access, client, mode, topic, acks, saturated, setup, progress,
        )?;
        results.push(run);
    }
    for run in &mut results {
        run.extra.insert(
            "isr_full_after_secs".into(),
            json!(isr_full_after.as_secs_f64()),
        );
    }
    Ok(results)
}

/// Which of a mode's runs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RunKind {
    /// The fixed-rate run (open loop), or closed loop with `--closed-loop`.
    Fixed(Pacing),
    /// The saturation run: closed loop.
    Saturated,
}

impl RunKind {
    fn scenario(self) -> &'static str {
        match self {
            RunKind::Fixed(Pacing::FixedRate { .. }) => "open_loop",
            RunKind::Fixed(Pacing::ClosedLoop) => "closed_loop",
            RunKind::Saturated => "saturated",
        }
    }

    /// The name in progress lines and the table: "open-loop", "closed-loop", "saturated".
    pub fn label(self) -> &'static str {
        match self {
            RunKind::Fixed(Pacing::FixedRate { .. }) => "open-loop",
            RunKind::Fixed(Pacing::ClosedLoop) => "closed-loop",
            RunKind::Saturated => "saturated",
        }
    }

    fn pacing(self) -> Pacing {
        match self {
            RunKind::Fixed(pacing) => pacing,
            RunKind::Saturated => Pacing::ClosedLoop,
        }
    }
}

/// Waits until `topic`'s ISRs hold every replica and, with `settled`, no follower is behind
/// and every local node's spares are filled (`spares_not_ready`); returns how long that
/// took.
fn wait_for(
    access: &mut Access<'_>,
    topic: &str,
    partitions: i32,
    wait_max: Duration,
    settled: bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let deadline = started + wait_max;
    let replicas = access.replicas();
    loop {
        access.check_running()?;
        let state = access.topic_state(topic, partitions)?;
        let spares = if settled {
            access.spares_not_ready()
        } else {
            Vec::new()
        };
        let isr_full = state.isr_full(partitions, replicas);
        if isr_full && (!settled || (state.lag_records == 0 && spares.is_empty())) {
            return Ok(started.elapsed());
        }
        if Instant::now() >= deadline {
            bail!(
                "{topic} did not {} within {} s: the leader leads {} of its {partitions} \
                 partitions, smallest ISR {:?} of {replicas}, followers {} records behind, \
                 spares not ready: {spares:?}",
                if settled { "settle" } else { "get full ISRs" },
                wait_max.as_secs(),
                state.partitions_led,
                state.isr_size_min,
                state.lag_records
            );
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Settles the cluster, runs one load run between two reads of the leader's replication
/// counters, and makes its row.
#[allow(clippy::too_many_arguments)]
fn measure_run(
    access: &mut Access<'_>,
    client: &Client,
    mode: ModeName,
    topic: &str,
    acks: Acks,
    kind: RunKind,
    setup: &RunSetup<'_>,
    progress: &Progress,
) -> anyhow::Result<RunResult> {
    let options = setup.options;
    let shape = options.shape;
    progress.phase(&format!("{mode} {}: settling", kind.label()));
    let settled_after = wait_for(access, topic, shape.partitions, SETTLE_WAIT_MAX, true)?;
    let before = access.counters()?;
    progress.phase(&format!("{mode} {}", kind.label()));
    progress.line(&format!(
        "{mode} {}: {}, {} producer(s) x {} in flight, {} record(s) of {} B per request",
        kind.label(),
        describe_pacing(kind.pacing()),
        shape.producers,
        shape.in_flight_max,
        shape.batch_records,
        shape.payload_size_bytes
    ));
    let plan = LoadPlan {
        topic: topic.to_owned(),
        shape,
        pacing: kind.pacing(),
        acks,
        window: Window::after(WINDOW_LEAD, options.warmup, options.duration),
        clock: setup.clock,
        cpus: setup.cpus.to_vec(),
    };
    let fixed = matches!(kind, RunKind::Fixed(_));
    let stall = options.stall.zip(access.leader_pid()).filter(|_| fixed);
    // The end-to-end consumer reads from a follower during the fixed-rate run.
    let consumer = fixed.then(|| E2eConsumer {
        address: access.follower_address(),
        topic: topic.to_owned(),
        partitions: shape.partitions,
        clock: setup.clock,
        window: plan.window,
        cpu: setup.cpus.last().copied(),
    });
    let control = E2eControl::default();
    let (outcome, stalled, e2e) = thread::scope(|scope| {
        let control = &control;
        let reader = consumer
            .as_ref()
            .map(|consumer| scope.spawn(move || consumer.run(control)));
        let staller = stall.map(|(stall, pid)| {
            let window = plan.window;
            scope.spawn(move || stall_leader(pid, window, stall))
        });
        let outcome = run_load(client, &plan);
        match &outcome {
            Ok(outcome) => {
                control.finish(outcome.log_ends.clone(), Instant::now() + E2E_DRAIN_MAX);
            }
            Err(_) => control.abandon(),
        }
        let stalled = staller.map(|handle| {
            handle
                .join()
                .map_err(|_| anyhow!("the stall thread panicked"))?
        });
        let e2e = reader.map(|handle| {
            handle
                .join()
                .map_err(|_| anyhow!("the end-to-end consumer panicked"))?
        });
        (outcome, stalled.transpose(), e2e.transpose())
    });
    let outcome = outcome?;
    let stalled = stalled?;
    let e2e = e2e.context("the end-to-end consumer")?;
    access.check_running()?;
    let after = access.counters()?;
    let mut extra = run_extra(&outcome, &plan, settled_after);
    if let (Some(before), Some(after)) = (before, after) {
        extra.insert(
            "replication_counters".into(),
            counter_changes(&before, &after, progress),
        );
    }
    if let Some(stalled) = stalled {
        progress.line(&format!(
            "{mode} {}: leader stopped {} ms, {:.0} ms into the measured window",
            kind.label(),
            stalled.stopped.as_millis(),
            stalled.at.as_secs_f64() * 1e3
        ));
        extra.insert(
            "leader_stall".into(),
            json!({
                "at_secs": stalled.at.as_secs_f64(),
                "stopped_ms": stalled.stopped.as_secs_f64() * 1e3,
            }),
        );
    }
    let mut row = make_row(outcome, &plan, mode, kind, setup.write_path, extra);
    progress.line(&format!(
        "{mode} {}: {:.0} records/s, p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        kind.label(),
        row.records_per_s,
        row.latency_us.p50,
        row.latency_us.p99,
        row.latency_us.p999,
        row.latency_us.max
    ));
    if let Some(e2e) = e2e {
        add_e2e(&mut row, e2e, &access.follower_address(), progress);
    }
    Ok(row)
}

/// Puts the end-to-end consumer's histogram and counts into the row.
fn add_e2e(row: &mut RunResult, e2e: E2eOutcome, address: &str, progress: &Progress) {
    let summary = LatencySummary::from_histogram(&e2e.histogram);
    progress.line(&format!(
        "{} {}: end to end via the follower at {address}: {} records, p50 {} µs, p99 {} µs, \
         p99.9 {} µs, max {} µs{}",
        row.ack_mode.as_deref().unwrap_or("-"),
        row.scenario.replace('_', "-"),
        e2e.records,
        summary.p50,
        summary.p99,
        summary.p999,
        summary.max,
        if e2e.missing_records > 0 {
            format!(
                ", {} acknowledged records never arrived",
                e2e.missing_records
            )
        } else {
            String::new()
        }
    ));
    row.extra.insert(
        "e2e".into(),
        json!({
            "consumer_address": address,
            "records": e2e.records,
            "missing_records": e2e.missing_records,
            "fetches": e2e.fetches,
            "partition_errors": e2e.partition_errors,
        }),
    );
    row.e2e_latency_us = Some(summary);
    row.e2e_histogram = Some(e2e.histogram);
}

/// "2000 records/s open loop" or "closed loop".
fn describe_pacing(pacing: Pacing) -> String {
    match pacing {
        Pacing::FixedRate { records_per_s } => format!("{records_per_s:.0} records/s open loop"),
        Pacing::ClosedLoop => "closed loop".to_owned(),
    }
}

/// When the leader was stopped, after the measured window's start, and for how long.
#[derive(Clone, Copy, Debug)]
struct Stalled {
    at: Duration,
    stopped: Duration,
}

/// Stops the leader's process `stall.at` into the measured window for `stall.length`
/// (SIGSTOP, then SIGCONT, both by its PID; the bench started it).
fn stall_leader(pid: u32, window: Window, stall: Stall) -> anyhow::Result<Stalled> {
    let pid = Pid::from_raw(i32::try_from(pid).context("leader pid")?);
    let at = window.measured_start + stall.at;
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
    kill(pid, Signal::SIGSTOP).context("SIGSTOP to the leader")?;
    let stopped = Instant::now();
    thread::sleep(stall.length);
    let resumed = kill(pid, Signal::SIGCONT).context("SIGCONT to the leader");
    let continued = Instant::now();
    resumed?;
    Ok(Stalled {
        at: stopped.saturating_duration_since(window.measured_start),
        stopped: continued - stopped,
    })
}

/// The run's extras: the shape, what the generator saw, how long the cluster took to settle.
fn run_extra(
    outcome: &LoadOutcome,
    plan: &LoadPlan,
    settled_after: Duration,
) -> Map<String, Value> {
    let shape: LoadShape = plan.shape;
    let measured = plan.window.measured();
    let mut extra = Map::new();
    extra.insert("acks".into(), json!(plan.acks.code()));
    extra.insert("producers".into(), json!(shape.producers));
    extra.insert("in_flight_max".into(), json!(shape.in_flight_max));
    extra.insert("batch_records".into(), json!(shape.batch_records));
    extra.insert("partitions".into(), json!(shape.partitions));
    extra.insert(
        "in_flight_observed_max".into(),
        json!(outcome.in_flight_observed_max),
    );
    extra.insert(
        "requests_per_s".into(),
        json!(per_s(outcome.acked_requests, measured)),
    );
    extra.insert("acked_records".into(), json!(outcome.acked_records));
    extra.insert("unsent_records".into(), json!(outcome.unsent_records));
    if matches!(plan.pacing, Pacing::FixedRate { .. }) {
        extra.insert(
            "send_lag_us".into(),
            json!(LatencySummary::from_histogram(&outcome.send_lag)),
        );
    }
    extra.insert("measured_secs".into(), json!(measured.as_secs_f64()));
    extra.insert(
        "warmup_secs".into(),
        json!((plan.window.measured_start - plan.window.start).as_secs_f64()),
    );
    extra.insert(
        "settled_after_secs".into(),
        json!(settled_after.as_secs_f64()),
    );
    extra
}

/// The change of every replication counter during a run; a change is also a progress note,
/// since such a run measured something else than its ack mode.
fn counter_changes(
    before: &[u64; REPLICATION_COUNTERS.len()],
    after: &[u64; REPLICATION_COUNTERS.len()],
    progress: &Progress,
) -> Value {
    let mut changes = Map::new();
    let mut changed = Vec::new();
    for (index, (key, _)) in REPLICATION_COUNTERS.iter().enumerate() {
        let change = after[index].saturating_sub(before[index]);
        if change > 0 {
            changed.push(format!("{key} +{change}"));
        }
        changes.insert((*key).to_owned(), json!(change));
    }
    if !changed.is_empty() {
        progress.line(&format!("note: during this run {}", changed.join(", ")));
    }
    Value::Object(changes)
}

/// The report row of one run.
fn make_row(
    outcome: LoadOutcome,
    plan: &LoadPlan,
    mode: ModeName,
    kind: RunKind,
    write_path: &str,
    extra: Map<String, Value>,
) -> RunResult {
    let shape = plan.shape;
    let measured = plan.window.measured();
    let payload_bytes = shape.payload_size_bytes as u64;
    let target_rate = match plan.pacing {
        Pacing::FixedRate { records_per_s } => Some(records_per_s),
        Pacing::ClosedLoop => None,
    };
    let histogram = if outcome.histogram.is_empty() {
        new_histogram()
    } else {
        outcome.histogram
    };
    RunResult {
        scenario: kind.scenario().to_owned(),
        write_path: write_path.to_owned(),
        ack_mode: Some(mode.as_str().to_owned()),
        payload_bytes,
        concurrency: (shape.producers * shape.in_flight_max) as u64,
        records_per_s: per_s(outcome.acked_records, measured),
        mb_per_s: mb_per_s(outcome.acked_records * payload_bytes, measured),
        latency_us: LatencySummary::from_histogram(&histogram),
        target_rate_records_per_s: target_rate,
        e2e_latency_us: None,
        comparison: Comparison::LatencyPlusRttPerPercentile,
        target: None,
        extra,
        histogram: Some(histogram),
        e2e_histogram: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(modes: usize, saturation: bool) -> ScenarioOptions {
        let every = [
            ModeName::Acks1,
            ModeName::AckMode(AckModeName::Async),
            ModeName::AckMode(AckModeName::SemiSync),
            ModeName::AckMode(AckModeName::Quorum),
            ModeName::AckMode(AckModeName::Sync),
        ];
        ScenarioOptions {
            dir: PathBuf::from("/data"),
            ringlog_bin: Some(PathBuf::from("/bin/ringlog")),
            target: None,
            write_paths: vec![crate::options::WritePathName::Direct],
            modes: every[..modes].to_vec(),
            shape: LoadShape {
                payload_size_bytes: 1024,
                batch_records: 1,
                in_flight_max: 64,
                producers: 4,
                partitions: 1,
            },
            pacing: Pacing::FixedRate {
                records_per_s: 2000.0,
            },
            duration: Duration::from_secs(6),
            warmup: Duration::from_secs(1),
            segment_size_bytes: 64 << 20,
            retention_bytes: 256 << 20,
            saturation,
            stall: None,
        }
    }

    // Baselines + one cluster + per mode its set-up and two runs of warm-up, measured time
    // and overhead; the default (five modes, 1 + 6 s) stays under two minutes.
    #[test]
    fn plans_the_default_under_two_minutes() {
        let default = planned_duration(&options(5, true));
        assert_eq!(
            default,
            Duration::from_secs(12 + 3 + 5 * (2 + 2 * (1 + 6 + 1)))
        );
        assert!(default < Duration::from_secs(120), "{default:?}");
        let one = planned_duration(&options(1, false));
        assert_eq!(one, Duration::from_secs(12 + 3 + 2 + 8));
        let mut remote = options(1, false);
        remote.target = Some(vec!["a:1".to_owned()]);
        assert_eq!(planned_duration(&remote), Duration::from_secs(12 + 2 + 8));
    }

    const STATUS: &str = r#"{
        "node_id": 1, "leader": 1, "epoch": 1,
        "nodes": [{"id": 1, "client": "127.0.0.1:1"}, {"id": 2, "client": "127.0.0.2:2"},
                  {"id": 3, "client": "127.0.0.3:3"}],
        "partitions": [
            {"partition": "t-0", "role": "leader", "isr_size": 3,
             "followers": [{"node_id": 2, "lag_records": 0}, {"node_id": 3, "lag_records": 4}]},
            {"partition": "t-1", "role": "leader", "isr_size": 2, "followers": []},
            {"partition": "t-10", "role": "leader", "isr_size": 1, "followers": []},
            {"partition": "u-0", "role": "leader", "isr_size": 1, "followers": []}
        ]}"#;

    // Only the topic's own partitions count (not t-10 for two partitions, nor u-0), with the
    // smallest ISR and the followers' summed lag.
    #[test]
    fn reads_a_topic_from_the_leaders_status() {
        let status: Value = serde_json::from_str(STATUS).unwrap();
        let two = TopicState::from_status(&status, "t", 2);
        assert_eq!(
            two,
            TopicState {
                partitions_led: 2,
                isr_size_min: Some(2),
                lag_records: 4
            }
        );
        assert!(!two.isr_full(2, 3));
        let one = TopicState::from_status(&status, "t", 1);
        assert!(one.isr_full(1, 3));
        assert!(!one.isr_full(2, 3));
        let missing = TopicState::from_status(&status, "v", 1);
        assert_eq!(missing.partitions_led, 0);
        assert_eq!(missing.isr_size_min, None);

        let remote = RemoteCluster::from_status("127.0.0.1:1", &status).unwrap();
        assert_eq!(remote.leader_address, "127.0.0.1:1");
        assert_eq!(remote.follower_address, "127.0.0.2:2");
        assert_eq!(remote.replicas, 3);
    }

    #[test]
    fn names_topics_and_configs() {
        assert_eq!(topic_name(ModeName::Acks1, false), "ringlog-bench-acks1");
        let remote = topic_name(ModeName::AckMode(AckModeName::SemiSync), true);
        assert!(remote.starts_with("ringlog-bench-semi-sync-"), "{remote}");
        assert_eq!(
            topic_configs(AckModeName::Quorum, 1),
            [
                ("ack_mode".to_owned(), "quorum".to_owned()),
                ("min_insync_replicas".to_owned(), "1".to_owned())
            ]
        );
        assert_eq!(format_cpus(&[1, 2]), "1,2");
        assert_eq!(format_cpus(&[]), "-");
        assert_eq!(RunKind::Saturated.pacing(), Pacing::ClosedLoop);
        assert_eq!(RunKind::Fixed(Pacing::ClosedLoop).scenario(), "closed_loop");
    }
}
