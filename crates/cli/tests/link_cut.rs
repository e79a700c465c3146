//! A cut link between the leader and one follower of a static cluster
//! (docs/replication.md, "Links that go quiet" and "ISR"). Three `ringlog serve` processes
//! run in two network namespaces joined by a veth pair (tests/netns): the leader (node 1)
//! and node 3 in `a`, node 2 in `b`. The topic is `sync` with `min_insync_replicas = 2`, so
//! the leader and node 3 alone keep taking writes.
//!
//! With a producer running (acks=all), the test cuts the link so that node 2's packets are
//! dropped silently, and checks on the leader's `/metrics` that node 2 leaves the ISR no
//! sooner than the lag allows and not much later, and that produces keep succeeding once it
//! has left. In node 2's log it waits until node 2 has dropped its quiet link and then the
//! next one, whose connect never completed. It then restores the link and checks that node
//! 2 rejoins the ISR and that its log end (its own `/metrics`) reaches the leader's, which
//! is every record acknowledged. Times are measured by polling with deadlines, and printed.

mod netns;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};

use netns::{address, run_in, Link, Metrics, Node};

const TOPIC: &str = "t";
const CLIENT_PORT: u16 = 19092;
const REPLICATION_PORT: u16 = 19192;
const HTTP_PORT: u16 = 19644;
/// `replica_lag_max_ms` and `fetch_wait_ms` of the cluster.
const REPLICA_LAG_MAX: Duration = Duration::from_millis(1500);
const FETCH_WAIT: Duration = Duration::from_millis(500);
/// How long a fetch answer may take beyond the fetch wait, and a connect and hello in all,
/// before a follower drops its link (replica.rs).
const ANSWER_GRACE: Duration = Duration::from_secs(2);
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// The soonest node 2 may leave the ISR after the cut: its caught-up time, from which the
/// lag counts, can precede the cut by one fetch that waited at the leader.
const SHRINK_AFTER_CUT_MIN: Duration = REPLICA_LAG_MAX.saturating_sub(FETCH_WAIT);
/// The latest it may leave.
const SHRINK_AFTER_CUT_MAX: Duration = REPLICA_LAG_MAX.saturating_add(Duration::from_secs(3));
/// How long any other wait may take.
const DEADLINE: Duration = Duration::from_secs(20);
/// Records of each `ringlog produce` run, and the most runs the background producer makes.
const RECORDS_PER_RUN: u64 = 50;
const PRODUCE_RUNS_MAX: usize = 400;
/// What node 2 logs when it drops a link whose fetch went unanswered (replica.rs).
const LINK_DROPPED: &str = "the leader did not answer in time";

fn client_address(id: u8) -> SocketAddr {
    SocketAddr::new(address(id), CLIENT_PORT)
}

fn http_address(id: u8) -> SocketAddr {
    SocketAddr::new(address(id), HTTP_PORT)
}

/// The configuration of node `id`: same cluster and replication settings on every node.
fn node_config(dir: &Path, id: u8) -> String {
    let nodes: Vec<String> = (1..=3)
        .map(|node| {
            format!(
                "  {{ id = {node}, client = \"{}\", replication = \"{}\" }},",
                client_address(node),
                SocketAddr::new(address(node), REPLICATION_PORT)
            )
        })
        .collect();
    format!(
        "data_dir = \"{data}\"\nlisten = \"{listen}\"\nhttp_listen = \"{http}\"\n\
         write_path = \"mmap\"\nsegment_size_bytes = 8388608\n\n\
         [cluster]\nid = \"linkcut\"\nnode_id = {id}\nleader = 1\nnodes = [\n{nodes}\n]\n\n\
         [replication]\nack_mode = \"sync\"\nmin_insync_replicas = 2\n\
         replica_lag_max_ms = {lag}\nfetch_wait_ms = {wait}\n",
        data = dir.join(format!("n{id}")).display(),
        listen = client_address(id),
        http = http_address(id),
        nodes = nodes.join("\n"),
        lag = REPLICA_LAG_MAX.as_millis(),
        wait = FETCH_WAIT.as_millis(),
    )
}

fn series(name: &str) -> String {
    format!("{name}{{partition=\"{TOPIC}-0\"}}")
}

fn follower_series(name: &str, follower: u8) -> String {
    format!("{name}{{partition=\"{TOPIC}-0\",follower=\"{follower}\"}}")
}

/// Polls `node`'s `/metrics` until `done` holds, for at most `timeout`.
fn wait_for(
    node: &Node,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Metrics) -> bool,
) -> anyhow::Result<Metrics> {
    let deadline = Instant::now() + timeout;
    loop {
        let page = node.metrics()?;
        if done(&page) {
            return Ok(page);
        }
        ensure!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}; /metrics:\n{}\nlog:\n{}",
            page.0,
            node.log_text()
        );
    }
}

