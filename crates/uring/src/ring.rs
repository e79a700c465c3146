//! The per-shard io_uring: operations that own their buffers until their completion.
//!
//! A caller queues operations ([`Ring::write`], [`Ring::fsync`], ...), each under a `tag` of
//! its choosing, calls [`Ring::submit_and_wait`], then [`Ring::reap`]s [`Completion`]s, each
//! carrying its tag, its result and the buffer the operation owned. Completions come back in
//! any order: a write followed by an fsync in the same submission is NOT covered by that fsync
//! unless the two were linked (`then_fsync` in [`Ring::write`]).
//!
//! Invariants:
//!
//! - Every SQE is built in safe code from an op held in the in-flight table; pushing it is the
//!   one `unsafe` point. The op keeps its buffer, descriptor (`Arc<OwnedFd>`) and path strings
//!   until its CQE is reaped, and [`Ring`]'s `Drop` waits for every CQE (or leaks the ops), so
//!   the kernel never touches freed or reused memory.
//! - A `Shared` write covers only published bytes of its `AppendBuf`, which its writer never
//!   writes again while the op's `Arc` is alive.
//! - `EINTR`/`EAGAIN` completions are resubmitted (at most [`RESUBMIT_COUNT_MAX`] times); a
//!   chain is resubmitted whole, in order, once both of its CQEs are back.
//! - ops in flight <= `ops_in_flight_max` <= CQ size, so single-shot completions cannot
//!   overflow the completion queue. Multishot accepts and foreign wake-ups can post more CQEs
//!   than that; the kernel then keeps the extra ones in its overflow list
//!   (`IORING_FEAT_NODROP`) and may end a multishot accept early (`more == false`).
//! - A fixed (registered-buffer) op is issued only for an allocation the op itself owns, found
//!   by allocation id, so a registration of freed memory is never used.
//! - The `user_data` of an SQE is its op's slot index (below 2^32); a CQE whose `user_data`
//!   has [`FOREIGN_TAG_BIT`] set was posted by another ring's [`Ring::msg_ring`] and names no
//!   op of this ring. Only `msg_ring` posts to a ring's fd, and it always sets that bit.
//! - A cancellation never frees anything: the canceled op keeps its buffer and descriptor
//!   until its own CQE (usually `ECANCELED`) is reaped, and is never resubmitted after it.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::ops::Range;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use crate::buffer::{AlignedBuf, AppendBuf, BufPool};
use crate::error::{IoError, ProbeError};
pub use crate::fault::FaultPlan;
use crate::fault::FaultState;
use crate::gather::{GatherList, SEND_BYTES_MAX};
use crate::op::{cqe_result_of, Link, Op, OpKind, OpState, OpTable};

/// How many times one operation is resubmitted after `EINTR`/`EAGAIN` before the ring gives
/// up and completes it with `IoError::Unexpected`.
pub const RESUBMIT_COUNT_MAX: u32 = 64;

/// How many rounds in a row `Drop` waits without any op completing before it gives up and
/// leaks the remaining ops. Each round blocks in the kernel for a CQE, so this is only reached
/// if the kernel keeps refusing to wait (EBUSY/EAGAIN) or keeps asking for resubmissions.
const DROP_FRUITLESS_ROUNDS_MAX: u32 = 100_000;

/// The kernel's limit on one registered buffer (`SZ_1G`).
const REGISTERED_BUFFER_BYTES_MAX: usize = 1 << 30;
/// The kernel's limit on the number of registered buffers (`IORING_MAX_REG_BUFFERS`).
const REGISTERED_BUFFER_COUNT_MAX: usize = 1 << 14;
/// The kernel's limits on ring sizes (`IORING_MAX_ENTRIES`, `IORING_MAX_CQ_ENTRIES`).
const SQ_ENTRIES_MAX: u32 = 32_768;
const CQ_ENTRIES_MAX: usize = 65_536;

/// The opcodes ringlog needs, with their `IORING_OP_` names for the operator message.
const REQUIRED_OPCODES: [(u8, &str); 8] = [
    (opcode::Write::CODE, "WRITE"),
    (opcode::Read::CODE, "READ"),
    (opcode::Fsync::CODE, "FSYNC"),
    (opcode::Fallocate::CODE, "FALLOCATE"),
    (opcode::RenameAt::CODE, "RENAMEAT"),
    (opcode::Nop::CODE, "NOP"),
    (opcode::WriteFixed::CODE, "WRITE_FIXED"),
    (opcode::ReadFixed::CODE, "READ_FIXED"),
];

/// Set in the `user_data` of every CQE that [`Ring::msg_ring`] posts to another ring, so the
/// target can tell a foreign wake-up from its own ops (whose `user_data` is a slot index).
pub const FOREIGN_TAG_BIT: u64 = 1 << 63;

/// The largest `tag_for_target` that [`Ring::msg_ring`] can deliver (the tag must leave
/// [`FOREIGN_TAG_BIT`] free).
pub const FOREIGN_TAG_MAX: u64 = FOREIGN_TAG_BIT - 1;

/// How long a dropped ring waits for the kernel to cancel one waiting op (a receive, an
/// accept, a timer) before it gives up and leaks the remaining ops instead.
const DROP_CANCEL_WAIT: Duration = Duration::from_secs(1);

/// Opcodes of a shard's network loop. The storage path does not need them, so a kernel that
/// lacks one still runs the WAL: [`Ring::probe`] does not require them, [`Ring::supports`]
/// tells whether each is there, and an op queued without kernel support is refused with
/// `IoError::Unsupported` before it reaches the kernel.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OptionalOpcode {
    /// `IORING_OP_ACCEPT` (multishot since Linux 5.19).
    Accept,
    /// `IORING_OP_RECV`.
    Recv,
    /// `IORING_OP_SEND`.
    Send,
    /// `IORING_OP_SENDMSG`.
    SendMsg,
    /// `IORING_OP_MSG_RING` (Linux 5.18).
    MsgRing,
    /// `IORING_OP_TIMEOUT`.
    Timeout,
    /// `IORING_OP_ASYNC_CANCEL`.
    AsyncCancel,
}

impl OptionalOpcode {
    /// Every optional opcode, in probe order.
    pub const ALL: [OptionalOpcode; 7] = [
        OptionalOpcode::Accept,
        OptionalOpcode::Recv,
        OptionalOpcode::Send,
        OptionalOpcode::SendMsg,
        OptionalOpcode::MsgRing,
        OptionalOpcode::Timeout,
        OptionalOpcode::AsyncCancel,
    ];

    /// The `IORING_OP_` name, for messages to the operator.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            OptionalOpcode::Accept => "ACCEPT",
            OptionalOpcode::Recv => "RECV",
            OptionalOpcode::Send => "SEND",
            OptionalOpcode::SendMsg => "SENDMSG",
            OptionalOpcode::MsgRing => "MSG_RING",
            OptionalOpcode::Timeout => "TIMEOUT",
            OptionalOpcode::AsyncCancel => "ASYNC_CANCEL",
        }
    }

    fn code(self) -> u8 {
        match self {
            OptionalOpcode::Accept => opcode::AcceptMulti::CODE,
            OptionalOpcode::Recv => opcode::Recv::CODE,
            OptionalOpcode::Send => opcode::Send::CODE,
            OptionalOpcode::SendMsg => opcode::SendMsg::CODE,
            OptionalOpcode::MsgRing => opcode::MsgRingData::CODE,
            OptionalOpcode::Timeout => opcode::Timeout::CODE,
            OptionalOpcode::AsyncCancel => opcode::AsyncCancel::CODE,
        }
    }

    /// This opcode's bit in `Ring::optional_supported`.
    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// Sizes of a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Submission queue entries (the kernel rounds up to a power of two), 2..=32768.
    pub entries: u32,
    /// Bound on accepted, not yet reaped operations, 1..=65536. The completion queue is sized
    /// to hold at least this many, so it can never overflow.
    pub ops_in_flight_max: usize,
}

impl Default for RingConfig {
    fn default() -> RingConfig {
        RingConfig {
            entries: 256,
            ops_in_flight_max: 256,
        }
    }
}

/// The buffer an operation owns while in flight; handed back in its [`Completion`].
///
/// Every variant keeps its bytes at an address that does not change when the `OpBuf` moves,
/// which is what lets the kernel use them while the op holds the buffer.
#[derive(Debug)]
pub enum OpBuf {
    /// A uniquely owned aligned buffer: written or sent whole, or read or received into whole.
    Owned(AlignedBuf),
    /// Published bytes `range` of a tail buffer (writes and sends only). The `Arc` keeps the
    /// buffer alive and blocks its reset until the completion is dropped.
    Shared(Arc<AppendBuf>, Range<usize>),
    /// A plain heap buffer for sockets: sent whole, or received into up to its length (not
    /// its capacity). Never registered, so never used with READ_FIXED/WRITE_FIXED.
    Vec(Vec<u8>),
    /// Reference-counted immutable bytes (sends and writes only), e.g. a response encoded by
    /// another layer. Cloning it is cheap and the clone shares the bytes.
    Bytes(bytes::Bytes),
}

