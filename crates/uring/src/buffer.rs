//! Aligned heap buffers that io_uring operations own while they are in flight.
//!
//! Three kinds of buffer live here:
//!
//! - [`AlignedBuf`]: one uniquely owned, zero-filled, aligned allocation (an O_DIRECT read
//!   target, a zero-fill block, a scratch page). It behaves like a `Box<[u8]>` whose address
//!   is a multiple of its alignment.
//! - [`AppendBuf`] with its unique [`AppendWriter`]: the partition's tail buffer. One writer
//!   appends; any number of readers (in-flight writes, fetches served from the tail) read the
//!   bytes already published.
//! - [`BufPool`]: a fixed set of [`AlignedBuf`]s of one size, allocated at startup, so the data
//!   path never allocates.
//!
//! Invariants (each is asserted where it is established):
//!
//! - An allocation starts at a multiple of its `align`, a power of two `>= 512`, and never
//!   moves or changes size until it is freed. A pointer into it stays valid for as long as the
//!   owning value (or an `Arc` of it) is alive, wherever that value is moved.
//! - Every allocation carries a process-unique id that is never reused. The ring uses it to
//!   recognise an allocation it registered with the kernel: an id names one allocation, never
//!   an address that a later allocation might reuse.
//! - `AppendBuf`: bytes below `published_len` are never written again until the writer resets
//!   the buffer, which it can do only while it holds the sole reference. The writer writes only
//!   at or above `published_len`; readers read only below a value of `published_len` they
//!   loaded with `Acquire`, which pairs with the writer's `Release` store. Readers and the
//!   writer therefore never touch the same byte at the same time.
//! - `published_len <= capacity`, and `capacity` is a multiple of `align`, so padding a commit
//!   to the next aligned position always fits.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut, Range};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// The smallest alignment a buffer may have: the smallest logical block size of a disk.
pub const ALIGN_MIN_BYTES: usize = 512;

/// Source of allocation ids. Starts at 1 so that 0 never names an allocation.
static NEXT_ALLOCATION_ID: AtomicU64 = AtomicU64::new(1);

/// True if `value` is a multiple of `align`, a power of two.
fn is_aligned(value: usize, align: usize) -> bool {
    debug_assert!(align.is_power_of_two(), "align={align}");
    value & (align - 1) == 0
}

/// One zero-filled aligned heap allocation, freed on drop. The building block of every buffer
/// in this module; it owns the memory but grants no access by itself.
struct RawAlloc {
    ptr: NonNull<u8>,
    layout: Layout,
    id: u64,
}

impl RawAlloc {
    /// Allocates `len` zeroed bytes aligned to `align`. Panics on `len == 0` or an alignment
    /// that is not a power of two `>= 512`: both are programmer errors.
    fn zeroed(len: usize, align: usize) -> RawAlloc {
        assert!(len > 0, "aligned buffer of zero bytes: len={len}");
        assert!(
            align.is_power_of_two(),
            "alignment is not a power of two: align={align}"
        );
        assert!(
            align >= ALIGN_MIN_BYTES,
            "alignment below {ALIGN_MIN_BYTES}: align={align}"
        );
        let layout = Layout::from_size_align(len, align)
            .unwrap_or_else(|_| panic!("invalid buffer layout: len={len} align={align}"));
        // SAFETY: `alloc_zeroed` requires a layout of non-zero size; `len > 0` is asserted
        // just above and `Layout::from_size_align` checked the alignment.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        assert!(
            is_aligned(ptr.as_ptr().addr(), align),
            "allocator returned a misaligned block"
        );
        let id = NEXT_ALLOCATION_ID.fetch_add(1, Ordering::Relaxed);
        RawAlloc { ptr, layout, id }
    }

    fn len(&self) -> usize {
        self.layout.size()
    }

    fn align(&self) -> usize {
        self.layout.align()
    }
}

