//! Errors of the client.
//!
//! Invariants: every variant is something a caller can act on. Broker answers keep Kafka's
//! error code ([`ErrorCode`], plus the raw wire value for codes ringlog does not name), so a
//! caller can test [`ErrorCode::is_retriable`]; transport failures keep the `io::Error`;
//! a response that cannot be decoded or does not answer the request is [`Error::Protocol`];
//! a batch that fails its checks on the way in is [`Error::CorruptBatch`], with its place.

use ringlog_batch::Compression;
use ringlog_kafka::{ApiKey, ErrorCode};

/// Result of this crate's fallible functions.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bootstrap or broker address did not resolve to any socket address.
    #[error("address `{address}` does not resolve")]
    Resolve {
        /// The address as given (`HOST:PORT`).
        address: String,
    },

    /// A socket operation failed; the connection is unusable afterwards.
    #[error("{operation} {address}: {source}")]
    Io {
        /// What was being done (`connect to`, `write to`, `read from`).
        operation: &'static str,
        /// The broker's address.
        address: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The connection failed while this request was in flight or queued behind it. The
    /// request may or may not have been applied by the broker.
    #[error("connection to {address} lost: {reason}")]
    ConnectionLost {
        /// The broker's address.
        address: String,
        /// The first error seen on the connection.
        reason: String,
    },

    /// The broker answered a partition (or topic) with an error code.
    #[error("{topic}[{partition}]: broker error {code} (wire value {code_raw})")]
    Broker {
        /// The code; [`ErrorCode::UnknownServerError`] when the wire value is one ringlog
        /// does not name (see `code_raw`).
        code: ErrorCode,
        /// The value on the wire.
        code_raw: i16,
        /// The topic the error is about.
        topic: String,
        /// The partition the error is about, -1 for a topic-level error.
        partition: i32,
    },

    /// The broker answered a whole request with an error code (no topic involved).
    #[error("{api} request failed: broker error {code} (wire value {code_raw})")]
    Request {
        /// The request's API.
        api: ApiKey,
        /// The code, as for [`Error::Broker`].
        code: ErrorCode,
        /// The value on the wire.
        code_raw: i16,
    },

    /// The broker serves no version of `api` that this client can speak.
    #[error(
        "broker serves {api} v{broker_min}-{broker_max}, this client v{client_min}-{client_max}"
    )]
    UnsupportedApi {
        /// The API.
        api: ApiKey,
        /// The broker's advertised range (`-1..-1` when the API is not advertised at all).
        broker_min: i16,
        /// See `broker_min`.
        broker_max: i16,
        /// This client's range.
        client_min: i16,
        /// See `client_min`.
        client_max: i16,
    },

    /// A response could not be decoded, or does not answer the request it should.
    #[error("{api} v{version}: bad response: {detail}")]
    Protocol {
        /// The request's API.
        api: ApiKey,
        /// The request's version.
        version: i16,
        /// What is wrong, for the log.
        detail: String,
    },

    /// A response frame declares a size outside `[4, response_size_bytes_max]`.
    #[error("response of {size_bytes} bytes from {address} exceeds the limit of {limit_bytes}")]
    FrameSize {
        /// The broker's address.
        address: String,
        /// The declared size.
        size_bytes: i64,
        /// The configured limit.
        limit_bytes: usize,
    },

    /// The metadata names no leader (or no address for the leader) of a partition.
    #[error("{topic}[{partition}]: no leader known")]
    NoLeader {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },

    /// A fetched batch is compressed; this client does not decompress yet.
    #[error("{topic}[{partition}] batch at offset {base_offset} is {compression:?}-compressed")]
    Compressed {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The batch's base offset.
        base_offset: i64,
        /// The codec.
        compression: Compression,
    },

    /// A fetched batch fails validation (header, length or CRC32C) or its records are
    /// malformed.
    #[error("{topic}[{partition}] batch at offset {base_offset}: {source}")]
    CorruptBatch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The batch's base offset as stored (or the fetch offset when the header is bad).
        base_offset: i64,
        /// What is wrong with it.
        #[source]
        source: ringlog_batch::Error,
    },
}

impl Error {
    /// A [`Error::Broker`] for a wire error code.
    pub(crate) fn broker(code_raw: i16, topic: &str, partition: i32) -> Error {
        Error::Broker {
            code: ErrorCode::from_code(code_raw).unwrap_or(ErrorCode::UnknownServerError),
            code_raw,
            topic: topic.to_owned(),
            partition,
        }
    }

    /// A [`Error::Request`] for a wire error code.
    pub(crate) fn request(api: ApiKey, code_raw: i16) -> Error {
        Error::Request {
            api,
            code: ErrorCode::from_code(code_raw).unwrap_or(ErrorCode::UnknownServerError),
            code_raw,
        }
    }

    /// The Kafka error code, for the variants that carry one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Broker { code, .. } | Error::Request { code, .. } => Some(*code),
            _ => None,
        }
    }
}