impl OpBuf {
    /// Number of bytes the operation transfers.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            OpBuf::Owned(buf) => buf.len(),
            OpBuf::Shared(_, range) => range.len(),
            OpBuf::Vec(buf) => buf.len(),
            OpBuf::Bytes(buf) => buf.len(),
        }
    }

    /// True if the operation transfers no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the operation transfers.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        match self {
            OpBuf::Owned(buf) => buf.as_slice(),
            OpBuf::Shared(buf, range) => buf.slice(range.clone()),
            OpBuf::Vec(buf) => buf.as_slice(),
            OpBuf::Bytes(buf) => buf,
        }
    }

    /// The owned buffer, if this is `Owned`.
    #[must_use]
    pub fn into_owned(self) -> Option<AlignedBuf> {
        match self {
            OpBuf::Owned(buf) => Some(buf),
            OpBuf::Shared(..) | OpBuf::Vec(_) | OpBuf::Bytes(_) => None,
        }
    }

    /// The heap buffer, if this is `Vec`.
    #[must_use]
    pub fn into_vec(self) -> Option<Vec<u8>> {
        match self {
            OpBuf::Vec(buf) => Some(buf),
            OpBuf::Owned(_) | OpBuf::Shared(..) | OpBuf::Bytes(_) => None,
        }
    }

    /// The bytes a read or receive may fill: `Some` only for the uniquely owned variants.
    pub(crate) fn writable_bytes(&mut self) -> Option<&mut [u8]> {
        match self {
            OpBuf::Owned(buf) => Some(buf.as_mut_slice()),
            OpBuf::Vec(buf) => Some(buf.as_mut_slice()),
            OpBuf::Shared(..) | OpBuf::Bytes(_) => None,
        }
    }

    /// Asserts that the kernel may read every byte: a `Shared` range is ordered and lies
    /// within the published bytes, which its writer never writes again.
    pub(crate) fn assert_readable(&self) {
        if let OpBuf::Shared(shared, range) = self {
            assert!(range.start <= range.end, "reversed range {range:?}");
            assert!(
                range.end <= shared.published_len(),
                "only published bytes may be written or sent: range={range:?} published_len={}",
                shared.published_len()
            );
        }
    }

    /// Allocation id of the underlying buffer, if it is one that can be registered.
    fn allocation_id(&self) -> Option<u64> {
        match self {
            OpBuf::Owned(buf) => Some(buf.allocation_id()),
            OpBuf::Shared(buf, _) => Some(buf.allocation_id()),
            OpBuf::Vec(_) | OpBuf::Bytes(_) => None,
        }
    }
}

/// The outcome of one operation, or one event of a multishot operation, or a wake-up that
/// another ring posted with [`Ring::msg_ring`] (`foreign`).
#[derive(Debug)]
pub struct Completion {
    /// The tag the operation was queued under (for a foreign wake-up: the sender's
    /// `tag_for_target`).
    pub tag: u64,
    /// Bytes transferred (reads, writes, receives, sends; may be fewer than asked), the
    /// accepted descriptor (accept), `0`, or the error. A foreign wake-up carries the
    /// sender's `result`, mapped like an errno if it is negative.
    pub result: Result<u32, IoError>,
    /// The buffer the operation owned (`None` for ops without one, and for multishot events
    /// and foreign wake-ups).
    pub buf: Option<OpBuf>,
    /// The gather list a [`Ring::sendmsg`] owned.
    pub gather: Option<GatherList>,
    /// `IORING_CQE_F_MORE`: the multishot operation is still armed and more completions will
    /// come under the same tag. When an accept completes with `more == false` it has ended
    /// (canceled, failed, or stopped by the kernel, e.g. on CQ overflow) and must be re-armed.
    /// Always false for single-shot operations.
    pub more: bool,
    /// True if another ring posted this with [`Ring::msg_ring`]: no op of this ring is
    /// involved, nothing is freed, and `tag` is the sender's `tag_for_target`.
    pub foreign: bool,
    /// The descriptor of an accepted connection, owned until taken (closed on drop).
    pub(crate) accepted: Option<OwnedFd>,
}

impl Completion {
    pub(crate) fn new(tag: u64, result: Result<u32, IoError>) -> Completion {
        Completion {
            tag,
            result,
            buf: None,
            gather: None,
            more: false,
            foreign: false,
            accepted: None,
        }
    }

    /// Takes ownership of the connection an accept completion reported (its `result` is
    /// `Ok(fd)` with the same number). Returns `None` for every other completion, and on any
    /// call after the first.
    ///
    /// The completion owns the accepted descriptor from the moment its CQE is reaped: if it
    /// is dropped without this call, the connection is closed, so an accepted descriptor can
    /// never leak. After this call the returned `OwnedFd` is the only owner; the raw number
    /// in `result` is informational and must not be used to build another `OwnedFd`.
    pub fn take_accepted(&mut self) -> Option<OwnedFd> {
        self.accepted.take()
    }
}

/// The setup flags a ring got from the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupMode {
    /// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG`:
    /// completions are posted only when this thread enters the kernel, with no interrupts.
    DeferTaskrun,
    /// No setup flags (the kernel refused the preferred ones).
    Plain,
}

/// One io_uring with its in-flight table. Owned by one shard thread.
///
/// With [`SetupMode::DeferTaskrun`] the kernel accepts submissions and completions only from
/// the thread that created the ring: calls from another thread fail with
/// `IoError::Unexpected { errno: EEXIST, .. }`, and dropping the ring on another thread leaks
/// the buffers of operations still in flight (safe, but a bug to fix). The one thing other
/// threads may do is post a wake-up to it with their own ring's [`msg_ring`](Self::msg_ring),
/// using the fd from [`ring_fd`](Self::ring_fd).
///
/// Dropping a ring cancels the ops that could wait forever (receives, sends, accepts, timers),
/// then waits for every op's completion before freeing anything.
pub struct Ring {
    uring: IoUring,
    ops: OpTable,
    /// Ops that completed without the kernel (injected faults), in completion order.
    ready: VecDeque<u32>,
    /// Scratch space for CQEs (`user_data`, `res`, `flags`) copied out of the completion
    /// queue (capacity = CQ size).
    cqe_batch: Vec<(u64, i32, u32)>,
    /// Ops in state `InKernel`: CQEs still to come.
    kernel_pending: usize,
    setup_mode: SetupMode,
    setup_fallback_reason: Option<String>,
    faults: FaultState,
    /// `(allocation id, registered index)` of each registered buffer, sorted by id.
    registered: Vec<(u64, u16)>,
    /// SQEs pushed as READ_FIXED/WRITE_FIXED.
    fixed_op_count: u64,
    /// One `OptionalOpcode::bit` per optional opcode the kernel supports (probed at setup).
    optional_supported: u32,
    /// Set by `Drop`: canceled ops are no longer resubmitted.
    closing: bool,
}

impl Ring {
    /// Creates a ring with `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG`; if the kernel
    /// refuses those flags, falls back to a plain ring and records why
    /// ([`setup_fallback_reason`](Self::setup_fallback_reason)).
    ///
    /// Panics if `config` is out of range (programmer error).
    pub fn new(config: RingConfig) -> Result<Ring, IoError> {
        assert!(
            config.entries >= 2,
            "a chain needs 2 SQ entries: entries={}",
            config.entries
        );
        assert!(
            config.entries <= SQ_ENTRIES_MAX,
            "entries={} too many",
            config.entries
        );
        assert!(
            config.ops_in_flight_max >= 1,
            "ops_in_flight_max must be >= 1"
        );
        assert!(
            config.ops_in_flight_max <= CQ_ENTRIES_MAX,
            "ops_in_flight_max={} above {CQ_ENTRIES_MAX}",
            config.ops_in_flight_max
        );
        let cq_entries = u32::try_from(config.ops_in_flight_max.max(2 * entries_len(&config)))
            .expect("bounded by CQ_ENTRIES_MAX");
        let (uring, setup_mode, setup_fallback_reason) = build_uring(config.entries, cq_entries)?;
        let cq_len = usize::try_from(uring.params().cq_entries()).expect("u32 fits in usize");
        assert!(
            cq_len >= config.ops_in_flight_max,
            "CQ of {cq_len} is too small"
        );
        assert!(uring.params().sq_entries() >= 2, "SQ too small for a chain");
        let optional_supported = probe_optional(&uring);
        let ring = Ring {
            uring,
            ops: OpTable::with_capacity(config.ops_in_flight_max),
            ready: VecDeque::with_capacity(config.ops_in_flight_max),
            cqe_batch: Vec::with_capacity(cq_len),
            kernel_pending: 0,
            setup_mode,
            setup_fallback_reason,
            faults: FaultState::default(),
            registered: Vec::new(),
            fixed_op_count: 0,
            optional_supported,
            closing: false,
        };
        ring.check_invariants();
        Ok(ring)
    }

    /// Why the preferred setup flags were refused, if they were.
    #[must_use]
    pub fn setup_fallback_reason(&self) -> Option<&str> {
        self.setup_fallback_reason.as_deref()
    }

    /// The setup flags the ring got.
    #[must_use]
    pub fn setup_mode(&self) -> SetupMode {
        self.setup_mode
    }

    /// Checks that the kernel supports every opcode ringlog needs (WRITE, READ, FSYNC,
    /// FALLOCATE, RENAMEAT, NOP, WRITE_FIXED, READ_FIXED). The error names the first missing
    /// one and tells the operator what to do. The network loop's opcodes are optional (see
    /// [`OptionalOpcode`]): a missing one is logged here, not an error.
    pub fn probe(&self) -> Result<(), ProbeError> {
        let mut probe = Probe::new();
        self.uring
            .submitter()
            .register_probe(&mut probe)
            .map_err(|error| ProbeError::ProbeFailed {
                errno: error.raw_os_error().unwrap_or(0),
            })?;
        for (code, opcode) in REQUIRED_OPCODES {
            if !probe.is_supported(code) {
                return Err(ProbeError::MissingOpcode { opcode });
            }
        }
        for optional in OptionalOpcode::ALL {
            if !self.supports(optional) {
                tracing::warn!(
                    opcode = optional.name(),
                    "this kernel's io_uring lacks an opcode of the network loop; \
                     the storage path does not need it"
                );
            }
        }
        Ok(())
    }

