//! The partition logs of one shard and their group commit on one io_uring.
//!
//! Group commit without timers: at most one commit cycle is in flight per shard. A cycle
//! takes, for every partition with staged batches, the front staged commit, and submits its
//! write with `RWF_DSYNC`, durable when it completes (or, on the mmap path, copies it into the
//! mapping and submits an fdatasync). Whatever is appended while a cycle is in flight is
//! staged and becomes the next cycle, submitted as soon as the previous one completes. The
//! durable end of a partition moves only when that write, or that fdatasync, completes.
//!
//! Invariants: `ops_in_flight` counts the cycle's operations not yet completed; a partition
//! has at most one commit in flight; a failed write or fdatasync poisons its partition and is
//! never retried (a short write is progress, not failure: its remainder is written).

use std::ffi::CString;
use std::path::Path;

use ringlog_types::{Epoch, Offset};
use ringlog_uring::{Completion, IoError, OpBuf, Ring, RingConfig};

use crate::config::{WalConfig, WritePath};
use crate::epoch_file::EpochHistory;
use crate::error::{Error, Result};
use crate::housekeeper::{Housekeeper, Job, Report, SpareSpec};
use crate::partition::{AppendInfo, Ends, InFlight, Partition};
use crate::segment::Spare;
use crate::tail::Commit;

/// Tags at or above this value (and every foreign completion, sent by another ring's
/// MSG_RING) belong to whoever shares the ring with the log (a shard's network code): `poll`
/// hands their completions over through [`Wal::drain_external_completions`].
pub const EXTERNAL_TAG_MIN: u64 = 1 << 62;

/// Names an open partition log of a [`Wal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionHandle(pub usize);

/// Kinds of operation, in the low byte of a tag; the partition index is above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum OpKind {
    Write = 1,
    Fsync = 2,
    Rename = 3,
    DirSync = 4,
    Read = 5,
}

pub(crate) fn tag(partition: usize, kind: OpKind) -> u64 {
    (u64::try_from(partition).expect("usize fits u64") << 8) | kind as u64
}

fn untag(tag: u64) -> (usize, Option<OpKind>) {
    let partition = usize::try_from(tag >> 8).expect("partition index fits usize");
    let kind = match tag & 0xff {
        1 => Some(OpKind::Write),
        2 => Some(OpKind::Fsync),
        3 => Some(OpKind::Rename),
        4 => Some(OpKind::DirSync),
        5 => Some(OpKind::Read),
        _ => None,
    };
    (partition, kind)
}

/// The partition logs of one shard.
pub struct Wal {
    pub(crate) config: WalConfig,
    pub(crate) block_size_bytes: u64,
    pub(crate) ring: Ring,
    pub(crate) housekeeper: Housekeeper,
    /// Indexed by `PartitionHandle`; a closed partition leaves `None` in its slot, so the
    /// handles of the others never shift and a stale handle is `UnknownPartition`.
    pub(crate) partitions: Vec<Option<Partition>>,
    pub(crate) ops_in_flight: usize,
    completions: Vec<Completion>,
    durable_events: Vec<(PartitionHandle, Offset)>,
    pub(crate) read_completions: Vec<Completion>,
    external_completions: Vec<Completion>,
    /// Completions reaped so far (tells `wait` whether a poll made progress).
    completions_reaped: u64,
    pub(crate) spare_sequence: u64,
}

