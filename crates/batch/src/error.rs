//! Errors of batch parsing and validation.
//!
//! Invariants: every variant describes bytes that came from outside (a producer, a peer, a
//! disk) and carries the values needed to find the fault; positions are byte positions
//! from the first byte of the batch. Every variant maps to Kafka's CORRUPT_MESSAGE (2) on the
//! produce path, except [`Error::Compressed`], which only a reader of records can hit.

use crate::header::{Compression, BATCH_LENGTH_MIN};

/// Result of this crate's fallible functions.
pub type Result<T> = std::result::Result<T, Error>;

/// What is wrong with a batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than the fixed-size part being read (the header, or its first 12 bytes).
    #[error("batch truncated: {available_bytes} bytes given, at least {needed_bytes} needed")]
    Truncated {
        /// Bytes the fixed-size part needs.
        needed_bytes: usize,
        /// Bytes that were given.
        available_bytes: usize,
    },

    /// `batch_length` is negative or too small to hold the rest of the header.
    #[error("batch_length {batch_length} is below the minimum of {min}", min = BATCH_LENGTH_MIN)]
    BatchLengthTooSmall {
        /// The `batch_length` field as stored.
        batch_length: i32,
    },

    /// The magic byte is not 2: an older message format, or not a batch at all.
    #[error("unsupported magic {magic}: only RecordBatch v2 (magic 2) is accepted")]
    UnsupportedMagic {
        /// The magic byte as stored.
        magic: i8,
    },

    /// The compression codec bits (attributes & 0x7) hold a value Kafka does not define.
    #[error("unknown compression codec {codec} in attributes {attributes:#06x}")]
    UnknownCompression {
        /// The codec bits.
        codec: u8,
        /// The whole attributes field.
        attributes: i16,
    },

    /// `last_offset_delta` is negative, so the batch would consume no offsets.
    #[error("last_offset_delta {last_offset_delta} is negative")]
    NegativeLastOffsetDelta {
        /// The field as stored.
        last_offset_delta: i32,
    },

    /// `records_count` is negative.
    #[error("records_count {records_count} is negative")]
    NegativeRecordsCount {
        /// The field as stored.
        records_count: i32,
    },

    /// The bytes given are not exactly one batch of the size its header declares.
    #[error("batch header declares {header_size_bytes} bytes but {given_size_bytes} were given")]
    LengthMismatch {
        /// `LOG_OVERHEAD_BYTES + batch_length`.
        header_size_bytes: usize,
        /// Length of the slice that was given.
        given_size_bytes: usize,
    },

    /// The CRC32C of bytes 21..end differs from the stored one.
    #[error("CRC32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// The `crc` field as stored.
        stored: u32,
        /// The CRC32C of the bytes as given.
        computed: u32,
    },

    /// Records were asked of a compressed batch; this crate never decompresses.
    #[error("records of a {compression:?}-compressed batch cannot be read without decompressing")]
    Compressed {
        /// The batch's codec.
        compression: Compression,
    },

    /// A record field runs past the end of its record (or of the batch, for the length).
    #[error("record field `{field}` at position {position} runs past the end of its record")]
    RecordTruncated {
        /// Name of the field being read.
        field: &'static str,
        /// Position of the field's first byte.
        position: usize,
    },

    /// A varint or varlong is longer than 5 or 10 bytes, or its value does not fit.
    #[error("record field `{field}` at position {position} overflows a {width_bits}-bit varint")]
    VarintOverflow {
        /// Name of the field being read.
        field: &'static str,
        /// Position of the varint's first byte.
        position: usize,
        /// 32 for a varint, 64 for a varlong.
        width_bits: u32,
    },

    /// A length or count is negative (other than -1 where null is allowed) or longer than
    /// what is left of the record (or of the batch, for a record length).
    #[error(
        "record field `{field}` at position {position} has length {length} \
         but {remaining_bytes} bytes remain"
    )]
    LengthInvalid {
        /// Name of the length or count field.
        field: &'static str,
        /// Position of the length's first byte.
        position: usize,
        /// The decoded length or count.
        length: i32,
        /// Bytes left in the record (or the batch, for a record length).
        remaining_bytes: usize,
    },

    /// A record's fields end before the length its prefix declares.
    #[error(
        "record at position {position} declares {length_bytes} bytes \
         but its fields end after {used_bytes}"
    )]
    RecordTrailingBytes {
        /// Position of the record's length prefix.
        position: usize,
        /// The declared record length.
        length_bytes: usize,
        /// Bytes the fields actually used.
        used_bytes: usize,
    },

    /// The records end before `records_count` records were read.
    #[error("batch declares {records_count} records but only {records_found} were found")]
    RecordsMissing {
        /// The header's `records_count`.
        records_count: i32,
        /// Records read before the end of the batch.
        records_found: u64,
    },

    /// Bytes follow the last of the `records_count` records.
    #[error("{unused_bytes} bytes follow the last of the {records_count} declared records")]
    BatchTrailingBytes {
        /// The header's `records_count`.
        records_count: i32,
        /// Bytes after the last declared record.
        unused_bytes: usize,
    },
}
