//! `ringlog serve` child processes for the scenarios that go through the network: one node
//! (`ServerProcess`), or a static cluster of nodes on 127.0.0.1, 127.0.0.2, ...
//! (`ClusterProcess`).
//!
//! The nodes run as their own processes, as in production: the bench finds the `ringlog`
//! binary next to its own (or at `--ringlog-bin`), writes each node a configuration file
//! (`render_config`: free loopback ports, its data directory inside the bench's, the write
//! path, segment size and retention limit, and for a cluster the `[cluster]` and
//! `[replication]` tables), starts it with `--config FILE --cores 1`, and waits until
//! `GET /health` answers 200 and a Kafka client can connect. Each node's log goes to a file
//! beside its data directory, whose end is quoted when the node fails.
//!
//! Invariants: every child is killed (SIGKILL, by its PID) and reaped when its
//! `ServerProcess` is stopped or dropped, and a `ClusterProcess` owns its nodes' processes,
//! so an error or an early return never leaves a node running, also halfway through starting
//! a cluster; the only processes this module signals are those it started.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ringlog_client::{Client, ClientOptions};

use crate::options::WritePathName;

/// Name of the node's binary (built by `cargo build --release -p ringlog-cli`).
pub const RINGLOG_BINARY_NAME: &str = "ringlog";
/// Longest wait for a started node to answer.
const READY_WAIT_MAX: Duration = Duration::from_secs(30);
/// Pause between readiness probes.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Limit on one readiness probe's connect and read.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Name of a single-shard node's shard thread.
const SHARD_THREAD_NAME: &str = "shard-0";
/// Lines of the node's log quoted when it fails to start.
const LOG_TAIL_LINES: usize = 20;

/// The `ringlog` binary: `explicit` if given, else the one in the directory of this
/// executable (cargo puts every binary of a profile in the same `target/<profile>/`).
pub fn locate_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_owned(),
        None => {
            let exe = std::env::current_exe().context("locating the ringlog-bench executable")?;
            let dir = exe.parent().unwrap_or(Path::new("."));
            dir.join(RINGLOG_BINARY_NAME)
        }
    };
    if !path.is_file() {
        bail!(
            "the `{RINGLOG_BINARY_NAME}` binary is not at {}: build it with the same profile as \
             ringlog-bench (`cargo build --release -p ringlog-cli`), or pass --ringlog-bin FILE",
            path.display()
        );
    }
    Ok(path)
}

/// How to start a node.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// The `ringlog` binary.
    pub binary: PathBuf,
    /// Directory the node's files go in (data, configuration, log); must exist.
    pub dir: PathBuf,
    /// Write path of the node's log.
    pub write_path: WritePathName,
    /// Segment size of the node's logs.
    pub segment_size_bytes: u64,
    /// Retention limit of each of the node's partition logs (`--retention-bytes`); `None`:
    /// the logs grow.
    pub retention_bytes: Option<u64>,
}

/// Where one node listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeAddresses {
    /// Kafka-protocol listener (`listen`, and `client` in `cluster.nodes`).
    pub client: SocketAddr,
    /// HTTP control plane (`/health`, `/metrics`).
    pub http: SocketAddr,
    /// Replication listener (`replication` in `cluster.nodes`); unused by a single node.
    pub replication: SocketAddr,
}

/// The static cluster a node belongs to: its `[cluster]` and `[replication]` tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMembership {
    /// `cluster.id`, the same on every node.
    pub id: String,
    /// `cluster.node_id`: this node.
    pub node_id: u32,
    /// `cluster.leader`: the node that leads every partition.
    pub leader: u32,
    /// `cluster.nodes`: every node's id and addresses, this one included.
    pub nodes: Vec<(u32, NodeAddresses)>,
    /// `replication.replica_lag_max_ms`: how long a follower may lag before leaving the ISR.
    pub replica_lag_max: Duration,
}

