//! Errors of framing, decoding and encoding.
//!
//! Invariants: every [`FrameError`] and [`DecodeError`] describes bytes that came from a
//! client, never a bug of ours, and carries what an operator needs in the log line written
//! when the connection is closed (the field, its byte position, the values involved).
//! Positions count from the first byte after the 4-byte size prefix. [`EncodeError`] is the
//! opposite: the caller filled a response that cannot be sent at the version the client
//! asked for.

use crate::api::ApiKey;

/// Why a request frame's size prefix was rejected. The connection cannot be resynchronised
/// after any of these, so the server closes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The prefix declares fewer bytes than the smallest request header.
    #[error("request frame of {size_bytes} bytes is below the {size_bytes_min}-byte minimum")]
    TooSmall {
        /// The declared size (negative sizes are reported as read, before conversion).
        size_bytes: i64,
        /// The smallest request header.
        size_bytes_min: usize,
    },
    /// The prefix declares more bytes than the server accepts.
    #[error("request frame of {size_bytes} bytes exceeds request_size_bytes_max {size_bytes_max}")]
    TooLarge {
        /// The declared size.
        size_bytes: usize,
        /// The configured limit.
        size_bytes_max: usize,
    },
}

/// What is wrong with a request frame's bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A field runs past the end of the frame.
    #[error(
        "field `{field}` at position {position} needs {needed_bytes} bytes \
         but {remaining_bytes} remain"
    )]
    Truncated {
        /// The field being read, as `Api.path.field`.
        field: &'static str,
        /// Position of the field's first byte.
        position: usize,
        /// Bytes the field needs.
        needed_bytes: usize,
        /// Bytes left in the frame (or in the tagged field being read).
        remaining_bytes: usize,
    },

    /// The api_key names an API ringlog does not serve. Kafka closes the connection.
    #[error("unknown api_key {api_key} (correlation_id {correlation_id})")]
    UnknownApi {
        /// The api_key as sent.
        api_key: i16,
        /// The request's correlation id, for the log line.
        correlation_id: i32,
    },

    /// The version is outside the advertised range of an API that has no defined answer for
    /// it (see [`crate::VersionSupport::Unsupported`]). Kafka closes the connection.
    #[error("{api_key} v{api_version} is not supported (correlation_id {correlation_id})")]
    UnsupportedVersion {
        /// The API.
        api_key: ApiKey,
        /// The version as sent.
        api_version: i16,
        /// The request's correlation id, for the log line.
        correlation_id: i32,
    },

    /// A field holds a value its type does not allow.
    #[error("field `{field}` at position {position} is malformed: {reason}")]
    Malformed {
        /// The field being read, as `Api.path.field`.
        field: &'static str,
        /// Position of the field's first byte.
        position: usize,
        /// What is wrong with it.
        reason: MalformedReason,
    },

    /// Bytes follow the end of the request body (or of a tagged field's value).
    #[error("{unused_bytes} bytes follow `{field}`, which ends at position {position}")]
    TrailingBytes {
        /// The structure that should have ended, as `Api.path`.
        field: &'static str,
        /// Position where it ended.
        position: usize,
        /// Bytes left over.
        unused_bytes: usize,
    },
}

/// Why a field is malformed (see [`DecodeError::Malformed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedReason {
    /// A length or count below -1, or -1 (null) where the field is not nullable.
    #[error("length {length} is not allowed here")]
    LengthInvalid {
        /// The decoded length (for compact encodings, the varint minus one).
        length: i64,
    },
    /// An array declares more elements than the remaining bytes can hold.
    #[error(
        "{count} elements of at least {element_size_bytes_min} bytes \
         cannot fit in {remaining_bytes} bytes"
    )]
    CountTooLarge {
        /// The declared count.
        count: u64,
        /// The smallest encoding of one element.
        element_size_bytes_min: usize,
        /// Bytes left in the frame.
        remaining_bytes: usize,
    },
    /// An unsigned varint longer than 5 bytes.
    #[error("varint longer than 5 bytes")]
    VarintTooLong,
    /// A string that is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
}

/// Why a response could not be encoded. The caller filled a field that the client's version
/// cannot carry, or the response exceeds Kafka's 2 GiB frame limit; either way nothing was
/// appended to the output and the connection should be closed with a log line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// kafka-protocol refused the message at this version (typically a field set to a
    /// non-default value that the version does not have).
    #[error("{api_key} v{api_version} response cannot be encoded: {source}")]
    Message {
        /// The API.
        api_key: ApiKey,
        /// The version the client asked for.
        api_version: i16,
        /// kafka-protocol's explanation.
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A string, byte array or array is longer than its length prefix can express.
    #[error(
        "{api_key} v{api_version} response field `{field}` has length {length}, too long to encode"
    )]
    FieldTooLong {
        /// The API.
        api_key: ApiKey,
        /// The version the client asked for.
        api_version: i16,
        /// The field.
        field: &'static str,
        /// Its length.
        length: usize,
    },
    /// The encoded response would exceed `i32::MAX` bytes, the largest size prefix.
    #[error("{api_key} v{api_version} response of {size_bytes} bytes exceeds the frame limit")]
    TooLarge {
        /// The API.
        api_key: ApiKey,
        /// The version the client asked for.
        api_version: i16,
        /// The size it would have had.
        size_bytes: usize,
    },
}
