//! The Kafka APIs a shard serves: requests in, responses (or parked requests) out.
//!
//! Produce appends each partition's batches at once (validation and the one copy into the
//! tail happen in `Wal::append`) and parks the request until the durable ends cover them;
//! Fetch answers at once when it has `min_bytes` (or an error, or no wait), and otherwise
//! parks until data arrives or `max_wait_ms` passes. Everything else is answered at once.
//! See `docs/server.md#apis` for the rules of each.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ringlog_kafka::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use ringlog_kafka::messages::{ProduceRequest, ProduceResponse, TopicName};
use ringlog_kafka::{
    api_versions_response, encode_response, find_coordinator_error_response, ApiKey, ErrorCode,
    Request, RequestHeader, Response,
};
use ringlog_types::Offset;
use ringlog_wal::PartitionHandle;

use crate::connection::ConnRef;
use crate::forward::{AnswerTo, Body};
use crate::replica::Replica;
use crate::shard::Shard;

/// Bytes of batches a shard keeps parked (waiting out `Error::Backpressure`) at most; a
/// part that would go beyond is answered REQUEST_TIMED_OUT at once.
pub(crate) const PARKED_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A Produce (or a part of one) waiting for its batches to become durable, and for its
/// parked partitions (see [`ParkedProduces`]) to be appended.
pub(crate) struct PendingProduce {
    id: u64,
    to: AnswerTo,
    response: ProduceResponse,
    waits: Vec<DurableWait>,
    started: Instant,
    /// Partitions still in the parked queue.
    parked: usize,
    /// acks=0: dropped without an answer once nothing is parked.
    silent: bool,
    /// The request's acks (-1: the topic's ack mode).
    acks: i16,
    /// The request's deadline (`timeout_ms` after it arrived).
    deadline: Instant,
}

/// One partition of a Produce whose append met `Error::Backpressure`: the batches not yet
/// appended (slices of the request frame), retried in arrival order.
struct ParkedPart {
    produce: u64,
    handle: PartitionHandle,
    batches: VecDeque<Bytes>,
    /// The base offset of the first batch, if some were appended before the log pushed back.
    first: Option<Offset>,
    topic_index: usize,
    partition_index: usize,
    deadline: Instant,
    size: usize,
}

/// The shard's queue of parked Produce partitions: FIFO, bounded by
/// [`PARKED_BYTES_MAX`]; a partition with a parked part has every later part queued
/// behind it, so no batch overtakes an earlier one of its partition.
#[derive(Default)]
pub(crate) struct ParkedProduces {
    queue: VecDeque<ParkedPart>,
    bytes: usize,
    per_partition: HashMap<PartitionHandle, usize>,
    next_id: u64,
}

impl ParkedProduces {
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The earliest deadline of a parked part.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.queue.iter().map(|part| part.deadline).min()
    }

    fn blocked(&self, handle: PartitionHandle) -> bool {
        self.per_partition.contains_key(&handle)
    }

    fn push(&mut self, part: ParkedPart) {
        self.bytes += part.size;
        *self.per_partition.entry(part.handle).or_default() += 1;
        self.queue.push_back(part);
    }

    fn forget(&mut self, part: &ParkedPart) {
        self.bytes -= part.size;
        if let Some(count) = self.per_partition.get_mut(&part.handle) {
            *count -= 1;
            if *count == 0 {
                self.per_partition.remove(&part.handle);
            }
        }
    }
}

/// What appending one partition's record set came to.
enum Appended {
    Done(PartitionHandle, Offset, Offset, Offset),
    /// The log pushed back: these batches (and maybe the first offset) wait in the queue.
    Parked(PartitionHandle, Option<Offset>, VecDeque<Bytes>),
}

/// One partition of a pending Produce: durable once the durable end reaches `next_offset`.
struct DurableWait {
    handle: PartitionHandle,
    next_offset: Offset,
    topic_index: usize,
    partition_index: usize,
    /// The ack id of an `acks=-1` wait on a replicated partition: its `Leader` decides.
    ack: Option<u64>,
}

/// A Fetch (or a part of one) waiting for data (long poll).
pub(crate) struct ParkedFetch {
    pub to: AnswerTo,
    pub request: ringlog_kafka::messages::FetchRequest,
    pub deadline: Instant,
    pub started: Instant,
}

