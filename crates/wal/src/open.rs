//! Opening a partition log: listing its directory, recovering its segments by the rules of
//! `recovery.rs`, cutting a torn tail, and rebuilding what is derived (indexes, epochs).
//!
//! Invariants: files and the directory are fsynced before anything is read from them
//! (STYLE.md section 8: no decision from data a crashed process never made durable);
//! segments are contiguous (each one's base offset is the previous one's next offset);
//! corruption inside acknowledged data is an error naming file and position, never truncated.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringlog_types::units::MIB;
use ringlog_types::Offset;
use ringlog_uring::AlignedBuf;

use crate::config::WritePath;
use crate::epoch_file::EpochHistory;
use crate::error::{Error, Result};
use crate::housekeeper::{fill_spare, fsync_dir, parse_spare_sequence, Job, SpareSpec};
use crate::index::SegmentIndex;
use crate::partition::Partition;
use crate::recovery::{scan_segment, BatchLocation, ScanInput, ScanVerdict};
use crate::segment::{
    drop_cached_pages, has_previous_life, open_segment_file, parse_segment_file_name,
    segment_file_name, ActiveSegment, SealedSegment, Spare, SPARE_PREFIX,
};
use crate::tail::Tail;
use crate::wal::{PartitionHandle, Wal};

/// What a partition directory holds.
struct Listing {
    segments: Vec<(Offset, PathBuf)>,
    spares: Vec<PathBuf>,
    /// Greatest spare sequence number found: new spares are numbered above it, so a fill
    /// never reuses the name of a spare that an earlier run left (or is using).
    spare_sequence_max: u64,
}

/// The recovered state of the last segment.
struct RecoveredTail {
    next_offset: Offset,
    data_end_position: u64,
    staged_end_position: u64,
    batches: Vec<BatchLocation>,
}

