//! Cross-shard forwarding (DESIGN.md section 3): a request that touches partitions of other
//! shards is split (`crate::split`), its local part served here, the others pushed to their
//! owners over bounded per-pair SPSC queues, and each owner woken with an
//! `IORING_OP_MSG_RING` to its ring. Owners answer over the reverse queue, woken the same
//! way; the originating shard assembles the response when every part has answered and fills
//! the request's slot, so responses keep their order per connection. Topic creation and
//! deletion travel the same queues, and their response waits until every shard has opened
//! (or closed) its partitions.
//!
//! Invariants: queue `(source, target)` has one producer (shard `source`'s thread) and one
//! consumer (shard `target`'s); it is bounded ([`QUEUE_DEPTH_MAX`]); a message that does not
//! fit waits in the source's outbox and is retried on the next loop turn (never a blocking
//! wait); messages between two shards are handled in the order they were sent, so an owner
//! always sees a topic's creation before any request for it that the creating shard sent
//! later; a split is answered exactly once, after all its parts; a wake-up carries no data
//! (the target drains every queue on each turn), so a lost or failed wake-up costs latency,
//! never a message.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::BytesMut;
use crossbeam_queue::ArrayQueue;
use ringlog_kafka::messages::{
    CreateTopicsResponse, DeleteTopicsResponse, FetchRequest, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, ProduceRequest, ProduceResponse,
};
use ringlog_kafka::{encode_fetch_response, ErrorCode, FetchResponse, RequestHeader, Response};

use crate::connection::ConnRef;
use crate::shard::Shard;
use crate::split::{
    assemble_fetch, assemble_list_offsets, assemble_produce, split_fetch, split_list_offsets,
    split_produce, Part, Position, Shape,
};

/// Messages one queue holds; a full queue is backpressure (the sender retries next turn).
pub(crate) const QUEUE_DEPTH_MAX: usize = 1024;

/// Where the answer to a request (or a part of one) goes.
pub(crate) enum AnswerTo {
    /// Into the response slot `sequence` of a connection of this shard.
    Client {
        connection: ConnRef,
        sequence: u64,
        header: RequestHeader,
    },
    /// Back to shard `origin`, as part `part` of its split `split`.
    Part {
        origin: usize,
        split: u64,
        part: usize,
    },
}

/// What travels between shards: work for an owner, or an owner's answer.
#[derive(Clone)]
pub(crate) enum Body {
    Produce {
        request: ProduceRequest,
        started: Instant,
    },
    Fetch {
        request: FetchRequest,
        deadline: Instant,
        started: Instant,
    },
    ListOffsets {
        request: ListOffsetsRequest,
        version: i16,
    },
    /// Open your partitions of a topic just registered.
    CreateTopic {
        name: String,
        partitions: u32,
        topic_id: String,
    },
    /// Settle, close and trash your partitions of a topic being deleted.
    DeleteTopic {
        name: String,
    },
    /// Answer the parked fetch part now: the split has what its client asked for.
    Hurry,
    Produced(ProduceResponse),
    Fetched(FetchResponse),
    Listed(ListOffsetsResponse),
    /// The outcome of a CreateTopic or DeleteTopic.
    Admin(ErrorCode),
}

/// One message of a queue.
pub(crate) struct Message {
    /// The shard that split the request (and assembles the answer).
    pub origin: usize,
    pub split: u64,
    pub part: usize,
    pub body: Box<Body>,
}

/// The queues between every pair of shards, and each shard's "idle" flag for the stop.
pub(crate) struct Mesh {
    cores: usize,
    /// Queue `source * cores + target`.
    queues: Vec<ArrayQueue<Message>>,
    idle: Vec<AtomicBool>,
}