    /// True if the kernel supports `opcode` (probed once, when the ring was created).
    #[must_use]
    pub fn supports(&self, opcode: OptionalOpcode) -> bool {
        self.optional_supported & opcode.bit() != 0
    }

    /// `Err(Unsupported)` if the kernel lacks `opcode`.
    pub(crate) fn require(&self, opcode: OptionalOpcode) -> Result<(), IoError> {
        if self.supports(opcode) {
            Ok(())
        } else {
            Err(IoError::Unsupported { op: opcode.name() })
        }
    }

    /// Queues a write of `buf` (all of `Owned`, or the range of `Shared`) at file `position`.
    ///
    /// The op keeps `fd` open and owns `buf` until its completion, which hands `buf` back.
    /// The result is the number of bytes written; a short write is `Ok(n)` with `n` smaller
    /// than asked, and the caller resubmits the rest. If `then_fsync` is `Some(fsync_tag)`, an
    /// `FSYNC(DATASYNC)` is linked after the write (`IOSQE_IO_LINK`) and completes under
    /// `fsync_tag`. The kernel runs it only if the write wrote every byte: after a failed OR
    /// short write the fsync completes with `Err(IoError::Canceled)`, and the caller must
    /// write the rest and sync again.
    ///
    /// `Shared` ranges must lie within the published bytes (asserted). Uses `WRITE_FIXED`
    /// when the buffer's allocation is registered (see [`register`](Self::register)).
    /// On `Err`, nothing was queued and `buf` is dropped.
    pub fn write(
        &mut self,
        fd: &Arc<OwnedFd>,
        buf: OpBuf,
        position: u64,
        tag: u64,
        then_fsync: Option<u64>,
    ) -> Result<(), IoError> {
        assert_transfer_len(buf.len());
        buf.assert_readable();
        let kind = OpKind::Write {
            position,
            dsync: false,
        };
        let write = Op::new(tag, kind, Some(fd), Some(buf));
        let fsync = then_fsync
            .map(|fsync_tag| Op::new(fsync_tag, OpKind::Fsync { datasync: true }, Some(fd), None));
        self.accept(write, fsync)
    }

    /// Queues a write of `buf` at file `position` with `RWF_DSYNC`: when it completes, the
    /// bytes it wrote are durable, as after a write then `fdatasync`, with no second
    /// operation. The kernel syncs in its own completion path (a FUA write where the device
    /// honours FUA, else the write then a cache flush), so the durable end does not wait for
    /// this thread to reap the write and queue an fsync. Otherwise as [`write`](Self::write)
    /// without `then_fsync`: a short write is `Ok(n)`, the first `n` bytes durable, and the
    /// caller writes the rest the same way.
    pub fn write_dsync(
        &mut self,
        fd: &Arc<OwnedFd>,
        buf: OpBuf,
        position: u64,
        tag: u64,
    ) -> Result<(), IoError> {
        assert_transfer_len(buf.len());
        buf.assert_readable();
        let kind = OpKind::Write {
            position,
            dsync: true,
        };
        self.accept(Op::new(tag, kind, Some(fd), Some(buf)), None)
    }

    /// Queues an fsync of `fd` (`fdatasync` semantics if `datasync`). It does NOT cover writes
    /// whose completions have not been reaped yet: link those instead (`then_fsync`).
    pub fn fsync(&mut self, fd: &Arc<OwnedFd>, datasync: bool, tag: u64) -> Result<(), IoError> {
        self.accept(
            Op::new(tag, OpKind::Fsync { datasync }, Some(fd), None),
            None,
        )
    }

    /// Queues a read of `buf.len()` bytes at file `position` into `buf`; the completion hands
    /// `buf` back. A short read (e.g. at end of file) is `Ok(n)` with `n` smaller than asked.
    /// Uses `READ_FIXED` when the buffer's allocation is registered.
    pub fn read(
        &mut self,
        fd: &Arc<OwnedFd>,
        buf: AlignedBuf,
        position: u64,
        tag: u64,
    ) -> Result<(), IoError> {
        assert_transfer_len(buf.len());
        let op = Op::new(
            tag,
            OpKind::Read { position },
            Some(fd),
            Some(OpBuf::Owned(buf)),
        );
        self.accept(op, None)
    }

    /// Queues `fallocate(fd, mode, position, len)`.
    pub fn fallocate(
        &mut self,
        fd: &Arc<OwnedFd>,
        mode: i32,
        position: u64,
        len: u64,
        tag: u64,
    ) -> Result<(), IoError> {
        let kind = OpKind::Fallocate {
            mode,
            position,
            len,
        };
        self.accept(Op::new(tag, kind, Some(fd), None), None)
    }

    /// Queues a chain: rename `from` to `to` inside directory `dir_fd` (RENAMEAT), then fsync
    /// the directory, linked so that it starts only after the rename finished. Each completes
    /// under its own tag. If the rename fails, the kernel decides whether the fsync still runs
    /// (Linux 6.18 runs it: only read and write failures break a link there; older kernels
    /// cancel it with `Canceled`), so the caller must judge the rename by its own result.
    pub fn rename_then_fsync_dir(
        &mut self,
        dir_fd: &Arc<OwnedFd>,
        from: &CStr,
        to: &CStr,
        rename_tag: u64,
        fsync_tag: u64,
    ) -> Result<(), IoError> {
        let kind = OpKind::RenameAt {
            from: from.to_owned(),
            to: to.to_owned(),
        };
        let rename = Op::new(rename_tag, kind, Some(dir_fd), None);
        let fsync = Op::new(
            fsync_tag,
            OpKind::Fsync { datasync: false },
            Some(dir_fd),
            None,
        );
        self.accept(rename, Some(fsync))
    }

    /// Queues a no-op that completes with `Ok(0)` (wake-ups, tests).
    pub fn nop(&mut self, tag: u64) -> Result<(), IoError> {
        self.accept(Op::new(tag, OpKind::Nop, None, None), None)
    }

    /// This ring's descriptor, to hand to other shard threads as the target of their
    /// [`msg_ring`](Self::msg_ring).
    ///
    /// Another thread may use it ONLY as the target of `msg_ring` (IORING_OP_MSG_RING): never
    /// submit, wait, register, mmap or close through it (the ring is single-issuer, and its
    /// queues belong to this ring's thread). The number is valid while this `Ring` is alive;
    /// the server keeps every shard's ring alive until no shard can send to it any more (a
    /// message to a closed or reused number fails with `EBADF`/`EBADFD`, or reaches whatever
    /// ring now has that number).
    #[must_use]
    pub fn ring_fd(&self) -> RawFd {
        self.uring.as_raw_fd()
    }

    /// Queues an `IORING_OP_MSG_RING` that posts a completion to the ring whose descriptor is
    /// `target_ring_fd` (another shard's [`ring_fd`](Self::ring_fd), or this ring's own).
    ///
    /// The target reaps a [`Completion`] with `foreign == true`, `tag == tag_for_target`, and
    /// `result` from `result` (`Ok(result)` if it is not negative; a negative value is mapped
    /// like an errno, so keep it non-negative). This is how one shard wakes another that is
    /// blocked in [`submit_and_wait_timeout`](Self::submit_and_wait_timeout), e.g. after
    /// pushing to their SPSC queue (DESIGN.md section 3: 4.1 us vs 9.6 us for a futex). The
    /// sender's own completion, under `tag`, is `Ok(0)` once the message is posted, or an
    /// error (`EBADFD`: not a ring; `EOVERFLOW`: the target's CQ is full on older kernels).
    ///
    /// Panics if `tag_for_target > FOREIGN_TAG_MAX` (programmer error).
    pub fn msg_ring(
        &mut self,
        target_ring_fd: RawFd,
        tag_for_target: u64,
        result: i32,
        tag: u64,
    ) -> Result<(), IoError> {
        assert!(
            tag_for_target <= FOREIGN_TAG_MAX,
            "tag_for_target={tag_for_target} collides with FOREIGN_TAG_BIT"
        );
        self.require(OptionalOpcode::MsgRing)?;
        let kind = OpKind::MsgRing {
            target_fd: target_ring_fd,
            user_data: FOREIGN_TAG_BIT | tag_for_target,
            result,
        };
        self.accept(Op::new(tag, kind, None, None), None)
    }

    /// Queues a relative timer (`IORING_OP_TIMEOUT`, no completion count): it completes under
    /// `tag` with `Ok(0)` once `duration` has passed (the kernel's `ETIME`), or with
    /// `Err(Canceled)` if [`cancel`](Self::cancel)ed first. For long-poll deadlines.
    pub fn timeout(&mut self, duration: Duration, tag: u64) -> Result<(), IoError> {
        self.require(OptionalOpcode::Timeout)?;
        let kind = OpKind::Timeout {
            timespec: Box::new(types::Timespec::from(duration)),
        };
        self.accept(Op::new(tag, kind, None, None), None)
    }

