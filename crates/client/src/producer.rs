//! The producer: records are gathered into one RecordBatch per partition, and each batch goes
//! out as its own Produce request on the connection to the partition's leader, with up to
//! `in_flight_max` requests outstanding per connection (pipelining).
//!
//! A batch leaves when the next record would take it past `batch_size_bytes`, when it has
//! waited `linger` (a background thread checks every `linger`), on [`Producer::flush`], or
//! when one of its receipts is waited on. Each connection has a reader thread that takes the
//! responses in order, matches each one to the oldest request still waiting (Kafka answers in
//! order, docs/kafka-protocol.md) and resolves that batch's receipts.
//!
//! Invariants: at most `in_flight_max` requests wait for a response per connection (asserted
//! when one is added); a batch is at most `batch_size_bytes` unless its single record is
//! larger; every receipt is resolved exactly once: with the batch's base offset plus the
//! record's index, with the broker's error, or with the connection's failure; with acks = 0
//! no response is expected, and the receipt resolves as soon as the request is written.
//!
//! Lock order: producer state, then a connection's pipeline, then a batch slot. The reader
//! threads take only the pipeline and the slots.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use ringlog_batch::BatchBuilder;
use ringlog_kafka::ApiKey;
use ringlog_types::units::KIB;
use ringlog_types::Offset;

use crate::client::{timeout_ms, topic_name, Client, ClusterMetadata};
use crate::connection::{ConnectionSettings, FrameReader, FrameWriter};
use crate::error::{Error, Result};

/// Default target size of a batch: 16 KiB, Kafka's `batch.size` default.
#[allow(clippy::cast_possible_truncation)] // 16 KiB fits the usize of every supported target.
pub const BATCH_SIZE_BYTES_DEFAULT: usize = (16 * KIB) as usize;
/// Default number of Produce requests outstanding per connection (Kafka's
/// `max.in.flight.requests.per.connection` default).
pub const IN_FLIGHT_MAX_DEFAULT: usize = 5;
/// Largest accepted `in_flight_max`: each outstanding request holds a whole batch.
pub const IN_FLIGHT_MAX_LIMIT: usize = 1024;
/// Upper bound of the bytes a record adds to a batch beyond its key, value and header
/// bytes: length (5), attributes (1), timestamp delta (10), offset delta (5), key and value
/// lengths (5 each), header count (5).
const RECORD_OVERHEAD_BYTES_MAX: usize = 36;
/// Upper bound of the bytes a header adds beyond its key and value: two lengths.
const HEADER_OVERHEAD_BYTES_MAX: usize = 10;

/// How many replicas must have a batch before the broker answers (Kafka's `acks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// `acks = 0`: no response at all; receipts carry no offset.
    None,
    /// `acks = 1`: the leader has appended it.
    Leader,
    /// `acks = -1` (`all`): every in-sync replica has it (on one node: durable there).
    All,
}

impl Acks {
    /// The value on the wire.
    pub fn code(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// How a [`Producer`] batches and sends.
#[derive(Clone, Debug)]
pub struct ProducerOptions {
    /// The ack mode of every request.
    pub acks: Acks,
    /// Target size of a batch: a batch leaves before a record would take it past this.
    pub batch_size_bytes: usize,
    /// How long a batch may wait for more records before it leaves.
    pub linger: Duration,
    /// Produce requests outstanding per connection, in `1..=IN_FLIGHT_MAX_LIMIT`.
    pub in_flight_max: usize,
}

impl Default for ProducerOptions {
    fn default() -> ProducerOptions {
        ProducerOptions {
            acks: Acks::All,
            batch_size_bytes: BATCH_SIZE_BYTES_DEFAULT,
            linger: Duration::from_millis(5),
            in_flight_max: IN_FLIGHT_MAX_DEFAULT,
        }
    }
}

/// One record to send. Header keys are never null; keys, values and header values may be.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProducerRecord<'a> {
    /// The key, `None` for null.
    pub key: Option<&'a [u8]>,
    /// The value, `None` for null.
    pub value: Option<&'a [u8]>,
    /// Headers, in order.
    pub headers: &'a [(&'a [u8], Option<&'a [u8]>)],
    /// Create time (ms since the Unix epoch).
    pub timestamp_ms: i64,
}

impl ProducerRecord<'_> {
    /// Upper bound of the bytes this record adds to a batch.
    fn size_bytes_max(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(key, value)| {
                HEADER_OVERHEAD_BYTES_MAX + key.len() + value.map_or(0, <[u8]>::len)
            })
            .sum();
        RECORD_OVERHEAD_BYTES_MAX
            + self.key.map_or(0, <[u8]>::len)
            + self.value.map_or(0, <[u8]>::len)
            + headers
    }
}

