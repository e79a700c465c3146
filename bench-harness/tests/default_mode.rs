//! End-to-end checks of the default mode (`ringlog-bench` with no subcommand), with real
//! `ringlog serve` processes.
//!
//! - The whole default scenario list (acks=1, async, semi-sync, quorum, sync; an open-loop
//!   and a saturation run each, with the baselines) with 1 s runs: the table has every row
//!   and the baselines, the JSON the extended schema, it finishes in under two minutes, and
//!   afterwards neither a node of the run (found by the data directory it printed, which
//!   every node's command line names) nor that directory is left. That the default's own
//!   plan stays under two minutes is `default_mode_plans_under_two_minutes` in cli.rs.
//! - Coordinated omission: the leader is stopped (SIGSTOP) for 200 ms during an open-loop
//!   run and during a closed-loop run of the same shape (one producer, one request in
//!   flight). The open loop's p99.9 and max show the stall, since every record that fell due
//!   while the sender was blocked counts from its due time; the closed loop's max shows it
//!   too, but its p99.9 does not: it recorded a single slow request.
//! - `--target`: the same scenarios against a cluster the test started itself; the bench
//!   finds the leader with ringlog's status request and records every node's status.
//!
//! Cargo gives a test the path of its own package's binaries only; the node binary is built
//! beside `ringlog-bench` with the same profile when missing or stale (as in cli.rs), and for
//! the stall test in release (`ringlog_binary`). Waits are on the child process (it ends by
//! itself, bounded by its own durations), never on sleeps.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Wall-time limit of the default scenario list with 1 s runs (the two minutes).
const DEFAULT_RUN_WALL_MAX: Duration = Duration::from_secs(120);

/// One cluster at a time: the default run's saturation runs would disturb the timing of the
/// stall test's if both ran at once on the two cores.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_cluster_at_a_time() -> MutexGuard<'static, ()> {
    ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn run_bench(arguments: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_ringlog-bench"))
        .args(arguments)
        .output()
        .expect("the ringlog-bench binary starts");
    (output, started.elapsed())
}

/// The `ringlog` binary beside `ringlog-bench`, built (or brought up to date) first; with
/// `release`, the release build's in `target/release/` whatever this test's profile. Timing
/// tests need it: a debug node checks its invariants after every step and answers a single
/// produce in about 20 ms here, a release node in about 0.5 ms.
fn ringlog_binary(release: bool) -> PathBuf {
    let bench = Path::new(env!("CARGO_BIN_EXE_ringlog-bench"));
    let profile_dir = bench.parent().expect("the bench binary is in a directory");
    let is_release = profile_dir
        .file_name()
        .is_some_and(|name| name == "release");
    let binary = if release && !is_release {
        let target_dir = profile_dir.parent().expect("target/<profile>");
        target_dir.join("release").join("ringlog")
    } else {
        bench.with_file_name("ringlog")
    };
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    build.args(["build", "-p", "ringlog-cli", "--bin", "ringlog"]);
    if release || is_release {
        build.arg("--release");
    }
    let status = build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo starts");
    assert!(
        status.success() && binary.is_file(),
        "the ringlog binary is needed at {} and `cargo build -p ringlog-cli` did not put it \
         there ({status})",
        binary.display()
    );
    binary
}