/// `ringlog produce` of `count` records with acks=all to the leader, from namespace `a`.
fn produce(namespace: &str, count: u64) -> anyhow::Result<()> {
    let leader = client_address(1).to_string();
    let count = count.to_string();
    run_in(
        namespace,
        DEADLINE,
        env!("CARGO_BIN_EXE_ringlog"),
        &[
            "produce",
            "--bootstrap",
            &leader,
            "--topic",
            TOPIC,
            "--count",
            &count,
            "--acks",
            "all",
        ],
    )?;
    Ok(())
}

/// One run of the background producer.
struct ProduceRun {
    started: Instant,
    result: Result<(), String>,
}

/// A thread that runs `ringlog produce` again and again (at most `PRODUCE_RUNS_MAX` times)
/// until it is told to stop; dropping it tells it to stop.
struct Producer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    runs: mpsc::Receiver<ProduceRun>,
    /// Runs taken from `runs`, every one of them successful.
    succeeded: u64,
}

impl Producer {
    fn start(namespace: String) -> Producer {
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, runs) = mpsc::channel();
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                for _ in 0..PRODUCE_RUNS_MAX {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let started = Instant::now();
                    let result = produce(&namespace, RECORDS_PER_RUN).map_err(|e| format!("{e:#}"));
                    if sender.send(ProduceRun { started, result }).is_err() {
                        return;
                    }
                }
            }
        });
        Producer {
            stop,
            thread: Some(thread),
            runs,
            succeeded: 0,
        }
    }

    fn take(&mut self, run: ProduceRun, what: &str) -> anyhow::Result<()> {
        if let Err(error) = run.result {
            anyhow::bail!("{what}: a produce failed: {error}");
        }
        self.succeeded += 1;
        Ok(())
    }

    /// Waits until a run that started at or after `after` has succeeded; every run before
    /// it must have succeeded too.
    fn wait_for_success(&mut self, after: Instant, what: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let run = self
                .runs
                .recv_timeout(left)
                .with_context(|| format!("{what}: no produce finished in time"))?;
            let started = run.started;
            self.take(run, what)?;
            if started >= after {
                return Ok(());
            }
        }
    }

    /// Stops the thread and returns the records acknowledged; every run must have succeeded.
    fn finish(mut self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the producer thread panicked");
        }
        while let Ok(run) = self.runs.try_recv() {
            self.take(run, "at the end")?;
        }
        Ok(self.succeeded * RECORDS_PER_RUN)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Polls node 2's log until it says `count` times that it dropped a silent link.
fn wait_for_link_drops(node: &Node, count: usize, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while node.log_text().matches(LINK_DROPPED).count() < count {
        ensure!(
            Instant::now() < deadline,
            "node 2 did not drop its silent link {count} times in {timeout:?}: {}",
            node.log_text()
        );
        std::thread::yield_now();
    }
    Ok(())
}

/// The three nodes and their namespaces. Fields drop in order: the nodes are killed before
/// the namespaces go, and the data directories go last.
struct Cluster {
    nodes: Vec<Node>,
    link: Link,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the nodes (1 and 3 in namespace `a`, 2 in `b`) and creates the topic.
    fn start() -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let link = Link::create(&[1, 3], &[2])?;
        let mut nodes = Vec::new();
        for id in 1..=3 {
            let namespace = if id == 2 {
                &link.namespace_b
            } else {
                &link.namespace_a
            };
            let config = dir.path().join(format!("n{id}.toml"));
            std::fs::write(&config, node_config(dir.path(), id))?;
            let log = dir.path().join(format!("n{id}.log"));
            nodes.push(Node::start(namespace, &config, http_address(id), &log)?);
        }
        let leader = client_address(1).to_string();
        run_in(
            &link.namespace_a,
            DEADLINE,
            env!("CARGO_BIN_EXE_ringlog"),
            &[
                "topics",
                "create",
                TOPIC,
                "--partitions",
                "1",
                "--bootstrap",
                &leader,
            ],
        )?;
        Ok(Cluster {
            nodes,
            link,
            _dir: dir,
        })
    }

    fn node(&self, id: u8) -> &Node {
        &self.nodes[usize::from(id - 1)]
    }
}

