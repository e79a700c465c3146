//! Socket operations of a shard's network loop: multishot accept, receive, send and gather
//! send (`SENDMSG`), on the same ring and under the same rules as the storage ops.
//!
//! Invariants (on top of the ring's):
//!
//! - A socket op keeps its socket open (`Arc<OwnedFd>`) and owns its buffer or gather list
//!   until its completion hands them back; canceling it or dropping the ring never frees them
//!   early.
//! - A receive target is uniquely owned (`Owned` or `Vec`) and non-empty, so `Ok(0)` always
//!   means the peer closed its side.
//! - Every send carries `MSG_NOSIGNAL` (a closed peer is `EPIPE`, never `SIGPIPE`) and
//!   `MSG_WAITALL` (the kernel keeps sending until every byte is out), and at most
//!   [`SEND_BYTES_MAX`](crate::gather::SEND_BYTES_MAX) bytes.
//! - The fault plan never applies here: faults are for the durable path.
//!
//! Buffer rings for multishot receive (`IORING_RECV_MULTISHOT` with provided buffers) and
//! `SEND_ZC` are later optimisations (DESIGN.md section 3); these single-shot ops are the
//! baseline they will be measured against.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use crate::error::IoError;
use crate::gather::GatherList;
use crate::op::{Op, OpKind};
use crate::ring::{assert_send_len, transfer_len, OpBuf, OptionalOpcode, Ring};

/// Flags of every send: no SIGPIPE on a closed peer, and no short send unless interrupted.
const SEND_FLAGS: i32 = libc::MSG_NOSIGNAL | libc::MSG_WAITALL;

/// Descriptor flags of every accepted connection: not inherited by child processes.
const ACCEPT_FLAGS: i32 = libc::SOCK_CLOEXEC;

impl Ring {
    /// Arms a multishot accept (`IORING_OP_ACCEPT` with `IORING_ACCEPT_MULTISHOT`) on a
    /// listening socket. Every accepted connection is a [`Completion`](crate::Completion)
    /// under `tag` with `result: Ok(fd)`, `more: true`, and the descriptor itself, which
    /// [`Completion::take_accepted`](crate::Completion::take_accepted) hands over as an
    /// `OwnedFd` (a completion dropped without taking it closes the connection).
    ///
    /// The accept stays armed, and keeps `listener` open, until a completion comes with
    /// `more: false`: then it has ended (an error such as `Canceled`, or the kernel stopped it,
    /// e.g. when the completion queue overflowed; that last completion may still carry an
    /// accepted connection) and the caller re-arms it. Accepted descriptors are `O_CLOEXEC`
    /// and blocking; blocking is right for io_uring, which never blocks a thread on them.
    pub fn accept_multishot(&mut self, listener: &Arc<OwnedFd>, tag: u64) -> Result<(), IoError> {
        self.require(OptionalOpcode::Accept)?;
        self.accept(
            Op::new(tag, OpKind::AcceptMulti, Some(listener), None),
            None,
        )
    }

    /// Queues a single-shot receive (`IORING_OP_RECV`) of up to `buf.len()` bytes into `buf`,
    /// which must be `OpBuf::Owned` or `OpBuf::Vec` (receiving into a `Vec` fills its length,
    /// not its capacity) and not empty. The completion hands `buf` back with `Ok(n)`: bytes
    /// `[0, n)` are the data; `Ok(0)` means the peer closed its side.
    ///
    /// Each receive is one SQE and one buffer per connection. Multishot receive into a
    /// provided buffer ring (`IORING_RECV_MULTISHOT`, `IORING_REGISTER_PBUF_RING`) would save
    /// both, and is a later optimisation, to be measured first.
    ///
    /// Panics on a `Shared` or `Bytes` buffer, or an empty one (programmer errors). On `Err`,
    /// nothing was queued and `buf` is dropped.
    pub fn recv(&mut self, socket: &Arc<OwnedFd>, buf: OpBuf, tag: u64) -> Result<(), IoError> {
        assert!(
            matches!(buf, OpBuf::Owned(_) | OpBuf::Vec(_)),
            "a receive needs a uniquely owned buffer (Owned or Vec): {buf:?}"
        );
        assert!(!buf.is_empty(), "a receive into an empty buffer");
        assert_send_len(buf.len());
        self.require(OptionalOpcode::Recv)?;
        self.accept(Op::new(tag, OpKind::Recv, Some(socket), Some(buf)), None)
    }

