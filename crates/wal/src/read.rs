//! Reads: whole batches from an offset, up to a byte limit and an offset bound (the durable
//! end unless the caller says otherwise), from the in-memory tail without copying, or from
//! the segment files through aligned reads on the ring.
//!
//! Invariants: a read never returns bytes at or above its bound's batch, never a part of a
//! batch, and never padding; the first batch is returned whole even if it is larger than the
//! byte limit (as Kafka does, so that a consumer always makes progress).

use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use ringlog_batch::{BatchHeader, HEADER_SIZE_BYTES, LOG_OVERHEAD_BYTES};
use ringlog_types::Offset;
use ringlog_uring::{AlignedBuf, AppendBuf};

use crate::error::{Error, Result};
use crate::partition::Partition;
use crate::wal::{tag, OpKind, PartitionHandle, Wal};

/// A contiguous run of whole batches.
pub enum ReadPart {
    /// Bytes of an in-memory tail chunk (no copy was made).
    Tail {
        /// The chunk.
        buf: Arc<AppendBuf>,
        /// The run's bytes in it.
        range: Range<usize>,
    },
    /// Bytes read from a segment file into an aligned buffer.
    Disk {
        /// The buffer.
        buf: Arc<AlignedBuf>,
        /// The run's bytes in it.
        range: Range<usize>,
    },
}

impl std::fmt::Debug for ReadPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadPart::Tail { range, .. } => write!(f, "Tail({range:?})"),
            ReadPart::Disk { range, .. } => write!(f, "Disk({range:?})"),
        }
    }
}

impl ReadPart {
    /// The run's bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        match self {
            ReadPart::Tail { buf, range } => buf.slice(range.clone()),
            ReadPart::Disk { buf, range } => &buf.as_slice()[range.clone()],
        }
    }
}

/// What a read returned.
#[derive(Debug)]
pub struct ReadResult {
    /// Runs of whole batches, in offset order.
    pub parts: Vec<ReadPart>,
    /// Base offset of the first batch returned (it may be below the requested offset: the
    /// batch that contains it is returned whole).
    pub first_offset: Option<Offset>,
    /// Offset after the last batch returned (the requested offset if none).
    pub next_offset: Offset,
    /// Total bytes of the parts.
    pub size_bytes: usize,
}

impl ReadResult {
    /// The batches as one buffer (a copy; for tools and tests).
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_bytes);
        for part in &self.parts {
            out.extend_from_slice(part.bytes());
        }
        out
    }

    fn push(&mut self, part: ReadPart) {
        let length = part.bytes().len();
        if let Some(last) = self.parts.last_mut() {
            if let Some(merged) = merge_parts(last, &part) {
                *last = merged;
                self.size_bytes += length;
                return;
            }
        }
        self.size_bytes += length;
        self.parts.push(part);
    }
}

fn merge_parts(last: &ReadPart, next: &ReadPart) -> Option<ReadPart> {
    match (last, next) {
        (
            ReadPart::Tail { buf, range },
            ReadPart::Tail {
                buf: next_buf,
                range: next_range,
            },
        ) if Arc::ptr_eq(buf, next_buf) && range.end == next_range.start => Some(ReadPart::Tail {
            buf: buf.clone(),
            range: range.start..next_range.end,
        }),
        (
            ReadPart::Disk { buf, range },
            ReadPart::Disk {
                buf: next_buf,
                range: next_range,
            },
        ) if Arc::ptr_eq(buf, next_buf) && range.end == next_range.start => Some(ReadPart::Disk {
            buf: buf.clone(),
            range: range.start..next_range.end,
        }),
        _ => None,
    }
}

/// The batch found at a position.
enum Found {
    /// A batch `[base, next)` of `size` bytes.
    Batch {
        base: Offset,
        next: Offset,
        size: usize,
    },
    /// Padding up to the next block boundary.
    Padding,
    /// No more data in this view.
    End,
}

