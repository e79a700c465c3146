//! Segment files: names, opening, and the in-memory description of each segment.
//!
//! Invariants: a segment's file is exactly `segment_size_bytes` long and was filled with
//! zeros before its first use; `data_end_position` is block-aligned once the segment is
//! sealed; segments of a partition cover contiguous offset ranges.

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringlog_types::Offset;

use crate::config::WritePath;
use crate::index::SegmentIndex;

/// Width of the zero-padded base offset in segment file names (Kafka's convention).
pub const SEGMENT_NAME_DIGITS: usize = 20;
/// Extension of segment files.
pub const SEGMENT_EXTENSION: &str = "log";
/// Prefix of spare (filled, not yet used) segment files.
pub const SPARE_PREFIX: &str = ".spare-";

/// `00000000000000001234.log` for base offset 1234.
#[must_use]
pub fn segment_file_name(base_offset: Offset) -> String {
    format!(
        "{:0width$}.{SEGMENT_EXTENSION}",
        base_offset.0,
        width = SEGMENT_NAME_DIGITS
    )
}

/// The base offset named by a segment file name, if it is one.
#[must_use]
pub fn parse_segment_file_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != SEGMENT_NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().map(Offset)
}

/// Opens an existing segment (or spare) file for the given write path.
pub fn open_segment_file(path: &Path, write_path: WritePath) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if write_path == WritePath::Direct {
        options.custom_flags(libc::O_DIRECT);
    }
    options.open(path)
}

/// A filled file ready to become the next segment.
#[derive(Clone, Debug)]
pub struct Spare {
    /// Where it is.
    pub path: PathBuf,
    /// True if it is a segment that retention dropped: its bytes are stale, not zero.
    pub recycled: bool,
}

/// True if the first block of the file at `path` holds anything but zeros: a segment that
/// had a previous life (its old header is there).
pub fn has_previous_life(path: &Path) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let mut block = [0u8; 512];
    let file = File::open(path)?;
    // No readahead: it would cache pages past this block, and asynchronously, where
    // `drop_cached_pages` cannot be sure to find them.
    // SAFETY: a plain syscall on a descriptor that `file` keeps open; no memory is passed.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
    let read = file.read_at(&mut block, 0)?;
    // The file may be written next: the page this read cached must not stay in the way (see
    // `drop_cached_pages`). The kernel drops only whole pages of the range: ask for the file.
    drop_cached_pages(&file, 0, 0);
    Ok(block[..read].iter().any(|byte| *byte != 0))
}

/// Evicts the clean cached pages of `[start, start + length)` (`length` 0: to the end of the
/// file) from the page cache. A direct-path segment must have none where it is written next:
/// io_uring submits an O_DIRECT write with IOCB_NOWAIT, and a range with cached pages makes
/// the kernel refuse that (invalidating them may block), so every such write is handed to an
/// io-wq worker thread instead of going straight to the device: a thread wake-up and two
/// context switches more per commit. Recovery's read-only mapping (the whole file) and
/// `has_previous_life`'s read are what fill the cache. Best effort: a failure only costs
/// that detour. Pages still mapped stay; dirty ones are only queued for writeback (neither
/// happens at these call sites: a segment is read before it is written, or after its sync).
pub fn drop_cached_pages(file: &File, start: u64, length: usize) {
    use std::os::fd::AsRawFd;
    let start = libc::off_t::try_from(start).unwrap_or(libc::off_t::MAX);
    let length = libc::off_t::try_from(length).unwrap_or(libc::off_t::MAX);
    // SAFETY: a plain syscall on a descriptor that `file` keeps open; no memory is passed.
    let result =
        unsafe { libc::posix_fadvise(file.as_raw_fd(), start, length, libc::POSIX_FADV_DONTNEED) };
    if result != 0 {
        tracing::debug!(
            errno = result,
            "posix_fadvise(DONTNEED) on a segment failed"
        );
    }
}

/// A segment that is no longer written to.
#[derive(Debug)]
pub struct SealedSegment {
    /// First offset in the segment.
    pub base_offset: Offset,
    /// First offset after it (the next segment's base).
    pub next_offset: Offset,
    /// Sparse offset -> position index.
    pub index: SegmentIndex,
    /// Path of the file.
    pub path: PathBuf,
    /// Greatest batch max timestamp seen in the segment (for retention by age).
    pub max_timestamp_ms: i64,
    /// Open file, for reads.
    pub fd: Arc<OwnedFd>,
    /// The mapping, on the mmap path (commits staged before the roll still copy into it).
    pub mmap: Option<memmap2::MmapMut>,
}

/// The segment commits are written to.
#[derive(Debug)]
pub struct ActiveSegment {
    /// First offset in the segment.
    pub base_offset: Offset,
    /// Path of the file.
    pub path: PathBuf,
    /// Open file (O_DIRECT on the direct path).
    pub fd: Arc<OwnedFd>,
    /// The mapping, on the mmap path.
    pub mmap: Option<memmap2::MmapMut>,
    /// Sparse offset -> position index, updated at append time.
    pub index: SegmentIndex,
    /// Position the next staged byte will occupy in the file (header included).
    pub staged_end_position: u64,
    /// Position just after the last batch staged so far.
    pub data_end_position: u64,
    /// Greatest batch max timestamp seen in the segment.
    pub max_timestamp_ms: i64,
    /// True until its first commit has been made durable under its final name.
    pub awaiting_rename: Option<PathBuf>,
    /// True if the file had a previous life (recycled): its header says so, and recovery then
    /// ignores stale bytes after the data.
    pub recycled: bool,
}