    /// Queues an `IORING_OP_ASYNC_CANCEL` of the in-flight op queued under `target_tag`, which
    /// must be a receive, send, sendmsg, accept or timeout (storage ops are never canceled: they
    /// finish on their own, and the durable path never abandons a write or an fsync). If several
    /// such ops share the tag, only one of them is canceled: give ops you may cancel a unique
    /// tag.
    ///
    /// The cancel completes under `tag`: `Ok(0)` if the kernel found the target, or
    /// `Unexpected { errno: ENOENT }` if it had already finished (also when no such op is in
    /// flight), or `EALREADY` if it was running and could not be stopped. Cancellation frees
    /// nothing: the target still completes under its own tag (usually `Err(Canceled)`, or
    /// `Ok(n)` for a send that had sent `n` bytes) and hands its buffer back then.
    pub fn cancel(&mut self, target_tag: u64, tag: u64) -> Result<(), IoError> {
        self.require(OptionalOpcode::AsyncCancel)?;
        let target = self
            .ops
            .iter()
            .find(|(_, op)| {
                op.tag == target_tag
                    && op.kind.may_wait_indefinitely()
                    && matches!(op.state, OpState::InKernel)
            })
            .map(|(index, _)| index);
        let Some(target) = target else {
            let mut op = Op::new(
                tag,
                OpKind::Cancel {
                    target_user_data: 0,
                },
                None,
                None,
            );
            let not_found = IoError::from_errno(op.kind.name(), libc::ENOENT);
            op.state = OpState::Done(Err(not_found));
            return self.accept_done(op);
        };
        let kind = OpKind::Cancel {
            target_user_data: u64::from(target),
        };
        self.accept(Op::new(tag, kind, None, None), None)?;
        self.ops.get_mut(target).cancel_requested = true;
        Ok(())
    }

    /// Submits queued SQEs; if `want > 0`, waits until at least `want` completions are ready,
    /// or as many as can still arrive if fewer ops are in flight (it never waits forever).
    /// Only this ring's own ops count: with nothing in flight it returns at once, even if
    /// another ring is about to post a wake-up; a loop that waits for those uses
    /// [`submit_and_wait_timeout`](Self::submit_and_wait_timeout). Returns the number of SQEs
    /// submitted.
    pub fn submit_and_wait(&mut self, want: usize) -> Result<usize, IoError> {
        let wait_count = want
            .saturating_sub(self.ready.len())
            .min(self.kernel_pending);
        loop {
            match self.uring.submit_and_wait(wait_count) {
                Ok(submitted) => return Ok(submitted),
                Err(error) => match error.raw_os_error() {
                    Some(libc::EINTR) => {}
                    // The kernel could not take more work now; the caller reaps and retries.
                    Some(libc::EAGAIN | libc::EBUSY) => return Ok(0),
                    Some(errno) => return Err(IoError::from_errno("io_uring_enter", errno)),
                    None => {
                        return Err(IoError::Unexpected {
                            op: "io_uring_enter",
                            errno: 0,
                        })
                    }
                },
            }
        }
    }