/// Reads the batch header at `bytes[0..]`, if any.
fn find_batch(bytes: &[u8], position: u64, block: u64) -> Found {
    let padding = if position.is_multiple_of(block) {
        Found::End
    } else {
        Found::Padding
    };
    if bytes.len() < HEADER_SIZE_BYTES {
        return padding;
    }
    let Ok(header) = BatchHeader::parse(&bytes[..HEADER_SIZE_BYTES]) else {
        return padding;
    };
    let Ok(base) = u64::try_from(header.base_offset) else {
        return padding;
    };
    let base = Offset(base);
    let size = header.size_bytes();
    if size < LOG_OVERHEAD_BYTES || size > bytes.len() {
        return Found::End;
    }
    Found::Batch {
        base,
        next: base.add_count(header.record_count()),
        size,
    }
}

/// Where the walk of one segment stands.
struct Walk {
    segment_base: Offset,
    position: u64,
    offset: Offset,
    bound: Offset,
    max_bytes: usize,
    block: u64,
}

impl Walk {
    /// Walks the batches of `view` (bytes starting at file position `view_start`), adding
    /// the wanted ones to `result` with `make_part`. Returns false when this view has no
    /// more data for the walk.
    fn run(
        &mut self,
        view: &[u8],
        view_start: u64,
        result: &mut ReadResult,
        make_part: &dyn Fn(Range<usize>) -> ReadPart,
    ) {
        loop {
            if self.offset >= self.bound
                || (result.size_bytes > 0 && result.size_bytes >= self.max_bytes)
            {
                return;
            }
            let Some(at) = self
                .position
                .checked_sub(view_start)
                .and_then(|at| usize::try_from(at).ok())
            else {
                return;
            };
            if at >= view.len() {
                return;
            }
            match find_batch(&view[at..], self.position, self.block) {
                Found::End => return,
                Found::Padding => self.position = self.position.next_multiple_of(self.block),
                // A batch below the segment's base offset is a stale one from the file's
                // previous life (a recycled segment): the data ended before it.
                Found::Batch { base, .. } if base < self.segment_base => return,
                Found::Batch { base, next, size } => {
                    if base >= self.bound
                        || (result.size_bytes > 0 && result.size_bytes + size > self.max_bytes)
                    {
                        self.bound = self.offset;
                        return;
                    }
                    if next > self.offset {
                        result.first_offset.get_or_insert(base);
                        result.push(make_part(at..at + size));
                        self.offset = next;
                        result.next_offset = next;
                    }
                    self.position += u64::try_from(size).expect("fits");
                }
            }
        }
    }
}

impl Wal {
    /// Reads whole batches of `handle` from `from`, at most `max_bytes` (but at least one
    /// batch), below `bound` (default: the durable end). Tail bytes are shared, not copied;
    /// older bytes are read from the segment files (this call then blocks on the ring).
    pub fn read(
        &mut self,
        handle: PartitionHandle,
        from: Offset,
        max_bytes: usize,
        bound: Option<Offset>,
    ) -> Result<ReadResult> {
        let partition = self.partition(handle)?;
        if from < partition.log_start || from > partition.log_end {
            return Err(Error::OffsetOutOfRange {
                offset: from,
                log_start: partition.log_start,
                log_end: partition.log_end,
            });
        }
        let bound = bound
            .unwrap_or(partition.durable_end)
            .min(partition.log_end);
        let mut result = ReadResult {
            parts: Vec::new(),
            first_offset: None,
            next_offset: from,
            size_bytes: 0,
        };
        let mut offset = from;
        while offset < bound && (result.size_bytes == 0 || result.size_bytes < max_bytes) {
            let walked = self.read_segment(handle, offset, bound, max_bytes, &mut result)?;
            if walked <= offset {
                break;
            }
            offset = walked;
        }
        Ok(result)
    }

