//! A shard: one thread, one io_uring (shared with its partition logs through `Wal`), its
//! partitions and the connections accepted on its `SO_REUSEPORT` listener.
//!
//! The loop: wait on the ring (at most [`LOOP_WAKE_MAX`], so the stop flag and the
//! housekeeper's reports are seen; another shard's `MSG_RING` wake-up ends the wait) -> let
//! the log reap its completions -> handle socket completions (accepts, receives, sends) ->
//! handle the work and answers other shards queued (`crate::forward`) -> on a follower node,
//! start the commit of what the leader sent -> answer the Produce requests whose batches
//! became durable (before replication's sends) -> replication -> answer the Produce requests
//! its timers released, and the long-polling Fetches that have enough data
//! or reached their deadline -> start the next commit cycle -> queue this turn's messages for
//! other shards and wake them. Socket ops and wake-ups use tags at or above
//! `EXTERNAL_TAG_MIN`.
//!
//! Invariants: a Produce with acks 1 or -1 is answered only after the durable end of every
//! partition it appended to covers its batches (or the partition is fenced: then that
//! partition's answer is KAFKA_STORAGE_ERROR); nothing a client sends can panic the shard
//! (bad frames close their connection, bad requests get error codes); the only blocking
//! calls are the admin paths (opening partitions for CreateTopics, storing the topic
//! registry) and reads of cold segment data, which wait on this shard's own ring.

use std::net::SocketAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringlog_kafka::frame::{frame_length, SIZE_PREFIX_SIZE_BYTES};
use ringlog_kafka::{decode_request, encode_refusal, Decoded};
use ringlog_uring::{Completion, OpBuf, OptionalOpcode};
use ringlog_wal::{Wal, EXTERNAL_TAG_MIN};

use crate::api::{ParkedFetch, ParkedProduces, PendingProduce};
use crate::config::Config;
use crate::connection::{ConnKind, ConnRef, Connection};
use crate::error::{Error, Result};
use crate::forward::{Forwarding, Mesh};
use crate::metrics::Metrics;
use crate::partitions::{Partitions, SharedRegistry};
use crate::replica::ReplicationIo;

/// Longest the loop sleeps without looking at the stop flag.
const LOOP_WAKE_MAX: Duration = Duration::from_millis(50);
/// How long a stopping shard waits for commits and sends in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How soon the loop retries messages that found their queue full.
const BACKLOG_RETRY: Duration = Duration::from_micros(200);

/// How soon the loop retries parked Produce partitions at the latest.
const PARKED_RETRY: Duration = Duration::from_millis(1);

/// Kinds of socket op, in bits 56..62 of a tag.
const KIND_ACCEPT: u64 = 1;
const KIND_RECV: u64 = 2;
const KIND_SEND: u64 = 3;
const KIND_CANCEL: u64 = 4;
/// A wake-up (`msg_ring`) this shard sent to another; the index is the target shard.
const KIND_WAKE: u64 = 5;
const KIND_SHIFT: u32 = 56;
const GENERATION_SHIFT: u32 = 24;
const INDEX_MASK: u64 = (1 << GENERATION_SHIFT) - 1;

const _: () = assert!(EXTERNAL_TAG_MIN == 1 << 62);

fn socket_tag(kind: u64, connection: ConnRef) -> u64 {
    let index = u64::try_from(connection.index).expect("fits u64");
    assert!(index <= INDEX_MASK, "connection index {index}");
    EXTERNAL_TAG_MIN
        | (kind << KIND_SHIFT)
        | (u64::from(connection.generation) << GENERATION_SHIFT)
        | index
}

/// The tag of a wake-up sent to shard `target`.
pub(crate) fn wake_tag(target: usize) -> u64 {
    socket_tag(
        KIND_WAKE,
        ConnRef {
            index: target,
            generation: 0,
        },
    )
}

fn untag(tag: u64) -> (u64, ConnRef) {
    let kind = (tag >> KIND_SHIFT) & 0x3f;
    let generation =
        u32::try_from((tag >> GENERATION_SHIFT) & u64::from(u32::MAX)).expect("masked to 32 bits");
    let index = usize::try_from(tag & INDEX_MASK).expect("fits usize");
    (kind, ConnRef { index, generation })
}