impl Wal {
    /// Sets up the ring, checks the file system against the write path, and starts the
    /// housekeeper. Fails with a message that says what to do when O_DIRECT is unavailable.
    pub fn new(config: WalConfig) -> Result<Wal> {
        std::fs::create_dir_all(&config.data_dir).map_err(|error| {
            Error::from_std("creating the data directory", &config.data_dir, &error)
        })?;
        let block_size_bytes = block_size_for(&config)?;
        config.validate(block_size_bytes)?;
        let ring_config = RingConfig {
            entries: config.ring_entries,
            ops_in_flight_max: 4096,
        };
        let mut ring = Ring::new(ring_config).map_err(|error| Error::Unsupported {
            reason: format!(
                "io_uring setup failed ({error}): ringlog needs Linux >= 6.1 with io_uring \
                 enabled (sysctl kernel.io_uring_disabled=0)"
            ),
        })?;
        ring.probe().map_err(|error| Error::Unsupported {
            reason: error.to_string(),
        })?;
        if let Some(reason) = ring.setup_fallback_reason() {
            tracing::warn!(
                reason,
                "io_uring set up without SINGLE_ISSUER|DEFER_TASKRUN"
            );
        }
        if let Some(plan) = config.fault_plan.clone() {
            ring.set_fault_plan(plan);
        }
        let housekeeper = Housekeeper::start().map_err(|error| {
            Error::from_std("starting the housekeeper thread", &config.data_dir, &error)
        })?;
        Ok(Wal {
            config,
            block_size_bytes,
            ring,
            housekeeper,
            partitions: Vec::new(),
            ops_in_flight: 0,
            completions: Vec::new(),
            durable_events: Vec::new(),
            read_completions: Vec::new(),
            external_completions: Vec::new(),
            completions_reaped: 0,
            spare_sequence: 0,
        })
    }

    /// The block size commits are aligned and padded to.
    #[must_use]
    pub fn block_size_bytes(&self) -> u64 {
        self.block_size_bytes
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &WalConfig {
        &self.config
    }

    pub(crate) fn partition(&self, handle: PartitionHandle) -> Result<&Partition> {
        self.partitions
            .get(handle.0)
            .and_then(Option::as_ref)
            .ok_or(Error::UnknownPartition(handle.0))
    }

    pub(crate) fn partition_mut(&mut self, handle: PartitionHandle) -> Result<&mut Partition> {
        self.partitions
            .get_mut(handle.0)
            .and_then(Option::as_mut)
            .ok_or(Error::UnknownPartition(handle.0))
    }

    /// Validates `batch` (header and CRC32C), assigns its offsets, stamps its base offset and
    /// `epoch`, and copies it into the partition's tail: the only copy. The batch becomes
    /// durable with a later commit cycle; `poll`/`wait` drive them and `ends` tells.
    pub fn append(
        &mut self,
        handle: PartitionHandle,
        batch: &[u8],
        epoch: Epoch,
    ) -> Result<AppendInfo> {
        let partition = self.partition_mut(handle)?;
        let (info, epochs_changed) = partition.append(batch, epoch)?;
        if epochs_changed {
            let job = Job::StoreEpochs {
                dir: partition.dir.clone(),
                history: partition.epochs.clone(),
            };
            self.housekeeper.submit(job);
        }
        self.store_completed_indexes(handle.0);
        self.request_spares(handle.0);
        Ok(info)
    }

    /// Stores, in the background, the index of every sealed segment whose last commit is
    /// durable (never earlier: an index must not describe a commit that could still tear).
    fn store_completed_indexes(&mut self, index: usize) {
        let partition = open_slot(&mut self.partitions, index);
        let reused = std::mem::take(&mut partition.recycled_at_roll);
        if !reused.is_empty() {
            let paths = reused
                .iter()
                .map(|base| {
                    partition
                        .dir
                        .join(crate::index::SegmentIndex::file_name(*base))
                })
                .collect();
            self.housekeeper.submit(Job::Delete { paths });
            let epochs = partition.epochs.clone();
            self.housekeeper.submit(Job::StoreEpochs {
                dir: partition.dir.clone(),
                history: epochs,
            });
        }
        for base in std::mem::take(&mut partition.sealed_complete) {
            let segment_index = partition.sealed[&base].index.clone();
            let dir = partition.dir.clone();
            self.housekeeper.submit(Job::StoreIndex {
                dir,
                index: segment_index,
            });
        }
    }

    /// The ends of a partition.
    pub fn ends(&self, handle: PartitionHandle) -> Result<Ends> {
        Ok(self.partition(handle)?.ends())
    }

    /// The epoch history of a partition.
    pub fn epochs(&self, handle: PartitionHandle) -> Result<&EpochHistory> {
        Ok(&self.partition(handle)?.epochs)
    }

    /// The first fatal error of a partition, if it is poisoned.
    pub fn poisoned(&self, handle: PartitionHandle) -> Result<Option<&Error>> {
        Ok(self.partition(handle)?.poisoned.as_ref())
    }

    /// Filled spare segments ready for `handle` (after the housekeeper's reports are
    /// handled by `poll`). A benchmark waits for its spares before measuring.
    pub fn spares_ready(&self, handle: PartitionHandle) -> Result<usize> {
        Ok(self.partition(handle)?.spares.len())
    }

    /// Durable ends that moved since the last call, one entry per completed commit.
    pub fn drain_durable_events(&mut self) -> std::vec::Drain<'_, (PartitionHandle, Offset)> {
        self.durable_events.drain(..)
    }