impl Shard {
    /// Serves one decoded request.
    pub(crate) fn dispatch(
        &mut self,
        target: ConnRef,
        header: RequestHeader,
        request: Request,
        started: Instant,
    ) {
        let sequence = if request.expects_response() {
            match self.connection_mut(target) {
                Some(connection) => connection.reserve(),
                None => return,
            }
        } else {
            u64::MAX
        };
        let response = match request {
            Request::ApiVersions(_) => {
                Response::ApiVersions(api_versions_response(ErrorCode::None))
            }
            Request::Metadata(request) => {
                let to = client(target, sequence, header);
                self.serve_metadata(to, request, started);
                return;
            }
            Request::Produce(request) => {
                let to = client(target, sequence, header);
                self.route_produce(to, request, started);
                return;
            }
            Request::Fetch(request) => {
                let to = client(target, sequence, header);
                self.route_fetch(to, request, started);
                return;
            }
            Request::ListOffsets(request) => {
                let version = header.api_version;
                let to = client(target, sequence, header);
                self.route_list_offsets(to, request, version, started);
                return;
            }
            Request::CreateTopics(request) => {
                let to = client(target, sequence, header);
                self.serve_create_topics(to, &request, started);
                return;
            }
            Request::DeleteTopics(request) => {
                let to = client(target, sequence, header);
                self.serve_delete_topics(to, &request, started);
                return;
            }
            // No consumer groups or transactions yet: no coordinator to point at.
            Request::FindCoordinator(request) => {
                Response::FindCoordinator(find_coordinator_error_response(
                    &request,
                    header.api_version,
                    ErrorCode::CoordinatorNotAvailable,
                ))
            }
        };
        self.reply(target, sequence, &header, &response, started);
    }

    /// Encodes `response` into its slot and counts the request.
    pub(crate) fn reply(
        &mut self,
        target: ConnRef,
        sequence: u64,
        header: &RequestHeader,
        response: &Response,
        started: Instant,
    ) {
        let mut out = BytesMut::new();
        if let Err(error) = encode_response(&mut out, header, response) {
            tracing::error!(%error, api = header.api_key.name(), "cannot encode a response");
            self.close(target, "response could not be encoded");
            return;
        }
        self.metrics.request_done(header.api_key, started.elapsed());
        self.respond(target, sequence, vec![out.freeze()]);
    }

    /// Appends a Produce (or a part of one) whose partitions this shard serves, and parks
    /// it until they are durable (acks=0: nothing is answered). A partition the log pushes
    /// back on (`Error::Backpressure`) waits in the parked queue.
    pub(crate) fn produce(&mut self, to: AnswerTo, request: &ProduceRequest, started: Instant) {
        let id = self.parked.next_id;
        self.parked.next_id += 1;
        let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
        let deadline = started + timeout;
        let mut response = ProduceResponse::default();
        let mut waits = Vec::new();
        let mut parked = 0;
        for (topic_index, topic) in request.topic_data.iter().enumerate() {
            let mut answers = Vec::with_capacity(topic.partition_data.len());
            for (partition_index, partition) in topic.partition_data.iter().enumerate() {
                let outcome = if matches!(request.acks, -1..=1) {
                    self.append_records(
                        &topic.name,
                        partition.index,
                        partition.records.as_ref(),
                        request.acks,
                    )
                } else {
                    Err(ErrorCode::InvalidRequiredAcks)
                };
                let answer = PartitionProduceResponse::default().with_index(partition.index);
                let answer = match outcome {
                    Ok(Appended::Done(handle, base_offset, next_offset, log_start)) => {
                        let ack = if request.acks == -1 {
                            self.wait_replicated(handle, next_offset, deadline)
                        } else {
                            None
                        };
                        waits.push(DurableWait {
                            handle,
                            next_offset,
                            topic_index,
                            partition_index,
                            ack,
                        });
                        answer
                            .with_base_offset(offset_i64(base_offset))
                            .with_log_start_offset(offset_i64(log_start))
                    }
                    Ok(Appended::Parked(handle, first, batches)) => {
                        let size = batches.iter().map(Bytes::len).sum::<usize>();
                        if self.parked.bytes + size > PARKED_BYTES_MAX {
                            self.metrics.error(ErrorCode::RequestTimedOut);
                            answer
                                .with_error_code(ErrorCode::RequestTimedOut.code())
                                .with_base_offset(-1)
                        } else {
                            self.parked.push(ParkedPart {
                                produce: id,
                                handle,
                                batches,
                                first,
                                topic_index,
                                partition_index,
                                deadline,
                                size,
                            });
                            parked += 1;
                            answer.with_base_offset(-1)
                        }
                    }
                    Err(code) => {
                        self.metrics.error(code);
                        answer.with_error_code(code.code()).with_base_offset(-1)
                    }
                };
                answers.push(answer);
            }
            response.responses.push(
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_partition_responses(answers),
            );
        }
        let silent = request.acks == 0;
        if silent {
            if let AnswerTo::Client { .. } = to {
                self.metrics
                    .request_done(ApiKey::Produce, started.elapsed());
            }
            if parked == 0 {
                return;
            }
            waits.clear();
        }
        self.produces.push(PendingProduce {
            id,
            to,
            response,
            waits,
            started,
            parked,
            silent,
            acks: request.acks,
            deadline,
        });
    }

