//! One client connection of a shard: its socket, its input bytes, and its responses, which
//! leave in request order (Kafka matches responses by order, not only by correlation id).
//!
//! Invariants: at most one receive and one send in flight; a response slot is reserved when
//! its request is read, in read order, and filled whenever its answer is ready (a Produce
//! waits for its commit, a Fetch may long-poll), but slots leave only from the front; at most
//! `connection_requests_max` slots exist (reading pauses at that depth); a connection is
//! released only when neither a receive nor a send is in flight, because the ring owns their
//! buffers until their completions; the receive buffer holds `RECV_BYTES_MIN` to
//! `RECV_BYTES_MAX` bytes.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ringlog_uring::{GatherList, OpBuf, GATHER_CHUNK_COUNT_MAX};

/// Bytes the first receive of a connection asks for.
pub(crate) const RECV_BYTES_MIN: usize = 64 * 1024;
/// Most bytes one receive asks for. A receive that fills its buffer (the socket held more)
/// doubles the buffer up to this, so a connection that streams Produce requests is drained
/// in a few large receives per turn of the shard's loop instead of 64 KiB at a time, while
/// a quiet connection keeps the small buffer. Bounds a connection's receive buffer.
pub(crate) const RECV_BYTES_MAX: usize = 1024 * 1024;
const _: () = assert!(RECV_BYTES_MIN <= RECV_BYTES_MAX);

/// Names a connection across its slot's reuse: the slot index and the generation it had
/// when the request was read. A reply to a connection that has gone is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnRef {
    pub index: usize,
    pub generation: u32,
}

/// What a connection carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConnKind {
    /// A Kafka client's requests (the default).
    Kafka,
    /// A follower's replication frames, on the leader; the follower's node id once it said
    /// hello.
    ReplicaIn { follower: Option<u32> },
    /// This follower's link to its leader: the topic poll, or one partition's fetches. Its
    /// slots hold the frames going out, in order.
    ReplicaOut(OutLink),
}

/// What an outgoing replication connection serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OutLink {
    /// Hello, then the topic list polls.
    Control,
    /// Hello, then the fetches and durable reports of one partition.
    Partition { topic: String, partition: u32 },
}

/// A client connection.
pub(crate) struct Connection {
    pub kind: ConnKind,
    pub fd: Arc<OwnedFd>,
    pub generation: u32,
    pub peer: String,
    /// Received bytes not yet split into frames.
    pub input: BytesMut,
    /// The receive buffer while no receive is in flight.
    pub recv_buf: Option<Vec<u8>>,
    pub recv_in_flight: bool,
    pub send_in_flight: bool,
    /// Responses in request order; `None` until the answer is ready.
    slots: VecDeque<Option<Vec<Bytes>>>,
    /// Sequence number of the front slot.
    head_sequence: u64,
    /// Set when the connection is being closed: nothing more is read or answered.
    pub closing: bool,
    /// Close once every ready response is sent (a refused replication handshake).
    pub close_after_send: bool,
    /// `close` has run once (an outgoing link was told it is gone).
    pub link_released: bool,
}

impl Connection {
    pub fn new(fd: OwnedFd, generation: u32, peer: String) -> Connection {
        Connection {
            kind: ConnKind::Kafka,
            fd: Arc::new(fd),
            generation,
            peer,
            input: BytesMut::with_capacity(RECV_BYTES_MIN),
            recv_buf: Some(vec![0; RECV_BYTES_MIN]),
            recv_in_flight: false,
            send_in_flight: false,
            slots: VecDeque::new(),
            head_sequence: 0,
            closing: false,
            close_after_send: false,
            link_released: false,
        }
    }

    /// Requests read and not yet sent.
    pub fn pending_count(&self) -> usize {
        self.slots.len()
    }

    /// Reserves the response slot of the request just read; returns its sequence number.
    pub fn reserve(&mut self) -> u64 {
        let sequence = self.head_sequence + self.slots.len() as u64;
        self.slots.push_back(None);
        sequence
    }