    /// True while a commit cycle is in flight.
    #[must_use]
    pub fn is_committing(&self) -> bool {
        self.ops_in_flight > 0
    }

    /// Does what can be done without blocking: handles completions and the housekeeper's
    /// reports, and starts the next commit cycle if none is in flight.
    pub fn poll(&mut self) -> Result<()> {
        self.handle_reports();
        self.reap();
        if self.ops_in_flight == 0 {
            self.start_cycle()?;
        }
        Ok(())
    }

    /// Like `poll`, but blocks until at least one operation completes if any is in flight
    /// and the first poll reaped nothing. (When the ring is shared with sockets that may never
    /// complete, blocking after a poll that already made progress could wait forever.) For
    /// tests, tools and the benchmark; a shard loop waits on its ring instead.
    pub fn wait(&mut self) -> Result<()> {
        let reaped_before = self.completions_reaped;
        self.poll()?;
        if self.completions_reaped == reaped_before && self.ring.in_flight() > 0 {
            self.ring.submit_and_wait(1).map_err(|error| {
                Error::from_io("waiting for completions", &self.config.data_dir, &error)
            })?;
        }
        self.poll()
    }

    /// Blocks until every batch appended so far to `handle` is durable. Returns the durable
    /// end, or the error that poisoned the partition.
    pub fn sync(&mut self, handle: PartitionHandle) -> Result<Offset> {
        let target = self.partition(handle)?.log_end;
        loop {
            let partition = self.partition(handle)?;
            partition.check_usable()?;
            if partition.durable_end >= target {
                return Ok(partition.durable_end);
            }
            self.wait()?;
        }
    }

    fn reap(&mut self) {
        let mut completions = std::mem::take(&mut self.completions);
        self.ring.reap(&mut completions);
        self.completions_reaped += u64::try_from(completions.len()).expect("fits u64");
        for completion in completions.drain(..) {
            if completion.foreign || completion.tag >= EXTERNAL_TAG_MIN {
                self.external_completions.push(completion);
            } else {
                self.on_completion(completion);
            }
        }
        self.completions = completions;
    }

    /// The ring the log submits to, for the code that shares it (a shard's sockets). Use tags
    /// at or above [`EXTERNAL_TAG_MIN`]; never cancel, and never wait on it in a way that
    /// skips `poll`.
    pub fn ring_mut(&mut self) -> &mut Ring {
        &mut self.ring
    }

    /// True if `poll` reaped something the caller has not taken yet: external completions
    /// or durable events. A loop that waits on the ring must not wait then: what it waits
    /// for may already be here.
    #[must_use]
    pub fn has_pending_events(&self) -> bool {
        !self.external_completions.is_empty() || !self.durable_events.is_empty()
    }

    /// Moves the completions of external operations (tags at or above [`EXTERNAL_TAG_MIN`],
    /// and foreign ones) that `poll` reaped into `out`.
    pub fn drain_external_completions(&mut self, out: &mut Vec<Completion>) {
        out.append(&mut self.external_completions);
    }

    fn handle_reports(&mut self) {
        while let Some(report) = self.housekeeper.try_report() {
            let index = match &report {
                Report::SpareReady { partition, .. } | Report::SpareFailed { partition, .. } => {
                    *partition
                }
            };
            // A report for a closed partition (its slot is empty) has nothing left to update.
            let Some(partition) = self.partitions.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            partition.spares_requested = partition.spares_requested.saturating_sub(1);
            match report {
                Report::SpareReady { path, recycled, .. } => {
                    partition.spares.push_back(Spare { path, recycled });
                }
                Report::SpareFailed { error, .. } => partition.spare_error = Some(error),
            }
            self.request_spares(index);
        }
    }

