//! Gather lists: the chunks of one outgoing message, sent with a single `SENDMSG`.
//!
//! A Fetch response is `[header bytes][record chunks of the log's tail buffers][...]`: the
//! header is built per request, the records are `OpBuf::Shared` ranges of the very buffers
//! that were written to disk. A [`GatherList`] owns every chunk plus the `msghdr` and iovec
//! array the kernel reads, so all of them stay alive until the send's completion hands the
//! list back.
//!
//! Invariants:
//!
//! - `sent_bytes <= total_bytes`, and `total_bytes` is the sum of the chunks' lengths, at most
//!   [`SEND_BYTES_MAX`] (a send's result is an `i32`).
//! - At most [`GATHER_CHUNK_COUNT_MAX`] chunks (the kernel's `UIO_MAXIOV`).
//! - Every chunk is readable memory that does not move while the list owns it: `Owned`,
//!   `Vec` and `Bytes` heap allocations, or a published (never rewritten) range of an
//!   `AppendBuf` (checked when the chunk is pushed).
//! - The iovecs describe exactly the unsent bytes, in order. They are rebuilt each time the
//!   list is handed to the kernel, so [`GatherList::advance`] after a short send is all the
//!   bookkeeping a resubmission needs; the iovec array and `msghdr` allocations are reused.

use std::fmt;

use crate::ring::OpBuf;

/// The most chunks one gather list holds: the kernel's `UIO_MAXIOV`.
pub const GATHER_CHUNK_COUNT_MAX: usize = 1024;

/// The most bytes one send or gather list carries: the kernel reports a send's result as an
/// `i32`, and larger sends would be cut short anyway.
pub const SEND_BYTES_MAX: usize = i32::MAX as usize;

/// The chunks of one outgoing message, with how many of their leading bytes were already sent.
///
/// Build it with [`push`](Self::push) (or `From<Vec<OpBuf>>`), hand it to
/// [`Ring::sendmsg`](crate::Ring::sendmsg), and take it back from the completion's
/// [`gather`](crate::Completion::gather). After a short send `Ok(n)`, call
/// [`advance(n)`](Self::advance) and, if [`len`](Self::len) is not zero, send it again: only the
/// unsent bytes go out, no byte is copied. [`clear`](Self::clear) empties it for reuse while
/// keeping its allocations, so a connection can keep one list for all its responses.
pub struct GatherList {
    chunks: Vec<OpBuf>,
    /// Leading bytes (across chunks) already sent.
    sent_bytes: usize,
    /// Sum of the chunks' lengths.
    total_bytes: usize,
    kernel: KernelMessage,
}

/// The `msghdr` and iovec array the kernel reads for a `SENDMSG`, in heap allocations of
/// their own so that their addresses do not change when the list moves.
struct KernelMessage {
    header: Box<libc::msghdr>,
    iovecs: Vec<libc::iovec>,
}

// SAFETY: the raw pointers inside `msghdr` and the iovecs point at the list's own iovec array
// and chunks; they are written only through `&mut GatherList` when the list is handed to the
// kernel and never dereferenced by Rust code, so moving them to another thread shares nothing.
unsafe impl Send for KernelMessage {}
// SAFETY: `&KernelMessage` gives no access to the pointers at all (only `&mut` rebuilds them).
unsafe impl Sync for KernelMessage {}

impl KernelMessage {
    fn new(chunk_count: usize) -> KernelMessage {
        KernelMessage {
            header: Box::new(libc::msghdr {
                msg_name: std::ptr::null_mut(),
                msg_namelen: 0,
                msg_iov: std::ptr::null_mut(),
                msg_iovlen: 0,
                msg_control: std::ptr::null_mut(),
                msg_controllen: 0,
                msg_flags: 0,
            }),
            iovecs: Vec::with_capacity(chunk_count),
        }
    }
}

impl GatherList {
    /// An empty list; allocates nothing until the first chunk.
    #[must_use]
    pub fn new() -> GatherList {
        GatherList::with_capacity(0)
    }

    /// An empty list with room for `chunk_count` chunks (and their iovecs) allocated up front.
    ///
    /// Panics if `chunk_count > GATHER_CHUNK_COUNT_MAX` (programmer error).
    #[must_use]
    pub fn with_capacity(chunk_count: usize) -> GatherList {
        assert!(
            chunk_count <= GATHER_CHUNK_COUNT_MAX,
            "chunk_count={chunk_count} above {GATHER_CHUNK_COUNT_MAX}"
        );
        GatherList {
            chunks: Vec::with_capacity(chunk_count),
            sent_bytes: 0,
            total_bytes: 0,
            kernel: KernelMessage::new(chunk_count),
        }
    }

