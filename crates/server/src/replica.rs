//! Replication on a node (DESIGN.md section 4, static mode of section 5): the glue between
//! the sans-I/O state machines of `ringlog_replication` and this shard's log, connections
//! and clock.
//!
//! On the leader, every partition of a replicated topic has a [`Leader`]: followers connect
//! to the replication listener, say hello, and long-poll `ReplicaFetch` frames; a fetch is
//! answered as soon as the log has data past its offset (read from the in-memory tail when
//! it is there, including batches whose fdatasync is still in flight), and its reported ends
//! (and `DurableReport` frames) drive the ISR, the high watermark and the acks of `acks=-1`
//! produces. On a follower, every such partition has a [`FollowerLink`]: one connection to
//! the leader per partition (a parked fetch would hold up the fetches of other partitions
//! behind it on a shared connection), a fetch in flight at a time, the batches appended as
//! they came (same offsets, same epoch, so the same bytes), and a durable report whenever
//! the durable end moves while a fetch waits at the leader. A control connection polls the
//! leader's topic list, so followers learn topics from the leader.
//!
//! Invariants: a follower appends a batch only at its log end (earlier batches, already
//! here, are skipped; a gap closes the link); consumers read below the high watermark, which
//! is never above the durable end; an `acks=-1` produce of a replicated topic is answered only
//! with the outcome its `Leader` decided (or KAFKA_STORAGE_ERROR if the partition is fenced).

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringlog_replication::frame::{self, ErrorCode as FrameError, FetchResponseHeader, Frame};
use ringlog_replication::{AckError, AckOutcome, Follower, Leader, LeaderCommand, Time};
use ringlog_types::{Epoch, NodeId, Offset};
use ringlog_wal::{PartitionHandle, Wal};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::connection::{ConnKind, ConnRef, OutLink};
use crate::error::Result;
use crate::shard::Shard;
use crate::topics::TopicReplication;

/// How long a follower waits before connecting again after a failure.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// How long a hello (or connect) may take before the link is dropped.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a fetch answer may take beyond its `max_wait_ms` before the link is dropped.
const ANSWER_GRACE: Duration = Duration::from_secs(2);
/// How often a follower asks the leader for its topics.
const TOPICS_POLL: Duration = Duration::from_millis(300);
/// How soon a follower fetches again after its log pushed back or the leader had no such
/// partition yet.
const FETCH_RETRY: Duration = Duration::from_millis(2);

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// The replication clock: microseconds since the first call in this process.
pub(crate) fn time_of(instant: Instant) -> Time {
    let origin = *ORIGIN.get_or_init(Instant::now);
    let micros = instant.saturating_duration_since(origin).as_micros();
    Time(u64::try_from(micros).unwrap_or(u64::MAX))
}

/// The `Instant` of a replication time.
fn instant_of(time: Time) -> Instant {
    let origin = *ORIGIN.get_or_init(Instant::now);
    origin + Duration::from_micros(time.0)
}

/// A partition's role in replication.
pub(crate) enum Replica {
    /// A node alone, or a topic without replication: the durable end is the HW.
    Alone,
    /// This node leads the partition.
    Leader(Box<Leader>),
    /// This node follows the partition's leader.
    Follower(Box<FollowerLink>),
}

/// A follower's link to its leader, for one partition.
pub(crate) struct FollowerLink {
    pub core: Follower,
    conn: Option<ConnRef>,
    ready: bool,
    retry_at: Instant,
    /// The answer (hello or fetch) expected by.
    deadline: Option<Instant>,
    /// No new fetch before (the log pushed back, or the leader lacked the partition).
    fetch_not_before: Instant,
    /// Fetching stopped for good: the logs diverged (phase 2 truncates).
    stopped: bool,
    correlation: u64,
}

impl Replica {
    /// The role of this node for a partition of a topic with `replication`.
    pub fn new(
        wal: &Wal,
        handle: PartitionHandle,
        node_id: u32,
        replication: &TopicReplication,
        topic: &str,
    ) -> Result<Replica> {
        let ends = wal.ends(handle)?;
        let Some(&leader) = replication.replicas.first() else {
            return Ok(Replica::Alone);
        };
        if !replication.replicas.contains(&node_id) {
            tracing::warn!(topic, node_id, "not a replica of this topic");
            return Ok(Replica::Alone);
        }
        if leader == node_id {
            let followers: Vec<NodeId> = replication.replicas[1..]
                .iter()
                .map(|id| NodeId(*id))
                .collect();
            let now = time_of(Instant::now());
            let core = Leader::new(
                NodeId(leader),
                &followers,
                replication.policy(),
                ends.log_end,
                ends.durable_end,
                now,
            );
            return Ok(Replica::Leader(Box::new(core)));
        }
        let last_epoch = wal.epochs(handle)?.latest().map(|entry| entry.epoch);
        Ok(Replica::Follower(Box::new(FollowerLink {
            core: Follower::new(ends.log_end, ends.durable_end, last_epoch),
            conn: None,
            ready: false,
            retry_at: Instant::now(),
            deadline: None,
            fetch_not_before: Instant::now(),
            stopped: false,
            correlation: 0,
        })))
    }
}

