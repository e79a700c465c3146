//! Test support for the replication tests: a static cluster of N `ringlog serve` processes,
//! node `i` (1-based, its node id) on 127.0.0.i with ports picked by binding port 0 on that
//! address. Every node gets its own data directory and config file in one `TempDir`, and one
//! log file that each start of the node appends to. Nodes start, stop (SIGKILL or SIGTERM)
//! and restart one at a time; a node may start for the first time after the others (a new,
//! empty replica). Waits poll `/metrics` with a deadline; dropping the cluster kills every
//! child still running, by PID.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde::Deserialize;
use tempfile::TempDir;

use crate::kafka_client::{http_get, Client};

/// How long a wait for the cluster (a start, an ISR change, a catch-up) may take.
pub const WAIT_DEADLINE: Duration = Duration::from_secs(30);
/// Segment size of every node: small, so that creating a partition is quick.
pub const SEGMENT_SIZE_BYTES: u64 = 8 * 1024 * 1024;
/// The cluster id in every node's configuration.
pub const CLUSTER_ID: &str = "test";

/// One node of the cluster.
pub struct Node {
    /// Its node id (also its index in [`Cluster::node`]).
    pub id: u32,
    /// The Kafka-protocol address.
    pub client: SocketAddr,
    /// The internal replication address.
    pub replication: SocketAddr,
    /// The HTTP control plane (`/metrics`, `/health`).
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    /// Standard error of every start of this node, one after the other.
    pub log: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The node's log (every start so far).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A Kafka client connected to this node.
    pub fn kafka(&self) -> anyhow::Result<Client> {
        Client::connect(self.client)
    }

    /// The node's `/metrics`, parsed.
    pub fn metrics(&self) -> anyhow::Result<Metrics> {
        let (status, body) = http_get(self.http, "/metrics")?;
        ensure!(
            status == 200,
            "node {}: /metrics answered {status}",
            self.id
        );
        Ok(Metrics::parse(&body))
    }
}

/// A `/metrics` page: every sample by its series (`name{labels}` as printed).
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    samples: BTreeMap<String, f64>,
}

impl Metrics {
    /// Parses the Prometheus text format (comments skipped).
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect();
        Metrics { samples }
    }

    /// The sample of `series` (`name` or `name{labels}`), if the page has it.
    pub fn get(&self, series: &str) -> Option<u64> {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.samples.get(series).map(|value| *value as u64)
    }

    /// A per-partition gauge, e.g. `partition("ringlog_partition_log_end", "t-0")`.
    pub fn partition(&self, name: &str, partition: &str) -> Option<u64> {
        self.get(&format!("{name}{{partition=\"{partition}\"}}"))
    }

    /// A per-follower gauge of the leader.
    pub fn follower(&self, name: &str, partition: &str, follower: u32) -> Option<u64> {
        self.get(&format!(
            "{name}{{partition=\"{partition}\",follower=\"{follower}\"}}"
        ))
    }

    /// A counter without labels (0 if absent).
    pub fn counter(&self, name: &str) -> u64 {
        self.get(name).unwrap_or(0)
    }
}

/// Starts of a cluster tried on fresh ports when one was taken meanwhile.
const PORT_ATTEMPTS: u32 = 3;