/// The value after `prefix` on the first stderr line that contains it, up to `end`.
fn find_after<'s>(stderr: &'s str, prefix: &str, end: char) -> &'s str {
    let line = stderr
        .lines()
        .find(|line| line.contains(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in stderr:\n{stderr}"));
    let rest = &line[line.find(prefix).expect("found above") + prefix.len()..];
    rest.split(end).next().unwrap_or(rest)
}

/// PIDs of the processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc is readable").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

fn latency(run: &Value, key: &str, percentile: &str) -> u64 {
    run[key][percentile]
        .as_u64()
        .unwrap_or_else(|| panic!("{key}.{percentile} missing: {run}"))
}

// The default scenario list with 1 s runs: every ack mode's rows, the baselines and the
// floor in the table; the JSON's ack modes, target rate, end-to-end percentiles, cluster
// layout and environment; under two minutes; no node and no data directory left.
#[test]
fn default_mode_prints_every_ack_mode_and_leaves_nothing() {
    let ringlog = ringlog_binary(false);
    let _cluster = one_cluster_at_a_time();
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let json_path = scratch.path().join("default.json");
    let (output, wall) = run_bench(&[
        "--duration-secs",
        "1",
        "--warmup-secs",
        "1",
        "--dir",
        data_dir.to_str().unwrap(),
        "--ringlog-bin",
        ringlog.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}:\n{stderr}",
        output.status
    );
    assert!(wall < DEFAULT_RUN_WALL_MAX, "took {wall:?}:\n{stderr}");

    // Nothing left: the directory the run printed, and no process of the run (every node's
    // command line names its configuration file inside that directory).
    let printed_dir = find_after(&stderr, "data dir: ", '\n');
    assert_eq!(
        Path::new(printed_dir),
        fs::canonicalize(scratch.path()).unwrap().join("data")
    );
    assert!(
        !Path::new(printed_dir).exists(),
        "{printed_dir} left behind"
    );
    assert_eq!(processes_mentioning(printed_dir), Vec::<u32>::new());
    let leader_pid: u32 = find_after(&stderr, "leader pid ", '\n').parse().unwrap();
    let leader_alive = fs::read(format!("/proc/{leader_pid}/cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(printed_dir));
    assert!(!leader_alive, "the leader {leader_pid} still runs");

    for text in [
        "4 KiB write+fdatasync QD1",
        "1 MiB write+fdatasync",
        "loopback TCP RTT 64 B",
        "loopback TCP RTT 1 KiB",
        "floor: 4 KiB fdatasync + loopback 1 KiB RTT",
        "cluster      local: node 1 leader 127.0.0.1:",
        "open loop at 2000 records/s",
    ] {
        assert!(stdout.contains(text), "{text:?} missing:\n{stdout}");
    }
    for mode in ["acks=1", "async", "semi-sync", "quorum", "sync"] {
        for run in ["open-loop", "saturated"] {
            let row = stdout
                .lines()
                .find(|line| line.starts_with(&format!("{mode} ")) && line.contains(run));
            let row = row.unwrap_or_else(|| panic!("no {mode} {run} row:\n{stdout}"));
            assert!(row.ends_with('x'), "no ratios in {row:?}");
        }
    }
    let e2e_rows = stdout
        .lines()
        .filter(|line| line.trim_start().starts_with("e2e "))
        .count();
    assert_eq!(e2e_rows, 5, "{stdout}");

    let report: Value = serde_json::from_str(&fs::read_to_string(&json_path).unwrap()).unwrap();
    let runs = report["runs"].as_array().expect("runs");
    let rows: Vec<(&str, &str)> = runs
        .iter()
        .map(|run| {
            (
                run["ack_mode"].as_str().unwrap(),
                run["scenario"].as_str().unwrap(),
            )
        })
        .collect();
    let mut expected = Vec::new();
    for mode in ["acks=1", "async", "semi-sync", "quorum", "sync"] {
        expected.push((mode, "open_loop"));
        expected.push((mode, "saturated"));
    }
    assert_eq!(rows, expected);
    for run in runs {
        assert!(run["records_per_s"].as_f64().unwrap() > 0.0, "{run}");
        assert!(latency(run, "latency_us", "p50") > 0, "{run}");
        let ratios = &run["vs_baseline"]["latency_ratios"];
        assert!(ratios["p9999"].as_f64().unwrap() > 0.0, "{run}");
        if run["scenario"] == "open_loop" {
            assert_eq!(run["target_rate_records_per_s"], 2000.0, "{run}");
            assert!(latency(run, "e2e_latency_us", "p999") > 0, "{run}");
            assert!(run["vs_baseline"]["e2e_latency_ratios"]["p50"].is_number());
            assert_eq!(run["extra"]["e2e"]["missing_records"], 0, "{run}");
        } else {
            assert!(run.get("target_rate_records_per_s").is_none(), "{run}");
        }
    }
    let nodes = report["cluster"]["nodes"]
        .as_array()
        .expect("cluster.nodes");
    assert_eq!(nodes.len(), 3);
    for (index, node) in nodes.iter().enumerate() {
        let address = node["client"].as_str().unwrap();
        assert!(
            address.starts_with(&format!("127.0.0.{}:", index + 1)),
            "{node}"
        );
        assert!(node["cpu"].is_u64(), "{node}");
    }
    assert!(report["cluster"]["load_generator_cpus"].is_array());
    let environment = &report["environment"];
    for key in [
        "kernel",
        "cpu",
        "cpus_allowed",
        "filesystem",
        "mount_options",
        "device_model",
        "git_sha",
    ] {
        assert!(
            environment[key].is_string(),
            "environment.{key}: {environment}"
        );
    }
    assert_eq!(report["load"]["rate_records_per_s"], 2000.0);
}

/// The one run of `mode_arguments` with the leader stopped for 200 ms, 1 s into the measured
/// window: one producer with one request in flight, acks=1, 4 s measured.
fn stalled_run(scratch: &Path, name: &str, mode_arguments: &[&str]) -> Value {
    let ringlog = ringlog_binary(true);
    let data_dir = scratch.join(format!("{name}-data"));
    let json_path = scratch.join(format!("{name}.json"));
    let mut arguments = vec![
        "--ack-modes",
        "acks=1",
        "--skip-saturation",
        "--producers",
        "1",
        "--in-flight-max",
        "1",
        "--duration-secs",
        "4",
        "--warmup-secs",
        "1",
        "--stall-leader-ms",
        "200",
        "--stall-at-secs",
        "1",
        "--dir",
        data_dir.to_str().expect("a UTF-8 path"),
        "--ringlog-bin",
        ringlog.to_str().expect("a UTF-8 path"),
        "--json",
        json_path.to_str().expect("a UTF-8 path"),
    ];
    arguments.extend_from_slice(mode_arguments);
    let (output, _) = run_bench(&arguments);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}:\n{stderr}",
        output.status
    );
    assert!(!data_dir.exists());
    let report: Value =
        serde_json::from_str(&fs::read_to_string(&json_path).expect("the JSON report"))
            .expect("valid JSON");
    let run = report["runs"][0].clone();
    let stopped_ms = run["extra"]["leader_stall"]["stopped_ms"]
        .as_f64()
        .expect("stopped_ms");
    assert!(
        stopped_ms >= 200.0,
        "the leader was stopped {stopped_ms} ms:\n{stderr}"
    );
    eprintln!(
        "{name}: p99 {} µs, p99.9 {} µs, max {} µs, {} records/s, leader stopped {stopped_ms:.1} ms",
        latency(&run, "latency_us", "p99"),
        latency(&run, "latency_us", "p999"),
        latency(&run, "latency_us", "max"),
        run["records_per_s"]
    );
    run
}

// The same 200 ms stop of the leader, seen by an open loop at 200 records/s and by a closed
// loop: the open loop's p99.9 and max carry the stall (>= 150 ms), the closed loop's max
// does but its p99.9 stays far below it.
#[test]
fn open_loop_shows_a_stalled_leader_that_a_closed_loop_hides() {
    let _cluster = one_cluster_at_a_time();
    let scratch = tempfile::tempdir().unwrap();
    let open = stalled_run(
        scratch.path(),
        "open-loop",
        &["--rate-records-per-sec", "200"],
    );
    assert_eq!(open["scenario"], "open_loop");
    let open_p999 = latency(&open, "latency_us", "p999");
    let open_max = latency(&open, "latency_us", "max");
    assert!(
        open_p999 >= 150_000,
        "open-loop p99.9 {open_p999} µs: {open}"
    );
    assert!(open_max >= 150_000, "open-loop max {open_max} µs: {open}");
    // Every record due during the stall waited for it: about 40 of them at 200/s.
    let open_p99 = latency(&open, "latency_us", "p99");
    assert!(open_p99 >= 100_000, "open-loop p99 {open_p99} µs: {open}");

    let closed = stalled_run(scratch.path(), "closed-loop", &["--closed-loop"]);
    assert_eq!(closed["scenario"], "closed_loop");
    let closed_p999 = latency(&closed, "latency_us", "p999");
    let closed_max = latency(&closed, "latency_us", "max");
    assert!(
        closed_max >= 150_000,
        "closed-loop max {closed_max} µs: {closed}"
    );
    assert!(
        closed_p999 * 4 <= open_p999,
        "closed-loop p99.9 {closed_p999} µs is not far below the open loop's {open_p999} µs"
    );
    assert!(
        closed_p999 < 50_000,
        "closed-loop p99.9 {closed_p999} µs: {closed}"
    );
}

/// A static 3-node cluster started by the test itself (not by the bench), for `--target`:
/// nodes on 127.0.0.1-3 with fixed configuration files, killed (by PID) when dropped.
struct ExternalCluster {
    nodes: Vec<std::process::Child>,
    client_addresses: Vec<String>,
}

impl ExternalCluster {
    fn start(ringlog: &Path, dir: &Path) -> ExternalCluster {
        let ports: Vec<Vec<u16>> = (1..=3u8)
            .map(|id| {
                let listeners: Vec<std::net::TcpListener> = (0..3)
                    .map(|_| {
                        std::net::TcpListener::bind((format!("127.0.0.{id}"), 0)).expect("a port")
                    })
                    .collect();
                listeners
                    .iter()
                    .map(|listener| listener.local_addr().expect("bound").port())
                    .collect()
            })
            .collect();
        let members: Vec<String> = (1..=3usize)
            .map(|id| {
                format!(
                    "  {{ id = {id}, client = \"127.0.0.{id}:{}\", replication = \"127.0.0.{id}:{}\" }},",
                    ports[id - 1][0],
                    ports[id - 1][2]
                )
            })
            .collect();
        let mut cluster = ExternalCluster {
            nodes: Vec::new(),
            client_addresses: Vec::new(),
        };
        for id in 1..=3usize {
            let node_dir = dir.join(format!("n{id}"));
            fs::create_dir_all(&node_dir).expect("node directory");
            let config = format!(
                "data_dir = \"{}\"\nlisten = \"127.0.0.{id}:{}\"\nhttp_listen = \"127.0.0.{id}:{}\"\n\
                 segment_size_bytes = 4194304\n\n[cluster]\nid = \"external\"\nnode_id = {id}\n\
                 leader = 1\nnodes = [\n{}\n]\n\n[replication]\nreplica_lag_max_ms = 10000\n",
                node_dir.join("data").display(),
                ports[id - 1][0],
                ports[id - 1][1],
                members.join("\n")
            );
            let config_path = node_dir.join("ringlog.toml");
            fs::write(&config_path, config).expect("config");
            let log = fs::File::create(node_dir.join("ringlog.log")).expect("log");
            let child = Command::new(ringlog)
                .args(["serve", "--config"])
                .arg(&config_path)
                .args(["--cores", "1"])
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("ringlog serve starts");
            cluster.nodes.push(child);
            cluster
                .client_addresses
                .push(format!("127.0.0.{id}:{}", ports[id - 1][0]));
        }
        cluster
    }
}

impl Drop for ExternalCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

// `--target` against a cluster the bench did not start: it bootstraps from a follower's
// address (the first given), finds the leader through the status request, measures two
// modes with their end-to-end rows, records the cluster's status documents, and deletes its
// topics; the cluster's nodes are left running (the test stops them).
#[test]
fn target_mode_measures_an_existing_cluster() {
    let ringlog = ringlog_binary(false);
    let _cluster = one_cluster_at_a_time();
    let scratch = tempfile::tempdir().unwrap();
    let cluster = ExternalCluster::start(&ringlog, &scratch.path().join("cluster"));
    // Ready when the status request answers on every node (polled with a deadline).
    let deadline = Instant::now() + Duration::from_secs(30);
    for address in &cluster.client_addresses {
        while std::net::TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "{address} did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let targets = format!(
        "{},{}",
        cluster.client_addresses[1], cluster.client_addresses[0]
    );
    let json_path = scratch.path().join("target.json");
    let data_dir = scratch.path().join("data");
    let (output, _) = run_bench(&[
        "--target",
        &targets,
        "--ack-modes",
        "acks=1,quorum",
        "--duration-secs",
        "1",
        "--warmup-secs",
        "1",
        "--dir",
        data_dir.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}:\n{stderr}",
        output.status
    );
    assert!(!data_dir.exists());
    assert!(
        stdout.contains("cluster      remote, bootstrap 127.0.0.2:"),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|line| line.trim_start().starts_with("e2e "))
            .count(),
        2,
        "{stdout}"
    );
    let report: Value = serde_json::from_str(&fs::read_to_string(&json_path).unwrap()).unwrap();
    let remote = &report["cluster"];
    assert_eq!(remote["kind"], "remote", "{remote}");
    assert_eq!(remote["leader"], 1, "{remote}");
    assert_eq!(
        remote["leader_address"],
        cluster.client_addresses[0].as_str()
    );
    assert_eq!(
        remote["consumer_address"],
        cluster.client_addresses[1].as_str()
    );
    assert_eq!(remote["cluster_id"], "external");
    assert_eq!(
        remote["status"].as_array().map(Vec::len),
        Some(3),
        "{remote}"
    );
    let modes: Vec<&str> = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["ack_mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["acks=1", "acks=1", "quorum", "quorum"]);
    assert_eq!(report["runs"][0]["write_path"], "remote");
    assert_eq!(remote["status"][0]["node_id"], 1, "{remote}");
    drop(cluster);
}