    /// Appends a chunk; it is sent after every chunk pushed before it.
    ///
    /// Panics (programmer errors) if the list already holds [`GATHER_CHUNK_COUNT_MAX`] chunks,
    /// if the total would exceed [`SEND_BYTES_MAX`], or if a `Shared` range is reversed or
    /// reaches beyond the published bytes of its buffer.
    pub fn push(&mut self, chunk: OpBuf) {
        assert!(
            self.chunks.len() < GATHER_CHUNK_COUNT_MAX,
            "a gather list holds at most {GATHER_CHUNK_COUNT_MAX} chunks"
        );
        chunk.assert_readable();
        let total_bytes = self.total_bytes + chunk.len();
        assert!(
            total_bytes <= SEND_BYTES_MAX,
            "a gather list carries at most {SEND_BYTES_MAX} bytes: total_bytes={total_bytes}"
        );
        self.total_bytes = total_bytes;
        self.chunks.push(chunk);
        self.check_invariants();
    }

    /// Bytes not sent yet.
    #[must_use]
    pub fn len(&self) -> usize {
        self.total_bytes - self.sent_bytes
    }

    /// True if every byte was sent (or there is none).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sum of all chunks' lengths, sent or not.
    #[must_use]
    pub fn total_len(&self) -> usize {
        self.total_bytes
    }

    /// Leading bytes already sent (the sum of every `advance`).
    #[must_use]
    pub fn sent_len(&self) -> usize {
        self.sent_bytes
    }

    /// Records that `sent` more bytes went out (the `Ok(n)` of a send's completion); the next
    /// send of this list starts after them.
    ///
    /// Panics if `sent` is more than [`len`](Self::len): the kernel never reports more than it
    /// was given, so that is a programmer error.
    pub fn advance(&mut self, sent: usize) {
        assert!(
            sent <= self.len(),
            "advance past the end: sent={sent} unsent={}",
            self.len()
        );
        self.sent_bytes += sent;
        self.check_invariants();
    }

    /// The chunks, including those already sent.
    #[must_use]
    pub fn chunks(&self) -> &[OpBuf] {
        &self.chunks
    }

    /// The chunks, giving up the list's own allocations.
    #[must_use]
    pub fn into_chunks(self) -> Vec<OpBuf> {
        self.chunks
    }

    /// Drops every chunk (releasing `Shared` buffers to their writers) and resets the counts,
    /// keeping the allocations for the next message.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.kernel.iovecs.clear();
        self.sent_bytes = 0;
        self.total_bytes = 0;
        self.check_invariants();
    }

    /// Asserts the list's invariants (debug builds only; after every mutation).
    pub fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        assert!(
            self.sent_bytes <= self.total_bytes,
            "sent_bytes={} total_bytes={}",
            self.sent_bytes,
            self.total_bytes
        );
        assert!(
            self.chunks.len() <= GATHER_CHUNK_COUNT_MAX,
            "too many chunks"
        );
        let sum: usize = self.chunks.iter().map(OpBuf::len).sum();
        assert_eq!(sum, self.total_bytes, "total_bytes out of step");
    }

    /// Rebuilds the iovecs over the unsent bytes and returns the `msghdr` for a `SENDMSG` SQE.
    /// The pointer, and every address reachable from it, stays valid while the list is alive
    /// and not mutated: the caller (an in-flight op that owns the list) guarantees both.
    pub(crate) fn kernel_message(&mut self) -> *const libc::msghdr {
        assert!(!self.is_empty(), "nothing left to send");
        let unsent_bytes = self.len();
        let iovecs = &mut self.kernel.iovecs;
        iovecs.clear();
        let mut skip_bytes = self.sent_bytes;
        for chunk in &self.chunks {
            let bytes = chunk.bytes();
            if skip_bytes >= bytes.len() {
                skip_bytes -= bytes.len();
                continue;
            }
            let unsent = &bytes[skip_bytes..];
            skip_bytes = 0;
            // The kernel only reads through these pointers (SENDMSG); `iovec` just has no
            // const variant.
            iovecs.push(libc::iovec {
                iov_base: unsent.as_ptr().cast_mut().cast(),
                iov_len: unsent.len(),
            });
        }
        let unsent_sum: usize = iovecs.iter().map(|iovec| iovec.iov_len).sum();
        assert_eq!(
            unsent_sum, unsent_bytes,
            "iovecs must cover the unsent bytes"
        );
        let header = &mut *self.kernel.header;
        header.msg_iov = iovecs.as_mut_ptr();
        header.msg_iovlen = iovecs.len();
        std::ptr::from_ref(header)
    }

    /// The iovecs last built by `kernel_message`, as `(address, length)` pairs (tests).
    #[cfg(test)]
    fn iovec_spans(&self) -> Vec<(usize, usize)> {
        self.kernel
            .iovecs
            .iter()
            .map(|iovec| (iovec.iov_base.addr(), iovec.iov_len))
            .collect()
    }
}

impl Default for GatherList {
    fn default() -> GatherList {
        GatherList::new()
    }
}

