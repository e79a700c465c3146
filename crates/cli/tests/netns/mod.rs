//! Test support for clusters spread over network namespaces: two namespaces joined by a
//! veth pair that a test can cut and restore, commands run inside a namespace under a time
//! bound, and `ringlog serve` processes started inside a namespace.
//!
//! Names carry the test process's id (and a counter), so concurrent runs never collide.
//! Everything is removed in `Drop`, also when a test fails: a [`Node`] is killed by its pid
//! (`ip netns exec` execs the server, so the child is the server), and a [`Link`] deletes
//! its namespaces, which destroys the veth pair with them. Declare the `Link` before its
//! nodes, so that the nodes are dropped (killed) first.
//!
//! Needs root and iproute2 (`ip netns`), curl and coreutils' `timeout`; the CI script
//! installs them.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

/// Bound on every `ip`, `curl` and `kill` command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a node may take to answer `/health` after it started.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a node may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The first three bytes of every address. Each link has namespaces of its own, so two
/// links (or two runs) may use the same addresses.
const SUBNET: [u8; 3] = [10, 77, 5];
const PREFIX_LENGTH: u8 = 24;
/// MAC addresses of the two veth ends, fixed so that static neighbour entries can name them.
const MAC_A: &str = "02:77:00:00:00:0a";
const MAC_B: &str = "02:77:00:00:00:0b";

static LINKS_CREATED: AtomicU32 = AtomicU32::new(0);

/// Runs `program` with `args` under coreutils' `timeout` (killed after `limit`, SIGKILL one
/// second later); fails on a non-zero exit, with its output in the error.
pub fn run_bounded(limit: Duration, program: &str, args: &[&str]) -> anyhow::Result<Output> {
    let output = Command::new("timeout")
        .arg("--kill-after=1")
        .arg(format!("{}.{:03}s", limit.as_secs(), limit.subsec_millis()))
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program} (is coreutils' timeout installed?)"))?;
    ensure!(
        output.status.success(),
        "{program} {args:?} exited with {}: {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// Runs `program` with `args` under [`COMMAND_TIMEOUT`].
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<Output> {
    run_bounded(COMMAND_TIMEOUT, program, args)
}

/// Runs `program` with `args` inside `namespace`, bounded by `limit`.
pub fn run_in(
    namespace: &str,
    limit: Duration,
    program: &str,
    args: &[&str],
) -> anyhow::Result<Output> {
    let mut all = vec!["netns", "exec", namespace, program];
    all.extend_from_slice(args);
    run_bounded(limit, "ip", &all)
}

/// One HTTP GET from inside `namespace`; the body of a 2xx answer.
pub fn http_get(namespace: &str, address: SocketAddr, path: &str) -> anyhow::Result<String> {
    let url = format!("http://{address}{path}");
    let output = run_in(
        namespace,
        COMMAND_TIMEOUT,
        "curl",
        &[
            "--silent",
            "--show-error",
            "--fail",
            "--max-time",
            "2",
            &url,
        ],
    )?;
    Ok(String::from_utf8(output.stdout)?)
}

/// The address `10.77.5.host`.
pub fn address(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], host))
}

/// Two network namespaces, `a` and `b`, joined by a veth pair: the hosts of `a` are
/// addresses on `a`'s end, the hosts of `b` on `b`'s end, all in `10.77.5.0/24`.
///
/// [`Link::cut`] sets `a`'s end down. `b` then keeps its route (marked linkdown) and its
/// static neighbour entries for `a`'s hosts, so what it sends is dropped without an error,
/// as behind a cut cable: a connect stays in SYN-SENT, an established connection just goes
/// quiet. (Without the static entries, ARP failures would report EHOSTUNREACH to `b`
/// within seconds.) `a` keeps its local addresses, so its hosts still reach each other,
/// and it loses its route to `b`.
pub struct Link {
    pub namespace_a: String,
    pub namespace_b: String,
    pub veth_a: String,
    pub veth_b: String,
}

