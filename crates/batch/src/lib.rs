//! Kafka RecordBatch v2 (magic 2): parse, validate, stamp and build. Pure: no I/O.
//!
//! A batch is the unit of append, checksum, storage and replication in ringlog (DESIGN.md,
//! sections 1 and 2). The log stores batches exactly as producers sent them, after the
//! leader has stamped the base offset and its epoch. This crate owns everything that looks
//! inside those bytes:
//!
//! - [`peek_size_bytes`]: the size of the batch at the front of a buffer (log scans, recovery);
//! - [`BatchHeader::parse`]: the 61-byte header, with every field that has a rule checked;
//! - [`validate`]: header, exact length and CRC32C of one whole batch (the produce path);
//! - [`stamp`]: write base offset and leader epoch, both outside the CRC, so no re-hash;
//! - [`records`]: iterate the records of an uncompressed batch (clients, tests, tools);
//! - [`BatchBuilder`]: build an uncompressed batch (clients, tests, the bench harness).
//!
//! It does not own compression (the leader never decompresses), offsets assignment policy,
//! or the Kafka request framing around batches (`crates/kafka`).
//!
//! ```
//! use ringlog_batch::{records, stamp, validate, BatchBuilder};
//! use ringlog_types::{Epoch, Offset};
//!
//! let mut builder = BatchBuilder::new(1_700_000_000_000);
//! builder.push(1_700_000_000_000, Some(b"user-1"), Some(b"hello"), &[]);
//! builder.push(1_700_000_000_005, None, Some(b"world"), &[(b"trace", Some(b"42"))]);
//! let mut batch = builder.build();
//!
//! let header = validate(&batch)?;
//! assert_eq!(header.record_count(), 2);
//!
//! // The leader assigns offsets 100..102 under epoch 7; the CRC stays valid.
//! stamp(&mut batch, Offset(100), Epoch(7));
//! let header = validate(&batch)?;
//! assert_eq!(header.base_offset, 100);
//! assert_eq!(header.partition_leader_epoch, 7);
//!
//! let values: Vec<_> = records(&batch)?
//!     .map(|record| record.map(|record| record.value))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(values, [Some(&b"hello"[..]), Some(&b"world"[..])]);
//! # Ok::<(), ringlog_batch::Error>(())
//! ```
//!
//! Invariants kept by the whole crate:
//!
//! - Bytes from the network or disk never cause a panic: every malformed input is an
//!   [`Error`]. Panics are reserved for programmer errors, and each one is documented.
//! - Kafka's RecordBatch fields are big-endian because Kafka defines them so. That encoding
//!   stays inside this crate (STYLE.md section 4), which is why `clippy::big_endian_bytes`,
//!   denied in the workspace, is allowed here.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Kafka's RecordBatch v2 format is big-endian on the wire and on disk.
#![allow(clippy::big_endian_bytes)]

mod builder;
mod error;
mod header;
mod record;
mod validation;
mod varint;

pub use builder::BatchBuilder;
pub use error::{Error, Result};
pub use header::{
    peek_size_bytes, stamp, BatchHeader, Compression, BATCH_LENGTH_MIN, CRC_START_POSITION,
    HEADER_SIZE_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2,
};
pub use record::{records, Header, Record, Records};
pub use validation::{crc32c, validate};

#[cfg(test)]
mod error_coverage;
#[cfg(test)]
mod fixture;