/// Cuts the link and polls the leader until node 2 has left the ISR; checks when it left
/// and the ISR it left. Returns when the leave was seen.
fn cut_until_shrink(cluster: &Cluster) -> anyhow::Result<Instant> {
    let leader = cluster.node(1);
    let in_isr_2 = follower_series("ringlog_follower_in_isr", 2);
    let cut_started = Instant::now();
    cluster.link.cut()?;
    let cut_done = Instant::now();
    // The poll that last showed node 2 in the ISR started before it left.
    let mut last_in_isr = cut_started;
    let shrunk = loop {
        let poll_started = Instant::now();
        let page = leader.metrics()?;
        if page.value(&in_isr_2) == Some(0) {
            break page;
        }
        last_in_isr = poll_started;
        ensure!(
            poll_started.duration_since(cut_started) < SHRINK_AFTER_CUT_MAX,
            "node 2 still in the ISR {SHRINK_AFTER_CUT_MAX:?} after the cut: {}",
            page.0
        );
    };
    let shrink_seen = Instant::now();
    let after_cut_min = last_in_isr.saturating_duration_since(cut_done);
    let after_cut_max = shrink_seen.duration_since(cut_started);
    eprintln!("cut to ISR shrink: between {after_cut_min:?} and {after_cut_max:?}");
    ensure!(
        after_cut_min >= SHRINK_AFTER_CUT_MIN,
        "node 2 left the ISR {after_cut_min:?} after the cut, before the lag allowed"
    );
    let isr_size = series("ringlog_partition_isr_size");
    ensure!(shrunk.value(&isr_size) == Some(2), "{}", shrunk.0);
    let in_isr_3 = follower_series("ringlog_follower_in_isr", 3);
    ensure!(shrunk.value(&in_isr_3) == Some(1), "{}", shrunk.0);
    let shrinks = shrunk.value("ringlog_isr_shrinks_total");
    ensure!(shrinks >= Some(1), "{}", shrunk.0);
    Ok(shrink_seen)
}

/// Restores the link and polls the leader until node 2 is back in the ISR, then the
/// followers until their log ends reach the leader's `records`.
fn restore_until_rejoin(
    cluster: &Cluster,
    expands_before_cut: u64,
    records: u64,
) -> anyhow::Result<()> {
    let leader = cluster.node(1);
    let in_isr_2 = follower_series("ringlog_follower_in_isr", 2);
    ensure!(leader.metrics()?.value(&in_isr_2) == Some(0));
    let restore_started = Instant::now();
    cluster.link.restore()?;
    let rejoined = wait_for(leader, "node 2 back in the ISR", DEADLINE, |page| {
        page.value(&in_isr_2) == Some(1)
    })?;
    eprintln!(
        "restore to ISR rejoin: at most {:?}",
        restore_started.elapsed()
    );
    ensure!(
        rejoined.value(&series("ringlog_partition_isr_size")) == Some(3),
        "{}",
        rejoined.0
    );
    let expands = rejoined.value("ringlog_isr_expands_total");
    ensure!(expands > Some(expands_before_cut), "{}", rejoined.0);
    let log_end = series("ringlog_partition_log_end");
    ensure!(
        rejoined.value(&log_end) == Some(records),
        "the leader's log end is not the {records} records acknowledged: {}",
        rejoined.0
    );
    for id in [2, 3] {
        let what = format!("node {id}'s log end at the leader's");
        wait_for(cluster.node(id), &what, DEADLINE, |page| {
            page.value(&log_end) == Some(records)
        })?;
    }
    Ok(())
}

#[test]
fn cut_follower_leaves_the_isr_and_rejoins_after_restore() -> anyhow::Result<()> {
    let test_started = Instant::now();
    let mut cluster = Cluster::start()?;
    let (leader, follower) = (cluster.node(1), cluster.node(2));
    let namespace_a = cluster.link.namespace_a.clone();
    let isr_size = series("ringlog_partition_isr_size");
    wait_for(leader, "both followers in the ISR", DEADLINE, |page| {
        page.value(&isr_size) == Some(3)
    })?;
    let records_before = 200;
    produce(&namespace_a, records_before)?;

    // Producing runs through the cut, so node 2 fetches until the link goes.
    let mut producer = Producer::start(namespace_a);
    producer.wait_for_success(Instant::now(), "before the cut")?;
    let expands_before_cut = leader
        .metrics()?
        .value("ringlog_isr_expands_total")
        .unwrap_or(0);
    let drops_at_cut = follower.log_text().matches(LINK_DROPPED).count();
    let cut_started = Instant::now();
    let shrink_seen = cut_until_shrink(&cluster)?;

    // Writes go on without node 2. Node 2 drops its silent link at its fetch deadline, and
    // the link it opens next never gets past SYN-SENT, so it drops that one too at the hello
    // deadline (replica.rs, `ANSWER_GRACE` and `HELLO_TIMEOUT`); the restore is then seen
    // by a connection opened after a connect that never completed.
    producer.wait_for_success(shrink_seen, "after the shrink")?;
    let drops_timeout = FETCH_WAIT + ANSWER_GRACE + HELLO_TIMEOUT + DEADLINE;
    wait_for_link_drops(follower, drops_at_cut + 2, drops_timeout)?;
    eprintln!(
        "node 2 dropped its link twice by {:?} after the cut",
        cut_started.elapsed()
    );
    let records = records_before + producer.finish()?;

    restore_until_rejoin(&cluster, expands_before_cut, records)?;
    for node in &mut cluster.nodes {
        ensure!(node.terminate()?, "unclean exit: {}", node.log_text());
    }
    eprintln!("link_cut ran for {:?}", test_started.elapsed());
    Ok(())
}