impl Wal {
    /// Opens (creating if needed) the partition log `name` under the data directory and
    /// recovers it. A torn tail is cut off; corruption is `Error::Corrupt`.
    pub fn open_partition(&mut self, name: &str) -> Result<PartitionHandle> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::InvalidConfig {
                reason: format!("bad partition name {name:?}"),
            });
        }
        if let Some(index) = self.partitions.iter().position(|slot| {
            slot.as_ref()
                .is_some_and(|partition| partition.name == name)
        }) {
            return Ok(PartitionHandle(index));
        }
        let dir = self.config.data_dir.join(name);
        if !dir.exists() {
            let io = |error: std::io::Error| Error::from_std("creating a partition", &dir, &error);
            fs::create_dir_all(&dir).map_err(io)?;
            fsync_dir(&self.config.data_dir).map_err(io)?;
        }
        let listing = list_partition_dir(&dir)?;
        self.spare_sequence = self.spare_sequence.max(listing.spare_sequence_max);
        let partition = self.recover_partition(name, &dir, listing)?;
        self.partitions.push(Some(partition));
        let index = self.partitions.len() - 1;
        self.request_spares(index);
        Ok(PartitionHandle(index))
    }

    fn recover_partition(
        &mut self,
        name: &str,
        dir: &Path,
        mut listing: Listing,
    ) -> Result<Partition> {
        if listing.segments.is_empty() {
            let path = self.create_first_segment(dir, &mut listing)?;
            listing.segments.push((Offset(0), path));
        }
        let (last_base, last_path) = listing
            .segments
            .last()
            .cloned()
            .expect("one segment exists");
        let mut sealed = BTreeMap::new();
        for window in listing.segments.windows(2) {
            let (base, path) = &window[0];
            let next_base = window[1].0;
            let segment = self.recover_sealed(dir, *base, next_base, path)?;
            sealed.insert(*base, segment);
        }
        // The last segment's index is always rebuilt by the scan; a file left by an earlier
        // run may describe commits that a torn tail took away, so it goes.
        let _ = fs::remove_file(dir.join(SegmentIndex::file_name(last_base)));
        let tail = self.recover_last(last_base, &last_path)?;
        self.restore_length(&last_path, tail.staged_end_position)?;
        if let Some((_, last_sealed)) = sealed.iter().next_back() {
            let last_sealed: &SealedSegment = last_sealed;
            assert_eq!(
                last_sealed.next_offset, last_base,
                "segments are contiguous"
            );
        }
        let active = self.open_last_segment(dir, last_base, last_path, &tail)?;
        let epochs = recover_epochs(dir, &tail.batches, tail.next_offset)?;
        let log_start = listing
            .segments
            .first()
            .map_or(Offset(0), |(base, _)| *base);
        let dir_fd =
            File::open(dir).map_err(|error| Error::from_std("opening a directory", dir, &error))?;
        let spares = self.keep_spares(dir, &listing.spares);
        let block = usize::try_from(self.block_size_bytes).expect("block fits usize");
        let chunk_bytes = usize::try_from(self.config.tail_chunk_bytes).expect("chunk fits usize");
        Ok(Partition {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            dir_fd: Arc::new(OwnedFd::from(dir_fd)),
            block_size_bytes: self.block_size_bytes,
            segment_size_bytes: self.config.segment_size_bytes,
            batch_size_bytes_max: self.config.batch_size_bytes_max,
            index_interval_bytes: self.config.index_interval_bytes,
            sealed,
            active,
            tail: Tail::new(chunk_bytes, block, self.config.tail_chunks_max),
            staged: VecDeque::new(),
            in_flight: None,
            log_start,
            durable_end: tail.next_offset,
            written_end: tail.next_offset,
            log_end: tail.next_offset,
            epochs,
            spares,
            spare_error: None,
            spares_requested: 0,
            poisoned: None,
            sealed_complete: Vec::new(),
            retention: self.config.retention,
            recycled_at_roll: Vec::new(),
        })
    }

    /// Opens the recovered last segment for appends, with its index rebuilt from the scan.
    fn open_last_segment(
        &self,
        dir: &Path,
        base: Offset,
        path: PathBuf,
        tail: &RecoveredTail,
    ) -> Result<ActiveSegment> {
        let write_path = self.config.write_path;
        let file = open_segment_file(&path, write_path)
            .map_err(|error| Error::from_std("opening the last segment", dir, &error))?;
        let mmap = match write_path {
            WritePath::Mmap => Some(
                crate::mmap::map_segment(&file)
                    .map_err(|error| Error::from_std("mapping a segment", dir, &error))?,
            ),
            WritePath::Direct => None,
        };
        // Only matters while block 0 is still to be written: it then says whether the file
        // had a previous life whose stale bytes recovery must ignore.
        let recycled = tail.staged_end_position == 0
            && has_previous_life(&path)
                .map_err(|error| Error::from_std("reading a segment", dir, &error))?;
        let mut index = SegmentIndex::new(base, self.config.index_interval_bytes);
        let mut max_timestamp_ms = i64::MIN;
        for batch in &tail.batches {
            index.on_batch(
                batch.base_offset,
                batch.position,
                u64::from(batch.size_bytes),
            );
            max_timestamp_ms = max_timestamp_ms.max(batch.max_timestamp_ms);
        }
        Ok(ActiveSegment {
            base_offset: base,
            path,
            fd: Arc::new(OwnedFd::from(file)),
            mmap,
            index,
            staged_end_position: tail.staged_end_position,
            data_end_position: tail.data_end_position,
            max_timestamp_ms,
            awaiting_rename: None,
            recycled,
        })
    }

    /// Creates `00000000000000000000.log` from a spare (filling one now if none is ready).
    fn create_first_segment(&mut self, dir: &Path, listing: &mut Listing) -> Result<PathBuf> {
        // A recycled spare holds batches with offsets of its previous life; the first segment
        // (base offset 0) must start from zeros, so only a fresh spare will do.
        let fresh = listing
            .spares
            .iter()
            .position(|spare| !has_previous_life(spare).unwrap_or(true));
        let spare = match fresh.map(|position| listing.spares.remove(position)) {
            Some(spare) => spare,
            None => {
                self.spare_sequence += 1;
                let spec = SpareSpec {
                    segment_size_bytes: self.config.segment_size_bytes,
                    write_path: self.config.write_path,
                };
                fill_spare(dir, spec, self.spare_sequence)
                    .map_err(|error| Error::from_std("filling the first segment", dir, &error))?
            }
        };
        let path = dir.join(segment_file_name(Offset(0)));
        let io = |error: std::io::Error| Error::from_std("creating the first segment", dir, &error);
        fs::rename(&spare, &path).map_err(io)?;
        fsync_dir(dir).map_err(io)?;
        Ok(path)
    }

    /// A sealed segment: its stored index if valid, else a full scan that must find it intact.
    fn recover_sealed(
        &self,
        dir: &Path,
        base: Offset,
        next_base: Offset,
        path: &Path,
    ) -> Result<SealedSegment> {
        let io = |op: &'static str| move |error: std::io::Error| Error::from_std(op, dir, &error);
        let file =
            open_segment_file(path, self.config.write_path).map_err(io("opening a segment"))?;
        file.sync_all().map_err(io("fsync of a segment"))?;
        let metadata = file.metadata().map_err(io("reading segment metadata"))?;
        let mtime_ms = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let stored = match SegmentIndex::load(dir, base) {
            Ok(index) => index,
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %base, %error, "segment index invalid: rebuilding it");
                None
            }
        };
        let (index, max_timestamp_ms) = match stored {
            Some(index) => (index, mtime_ms),
            None => {
                let (index, max_timestamp) = self.rebuild_sealed_index(path, base, next_base)?;
                let job = Job::StoreIndex {
                    dir: dir.to_path_buf(),
                    index: index.clone(),
                };
                self.housekeeper.submit(job);
                (index, max_timestamp)
            }
        };
        Ok(SealedSegment {
            base_offset: base,
            next_offset: next_base,
            index,
            path: path.to_path_buf(),
            max_timestamp_ms,
            fd: Arc::new(OwnedFd::from(file)),
            mmap: None,
        })
    }

    fn rebuild_sealed_index(
        &self,
        path: &Path,
        base: Offset,
        next_base: Offset,
    ) -> Result<(SegmentIndex, i64)> {
        let verdict = self.scan(path, base, false)?;
        let ScanVerdict::Intact {
            next_offset,
            data_end_position,
            batches,
            ..
        } = verdict
        else {
            return Err(corrupt_from_verdict(path, &verdict));
        };
        if next_offset != next_base {
            return Err(Error::Corrupt {
                file: path.to_path_buf(),
                position: data_end_position,
                detail: format!(
                    "segment ends at offset {next_offset} but the next one starts at {next_base}"
                ),
            });
        }
        let mut index = SegmentIndex::new(base, self.config.index_interval_bytes);
        let mut max_timestamp_ms = i64::MIN;
        for batch in &batches {
            index.on_batch(
                batch.base_offset,
                batch.position,
                u64::from(batch.size_bytes),
            );
            max_timestamp_ms = max_timestamp_ms.max(batch.max_timestamp_ms);
        }
        Ok((index, max_timestamp_ms))
    }

    /// The last segment is always scanned: a torn tail is cut off here.
    fn recover_last(&self, base: Offset, path: &Path) -> Result<RecoveredTail> {
        let verdict = self.scan(path, base, true)?;
        match verdict {
            ScanVerdict::Intact {
                header_present,
                next_offset,
                data_end_position,
                batches,
            } => {
                let staged_end_position = if header_present {
                    data_end_position.next_multiple_of(self.block_size_bytes)
                } else {
                    0
                };
                Ok(RecoveredTail {
                    next_offset,
                    data_end_position,
                    staged_end_position,
                    batches,
                })
            }
            ScanVerdict::TornTail {
                next_offset,
                data_end_position,
                torn_start_position,
                torn_end_position,
                batches,
                rule,
                ..
            } => {
                tracing::warn!(
                    file = %path.display(), torn_start_position, torn_end_position, %rule,
                    "cutting off a torn tail (a commit that was never acknowledged)"
                );
                self.zero_range(path, torn_start_position, torn_end_position)?;
                Ok(RecoveredTail {
                    next_offset,
                    data_end_position,
                    staged_end_position: torn_start_position,
                    batches,
                })
            }
            ScanVerdict::Corrupt { .. } => Err(corrupt_from_verdict(path, &verdict)),
        }
    }

    fn scan(&self, path: &Path, base: Offset, is_last: bool) -> Result<ScanVerdict> {
        let dir = path.parent().unwrap_or(path);
        let io = |op: &'static str| move |error: std::io::Error| Error::from_std(op, dir, &error);
        let file = File::open(path).map_err(io("opening a segment for recovery"))?;
        file.sync_all()
            .map_err(io("fsync of a segment before recovery"))?;
        let image = crate::mmap::map_segment_read_only(&file)
            .map_err(io("mapping a segment for recovery"))?;
        let input = ScanInput {
            image: &image,
            base_offset: base,
            block_size_bytes: usize::try_from(self.block_size_bytes).expect("block fits usize"),
            commit_bytes_max: usize::try_from(self.config.tail_chunk_bytes)
                .expect("chunk fits usize"),
            is_last,
        };
        let verdict = scan_segment(&input);
        // The mapping read the whole file into the page cache; on the direct path those
        // pages would turn every later write of this segment into an io-wq detour.
        drop(image);
        if self.config.write_path == WritePath::Direct {
            drop_cached_pages(&file, 0, 0);
        }
        Ok(verdict)
    }

    /// Overwrites `[start, end)` of a segment with zeros and makes that durable. Only ever
    /// called on bytes no one was told are durable (a torn commit).
    fn zero_range(&self, path: &Path, start: u64, end: u64) -> Result<()> {
        let dir = path.parent().unwrap_or(path);
        let io = |error: std::io::Error| Error::from_std("zeroing a torn tail", dir, &error);
        assert!(
            start.is_multiple_of(self.block_size_bytes),
            "torn start {start} unaligned"
        );
        let end = end.next_multiple_of(self.block_size_bytes);
        let file = open_segment_file(path, self.config.write_path).map_err(io)?;
        let zeros = AlignedBuf::zeroed(usize::try_from(MIB).expect("fits"), 4096);
        let mut position = start;
        while position < end {
            let length = (end - position).min(MIB);
            let length_usize = usize::try_from(length).expect("fits");
            file.write_all_at(&zeros.as_slice()[..length_usize], position)
                .map_err(io)?;
            position += length;
        }
        file.sync_data().map_err(io)
    }

    /// A last segment found shorter than a segment (truncated by something other than
    /// ringlog) is zero-filled back to full length, so that appends never grow the file.
    fn restore_length(&self, path: &Path, staged_end_position: u64) -> Result<()> {
        let dir = path.parent().unwrap_or(path);
        let length = fs::metadata(path)
            .map_err(|error| Error::from_std("reading segment metadata", dir, &error))?
            .len();
        if length >= self.config.segment_size_bytes {
            return Ok(());
        }
        tracing::warn!(file = %path.display(), length, "last segment is short: filling it again");
        self.zero_range(path, staged_end_position, self.config.segment_size_bytes)
    }

    /// Spares left by an earlier run are ready to use if their size is right.
    fn keep_spares(&self, dir: &Path, spares: &[PathBuf]) -> VecDeque<Spare> {
        let mut kept = VecDeque::new();
        for spare in spares {
            let size = fs::metadata(spare)
                .map(|metadata| metadata.len())
                .unwrap_or(0);
            let recycled = has_previous_life(spare);
            if let (true, Ok(recycled)) = (size == self.config.segment_size_bytes, recycled) {
                kept.push_back(Spare {
                    path: spare.clone(),
                    recycled,
                });
            } else if let Err(error) = fs::remove_file(spare) {
                tracing::warn!(dir = %dir.display(), %error, "could not remove a stale spare");
            }
        }
        kept
    }
}

