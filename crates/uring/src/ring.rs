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
//! - ops in flight <= `ops_in_flight_max` <= CQ size, so the completion queue cannot overflow.
//! - A fixed (registered-buffer) op is issued only for an allocation the op itself owns, found
//!   by allocation id, so a registration of freed memory is never used.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use io_uring::{opcode, squeue, types, IoUring, Probe};

use crate::buffer::{AlignedBuf, AppendBuf, BufPool};
use crate::error::{IoError, ProbeError};
pub use crate::fault::FaultPlan;
use crate::fault::FaultState;
use crate::op::{Link, Op, OpKind, OpState, OpTable};

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
#[derive(Debug)]
pub enum OpBuf {
    /// A uniquely owned buffer: written whole, or read into whole.
    Owned(AlignedBuf),
    /// Published bytes `range` of a tail buffer (writes only). The `Arc` keeps the buffer alive
    /// and blocks its reset until the completion is dropped.
    Shared(Arc<AppendBuf>, Range<usize>),
}

impl OpBuf {
    /// Number of bytes the operation transfers.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            OpBuf::Owned(buf) => buf.len(),
            OpBuf::Shared(_, range) => range.len(),
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
        }
    }

    /// The owned buffer, if this is `Owned`.
    #[must_use]
    pub fn into_owned(self) -> Option<AlignedBuf> {
        match self {
            OpBuf::Owned(buf) => Some(buf),
            OpBuf::Shared(..) => None,
        }
    }

    /// Allocation id of the underlying buffer.
    fn allocation_id(&self) -> u64 {
        match self {
            OpBuf::Owned(buf) => buf.allocation_id(),
            OpBuf::Shared(buf, _) => buf.allocation_id(),
        }
    }
}

/// The outcome of one operation.
#[derive(Debug)]
pub struct Completion {
    /// The tag the operation was queued under.
    pub tag: u64,
    /// Bytes transferred (reads and writes; may be fewer than asked) or `0`, or the error.
    pub result: Result<u32, IoError>,
    /// The buffer the operation owned (`None` for fsync, fallocate, rename and nop).
    pub buf: Option<OpBuf>,
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
/// the buffers of operations still in flight (safe, but a bug to fix).
pub struct Ring {
    uring: IoUring,
    ops: OpTable,
    /// Ops that completed without the kernel (injected faults), in completion order.
    ready: VecDeque<u32>,
    /// Scratch space for CQEs copied out of the completion queue (capacity = CQ size).
    cqe_batch: Vec<(u64, i32)>,
    /// Ops in state `InKernel`: CQEs still to come.
    kernel_pending: usize,
    setup_mode: SetupMode,
    setup_fallback_reason: Option<String>,
    faults: FaultState,
    /// `(allocation id, registered index)` of each registered buffer, sorted by id.
    registered: Vec<(u64, u16)>,
    /// SQEs pushed as READ_FIXED/WRITE_FIXED.
    fixed_op_count: u64,
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
    /// one and tells the operator what to do.
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
        Ok(())
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
        if let OpBuf::Shared(shared, range) = &buf {
            assert!(range.start <= range.end, "reversed range {range:?}");
            assert!(
                range.end <= shared.published_len(),
                "a write may only cover published bytes: range={range:?} published_len={}",
                shared.published_len()
            );
        }
        let write = Op::new(tag, OpKind::Write { position }, Some(fd), Some(buf));
        let fsync = then_fsync
            .map(|fsync_tag| Op::new(fsync_tag, OpKind::Fsync { datasync: true }, Some(fd), None));
        self.accept(write, fsync)
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