    /// Validates and appends one partition's record set (one or more whole batches).
    /// Returns the handle, the first batch's base offset, the offset after the last batch
    /// and the log start, or the batches left to append if the log pushed back, or the
    /// error code for the partition.
    fn append_records(
        &mut self,
        topic: &TopicName,
        partition: i32,
        records: Option<&Bytes>,
        acks: i16,
    ) -> Result<Appended, ErrorCode> {
        let state = self
            .partitions
            .get_mut(topic, partition)
            .ok_or(ErrorCode::UnknownTopicOrPartition)?;
        let handle = state.handle;
        let refused = match &mut state.replica {
            Replica::Follower(_) => Some(ErrorCode::NotLeaderOrFollower),
            Replica::Leader(leader) if acks == -1 => leader
                .check_produce()
                .err()
                .map(|_| ErrorCode::NotEnoughReplicas),
            _ => None,
        };
        if let Some(code) = refused {
            if code == ErrorCode::NotEnoughReplicas {
                self.metrics.replication.not_enough_replicas.inc();
            }
            return Err(code);
        }
        let records = records.filter(|records| !records.is_empty());
        let records = records.ok_or(ErrorCode::CorruptMessage)?;
        // Validate every batch before appending any, so a bad batch leaves nothing behind.
        // A record set of one batch (what producers send) that goes to the log at once is
        // validated by `Wal::append` alone, which refuses it before staging anything and
        // before it can push back: its CRC32C is computed once. A parked batch is validated
        // here, so that it fails now rather than when it is retried.
        let blocked = self.parked.blocked(handle);
        let mut batches = VecDeque::new();
        let mut start = 0;
        while start < records.len() {
            let rest = &records[start..];
            let size = match ringlog_batch::peek_size_bytes(rest) {
                Ok(Some(size)) if size <= rest.len() => size,
                Ok(_) => return Err(ErrorCode::CorruptMessage),
                Err(error) => return Err(ErrorCode::from(&error)),
            };
            let batch_max = usize::try_from(self.config.batch_size_bytes_max).unwrap_or(usize::MAX);
            if size > batch_max {
                return Err(ErrorCode::MessageTooLarge);
            }
            let only_batch = start == 0 && size == records.len();
            if blocked || !only_batch {
                ringlog_batch::validate(&rest[..size]).map_err(|error| ErrorCode::from(&error))?;
            }
            batches.push_back(records.slice(start..start + size));
            start += size;
        }
        if blocked {
            // An earlier part of this partition is parked: queue behind it.
            return Ok(Appended::Parked(handle, None, batches));
        }
        self.append_batches(handle, None, batches)
    }

    /// Appends `batches` in order until done or the log pushes back.
    fn append_batches(
        &mut self,
        handle: PartitionHandle,
        mut first: Option<Offset>,
        mut batches: VecDeque<Bytes>,
    ) -> Result<Appended, ErrorCode> {
        let mut next = Offset(0);
        let epoch = self.config.leader_epoch();
        while let Some(batch) = batches.front() {
            let info = match self.wal.append(handle, batch, epoch) {
                Ok(info) => info,
                Err(ringlog_wal::Error::Backpressure { .. }) => {
                    if first.is_some() && self.config.cluster.is_some() {
                        self.replica_ends_moved(handle);
                    }
                    return Ok(Appended::Parked(handle, first, batches));
                }
                Err(error) => return Err(wal_error_code(&error)),
            };
            batches.pop_front();
            first.get_or_insert(info.base_offset);
            next = info.next_offset;
        }
        if self.config.cluster.is_some() {
            self.replica_ends_moved(handle);
        }
        let log_start = self
            .wal
            .ends(handle)
            .map_or(Offset(0), |ends| ends.log_start);
        let first = first.ok_or(ErrorCode::CorruptMessage)?;
        Ok(Appended::Done(handle, first, next, log_start))
    }

