//! Replication across real processes: a static 3-node cluster (tests/cluster) on
//! 127.0.0.1..3, node 1 the leader, under Kafka clients. kafka-python
//! (tests/python/acked_producer.py) produces where the test is about acks and reports every
//! acknowledged offset; the test's own Kafka client (tests/kafka_client) reads and writes
//! where a test needs exact error codes or responses. Logs are compared offline with
//! `ringlog wal inspect --json` on stopped nodes: base offset, record count, CRC and epoch
//! of every batch (segment bytes differ between replicas, commit padding does not match).
//!
//! Timing comes from polling `/metrics` with a deadline, never from sleeps.

// Kafka frames are big-endian on the wire.
#![allow(clippy::big_endian_bytes)]

mod cluster;
mod kafka_client;
mod log_reader;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse,
    ProduceResponse,
};

use cluster::{Cluster, PartitionLog, WAIT_DEADLINE};
use kafka_client::{batch, produce_request, topic, Client};
use log_reader::read_all;

/// The `[replication]` table of every test cluster. `replica_lag_max_ms` is short so that
/// a stopped follower leaves the ISR quickly; topics override the ack mode.
const REPLICATION: &str = "ack_mode = \"sync\"\n\
     min_insync_replicas = 2\n\
     replica_lag_max_ms = 1500\n\
     semi_sync_timeout_ms = 1000\n\
     semi_sync_degrade = false\n";
/// How long a kafka-python producer may take to resolve what it was asked for.
const PRODUCER_DEADLINE: Duration = Duration::from_secs(60);
/// Kafka error codes the tests expect.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const REQUEST_TIMED_OUT: i16 = 7;
const NOT_ENOUGH_REPLICAS: i16 = 19;
const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
const NOT_CONTROLLER: i16 = 41;

// ----- the kafka-python producer -----

/// One acknowledged record: where it went, which record it was, and when the test saw it.
#[derive(Clone, Copy, Debug)]
struct Ack {
    partition: u32,
    offset: u64,
    index: u64,
    at: Instant,
}

/// A line of acked_producer.py.
enum Event {
    Ack(Ack),
    Fail { index: u64, error: String },
    Done,
}

/// acked_producer.py running against the cluster; killed by PID when dropped.
struct Producer {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Event>,
    acks: Vec<Ack>,
    failures: Vec<(u64, String)>,
    done: bool,
    stderr: std::path::PathBuf,
}

impl Producer {
    /// Starts acked_producer.py on topic `name`, bootstrapping from the leader: `count`
    /// records, or with `count = 0` until [`Producer::stop`].
    fn start(cluster: &Cluster, name: &str, count: u64) -> anyhow::Result<Producer> {
        require_kafka_python();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/acked_producer.py"
        );
        let stderr = cluster.dir.path().join(format!("producer-{name}.stderr"));
        let mut child = Command::new("python3")
            .arg(script)
            .arg(cluster.leader().client.to_string())
            .arg(name)
            .arg(count.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .context("spawning acked_producer.py")?;
        let stdout = child.stdout.take().context("stdout")?;
        let stdin = child.stdin.take();
        let (sender, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let Some(event) = parse_event(&line) else {
                    eprintln!("acked_producer.py: {line}");
                    continue;
                };
                if sender.send(event).is_err() {
                    return;
                }
            }
        });
        Ok(Producer {
            child,
            stdin,
            events,
            acks: Vec::new(),
            failures: Vec::new(),
            done: false,
            stderr,
        })
    }

    /// Takes events until `enough` holds or the deadline passes.
    fn pump_until(
        &mut self,
        what: &str,
        mut enough: impl FnMut(&Producer) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + PRODUCER_DEADLINE;
        while !enough(self) {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(wait) {
                Ok(Event::Ack(ack)) => self.acks.push(ack),
                Ok(Event::Fail { index, error }) => self.failures.push((index, error)),
                Ok(Event::Done) => self.done = true,
                Err(RecvTimeoutError::Timeout) => bail!(
                    "producer: {what} not reached in {PRODUCER_DEADLINE:?} ({} acks, {} failures)",
                    self.acks.len(),
                    self.failures.len()
                ),
                Err(RecvTimeoutError::Disconnected) => bail!(
                    "producer exited before {what} ({} acks, {} failures): {}",
                    self.acks.len(),
                    self.failures.len(),
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                ),
            }
        }
        Ok(())
    }

    /// Waits until `count` records were acknowledged at or after `since` (as the test saw
    /// the acks arrive).
    fn wait_acks_since(&mut self, since: Instant, count: usize) -> anyhow::Result<()> {
        let what = format!("{count} acks after {:?}", since.elapsed());
        self.pump_until(&what, |producer| {
            let recent = producer.acks.iter().rev().take_while(|ack| ack.at >= since);
            recent.count() >= count
        })
    }

    /// Stops a continuous producer (closes its input) and waits for its last outcome.
    fn stop(&mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        self.pump_until("the end", |producer| producer.done)?;
        let _ = self.child.wait();
        Ok(())
    }

    /// The acknowledged records by partition and offset, with the index of the record;
    /// fails if two acks name one offset.
    fn acked(&self) -> anyhow::Result<BTreeMap<(u32, u64), u64>> {
        let mut acked = BTreeMap::new();
        for ack in &self.acks {
            let earlier = acked.insert((ack.partition, ack.offset), ack.index);
            ensure!(
                earlier.is_none(),
                "records {earlier:?} and {} both acknowledged at {}/{}",
                ack.index,
                ack.partition,
                ack.offset
            );
        }
        Ok(acked)
    }

    /// Fails, with a few examples, if any record was not acknowledged.
    fn ensure_no_failures(&self, what: &str) -> anyhow::Result<()> {
        ensure!(
            self.failures.is_empty(),
            "{what}: {} records not acknowledged, e.g. {:?}",
            self.failures.len(),
            &self.failures[..self.failures.len().min(5)]
        );
        Ok(())
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_event(line: &str) -> Option<Event> {
    let words: Vec<&str> = line.split(' ').collect();
    match words.as_slice() {
        ["ack", partition, offset, index] => Some(Event::Ack(Ack {
            partition: partition.parse().ok()?,
            offset: offset.parse().ok()?,
            index: index.parse().ok()?,
            at: Instant::now(),
        })),
        ["fail", index, error] => Some(Event::Fail {
            index: index.parse().ok()?,
            error: (*error).to_string(),
        }),
        ["done", _, _] => Some(Event::Done),
        _ => None,
    }
}

/// Fails with an install hint unless python3 can import kafka-python.
fn require_kafka_python() {
    let found = Command::new("python3")
        .args(["-c", "import kafka"])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "python3 cannot import kafka (kafka-python); install it with \
         `pip install kafka-python` (.ci/run does)"
    );
}