    /// Submits queued SQEs; if `want > 0`, waits until at least `want` completions are ready,
    /// or as many as can still arrive if fewer ops are in flight (it never waits forever).
    /// Returns the number of SQEs submitted.
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
                .map(|cqe| (cqe.user_data(), cqe.result())),
        );
        for &(user_data, res) in &batch {
            self.on_cqe(user_data, res, out);
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
    fn accept(&mut self, mut leader: Op, follower: Option<Op>) -> Result<(), IoError> {
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

    fn fault_for(&mut self, kind: &OpKind) -> Option<i32> {
        let errno = match kind {
            OpKind::Write { .. } => self.faults.on_write(),
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
                .and_then(|buf| fixed_index(&self.registered, buf));
            let entry = build_entry(op, index, fixed, link_next);
            self.fixed_op_count += u64::from(fixed.is_some());
            op.state = OpState::InKernel;
            // SAFETY: every address in `entry` points into memory owned by the op in slot
            // `index`: its buffer's heap allocation (`AlignedBuf` or `Arc<AppendBuf>`, which do
            // not move when the op moves), or its `CString` paths; its descriptor is kept open
            // by the op's `Arc<OwnedFd>`. The op stays in the table, untouched, until the CQE of
            // this SQE is reaped (`InKernel` until `on_cqe`), and `Drop for Ring` waits for
            // every CQE or leaks the ops. A `Shared` range is below `published_len` (asserted
            // in `write`), which its writer never writes again while this op holds the `Arc`;
            // a read target is an `Owned` buffer the op owns exclusively. A fixed index names a
            // registration of this very allocation (`fixed_index`).
            let pushed = unsafe { queue.push(&entry) };
            pushed.expect("SQ room was ensured");
        }
        self.kernel_pending += indices.len();
    }

    /// With `DEFER_TASKRUN`, completions are posted only when this thread enters the kernel
    /// with GETEVENTS; the kernel raises `IORING_SQ_TASKRUN` when there is such work.
    fn run_deferred_task_work(&mut self) {
        if self.kernel_pending == 0 || !self.uring.submission().taskrun() {
            return;
        }
        if let Err(error) = self.uring.submit() {
            if error.raw_os_error() != Some(libc::EINTR) {
                tracing::warn!(%error, "io_uring_enter(GETEVENTS) failed while reaping");
            }
        }
    }

    fn on_cqe(&mut self, user_data: u64, res: i32, out: &mut Vec<Completion>) {
        let index = u32::try_from(user_data).expect("user_data is a slot index");
        let op = self.ops.get(index);
        assert!(
            matches!(op.state, OpState::InKernel),
            "CQE for op {index} in state {:?}",
            op.state
        );
        let link = op.link;
        self.ops.get_mut(index).state = OpState::Accepted;
        self.kernel_pending -= 1;
        match link {
            Link::Alone => self.on_alone_cqe(index, res, out),
            Link::Leads(follower) => self.on_leader_cqe(index, follower, res, out),
            Link::Follows(leader) => self.on_follower_cqe(index, leader, res, out),
        }
    }

    fn on_alone_cqe(&mut self, index: u32, res: i32, out: &mut Vec<Completion>) {
        if is_retryable(res) {
            self.retry(&[index], res.saturating_neg(), out);
        } else {
            let result = self.ops.get(index).cqe_result(res);
            self.finish(index, result, out);
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
    /// Waits for every in-flight op to complete before their buffers are freed. If waiting
    /// fails, leaks the ops (buffers and descriptors) on purpose: the kernel may still touch
    /// them, and a leak is safe where a free is not.
    fn drop(&mut self) {
        if self.wait_for_all() {
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
    let id = buf.allocation_id();
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
    let fd = types::Fd(op.raw_fd());
    let entry = match &op.kind {
        OpKind::Write { position } => {
            let buf = op.buf.as_ref().expect("a write owns a buffer");
            let bytes = buf.bytes();
            let (address, len) = (bytes.as_ptr(), transfer_len(bytes.len()));
            match fixed {
                Some(buf_index) => opcode::WriteFixed::new(fd, address, len, buf_index)
                    .offset(*position)
                    .build(),
                None => opcode::Write::new(fd, address, len)
                    .offset(*position)
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
    };
    let flags = if link_next {
        squeue::Flags::IO_LINK
    } else {
        squeue::Flags::empty()
    };
    entry.user_data(u64::from(index)).flags(flags)
}

fn transfer_len(len: usize) -> u32 {
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
        ring.on_cqe(u64::from(index), -libc::EAGAIN, &mut out);
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
                ring.on_cqe(u64::from(follower), -libc::ECANCELED, &mut out);
                assert!(matches!(
                    ring.ops.get(follower).state,
                    OpState::CanceledWait
                ));
                ring.on_cqe(u64::from(leader), -libc::EINTR, &mut out);
            } else {
                ring.on_cqe(u64::from(leader), -libc::EINTR, &mut out);
                assert!(matches!(
                    ring.ops.get(leader).state,
                    OpState::RetryWait(libc::EINTR)
                ));
                ring.on_cqe(u64::from(follower), -libc::ECANCELED, &mut out);
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
        ring.on_cqe(u64::from(follower), -libc::ECANCELED, &mut out);
        ring.on_cqe(u64::from(leader), -libc::EIO, &mut out);
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
        ring.on_cqe(u64::from(follower), 0, &mut out);
        assert_eq!(summary(&out), [(2, Ok(0))]);
        assert_eq!(ring.ops.get(leader).link, Link::Alone);
        ring.on_cqe(u64::from(leader), 0, &mut out);
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
        ring.on_cqe(u64::from(leader), -libc::EAGAIN, &mut out);
        ring.on_cqe(u64::from(follower), -libc::ECANCELED, &mut out);
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
        ring.on_cqe(u64::from(leader), -libc::EAGAIN, &mut out);
        assert!(out.is_empty());
        assert_eq!(
            ring.kernel_pending, 1,
            "only the leader went back to the kernel"
        );
        drain(&mut ring, &mut out, 2);
        assert_eq!(summary(&out), [(1, Ok(0)), (2, Err(IoError::NoSpace))]);
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
