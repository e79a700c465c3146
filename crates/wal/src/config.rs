//! Configuration of a shard's partition logs.
//!
//! Invariants (checked by [`WalConfig::validate`]): `segment_size_bytes` and
//! `tail_chunk_bytes` are multiples of the block size; a batch of `batch_size_bytes_max` plus
//! a segment header block fits in one tail chunk and in one segment.

use std::path::PathBuf;
use std::time::Duration;

use ringlog_types::units::{KIB, MIB};

use crate::error::{Error, Result};

/// Retention limits; `None` means unlimited.
#[derive(Clone, Copy, Debug, Default)]
pub struct Retention {
    /// Keep at most this many bytes of segment files (the active segment always stays).
    pub bytes_max: Option<u64>,
    /// Delete a sealed segment once its newest batch is older than this.
    pub age_max: Option<Duration>,
}

/// How committed bytes reach the disk. Both pass the same conformance tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritePath {
    /// O_DIRECT writes with `RWF_DSYNC` through io_uring: each is durable when it completes
    /// (the default).
    Direct,
    /// Segments mapped with mmap; a commit copies into the mapping, then fdatasync. For file
    /// systems without O_DIRECT (tmpfs, some overlay and network file systems).
    Mmap,
}

impl WritePath {
    /// The name used in config files, flags and reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            WritePath::Direct => "direct",
            WritePath::Mmap => "mmap",
        }
    }

    /// Parses `direct` or `mmap`.
    pub fn parse(name: &str) -> Option<WritePath> {
        match name {
            "direct" => Some(WritePath::Direct),
            "mmap" => Some(WritePath::Mmap),
            _ => None,
        }
    }
}

/// Settings shared by every partition log of one shard.
#[derive(Clone, Debug)]
pub struct WalConfig {
    /// Directory that holds one sub-directory per partition.
    pub data_dir: PathBuf,
    /// `direct` or `mmap`.
    pub write_path: WritePath,
    /// Size of every segment file; a multiple of the block size.
    pub segment_size_bytes: u64,
    /// Filled segments kept ready per partition, so that rolling never waits for a fill.
    pub spare_segments_count: usize,
    /// Retention the log applies by itself when it rolls: with `bytes_max`, rolling beyond it
    /// reuses the oldest segment's file for the new segment (no zero-fill, no delete).
    /// `Wal::enforce_retention` applies any retention (also by age) on demand.
    pub retention: Retention,
    /// Reuse segments that retention drops as spares instead of deleting them (their stale
    /// bytes are told apart by recovery), so a log at its retention limit never zero-fills.
    pub recycle_segments: bool,
    /// Size of one in-memory tail chunk (the buffers commits are written from and recent
    /// reads are served from); also the largest possible commit.
    pub tail_chunk_bytes: u64,
    /// Tail chunks kept per partition for reads after they are written.
    pub tail_chunks_max: usize,
    /// Largest batch accepted by `append`.
    pub batch_size_bytes_max: u64,
    /// One sparse index entry at least every this many bytes of batches.
    pub index_interval_bytes: u64,
    /// Block size override; `None` asks the file system (statx `dio_offset_align`, at least
    /// 512) for the direct path and uses 4 KiB (the page size) for the mmap path.
    pub block_size_bytes: Option<u64>,
    /// io_uring submission queue entries.
    pub ring_entries: u32,
    /// Fault injection for tests (see `ringlog_uring::FaultPlan`).
    pub fault_plan: Option<ringlog_uring::FaultPlan>,
}

impl WalConfig {
    /// Defaults for `data_dir` with the given write path.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>, write_path: WritePath) -> WalConfig {
        WalConfig {
            data_dir: data_dir.into(),
            write_path,
            segment_size_bytes: 128 * MIB,
            spare_segments_count: 1,
            retention: Retention::default(),
            recycle_segments: true,
            tail_chunk_bytes: 4 * MIB,
            tail_chunks_max: 4,
            batch_size_bytes_max: MIB,
            index_interval_bytes: 4 * KIB,
            block_size_bytes: None,
            ring_entries: 256,
            fault_plan: None,
        }
    }

    /// Checks the relationships between sizes for a given block size.
    pub fn validate(&self, block_size_bytes: u64) -> Result<()> {
        let invalid = |reason: String| Err(Error::InvalidConfig { reason });
        if !block_size_bytes.is_power_of_two() || block_size_bytes < 512 {
            return invalid(format!(
                "block size {block_size_bytes} is not a power of two >= 512"
            ));
        }
        if !self.segment_size_bytes.is_multiple_of(block_size_bytes) {
            return invalid(format!(
                "segment_size_bytes={} is not a multiple of the block size {block_size_bytes}",
                self.segment_size_bytes
            ));
        }
        if !self.tail_chunk_bytes.is_multiple_of(block_size_bytes) {
            return invalid(format!(
                "tail_chunk_bytes={} is not a multiple of the block size {block_size_bytes}",
                self.tail_chunk_bytes
            ));
        }
        let batch_room = self.batch_size_bytes_max + 2 * block_size_bytes;
        if batch_room > self.tail_chunk_bytes || batch_room > self.segment_size_bytes {
            return invalid(format!(
                "batch_size_bytes_max={} plus two blocks must fit in tail_chunk_bytes={} and \
                 segment_size_bytes={}",
                self.batch_size_bytes_max, self.tail_chunk_bytes, self.segment_size_bytes
            ));
        }
        if self.segment_size_bytes > u64::from(u32::MAX) {
            return invalid("segment_size_bytes must be below 4 GiB".to_string());
        }
        if self.tail_chunks_max == 0 || self.spare_segments_count == 0 {
            return invalid("tail_chunks_max and spare_segments_count must be >= 1".to_string());
        }
        Ok(())
    }
}