    /// Reads from the segment holding `offset`; returns the offset reached.
    fn read_segment(
        &mut self,
        handle: PartitionHandle,
        offset: Offset,
        bound: Offset,
        max_bytes: usize,
        result: &mut ReadResult,
    ) -> Result<Offset> {
        let partition = self.partition(handle)?;
        let (segment_base, start, fd) = locate(partition, offset);
        let mut walk = Walk {
            segment_base,
            position: start,
            offset,
            bound,
            max_bytes,
            block: partition.block_size_bytes,
        };
        if let Some(first) = partition.tail.first_position(segment_base) {
            if start >= first {
                walk_tail(partition, &mut walk, result);
                return Ok(walk.offset);
            }
        }
        let window = self.read_window(handle, &fd, &walk, max_bytes)?;
        let view_start = walk.position - walk.position % walk.block;
        let buf = Arc::new(window.0);
        let valid = &buf.as_slice()[..window.1];
        let part_buf = buf.clone();
        walk.run(valid, view_start, result, &|range| ReadPart::Disk {
            buf: part_buf.clone(),
            range,
        });
        Ok(walk.offset)
    }

    /// Reads an aligned window of the file from the walk's position: enough for `max_bytes`
    /// plus one whole batch of the largest size. Returns the buffer and its valid length.
    fn read_window(
        &mut self,
        handle: PartitionHandle,
        fd: &Arc<OwnedFd>,
        walk: &Walk,
        max_bytes: usize,
    ) -> Result<(AlignedBuf, usize)> {
        let block = walk.block;
        let start = walk.position - walk.position % block;
        let batch_max = self.config.batch_size_bytes_max;
        let wanted =
            (walk.position - start) + u64::try_from(max_bytes).expect("fits") + batch_max + block;
        let segment_end = self.config.segment_size_bytes;
        let length = wanted
            .next_multiple_of(block)
            .min(segment_end.saturating_sub(start))
            .max(block);
        let length_usize = usize::try_from(length).expect("window fits usize");
        let align = usize::try_from(block).expect("block fits usize");
        let buf = AlignedBuf::zeroed(length_usize, align);
        let dir = self.partition(handle)?.dir.clone();
        self.ring
            .read(fd, buf, start, tag(handle.0, OpKind::Read))
            .map_err(|error| Error::from_io("submitting a read", &dir, &error))?;
        // Reap before every wait: the read may complete while `poll` runs, and then the
        // ring's other ops in flight (a server's sockets) need not ever complete.
        let mut reap = true;
        loop {
            if let Some(position) = self
                .read_completions
                .iter()
                .position(|c| c.tag == tag(handle.0, OpKind::Read))
            {
                let completion = self.read_completions.swap_remove(position);
                let read = completion
                    .result
                    .map_err(|error| Error::from_io("reading a segment", &dir, &error))?;
                let Some(ringlog_uring::OpBuf::Owned(buf)) = completion.buf else {
                    panic!("a read completion returns its buffer");
                };
                return Ok((buf, usize::try_from(read).expect("fits")));
            }
            if reap {
                self.poll()?;
            } else {
                self.ring
                    .submit_and_wait(1)
                    .map_err(|error| Error::from_io("waiting for completions", &dir, &error))?;
            }
            reap = !reap;
        }
    }
}

/// The segment holding `offset`, the position to start scanning from, and its file.
fn locate(partition: &Partition, offset: Offset) -> (Offset, u64, Arc<OwnedFd>) {
    let first_data = partition.block_size_bytes;
    if offset >= partition.active.base_offset {
        let active = &partition.active;
        let start = active
            .index
            .lookup(offset)
            .map_or(first_data, |entry| entry.position);
        return (active.base_offset, start, active.fd.clone());
    }
    let (base, sealed) = partition
        .sealed
        .range(..=offset)
        .next_back()
        .expect("offset >= log_start is stored");
    let start = sealed
        .index
        .lookup(offset)
        .map_or(first_data, |entry| entry.position);
    (*base, start, sealed.fd.clone())
}

fn walk_tail(partition: &Partition, walk: &mut Walk, result: &mut ReadResult) {
    loop {
        let Some(chunk) = partition.tail.find(walk.segment_base, walk.position) else {
            return;
        };
        let shared = chunk.writer.shared();
        let before = (walk.position, walk.offset);
        let part_buf = shared.clone();
        walk.run(shared.published(), chunk.file_position, result, &|range| {
            ReadPart::Tail {
                buf: part_buf.clone(),
                range,
            }
        });
        if (walk.position, walk.offset) == before || walk.offset >= walk.bound {
            return;
        }
    }
}