/// What a node's configuration file says.
#[derive(Clone, Debug)]
pub struct NodeConfig<'a> {
    /// Directory of the node's partition logs.
    pub data_dir: &'a Path,
    /// Where the node listens.
    pub addresses: NodeAddresses,
    /// Write path of the node's logs.
    pub write_path: WritePathName,
    /// Segment size of the node's logs.
    pub segment_size_bytes: u64,
    /// Retention limit of each partition log; `None`: the logs grow.
    pub retention_bytes: Option<u64>,
    /// The cluster, or `None` for a single node.
    pub cluster: Option<&'a ClusterMembership>,
    /// CPUs the node's shards are pinned to (`cpus`); `None`: the node's default.
    pub cpus: Option<Vec<usize>>,
}

/// The node's TOML configuration file (docs/server.md, docs/replication.md). Pure, so that a
/// test can check it key by key.
pub fn render_config(config: &NodeConfig<'_>) -> String {
    let mut text = String::from("# Written by ringlog-bench; removed with its data directory.\n");
    let data_dir = config.data_dir.to_string_lossy();
    let _ = writeln!(text, "data_dir = {}", toml_string(&data_dir));
    let _ = writeln!(text, "listen = \"{}\"", config.addresses.client);
    let _ = writeln!(text, "http_listen = \"{}\"", config.addresses.http);
    let _ = writeln!(text, "write_path = \"{}\"", config.write_path.as_str());
    let _ = writeln!(text, "segment_size_bytes = {}", config.segment_size_bytes);
    if let Some(retention_bytes) = config.retention_bytes {
        let _ = writeln!(text, "retention_bytes = {retention_bytes}");
    }
    if let Some(cpus) = &config.cpus {
        let list: Vec<String> = cpus.iter().map(ToString::to_string).collect();
        let _ = writeln!(text, "cpus = [{}]", list.join(", "));
    }
    let Some(cluster) = config.cluster else {
        return text;
    };
    let _ = writeln!(text, "\n[cluster]");
    let _ = writeln!(text, "id = {}", toml_string(&cluster.id));
    let _ = writeln!(text, "node_id = {}", cluster.node_id);
    let _ = writeln!(text, "leader = {}", cluster.leader);
    let _ = writeln!(text, "nodes = [");
    for (id, addresses) in &cluster.nodes {
        let _ = writeln!(
            text,
            "  {{ id = {id}, client = \"{}\", replication = \"{}\" }},",
            addresses.client, addresses.replication
        );
    }
    let _ = writeln!(text, "]");
    let _ = writeln!(text, "\n[replication]");
    let _ = writeln!(
        text,
        "replica_lag_max_ms = {}",
        cluster.replica_lag_max.as_millis()
    );
    text
}

/// The CPUs this process may run on (what the nodes inherit), sorted; `[0]` if unknown.
fn available_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect();
    cpus.sort_unstable();
    if cpus.is_empty() {
        cpus.push(0);
    }
    cpus
}

/// The CPU node `id` (1-based) is pinned to: the leader (node 1) gets the first CPU to
/// itself when there are two or more, the followers share the others round robin, so the
/// leader never waits for a follower's shard on its own core.
fn node_cpu(id: u32, cpus: &[usize]) -> usize {
    let index = usize::try_from(id.saturating_sub(1)).unwrap_or(0);
    if index == 0 || cpus.len() == 1 {
        return cpus[0];
    }
    let rest = &cpus[1..];
    rest[(index - 1) % rest.len()]
}

/// The CPUs the load generator's threads should run on, beside a local cluster of
/// `node_count` nodes pinned by `node_cpu`: the CPUs no node has, if any; else those besides
/// the leader's (shared with the followers); else the only one.
pub fn load_generator_cpus(node_count: u32) -> Vec<usize> {
    load_generator_cpus_of(node_count, &available_cpus())
}

fn load_generator_cpus_of(node_count: u32, cpus: &[usize]) -> Vec<usize> {
    let nodes = usize::try_from(node_count).unwrap_or(usize::MAX);
    if cpus.len() > nodes {
        return cpus[nodes..].to_vec();
    }
    if cpus.len() > 1 {
        return cpus[1..].to_vec();
    }
    cpus.to_vec()
}