// ----- shared steps -----

/// Partitions of the topics written by kafka-python: more than one, so that each follower
/// runs several replication links at once.
const PARTITIONS: u32 = 2;

/// The partition directory names of topic `name`.
fn partitions_of(name: &str, count: u32) -> Vec<String> {
    (0..count).map(|index| format!("{name}-{index}")).collect()
}

/// Starts a 3-node cluster, creates `name` (`partitions` partitions, RF 3) with `configs`,
/// and waits until the ISR of every partition has all three nodes.
fn cluster_with_topic(name: &str, partitions: u32, configs: &[&str]) -> anyhow::Result<Cluster> {
    let cluster = Cluster::start(3, REPLICATION)?;
    cluster.create_topic(name, partitions, 3, configs)?;
    for partition in partitions_of(name, partitions) {
        cluster.wait_isr(&partition, 3)?;
    }
    Ok(cluster)
}

/// `ringlog wal inspect` of `partition` on every (stopped) node.
fn inspect_all(cluster: &Cluster, partition: &str) -> anyhow::Result<Vec<(u32, PartitionLog)>> {
    cluster
        .ids()
        .into_iter()
        .map(|id| Ok((id, cluster.inspect(id, partition)?)))
        .collect()
}

/// The log end of every log, for failure messages.
fn ends_of(logs: &[(u32, PartitionLog)]) -> Vec<(u32, u64)> {
    logs.iter().map(|(id, log)| (*id, log.log_end)).collect()
}

/// Checks that the logs agree batch for batch where they overlap: of any two, the batches
/// of the shorter are the first batches of the longer, with the same base offset, record
/// count, CRC and epoch.
fn assert_prefixes(logs: &[(u32, PartitionLog)]) -> anyhow::Result<()> {
    for (id_a, log_a) in logs {
        for (id_b, log_b) in logs {
            let common = log_a.batches.len().min(log_b.batches.len());
            for index in 0..common {
                ensure!(
                    log_a.batches[index] == log_b.batches[index],
                    "batch {index}: node {id_a} has {:?}, node {id_b} has {:?}",
                    log_a.batches[index],
                    log_b.batches[index]
                );
            }
        }
    }
    Ok(())
}

/// Checks that every log has exactly the same batches and ends at the same offset.
fn assert_identical(logs: &[(u32, PartitionLog)]) -> anyhow::Result<()> {
    assert_prefixes(logs)?;
    let (first_id, first) = &logs[0];
    for (id, log) in logs {
        ensure!(
            log.batches.len() == first.batches.len() && log.log_end == first.log_end,
            "node {id}: {} batches ending at {}; node {first_id}: {} batches ending at {}",
            log.batches.len(),
            log.log_end,
            first.batches.len(),
            first.log_end
        );
    }
    Ok(())
}

/// Waits until the durable end of each of `followers` equals the leader's log end (the
/// load stopped); returns that end.
fn wait_caught_up(cluster: &Cluster, partition: &str, followers: &[u32]) -> anyhow::Result<u64> {
    let leader_end = cluster
        .leader()
        .metrics()?
        .partition("ringlog_partition_log_end", partition)
        .context("leader log end")?;
    for &id in followers {
        cluster.wait_metrics(id, "the leader's log end", WAIT_DEADLINE, |metrics| {
            metrics.partition("ringlog_partition_durable_end", partition) == Some(leader_end)
        })?;
    }
    Ok(leader_end)
}

// ----- a. acknowledged records survive SIGKILL of every node -----

/// Records produced per ack mode before the kill.
const RECORDS_BEFORE_KILL: u64 = 2000;