/// One shard's state.
pub(crate) struct Shard {
    pub index: usize,
    pub wal: Wal,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub partitions: Partitions,
    listener: Arc<OwnedFd>,
    /// The replication listener (on a node of a cluster).
    replication_listener: Option<Arc<OwnedFd>>,
    accepting: bool,
    pub stop: Arc<AtomicBool>,
    connections: Vec<Option<Connection>>,
    free_slots: Vec<usize>,
    next_generation: u32,
    pub produces: Vec<PendingProduce>,
    pub parked: ParkedProduces,
    pub fetches: Vec<ParkedFetch>,
    completions: Vec<Completion>,
    pub forwarding: Forwarding,
    pub replication: ReplicationIo,
}

impl Shard {
    /// Opens the shard's log (and ring) and the partitions of the registry that it owns.
    /// Returns the shard and its ring's descriptor, for the other shards' wake-ups; the
    /// shard cannot serve until [`connect`](Self::connect) gave it theirs.
    pub fn open(
        index: usize,
        listeners: (OwnedFd, Option<OwnedFd>),
        config: Arc<Config>,
        stop: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
        shared: (SharedRegistry, Arc<Mesh>),
    ) -> Result<Shard> {
        let (registry, mesh) = shared;
        let (listener, replication_listener) = listeners;
        let mut wal = Wal::new(config.wal_config())?;
        if config.cores > 1 && !wal.ring_mut().supports(OptionalOpcode::MsgRing) {
            return Err(Error::ConfigInvalid {
                reason: format!(
                    "cores={}: shards wake each other with IORING_OP_MSG_RING, which this \
                     kernel lacks (Linux 5.18 or later has it); run with cores = 1",
                    config.cores
                ),
            });
        }
        let partitions = Partitions::open(registry, index, &config, &mut wal, &metrics)?;
        let ring_fds = vec![wal.ring_mut().ring_fd(); config.cores];
        Ok(Shard {
            forwarding: Forwarding::new(mesh, ring_fds),
            index,
            wal,
            config,
            metrics,
            partitions,
            listener: Arc::new(listener),
            replication_listener: replication_listener.map(Arc::new),
            accepting: false,
            stop,
            connections: Vec::new(),
            free_slots: Vec::new(),
            next_generation: 1,
            produces: Vec::new(),
            parked: ParkedProduces::default(),
            fetches: Vec::new(),
            completions: Vec::new(),
            replication: ReplicationIo::default(),
        })
    }

    /// Gives the shard every shard's ring descriptor (index = shard).
    pub fn connect(&mut self, ring_fds: Vec<RawFd>) {
        let mesh = self.forwarding.mesh.clone();
        self.forwarding = Forwarding::new(mesh, ring_fds);
    }

    /// This shard's ring descriptor.
    pub fn ring_fd(&mut self) -> RawFd {
        self.wal.ring_mut().ring_fd()
    }

    /// Serves until the stop flag is raised, then stops cleanly.
    pub fn run(&mut self) -> Result<()> {
        self.arm_accept();
        self.arm_replication_accept();
        self.metrics.shards_up.fetch_add(1, Ordering::Relaxed);
        let result = self.serve();
        self.metrics.shards_up.fetch_sub(1, Ordering::Relaxed);
        let stopped = self.stop_gracefully();
        result.and(stopped)
    }

    fn serve(&mut self) -> Result<()> {
        while !self.stop.load(Ordering::Relaxed) {
            self.step()?;
            if self.wal.has_pending_events() {
                // The step's last poll reaped completions (a socket's, a commit's): waiting
                // for another one would leave these for up to `LOOP_WAKE_MAX`.
                self.wal.ring_mut().submit_and_wait(0)?;
                continue;
            }
            let timeout = self.wait_timeout();
            self.wal.ring_mut().submit_and_wait_timeout(1, timeout)?;
        }
        Ok(())
    }

