//! Request decoding: one frame in, a typed [`Decoded`] out.
//!
//! The decoders here fill kafka-protocol's request structs, but read the bytes themselves
//! with [`Reader`]: kafka-protocol's decoders preallocate arrays from the count on the wire
//! (up to 2^32 elements) and read known tagged fields without checking their declared
//! size, so a hostile frame could make them abort the process on a failed allocation. These
//! decoders hold the invariants of `crate::wire` instead.
//!
//! Invariants:
//!
//! - A decoder reads exactly the fields of its version, in Kafka's order, and the whole
//!   frame: trailing bytes are an error. Fields the version lacks keep kafka-protocol's
//!   `Default` values, which are Kafka's defaults, so a decoded struct equals what
//!   kafka-protocol's own decoder returns for the same bytes (the tests check this).
//! - Strings and Produce record sets are slices of the frame's [`Bytes`]: decoding copies no
//!   record bytes, and the frame's buffer lives as long as any slice of it.
//! - Unknown tagged fields are skipped, not stored, so they allocate nothing.
//! - Dispatch goes through [`version_support`] only; a version is never decoded with a
//!   neighbouring version's layout.

mod api_versions;
mod create_topics;
mod delete_topics;
mod fetch;
mod find_coordinator;
mod list_offsets;
mod metadata;
mod produce;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest,
    FindCoordinatorRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
};

use crate::api::{version_support, ApiKey, VersionSupport};
use crate::error::DecodeError;
use crate::header::RequestHeader;
use crate::wire::Reader;

/// A decoded request body of a served API and version.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// ApiVersions v0-3.
    ApiVersions(ApiVersionsRequest),
    /// Metadata v0-12. In v0 an empty topic list means all topics; from v1 on that is
    /// written as a null list (`topics: None`), and an empty list means none.
    Metadata(MetadataRequest),
    /// Produce v3-11. Each partition's `records` is the raw record set, a slice of the frame.
    Produce(ProduceRequest),
    /// Fetch v4-12.
    Fetch(FetchRequest),
    /// ListOffsets v1-7.
    ListOffsets(ListOffsetsRequest),
    /// CreateTopics v2-7.
    CreateTopics(CreateTopicsRequest),
    /// DeleteTopics v1-6. Up to v5 the names are in `topic_names`; v6 fills `topics`.
    DeleteTopics(DeleteTopicsRequest),
    /// FindCoordinator v0-6. Up to v3 one `key`; from v4 the keys are in
    /// `coordinator_keys`.
    FindCoordinator(FindCoordinatorRequest),
}

impl Request {
    /// Whether the client waits for a response: every request does except Produce with
    /// `acks = 0`, which Kafka never answers.
    pub fn expects_response(&self) -> bool {
        match self {
            Request::Produce(produce) => produce.acks != 0,
            Request::ApiVersions(_)
            | Request::Metadata(_)
            | Request::Fetch(_)
            | Request::ListOffsets(_)
            | Request::CreateTopics(_)
            | Request::DeleteTopics(_)
            | Request::FindCoordinator(_) => true,
        }
    }
}

/// A request that this crate answers with UNSUPPORTED_VERSION on the server's behalf: pass
/// it to [`crate::encode_refusal`].
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// ApiVersions at a version outside 0-3. The body is not read (its layout is unknown);
    /// the answer is an ApiVersions v0 response with the supported ranges (KIP-511).
    ApiVersions {
        /// The request's header.
        header: RequestHeader,
    },
    /// Produce v0-2: advertised but not served. The body is decoded (v0-2 is v3 without
    /// `transactional_id`) so that each partition can be answered UNSUPPORTED_VERSION, as
    /// Kafka 4 does. Nothing in it may be appended. With `acks = 0` Kafka answers nothing
    /// and closes the connection instead; [`Refusal::expects_response`] says so.
    Produce {
        /// The request's header.
        header: RequestHeader,
        /// The decoded body; its records are never validated or stored.
        request: ProduceRequest,
    },
}

impl Refusal {
    /// The refused request's header.
    pub fn header(&self) -> &RequestHeader {
        match self {
            Refusal::ApiVersions { header } | Refusal::Produce { header, .. } => header,
        }
    }

    /// Whether the client waits for the refusal (false only for Produce with `acks = 0`).
    pub fn expects_response(&self) -> bool {
        match self {
            Refusal::ApiVersions { .. } => true,
            Refusal::Produce { request, .. } => request.acks != 0,
        }
    }
}

/// What one request frame turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// A request to serve.
    Request {
        /// Its header: the response uses `api_version` and echoes `correlation_id`.
        header: RequestHeader,
        /// Its body.
        request: Request,
    },
    /// A request to answer with UNSUPPORTED_VERSION (see [`Refusal`]).
    Refused(Refusal),
}

/// Decodes one request frame: the bytes after the 4-byte size prefix, exactly as many as
/// [`crate::frame::frame_length`] reported.
///
/// Strings and record sets in the result are slices of `frame` (no copy). Errors:
/// [`DecodeError::UnknownApi`] and [`DecodeError::UnsupportedVersion`] for requests Kafka
/// would close the connection on, and `Truncated`, `Malformed` or `TrailingBytes` for bytes
/// that do not follow the version's layout. No input makes this panic.
pub fn decode_request(frame: Bytes) -> Result<Decoded, DecodeError> {
    let mut reader = Reader::new(frame);
    let header = RequestHeader::decode(&mut reader)?;
    let (api_key, api_version) = (header.api_key, header.api_version);
    match version_support(api_key, api_version) {
        VersionSupport::Unsupported => Err(DecodeError::UnsupportedVersion {
            api_key,
            api_version,
            correlation_id: header.correlation_id,
        }),
        VersionSupport::Refused => match api_key {
            ApiKey::Produce => {
                let request = produce::decode(&mut reader, api_version)?;
                reader.finish("Produce")?;
                Ok(Decoded::Refused(Refusal::Produce { header, request }))
            }
            ApiKey::ApiVersions => Ok(Decoded::Refused(Refusal::ApiVersions { header })),
            ApiKey::Fetch
            | ApiKey::ListOffsets
            | ApiKey::Metadata
            | ApiKey::FindCoordinator
            | ApiKey::CreateTopics
            | ApiKey::DeleteTopics => {
                unreachable!("{api_key} v{api_version} cannot be refused (api::version_support)")
            }
        },
        VersionSupport::Served => {
            let request = decode_body(&mut reader, api_key, api_version)?;
            reader.finish(api_key.name())?;
            Ok(Decoded::Request { header, request })
        }
    }
}

fn decode_body(
    reader: &mut Reader,
    api_key: ApiKey,
    api_version: i16,
) -> Result<Request, DecodeError> {
    Ok(match api_key {
        ApiKey::ApiVersions => Request::ApiVersions(api_versions::decode(reader, api_version)?),
        ApiKey::Metadata => Request::Metadata(metadata::decode(reader, api_version)?),
        ApiKey::Produce => Request::Produce(produce::decode(reader, api_version)?),
        ApiKey::Fetch => Request::Fetch(fetch::decode(reader, api_version)?),
        ApiKey::ListOffsets => Request::ListOffsets(list_offsets::decode(reader, api_version)?),
        ApiKey::CreateTopics => Request::CreateTopics(create_topics::decode(reader, api_version)?),
        ApiKey::DeleteTopics => Request::DeleteTopics(delete_topics::decode(reader, api_version)?),
        ApiKey::FindCoordinator => {
            Request::FindCoordinator(find_coordinator::decode(reader, api_version)?)
        }
    })
}
