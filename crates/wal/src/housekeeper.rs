//! The housekeeper: a background thread that does the blocking file work of the logs so that
//! a shard thread never blocks: filling spare segments with zeros, storing sealed segments'
//! indexes and the epoch checkpoint, and deleting segments that retention dropped.
//!
//! Invariants: a spare file becomes visible under its `.spare-N.log` name only after it is
//! completely filled, fsynced, renamed and its directory fsynced (tmp -> fill -> fsync ->
//! rename -> fsync dir, DESIGN.md section 2). Jobs for one partition run in submission order,
//! so segment deletions happen oldest first and never leave a hole.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;

use ringlog_types::units::{KIB, MIB};
use ringlog_uring::AlignedBuf;

use crate::config::WritePath;
use crate::epoch_file::EpochHistory;
use crate::error::Error;
use crate::index::SegmentIndex;
use crate::segment::SPARE_PREFIX;

/// Work for the housekeeper.
pub(crate) enum Job {
    /// Create one filled spare segment in `dir`.
    FillSpare {
        partition: usize,
        dir: PathBuf,
        spec: SpareSpec,
        sequence: u64,
    },
    /// Store a sealed segment's index durably.
    StoreIndex { dir: PathBuf, index: SegmentIndex },
    /// Store the epoch checkpoint durably.
    StoreEpochs { dir: PathBuf, history: EpochHistory },
    /// Delete segment files (and their indexes) that retention dropped, in order.
    Delete { paths: Vec<PathBuf> },
    /// Turn a segment that retention dropped into a spare: rename it to spare number
    /// `sequence` and fsync the directory (its stale bytes stay; recovery tells them apart).
    Recycle {
        partition: usize,
        dir: PathBuf,
        segment: PathBuf,
        index: PathBuf,
        sequence: u64,
    },
    /// Answer on the channel once every job queued before this one is done.
    Barrier { done: Sender<()> },
    /// Stop after the jobs queued before this one.
    Stop,
}

/// How spare segments are made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpareSpec {
    pub segment_size_bytes: u64,
    pub write_path: WritePath,
}

/// What the housekeeper reports back.
pub(crate) enum Report {
    /// A spare is ready at `path` (`recycled`: a dropped segment, not a zero-filled file).
    SpareReady {
        partition: usize,
        path: PathBuf,
        recycled: bool,
    },
    /// Filling a spare failed; the partition cannot roll.
    SpareFailed { partition: usize, error: Error },
}

/// Handle to the housekeeper thread.
pub(crate) struct Housekeeper {
    jobs: Sender<Job>,
    reports: Receiver<Report>,
    thread: Option<JoinHandle<()>>,
}

impl Housekeeper {
    pub(crate) fn start() -> io::Result<Housekeeper> {
        let (jobs, job_queue) = mpsc::channel();
        let (report_sender, reports) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ringlog-housekeeper".to_string())
            .spawn(move || run(&job_queue, &report_sender))?;
        Ok(Housekeeper {
            jobs,
            reports,
            thread: Some(thread),
        })
    }

    pub(crate) fn submit(&self, job: Job) {
        // The thread only exits on Stop or when this handle is dropped; a send error means it
        // panicked, which is a bug worth crashing for.
        self.jobs.send(job).expect("housekeeper thread is gone");
    }

    /// Blocks until every job submitted so far is done (their reports may still be queued).
    pub(crate) fn wait_idle(&self) {
        let (done, finished) = mpsc::channel();
        self.submit(Job::Barrier { done });
        finished.recv().expect("housekeeper thread is gone");
    }

    pub(crate) fn try_report(&self) -> Option<Report> {
        match self.reports.try_recv() {
            Ok(report) => Some(report),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => panic!("housekeeper thread is gone"),
        }
    }
}