    /// Submits queued SQEs and waits until at least `want` completions are ready, counting
    /// this ring's own ops AND foreign wake-ups from other rings' [`msg_ring`](Self::msg_ring),
    /// or until `timeout` has passed, whichever comes first. Unlike
    /// [`submit_and_wait`](Self::submit_and_wait) it waits even with nothing in flight, which
    /// is what a shard's loop needs: its next event may come from another shard. A timeout is
    /// not an error (reap then finds fewer completions), and a signal may end the wait early.
    /// Returns the number of SQEs submitted.
    pub fn submit_and_wait_timeout(
        &mut self,
        want: usize,
        timeout: Duration,
    ) -> Result<usize, IoError> {
        let wait_count = want.saturating_sub(self.ready.len());
        if wait_count == 0 {
            return self.submit_and_wait(0);
        }
        let timespec = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&timespec);
        match self.uring.submitter().submit_with_args(wait_count, &args) {
            Ok(submitted) => Ok(submitted),
            Err(error) => match error.raw_os_error() {
                // Timed out, interrupted, or the kernel could not take more work now: the
                // caller reaps what there is and decides whether to wait again.
                Some(libc::ETIME | libc::EINTR | libc::EAGAIN | libc::EBUSY) => Ok(0),
                Some(errno) => Err(IoError::from_errno("io_uring_enter", errno)),
                None => Err(IoError::Unexpected {
                    op: "io_uring_enter",
                    errno: 0,
                }),
            },
        }
    }

    /// Moves ready completions into `out` without blocking. Returns how many.
    ///
    /// CQEs that ask for a resubmission (`EINTR`/`EAGAIN`) are queued again here and reach the
    /// kernel with the next submission; they produce no completion.
    pub fn reap(&mut self, out: &mut Vec<Completion>) -> usize {
        let before = out.len();
        while let Some(index) = self.ready.pop_front() {
            let op = self.ops.remove(index);
            let OpState::Done(result) = &op.state else {
                panic!("ready op {index} is not done: {:?}", op.state)
            };
            let result = result.clone();
            out.push(op.into_completion(result));
        }
        self.run_deferred_task_work();
        let mut batch = std::mem::take(&mut self.cqe_batch);
        batch.clear();
        batch.extend(
            self.uring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())),
        );
        for &(user_data, res, flags) in &batch {
            self.on_cqe(user_data, res, flags, out);
        }
        self.cqe_batch = batch;
        self.check_invariants();
        out.len() - before
    }

    /// Operations accepted and not yet reaped (in the kernel, held, or ready).
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.ops.len()
    }

    /// The configured bound on [`in_flight`](Self::in_flight).
    #[must_use]
    pub fn in_flight_max(&self) -> usize {
        self.ops.capacity()
    }

    /// Installs a fault plan (replacing any previous one); its counting starts now.
    pub fn set_fault_plan(&mut self, plan: FaultPlan) {
        tracing::warn!(?plan, "io_uring fault plan installed");
        self.faults = FaultState::new(plan);
    }

    /// Number of buffers registered with the kernel.
    #[must_use]
    pub fn registered_buffer_count(&self) -> usize {
        self.registered.len()
    }

    /// Number of SQEs issued as READ_FIXED/WRITE_FIXED (on registered buffers) so far.
    #[must_use]
    pub fn fixed_op_count(&self) -> u64 {
        self.fixed_op_count
    }

    /// Registers `bufs` with the kernel; see [`register`](Self::register).
    pub fn register_buffers(&mut self, bufs: &[&AlignedBuf]) -> Result<bool, IoError> {
        self.register(bufs, &[])
    }

    /// Registers every buffer of `pool`, which must all be in the pool (asserted).
    pub fn register_pool(&mut self, pool: &BufPool) -> Result<bool, IoError> {
        assert_eq!(
            pool.free_count(),
            pool.count(),
            "register a pool before taking buffers"
        );
        let bufs: Vec<&AlignedBuf> = pool.free_buffers().collect();
        self.register(&bufs, &[])
    }

    /// Registers buffers with the kernel (once per ring), so that operations on them use
    /// `READ_FIXED`/`WRITE_FIXED` and skip pinning pages on every call. Writes of `Shared`
    /// ranges of a registered `AppendBuf` use `WRITE_FIXED` too.
    ///
    /// Returns `Ok(false)` (and logs why) when registration does not fit: the total exceeds the
    /// `RLIMIT_MEMLOCK` soft limit (raise systemd `LimitMEMLOCK=`), the kernel answers `ENOMEM`,
    /// or a kernel limit on count or size is exceeded. Operations then use plain READ/WRITE.
    ///
    /// Registration follows allocations, not addresses: an operation uses a registered index
    /// only for the very allocation registered under it (which the operation owns while in
    /// flight), so dropping a registered buffer is safe; its pages stay pinned until the ring
    /// is dropped and later buffers at the same address use plain operations.
    pub fn register(
        &mut self,
        aligned: &[&AlignedBuf],
        append: &[&AppendBuf],
    ) -> Result<bool, IoError> {
        if !self.registered.is_empty() {
            return Err(IoError::Unexpected {
                op: "register_buffers",
                errno: libc::EBUSY,
            });
        }
        let regions: Vec<(u64, *mut u8, usize)> = aligned
            .iter()
            .map(|buf| (buf.allocation_id(), buf.base_ptr(), buf.len()))
            .chain(
                append
                    .iter()
                    .map(|buf| (buf.allocation_id(), buf.base_ptr(), buf.capacity())),
            )
            .collect();
        if let Some(reason) = registration_refusal(&regions) {
            tracing::warn!(%reason, "io_uring buffers not registered; using plain READ/WRITE");
            return Ok(false);
        }
        let iovecs: Vec<libc::iovec> = regions
            .iter()
            .map(|&(_, base, len)| libc::iovec {
                iov_base: base.cast(),
                iov_len: len,
            })
            .collect();
        // SAFETY: each iovec spans exactly one live allocation (an `AlignedBuf` or `AppendBuf`
        // borrowed for this call). The kernel pins those pages now and accesses them later
        // only on behalf of a READ_FIXED/WRITE_FIXED op, which this ring issues only for an op
        // that owns the same allocation (matched by an id that is never reused), so the memory
        // is alive and owned by that op whenever the kernel touches it. If a registered buffer
        // is freed, its index is simply never used again; the kernel's page pins keep the
        // physical pages from being handed out while registered.
        let registered = unsafe { self.uring.submitter().register_buffers(&iovecs) };
        match registered {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(libc::ENOMEM) => {
                tracing::warn!(%error, "io_uring buffers not registered (memlock limit?)");
                return Ok(false);
            }
            Err(error) => return Err(IoError::from_ring_call("register_buffers", &error)),
        }
        self.registered = regions
            .iter()
            .zip(0_u16..)
            .map(|(&(id, _, _), index)| (id, index))
            .collect();
        self.registered.sort_unstable();
        Ok(true)
    }

    /// Asserts the ring's invariants (O(n): debug builds only; after every public mutation).
    pub fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        self.ops.check_invariants();
        let in_kernel = self
            .ops
            .iter()
            .filter(|(_, op)| matches!(op.state, OpState::InKernel));
        assert_eq!(
            in_kernel.count(),
            self.kernel_pending,
            "kernel_pending out of step"
        );
        let done = self
            .ops
            .iter()
            .filter(|(_, op)| matches!(op.state, OpState::Done(_)));
        assert_eq!(done.count(), self.ready.len(), "ready list out of step");
        for (index, op) in self.ops.iter() {
            assert!(
                !matches!(op.state, OpState::Accepted),
                "op {index} left unsubmitted"
            );
        }
    }

    /// Takes `leader` (and its linked `follower`) into the table and queues their SQEs, or
    /// completes them at once if the fault plan says so.
    pub(crate) fn accept(&mut self, mut leader: Op, follower: Option<Op>) -> Result<(), IoError> {
        let op_count = 1 + usize::from(follower.is_some());
        if self.ops.free_count() < op_count {
            return Err(IoError::Busy {
                ops_in_flight_max: self.ops.capacity(),
            });
        }
        self.ensure_sq_room(op_count)?;
        let leader_fault = self.fault_for(&leader.kind);
        let follower_fault = follower.as_ref().and_then(|op| self.fault_for(&op.kind));
        if let Some(errno) = leader_fault {
            leader.state = OpState::Done(Err(IoError::from_errno(leader.kind.name(), errno)));
            self.insert_ready(leader);
            if let Some(mut follower) = follower {
                follower.state = OpState::Done(Err(IoError::Canceled));
                self.insert_ready(follower);
            }
        } else if let Some(mut follower) = follower {
            if let Some(errno) = follower_fault {
                let error = IoError::from_errno(follower.kind.name(), errno);
                follower.state = OpState::Held(Err(error));
            }
            let leader_index = self.insert(leader);
            let follower_index = self.insert(follower);
            self.ops.get_mut(leader_index).link = Link::Leads(follower_index);
            self.ops.get_mut(follower_index).link = Link::Follows(leader_index);
            if follower_fault.is_some() {
                self.push_ops(&[leader_index]);
            } else {
                self.push_ops(&[leader_index, follower_index]);
            }
        } else {
            let index = self.insert(leader);
            self.push_ops(&[index]);
        }
        self.check_invariants();
        Ok(())
    }

    /// Takes an op that is already `Done` (it never reaches the kernel) into the ready list.
    fn accept_done(&mut self, op: Op) -> Result<(), IoError> {
        assert!(matches!(op.state, OpState::Done(_)), "{:?}", op.state);
        if self.ops.free_count() == 0 {
            return Err(IoError::Busy {
                ops_in_flight_max: self.ops.capacity(),
            });
        }
        self.insert_ready(op);
        self.check_invariants();
        Ok(())
    }

    fn fault_for(&mut self, kind: &OpKind) -> Option<i32> {
        let errno = match kind {
            OpKind::Write { dsync: false, .. } => self.faults.on_write(),
            // Both a write and an fdatasync: either plan fails it.
            OpKind::Write { dsync: true, .. } => {
                let write = self.faults.on_write();
                let fsync = self.faults.on_fsync();
                write.or(fsync)
            }
            OpKind::Fsync { .. } => self.faults.on_fsync(),
            _ => None,
        };
        if let Some(errno) = errno {
            tracing::debug!(op = kind.name(), errno, "injected fault");
        }
        errno
    }

    fn insert(&mut self, op: Op) -> u32 {
        self.ops
            .insert(op)
            .expect("free slots were checked before inserting")
    }

    fn insert_ready(&mut self, op: Op) {
        let index = self.insert(op);
        self.ready.push_back(index);
    }

    /// Makes room for `count` SQEs in the submission queue, submitting what is queued if needed.
    fn ensure_sq_room(&mut self, count: usize) -> Result<(), IoError> {
        if self.sq_room() >= count {
            return Ok(());
        }
        loop {
            match self.uring.submit() {
                Ok(_) => break,
                Err(error) if error.raw_os_error() == Some(libc::EINTR) => {}
                Err(error) if matches!(error.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY)) => {
                    return Err(IoError::Busy {
                        ops_in_flight_max: self.ops.capacity(),
                    });
                }
                Err(error) => return Err(IoError::from_ring_call("io_uring_enter", &error)),
            }
        }
        if self.sq_room() >= count {
            Ok(())
        } else {
            Err(IoError::Busy {
                ops_in_flight_max: self.ops.capacity(),
            })
        }
    }

    fn sq_room(&mut self) -> usize {
        let queue = self.uring.submission();
        queue.capacity() - queue.len()
    }

    /// Pushes the SQEs of the ops in `indices`, each linked to the next one in the list. The
    /// caller has made room with `ensure_sq_room(indices.len())`.
    fn push_ops(&mut self, indices: &[u32]) {
        let mut queue = self.uring.submission();
        assert!(
            queue.capacity() - queue.len() >= indices.len(),
            "SQ room was not ensured"
        );
        for (position, &index) in indices.iter().enumerate() {
            let link_next = position + 1 < indices.len();
            let op = self.ops.get_mut(index);
            let fixed = op
                .buf
                .as_ref()
                .filter(|_| op.kind.may_use_fixed_buffer())
                .and_then(|buf| fixed_index(&self.registered, buf));
            let entry = build_entry(op, index, fixed, link_next);
            self.fixed_op_count += u64::from(fixed.is_some());
            op.state = OpState::InKernel;
            // SAFETY: every address in `entry` points into memory owned by the op in slot
            // `index`, in heap allocations that do not move when the op moves: its buffer
            // (`AlignedBuf`, `Arc<AppendBuf>`, `Vec<u8>` or `Bytes`), its gather list's chunks,
            // iovec array and boxed `msghdr`, its boxed timespec, or its `CString` paths; its
            // descriptor is kept open by the op's `Arc<OwnedFd>`. The op stays in the table,
            // untouched, until the last CQE of this SQE is reaped (`InKernel` until a CQE
            // without `IORING_CQE_F_MORE`), and `Drop for Ring` cancels what may wait forever,
            // then waits for every CQE or leaks the ops. A `Shared` range is below
            // `published_len` (asserted when queued), which its writer never writes again
            // while this op holds the `Arc`; a read or receive target is an `Owned` or `Vec`
            // buffer the op owns exclusively. A fixed index names a registration of this very
            // allocation (`fixed_index`). Ops without memory (accept, msg_ring, cancel) carry
            // only numbers: a cancel's target `user_data` names a slot whose op was in the
            // kernel when the cancel was queued, and SQEs are issued in order, so it cannot
            // match an op queued after it.
            let pushed = unsafe { queue.push(&entry) };
            pushed.expect("SQ room was ensured");
        }
        self.kernel_pending += indices.len();
    }

    /// With `DEFER_TASKRUN`, completions are posted only when this thread enters the kernel
    /// with GETEVENTS; the kernel raises `IORING_SQ_TASKRUN` when there is such work (also
    /// for a foreign wake-up, so this does not depend on having ops in flight).
    fn run_deferred_task_work(&mut self) {
        if !self.uring.submission().taskrun() {
            return;
        }
        if let Err(error) = self.uring.submit() {
            if error.raw_os_error() != Some(libc::EINTR) {
                tracing::warn!(%error, "io_uring_enter(GETEVENTS) failed while reaping");
            }
        }
    }

    fn on_cqe(&mut self, user_data: u64, res: i32, flags: u32, out: &mut Vec<Completion>) {
        if user_data & FOREIGN_TAG_BIT != 0 {
            out.push(foreign_completion(user_data, res));
            return;
        }
        let index = u32::try_from(user_data).expect("user_data is a slot index");
        let op = self.ops.get(index);
        assert!(
            matches!(op.state, OpState::InKernel),
            "CQE for op {index} in state {:?}",
            op.state
        );
        if cqueue::more(flags) {
            self.on_more_cqe(index, res, out);
            return;
        }
        let link = op.link;
        self.ops.get_mut(index).state = OpState::Accepted;
        self.kernel_pending -= 1;
        match link {
            Link::Alone => self.on_alone_cqe(index, res, out),
            Link::Leads(follower) => self.on_leader_cqe(index, follower, res, out),
            Link::Follows(leader) => self.on_follower_cqe(index, leader, res, out),
        }
    }

    /// A CQE of a multishot op that stays armed: reported at once, the slot stays `InKernel`.
    fn on_more_cqe(&mut self, index: u32, res: i32, out: &mut Vec<Completion>) {
        let op = self.ops.get(index);
        assert!(
            matches!(op.kind, OpKind::AcceptMulti),
            "IORING_CQE_F_MORE on a single-shot op {index}: {:?}",
            op.kind
        );
        // An interrupted attempt of a multishot op that stays armed is nothing to report.
        if is_retryable(res) {
            return;
        }
        let completion = op.more_completion(op.cqe_result(res));
        out.push(completion);
    }

    fn on_alone_cqe(&mut self, index: u32, res: i32, out: &mut Vec<Completion>) {
        if !is_retryable(res) {
            let result = self.ops.get(index).cqe_result(res);
            self.finish(index, result, out);
            return;
        }
        let op = self.ops.get(index);
        if matches!(op.kind, OpKind::Cancel { .. }) {
            // Its target's slot may have been reused since: never send it again.
            let result = op.cqe_result(res);
            self.finish(index, result, out);
        } else if op.kind.may_wait_indefinitely() && (op.cancel_requested || self.closing) {
            self.finish(index, Err(IoError::Canceled), out);
        } else {
            self.retry(&[index], res.saturating_neg(), out);
        }
    }

    fn on_leader_cqe(&mut self, leader: u32, follower: u32, res: i32, out: &mut Vec<Completion>) {
        if !is_retryable(res) {
            let result = self.ops.get(leader).cqe_result(res);
            self.finish_leader(leader, result, out);
            return;
        }
        let errno = res.saturating_neg();
        match self.ops.get(follower).state {
            // The follower is not in the kernel: retry the leader alone.
            OpState::Held(_) => self.retry(&[leader], errno, out),
            // The kernel will cancel the follower; retry both once its CQE is back.
            OpState::InKernel => self.ops.get_mut(leader).state = OpState::RetryWait(errno),
            OpState::CanceledWait => self.retry(&[leader, follower], errno, out),
            ref state => panic!("follower {follower} of {leader} in state {state:?}"),
        }
    }

    fn on_follower_cqe(&mut self, follower: u32, leader: u32, res: i32, out: &mut Vec<Completion>) {
        let leader_state = &self.ops.get(leader).state;
        if res == -libc::ECANCELED {
            match *leader_state {
                OpState::RetryWait(errno) => self.retry(&[leader, follower], errno, out),
                OpState::InKernel => self.ops.get_mut(follower).state = OpState::CanceledWait,
                ref state => panic!("leader {leader} of {follower} in state {state:?}"),
            }
            return;
        }
        // The follower ran, so the kernel saw its leader succeed in full; the leader's CQE is
        // on its way and the pair no longer needs to travel together.
        assert!(
            matches!(leader_state, OpState::InKernel),
            "follower {follower} ran after its leader {leader} failed: {leader_state:?}"
        );
        self.ops.get_mut(leader).link = Link::Alone;
        self.ops.get_mut(follower).link = Link::Alone;
        self.on_alone_cqe(follower, res, out);
    }

    /// Resubmits the chain `indices` (leader first) after `EINTR`/`EAGAIN`, or completes it
    /// with an error once the leader's resubmissions are used up or the SQ has no room.
    fn retry(&mut self, indices: &[u32], errno: i32, out: &mut Vec<Completion>) {
        let leader = self.ops.get_mut(indices[0]);
        leader.resubmit_count += 1;
        let name = leader.kind.name();
        let outcome = if leader.resubmit_count > RESUBMIT_COUNT_MAX {
            Err(IoError::Unexpected { op: name, errno })
        } else {
            self.ensure_sq_room(indices.len())
        };
        match outcome {
            Ok(()) => self.push_ops(indices),
            Err(error) => {
                tracing::warn!(op = name, errno, %error, "giving up resubmitting");
                if let [leader, follower] = *indices {
                    // Both are out of the kernel: the follower is canceled with its leader.
                    self.ops.get_mut(leader).link = Link::Alone;
                    self.ops.get_mut(follower).link = Link::Alone;
                    self.finish(leader, Err(error), out);
                    self.finish(follower, Err(IoError::Canceled), out);
                } else {
                    // A follower held out of the kernel is canceled by `finish_leader`.
                    self.finish_leader(indices[0], Err(error), out);
                }
            }
        }
    }

    /// Completes a leader (or a lone op) and settles its follower: one that is not in the
    /// kernel completes now; one still in the kernel becomes a lone op.
    fn finish_leader(
        &mut self,
        leader: u32,
        result: Result<u32, IoError>,
        out: &mut Vec<Completion>,
    ) {
        let link = self.ops.get(leader).link;
        let succeeded = self.ops.get(leader).is_full_success(&result);
        self.finish(leader, result, out);
        let Link::Leads(follower) = link else {
            return;
        };
        let follower_op = self.ops.get_mut(follower);
        follower_op.link = Link::Alone;
        match std::mem::replace(&mut follower_op.state, OpState::Accepted) {
            OpState::Held(held) => {
                let result = if succeeded {
                    held
                } else {
                    Err(IoError::Canceled)
                };
                self.finish(follower, result, out);
            }
            OpState::CanceledWait => self.finish(follower, Err(IoError::Canceled), out),
            // Still in the kernel: its own CQE completes it (canceled if we failed).
            OpState::InKernel => follower_op.state = OpState::InKernel,
            state => panic!("follower {follower} of {leader} in state {state:?}"),
        }
    }

    fn finish(&mut self, index: u32, result: Result<u32, IoError>, out: &mut Vec<Completion>) {
        let op = self.ops.remove(index);
        if let Err(IoError::Unexpected { op: name, errno }) = &result {
            tracing::warn!(op = name, errno, tag = op.tag, "io_uring operation failed");
        }
        out.push(op.into_completion(result));
    }

    /// Cancels every op in the kernel that could wait forever (receives, sends, accepts,
    /// timers) with `IORING_REGISTER_SYNC_CANCEL`, so that waiting for all completions ends.
    /// Queued SQEs are submitted first, since only submitted ops can be canceled. Returns
    /// false if an op could not be canceled (the caller then leaks the ops).
    fn cancel_waiting_ops(&mut self) -> bool {
        if let Err(error) = self.uring.submit() {
            tracing::warn!(%error, "io_uring submit before canceling failed");
        }
        let targets: Vec<u32> = self
            .ops
            .iter()
            .filter(|(_, op)| {
                op.kind.may_wait_indefinitely()
                    && !op.cancel_requested
                    && matches!(op.state, OpState::InKernel)
            })
            .map(|(index, _)| index)
            .collect();
        for index in targets {
            let builder = types::CancelBuilder::user_data(u64::from(index));
            let timeout = Some(types::Timespec::from(DROP_CANCEL_WAIT));
            match self
                .uring
                .submitter()
                .register_sync_cancel(timeout, builder)
            {
                Ok(()) => {}
                // Already finished: its CQE is on its way.
                Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(error) => {
                    tracing::error!(%error, op = index, "canceling an io_uring op failed");
                    return false;
                }
            }
            self.ops.get_mut(index).cancel_requested = true;
        }
        true
    }

    /// Waits for every op the kernel may still touch. Returns false if waiting failed.
    fn wait_for_all(&mut self) -> bool {
        let mut scratch = Vec::with_capacity(self.ops.capacity());
        let mut fruitless_rounds = 0_u32;
        while self.ops.len() > 0 {
            if self.kernel_pending > 0 {
                if let Err(error) = self.submit_and_wait(1) {
                    tracing::error!(%error, "waiting for in-flight io_uring ops failed");
                    return false;
                }
            }
            let progressed = self.reap(&mut scratch) > 0;
            scratch.clear();
            if progressed {
                fruitless_rounds = 0;
                continue;
            }
            // A round without a completion is a resubmission (bounded per op) or a busy
            // kernel; without any kernel work left, nothing can ever complete the rest.
            fruitless_rounds += 1;
            if self.kernel_pending == 0 || fruitless_rounds > DROP_FRUITLESS_ROUNDS_MAX {
                tracing::error!(ops = self.ops.len(), "io_uring ops are not completing");
                return false;
            }
        }
        true
    }
}

