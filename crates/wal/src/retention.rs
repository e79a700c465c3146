//! Retention (whole sealed segments, by total size and by age) and truncation of a suffix
//! (divergence repair), both on the control path.
//!
//! Invariants: retention deletes oldest first and never the active segment nor a segment
//! with a commit not yet durable, so the log never has a hole; truncation moves the removed
//! suffix into `quarantine/` before cutting the log, and only ever at a batch boundary.

use std::fs::{self, File};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use ringlog_types::Offset;
use ringlog_uring::AlignedBuf;

use crate::config::Retention;
use crate::error::{Error, Result};
use crate::housekeeper::{fsync_dir, Job};
use crate::index::SegmentIndex;
use crate::partition::Partition;
use crate::segment::{has_previous_life, open_segment_file, ActiveSegment, SealedSegment};
use crate::wal::{PartitionHandle, Wal};

/// Name of the directory, inside a partition directory, that receives truncated suffixes.
pub const QUARANTINE_DIR: &str = "quarantine";

impl Wal {
    /// Deletes sealed segments, oldest first, while the partition exceeds `retention`.
    /// `now_ms` is the caller's wall clock in Unix milliseconds (the log reads no clock).
    /// Returns how many segments were deleted.
    pub fn enforce_retention(
        &mut self,
        handle: PartitionHandle,
        retention: &Retention,
        now_ms: i64,
    ) -> Result<usize> {
        let recycle = self.config.recycle_segments;
        let spares_wanted = self.config.spare_segments_count;
        let dropped = self
            .partition_mut(handle)?
            .drop_retained_segments(retention, now_ms);
        let count = dropped.len();
        if count == 0 {
            return Ok(0);
        }
        let partition = crate::wal::open_slot(&mut self.partitions, handle.0);
        partition.epochs.truncate_before(partition.log_start);
        let epochs = Job::StoreEpochs {
            dir: partition.dir.clone(),
            history: partition.epochs.clone(),
        };
        tracing::info!(partition = %partition.name, count, log_start = %partition.log_start, "retention dropped segments");
        self.housekeeper.submit(epochs);
        let mut deleted = Vec::new();
        for segment in dropped {
            let partition = crate::wal::open_slot(&mut self.partitions, handle.0);
            let index = partition
                .dir
                .join(SegmentIndex::file_name(segment.base_offset));
            if recycle && partition.spares.len() + partition.spares_requested < spares_wanted {
                // Reuse the file as the next spare instead of filling a new one: in a log at
                // its retention limit, segments then cost no zero-fill writes at all.
                partition.spares_requested += 1;
                self.spare_sequence += 1;
                let job = Job::Recycle {
                    partition: handle.0,
                    dir: partition.dir.clone(),
                    segment: segment.path,
                    index,
                    sequence: self.spare_sequence,
                };
                self.housekeeper.submit(job);
            } else {
                deleted.push(segment.path);
                deleted.push(index);
            }
        }
        if !deleted.is_empty() {
            self.housekeeper.submit(Job::Delete { paths: deleted });
        }
        Ok(count)
    }