/// A follower's fetch parked on the leader until data arrives or its wait is over.
pub(crate) struct ParkedReplicaFetch {
    target: ConnRef,
    sequence: u64,
    correlation: u64,
    topic: String,
    partition: u32,
    fetch_offset: Offset,
    max_bytes: usize,
    deadline: Instant,
    /// The HW the follower knows: the leader's when the fetch arrived, or the last one a
    /// `HighWatermark` notice carried. A higher HW is sent as a notice even without data,
    /// so the follower's readers see committed data without waiting out `fetch_wait_ms`.
    high_watermark: Offset,
}

/// The follower's topic poll link.
#[derive(Default)]
struct ControlLink {
    conn: Option<ConnRef>,
    ready: bool,
    retry_at: Option<Instant>,
    next_poll: Option<Instant>,
    deadline: Option<Instant>,
}

/// The replication state of a shard besides its partitions'.
#[derive(Default)]
pub(crate) struct ReplicationIo {
    parked: Vec<ParkedReplicaFetch>,
    /// Outcomes of `acks=-1` waits decided by a `Leader`, until their produce is answered.
    outcomes: HashMap<u64, AckOutcome>,
    /// Ack ids of produces still waiting.
    live: HashSet<u64>,
    next_ack: u64,
    /// A high watermark moved this turn: parked Kafka fetches may have data.
    pub hw_moved: bool,
    control: ControlLink,
    correlation: u64,
    /// The HW last sent to each follower connection (one connection per partition): what
    /// that follower knows. A fetch is answered early when the HW passes it.
    hw_sent: HashMap<(usize, u32), Offset>,
}

impl ReplicationIo {
    /// The outcome of ack `id`, once decided.
    pub fn outcome(&self, id: u64) -> Option<AckOutcome> {
        self.outcomes.get(&id).copied()
    }

    /// Forgets what was sent on a follower's connection (it closed).
    pub fn forget_connection(&mut self, target: ConnRef) {
        self.hw_sent.remove(&(target.index, target.generation));
    }

    /// Forgets ack `id` (its produce was answered).
    pub fn forget(&mut self, id: u64) {
        self.outcomes.remove(&id);
        self.live.remove(&id);
    }
}

/// The Kafka error code of a failed ack.
pub(crate) fn ack_error_code(error: AckError) -> ringlog_kafka::ErrorCode {
    match error {
        AckError::NotEnoughReplicas => ringlog_kafka::ErrorCode::NotEnoughReplicas,
        AckError::NotEnoughReplicasAfterAppend => {
            ringlog_kafka::ErrorCode::NotEnoughReplicasAfterAppend
        }
        AckError::TimedOut => ringlog_kafka::ErrorCode::RequestTimedOut,
    }
}

/// A topic id on the replication wire (little-endian, as every integer there) as the
/// registry's 32 hex digits.
fn topic_id_hex(bytes: [u8; 16]) -> String {
    format!("{:032x}", u128::from_le_bytes(bytes))
}

fn topic_id_bytes(hex: &str) -> [u8; 16] {
    u128::from_str_radix(hex, 16).unwrap_or(0).to_le_bytes()
}

impl Shard {
    /// True on a node of a cluster that is not its leader.
    pub(crate) fn is_follower_node(&self) -> bool {
        self.config
            .cluster
            .as_ref()
            .is_some_and(|cluster| !cluster.is_leader())
    }

    /// Registers an `acks=-1` wait for the batches of `handle` ending at `next_offset`, if
    /// this node leads the partition; returns its ack id.
    pub(crate) fn wait_replicated(
        &mut self,
        handle: PartitionHandle,
        next_offset: Offset,
        deadline: Instant,
    ) -> Option<u64> {
        let id = self.replication.next_ack;
        let now = time_of(Instant::now());
        let commands = {
            let (_, _, state) = self.partitions.by_handle_mut(handle)?;
            let Replica::Leader(leader) = &mut state.replica else {
                return None;
            };
            leader.wait_ack(
                now,
                ringlog_replication::AckId(id),
                next_offset,
                time_of(deadline),
            );
            leader.drain_commands().collect::<Vec<_>>()
        };
        self.replication.next_ack += 1;
        self.replication.live.insert(id);
        self.apply_leader_commands(handle, commands);
        Some(id)
    }