    /// One turn of the loop, without waiting.
    fn step(&mut self) -> Result<()> {
        self.wal.poll()?;
        // Commits that completed freed room: parked Produce partitions go first.
        self.retry_parked(Instant::now());
        let mut completions = std::mem::take(&mut self.completions);
        self.wal.drain_external_completions(&mut completions);
        for completion in completions.drain(..) {
            self.on_completion(completion);
        }
        self.completions = completions;
        self.drain_inbound();
        self.retry_parked(Instant::now());
        let moved = self.on_durable();
        if self.is_follower_node() {
            // A follower starts the commit of what the leader sent before it queues the next
            // fetch and any other send: SQEs run in queue order, and the commit is what the
            // leader's acks wait for, a send on loopback costs 5-15 us of this thread's time.
            self.wal.poll()?;
        }
        // Acks first: the sends replication queues (a leader's HighWatermark notices to the
        // followers, with the HW that just moved) would otherwise go out before them.
        self.answer_produces();
        self.drive_replication(Instant::now());
        // What replication's timers decided (a semi-sync timeout, an ISR change).
        self.answer_produces();
        let moved = moved || std::mem::take(&mut self.replication.hw_moved);
        self.answer_fetches(moved, Instant::now());
        self.wal.poll()?;
        self.flush_outboxes();
        Ok(())
    }

    fn wait_timeout(&mut self) -> Duration {
        if self.forwarding.backlogged() {
            return BACKLOG_RETRY;
        }
        let now = Instant::now();
        let wake = self
            .fetches
            .iter()
            .map(|fetch| fetch.deadline.saturating_duration_since(now))
            .min()
            .map_or(LOOP_WAKE_MAX, |until| until.min(LOOP_WAKE_MAX));
        let wake = match self.replication_wake() {
            Some(at) => wake.min(at.saturating_duration_since(now)),
            None => wake,
        };
        match self.parked.deadline() {
            // The log may free room without a completion of ours (a spare segment filled).
            Some(deadline) => wake
                .min(deadline.saturating_duration_since(now))
                .min(PARKED_RETRY),
            None => wake,
        }
    }

    /// Stops accepting and reading, answers what becomes durable, waits for sends; with
    /// several shards, keeps serving the others' forwarded work until every shard is idle,
    /// so that no split waits for a shard that has stopped.
    fn stop_gracefully(&mut self) -> Result<()> {
        self.accepting = false;
        let _ = self.wal.ring_mut().cancel(
            socket_tag(KIND_ACCEPT, accept_ref()),
            socket_tag(KIND_CANCEL, accept_ref()),
        );
        if self.replication_listener.is_some() {
            let _ = self.wal.ring_mut().cancel(
                socket_tag(KIND_ACCEPT, replication_accept_ref()),
                socket_tag(KIND_CANCEL, replication_accept_ref()),
            );
        }
        let deadline = Instant::now() + STOP_GRACE;
        for index in 0..self.connections.len() {
            if let Some(connection) = self.connections[index].as_mut() {
                let _ = socket2::SockRef::from(&*connection.fd).shutdown(std::net::Shutdown::Read);
            }
        }
        while Instant::now() < deadline {
            // Parked fetches are answered with what there is: nobody waits for more now.
            let now = Instant::now();
            for fetch in &mut self.fetches {
                fetch.deadline = fetch.deadline.min(now);
            }
            self.release_replication();
            self.step()?;
            let busy = self.wal.is_committing()
                || !self.produces.is_empty()
                || !self.parked.is_empty()
                || !self.fetches.is_empty()
                || self.connections.iter().flatten().any(|c| c.send_in_flight);
            let idle = !busy && self.forwarding_idle();
            self.forwarding.mesh.set_idle(self.index, idle);
            if idle && self.forwarding.mesh.all_idle() {
                break;
            }
            let wait = if self.forwarding.backlogged() {
                BACKLOG_RETRY
            } else {
                LOOP_WAKE_MAX.min(Duration::from_millis(5))
            };
            if self.wal.has_pending_events() {
                self.wal.ring_mut().submit_and_wait(0)?;
            } else {
                self.wal.ring_mut().submit_and_wait_timeout(1, wait)?;
            }
        }
        tracing::info!(shard = self.index, "shard stopped");
        Ok(())
    }

    fn arm_accept(&mut self) {
        match self
            .wal
            .ring_mut()
            .accept_multishot(&self.listener, socket_tag(KIND_ACCEPT, accept_ref()))
        {
            Ok(()) => self.accepting = true,
            Err(error) => tracing::error!(shard = self.index, %error, "cannot arm accept"),
        }
    }