fn corrupt_from_verdict(path: &Path, verdict: &ScanVerdict) -> Error {
    match verdict {
        ScanVerdict::Corrupt {
            position,
            rule,
            detail,
        } => Error::Corrupt {
            file: path.to_path_buf(),
            position: *position,
            detail: format!("{rule}: {detail}"),
        },
        ScanVerdict::TornTail {
            torn_start_position,
            rule,
            ..
        } => Error::Corrupt {
            file: path.to_path_buf(),
            position: *torn_start_position,
            detail: format!("sealed segment has a damaged tail ({rule})"),
        },
        ScanVerdict::Intact { .. } => unreachable!("an intact segment is not corrupt"),
    }
}

/// Lists segments (sorted by base offset) and ready spares; removes half-filled spares.
fn list_partition_dir(dir: &Path) -> Result<Listing> {
    let io = |error: std::io::Error| Error::from_std("listing a partition directory", dir, &error);
    fsync_dir(dir).map_err(io)?;
    let mut listing = Listing {
        segments: Vec::new(),
        spares: Vec::new(),
        spare_sequence_max: 0,
    };
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(sequence) = parse_spare_sequence(name) {
            listing.spare_sequence_max = listing.spare_sequence_max.max(sequence);
        }
        if let Some(base) = parse_segment_file_name(name) {
            listing.segments.push((base, entry.path()));
        } else if name.starts_with(SPARE_PREFIX) && name.ends_with(".log") {
            listing.spares.push(entry.path());
        } else if name.starts_with(SPARE_PREFIX) && name.ends_with(".tmp") {
            // A fill that a crash interrupted: never renamed, so never used.
            fs::remove_file(entry.path()).map_err(io)?;
        }
    }
    listing.segments.sort();
    listing.spares.sort();
    Ok(listing)
}

/// Loads the epoch checkpoint and reconciles it with the epochs stamped in the last
/// segment's batches (the checkpoint is stored in the background, so it may lag them), then
/// drops entries past the log end (a cut-off torn tail).
fn recover_epochs(dir: &Path, batches: &[BatchLocation], log_end: Offset) -> Result<EpochHistory> {
    let mut epochs = EpochHistory::load(dir).map_err(|error| Error::Corrupt {
        file: dir.join(EpochHistory::FILE_NAME),
        position: 0,
        detail: error.to_string(),
    })?;
    let before = epochs.entries().to_vec();
    epochs.truncate_from(log_end);
    for batch in batches {
        let newer = epochs
            .latest()
            .is_none_or(|latest| batch.epoch > latest.epoch);
        if newer {
            let _ = epochs.assign(batch.epoch, batch.base_offset);
        }
    }
    if epochs.entries() != before.as_slice() {
        epochs
            .store(dir)
            .map_err(|error| Error::from_std("storing the epoch file", dir, &error))?;
    }
    Ok(epochs)
}