    /// Keeps `spare_segments_count` filled spares ready or being filled.
    pub(crate) fn request_spares(&mut self, index: usize) {
        let wanted = self.config.spare_segments_count;
        let spec = SpareSpec {
            segment_size_bytes: self.config.segment_size_bytes,
            write_path: self.config.write_path,
        };
        let partition = open_slot(&mut self.partitions, index);
        while partition.spare_error.is_none()
            && partition.spares.len() + partition.spares_requested < wanted
        {
            partition.spares_requested += 1;
            self.spare_sequence += 1;
            self.housekeeper.submit(Job::FillSpare {
                partition: index,
                dir: partition.dir.clone(),
                spec,
                sequence: self.spare_sequence,
            });
        }
    }

    fn start_cycle(&mut self) -> Result<()> {
        for index in 0..self.partitions.len() {
            // A closed partition's slot stays empty: handles are never shifted or reused.
            let Some(partition) = self.partitions[index].as_mut() else {
                continue;
            };
            let Some(commit) = partition.next_commit() else {
                continue;
            };
            if let Err(error) = self.submit_commit(index, &commit) {
                open_slot(&mut self.partitions, index).poison(error);
            }
        }
        if self.ops_in_flight > 0 {
            self.ring.submit_and_wait(0).map_err(|error| {
                Error::from_io("submitting a commit", &self.config.data_dir, &error)
            })?;
        }
        Ok(())
    }

    fn submit_commit(&mut self, index: usize, commit: &Commit) -> Result<()> {
        let partition = open_slot(&mut self.partitions, index);
        let dir = partition.dir.clone();
        if commit.segment_base == partition.active.base_offset {
            if let Some(spare_path) = partition.active.awaiting_rename.clone() {
                let from = file_name_c(&spare_path);
                let to = partition.active_file_name();
                self.ring
                    .rename_then_fsync_dir(
                        &partition.dir_fd,
                        &from,
                        &to,
                        tag(index, OpKind::Rename),
                        tag(index, OpKind::DirSync),
                    )
                    .map_err(|error| Error::from_io("renaming a new segment", &dir, &error))?;
                partition.in_flight = Some(InFlight::Renaming);
                self.ops_in_flight += 2;
                return Ok(());
            }
        }
        let range = commit.chunk_start..commit.chunk_end;
        assert!(
            commit.file_position + commit.len_bytes() <= partition.segment_size_bytes,
            "commit [{}, {}) past the segment end {}",
            commit.file_position,
            commit.file_position + commit.len_bytes(),
            partition.segment_size_bytes
        );
        let (fd, mmap) = if commit.segment_base == partition.active.base_offset {
            (partition.active.fd.clone(), partition.active.mmap.as_mut())
        } else {
            let sealed = partition
                .sealed
                .get_mut(&commit.segment_base)
                .expect("commit's segment exists");
            (sealed.fd.clone(), sealed.mmap.as_mut())
        };
        if let Some(mmap) = mmap {
            let start = usize::try_from(commit.file_position).expect("position fits usize");
            let bytes = commit.buf.slice(range.clone());
            mmap[start..start + bytes.len()].copy_from_slice(bytes);
            self.ring
                .fsync(&fd, true, tag(index, OpKind::Fsync))
                .map_err(|error| Error::from_io("submitting an fdatasync", &dir, &error))?;
            partition.in_flight = Some(InFlight::Writing {
                written_bytes: commit.len_bytes(),
            });
            self.ops_in_flight += 1;
            return Ok(());
        }
        // One RWF_DSYNC write: durable when it completes, with no fdatasync for this thread
        // to queue after reaping it.
        self.ring
            .write_dsync(
                &fd,
                OpBuf::Shared(commit.buf.clone(), range),
                commit.file_position,
                tag(index, OpKind::Write),
            )
            .map_err(|error| Error::from_io("submitting a write", &dir, &error))?;
        partition.in_flight = Some(InFlight::Writing { written_bytes: 0 });
        self.ops_in_flight += 1;
        Ok(())
    }