    fn arm_replication_accept(&mut self) {
        let Some(listener) = self.replication_listener.clone() else {
            return;
        };
        let tag = socket_tag(KIND_ACCEPT, replication_accept_ref());
        if let Err(error) = self.wal.ring_mut().accept_multishot(&listener, tag) {
            tracing::error!(shard = self.index, %error, "cannot arm the replication accept");
        }
    }

    fn on_completion(&mut self, mut completion: Completion) {
        if completion.foreign {
            // Another shard's wake-up: its messages are drained on every turn.
            return;
        }
        let (kind, connection) = untag(completion.tag);
        match kind {
            KIND_ACCEPT => self.on_accept(&mut completion, connection.index == 1),
            KIND_RECV => self.on_recv(connection, completion),
            KIND_SEND => self.on_send(connection, completion),
            KIND_WAKE => {
                self.forwarding.wakes_in_flight -= 1;
                if let Err(error) = &completion.result {
                    // The target still drains its queues within one LOOP_WAKE_MAX.
                    tracing::debug!(shard = self.index, target = connection.index, %error,
                        "wake-up failed");
                }
            }
            _ => {}
        }
    }

    fn on_accept(&mut self, completion: &mut Completion, replication: bool) {
        if let Some(fd) = completion.take_accepted() {
            let added = self.add_connection(fd);
            if let (true, Some(target)) = (replication, added) {
                if let Some(connection) = self.connection_mut(target) {
                    connection.kind = ConnKind::ReplicaIn { follower: None };
                }
            }
        } else if let Err(error) = &completion.result {
            tracing::warn!(shard = self.index, %error, "accept failed");
        }
        if !completion.more && !self.stop.load(Ordering::Relaxed) {
            if replication {
                self.arm_replication_accept();
            } else {
                self.arm_accept();
            }
        }
    }

    /// Adds a connection and starts receiving on it.
    pub(crate) fn add_connection(&mut self, fd: OwnedFd) -> Option<ConnRef> {
        let open = self.connections.len() - self.free_slots.len();
        if open >= self.config.connections_max {
            tracing::warn!(shard = self.index, open, "connections_max reached; closing");
            return None;
        }
        let peer = socket2::SockRef::from(&fd)
            .peer_addr()
            .ok()
            .and_then(|address| address.as_socket())
            .map_or_else(
                || "unknown".to_string(),
                |address: SocketAddr| address.to_string(),
            );
        let _ = socket2::SockRef::from(&fd).set_tcp_nodelay(true);
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        let connection = Connection::new(fd, generation, peer);
        let index = match self.free_slots.pop() {
            Some(index) => {
                self.connections[index] = Some(connection);
                index
            }
            None => {
                self.connections.push(Some(connection));
                self.connections.len() - 1
            }
        };
        self.metrics
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        self.metrics
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        let target = ConnRef { index, generation };
        self.arm_recv(target);
        Some(target)
    }

    pub fn connection_mut(&mut self, connection: ConnRef) -> Option<&mut Connection> {
        self.connections
            .get_mut(connection.index)?
            .as_mut()
            .filter(|open| open.generation == connection.generation)
    }

    fn arm_recv(&mut self, target: ConnRef) {
        let requests_max = self.config.connection_requests_max;
        let Some(connection) = self.connection_mut(target) else {
            return;
        };
        if connection.closing || connection.recv_in_flight {
            return;
        }
        if connection.pending_count() >= requests_max {
            return;
        }
        let Some(buf) = connection.recv_buf.take() else {
            return;
        };
        let fd = connection.fd.clone();
        let tag = socket_tag(KIND_RECV, target);
        match self.wal.ring_mut().recv(&fd, OpBuf::Vec(buf), tag) {
            Ok(()) => {
                if let Some(connection) = self.connection_mut(target) {
                    connection.recv_in_flight = true;
                }
            }
            Err(error) => self.close(target, &format!("cannot receive: {error}")),
        }
    }

