//! The single-node produce scenarios: a `ringlog serve` child process on loopback, driven
//! with acks=1, for each write path, in the same run as the WAL-only runs and the baselines
//! they are compared with.
//!
//! - `produce_qd1`: one 1 KiB record per Produce request, each sent when the previous one is
//!   answered (queue depth 1), over one blocking connection on one thread (`time_qd1`,
//!   `KafkaConnection`), the way the loopback baseline times its round trip. Latency from
//!   building the request to reading its answer. Judged against `wal_qd1` (the same 1 KiB
//!   batch appended to the log alone) plus two loopback round trips and 50 µs of request
//!   handling.
//! - `produce_saturated`: `producers` threads, each with its own `ringlog-client` producer
//!   (one connection) and up to `in_flight_max` requests in flight, send 16 KiB batches of
//!   16 records of 1 KiB as fast as the node answers. Records/s, MB/s and per-request
//!   latency, from the request being written to its answer. Judged against `wal_saturated`
//!   at 16 KiB (>= 50% of its MB/s).
//!
//! The records are those of the WAL-only runs (`wal_runs::record_value_bytes`), so the log
//! stores batches of the same size with and without the network in front of it; MB/s counts
//! the nominal batch size as the WAL-only runs do. The node runs with the WAL-only runs'
//! segment size and retention limit, and the saturated run warms up until its partition has
//! reached that limit (ListOffsets EARLIEST > 0), so that, as in `wal_saturated`, every roll
//! measured reuses the oldest segment's file instead of zero-filling a new one; see
//! bench-harness/README.md.
//!
//! A producer dispatches a full batch when the next record arrives (its size check is an
//! upper bound, docs/client.md), so the saturated loop counts a batch as sent once the first
//! record of the following batch has been handed over. Answers are noticed between sends; a
//! sender blocked on a full pipeline wakes when an answer frees a slot, so the delay in
//! noticing is a few µs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use ringlog_batch::BatchBuilder;
use ringlog_client::{
    now_ms, Acks, ApiKey, Client, ClientOptions, OffsetSpec, Producer, ProducerOptions,
    ProducerRecord, Receipt, BATCH_SIZE_BYTES_DEFAULT,
};
use ringlog_types::units::KIB;
use serde_json::{json, Map};

use crate::kafka_connection::KafkaConnection;
use crate::latency::{new_histogram, record_us};
use crate::options::{ProduceOptions, WritePathName};
use crate::report::{mb_per_s, per_s, Comparison, LatencySummary, RunRef, RunResult, Target};
use crate::server_process::{ServerProcess, ServerSpec};
use crate::wal_runs::{record_value_bytes, records_per_batch};

