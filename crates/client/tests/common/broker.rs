//! A small in-memory broker for tests, built from `ringlog_kafka`'s server side
//! (`decode_request`, `encode_response`, `encode_fetch_response`). It keeps each partition's
//! batches in memory, answers ApiVersions, Metadata, Produce, Fetch (with long poll),
//! ListOffsets, CreateTopics and DeleteTopics in request order per connection, and lets a
//! test inject errors, hold Produce responses back (to observe pipelining), and damage
//! stored batches.
#![allow(dead_code)] // Each test binary uses its own subset.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A panic here is a test failure.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ringlog_kafka::frame::{frame_length, REQUEST_SIZE_BYTES_MAX_DEFAULT};
use ringlog_kafka::messages::create_topics_response::CreatableTopicResult;
use ringlog_kafka::messages::delete_topics_response::DeletableTopicResult;
use ringlog_kafka::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use ringlog_kafka::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use ringlog_kafka::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use ringlog_kafka::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    FetchRequest, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use ringlog_kafka::{
    api_versions_response, decode_request, encode_fetch_response, encode_refusal, encode_response,
    find_coordinator_error_response, ApiKey, Decoded, ErrorCode, FetchPartitionResponse,
    FetchResponse, FetchTopicResponse, Request, RequestHeader, Response, StrBytes,
};
use ringlog_types::{Epoch, Offset};

/// Node id of the test broker.
pub const NODE_ID: i32 = 1;
/// How long a connection waits for more Produce requests while it holds responses back.
const HOLD_TIMEOUT: Duration = Duration::from_secs(10);

/// One partition: its batches (stamped) and the offset the next record gets.
#[derive(Debug, Default)]
pub struct PartitionLog {
    pub batches: Vec<(i64, Bytes)>,
    pub log_end: i64,
}

/// Everything the broker stores and counts; tests read and change it through
/// [`TestBroker::with_state`].
#[derive(Debug, Default)]
pub struct BrokerState {
    pub topics: BTreeMap<String, Vec<PartitionLog>>,
    /// Requests received, by api_key.
    pub requests_count: BTreeMap<i16, u64>,
    /// Produce responses written.
    pub produce_responses_count: u64,
    /// When non-zero: a connection holds Produce responses back until it has this many
    /// unanswered (then answers them all, in order, and the gate closes).
    pub hold_produce_responses: usize,
    /// Most Produce requests seen unanswered at once on one connection.
    pub produce_unanswered_max: usize,
    /// Answer every partition of the next Produce request with this code.
    pub inject_produce_error: Option<ErrorCode>,
}

struct Shared {
    state: Mutex<BrokerState>,
    changed: Condvar,
}

/// A running test broker on 127.0.0.1 (threads live until the test process ends).
pub struct TestBroker {
    port: u16,
    shared: Arc<Shared>,
}