    /// Retries the parked partitions in arrival order (after the log reaped completions),
    /// and answers REQUEST_TIMED_OUT for those past their request's `timeout_ms`.
    pub(crate) fn retry_parked(&mut self, now: Instant) {
        if self.parked.is_empty() {
            return;
        }
        let mut queue = std::mem::take(&mut self.parked.queue);
        let mut kept = VecDeque::with_capacity(queue.len());
        // Partitions whose earlier part is still parked (or just timed out) in this pass.
        let mut stuck: HashMap<PartitionHandle, bool> = HashMap::new();
        let mut pushed_back = false;
        while let Some(mut part) = queue.pop_front() {
            let timed_out = part.deadline <= now || stuck.get(&part.handle) == Some(&true);
            if timed_out {
                stuck.insert(part.handle, true);
                self.parked.forget(&part);
                self.finish_parked(&part, Err(ErrorCode::RequestTimedOut));
                continue;
            }
            if pushed_back || stuck.contains_key(&part.handle) {
                kept.push_back(part);
                continue;
            }
            let batches = std::mem::take(&mut part.batches);
            match self.append_batches(part.handle, part.first, batches) {
                Ok(Appended::Parked(_, first, batches)) => {
                    // The log is out of room: nothing later gets in either.
                    let size = batches.iter().map(Bytes::len).sum::<usize>();
                    self.parked.bytes -= part.size - size;
                    part.size = size;
                    part.first = first;
                    part.batches = batches;
                    pushed_back = true;
                    stuck.insert(part.handle, false);
                    kept.push_back(part);
                }
                outcome => {
                    self.parked.forget(&part);
                    let outcome = outcome.map(|appended| match appended {
                        Appended::Done(_, first, next, log_start) => (first, next, log_start),
                        Appended::Parked(..) => unreachable!("handled above"),
                    });
                    if outcome.is_err() {
                        stuck.insert(part.handle, true);
                    }
                    self.finish_parked(&part, outcome);
                }
            }
        }
        self.parked.queue = kept;
    }

    /// Records the outcome of a parked partition in its pending Produce.
    fn finish_parked(
        &mut self,
        part: &ParkedPart,
        outcome: Result<(Offset, Offset, Offset), ErrorCode>,
    ) {
        let Some(pending) = self.produces.iter_mut().find(|p| p.id == part.produce) else {
            return;
        };
        pending.parked -= 1;
        let answer = &mut pending.response.responses[part.topic_index].partition_responses
            [part.partition_index];
        match outcome {
            Ok((first, next, log_start)) => {
                answer.base_offset = offset_i64(first);
                answer.log_start_offset = offset_i64(log_start);
                if !pending.silent {
                    let (acks, deadline) = (pending.acks, pending.deadline);
                    let ack = if acks == -1 {
                        self.wait_replicated(part.handle, next, deadline)
                    } else {
                        None
                    };
                    let Some(pending) = self.produces.iter_mut().find(|p| p.id == part.produce)
                    else {
                        return;
                    };
                    pending.waits.push(DurableWait {
                        handle: part.handle,
                        next_offset: next,
                        topic_index: part.topic_index,
                        partition_index: part.partition_index,
                        ack,
                    });
                }
            }
            Err(code) => {
                self.metrics.error(code);
                answer.error_code = code.code();
                answer.base_offset = -1;
            }
        }
    }

    /// Drains the log's durable events into the gauges; true if any end moved.
    pub(crate) fn on_durable(&mut self) -> bool {
        let events: Vec<(PartitionHandle, Offset)> = self.wal.drain_durable_events().collect();
        for (handle, _) in &events {
            if self.config.cluster.is_some() {
                self.replica_ends_moved(*handle);
            }
            self.partitions.publish(&self.wal, *handle);
        }
        let count = events.len() as u64;
        self.metrics
            .commits
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        !events.is_empty()
    }