impl Link {
    /// Creates the namespaces and the veth pair, with `hosts_a` and `hosts_b` (last bytes of
    /// `10.77.5.x`) as addresses of each end; `lo` is up in both namespaces.
    pub fn create(hosts_a: &[u8], hosts_b: &[u8]) -> anyhow::Result<Link> {
        let serial = LINKS_CREATED.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Built first, so that `Drop` removes whatever the steps below got to create.
        let link = Link {
            namespace_a: format!("ringlog-{pid}-{serial}-a"),
            namespace_b: format!("ringlog-{pid}-{serial}-b"),
            // Interface names have at most 15 bytes; a pid has at most 7 digits.
            veth_a: format!("rl{pid}x{serial}a"),
            veth_b: format!("rl{pid}x{serial}b"),
        };
        let (namespace_a, namespace_b) = (&link.namespace_a, &link.namespace_b);
        let (veth_a, veth_b) = (&link.veth_a, &link.veth_b);
        run("ip", &["netns", "add", namespace_a])
            .context("ip netns add (the link tests need root and iproute2)")?;
        run("ip", &["netns", "add", namespace_b])?;
        run(
            "ip",
            &[
                "link",
                "add",
                veth_a,
                "netns",
                namespace_a,
                "address",
                MAC_A,
                "type",
                "veth",
                "peer",
                "name",
                veth_b,
                "netns",
                namespace_b,
                "address",
                MAC_B,
            ],
        )?;
        for (namespace, veth, hosts) in [
            (namespace_a, veth_a, hosts_a),
            (namespace_b, veth_b, hosts_b),
        ] {
            run("ip", &["-n", namespace, "link", "set", "lo", "up"])?;
            for host in hosts {
                let cidr = format!("{}/{PREFIX_LENGTH}", address(*host));
                run(
                    "ip",
                    &["-n", namespace, "address", "add", &cidr, "dev", veth],
                )?;
            }
            run("ip", &["-n", namespace, "link", "set", veth, "up"])?;
        }
        for host in hosts_a {
            let target = address(*host).to_string();
            run(
                "ip",
                &[
                    "-n",
                    namespace_b,
                    "neigh",
                    "replace",
                    &target,
                    "lladdr",
                    MAC_A,
                    "dev",
                    veth_b,
                    "nud",
                    "permanent",
                ],
            )?;
        }
        Ok(link)
    }

    /// Cuts the link (see the type's documentation).
    pub fn cut(&self) -> anyhow::Result<()> {
        run(
            "ip",
            &["-n", &self.namespace_a, "link", "set", &self.veth_a, "down"],
        )?;
        Ok(())
    }

    /// Restores a cut link.
    pub fn restore(&self) -> anyhow::Result<()> {
        run(
            "ip",
            &["-n", &self.namespace_a, "link", "set", &self.veth_a, "up"],
        )?;
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for namespace in [&self.namespace_a, &self.namespace_b] {
            if let Err(error) = run("ip", &["netns", "delete", namespace]) {
                eprintln!("removing namespace {namespace}: {error:#}");
            }
        }
    }
}

/// A `ringlog serve` process inside a network namespace.
pub struct Node {
    child: Child,
    pub namespace: String,
    pub http: SocketAddr,
    pub log: PathBuf,
}

impl Node {
    /// Starts `ringlog serve --config config` inside `namespace`, its standard error in
    /// `log`, and waits until `/health` at `http` answers.
    pub fn start(
        namespace: &str,
        config: &Path,
        http: SocketAddr,
        log: &Path,
    ) -> anyhow::Result<Node> {
        let child = Command::new("ip")
            .args(["netns", "exec", namespace])
            .arg(env!("CARGO_BIN_EXE_ringlog"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("spawning ringlog serve")?;
        let mut node = Node {
            child,
            namespace: namespace.to_string(),
            http,
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if http_get(namespace, http, "/health").is_ok() {
                return Ok(node);
            }
            if let Some(status) = node.child.try_wait()? {
                bail!("ringlog serve exited with {status}: {}", node.log_text());
            }
            ensure!(
                Instant::now() < deadline,
                "no /health at {http} in time: {}",
                node.log_text()
            );
        }
    }

    /// The node's `/metrics`.
    pub fn metrics(&self) -> anyhow::Result<Metrics> {
        Ok(Metrics(http_get(&self.namespace, self.http, "/metrics")?))
    }

    /// What the node logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits (bounded) for the exit; returns whether the exit was clean.
    pub fn terminate(&mut self) -> anyhow::Result<bool> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status.success());
        }
        run("kill", &["-TERM", &self.child.id().to_string()])?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            std::thread::yield_now();
        }
        bail!("ringlog serve did not stop after SIGTERM")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `/metrics` page (Prometheus text format).
pub struct Metrics(pub String);

impl Metrics {
    /// The value of one series, named with its labels exactly as the page prints them,
    /// e.g. `ringlog_partition_isr_size{partition="t-0"}`.
    pub fn value(&self, series: &str) -> Option<u64> {
        self.0.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            if name != series {
                return None;
            }
            value.parse().ok()
        })
    }
}