/// Produces `RECORDS_BEFORE_KILL` records with acks=all to a topic of `configs` (RF 3, ISR
/// of 3, `PARTITIONS` partitions), SIGKILLs the three nodes as soon as the last outcome
/// arrives, and reads every replica's log offline: each acknowledged offset must be on at
/// least `replicas_min` replicas, the leader always among them, and the replicas must agree
/// batch for batch where they overlap. Then the three nodes start again, the ISR forms
/// again, and every node serves, at every acknowledged offset, the record acked there.
fn acked_records_survive_sigkill(
    name: &str,
    configs: &[&str],
    replicas_min: usize,
) -> anyhow::Result<()> {
    let mut cluster = cluster_with_topic(name, PARTITIONS, configs)?;
    let mut producer = Producer::start(&cluster, name, RECORDS_BEFORE_KILL)?;
    let total = usize::try_from(RECORDS_BEFORE_KILL)?;
    producer.pump_until("every outcome", |producer| {
        producer.acks.len() + producer.failures.len() >= total
    })?;
    cluster.kill_all();
    producer.ensure_no_failures(name)?;
    let acked = producer.acked()?;
    for (number, partition) in (0..PARTITIONS).zip(partitions_of(name, PARTITIONS)) {
        let logs = inspect_all(&cluster, &partition)?;
        assert_prefixes(&logs)?;
        let offsets = acked
            .keys()
            .filter(|(acked_partition, _)| *acked_partition == number)
            .map(|(_, offset)| *offset);
        for offset in offsets {
            let holders: Vec<u32> = logs
                .iter()
                .filter(|(_, log)| log.batch_of(offset).is_some())
                .map(|(id, _)| *id)
                .collect();
            ensure!(
                holders.contains(&1) && holders.len() >= replicas_min,
                "{partition}: acked offset {offset} is on nodes {holders:?}; needs the leader \
                 and {replicas_min} replicas in all; log ends {:?}",
                ends_of(&logs)
            );
        }
        eprintln!("{partition}: log ends {:?} after the kill", ends_of(&logs));
    }
    for id in cluster.ids() {
        cluster.start_node(id)?;
    }
    for partition in partitions_of(name, PARTITIONS) {
        cluster.wait_isr(&partition, 3)?;
    }
    for id in cluster.ids() {
        check_acked_records(&cluster, id, name, &acked)?;
    }
    Ok(())
}

/// Polls Fetch on partition `number` of `name` until the HW it answers with reaches `end`.
fn wait_fetched_high_watermark(
    client: &mut Client,
    name: &str,
    number: u32,
    end: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT_DEADLINE;
    loop {
        let (code, high_watermark, _) = client.fetch(name, i32::try_from(number)?, 0, 100)?;
        ensure!(code == 0, "{name}-{number}: fetch error {code}");
        if u64::try_from(high_watermark)? >= end {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{name}-{number}: HW {high_watermark} below {end} after {WAIT_DEADLINE:?}"
        );
    }
}

/// Reads every partition of `name` from node `id` through Fetch, once its HW covers every
/// acknowledged offset, and checks that each acknowledged offset holds the record acked
/// there (`k-<index>`).
fn check_acked_records(
    cluster: &Cluster,
    id: u32,
    name: &str,
    acked: &BTreeMap<(u32, u64), u64>,
) -> anyhow::Result<()> {
    let mut client = cluster.node(id).kafka()?;
    for number in 0..PARTITIONS {
        let partition = format!("{name}-{number}");
        let acked_here: Vec<(u64, u64)> = acked
            .iter()
            .filter(|((acked_partition, _), _)| *acked_partition == number)
            .map(|((_, offset), index)| (*offset, *index))
            .collect();
        let end = acked_here
            .iter()
            .map(|(offset, _)| offset + 1)
            .max()
            .unwrap_or(0);
        wait_fetched_high_watermark(&mut client, name, number, end)
            .with_context(|| format!("node {id}"))?;
        let records = read_all(&mut client, name, i32::try_from(number)?, end)?;
        for (offset, index) in acked_here {
            let record = records
                .get(usize::try_from(offset)?)
                .with_context(|| format!("node {id}: {partition}/{offset} is missing"))?;
            ensure!(
                record.key == format!("k-{index}").into_bytes(),
                "node {id}: {partition}/{offset} holds {:?}, acked for record {index}",
                String::from_utf8_lossy(&record.key)
            );
        }
    }
    Ok(())
}

// async: an acknowledged record is durable on the leader; nothing is promised of the
// followers.
#[test]
fn async_acked_records_are_on_the_leader_after_sigkill() -> anyhow::Result<()> {
    acked_records_survive_sigkill("acks-async", &["ack_mode=async"], 1)
}

// semi-sync with semi_sync_replicas=1: on the leader and one follower.
#[test]
fn semi_sync_acked_records_are_on_two_replicas_after_sigkill() -> anyhow::Result<()> {
    acked_records_survive_sigkill(
        "acks-semi",
        &["ack_mode=semi-sync", "semi_sync_replicas=1"],
        2,
    )
}

// quorum: on a majority (2 of 3), the leader among them.
#[test]
fn quorum_acked_records_are_on_a_majority_after_sigkill() -> anyhow::Result<()> {
    acked_records_survive_sigkill("acks-quorum", &["ack_mode=quorum"], 2)
}

// sync with min_insync_replicas=2 and the whole ISR (3) up: on every ISR member.
#[test]
fn sync_acked_records_are_on_every_isr_member_after_sigkill() -> anyhow::Result<()> {
    acked_records_survive_sigkill("acks-sync", &["ack_mode=sync", "min_insync_replicas=2"], 3)
}

// ----- b. a follower killed under load -----

/// Acks the producer must get in each phase of the follower-kill test.
const ACKS_PER_PHASE: usize = 300;

