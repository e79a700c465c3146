//! The in-memory tail of a partition: the aligned chunks that commits are written from and
//! that recent reads are served from without copying.
//!
//! Invariants: every chunk maps its byte 0 to a block-aligned file position of one segment;
//! bytes below a chunk's published length never change while anyone holds the chunk (the
//! `AppendBuf` contract), so an in-flight write and any number of readers may share them;
//! every commit starts at a block-aligned chunk position and ends, padded, at one; the number
//! of chunks is bounded by `tail_chunks_max` plus the chunks still referenced by commits.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use ringlog_types::Offset;
use ringlog_uring::{AppendBuf, AppendWriter};

/// One chunk of the tail.
pub(crate) struct TailChunk {
    /// The writer; only the newest chunk is appended to.
    pub writer: AppendWriter,
    /// Segment the chunk's bytes belong to.
    pub segment_base: Offset,
    /// File position of the chunk's byte 0.
    pub file_position: u64,
}

impl TailChunk {
    /// File positions covered by published bytes.
    pub fn file_range(&self) -> Range<u64> {
        let published = u64::try_from(self.writer.published_len()).expect("usize fits u64");
        self.file_position..self.file_position + published
    }
}

/// A commit being staged or written: a block-aligned range of one chunk.
#[derive(Clone)]
pub(crate) struct Commit {
    /// The chunk's shared buffer (kept alive by the commit).
    pub buf: Arc<AppendBuf>,
    /// Chunk position of the commit's first byte (block-aligned).
    pub chunk_start: usize,
    /// Chunk position just after its last byte so far (padded once closed).
    pub chunk_end: usize,
    /// File position of `chunk_start`.
    pub file_position: u64,
    /// Segment written to.
    pub segment_base: Offset,
    /// Offsets `[first_offset, next_offset)` carried by the commit.
    pub first_offset: Offset,
    /// First offset after the commit.
    pub next_offset: Offset,
    /// True once padded: no batch may be added.
    pub closed: bool,
}

impl Commit {
    /// Length of the commit in bytes.
    pub fn len_bytes(&self) -> u64 {
        u64::try_from(self.chunk_end - self.chunk_start).expect("usize fits u64")
    }
}

/// The chunks of one partition, oldest first, and a small pool of reset chunks.
pub(crate) struct Tail {
    pub chunks: VecDeque<TailChunk>,
    free: Vec<AppendWriter>,
    chunk_bytes: usize,
    block_size_bytes: usize,
    chunks_max: usize,
}

impl Tail {
    pub fn new(chunk_bytes: usize, block_size_bytes: usize, chunks_max: usize) -> Tail {
        Tail {
            chunks: VecDeque::new(),
            free: Vec::new(),
            chunk_bytes,
            block_size_bytes,
            chunks_max,
        }
    }

    /// The newest chunk, if it belongs to `segment_base` and has `len` bytes of room plus a
    /// block for padding.
    pub fn current_with_room(
        &mut self,
        segment_base: Offset,
        len: usize,
    ) -> Option<&mut TailChunk> {
        let block = self.block_size_bytes;
        self.chunks.back_mut().filter(|chunk| {
            chunk.segment_base == segment_base && chunk.writer.remaining() >= len + block
        })
    }

    /// Starts a new chunk whose byte 0 is `file_position` of segment `segment_base`.
    pub fn start_chunk(&mut self, segment_base: Offset, file_position: u64) -> &mut TailChunk {
        assert!(
            file_position.is_multiple_of(self.block_size_bytes as u64),
            "chunk start not aligned: file_position={file_position}"
        );
        let writer = self
            .free
            .pop()
            .unwrap_or_else(|| AppendWriter::new(self.chunk_bytes, self.block_size_bytes));
        self.chunks.push_back(TailChunk {
            writer,
            segment_base,
            file_position,
        });
        self.chunks.back_mut().expect("just pushed")
    }

    /// Drops the oldest chunks beyond `chunks_max` that no commit uses (`in_use`), and keeps
    /// the reset ones for reuse. A chunk still held by a reader is simply dropped from the
    /// tail: its memory is freed when the last reader lets go.
    pub fn evict(&mut self, in_use: &[&Arc<AppendBuf>]) {
        while self.chunks.len() > self.chunks_max {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let shared = front.writer.shared();
            if in_use.iter().any(|buf| Arc::ptr_eq(buf, &shared)) {
                break;
            }
            drop(shared);
            let mut chunk = self.chunks.pop_front().expect("front exists");
            if self.free.len() < self.chunks_max && chunk.writer.try_reset() {
                self.free.push(chunk.writer);
            }
        }
    }

    /// The chunk holding file position `position` of segment `segment_base`, if in memory.
    pub fn find(&self, segment_base: Offset, position: u64) -> Option<&TailChunk> {
        self.chunks.iter().find(|chunk| {
            chunk.segment_base == segment_base && chunk.file_range().contains(&position)
        })
    }

    /// Lowest file position of segment `segment_base` held in memory.
    pub fn first_position(&self, segment_base: Offset) -> Option<u64> {
        self.chunks
            .iter()
            .find(|chunk| chunk.segment_base == segment_base)
            .map(|chunk| chunk.file_position)
    }

    /// How many chunks are kept for reads.
    pub fn chunks_max(&self) -> usize {
        self.chunks_max
    }

    /// Forgets every chunk (after truncation).
    pub fn clear(&mut self) {
        self.chunks.clear();
    }
}
