//! Errors of a node: configuration, startup and the fatal failures of a shard.
//!
//! Caller errors of single requests never appear here: they become Kafka error codes in the
//! response (`crate::api`). What is here stops the node (or never lets it start), and says
//! what to do.

use std::path::PathBuf;

/// Result of a node operation.
pub type Result<T> = std::result::Result<T, Error>;

/// What stopped the node or kept it from starting.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file could not be read.
    #[error("reading the configuration file {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {reason}")]
    ConfigInvalid {
        /// Which value and why.
        reason: String,
    },
    /// A listener could not be set up.
    #[error("listening on {address}: {source}")]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The topic metadata file could not be read or written.
    #[error("topic metadata in {path}: {detail}")]
    Topics {
        /// The file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The partition log failed in a way that stops the shard.
    #[error("partition log: {0}")]
    Wal(#[from] ringlog_wal::Error),
    /// The shard's ring failed.
    #[error("io_uring: {0}")]
    Ring(#[from] ringlog_uring::IoError),
    /// A thread could not be started or ended abnormally.
    #[error("thread {name}: {detail}")]
    Thread {
        /// The thread.
        name: String,
        /// What happened.
        detail: String,
    },
}