    /// Answers every pending Produce whose partitions are all durable (or fenced).
    pub(crate) fn answer_produces(&mut self) {
        let mut index = 0;
        while index < self.produces.len() {
            if self.produces[index].parked > 0 {
                index += 1;
                continue;
            }
            if self.produces[index].silent {
                self.produces.swap_remove(index);
                continue;
            }
            let ready = self.produces[index].waits.iter().all(|wait| {
                let done = match wait.ack {
                    Some(id) => self.replication.outcome(id).is_some(),
                    None => self
                        .wal
                        .ends(wait.handle)
                        .is_ok_and(|ends| ends.durable_end >= wait.next_offset),
                };
                done || !matches!(self.wal.poisoned(wait.handle), Ok(None))
            });
            if !ready {
                index += 1;
                continue;
            }
            let mut pending = self.produces.swap_remove(index);
            for wait in &pending.waits {
                if let Some(id) = wait.ack {
                    let outcome = self.replication.outcome(id);
                    self.replication.forget(id);
                    let code = self.ack_outcome_code(outcome, wait.handle);
                    if code != ErrorCode::None {
                        self.metrics.error(code);
                        let answer = &mut pending.response.responses[wait.topic_index]
                            .partition_responses[wait.partition_index];
                        answer.error_code = code.code();
                        answer.base_offset = -1;
                    }
                    continue;
                }
                let durable = self
                    .wal
                    .ends(wait.handle)
                    .is_ok_and(|ends| ends.durable_end >= wait.next_offset);
                if !durable {
                    // The commit failed: the partition is fenced and the batch not acked.
                    self.partitions.publish(&self.wal, wait.handle);
                    self.metrics.error(ErrorCode::KafkaStorageError);
                    let answer = &mut pending.response.responses[wait.topic_index]
                        .partition_responses[wait.partition_index];
                    answer.error_code = ErrorCode::KafkaStorageError.code();
                    answer.base_offset = -1;
                }
            }
            let latency = pending.started.elapsed();
            self.metrics.produce_durable_latency.observe(latency);
            match pending.to {
                AnswerTo::Client {
                    connection,
                    sequence,
                    header,
                } => {
                    let response = Response::Produce(pending.response);
                    self.reply(connection, sequence, &header, &response, pending.started);
                }
                AnswerTo::Part {
                    origin,
                    split,
                    part,
                } => self.answer_part(origin, split, part, Body::Produced(pending.response)),
            }
        }
    }
}

impl Shard {
    /// The error code (NONE if acknowledged) of an `acks=-1` wait's outcome, counted; no
    /// outcome means the partition was fenced before one was decided.
    fn ack_outcome_code(
        &mut self,
        outcome: Option<ringlog_replication::AckOutcome>,
        handle: PartitionHandle,
    ) -> ErrorCode {
        use ringlog_replication::{AckError, AckOutcome};
        let counters = &self.metrics.replication;
        match outcome {
            Some(AckOutcome::Acked) => ErrorCode::None,
            Some(AckOutcome::Degraded) => {
                counters.degraded_acks.inc();
                tracing::warn!(?handle, "semi-sync ack degraded to async after its timeout");
                ErrorCode::None
            }
            Some(AckOutcome::Failed(error)) => {
                match error {
                    AckError::NotEnoughReplicas => counters.not_enough_replicas.inc(),
                    AckError::NotEnoughReplicasAfterAppend => {
                        counters.not_enough_replicas_after_append.inc();
                    }
                    AckError::TimedOut => counters.acks_timed_out.inc(),
                }
                crate::replica::ack_error_code(error)
            }
            None => {
                self.partitions.publish(&self.wal, handle);
                ErrorCode::KafkaStorageError
            }
        }
    }
}

/// The answer slot of a request of this shard's connection `target`.
fn client(target: ConnRef, sequence: u64, header: RequestHeader) -> AnswerTo {
    AnswerTo::Client {
        connection: target,
        sequence,
        header,
    }
}

/// The Kafka error code of a partition-log error.
pub(crate) fn wal_error_code(error: &ringlog_wal::Error) -> ErrorCode {
    use ringlog_wal::Error;
    match error {
        Error::BatchTooLarge { .. } => ErrorCode::MessageTooLarge,
        Error::InvalidBatch(error) => ErrorCode::from(error),
        Error::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        // Produce parks instead (`retry_parked`); elsewhere retriable: clients retry after
        // their backoff, by which time a commit completed.
        Error::Backpressure { .. } => ErrorCode::RequestTimedOut,
        Error::FencedEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        Error::UnknownPartition(_) => ErrorCode::UnknownTopicOrPartition,
        _ => ErrorCode::KafkaStorageError,
    }
}

/// An offset on the wire (offsets stay far below `i64::MAX`).
pub(crate) fn offset_i64(offset: Offset) -> i64 {
    i64::try_from(offset.0).unwrap_or(i64::MAX)
}
