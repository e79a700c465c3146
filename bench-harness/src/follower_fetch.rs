//! The end-to-end latency of a fixed-rate run: a consumer thread that fetches the run's topic
//! from a follower and times each record's arrival against the due time its value carries
//! (`load_generator.rs` writes it), into a second histogram.
//!
//! A follower serves Kafka Fetch below its own high watermark (DESIGN.md section 4), which it
//! learns from the leader's answers to its replica fetches; the leader answers a follower's
//! parked fetch as soon as the HW moves, and the follower answers a parked consumer fetch as
//! soon as its own HW moves. So a record's end-to-end latency is: the wait for its due time
//! to be sent, the leader's commit under the topic's rule, the HW reaching the follower, and
//! the follower's answer. `ringlog_client::Consumer` reads only from the leader, so this module
//! speaks Fetch v4 itself (kafka-protocol's codecs; ringlog serves Fetch 4-12) on one blocking
//! connection, from offset 0 of every partition of the fresh topic.
//!
//! The consumer stops once the load is over and it has read up to the log end of every
//! partition the producers were acknowledged (`E2eControl::finish`), or when `drain_max` has
//! passed since (the records it never saw are counted as `missing`).
//!
//! Invariants: a position only moves forward, past whole batches; every batch is validated
//! (length, CRC32C) before its records are read; a record is timed once, at the arrival of the
//! response that carried it.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use ringlog_batch::{peek_size_bytes, records, validate};

use crate::kafka_connection::KafkaConnection;
use crate::latency::{duration_us, new_histogram};
use crate::load_generator::{pin_current_thread, read_value_header, RunClock, Window};

/// The Fetch version spoken (ringlog serves 4-12; v4 is the oldest, non-flexible).
const FETCH_VERSION: i16 = 4;
/// How long the follower may park a fetch with nothing to return; short, so that the end of
/// the run is noticed soon (data, or a moved HW, answers a parked fetch at once).
const FETCH_MAX_WAIT: Duration = Duration::from_millis(100);
/// Bytes of one fetch response at most.
const FETCH_MAX_BYTES: i32 = 16 << 20;
/// Bytes per partition in one fetch response at most.
const PARTITION_MAX_BYTES: i32 = 4 << 20;
/// Limit on connecting and on one answer beyond the fetch's own wait.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a partition error (the follower may not know a new topic for a moment).
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// How long partition errors may go on before the consumer gives up.
const ERROR_DURATION_MAX: Duration = Duration::from_secs(10);
/// `client_id` of the consumer's requests.
const CLIENT_ID: &str = "ringlog-bench-e2e";

/// How the load run tells the consumer it is over: the log end of every partition that the
/// producers were acknowledged, and how long the consumer may take to get there.
#[derive(Debug, Default)]
pub struct E2eControl {
    finish: Mutex<Option<(BTreeMap<i32, i64>, Instant)>>,
}

impl E2eControl {
    fn lock(&self) -> MutexGuard<'_, Option<(BTreeMap<i32, i64>, Instant)>> {
        self.finish
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The load is over: read up to `log_ends`, giving up at `deadline`.
    pub fn finish(&self, log_ends: BTreeMap<i32, i64>, deadline: Instant) {
        *self.lock() = Some((log_ends, deadline));
    }

    /// The load is over without known ends (it failed): stop now.
    pub fn abandon(&self) {
        *self.lock() = Some((BTreeMap::new(), Instant::now()));
    }

    fn finish_state(&self) -> Option<(BTreeMap<i32, i64>, Instant)> {
        self.lock().clone()
    }
}

/// Where and what the consumer reads.
#[derive(Clone, Debug)]
pub struct E2eConsumer {
    /// The follower's Kafka address.
    pub address: String,
    /// The run's topic.
    pub topic: String,
    /// Its partitions.
    pub partitions: i32,
    /// The base the values' due times count from.
    pub clock: RunClock,
    /// The run's window: only records due in its measured part are timed.
    pub window: Window,
    /// CPU to pin the consumer's thread to.
    pub cpu: Option<usize>,
}

/// What the consumer measured.
#[derive(Debug)]
pub struct E2eOutcome {
    /// From each record's due time to its arrival at the consumer, µs (measured window only).
    pub histogram: Histogram<u64>,
    /// Records of the measured window that arrived.
    pub records: u64,
    /// Records below the acknowledged log ends that had not arrived when it gave up.
    pub missing_records: u64,
    /// Fetch requests sent.
    pub fetches: u64,
    /// Partition errors answered (retried).
    pub partition_errors: u64,
}