impl Drop for Housekeeper {
    fn drop(&mut self) {
        let _ = self.jobs.send(Job::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(jobs: &Receiver<Job>, reports: &Sender<Report>) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::FillSpare {
                partition,
                dir,
                spec,
                sequence,
            } => {
                let report = match fill_spare(&dir, spec, sequence) {
                    Ok(path) => Report::SpareReady {
                        partition,
                        path,
                        recycled: false,
                    },
                    Err(error) => {
                        tracing::error!(dir = %dir.display(), %error, "filling a spare segment failed");
                        Report::SpareFailed {
                            partition,
                            error: Error::from_std("filling a spare segment", &dir, &error),
                        }
                    }
                };
                if reports.send(report).is_err() {
                    return;
                }
            }
            Job::StoreIndex { dir, index } => {
                if let Err(error) = index.store(&dir) {
                    // An index is rebuilt from the segment when missing or invalid, so a
                    // failure here loses nothing; it is logged for the operator.
                    tracing::warn!(dir = %dir.display(), %error, "storing a segment index failed");
                }
            }
            Job::StoreEpochs { dir, history } => {
                if let Err(error) = history.store(&dir) {
                    // The epochs are also stamped in every batch; recovery rebuilds missing
                    // entries from them.
                    tracing::warn!(dir = %dir.display(), %error, "storing the epoch file failed");
                }
            }
            Job::Delete { paths } => delete_files(&paths),
            Job::Recycle {
                partition,
                dir,
                segment,
                index,
                sequence,
            } => {
                let report = match recycle(&dir, &segment, &index, sequence) {
                    Ok(path) => Report::SpareReady {
                        partition,
                        path,
                        recycled: true,
                    },
                    Err(error) => {
                        tracing::error!(dir = %dir.display(), %error, "recycling a segment failed");
                        Report::SpareFailed {
                            partition,
                            error: Error::from_std("recycling a segment", &dir, &error),
                        }
                    }
                };
                if reports.send(report).is_err() {
                    return;
                }
            }
            Job::Barrier { done } => {
                let _ = done.send(());
            }
            Job::Stop => return,
        }
    }
}

fn delete_files(paths: &[PathBuf]) {
    for path in paths {
        if let Err(error) = fs::remove_file(path) {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), %error, "deleting a segment failed");
            }
        }
    }
    if let Some(dir) = paths.first().and_then(|path| path.parent()) {
        if let Err(error) = fsync_dir(dir) {
            tracing::warn!(dir = %dir.display(), %error, "fsync of a directory failed");
        }
    }
}

/// Name of spare number `sequence` once it is ready.
pub(crate) fn spare_name(sequence: u64) -> String {
    format!("{SPARE_PREFIX}{sequence:020}.log")
}

/// The sequence number in a spare's file name (ready or being filled).
pub(crate) fn parse_spare_sequence(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(SPARE_PREFIX)?;
    let digits = rest
        .strip_suffix(".log")
        .or_else(|| rest.strip_suffix(".tmp"))?;
    digits.parse().ok()
}

/// Creates `<dir>/.spare-N.log`: tmp -> fill with zeros -> fsync -> rename -> fsync dir.
/// On failure the tmp file is removed, so a full disk leaves no half-filled file behind.
pub(crate) fn fill_spare(dir: &Path, spec: SpareSpec, sequence: u64) -> io::Result<PathBuf> {
    let tmp_path = dir.join(format!("{SPARE_PREFIX}{sequence:020}.tmp"));
    let result = fill_spare_tmp(&tmp_path, spec);
    if let Err(error) = result {
        let _ = fs::remove_file(&tmp_path);
        return Err(error);
    }
    // A hard link never replaces an existing file (EEXIST), unlike rename: a spare that is
    // already in use under this name must never be swapped for a fresh one.
    let path = dir.join(spare_name(sequence));
    let linked = fs::hard_link(&tmp_path, &path);
    let _ = fs::remove_file(&tmp_path);
    linked?;
    fsync_dir(dir)?;
    Ok(path)
}

fn fill_spare_tmp(tmp_path: &Path, spec: SpareSpec) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    // The mmap path fills with 4 KiB writes: 1 MiB buffered fills made large folios here,
    // and then every small commit wrote back a whole folio (DESIGN.md section 2).
    let chunk_bytes = match spec.write_path {
        WritePath::Direct => {
            options.custom_flags(libc::O_DIRECT);
            MIB
        }
        WritePath::Mmap => 4 * KIB,
    };
    let file = options.open(tmp_path)?;
    let zeros = AlignedBuf::zeroed(usize::try_from(chunk_bytes).expect("chunk fits"), 4096);
    let mut position = 0;
    while position < spec.segment_size_bytes {
        let length = chunk_bytes.min(spec.segment_size_bytes - position);
        let length_usize = usize::try_from(length).expect("chunk fits");
        file.write_all_at(&zeros.as_slice()[..length_usize], position)?;
        position += length;
    }
    file.sync_all()
}

/// Renames a dropped segment to a spare name (never replacing a file) and removes its index.
fn recycle(dir: &Path, segment: &Path, index: &Path, sequence: u64) -> io::Result<PathBuf> {
    let path = dir.join(spare_name(sequence));
    fs::hard_link(segment, &path)?;
    fs::remove_file(segment)?;
    if let Err(error) = fs::remove_file(index) {
        if error.kind() != io::ErrorKind::NotFound {
            return Err(error);
        }
    }
    fsync_dir(dir)?;
    Ok(path)
}

/// fsync of a directory, which makes renames and creations in it durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