/// A static cluster of `ringlog serve` processes; node 1 leads.
pub struct Cluster {
    pub dir: TempDir,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Writes the configuration of `count` nodes (node 1 the leader) with `replication` as
    /// the `[replication]` table's lines, and starts none of them.
    pub fn configure(count: u32, replication: &str) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let mut nodes = Vec::new();
        for id in 1..=count {
            let host = format!("127.0.0.{id}");
            nodes.push(Node {
                id,
                client: free_port(&host)?,
                replication: free_port(&host)?,
                http: free_port(&host)?,
                data_dir: dir.path().join(format!("n{id}")),
                config: dir.path().join(format!("n{id}.toml")),
                log: dir.path().join(format!("n{id}.log")),
                child: None,
            });
        }
        let mut members = String::new();
        for node in &nodes {
            writeln!(
                members,
                "  {{ id = {}, client = \"{}\", replication = \"{}\" }},",
                node.id, node.client, node.replication
            )?;
        }
        for node in &nodes {
            let text = format!(
                "data_dir = \"{data_dir}\"\n\
                 listen = \"{client}\"\n\
                 http_listen = \"{http}\"\n\
                 write_path = \"mmap\"\n\
                 segment_size_bytes = {SEGMENT_SIZE_BYTES}\n\
                 [cluster]\n\
                 id = \"{CLUSTER_ID}\"\n\
                 node_id = {id}\n\
                 leader = 1\n\
                 nodes = [\n{members}]\n\
                 [replication]\n{replication}\n",
                data_dir = node.data_dir.display(),
                client = node.client,
                http = node.http,
                id = node.id,
            );
            std::fs::write(&node.config, text)?;
        }
        Ok(Cluster { dir, nodes })
    }

    /// Configures `count` nodes and starts every one. The free ports are found by binding
    /// port 0 and letting go, so a process running meanwhile (a parallel test) can take one
    /// first: a start that fails with EADDRINUSE is tried again on new ports, a few times.
    pub fn start(count: u32, replication: &str) -> anyhow::Result<Cluster> {
        let mut attempt = 1;
        loop {
            let mut cluster = Cluster::configure(count, replication)?;
            match cluster.start_all(count) {
                Ok(()) => return Ok(cluster),
                Err(error)
                    if attempt < PORT_ATTEMPTS
                        && format!("{error:#}").contains("Address already in use") =>
                {
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn start_all(&mut self, count: u32) -> anyhow::Result<()> {
        for id in 1..=count {
            self.spawn(id)?;
        }
        for id in 1..=count {
            self.wait_healthy(id)?;
        }
        Ok(())
    }

    /// Node `id` (1-based).
    pub fn node(&self, id: u32) -> &Node {
        &self.nodes[index_of(id)]
    }

    fn node_mut(&mut self, id: u32) -> &mut Node {
        &mut self.nodes[index_of(id)]
    }

    /// The ids of every node.
    pub fn ids(&self) -> Vec<u32> {
        self.nodes.iter().map(|node| node.id).collect()
    }

    /// The leader, node 1.
    pub fn leader(&self) -> &Node {
        self.node(1)
    }

    /// Starts node `id` (its first start or a restart after a stop) and waits until its
    /// `/health` answers.
    pub fn start_node(&mut self, id: u32) -> anyhow::Result<()> {
        self.wait_ports_free(id)?;
        self.spawn(id)?;
        self.wait_healthy(id)
    }

    fn spawn(&mut self, id: u32) -> anyhow::Result<()> {
        let node = self.node_mut(id);
        ensure!(!node.is_running(), "node {id} is already running");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        writeln!(log, "===== test harness: starting node {id} =====")?;
        let child = Command::new(env!("CARGO_BIN_EXE_ringlog"))
            .arg("serve")
            .arg("--config")
            .arg(&node.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning node {id}"))?;
        node.child = Some(child);
        Ok(())
    }

    fn wait_healthy(&mut self, id: u32) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT_DEADLINE;
        loop {
            if let Ok((200, _)) = http_get(self.node(id).http, "/health") {
                return Ok(());
            }
            let node = self.node_mut(id);
            if let Some(Some(status)) = node.child.as_mut().map(Child::try_wait).transpose()? {
                bail!("node {id} exited with {status}: {}", node.log_text());
            }
            if Instant::now() > deadline {
                bail!("node {id} not healthy in time: {}", node.log_text());
            }
            std::thread::yield_now();
        }
    }

    /// SIGKILL node `id`, reap it, and wait until its ports are free again (see
    /// [`Cluster::wait_ports_free`]).
    pub fn kill(&mut self, id: u32) -> anyhow::Result<()> {
        if let Some(mut child) = self.node_mut(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.wait_ports_free(id)
    }

    /// SIGKILL every running node at once (one `kill` per PID), then reap each.
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child {
                let _ = child.kill();
            }
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.wait();
            }
        }
    }

    /// Waits until node `id`'s listen addresses can be bound. A SIGKILLed node's listeners
    /// outlive its process by a few milliseconds: they are referenced by io_uring requests
    /// (the armed accepts), which the kernel cancels in the ring's teardown after the exit,
    /// and a node started meanwhile fails its bind with EADDRINUSE. A supervisor's restart
    /// delay covers this in production; the harness waits for it instead.
    pub fn wait_ports_free(&self, id: u32) -> anyhow::Result<()> {
        let node = self.node(id);
        let deadline = Instant::now() + WAIT_DEADLINE;
        for address in [node.client, node.replication, node.http] {
            while TcpListener::bind(address).is_err() {
                ensure!(
                    Instant::now() < deadline,
                    "node {id}: {address} still in use after the kill"
                );
                std::thread::yield_now();
            }
        }
        Ok(())
    }

    /// SIGTERM node `id` and wait (bounded) for it to exit; fails if it does not exit or
    /// exits unsuccessfully.
    pub fn terminate(&mut self, id: u32) -> anyhow::Result<()> {
        let Some(mut child) = self.node_mut(id).child.take() else {
            return Ok(());
        };
        let pid = child.id().to_string();
        Command::new("kill").arg("-TERM").arg(&pid).status()?;
        let deadline = Instant::now() + WAIT_DEADLINE;
        loop {
            if let Some(status) = child.try_wait()? {
                ensure!(
                    status.success(),
                    "node {id} exited with {status} after SIGTERM: {}",
                    self.node(id).log_text()
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {id} did not stop after SIGTERM");
            }
            std::thread::yield_now();
        }
    }

    /// SIGTERM every running node.
    pub fn terminate_all(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            self.terminate(id)?;
        }
        Ok(())
    }

    /// Stops node `id` (SIGTERM) if it runs, then starts it again.
    pub fn restart(&mut self, id: u32) -> anyhow::Result<()> {
        self.terminate(id)?;
        self.start_node(id)
    }

    /// `ringlog topics create NAME` on the leader with `--replication-factor` and each
    /// `KEY=VALUE` of `configs`; fails with the command's output if it fails.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u16,
        configs: &[&str],
    ) -> anyhow::Result<()> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringlog"));
        command.args(["topics", "create", name]);
        command.args(["--partitions", &partitions.to_string()]);
        command.args(["--replication-factor", &replication_factor.to_string()]);
        command.args(["--bootstrap", &self.leader().client.to_string()]);
        for config in configs {
            command.args(["--config", config]);
        }
        let output = command.output()?;
        ensure!(
            output.status.success(),
            "topics create {name}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// Polls node `id`'s `/metrics` until `check` returns true, or fails after `deadline`
    /// with `what` and the last page's relevant lines. A node that does not answer counts as
    /// "not yet".
    pub fn wait_metrics(
        &self,
        id: u32,
        what: &str,
        deadline: Duration,
        mut check: impl FnMut(&Metrics) -> bool,
    ) -> anyhow::Result<Metrics> {
        let until = Instant::now() + deadline;
        let mut last = None;
        loop {
            if let Ok(metrics) = self.node(id).metrics() {
                if check(&metrics) {
                    return Ok(metrics);
                }
                last = Some(metrics);
            }
            if Instant::now() > until {
                let seen = last.map_or_else(|| "no answer".to_string(), |m| m.summary());
                bail!("node {id}: {what} not reached within {deadline:?}; last metrics:\n{seen}");
            }
            std::thread::yield_now();
        }
    }

    /// Waits until the leader's ISR of `partition` (e.g. `t-0`) has `size` members.
    pub fn wait_isr(&self, partition: &str, size: u64) -> anyhow::Result<Metrics> {
        self.wait_metrics(
            1,
            &format!("isr_size of {partition} = {size}"),
            WAIT_DEADLINE,
            |metrics| metrics.partition("ringlog_partition_isr_size", partition) == Some(size),
        )
    }

    /// Waits until node `id` has `partition` (a follower learns topics from the leader).
    pub fn wait_partition(&self, id: u32, partition: &str) -> anyhow::Result<()> {
        self.wait_metrics(
            id,
            &format!("partition {partition}"),
            WAIT_DEADLINE,
            |metrics| {
                metrics
                    .partition("ringlog_partition_log_end", partition)
                    .is_some()
            },
        )?;
        Ok(())
    }

    /// The partition log of `partition` on node `id`, read offline with
    /// `ringlog wal inspect --json` (the node should be stopped).
    pub fn inspect(&self, id: u32, partition: &str) -> anyhow::Result<PartitionLog> {
        let dir = self.node(id).data_dir.join(partition);
        inspect_dir(&dir)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

impl Metrics {
    /// The replication lines of a page, for failure messages.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (series, value) in &self.samples {
            let wanted = [
                "ringlog_partition_",
                "ringlog_follower_",
                "_replicas",
                "isr_",
            ];
            if wanted.iter().any(|part| series.contains(part)) || series.contains("degraded") {
                let _ = writeln!(out, "{series} {value}");
            }
        }
        out
    }
}

/// One batch as `ringlog wal inspect --json` reports it; the fields every replica shares.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub struct Batch {
    pub base_offset: u64,
    pub record_count: u64,
    pub crc: u32,
    pub epoch: u32,
}