/// Batch (and payload) of the queue-depth-1 run: one 1 KiB record per request.
pub(crate) const QD1_BATCH_BYTES: u64 = KIB;
/// Batch of the saturated run: 16 records of 1 KiB, a Kafka producer's default `batch.size`.
pub(crate) const SATURATED_BATCH_BYTES: u64 = 16 * KIB;
/// Round trips `produce_qd1` may add to `wal_qd1`'s p50.
const QD1_RTT_MULTIPLE: f64 = 2.0;
/// Request handling `produce_qd1` may add on top, µs.
const QD1_SLACK_US: u64 = 50;
/// Smallest share of `wal_saturated`'s MB/s that `produce_saturated` must reach, percent.
const SATURATED_PERCENT_MIN: f64 = 50.0;
/// Linger of the producers: long enough that no batch leaves before it is full (the qd1 loop
/// sends its batch itself, by waiting on the receipt).
pub(crate) const LINGER: Duration = Duration::from_secs(1);
/// Longest the saturated run goes on warming up, after `--warmup-secs`, for its partition to
/// reach the retention limit.
const RETENTION_WAIT_MAX: Duration = Duration::from_secs(30);
/// `client_id` of the queue-depth-1 loops' requests.
const QD1_CLIENT_ID: &str = "ringlog-bench-qd1";
/// Pause between two ListOffsets EARLIEST probes of the warm-up.
const RETENTION_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Runs both produce scenarios on a fresh node per write path and returns their results, in
/// order. `progress` receives one line per step.
pub fn run_produce_scenarios(
    options: &ProduceOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<RunResult>> {
    let mut results = Vec::new();
    for write_path in &options.wal.write_paths {
        let dir = options
            .wal
            .dir
            .join(format!("serve-{}", write_path.as_str()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let spec = ServerSpec {
            binary: options.ringlog_bin.clone(),
            dir: dir.clone(),
            write_path: *write_path,
            segment_size_bytes: options.wal.segment_size_bytes,
            retention_bytes: Some(options.wal.retention_bytes),
        };
        let server = ServerProcess::start(&spec)?;
        progress(&format!(
            "produce: ringlog serve ({write_path}) pid {} on {}",
            server.pid(),
            server.bootstrap()
        ));
        let mut client = Client::connect(&server.bootstrap(), ClientOptions::default())
            .context("connecting to the ringlog node")?;

        progress(&format!(
            "produce: produce_qd1 1 KiB records, acks=1, 1 request in flight ({write_path})"
        ));
        client.create_topic("produce-qd1", 1)?;
        let qd1 = run_qd1(&client, "produce-qd1", options)
            .with_context(|| format!("produce_qd1 on {write_path}"))?;
        results.push(qd1.into_result(*write_path));

        progress(&format!(
            "produce: produce_saturated 16 KiB batches, acks=1, {} producers x {} in flight \
             ({write_path})",
            options.producers, options.in_flight_max
        ));
        client.create_topic("produce-saturated", 1)?;
        let saturated = run_saturated(&mut client, "produce-saturated", options)
            .with_context(|| format!("produce_saturated on {write_path}"))?;
        results.push(saturated.into_result(*write_path));

        drop(client);
        server.stop()?;
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(results)
}

/// What one produce run measured.
struct Measured {
    scenario: &'static str,
    batch_bytes: u64,
    concurrency: u64,
    histogram: Histogram<u64>,
    acked_requests: u64,
    elapsed: Duration,
    extra: Map<String, serde_json::Value>,
}

impl Measured {
    fn into_result(self, write_path: WritePathName) -> RunResult {
        let records = self.acked_requests * records_per_batch(self.batch_bytes);
        let (comparison, target) = if self.concurrency == 1 {
            let target = Target::P50WithinRunPlusRtt {
                reference: RunRef {
                    scenario: "wal_qd1",
                    payload_bytes: QD1_BATCH_BYTES,
                },
                rtt_multiple: QD1_RTT_MULTIPLE,
                slack_us: QD1_SLACK_US,
            };
            (Comparison::LatencyQd1, target)
        } else {
            let target = Target::BandwidthPercentOfRunMin {
                reference: RunRef {
                    scenario: "wal_saturated",
                    payload_bytes: SATURATED_BATCH_BYTES,
                },
                percent: SATURATED_PERCENT_MIN,
            };
            (Comparison::Bandwidth, target)
        };
        let mut extra = self.extra;
        extra.insert("acks".into(), json!(Acks::Leader.code()));
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
            ack_mode: None,
            payload_bytes: self.batch_bytes,
            concurrency: self.concurrency,
            records_per_s: per_s(records, self.elapsed),
            mb_per_s: mb_per_s(self.acked_requests * self.batch_bytes, self.elapsed),
            latency_us: LatencySummary::from_histogram(&self.histogram),
            target_rate_records_per_s: None,
            e2e_latency_us: None,
            comparison,
            target: Some(target),
            extra,
            histogram: Some(self.histogram),
            e2e_histogram: None,
        }
    }
}

/// One record per request, each sent when the previous one is acknowledged.
fn run_qd1(client: &Client, topic: &str, options: &ProduceOptions) -> anyhow::Result<Measured> {
    let timed = time_qd1(
        client,
        topic,
        Acks::Leader,
        options.wal.warmup,
        options.wal.duration,
    )?;
    Ok(Measured {
        scenario: "produce_qd1",
        batch_bytes: QD1_BATCH_BYTES,
        concurrency: 1,
        histogram: timed.histogram,
        acked_requests: timed.acked_requests,
        elapsed: timed.elapsed,
        extra: Map::new(),
    })
}

/// What a queue-depth-1 loop measured (`time_qd1`).
pub(crate) struct Qd1Timing {
    /// Latency of each measured request, µs.
    pub histogram: Histogram<u64>,
    /// Requests answered in the measured part.
    pub acked_requests: u64,
    /// Length of the measured part.
    pub elapsed: Duration,
}

/// Sends one 1 KiB record per Produce request to `topic[0]` with `acks`, the next when the
/// previous is answered: `warmup` unmeasured, then `duration` measured, each request timed
/// from just before its batch is built to its answer. One blocking connection to the
/// partition's leader, on this thread (`KafkaConnection`): the loopback baseline's way of
/// timing a round trip.
pub(crate) fn time_qd1(
    client: &Client,
    topic: &str,
    acks: Acks,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Qd1Timing> {
    let leader = client.metadata().leader(topic, 0)?.address();
    let request_timeout = ClientOptions::default().request_timeout;
    let mut connection = KafkaConnection::open(
        &leader,
        QD1_CLIENT_ID,
        ClientOptions::default().connect_timeout,
        request_timeout,
    )?;
    let version = client.versions().get(ApiKey::Produce);
    let value = vec![b'r'; record_value_bytes(QD1_BATCH_BYTES)];
    let mut builder = BatchBuilder::new(now_ms());
    let mut histogram = new_histogram();
    let mut acked_requests = 0;
    let mut produce_for = |duration: Duration, measure: bool| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let deadline = started + duration;
        while Instant::now() < deadline {
            let sent = Instant::now();
            let timestamp_ms = now_ms();
            builder.reset(timestamp_ms);
            builder.push(timestamp_ms, None, Some(&value), &[]);
            let batch = Bytes::from(builder.build());
            connection.produce(topic, 0, batch, acks, request_timeout, version)?;
            if measure {
                record_us(&mut histogram, sent.elapsed());
                acked_requests += 1;
            }
        }
        Ok(started.elapsed())
    };
    produce_for(warmup, false)?;
    let elapsed = produce_for(duration, true)?;
    Ok(Qd1Timing {
        histogram,
        acked_requests,
        elapsed,
    })
}

/// When the saturated run measures: answers that arrive in `[start, start + duration)`
/// count, `start` being set once the warm-up is over. Abandoned if the warm-up fails.
#[derive(Debug)]
pub(crate) struct Window {
    pub(crate) start: OnceLock<Instant>,
    pub(crate) duration: Duration,
    pub(crate) abandoned: AtomicBool,
}

impl Window {
    /// Whether an answer at `at` counts.
    fn contains(&self, at: Instant) -> bool {
        self.start
            .get()
            .is_some_and(|start| at >= *start && at < *start + self.duration)
    }

    /// Whether the senders should stop sending.
    fn is_over(&self, now: Instant) -> bool {
        self.abandoned.load(Ordering::Relaxed)
            || self
                .start
                .get()
                .is_some_and(|start| now >= *start + self.duration)
    }
}

/// What one saturated producer thread counted in the window.
pub(crate) struct SenderCounts {
    pub(crate) histogram: Histogram<u64>,
    pub(crate) acked_requests: u64,
    pub(crate) in_flight_count_max: usize,
}

/// `producers` threads sending full 16 KiB batches with many requests in flight.
///
/// They warm up for `--warmup-secs`, then until the partition's log start has moved (the log
/// reached its retention limit, so rolls reuse files from then on), and only then measure.
fn run_saturated(
    client: &mut Client,
    topic: &str,
    options: &ProduceOptions,
) -> anyhow::Result<Measured> {
    let producer_options = ProducerOptions {
        acks: Acks::Leader,
        batch_size_bytes: BATCH_SIZE_BYTES_DEFAULT,
        linger: LINGER,
        in_flight_max: options.in_flight_max,
    };
    let producers: Vec<Producer> = (0..options.producers)
        .map(|_| Producer::new(client, producer_options.clone()))
        .collect();
    let window = Window {
        start: OnceLock::new(),
        duration: options.wal.duration,
        abandoned: AtomicBool::new(false),
    };
    let warmup_started = Instant::now();
    let (warmed, counts) = thread::scope(|scope| {
        let window = &window;
        let senders: Vec<_> = producers
            .iter()
            .map(|producer| scope.spawn(move || send_saturated(producer, topic, window)))
            .collect();
        let warmed = warm_until_retention(client, topic, options, || {
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
    let warmup = window
        .start
        .get()
        .map_or(Duration::ZERO, |start| *start - warmup_started);
    let mut histogram = new_histogram();
    let mut acked_requests = 0;
    let mut in_flight_count_max = 0;
    for sender in &counts {
        histogram
            .add(&sender.histogram)
            .context("merging latency histograms")?;
        acked_requests += sender.acked_requests;
        in_flight_count_max = in_flight_count_max.max(sender.in_flight_count_max);
    }
    let mut extra = Map::new();
    extra.insert("producers".into(), json!(options.producers));
    extra.insert("in_flight_max".into(), json!(options.in_flight_max));
    extra.insert("in_flight_observed_max".into(), json!(in_flight_count_max));
    extra.insert("batch_bytes".into(), json!(encoded_batch_bytes()));
    extra.insert(
        "segment_size_bytes".into(),
        json!(options.wal.segment_size_bytes),
    );
    extra.insert("retention_bytes".into(), json!(options.wal.retention_bytes));
    extra.insert("warmup_secs".into(), json!(warmup.as_secs_f64()));
    Ok(Measured {
        scenario: "produce_saturated",
        batch_bytes: SATURATED_BATCH_BYTES,
        concurrency: (options.producers * options.in_flight_max) as u64,
        histogram,
        acked_requests,
        elapsed: window.duration,
        extra,
    })
}

/// Waits `--warmup-secs`, then polls the partition's earliest offset until it is above 0:
/// the log has reached its retention limit and dropped (reused) its oldest segment. Gives up
/// after `RETENTION_WAIT_MAX`, or as soon as `senders_stopped` says a sender has ended (it
/// failed, and its error is the one to report).
fn warm_until_retention(
    client: &mut Client,
    topic: &str,
    options: &ProduceOptions,
    senders_stopped: impl Fn() -> bool,
) -> anyhow::Result<()> {
    let minimum_end = Instant::now() + options.wal.warmup;
    while Instant::now() < minimum_end {
        if senders_stopped() {
            bail!("a producer stopped during the warm-up");
        }
        thread::sleep(
            RETENTION_POLL_INTERVAL.min(minimum_end.saturating_duration_since(Instant::now())),
        );
    }
    let deadline = Instant::now() + RETENTION_WAIT_MAX;
    loop {
        if senders_stopped() {
            bail!("a producer stopped during the warm-up");
        }
        let earliest = client
            .list_offset(topic, 0, OffsetSpec::Earliest)
            .context("asking for the partition's earliest offset during the warm-up")?;
        if earliest > 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the partition did not reach its retention limit ({} bytes) within {} s of \
                 warm-up after --warmup-secs (earliest offset still 0)",
                options.wal.retention_bytes,
                RETENTION_WAIT_MAX.as_secs()
            );
        }
        thread::sleep(RETENTION_POLL_INTERVAL);
    }
}

/// One saturated producer: full batches until the window ends, then everything answered.
pub(crate) fn send_saturated(
    producer: &Producer,
    topic: &str,
    window: &Window,
) -> anyhow::Result<SenderCounts> {
    let value = vec![b'r'; record_value_bytes(SATURATED_BATCH_BYTES)];
    let records = records_per_batch(SATURATED_BATCH_BYTES);
    let mut counts = SenderCounts {
        histogram: new_histogram(),
        acked_requests: 0,
        in_flight_count_max: 0,
    };
    // Sent batches (one receipt each: a batch's receipts share its fate) with their send time.
    let mut in_flight: VecDeque<(Receipt, Instant)> = VecDeque::new();
    // The batch being filled.
    let mut filling: Option<Receipt> = None;
    while !window.is_over(Instant::now()) {
        // One timestamp per batch keeps every batch the same size.
        let record = ProducerRecord {
            key: None,
            value: Some(&value),
            headers: &[],
            timestamp_ms: now_ms(),
        };
        for index in 0..records {
            let receipt = producer.send(topic, 0, &record)?;
            if index == 0 {
                // This send dispatched the previous batch (see the module documentation).
                if let Some(sent) = filling.replace(receipt) {
                    in_flight.push_back((sent, Instant::now()));
                }
            }
            collect_answers(&mut in_flight, window, &mut counts)?;
        }
    }
    producer.flush()?;
    collect_answers(&mut in_flight, window, &mut counts)?;
    if let Some(last) = filling {
        last.wait()?;
    }
    counts.in_flight_count_max = producer.in_flight_count_max();
    Ok(counts)
}

/// Takes the answered batches off the front of `in_flight`, counting those answered inside
/// the window. A batch that failed fails the run.
fn collect_answers(
    in_flight: &mut VecDeque<(Receipt, Instant)>,
    window: &Window,
    counts: &mut SenderCounts,
) -> anyhow::Result<()> {
    while let Some((receipt, sent)) = in_flight.front() {
        if !receipt.is_done() {
            break;
        }
        let answered = Instant::now();
        receipt.wait()?;
        if window.contains(answered) {
            record_us(&mut counts.histogram, answered - *sent);
            counts.acked_requests += 1;
        }
        in_flight.pop_front();
    }
    Ok(())
}

/// The encoded size of one saturated batch (16 records, one timestamp), for the report.
pub(crate) fn encoded_batch_bytes() -> usize {
    let value = vec![b'r'; record_value_bytes(SATURATED_BATCH_BYTES)];
    let mut builder = ringlog_batch::BatchBuilder::new(0);
    for _ in 0..records_per_batch(SATURATED_BATCH_BYTES) {
        builder.push(0, None, Some(&value), &[]);
    }
    builder.build().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The saturated batch really holds 16 records and stays within 16 KiB, so the producer
    // (which dispatches before a record could take a batch past 16 KiB) sends it whole.
    #[test]
    fn saturated_batches_are_sixteen_records_within_16_kib() {
        let encoded = encoded_batch_bytes() as u64;
        assert!(encoded <= SATURATED_BATCH_BYTES, "{encoded}");
        assert!(encoded > SATURATED_BATCH_BYTES - KIB, "{encoded}");
        assert_eq!(records_per_batch(SATURATED_BATCH_BYTES), 16);
    }

    // The targets refer to the WAL-only runs of the same payloads.
    #[test]
    fn results_carry_their_targets() {
        let measured = |concurrency| Measured {
            scenario: "produce_qd1",
            batch_bytes: if concurrency == 1 { KIB } else { 16 * KIB },
            concurrency,
            histogram: new_histogram(),
            acked_requests: 10,
            elapsed: Duration::from_secs(1),
            extra: Map::new(),
        };
        let qd1 = measured(1).into_result(WritePathName::Direct);
        assert_eq!(qd1.records_per_s, 10.0);
        assert_eq!(
            qd1.target.and_then(|t| t.reference()).unwrap().scenario,
            "wal_qd1"
        );
        let saturated = measured(128).into_result(WritePathName::Mmap);
        assert_eq!(saturated.records_per_s, 160.0);
        assert_eq!(saturated.mb_per_s, 10.0 * 16384.0 / 1e6);
        let reference = saturated.target.and_then(|t| t.reference()).unwrap();
        assert_eq!(reference.scenario, "wal_saturated");
        assert_eq!(reference.payload_bytes, 16 * KIB);
        assert_eq!(saturated.extra["acks"], 1);
    }
}