impl TestBroker {
    /// Binds 127.0.0.1:0 and serves every connection on its own thread.
    pub fn start() -> TestBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(BrokerState::default()),
            changed: Condvar::new(),
        });
        let accept_shared = Arc::clone(&shared);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                thread::spawn(move || serve_connection(stream, &shared, port));
            }
        });
        TestBroker { port, shared }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs `action` on the broker's state.
    pub fn with_state<T>(&self, action: impl FnOnce(&mut BrokerState) -> T) -> T {
        action(&mut lock(&self.shared.state))
    }

    /// Creates `name` with `partitions` empty partitions.
    pub fn create_topic(&self, name: &str, partitions: usize) {
        let logs = (0..partitions).map(|_| PartitionLog::default()).collect();
        self.with_state(|state| state.topics.insert(name.to_owned(), logs));
    }

    /// Records stored in `topic[partition]` (the log end).
    pub fn log_end(&self, topic: &str, partition: usize) -> i64 {
        self.with_state(|state| state.topics[topic][partition].log_end)
    }

    /// Appends raw batch bytes as if produced (stamped with the next offset).
    pub fn append_raw(&self, topic: &str, partition: usize, batch: Vec<u8>) {
        let mut state = lock(&self.shared.state);
        let log = &mut state.topics.get_mut(topic).expect("topic")[partition];
        append(log, batch);
        self.shared.changed.notify_all();
    }

    /// Requests received of `api`.
    pub fn requests_count(&self, api: ApiKey) -> u64 {
        self.with_state(|state| state.requests_count.get(&api.code()).copied().unwrap_or(0))
    }

    /// Polls (bounded by `deadline`) until `predicate` holds on the state.
    pub fn wait_until(&self, deadline: Duration, predicate: impl Fn(&BrokerState) -> bool) {
        let end = Instant::now() + deadline;
        let mut state = lock(&self.shared.state);
        while !predicate(&state) {
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "broker state not reached within {deadline:?}"
            );
            state = self.shared.changed.wait_timeout(state, left).unwrap().0;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Stamps `batch` with the log end and appends it.
fn append(log: &mut PartitionLog, mut batch: Vec<u8>) -> i64 {
    let header = ringlog_batch::BatchHeader::parse(&batch).expect("a valid header");
    let base_offset = log.log_end;
    ringlog_batch::stamp(
        &mut batch,
        Offset(u64::try_from(base_offset).unwrap()),
        Epoch(0),
    );
    log.batches.push((base_offset, Bytes::from(batch)));
    log.log_end += i64::from(header.last_offset_delta) + 1;
    base_offset
}

/// Reads one request frame; `Ok(None)` at end of stream.
fn read_frame(stream: &mut TcpStream) -> std::io::Result<Option<Bytes>> {
    let mut prefix = [0u8; 4];
    if let Err(error) = stream.read_exact(&mut prefix) {
        return match error.kind() {
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset => Ok(None),
            _ => Err(error),
        };
    }
    let size_bytes = frame_length(&prefix, REQUEST_SIZE_BYTES_MAX_DEFAULT)
        .map_err(|error| std::io::Error::new(ErrorKind::InvalidData, error.to_string()))?
        .expect("four bytes");
    let mut frame = vec![0u8; size_bytes];
    stream.read_exact(&mut frame)?;
    Ok(Some(Bytes::from(frame)))
}

/// Serves one connection until it closes or sends something undecodable.
fn serve_connection(mut stream: TcpStream, shared: &Shared, port: u16) {
    stream.set_read_timeout(Some(HOLD_TIMEOUT)).unwrap();
    let mut held: Vec<Vec<Bytes>> = Vec::new();
    loop {
        let frame = match read_frame(&mut stream) {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(error)
                if error.kind() == ErrorKind::WouldBlock || error.kind() == ErrorKind::TimedOut =>
            {
                // The client sent no more: release what is held back.
                write_all(&mut stream, held.drain(..).flatten());
                continue;
            }
            Err(_) => return,
        };
        let (parts, is_produce) = match decode_request(frame) {
            Ok(Decoded::Request { header, request }) => {
                let is_produce = matches!(request, Request::Produce(_));
                (answer(shared, &header, request, port), is_produce)
            }
            Ok(Decoded::Refused(refusal)) => {
                let mut out = BytesMut::new();
                encode_refusal(&mut out, &refusal).unwrap();
                (Some(vec![out.freeze()]), false)
            }
            Err(_) => return,
        };
        let Some(parts) = parts else { continue };
        if is_produce && hold_produce(shared, &mut held, parts.clone()) {
            continue;
        }
        write_all(&mut stream, held.drain(..).flatten().chain(parts));
    }
}

/// Holds a Produce response back while the gate is open; `true` if held. When the gate's
/// count is reached it closes and the caller writes everything held.
fn hold_produce(shared: &Shared, held: &mut Vec<Vec<Bytes>>, parts: Vec<Bytes>) -> bool {
    let mut state = lock(&shared.state);
    state.produce_responses_count += 1;
    state.produce_unanswered_max = state.produce_unanswered_max.max(held.len() + 1);
    if state.hold_produce_responses == 0 {
        return false;
    }
    if held.len() + 1 >= state.hold_produce_responses {
        state.hold_produce_responses = 0;
        return false;
    }
    held.push(parts);
    true
}

fn write_all(stream: &mut TcpStream, parts: impl Iterator<Item = Bytes>) {
    for part in parts {
        // A client that went away: the read side notices next.
        let _ = stream.write_all(&part);
    }
}

/// The response to one request, as the parts to write; `None` when no response is sent
/// (Produce with acks = 0).
fn answer(
    shared: &Shared,
    header: &RequestHeader,
    request: Request,
    port: u16,
) -> Option<Vec<Bytes>> {
    *lock(&shared.state)
        .requests_count
        .entry(header.api_key.code())
        .or_insert(0) += 1;
    // Tests wait for requests as well as for appends.
    shared.changed.notify_all();
    let response = match request {
        Request::ApiVersions(_) => Response::ApiVersions(api_versions_response(ErrorCode::None)),
        Request::Metadata(request) => Response::Metadata(metadata(shared, &request, port)),
        Request::Produce(request) => {
            let response = produce(shared, &request);
            if request.acks == 0 {
                return None;
            }
            Response::Produce(response)
        }
        Request::Fetch(request) => return Some(fetch(shared, header, &request)),
        Request::ListOffsets(request) => Response::ListOffsets(list_offsets(shared, &request)),
        Request::CreateTopics(request) => Response::CreateTopics(create_topics(shared, &request)),
        Request::DeleteTopics(request) => Response::DeleteTopics(delete_topics(shared, &request)),
        Request::FindCoordinator(request) => {
            Response::FindCoordinator(find_coordinator_error_response(
                &request,
                header.api_version,
                ErrorCode::CoordinatorNotAvailable,
            ))
        }
    };
    let mut out = BytesMut::new();
    encode_response(&mut out, header, &response).unwrap();
    Some(vec![out.freeze()])
}

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_owned()))
}