impl Drop for RawAlloc {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed(self.layout)` in `RawAlloc::zeroed` and is
        // freed only here, once, when the sole owner of the allocation is dropped.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A heap buffer aligned to `align` (a power of two `>= 512`), zero-filled at allocation.
///
/// It owns its memory like a `Box<[u8]>`: moving the value does not move the bytes, which is
/// what lets an io_uring operation hold it while the kernel reads or writes them.
pub struct AlignedBuf {
    raw: RawAlloc,
}

// SAFETY: `AlignedBuf` is the unique owner of its allocation (nothing else holds the pointer
// outside an in-flight operation that owns the buffer), and it hands out `&[u8]`/`&mut [u8]`
// only through `&self`/`&mut self`, so the borrow checker orders every access exactly as it
// would for a `Box<[u8]>`, which is `Send`.
unsafe impl Send for AlignedBuf {}
// SAFETY: through `&AlignedBuf` only shared reads are possible (`as_slice`), as for `&[u8]`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// Allocates `len` zeroed bytes aligned to `align`.
    ///
    /// Panics if `len == 0` or `align` is not a power of two `>= 512` (programmer errors).
    #[must_use]
    pub fn zeroed(len: usize, align: usize) -> AlignedBuf {
        AlignedBuf {
            raw: RawAlloc::zeroed(len, align),
        }
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Always false: a buffer has at least one byte. Present because `len` is.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.raw.len() == 0
    }

    /// Alignment of the first byte, in bytes.
    #[must_use]
    pub fn align(&self) -> usize {
        self.raw.align()
    }

    /// The bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the allocation holds `len` initialised (zero-filled at allocation) bytes and
        // lives as long as `self`; `&self` excludes any `&mut` access for the borrow's life.
        unsafe { std::slice::from_raw_parts(self.raw.ptr.as_ptr(), self.raw.len()) }
    }

    /// The bytes, mutably.
    #[must_use]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only access for the
        // borrow's life (an in-flight operation owns the buffer, so none can run meanwhile).
        unsafe { std::slice::from_raw_parts_mut(self.raw.ptr.as_ptr(), self.raw.len()) }
    }

    /// Process-unique id of the allocation, never reused.
    pub(crate) fn allocation_id(&self) -> u64 {
        self.raw.id
    }

    /// Start address, for registering the allocation with the kernel.
    pub(crate) fn base_ptr(&self) -> *mut u8 {
        self.raw.ptr.as_ptr()
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len())
            .field("align", &self.align())
            .finish_non_exhaustive()
    }
}

/// Append-only aligned buffer shared by one writer ([`AppendWriter`]) and many readers
/// (in-flight write operations, fetches served from the tail).
///
/// Bytes below [`published_len`](Self::published_len) are immutable until the writer resets
/// the buffer, which it can only do as the sole owner. Readers get them through
/// [`published`](Self::published) and [`slice`](Self::slice).
pub struct AppendBuf {
    raw: RawAlloc,
    /// Bytes `[0, published_len)` are written and frozen. Stored with `Release` by the writer
    /// after it has written the bytes, loaded with `Acquire` by readers before they read them.
    published_len: AtomicUsize,
}

// SAFETY: the allocation is owned by the `AppendBuf` and freed once, when the last `Arc` goes.
// Moving it to another thread moves nothing that another thread could still be mutating:
// only the `AppendWriter` writes, and only above `published_len` (module invariants).
unsafe impl Send for AppendBuf {}
// SAFETY: shared access is sound because readers only read `[0, published_len)` after an
// `Acquire` load, while the unique writer only writes `[published_len, capacity)` and publishes
// with a `Release` store; the two ranges are disjoint at every moment, so there is no data
// race. Reset (the only way published bytes change) requires `Arc::get_mut`, i.e. no reader.
unsafe impl Sync for AppendBuf {}

impl AppendBuf {
    /// Total size in bytes.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.raw.len()
    }

    /// Alignment of the first byte, in bytes; `capacity` is a multiple of it.
    #[must_use]
    pub fn align(&self) -> usize {
        self.raw.align()
    }

    /// Number of bytes published so far. They never change until the buffer is reset.
    #[must_use]
    pub fn published_len(&self) -> usize {
        self.published_len.load(Ordering::Acquire)
    }

    /// The published bytes, `[0, published_len)`.
    #[must_use]
    pub fn published(&self) -> &[u8] {
        let published_len = self.published_len();
        // SAFETY: `published_len <= capacity` (writer invariant) and the bytes below it were
        // written before the `Release` store that our `Acquire` load observed. Nobody writes
        // them while any `&AppendBuf` exists: the writer only writes above `published_len`
        // and resets only through `Arc::get_mut`, which a live `&self` rules out.
        unsafe { std::slice::from_raw_parts(self.raw.ptr.as_ptr(), published_len) }
    }

    /// The published bytes in `range`. Panics if `range.end > published_len` or
    /// `range.start > range.end`: asking for unpublished bytes is a programmer error.
    #[must_use]
    pub fn slice(&self, range: Range<usize>) -> &[u8] {
        let published = self.published();
        assert!(
            range.end <= published.len(),
            "slice beyond published bytes: range={range:?} published_len={}",
            published.len()
        );
        &published[range]
    }

    /// Process-unique id of the allocation, never reused.
    pub(crate) fn allocation_id(&self) -> u64 {
        self.raw.id
    }

    /// Start address, for registering the allocation with the kernel. The kernel only reads
    /// through it (the ring never issues a read into an `AppendBuf`).
    pub(crate) fn base_ptr(&self) -> *mut u8 {
        self.raw.ptr.as_ptr()
    }
}

impl fmt::Debug for AppendBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppendBuf")
            .field("capacity", &self.capacity())
            .field("align", &self.align())
            .field("published_len", &self.published_len())
            .finish_non_exhaustive()
    }
}

/// The unique writer of an [`AppendBuf`]. Not `Clone`: there is exactly one per buffer.
pub struct AppendWriter {
    buf: Arc<AppendBuf>,
}

impl AppendWriter {
    /// Allocates a zeroed buffer of `capacity` bytes aligned to `align`.
    ///
    /// Panics if `capacity` is zero or not a multiple of `align`, or if `align` is not a power
    /// of two `>= 512` (programmer errors).
    #[must_use]
    pub fn new(capacity: usize, align: usize) -> AppendWriter {
        assert!(
            align.is_power_of_two() && is_aligned(capacity, align),
            "capacity is not a multiple of align: capacity={capacity} align={align}"
        );
        let raw = RawAlloc::zeroed(capacity, align);
        let writer = AppendWriter {
            buf: Arc::new(AppendBuf {
                raw,
                published_len: AtomicUsize::new(0),
            }),
        };
        writer.check_invariants();
        writer
    }

    /// A reader handle. Each one keeps the buffer alive and blocks
    /// [`try_reset`](Self::try_reset) until it is dropped.
    #[must_use]
    pub fn shared(&self) -> Arc<AppendBuf> {
        Arc::clone(&self.buf)
    }

    /// Number of bytes published so far.
    #[must_use]
    pub fn published_len(&self) -> usize {
        // Only this writer stores `published_len`, so its own last store is what it reads.
        self.buf.published_len.load(Ordering::Relaxed)
    }

    /// Bytes still free above `published_len`.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.capacity() - self.published_len()
    }

    /// Total size in bytes.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Alignment in bytes.
    #[must_use]
    pub fn align(&self) -> usize {
        self.buf.align()
    }

    /// Copies `bytes` at `published_len` and publishes them. Returns the position they start
    /// at, or `None` (changing nothing) if they do not fit.
    pub fn append(&mut self, bytes: &[u8]) -> Option<usize> {
        self.append_with(bytes.len(), |target| target.copy_from_slice(bytes))
    }

    /// Lends the next `len` unpublished bytes to `fill`, then publishes them. Returns the
    /// position they start at, or `None` (calling nothing) if they do not fit.
    ///
    /// The lent bytes hold unspecified data (zeroes on first use, older data after a reset),
    /// so `fill` must write every byte it wants on disk. If `fill` panics, nothing is published.
    pub fn append_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Option<usize> {
        let position = self.published_len();
        if len > self.remaining() {
            return None;
        }
        // SAFETY: `[position, position + len)` lies inside the allocation (`len <= remaining`
        // was checked above) and at or above `published_len`, so no reader and no in-flight
        // operation reads it (module invariants). `&mut self` on the unique writer makes this
        // the only mutable view. The slice dies before `publish` makes the bytes readable.
        let target =
            unsafe { std::slice::from_raw_parts_mut(self.buf.raw.ptr.as_ptr().add(position), len) };
        fill(target);
        self.publish(position + len);
        Some(position)
    }

    /// Publishes zero bytes up to the next multiple of `align` (the padding of a commit). Does
    /// nothing if `published_len` is already aligned. Always fits: `capacity` is aligned.
    pub fn pad_to_alignment(&mut self) {
        let position = self.published_len();
        let padded = position.next_multiple_of(self.align());
        assert!(
            padded <= self.capacity(),
            "padding overflows: padded={padded}"
        );
        let appended = self.append_with(padded - position, |target| target.fill(0));
        assert_eq!(
            appended,
            Some(position),
            "padding must fit: position={position}"
        );
    }

    /// Resets to empty if this writer holds the only reference to the buffer, so that the same
    /// allocation (and its kernel registration, if any) is reused. Returns false and changes
    /// nothing while any reader or in-flight operation still holds an `Arc`.
    pub fn try_reset(&mut self) -> bool {
        // `Arc::get_mut` succeeds only with no other strong or weak reference: no reader can
        // observe the published bytes change under it.
        let Some(buf) = Arc::get_mut(&mut self.buf) else {
            return false;
        };
        *buf.published_len.get_mut() = 0;
        self.check_invariants();
        true
    }

    /// Asserts the writer's invariants (debug builds only; called after every mutation).
    pub fn check_invariants(&self) {
        if cfg!(debug_assertions) {
            let published_len = self.published_len();
            assert!(
                published_len <= self.capacity(),
                "published_len={published_len} capacity={}",
                self.capacity()
            );
            assert!(
                is_aligned(self.capacity(), self.align()),
                "capacity must be aligned"
            );
        }
    }

    fn publish(&mut self, published_len: usize) {
        assert!(
            published_len >= self.published_len(),
            "published bytes never shrink: new={published_len} old={}",
            self.published_len()
        );
        assert!(
            published_len <= self.capacity(),
            "published_len={published_len} too big"
        );
        self.buf
            .published_len
            .store(published_len, Ordering::Release);
        self.check_invariants();
    }
}

impl fmt::Debug for AppendWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppendWriter")
            .field("buf", &self.buf)
            .finish()
    }
}

/// A fixed set of [`AlignedBuf`]s of one size and alignment, allocated up front so that the
/// data path never allocates. A buffer taken out comes back with [`give`](Self::give); its
/// contents are not cleared in between.
pub struct BufPool {
    free: Vec<AlignedBuf>,
    /// Allocation ids of every buffer this pool made, sorted: `give` accepts only these.
    member_ids: Vec<u64>,
    buffer_len: usize,
    align: usize,
}

impl BufPool {
    /// Allocates `count` zeroed buffers of `buffer_len` bytes aligned to `align`.
    /// Panics on `count == 0` or on arguments [`AlignedBuf::zeroed`] rejects.
    #[must_use]
    pub fn new(count: usize, buffer_len: usize, align: usize) -> BufPool {
        assert!(count > 0, "empty buffer pool");
        let free: Vec<AlignedBuf> = (0..count)
            .map(|_| AlignedBuf::zeroed(buffer_len, align))
            .collect();
        let mut member_ids: Vec<u64> = free.iter().map(AlignedBuf::allocation_id).collect();
        member_ids.sort_unstable();
        let pool = BufPool {
            free,
            member_ids,
            buffer_len,
            align,
        };
        pool.check_invariants();
        pool
    }

    /// Takes a buffer out, or `None` if all are in use.
    pub fn take(&mut self) -> Option<AlignedBuf> {
        let buf = self.free.pop();
        self.check_invariants();
        buf
    }

    /// Returns a buffer taken from this pool. Panics if it was not made by this pool.
    pub fn give(&mut self, buf: AlignedBuf) {
        assert!(
            self.member_ids.binary_search(&buf.allocation_id()).is_ok(),
            "buffer does not belong to this pool: {buf:?}"
        );
        self.free.push(buf);
        self.check_invariants();
    }

    /// Number of buffers the pool owns in total.
    #[must_use]
    pub fn count(&self) -> usize {
        self.member_ids.len()
    }

    /// Number of buffers currently in the pool.
    #[must_use]
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Size of each buffer in bytes.
    #[must_use]
    pub fn buffer_len(&self) -> usize {
        self.buffer_len
    }

    /// Alignment of each buffer in bytes.
    #[must_use]
    pub fn align(&self) -> usize {
        self.align
    }

    /// The buffers currently in the pool (for registering them with a ring at startup).
    pub fn free_buffers(&self) -> impl Iterator<Item = &AlignedBuf> {
        self.free.iter()
    }

    /// Asserts the pool's invariants (debug builds only; called after every mutation).
    pub fn check_invariants(&self) {
        if cfg!(debug_assertions) {
            assert!(
                self.free.len() <= self.member_ids.len(),
                "more free buffers than members"
            );
            for buf in &self.free {
                assert_eq!(buf.len(), self.buffer_len, "foreign buffer length");
                assert_eq!(buf.align(), self.align, "foreign buffer alignment");
            }
        }
    }
}

impl fmt::Debug for BufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufPool")
            .field("count", &self.count())
            .field("free_count", &self.free_count())
            .field("buffer_len", &self.buffer_len)
            .field("align", &self.align)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::thread;

    // Checks that an AlignedBuf is aligned, zero-filled, writable, and that distinct
    // allocations get distinct ids.
    #[test]
    fn aligned_buf_is_aligned_zeroed_and_writable() {
        for align in [512, 4096, 65536] {
            let mut buf = AlignedBuf::zeroed(3 * align + 7, align);
            assert!(is_aligned(buf.as_ptr().addr(), align));
            assert_eq!(buf.len(), 3 * align + 7);
            assert_eq!(buf.align(), align);
            assert!(!buf.is_empty());
            assert!(buf.iter().all(|&byte| byte == 0));
            buf[5] = 9;
            let last = buf.len() - 1;
            buf.as_mut_slice()[last] = 1;
            assert_eq!(buf.as_slice()[5], 9);
            assert_eq!(buf[buf.len() - 1], 1);
        }
        let first = AlignedBuf::zeroed(512, 512);
        let second = AlignedBuf::zeroed(512, 512);
        assert_ne!(first.allocation_id(), second.allocation_id());
    }

    // Checks that programmer errors (empty buffer, bad alignment) panic.
    #[test]
    fn aligned_buf_rejects_bad_arguments() {
        assert!(std::panic::catch_unwind(|| AlignedBuf::zeroed(0, 512)).is_err());
        assert!(std::panic::catch_unwind(|| AlignedBuf::zeroed(512, 256)).is_err());
        assert!(std::panic::catch_unwind(|| AlignedBuf::zeroed(512, 1000)).is_err());
        assert!(std::panic::catch_unwind(|| AppendWriter::new(1000, 512)).is_err());
    }

    // Checks append, append_with and pad_to_alignment positions, the published view, and
    // that an append that does not fit changes nothing.
    #[test]
    fn append_writer_publishes_in_order() {
        let mut writer = AppendWriter::new(2048, 512);
        let reader = writer.shared();
        assert_eq!(writer.append(b"hello"), Some(0));
        assert_eq!(
            writer.append_with(3, |target| target.copy_from_slice(b"abc")),
            Some(5)
        );
        assert_eq!(reader.published(), b"helloabc");
        assert_eq!(reader.slice(5..8), b"abc");
        writer.pad_to_alignment();
        assert_eq!(reader.published_len(), 512);
        assert!(reader.published()[8..].iter().all(|&byte| byte == 0));
        writer.pad_to_alignment();
        assert_eq!(writer.published_len(), 512, "already aligned: no padding");
        assert_eq!(writer.append(&[7; 1536]), Some(512));
        assert_eq!(writer.remaining(), 0);
        assert_eq!(writer.append(b"x"), None);
        assert_eq!(
            writer.append_with(1, |_| panic!("must not be called")),
            None
        );
        assert_eq!(writer.published_len(), 2048);
        assert_eq!(
            writer.append(b""),
            Some(2048),
            "an empty append always fits"
        );
    }

    // Checks that reading past the published length panics.
    #[test]
    fn slice_beyond_published_panics() {
        let mut writer = AppendWriter::new(512, 512);
        writer.append(b"abc");
        let reader = writer.shared();
        assert!(std::panic::catch_unwind(|| reader.slice(0..4).len()).is_err());
    }

    // Checks that a panicking fill publishes nothing.
    #[test]
    fn panicking_fill_publishes_nothing() {
        let mut writer = AppendWriter::new(512, 512);
        let reader = writer.shared();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            writer.append_with(10, |_| panic!("fill failed"));
        }));
        assert!(result.is_err());
        assert_eq!(reader.published_len(), 0);
    }

    // Checks that try_reset refuses while any reader holds an Arc, and succeeds (keeping the
    // same allocation) once the writer is the sole owner.
    #[test]
    fn try_reset_refuses_while_shared() {
        let mut writer = AppendWriter::new(1024, 512);
        writer.append(b"committed");
        let reader = writer.shared();
        let id = reader.allocation_id();
        assert!(!writer.try_reset());
        assert_eq!(
            reader.published(),
            b"committed",
            "refused reset changes nothing"
        );
        let reader_on_thread = writer.shared();
        let handle = thread::spawn(move || reader_on_thread.published().to_vec());
        assert_eq!(handle.join().unwrap(), b"committed");
        assert!(!writer.try_reset(), "the first reader still holds an Arc");
        drop(reader);
        assert!(writer.try_reset());
        assert_eq!(writer.published_len(), 0);
        assert_eq!(writer.shared().allocation_id(), id);
        assert_eq!(writer.append(b"next"), Some(0));
    }

    // Checks the publication protocol under concurrency: one writer appends numbered records
    // while several reader threads repeatedly load the published prefix and verify every
    // record in it. A reader seeing a byte that was not yet written would fail the check.
    #[test]
    fn readers_see_only_complete_published_records() {
        const RECORD_LEN: usize = 64;
        const RECORD_COUNT: usize = 4096;
        let mut writer = AppendWriter::new(RECORD_LEN * RECORD_COUNT, 512);
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let buf = writer.shared();
                let done = Arc::clone(&done);
                thread::spawn(move || {
                    let mut checks = 0_u64;
                    loop {
                        let finished = done.load(Ordering::Acquire);
                        let published = buf.published();
                        assert_eq!(published.len() % RECORD_LEN, 0);
                        for (index, record) in published.chunks(RECORD_LEN).enumerate() {
                            let stamp = u64::try_from(index).unwrap().to_le_bytes();
                            assert_eq!(&record[..8], &stamp, "record {index}");
                            assert!(record[8..].iter().all(|&byte| byte == 0xAB));
                        }
                        checks += 1;
                        if finished {
                            return checks;
                        }
                    }
                })
            })
            .collect();
        for index in 0..RECORD_COUNT {
            let position = writer.append_with(RECORD_LEN, |target| {
                target[..8].copy_from_slice(&u64::try_from(index).unwrap().to_le_bytes());
                target[8..].fill(0xAB);
            });
            assert_eq!(position, Some(index * RECORD_LEN));
        }
        done.store(true, Ordering::Release);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
        assert!(writer.try_reset(), "all readers are gone");
    }

    // Checks take/give accounting and that a foreign buffer is refused.
    #[test]
    fn buf_pool_take_and_give() {
        let mut pool = BufPool::new(2, 4096, 4096);
        assert_eq!(pool.free_buffers().count(), 2);
        let first = pool.take().unwrap();
        let second = pool.take().unwrap();
        assert!(pool.take().is_none());
        assert_eq!(pool.free_count(), 0);
        pool.give(first);
        pool.give(second);
        assert_eq!(pool.free_count(), 2);
        assert_eq!(pool.count(), 2);
        let foreign = AlignedBuf::zeroed(4096, 4096);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.give(foreign)));
        assert!(result.is_err());
    }
}