    pub(crate) fn on_completion(&mut self, completion: Completion) {
        let (index, kind) = untag(completion.tag);
        let Some(kind) = kind else {
            panic!("completion with an unknown tag {}", completion.tag);
        };
        if kind == OpKind::Read {
            self.read_completions.push(completion);
            return;
        }
        assert!(
            self.ops_in_flight > 0,
            "completion without a cycle in flight"
        );
        self.ops_in_flight -= 1;
        match kind {
            OpKind::Rename => self.on_rename_done(index, &completion.result),
            OpKind::DirSync => self.on_dir_sync_done(index, &completion.result),
            OpKind::Write => self.on_write_done(index, &completion.result),
            OpKind::Fsync => self.on_fsync_done(index, &completion.result),
            OpKind::Read => unreachable!("handled above"),
        }
    }

    fn on_rename_done(&mut self, index: usize, result: &std::result::Result<u32, IoError>) {
        let partition = open_slot(&mut self.partitions, index);
        if let Err(error) = result {
            let error = Error::from_io("renaming a new segment", &partition.dir, error);
            partition.poison(error);
        }
    }

    fn on_dir_sync_done(&mut self, index: usize, result: &std::result::Result<u32, IoError>) {
        let partition = open_slot(&mut self.partitions, index);
        partition.in_flight = None;
        match result {
            Ok(_) => partition.active.awaiting_rename = None,
            Err(IoError::Canceled) => {
                assert!(partition.poisoned.is_some(), "canceled after a failure")
            }
            Err(error) => {
                let error = Error::from_io("fsync of a partition directory", &partition.dir, error);
                partition.poison(error);
            }
        }
    }

    /// A direct-path commit's `RWF_DSYNC` write completed: what it wrote is durable. The
    /// commit is durable once every byte is; a short write resubmits the rest.
    fn on_write_done(&mut self, index: usize, result: &std::result::Result<u32, IoError>) {
        let partition = open_slot(&mut self.partitions, index);
        let expected = partition.staged.front().map_or(0, Commit::len_bytes);
        let written_bytes = match (result, &partition.in_flight) {
            (
                Ok(written),
                Some(InFlight::Writing {
                    written_bytes: before,
                }),
            ) => *before + u64::from(*written),
            (Ok(_), _) => {
                assert!(
                    partition.poisoned.is_some(),
                    "write completion without a write in flight"
                );
                return;
            }
            (Err(error), _) => {
                let error = Error::from_io("writing a commit", &partition.dir, error);
                partition.poison(error);
                partition.in_flight = None;
                return;
            }
        };
        if written_bytes < expected {
            if partition.poisoned.is_some() {
                partition.in_flight = None;
            } else if let Err(error) = self.resubmit_short_write(index, written_bytes) {
                let partition = open_slot(&mut self.partitions, index);
                partition.poison(error);
                partition.in_flight = None;
            }
            return;
        }
        assert_eq!(written_bytes, expected, "a commit's write stays within it");
        let durable_end = partition.on_commit_durable();
        self.durable_events
            .push((PartitionHandle(index), durable_end));
        self.store_completed_indexes(index);
    }

    /// The mmap path's fdatasync completed: the commit it copied into the mapping is durable.
    fn on_fsync_done(&mut self, index: usize, result: &std::result::Result<u32, IoError>) {
        let partition = open_slot(&mut self.partitions, index);
        let Some(InFlight::Writing { written_bytes }) = partition.in_flight else {
            panic!("fdatasync completion without a commit in flight");
        };
        match result {
            Ok(_) => {
                let expected = partition.staged.front().map_or(0, Commit::len_bytes);
                assert_eq!(
                    written_bytes, expected,
                    "a durable commit was written whole"
                );
                let durable_end = partition.on_commit_durable();
                self.durable_events
                    .push((PartitionHandle(index), durable_end));
                self.store_completed_indexes(index);
            }
            Err(IoError::Canceled) => partition.in_flight = None,
            Err(error) => {
                let error = Error::from_io("fdatasync of a commit", &partition.dir, error);
                partition.poison(error);
                partition.in_flight = None;
            }
        }
    }

