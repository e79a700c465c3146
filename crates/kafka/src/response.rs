//! Response encoding for every API except Fetch (see `crate::fetch_response`), and the
//! answers to refused requests.
//!
//! The caller fills kafka-protocol's response struct; [`encode_response`] appends the whole
//! frame (size prefix, response header, body) at the request's version. kafka-protocol's
//! encoders are used as they are: the input is ours, not a client's.
//!
//! Invariants:
//!
//! - Output is appended to the caller's buffer; on error the buffer is truncated back to its
//!   length on entry, so a failed encode never leaves half a frame behind.
//! - The size prefix equals the bytes that follow it and never exceeds `i32::MAX`.
//! - The header version comes from [`ApiKey::response_header_version`] (v0 for ApiVersions,
//!   KIP-511), and the body is encoded at the request's version.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, CreateTopicsResponse, DeleteTopicsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, ListOffsetsResponse, MetadataResponse,
    ProduceRequest, ProduceResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::api::{ApiKey, SUPPORTED};
use crate::error::EncodeError;
use crate::error_code::ErrorCode;
use crate::frame::SIZE_PREFIX_SIZE_BYTES;
use crate::header::{put_response_header, RequestHeader};
use crate::request::Refusal;

/// A response to encode with [`encode_response`]. Fetch responses have their own encoder,
/// [`crate::encode_fetch_response`], because their record bytes are not copied.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// ApiVersions; [`api_versions_response`] builds the usual one.
    ApiVersions(ApiVersionsResponse),
    /// Metadata.
    Metadata(MetadataResponse),
    /// Produce.
    Produce(ProduceResponse),
    /// ListOffsets.
    ListOffsets(ListOffsetsResponse),
    /// CreateTopics.
    CreateTopics(CreateTopicsResponse),
    /// DeleteTopics.
    DeleteTopics(DeleteTopicsResponse),
    /// FindCoordinator; [`find_coordinator_error_response`] builds the answer ringlog gives.
    FindCoordinator(FindCoordinatorResponse),
}

impl Response {
    /// The API this response answers.
    pub fn api_key(&self) -> ApiKey {
        match self {
            Response::ApiVersions(_) => ApiKey::ApiVersions,
            Response::Metadata(_) => ApiKey::Metadata,
            Response::Produce(_) => ApiKey::Produce,
            Response::ListOffsets(_) => ApiKey::ListOffsets,
            Response::CreateTopics(_) => ApiKey::CreateTopics,
            Response::DeleteTopics(_) => ApiKey::DeleteTopics,
            Response::FindCoordinator(_) => ApiKey::FindCoordinator,
        }
    }
}

/// An ApiVersions response listing every range in [`SUPPORTED`], with `error_code`.
pub fn api_versions_response(error_code: ErrorCode) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error_code.code();
    response.api_keys = SUPPORTED
        .iter()
        .map(|&(api_key, version_min, version_max)| {
            let mut api_version = ApiVersion::default();
            api_version.api_key = api_key.code();
            api_version.min_version = version_min;
            api_version.max_version = version_max;
            api_version
        })
        .collect();
    response
}

/// A FindCoordinator response at `version` that answers every key of `request` with
/// `error_code` and no coordinator: node id -1, empty host, port -1, which is how Kafka
/// answers while a coordinator is not available. v0-3 carry the one answer in the top-level
/// fields (with `error_message` from v1); v4 and later carry one [`Coordinator`] per key in
/// `coordinators`, in the request's order, and leave the top-level fields at their defaults
/// (they are not on the wire). ringlog has no group or transaction coordinator yet and
/// answers COORDINATOR_NOT_AVAILABLE.
pub fn find_coordinator_error_response(
    request: &FindCoordinatorRequest,
    version: i16,
    error_code: ErrorCode,
) -> FindCoordinatorResponse {
    let error_message = || error_message(error_code);
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let mut coordinator = Coordinator::default();
                coordinator.key = key.clone();
                coordinator.node_id = BrokerId(-1);
                coordinator.host = StrBytes::default();
                coordinator.port = -1;
                coordinator.error_code = error_code.code();
                coordinator.error_message = error_message();
                coordinator
            })
            .collect();
    } else {
        response.error_code = error_code.code();
        if version >= 1 {
            response.error_message = error_message();
        }
        response.node_id = BrokerId(-1);
        response.host = StrBytes::default();
        response.port = -1;
    }
    response
}

/// The `error_message` for `error_code`: none for success, Kafka's own text for
/// COORDINATOR_NOT_AVAILABLE, and the code's name otherwise.
fn error_message(error_code: ErrorCode) -> Option<StrBytes> {
    let text = match error_code {
        ErrorCode::None => return None,
        ErrorCode::CoordinatorNotAvailable => "The coordinator is not available.",
        other => other.name(),
    };
    Some(StrBytes::from_static_str(text))
}