    /// Removes every batch at or above `offset` (a batch boundary in `[log_start, log_end]`),
    /// for divergence repair. The removed bytes are first copied into `quarantine/`, never
    /// silently deleted. Waits for the commit in flight first; blocking (control path).
    pub fn truncate_from(&mut self, handle: PartitionHandle, offset: Offset) -> Result<()> {
        self.sync(handle)?;
        let partition = self.partition(handle)?;
        if offset < partition.log_start || offset > partition.log_end {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start: partition.log_start,
                log_end: partition.log_end,
            });
        }
        if offset == partition.log_end {
            return Ok(());
        }
        let write_path = self.config.write_path;
        let index_interval_bytes = self.config.index_interval_bytes;
        let position = self.batch_position(handle, offset)?;
        let partition = self.partition_mut(handle)?;
        let quarantine = partition.dir.join(QUARANTINE_DIR);
        let dir = partition.dir.clone();
        let io = |op: &'static str| {
            let dir = dir.clone();
            move |error: std::io::Error| Error::from_std(op, &dir, &error)
        };
        fs::create_dir_all(&quarantine).map_err(io("creating the quarantine directory"))?;
        quarantine_later_segments(partition, offset, &quarantine)
            .map_err(io("quarantining segments"))?;
        let segment = reopen_as_active(partition, offset, write_path, index_interval_bytes)?;
        let path = partition.active.path.clone();
        quarantine_suffix(&path, position, offset, &quarantine)
            .map_err(io("quarantining a suffix"))?;
        zero_suffix(&segment, position, partition.block_size_bytes)
            .map_err(io("zeroing a truncated suffix"))?;
        partition.active.data_end_position = position;
        partition.active.staged_end_position =
            position.next_multiple_of(partition.block_size_bytes);
        partition.tail.clear();
        partition.staged.clear();
        partition.log_end = offset;
        partition.written_end = offset;
        partition.durable_end = offset;
        partition.epochs.truncate_from(offset);
        partition
            .epochs
            .store(&partition.dir)
            .map_err(io("storing the epoch file"))?;
        tracing::warn!(partition = %partition.name, %offset, "log truncated; suffix moved to quarantine");
        if cfg!(debug_assertions) {
            partition.check_invariants();
        }
        Ok(())
    }

    /// File position of the batch whose base offset is `offset` (a batch boundary).
    fn batch_position(&mut self, handle: PartitionHandle, offset: Offset) -> Result<u64> {
        let read = self.read(handle, offset, 1, None)?;
        if read.first_offset != Some(offset) {
            return Err(Error::InvalidConfig {
                reason: format!("truncation point {offset} is not the first offset of a batch"),
            });
        }
        let partition = self.partition(handle)?;
        let (segment_base, index) = if offset >= partition.active.base_offset {
            (partition.active.base_offset, &partition.active.index)
        } else {
            let (base, sealed) = partition
                .sealed
                .range(..=offset)
                .next_back()
                .expect("stored");
            (*base, &sealed.index)
        };
        let _ = segment_base;
        let mut position = index
            .lookup(offset)
            .map_or(partition.block_size_bytes, |entry| entry.position);
        // Walk forward from the index entry with the headers read back from the segment.
        let fd = if offset >= partition.active.base_offset {
            partition.active.fd.clone()
        } else {
            partition
                .sealed
                .range(..=offset)
                .next_back()
                .expect("stored")
                .1
                .fd
                .clone()
        };
        let file = File::from(
            fd.try_clone()
                .map_err(|error| Error::from_std("dup", &partition.dir, &error))?,
        );
        let block = partition.block_size_bytes;
        loop {
            let aligned = position - position % block;
            let mut buf = AlignedBuf::zeroed(
                usize::try_from(2 * block).expect("fits"),
                usize::try_from(block).expect("fits"),
            );
            file.read_exact_at(buf.as_mut_slice(), aligned)
                .map_err(|error| Error::from_std("reading a segment", &partition.dir, &error))?;
            let at = usize::try_from(position - aligned).expect("fits");
            let header = ringlog_batch::BatchHeader::parse(&buf.as_slice()[at..]);
            match header {
                Ok(header) if header.base_offset == i64::try_from(offset.0).unwrap_or(-1) => {
                    return Ok(position)
                }
                Ok(header) => position += u64::try_from(header.size_bytes()).expect("fits"),
                Err(_) => position = (position + 1).next_multiple_of(block),
            }
        }
    }
}