fn metadata(shared: &Shared, request: &MetadataRequest, port: u16) -> MetadataResponse {
    let state = lock(&shared.state);
    let names: Vec<String> = match &request.topics {
        None => state.topics.keys().cloned().collect(),
        Some(topics) => topics
            .iter()
            .filter_map(|topic| topic.name.as_ref().map(|name| name.0.to_string()))
            .collect(),
    };
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(NODE_ID);
    broker.host = StrBytes::from_static_str("127.0.0.1");
    broker.port = i32::from(port);
    let mut response = MetadataResponse::default();
    response.brokers = vec![broker];
    response.cluster_id = Some(StrBytes::from_static_str("test-cluster"));
    response.controller_id = BrokerId(NODE_ID);
    for topic_name in names {
        let mut topic = MetadataResponseTopic::default();
        topic.name = Some(name(&topic_name));
        match state.topics.get(&topic_name) {
            None => topic.error_code = ErrorCode::UnknownTopicOrPartition.code(),
            Some(logs) => {
                topic.partitions = (0..logs.len())
                    .map(|index| {
                        let mut partition = MetadataResponsePartition::default();
                        partition.partition_index = i32::try_from(index).unwrap();
                        partition.leader_id = BrokerId(NODE_ID);
                        partition.replica_nodes = vec![BrokerId(NODE_ID)];
                        partition.isr_nodes = vec![BrokerId(NODE_ID)];
                        partition
                    })
                    .collect();
            }
        }
        response.topics.push(topic);
    }
    response
}

fn produce(shared: &Shared, request: &ProduceRequest) -> ProduceResponse {
    let mut state = lock(&shared.state);
    let injected = state.inject_produce_error.take();
    let mut response = ProduceResponse::default();
    for topic in &request.topic_data {
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic.name.clone();
        for partition in &topic.partition_data {
            let mut answer = PartitionProduceResponse::default();
            answer.index = partition.index;
            answer.base_offset = -1;
            let log = state
                .topics
                .get_mut(topic.name.0.as_str())
                .and_then(|logs| logs.get_mut(usize::try_from(partition.index).ok()?));
            let records = partition.records.clone().unwrap_or_default();
            answer.error_code = match (log, injected) {
                (_, Some(code)) => code.code(),
                (None, None) => ErrorCode::UnknownTopicOrPartition.code(),
                (Some(log), None) => match ringlog_batch::validate(&records) {
                    Err(error) => ErrorCode::from(&error).code(),
                    Ok(_) => {
                        answer.base_offset = append(log, records.to_vec());
                        0
                    }
                },
            };
            topic_response.partition_responses.push(answer);
        }
        response.responses.push(topic_response);
    }
    shared.changed.notify_all();
    response
}

/// The stored batches of `log` from the one holding `fetch_offset`, up to `max_bytes` (at
/// least one batch).
fn batches_from(log: &PartitionLog, fetch_offset: i64, max_bytes: usize) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    let mut size_bytes = 0;
    for (index, (_, batch)) in log.batches.iter().enumerate() {
        let next_base = log
            .batches
            .get(index + 1)
            .map_or(log.log_end, |next| next.0);
        if next_base <= fetch_offset {
            continue;
        }
        if !chunks.is_empty() && size_bytes + batch.len() > max_bytes {
            break;
        }
        size_bytes += batch.len();
        chunks.push(batch.clone());
    }
    chunks
}

