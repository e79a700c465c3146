//! One partition log: its segments, its tail, its ends, and the staging of appends into
//! commits. This module decides; `wal.rs` executes the decisions on the ring.
//!
//! Invariants (checked by `check_invariants`):
//! `log_start <= durable_end <= written_end <= log_end`; staged commits are contiguous in
//! offsets and file positions and start at block-aligned positions; only the newest staged
//! commit may be open; at most one commit is in flight; a commit never spans two segments.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use ringlog_batch::BatchHeader;
use ringlog_types::{Epoch, Offset};
use ringlog_uring::AppendBuf;

use crate::epoch_file::EpochHistory;
use crate::error::{Error, Result};
use crate::index::SegmentIndex;
use crate::segment::{segment_file_name, ActiveSegment, SealedSegment, Spare};
use crate::segment_header::SegmentHeader;
use crate::tail::{Commit, Tail};

/// Where a partition's ends stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends {
    /// First offset still stored.
    pub log_start: Offset,
    /// First offset not yet fdatasync'ed.
    pub durable_end: Offset,
    /// First offset not yet written.
    pub written_end: Offset,
    /// Next offset to be assigned.
    pub log_end: Offset,
}

/// What `append` assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the batch's first record.
    pub base_offset: Offset,
    /// Offset after the batch's last record: the batch is durable once `durable_end >=` this.
    pub next_offset: Offset,
}

/// The state of the commit in flight.
pub(crate) enum InFlight {
    /// The new segment's rename and directory fsync are in flight.
    Renaming,
    /// The front commit's `RWF_DSYNC` write (direct path) or fdatasync (mmap path) is in
    /// flight; `written_bytes` counts what the kernel reported written, and durable, so far
    /// (a short write's rest is written again). The mmap path copied the whole commit.
    Writing { written_bytes: u64 },
}

/// One partition log.
pub(crate) struct Partition {
    pub name: String,
    pub dir: PathBuf,
    pub dir_fd: Arc<OwnedFd>,
    pub block_size_bytes: u64,
    pub segment_size_bytes: u64,
    pub batch_size_bytes_max: u64,
    pub index_interval_bytes: u64,
    pub sealed: BTreeMap<Offset, SealedSegment>,
    pub active: ActiveSegment,
    pub tail: Tail,
    pub staged: VecDeque<Commit>,
    pub in_flight: Option<InFlight>,
    pub log_start: Offset,
    pub durable_end: Offset,
    pub written_end: Offset,
    pub log_end: Offset,
    pub epochs: EpochHistory,
    pub spares: VecDeque<Spare>,
    pub spare_error: Option<Error>,
    pub spares_requested: usize,
    pub poisoned: Option<Error>,
    /// Sealed segments whose last commit just became durable: their index can be stored.
    pub sealed_complete: Vec<Offset>,
    /// Retention applied at roll time (`WalConfig::retention`).
    pub retention: crate::config::Retention,
    /// Segments a roll reused (their index files are to be removed, the epochs stored).
    pub recycled_at_roll: Vec<Offset>,
}

impl Partition {
    pub fn ends(&self) -> Ends {
        Ends {
            log_start: self.log_start,
            durable_end: self.durable_end,
            written_end: self.written_end,
            log_end: self.log_end,
        }
    }