/// `value` as a TOML basic string: quoted, with quotes, backslashes and control characters
/// escaped.
fn toml_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for character in value.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            control if control.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", u32::from(control));
            }
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// A running node, killed when stopped or dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Option<Child>,
    /// "node" or "node 2", for messages.
    name: String,
    addresses: NodeAddresses,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Starts a single node and waits until it serves Kafka clients.
    pub fn start(spec: &ServerSpec) -> anyhow::Result<ServerProcess> {
        let ports = free_ports(Ipv4Addr::LOCALHOST, 3)?;
        let addresses = NodeAddresses {
            client: ports[0],
            http: ports[1],
            replication: ports[2],
        };
        let data_dir = spec.dir.join("data");
        let config = NodeConfig {
            data_dir: &data_dir,
            addresses,
            write_path: spec.write_path,
            segment_size_bytes: spec.segment_size_bytes,
            retention_bytes: spec.retention_bytes,
            cluster: None,
            cpus: None,
        };
        let mut server = ServerProcess::launch(&spec.binary, &spec.dir, "node", &config)?;
        if let Err(error) = server.wait_until_ready() {
            // The cause first, then the node's log; `server` is dropped (killed) on return.
            bail!(
                "starting the ringlog node: {error:#}\n{}",
                server.log_tail()
            );
        }
        Ok(server)
    }

    /// Writes `config` to `dir/ringlog.toml` and starts `binary serve` on it, its output going
    /// to `dir/ringlog.log`; does not wait for it to serve.
    fn launch(
        binary: &Path,
        dir: &Path,
        name: &str,
        config: &NodeConfig<'_>,
    ) -> anyhow::Result<ServerProcess> {
        let config_path = dir.join("ringlog.toml");
        let log_path = dir.join("ringlog.log");
        fs::write(&config_path, render_config(config))
            .with_context(|| format!("writing {}", config_path.display()))?;
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--cores")
            .arg("1")
            // The log is a file: no colour codes in it.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} ({name})", binary.display()))?;
        crate::cleanup::register_child(child.id());
        Ok(ServerProcess {
            child: Some(child),
            name: name.to_owned(),
            addresses: config.addresses,
            log_path,
        })
    }

    /// Where the node listens.
    pub fn addresses(&self) -> NodeAddresses {
        self.addresses
    }

    /// `HOST:PORT` of the node's Kafka listener.
    pub fn bootstrap(&self) -> String {
        self.addresses.client.to_string()
    }

    /// The node's PID (for progress lines).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the node and reaps it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let name = self.name.clone();
        self.kill()
            .with_context(|| format!("stopping the ringlog {name}"))
    }

    /// The body of `GET path` on the node's HTTP control plane; an error unless it is 200.
    pub fn http_get(&self, path: &str) -> anyhow::Result<String> {
        let response = http_request(self.addresses.http, path)
            .with_context(|| format!("GET {path} on the ringlog {}", self.name))?;
        if !is_http_ok(&response) {
            let status_line = response.split(|byte| *byte == b'\n').next().unwrap_or(&[]);
            bail!(
                "GET {path} on the ringlog {}: {}",
                self.name,
                String::from_utf8_lossy(status_line).trim_end()
            );
        }
        Ok(String::from_utf8_lossy(http_body(&response)).into_owned())
    }

    /// The CPUs the node's shard thread (`shard-0`) may run on, as the kernel lists them
    /// ("0", "0-1"); None if the process or thread is gone or unreadable.
    pub fn shard_cpus(&self) -> Option<String> {
        let pid = self.child.as_ref()?.id();
        let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        tasks.flatten().find_map(|task| {
            let comm = fs::read_to_string(task.path().join("comm")).ok()?;
            if comm.trim_end() != SHARD_THREAD_NAME {
                return None;
            }
            let status = fs::read_to_string(task.path().join("status")).ok()?;
            cpus_allowed_list(&status)
        })
    }

    /// Whether the node's process has exited (it should not have).
    fn exit_status(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            // `try_wait` reaps an exited child: under the registry's lock, as in `kill`.
            Some(child) => crate::cleanup::with_child_locked(child.id(), || {
                let status = child.try_wait();
                let reaped = matches!(status, Ok(Some(_)));
                (status, reaped)
            })
            .context("checking the node"),
            None => Ok(None),
        }
    }

    fn kill(&mut self) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // Under the cleanup registry's lock: a signal handler must not kill this PID once it
        // has been reaped (cleanup.rs).
        crate::cleanup::with_child_locked(child.id(), || {
            let result = (|| {
                if child.try_wait()?.is_none() {
                    // `Child::kill` signals this child's PID only.
                    child.kill()?;
                }
                child.wait().map(drop)
            })();
            // Reaped unless waiting failed; a child that could not be waited for stays
            // registered, so an interrupt still kills it.
            let reaped = result.is_ok();
            (result, reaped)
        })
    }

    /// Polls `/health` until it answers 200, then a Kafka connection, until `READY_WAIT_MAX`.
    fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WAIT_MAX;
        let mut healthy = false;
        loop {
            if let Some(status) = self.exit_status()? {
                bail!(
                    "the ringlog {} exited during start-up ({status})",
                    self.name
                );
            }
            if !healthy {
                healthy = health_ok(self.addresses.http);
            }
            if healthy {
                let options = ClientOptions {
                    connect_timeout: PROBE_TIMEOUT,
                    ..ClientOptions::default()
                };
                if Client::connect(&self.bootstrap(), options).is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "the ringlog {} did not become ready within {} s (health {})",
                    self.name,
                    READY_WAIT_MAX.as_secs(),
                    if healthy {
                        "ok, Kafka listener not"
                    } else {
                        "not ok"
                    }
                );
            }
            thread::sleep(READY_POLL_INTERVAL);
        }
    }

    /// The end of the node's log, for error messages: "log PATH:\n<last lines>".
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        format!("log {}:\n{tail}", self.log_path.display())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Err(error) = self.kill() {
            eprintln!("warning: could not stop the ringlog {}: {error}", self.name);
        }
    }
}

