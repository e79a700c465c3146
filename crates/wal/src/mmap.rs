//! The mmap write path's mapping of a segment file.
//!
//! Invariant: a mapping is only ever written by the shard thread that owns the partition,
//! and only in the byte range of the commit being made; nothing else maps the file writable.

use std::fs::File;

/// Maps a whole segment file read-write.
pub(crate) fn map_segment(file: &File) -> std::io::Result<memmap2::MmapMut> {
    // SAFETY: the segment file is owned by this partition log alone: it lives in the
    // partition's directory, which one process (and one shard thread within it) opens, and
    // its length is fixed (segments are filled before use and never truncated while open),
    // so the mapping cannot be invalidated by a concurrent truncation.
    unsafe { memmap2::MmapMut::map_mut(file) }
}

/// Maps a whole segment file read-only (recovery scans).
pub(crate) fn map_segment_read_only(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: as for `map_segment`: nothing truncates the file while the partition is being
    // opened, and recovery only reads.
    unsafe { memmap2::Mmap::map(file) }
}