/// Under a continuous kafka-python load (acks=all, `PARTITIONS` partitions) with no ISR
/// change while all nodes run: SIGKILL follower 3; the leader's ISR of every partition
/// shrinks to 2 after replica_lag_max_ms and produces keep being acknowledged (acks seen
/// after the shrink); restart follower 3: it catches up and rejoins (ISR 3) while the load
/// goes on, and acks continue. No produce fails. Then the load stops, the followers catch
/// up, every node is stopped (SIGTERM), and the three logs of each partition hold identical
/// batches, which contain every acked offset.
fn follower_killed_under_load(name: &str, configs: &[&str]) -> anyhow::Result<()> {
    let mut cluster = cluster_with_topic(name, PARTITIONS, configs)?;
    let partitions = partitions_of(name, PARTITIONS);
    let mut producer = Producer::start(&cluster, name, 0)?;
    producer.wait_acks_since(Instant::now(), ACKS_PER_PHASE)?;
    let shrinks = cluster
        .leader()
        .metrics()?
        .counter("ringlog_isr_shrinks_total");
    ensure!(
        shrinks == 0,
        "{name}: {shrinks} ISR shrinks with every node up"
    );

    cluster.kill(3)?;
    for partition in &partitions {
        let metrics = cluster.wait_isr(partition, 2)?;
        let in_isr = metrics.follower("ringlog_follower_in_isr", partition, 3);
        ensure!(
            in_isr == Some(0),
            "{partition}: follower 3 in_isr {in_isr:?}"
        );
    }
    producer.wait_acks_since(Instant::now(), ACKS_PER_PHASE)?;

    cluster.start_node(3)?;
    for partition in &partitions {
        let metrics = cluster.wait_isr(partition, 3)?;
        let in_isr = metrics.follower("ringlog_follower_in_isr", partition, 3);
        ensure!(
            in_isr == Some(1),
            "{partition}: follower 3 in_isr {in_isr:?}"
        );
    }
    producer.wait_acks_since(Instant::now(), ACKS_PER_PHASE)?;
    producer.stop()?;
    producer.ensure_no_failures(name)?;

    let metrics = cluster.leader().metrics()?;
    let shrinks = metrics.counter("ringlog_isr_shrinks_total");
    let expands = metrics.counter("ringlog_isr_expands_total");
    let partitions_count = u64::from(PARTITIONS);
    ensure!(shrinks == partitions_count, "{name}: {shrinks} ISR shrinks");
    ensure!(
        expands == 3 * partitions_count,
        "{name}: {expands} ISR expands"
    );
    for partition in &partitions {
        wait_caught_up(&cluster, partition, &[2, 3])?;
    }
    cluster.terminate_all()?;
    let acked = producer.acked()?;
    for (number, partition) in (0..PARTITIONS).zip(&partitions) {
        let logs = inspect_all(&cluster, partition)?;
        assert_identical(&logs)?;
        for &(acked_partition, offset) in acked.keys() {
            ensure!(
                acked_partition != number || logs[0].1.batch_of(offset).is_some(),
                "{partition}: acked offset {offset} is missing"
            );
        }
    }
    Ok(())
}

#[test]
fn sync_keeps_acking_when_a_follower_dies_and_rejoins() -> anyhow::Result<()> {
    follower_killed_under_load("load-sync", &["ack_mode=sync", "min_insync_replicas=2"])
}

#[test]
fn quorum_keeps_acking_when_a_follower_dies_and_rejoins() -> anyhow::Result<()> {
    follower_killed_under_load("load-quorum", &["ack_mode=quorum"])
}

#[test]
fn semi_sync_keeps_acking_when_a_follower_dies_and_rejoins() -> anyhow::Result<()> {
    follower_killed_under_load("load-semi", &["ack_mode=semi-sync", "semi_sync_replicas=1"])
}

// The leader SIGKILLed under load (sync, min_insync_replicas 2) and restarted: its ISR
// forms again, produces are acknowledged again (those in flight at the crash may fail:
// retries=0), and once the load stops and the followers caught up, the three stopped logs
// of each partition are identical and hold every acknowledged offset.
#[test]
fn leader_crash_and_restart_under_load() -> anyhow::Result<()> {
    let name = "crash";
    let mut cluster = cluster_with_topic(name, PARTITIONS, &["ack_mode=sync"])?;
    let partitions = partitions_of(name, PARTITIONS);
    let mut producer = Producer::start(&cluster, name, 0)?;
    producer.wait_acks_since(Instant::now(), ACKS_PER_PHASE)?;
    cluster.kill(1)?;
    cluster.start_node(1)?;
    for partition in &partitions {
        cluster.wait_isr(partition, 3)?;
    }
    producer.wait_acks_since(Instant::now(), ACKS_PER_PHASE)?;
    producer.stop()?;
    for partition in &partitions {
        wait_caught_up(&cluster, partition, &[2, 3])?;
    }
    cluster.terminate_all()?;
    let acked = producer.acked()?;
    for (number, partition) in (0..PARTITIONS).zip(&partitions) {
        let logs = inspect_all(&cluster, partition)?;
        assert_identical(&logs)?;
        for &(acked_partition, offset) in acked.keys() {
            ensure!(
                acked_partition != number || logs[0].1.batch_of(offset).is_some(),
                "{partition}: acked offset {offset} is missing"
            );
        }
    }
    Ok(())
}

// ----- c. both followers stopped -----

/// Produces one small batch with `acks` and a request timeout of `timeout_ms`; returns
/// the error code and how long the answer took.
fn produce_timed(
    client: &mut Client,
    name: &str,
    acks: i16,
    timeout_ms: i32,
) -> anyhow::Result<(i16, Duration)> {
    let started = Instant::now();
    let request = produce_request(name, 0, batch(3, name), acks).with_timeout_ms(timeout_ms);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request)?;
    let code = response.responses[0].partition_responses[0].error_code;
    Ok((code, started.elapsed()))
}

/// The topics of the both-followers-stopped test, with their settings.
const STOPPED_TOPICS: [(&str, &[&str]); 5] = [
    ("c-sync", &["ack_mode=sync", "min_insync_replicas=2"]),
    ("c-semi", &["ack_mode=semi-sync", "semi_sync_replicas=1"]),
    (
        "c-degrade",
        &["ack_mode=semi-sync", "semi_sync_degrade=true"],
    ),
    ("c-quorum", &["ack_mode=quorum"]),
    ("c-async", &["ack_mode=async"]),
];
/// The request timeout of the produces (well above semi_sync_timeout_ms).
const STOPPED_TIMEOUT_MS: i32 = 5000;

