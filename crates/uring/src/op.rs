//! The in-flight table: every operation the ring has accepted and not yet handed back.
//!
//! Invariants (checked by [`OpTable::check_invariants`] and the ring's own check):
//!
//! - An op's buffer, descriptor handle and path strings stay in its slot from the moment the
//!   ring accepts it until its [`Completion`] is handed out. Nothing reads or writes them in
//!   between (the kernel aside); only then is the slot freed.
//! - The `user_data` of an SQE is the index of its op's slot. A slot has at most one SQE in the
//!   kernel at a time (state `InKernel`), so every CQE names a live slot in that state.
//! - Links are symmetric: slot `a` is `Leads(b)` exactly when slot `b` is `Follows(a)`. A chain
//!   has at most two ops (write + fsync, rename + directory fsync).
//! - The table never grows past the capacity it was created with (`ops_in_flight_max`).
//! - A multishot op (`AcceptMulti`) stays `InKernel` across its `IORING_CQE_F_MORE` CQEs; only
//!   its final CQE (without the flag) frees its slot.
//! - An accepted descriptor is adopted into an `OwnedFd` exactly once, when its CQE is turned
//!   into a completion, so that it is closed if nobody takes it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use io_uring::types;

use crate::error::IoError;
use crate::gather::GatherList;
use crate::ring::{Completion, OpBuf};

/// What an operation does, with everything needed to build (and rebuild) its SQE.
#[derive(Debug)]
pub(crate) enum OpKind {
    Write {
        position: u64,
        /// `RWF_DSYNC`: the completion means the bytes are durable.
        dsync: bool,
    },
    Read {
        position: u64,
    },
    Fsync {
        datasync: bool,
    },
    Fallocate {
        mode: i32,
        position: u64,
        len: u64,
    },
    RenameAt {
        from: CString,
        to: CString,
    },
    Nop,
    /// Multishot accept on a listening socket (`fd`).
    AcceptMulti,
    /// Single-shot receive into the op's `Owned` or `Vec` buffer.
    Recv,
    /// Send of the op's buffer.
    Send,
    /// Send of the op's gather list.
    SendMsg,
    /// A completion posted to another ring (`target_fd`) under `user_data`, with `result`.
    MsgRing {
        target_fd: RawFd,
        user_data: u64,
        result: i32,
    },
    /// A relative timer; boxed so the kernel reads a timespec that never moves.
    Timeout {
        timespec: Box<types::Timespec>,
    },
    /// Cancels the op whose SQE carries `target_user_data`.
    Cancel {
        target_user_data: u64,
    },
}

impl OpKind {
    /// The name used in errors and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            OpKind::Write { .. } => "write",
            OpKind::Read { .. } => "read",
            OpKind::Fsync { .. } => "fsync",
            OpKind::Fallocate { .. } => "fallocate",
            OpKind::RenameAt { .. } => "renameat",
            OpKind::Nop => "nop",
            OpKind::AcceptMulti => "accept",
            OpKind::Recv => "recv",
            OpKind::Send => "send",
            OpKind::SendMsg => "sendmsg",
            OpKind::MsgRing { .. } => "msg_ring",
            OpKind::Timeout { .. } => "timeout",
            OpKind::Cancel { .. } => "cancel",
        }
    }

    /// True for ops that may wait in the kernel for as long as a peer or a timer likes: these
    /// can be canceled, and are canceled when the ring is dropped. Storage ops always finish on
    /// their own and are never canceled.
    pub(crate) fn may_wait_indefinitely(&self) -> bool {
        matches!(
            self,
            OpKind::AcceptMulti
                | OpKind::Recv
                | OpKind::Send
                | OpKind::SendMsg
                | OpKind::Timeout { .. }
        )
    }

    /// True for ops that may use a registered buffer (READ_FIXED/WRITE_FIXED).
    pub(crate) fn may_use_fixed_buffer(&self) -> bool {
        matches!(self, OpKind::Write { .. } | OpKind::Read { .. })
    }
}

/// Where an op is in its life.
#[derive(Debug)]
pub(crate) enum OpState {
    /// Accepted, not yet pushed (only between insertion and push, inside one ring call).
    Accepted,
    /// Its SQE is queued or submitted: exactly one CQE will come back for it.
    InKernel,
    /// Not in the kernel (an injected fault on a follower): completes with this result once its
    /// leader has completed successfully, or with `Canceled` if the leader did not.
    Held(Result<u32, IoError>),
    /// A leader whose CQE said `EINTR`/`EAGAIN` (the errno is kept): it waits for its
    /// follower's `ECANCELED` so that both are resubmitted together, in order.
    RetryWait(i32),
    /// A follower the kernel canceled before its leader's CQE was seen: it waits to learn
    /// whether the leader failed for good (then it is `Canceled`) or will be retried.
    CanceledWait,
    /// Completed without the kernel (an injected fault); queued in the ring's `ready` list.
    Done(Result<u32, IoError>),
}

