//! The default mode's load generator: producers that send batches at a fixed total rate (open
//! loop) or as fast as their answers come back (closed loop), and the latency of every record.
//!
//! Open loop (DESIGN.md §8): batch `g` (0, 1, 2, ... over all producers) falls due at
//! `start + g x batch_records / rate`, and producer `p` sends the batches `g ≡ p (mod
//! producers)`. A record's latency counts from its **due time**, not from when it was sent:
//! when the server stalls, the producer runs out of room (`in_flight_max`) and falls behind
//! its schedule, and every record that fell due meanwhile carries the whole wait. Measuring
//! from the send instead would let the blocked sender skip exactly the samples that show the
//! stall (coordinated omission, Gil Tene). Closed loop measures from the send, as most
//! benchmarks do; it exists to show the difference and to saturate.
//!
//! Each producer has a sender thread (schedule, room, send) and a collector thread that waits
//! for the answers in order and records them, so an answer is timed when it arrives, not when
//! the sender next looks. Every record's value starts with its due time (ns since the run's
//! `RunClock` base, little-endian u64) and its sequence number, which the end-to-end consumer
//! (`follower_fetch.rs`) reads back.
//!
//! The measured window is `[start + warmup, start + warmup + duration)` of due times. A batch
//! due in the window that had not been sent when the window ended is not sent; it counts as
//! `unsent` and is recorded with the lower bound of its latency (window end - due), so a stall
//! at the very end still shows.
//!
//! Invariants: at most `in_flight_max` batches per producer are outstanding (the `Room`
//! semaphore, taken before a send and given back when its answer is recorded); due times of a
//! producer increase strictly; a record is counted in the histogram once.

use std::collections::BTreeMap;
use std::fs;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use hdrhistogram::Histogram;
use ringlog_client::{now_ms, Acks, Client, Producer, ProducerOptions, ProducerRecord, Receipt};

use crate::latency::{duration_us, new_histogram};
use crate::options::{LoadShape, Pacing};

/// Bytes at the start of every value that carry its due time and sequence number.
pub const VALUE_HEADER_BYTES: usize = 16;
/// Upper bound of the bytes a record adds to a batch beyond its value (the client's bound).
const RECORD_OVERHEAD_BYTES_MAX: usize = 36;
/// Bytes of a RecordBatch v2 header.
const BATCH_HEADER_BYTES: usize = 61;
/// Linger of the producers: every batch is sent by `Producer::poll` right after its last
/// record, and the background linger thread finds nothing older to send.
const LINGER: Duration = Duration::from_nanos(1);
/// Timer slack asked for the sender threads, ns (Linux's default is 50 µs, which would delay
/// every send by that much on average).
const SENDER_TIMER_SLACK_NS: u64 = 1_000;

/// The instant every due time in the run's record values is counted from.
#[derive(Clone, Copy, Debug)]
pub struct RunClock {
    base: Instant,
}

impl RunClock {
    /// A clock starting now.
    pub fn start() -> RunClock {
        RunClock {
            base: Instant::now(),
        }
    }

    /// `at` as ns since the base (0 before it).
    pub fn encode(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant `nanos` after the base.
    pub fn decode(&self, nanos: u64) -> Instant {
        self.base + Duration::from_nanos(nanos)
    }
}

/// A record value's due time and sequence number, from its first `VALUE_HEADER_BYTES`.
pub fn read_value_header(value: &[u8]) -> Option<(u64, u64)> {
    let due = value.get(0..8)?.try_into().ok().map(u64::from_le_bytes)?;
    let sequence = value.get(8..16)?.try_into().ok().map(u64::from_le_bytes)?;
    Some((due, sequence))
}

fn write_value_header(value: &mut [u8], due_nanos: u64, sequence: u64) {
    value[0..8].copy_from_slice(&due_nanos.to_le_bytes());
    value[8..16].copy_from_slice(&sequence.to_le_bytes());
}

/// The times of one run: when sending starts, and the measured window of due times.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// When the first batch falls due.
    pub start: Instant,
    /// Start of the measured window (after the warm-up).
    pub measured_start: Instant,
    /// End of the measured window, and of sending.
    pub end: Instant,
}

impl Window {
    /// A window starting now + `lead`, measured after `warmup` for `duration`.
    pub fn after(lead: Duration, warmup: Duration, duration: Duration) -> Window {
        let start = Instant::now() + lead;
        Window {
            start,
            measured_start: start + warmup,
            end: start + warmup + duration,
        }
    }