// With both followers SIGKILLed:
// - `sync` (min_insync_replicas 2): a produce waiting when the ISR falls below 2 fails with
//   NOT_ENOUGH_REPLICAS_AFTER_APPEND; once the ISR is 1, produces are refused with
//   NOT_ENOUGH_REPLICAS and append nothing; acks=1 still works;
// - `semi-sync`: NOT_ENOUGH_REPLICAS_AFTER_APPEND once semi_sync_timeout_ms has passed;
// - `semi-sync` with semi_sync_degrade: acknowledged after the timeout, each ack counted in
//   ringlog_degraded_acks_total and logged by the leader;
// - `quorum`: never acknowledged by the leader alone: REQUEST_TIMED_OUT at the request's
//   timeout, counted in ringlog_acks_timed_out_total;
// - `async`: acknowledged at once.
// Then the followers start again and every topic acknowledges acks=all again.
#[test]
fn both_followers_stopped() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3, REPLICATION)?;
    for (name, configs) in STOPPED_TOPICS {
        cluster.create_topic(name, 1, 3, configs)?;
    }
    for (name, _) in STOPPED_TOPICS {
        cluster.wait_isr(&format!("{name}-0"), 3)?;
    }
    let mut client = cluster.leader().kafka()?;
    for (name, _) in STOPPED_TOPICS {
        let (code, _) = produce_timed(&mut client, name, -1, STOPPED_TIMEOUT_MS)?;
        ensure!(code == 0, "{name} with the whole ISR up: error {code}");
    }

    cluster.kill(2)?;
    cluster.kill(3)?;
    let (code, _) = produce_timed(&mut client, "c-sync", -1, STOPPED_TIMEOUT_MS)?;
    ensure!(
        code == NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        "c-sync produce waiting through the ISR shrink: error {code}"
    );
    sync_refuses_below_min_insync(&cluster, &mut client)?;
    semi_sync_without_followers(&cluster, &mut client)?;

    let (code, took) = produce_timed(&mut client, "c-quorum", -1, 1500)?;
    ensure!(
        code == REQUEST_TIMED_OUT,
        "c-quorum without followers: error {code}"
    );
    ensure!(
        took >= Duration::from_millis(1500),
        "c-quorum answered after {took:?}"
    );
    let timed_out = cluster
        .leader()
        .metrics()?
        .counter("ringlog_acks_timed_out_total");
    ensure!(timed_out == 1, "{timed_out} acks timed out");
    let (code, took) = produce_timed(&mut client, "c-async", -1, STOPPED_TIMEOUT_MS)?;
    ensure!(
        code == 0,
        "c-async without followers: error {code} after {took:?}"
    );

    cluster.start_node(2)?;
    cluster.start_node(3)?;
    for (name, _) in STOPPED_TOPICS {
        cluster.wait_isr(&format!("{name}-0"), 3)?;
        let (code, _) = produce_timed(&mut client, name, -1, STOPPED_TIMEOUT_MS)?;
        ensure!(
            code == 0,
            "{name} after the followers came back: error {code}"
        );
    }
    Ok(())
}

/// `c-sync` once its ISR is the leader alone: NOT_ENOUGH_REPLICAS, nothing appended,
/// counted; acks=1 appends.
fn sync_refuses_below_min_insync(cluster: &Cluster, client: &mut Client) -> anyhow::Result<()> {
    cluster.wait_isr("c-sync-0", 1)?;
    let before = cluster.leader().metrics()?;
    let log_end = before
        .partition("ringlog_partition_log_end", "c-sync-0")
        .context("log end")?;
    let (code, _) = produce_timed(client, "c-sync", -1, STOPPED_TIMEOUT_MS)?;
    ensure!(
        code == NOT_ENOUGH_REPLICAS,
        "c-sync with ISR 1: error {code}"
    );
    let (code, _) = produce_timed(client, "c-sync", 1, STOPPED_TIMEOUT_MS)?;
    ensure!(code == 0, "c-sync acks=1 with ISR 1: error {code}");
    let after = cluster.leader().metrics()?;
    let log_end_after = after.partition("ringlog_partition_log_end", "c-sync-0");
    ensure!(
        log_end_after == Some(log_end + 3),
        "log end {log_end}, then {log_end_after:?} after one refused and one accepted batch"
    );
    let refused = after.counter("ringlog_not_enough_replicas_total")
        - before.counter("ringlog_not_enough_replicas_total");
    ensure!(
        refused == 1,
        "ringlog_not_enough_replicas_total grew by {refused}"
    );
    Ok(())
}

/// `c-semi` fails and `c-degrade` acknowledges after semi_sync_timeout_ms, counted (and
/// logged, for degraded acks).
fn semi_sync_without_followers(cluster: &Cluster, client: &mut Client) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(1000);
    let before = cluster.leader().metrics()?;
    let (code, took) = produce_timed(client, "c-semi", -1, STOPPED_TIMEOUT_MS)?;
    ensure!(
        code == NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        "c-semi without followers: error {code}"
    );
    ensure!(
        took >= timeout,
        "c-semi failed after {took:?}, before its timeout"
    );
    let after = cluster.leader().metrics()?;
    let failed = after.counter("ringlog_not_enough_replicas_after_append_total")
        - before.counter("ringlog_not_enough_replicas_after_append_total");
    ensure!(
        failed == 1,
        "not_enough_replicas_after_append grew by {failed}"
    );

    let degraded_before = after.counter("ringlog_degraded_acks_total");
    ensure!(
        degraded_before == 0,
        "degraded acks before: {degraded_before}"
    );
    for round in 1..=3 {
        let (code, took) = produce_timed(client, "c-degrade", -1, STOPPED_TIMEOUT_MS)?;
        ensure!(code == 0, "c-degrade round {round}: error {code}");
        ensure!(
            took >= timeout,
            "c-degrade acked after {took:?}, before its timeout"
        );
        let degraded = cluster
            .leader()
            .metrics()?
            .counter("ringlog_degraded_acks_total");
        ensure!(
            degraded == round,
            "after {round} degraded acks the counter is {degraded}"
        );
    }
    let log = cluster.leader().log_text();
    let lines = log.lines().filter(|line| line.contains("degraded")).count();
    ensure!(lines == 3, "{lines} log lines about degraded acks:\n{log}");
    Ok(())
}