/// How an op is chained to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    Alone,
    /// This op runs first; the slot named runs only if this one succeeds in full.
    Leads(u32),
    /// This op runs only if the op in the named slot succeeds in full.
    Follows(u32),
}

/// One accepted operation and everything it owns while in flight.
#[derive(Debug)]
pub(crate) struct Op {
    pub(crate) tag: u64,
    pub(crate) kind: OpKind,
    /// Keeps the descriptor open until the completion (`None` for `Nop`, `MsgRing`, `Timeout`
    /// and `Cancel`).
    pub(crate) fd: Option<Arc<OwnedFd>>,
    pub(crate) buf: Option<OpBuf>,
    /// The chunks of a `SendMsg`, with the msghdr and iovecs the kernel reads.
    pub(crate) gather: Option<GatherList>,
    pub(crate) link: Link,
    pub(crate) state: OpState,
    /// How many times the op was resubmitted after `EINTR`/`EAGAIN`.
    pub(crate) resubmit_count: u32,
    /// A cancellation was requested (by `Ring::cancel` or the ring's drop): the op is never
    /// resubmitted again, an `EINTR`/`EAGAIN` completes it as `Canceled`.
    pub(crate) cancel_requested: bool,
}

impl Op {
    pub(crate) fn new(tag: u64, kind: OpKind, fd: Option<&Arc<OwnedFd>>, buf: Option<OpBuf>) -> Op {
        Op {
            tag,
            kind,
            fd: fd.map(Arc::clone),
            buf,
            gather: None,
            link: Link::Alone,
            state: OpState::Accepted,
            resubmit_count: 0,
            cancel_requested: false,
        }
    }

    /// The raw descriptor for the SQE; `-1` for ops without one.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }

    /// True if `result` is what the kernel counts as success for a link: no error and, for a
    /// read or write, every requested byte transferred.
    pub(crate) fn is_full_success(&self, result: &Result<u32, IoError>) -> bool {
        match (result, &self.buf) {
            (Err(_), _) => false,
            (Ok(transferred), Some(buf)) => usize::try_from(*transferred) == Ok(buf.len()),
            (Ok(_), None) => true,
        }
    }

    /// Maps a CQE result to the completion result. A timeout that expired (`ETIME`) is the
    /// timer firing, its success: `Ok(0)`.
    pub(crate) fn cqe_result(&self, res: i32) -> Result<u32, IoError> {
        if matches!(self.kind, OpKind::Timeout { .. }) && res == -libc::ETIME {
            return Ok(0);
        }
        cqe_result_of(self.kind.name(), res)
    }

    /// The completion of a CQE flagged `IORING_CQE_F_MORE`: the op stays in flight.
    pub(crate) fn more_completion(&self, result: Result<u32, IoError>) -> Completion {
        let accepted = self.adopt_accepted(&result);
        Completion {
            more: true,
            accepted,
            ..Completion::new(self.tag, result)
        }
    }

    pub(crate) fn into_completion(self, result: Result<u32, IoError>) -> Completion {
        let accepted = self.adopt_accepted(&result);
        Completion {
            buf: self.buf,
            gather: self.gather,
            accepted,
            ..Completion::new(self.tag, result)
        }
    }