    /// Fills the slot `sequence` with the response's bytes.
    pub fn fill(&mut self, sequence: u64, parts: Vec<Bytes>) {
        assert!(
            sequence >= self.head_sequence,
            "slot {sequence} already sent"
        );
        let index = usize::try_from(sequence - self.head_sequence).expect("fits usize");
        let slot = self.slots.get_mut(index).expect("slot was reserved");
        assert!(slot.is_none(), "slot {sequence} filled twice");
        *slot = Some(parts);
    }

    /// The ready responses at the front, as one gather list (bounded by the chunk limit),
    /// or `None` if the front response is not ready.
    pub fn take_ready(&mut self) -> Option<GatherList> {
        let mut list: Option<GatherList> = None;
        while let Some(Some(parts)) = self.slots.front() {
            let taken = list.as_ref().map_or(0, GatherList::len);
            if taken > 0 && taken + parts.len() > GATHER_CHUNK_COUNT_MAX {
                break;
            }
            let Some(Some(parts)) = self.slots.pop_front() else {
                unreachable!("front checked above");
            };
            self.head_sequence += 1;
            let list = list.get_or_insert_with(GatherList::new);
            for part in parts.into_iter().filter(|part| !part.is_empty()) {
                list.push(OpBuf::Bytes(part));
            }
        }
        list.filter(|list| !list.is_empty())
    }

    /// Takes `received` bytes of the receive buffer `buf` into the input and keeps `buf` for
    /// the next receive, doubled (up to [`RECV_BYTES_MAX`]) if this receive filled it.
    pub fn take_received(&mut self, mut buf: Vec<u8>, received: usize) {
        assert!(
            received <= buf.len(),
            "received={received} len={}",
            buf.len()
        );
        if !self.closing {
            self.input.extend_from_slice(&buf[..received]);
        }
        if received == buf.len() && buf.len() < RECV_BYTES_MAX {
            buf.resize((buf.len() * 2).min(RECV_BYTES_MAX), 0);
        }
        self.recv_buf = Some(buf);
    }

    /// True when the ring holds none of this connection's buffers.
    pub fn idle(&self) -> bool {
        !self.recv_in_flight && !self.send_in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Responses filled out of order leave in request order.
    #[test]
    fn responses_leave_in_order() {
        let (left, _right) = std::os::unix::net::UnixStream::pair().expect("pair");
        let mut connection = Connection::new(OwnedFd::from(left), 1, "test".into());
        let first = connection.reserve();
        let second = connection.reserve();
        connection.fill(second, vec![Bytes::from_static(b"two")]);
        assert!(connection.take_ready().is_none());
        connection.fill(first, vec![Bytes::from_static(b"one")]);
        let list = connection.take_ready().expect("both ready");
        let sent: Vec<u8> = list
            .chunks()
            .iter()
            .flat_map(|c| c.bytes().to_vec())
            .collect();
        assert_eq!(sent, b"onetwo");
        assert_eq!(connection.pending_count(), 0);
    }

    // A receive that fills its buffer doubles it, up to the maximum; a partial one keeps
    // it; the bytes received reach the input either way.
    #[test]
    fn full_receives_grow_the_buffer_to_the_maximum() {
        let (left, _right) = std::os::unix::net::UnixStream::pair().expect("pair");
        let mut connection = Connection::new(OwnedFd::from(left), 1, "test".into());
        let mut expected_input = 0;
        let mut expected_len = RECV_BYTES_MIN;
        while expected_len < RECV_BYTES_MAX {
            let buf = connection.recv_buf.take().expect("a buffer");
            assert_eq!(buf.len(), expected_len);
            let received = buf.len();
            connection.take_received(buf, received);
            expected_input += received;
            expected_len = (expected_len * 2).min(RECV_BYTES_MAX);
        }
        let buf = connection.recv_buf.take().expect("a buffer");
        assert_eq!(buf.len(), RECV_BYTES_MAX);
        connection.take_received(buf, RECV_BYTES_MAX);
        let buf = connection.recv_buf.take().expect("a buffer");
        assert_eq!(buf.len(), RECV_BYTES_MAX, "never beyond the maximum");
        connection.take_received(buf, 10);
        assert_eq!(
            connection.recv_buf.as_ref().map(Vec::len),
            Some(RECV_BYTES_MAX)
        );
        assert_eq!(connection.input.len(), expected_input + RECV_BYTES_MAX + 10);
    }
}
