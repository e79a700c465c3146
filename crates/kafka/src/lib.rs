//! The Kafka protocol subset ringlog speaks to clients (DESIGN.md section 6): framing, the
//! API and version table, request decoding and response encoding. Pure: no I/O, no clock.
//!
//! It owns:
//!
//! - [`frame`]: the 4-byte size prefix and its limits ([`frame::frame_length`]);
//! - [`SUPPORTED`], the one table of served APIs and versions, and the header-version rules;
//! - [`decode_request`]: a request frame to a typed [`Decoded`], with kafka-protocol's
//!   message structs as the request bodies;
//! - [`encode_response`], [`encode_refusal`] and [`encode_fetch_response`]: typed responses
//!   to framed bytes at the request's version;
//! - [`ErrorCode`], Kafka's error codes, and the mapping from batch validation failures.
//!
//! It does not own sockets, buffers' lifetimes beyond the [`bytes::Bytes`] it is handed,
//! topic or partition state, or batch validation (`ringlog_batch`). Record bytes stay raw in
//! both directions: a Produce partition's `records` is a slice of the request frame, handed
//! to `ringlog_batch::validate` and appended as is; a Fetch partition's records are the log's
//! own buffers, sent as chunks of a gather list without being copied.
//!
//! A connection's loop looks like this:
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use ringlog_kafka::frame::{frame_length, REQUEST_SIZE_BYTES_MAX_DEFAULT};
//! use ringlog_kafka::{
//!     api_versions_response, decode_request, encode_response, Decoded, ErrorCode, Request,
//!     Response,
//! };
//!
//! // An ApiVersions v0 request as a client sends it: size, api_key 18, version 0,
//! // correlation id 7, client id "cli".
//! let bytes = [0, 0, 0, 13, 0, 18, 0, 0, 0, 0, 0, 7, 0, 3, b'c', b'l', b'i'];
//! let mut input = BytesMut::from(&bytes[..]);
//! let size_bytes = frame_length(&input, REQUEST_SIZE_BYTES_MAX_DEFAULT)?.expect("a prefix");
//! assert_eq!(input.len(), 4 + size_bytes);
//! let frame: Bytes = input.split_to(4 + size_bytes).freeze().slice(4..);
//!
//! let mut output = BytesMut::new();
//! match decode_request(frame)? {
//!     Decoded::Request { header, request: Request::ApiVersions(_) } => {
//!         let response = Response::ApiVersions(api_versions_response(ErrorCode::None));
//!         encode_response(&mut output, &header, &response)?;
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! // Size prefix, then correlation id 7 (ApiVersions always uses response header v0).
//! assert_eq!(&output[4..8], &7i32.to_be_bytes());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Invariants kept by the whole crate:
//!
//! - No input from a client causes a panic or an allocation larger than the frame's real
//!   content needs; every malformed frame is a [`DecodeError`] or [`FrameError`]. Panics are
//!   reserved for a caller's bugs, and each one is documented.
//! - Kafka's wire integers are big-endian because Kafka defines them so. That encoding stays
//!   inside this crate and `ringlog_batch` (STYLE.md section 4), which is why
//!   `clippy::big_endian_bytes`, denied in the workspace, is allowed here.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Kafka's wire protocol is big-endian: every integer in a request or response is.
#![allow(clippy::big_endian_bytes)]

mod api;
mod error;
mod error_code;
mod fetch_response;
pub mod frame;
mod header;
mod request;
mod response;
mod wire;

pub use api::{version_support, ApiKey, VersionSupport, PRODUCE_VERSION_SERVED_MIN, SUPPORTED};
pub use error::{DecodeError, EncodeError, FrameError, MalformedReason};
pub use error_code::ErrorCode;
pub use fetch_response::{
    encode_fetch_response, CurrentLeader, DivergingEpoch, FetchPartitionResponse, FetchResponse,
    FetchTopicResponse,
};
pub use header::RequestHeader;
pub use request::{decode_request, Decoded, Refusal, Request};
pub use response::{
    api_versions_response, encode_refusal, encode_response, find_coordinator_error_response,
    Response,
};

/// kafka-protocol's generated message structs: the request bodies in [`Request`] and the
/// response bodies in [`Response`], with their field types (`TopicName`, `BrokerId`, ...).
pub use kafka_protocol::messages;
/// The string type of kafka-protocol's messages: UTF-8 checked, backed by [`bytes::Bytes`].
pub use kafka_protocol::protocol::StrBytes;