    /// Whether a batch due at `due` is measured.
    pub fn measures(&self, due: Instant) -> bool {
        due >= self.measured_start && due < self.end
    }

    /// Length of the measured window.
    pub fn measured(&self) -> Duration {
        self.end - self.measured_start
    }
}

/// Due time of global batch `index` in an open loop at `batch_interval` from `start`.
pub fn due_time(start: Instant, batch_interval: Duration, index: u64) -> Instant {
    let nanos = batch_interval.as_nanos().saturating_mul(u128::from(index));
    start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Time between two batches of the whole open loop: `batch_records / rate`.
pub fn batch_interval(batch_records: usize, records_per_s: f64) -> Duration {
    assert!(records_per_s > 0.0, "records_per_s={records_per_s}");
    Duration::from_secs_f64(batch_records as f64 / records_per_s)
}

/// What one load run sends, where and how.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// The topic, created beforehand with `shape.partitions` partitions.
    pub topic: String,
    /// The load's shape.
    pub shape: LoadShape,
    /// Open or closed loop.
    pub pacing: Pacing,
    /// acks of every request.
    pub acks: Acks,
    /// When to send and measure.
    pub window: Window,
    /// Base of the due times written into the values.
    pub clock: RunClock,
    /// CPUs the generator's threads are pinned to, round robin (empty: not pinned).
    pub cpus: Vec<usize>,
}

/// What one load run measured.
#[derive(Debug)]
pub struct LoadOutcome {
    /// Latency of every record due in the window, µs: from its due time (open loop) or its
    /// send (closed loop) to its answer; unsent records at their lower bound.
    pub histogram: Histogram<u64>,
    /// How late batches were sent after falling due, µs (open loop; 0 in a closed loop).
    pub send_lag: Histogram<u64>,
    /// Records due (or sent) in the window and acknowledged.
    pub acked_records: u64,
    /// Requests due (or sent) in the window and acknowledged.
    pub acked_requests: u64,
    /// Records due in the window that were not sent before it ended (open loop).
    pub unsent_records: u64,
    /// Per partition: one past the highest offset acknowledged (whole run).
    pub log_ends: BTreeMap<i32, i64>,
    /// Most batches any producer had outstanding.
    pub in_flight_observed_max: usize,
}

impl LoadOutcome {
    fn empty() -> LoadOutcome {
        LoadOutcome {
            histogram: new_histogram(),
            send_lag: new_histogram(),
            acked_records: 0,
            acked_requests: 0,
            unsent_records: 0,
            log_ends: BTreeMap::new(),
            in_flight_observed_max: 0,
        }
    }

    fn merge(&mut self, other: &LoadOutcome) -> anyhow::Result<()> {
        self.histogram
            .add(&other.histogram)
            .context("merging latency histograms")?;
        self.send_lag
            .add(&other.send_lag)
            .context("merging send-lag histograms")?;
        self.acked_records += other.acked_records;
        self.acked_requests += other.acked_requests;
        self.unsent_records += other.unsent_records;
        for (partition, end) in &other.log_ends {
            let merged = self.log_ends.entry(*partition).or_insert(*end);
            *merged = (*merged).max(*end);
        }
        self.in_flight_observed_max = self
            .in_flight_observed_max
            .max(other.in_flight_observed_max);
        Ok(())
    }
}