impl Mesh {
    pub fn new(cores: usize) -> Mesh {
        Mesh {
            cores,
            queues: (0..cores * cores)
                .map(|_| ArrayQueue::new(QUEUE_DEPTH_MAX))
                .collect(),
            idle: (0..cores).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    fn queue(&self, source: usize, target: usize) -> &ArrayQueue<Message> {
        assert!(source < self.cores, "source={source}");
        assert!(target < self.cores, "target={target}");
        &self.queues[source * self.cores + target]
    }

    /// True if nothing waits in the queues towards `target`.
    fn inbound_empty(&self, target: usize) -> bool {
        (0..self.cores).all(|source| self.queue(source, target).is_empty())
    }

    /// Marks shard `shard` as having (or not having) work of its own during the stop.
    pub fn set_idle(&self, shard: usize, idle: bool) {
        self.idle[shard].store(idle, Ordering::SeqCst);
    }

    /// True once every shard is idle.
    pub fn all_idle(&self) -> bool {
        self.idle.iter().all(|idle| idle.load(Ordering::SeqCst))
    }
}

/// Answers collected for one kind of partition request.
pub(crate) struct Collected<A> {
    shape: Shape,
    positions: Vec<Vec<Position>>,
    answers: Vec<Option<A>>,
}

impl<A> Collected<A> {
    fn new<R>(shape: Shape, parts: &[Part<R>]) -> Collected<A> {
        Collected {
            shape,
            positions: parts.iter().map(|part| part.positions.clone()).collect(),
            answers: parts.iter().map(|_| None).collect(),
        }
    }

    fn store(&mut self, part: usize, answer: A) {
        let slot = self.answers.get_mut(part).expect("part in range");
        assert!(slot.is_none(), "part {part} answered twice");
        *slot = Some(answer);
    }

    fn take(self) -> (Shape, Vec<(Vec<Position>, A)>) {
        let answered = self
            .positions
            .into_iter()
            .zip(self.answers)
            .map(|(positions, answer)| (positions, answer.expect("every part answered")))
            .collect();
        (self.shape, answered)
    }
}

/// A fetch split: its answers, and what tells when the others parts should hurry.
pub(crate) struct FetchSplit {
    collected: Collected<FetchResponse>,
    shards: Vec<usize>,
    min_bytes: usize,
    size_bytes: usize,
    hurried: bool,
}

/// What a split request assembles.
pub(crate) enum SplitKind {
    Produce(Collected<ProduceResponse>),
    Fetch(Box<FetchSplit>),
    ListOffsets(Collected<ListOffsetsResponse>),
    /// Part = index of the topic in the response.
    CreateTopics(CreateTopicsResponse),
    /// Part = index of the topic in the response; the topic ids of those closed here.
    DeleteTopics(DeleteTopicsResponse, Vec<Option<String>>),
    /// Answered once every shard opened the auto-created topics; the creation failures.
    Metadata(
        MetadataRequest,
        std::collections::BTreeMap<String, ErrorCode>,
    ),
}

/// A request of one of this shard's connections, waiting for the parts of other shards.
pub(crate) struct Split {
    connection: ConnRef,
    sequence: u64,
    header: RequestHeader,
    started: Instant,
    outstanding: usize,
    kind: SplitKind,
}

/// The state a shard keeps for forwarding.
pub(crate) struct Forwarding {
    pub mesh: std::sync::Arc<Mesh>,
    /// Every shard's ring descriptor (the target of wake-ups).
    pub ring_fds: Vec<RawFd>,
    /// Messages that did not fit their queue yet, per target.
    outbox: Vec<VecDeque<Message>>,
    /// Targets to wake at the end of this turn.
    wake: Vec<bool>,
    pub wakes_in_flight: usize,
    splits: std::collections::BTreeMap<u64, Split>,
    next_split: u64,
}

impl Forwarding {
    pub fn new(mesh: std::sync::Arc<Mesh>, ring_fds: Vec<RawFd>) -> Forwarding {
        let cores = mesh.cores;
        assert_eq!(ring_fds.len(), cores, "one ring per shard");
        Forwarding {
            mesh,
            ring_fds,
            outbox: (0..cores).map(|_| VecDeque::new()).collect(),
            wake: vec![false; cores],
            wakes_in_flight: 0,
            splits: std::collections::BTreeMap::new(),
            next_split: 0,
        }
    }

    /// True if messages wait in an outbox (the loop then retries soon).
    pub fn backlogged(&self) -> bool {
        self.outbox.iter().any(|queue| !queue.is_empty())
    }

    /// True while this shard waits for or owes anything to another shard.
    pub fn busy(&self) -> bool {
        self.backlogged() || !self.splits.is_empty() || self.wakes_in_flight > 0
    }
}

impl Shard {
    /// Serves a Produce: at once if this shard owns every partition, else split.
    pub(crate) fn route_produce(
        &mut self,
        to: AnswerTo,
        request: ProduceRequest,
        started: Instant,
    ) {
        let parts = split_produce(&request, |t, p| self.partitions.serving_shard(t, p));
        if self.is_local(&parts) {
            self.produce(to, &request, started);
            return;
        }
        let AnswerTo::Client { .. } = &to else {
            unreachable!("only a client's request is split")
        };
        let acks_zero = request.acks == 0;
        let split = if acks_zero {
            u64::MAX
        } else {
            let kind = SplitKind::Produce(Collected::new(Shape::of_produce(&request), &parts));
            self.open_split(to, started, parts.len(), kind)
        };
        for (index, part) in parts.into_iter().enumerate() {
            let body = Body::Produce {
                request: part.request,
                started,
            };
            self.send_part(part.shard, self.index, split, index, body);
        }
        if acks_zero {
            let elapsed = started.elapsed();
            self.metrics
                .request_done(ringlog_kafka::ApiKey::Produce, elapsed);
        }
    }

    /// Serves a Fetch: at once if this shard owns every partition, else split.
    pub(crate) fn route_fetch(&mut self, to: AnswerTo, request: FetchRequest, started: Instant) {
        let deadline = started + self.fetch_wait(&request);
        let parts = split_fetch(&request, |t, p| self.partitions.serving_shard(t, p));
        if self.is_local(&parts) {
            self.fetch(to, request, deadline, started);
            return;
        }
        let fetch = FetchSplit {
            collected: Collected::new(Shape::of_fetch(&request), &parts),
            shards: parts.iter().map(|part| part.shard).collect(),
            min_bytes: usize::try_from(request.min_bytes.max(1)).unwrap_or(1),
            size_bytes: 0,
            hurried: false,
        };
        let split = self.open_split(to, started, parts.len(), SplitKind::Fetch(Box::new(fetch)));
        for (index, part) in parts.into_iter().enumerate() {
            let body = Body::Fetch {
                request: part.request,
                deadline,
                started,
            };
            self.send_part(part.shard, self.index, split, index, body);
        }
    }

    /// Serves a ListOffsets: at once if this shard owns every partition, else split.
    pub(crate) fn route_list_offsets(
        &mut self,
        to: AnswerTo,
        request: ListOffsetsRequest,
        version: i16,
        started: Instant,
    ) {
        let parts = split_list_offsets(&request, |t, p| self.partitions.serving_shard(t, p));
        if self.is_local(&parts) {
            let response = Response::ListOffsets(self.list_offsets(&request, version));
            if let AnswerTo::Client {
                connection,
                sequence,
                header,
            } = to
            {
                self.reply(connection, sequence, &header, &response, started);
            }
            return;
        }
        let shape = Shape::of_list_offsets(&request);
        let kind = SplitKind::ListOffsets(Collected::new(shape, &parts));
        let split = self.open_split(to, started, parts.len(), kind);
        for (index, part) in parts.into_iter().enumerate() {
            let body = Body::ListOffsets {
                request: part.request,
                version,
            };
            self.send_part(part.shard, self.index, split, index, body);
        }
    }

    /// Parks an admin response until every other shard has handled each of `bodies` (one
    /// per part), sent to all of them.
    pub(crate) fn broadcast_admin(
        &mut self,
        to: AnswerTo,
        started: Instant,
        kind: SplitKind,
        bodies: Vec<(usize, Body)>,
    ) {
        let others: Vec<usize> = (0..self.config.cores)
            .filter(|&shard| shard != self.index)
            .collect();
        let outstanding = bodies.len() * others.len();
        let split = self.open_split(to, started, outstanding, kind);
        for (part, body) in bodies {
            for &shard in &others {
                self.send_part(shard, self.index, split, part, body.clone());
            }
        }
        if outstanding == 0 {
            self.finish_split(split);
        }
    }

    fn is_local<R>(&self, parts: &[Part<R>]) -> bool {
        match parts {
            [] => true,
            [only] => only.shard == self.index,
            _ => false,
        }
    }

    fn open_split(
        &mut self,
        to: AnswerTo,
        started: Instant,
        outstanding: usize,
        kind: SplitKind,
    ) -> u64 {
        let AnswerTo::Client {
            connection,
            sequence,
            header,
        } = to
        else {
            unreachable!("only a client's request is split")
        };
        let forwarding = &mut self.forwarding;
        let split = forwarding.next_split;
        forwarding.next_split += 1;
        let state = Split {
            connection,
            sequence,
            header,
            started,
            outstanding,
            kind,
        };
        forwarding.splits.insert(split, state);
        split
    }

    /// Hands work (or an answer) to `shard`: served at once if it is this shard, queued
    /// otherwise.
    fn send_part(&mut self, shard: usize, origin: usize, split: u64, part: usize, body: Body) {
        if shard == self.index {
            self.on_message(Message {
                origin,
                split,
                part,
                body: Box::new(body),
            });
            return;
        }
        self.forwarding.outbox[shard].push_back(Message {
            origin,
            split,
            part,
            body: Box::new(body),
        });
    }

    /// Sends the answer of a part back to its origin.
    pub(crate) fn answer_part(&mut self, origin: usize, split: u64, part: usize, body: Body) {
        self.send_part(origin, origin, split, part, body);
    }

    /// Handles everything the other shards queued for this one.
    pub(crate) fn drain_inbound(&mut self) {
        let mesh = self.forwarding.mesh.clone();
        for source in 0..mesh.cores {
            if source == self.index {
                continue;
            }
            let queue = mesh.queue(source, self.index);
            // Bounded by what is there now: messages queued meanwhile wait for the next turn.
            for _ in 0..queue.len() {
                let Some(message) = queue.pop() else { break };
                self.on_message(message);
            }
        }
    }

    /// Moves outbox messages into their queues (as many as fit) and wakes their targets.
    pub(crate) fn flush_outboxes(&mut self) {
        let mesh = self.forwarding.mesh.clone();
        for target in 0..mesh.cores {
            let queue = mesh.queue(self.index, target);
            while let Some(message) = self.forwarding.outbox[target].pop_front() {
                match queue.push(message) {
                    Ok(()) => self.forwarding.wake[target] = true,
                    Err(message) => {
                        // Full: backpressure. Retried on the next turn of the loop.
                        self.forwarding.outbox[target].push_front(message);
                        self.forwarding.wake[target] = true;
                        break;
                    }
                }
            }
        }
        for target in 0..mesh.cores {
            if !self.forwarding.wake[target] {
                continue;
            }
            let fd = self.forwarding.ring_fds[target];
            let source = u64::try_from(self.index).expect("fits u64");
            let tag = crate::shard::wake_tag(target);
            match self.wal.ring_mut().msg_ring(fd, source, 0, tag) {
                Ok(()) => {
                    self.forwarding.wake[target] = false;
                    self.forwarding.wakes_in_flight += 1;
                }
                // The ring has no room for the op now: wake on the next turn.
                Err(error) => tracing::debug!(shard = self.index, %error, "wake-up deferred"),
            }
        }
    }

    fn on_message(&mut self, message: Message) {
        let Message {
            origin,
            split,
            part,
            body,
        } = message;
        let to = AnswerTo::Part {
            origin,
            split,
            part,
        };
        match *body {
            Body::Produce { request, started } => self.produce(to, &request, started),
            Body::Fetch {
                request,
                deadline,
                started,
            } => self.fetch(to, request, deadline, started),
            Body::ListOffsets { request, version } => {
                let response = self.list_offsets(&request, version);
                self.answer_part(origin, split, part, Body::Listed(response));
            }
            Body::CreateTopic {
                name,
                partitions,
                topic_id,
            } => {
                let opened = self.partitions.open_created(
                    &mut self.wal,
                    &self.metrics,
                    &name,
                    partitions,
                    &topic_id,
                );
                let code = opened.err().unwrap_or(ErrorCode::None);
                self.answer_part(origin, split, part, Body::Admin(code));
            }
            Body::DeleteTopic { name } => {
                let code = self.close_topic_here(&name);
                self.answer_part(origin, split, part, Body::Admin(code));
            }
            Body::Hurry => self.hurry_fetch(origin, split),
            answer => self.on_answer(split, part, answer),
        }
    }

    /// Gives the parked fetch part of `(origin, split)` a deadline of now.
    fn hurry_fetch(&mut self, origin: usize, split: u64) {
        let now = Instant::now();
        for fetch in &mut self.fetches {
            if let AnswerTo::Part {
                origin: fetch_origin,
                split: fetch_split,
                ..
            } = fetch.to
            {
                if fetch_origin == origin && fetch_split == split {
                    fetch.deadline = now;
                }
            }
        }
    }

    /// Records a part's answer; answers the client once every part is in.
    fn on_answer(&mut self, split: u64, part: usize, answer: Body) {
        let Some(state) = self.forwarding.splits.get_mut(&split) else {
            tracing::error!(shard = self.index, split, "answer for an unknown split");
            return;
        };
        let mut hurry = None;
        match (&mut state.kind, answer) {
            (SplitKind::Produce(collected), Body::Produced(response)) => {
                collected.store(part, response);
            }
            (SplitKind::ListOffsets(collected), Body::Listed(response)) => {
                collected.store(part, response);
            }
            (SplitKind::Fetch(fetch), Body::Fetched(response)) => {
                let partitions = response.topics.iter().flat_map(|t| t.partitions.iter());
                for partition in partitions {
                    if partition.error_code == ErrorCode::None {
                        fetch.size_bytes += partition.records_size_bytes();
                    } else {
                        fetch.size_bytes = fetch.size_bytes.max(fetch.min_bytes);
                    }
                }
                fetch.collected.store(part, response);
                if !fetch.hurried && fetch.size_bytes >= fetch.min_bytes {
                    fetch.hurried = true;
                    hurry = Some(fetch.shards.clone());
                }
            }
            (SplitKind::CreateTopics(response), Body::Admin(code)) => {
                if code != ErrorCode::None {
                    self.metrics.error(code);
                    response.topics[part].error_code = code.code();
                }
            }
            (SplitKind::DeleteTopics(response, _), Body::Admin(code)) => {
                // A shard that never saw the topic has nothing to close.
                if !matches!(code, ErrorCode::None | ErrorCode::UnknownTopicOrPartition) {
                    response.responses[part].error_code = code.code();
                }
            }
            (SplitKind::Metadata(..), Body::Admin(_)) => {}
            _ => panic!("split {split}: an answer of the wrong kind"),
        }
        state.outstanding -= 1;
        let done = state.outstanding == 0;
        if let Some(shards) = hurry {
            for shard in shards {
                self.send_part(shard, self.index, split, 0, Body::Hurry);
            }
        }
        if done {
            self.finish_split(split);
        }
    }

    /// Assembles and sends the response of a split whose parts have all answered.
    fn finish_split(&mut self, split: u64) {
        let state = self
            .forwarding
            .splits
            .remove(&split)
            .expect("finishing a known split");
        assert_eq!(state.outstanding, 0, "split {split} finished early");
        let response = match state.kind {
            SplitKind::Produce(collected) => {
                let (shape, answered) = collected.take();
                Response::Produce(assemble_produce(&shape, answered))
            }
            SplitKind::ListOffsets(collected) => {
                let (shape, answered) = collected.take();
                Response::ListOffsets(assemble_list_offsets(&shape, answered))
            }
            SplitKind::Fetch(fetch) => {
                let (shape, answered) = fetch.collected.take();
                let response = assemble_fetch(&shape, answered);
                self.respond_fetch(
                    state.connection,
                    state.sequence,
                    &state.header,
                    &response,
                    state.started,
                );
                return;
            }
            SplitKind::CreateTopics(response) => Response::CreateTopics(response),
            SplitKind::DeleteTopics(response, topic_ids) => {
                Response::DeleteTopics(self.forget_deleted(response, &topic_ids))
            }
            SplitKind::Metadata(request, failures) => {
                Response::Metadata(self.metadata(&request, &failures))
            }
        };
        self.reply(
            state.connection,
            state.sequence,
            &state.header,
            &response,
            state.started,
        );
    }

    /// Encodes a Fetch response (its records are not copied) into its slot.
    pub(crate) fn respond_fetch(
        &mut self,
        connection: ConnRef,
        sequence: u64,
        header: &RequestHeader,
        response: &FetchResponse,
        started: Instant,
    ) {
        let mut scratch = BytesMut::new();
        let mut parts = Vec::new();
        match encode_fetch_response(header, response, &mut scratch, &mut parts) {
            Ok(_) => {
                self.metrics.request_done(header.api_key, started.elapsed());
                self.respond(connection, sequence, parts);
            }
            Err(error) => {
                tracing::error!(%error, "cannot encode a fetch response");
                self.close(connection, "fetch response could not be encoded");
            }
        }
    }

    /// The stop protocol's view of this shard: idle when it has nothing in flight of its
    /// own and nothing queued for it.
    pub(crate) fn forwarding_idle(&self) -> bool {
        !self.forwarding.busy() && self.forwarding.mesh.inbound_empty(self.index)
    }
}
