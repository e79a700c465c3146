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

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::error::IoError;
use crate::ring::{Completion, OpBuf};

/// What an operation does, with everything needed to build (and rebuild) its SQE.
#[derive(Debug)]
pub(crate) enum OpKind {
    Write { position: u64 },
    Read { position: u64 },
    Fsync { datasync: bool },
    Fallocate { mode: i32, position: u64, len: u64 },
    RenameAt { from: CString, to: CString },
    Nop,
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
        }
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
    /// Keeps the descriptor open until the completion (`None` for `Nop`).
    pub(crate) fd: Option<Arc<OwnedFd>>,
    pub(crate) buf: Option<OpBuf>,
    pub(crate) link: Link,
    pub(crate) state: OpState,
    /// How many times the op was resubmitted after `EINTR`/`EAGAIN`.
    pub(crate) resubmit_count: u32,
}

impl Op {
    pub(crate) fn new(tag: u64, kind: OpKind, fd: Option<&Arc<OwnedFd>>, buf: Option<OpBuf>) -> Op {
        Op {
            tag,
            kind,
            fd: fd.map(Arc::clone),
            buf,
            link: Link::Alone,
            state: OpState::Accepted,
            resubmit_count: 0,
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

    /// Maps a CQE result to the completion result.
    pub(crate) fn cqe_result(&self, res: i32) -> Result<u32, IoError> {
        match u32::try_from(res) {
            Ok(transferred) => Ok(transferred),
            Err(_) => Err(IoError::from_errno(self.kind.name(), res.saturating_neg())),
        }
    }

    pub(crate) fn into_completion(self, result: Result<u32, IoError>) -> Completion {
        Completion {
            tag: self.tag,
            result,
            buf: self.buf,
        }
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
        let write = Op::new(1, OpKind::Write { position: 0 }, None, Some(buf));
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