    /// Tells a partition's replication state that its log end or durable end moved.
    pub(crate) fn replica_ends_moved(&mut self, handle: PartitionHandle) {
        let Ok(ends) = self.wal.ends(handle) else {
            return;
        };
        let now = time_of(Instant::now());
        let mut report = None;
        let commands = {
            let Some((topic, partition, state)) = self.partitions.by_handle_mut(handle) else {
                return;
            };
            match &mut state.replica {
                Replica::Alone => return,
                Replica::Leader(leader) => {
                    if ends.log_end > leader.log_end() {
                        leader.on_appended(now, ends.log_end);
                    }
                    if ends.durable_end > leader.durable_end() {
                        leader.on_local_durable(now, ends.durable_end);
                    }
                    leader.drain_commands().collect::<Vec<_>>()
                }
                Replica::Follower(link) => {
                    let before = link.core.high_watermark();
                    if ends.durable_end > link.core.durable_end() {
                        link.core.on_durable(ends.durable_end);
                    }
                    if link.core.high_watermark() != before {
                        self.replication.hw_moved = true;
                    }
                    if link.ready {
                        if let (Some(conn), Some(ends)) = (link.conn, link.core.report_due()) {
                            report = Some((conn, topic.to_string(), partition, ends));
                        }
                    }
                    Vec::new()
                }
            }
        };
        self.apply_leader_commands(handle, commands);
        if let Some((conn, topic, partition, (written_end, durable_end))) = report {
            let report = frame::DurableReport {
                topic: &topic,
                partition,
                written_end,
                durable_end,
            };
            let bytes = frame::encode(0, &Frame::DurableReport(report));
            self.send_frame(conn, bytes);
        }
    }

    /// Acts on what a `Leader` decided.
    fn apply_leader_commands(&mut self, handle: PartitionHandle, commands: Vec<LeaderCommand>) {
        for command in commands {
            match command {
                LeaderCommand::Ack { id, outcome } => {
                    if self.replication.live.contains(&id.0) {
                        self.replication.outcomes.insert(id.0, outcome);
                    }
                }
                LeaderCommand::HighWatermark(_) => {
                    self.replication.hw_moved = true;
                    self.partitions.publish(&self.wal, handle);
                }
                LeaderCommand::IsrShrunk { follower, lag_ms } => {
                    self.metrics.replication.isr_shrinks.inc();
                    tracing::warn!(?handle, follower = follower.0, lag_ms, "ISR shrank");
                    self.partitions.publish(&self.wal, handle);
                }
                LeaderCommand::IsrExpanded { follower } => {
                    self.metrics.replication.isr_expands.inc();
                    tracing::info!(?handle, follower = follower.0, "ISR expanded");
                    self.partitions.publish(&self.wal, handle);
                }
            }
        }
    }

    /// Per-turn replication work: leader timers, parked replica fetches, follower links.
    pub(crate) fn drive_replication(&mut self, now: Instant) {
        if self.config.cluster.is_none() {
            return;
        }
        self.tick_leaders(now);
        self.answer_replica_fetches(now, false);
        if self.is_follower_node() && !self.stop.load(std::sync::atomic::Ordering::Relaxed) {
            self.drive_control(now);
            self.drive_links(now);
        }
    }

    fn tick_leaders(&mut self, now: Instant) {
        let time = time_of(now);
        let mut all = Vec::new();
        for (_, _, state) in self.partitions.iter_mut() {
            if let Replica::Leader(leader) = &mut state.replica {
                if leader
                    .next_deadline()
                    .is_some_and(|deadline| deadline <= time)
                {
                    leader.on_tick(time);
                    all.push((state.handle, leader.drain_commands().collect::<Vec<_>>()));
                }
            }
        }
        for (handle, commands) in all {
            self.apply_leader_commands(handle, commands);
        }
    }