fn fetch(shared: &Shared, header: &RequestHeader, request: &FetchRequest) -> Vec<Bytes> {
    let deadline =
        Instant::now() + Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let mut state = lock(&shared.state);
    loop {
        let response = fetch_once(&state, request);
        let size_bytes: usize = response
            .topics
            .iter()
            .flat_map(|topic| &topic.partitions)
            .map(FetchPartitionResponse::records_size_bytes)
            .sum();
        let left = deadline.saturating_duration_since(Instant::now());
        if size_bytes >= min_bytes || left.is_zero() {
            drop(state);
            let (mut scratch, mut parts) = (BytesMut::new(), Vec::new());
            encode_fetch_response(header, &response, &mut scratch, &mut parts).unwrap();
            return parts;
        }
        state = shared.changed.wait_timeout(state, left).unwrap().0;
    }
}

fn fetch_once(state: &BrokerState, request: &FetchRequest) -> FetchResponse {
    let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0);
    let mut topics = Vec::new();
    for topic in &request.topics {
        let mut partitions = Vec::new();
        for partition in &topic.partitions {
            let index = partition.partition;
            let log = state
                .topics
                .get(topic.topic.0.as_str())
                .and_then(|logs| logs.get(usize::try_from(index).ok()?));
            let Some(log) = log else {
                partitions.push(FetchPartitionResponse::error(
                    index,
                    ErrorCode::UnknownTopicOrPartition,
                ));
                continue;
            };
            if partition.fetch_offset < 0 || partition.fetch_offset > log.log_end {
                partitions.push(FetchPartitionResponse::error(
                    index,
                    ErrorCode::OffsetOutOfRange,
                ));
                continue;
            }
            let mut answer = FetchPartitionResponse::error(index, ErrorCode::None);
            answer.high_watermark = log.log_end;
            answer.last_stable_offset = log.log_end;
            answer.log_start_offset = 0;
            answer.records = batches_from(log, partition.fetch_offset, max_bytes);
            partitions.push(answer);
        }
        topics.push(FetchTopicResponse {
            topic: topic.topic.clone(),
            partitions,
        });
    }
    FetchResponse {
        throttle_time_ms: 0,
        error_code: ErrorCode::None,
        session_id: 0,
        topics,
    }
}

fn list_offsets(shared: &Shared, request: &ListOffsetsRequest) -> ListOffsetsResponse {
    let state = lock(&shared.state);
    let mut response = ListOffsetsResponse::default();
    for topic in &request.topics {
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = topic.name.clone();
        for partition in &topic.partitions {
            let mut answer = ListOffsetsPartitionResponse::default();
            answer.partition_index = partition.partition_index;
            answer.timestamp = -1;
            let log = state
                .topics
                .get(topic.name.0.as_str())
                .and_then(|logs| logs.get(usize::try_from(partition.partition_index).ok()?));
            match (log, partition.timestamp) {
                (None, _) => answer.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                (Some(_), -2) => answer.offset = 0,
                (Some(log), -1) => answer.offset = log.log_end,
                (Some(_), _) => answer.error_code = ErrorCode::InvalidRequest.code(),
            }
            topic_response.partitions.push(answer);
        }
        response.topics.push(topic_response);
    }
    response
}

fn create_topics(shared: &Shared, request: &CreateTopicsRequest) -> CreateTopicsResponse {
    let mut state = lock(&shared.state);
    let mut response = CreateTopicsResponse::default();
    for topic in &request.topics {
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        result.num_partitions = topic.num_partitions;
        result.replication_factor = 1;
        let topic_name = topic.name.0.to_string();
        let count = usize::try_from(topic.num_partitions).unwrap_or(0);
        result.error_code = match state.topics.entry(topic_name) {
            Entry::Occupied(_) => ErrorCode::TopicAlreadyExists.code(),
            Entry::Vacant(_) if count == 0 => ErrorCode::InvalidPartitions.code(),
            Entry::Vacant(entry) => {
                entry.insert((0..count).map(|_| PartitionLog::default()).collect());
                0
            }
        };
        response.topics.push(result);
    }
    response
}

fn delete_topics(shared: &Shared, request: &DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut state = lock(&shared.state);
    let names: Vec<TopicName> = request
        .topic_names
        .iter()
        .cloned()
        .chain(request.topics.iter().filter_map(|topic| topic.name.clone()))
        .collect();
    let mut response = DeleteTopicsResponse::default();
    for topic_name in names {
        let mut result = DeletableTopicResult::default();
        result.error_code = match state.topics.remove(topic_name.0.as_str()) {
            Some(_) => 0,
            None => ErrorCode::UnknownTopicOrPartition.code(),
        };
        result.name = Some(topic_name);
        response.responses.push(result);
    }
    response
}
