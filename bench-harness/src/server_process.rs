//! A `ringlog serve` child process for the scenarios that go through the network.
//!
//! The node runs as its own process, as in production: the bench finds the `ringlog` binary
//! next to its own (or at `--ringlog-bin`), starts it on two free loopback ports with its data
//! directory inside the bench's, and waits until `GET /health` answers 200 and a Kafka client
//! can connect. The node's log goes to a file beside its data directory, whose end is quoted
//! if the node fails to start.
//!
//! Invariants: the child is killed (SIGKILL, by its PID) and reaped when the `ServerProcess`
//! is stopped or dropped, so an error or an early return never leaves a node running; the
//! only process this module signals is the one it started.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
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

/// A running node, killed when stopped or dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Option<Child>,
    kafka_address: SocketAddr,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Starts a node and waits until it serves Kafka clients.
    pub fn start(spec: &ServerSpec) -> anyhow::Result<ServerProcess> {
        let data_dir = spec.dir.join("data");
        let config_path = spec.dir.join("ringlog.toml");
        let log_path = spec.dir.join("ringlog.log");
        fs::write(
            &config_path,
            format!("segment_size_bytes = {}\n", spec.segment_size_bytes),
        )
        .with_context(|| format!("writing {}", config_path.display()))?;
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let (kafka_address, http_address) = free_loopback_ports()?;
        let mut command = Command::new(&spec.binary);
        command.arg("serve");
        if let Some(retention_bytes) = spec.retention_bytes {
            command
                .arg("--retention-bytes")
                .arg(retention_bytes.to_string());
        }
        let child = command
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg(kafka_address.to_string())
            .arg("--http-listen")
            .arg(http_address.to_string())
            .arg("--cores")
            .arg("1")
            .arg("--write-path")
            .arg(spec.write_path.as_str())
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", spec.binary.display()))?;
        let mut server = ServerProcess {
            child: Some(child),
            kafka_address,
            log_path,
        };
        server
            .wait_until_ready(http_address)
            .with_context(|| server.log_tail())?;
        Ok(server)
    }

    /// `HOST:PORT` of the node's Kafka listener.
    pub fn bootstrap(&self) -> String {
        self.kafka_address.to_string()
    }

    /// The node's PID (for progress lines).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the node and reaps it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.kill().context("stopping the ringlog node")
    }

    fn kill(&mut self) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait()?.is_none() {
            // `Child::kill` signals this child's PID only.
            child.kill()?;
        }
        child.wait().map(drop)
    }

    /// Polls `/health` until it answers 200, then a Kafka connection, until `READY_WAIT_MAX`.
    fn wait_until_ready(&mut self, http_address: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WAIT_MAX;
        let mut healthy = false;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("checking the node")? {
                    bail!("the ringlog node exited during start-up ({status})");
                }
            }
            if !healthy {
                healthy = health_ok(http_address);
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
                    "the ringlog node did not become ready within {} s (health {})",
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

    /// The end of the node's log, for error messages.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        format!(
            "starting the ringlog node (log {}):\n{tail}",
            self.log_path.display()
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Err(error) = self.kill() {
            eprintln!("warning: could not stop the ringlog node: {error}");
        }
    }
}

/// Two distinct free ports on 127.0.0.1: bound, read and released (the node binds them next).
fn free_loopback_ports() -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let first = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    let second = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok((first.local_addr()?, second.local_addr()?))
}

/// Whether `GET /health` answers 200.
fn health_ok(http_address: SocketAddr) -> bool {
    let probe = || -> io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&http_address, PROBE_TIMEOUT)?;
        stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(is_http_ok(&response))
    };
    probe().unwrap_or(false)
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
    use super::*;

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
        let (first, second) = free_loopback_ports().unwrap();
        assert_ne!(first.port(), second.port());
        assert!(first.ip().is_loopback());
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