/// Appends the framed `response` to `out` at `header`'s version, and returns the frame's
/// size including its size prefix.
///
/// # Panics
///
/// If `response` answers a different API than `header` names (a bug in the caller).
pub fn encode_response(
    out: &mut BytesMut,
    header: &RequestHeader,
    response: &Response,
) -> Result<usize, EncodeError> {
    assert_eq!(
        response.api_key(),
        header.api_key,
        "response does not answer the request (correlation_id {})",
        header.correlation_id
    );
    let (api_key, version) = (header.api_key, header.api_version);
    encode_framed(out, api_key, version, header.correlation_id, |out| {
        let encoded = match response {
            Response::ApiVersions(body) => body.encode(out, version),
            Response::Metadata(body) => body.encode(out, version),
            Response::Produce(body) => body.encode(out, version),
            Response::ListOffsets(body) => body.encode(out, version),
            Response::CreateTopics(body) => body.encode(out, version),
            Response::DeleteTopics(body) => body.encode(out, version),
            Response::FindCoordinator(body) => body.encode(out, version),
        };
        encoded.map_err(|error| EncodeError::Message {
            api_key,
            api_version: version,
            source: error.into(),
        })
    })
}

/// Appends the UNSUPPORTED_VERSION answer to a refused request, and returns the frame's
/// size including its size prefix.
///
/// - ApiVersions: a v0 response (header v0) with UNSUPPORTED_VERSION and every supported
///   range, so the client can retry with a version it finds there (KIP-511).
/// - Produce v0-2: a response at the request's version with UNSUPPORTED_VERSION for every
///   partition it named (Kafka 4's answer). Call this only if
///   [`Refusal::expects_response`]; otherwise close the connection.
pub fn encode_refusal(out: &mut BytesMut, refusal: &Refusal) -> Result<usize, EncodeError> {
    match refusal {
        Refusal::ApiVersions { header } => {
            let response = api_versions_response(ErrorCode::UnsupportedVersion);
            encode_framed(out, ApiKey::ApiVersions, 0, header.correlation_id, |out| {
                response
                    .encode(out, 0)
                    .map_err(|error| EncodeError::Message {
                        api_key: ApiKey::ApiVersions,
                        api_version: 0,
                        source: error.into(),
                    })
            })
        }
        Refusal::Produce { header, request } => {
            let version = header.api_version;
            encode_framed(
                out,
                ApiKey::Produce,
                version,
                header.correlation_id,
                |out| put_produce_refusal_body(out, version, request),
            )
        }
    }
}

/// Writes size prefix, header and body, then fills in the prefix; undoes everything on error.
fn encode_framed(
    out: &mut BytesMut,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    put_body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    let start = out.len();
    out.put_i32(0);
    put_response_header(out, api_key, api_version, correlation_id);
    if let Err(error) = put_body(out) {
        out.truncate(start);
        return Err(error);
    }
    let size_bytes = out.len() - start;
    let Ok(body_size_bytes) = i32::try_from(size_bytes - SIZE_PREFIX_SIZE_BYTES) else {
        out.truncate(start);
        return Err(EncodeError::TooLarge {
            api_key,
            api_version,
            size_bytes,
        });
    };
    out[start..start + SIZE_PREFIX_SIZE_BYTES].copy_from_slice(&body_size_bytes.to_be_bytes());
    Ok(size_bytes)
}

/// Produce v0-2 response body, which kafka-protocol no longer encodes (Kafka 4 dropped the
/// versions from its schema): `[topic name, [index, error_code, base_offset,
/// log_append_time_ms (v2)]]`, then `throttle_time_ms` (v1+). Every partition gets
/// UNSUPPORTED_VERSION and base offset -1.
fn put_produce_refusal_body(
    out: &mut BytesMut,
    version: i16,
    request: &ProduceRequest,
) -> Result<(), EncodeError> {
    assert!(
        (0..=2).contains(&version),
        "Produce v{version} is not refused"
    );
    let too_long = |field, length| EncodeError::FieldTooLong {
        api_key: ApiKey::Produce,
        api_version: version,
        field,
        length,
    };
    let topic_count = request.topic_data.len();
    out.put_i32(i32::try_from(topic_count).map_err(|_| too_long("responses", topic_count))?);
    for topic in &request.topic_data {
        let name = topic.name.0.as_bytes();
        out.put_i16(i16::try_from(name.len()).map_err(|_| too_long("name", name.len()))?);
        out.put_slice(name);
        let partition_count = topic.partition_data.len();
        out.put_i32(
            i32::try_from(partition_count)
                .map_err(|_| too_long("partition_responses", partition_count))?,
        );
        for partition in &topic.partition_data {
            out.put_i32(partition.index);
            out.put_i16(ErrorCode::UnsupportedVersion.code());
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0);
    }
    Ok(())
}