// ----- d. a new, empty replica -----

/// Records written before the new replica starts: about 11 MiB, so that copying them
/// takes several fetches (4 MiB each) and more than one 8 MiB segment.
const PRELOAD_BATCHES: usize = 110;
const PRELOAD_RECORDS_PER_BATCH: usize = 1000;

// Nodes 1 and 2 run; node 3 is configured but never started. After ~11 MiB of records
// (acks=1 through the test client) and with kafka-python producing continuously (acks=all,
// sync, min_insync_replicas 2), node 3 starts for the first time with an empty data
// directory: it learns the topic, copies the whole log and joins the ISR (isr_size 3)
// while the load goes on; acks continue after it joined. Once the load stops and it caught
// up, the three stopped logs hold identical batches.
#[test]
fn new_empty_replica_copies_the_log_and_joins_the_isr() -> anyhow::Result<()> {
    let mut cluster = Cluster::configure(3, REPLICATION)?;
    cluster.start_node(1)?;
    cluster.start_node(2)?;
    cluster.create_topic("fresh", 1, 3, &["ack_mode=sync", "min_insync_replicas=2"])?;
    cluster.wait_isr("fresh-0", 2)?;
    let mut client = cluster.leader().kafka()?;
    let payload = "x".repeat(80);
    for index in 0..PRELOAD_BATCHES {
        let tag = format!("{index}-{payload}");
        let (code, _) = client.produce("fresh", 0, batch(PRELOAD_RECORDS_PER_BATCH, &tag), 1)?;
        ensure!(code == 0, "preload batch {index}: error {code}");
    }
    let mut producer = Producer::start(&cluster, "fresh", 0)?;
    producer.wait_acks_since(Instant::now(), ACKS_PER_PHASE)?;

    cluster.start_node(3)?;
    cluster.wait_isr("fresh-0", 3)?;
    producer.wait_acks_since(Instant::now(), ACKS_PER_PHASE)?;
    producer.stop()?;
    producer.ensure_no_failures("fresh")?;
    wait_caught_up(&cluster, "fresh-0", &[2, 3])?;
    cluster.terminate_all()?;
    let logs = inspect_all(&cluster, "fresh-0")?;
    assert_identical(&logs)?;
    ensure!(
        logs[2].1.verdicts.len() >= 2,
        "node 3: {:?}",
        logs[2].1.verdicts
    );
    Ok(())
}

// ----- e. reads on a follower -----

/// The offsets of every record in a Fetch answer's record bytes.
fn record_offsets(records: &[u8]) -> anyhow::Result<Vec<u64>> {
    let mut offsets = Vec::new();
    let mut rest = records;
    while let Some(size) = ringlog_batch::peek_size_bytes(rest)? {
        if size > rest.len() {
            break; // a partial batch at the end of the answer
        }
        let header = ringlog_batch::validate(&rest[..size])?;
        let base = u64::try_from(header.base_offset)?;
        offsets.extend((0..header.record_count()).map(|delta| base + delta));
        rest = &rest[size..];
    }
    Ok(offsets)
}

/// The keys of the records at `offset` and after in a Fetch answer.
fn key_at(records: &[u8], offset: u64) -> anyhow::Result<Option<Vec<u8>>> {
    let mut rest = records;
    while let Some(size) = ringlog_batch::peek_size_bytes(rest)? {
        if size > rest.len() {
            break;
        }
        let batch = &rest[..size];
        let header = ringlog_batch::validate(batch)?;
        let base = u64::try_from(header.base_offset)?;
        for record in ringlog_batch::records(batch)? {
            let record = record?;
            if base + u64::try_from(record.offset_delta)? == offset {
                return Ok(Some(record.key.unwrap_or_default().to_vec()));
            }
        }
        rest = &rest[size..];
    }
    Ok(None)
}

// Under kafka-python load, Fetches to both followers (their own client address) never
// return a record at or above the high watermark in the same answer, and that HW is never
// above the leader's (read after the answer; the leader's HW only grows). Read-your-writes:
// after a produce with acks=all (sync) returns base offset X, a Fetch at X on either
// follower, with max_wait_ms, returns that record.
#[test]
fn follower_reads_stay_below_the_high_watermark() -> anyhow::Result<()> {
    let cluster = cluster_with_topic("reads", 1, &["ack_mode=sync", "min_insync_replicas=2"])?;
    let mut producer = Producer::start(&cluster, "reads", 0)?;
    producer.wait_acks_since(Instant::now(), 50)?;
    let mut leader = cluster.leader().kafka()?;
    let mut followers = [cluster.node(2).kafka()?, cluster.node(3).kafka()?];
    let mut next = [0i64; 2];
    let mut checked_records = 0usize;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        for (index, follower) in followers.iter_mut().enumerate() {
            let (code, high_watermark, records) = follower.fetch("reads", 0, next[index], 100)?;
            ensure!(code == 0, "follower fetch at {}: error {code}", next[index]);
            let offsets = record_offsets(&records)?;
            let high_watermark = u64::try_from(high_watermark)?;
            for &offset in &offsets {
                ensure!(
                    offset < high_watermark,
                    "node {}: record {offset} returned with HW {high_watermark}",
                    index + 2
                );
            }
            let (_, leader_hw, _) = leader.fetch("reads", 0, 0, 0)?;
            ensure!(
                high_watermark <= u64::try_from(leader_hw)?,
                "node {}: HW {high_watermark} above the leader's {leader_hw}",
                index + 2
            );
            checked_records += offsets.len();
            if let Some(last) = offsets.last() {
                next[index] = i64::try_from(last + 1)?;
            }
        }
    }
    producer.stop()?;
    ensure!(checked_records > 0, "no record read from the followers");

    for round in 0..20 {
        let tag = format!("ryw-{round}");
        let (code, base) = leader.produce("reads", 0, batch(1, &tag), -1)?;
        ensure!(code == 0, "produce {round}: error {code}");
        for (index, follower) in followers.iter_mut().enumerate() {
            let (code, high_watermark, records) = follower.fetch("reads", 0, base, 5000)?;
            ensure!(
                code == 0,
                "node {}: fetch at {base}: error {code}",
                index + 2
            );
            let key = key_at(&records, u64::try_from(base)?)?;
            ensure!(
                key.as_deref() == Some(format!("key-{tag}-0").as_bytes()),
                "node {}: fetch at {base} (HW {high_watermark}) returned {:?}",
                index + 2,
                key.map(|key| String::from_utf8_lossy(&key).into_owned())
            );
        }
    }
    Ok(())
}

