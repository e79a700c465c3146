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
    use std::os::unix::fs::FileExt;
    let mut block = [0u8; 512];
    let read = File::open(path)?.read_at(&mut block, 0)?;
    Ok(block[..read].iter().any(|byte| *byte != 0))
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
