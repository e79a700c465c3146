//! SIGKILL of `ringlog serve` under kcat load (issue 3, "Done when"): kcat (librdkafka)
//! produces keyed messages with acks=all to a 2-partition topic, as fast as it can, while
//! the test reads kcat's delivery reports (`-v -v -v` prints "Message delivered to
//! partition P (offset O)" for each acknowledged message). Once enough are acknowledged the
//! node is killed with SIGKILL, then kcat, and every reported delivery is checked after a
//! restart: the offset holds one of the messages sent, and no two reports share an offset.

mod kafka_client;
mod log_reader;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{ensure, Context};

use kafka_client::{Server, DEADLINE};
use log_reader::read_all;

/// Messages kcat is given: far more than it delivers before the kill.
const MESSAGES_COUNT: usize = 1_000_000;
/// Deliveries reported before the node is killed.
const DELIVERED_BEFORE_KILL: usize = 5_000;
const PARTITIONS: i32 = 2;

/// Parses "% Message delivered to partition 1 (offset 42) on broker 0".
fn parse_delivery(line: &str) -> Option<(i32, u64)> {
    let rest = line.strip_prefix("% Message delivered to partition ")?;
    let (partition, rest) = rest.split_once(" (offset ")?;
    let (offset, _) = rest.split_once(')')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

#[test]
fn every_delivery_kcat_reported_survives_sigkill() -> anyhow::Result<()> {
    let kcat = Command::new("kcat").arg("-V").output();
    assert!(
        kcat.is_ok_and(|output| output.status.success()),
        "kcat is not installed: apt-get install -y kcat (the CI script installs it)"
    );
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut server = Server::start(&data, "")?;
    assert_eq!(server.client()?.create_topic("load", PARTITIONS)?, 0);

    let mut producer = Command::new("kcat")
        .args(["-P", "-b", &server.listen.to_string(), "-t", "load", "-K:"])
        .args(["-X", "acks=all", "-X", "linger.ms=1", "-v", "-v", "-v"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning kcat")?;
    let mut stdin = producer.stdin.take().expect("piped stdin");
    let feeder = std::thread::spawn(move || {
        let mut out = std::io::BufWriter::new(&mut stdin);
        for index in 0..MESSAGES_COUNT {
            // A write fails once kcat is killed: the feeding ends there.
            if writeln!(out, "key{index}:value-{index}").is_err() {
                return;
            }
        }
        let _ = out.flush();
    });
    let stderr = producer.stderr.take().expect("piped stderr");
    let (reports, delivered) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if let Some(delivery) = parse_delivery(&line) {
                if reports.send(delivery).is_err() {
                    return;
                }
            }
        }
    });

    let mut acked: Vec<(i32, u64)> = Vec::new();
    let deadline = Instant::now() + 3 * DEADLINE;
    while acked.len() < DELIVERED_BEFORE_KILL {
        let wait = deadline.saturating_duration_since(Instant::now());
        let delivery = delivered.recv_timeout(wait).with_context(|| {
            format!(
                "only {} deliveries reported: {}",
                acked.len(),
                server.log_text()
            )
        })?;
        acked.push(delivery);
    }
    server.kill();
    let _ = producer.kill();
    let _ = producer.wait();
    reader.join().expect("reader thread");
    feeder.join().expect("feeder thread");
    // Everything kcat printed before it died: reports read after the kill are acks it saw
    // from the node before the kill (the node was gone by the time kcat was killed).
    acked.extend(delivered.try_iter());
    eprintln!("{} deliveries reported before the kill", acked.len());

    let server = Server::start(&data, "")?;
    let mut client = server.client()?;
    let mut by_partition: BTreeMap<i32, BTreeSet<u64>> = BTreeMap::new();
    for (partition, offset) in &acked {
        let fresh = by_partition.entry(*partition).or_default().insert(*offset);
        ensure!(fresh, "two deliveries reported at {partition}/{offset}");
    }
    for (partition, offsets) in by_partition {
        let end = offsets.last().map_or(0, |last| last + 1);
        let records = read_all(&mut client, "load", partition, end)?;
        for offset in offsets {
            let record = records
                .get(usize::try_from(offset)?)
                .with_context(|| format!("acked {partition}/{offset} is missing"))?;
            let key = String::from_utf8(record.key.clone())?;
            let value = String::from_utf8(record.value.clone())?;
            let index = key.strip_prefix("key").unwrap_or_default();
            ensure!(
                value == format!("value-{index}") && index.parse::<usize>().is_ok(),
                "{partition}/{offset}: {key}:{value} is not a message that was sent"
            );
        }
    }
    Ok(())
}