    /// Writes the part of a commit a short write left out, again with `RWF_DSYNC`.
    fn resubmit_short_write(&mut self, index: usize, written_bytes: u64) -> Result<()> {
        let partition = open_slot(&mut self.partitions, index);
        let commit = partition.staged.front().expect("commit in flight").clone();
        let done = usize::try_from(written_bytes).expect("fits usize");
        let fd = if commit.segment_base == partition.active.base_offset {
            partition.active.fd.clone()
        } else {
            partition.sealed[&commit.segment_base].fd.clone()
        };
        self.ring
            .write_dsync(
                &fd,
                OpBuf::Shared(
                    commit.buf.clone(),
                    commit.chunk_start + done..commit.chunk_end,
                ),
                commit.file_position + written_bytes,
                tag(index, OpKind::Write),
            )
            .map_err(|error| Error::from_io("submitting a write", &partition.dir, &error))?;
        partition.in_flight = Some(InFlight::Writing { written_bytes });
        self.ops_in_flight += 1;
        Ok(())
    }

    /// Closes one partition: waits until everything appended to it is durable (or, if it is
    /// poisoned, until its operation in flight completes), empties its slot, then waits for
    /// the housekeeper to finish every job queued so far, so that nothing touches the
    /// partition's directory afterwards (a spare fill, an index or epoch file). Its files
    /// and tail are released; the handle is invalid from now on (`UnknownPartition`), and the
    /// other partitions' handles are unchanged. `open_partition` of the same name afterwards
    /// recovers whatever the directory then holds (nothing, if the caller removed it).
    ///
    /// Blocks on the ring and on the housekeeper: an admin path (DeleteTopics), not a data
    /// path.
    pub fn close_partition(&mut self, handle: PartitionHandle) -> Result<()> {
        loop {
            let partition = self.partition(handle)?;
            let flushed = partition.staged.is_empty() || partition.poisoned.is_some();
            if flushed && partition.in_flight.is_none() {
                break;
            }
            self.wait()?;
        }
        let partition = self.partitions[handle.0]
            .take()
            .expect("checked open above");
        assert!(
            partition.in_flight.is_none(),
            "closing with an operation in flight"
        );
        // With the slot empty no new job can name this partition; the barrier waits for the
        // ones already queued. Their reports are dropped by `handle_reports`.
        self.housekeeper.wait_idle();
        tracing::debug!(partition = %partition.name, "partition closed");
        drop(partition);
        Ok(())
    }

    /// Waits for the commit cycle in flight, then closes the log (the ring waits for any
    /// other operation, the housekeeper finishes its queued jobs).
    pub fn close(mut self) -> Result<()> {
        while self.ops_in_flight > 0 {
            self.wait()?;
        }
        Ok(())
    }
}

/// The open partition in slot `index`. Completions, reports and internal calls only ever
/// name open partitions (closing waits for a partition's operations first), so an empty
/// slot here is a bug.
pub(crate) fn open_slot(partitions: &mut [Option<Partition>], index: usize) -> &mut Partition {
    partitions[index]
        .as_mut()
        .unwrap_or_else(|| panic!("partition slot {index} is closed"))
}

/// The block size for `config`: forced, or the file system's O_DIRECT alignment (at least
/// 4 KiB, the page size, so that commits never share a page), or 4 KiB for mmap.
fn block_size_for(config: &WalConfig) -> Result<u64> {
    if let Some(block) = config.block_size_bytes {
        return Ok(block);
    }
    match config.write_path {
        WritePath::Mmap => Ok(4096),
        WritePath::Direct => direct_block_size(&config.data_dir),
    }
}

fn direct_block_size(dir: &Path) -> Result<u64> {
    let alignment = ringlog_uring::dio_alignment(dir).map_err(|error| {
        Error::from_std("asking the file system for O_DIRECT alignment", dir, &error)
    })?;
    let Some(alignment) = alignment else {
        return Err(Error::Unsupported {
            reason: format!(
                "the file system of {} does not support O_DIRECT (tmpfs and some overlay or \
                 network file systems do not); use --write-path mmap, or put the data \
                 directory on ext4 or XFS",
                dir.display()
            ),
        });
    };
    let block = u64::from(
        alignment
            .offset_align_bytes
            .max(alignment.memory_align_bytes),
    );
    Ok(block.max(4096))
}

fn file_name_c(path: &Path) -> CString {
    let name = path.file_name().expect("spare paths have a file name");
    CString::new(name.as_encoded_bytes()).expect("no NUL in file names")
}