/// How to start a static cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// The `ringlog` binary.
    pub binary: PathBuf,
    /// Directory the nodes' directories (`n1`, `n2`, ...) go in; must exist.
    pub dir: PathBuf,
    /// `cluster.id`.
    pub cluster_id: String,
    /// Nodes, ids 1 to `node_count`; node `i` listens on 127.0.0.`i`, node 1 leads.
    pub node_count: u32,
    /// Write path of every node's logs.
    pub write_path: WritePathName,
    /// Segment size of every node's logs.
    pub segment_size_bytes: u64,
    /// Retention limit of every partition log on every node; `None`: the logs grow.
    pub retention_bytes: Option<u64>,
    /// `replication.replica_lag_max_ms` of every node.
    pub replica_lag_max: Duration,
}

/// Most nodes a cluster may have here: one loopback address each, 127.0.0.1 to 127.0.0.254.
const CLUSTER_NODE_COUNT_MAX: u32 = 254;
/// Id of the node that leads every partition.
pub const CLUSTER_LEADER_ID: u32 = 1;

/// The running nodes of a static cluster; every one is killed when the cluster is stopped or
/// dropped.
#[derive(Debug)]
pub struct ClusterProcess {
    /// In id order, so `nodes[0]` is node 1, the leader.
    nodes: Vec<ServerProcess>,
    /// The CPU each node's shard is pinned to (`cpus` of its configuration), in id order.
    node_cpus: Vec<usize>,
}

