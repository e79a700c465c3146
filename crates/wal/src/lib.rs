//! The partition log of ringlog: one write-ahead log per partition, stored as Kafka
//! RecordBatch v2 bytes in preallocated, zero-filled segment files, made durable by group
//! commit (one write + fdatasync in flight per shard) on io_uring.
//!
//! This crate owns the on-disk format (`docs/wal-format.md`), the commit cycle, recovery
//! (torn tail versus corruption, `recovery.rs`), the sparse index, the epoch checkpoint,
//! retention and truncation. It does not own sockets, replication or the Kafka protocol: a
//! shard appends batches, drives `poll`, and learns durable ends.
//!
//! ```no_run
//! use ringlog_batch::BatchBuilder;
//! use ringlog_types::Epoch;
//! use ringlog_wal::{Wal, WalConfig, WritePath};
//!
//! # fn main() -> Result<(), ringlog_wal::Error> {
//! let mut wal = Wal::new(WalConfig::new("/var/lib/ringlog", WritePath::Direct))?;
//! let partition = wal.open_partition("orders-0")?;
//! let mut builder = BatchBuilder::new(0);
//! builder.push(0, Some(b"key"), Some(b"value"), &[]);
//! let info = wal.append(partition, &builder.build(), Epoch(1))?;
//! let durable_end = wal.sync(partition)?;
//! assert!(durable_end >= info.next_offset);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod config;
pub mod epoch_file;
mod error;
mod housekeeper;
pub mod index;
mod metadata_file;
mod mmap;
mod open;
mod partition;
mod read;
pub mod recovery;
mod retention;
mod segment;
pub mod segment_header;
mod tail;
pub mod testing;
mod wal;

pub use config::{Retention, WalConfig, WritePath};
pub use error::{Error, Result};
pub use partition::{AppendInfo, Ends};
pub use read::{ReadPart, ReadResult};
pub use retention::QUARANTINE_DIR;
pub use segment::{parse_segment_file_name, segment_file_name};
pub use wal::{PartitionHandle, Wal, EXTERNAL_TAG_MIN};