impl E2eConsumer {
    /// Reads until `control` says the load is over and everything acknowledged has arrived
    /// (or its deadline passed).
    pub fn run(&self, control: &E2eControl) -> anyhow::Result<E2eOutcome> {
        pin_current_thread(self.cpu);
        let mut connection = KafkaConnection::open(
            &self.address,
            CLIENT_ID,
            IO_TIMEOUT,
            IO_TIMEOUT + FETCH_MAX_WAIT,
        )?;
        let mut positions: BTreeMap<i32, i64> = (0..self.partitions).map(|p| (p, 0)).collect();
        let mut outcome = E2eOutcome {
            histogram: new_histogram(),
            records: 0,
            missing_records: 0,
            fetches: 0,
            partition_errors: 0,
        };
        let mut errors_since: Option<Instant> = None;
        loop {
            if let Some((log_ends, deadline)) = control.finish_state() {
                let missing = missing_records(&positions, &log_ends);
                if missing == 0 || Instant::now() >= deadline {
                    outcome.missing_records = missing;
                    return Ok(outcome);
                }
            }
            let request = fetch_request(&self.topic, &positions);
            let response = connection.call(&request, FETCH_VERSION)?;
            let arrived = Instant::now();
            outcome.fetches += 1;
            let errors = self.read_response(&response, arrived, &mut positions, &mut outcome)?;
            if errors == 0 {
                errors_since = None;
                continue;
            }
            outcome.partition_errors += errors;
            let since = *errors_since.get_or_insert(arrived);
            if since.elapsed() >= ERROR_DURATION_MAX {
                bail!(
                    "{} answered fetches of {} with errors for {} s",
                    self.address,
                    self.topic,
                    ERROR_DURATION_MAX.as_secs()
                );
            }
            thread::sleep(ERROR_PAUSE);
        }
    }

    /// Times the records of every whole batch in `response`; returns the partitions answered
    /// with an error.
    fn read_response(
        &self,
        response: &FetchResponse,
        arrived: Instant,
        positions: &mut BTreeMap<i32, i64>,
        outcome: &mut E2eOutcome,
    ) -> anyhow::Result<u64> {
        if response.error_code != 0 {
            return Ok(1);
        }
        let mut errors = 0;
        let answers = response
            .responses
            .iter()
            .filter(|topic| topic.topic.0.as_str() == self.topic)
            .flat_map(|topic| topic.partitions.iter());
        for answer in answers {
            if answer.error_code != 0 {
                errors += 1;
                continue;
            }
            let Some(position) = positions.get_mut(&answer.partition_index) else {
                continue;
            };
            let bytes = answer.records.clone().unwrap_or_default();
            *position = self.read_batches(&bytes, *position, arrived, outcome)?;
        }
        Ok(errors)
    }

    /// Reads the whole batches of `bytes` at or above `position`; returns the new position.
    fn read_batches(
        &self,
        bytes: &Bytes,
        mut position: i64,
        arrived: Instant,
        outcome: &mut E2eOutcome,
    ) -> anyhow::Result<i64> {
        let mut start = 0;
        loop {
            let rest = &bytes[start..];
            let size_bytes = match peek_size_bytes(rest) {
                Ok(Some(size_bytes)) if size_bytes <= rest.len() => size_bytes,
                // A partial batch at the end (cut by the byte limits): the next fetch has it.
                Ok(_) => return Ok(position),
                Err(error) => bail!("a corrupt batch from {}: {error}", self.address),
            };
            let batch = &rest[..size_bytes];
            start += size_bytes;
            let header = validate(batch)
                .with_context(|| format!("a batch from {} at {position}", self.address))?;
            let next = header
                .base_offset
                .saturating_add(i64::from(header.last_offset_delta) + 1);
            if header.is_control() || next <= position {
                position = position.max(next);
                continue;
            }
            let batch_records = records(batch).context("reading a fetched batch")?;
            for record in batch_records {
                let record = record.context("reading a fetched record")?;
                let offset = header
                    .base_offset
                    .saturating_add(i64::from(record.offset_delta));
                if offset < position {
                    continue;
                }
                let due = record.value.and_then(read_value_header);
                if let Some((due_nanos, _)) = due {
                    let due = self.clock.decode(due_nanos);
                    if self.window.measures(due) {
                        let latency = arrived.saturating_duration_since(due);
                        outcome.histogram.saturating_record(duration_us(latency));
                        outcome.records += 1;
                    }
                }
            }
            position = position.max(next);
        }
    }
}