impl Drop for Ring {
    /// Cancels the ops that could wait forever, then waits for every in-flight op to complete
    /// before their buffers are freed. If canceling or waiting fails, leaks the ops (buffers
    /// and descriptors) on purpose: the kernel may still touch them, and a leak is safe where
    /// a free is not.
    fn drop(&mut self) {
        self.closing = true;
        if self.cancel_waiting_ops() && self.wait_for_all() {
            return;
        }
        let leaked = self.ops.leak_all();
        self.ready.clear();
        tracing::error!(
            leaked,
            "leaking buffers of io_uring ops that may still be in flight"
        );
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("setup_mode", &self.setup_mode)
            .field("in_flight", &self.ops.len())
            .field("kernel_pending", &self.kernel_pending)
            .field("registered_buffers", &self.registered.len())
            .finish_non_exhaustive()
    }
}

fn entries_len(config: &RingConfig) -> usize {
    usize::try_from(config.entries).expect("u32 fits in usize")
}

/// Builds the io_uring with the preferred flags, or a plain one (with the reason) if refused.
fn build_uring(
    entries: u32,
    cq_entries: u32,
) -> Result<(IoUring, SetupMode, Option<String>), IoError> {
    let preferred = IoUring::builder()
        .setup_cqsize(cq_entries)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .build(entries);
    let error = match preferred {
        Ok(uring) => return Ok((uring, SetupMode::DeferTaskrun, None)),
        Err(error) => error,
    };
    let reason = format!(
        "the kernel refused IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG ({error}); \
         using a plain ring (Linux >= 6.1 supports these flags)"
    );
    let uring = IoUring::builder()
        .setup_cqsize(cq_entries)
        .build(entries)
        .map_err(|error| IoError::from_ring_call("io_uring_setup", &error))?;
    tracing::warn!(%reason, "io_uring setup fell back");
    Ok((uring, SetupMode::Plain, Some(reason)))
}

/// Why `regions` cannot be registered, if they cannot.
fn registration_refusal(regions: &[(u64, *mut u8, usize)]) -> Option<String> {
    if regions.is_empty() {
        return Some("no buffers to register".to_owned());
    }
    if regions.len() > REGISTERED_BUFFER_COUNT_MAX {
        return Some(format!(
            "{} buffers exceed the kernel's limit of {REGISTERED_BUFFER_COUNT_MAX}",
            regions.len()
        ));
    }
    if let Some(&(_, _, len)) = regions
        .iter()
        .find(|&&(_, _, len)| len > REGISTERED_BUFFER_BYTES_MAX)
    {
        return Some(format!(
            "a buffer of {len} bytes exceeds the kernel's 1 GiB limit"
        ));
    }
    let total_bytes: usize = regions.iter().map(|&(_, _, len)| len).sum();
    let total_bytes = u64::try_from(total_bytes).unwrap_or(u64::MAX);
    match crate::fs::memlock_limit_bytes() {
        Ok(Some(limit_bytes)) if total_bytes > limit_bytes => Some(format!(
            "registering {total_bytes} bytes exceeds RLIMIT_MEMLOCK of {limit_bytes} bytes \
             (raise it, e.g. systemd LimitMEMLOCK=)"
        )),
        Ok(_) => None,
        Err(error) => Some(format!("cannot read RLIMIT_MEMLOCK: {error}")),
    }
}