    pub fn check_usable(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: Box::new(cause.clone()),
            }),
            None => Ok(()),
        }
    }

    /// Records the first fatal error; nothing is retried after it (DESIGN.md section 2).
    pub fn poison(&mut self, error: Error) {
        if self.poisoned.is_none() {
            tracing::error!(partition = %self.name, %error, "partition log poisoned: read-only");
            self.poisoned = Some(error);
        }
    }

    /// Validates, assigns offsets, stamps and copies `batch` into the open commit.
    pub fn append(&mut self, batch: &[u8], epoch: Epoch) -> Result<(AppendInfo, bool)> {
        self.check_usable()?;
        let size_bytes = u64::try_from(batch.len()).expect("usize fits u64");
        if size_bytes > self.batch_size_bytes_max {
            return Err(Error::BatchTooLarge {
                size_bytes,
                max_bytes: self.batch_size_bytes_max,
            });
        }
        let header = ringlog_batch::validate(batch)?;
        self.check_epoch(epoch)?;
        if !self.segment_has_room(size_bytes) {
            self.roll()?;
        }
        let log_end_before = self.log_end;
        let info = self.stage(batch, &header, epoch)?;
        let epochs_changed = self.assign_epoch(epoch, log_end_before)?;
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        Ok((info, epochs_changed))
    }

    /// A batch with an epoch older than the latest comes from a deposed leader.
    fn check_epoch(&self, epoch: Epoch) -> Result<()> {
        match self.epochs.latest() {
            Some(latest) if epoch < latest.epoch => Err(Error::FencedEpoch {
                epoch,
                latest: latest.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Records that `epoch` starts at `start_offset` (after its first batch was staged, so a
    /// refused append records nothing). Returns true if the history changed.
    fn assign_epoch(&mut self, epoch: Epoch, start_offset: Offset) -> Result<bool> {
        if self
            .epochs
            .latest()
            .is_some_and(|latest| latest.epoch == epoch)
        {
            return Ok(false);
        }
        self.epochs
            .assign(epoch, start_offset)
            .map_err(|error| Error::Unexpected {
                op: "assigning an epoch",
                dir: self.dir.clone(),
                detail: error.to_string(),
            })
    }

    /// True if a batch of `size_bytes` fits, padded, in the active segment.
    /// The batch goes where `stage` will put it: right after the open commit if that commit
    /// can take it, else at the next block boundary (a new commit, after the open one is
    /// padded), so the check must use the same position.
    fn segment_has_room(&mut self, size_bytes: u64) -> bool {
        let staged_end = self.active.staged_end_position;
        let header_bytes = if staged_end == 0 {
            self.block_size_bytes
        } else {
            0
        };
        let len = usize::try_from(size_bytes + header_bytes).expect("fits usize");
        let open = self.staged.back().is_some_and(|commit| !commit.closed);
        let continues = open
            && self
                .tail
                .current_with_room(self.active.base_offset, len)
                .is_some();
        let start = if continues {
            staged_end
        } else {
            staged_end.next_multiple_of(self.block_size_bytes)
        };
        let end = start + header_bytes + size_bytes;
        end.next_multiple_of(self.block_size_bytes) <= self.segment_size_bytes
    }

    /// Seals the active segment and makes the next spare the active one. Its file is renamed
    /// to its final name in the cycle that writes its first commit, after every commit of the
    /// old segment is durable, so only the last segment can ever hold a torn commit.
    fn roll(&mut self) -> Result<()> {
        if self.active.awaiting_rename.is_some() {
            // The active segment's file still has its old name: it gets its final one in the
            // cycle that writes its first commit. Rolling again before that would leave a
            // sealed segment under a wrong name, so more appends wait for that cycle.
            return Err(Error::Backpressure {
                reason: "the new segment is not renamed yet",
            });
        }
        let next_file = self
            .take_segment_to_reuse()
            .or_else(|| self.spares.pop_front());
        let Some(Spare {
            path: spare_path,
            recycled,
        }) = next_file
        else {
            if let Some(error) = self.spare_error.clone() {
                self.poison(error.clone());
                return Err(error);
            }
            return Err(Error::Backpressure {
                reason: "no filled spare segment is ready",
            });
        };
        self.close_open_commit();
        let file = crate::segment::open_segment_file(&spare_path, self.write_path())
            .map_err(|error| Error::from_std("opening a spare segment", &self.dir, &error))?;
        let mmap = self.map_if_mmap(&file)?;
        let base_offset = self.log_end;
        let path = self.dir.join(segment_file_name(base_offset));
        let next = ActiveSegment {
            base_offset,
            path,
            fd: Arc::new(OwnedFd::from(file)),
            mmap,
            index: SegmentIndex::new(base_offset, self.index_interval_bytes),
            staged_end_position: 0,
            data_end_position: 0,
            max_timestamp_ms: i64::MIN,
            awaiting_rename: Some(spare_path),
            recycled,
        };
        let old = std::mem::replace(&mut self.active, next);
        if !self
            .staged
            .iter()
            .any(|commit| commit.segment_base == old.base_offset)
        {
            self.sealed_complete.push(old.base_offset);
        }
        tracing::debug!(partition = %self.name, base = %base_offset, "rolled to a new segment");
        self.sealed.insert(
            old.base_offset,
            SealedSegment {
                base_offset: old.base_offset,
                next_offset: base_offset,
                index: old.index,
                path: old.path,
                max_timestamp_ms: old.max_timestamp_ms,
                fd: old.fd,
                mmap: old.mmap,
            },
        );
        Ok(())
    }

    /// The oldest segment's file, if retention by size drops it now (with the new segment
    /// the log would exceed `bytes_max`) and every commit to it is durable. It leaves the log
    /// here; its file becomes the new segment under the rename of the next cycle.
    fn take_segment_to_reuse(&mut self) -> Option<Spare> {
        let bytes_max = self.retention.bytes_max?;
        let segments = u64::try_from(self.sealed.len()).expect("fits") + 2;
        let (_, oldest) = self.sealed.first_key_value()?;
        if segments * self.segment_size_bytes <= bytes_max || oldest.next_offset > self.durable_end
        {
            return None;
        }
        let (base, segment) = self.sealed.pop_first().expect("oldest exists");
        self.log_start = segment.next_offset;
        self.epochs.truncate_before(self.log_start);
        self.recycled_at_roll.push(base);
        tracing::debug!(partition = %self.name, %base, "retention reuses the oldest segment");
        Some(Spare {
            path: segment.path,
            recycled: true,
        })
    }

    fn write_path(&self) -> crate::config::WritePath {
        if self.active.mmap.is_some() {
            crate::config::WritePath::Mmap
        } else {
            crate::config::WritePath::Direct
        }
    }

    fn map_if_mmap(&self, file: &std::fs::File) -> Result<Option<memmap2::MmapMut>> {
        if self.write_path() == crate::config::WritePath::Direct {
            return Ok(None);
        }
        crate::mmap::map_segment(file)
            .map(Some)
            .map_err(|error| Error::from_std("mapping a segment", &self.dir, &error))
    }

    /// Copies the batch into the open commit (opening one, and a chunk, when needed).
    fn stage(&mut self, batch: &[u8], header: &BatchHeader, epoch: Epoch) -> Result<AppendInfo> {
        let base_offset = self.log_end;
        let next_offset = base_offset.add_count(header.record_count());
        let needs_header = self.active.staged_end_position == 0;
        let block = usize::try_from(self.block_size_bytes).expect("block fits usize");
        let room_needed = batch.len() + if needs_header { block } else { 0 };
        self.ensure_open_commit(room_needed)?;
        let segment_base = self.active.base_offset;
        let chunk = self
            .tail
            .chunks
            .back_mut()
            .expect("open commit has a chunk");
        if needs_header {
            let header_block = SegmentHeader {
                base_offset: segment_base,
                block_size_bytes: u32::try_from(self.block_size_bytes).expect("block fits u32"),
                segment_size_bytes: self.segment_size_bytes,
                recycled: self.active.recycled,
            };
            chunk
                .writer
                .append_with(block, |bytes| {
                    bytes.fill(0);
                    header_block.encode(bytes);
                })
                .expect("room was checked");
            self.active.staged_end_position += self.block_size_bytes;
        }
        let chunk_position = chunk
            .writer
            .append_with(batch.len(), |bytes| {
                bytes.copy_from_slice(batch);
                ringlog_batch::stamp(bytes, base_offset, epoch);
            })
            .expect("room was checked");
        let file_position =
            chunk.file_position + u64::try_from(chunk_position).expect("usize fits u64");
        let size_bytes = u64::try_from(batch.len()).expect("usize fits u64");
        let commit = self.staged.back_mut().expect("open commit exists");
        commit.chunk_end = chunk_position + batch.len();
        commit.next_offset = next_offset;
        self.active
            .index
            .on_batch(base_offset, file_position, size_bytes);
        self.active.staged_end_position = file_position + size_bytes;
        self.active.data_end_position = file_position + size_bytes;
        self.active.max_timestamp_ms = self.active.max_timestamp_ms.max(header.max_timestamp);
        self.log_end = next_offset;
        Ok(AppendInfo {
            base_offset,
            next_offset,
        })
    }

    /// Makes sure the newest staged commit is open, in a chunk of the active segment with
    /// `len` bytes of room (plus a block for its padding).
    fn ensure_open_commit(&mut self, len: usize) -> Result<()> {
        let segment_base = self.active.base_offset;
        let open = self.staged.back().is_some_and(|commit| !commit.closed);
        if open && self.tail.current_with_room(segment_base, len).is_some() {
            return Ok(());
        }
        self.close_open_commit();
        if self.tail.current_with_room(segment_base, len).is_none() {
            if self.tail.chunks.len() >= self.tail_chunks_hard_max() {
                self.evict_tail();
                if self.tail.chunks.len() >= self.tail_chunks_hard_max() {
                    return Err(Error::Backpressure {
                        reason: "every tail chunk is in use",
                    });
                }
            }
            self.tail
                .start_chunk(segment_base, self.active.staged_end_position);
        }
        let chunk = self.tail.chunks.back().expect("a chunk exists");
        let chunk_start = chunk.writer.published_len();
        let file_position = chunk.file_position + u64::try_from(chunk_start).expect("fits");
        assert_eq!(
            file_position, self.active.staged_end_position,
            "commit starts at staged end"
        );
        assert!(
            file_position.is_multiple_of(self.block_size_bytes),
            "commit start {file_position} unaligned"
        );
        self.staged.push_back(Commit {
            buf: chunk.writer.shared(),
            chunk_start,
            chunk_end: chunk_start,
            file_position,
            segment_base,
            first_offset: self.log_end,
            next_offset: self.log_end,
            closed: false,
        });
        Ok(())
    }

    /// Staged commits may reference two chunks beyond the read cache (one being written, one
    /// being filled), so the tail never holds more than this.
    fn tail_chunks_hard_max(&self) -> usize {
        self.tail_chunks_max() + 2
    }

    fn tail_chunks_max(&self) -> usize {
        self.tail.chunks_max()
    }

    /// Pads the open commit to a block boundary: nothing is added to it afterwards, so the
    /// next commit starts in a fresh block and never rewrites acknowledged bytes.
    pub fn close_open_commit(&mut self) {
        let Some(commit) = self.staged.back_mut() else {
            return;
        };
        if commit.closed {
            return;
        }
        commit.closed = true;
        if commit.chunk_end == commit.chunk_start {
            self.staged.pop_back();
            return;
        }
        let chunk = self
            .tail
            .chunks
            .iter_mut()
            .rev()
            .find(|chunk| Arc::ptr_eq(&chunk.writer.shared(), &commit.buf))
            .expect("open commit's chunk is in the tail");
        assert_eq!(
            chunk.writer.published_len(),
            commit.chunk_end,
            "open commit is the chunk's end"
        );
        chunk.writer.pad_to_alignment();
        commit.chunk_end = chunk.writer.published_len();
        self.active.staged_end_position = commit.file_position + commit.len_bytes();
    }

    /// The commit to submit next: the front staged one, closed.
    pub fn next_commit(&mut self) -> Option<Commit> {
        if self.in_flight.is_some() || self.poisoned.is_some() {
            return None;
        }
        if self.staged.len() == 1 {
            self.close_open_commit();
        }
        self.staged.front().cloned()
    }

    /// The front commit is durable.
    pub fn on_commit_durable(&mut self) -> Offset {
        let commit = self.staged.pop_front().expect("a commit was in flight");
        assert!(
            commit.next_offset >= self.durable_end,
            "durable end moves forward"
        );
        let segment_done = commit.segment_base != self.active.base_offset
            && self
                .staged
                .front()
                .is_none_or(|next| next.segment_base != commit.segment_base);
        if segment_done {
            self.sealed_complete.push(commit.segment_base);
        }
        self.written_end = commit.next_offset;
        self.durable_end = commit.next_offset;
        self.in_flight = None;
        self.evict_tail();
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        self.durable_end
    }

    pub fn evict_tail(&mut self) {
        let in_use: Vec<&Arc<AppendBuf>> = self.staged.iter().map(|commit| &commit.buf).collect();
        self.tail.evict(&in_use);
    }

    /// Name of the active segment's final file, for the rename.
    pub fn active_file_name(&self) -> CString {
        CString::new(segment_file_name(self.active.base_offset)).expect("no NUL in names")
    }

    pub fn check_invariants(&self) {
        assert!(
            self.log_start <= self.durable_end,
            "log_start={} durable_end={}",
            self.log_start,
            self.durable_end
        );
        assert!(
            self.durable_end <= self.written_end,
            "durable_end={} written_end={}",
            self.durable_end,
            self.written_end
        );
        assert!(
            self.written_end <= self.log_end,
            "written_end={} log_end={}",
            self.written_end,
            self.log_end
        );
        let mut previous: Option<&Commit> = None;
        for (index, commit) in self.staged.iter().enumerate() {
            assert!(
                commit.file_position.is_multiple_of(self.block_size_bytes),
                "commit unaligned"
            );
            assert!(commit.first_offset <= commit.next_offset, "commit offsets");
            if index + 1 < self.staged.len() {
                assert!(commit.closed, "only the newest staged commit may be open");
            }
            if let Some(previous) = previous {
                assert_eq!(
                    previous.next_offset, commit.first_offset,
                    "staged commits contiguous"
                );
            }
            previous = Some(commit);
        }
        if let Some(front) = self.staged.front() {
            assert_eq!(
                front.first_offset, self.durable_end,
                "front commit starts at durable end"
            );
        }
    }
}