    fn on_recv(&mut self, target: ConnRef, completion: Completion) {
        let Some(connection) = self.connection_mut(target) else {
            return;
        };
        connection.recv_in_flight = false;
        if let Some(OpBuf::Vec(buf)) = completion.buf {
            let received = match completion.result {
                Ok(received) => usize::try_from(received).unwrap_or(0).min(buf.len()),
                Err(_) => 0,
            };
            connection.take_received(buf, received);
            if received == 0 {
                connection.closing = true;
            }
            self.metrics
                .bytes_in
                .fetch_add(received as u64, Ordering::Relaxed);
        }
        let closing = self.connection_mut(target).is_some_and(|c| c.closing);
        if closing {
            self.close(target, "peer closed");
            return;
        }
        self.process_input(target);
        self.arm_recv(target);
    }

    /// Splits the input into frames and handles them, while the connection has room for
    /// more requests in flight.
    fn process_input(&mut self, target: ConnRef) {
        let size_max = self.config.request_size_bytes_max;
        let requests_max = self.config.connection_requests_max;
        loop {
            let Some(connection) = self.connection_mut(target) else {
                return;
            };
            if connection.closing || connection.pending_count() >= requests_max {
                return;
            }
            if connection.kind != ConnKind::Kafka {
                if !self.process_replication_input(target) {
                    return;
                }
                continue;
            }
            let size = match frame_length(&connection.input, size_max) {
                Ok(Some(size)) => size,
                Ok(None) => return,
                Err(error) => {
                    self.reject(target, &format!("bad frame: {error}"));
                    return;
                }
            };
            let frame_size = SIZE_PREFIX_SIZE_BYTES + size;
            if connection.input.len() < frame_size {
                let missing = frame_size - connection.input.len();
                connection.input.reserve(missing);
                return;
            }
            let frame = connection
                .input
                .split_to(frame_size)
                .freeze()
                .slice(SIZE_PREFIX_SIZE_BYTES..);
            self.on_frame(target, frame);
        }
    }

    /// Takes one replication frame off the input and handles it; false if there is none.
    fn process_replication_input(&mut self, target: ConnRef) -> bool {
        let Some(connection) = self.connection_mut(target) else {
            return false;
        };
        let size = match ringlog_replication::frame::frame_length(&connection.input) {
            Ok(Some(size)) => size,
            Ok(None) => return false,
            Err(error) => {
                self.reject(target, &format!("bad replication frame: {error}"));
                return false;
            }
        };
        if connection.input.len() < size {
            let missing = size - connection.input.len();
            connection.input.reserve(missing);
            return false;
        }
        let frame = connection.input.split_to(size).freeze();
        match connection.kind.clone() {
            ConnKind::ReplicaIn { .. } => self.on_replica_in(target, &frame),
            ConnKind::ReplicaOut(link) => self.on_replica_out(target, &link, &frame),
            ConnKind::Kafka => unreachable!("checked by the caller"),
        }
        true
    }

    fn on_frame(&mut self, target: ConnRef, frame: Bytes) {
        let started = Instant::now();
        if crate::status::api_key_of(&frame) == Some(crate::status::STATUS_API_KEY) {
            match crate::status::answer(&frame, &self.config, &self.metrics) {
                Some(out) => {
                    if let Some(connection) = self.connection_mut(target) {
                        let sequence = connection.reserve();
                        connection.fill(sequence, vec![Bytes::from(out)]);
                    }
                    self.flush(target);
                }
                None => self.reject(target, "bad status request"),
            }
            return;
        }
        match decode_request(frame) {
            Ok(Decoded::Request { header, request }) => {
                self.dispatch(target, header, request, started);
            }
            Ok(Decoded::Refused(refusal)) => {
                if !refusal.expects_response() {
                    self.reject(target, "Produce v0-2 with acks=0 (unsupported version)");
                    return;
                }
                let mut out = bytes::BytesMut::new();
                if encode_refusal(&mut out, &refusal).is_err() {
                    self.reject(target, "cannot encode a refusal");
                    return;
                }
                self.metrics
                    .error(ringlog_kafka::ErrorCode::UnsupportedVersion);
                if let Some(connection) = self.connection_mut(target) {
                    let sequence = connection.reserve();
                    connection.fill(sequence, vec![out.freeze()]);
                }
                self.flush(target);
            }
            Err(error) => self.reject(target, &format!("bad request: {error}")),
        }
    }