/// Records below `log_ends` not yet read (positions behind them), over every partition.
fn missing_records(positions: &BTreeMap<i32, i64>, log_ends: &BTreeMap<i32, i64>) -> u64 {
    log_ends
        .iter()
        .map(|(partition, end)| {
            let position = positions.get(partition).copied().unwrap_or(0);
            u64::try_from(end.saturating_sub(position)).unwrap_or(0)
        })
        .sum()
}

/// A Fetch of every partition from its position.
fn fetch_request(topic: &str, positions: &BTreeMap<i32, i64>) -> FetchRequest {
    let partitions = positions
        .iter()
        .map(|(partition, position)| {
            let mut fetch = FetchPartition::default();
            fetch.partition = *partition;
            fetch.current_leader_epoch = -1;
            fetch.fetch_offset = *position;
            fetch.last_fetched_epoch = -1;
            fetch.log_start_offset = -1;
            fetch.partition_max_bytes = PARTITION_MAX_BYTES;
            fetch
        })
        .collect();
    let mut fetch_topic = FetchTopic::default();
    fetch_topic.topic = TopicName(StrBytes::from_string(topic.to_owned()));
    fetch_topic.partitions = partitions;
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = i32::try_from(FETCH_MAX_WAIT.as_millis()).unwrap_or(i32::MAX);
    request.min_bytes = 1;
    request.max_bytes = FETCH_MAX_BYTES;
    request.isolation_level = 0;
    request.session_id = 0;
    request.session_epoch = -1;
    request.topics = vec![fetch_topic];
    request
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // What is missing is the distance from each position to its log end, never negative.
    #[test]
    fn counts_missing_records() {
        let positions = BTreeMap::from([(0, 10), (1, 7)]);
        let ends = BTreeMap::from([(0, 12), (1, 5), (2, 3)]);
        assert_eq!(missing_records(&positions, &ends), 2 + 3);
        assert_eq!(missing_records(&positions, &BTreeMap::new()), 0);
    }

    // A fetched batch is timed from each record's due time, only inside the window, and the
    // position moves past it; a batch below the position is skipped.
    #[test]
    fn times_fetched_records_from_their_due_time() {
        let clock = RunClock::start();
        let window = Window::after(
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_secs(60),
        );
        let consumer = E2eConsumer {
            address: "127.0.0.1:1".to_owned(),
            topic: "t".to_owned(),
            partitions: 1,
            clock,
            window,
            cpu: None,
        };
        let due_in_window = clock.encode(window.measured_start + Duration::from_millis(5));
        let due_in_warmup = clock.encode(window.start);
        let mut builder = ringlog_batch::BatchBuilder::new(0);
        for (index, due) in [due_in_warmup, due_in_window, due_in_window]
            .iter()
            .enumerate()
        {
            let mut value = vec![0u8; 32];
            value[0..8].copy_from_slice(&due.to_le_bytes());
            value[8..16].copy_from_slice(&(index as u64).to_le_bytes());
            builder.push(0, None, Some(&value), &[]);
        }
        let mut batch = builder.build();
        ringlog_batch::stamp(
            &mut batch,
            ringlog_types::Offset(4),
            ringlog_types::Epoch(1),
        );
        let mut outcome = E2eOutcome {
            histogram: new_histogram(),
            records: 0,
            missing_records: 0,
            fetches: 0,
            partition_errors: 0,
        };
        let arrived = window.measured_start + Duration::from_millis(7);
        let bytes = Bytes::from(batch);
        let position = consumer
            .read_batches(&bytes, 4, arrived, &mut outcome)
            .unwrap();
        assert_eq!(position, 7);
        assert_eq!(outcome.records, 2);
        let max = outcome.histogram.max();
        assert!((1990..=2010).contains(&max), "{max}");
        let again = consumer
            .read_batches(&bytes, 7, arrived, &mut outcome)
            .unwrap();
        assert_eq!(again, 7);
        assert_eq!(outcome.records, 2);
    }
}
