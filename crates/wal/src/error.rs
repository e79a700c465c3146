//! Errors of the partition log.
//!
//! Three classes, as STYLE.md section 6 asks: caller errors that are returned and leave the
//! log usable (`BatchTooLarge`, `InvalidBatch`, `OffsetOutOfRange`, `Backpressure`), corruption
//! (`Corrupt`, with file and position), and fatal I/O (`NoSpace`, `Io`, `Unexpected`) after
//! which the partition is poisoned: every later call returns `Poisoned` naming the first cause.

use std::path::PathBuf;

use ringlog_types::Offset;

/// Result of a partition-log operation.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong, in terms the caller can act on.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The batch is larger than `batch_size_bytes_max` (Kafka: MESSAGE_TOO_LARGE).
    #[error("batch of {size_bytes} bytes exceeds batch_size_bytes_max={max_bytes}")]
    BatchTooLarge {
        /// Size of the rejected batch.
        size_bytes: u64,
        /// The configured limit.
        max_bytes: u64,
    },
    /// The batch failed validation (Kafka: CORRUPT_MESSAGE).
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] ringlog_batch::Error),
    /// The offset is outside `[log_start, log_end]` (Kafka: OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: Offset,
        /// First offset still stored.
        log_start: Offset,
        /// Next offset to be assigned.
        log_end: Offset,
    },
    /// The tail buffers are full or the next segment is not filled yet: retry after `poll`.
    #[error("partition log is busy ({reason}); retry after the next commit completes")]
    Backpressure {
        /// What is exhausted.
        reason: &'static str,
    },
    /// The batch carries an epoch older than the partition's latest (a deposed leader).
    #[error("epoch {epoch} is older than the latest epoch {latest}")]
    FencedEpoch {
        /// The batch's epoch.
        epoch: ringlog_types::Epoch,
        /// The partition's latest epoch.
        latest: ringlog_types::Epoch,
    },
    /// Acknowledged data is damaged. Not truncated away: repair from a replica.
    #[error("corruption in {file} at position {position}: {detail}")]
    Corrupt {
        /// The segment or metadata file.
        file: PathBuf,
        /// Byte position of the first damaged byte found.
        position: u64,
        /// What the scanner found.
        detail: String,
    },
    /// The file system is full (ENOSPC). The partition is poisoned.
    #[error("no space left on device while {op} in {dir}")]
    NoSpace {
        /// What was being done.
        op: &'static str,
        /// The partition directory.
        dir: PathBuf,
    },
    /// The device reported an I/O error (EIO). The partition is poisoned.
    #[error("I/O error while {op} in {dir}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The partition directory.
        dir: PathBuf,
    },
    /// Any other errno from the durable path. The partition is poisoned.
    #[error("unexpected error while {op} in {dir}: {detail}")]
    Unexpected {
        /// What was being done.
        op: &'static str,
        /// The partition directory.
        dir: PathBuf,
        /// errno or message.
        detail: String,
    },
    /// An earlier write or fdatasync failed; nothing is retried (fsyncgate). Reopen the log.
    #[error("partition log is poisoned (read-only) since: {cause}")]
    Poisoned {
        /// The first failure.
        cause: Box<Error>,
    },
    /// The file system cannot do what the write path needs.
    #[error("{reason}")]
    Unsupported {
        /// What to do about it.
        reason: String,
    },
    /// A configuration value is inconsistent.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// Which relation fails.
        reason: String,
    },
    /// The partition handle does not name an open partition.
    #[error("unknown partition handle {0}")]
    UnknownPartition(usize),
}

impl Error {
    /// Maps an I/O error from the ring or the file system for partition directory `dir`.
    #[must_use]
    pub fn from_io(
        op: &'static str,
        dir: &std::path::Path,
        error: &ringlog_uring::IoError,
    ) -> Error {
        use ringlog_uring::IoError;
        let dir = dir.to_path_buf();
        match error {
            IoError::NoSpace => Error::NoSpace { op, dir },
            IoError::Io => Error::Io { op, dir },
            other => Error::Unexpected {
                op,
                dir,
                detail: other.to_string(),
            },
        }
    }

    /// Maps a `std::io::Error` (blocking control-path calls).
    #[must_use]
    pub fn from_std(op: &'static str, dir: &std::path::Path, error: &std::io::Error) -> Error {
        let dir = dir.to_path_buf();
        match error.raw_os_error() {
            Some(libc::ENOSPC) => Error::NoSpace { op, dir },
            Some(libc::EIO) => Error::Io { op, dir },
            _ => Error::Unexpected {
                op,
                dir,
                detail: error.to_string(),
            },
        }
    }

    /// True for the errors that poison a partition.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::NoSpace { .. }
                | Error::Io { .. }
                | Error::Unexpected { .. }
                | Error::Poisoned { .. }
        )
    }
}