/// The current time in ms since the Unix epoch, for record timestamps.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Why a batch failed, kept in a form every receipt of the batch can turn into an [`Error`].
#[derive(Clone, Debug)]
enum Failure {
    Broker {
        code_raw: i16,
        topic: String,
        partition: i32,
    },
    ConnectionLost {
        address: String,
        reason: String,
    },
}

impl Failure {
    fn to_error(&self) -> Error {
        match self {
            Failure::Broker {
                code_raw,
                topic,
                partition,
            } => Error::broker(*code_raw, topic, *partition),
            Failure::ConnectionLost { address, reason } => Error::ConnectionLost {
                address: address.clone(),
                reason: reason.clone(),
            },
        }
    }
}

/// Where a batch is: gathering records, sent, or answered (`Ok(None)` with acks = 0).
#[derive(Clone, Debug)]
enum SlotState {
    Open,
    Sent,
    Done(std::result::Result<Option<i64>, Failure>),
}

/// A condition variable that makes the futex wake-up system call only when a thread waits
/// on it: std's `Condvar::notify_all` always makes it, which cost a pipelining producer
/// about four system calls per request (batch sent, batch answered, pipeline changed twice).
///
/// The count is exact because a waiter adds itself while holding the mutex of the condition
/// it waits for, and a notifier changes that condition while holding the same mutex before
/// it looks at the count: either the waiter saw the change and does not wait, or the
/// notifier sees the waiter.
#[derive(Debug, Default)]
struct Signal {
    condvar: Condvar,
    waiters: AtomicUsize,
}

impl Signal {
    /// Waits on `guard`'s mutex for a notification (or a spurious wake-up).
    fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let guard = self
            .condvar
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        guard
    }

    /// Wakes every waiter, if there is one. Call it after changing the condition under its
    /// mutex.
    fn notify_all(&self) {
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.condvar.notify_all();
        }
    }
}

/// The shared fate of one batch, which every receipt of its records points to.
#[derive(Debug)]
struct Slot {
    state: Mutex<SlotState>,
    changed: Signal,
    /// Set (under `state`'s lock) once `state` is `Done`, so that polling a receipt takes
    /// no lock.
    done: AtomicBool,
}

impl Slot {
    fn new() -> Arc<Slot> {
        Arc::new(Slot {
            state: Mutex::new(SlotState::Open),
            changed: Signal::default(),
            done: AtomicBool::new(false),
        })
    }