impl Partition {
    /// Removes from the log, oldest first, the sealed segments `retention` drops, and returns
    /// them. Never the active segment, nor one with a commit not yet durable.
    fn drop_retained_segments(&mut self, retention: &Retention, now_ms: i64) -> Vec<SealedSegment> {
        let segment_bytes = self.segment_size_bytes;
        let mut total_bytes = segment_bytes * (u64::try_from(self.sealed.len()).expect("fits") + 1);
        let age_ms = retention
            .age_max
            .map(|age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let mut dropped = Vec::new();
        while let Some((_, oldest)) = self.sealed.first_key_value() {
            let over_size = retention.bytes_max.is_some_and(|max| total_bytes > max);
            let too_old =
                age_ms.is_some_and(|age| oldest.max_timestamp_ms < now_ms.saturating_sub(age));
            let durable = oldest.next_offset <= self.durable_end;
            if !(over_size || too_old) || !durable {
                break;
            }
            let (_, segment) = self.sealed.pop_first().expect("oldest exists");
            self.log_start = segment.next_offset;
            total_bytes -= segment_bytes;
            dropped.push(segment);
        }
        dropped
    }
}

/// Moves every segment wholly at or above `offset` into `quarantine/`, newest first, so a
/// crash in between never leaves a hole.
fn quarantine_later_segments(
    partition: &mut Partition,
    offset: Offset,
    quarantine: &Path,
) -> std::io::Result<()> {
    let mut moved = false;
    if partition.active.base_offset >= offset && partition.active.base_offset > partition.log_start
    {
        let name = partition
            .active
            .path
            .file_name()
            .expect("segment has a name")
            .to_owned();
        fs::rename(&partition.active.path, quarantine.join(name))?;
        moved = true;
    }
    let later: Vec<Offset> = partition
        .sealed
        .range(offset..)
        .map(|(base, _)| *base)
        .rev()
        .collect();
    for base in later {
        if base == partition.log_start {
            continue;
        }
        let segment = partition.sealed.remove(&base).expect("listed");
        let name = segment
            .path
            .file_name()
            .expect("segment has a name")
            .to_owned();
        fs::rename(&segment.path, quarantine.join(name))?;
        let _ = fs::remove_file(partition.dir.join(SegmentIndex::file_name(base)));
        moved = true;
    }
    if moved {
        fsync_dir(quarantine)?;
        fsync_dir(&partition.dir)?;
    }
    Ok(())
}

/// Makes the segment holding `offset` the active one again (it may have been sealed).
fn reopen_as_active(
    partition: &mut Partition,
    offset: Offset,
    write_path: crate::config::WritePath,
    index_interval_bytes: u64,
) -> Result<Arc<OwnedFd>> {
    if offset >= partition.active.base_offset {
        partition.active.index.truncate_from(offset);
        return Ok(partition.active.fd.clone());
    }
    let base = *partition
        .sealed
        .range(..=offset)
        .next_back()
        .expect("stored")
        .0;
    let sealed: SealedSegment = partition.sealed.remove(&base).expect("exists");
    let _ = fs::remove_file(partition.dir.join(SegmentIndex::file_name(base)));
    let file = open_segment_file(&sealed.path, write_path)
        .map_err(|error| Error::from_std("reopening a segment", &partition.dir, &error))?;
    let mmap = match write_path {
        crate::config::WritePath::Mmap => Some(
            crate::mmap::map_segment(&file)
                .map_err(|error| Error::from_std("mapping", &partition.dir, &error))?,
        ),
        crate::config::WritePath::Direct => None,
    };
    let recycled = has_previous_life(&sealed.path)
        .map_err(|error| Error::from_std("reading a segment", &partition.dir, &error))?;
    let mut index = sealed.index;
    index.truncate_from(offset);
    if index.is_empty() && index.base_offset() != base {
        index = SegmentIndex::new(base, index_interval_bytes);
    }
    partition.active = ActiveSegment {
        base_offset: base,
        path: sealed.path,
        fd: Arc::new(OwnedFd::from(file)),
        mmap,
        index,
        staged_end_position: 0,
        data_end_position: 0,
        max_timestamp_ms: sealed.max_timestamp_ms,
        awaiting_rename: None,
        recycled,
    };
    Ok(partition.active.fd.clone())
}

/// Copies the segment's bytes from `position` to its end into `quarantine/`.
fn quarantine_suffix(
    path: &Path,
    position: u64,
    offset: Offset,
    quarantine: &Path,
) -> std::io::Result<()> {
    let file = File::open(path)?;
    let length = file.metadata()?.len().saturating_sub(position);
    let mut bytes = vec![0; usize::try_from(length).expect("segment fits in memory")];
    file.read_exact_at(&mut bytes, position)?;
    let end = bytes
        .iter()
        .rposition(|byte| *byte != 0)
        .map_or(0, |last| last + 1);
    let target = quarantine.join(format!("{:020}.truncated", offset.0));
    fs::write(&target, &bytes[..end])?;
    File::open(&target)?.sync_all()?;
    fsync_dir(quarantine)
}

/// Zeroes the segment from `position` to its end, then fdatasync. The block holding
/// `position` is rewritten with its kept prefix unchanged: the one place the log rewrites
/// acknowledged bytes, on the control path of a truncation, documented in docs/wal-format.md.
fn zero_suffix(fd: &Arc<OwnedFd>, position: u64, block: u64) -> std::io::Result<()> {
    let file = File::from(fd.try_clone()?);
    let end = file.metadata()?.len();
    let aligned = position - position % block;
    let block_usize = usize::try_from(block).expect("fits");
    let mut first = AlignedBuf::zeroed(block_usize, block_usize);
    if aligned < position {
        file.read_exact_at(first.as_mut_slice(), aligned)?;
        let keep = usize::try_from(position - aligned).expect("fits");
        first.as_mut_slice()[keep..].fill(0);
    }
    file.write_all_at(first.as_slice(), aligned)?;
    let zeros = AlignedBuf::zeroed(1 << 20, block_usize);
    let mut at = aligned + block;
    while at < end {
        let length = (end - at).min(1 << 20);
        file.write_all_at(
            &zeros.as_slice()[..usize::try_from(length).expect("fits")],
            at,
        )?;
        at += length;
    }
    file.sync_data()
}