    /// Fills a reserved response slot and sends what is ready.
    pub fn respond(&mut self, target: ConnRef, sequence: u64, parts: Vec<Bytes>) {
        if let Some(connection) = self.connection_mut(target) {
            if connection.closing {
                return;
            }
            connection.fill(sequence, parts);
            self.flush(target);
        }
    }

    fn flush(&mut self, target: ConnRef) {
        let Some(connection) = self.connection_mut(target) else {
            return;
        };
        if connection.send_in_flight || connection.closing {
            return;
        }
        let Some(list) = connection.take_ready() else {
            return;
        };
        let fd = connection.fd.clone();
        self.send_list(target, &fd, list);
    }

    fn send_list(&mut self, target: ConnRef, fd: &Arc<OwnedFd>, list: ringlog_uring::GatherList) {
        match self
            .wal
            .ring_mut()
            .sendmsg(fd, list, socket_tag(KIND_SEND, target))
        {
            Ok(()) => {
                if let Some(connection) = self.connection_mut(target) {
                    connection.send_in_flight = true;
                }
            }
            Err(error) => self.close(target, &format!("cannot send: {error}")),
        }
    }

    fn on_send(&mut self, target: ConnRef, completion: Completion) {
        let Some(connection) = self.connection_mut(target) else {
            return;
        };
        connection.send_in_flight = false;
        let sent = match completion.result {
            Ok(sent) => usize::try_from(sent).unwrap_or(0),
            Err(error) => {
                self.close(target, &format!("send failed: {error}"));
                return;
            }
        };
        let closing = connection.closing;
        let close_after_send = connection.close_after_send;
        let fd = connection.fd.clone();
        self.metrics
            .bytes_out
            .fetch_add(sent as u64, Ordering::Relaxed);
        if closing {
            self.close(target, "closing");
            return;
        }
        if let Some(mut rest) = completion.gather {
            rest.advance(sent);
            if !rest.is_empty() {
                self.send_list(target, &fd, rest);
                return;
            }
        }
        if close_after_send {
            self.close(target, "refused");
            return;
        }
        self.flush(target);
        self.process_input(target);
        self.arm_recv(target);
    }

    /// Closes a connection after a protocol violation, with a log line.
    pub(crate) fn reject(&mut self, target: ConnRef, reason: &str) {
        self.metrics
            .connections_rejected
            .fetch_add(1, Ordering::Relaxed);
        self.close(target, reason);
    }

    /// Starts closing a connection: shuts the socket down (ending the ops in flight) and
    /// releases the slot once the ring holds none of its buffers.
    pub fn close(&mut self, target: ConnRef, reason: &str) {
        let shard = self.index;
        let Some(connection) = self.connection_mut(target) else {
            return;
        };
        if !connection.closing || reason != "closing" {
            tracing::info!(shard, peer = %connection.peer, reason, "closing connection");
        }
        let first_close = !std::mem::replace(&mut connection.link_released, true);
        connection.closing = true;
        let kind = connection.kind.clone();
        let _ = socket2::SockRef::from(&*connection.fd).shutdown(std::net::Shutdown::Both);
        if let (true, ConnKind::ReplicaOut(link)) = (first_close, &kind) {
            self.on_link_closed(link);
        }
        if let (true, ConnKind::ReplicaIn { .. }) = (first_close, &kind) {
            self.replication.forget_connection(target);
        }
        let Some(connection) = self.connection_mut(target) else {
            return;
        };
        if connection.idle() {
            self.connections[target.index] = None;
            self.free_slots.push(target.index);
            self.metrics
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The listener's pseudo connection reference (tags of the accept).
fn accept_ref() -> ConnRef {
    ConnRef {
        index: 0,
        generation: 0,
    }
}

/// The replication listener's pseudo connection reference.
fn replication_accept_ref() -> ConnRef {
    ConnRef {
        index: 1,
        generation: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Tags carry kind, generation and index, and stay in the external range.
    #[test]
    fn tags_round_trip() {
        let target = ConnRef {
            index: 12345,
            generation: u32::MAX,
        };
        let tag = socket_tag(KIND_SEND, target);
        assert!(tag >= EXTERNAL_TAG_MIN);
        assert_eq!(untag(tag), (KIND_SEND, target));
    }
}