/// The registered index of `buf`'s allocation, if it is registered.
fn fixed_index(registered: &[(u64, u16)], buf: &OpBuf) -> Option<u16> {
    let id = buf.allocation_id()?;
    let position = registered.binary_search_by_key(&id, |&(registered_id, _)| registered_id);
    position.ok().map(|position| registered[position].1)
}

fn is_retryable(res: i32) -> bool {
    res == -libc::EINTR || res == -libc::EAGAIN
}

fn assert_transfer_len(len: usize) {
    assert!(
        u32::try_from(len).is_ok(),
        "one transfer is at most u32::MAX bytes: len={len}"
    );
}

/// Builds the SQE for `op` (pure, safe: it only copies addresses into the entry).
fn build_entry(op: &mut Op, index: u32, fixed: Option<u16>, link_next: bool) -> squeue::Entry {
    let entry = match &op.kind {
        OpKind::Write { .. }
        | OpKind::Read { .. }
        | OpKind::Fsync { .. }
        | OpKind::Fallocate { .. }
        | OpKind::RenameAt { .. }
        | OpKind::Nop => build_storage_entry(op, fixed),
        OpKind::AcceptMulti | OpKind::Recv | OpKind::Send | OpKind::SendMsg => {
            crate::net::build_socket_entry(op)
        }
        OpKind::MsgRing { .. } | OpKind::Timeout { .. } | OpKind::Cancel { .. } => {
            build_control_entry(&op.kind)
        }
    };
    let flags = if link_next {
        squeue::Flags::IO_LINK
    } else {
        squeue::Flags::empty()
    };
    entry.user_data(u64::from(index)).flags(flags)
}

/// The SQE of a storage op (or a NOP).
fn build_storage_entry(op: &mut Op, fixed: Option<u16>) -> squeue::Entry {
    let fd = types::Fd(op.raw_fd());
    match &op.kind {
        OpKind::Write { position, dsync } => {
            let buf = op.buf.as_ref().expect("a write owns a buffer");
            let bytes = buf.bytes();
            let (address, len) = (bytes.as_ptr(), transfer_len(bytes.len()));
            let flags = if *dsync { libc::RWF_DSYNC } else { 0 };
            match fixed {
                Some(buf_index) => opcode::WriteFixed::new(fd, address, len, buf_index)
                    .offset(*position)
                    .rw_flags(flags)
                    .build(),
                None => opcode::Write::new(fd, address, len)
                    .offset(*position)
                    .rw_flags(flags)
                    .build(),
            }
        }
        OpKind::Read { position } => {
            let Some(OpBuf::Owned(buf)) = op.buf.as_mut() else {
                panic!("a read owns an Owned buffer")
            };
            let bytes = buf.as_mut_slice();
            let (address, len) = (bytes.as_mut_ptr(), transfer_len(bytes.len()));
            match fixed {
                Some(buf_index) => opcode::ReadFixed::new(fd, address, len, buf_index)
                    .offset(*position)
                    .build(),
                None => opcode::Read::new(fd, address, len)
                    .offset(*position)
                    .build(),
            }
        }
        OpKind::Fsync { datasync } => {
            let flags = if *datasync {
                types::FsyncFlags::DATASYNC
            } else {
                types::FsyncFlags::empty()
            };
            opcode::Fsync::new(fd).flags(flags).build()
        }
        OpKind::Fallocate {
            mode,
            position,
            len,
        } => opcode::Fallocate::new(fd, *len)
            .offset(*position)
            .mode(*mode)
            .build(),
        OpKind::RenameAt { from, to } => {
            opcode::RenameAt::new(fd, from.as_ptr(), fd, to.as_ptr()).build()
        }
        OpKind::Nop => opcode::Nop::new().build(),
        kind => panic!("not a storage op: {kind:?}"),
    }
}

/// The SQE of a wake-up, timer or cancellation.
fn build_control_entry(kind: &OpKind) -> squeue::Entry {
    match kind {
        OpKind::MsgRing {
            target_fd,
            user_data,
            result,
        } => opcode::MsgRingData::new(types::Fd(*target_fd), *result, *user_data, None).build(),
        // A pure timer: no completion count, relative to now.
        OpKind::Timeout { timespec } => {
            opcode::Timeout::new(std::ptr::from_ref::<types::Timespec>(timespec)).build()
        }
        OpKind::Cancel { target_user_data } => opcode::AsyncCancel::new(*target_user_data).build(),
        kind => panic!("not a control op: {kind:?}"),
    }
}

/// The completion of a CQE another ring posted with `msg_ring`.
fn foreign_completion(user_data: u64, res: i32) -> Completion {
    Completion {
        foreign: true,
        ..Completion::new(user_data & !FOREIGN_TAG_BIT, cqe_result_of("msg_ring", res))
    }
}

/// Which optional opcodes the kernel supports, as `OptionalOpcode::bit`s (none if the kernel
/// refuses to say; `Ring::probe` reports that as an error of its own).
fn probe_optional(uring: &IoUring) -> u32 {
    let mut probe = Probe::new();
    if let Err(error) = uring.submitter().register_probe(&mut probe) {
        tracing::warn!(%error, "io_uring opcode probe failed; network opcodes disabled");
        return 0;
    }
    OptionalOpcode::ALL
        .into_iter()
        .filter(|optional| probe.is_supported(optional.code()))
        .fold(0, |bits, optional| bits | optional.bit())
}

/// Asserts that one socket transfer fits the `i32` result of its CQE.
pub(crate) fn assert_send_len(len: usize) {
    assert!(
        len <= SEND_BYTES_MAX,
        "one socket transfer is at most {SEND_BYTES_MAX} bytes: len={len}"
    );
}

pub(crate) fn transfer_len(len: usize) -> u32 {
    u32::try_from(len).expect("transfer length was checked when the op was accepted")
}

#[cfg(test)]
mod tests {
    //! The resubmission state machine, driven by synthetic CQEs. Ops are placed in the table
    //! as if their SQEs were in the kernel (nothing is pushed), a test feeds `on_cqe` the
    //! results it wants to exercise, and resubmissions go to the real kernel as NOPs, whose
    //! real completions finish the ops.
    use super::*;

    fn ring() -> Ring {
        Ring::new(RingConfig {
            entries: 8,
            ops_in_flight_max: 8,
        })
        .unwrap()
    }

    fn fake_alone(ring: &mut Ring, tag: u64) -> u32 {
        let index = ring.insert(Op::new(tag, OpKind::Nop, None, None));
        ring.ops.get_mut(index).state = OpState::InKernel;
        ring.kernel_pending += 1;
        index
    }

    fn fake_chain(ring: &mut Ring, leader_tag: u64, follower_tag: u64) -> (u32, u32) {
        let leader = fake_alone(ring, leader_tag);
        let follower = fake_alone(ring, follower_tag);
        ring.ops.get_mut(leader).link = Link::Leads(follower);
        ring.ops.get_mut(follower).link = Link::Follows(leader);
        (leader, follower)
    }

    /// Submits and reaps until `count` completions arrived (bounded number of rounds).
    fn drain(ring: &mut Ring, out: &mut Vec<Completion>, count: usize) {
        for _ in 0..1000 {
            if out.len() >= count {
                return;
            }
            ring.submit_and_wait(1).unwrap();
            ring.reap(out);
        }
        panic!("only {} of {count} completions arrived", out.len());
    }

    fn summary(completions: &[Completion]) -> Vec<(u64, Result<u32, IoError>)> {
        completions
            .iter()
            .map(|completion| (completion.tag, completion.result.clone()))
            .collect()
    }

    // Checks that a lone op whose CQE says EAGAIN is resubmitted and completes normally, with
    // nothing reported for the EAGAIN itself.
    #[test]
    fn lone_op_is_resubmitted_after_eagain() {
        let mut ring = ring();
        let index = fake_alone(&mut ring, 7);
        let mut out = Vec::new();
        ring.on_cqe(u64::from(index), -libc::EAGAIN, 0, &mut out);
        assert!(out.is_empty());
        assert_eq!(ring.ops.get(index).resubmit_count, 1);
        drain(&mut ring, &mut out, 1);
        assert_eq!(summary(&out), [(7, Ok(0))]);
        assert_eq!(ring.in_flight(), 0);
    }

    // Checks that a chain whose leader got EINTR is resubmitted whole, in order, once the
    // follower's ECANCELED is back, whichever of the two CQEs is seen first.
    #[test]
    fn chain_is_resubmitted_whole_in_either_cqe_order() {
        for follower_first in [false, true] {
            let mut ring = ring();
            let (leader, follower) = fake_chain(&mut ring, 1, 2);
            let mut out = Vec::new();
            if follower_first {
                ring.on_cqe(u64::from(follower), -libc::ECANCELED, 0, &mut out);
                assert!(matches!(
                    ring.ops.get(follower).state,
                    OpState::CanceledWait
                ));
                ring.on_cqe(u64::from(leader), -libc::EINTR, 0, &mut out);
            } else {
                ring.on_cqe(u64::from(leader), -libc::EINTR, 0, &mut out);
                assert!(matches!(
                    ring.ops.get(leader).state,
                    OpState::RetryWait(libc::EINTR)
                ));
                ring.on_cqe(u64::from(follower), -libc::ECANCELED, 0, &mut out);
            }
            assert!(out.is_empty(), "follower_first={follower_first}");
            assert_eq!(ring.kernel_pending, 2, "both were pushed again");
            drain(&mut ring, &mut out, 2);
            assert_eq!(
                summary(&out),
                [(1, Ok(0)), (2, Ok(0))],
                "follower_first={follower_first}"
            );
        }
    }