    /// Queues a send (`IORING_OP_SEND`, `MSG_NOSIGNAL | MSG_WAITALL`) of all of `buf` (any
    /// variant; a `Shared` range must be published, asserted). The completion hands `buf`
    /// back with `Ok(n)`, the number of bytes sent.
    ///
    /// `n` can be smaller than `buf.len()`: with `MSG_WAITALL` the kernel keeps sending until
    /// every byte is out, so a short send means it was interrupted after sending `n` bytes
    /// (the op was canceled, or the connection failed and the next send will report the
    /// error). The caller resubmits the rest without copying:
    /// `let mut rest = GatherList::from(buf); rest.advance(n);` then
    /// [`sendmsg`](Self::sendmsg) it. A send to a slow reader stays in flight until the reader
    /// has taken all but the last socket buffer's worth: bound it with a
    /// [`timeout`](Self::timeout) and [`cancel`](Self::cancel).
    ///
    /// Panics on an empty buffer (programmer error). On `Err`, nothing was queued and `buf` is
    /// dropped.
    pub fn send(&mut self, socket: &Arc<OwnedFd>, buf: OpBuf, tag: u64) -> Result<(), IoError> {
        assert!(!buf.is_empty(), "a send of no bytes");
        assert_send_len(buf.len());
        buf.assert_readable();
        self.require(OptionalOpcode::Send)?;
        self.accept(Op::new(tag, OpKind::Send, Some(socket), Some(buf)), None)
    }

    /// Queues a gather send (`IORING_OP_SENDMSG`, `MSG_NOSIGNAL | MSG_WAITALL`) of the unsent
    /// bytes of `parts`, in chunk order. The op owns the list (its chunks, iovec array and
    /// `msghdr`) until the completion hands it back in
    /// [`Completion::gather`](crate::Completion::gather) with `Ok(n)`, the bytes sent by this
    /// op. Short sends are as in [`send`](Self::send): call `advance(n)` on the returned list
    /// and send it again while it is not empty.
    ///
    /// Panics if `parts` has nothing left to send (programmer error). On `Err`, nothing was
    /// queued and `parts` is dropped.
    pub fn sendmsg(
        &mut self,
        socket: &Arc<OwnedFd>,
        parts: GatherList,
        tag: u64,
    ) -> Result<(), IoError> {
        assert!(!parts.is_empty(), "a sendmsg with nothing left to send");
        self.require(OptionalOpcode::SendMsg)?;
        let mut op = Op::new(tag, OpKind::SendMsg, Some(socket), None);
        op.gather = Some(parts);
        self.accept(op, None)
    }
}

/// Builds the SQE of a socket op (pure, safe: it only copies addresses into the entry).
pub(crate) fn build_socket_entry(op: &mut Op) -> squeue::Entry {
    let fd = types::Fd(op.raw_fd());
    match &op.kind {
        OpKind::AcceptMulti => opcode::AcceptMulti::new(fd).flags(ACCEPT_FLAGS).build(),
        OpKind::Recv => {
            let buf = op.buf.as_mut().expect("a receive owns a buffer");
            let bytes = buf
                .writable_bytes()
                .expect("a receive owns an Owned or Vec buffer");
            opcode::Recv::new(fd, bytes.as_mut_ptr(), transfer_len(bytes.len())).build()
        }
        OpKind::Send => {
            let bytes = op.buf.as_ref().expect("a send owns a buffer").bytes();
            opcode::Send::new(fd, bytes.as_ptr(), transfer_len(bytes.len()))
                .flags(SEND_FLAGS)
                .build()
        }
        OpKind::SendMsg => {
            let parts = op.gather.as_mut().expect("a sendmsg owns a gather list");
            let flags = u32::try_from(SEND_FLAGS).expect("send flags are positive");
            opcode::SendMsg::new(fd, parts.kernel_message())
                .flags(flags)
                .build()
        }
        kind => panic!("not a socket op: {kind:?}"),
    }
}