    fn set(&self, state: SlotState) {
        let mut guard = lock(&self.state);
        assert!(
            !matches!(*guard, SlotState::Done(_)),
            "a batch is resolved once"
        );
        let done = matches!(state, SlotState::Done(_));
        *guard = state;
        self.done.store(done, Ordering::Release);
        self.changed.notify_all();
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section here leaves its state whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The promise of one record's offset. [`Receipt::wait`] blocks until the broker answered
/// (sending the record's batch first if it has not left yet).
#[derive(Debug)]
pub struct Receipt {
    slot: Arc<Slot>,
    index: u64,
    producer: Weak<Shared>,
}

impl Receipt {
    /// The record's offset: `Some(offset)` once the broker acknowledged it, `None` with
    /// acks = 0 (no answer, so no offset). Broker and connection errors of the record's batch
    /// are returned as [`Error::Broker`] and [`Error::ConnectionLost`].
    pub fn wait(&self) -> Result<Option<Offset>> {
        if matches!(*lock(&self.slot.state), SlotState::Open) {
            if let Some(shared) = self.producer.upgrade() {
                shared.send_open_batches(|_| true)?;
            }
        }
        let mut state = lock(&self.slot.state);
        loop {
            match &*state {
                SlotState::Done(Ok(base_offset)) => {
                    let base_offset = base_offset.and_then(|offset| u64::try_from(offset).ok());
                    return Ok(base_offset.map(|base| Offset(base).add_count(self.index)));
                }
                SlotState::Done(Err(failure)) => return Err(failure.to_error()),
                SlotState::Open | SlotState::Sent => state = self.slot.changed.wait(state),
            }
        }
    }

    /// Whether the broker's answer (or the failure) is in, so [`Receipt::wait`] will not block.
    pub fn is_done(&self) -> bool {
        self.slot.done.load(Ordering::Acquire)
    }
}

/// A batch gathering records for one partition.
#[derive(Debug)]
struct OpenBatch {
    builder: BatchBuilder,
    slot: Arc<Slot>,
    opened_at: Instant,
}

/// A request waiting for its response.
#[derive(Debug)]
struct InFlight {
    correlation_id: i32,
    topic: String,
    partition: i32,
    slot: Arc<Slot>,
}

/// The requests outstanding on one connection.
#[derive(Debug, Default)]
struct PipelineState {
    waiting: VecDeque<InFlight>,
    failure: Option<Failure>,
    closed: bool,
    /// Most requests ever outstanding at once (for tests and the bench).
    waiting_count_max: usize,
}

#[derive(Debug)]
struct Pipeline {
    state: Mutex<PipelineState>,
    changed: Signal,
    in_flight_max: usize,
}

impl Pipeline {
    /// Fails every waiting request with `failure` and refuses new ones.
    fn fail(&self, failure: Failure) {
        let mut state = lock(&self.state);
        for in_flight in state.waiting.drain(..) {
            in_flight.slot.set(SlotState::Done(Err(failure.clone())));
        }
        state.failure.get_or_insert(failure);
        self.changed.notify_all();
    }
}

/// The producer's connection to one broker.
#[derive(Debug)]
struct BrokerLink {
    writer: FrameWriter,
    version: i16,
    pipeline: Arc<Pipeline>,
}

#[derive(Debug)]
struct ProducerState {
    /// Open batches by topic, then partition: found by `&str` without allocating a key.
    /// A topic's entry stays when its batches leave, so the next batch allocates no name.
    open: BTreeMap<String, BTreeMap<i32, OpenBatch>>,
    links: BTreeMap<i32, BrokerLink>,
    /// The builder of the last batch sent, emptied and kept for the next one, so that a
    /// batch's records do not grow a new allocation from nothing each time.
    spare_builder: Option<BatchBuilder>,
}

#[derive(Debug)]
struct Shared {
    options: ProducerOptions,
    settings: ConnectionSettings,
    metadata: ClusterMetadata,
    state: Mutex<ProducerState>,
}

/// Sends records to partition leaders in batches, pipelining requests. Cheap to clone; all
/// clones share the batches and connections, and may be used from several threads.
#[derive(Clone, Debug)]
pub struct Producer {
    shared: Arc<Shared>,
}

impl Producer {
    /// A producer routing by `client`'s current metadata (refresh it after creating topics).
    ///
    /// Panics if `options.in_flight_max` is 0 or above [`IN_FLIGHT_MAX_LIMIT`], or
    /// `options.batch_size_bytes` is 0: those are the caller's bugs.
    pub fn new(client: &Client, options: ProducerOptions) -> Producer {
        assert!(
            (1..=IN_FLIGHT_MAX_LIMIT).contains(&options.in_flight_max),
            "in_flight_max={}",
            options.in_flight_max
        );
        assert!(options.batch_size_bytes > 0, "batch_size_bytes=0");
        let linger = options.linger;
        let shared = Arc::new(Shared {
            options,
            settings: client.settings().clone(),
            metadata: client.metadata().clone(),
            state: Mutex::new(ProducerState {
                open: BTreeMap::new(),
                links: BTreeMap::new(),
                spare_builder: None,
            }),
        });
        spawn_linger_thread(Arc::downgrade(&shared), linger);
        Producer { shared }
    }

    /// Adds `record` to the batch of `topic[partition]` and returns its receipt. Blocks when
    /// a batch must leave and its connection already has `in_flight_max` requests out.
    /// Errors: the partition has no known leader, the connection cannot be opened, or it
    /// failed earlier.
    pub fn send(
        &self,
        topic: &str,
        partition: i32,
        record: &ProducerRecord<'_>,
    ) -> Result<Receipt> {
        let shared = &self.shared;
        let mut state = lock(&shared.state);
        let open = state
            .open
            .get(topic)
            .and_then(|batches| batches.get(&partition));
        let full = open.is_some_and(|batch| {
            batch.builder.record_count() > 0
                && batch.builder.size_bytes() + record.size_bytes_max()
                    > shared.options.batch_size_bytes
        });
        let has_batch = open.is_some() && !full;
        if full {
            shared.dispatch(&mut state, topic, partition)?;
        }
        if !has_batch {
            // The metadata never changes under a producer: an open batch already passed this.
            shared.metadata.leader(topic, partition)?;
        }
        let spare_builder = if has_batch {
            None
        } else {
            state.spare_builder.take()
        };
        let batches = match state.open.get_mut(topic) {
            Some(batches) => batches,
            None => state.open.entry(topic.to_owned()).or_default(),
        };
        let batch = batches.entry(partition).or_insert_with(|| {
            let builder = match spare_builder {
                Some(mut builder) => {
                    builder.reset(record.timestamp_ms);
                    builder
                }
                None => BatchBuilder::new(record.timestamp_ms),
            };
            OpenBatch {
                builder,
                slot: Slot::new(),
                opened_at: Instant::now(),
            }
        });
        batch.builder.push(
            record.timestamp_ms,
            record.key,
            record.value,
            record.headers,
        );
        let index = u64::try_from(batch.builder.record_count() - 1).unwrap_or(u64::MAX);
        let receipt = Receipt {
            slot: Arc::clone(&batch.slot),
            index,
            producer: Arc::downgrade(shared),
        };
        if batch.builder.size_bytes() >= shared.options.batch_size_bytes {
            shared.dispatch(&mut state, topic, partition)?;
        }
        Ok(receipt)
    }

    /// Sends every batch that has waited `linger`. The background thread does this too;
    /// calling it saves a caller that just paused the wait.
    pub fn poll(&self) -> Result<()> {
        let linger = self.shared.options.linger;
        self.shared
            .send_open_batches(|batch| batch.opened_at.elapsed() >= linger)
    }

    /// Sends every open batch and waits until every request sent so far is answered (or its
    /// connection failed). Returns the first connection failure; broker errors are reported
    /// by the receipts.
    pub fn flush(&self) -> Result<()> {
        self.shared.send_open_batches(|_| true)?;
        let pipelines: Vec<Arc<Pipeline>> = lock(&self.shared.state)
            .links
            .values()
            .map(|link| Arc::clone(&link.pipeline))
            .collect();
        for pipeline in pipelines {
            let mut state = lock(&pipeline.state);
            while !state.waiting.is_empty() {
                state = pipeline.changed.wait(state);
            }
            if let Some(failure) = &state.failure {
                return Err(failure.to_error());
            }
        }
        Ok(())
    }

    /// The most Produce requests that were ever outstanding at once on one connection.
    pub fn in_flight_count_max(&self) -> usize {
        lock(&self.shared.state)
            .links
            .values()
            .map(|link| lock(&link.pipeline.state).waiting_count_max)
            .max()
            .unwrap_or(0)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Let the reader threads exit once their requests are answered.
        let state = lock(&self.state);
        for link in state.links.values() {
            lock(&link.pipeline.state).closed = true;
            link.pipeline.changed.notify_all();
        }
    }
}

/// Checks for lingering batches every `linger` until the producer is gone.
fn spawn_linger_thread(shared: Weak<Shared>, linger: Duration) {
    let period = linger.max(Duration::from_millis(1));
    thread::spawn(move || loop {
        thread::park_timeout(period);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // A failure is recorded in the batch's receipts; nobody here could act on it.
        let _ = shared.send_open_batches(|batch| batch.opened_at.elapsed() >= linger);
    });
}

impl Shared {
    /// Sends every open batch that `pick` selects.
    fn send_open_batches(&self, pick: impl Fn(&OpenBatch) -> bool) -> Result<()> {
        let mut state = lock(&self.state);
        let keys: Vec<(String, i32)> = state
            .open
            .iter()
            .flat_map(|(topic, batches)| {
                batches
                    .iter()
                    .filter(|(_, batch)| pick(batch))
                    .map(|(partition, _)| (topic.clone(), *partition))
            })
            .collect();
        let mut first_error = None;
        for (topic, partition) in keys {
            if let Err(error) = self.dispatch(&mut state, &topic, partition) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Takes the open batch of `topic[partition]` and sends it as one Produce request. On
    /// failure the batch's receipts carry the error too.
    fn dispatch(&self, state: &mut ProducerState, topic: &str, partition: i32) -> Result<()> {
        let batch = state
            .open
            .get_mut(topic)
            .and_then(|batches| batches.remove(&partition));
        let Some(batch) = batch else {
            return Ok(());
        };
        let result = self.dispatch_batch(state, topic, partition, &batch);
        if let Err(error) = &result {
            let failure = match error {
                Error::Broker { code_raw, .. } => Failure::Broker {
                    code_raw: *code_raw,
                    topic: topic.to_owned(),
                    partition,
                },
                other => Failure::ConnectionLost {
                    address: String::new(),
                    reason: other.to_string(),
                },
            };
            let mut slot = lock(&batch.slot.state);
            if !matches!(*slot, SlotState::Done(_)) {
                *slot = SlotState::Done(Err(failure));
                batch.slot.done.store(true, Ordering::Release);
                batch.slot.changed.notify_all();
            }
        }
        state.spare_builder = Some(batch.builder);
        result
    }

    fn dispatch_batch(
        &self,
        state: &mut ProducerState,
        topic: &str,
        partition: i32,
        batch: &OpenBatch,
    ) -> Result<()> {
        let leader_id = self.metadata.leader(topic, partition)?.node_id;
        let link = self.link(state, leader_id)?;
        let request = produce_request(
            topic,
            partition,
            Bytes::from(batch.builder.build()),
            &self.options,
            self.settings.request_timeout,
        );
        let mut pipeline = lock(&link.pipeline.state);
        while pipeline.waiting.len() >= link.pipeline.in_flight_max && pipeline.failure.is_none() {
            pipeline = link.pipeline.changed.wait(pipeline);
        }
        if let Some(failure) = &pipeline.failure {
            return Err(failure.to_error());
        }
        if self.options.acks == Acks::None {
            drop(pipeline);
            link.writer.send(&request, link.version)?;
            batch.slot.set(SlotState::Done(Ok(None)));
            return Ok(());
        }
        // The entry goes in before the request leaves, so the reader thread always finds it.
        let correlation_id = link.writer.correlation_id_next();
        pipeline.waiting.push_back(InFlight {
            correlation_id,
            topic: topic.to_owned(),
            partition,
            slot: Arc::clone(&batch.slot),
        });
        let waiting_count = pipeline.waiting.len();
        assert!(
            waiting_count <= link.pipeline.in_flight_max,
            "waiting={waiting_count} in_flight_max={}",
            link.pipeline.in_flight_max
        );
        pipeline.waiting_count_max = pipeline.waiting_count_max.max(waiting_count);
        batch.slot.set(SlotState::Sent);
        link.pipeline.changed.notify_all();
        drop(pipeline);
        if let Err(error) = link.writer.send(&request, link.version) {
            link.pipeline.fail(Failure::ConnectionLost {
                address: link.writer.address().to_owned(),
                reason: error.to_string(),
            });
            link.writer.shutdown();
            return Err(error);
        }
        Ok(())
    }

    /// The connection to broker `node_id`, opened (with its reader thread) on first use, and
    /// opened again if it failed.
    fn link<'a>(&self, state: &'a mut ProducerState, node_id: i32) -> Result<&'a mut BrokerLink> {
        let failed = state
            .links
            .get(&node_id)
            .is_some_and(|link| lock(&link.pipeline.state).failure.is_some());
        if failed {
            state.links.remove(&node_id);
        }
        let link = match state.links.entry(node_id) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(self.open_link(node_id)?),
        };
        Ok(link)
    }

    /// Opens the connection to broker `node_id` and starts its reader thread.
    fn open_link(&self, node_id: i32) -> Result<BrokerLink> {
        let broker = self.metadata.brokers.get(&node_id).ok_or(Error::NoLeader {
            topic: String::new(),
            partition: -1,
        })?;
        let (connection, versions) =
            crate::client::open_negotiated(&broker.address(), &self.settings)?;
        let pipeline = Arc::new(Pipeline {
            state: Mutex::new(PipelineState::default()),
            changed: Signal::default(),
            in_flight_max: self.options.in_flight_max,
        });
        let version = versions.get(ApiKey::Produce);
        spawn_reader_thread(connection.reader, Arc::clone(&pipeline), version);
        Ok(BrokerLink {
            writer: connection.writer,
            version,
            pipeline,
        })
    }
}

/// A Produce request carrying one batch for `topic[partition]`.
fn produce_request(
    topic: &str,
    partition: i32,
    records: Bytes,
    options: &ProducerOptions,
    request_timeout: Duration,
) -> ProduceRequest {
    let mut partition_data = PartitionProduceData::default();
    partition_data.index = partition;
    partition_data.records = Some(records);
    let mut topic_data = TopicProduceData::default();
    topic_data.name = topic_name(topic);
    topic_data.partition_data = vec![partition_data];
    let mut request = ProduceRequest::default();
    request.transactional_id = None;
    request.acks = options.acks.code();
    request.timeout_ms = timeout_ms(request_timeout);
    request.topic_data = vec![topic_data];
    request
}

/// Reads the responses of one connection in order and resolves their batches, until the
/// connection fails or the producer is gone and nothing is outstanding.
fn spawn_reader_thread(mut reader: FrameReader, pipeline: Arc<Pipeline>, version: i16) {
    thread::spawn(move || loop {
        let correlation_id = {
            let mut state = lock(&pipeline.state);
            while state.waiting.is_empty() && !state.closed && state.failure.is_none() {
                state = pipeline.changed.wait(state);
            }
            match state.waiting.front() {
                Some(front) if state.failure.is_none() => front.correlation_id,
                _ => return,
            }
        };
        let address = reader.address().to_owned();
        match reader.receive::<ProduceRequest>(correlation_id, version) {
            Ok(response) => {
                let mut state = lock(&pipeline.state);
                if let Some(in_flight) = state.waiting.pop_front() {
                    in_flight
                        .slot
                        .set(SlotState::Done(outcome(&response, &in_flight)));
                }
                pipeline.changed.notify_all();
            }
            Err(error) => {
                pipeline.fail(Failure::ConnectionLost {
                    address,
                    reason: error.to_string(),
                });
                return;
            }
        }
    });
}

/// The fate of `in_flight`'s batch according to `response`.
fn outcome(
    response: &ProduceResponse,
    in_flight: &InFlight,
) -> std::result::Result<Option<i64>, Failure> {
    let answer = response
        .responses
        .iter()
        .filter(|topic| topic.name.0.as_str() == in_flight.topic)
        .flat_map(|topic| topic.partition_responses.iter())
        .find(|partition| partition.index == in_flight.partition);
    let Some(answer) = answer else {
        return Err(Failure::Broker {
            code_raw: ringlog_kafka::ErrorCode::UnknownServerError.code(),
            topic: in_flight.topic.clone(),
            partition: in_flight.partition,
        });
    };
    if answer.error_code != 0 {
        return Err(Failure::Broker {
            code_raw: answer.error_code,
            topic: in_flight.topic.clone(),
            partition: in_flight.partition,
        });
    }
    Ok(Some(answer.base_offset))
}