    /// The earliest time replication needs the loop to run.
    pub(crate) fn replication_wake(&mut self) -> Option<Instant> {
        self.config.cluster.as_ref()?;
        // What is due now was done this turn; a time already past is stale (the loop's
        // own cap, `LOOP_WAKE_MAX`, covers anything left), so only future times count.
        let now = Instant::now();
        let mut wake: Option<Instant> = None;
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at.filter(|at| *at > now) {
                wake = Some(wake.map_or(at, |wake| wake.min(at)));
            }
        };
        for fetch in &self.replication.parked {
            consider(Some(fetch.deadline));
        }
        consider(self.replication.control.retry_at);
        consider(self.replication.control.next_poll);
        consider(self.replication.control.deadline);
        for (_, _, state) in self.partitions.iter_mut() {
            match &state.replica {
                Replica::Leader(leader) => consider(leader.next_deadline().map(instant_of)),
                Replica::Follower(link) if !link.stopped => {
                    if link.conn.is_none() {
                        consider(Some(link.retry_at));
                    } else {
                        consider(link.deadline);
                        if link.ready && link.deadline.is_none() {
                            consider(Some(link.fetch_not_before));
                        }
                    }
                }
                _ => {}
            }
        }
        wake
    }

    // ----- leader side -----

    /// Handles one frame of a follower's connection.
    pub(crate) fn on_replica_in(&mut self, target: ConnRef, bytes: &Bytes) {
        let (correlation, decoded) = match frame::decode(bytes) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.reject(target, &format!("bad replication frame: {error}"));
                return;
            }
        };
        let follower = match self.connection_mut(target).map(|c| c.kind.clone()) {
            Some(ConnKind::ReplicaIn { follower }) => follower,
            _ => return,
        };
        match (decoded, follower) {
            (
                Frame::Hello {
                    cluster_id,
                    node_id,
                },
                None,
            ) => {
                self.on_hello(target, correlation, cluster_id, node_id);
            }
            (Frame::Topics, Some(_)) => {
                let entries = self.topic_entries();
                let bytes = frame::encode(correlation, &Frame::TopicsResponse(entries));
                self.send_frame(target, bytes);
            }
            (Frame::Fetch(fetch), Some(follower)) => {
                self.on_replica_fetch(target, correlation, follower, &fetch);
            }
            (Frame::DurableReport(report), Some(follower)) => {
                self.on_durable_report(follower, &report);
            }
            (other, _) => {
                let reason = format!("unexpected replication frame {:?}", frame_name(&other));
                self.refuse(target, correlation, FrameError::Malformed, &reason);
            }
        }
    }

    fn on_hello(&mut self, target: ConnRef, correlation: u64, cluster_id: &str, node_id: NodeId) {
        let Some(cluster) = self.config.cluster.clone() else {
            return;
        };
        let refusal = if cluster_id != cluster.id {
            Some((
                FrameError::ClusterMismatch,
                format!("cluster {cluster_id:?} is not this node's {:?}", cluster.id),
            ))
        } else if cluster.node(node_id.0).is_none() || node_id.0 == cluster.node_id {
            Some((
                FrameError::ClusterMismatch,
                format!(
                    "node {} is not a member of cluster {:?}",
                    node_id.0, cluster.id
                ),
            ))
        } else if !cluster.is_leader() {
            Some((
                FrameError::NotLeader,
                format!(
                    "node {} is not the leader; {} is",
                    cluster.node_id, cluster.leader
                ),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            self.refuse(target, correlation, code, &message);
            return;
        }
        if let Some(connection) = self.connection_mut(target) {
            connection.kind = ConnKind::ReplicaIn {
                follower: Some(node_id.0),
            };
            tracing::info!(follower = node_id.0, peer = %connection.peer, "follower connected");
        }
        let hello = Frame::HelloOk {
            node_id: NodeId(cluster.node_id),
            leader_epoch: self.config.leader_epoch(),
        };
        let bytes = frame::encode(correlation, &hello);
        self.send_frame(target, bytes);
    }

    /// Answers with an error frame, then closes the connection once it is sent.
    fn refuse(&mut self, target: ConnRef, correlation: u64, code: FrameError, message: &str) {
        tracing::warn!(reason = message, "refusing a replication connection");
        let bytes = frame::encode(correlation, &Frame::Error { code, message });
        self.send_frame(target, bytes);
        if let Some(connection) = self.connection_mut(target) {
            connection.close_after_send = true;
        }
    }

    /// The replicated topics, as the leader tells followers.
    fn topic_entries(&self) -> Vec<frame::TopicEntry> {
        self.partitions
            .entries()
            .into_iter()
            .filter_map(|(name, entry)| {
                let replication = entry.replication?;
                Some(frame::TopicEntry {
                    name,
                    partitions: entry.partitions,
                    replication_factor: u16::try_from(replication.replicas.len())
                        .unwrap_or(u16::MAX),
                    topic_id: topic_id_bytes(&entry.topic_id),
                    policy: replication.policy(),
                })
            })
            .collect()
    }

    fn on_replica_fetch(
        &mut self,
        target: ConnRef,
        correlation: u64,
        follower: u32,
        fetch: &frame::Fetch<'_>,
    ) {
        let now = Instant::now();
        let time = time_of(now);
        let found = self
            .partitions
            .get_mut(fetch.topic, i32::try_from(fetch.partition).unwrap_or(-1))
            .map(|state| {
                let handle = state.handle;
                match &mut state.replica {
                    Replica::Leader(leader) => {
                        let known = leader.on_fetch(
                            time,
                            NodeId(follower),
                            fetch.fetch_offset,
                            fetch.written_end,
                            fetch.durable_end,
                        );
                        let commands = leader.drain_commands().collect::<Vec<_>>();
                        (handle, known.is_ok(), commands)
                    }
                    _ => (handle, false, Vec::new()),
                }
            });
        let sequence = match self.connection_mut(target) {
            Some(connection) => connection.reserve(),
            None => return,
        };
        // What the follower knows: the HW of the last answer on this connection (the HW
        // may have moved again while that answer travelled).
        let high_watermark = self
            .replication
            .hw_sent
            .get(&(target.index, target.generation))
            .copied()
            .unwrap_or(Offset(0));
        let parked = ParkedReplicaFetch {
            high_watermark,
            target,
            sequence,
            correlation,
            topic: fetch.topic.to_string(),
            partition: fetch.partition,
            fetch_offset: fetch.fetch_offset,
            max_bytes: usize::try_from(fetch.max_bytes).unwrap_or(usize::MAX),
            deadline: now
                + Duration::from_millis(u64::from(fetch.max_wait_ms))
                    .min(self.config.fetch_wait_max()),
        };
        match found {
            Some((handle, true, commands)) => {
                self.apply_leader_commands(handle, commands);
                if let Some(parked) = self.try_replica_fetch(parked, now, false) {
                    self.replication.parked.push(parked);
                }
            }
            Some((_, false, _)) | None => {
                self.answer_replica_error(&parked, FrameError::UnknownTopicOrPartition);
            }
        }
    }

    fn on_durable_report(&mut self, follower: u32, report: &frame::DurableReport<'_>) {
        let time = time_of(Instant::now());
        let partition = i32::try_from(report.partition).unwrap_or(-1);
        let Some(state) = self.partitions.get_mut(report.topic, partition) else {
            return;
        };
        let handle = state.handle;
        let Replica::Leader(leader) = &mut state.replica else {
            return;
        };
        let _ = leader.on_durable_report(
            time,
            NodeId(follower),
            report.written_end,
            report.durable_end,
        );
        let commands = leader.drain_commands().collect::<Vec<_>>();
        self.apply_leader_commands(handle, commands);
    }

    /// Answers the parked replica fetches that have data now or reached their deadline (all
    /// of them when `flush`: the node stops); tells the others' followers of a higher HW.
    pub(crate) fn answer_replica_fetches(&mut self, now: Instant, flush: bool) {
        if self.replication.parked.is_empty() {
            return;
        }
        let parked = std::mem::take(&mut self.replication.parked);
        for fetch in parked {
            if let Some(fetch) = self.try_replica_fetch(fetch, now, flush) {
                self.replication.parked.push(fetch);
            }
        }
    }

    /// Sends the answer if there is data past the fetch offset (or an error, or the wait is
    /// over); else sends a `HighWatermark` notice if the HW moved past the one the follower
    /// knows, and hands the fetch back to stay parked.
    fn try_replica_fetch(
        &mut self,
        fetch: ParkedReplicaFetch,
        now: Instant,
        flush: bool,
    ) -> Option<ParkedReplicaFetch> {
        let partition = i32::try_from(fetch.partition).unwrap_or(-1);
        let Some(state) = self.partitions.get(&fetch.topic, partition) else {
            self.answer_replica_error(&fetch, FrameError::UnknownTopicOrPartition);
            return None;
        };
        let handle = state.handle;
        let Ok(ends) = self.wal.ends(handle) else {
            self.answer_replica_error(&fetch, FrameError::UnknownTopicOrPartition);
            return None;
        };
        if fetch.fetch_offset < ends.log_start || fetch.fetch_offset > ends.log_end {
            self.answer_replica_error(&fetch, FrameError::OffsetOutOfRange);
            return None;
        }
        let has_data = fetch.fetch_offset < ends.log_end;
        let high_watermark = state.high_watermark(ends.durable_end);
        let news = has_data || high_watermark > fetch.high_watermark;
        let waiting = fetch.deadline > now && !flush;
        if !news && waiting {
            return Some(fetch);
        }
        if !has_data && waiting {
            return self.notify_high_watermark(fetch, high_watermark, ends.log_start);
        }
        let mut parts = Vec::new();
        let mut records_len = 0;
        if has_data {
            match self.wal.read(
                handle,
                fetch.fetch_offset,
                fetch.max_bytes,
                Some(ends.log_end),
            ) {
                Ok(read) => {
                    records_len = read.size_bytes;
                    parts = read
                        .parts
                        .into_iter()
                        .map(crate::fetch::part_bytes)
                        .collect();
                }
                Err(error) => {
                    tracing::warn!(topic = %fetch.topic, %error, "replica read failed");
                    self.answer_replica_error(&fetch, FrameError::StorageError);
                    return None;
                }
            }
        }
        let header = FetchResponseHeader {
            error: None,
            leader_epoch: self.config.leader_epoch(),
            high_watermark,
            log_start: ends.log_start,
            log_end: ends.log_end,
        };
        let head = frame::encode_fetch_response(fetch.correlation, &header, records_len);
        self.replication.hw_sent.insert(
            (fetch.target.index, fetch.target.generation),
            high_watermark,
        );
        let mut all = Vec::with_capacity(parts.len() + 1);
        all.push(Bytes::from(head));
        all.extend(parts);
        self.metrics
            .replication
            .bytes_out
            .add(u64::try_from(records_len).unwrap_or(0));
        self.respond(fetch.target, fetch.sequence, all);
        None
    }

    /// Only the HW moved past what the follower knows: a `HighWatermark` notice goes out in
    /// the fetch's place on the connection, and the fetch stays parked behind it, so the
    /// next batch goes out as soon as it is appended instead of after the follower's next
    /// fetch. `None` if the connection is gone.
    fn notify_high_watermark(
        &mut self,
        mut fetch: ParkedReplicaFetch,
        high_watermark: Offset,
        log_start: Offset,
    ) -> Option<ParkedReplicaFetch> {
        let notice = frame::HighWatermark {
            topic: &fetch.topic,
            partition: fetch.partition,
            leader_epoch: self.config.leader_epoch(),
            high_watermark,
            log_start,
        };
        let bytes = frame::encode(fetch.correlation, &Frame::HighWatermark(notice));
        self.replication.hw_sent.insert(
            (fetch.target.index, fetch.target.generation),
            high_watermark,
        );
        self.respond(fetch.target, fetch.sequence, vec![Bytes::from(bytes)]);
        let connection = self.connection_mut(fetch.target)?;
        if connection.closing {
            return None;
        }
        fetch.sequence = connection.reserve();
        fetch.high_watermark = high_watermark;
        Some(fetch)
    }

    fn answer_replica_error(&mut self, fetch: &ParkedReplicaFetch, code: FrameError) {
        let header = FetchResponseHeader {
            error: Some(code),
            leader_epoch: self.config.leader_epoch(),
            high_watermark: Offset(0),
            log_start: Offset(0),
            log_end: Offset(0),
        };
        let head = frame::encode_fetch_response(fetch.correlation, &header, 0);
        self.respond(fetch.target, fetch.sequence, vec![Bytes::from(head)]);
    }

    /// Queues one outgoing frame on a replication connection.
    fn send_frame(&mut self, target: ConnRef, bytes: Vec<u8>) {
        let Some(connection) = self.connection_mut(target) else {
            return;
        };
        let sequence = connection.reserve();
        self.respond(target, sequence, vec![Bytes::from(bytes)]);
    }

    // ----- follower side -----

    /// Connects to the leader's replication address and says hello.
    fn connect_link(&mut self, link: OutLink) -> Option<ConnRef> {
        let cluster = self.config.cluster.clone()?;
        let address = cluster.node(cluster.leader)?.replication;
        let socket = match connect_nonblocking(address) {
            Ok(socket) => socket,
            Err(error) => {
                tracing::debug!(%address, %error, "cannot connect to the leader");
                return None;
            }
        };
        let target = self.add_connection_of(OwnedFd::from(socket), ConnKind::ReplicaOut(link))?;
        self.replication.correlation += 1;
        let hello = Frame::Hello {
            cluster_id: &cluster.id,
            node_id: NodeId(cluster.node_id),
        };
        let bytes = frame::encode(self.replication.correlation, &hello);
        self.send_frame(target, bytes);
        Some(target)
    }

    fn drive_control(&mut self, now: Instant) {
        let control = &mut self.replication.control;
        if let Some(deadline) = control.deadline {
            if deadline <= now {
                if let Some(conn) = control.conn {
                    self.close(conn, "the leader did not answer the topic poll in time");
                }
                return;
            }
        }
        let control = &mut self.replication.control;
        match control.conn {
            None => {
                if control.retry_at.is_some_and(|at| at > now) {
                    return;
                }
                control.retry_at = Some(now + RECONNECT_BACKOFF);
                if let Some(conn) = self.connect_link(OutLink::Control) {
                    let control = &mut self.replication.control;
                    control.conn = Some(conn);
                    control.ready = false;
                    control.deadline = Some(now + HELLO_TIMEOUT);
                }
            }
            Some(conn) => {
                if !control.ready || control.deadline.is_some() {
                    return;
                }
                if control.next_poll.is_some_and(|at| at > now) {
                    return;
                }
                control.next_poll = Some(now + TOPICS_POLL);
                control.deadline = Some(now + HELLO_TIMEOUT);
                tracing::debug!("asking the leader for its topics");
                self.replication.correlation += 1;
                let bytes = frame::encode(self.replication.correlation, &Frame::Topics);
                self.send_frame(conn, bytes);
            }
        }
    }

    fn drive_links(&mut self, now: Instant) {
        enum Action {
            Connect(String, u32),
            Drop(ConnRef),
            Fetch(ConnRef, Vec<u8>),
        }
        let fetch_max_bytes = self.config.replication.fetch_max_bytes;
        let fetch_wait_ms = self.config.replication.fetch_wait_ms;
        let mut actions = Vec::new();
        for (topic, partition, state) in self.partitions.iter_mut() {
            let Replica::Follower(link) = &mut state.replica else {
                continue;
            };
            if link.stopped {
                continue;
            }
            let Some(conn) = link.conn else {
                if link.retry_at <= now {
                    link.retry_at = now + RECONNECT_BACKOFF;
                    actions.push(Action::Connect(topic.to_string(), partition));
                }
                continue;
            };
            if link.deadline.is_some_and(|deadline| deadline <= now) {
                actions.push(Action::Drop(conn));
                continue;
            }
            if !link.ready || link.fetch_not_before > now {
                continue;
            }
            if let Some(args) = link.core.next_fetch() {
                link.correlation += 1;
                let fetch = frame::Fetch {
                    topic,
                    partition,
                    fetch_offset: args.fetch_offset,
                    last_fetched_epoch: args.last_fetched_epoch,
                    max_bytes: fetch_max_bytes,
                    max_wait_ms: fetch_wait_ms,
                    written_end: args.written_end,
                    durable_end: args.durable_end,
                };
                let bytes = frame::encode(link.correlation, &Frame::Fetch(fetch));
                link.deadline =
                    Some(now + Duration::from_millis(u64::from(fetch_wait_ms)) + ANSWER_GRACE);
                actions.push(Action::Fetch(conn, bytes));
            }
        }
        for action in actions {
            match action {
                Action::Connect(topic, partition) => {
                    let link = OutLink::Partition {
                        topic: topic.clone(),
                        partition,
                    };
                    let conn = self.connect_link(link);
                    if let Some(link) = self.link_mut(&topic, partition) {
                        link.conn = conn;
                        link.ready = false;
                        link.deadline = conn.map(|_| now + HELLO_TIMEOUT);
                    }
                }
                Action::Drop(conn) => self.close(conn, "the leader did not answer in time"),
                Action::Fetch(conn, bytes) => self.send_frame(conn, bytes),
            }
        }
    }

    fn link_mut(&mut self, topic: &str, partition: u32) -> Option<&mut FollowerLink> {
        self.follower_mut(topic, partition).map(|(_, link)| link)
    }

    /// The partition's log handle and follower link, if this node follows it.
    fn follower_mut(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> Option<(PartitionHandle, &mut FollowerLink)> {
        let state = self
            .partitions
            .get_mut(topic, i32::try_from(partition).ok()?)?;
        match &mut state.replica {
            Replica::Follower(link) => Some((state.handle, link)),
            _ => None,
        }
    }

    /// A replication connection of this follower closed: its link connects again later.
    pub(crate) fn on_link_closed(&mut self, link: &OutLink) {
        let retry_at = Instant::now() + RECONNECT_BACKOFF;
        match link {
            OutLink::Control => {
                let control = &mut self.replication.control;
                control.conn = None;
                control.ready = false;
                control.deadline = None;
                control.retry_at = Some(retry_at);
            }
            OutLink::Partition { topic, partition } => {
                if let Some(link) = self.link_mut(topic, *partition) {
                    link.conn = None;
                    link.ready = false;
                    link.deadline = None;
                    link.retry_at = retry_at;
                    link.core.on_fetch_failed();
                }
            }
        }
    }

    /// Handles one frame from the leader.
    pub(crate) fn on_replica_out(&mut self, target: ConnRef, link: &OutLink, bytes: &Bytes) {
        let (_, decoded) = match frame::decode(bytes) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.reject(target, &format!("bad frame from the leader: {error}"));
                return;
            }
        };
        tracing::debug!(frame = frame_name(&decoded), ?link, "frame from the leader");
        match (decoded, link) {
            (Frame::HelloOk { .. }, OutLink::Control) => {
                let control = &mut self.replication.control;
                control.ready = true;
                control.deadline = None;
                control.next_poll = None;
            }
            (Frame::HelloOk { .. }, OutLink::Partition { topic, partition }) => {
                if let Some(link) = self.link_mut(topic, *partition) {
                    link.ready = true;
                    link.deadline = None;
                }
            }
            (Frame::TopicsResponse(entries), OutLink::Control) => {
                self.replication.control.deadline = None;
                self.learn_topics(entries);
            }
            (Frame::FetchResponse(header, records), OutLink::Partition { topic, partition }) => {
                self.on_fetched(topic, *partition, &header, records);
            }
            (Frame::HighWatermark(notice), OutLink::Partition { topic, partition })
                if notice.topic == topic && notice.partition == *partition =>
            {
                self.on_leader_high_watermark(topic, *partition, &notice);
            }
            (Frame::Error { code, message }, _) => {
                tracing::warn!(?code, message, "the leader refused");
                self.close(target, "refused by the leader");
            }
            (other, _) => {
                let reason = format!("unexpected frame {:?} from the leader", frame_name(&other));
                self.reject(target, &reason);
            }
        }
    }

    /// The leader's HW moved while this follower's fetch is parked there.
    fn on_leader_high_watermark(
        &mut self,
        topic: &str,
        partition: u32,
        notice: &frame::HighWatermark<'_>,
    ) {
        let Some((handle, link)) = self.follower_mut(topic, partition) else {
            return;
        };
        let before = link.core.high_watermark();
        link.core
            .on_high_watermark(notice.high_watermark, notice.log_start, notice.leader_epoch);
        if link.core.high_watermark() != before {
            self.replication.hw_moved = true;
            self.partitions.publish(&self.wal, handle);
        }
    }

    /// Appends a fetch answer's batches at the log end.
    fn on_fetched(
        &mut self,
        topic: &str,
        partition: u32,
        header: &FetchResponseHeader,
        records: &[u8],
    ) {
        let now = Instant::now();
        let Some((handle, link)) = self.follower_mut(topic, partition) else {
            return;
        };
        link.deadline = None;
        if let Some(code) = header.error {
            link.core.on_fetch_failed();
            match code {
                FrameError::OffsetOutOfRange => {
                    tracing::error!(
                        topic,
                        partition,
                        log_end = %link.core.log_end(),
                        "the leader has no data at this replica's log end: the logs diverged; \
                         fetching stops until an operator repairs this replica"
                    );
                    link.stopped = true;
                }
                _ => link.fetch_not_before = now + FETCH_RETRY * 50,
            }
            return;
        }
        let appended = append_fetched(&mut self.wal, handle, records);
        let Some(Replica::Follower(link)) = self
            .partitions
            .get_mut(topic, i32::try_from(partition).unwrap_or(-1))
            .map(|state| &mut state.replica)
        else {
            return;
        };
        let before = link.core.high_watermark();
        link.core
            .on_response(header.high_watermark, header.log_start, header.leader_epoch);
        match appended {
            Ok(Fetched {
                log_end,
                last_epoch,
                pushed_back,
            }) => {
                if let Some(epoch) = last_epoch {
                    link.core.on_appended(log_end, epoch);
                }
                if pushed_back {
                    link.fetch_not_before = now + FETCH_RETRY;
                }
            }
            Err(reason) => {
                tracing::error!(
                    topic,
                    partition,
                    reason,
                    "cannot append the leader's batches"
                );
                link.stopped = true;
            }
        }
        if link.core.high_watermark() != before {
            self.replication.hw_moved = true;
        }
        self.metrics
            .replication
            .bytes_in
            .add(u64::try_from(records.len()).unwrap_or(0));
        self.partitions.publish(&self.wal, handle);
    }

    /// Creates the replicated topics the leader has and this node lacks.
    fn learn_topics(&mut self, entries: Vec<frame::TopicEntry>) {
        let Some(cluster) = self.config.cluster.clone() else {
            return;
        };
        for entry in entries {
            if self.partitions.topic(&entry.name).is_some() {
                continue;
            }
            let replicas = cluster.replicas(entry.replication_factor);
            if !replicas.contains(&cluster.node_id) {
                continue;
            }
            let replication = TopicReplication::new(replicas, &entry.policy);
            let created = self.partitions.create(
                &mut self.wal,
                &self.metrics,
                &entry.name,
                entry.partitions,
                Some(replication),
                Some(topic_id_hex(entry.topic_id)),
            );
            match created {
                Ok(_) => tracing::info!(topic = %entry.name, "topic learned from the leader"),
                Err(code) => tracing::warn!(topic = %entry.name, %code, "cannot create a topic"),
            }
        }
    }

    /// Answers every parked replica fetch at once (the node stops).
    pub(crate) fn release_replication(&mut self) {
        self.answer_replica_fetches(Instant::now(), true);
    }

    /// Opens a socket to `address` and adds it as a connection of `kind`.
    fn add_connection_of(&mut self, fd: OwnedFd, kind: ConnKind) -> Option<ConnRef> {
        let target = self.add_connection(fd)?;
        if let Some(connection) = self.connection_mut(target) {
            connection.kind = kind;
        }
        Some(target)
    }
}