/// Runs `plan` with one sender and one collector thread per producer and returns what they
/// measured, merged. Fails with the first producer's error.
pub fn run_load(client: &Client, plan: &LoadPlan) -> anyhow::Result<LoadOutcome> {
    let shape = plan.shape;
    let options = ProducerOptions {
        acks: plan.acks,
        batch_size_bytes: batch_size_bytes(shape),
        linger: LINGER,
        in_flight_max: shape.in_flight_max,
    };
    let producers: Vec<Producer> = (0..shape.producers)
        .map(|_| Producer::new(client, options.clone()))
        .collect();
    let outcomes = thread::scope(|scope| {
        let handles: Vec<_> = producers
            .iter()
            .enumerate()
            .map(|(index, producer)| {
                let cpu = pick_cpu(&plan.cpus, index);
                scope.spawn(move || run_producer(producer, plan, index, cpu))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .map_err(|_| anyhow!("a producer thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<LoadOutcome>>>()
    })?;
    let mut merged = LoadOutcome::empty();
    for outcome in &outcomes {
        merged.merge(outcome)?;
    }
    Ok(merged)
}

/// The CPU of the generator's thread `index`, round robin over `cpus`.
fn pick_cpu(cpus: &[usize], index: usize) -> Option<usize> {
    (!cpus.is_empty()).then(|| cpus[index % cpus.len()])
}

/// Pins the calling thread to `cpu` (best effort: an unpinned generator still measures).
pub fn pin_current_thread(cpu: Option<usize>) {
    if let Some(id) = cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

/// A batch size the client never reaches before `Producer::poll` sends the batch: room for
/// `batch_records` records at the client's upper bound of a record's size, plus one byte.
fn batch_size_bytes(shape: LoadShape) -> usize {
    BATCH_HEADER_BYTES
        + shape.batch_records * (shape.payload_size_bytes + RECORD_OVERHEAD_BYTES_MAX)
        + 1
}

/// One producer's sender (this thread) and collector (a scoped thread).
fn run_producer(
    producer: &Producer,
    plan: &LoadPlan,
    index: usize,
    cpu: Option<usize>,
) -> anyhow::Result<LoadOutcome> {
    pin_current_thread(cpu);
    reduce_timer_slack();
    let room = Room::new(plan.shape.in_flight_max);
    let (pending_sender, pending_receiver) = sync_channel(plan.shape.in_flight_max + 1);
    thread::scope(|scope| {
        let room = &room;
        let collector = scope.spawn(move || {
            pin_current_thread(cpu);
            let result = collect(pending_receiver, room, plan);
            // The sender must not wait for room that a failed collector will never give back.
            room.close();
            result
        });
        let sent = send(producer, plan, index, room, &pending_sender);
        drop(pending_sender);
        let collected = collector
            .join()
            .map_err(|_| anyhow!("a collector thread panicked"))?;
        // A collector's error (the broker's answer) explains more than the sender's.
        let mut outcome = collected?;
        let sent = sent?;
        outcome.unsent_records = sent.unsent_records;
        outcome.send_lag = sent.send_lag;
        outcome.in_flight_observed_max = producer.in_flight_count_max();
        merge_unsent(&mut outcome.histogram, &sent.unsent_latencies);
        Ok(outcome)
    })
}

/// What the sender hands the collector for each batch sent.
struct Pending {
    receipt: Receipt,
    due: Instant,
    records: u64,
    partition: i32,
}

/// What the sender itself measured.
struct Sent {
    send_lag: Histogram<u64>,
    unsent_records: u64,
    /// (lower bound of the latency, records) of every batch due in the window but unsent.
    unsent_latencies: Vec<(Duration, u64)>,
}

/// Sends this producer's batches until the window ends.
fn send(
    producer: &Producer,
    plan: &LoadPlan,
    index: usize,
    room: &Room,
    pending: &SyncSender<Pending>,
) -> anyhow::Result<Sent> {
    let shape = plan.shape;
    let window = plan.window;
    assert!(
        shape.payload_size_bytes >= VALUE_HEADER_BYTES,
        "payload_size_bytes={} holds no due time",
        shape.payload_size_bytes
    );
    let mut value = vec![b'r'; shape.payload_size_bytes];
    let mut sent = Sent {
        send_lag: new_histogram(),
        unsent_records: 0,
        unsent_latencies: Vec::new(),
    };
    let stride = shape.producers as u64;
    let records = shape.batch_records as u64;
    let interval = match plan.pacing {
        Pacing::FixedRate { records_per_s } => {
            Some(batch_interval(shape.batch_records, records_per_s))
        }
        Pacing::ClosedLoop => None,
    };
    let mut batch = index as u64;
    loop {
        let scheduled = interval.map(|interval| due_time(window.start, interval, batch));
        if let Some(due) = scheduled {
            if due >= window.end {
                break;
            }
            sleep_until(due);
        }
        if !room.take(window.end) {
            break;
        }
        let now = Instant::now();
        if now >= window.end {
            room.give_back();
            break;
        }
        let due = scheduled.unwrap_or(now);
        if window.measures(due) {
            sent.send_lag.saturating_record(duration_us(now - due));
        }
        let partition = i32::try_from(batch % u64::try_from(shape.partitions).unwrap_or(1))
            .expect("below the partition count");
        let due_nanos = plan.clock.encode(due);
        let mut last = None;
        for record in 0..records {
            write_value_header(&mut value, due_nanos, batch * records + record);
            let produced = ProducerRecord {
                key: None,
                value: Some(&value),
                headers: &[],
                timestamp_ms: now_ms(),
            };
            last = Some(producer.send(&plan.topic, partition, &produced)?);
        }
        producer.poll()?;
        let receipt = last.expect("a batch has at least one record");
        let handed = pending.send(Pending {
            receipt,
            due,
            records,
            partition,
        });
        if handed.is_err() {
            // The collector stopped: its error is the run's.
            break;
        }
        batch += stride;
    }
    if let Some(interval) = interval {
        count_unsent(&mut sent, window, interval, batch, stride, records);
    }
    Ok(sent)
}

/// Counts the batches from `batch` on (every `stride`th) that fell due in the measured window
/// but were not sent, with the lower bound of their latency (the window's end - due).
fn count_unsent(
    sent: &mut Sent,
    window: Window,
    interval: Duration,
    first: u64,
    stride: u64,
    records: u64,
) {
    let mut batch = first;
    loop {
        let due = due_time(window.start, interval, batch);
        if due >= window.end {
            return;
        }
        if window.measures(due) {
            sent.unsent_records += records;
            sent.unsent_latencies.push((window.end - due, records));
        }
        batch += stride;
    }
}

fn merge_unsent(histogram: &mut Histogram<u64>, unsent: &[(Duration, u64)]) {
    for (latency, records) in unsent {
        histogram.saturating_record_n(duration_us(*latency), *records);
    }
}

/// Waits for every answer in order and records it.
fn collect(
    pending: Receiver<Pending>,
    room: &Room,
    plan: &LoadPlan,
) -> anyhow::Result<LoadOutcome> {
    let mut outcome = LoadOutcome::empty();
    for batch in pending {
        let answer = batch.receipt.wait();
        let answered = Instant::now();
        room.give_back();
        let offset = answer
            .with_context(|| format!("a produce to {}[{}] failed", plan.topic, batch.partition))?;
        if let Some(offset) = offset {
            let end = i64::try_from(offset.0)
                .unwrap_or(i64::MAX)
                .saturating_add(1);
            let log_end = outcome.log_ends.entry(batch.partition).or_insert(end);
            *log_end = (*log_end).max(end);
        }
        if plan.window.measures(batch.due) {
            let latency_us = duration_us(answered.saturating_duration_since(batch.due));
            outcome
                .histogram
                .saturating_record_n(latency_us, batch.records);
            outcome.acked_records += batch.records;
            outcome.acked_requests += 1;
        }
    }
    Ok(outcome)
}

/// Sleeps until `at` (returns at once if it has passed).
fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
}

/// Asks for a 1 µs timer slack on this thread, so that its sleeps end close to the due time
/// (best effort, Linux 4.6 and later). The kernel has the file for every task at
/// `/proc/<tid>/timerslack_ns` only (not under `task/`), and the thread's id is the last
/// part of the `/proc/thread-self` link. Measured here: sleeps of 500 µs overshoot by 87 µs
/// at the median with the default 50 µs slack, 32 µs with 1 µs.
fn reduce_timer_slack() {
    let Ok(link) = fs::read_link("/proc/thread-self") else {
        return;
    };
    let Some(tid) = link.file_name().and_then(|tid| tid.to_str()) else {
        return;
    };
    let _ = fs::write(
        format!("/proc/{tid}/timerslack_ns"),
        SENDER_TIMER_SLACK_NS.to_string(),
    );
}

/// A producer's room for outstanding batches: a counting semaphore the collector can close.
#[derive(Debug)]
struct Room {
    state: Mutex<RoomState>,
    changed: Condvar,
    capacity: usize,
}

#[derive(Debug)]
struct RoomState {
    taken: usize,
    closed: bool,
}

impl Room {
    fn new(capacity: usize) -> Room {
        assert!(capacity > 0, "capacity={capacity}");
        Room {
            state: Mutex::new(RoomState {
                taken: 0,
                closed: false,
            }),
            changed: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, RoomState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a place, waiting for one until `deadline`; false if the deadline passed or the
    /// room was closed first.
    fn take(&self, deadline: Instant) -> bool {
        let mut state = self.lock();
        loop {
            if state.closed {
                return false;
            }
            if state.taken < self.capacity {
                state.taken += 1;
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(state, _)| state)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// Gives a place back.
    fn give_back(&self) {
        let mut state = self.lock();
        assert!(state.taken > 0, "a place is given back once");
        state.taken -= 1;
        self.changed.notify_all();
    }

    /// Refuses every later `take`.
    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Due times are exact multiples of the interval from the start, for any producer's share:
    // 2000 records/s in batches of 4 is one batch every 2 ms.
    #[test]
    fn schedules_batches_at_fixed_intervals() {
        let interval = batch_interval(4, 2000.0);
        assert_eq!(interval, Duration::from_millis(2));
        let start = Instant::now();
        assert_eq!(due_time(start, interval, 0), start);
        assert_eq!(
            due_time(start, interval, 7),
            start + Duration::from_millis(14)
        );
        assert_eq!(batch_interval(1, 3.0), Duration::from_secs_f64(1.0 / 3.0));
    }

    // The value header round-trips through the clock's encoding.
    #[test]
    fn values_carry_due_time_and_sequence() {
        let clock = RunClock::start();
        let due = clock.base + Duration::from_micros(1234);
        let mut value = vec![0; 32];
        write_value_header(&mut value, clock.encode(due), 77);
        let (nanos, sequence) = read_value_header(&value).unwrap();
        assert_eq!(clock.decode(nanos), due);
        assert_eq!(sequence, 77);
        assert_eq!(read_value_header(&value[..15]), None);
        assert_eq!(clock.encode(clock.base - Duration::from_secs(1)), 0);
    }

    // A batch due in the window counts; the warm-up and the end do not.
    #[test]
    fn window_measures_due_times_inside_it() {
        let window = Window::after(
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        assert!(!window.measures(window.start));
        assert!(window.measures(window.measured_start));
        assert!(window.measures(window.end - Duration::from_nanos(1)));
        assert!(!window.measures(window.end));
        assert_eq!(window.measured(), Duration::from_secs(2));
    }

    // Batches never sent because the sender fell behind are counted with the lower bound of
    // their latency: 1000 batches/s, window [1 s, 2 s), the sender stopped at batch 1500 of
    // producer 0 of 2: batches 1500, 1502, ... 1998 are unsent, the first 500 ms late.
    #[test]
    fn counts_unsent_batches_with_their_lower_bound() {
        let window = Window::after(
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let mut sent = Sent {
            send_lag: new_histogram(),
            unsent_records: 0,
            unsent_latencies: Vec::new(),
        };
        count_unsent(&mut sent, window, Duration::from_millis(1), 1500, 2, 3);
        assert_eq!(sent.unsent_records, 250 * 3);
        assert_eq!(sent.unsent_latencies[0], (Duration::from_millis(500), 3));
        let mut histogram = new_histogram();
        merge_unsent(&mut histogram, &sent.unsent_latencies);
        assert_eq!(histogram.len(), 750);
        assert!(histogram.max() >= 499_000, "{}", histogram.max());
    }

    // The room holds `capacity` places, times out, and refuses everything once closed.
    #[test]
    fn room_bounds_outstanding_batches() {
        let room = Room::new(2);
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(room.take(soon));
        assert!(room.take(soon));
        assert!(!room.take(soon), "full until the deadline");
        room.give_back();
        assert!(room.take(Instant::now()));
        room.close();
        room.give_back();
        assert!(!room.take(Instant::now() + Duration::from_secs(1)));
    }

    // The batch size leaves room for every record of a batch at the client's upper bound, so
    // only `poll` sends it.
    #[test]
    fn batch_size_fits_the_whole_batch() {
        let shape = LoadShape {
            payload_size_bytes: 1024,
            batch_records: 16,
            in_flight_max: 1,
            producers: 1,
            partitions: 1,
        };
        // The client's check before the last record: the batch so far plus that record's
        // upper bound must fit.
        let mut builder = ringlog_batch::BatchBuilder::new(0);
        let value = vec![0; 1024];
        for _ in 0..15 {
            builder.push(0, None, Some(&value), &[]);
        }
        let before_last = builder.size_bytes() + RECORD_OVERHEAD_BYTES_MAX + 1024;
        assert!(before_last <= batch_size_bytes(shape), "{before_last}");
        builder.push(0, None, Some(&value), &[]);
        assert!(builder.size_bytes() < batch_size_bytes(shape));
        assert_eq!(pick_cpu(&[3, 4], 3), Some(4));
        assert_eq!(pick_cpu(&[], 3), None);
    }
}