impl ClusterProcess {
    /// Starts every node, then waits until each serves Kafka clients. If any node fails to
    /// start, the nodes started so far are killed (dropped) before the error returns.
    pub fn start(spec: &ClusterSpec) -> anyhow::Result<ClusterProcess> {
        assert!(spec.node_count >= 1, "a cluster has at least one node");
        assert!(
            spec.node_count <= CLUSTER_NODE_COUNT_MAX,
            "node_count={}",
            spec.node_count
        );
        let mut members = Vec::new();
        for id in 1..=spec.node_count {
            let ports = free_ports(node_ip(id), 3)?;
            let addresses = NodeAddresses {
                client: ports[0],
                http: ports[1],
                replication: ports[2],
            };
            members.push((id, addresses));
        }
        let mut cluster = ClusterProcess {
            nodes: Vec::new(),
            node_cpus: Vec::new(),
        };
        let cpus = available_cpus();
        for (id, addresses) in &members {
            let dir = spec.dir.join(format!("n{id}"));
            fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let membership = ClusterMembership {
                id: spec.cluster_id.clone(),
                node_id: *id,
                leader: CLUSTER_LEADER_ID,
                nodes: members.clone(),
                replica_lag_max: spec.replica_lag_max,
            };
            let data_dir = dir.join("data");
            let config = NodeConfig {
                data_dir: &data_dir,
                addresses: *addresses,
                write_path: spec.write_path,
                segment_size_bytes: spec.segment_size_bytes,
                retention_bytes: spec.retention_bytes,
                cluster: Some(&membership),
                cpus: Some(vec![node_cpu(*id, &cpus)]),
            };
            cluster.node_cpus.push(node_cpu(*id, &cpus));
            let name = format!("node {id}");
            cluster
                .nodes
                .push(ServerProcess::launch(&spec.binary, &dir, &name, &config)?);
        }
        for index in 0..cluster.nodes.len() {
            if let Err(error) = cluster.nodes[index].wait_until_ready() {
                // The cause first, then the nodes' logs; `cluster` is dropped on return, which
                // kills every node started.
                bail!(
                    "starting the ringlog cluster: {error:#}\nthe nodes' last log lines:\n{}",
                    cluster.log_tails()
                );
            }
        }
        Ok(cluster)
    }

    /// The leader (node 1).
    pub fn leader(&self) -> &ServerProcess {
        &self.nodes[0]
    }

    /// Every node, in id order (`nodes()[0]` is node 1, the leader).
    pub fn nodes(&self) -> &[ServerProcess] {
        &self.nodes
    }

    /// The CPU each node's shard is pinned to, in id order.
    pub fn node_cpus(&self) -> &[usize] {
        &self.node_cpus
    }

    /// Each node's PID, in id order (for progress lines).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(ServerProcess::pid).collect()
    }

    /// Fails if a node's process has exited: a cluster that lost a node measures something
    /// else.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            if let Some(status) = node.exit_status()? {
                bail!("the ringlog {} exited ({status})", node.name);
            }
        }
        Ok(())
    }

    /// The CPUs each node's shard may run on, in id order ("?" where unknown).
    pub fn shard_cpus(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| node.shard_cpus().unwrap_or_else(|| "?".to_owned()))
            .collect()
    }

    /// The end of every node's log, for error messages.
    pub fn log_tails(&self) -> String {
        let tails: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("{} {}", node.name, node.log_tail()))
            .collect();
        tails.join("\n")
    }

    /// Kills every node and reaps it; reports the first failure after trying them all.
    pub fn stop(self) -> anyhow::Result<()> {
        let mut first_error = None;
        for node in self.nodes {
            if let Err(error) = node.stop() {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Node `id`'s loopback address, 127.0.0.`id`: every node of a cluster gets its own address,
/// as on separate machines (Linux routes all of 127.0.0.0/8 to the loopback interface).
fn node_ip(id: u32) -> Ipv4Addr {
    let last = u8::try_from(id).expect("node ids are at most CLUSTER_NODE_COUNT_MAX");
    Ipv4Addr::new(127, 0, 0, last)
}

/// `count` distinct free ports on `ip`: bound together, read and released (the node binds
/// them next).
fn free_ports(ip: Ipv4Addr, count: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((ip, 0)))
        .collect::<io::Result<Vec<TcpListener>>>()
        .with_context(|| format!("finding free ports on {ip}"))?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().context("reading a bound port"))
        .collect()
}

/// Whether `GET /health` answers 200.
fn health_ok(http_address: SocketAddr) -> bool {
    http_request(http_address, "/health").is_ok_and(|response| is_http_ok(&response))
}

/// The whole response to `GET path` (the node closes the connection after it).
fn http_request(http_address: SocketAddr, path: &str) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&http_address, PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {http_address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(response)
}

/// The `Cpus_allowed_list` of a `/proc/<pid>/task/<tid>/status` text.
fn cpus_allowed_list(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|list| list.trim().to_owned())
}