// A follower's replica fetch parks at the leader for `fetch_wait_ms`; when the leader's HW
// moves, the parked fetch is answered at once, so the follower's readers see a committed
// record long before that wait ends. With `fetch_wait_ms` at 20 s and Kafka fetches on the
// followers that wait 5 s at most, read-your-writes on a follower works only because of that.
#[test]
fn followers_learn_a_new_high_watermark_without_waiting_out_their_fetch() -> anyhow::Result<()> {
    // replica_lag_max_ms must exceed fetch_wait_ms (the node refuses it otherwise).
    let replication = "ack_mode = \"sync\"\nmin_insync_replicas = 2\n\
                       replica_lag_max_ms = 30000\nfetch_wait_ms = 20000\n";
    let cluster = Cluster::start(3, replication)?;
    cluster.create_topic("hw", 1, 3, &["ack_mode=sync", "min_insync_replicas=2"])?;
    cluster.wait_isr("hw-0", 3)?;
    let mut leader = cluster.leader().kafka()?;
    let mut followers = [cluster.node(2).kafka()?, cluster.node(3).kafka()?];
    for round in 0..5 {
        let tag = format!("hw-{round}");
        let (code, base) = leader.produce("hw", 0, batch(1, &tag), -1)?;
        ensure!(code == 0, "produce {round}: error {code}");
        for (index, follower) in followers.iter_mut().enumerate() {
            let (code, high_watermark, records) = follower.fetch("hw", 0, base, 5000)?;
            ensure!(
                code == 0,
                "node {}: fetch at {base}: error {code}",
                index + 2
            );
            let key = key_at(&records, u64::try_from(base)?)?;
            ensure!(
                key.as_deref() == Some(format!("key-{tag}-0").as_bytes()),
                "node {}: a fetch at {base} waiting 5 s got HW {high_watermark} and no record",
                index + 2
            );
        }
    }
    Ok(())
}

// ----- f. writes to a follower -----

/// Records kcat produces through a follower in the redirect test.
const KCAT_RECORDS: usize = 1000;