    // Checks that a leader failing for good cancels a follower that is waiting for it.
    #[test]
    fn failed_leader_cancels_waiting_follower() {
        let mut ring = ring();
        let (leader, follower) = fake_chain(&mut ring, 1, 2);
        let mut out = Vec::new();
        ring.on_cqe(u64::from(follower), -libc::ECANCELED, 0, &mut out);
        ring.on_cqe(u64::from(leader), -libc::EIO, 0, &mut out);
        assert_eq!(
            summary(&out),
            [(1, Err(IoError::Io)), (2, Err(IoError::Canceled))]
        );
        assert_eq!(ring.in_flight(), 0);
        ring.check_invariants();
    }

    // Checks that a follower that ran (so its leader succeeded) is reported at once and that
    // the leader's own CQE then completes it alone.
    #[test]
    fn follower_that_ran_is_detached() {
        let mut ring = ring();
        let (leader, follower) = fake_chain(&mut ring, 1, 2);
        let mut out = Vec::new();
        ring.on_cqe(u64::from(follower), 0, 0, &mut out);
        assert_eq!(summary(&out), [(2, Ok(0))]);
        assert_eq!(ring.ops.get(leader).link, Link::Alone);
        ring.on_cqe(u64::from(leader), 0, 0, &mut out);
        assert_eq!(summary(&out), [(2, Ok(0)), (1, Ok(0))]);
        ring.check_invariants();
    }

    // Checks that resubmission is bounded: past RESUBMIT_COUNT_MAX the op completes with
    // Unexpected and its waiting follower with Canceled.
    #[test]
    fn resubmission_is_bounded() {
        let mut ring = ring();
        let (leader, follower) = fake_chain(&mut ring, 1, 2);
        ring.ops.get_mut(leader).resubmit_count = RESUBMIT_COUNT_MAX;
        let mut out = Vec::new();
        ring.on_cqe(u64::from(leader), -libc::EAGAIN, 0, &mut out);
        ring.on_cqe(u64::from(follower), -libc::ECANCELED, 0, &mut out);
        let gave_up = IoError::Unexpected {
            op: "nop",
            errno: libc::EAGAIN,
        };
        assert_eq!(
            summary(&out),
            [(1, Err(gave_up)), (2, Err(IoError::Canceled))]
        );
        ring.check_invariants();
    }

    // Checks a follower held back by an injected fault: its leader is retried alone after
    // EAGAIN, and the follower reports its fault only after the leader succeeded.
    #[test]
    fn held_follower_waits_for_retried_leader() {
        let mut ring = ring();
        let (leader, follower) = fake_chain(&mut ring, 1, 2);
        ring.ops.get_mut(follower).state = OpState::Held(Err(IoError::NoSpace));
        ring.kernel_pending -= 1;
        let mut out = Vec::new();
        ring.on_cqe(u64::from(leader), -libc::EAGAIN, 0, &mut out);
        assert!(out.is_empty());
        assert_eq!(
            ring.kernel_pending, 1,
            "only the leader went back to the kernel"
        );
        drain(&mut ring, &mut out, 2);
        assert_eq!(summary(&out), [(1, Ok(0)), (2, Err(IoError::NoSpace))]);
    }

    /// `IORING_CQE_F_MORE`, spelled out so the tests check the crate's reading of it.
    const CQE_F_MORE: u32 = 1 << 1;

    fn fake_kind(ring: &mut Ring, tag: u64, kind: OpKind) -> u32 {
        let index = ring.insert(Op::new(tag, kind, None, None));
        ring.ops.get_mut(index).state = OpState::InKernel;
        ring.kernel_pending += 1;
        index
    }

    // Checks foreign CQEs (FOREIGN_TAG_BIT set): each is reported with the sender's tag and
    // result, marked foreign, without touching the in-flight table; a negative result maps
    // like an errno. The ring's own op then completes normally.
    #[test]
    fn foreign_cqes_leave_the_table_alone() {
        let mut ring = ring();
        let index = fake_alone(&mut ring, 5);
        let mut out = Vec::new();
        ring.on_cqe(FOREIGN_TAG_BIT | 9, 3, 0, &mut out);
        ring.on_cqe(FOREIGN_TAG_BIT | FOREIGN_TAG_MAX, -libc::EIO, 0, &mut out);
        assert_eq!(ring.in_flight(), 1);
        assert_eq!(ring.kernel_pending, 1);
        assert!(out.iter().all(|completion| completion.foreign));
        assert_eq!(
            summary(&out),
            [(9, Ok(3)), (FOREIGN_TAG_MAX, Err(IoError::Io))]
        );
        ring.on_cqe(u64::from(index), 0, 0, &mut out);
        assert_eq!(summary(&out)[2], (5, Ok(0)));
        assert!(!out[2].foreign);
        ring.check_invariants();
    }

    // Checks a multishot accept's CQEs: each flagged MORE is reported with more == true and
    // the accepted descriptor (adopted exactly once: the OwnedFd closes the very descriptor
    // the kernel reported), the op staying armed; an EAGAIN with MORE is silent; the final
    // CQE without MORE completes and frees the op.
    #[test]
    fn more_cqes_keep_the_multishot_op_armed() {
        assert!(cqueue::more(CQE_F_MORE));
        let mut ring = ring();
        let index = fake_kind(&mut ring, 4, OpKind::AcceptMulti);
        let file = tempfile::tempfile().unwrap();
        let raw = std::os::fd::IntoRawFd::into_raw_fd(file);
        let mut out = Vec::new();
        ring.on_cqe(u64::from(index), raw, CQE_F_MORE, &mut out);
        ring.on_cqe(u64::from(index), -libc::EAGAIN, CQE_F_MORE, &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].more);
        assert_eq!(out[0].result, Ok(u32::try_from(raw).unwrap()));
        let fd = out[0].take_accepted().expect("the descriptor is owned");
        assert_eq!(fd.as_raw_fd(), raw);
        assert_eq!(ring.in_flight(), 1, "still armed");
        assert_eq!(ring.kernel_pending, 1);
        ring.on_cqe(u64::from(index), -libc::ECANCELED, 0, &mut out);
        assert!(!out[1].more);
        assert_eq!(out[1].result, Err(IoError::Canceled));
        assert!(out[1].take_accepted().is_none());
        assert_eq!(ring.in_flight(), 0);
        drop(fd);
        ring.check_invariants();
    }

    // Checks that ops are never resubmitted once resubmitting could defeat a cancellation:
    // a canceled recv's EINTR completes it as Canceled, and a cancel's own EAGAIN completes
    // the cancel (its target's slot may have been reused).
    #[test]
    fn canceled_ops_and_cancels_are_not_resubmitted() {
        let mut ring = ring();
        let recv = fake_kind(&mut ring, 1, OpKind::Recv);
        ring.ops.get_mut(recv).cancel_requested = true;
        let cancel = fake_kind(
            &mut ring,
            2,
            OpKind::Cancel {
                target_user_data: 0,
            },
        );
        let mut out = Vec::new();
        ring.on_cqe(u64::from(recv), -libc::EINTR, 0, &mut out);
        ring.on_cqe(u64::from(cancel), -libc::EAGAIN, 0, &mut out);
        let gave_up = IoError::Unexpected {
            op: "cancel",
            errno: libc::EAGAIN,
        };
        assert_eq!(
            summary(&out),
            [(1, Err(IoError::Canceled)), (2, Err(gave_up))]
        );
        assert_eq!(ring.kernel_pending, 0, "nothing went back to the kernel");
        ring.check_invariants();
    }

    // Checks that a kernel without the optional opcodes refuses each network op with
    // Unsupported before anything is queued, while storage ops still work.
    #[test]
    fn missing_optional_opcodes_are_refused_up_front() {
        let mut ring = ring();
        ring.optional_supported = 0;
        let unsupported = |op| Err(IoError::Unsupported { op });
        let socket = Arc::new(OwnedFd::from(tempfile::tempfile().unwrap()));
        assert_eq!(ring.msg_ring(0, 1, 0, 1), unsupported("MSG_RING"));
        assert_eq!(
            ring.timeout(Duration::from_secs(1), 2),
            unsupported("TIMEOUT")
        );
        assert_eq!(ring.cancel(1, 3), unsupported("ASYNC_CANCEL"));
        assert_eq!(ring.accept_multishot(&socket, 4), unsupported("ACCEPT"));
        let buf = || OpBuf::Vec(vec![0; 8]);
        assert_eq!(ring.recv(&socket, buf(), 5), unsupported("RECV"));
        assert_eq!(ring.send(&socket, buf(), 6), unsupported("SEND"));
        let parts = GatherList::from(buf());
        assert_eq!(ring.sendmsg(&socket, parts, 7), unsupported("SENDMSG"));
        assert_eq!(ring.in_flight(), 0);
        ring.nop(8).unwrap();
        let mut out = Vec::new();
        drain(&mut ring, &mut out, 1);
        assert_eq!(summary(&out), [(8, Ok(0))]);
    }

    // Checks the registered-index lookup by allocation id.
    #[test]
    fn fixed_index_matches_allocation_ids_only() {
        let first = AlignedBuf::zeroed(4096, 4096);
        let second = AlignedBuf::zeroed(4096, 4096);
        let registered = vec![(first.allocation_id(), 3)];
        assert_eq!(fixed_index(&registered, &OpBuf::Owned(first)), Some(3));
        assert_eq!(fixed_index(&registered, &OpBuf::Owned(second)), None);
    }
}