/// The body of an HTTP response: what follows the blank line after the headers.
fn http_body(response: &[u8]) -> &[u8] {
    response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map_or(&[], |end| &response[end + 4..])
}

/// Whether an HTTP response's status line says 200.
fn is_http_ok(response: &[u8]) -> bool {
    let status_line = response.split(|byte| *byte == b'\n').next().unwrap_or(&[]);
    let mut parts = status_line.split(|byte| *byte == b' ');
    let version = parts.next().unwrap_or(&[]);
    version.starts_with(b"HTTP/") && parts.next() == Some(b"200")
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    // The leader has the first CPU to itself; followers share the rest; one CPU is shared.
    #[test]
    fn leader_gets_its_own_cpu() {
        assert_eq!(node_cpu(1, &[0, 1]), 0);
        assert_eq!(node_cpu(2, &[0, 1]), 1);
        assert_eq!(node_cpu(3, &[0, 1]), 1);
        assert_eq!(node_cpu(3, &[2, 5, 7]), 7);
        assert_eq!(node_cpu(2, &[4]), 4);
    }

    // The load generator gets the CPUs no node has; without any, the followers' CPUs.
    #[test]
    fn load_generator_avoids_the_leader() {
        assert_eq!(load_generator_cpus_of(3, &[0, 1]), [1]);
        assert_eq!(load_generator_cpus_of(3, &[0, 1, 2]), [1, 2]);
        assert_eq!(load_generator_cpus_of(3, &[0, 1, 2, 3, 4]), [3, 4]);
        assert_eq!(load_generator_cpus_of(3, &[5]), [5]);
    }

    #[test]
    fn reads_http_status_lines() {
        assert!(is_http_ok(b"HTTP/1.1 200 OK\r\n\r\nok"));
        assert!(is_http_ok(b"HTTP/1.0 200 OK\r\n"));
        assert!(!is_http_ok(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(!is_http_ok(b""));
        assert!(!is_http_ok(b"garbage 200"));
    }

    #[test]
    fn free_ports_differ() {
        let ports = free_ports(node_ip(2), 3).unwrap();
        assert_ne!(ports[0].port(), ports[1].port());
        assert_ne!(ports[1].port(), ports[2].port());
        assert_ne!(ports[0].port(), ports[2].port());
        assert_eq!(ports[0].ip(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    }

    #[test]
    fn reads_allowed_cpus() {
        let status = "Name:\tshard-0\nCpus_allowed:\t1\nCpus_allowed_list:\t0\nMems_allowed:\t1\n";
        assert_eq!(cpus_allowed_list(status).as_deref(), Some("0"));
        assert_eq!(cpus_allowed_list("Name:\tx\n"), None);
    }

    #[test]
    fn reads_http_bodies() {
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na 1\n";
        assert_eq!(http_body(response), b"a 1\n");
        assert_eq!(http_body(b"HTTP/1.1 200 OK\r\n"), b"");
    }

    fn addresses(id: u8, port: u16) -> NodeAddresses {
        let ip = Ipv4Addr::new(127, 0, 0, id);
        NodeAddresses {
            client: SocketAddr::from((ip, port)),
            http: SocketAddr::from((ip, port + 1)),
            replication: SocketAddr::from((ip, port + 2)),
        }
    }

    // A cluster node's file is valid TOML with the keys and values the node reads
    // (docs/replication.md): its own addresses, every node's client and replication address,
    // the leader, and the ISR lag in ms. A path that needs escaping survives the round trip.
    #[test]
    fn renders_cluster_node_configs() {
        let membership = ClusterMembership {
            id: "bench".to_owned(),
            node_id: 2,
            leader: 1,
            nodes: vec![
                (1, addresses(1, 9000)),
                (2, addresses(2, 9100)),
                (3, addresses(3, 9200)),
            ],
            replica_lag_max: Duration::from_secs(10),
        };
        let data_dir = PathBuf::from("/tmp/bench \"a\\b\"/n2/data");
        let config = NodeConfig {
            data_dir: &data_dir,
            addresses: addresses(2, 9100),
            write_path: WritePathName::Mmap,
            segment_size_bytes: 256 << 20,
            retention_bytes: Some(1 << 30),
            cluster: Some(&membership),
            cpus: Some(vec![1]),
        };
        let text = render_config(&config);
        let parsed: toml::Table = text
            .parse()
            .unwrap_or_else(|error| panic!("{error}\n{text}"));
        assert_eq!(
            parsed["data_dir"].as_str(),
            Some("/tmp/bench \"a\\b\"/n2/data")
        );
        assert_eq!(parsed["listen"].as_str(), Some("127.0.0.2:9100"));
        assert_eq!(parsed["http_listen"].as_str(), Some("127.0.0.2:9101"));
        assert_eq!(parsed["write_path"].as_str(), Some("mmap"));
        assert_eq!(parsed["segment_size_bytes"].as_integer(), Some(256 << 20));
        assert_eq!(parsed["retention_bytes"].as_integer(), Some(1 << 30));
        let cluster = parsed["cluster"].as_table().unwrap();
        assert_eq!(cluster["id"].as_str(), Some("bench"));
        assert_eq!(cluster["node_id"].as_integer(), Some(2));
        assert_eq!(cluster["leader"].as_integer(), Some(1));
        let nodes = cluster["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[2]["id"].as_integer(), Some(3));
        assert_eq!(nodes[2]["client"].as_str(), Some("127.0.0.3:9200"));
        assert_eq!(nodes[2]["replication"].as_str(), Some("127.0.0.3:9202"));
        assert_eq!(
            parsed["replication"]["replica_lag_max_ms"].as_integer(),
            Some(10_000)
        );
        assert_eq!(parsed["cpus"].as_array().map(Vec::len), Some(1));
        // Nothing else: the node refuses unknown keys.
        let mut keys: Vec<&str> = parsed.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let expected = [
            "cluster",
            "cpus",
            "data_dir",
            "http_listen",
            "listen",
            "replication",
            "retention_bytes",
            "segment_size_bytes",
            "write_path",
        ];
        assert_eq!(keys, expected);
    }

    // A single node's file has neither `[cluster]` nor `[replication]`, and no retention
    // limit unless asked for.
    #[test]
    fn renders_single_node_configs() {
        let data_dir = PathBuf::from("/data");
        let config = NodeConfig {
            data_dir: &data_dir,
            addresses: addresses(1, 9000),
            write_path: WritePathName::Direct,
            segment_size_bytes: 4096,
            retention_bytes: None,
            cluster: None,
            cpus: None,
        };
        let parsed: toml::Table = render_config(&config).parse().unwrap();
        let mut keys: Vec<&str> = parsed.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "data_dir",
                "http_listen",
                "listen",
                "segment_size_bytes",
                "write_path"
            ]
        );
        assert_eq!(toml_string("a\tb"), "\"a\\u0009b\"");
    }

    // A missing binary is an error that says how to build it, never a silent skip.
    #[test]
    fn missing_binary_explains_how_to_build_it() {
        let scratch = tempfile::tempdir().unwrap();
        let error = locate_binary(Some(&scratch.path().join("ringlog"))).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("cargo build --release -p ringlog-cli"),
            "{message}"
        );
    }
}