/// kcat (librdkafka) bootstrapped from node 2 produces `KCAT_RECORDS` keyed records with
/// acks=all to `name`, and kcat bootstrapped from node 3 consumes them back (`-e`): both
/// find the leader through a follower's Metadata, and every record comes back once, with
/// the offsets of each partition contiguous from 0.
fn kcat_through_followers(cluster: &Cluster, name: &str) -> anyhow::Result<()> {
    let kcat = Command::new("kcat").arg("-V").output();
    ensure!(
        kcat.is_ok_and(|output| output.status.success()),
        "kcat is not installed: apt-get install -y kcat (the CI script installs it)"
    );
    let input: String = (0..KCAT_RECORDS)
        .map(|index| format!("key-{index}\tvalue-{index}\n"))
        .collect();
    let mut produce = Command::new("kcat")
        .args(["-P", "-b", &cluster.node(2).client.to_string(), "-t", name])
        .args(["-K", "\t", "-X", "acks=all"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = produce.stdin.take().context("stdin")?;
    std::io::Write::write_all(&mut stdin, input.as_bytes())?;
    drop(stdin);
    let produced = produce.wait_with_output()?;
    ensure!(
        produced.status.success(),
        "kcat -P via node 2: {}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let consumed = Command::new("kcat")
        .args(["-C", "-b", &cluster.node(3).client.to_string(), "-t", name])
        .args(["-o", "beginning", "-e", "-q", "-f", "%p %o %k %s\n"])
        .output()?;
    ensure!(
        consumed.status.success(),
        "kcat -C via node 3: {}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    let mut next_offsets: BTreeMap<u32, u64> = BTreeMap::new();
    let mut seen = vec![false; KCAT_RECORDS];
    for line in String::from_utf8(consumed.stdout)?.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let [partition, offset, key, value] = words.as_slice() else {
            bail!("kcat printed {line:?}");
        };
        let next = next_offsets.entry(partition.parse()?).or_default();
        ensure!(
            offset.parse::<u64>()? == *next,
            "{line:?}: expected offset {next}"
        );
        *next += 1;
        let index: usize = key.strip_prefix("key-").context("key")?.parse()?;
        ensure!(*value == format!("value-{index}"), "{line:?}");
        ensure!(!std::mem::replace(&mut seen[index], true), "{line:?} twice");
    }
    let missing = seen.iter().filter(|seen| !**seen).count();
    ensure!(
        missing == 0,
        "{missing} records produced via node 2 not consumed via node 3"
    );
    Ok(())
}

// A follower answers Produce with NOT_LEADER_OR_FOLLOWER (and appends nothing) and
// CreateTopics with NOT_CONTROLLER; its Metadata lists the three nodes at their client
// addresses and names node 1 as the partition's leader and the controller, so clients find
// the leader: kcat produces through node 2 and consumes through node 3.
#[test]
fn followers_redirect_writes_to_the_leader() -> anyhow::Result<()> {
    let cluster = cluster_with_topic("redirect", PARTITIONS, &[])?;
    for id in [2, 3] {
        let node = cluster.node(id);
        let mut client = node.kafka()?;
        for acks in [-1, 1] {
            let (code, _) = client.produce("redirect", 0, batch(2, "w"), acks)?;
            ensure!(
                code == NOT_LEADER_OR_FOLLOWER,
                "node {id} acks={acks}: error {code}"
            );
        }
        let end = node
            .metrics()?
            .partition("ringlog_partition_log_end", "redirect-0");
        ensure!(
            end == Some(0),
            "node {id}: log end {end:?} after refused produces"
        );

        let request = CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic("on-follower"))
                .with_num_partitions(1)
                .with_replication_factor(3)]);
        let created: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &request)?;
        let code = created.topics[0].error_code;
        ensure!(
            code == NOT_CONTROLLER,
            "node {id} CreateTopics: error {code}"
        );

        let request = MetadataRequest::default().with_topics(None);
        let metadata: MetadataResponse = client.call(ApiKey::Metadata, 12, &request)?;
        let mut brokers: Vec<(i32, String, i32)> = metadata
            .brokers
            .iter()
            .map(|broker| (broker.node_id.0, broker.host.to_string(), broker.port))
            .collect();
        brokers.sort();
        let expected: Vec<(i32, String, i32)> = cluster
            .ids()
            .into_iter()
            .map(|id| {
                let address = cluster.node(id).client;
                (
                    i32::try_from(id).expect("small"),
                    address.ip().to_string(),
                    i32::from(address.port()),
                )
            })
            .collect();
        ensure!(brokers == expected, "node {id}: brokers {brokers:?}");
        let entry = metadata
            .topics
            .iter()
            .find(|entry| {
                entry
                    .name
                    .as_ref()
                    .is_some_and(|n| n.0.as_str() == "redirect")
            })
            .context("topic in metadata")?;
        ensure!(
            entry.error_code == 0,
            "node {id}: topic error {}",
            entry.error_code
        );
        let leaders: Vec<i32> = entry.partitions.iter().map(|p| p.leader_id.0).collect();
        ensure!(leaders == vec![1, 1], "node {id}: leaders {leaders:?}");
        let replicas: Vec<i32> = entry.partitions[0]
            .replica_nodes
            .iter()
            .map(|node| node.0)
            .collect();
        ensure!(
            replicas == vec![1, 2, 3],
            "node {id}: replicas {replicas:?}"
        );
        ensure!(
            metadata.controller_id.0 == 1,
            "node {id}: controller {:?}",
            metadata.controller_id
        );
    }
    kcat_through_followers(&cluster, "redirect")
}

// ----- gauges after a restart -----

/// The HW a node's Fetch of `name`-0 at offset 0 answers with.
fn fetched_high_watermark(cluster: &Cluster, id: u32, name: &str) -> anyhow::Result<u64> {
    let (code, high_watermark, _) = cluster.node(id).kafka()?.fetch(name, 0, 0, 0)?;
    ensure!(code == 0, "node {id}: fetch error {code}");
    Ok(u64::try_from(high_watermark)?)
}

// A restarted node publishes the gauges of its replication role from the start, not those
// of a node alone: a follower restarted while the leader is down serves reads below HW 0
// (it has not heard the leader's HW yet), and its ringlog_partition_high_watermark says 0,
// not its durable end; a leader restarted while its followers are down reports an ISR of 1
// (itself), not 0. When everything runs again, gauges and Fetch agree on the new HW.
#[test]
fn restarted_nodes_report_the_high_watermark_they_serve() -> anyhow::Result<()> {
    let mut cluster = cluster_with_topic("gauges", 1, &["ack_mode=sync"])?;
    let mut client = cluster.leader().kafka()?;
    let (code, _) = client.produce("gauges", 0, batch(3, "g"), -1)?;
    ensure!(code == 0, "produce: error {code}");
    cluster.wait_metrics(2, "HW 3", WAIT_DEADLINE, |metrics| {
        metrics.partition("ringlog_partition_high_watermark", "gauges-0") == Some(3)
    })?;

    cluster.kill(1)?;
    cluster.restart(2)?;
    let served = fetched_high_watermark(&cluster, 2, "gauges")?;
    let reported = cluster.node(2).metrics()?;
    let reported_hw = reported.partition("ringlog_partition_high_watermark", "gauges-0");
    ensure!(
        reported_hw == Some(served),
        "restarted follower: HW gauge {reported_hw:?}, Fetch HW {served}"
    );

    cluster.terminate(2)?;
    cluster.terminate(3)?;
    cluster.start_node(1)?;
    let isr = cluster
        .leader()
        .metrics()?
        .partition("ringlog_partition_isr_size", "gauges-0");
    ensure!(isr == Some(1), "restarted leader alone: isr_size {isr:?}");

    cluster.start_node(2)?;
    cluster.start_node(3)?;
    cluster.wait_isr("gauges-0", 3)?;
    for id in [2, 3] {
        cluster.wait_metrics(id, "HW 3", WAIT_DEADLINE, |metrics| {
            metrics.partition("ringlog_partition_high_watermark", "gauges-0") == Some(3)
        })?;
        let served = fetched_high_watermark(&cluster, id, "gauges")?;
        ensure!(served == 3, "node {id}: Fetch HW {served}");
    }
    Ok(())
}