impl Batch {
    /// The offset after the batch.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.record_count
    }
}

/// A partition log read offline: its end and its batches in offset order.
#[derive(Clone, Debug)]
pub struct PartitionLog {
    pub log_end: u64,
    pub batches: Vec<Batch>,
    /// The segment verdicts (`intact`, `torn_tail`, ...).
    pub verdicts: Vec<String>,
}

impl PartitionLog {
    /// The batch holding `offset`, if the log has it.
    pub fn batch_of(&self, offset: u64) -> Option<&Batch> {
        let index = self
            .batches
            .partition_point(|batch| batch.next_offset() <= offset);
        self.batches
            .get(index)
            .filter(|batch| batch.base_offset <= offset)
    }
}

#[derive(Deserialize)]
struct InspectJson {
    partitions: Vec<InspectPartition>,
}

#[derive(Deserialize)]
struct InspectPartition {
    log_end: Option<u64>,
    segments: Vec<InspectSegment>,
}

#[derive(Deserialize)]
struct InspectSegment {
    verdict: String,
    batches: Vec<Batch>,
}

/// `ringlog wal inspect --json DIR` of one partition directory; checks that no segment is
/// corrupt (a torn tail is not) and that the batches are contiguous from the first.
pub fn inspect_dir(dir: &Path) -> anyhow::Result<PartitionLog> {
    let output = Command::new(env!("CARGO_BIN_EXE_ringlog"))
        .args(["wal", "inspect", "--json"])
        .arg(dir)
        .output()?;
    ensure!(
        output.status.success(),
        "wal inspect {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let json: InspectJson = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("wal inspect --json {}", dir.display()))?;
    ensure!(
        json.partitions.len() == 1,
        "{}: one partition",
        dir.display()
    );
    let partition = &json.partitions[0];
    let batches: Vec<Batch> = partition
        .segments
        .iter()
        .flat_map(|segment| segment.batches.iter().copied())
        .collect();
    for segment in &partition.segments {
        ensure!(
            segment.verdict != "corrupt",
            "{}: a corrupt segment",
            dir.display()
        );
    }
    for pair in batches.windows(2) {
        ensure!(
            pair[0].next_offset() == pair[1].base_offset,
            "{}: batch {:?} then {:?}",
            dir.display(),
            pair[0],
            pair[1]
        );
    }
    Ok(PartitionLog {
        log_end: partition.log_end.unwrap_or(0),
        batches,
        verdicts: partition
            .segments
            .iter()
            .map(|segment| segment.verdict.clone())
            .collect(),
    })
}

/// A port nothing listens on at `host` (bound to port 0, then released).
fn free_port(host: &str) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((host, 0)).with_context(|| format!("bind {host}:0"))?;
    Ok(listener.local_addr()?)
}

fn index_of(id: u32) -> usize {
    assert!(id >= 1, "node ids start at 1");
    usize::try_from(id - 1).expect("small")
}