impl From<Vec<OpBuf>> for GatherList {
    /// Takes the chunks in order; panics on the same conditions as [`GatherList::push`].
    fn from(chunks: Vec<OpBuf>) -> GatherList {
        let mut list = GatherList::with_capacity(chunks.len().min(GATHER_CHUNK_COUNT_MAX));
        for chunk in chunks {
            list.push(chunk);
        }
        list
    }
}

impl From<OpBuf> for GatherList {
    /// A one-chunk list: how the rest of a short [`Ring::send`](crate::Ring::send) is resent.
    fn from(chunk: OpBuf) -> GatherList {
        let mut list = GatherList::with_capacity(1);
        list.push(chunk);
        list
    }
}

impl fmt::Debug for GatherList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherList")
            .field("chunk_count", &self.chunks.len())
            .field("sent_bytes", &self.sent_bytes)
            .field("total_bytes", &self.total_bytes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AppendWriter;

    fn chunk_addresses(list: &GatherList) -> Vec<usize> {
        list.chunks()
            .iter()
            .map(|chunk| chunk.bytes().as_ptr().addr())
            .collect()
    }

    // Checks the resubmission bookkeeping of a short send: after each advance the iovecs
    // cover exactly the unsent bytes, starting inside the right chunk at the right byte, and
    // fully sent chunks are skipped. Table-driven over advances that end before, on and after
    // chunk boundaries.
    #[test]
    fn advance_moves_the_iovecs_past_sent_bytes() {
        let mut tail = AppendWriter::new(4096, 512);
        tail.append(&[2; 300]).unwrap();
        let mut list = GatherList::new();
        list.push(OpBuf::Vec(vec![1; 10]));
        list.push(OpBuf::Shared(tail.shared(), 100..300));
        list.push(OpBuf::Bytes(bytes::Bytes::from_static(&[3; 5])));
        assert_eq!(list.total_len(), 215);
        let starts = chunk_addresses(&list);

        // (bytes sent by this completion, expected iovecs as (chunk, first byte, length))
        type Span = (usize, usize, usize);
        let cases: [(usize, &[Span]); 5] = [
            (0, &[(0, 0, 10), (1, 0, 200), (2, 0, 5)]),
            (4, &[(0, 4, 6), (1, 0, 200), (2, 0, 5)]),
            (6, &[(1, 0, 200), (2, 0, 5)]),
            (199, &[(1, 199, 1), (2, 0, 5)]),
            (3, &[(2, 2, 3)]),
        ];
        for (sent, expected) in cases {
            list.advance(sent);
            let _ = list.kernel_message();
            let expected: Vec<(usize, usize)> = expected
                .iter()
                .map(|&(chunk, first, len)| (starts[chunk] + first, len))
                .collect();
            assert_eq!(list.iovec_spans(), expected, "after advancing {sent}");
            let unsent: usize = expected.iter().map(|&(_, len)| len).sum();
            assert_eq!(list.len(), unsent);
        }
        list.advance(3);
        assert!(list.is_empty());
        assert_eq!(list.sent_len(), 215);
        assert!(
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| list.advance(1))).is_err()
        );
    }

    // Checks that the msghdr names the iovec array, that clear keeps the allocations and
    // releases Shared chunks, and that empty chunks are skipped.
    #[test]
    fn message_header_and_reuse() {
        let mut tail = AppendWriter::new(512, 512);
        tail.append(b"records").unwrap();
        let mut list = GatherList::with_capacity(4);
        list.push(OpBuf::Vec(Vec::new()));
        list.push(OpBuf::Shared(tail.shared(), 0..7));
        let header = list.kernel_message();
        assert_eq!(list.iovec_spans().len(), 1, "the empty chunk has no iovec");
        // SAFETY: `header` points at the list's boxed msghdr, alive and unmodified here.
        let header = unsafe { &*header };
        assert_eq!(header.msg_iovlen, 1);
        assert_eq!(header.msg_iov, list.kernel.iovecs.as_ptr().cast_mut());
        assert!(!tail.try_reset(), "the list holds the tail buffer");
        list.clear();
        assert!(tail.try_reset(), "clear released it");
        assert!(list.is_empty());
        assert!(list.chunks.capacity() >= 4);
        let from_vec = GatherList::from(vec![OpBuf::Vec(vec![1, 2]), OpBuf::Vec(vec![3])]);
        assert_eq!(from_vec.len(), 3);
    }

    // Checks that a Shared chunk beyond the published bytes is refused.
    #[test]
    fn unpublished_shared_chunk_panics() {
        let mut tail = AppendWriter::new(512, 512);
        tail.append(b"abc").unwrap();
        let chunk = OpBuf::Shared(tail.shared(), 0..4);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = GatherList::from(chunk);
        }));
        assert!(result.is_err());
    }
}