/// What appending a fetch answer came to.
struct Fetched {
    log_end: Offset,
    last_epoch: Option<Epoch>,
    /// The log pushed back before the end: the rest is fetched again.
    pushed_back: bool,
}

/// Appends the whole batches of `records` that start at or after the log end; earlier ones
/// are here already. A gap, a torn batch or a failed append is an error.
fn append_fetched(
    wal: &mut Wal,
    handle: PartitionHandle,
    records: &[u8],
) -> std::result::Result<Fetched, String> {
    let mut log_end = wal.ends(handle).map_err(|e| e.to_string())?.log_end;
    let mut last_epoch = None;
    let mut position = 0;
    while position < records.len() {
        let rest = &records[position..];
        let size = match ringlog_batch::peek_size_bytes(rest) {
            Ok(Some(size)) if size <= rest.len() => size,
            Ok(_) => return Err(format!("a torn batch at byte {position} of an answer")),
            Err(error) => return Err(format!("a bad batch at byte {position}: {error}")),
        };
        let batch = &rest[..size];
        let header = ringlog_batch::BatchHeader::parse(batch).map_err(|e| e.to_string())?;
        let base = Offset(u64::try_from(header.base_offset).map_err(|e| e.to_string())?);
        let next = base.add_count(u64::try_from(header.last_offset_delta).unwrap_or(0) + 1);
        position += size;
        if next <= log_end {
            continue;
        }
        if base != log_end {
            return Err(format!(
                "batch at {base} does not start at the log end {log_end}"
            ));
        }
        let epoch = Epoch(u32::try_from(header.partition_leader_epoch).unwrap_or(0));
        match wal.append(handle, batch, epoch) {
            Ok(info) => {
                assert_eq!(
                    info.base_offset, base,
                    "a follower keeps the leader's offsets"
                );
                log_end = info.next_offset;
                last_epoch = Some(epoch);
            }
            Err(ringlog_wal::Error::Backpressure { .. }) => {
                return Ok(Fetched {
                    log_end,
                    last_epoch,
                    pushed_back: true,
                });
            }
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(Fetched {
        log_end,
        last_epoch,
        pushed_back: false,
    })
}

/// A socket connecting to `address`; the connection completes in the background (the
/// ring's first send and receive on it wait for it, and report a refusal).
fn connect_nonblocking(address: std::net::SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    match socket.connect(&SockAddr::from(address)) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    socket.set_nonblocking(false)?;
    socket.set_tcp_nodelay(true)?;
    Ok(socket)
}

fn frame_name(frame: &Frame<'_>) -> &'static str {
    match frame {
        Frame::Hello { .. } => "Hello",
        Frame::HelloOk { .. } => "HelloOk",
        Frame::Fetch(_) => "Fetch",
        Frame::FetchResponse(..) => "FetchResponse",
        Frame::DurableReport(_) => "DurableReport",
        Frame::Topics => "Topics",
        Frame::TopicsResponse(_) => "TopicsResponse",
        Frame::Error { .. } => "Error",
        Frame::HighWatermark(_) => "HighWatermark",
    }
}