    /// Takes ownership of the descriptor an accept CQE reported. Called once per CQE.
    fn adopt_accepted(&self, result: &Result<u32, IoError>) -> Option<OwnedFd> {
        let (OpKind::AcceptMulti, Ok(fd)) = (&self.kind, result) else {
            return None;
        };
        let fd = RawFd::try_from(*fd).expect("an accepted descriptor fits in RawFd");
        assert!(fd >= 0, "accepted descriptor {fd}");
        // SAFETY: the kernel installed `fd` in this process's descriptor table for this very
        // accept CQE and gave it to nobody else. Each CQE is turned into exactly one
        // completion (`on_cqe` runs once per CQE and calls this once), so this is the only
        // `OwnedFd` for it: it is closed exactly once, by whoever ends up owning it.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// Maps a CQE result of `op` (or of a foreign message) to a completion result.
pub(crate) fn cqe_result_of(op: &'static str, res: i32) -> Result<u32, IoError> {
    match u32::try_from(res) {
        Ok(transferred) => Ok(transferred),
        Err(_) => Err(IoError::from_errno(op, res.saturating_neg())),
    }
}

/// Fixed-capacity slab of ops; a slot's index is the `user_data` of its SQEs.
#[derive(Debug)]
pub(crate) struct OpTable {
    slots: Vec<Option<Op>>,
    /// Free slot indices; popped from the end.
    free: Vec<u32>,
}

impl OpTable {
    pub(crate) fn with_capacity(capacity: usize) -> OpTable {
        let capacity_u32 = u32::try_from(capacity).expect("ops_in_flight_max fits in u32");
        let slots = (0..capacity).map(|_| None).collect();
        let free = (0..capacity_u32).rev().collect();
        OpTable { slots, free }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub(crate) fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Stores `op`; `None` if the table is full.
    pub(crate) fn insert(&mut self, op: Op) -> Option<u32> {
        let index = self.free.pop()?;
        let slot = &mut self.slots[slot_position(index)];
        assert!(
            slot.is_none(),
            "free list named an occupied slot: index={index}"
        );
        *slot = Some(op);
        Some(index)
    }

    pub(crate) fn get(&self, index: u32) -> &Op {
        self.slots[slot_position(index)]
            .as_ref()
            .unwrap_or_else(|| panic!("no op in slot {index}"))
    }

    pub(crate) fn get_mut(&mut self, index: u32) -> &mut Op {
        self.slots[slot_position(index)]
            .as_mut()
            .unwrap_or_else(|| panic!("no op in slot {index}"))
    }

    pub(crate) fn remove(&mut self, index: u32) -> Op {
        let op = self.slots[slot_position(index)]
            .take()
            .unwrap_or_else(|| panic!("no op in slot {index}"));
        self.free.push(index);
        op
    }

    /// Iterates over the occupied slots.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Op)> {
        self.slots
            .iter()
            .zip(0_u32..)
            .filter_map(|(slot, index)| Some((index, slot.as_ref()?)))
    }

    /// Forgets every op without dropping it: their buffers and descriptors stay allocated and
    /// open forever. Used only when the kernel may still access them and waiting failed.
    pub(crate) fn leak_all(&mut self) -> usize {
        let mut leaked = 0;
        for (slot, index) in self.slots.iter_mut().zip(0_u32..) {
            if let Some(op) = slot.take() {
                std::mem::forget(op);
                self.free.push(index);
                leaked += 1;
            }
        }
        leaked
    }

    /// Asserts slab and link invariants (O(n): debug builds only).
    pub(crate) fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        assert!(
            self.free.len() <= self.slots.len(),
            "free list longer than the table"
        );
        for &index in &self.free {
            assert!(
                self.slots[slot_position(index)].is_none(),
                "free slot {index} occupied"
            );
        }
        for (index, op) in self.iter() {
            match op.link {
                Link::Alone => {}
                Link::Leads(follower) => {
                    assert_eq!(
                        self.get(follower).link,
                        Link::Follows(index),
                        "link {index}"
                    )
                }
                Link::Follows(leader) => {
                    assert_eq!(self.get(leader).link, Link::Leads(index), "link {index}")
                }
            }
        }
    }
}

fn slot_position(index: u32) -> usize {
    usize::try_from(index).expect("u32 fits in usize")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks slot reuse, the capacity bound and that leak_all empties the table.
    #[test]
    fn table_allocates_and_frees_slots() {
        let mut table = OpTable::with_capacity(2);
        let first = table.insert(Op::new(1, OpKind::Nop, None, None)).unwrap();
        let second = table.insert(Op::new(2, OpKind::Nop, None, None)).unwrap();
        assert_eq!((first, second), (0, 1));
        assert!(table.insert(Op::new(3, OpKind::Nop, None, None)).is_none());
        assert_eq!(table.len(), 2);
        assert_eq!(table.remove(first).tag, 1);
        assert_eq!(table.free_count(), 1);
        assert_eq!(
            table.insert(Op::new(4, OpKind::Nop, None, None)),
            Some(first)
        );
        assert_eq!(table.get(first).tag, 4);
        table.check_invariants();
        assert_eq!(table.leak_all(), 2);
        assert_eq!(table.len(), 0);
        assert_eq!(table.capacity(), 2);
    }

    // Checks what counts as full success for a link and how CQE results are mapped.
    #[test]
    fn success_and_result_mapping() {
        let buf = OpBuf::Owned(crate::AlignedBuf::zeroed(4096, 4096));
        let write = Op::new(
            1,
            OpKind::Write {
                position: 0,
                dsync: false,
            },
            None,
            Some(buf),
        );
        assert!(write.is_full_success(&Ok(4096)));
        assert!(
            !write.is_full_success(&Ok(512)),
            "a short write breaks a link"
        );
        assert!(!write.is_full_success(&Err(IoError::Io)));
        assert_eq!(write.cqe_result(-libc::EIO), Err(IoError::Io));
        assert_eq!(write.cqe_result(4096), Ok(4096));
        let fsync = Op::new(2, OpKind::Fsync { datasync: true }, None, None);
        assert!(fsync.is_full_success(&Ok(0)));
        assert_eq!(fsync.cqe_result(-libc::ECANCELED), Err(IoError::Canceled));
        assert_eq!(fsync.raw_fd(), -1);
    }
}
